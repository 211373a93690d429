#!/usr/bin/env bash
# Times `ia-rct ingest` against the engines' own bulk loaders on the same files, in one run:
# a national quarter (250,000 firms) and a 40-quarter history of 300,000 firms (12 million rows),
# into SQLite (vs `sqlite3 .import` into an equivalent table with the same primary key) and into
# PostgreSQL (vs `\copy`, i.e. COPY FROM STDIN, into an equivalent table). Each load runs RUNS
# times (default 5), ia-rct and the bulk loader alternating on fresh tables, and the script prints,
# per size and backend, the medians of the wall times and peak resident memory of the loading
# process, the median of the per-run ratios ia-rct / bulk loader, and the lowest and highest ratio.
#
#   bash benches/ingest.sh                  # both sizes, 5 runs each
#   SIZES=quarter bash benches/ingest.sh    # the quarter only
#   RUNS=3 bash benches/ingest.sh           # fewer runs
#   WORK=/tmp/bench bash benches/ingest.sh  # keep (and reuse) the generated files there
#
# Needs: python3, sqlite3, psql, GNU time, and PostgreSQL at $IA_RCT_BENCH_POSTGRES (an admin URL).
set -euo pipefail
cd "$(dirname "$0")/.."
PG_ADMIN="${IA_RCT_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}"
PG_BASE="${PG_ADMIN%/*}"
WORK="${WORK:-$(mktemp -d)}"
SIZES="${SIZES:-quarter history}"
RUNS="${RUNS:-5}"

# IA_RCT_BENCH_BIN times another build (say, the previous commit's) instead of this tree's.
if [ -n "${IA_RCT_BENCH_BIN:-}" ]; then
    BIN="$IA_RCT_BENCH_BIN"
else
    cargo build --release --quiet
    BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/ia-rct"
fi

# The generator is deterministic, so a file already in $WORK is reused.
generate() {
    [ -s "$WORK/$1.csv" ] && return
    case "$1" in
        quarter) python3 benches/gen_statistics.py --firms 250000 --quarters 1 --out "$WORK/quarter.csv" ;;
        history) python3 benches/gen_statistics.py --firms 300000 --quarters 40 --out "$WORK/history.csv" ;;
    esac
}

# Runs a command under /usr/bin/time; prints "seconds peak_kb".
measure() {
    /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >"$WORK/out" 2>&1 || { cat "$WORK/out" >&2; exit 1; }
    cat "$WORK/time"
}

TABLE_SQLITE="CREATE TABLE statistics (orgnr TEXT NOT NULL, arstall INTEGER NOT NULL, kvartal INTEGER NOT NULL,
  taptedv REAL NOT NULL, muligedv REAL NOT NULL, antpers INTEGER NOT NULL, PRIMARY KEY (orgnr, arstall, kvartal));"
TABLE_PG="CREATE TABLE statistics (orgnr TEXT NOT NULL, arstall INTEGER NOT NULL, kvartal INTEGER NOT NULL,
  taptedv DOUBLE PRECISION NOT NULL, muligedv DOUBLE PRECISION NOT NULL, antpers INTEGER NOT NULL,
  PRIMARY KEY (orgnr, arstall, kvartal));"

fresh_pg() { PGOPTIONS="-c client_min_messages=warning" psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" >/dev/null; }

# One line of the table from the per-run values: size, engine, then the lists of ia-rct seconds,
# ia-rct KB, bulk seconds and bulk KB (space-separated, one value per run).
report() {
    python3 - "$@" <<'PY'
import statistics, sys
size, engine, t1, m1, t2, m2 = sys.argv[1:7]
t1, m1, t2, m2 = ([float(x) for x in v.split()] for v in (t1, m1, t2, m2))
ratios = [a / b for a, b in zip(t1, t2)]
med = statistics.median
print(f"{size:<8} {engine:<10} {med(t1):>10.2f} {med(m1) / 1024:>10.0f} {med(t2):>10.2f} "
      f"{med(m2) / 1024:>10.0f} {med(ratios):>7.2f} {min(ratios):>6.2f}-{max(ratios):.2f}")
PY
}

echo "medians of $RUNS runs per load; ratio = ia-rct / bulk loader, per run (median, then lowest-highest)"
printf '%-8s %-10s %10s %10s %10s %10s %7s %11s\n' size engine "ia-rct s" "ia-rct MB" "bulk s" "bulk MB" ratio range
for size in $SIZES; do
    generate "$size"
    file="$WORK/$size.csv"
    rows=$(($(wc -l <"$file") - 1))

    # Both sides start from an empty table: ia-rct's migrations, like the bulk loader's CREATE
    # TABLE, run before the clock starts.
    st1="" sm1="" st2="" sm2=""
    for _ in $(seq "$RUNS"); do
        rm -f "$WORK"/ia.db* "$WORK/bulk.db"
        "$BIN" --database-url "sqlite://$WORK/ia.db" migrate >/dev/null 2>&1
        read -r t m < <(measure "$BIN" --database-url "sqlite://$WORK/ia.db" ingest "$file")
        st1="$st1 $t" sm1="$sm1 $m"
        sqlite3 "$WORK/bulk.db" "$TABLE_SQLITE"
        read -r t m < <(measure sqlite3 "$WORK/bulk.db" -cmd ".mode csv" ".import --skip 1 $file statistics")
        st2="$st2 $t" sm2="$sm2 $m"
    done
    rm -f "$WORK"/ia.db* "$WORK/bulk.db"
    report "$size" sqlite "$st1" "$sm1" "$st2" "$sm2"

    pt1="" pm1="" pt2="" pm2=""
    for _ in $(seq "$RUNS"); do
        fresh_pg ia_bench_ingest
        "$BIN" --database-url "$PG_BASE/ia_bench_ingest" migrate >/dev/null 2>&1
        read -r t m < <(measure "$BIN" --database-url "$PG_BASE/ia_bench_ingest" ingest "$file")
        pt1="$pt1 $t" pm1="$pm1 $m"
        fresh_pg ia_bench_copy
        psql -q "$PG_BASE/ia_bench_copy" -c "$TABLE_PG" >/dev/null
        read -r t m < <(measure psql -q "$PG_BASE/ia_bench_copy" -c "\\copy statistics FROM '$file' CSV HEADER")
        pt2="$pt2 $t" pm2="$pm2 $m"
    done
    report "$size" postgres "$pt1" "$pm1" "$pt2" "$pm2"
    echo "  ($rows rows, $(du -m "$file" | cut -f1) MB file)"
    PGOPTIONS="-c client_min_messages=warning" psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS ia_bench_ingest" -c "DROP DATABASE IF EXISTS ia_bench_copy" >/dev/null
done
