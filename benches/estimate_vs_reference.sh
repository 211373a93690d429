#!/usr/bin/env bash
# Times `ia-rct estimate` against the reference packages on the same generated data, in one run:
# pyfixest (did_twfe and event_study, CR1; the event study both with dummies built beforehand and
# with pyfixest's own i() syntax) and estimatr (itt_dim, itt_ancova, itt_lin), at
# 20,000 firms x 16 quarters and at the register scale, 300,000 firms x 40 quarters (12 million
# firm-quarters). Prints, per estimator: ia-rct's wall time (whole command: reading the CSV files
# included), its estimate-only part (the library's `estimate` call alone, timed in-process by
# benches/estimate.rs on the same files), ia-rct's peak RSS, the
# reference's time for the fit alone and in total (pandas reading and deriving + fit), its peak
# RSS, the ratios, and the largest relative difference of the estimates and standard errors
# between ia-rct and the reference (a sanity check: pyfixest demeans to its default tolerance).
#
#   bash benches/estimate_vs_reference.sh                      # SIZES="20000x16 300000x40"
#   SIZES="20000x16 20000p" bash benches/estimate_vs_reference.sh
#   WORK=/tmp/est-bench bash benches/estimate_vs_reference.sh  # keep (and reuse) the data there
#
# Sizes: NxT is N firms x T quarters from 2019K1 (`ia-rct simulate`, no protocol), randomized at
# quarter T/2 with T/2 quarters before and T - T/2 from it, under a design the script writes
# (estimate_reference_timing.py assign): two arms kontroll/behandling, strata fylke x size class
# (75), half of each stratum treated, no clusters, so every firm with post data is in every
# estimate. `Np` is N firms through the protocol protocols/nals-arbeidsformer.toml with effects
# (`ia-rct simulate --protocol ... --effect ...`): its eligibility, 4 arms (3 contrasts), strata,
# and kommunal firms clustered by kommune (CR2 ITT, CR1 by cluster in the panel).
#
# ia-rct runs one estimator at a time (`--estimator X --weights firm --no-cr2`), IA_REPEAT times
# (default 3; the best wall time and the largest peak RSS are kept). Each reference runs once per
# estimator in its own process under `timeout $REF_TIMEOUT` (default 1200 s) and `ulimit -v
# $REF_MEM_GB` GB (default 20): a reference that times out or runs out of memory is reported as
# such in the table, not skipped.
#
# Needs: python3 with pandas, numpy, pyfixest; Rscript with estimatr; GNU time at /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
WORK="${WORK:-$(mktemp -d)}"
SIZES="${SIZES:-20000x16 300000x40}"
IA_REPEAT="${IA_REPEAT:-3}"
REF_TIMEOUT="${REF_TIMEOUT:-1200}"
REF_MEM_GB="${REF_MEM_GB:-20}"
PY="$ROOT/benches/estimate_reference_timing.py"
ESTIMATORS="itt_dim itt_ancova itt_lin did_twfe event_study"

# IA_RCT_BENCH_BIN times another build (say, the previous commit's) instead of this tree's.
if [ -n "${IA_RCT_BENCH_BIN:-}" ]; then
    BIN="$IA_RCT_BENCH_BIN"
else
    cargo build --release --quiet --bin ia-rct
    BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/ia-rct"
fi
# The estimate-only times come from benches/estimate.rs in its phases mode (the same library calls
# as the command, timed inside one process); its executable, built once.
PHASES_BIN="$(cargo bench --bench estimate --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "estimate":
        print(m["executable"])')"

say() { printf '+ %s\n' "$*" >&2; }

# quarter label + n quarters
qplus() { python3 -c "import sys; i = int(sys.argv[1][:4]) * 4 + int(sys.argv[1][5]) - 1 + int(sys.argv[2]); print(f'{i // 4}K{i % 4 + 1}')" "$1" "$2"; }

# The generator is deterministic, so a directory already complete in $WORK is reused.
generate() {
    local size="$1" dir="$2"
    [ -s "$dir/design.json" ] && return
    mkdir -p "$dir"
    case "$size" in
    *p)
        local firms="${size%p}"
        say "$BIN simulate --firms $firms --out $dir --protocol protocols/nals-arbeidsformer.toml --effect bred_prosess=-0.8,ledere=-0.4,digital=-0.2"
        "$BIN" simulate --firms "$firms" --out "$dir" --protocol protocols/nals-arbeidsformer.toml \
            --effect bred_prosess=-0.8,ledere=-0.4,digital=-0.2 >&2
        printf '{"randomized_at": "2025K1", "pre": 8, "post": 12, "control": "kontroll"}\n' >"$dir/design.json.tmp"
        ;;
    *x*)
        local firms="${size%x*}" quarters="${size#*x}"
        local pre=$((quarters / 2)) post=$((quarters - quarters / 2))
        say "$BIN simulate --firms $firms --quarters $quarters --start 2019K1 --out $dir"
        "$BIN" simulate --firms "$firms" --quarters "$quarters" --start 2019K1 --out "$dir" >&2
        python3 "$PY" assign "$dir/register.csv" "$dir/assignment.csv" >&2
        printf '{"randomized_at": "%s", "pre": %d, "post": %d, "control": "kontroll"}\n' \
            "$(qplus 2019K1 "$pre")" "$pre" "$post" >"$dir/design.json.tmp"
        ;;
    *) echo "unknown size $size (NxT or Np)" >&2; exit 2 ;;
    esac
    mv "$dir/design.json.tmp" "$dir/design.json"
}

