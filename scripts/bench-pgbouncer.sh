#!/usr/bin/env bash
# scripts/bench-pgbouncer.sh: 200 agents at once, each closing jobs in a loop (enqueue-job,
# claim-jobs, complete-job: three fresh agentbus processes per job), directly against
# PostgreSQL and then through PgBouncer in transaction mode (scripts/pgbouncer-local.sh,
# Debian's package, a server pool of $POOL).
#
#   scripts/bench-pgbouncer.sh                  # 200 agents, 30 s each way
#   AGENTS=100 SECONDS_EACH=20 scripts/bench-pgbouncer.sh
#
# Runs: direct (the URL as given: TLS when the server offers it), direct without TLS (as the
# clients reach PgBouncer here, on loopback), through PgBouncer. Prints per run: jobs closed per second, calls per second, the peak number of server
# connections to the database (sampled from pg_stat_activity every 100 ms), and the calls
# that failed, by first line of error. Nothing is asserted. Environment: DATABASE_URL
# (default: scripts/pg-local.sh; a database agentbus_bench_pgbouncer is made and dropped),
# AGENTS (200), SECONDS_EACH (30), POOL (20), AGENTBUS_BIN_DIR (default: a release build).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Build and run from one place, wherever CARGO_TARGET_DIR points (default: target/).
export CARGO_TARGET_DIR=$(realpath -m "${CARGO_TARGET_DIR:-$root/target}")
cd "$root"
base=${DATABASE_URL:-$(scripts/pg-local.sh)}
agents=${AGENTS:-200}
seconds=${SECONDS_EACH:-30}
pool=${POOL:-20}
if [ -n "${AGENTBUS_BIN_DIR:-}" ]; then
  bin="$AGENTBUS_BIN_DIR/agentbus"
else
  cargo build --release --quiet --bin agentbus
  bin="$CARGO_TARGET_DIR/release/agentbus"
fi
db=agentbus_bench_pgbouncer
direct=${base%/*}/$db
work=$(mktemp -d)
chmod 755 "$work"
cleanup() {
  scripts/pgbouncer-local.sh stop "$work/bouncer" || true
  psql "$base" -Xqc "drop database if exists $db with (force)" > /dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
psql "$base" -Xq -c "drop database if exists $db with (force)" -c "create database $db" > /dev/null
AGENTBUS_DATABASE_URL=$direct "$bin" migrate > /dev/null
pooled=$(AGENTBUS_PGBOUNCER_POOL=$pool scripts/pgbouncer-local.sh start "$direct" "$work/bouncer" transaction)

run() { # label url pool_mode
  BIN="$bin" URL="$2" MODE="$3" DIRECT="$direct" AGENTS="$agents" SECONDS_EACH="$seconds" LABEL="$1" python3 - <<'PY'
import collections, json, os, subprocess, threading, time

bin_, url, mode, direct = os.environ["BIN"], os.environ["URL"], os.environ["MODE"], os.environ["DIRECT"]
agents, seconds, label = int(os.environ["AGENTS"]), float(os.environ["SECONDS_EACH"]), os.environ["LABEL"]
env = dict(os.environ, AGENTBUS_DATABASE_URL=url, AGENTBUS_POOL_MODE=mode, AGENTBUS_NAMESPACE=label)
env.pop("PGOPTIONS", None)
stop = time.monotonic() + seconds
lock = threading.Lock()
closed, calls, errors = 0, 0, collections.Counter()

def call(*args):
    global calls
    out = subprocess.run([bin_, *args, "--format", "json"], env=env, capture_output=True, text=True)
    with lock:
        calls += 1
        if out.returncode != 0:
            first = (out.stderr.strip().splitlines() or ["exit %d" % out.returncode])[0]
            errors[first[:110]] += 1
    return out

def agent(n):
    global closed
    me = f"agent-{n}"
    while time.monotonic() < stop:
        if call("enqueue-job", "--target-agent", me, "--subject", "bench").returncode != 0:
            continue
        got = call("claim-jobs", "--lease-owner", me, "--target-agent", me, "--limit", "1")
        if got.returncode != 0:
            continue
        jobs = json.loads(got.stdout or "[]")
        if not jobs:
            continue
        if call("complete-job", jobs[0]["id"], "--lease-token", jobs[0]["lease_token"]).returncode == 0:
            with lock:
                closed += 1

peak = 0
def sample():
    global peak
    q = f"select count(*) from pg_stat_activity where datname = '{direct.rsplit('/', 1)[1]}'"
    while time.monotonic() < stop:
        r = subprocess.run(["psql", direct, "-XAtc", q], capture_output=True, text=True,
                           env={k: v for k, v in os.environ.items() if k != "PGOPTIONS"})
        if r.returncode == 0 and r.stdout.strip().isdigit():
            peak = max(peak, int(r.stdout.strip()))
        time.sleep(0.1)

threads = [threading.Thread(target=agent, args=(i,)) for i in range(agents)]
t0 = time.monotonic()
s = threading.Thread(target=sample); s.start()
for t in threads: t.start()
for t in threads: t.join()
s.join()
dt = time.monotonic() - t0
failed = sum(errors.values())
print(f"  {label:15} {closed / dt:8.1f} jobs/s  {calls / dt:8.1f} calls/s  peak server connections {peak:4}  "
      f"failed calls {failed} of {calls}")
for msg, n in errors.most_common(3):
    print(f"             {n:6} x {msg}")
PY
}

echo "bench-pgbouncer: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(psql "$direct" -XAtc 'show server_version'), max_connections $(psql "$direct" -XAtc 'show max_connections'), $(/usr/sbin/pgbouncer --version | head -n 1) transaction mode, pool $pool; $agents agents for ${seconds}s each way, each job = 3 fresh agentbus processes"
# Clients reach PgBouncer without TLS (loopback), so the direct run is also shown without it.
run direct "$direct" session
run direct-tls-off "$direct?sslmode=disable" session
run pgbouncer "$pooled" transaction
