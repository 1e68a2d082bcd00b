#!/usr/bin/env bash
# scripts/test-pgbouncer.sh: agents through PgBouncer in transaction mode, the supervisor
# directly.
#
# Starts Debian's PgBouncer (scripts/pgbouncer-local.sh, transaction mode, a server pool of 5)
# in front of a scratch database, then checks:
#   1. every agent and operator command of a job's life works through it with
#      AGENTBUS_POOL_MODE=transaction (no session state across transactions, no prepared
#      statement landing on the wrong server session), and without that setting the
#      refusal says what to set;
#   2. the guardrails hold through it: an agent login closes its own job with its lease and
#      is refused another agent's (exit 77), because the lease rides in each transaction;
#   3. 40 agents at once, each enqueuing, claiming and closing 5 jobs through a pool of 5
#      server sessions: 200 jobs succeeded, no error;
#   4. a supervisor connected directly (it LISTENs) wakes exec agents whose commands go
#      through PgBouncer: 20 jobs succeeded; a supervisor told to use the pooler is refused.
# Stops what it started and drops its database. Environment: DATABASE_URL (default:
# scripts/pg-local.sh), AGENTBUS_PGBOUNCER_PORT (default 64320).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Build and run from one place, wherever CARGO_TARGET_DIR points (default: target/).
export CARGO_TARGET_DIR=$(realpath -m "${CARGO_TARGET_DIR:-$root/target}")
cd "$root"
say() { printf '== %s\n' "$*"; }
die() { printf 'test-pgbouncer: FAILED: %s\n' "$*" >&2; exit 1; }

