#!/usr/bin/env bash
# Times `ia-rct ingest` against the engines' own bulk loaders on the same files, in one run:
# a national quarter (250,000 firms) and a 40-quarter history of 300,000 firms (12 million rows),
# into SQLite (vs `sqlite3 .import` into an equivalent table with the same primary key) and into
# PostgreSQL (vs `\copy`, i.e. COPY FROM STDIN, into an equivalent table). Prints wall time, peak
# resident memory of the loading process, and the ratio ia-rct / bulk loader.
#
#   bash benches/ingest.sh                 # both sizes
#   SIZES=quarter bash benches/ingest.sh   # the quarter only
#   WORK=/tmp/bench bash benches/ingest.sh # keep (and reuse) the generated files there
#
# Needs: python3, sqlite3, psql, and PostgreSQL at $IA_RCT_BENCH_POSTGRES (an admin URL).
set -euo pipefail
cd "$(dirname "$0")/.."
PG_ADMIN="${IA_RCT_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}"
PG_BASE="${PG_ADMIN%/*}"
WORK="${WORK:-$(mktemp -d)}"
SIZES="${SIZES:-quarter history}"

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

fresh_pg() { psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" >/dev/null; }

printf '%-8s %-10s %10s %12s %10s %12s %7s\n' size engine "ia-rct s" "ia-rct MB" "bulk s" "bulk MB" ratio
for size in $SIZES; do
    generate "$size"
    file="$WORK/$size.csv"
    rows=$(($(wc -l <"$file") - 1))

    # Both sides start from an empty table: ia-rct's migrations, like the bulk loader's CREATE
    # TABLE, run before the clock starts.
    rm -f "$WORK"/ia.db* "$WORK/bulk.db"
    "$BIN" --database-url "sqlite://$WORK/ia.db" migrate >/dev/null 2>&1
    read -r t1 m1 < <(measure "$BIN" --database-url "sqlite://$WORK/ia.db" ingest "$file")
    sqlite3 "$WORK/bulk.db" "$TABLE_SQLITE"
    read -r t2 m2 < <(measure sqlite3 "$WORK/bulk.db" -cmd ".mode csv" ".import --skip 1 $file statistics")
    printf '%-8s %-10s %10s %12s %10s %12s %7s\n' "$size" sqlite "$t1" "$((m1 / 1024))" "$t2" "$((m2 / 1024))" \
        "$(python3 -c "print(f'{$t1 / $t2:.2f}')")"

    fresh_pg ia_bench_ingest
    "$BIN" --database-url "$PG_BASE/ia_bench_ingest" migrate >/dev/null 2>&1
    read -r t1 m1 < <(measure "$BIN" --database-url "$PG_BASE/ia_bench_ingest" ingest "$file")
    fresh_pg ia_bench_copy
    psql -q "$PG_BASE/ia_bench_copy" -c "$TABLE_PG" >/dev/null
    read -r t2 m2 < <(measure psql -q "$PG_BASE/ia_bench_copy" -c "\\copy statistics FROM '$file' CSV HEADER")
    printf '%-8s %-10s %10s %12s %10s %12s %7s\n' "$size" postgres "$t1" "$((m1 / 1024))" "$t2" "$((m2 / 1024))" \
        "$(python3 -c "print(f'{$t1 / $t2:.2f}')")"
    echo "  ($rows rows, $(du -m "$file" | cut -f1) MB file)"
    psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS ia_bench_ingest" -c "DROP DATABASE IF EXISTS ia_bench_copy" >/dev/null
done
