#!/usr/bin/env bash
# scripts/bench-cli.sh — wall time of one agentbus call, as an agent pays it.
#
#   scripts/bench-cli.sh            # 300 calls of each
#   N=1000 scripts/bench-cli.sh
#
# Measures, each as a fresh process (connect, one transaction, exit), on a release build
# against the database scripts/pg-local.sh finds (a scratch database agentbus_bench is
# created and dropped):
#   psql -c 'select 1'         for scale: the cheapest thing a shell script can do
#   agentbus enqueue-job       interleaved with psql, so machine noise hits both alike
#   agentbus complete-job      on jobs claimed beforehand, with their lease tokens
# Prints median and p95 per command, the machine and the settings. Nothing is asserted;
# the target from issue 2 is enqueue-job median <= 1.5 x the psql median.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# Build and run from one place, wherever CARGO_TARGET_DIR points (default: target/).
export CARGO_TARGET_DIR=$(realpath -m "${CARGO_TARGET_DIR:-$PWD/target}")
N=${N:-300}

cargo build --release --quiet
bin="$CARGO_TARGET_DIR/release/agentbus"
base=$(scripts/pg-local.sh)
psql_cmd=$(command -v psql || ls /usr/lib/postgresql/*/bin/psql | sort -V | tail -n 1)
admin="${base%/*}/postgres"
bench_db=agentbus_bench
export PGOPTIONS="-c client_min_messages=warning"
"$psql_cmd" "$admin" -XAtqc "drop database if exists $bench_db with (force)" >/dev/null
"$psql_cmd" "$admin" -XAtqc "create database $bench_db" >/dev/null
url="${base%/*}/$bench_db"
trap '"$psql_cmd" "$admin" -XAtqc "drop database if exists $bench_db with (force)" >/dev/null 2>&1 || true' EXIT
DATABASE_URL="$url" "$bin" migrate >/dev/null

N="$N" BIN="$bin" URL="$url" PSQL="$psql_cmd" python3 - <<'PY'
import json, os, platform, statistics, subprocess, time

n = int(os.environ["N"])
bin_, url, psql = os.environ["BIN"], os.environ["URL"], os.environ["PSQL"]
env = dict(os.environ, DATABASE_URL=url)

def timed(argv):
    t0 = time.perf_counter()
    p = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    dt = (time.perf_counter() - t0) * 1000
    if p.returncode != 0:
        raise SystemExit(f"{argv[:2]} failed ({p.returncode}): {p.stderr.decode()}")
    return dt, p.stdout

# Warm-up: page cache, first-connection costs.
for _ in range(10):
    timed([psql, url, "-XAtqc", "select 1"])
    timed([bin_, "enqueue-job", "--target-agent", "warmup", "--subject", "warm"])

psql_ms, enqueue_ms, complete_ms = [], [], []
for i in range(n):
    dt, _ = timed([psql, url, "-XAtqc", "select 1"])
    psql_ms.append(dt)
    dt, _ = timed([bin_, "enqueue-job", "--target-agent", "bench", "--subject", f"bench {i}",
                   "--payload", '{"lead":42,"source":"bench"}'])
    enqueue_ms.append(dt)

_, out = timed([bin_, "claim-jobs", "--lease-owner", "bench", "--target-agent", "bench",
                "--limit", str(n), "--lease-seconds", "3600"])
claimed = json.loads(out)
for job in claimed:
    dt, _ = timed([bin_, "complete-job", job["id"], "--lease-token", job["lease_token"],
                   "--summary", "bench"])
    complete_ms.append(dt)

def p95(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]

def cpu():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"

server = subprocess.run([psql, url, "-XAtqc", "show server_version"], capture_output=True, text=True).stdout.strip()
host = url.split("@", 1)[-1].rsplit("/", 1)[0]
print(f"machine : {platform.node()} · {cpu()} · {os.cpu_count()} cpus · {platform.system()} {platform.release()}")
print(f"settings: release build · PostgreSQL {server} at {host} (loopback TCP) · {n} calls each, fresh process per call")
print(f"{'command':<34}{'median ms':>10}{'p95 ms':>10}")
for name, xs in [("psql -c 'select 1'", psql_ms), ("agentbus enqueue-job", enqueue_ms),
                 ("agentbus complete-job", complete_ms)]:
    print(f"{name:<34}{statistics.median(xs):>10.2f}{p95(xs):>10.2f}")
ratio = statistics.median(enqueue_ms) / statistics.median(psql_ms)
print(f"enqueue-job median / psql median = {ratio:.2f} (target <= 1.50)")
PY
