#!/usr/bin/env bash
# scripts/bench-backup.sh: wall time of `agentbus backup` and of a verified restore
# (`agentbus restore --verify`) for a ledger of BENCH_BACKUP_JOBS jobs (default 1,000,000)
# with one attempt, two history rows and one event per job.
#
# Environment: DATABASE_URL (default: scripts/pg-local.sh; databases agentbus_bench_backup
# and agentbus_bench_restore are created next to it and dropped at the end),
# AGENTBUS_BIN_DIR, BENCH_BACKUP_JOBS.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Build and run from one place, wherever CARGO_TARGET_DIR points (default: target/).
export CARGO_TARGET_DIR=$(realpath -m "${CARGO_TARGET_DIR:-$root/target}")
cd "$root"
base=${DATABASE_URL:-$(scripts/pg-local.sh)}
jobs=${BENCH_BACKUP_JOBS:-1000000}
if [ -n "${AGENTBUS_BIN_DIR:-}" ]; then
  export PATH="$AGENTBUS_BIN_DIR:$PATH"
else
  cargo build --release --quiet
  export PATH="$CARGO_TARGET_DIR/release:$PATH"
fi
src=${base%/*}/agentbus_bench_backup
dst=${base%/*}/agentbus_bench_restore
work=$(mktemp -d)
cleanup() {
  rm -rf "$work"
  psql "$base" -Xqc "drop database if exists agentbus_bench_backup with (force)" \
    -c "drop database if exists agentbus_bench_restore with (force)" > /dev/null 2>&1 || true
}
trap cleanup EXIT
psql "$base" -Xq -c "drop database if exists agentbus_bench_backup with (force)" \
  -c "drop database if exists agentbus_bench_restore with (force)" \
  -c "create database agentbus_bench_backup" -c "create database agentbus_bench_restore" > /dev/null
export AGENTBUS_DATABASE_URL=$src
agentbus migrate > /dev/null
t0=$(date +%s)
psql "$src" -Xq <<SQL
set session_replication_role = replica;
insert into jobs (id, namespace, target_agent, job_type, subject, status, summary, attempt_count, created_at, updated_at, completed_at)
select md5(g::text)::uuid, 'bench', 'agent-' || (g % 50), 'reactive', 'job ' || g, 'succeeded', 'done ' || g, 1,
       now() - (g % 10000) * interval '1 minute', now() - (g % 10000) * interval '1 minute',
       now() - (g % 10000) * interval '1 minute' + interval '30 seconds'
from generate_series(1, $jobs) g;
insert into job_attempts (job_id, attempt_no, dispatcher_id, status, started_at, finished_at)
select md5(g::text)::uuid, 1, 'bench', 'succeeded', now() - (g % 10000) * interval '1 minute', now()
from generate_series(1, $jobs) g;
insert into job_history (job_id, namespace, from_status, to_status, attempt_no, actor, reason)
select md5(g::text)::uuid, 'bench', s.f::job_status, s.t::job_status, 1, 'bench', null
from generate_series(1, $jobs) g, (values ('queued', 'leased'), ('running', 'succeeded')) s(f, t);
insert into events (namespace, topic, source_agent, source_job_id, payload)
select 'bench', 'bench.done', 'agent-' || (g % 50), md5(g::text)::uuid, jsonb_build_object('n', g)
from generate_series(1, $jobs) g;
set session_replication_role = origin;
vacuum analyze;
SQL
filled=$(( $(date +%s) - t0 ))
size=$(psql "$src" -XAtc "select pg_size_pretty(pg_database_size(current_database()))")
s0=$(date +%s.%N)
agentbus backup --to "$work/backups" --format json > "$work/backup.json"
s1=$(date +%s.%N)
dump=$(python3 -c "import json; m=json.load(open('$work/backup.json'))['manifest']; print('$work/backups/' + m['file'])")
bytes=$(stat -c %s "$dump")
r0=$(date +%s.%N)
agentbus restore --from "$dump" --into "$dst" --verify --format json > "$work/restore.json"
r1=$(date +%s.%N)
checks=$(python3 -c "import json; r=json.load(open('$work/restore.json')); print(len(r['checks']), 'checks,', 'all agree' if r['ok'] else 'FAILED')")
echo "bench-backup: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(psql "$src" -XAtc 'show server_version'), $(pg_dump --version), binaries ${AGENTBUS_BIN_DIR:-target/release (built here)}"
echo "ledger: $jobs jobs, $jobs attempts, $((2 * jobs)) history rows, $jobs events; database $size (filled in ${filled}s)"
echo "  backup (pg_dump -Fc + manifest)      $(python3 -c "print(round($s1 - $s0, 1))")s   dump $(( bytes / 1048576 )) MiB"
echo "  restore --verify (one transaction)   $(python3 -c "print(round($r1 - $r0, 1))")s   $checks"
