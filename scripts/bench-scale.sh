#!/usr/bin/env bash
# scripts/bench-scale.sh: does a call cost the same on a ledger of 10,000 finished jobs as on
# one of 5,000,000?
#
#   scripts/bench-scale.sh                         # 10k, 100k, 1M, 5M
#   SIZES="10000 100000" REPS=9 scripts/bench-scale.sh
#
# A scratch database (agentbus_bench_scale, next to the one scripts/pg-local.sh finds; dropped
# at the end) is grown to each size in turn with finished jobs in realistic ratios: per job
# one attempt (one in ten has two), three history rows and one event; 20 agents; 90 %
# succeeded, 5 % dead, 5 % cancelled; one job finished every 6 seconds going back in time, so
# the last hour holds the same 600 jobs at every size (a bigger ledger is a longer history,
# not a busier fleet). At each size, after VACUUM ANALYZE, every command below runs REPS
# times as a fresh process (what an agent or operator pays: start, connect, query, exit) and
# the median wall time is printed:
#
#   enqueue-job, claim-jobs (one ready job among the finished ones), complete-job, status,
#   health, audit, list-jobs --since 1h, trace (of a job from the middle of the history)
#
# After each fill: VACUUM ANALYZE, then a CHECKPOINT, so the fill's writes are done before
# anything is timed. Then the largest/smallest ratio per command (the target: within 1.2).
# Nothing is asserted.
# Bloat under claim/complete churn is measured by scripts/bench-bloat.sh.
#
# Environment: DATABASE_URL (default: scripts/pg-local.sh), SIZES, REPS (default 15),
# AGENTBUS_BIN_DIR (default: a release build made here), KEEP=1 keeps the database,
# BENCH_WHAT_IF=file.sql runs that file after the migrations (scripts/bench-what-if/).
set -euo pipefail
# A what-if file named relative to where the script was started from.
if [ -n "${BENCH_WHAT_IF:-}" ]; then BENCH_WHAT_IF=$(realpath -- "$BENCH_WHAT_IF"); export BENCH_WHAT_IF; fi
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Build and run from one place, wherever CARGO_TARGET_DIR points (default: target/).
export CARGO_TARGET_DIR=$(realpath -m "${CARGO_TARGET_DIR:-$root/target}")
cd "$root"
base=${DATABASE_URL:-$(scripts/pg-local.sh)}
sizes=${SIZES:-10000 100000 1000000 5000000}
reps=${REPS:-15}
if [ -n "${AGENTBUS_BIN_DIR:-}" ]; then
  bin="$AGENTBUS_BIN_DIR/agentbus"
else
  cargo build --release --quiet --bin agentbus
  bin="$CARGO_TARGET_DIR/release/agentbus"
