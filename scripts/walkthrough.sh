#!/usr/bin/env bash
# The README's walk-through, as one script a test runs end to end against a real server
# (tests/api/walkthrough.rs), so the README cannot drift from what works.
#
#   cargo build --release
#   ./target/release/ia-rct serve &
#   scripts/walkthrough.sh
#
# runs it against http://localhost:8080 and ./ia-rct.db (use a fresh database: a trial id can be
# registered once).
# It makes a direktorat token with the command line (which writes to the service's database),
# simulates a register of 2,000 firms and their NAV statistics, ingests the statistics, registers
# protocols/nals-arbeidsformer.toml, enrolls the register, randomizes with the protocol's published
# demonstration seed, gives NAV Vestland a token over the API and reads Vestland's assignments as
# Vestland. Then it checks what anyone can check: the published assignment file re-derives offline
# from the protocol, the same register and statistics, and the seed (`ia-rct verify`), and the
# service enrolled exactly as many eligible firms as the offline `ia-rct assign` finds.
#
# Environment: IA_RCT_URL (default http://localhost:8080), IA_RCT (the binary, default
# target/release/ia-rct), IA_RCT_DATABASE_URL (the server's database, default sqlite://ia-rct.db),
# WORK (a folder for the files, default a new temporary one), FIRMS (default 2000).
# Needs bash and curl. `call METHOD PATH TOKEN STATUS [curl options]` below is curl with the
# bearer token, printing the status and failing on any other than STATUS; `field NAME` reads a
# field of the last response.
set -euo pipefail

