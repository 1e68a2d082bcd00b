#!/usr/bin/env bash
# scripts/bench-bloat.sh: how much the hot tables and their indexes grow over CYCLES
# enqueue -> claim -> complete cycles (default 1,000,000), with autovacuum at PostgreSQL's
# defaults, once normally and once while another session holds a snapshot open the whole
# time (a forgotten `BEGIN` in psql, a long report: the xmin horizon is pinned and vacuum
# can remove nothing that died after it).
#
# It makes its own PostgreSQL cluster (Debian's binaries, default settings, run as postgres,
# port $AGENTBUS_BLOAT_PORT, default 54352; removed at the end), because the server a test
# machine runs may have autovacuum off. The cycles run through pgbench (4 clients, one
# agent each) with the SQL the commands run: the insert of enqueue-job, claim_jobs() (which
# writes the attempt), and complete-job's two updates. The finished jobs stay (as they
# would until `agentbus prune`), so live rows grow by CYCLES either way; bloat is what the
# tables and indexes hold beyond that. Prints per run: the rate, and per table its size
# with live and dead tuples, then the sizes of the hot indexes of jobs.
# A held snapshot slows the cycles down as dead rows pile up (measured: 584 cycles/s without,
# 17 after 15 minutes with); RUN_SECONDS=N runs each for N seconds instead of CYCLES, and
# PIN_SECONDS=N only the run with the snapshot held (at 17 cycles/s, 1,000,000 would take
# 16 hours: `CYCLES=1000000 PIN_SECONDS=900` gives the full normal run and 15 minutes held).
# Environment: CYCLES, RUN_SECONDS, PIN_SECONDS, AGENTBUS_BIN_DIR.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Build and run from one place, wherever CARGO_TARGET_DIR points (default: target/).
export CARGO_TARGET_DIR=$(realpath -m "${CARGO_TARGET_DIR:-$root/target}")
cd "$root"
cycles=${CYCLES:-1000000}
clients=4
port=${AGENTBUS_BLOAT_PORT:-54352}
if [ -n "${AGENTBUS_BIN_DIR:-}" ]; then
  bin="$AGENTBUS_BIN_DIR/agentbus"
else
  cargo build --release --quiet --bin agentbus
  bin="$CARGO_TARGET_DIR/release/agentbus"
fi
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2> /dev/null | sort -V | tail -n 1)
[ -x "$pgbin/initdb" ] || { echo "bench-bloat: no PostgreSQL binaries under /usr/lib/postgresql" >&2; exit 1; }
work=$(mktemp -d)
chmod 755 "$work"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  [ -f "$work/pg/postmaster.pid" ] && as_pg "$pgbin/pg_ctl" -D "$work/pg" -m immediate stop > /dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/pg"
[ "$(id -u)" = 0 ] && chown postgres "$work/pg"
as_pg "$pgbin/initdb" -D "$work/pg" -A trust -U postgres > /dev/null
printf "port = %s\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\n" "$port" "$work/pg" >> "$work/pg/postgresql.conf"
as_pg "$pgbin/pg_ctl" -D "$work/pg" -l "$work/pg/log" -w start > /dev/null
base="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
db=agentbus_bench_bloat
url="postgres://postgres@127.0.0.1:$port/$db?sslmode=disable"
export PGOPTIONS="-c client_min_messages=warning"
cat > "$work/cycle.sql" <<'SQL'
\set a :client_id
insert into jobs (namespace, target_agent, job_type, subject, payload) values ('bloat', 'agent-' || :a, 'bench', 'cycle', '{"n": 1}');
select id, lease_token from claim_jobs('bloat', 'bench-' || :client_id, 300, 1, 'agent-' || :a) \gset
update jobs set status = 'succeeded', summary = 'done', lease_owner = null, leased_until = null, completed_at = now() where id = ':id'::uuid and job_in_flight(status);
update job_attempts set status = 'succeeded', finished_at = now(), summary = 'done' where job_id = ':id'::uuid and lease_token = ':lease_token'::uuid;
SQL

report() {
  psql "$url" -XAtF ' ' -c "
    select format('    %-14s %9s  live %9s  dead %8s', c.relname, pg_size_pretty(pg_total_relation_size(c.oid)),
                  s.n_live_tup, s.n_dead_tup)
      from pg_class c join pg_stat_user_tables s on s.relid = c.oid
     where c.relname in ('jobs', 'job_attempts', 'job_history', 'events')
     order by c.relname" \
    -c "select format('    index %-30s %9s', indexrelname, pg_size_pretty(pg_relation_size(indexrelid)))
          from pg_stat_user_indexes where relname = 'jobs'
           and indexrelname in ('jobs_pkey', 'jobs_ready_idx', 'jobs_lease_idx', 'jobs_created_idx',
                                'jobs_open_by_agent_idx', 'jobs_live_lease_token_idx', 'jobs_finished_idx')
         order by pg_relation_size(indexrelid) desc"
}

run() { # label pin
  psql "$base" -Xq -c "drop database if exists $db with (force)" -c "create database $db" > /dev/null
  AGENTBUS_DATABASE_URL=$url "$bin" migrate > /dev/null
  if [ "$2" = pin ]; then
    # A session that took a snapshot and never ends its transaction.
    PGAPPNAME=bench-bloat-pin psql "$url" -Xq > /dev/null 2>&1 <<'SQL' &
begin isolation level repeatable read;
select count(*) from jobs;
select pg_sleep(86400);
SQL
    sleep 1
  fi
  local limit=(-t $(( cycles / clients )))
  [ -n "${RUN_SECONDS:-}" ] && limit=(-T "$RUN_SECONDS")
  [ "$2" = pin ] && [ -n "${PIN_SECONDS:-}" ] && limit=(-T "$PIN_SECONDS")
  out=$(pgbench -n -c "$clients" -j 2 "${limit[@]}" -f "$work/cycle.sql" "$url" 2>&1) || { echo "$out" >&2; exit 1; }
  tps=$(echo "$out" | awk '/^tps/ {print int($3)}' | head -n 1)
  done_cycles=$(echo "$out" | awk -F': ' '/actually processed/ {split($2, a, "/"); print a[1]}')
  pinned=$(psql "$url" -XAtc "select count(*) from pg_stat_activity where application_name = 'bench-bloat-pin' and backend_xmin is not null")
  psql "$url" -XAtc "select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'bench-bloat-pin'" > /dev/null
  psql "$url" -Xqc "select pg_stat_force_next_flush()" > /dev/null 2>&1 || true
  sleep 1
  echo "  $1: $done_cycles cycles at $tps cycles/s (sessions pinning the xmin horizon: $pinned)"
  report
}

echo "bench-bloat: $(nproc) cores, $(psql "$base" -XAtc 'show server_version'), autovacuum $(psql "$base" -XAtc 'show autovacuum') (naptime $(psql "$base" -XAtc 'show autovacuum_naptime'), scale factor $(psql "$base" -XAtc 'show autovacuum_vacuum_scale_factor')), pgbench $clients clients"
run "no long transaction" none
run "a snapshot held open throughout" pin
