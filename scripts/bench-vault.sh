#!/usr/bin/env bash
# scripts/bench-vault.sh: how long `agentbus vault export` takes on a large ledger.
#
# Fills namespace bench-vault of a scratch database with 10,000 opportunities (and their
# ideas), 10,000 memories and 100,000 jobs spread over 100 days, then times, three times
# each: a first export into an empty vault, an export with nothing changed, and an export
# after one opportunity changed, and after one job changed. Prints the medians with the machine and the settings.
#
# Environment: DATABASE_URL (default: scripts/pg-local.sh; a database agentbus_bench_vault
# is created next to it and dropped at the end), AGENTBUS_BIN_DIR, BENCH_VAULT_SCALE
# (default 1: the sizes above; 0.1 for a quick run).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Build and run from one place, wherever CARGO_TARGET_DIR points (default: target/).
export CARGO_TARGET_DIR=$(realpath -m "${CARGO_TARGET_DIR:-$root/target}")
cd "$root"
base=${DATABASE_URL:-$(scripts/pg-local.sh)}
scale=${BENCH_VAULT_SCALE:-1}
if [ -n "${AGENTBUS_BIN_DIR:-}" ]; then
  export PATH="$AGENTBUS_BIN_DIR:$PATH"
else
  cargo build --release --quiet
  export PATH="$CARGO_TARGET_DIR/release:$PATH"
fi
db=agentbus_bench_vault
admin_url=$base
url=${base%/*}/$db
work=$(mktemp -d)
cleanup() { rm -rf "$work"; [ -n "${BENCH_VAULT_KEEP:-}" ] || psql "$admin_url" -Xqc "drop database if exists $db with (force)" > /dev/null 2>&1 || true; }
trap cleanup EXIT
psql "$admin_url" -Xqc "drop database if exists $db with (force)" -c "create database $db" > /dev/null
export AGENTBUS_DATABASE_URL=$url
agentbus migrate > /dev/null
n() { python3 -c "print(int($1 * $scale))"; }
opps=$(n 10000); mems=$(n 10000); jobs=$(n 100000)
started=$(date +%s)
psql "$url" -Xq <<SQL
set session_replication_role = replica;
insert into agents (namespace, agent_id, role)
select 'bench-vault', 'agent-' || g, 'bench agent ' || g from generate_series(1, 20) g;
insert into jobs (namespace, target_agent, job_type, subject, status, summary, created_at, updated_at, completed_at)
select 'bench-vault', 'agent-' || (g % 20 + 1), 'reactive', 'job ' || g,
       (array['succeeded','succeeded','succeeded','dead','cancelled'])[g % 5 + 1]::job_status, 'done ' || g,
       timestamptz '2026-01-01' + (g % 100) * interval '1 day' + (g % 86400) * interval '1 second',
       timestamptz '2026-01-01' + (g % 100) * interval '1 day' + (g % 86400) * interval '1 second',
       timestamptz '2026-01-01' + (g % 100) * interval '1 day' + (g % 86400 + 60) * interval '1 second'
from generate_series(1, $jobs) g;
insert into opportunities (namespace, source_agent, theme, title, why_now, impact_score, confidence_score,
                           urgency_score, reversibility, suggested_next_step, status, created_at, updated_at)
select 'bench-vault', 'agent-' || (g % 20 + 1), 'theme ' || (g % 50), 'Opportunity number ' || g,
       'because ' || g, g % 5 + 1, (g + 1) % 5 + 1, (g + 2) % 5 + 1, 'high', 'next step ' || g,
       (array['new','triaged','accepted','rejected','parked'])[g % 5 + 1]::opportunity_status,
       timestamptz '2026-01-01' + (g % 100) * interval '1 day', timestamptz '2026-01-01' + (g % 100) * interval '1 day'
from generate_series(1, $opps) g;
insert into memories (namespace, kind, scope, subject_key, title, body, confidence_score, status, created_by, created_at, updated_at)
select 'bench-vault', (array['decision','preference','lesson','pattern','playbook'])[g % 5 + 1]::memory_kind,
       'global', 'subject-' || (g % 100), 'Memory number ' || g, 'What was learned, number ' || g, 3, 'active',
       'operator:bench', timestamptz '2026-01-01' + (g % 100) * interval '1 day', timestamptz '2026-01-01' + (g % 100) * interval '1 day'
from generate_series(1, $mems) g;
set session_replication_role = origin;
analyze;
SQL
filled=$(( $(date +%s) - started ))

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
timed() { local t0 t1; t0=$(date +%s.%N); agentbus vault export "$1" --namespace bench-vault --format json > "$work/last.json"; t1=$(date +%s.%N); python3 -c "print(round($t1 - $t0, 3))"; }

cold=$(for i in 1 2 3; do rm -rf "$work/vault"; timed "$work/vault"; done | median)
files=$(python3 -c "import json; print(json.load(open('$work/last.json'))['written'])")
warm=$(for i in 1 2 3; do timed "$work/vault"; done | median)
warm_written=$(python3 -c "import json; print(json.load(open('$work/last.json'))['written'])")
one=$(for i in 1 2 3; do
  psql "$url" -Xqc "update opportunities set title = 'Opportunity renamed $i' where namespace = 'bench-vault' and title = 'Opportunity number 7' or title like 'Opportunity renamed %'" > /dev/null
  timed "$work/vault"
done | median)
one_written=$(python3 -c "import json; print(json.load(open('$work/last.json'))['written'])")
# A job finishing moves the jobs table, which the daily notes, agent pages, reports and
# the snapshot read: the case a live fleet exports after every minute.
job=$(for i in 1 2 3; do
  psql "$url" -Xqc "update jobs set summary = 'summary $i' where id = (select id from jobs where namespace = 'bench-vault' order by created_at limit 1)" > /dev/null
  timed "$work/vault"
done | median)
job_written=$(python3 -c "import json; print(json.load(open('$work/last.json'))['written'])")

echo "bench-vault: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(psql "$url" -XAtc 'show server_version'), binaries ${AGENTBUS_BIN_DIR:-target/release (built here)}"
echo "ledger: $opps opportunities, $mems memories, $jobs jobs over 100 days, 20 agents (filled in ${filled}s)"
echo "median of 3 runs:"
echo "  first export (empty vault)      ${cold}s   ($files files written)"
echo "  export, nothing changed         ${warm}s   ($warm_written written)"
echo "  export after one change         ${one}s   ($one_written written)"
echo "  export after one job changed    ${job}s   ($job_written written)"