fi
db=agentbus_bench_scale
url=${base%/*}/$db
export PGOPTIONS="-c client_min_messages=warning"
cleanup() {
  [ "${KEEP:-}" = 1 ] || psql "$base" -Xqc "drop database if exists $db with (force)" > /dev/null 2>&1 || true
}
trap cleanup EXIT
psql "$base" -Xq -c "drop database if exists $db with (force)" -c "create database $db" > /dev/null
AGENTBUS_DATABASE_URL=$url "$bin" migrate > /dev/null
if [ -n "${BENCH_WHAT_IF:-}" ]; then
  echo "what-if: $BENCH_WHAT_IF run after the migrations (not the schema agentbus ships)"
  psql "$url" -Xq -v ON_ERROR_STOP=1 -f "$BENCH_WHAT_IF" > /dev/null
fi

# Adds finished jobs numbered from $1 + 1 to $2 (job g finished g * 6 seconds before now).
grow() {
  psql "$url" -Xq -v ON_ERROR_STOP=1 -v from="$1" -v to="$2" <<'SQL'
set session_replication_role = replica;
set synchronous_commit = off;
create temporary table g as
  select g, md5('bench-scale' || g)::uuid as id,
         now() - interval '2 minutes' - g * interval '6 seconds' as done,
         case when g % 20 = 0 then 'dead' when g % 20 = 1 then 'cancelled' else 'succeeded' end as st
    from generate_series(:from + 1, :to) g;
insert into jobs (id, namespace, target_agent, job_type, subject, status, summary, payload, result,
                  attempt_count, created_at, updated_at, completed_at, run_after, flow_key)
select id, 'bench', 'agent-' || (g % 20), 'reactive', 'bench job ' || g, st::job_status,
       'finished ' || g, jsonb_build_object('account', 'acct-' || (g % 997), 'n', g),
       jsonb_build_object('ok', st = 'succeeded'), 1 + (g % 10 = 0)::int,
       done - interval '90 seconds', done, done, done - interval '90 seconds', 'flow-' || (g / 5)
  from g;
insert into job_attempts (job_id, attempt_no, dispatcher_id, status, started_at, finished_at, wake_mode)
select id, n, 'sup-' || (g % 3), case when n = 1 + (g % 10 = 0)::int
                                       then (case st when 'succeeded' then 'succeeded' when 'dead' then 'failed' else 'cancelled' end)
                                       else 'failed' end::attempt_status,
       done - interval '60 seconds', done, 'hook'
  from g, generate_series(1, 1 + (g % 10 = 0)::int) n;
insert into job_history (job_id, namespace, from_status, to_status, attempt_no, actor, reason, created_at)
select id, 'bench', s.f::job_status, coalesce(s.t, st)::job_status, 1, 'bench', s.why, done - s.ago
  from g, (values (null, 'queued', 'enqueued', interval '90 seconds'),
                  ('queued', 'leased', 'claimed', interval '60 seconds'),
                  ('leased', null, 'closed', interval '0 seconds')) s(f, t, why, ago);
insert into events (namespace, topic, source_agent, source_job_id, payload, created_at)
select 'bench', 'work.done', 'agent-' || (g % 20), id, jsonb_build_object('n', g), done from g;
SQL
  psql "$url" -Xq -c "vacuum analyze" > /dev/null
  # The fill leaves gigabytes of dirty pages and WAL behind it: write them out now, so no
  # checkpoint they start runs while this size is timed. CHECKPOINT needs a superuser or
  # pg_checkpoint; without either the timings start after a pause.
  psql "$url" -Xq -c "checkpoint" > /dev/null 2>&1 || sleep 30
}

results=$(mktemp)
have=0
for n in $sizes; do
  t0=$(date +%s)
  grow "$have" "$n"
  have=$n
  size=$(psql "$url" -XAtc "select pg_size_pretty(pg_database_size(current_database()))")
  echo "size $n: filled in $(( $(date +%s) - t0 ))s, database $size" >&2
  BIN="$bin" URL="$url" N="$n" REPS="$reps" python3 - >> "$results" <<'PY'
import json, os, statistics, subprocess, time

bin_, url, n, reps = os.environ["BIN"], os.environ["URL"], int(os.environ["N"]), int(os.environ["REPS"])
env = dict(os.environ, AGENTBUS_DATABASE_URL=url, AGENTBUS_NAMESPACE="bench")

def run(*args):
    t0 = time.perf_counter()
    out = subprocess.run([bin_, *args, "--format", "json"], env=env, capture_output=True, text=True)
    dt = (time.perf_counter() - t0) * 1000
    if out.returncode not in (0, 1, 2) or (out.returncode != 0 and "audit" not in args and "health" not in args):
        raise SystemExit(f"{args}: exit {out.returncode}: {out.stderr}")
    return dt, out.stdout

times = {k: [] for k in ["enqueue-job", "claim-jobs", "complete-job", "status", "health",
                         "audit", "list-jobs --since 1h", "trace"]}
middle = subprocess.run(["psql", url, "-XAtc", f"select md5('bench-scale' || {n // 2})::uuid"],
                        capture_output=True, text=True, check=True).stdout.strip()
for i in range(reps):
    dt, out = run("enqueue-job", "--target-agent", "hot", "--subject", f"scale {n} {i}")
    times["enqueue-job"].append(dt)
    dt, out = run("claim-jobs", "--lease-owner", "bench", "--limit", "1")
    times["claim-jobs"].append(dt)
    job = json.loads(out)[0]
    dt, _ = run("complete-job", job["id"], "--lease-token", job["lease_token"])
    times["complete-job"].append(dt)
    for name, args in [("status", ["status"]), ("health", ["health"]), ("audit", ["audit"]),
                       ("list-jobs --since 1h", ["list-jobs", "--since", "1h"]),
                       ("trace", ["trace", middle])]:
        dt, _ = run(*args)
        times[name].append(dt)
print(json.dumps({"n": n, "median_ms": {k: statistics.median(v) for k, v in times.items()}}))
PY
done

echo "bench-scale: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(psql "$url" -XAtc 'show server_version'), shared_buffers $(psql "$url" -XAtc 'show shared_buffers'), binaries ${AGENTBUS_BIN_DIR:-target/release (built here)}; median of $reps fresh processes each, in ms"
python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
cmds = list(rows[0]["median_ms"])
print(f"{'command':22}" + "".join(f"{r['n']:>11,}" for r in rows) + "   max/min")
for c in cmds:
    v = [r["median_ms"][c] for r in rows]
    print(f"{c:22}" + "".join(f"{x:11.1f}" for x in v) + f"   {max(v) / min(v):7.2f}")
PY
rm -f "$results"
