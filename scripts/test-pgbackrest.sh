#!/usr/bin/env bash
# scripts/test-pgbackrest.sh: point-in-time recovery of an agentbus ledger with pgBackRest,
# tested end to end. It is also the reference configuration (README, "Backups and the
# restore drill"): WAL archived by archive_command into a local repository, a full backup,
# and a restore to a moment between two batches of jobs.
#
#   1. installs Debian's pgbackrest if it is missing (apt), makes a private PostgreSQL
#      cluster (as the postgres user: PostgreSQL refuses root) with WAL archiving on;
#   2. migrates agentbus into it, creates the stanza, takes a full backup;
#   3. enqueues three jobs, notes the time T, enqueues two more, archives the WAL;
#   4. stops the cluster, restores it to T (--type=time, promote), starts it, and checks
#      that exactly the three jobs before T are there and agentbus works on it.
#
# It stops what it started and removes its folder, whatever happens. Environment:
# AGENTBUS_BIN_DIR (binaries; default: a release build), PGBACKREST_TEST_PORT (54331).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Build and run from one place, wherever CARGO_TARGET_DIR points (default: target/).
export CARGO_TARGET_DIR=$(realpath -m "${CARGO_TARGET_DIR:-$root/target}")
cd "$root"
port=${PGBACKREST_TEST_PORT:-54331}
say() { printf '== %s\n' "$*"; }
die() { printf 'test-pgbackrest: error: %s\n' "$*" >&2; exit 1; }

if [ -n "${AGENTBUS_BIN_DIR:-}" ]; then
  bin=$AGENTBUS_BIN_DIR
else
  cargo build --release --quiet --bin agentbus
  bin=$CARGO_TARGET_DIR/release
fi

if ! command -v pgbackrest > /dev/null; then
  say "installing pgbackrest (Debian package)"
  [ "$(id -u)" -eq 0 ] || die "pgbackrest is missing and installing it needs root"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q pgbackrest > /dev/null 2>&1 || {
    DEBIAN_FRONTEND=noninteractive apt-get update -q > /dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q pgbackrest > /dev/null
  }
fi
pgbackrest version

pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
work=$(mktemp -d /tmp/agentbus-pgbackrest.XXXXXX)
chmod 0755 "$work"
data=$work/pg
conf=$work/pgbackrest.conf
cleanup() {
  if [ -f "$data/postmaster.pid" ]; then
    as_pg "$pgbin/pg_ctl" -D "$data" -m immediate stop > /dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
[ "$(id -u)" -eq 0 ] && chown postgres: "$work"

say "a private cluster on port $port with WAL archived by pgBackRest"
as_pg mkdir -p "$work/repo" "$work/log" "$work/lock" "$work/sock"
as_pg tee "$conf" > /dev/null <<CONF
[global]
repo1-path=$work/repo
repo1-retention-full=2
log-path=$work/log
lock-path=$work/lock
log-level-console=warn
start-fast=y

[agentbus]
pg1-path=$data
pg1-port=$port
pg1-socket-path=$work/sock
CONF
as_pg "$pgbin/initdb" -D "$data" -U postgres --auth=trust > /dev/null
as_pg tee -a "$data/postgresql.conf" > /dev/null <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$work/sock'
wal_level = replica
archive_mode = on
archive_command = 'pgbackrest --config=$conf --stanza=agentbus archive-push %p'
max_wal_senders = 3
CONF
as_pg "$pgbin/pg_ctl" -D "$data" -l "$work/log/postgres.log" -w start > /dev/null
url=postgres://postgres@127.0.0.1:$port/agentbus
as_pg "$pgbin/createdb" -h "$work/sock" -p "$port" agentbus
export AGENTBUS_DATABASE_URL=$url
"$bin/agentbus" migrate > /dev/null

say "stanza and a full backup"
as_pg pgbackrest --config="$conf" --stanza=agentbus stanza-create
as_pg pgbackrest --config="$conf" --stanza=agentbus check
as_pg pgbackrest --config="$conf" --stanza=agentbus --type=full backup
as_pg pgbackrest --config="$conf" --stanza=agentbus info

say "three jobs, the target time, two more jobs"
for i in 1 2 3; do "$bin/agentbus" enqueue-job --target-agent writer --subject "before $i" > /dev/null; done
sleep 1
target=$(psql "$url" -XAtc "select now()")
sleep 1
for i in 1 2; do "$bin/agentbus" enqueue-job --target-agent writer --subject "after $i" > /dev/null; done
[ "$("$bin/agentbus" list-jobs --limit 100 --get '[].id' | grep -c .)" -eq 5 ] || die "expected 5 jobs before the restore"
psql "$url" -XAtqc "select pg_switch_wal()" > /dev/null
as_pg pgbackrest --config="$conf" --stanza=agentbus check   # waits until the WAL is archived

say "stop, restore to $target, start"
as_pg "$pgbin/pg_ctl" -D "$data" -m fast -w stop > /dev/null
as_pg pgbackrest --config="$conf" --stanza=agentbus --delta --type=time "--target=$target" \
  --target-action=promote restore
as_pg "$pgbin/pg_ctl" -D "$data" -l "$work/log/postgres.log" -w start > /dev/null
deadline=$(( $(date +%s) + 60 ))
until [ "$(psql "$url" -XAtc 'select pg_is_in_recovery()' 2>/dev/null)" = f ]; do
  [ "$(date +%s)" -lt "$deadline" ] || die "recovery did not finish in 60 s: $(tail -n 5 "$work/log/postgres.log")"
  sleep 0.5
done

say "check: the jobs before the target, and only those"
subjects=$("$bin/agentbus" list-jobs --limit 100 --get '[].subject' | sort | tr '\n' ',')
[ "$subjects" = "before 1,before 2,before 3," ] || die "after the point-in-time restore the jobs are: $subjects"
"$bin/agentbus" enqueue-job --target-agent writer --subject "after the restore" > /dev/null
"$bin/agentbus" claim-jobs --lease-owner pitr-check --limit 1 --get '[].subject'
echo "test-pgbackrest: point-in-time restore to $target kept 3 of 5 jobs, and the ledger works: OK"
