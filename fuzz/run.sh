#!/usr/bin/env bash
# Runs one fuzz target (or all, one after another) with the checked-in seeds.
#   fuzz/run.sh register 180        # one target, 180 s
#   fuzz/run.sh all 180             # every target in turn
# Needs `cargo install cargo-fuzz`. On a stable toolchain, RUSTC_BOOTSTRAP=1 unlocks the -Z flags
# cargo fuzz passes (sanitizer, coverage); on nightly it is harmless.
set -euo pipefail
cd "$(dirname "$0")"
target="${1:?usage: run.sh <target|all> [seconds] [extra libFuzzer flags...]}"
seconds="${2:-180}"
shift $(( $# >= 2 ? 2 : 1 ))
export RUSTC_BOOTSTRAP=1
targets=("$target")
if [ "$target" = all ]; then
  targets=(register statistics protocol assignment_files domain)
fi
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  # corpus/ is git-ignored (it grows to tens of MB); seeds/ is the checked-in start.
  cargo fuzz run --debug-assertions "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 "$@"
done
