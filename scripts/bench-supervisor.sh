#!/usr/bin/env bash
# scripts/bench-supervisor.sh — dispatch latency and drain rate of agentbus-supervisor, and
# graphile-worker's measured the same way on the same machine in the same run.
#
#   scripts/bench-supervisor.sh                       # 300 latency jobs, 10,000 drain jobs
#   LATENCY_JOBS=200 DRAIN_JOBS=2000,20000 AGENTS=10 CONCURRENCY=4 ROUNDS=2 scripts/bench-supervisor.sh
#   GRAPHILE=0 scripts/bench-supervisor.sh            # agentbus only (no npm)
#   BENCH_WHAT_IF=scripts/bench-what-if/strip-secondary.sql scripts/bench-supervisor.sh
#                                                     # a what-if schema (see that file)
#
# Release build, against the server scripts/pg-local.sh finds (scratch databases
# agentbus_bench_* are created and dropped). A fake OpenClaw gateway on 127.0.0.1 plays
# the agents. Prints the machine, the settings, and:
#   dispatch latency   enqueue start -> hook request received, one job at a time with the
#                      supervisor idle (p50/p95/p99/max); targets p50 <= 5 ms, p95 <= 20 ms
#   drain, hook mode   jobs/s with the fake gateway completing each job via the library
#                      (once per size in DRAIN_JOBS, a comma-separated list), then
#                      what each job cost: CPU of the whole machine (/proc/stat) and
#                      WAL records, bytes and flushes (pg_stat_wal), and the rows it
#                      wrote per table (pg_stat_user_tables of the drain's database)
#   drain, exec mode   jobs/s with one `agentbus complete-job` process per job (first size)
# then, unless GRAPHILE=0, graphile-worker (npm, pinned in scripts/bench-graphile/, with
# the Node it needs, installed under .agentbus/) measured with the same method: add_job
# start -> task function started, and a drain of no-op jobs at concurrency 1 and 10.
# ROUNDS repeats both, interleaved. Nothing is asserted; see
# examples/bench_supervisor.rs and scripts/bench-graphile/bench.mjs for the methods.
set -euo pipefail
# A what-if file named relative to where the script was started from.
if [ -n "${BENCH_WHAT_IF:-}" ]; then BENCH_WHAT_IF=$(realpath -- "$BENCH_WHAT_IF"); export BENCH_WHAT_IF; fi
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# Build and run from one place, wherever CARGO_TARGET_DIR points (default: target/).
export CARGO_TARGET_DIR=$(realpath -m "${CARGO_TARGET_DIR:-$PWD/target}")
LATENCY_JOBS=${LATENCY_JOBS:-300}
DRAIN_JOBS=${DRAIN_JOBS:-10000}
AGENTS=${AGENTS:-10}
CONCURRENCY=${CONCURRENCY:-1}
ROUNDS=${ROUNDS:-1}
GRAPHILE=${GRAPHILE:-1}

cargo build --release --quiet --bins --example bench_supervisor
# The supervisors the benchmark starts carry this run's id; an interrupted run (Ctrl-C, a
# timeout) would otherwise leave them working on the next run's scratch databases.
export BENCH_SUPERVISOR_ID=bench-$$
base=$(scripts/pg-local.sh)
admin="${base%/*}/postgres"
# (The id is a supervisor's last argument: anchored, bench-12 does not match bench-123.)
# An interrupted run also leaves its scratch databases: drop them (a finished run did).
cleanup() {
  pkill -TERM -f -- "--supervisor-id $BENCH_SUPERVISOR_ID\$" 2>/dev/null || true
  for db in agentbus_bench_latency agentbus_bench_hook agentbus_bench_exec agentbus_bench_graphile; do
    psql "$admin" -XAtqc "drop database if exists $db with (force)" >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT

gw=$PWD/.agentbus/bench-graphile
if [ "$GRAPHILE" = 1 ]; then
  if ! cmp -s scripts/bench-graphile/package.json "$gw/package.json" 2>/dev/null \
     || [ ! -x "$gw/node_modules/.bin/node" ]; then
    rm -rf "$gw"
    mkdir -p "$gw"
    cp scripts/bench-graphile/package.json "$gw/"
    (cd "$gw" && npm install --no-audit --no-fund --loglevel=error > /dev/null)
  fi
  cp scripts/bench-graphile/bench.mjs "$gw/"
fi

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(free -g | awk '/Mem:/{print $2}') GiB"
echo "postgres: $(psql "$admin" -XAtqc 'show server_version' 2>/dev/null || echo unknown) at ${admin%/*}"
echo "settings: release build, $AGENTS agents, max_concurrency $CONCURRENCY per agent, supervisor defaults otherwise (claim batch 16, max in flight 64)"
if [ "$GRAPHILE" = 1 ]; then
  echo "graphile-worker: $(sed -n 's/^ *"version": "\(.*\)",$/\1/p' "$gw/node_modules/graphile-worker/package.json") on Node $("$gw/node_modules/.bin/node" --version), defaults (its own pool, LISTEN/NOTIFY), task = a no-op"
fi
for round in $(seq 1 "$ROUNDS"); do
  [ "$ROUNDS" = 1 ] || echo "round $round of $ROUNDS"
  "$CARGO_TARGET_DIR"/release/examples/bench_supervisor "$admin" "$CARGO_TARGET_DIR/release/agentbus-supervisor" \
    "$CARGO_TARGET_DIR/release/agentbus" "$LATENCY_JOBS" "$DRAIN_JOBS" "$AGENTS" "$CONCURRENCY"
  if [ "$GRAPHILE" = 1 ]; then
    (cd "$gw" && node_modules/.bin/node bench.mjs "$admin" "$LATENCY_JOBS" "${DRAIN_JOBS%%,*}" 1 10) \
      || echo "graphile-worker: the run failed (above); the agentbus figures stand"
  fi
done