base=${DATABASE_URL:-$(scripts/pg-local.sh)}
db=agentbus_pgbouncer
direct=${base%/*}/$db
work=$(mktemp -d)
chmod 755 "$work"
supervisor=
cleanup() {
  [ -n "$supervisor" ] && kill -TERM "$supervisor" 2> /dev/null && wait "$supervisor" 2> /dev/null
  scripts/pgbouncer-local.sh stop "$work/bouncer" || true
  psql "$base" -Xqc "drop database if exists $db with (force)" > /dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

cargo build --quiet --bin agentbus --bin agentbus-supervisor
bin=$CARGO_TARGET_DIR/debug
export PATH="$bin:$PATH"
export PGOPTIONS="-c client_min_messages=warning"
psql "$base" -Xq -c "drop database if exists $db with (force)" -c "create database $db" > /dev/null
AGENTBUS_DATABASE_URL=$direct agentbus migrate > /dev/null
AGENTBUS_DATABASE_URL=$direct agentbus roles install > /dev/null
login="pgbouncer_test_worker"
psql "$base" -Xqc "drop role if exists $login" > /dev/null
AGENTBUS_DATABASE_URL=$direct agentbus roles grant "$login" --as agent --namespace default --agent worker > /dev/null
trap 'cleanup; psql "$base" -Xqc "drop role if exists $login" > /dev/null 2>&1 || true' EXIT

pooled=$(AGENTBUS_PGBOUNCER_POOL=5 scripts/pgbouncer-local.sh start "$direct" "$work/bouncer" transaction "$login")
export AGENTBUS_DATABASE_URL=$pooled AGENTBUS_POOL_MODE=transaction
field() { python3 -c 'import json,sys; v=json.load(sys.stdin); print(eval("v" + sys.argv[1]))' "$1"; }

say "1. a job's life through PgBouncer (transaction mode)"
id=$(agentbus enqueue-job --target-agent worker --subject "through the pooler" --payload '{"n": 1}' --format json | field '["id"]')
agentbus show-job "$id" --format json > /dev/null
agentbus list-jobs --since 1h --format json > /dev/null
claim=$(agentbus claim-jobs --lease-owner tester --target-agent worker --format json)
[ "$(echo "$claim" | field '[0]["id"]')" = "$id" ] || die "claimed something else: $claim"
token=$(echo "$claim" | field '[0]["lease_token"]')
agentbus mark-running-job "$id" --lease-token "$token" > /dev/null
agentbus renew-job-lease "$id" --lease-token "$token" > /dev/null
agentbus emit-event --topic work.progress --source-job-id "$id" > /dev/null
agentbus complete-job "$id" --lease-token "$token" --summary done > /dev/null
[ "$(agentbus show-job "$id" --format json | field '["status"]')" = succeeded ] || die "job $id did not succeed"
second=$(agentbus enqueue-job --target-agent worker --subject "blocked then retried" --format json | field '["id"]')
token=$(agentbus claim-jobs --lease-owner tester --target-agent worker --format json | field '[0]["lease_token"]')
agentbus block-job "$second" --lease-token "$token" --blocked-reason "needs a human" > /dev/null
agentbus unblock-job "$second" --note "answered" > /dev/null
agentbus cancel-job "$second" --reason "not needed" > /dev/null
for c in "status" "trace $id" "events --since 1h" "list-agents" "digest ideas" "list-ideas"; do
  # shellcheck disable=SC2086
  agentbus $c --format json > /dev/null || die "agentbus $c failed through the pooler"
done
# audit and health exit 1 or 2 for what they find; anything else is a failure.
for c in audit health; do
  code=0
  agentbus $c --format json > /dev/null || code=$?
  [ "$code" -le 2 ] || die "agentbus $c exited $code through the pooler"
done
agentbus prune --older-than 30d --dry-run --format json > /dev/null
out=$(AGENTBUS_POOL_MODE= agentbus status 2>&1 > /dev/null) && die "without AGENTBUS_POOL_MODE the pooler should refuse"
echo "$out" | grep -q "AGENTBUS_POOL_MODE=transaction" || die "the refusal does not say what to set: $out"
echo "   enqueue, show, list, claim, mark-running, renew, emit, complete, block, unblock, cancel, status, trace, events, list-agents, digest, list-ideas, audit, health, prune --dry-run: ok"

say "2. the guardrails through PgBouncer"
mine=$(agentbus enqueue-job --target-agent worker --subject "mine" --format json | field '["id"]')
theirs=$(agentbus enqueue-job --target-agent other --subject "theirs" --format json | field '["id"]')
mine_token=$(agentbus claim-jobs --lease-owner tester --target-agent worker --format json | field '[0]["lease_token"]')
their_token=$(agentbus claim-jobs --lease-owner tester --target-agent other --format json | field '[0]["lease_token"]')
as_login=${pooled/postgres@/$login@}
AGENTBUS_DATABASE_URL=$as_login AGENTBUS_LEASE_TOKEN=$mine_token agentbus complete-job "$mine" --lease-token "$mine_token" > /dev/null \
  || die "the agent login could not close its own job through the pooler"
set +e
AGENTBUS_DATABASE_URL=$as_login AGENTBUS_LEASE_TOKEN=$mine_token agentbus complete-job "$theirs" --lease-token "$their_token" > /dev/null 2>&1
code=$?
set -e
[ "$code" = 77 ] || die "closing another agent's job through the pooler exited $code, not 77"
[ "$(agentbus show-job "$theirs" --format json | field '["status"]')" = leased ] || die "the other agent's job changed"
echo "   own job closed; another agent's job refused (exit 77), unchanged"

say "3. 40 agents at once through a pool of 5 server sessions"
errors=$work/errors
: > "$errors"
agent_loop() {
  local a=$1 i j t
  for i in 1 2 3 4 5; do
    agentbus enqueue-job --target-agent "load-$a" --subject "load $a $i" > /dev/null 2>> "$errors" || { echo "enqueue $a $i" >> "$errors"; continue; }
    j=$(agentbus claim-jobs --lease-owner "load-$a" --target-agent "load-$a" --format json 2>> "$errors") || { echo "claim $a $i" >> "$errors"; continue; }
    t=$(echo "$j" | field '[0]["lease_token"]'); j=$(echo "$j" | field '[0]["id"]')
    agentbus complete-job "$j" --lease-token "$t" > /dev/null 2>> "$errors" || echo "complete $a $i" >> "$errors"
  done
}
for a in $(seq 40); do agent_loop "$a" & done
wait
[ ! -s "$errors" ] || die "errors under load: $(head -5 "$errors")"
done_jobs=$(psql "$direct" -XAtc "select count(*) from jobs where target_agent like 'load-%' and status = 'succeeded'")
[ "$done_jobs" = 200 ] || die "$done_jobs of 200 load jobs succeeded"
servers=$(PGOPTIONS= psql "postgres://postgres@127.0.0.1:${AGENTBUS_PGBOUNCER_PORT:-64320}/pgbouncer?sslmode=disable" -XAtc "show servers" 2>/dev/null | awk -F'|' -v d="$db" '$3 == d' | wc -l)
# The pool is 5 server sessions per login (postgres and the agent login): never more.
[ "$servers" -le 10 ] || die "$servers server sessions for a pool of 5 per login"
echo "   200 jobs succeeded, no error; server sessions in the pool: $servers (at most 5 per login)"

say "4. the supervisor directly, its exec agents through PgBouncer"
set +e
AGENTBUS_DATABASE_URL=$pooled AGENTBUS_POOL_MODE=transaction agentbus-supervisor --namespace default --exec true --once > "$work/refused.log" 2>&1
code=$?
set -e
[ "$code" = 78 ] || die "a supervisor through the pooler exited $code, not 78: $(cat "$work/refused.log")"
cat > "$work/agent.sh" <<'SH'
#!/bin/sh
exec agentbus complete-job "$AGENTBUS_JOB_ID" --lease-token "$AGENTBUS_LEASE_TOKEN" --summary "closed through the pooler"
SH
chmod +x "$work/agent.sh"
AGENTBUS_DATABASE_URL=$direct AGENTBUS_POOL_MODE= AGENTBUS_AGENT_DATABASE_URL=$pooled AGENTBUS_AGENT_POOL_MODE=transaction \
  agentbus-supervisor --namespace exec-ns --exec "$work/agent.sh" --max-in-flight 4 > "$work/supervisor.log" 2>&1 &
supervisor=$!
for i in $(seq 20); do agentbus enqueue-job --namespace exec-ns --target-agent runner --subject "exec $i" > /dev/null; done
for _ in $(seq 300); do
  n=$(psql "$direct" -XAtc "select count(*) from jobs where namespace = 'exec-ns' and status = 'succeeded'")
  [ "$n" = 20 ] && break
  sleep 0.1
done
[ "$n" = 20 ] || die "$n of 20 exec jobs succeeded; supervisor log: $(tail -5 "$work/supervisor.log")"
echo "   a supervisor through the pooler refused (exit 78); 20 jobs woken by the direct supervisor, closed through the pooler"
echo "test-pgbouncer: OK"
