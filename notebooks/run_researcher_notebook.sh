#!/usr/bin/env bash
# Runs notebooks/researcher.ipynb headless against demo data; exits non-zero when it fails (a cell
# raised, e.g. the did_twfe re-computation with pyfixest differs from the API by more than 1e-8).
#
#   bash notebooks/run_researcher_notebook.sh
#
# Starts `ia-rct demo --serve --firms ${FIRMS:-20000} --dir <out>/demo --bind 127.0.0.1:0` (the
# binary is $IA_RCT_BIN, else ${CARGO_TARGET_DIR:-target}/release/ia-rct), waits for its `ready`
# line, takes the service URL and the forsker token from its stdout, runs the notebook with
# `jupyter nbconvert --execute` into the output folder (the committed notebook is never
# overwritten) and stops the demo at the end.
#
# FIRMS defaults to the demo's own 20000: at 3000 (seed 1) some arms, the control arm among them,
# lose 1 to 4 firms to attrition, and the service then withholds every estimate from a forsker
# (the count would show through n, df and the interval), so there is nothing to compare. FIRMS=3000
# makes the notebook fail with that reason.
#
# With IA_RCT_URL, IA_RCT_TOKEN (a forsker token) and IA_RCT_DEMO_DIR (the folder of a kept
# `ia-rct demo --dir`) all set, it uses that running service instead and starts nothing.
#
# Output folder: $IA_RCT_NOTEBOOK_OUT, else a new temporary folder (printed): the executed
# notebook researcher.executed.ipynb, the PNGs, did_twfe_comparison.csv, researcher-check.json,
# and the demo's folder and logs.
# Python: a venv in ${IA_RCT_NOTEBOOK_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/ia-rct-notebook-venv},
# made with ${PYTHON:-python3} (3.11) and notebooks/requirements-notebook.txt when missing or when
# the requirements changed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
started=$(date +%s)

# ---------------------------------------------------------------------------------------- venv
venv="${IA_RCT_NOTEBOOK_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/ia-rct-notebook-venv}"
req="$here/requirements-notebook.txt"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" || "$(cat "$venv/.requirements.sha256" 2>/dev/null || true)" != "$want" ]]; then
    echo "setting up the notebook's Python in $venv (notebooks/requirements-notebook.txt)"
    mkdir -p "$(dirname "$venv")"
    "${PYTHON:-python3}" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
    echo "$want" >"$venv/.requirements.sha256"
fi

out="${IA_RCT_NOTEBOOK_OUT:-}"
if [[ -z "$out" ]]; then
    out="$(mktemp -d "${TMPDIR:-/tmp}/ia-rct-notebook-XXXXXX")"
fi
mkdir -p "$out"
out="$(cd "$out" && pwd)"
export IA_RCT_NOTEBOOK_OUT="$out"

# ---------------------------------------------------------------------------------------- service
demo_pid=""
cleanup() {
    if [[ -n "$demo_pid" ]]; then
        kill "$demo_pid" 2>/dev/null || true
        wait "$demo_pid" 2>/dev/null || true
        demo_pid=""
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -n "${IA_RCT_URL:-}" && -n "${IA_RCT_TOKEN:-}" && -n "${IA_RCT_DEMO_DIR:-}" ]]; then
    echo "using the running service at $IA_RCT_URL (IA_RCT_URL, IA_RCT_TOKEN, IA_RCT_DEMO_DIR set)"
else
    bin="${IA_RCT_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/ia-rct}"
    if [[ ! -x "$bin" ]]; then
        echo "no ia-rct binary at $bin (set IA_RCT_BIN, or build it: cargo build --release)" >&2
        exit 1
    fi
    demo_dir="$out/demo"
    mkdir -p "$demo_dir"
    echo "starting: $bin demo --serve --firms ${FIRMS:-20000} --dir $demo_dir --bind 127.0.0.1:0"
    "$bin" demo --serve --firms "${FIRMS:-20000}" --dir "$demo_dir" --bind 127.0.0.1:0 \
        >"$out/demo.stdout" 2>"$out/demo.stderr" &
    demo_pid=$!
    demo_started=$(date +%s)
    deadline=$(($(date +%s) + ${DEMO_TIMEOUT:-900}))
    until grep -qx 'ready' "$out/demo.stdout" 2>/dev/null; do
        if ! kill -0 "$demo_pid" 2>/dev/null; then
            wait "$demo_pid" && rc=0 || rc=$?
            demo_pid=""
            echo "the demo exited (code $rc) before printing 'ready'; its stderr ends:" >&2
            tail -n 30 "$out/demo.stderr" >&2
            exit 1
        fi
        if (($(date +%s) > deadline)); then
            echo "the demo printed no 'ready' within ${DEMO_TIMEOUT:-900} s ($out/demo.stderr)" >&2
            exit 1
        fi
        sleep 1
    done
    url="$(sed -n 's/^serving \(http[^ ]*\)$/\1/p' "$out/demo.stdout" | head -n 1)"
    token="$(sed -n 's/^token forsker \([^ ]*\)$/\1/p' "$out/demo.stdout" | head -n 1)"
    if [[ -z "$url" || -z "$token" ]]; then
        echo "the demo's stdout has no 'serving <url>' or 'token forsker <token>' line:" >&2
        grep -v '^token ' "$out/demo.stdout" >&2 || true
        exit 1
    fi
    echo "demo ready after $(($(date +%s) - demo_started)) s: $url (pid $demo_pid)"
    export IA_RCT_URL="$url" IA_RCT_TOKEN="$token" IA_RCT_DEMO_DIR="$demo_dir"
fi

# ---------------------------------------------------------------------------------------- notebook
export IA_RCT_NOTEBOOKS_DIR="$here" JUPYTER_PREFER_ENV_PATH=1 MPLBACKEND=Agg
echo "running notebooks/researcher.ipynb -> $out/researcher.executed.ipynb"
rm -f "$out/researcher-check.json"
rc=0
"$venv/bin/jupyter" nbconvert --to notebook --execute \
    --ExecutePreprocessor.timeout=600 --ExecutePreprocessor.kernel_name=python3 \
    --output-dir "$out" --output researcher.executed.ipynb "$here/researcher.ipynb" || rc=$?

if [[ -f "$out/researcher-check.json" ]]; then
    "$venv/bin/python" - "$out/researcher-check.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"did_twfe CR1 rows compared with pyfixest: {r['rows_compared']} (CR2 rows not compared: "
      f"{r['cr2_rows_not_compared']}); notebook {r['notebook_seconds']} s, pyfixest "
      f"{r['pyfixest_seconds']} s")
for k, v in r["max_rel_diff"].items():
    print(f"  max rel diff {k:<10} {v:.3e}")
for p in r["problems"]:
    print("  FAILED: " + p)
EOF
fi
echo "total $(($(date +%s) - started)) s; output in $out"
if ((rc != 0)); then
    echo "FAILED: the notebook did not run through (exit $rc); see above and $out" >&2
    exit "$rc"
fi
echo "OK"