design() { python3 -c "import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1/design.json" "$2"; }

# The `ia-rct estimate` arguments for the design in $1 (into the array IA_ARGS).
ia_args() {
    IA_ARGS=(estimate --assignment "$1/assignment.csv" --stats "$1/statistics.csv"
        --randomized-at "$(design "$1" randomized_at)" --pre "$(design "$1" pre)"
        --post "$(design "$1" post)" --format json)
}

# ref NAME DIR CMD...: one reference run, timed and capped; the exit status goes to ref_NAME.status.
ref() {
    local name="$1" dir="$2"
    shift 2
    rm -f "$dir/ref_$name.json" "$dir/ref_$name.time"
    say "$*"
    set +e
    (
        ulimit -v $((REF_MEM_GB * 1024 * 1024))
        /usr/bin/time -f "%e %M %x" -o "$dir/ref_$name.time" \
            timeout -k 30 "$REF_TIMEOUT" "$@" >"$dir/ref_$name.log" 2>&1
    )
    local code=$?
    set -e
    echo "$code $REF_MEM_GB $REF_TIMEOUT" >"$dir/ref_$name.status"
    if [ "$code" != 0 ]; then
        echo "  $name: exit $code; last lines of $dir/ref_$name.log:" >&2
        tail -n 5 "$dir/ref_$name.log" >&2 || true
    fi
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)"
echo "ia-rct: $BIN ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), working tree as built)"
echo "work: $WORK; IA_REPEAT=$IA_REPEAT; REF_TIMEOUT=${REF_TIMEOUT}s; REF_MEM_GB=$REF_MEM_GB"
echo

for size in $SIZES; do
    dir="$WORK/$size"
    generate "$size" "$dir"
    rows=$(($(wc -l <"$dir/statistics.csv") - 1))
    echo "== $size: $(($(wc -l <"$dir/assignment.csv") - 1)) firms assigned, $rows firm-quarters in statistics.csv ($(du -m "$dir/statistics.csv" | cut -f1) MB), load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2

    # ia-rct: the data step alone (a --control naming no arm fails right after reading), then each
    # estimator on its own.
    rm -f "$dir"/ia_*.time
    ia_args "$dir"
    say "$BIN ${IA_ARGS[*]} --control __data_step_only__  (x$IA_REPEAT)"
    for _ in $(seq "$IA_REPEAT"); do
        /usr/bin/time -f "%e %M %x %U %S" -a -o "$dir/ia_load.time" \
            "$BIN" "${IA_ARGS[@]}" --control __data_step_only__ >/dev/null 2>&1 || true
    done
    for est in $ESTIMATORS; do
        say "$BIN ${IA_ARGS[*]} --estimator $est --weights firm --no-cr2  (x$IA_REPEAT)"
        for _ in $(seq "$IA_REPEAT"); do
            /usr/bin/time -f "%e %M %x %U %S" -a -o "$dir/ia_$est.time" \
                "$BIN" "${IA_ARGS[@]}" --estimator "$est" --weights firm --no-cr2 >"$dir/ia_$est.json"
        done
    done

    say "IA_RCT_ESTIMATE_PHASES=$dir $PHASES_BIN  (data step once, each estimator best of $IA_REPEAT)"
    IA_RCT_ESTIMATE_PHASES="$dir" IA_RCT_ESTIMATE_REPEAT="$IA_REPEAT" "$PHASES_BIN" >"$dir/ia_phases.json"

    # The reference derivation equals the fixtures' (notebooks/estimates_reference.py) on small data.
    if [ "$rows" -le 1000000 ]; then
        python3 "$PY" selfcheck "$dir"
    fi

    # pyfixest: one process per estimator.
    for est in did_twfe event_study event_study_i; do
        ref "$est" "$dir" python3 "$PY" pyfixest "$dir" "$est"
    done
    # estimatr: the firm-level data of each contrast, then one R process per estimator.
    python3 "$PY" firmdata "$dir" >&2
    for est in itt_dim itt_ancova itt_lin; do
        ref "$est" "$dir" env LC_ALL=C Rscript --vanilla benches/estimate_reference_timing.R "$dir" "$est"
    done

    python3 "$PY" report "$dir" "$size"
    echo
done
cat <<'EOF'
Columns: ia total s = `ia-rct estimate` wall time, reading the assignment and statistics CSV
included (best of IA_REPEAT); ia cpu s = its user + system CPU time; ia est s = the `estimate`
call alone (in-process, benches/estimate.rs phases mode, best of IA_REPEAT); ia MB = peak RSS;
ref fit s = the reference call + tidy() only (data in memory, summed over contrasts); ref tot s =
pandas reading the statistics and deriving the data + (R reading the firm file) + the fit; ref MB =
the reference process's peak RSS; fit/ia = ref fit s / ia total s (the aim: >= 5x); fit/est =
ref fit s / ia est s; tot/tot = ref tot s / ia total s; rel d est / se = the largest relative
difference between ia-rct and the reference over all arms and terms.
EOF
