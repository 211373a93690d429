#!/usr/bin/env bash
# Register-scale speed of offline `ia-rct estimate` (issue 12): 300,000 firms x 40 quarters (12
# million firm-quarters, from `ia-rct simulate`), did_twfe with the firm weighting, timed as whole
# processes with GNU time (wall, CPU, peak RSS):
#   - the data step alone (reading the assignment and statistics and building the study; a
#     --control naming no arm stops right after it), on one thread (RAYON_NUM_THREADS=1) and on
#     every core;
#   - CR1 alone (--no-cr2), and CR1 + CR2;
#   - if python3 has polars, `polars.read_csv` of the same statistics file as a whole Python
#     process, and the ratio of ia-rct's CR1 run to it.
# Each is run REPEAT times (default 3): the best wall time and the largest peak RSS are kept.
#
#   bash benches/estimate_register_scale.sh
#   FIRMS=20000 QUARTERS=16 bash benches/estimate_register_scale.sh   # a quick run
#   WORK=/tmp/reg bash benches/estimate_register_scale.sh               # keep (and reuse) the data
#
# The design: randomized at quarter QUARTERS/2 from 2019K1, with QUARTERS/2 quarters before and
# the rest from it; two arms kontroll/behandling; strata fylke x size class (as
# estimate_vs_reference.sh), every other firm of a stratum in register order treated. Needs GNU
# time at /usr/bin/time and about 1 GB of disk (removed at the end unless WORK is given).
set -euo pipefail
cd "$(dirname "$0")/.."
FIRMS="${FIRMS:-300000}"
QUARTERS="${QUARTERS:-40}"
REPEAT="${REPEAT:-3}"
if [ -n "${WORK:-}" ]; then
    mkdir -p "$WORK"
else
    WORK="$(mktemp -d)"
    trap 'rm -rf "$WORK"' EXIT
fi

if [ -n "${IA_RCT_BENCH_BIN:-}" ]; then
    BIN="$IA_RCT_BENCH_BIN"
else
    cargo build --release --quiet --bin ia-rct
    BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/ia-rct"
fi

dir="$WORK/${FIRMS}x${QUARTERS}"
if [ ! -s "$dir/assignment.csv" ]; then
    mkdir -p "$dir"
    "$BIN" simulate --firms "$FIRMS" --quarters "$QUARTERS" --start 2019K1 --out "$dir" >&2
    # orgnr,navn,fylke,naringskode,sektor,antall_ansatte,...: stratum = fylke-size class.
    awk -F, 'NR == 1 { print "orgnr,arm,stratum"; next }
        { n = $6 + 0; k = n <= 4 ? 0 : n <= 14 ? 1 : n <= 49 ? 2 : n <= 149 ? 3 : 4
          s = $3 "-" k; arm = (seen[s]++ % 2) ? "behandling" : "kontroll"
          print $1 "," arm "," s }' "$dir/register.csv" >"$dir/assignment.csv.tmp"
    mv "$dir/assignment.csv.tmp" "$dir/assignment.csv"
fi
stats="$dir/statistics.csv"
pre=$((QUARTERS / 2))
post=$((QUARTERS - pre))
at=$((2019 * 4 + pre))
randomized_at="$((at / 4))K$((at % 4 + 1))"
ARGS=(estimate --assignment "$dir/assignment.csv" --stats "$stats" --randomized-at "$randomized_at"
    --pre "$pre" --post "$post" --format json --estimator did_twfe --weights firm)

# timed NAME CMD...: REPEAT runs; prints "NAME wall s, cpu s (user + sys), peak MB" (best wall,
# largest RSS) and leaves the best wall time in $BEST.
timed() {
    local name="$1" log="$WORK/$1.time"
    shift
    rm -f "$log"
    for _ in $(seq "$REPEAT"); do
        /usr/bin/time -f "%e %U %S %M" -a -o "$log" "$@" >/dev/null 2>"$WORK/$name.err" || true
    done
    # (GNU time adds a "Command exited with non-zero status" line for the data step's runs.)
    grep -E '^[0-9]' "$log" >"$log.num"
    BEST=$(sort -n "$log.num" | head -n 1 | cut -d' ' -f1)
    sort -n "$log.num" | head -n 1 | awk -v name="$name" -v rss="$(cut -d' ' -f4 "$log.num" | sort -n | tail -n 1)" \
        '{ printf "%-34s %7.2f s wall %7.2f s cpu %7.0f MB peak\n", name, $1, $2 + $3, rss / 1024 }'
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "ia-rct: $BIN ($(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "data: $(($(wc -l <"$stats") - 1)) firm-quarters, $(du -m "$stats" | cut -f1) MB; $(($(wc -l <"$dir/assignment.csv") - 1)) firms assigned; REPEAT=$REPEAT"
echo
timed "data step, 1 thread" env RAYON_NUM_THREADS=1 "$BIN" "${ARGS[@]}" --control __data_step_only__
timed "data step, all cores" "$BIN" "${ARGS[@]}" --control __data_step_only__
timed "did_twfe CR1 (--no-cr2)" "$BIN" "${ARGS[@]}" --no-cr2
cr1="$BEST"
timed "did_twfe CR1 + CR2" "$BIN" "${ARGS[@]}"
if python3 -c 'import polars' 2>/dev/null; then
    timed "polars read_csv (python3 process)" python3 -c 'import sys, polars; polars.read_csv(sys.argv[1])' "$stats"
    awk -v ia="$cr1" -v pl="$BEST" 'BEGIN { printf "ia-rct CR1 / polars read_csv: %.2f\n", ia / pl }'
else
    echo "polars read_csv: skipped (python3 has no polars; pip install polars)"
fi