URL="${IA_RCT_URL:-http://localhost:8080}"
IA_RCT="${IA_RCT:-target/release/ia-rct}"
export IA_RCT_DATABASE_URL="${IA_RCT_DATABASE_URL:-sqlite://ia-rct.db}"
WORK="${WORK:-$(mktemp -d)}"
FIRMS="${FIRMS:-2000}"
PROTOCOL="${PROTOCOL:-protocols/nals-arbeidsformer.toml}"
TRIAL=nals-arbeidsformer
SEED=nals-arbeidsformer-demo-wave-1

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'walk-through: FAILED: %s\n' "$*" >&2; exit 1; }
# call METHOD PATH TOKEN EXPECTED_STATUS [curl args...]: prints the body; fails on another status.
call() {
    local method=$1 path=$2 token=$3 expected=$4
    shift 4
    local auth=()
    [ -n "$token" ] && auth=(-H "Authorization: Bearer $token")
    local out status
    out=$(curl -sS -X "$method" "${auth[@]}" -w '\n%{http_code}' "$@" "$URL$path")
    status=${out##*$'\n'}
    body=${out%$'\n'*}
    printf '%s %s -> %s\n' "$method" "$path" "$status"
    [ "$status" = "$expected" ] || fail "$method $path answered $status, expected $expected: $body"
}
# field NAME: the first string or number value of a JSON field NAME in $body.
field() {
    printf '%s' "$body" | grep -o "\"$1\":\"[^\"]*\"\|\"$1\":[^,}\"]*" | head -n 1 \
        | sed 's/^"[^"]*"://; s/^"//; s/"$//'
}

step "the service is up and can write"
call GET /healthz "" 200
call GET /readyz "" 200
printf '%s\n' "$body"

step "a direktorat token, made on the command line (it writes to the service's database)"
TOKEN=$("$IA_RCT" token create --role direktorat --name "Direktoratet $(date +%s%N)")
call GET /v1/whoami "$TOKEN" 200
call GET /v1/tokens "" 401 # without a token: 401 in the error envelope, and a denied audit row

step "a token for NAV Vestland, over the API"
call POST /v1/tokens "$TOKEN" 201 -H 'Content-Type: application/json' \
    -d "{\"name\": \"NAV Vestland $(date +%s%N)\", \"role\": \"fylke\", \"fylke\": \"46\"}"
VESTLAND=$(field token)
[ -n "$VESTLAND" ] || fail "no token in the response: $body"

step "a register of $FIRMS firms and their NAV statistics (simulated: register.csv, statistics.csv)"
"$IA_RCT" simulate --firms "$FIRMS" --out "$WORK" --protocol "$PROTOCOL" >/dev/null
ls "$WORK"

step "NAV's statistics first, so that enrollment takes each firm's baseline from them"
call POST /v1/statistics "$TOKEN" 201 -H 'Content-Type: text/csv' --data-binary @"$WORK/statistics.csv"
call GET /v1/statistics/vintages "$TOKEN" 200

step "the protocol: draft, registered (hash fixed), enrolling"
call POST /v1/trials "$TOKEN" 201 -H 'Content-Type: application/toml' --data-binary @"$PROTOCOL"
call POST /v1/trials/$TRIAL/transitions "$TOKEN" 200 -H 'Content-Type: application/json' \
    -d '{"to":"registered"}'
call POST /v1/trials/$TRIAL/transitions "$TOKEN" 200 -H 'Content-Type: application/json' \
    -d '{"to":"enrolling"}'

step "enroll the register: eligibility per firm"
call POST /v1/trials/$TRIAL/enrollment "$TOKEN" 201 -H 'Content-Type: text/csv' \
    --data-binary @"$WORK/register.csv"
ELIGIBLE=$(field eligible)
printf 'eligible: %s\n' "$ELIGIBLE"

step "randomize with the protocol's published demonstration seed"
call POST /v1/trials/$TRIAL/randomize "$TOKEN" 201 -H 'Content-Type: application/json' \
    -d "{\"seed\":\"$SEED\"}"

step "NAV Vestland reads its own firms' assignments and acknowledges them"
call GET "/v1/trials/$TRIAL/assignments?format=csv" "$VESTLAND" 200
printf '%s\n' "$body" | head -n 3
call GET "/v1/trials/$TRIAL/assignments" "$VESTLAND" 200
FYLKER=$(printf '%s' "$body" | grep -o '"fylke":"[0-9]*"' | sort -u | tr '\n' ' ')
[ "$FYLKER" = '"fylke":"46" ' ] || fail "Vestland's assignments name these fylker: $FYLKER"
call POST /v1/trials/$TRIAL/acknowledgements "$VESTLAND" 201 -H 'Content-Type: application/json' \
    -d '{"wave":1}'
call GET "/v1/trials/$TRIAL/draws/1/assignment.csv" "$VESTLAND" 403

step "anyone can re-derive the draw: the published file, offline, from protocol, register, statistics and seed"
call GET "/v1/trials/$TRIAL/draws/1/assignment.csv" "$TOKEN" 200
printf '%s\n' "$body" >"$WORK/served-assignment.csv"
"$IA_RCT" verify --protocol "$PROTOCOL" --firms "$WORK/register.csv" --stats "$WORK/statistics.csv" \
    --seed "$SEED" --assignment "$WORK/served-assignment.csv"
"$IA_RCT" assign --protocol "$PROTOCOL" --firms "$WORK/register.csv" --stats "$WORK/statistics.csv" \
    --seed "$SEED" --out "$WORK/offline-assignment.csv" >/dev/null
OFFLINE=$(grep -vc '^#' "$WORK/offline-assignment.csv")
OFFLINE=$((OFFLINE - 1)) # the header row
[ "$OFFLINE" = "$ELIGIBLE" ] || fail "the service enrolled $ELIGIBLE eligible firms, offline assign $OFFLINE"
printf 'offline assign: %s eligible firms, as the service\n' "$OFFLINE"

step "the audit log, newest first: the denied call above is there"
call GET '/v1/audit?result=denied&limit=20' "$TOKEN" 200
printf '%s' "$body" | grep -q '"/v1/tokens"' || fail "the denied call is not in the audit log"

printf '\nwalk-through: ok (files in %s)\n' "$WORK"
