#!/usr/bin/env bash
# Regenerates every figure of docs/PERFORMANCE.md in one run, on this machine, and prints them
# (Markdown tables for the store benchmarks, criterion's estimates for routing). Takes about
# 10 minutes on the 2-core development machine. The PostgreSQL benchmark reads
# CHAT_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test) and creates and drops
# its own schemas.
#
#   benches/run.sh 2>&1 | tee /tmp/performance.txt
#
# Knobs: REPLAY_EVENTS (default 1000000), APPEND_SECONDS and PEER_SECONDS (seconds per case,
# default 3); the service load test: LOAD_VISITORS (idle visitor streams, default 9500),
# LOAD_AGENTS (20), LOAD_RATE (conversations/s, 200), LOAD_SECONDS (60), LOAD_QUICK=1 for a
# 5-second sanity run. The load test needs about 10,000 open files in each of its two processes.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== commit $(git rev-parse --short HEAD), $(nproc) cores, $(free -h | awk '/Mem:/ {print $2}') memory, $(date -u '+%Y-%m-%d %H:%M UTC')"
cargo bench -p chat-benches --bench routing -- --warm-up-time 1 --measurement-time 3
cargo bench -p chat-benches --bench replay
cargo bench -p chat-benches --bench append
cargo bench -p chat-benches --bench peer
# The load test starts the real service binary, so build it first.
cargo build --release -p chat-service --bin chat-service
ulimit -n "$(ulimit -Hn)"
cargo bench -p chat-benches --bench load
