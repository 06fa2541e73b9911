#!/usr/bin/env bash
# Fuzzes the running service's OpenAPI document with schemathesis (issue #8): every operation is
# called with generated valid and invalid input, as an admin; the run fails on any 5xx answer.
#
#   scripts/fuzz-api.sh            # builds and starts the service on the memory store
#   FUZZ_MAX_EXAMPLES=50 FUZZ_MAX_TIME=600 scripts/fuzz-api.sh
#   FUZZ_BIN=target/debug/chat-service scripts/fuzz-api.sh   # a binary already built
#
# Needs python3 with pip (installs schemathesis if missing). Called by .ci/run after the tests,
# with the binary `cargo test --workspace` built (a `cargo build -p chat-service` would build the
# dependencies again with another feature set).
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${FUZZ_PORT:-18089}"
MAX_EXAMPLES="${FUZZ_MAX_EXAMPLES:-20}"
MAX_TIME="${FUZZ_MAX_TIME:-420}"
# The schemathesis of this python3 (its scripts directory need not be on PATH).
SCHEMATHESIS="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/schemathesis"
if [ ! -x "$SCHEMATHESIS" ]; then
    python3 -m pip install --quiet --disable-pip-version-check 'schemathesis>=4,<5'
fi
BIN="${FUZZ_BIN:-}"
if [ -z "$BIN" ]; then
    cargo build --quiet -p chat-service --bin chat-service
    BIN="${CARGO_TARGET_DIR:-target}/debug/chat-service"
fi
LOG="$(mktemp)"
# A generous visitor rate limit: the fuzzer is one visitor sending hundreds of requests.
CONFIG="$(mktemp --suffix=.toml)"
printf 'visitor_requests_per_minute = 100000\n' > "$CONFIG"
"$BIN" --store memory --listen "127.0.0.1:$PORT" --demo --config "$CONFIG" > "$LOG" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; rm -f "$CONFIG"' EXIT
for _ in $(seq 1 100); do
    grep -q '^API description' "$LOG" && break
    kill -0 $PID 2>/dev/null || { cat "$LOG"; exit 1; }
    sleep 0.2
done
PASSWORD="$(sed -n 's/^ *admin: login admin password \(.*\)$/\1/p' "$LOG")"
TOKEN="$(curl -sf -X POST "http://127.0.0.1:$PORT/api/agent/sign-in" \
    -H 'content-type: application/json' \
    -d "{\"login\":\"admin\",\"password\":\"$PASSWORD\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
# Operations that would lock the fuzzer out of the rest of the run (its own password, role,
# account) are still fuzzed: a 401/403 afterwards is not a 5xx and the check only looks for 5xx.
"$SCHEMATHESIS" run "http://127.0.0.1:$PORT/openapi.json" \
    --checks not_a_server_error \
    --header "Authorization: Bearer $TOKEN" \
    --header "Origin: http://127.0.0.1:$PORT" \
    --max-examples "$MAX_EXAMPLES" \
    --max-time "$MAX_TIME" \
    --workers 1 \
    --request-timeout 30 \
    --seed 1 \
    --suppress-health-check all \
    --warnings off
echo "fuzz: no 5xx; the service's /metrics says:"
curl -sf "http://127.0.0.1:$PORT/metrics" | grep -E '^chat_http_server_errors'
