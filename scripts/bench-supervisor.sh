#!/usr/bin/env bash
# scripts/bench-supervisor.sh — dispatch latency and drain rate of agentbus-supervisor.
#
#   scripts/bench-supervisor.sh                       # 300 latency jobs, 10,000 drain jobs
#   LATENCY_JOBS=500 DRAIN_JOBS=2000 AGENTS=10 CONCURRENCY=4 scripts/bench-supervisor.sh
#
# Release build, against the server scripts/pg-local.sh finds (scratch databases
# agentbus_bench_* are created and dropped). A fake OpenClaw gateway on 127.0.0.1 plays
# the agents. Prints the machine, the settings, and:
#   dispatch latency   enqueue start -> hook request received, one job at a time with the
#                      supervisor idle (p50/p95/p99/max); targets p50 <= 5 ms, p95 <= 20 ms
#   drain, hook mode   jobs/s with the fake gateway completing each job via the library
#   drain, exec mode   jobs/s with one `agentbus complete-job` process per job
# Nothing is asserted; see examples/bench_supervisor.rs for the method.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
LATENCY_JOBS=${LATENCY_JOBS:-300}
DRAIN_JOBS=${DRAIN_JOBS:-10000}
AGENTS=${AGENTS:-10}
CONCURRENCY=${CONCURRENCY:-1}

cargo build --release --quiet --bins --example bench_supervisor
base=$(scripts/pg-local.sh)
admin="${base%/*}/postgres"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(free -g | awk '/Mem:/{print $2}') GiB"
echo "postgres: $(psql "$admin" -XAtqc 'show server_version' 2>/dev/null || echo unknown) at ${admin%/*}"
echo "settings: release build, $AGENTS agents, max_concurrency $CONCURRENCY per agent, supervisor defaults otherwise (claim batch 16, max in flight 64)"
target/release/examples/bench_supervisor "$admin" "$PWD/target/release/agentbus-supervisor" \
  "$PWD/target/release/agentbus" "$LATENCY_JOBS" "$DRAIN_JOBS" "$AGENTS" "$CONCURRENCY"
