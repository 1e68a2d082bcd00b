#!/usr/bin/env bash
# scripts/test-multihost.sh: supervisors on three "hosts" sharing one ledger; one host dies,
# another loses its network; the others finish its work within the lease, nothing succeeds
# twice and no agent ever runs more jobs at once than its limit.
#
# Each host is a network namespace (h1, h2, h3 addresses 10.77.N.2) joined to this machine
# by a veth pair (10.77.N.1); a private PostgreSQL cluster (made here, run as postgres,
# listening only on the three host-side addresses and 127.0.0.1) holds the ledger. Each
# host runs agentbus-supervisor with an exec agent that works 0.5 s and closes its job from
# inside the namespace. Three agents with max_concurrency 2; 90 jobs; lease 5 s.
#   - 1 s in, as soon as h2 holds a lease, every process of h2 is killed (SIGKILL: a host
#     that dies);
#   - 1 s later, as soon as h3 holds one, h3's link goes down (its processes live on, cut off), and comes back once
#     the others have finished its work; its late closes must be refused (fencing).
# Prints how long the jobs of each lost host took to be claimed again and to succeed.
# Needs root (ip netns) and PostgreSQL's binaries; removes the namespaces, links and the
# cluster it made. Environment: AGENTBUS_MULTIHOST_PORT (default 25350: below the
# kernel's ephemeral range, 32768-60999, so no client connection of an earlier test can
# hold the port as its source port when the cluster binds it).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Build and run from one place, wherever CARGO_TARGET_DIR points (default: target/).
export CARGO_TARGET_DIR=$(realpath -m "${CARGO_TARGET_DIR:-$root/target}")
cd "$root"
say() { printf '== %s\n' "$*"; }
die() { printf 'test-multihost: FAILED: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "test-multihost: SKIPPED: needs root for network namespaces" >&2; exit 0; }
command -v ip > /dev/null || die "ip (iproute2) is missing"

port=${AGENTBUS_MULTIHOST_PORT:-25350}
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2> /dev/null | sort -V | tail -n 1)
[ -x "$pgbin/initdb" ] || die "no PostgreSQL binaries under /usr/lib/postgresql (apt-get install postgresql)"
work=$(mktemp -d)
chmod 755 "$work"
hosts="1 2 3"
cleanup() {
  for h in $hosts; do
    if ip netns list 2> /dev/null | grep -qw "abh$h"; then
      ip netns pids "abh$h" 2> /dev/null | xargs -r kill -9 2> /dev/null || true
      ip netns del "abh$h" 2> /dev/null || true
    fi
    ip link del "abv$h" 2> /dev/null || true
  done
  if [ -f "$work/pg/postmaster.pid" ]; then
    runuser -u postgres -- "$pgbin/pg_ctl" -D "$work/pg" -m immediate stop > /dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

cargo build --quiet --bin agentbus --bin agentbus-supervisor
export PATH="$CARGO_TARGET_DIR/debug:$PATH"

say "three hosts: network namespaces joined by veth pairs"
listen=127.0.0.1
for h in $hosts; do
  ip netns del "abh$h" 2> /dev/null || true
  ip link del "abv$h" 2> /dev/null || true
  ip netns add "abh$h"
  ip link add "abv$h" type veth peer name "abv${h}p"
  ip link set "abv${h}p" netns "abh$h"
  ip addr add "10.77.$h.1/24" dev "abv$h"
  ip link set "abv$h" up
  ip netns exec "abh$h" ip addr add "10.77.$h.2/24" dev "abv${h}p"
  ip netns exec "abh$h" ip link set "abv${h}p" up
  ip netns exec "abh$h" ip link set lo up
  listen="$listen,10.77.$h.1"
done

say "the ledger: a private PostgreSQL on $listen port $port"
mkdir -p "$work/pg" && chown postgres "$work/pg"
runuser -u postgres -- "$pgbin/initdb" -D "$work/pg" -A trust -U postgres > /dev/null
cat >> "$work/pg/postgresql.conf" <<CONF
listen_addresses = '$listen'
port = $port
unix_socket_directories = '$work/pg'
max_connections = 100
CONF
echo "host all all 10.77.0.0/16 trust" >> "$work/pg/pg_hba.conf"
runuser -u postgres -- "$pgbin/pg_ctl" -D "$work/pg" -l "$work/pg/log" -w start > /dev/null
# pg_ctl -w returns once the server says it is ready, and the server only warns when it
# cannot bind one of its TCP addresses: ask 127.0.0.1 itself.
for _ in $(seq 1 50); do
  "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$port" && break
  sleep 0.2
done
"$pgbin/pg_isready" -q -h 127.0.0.1 -p "$port" || {
  echo "test-multihost: the private cluster does not answer on 127.0.0.1:$port; its log:" >&2
  tail -n 20 "$work/pg/log" >&2
  exit 1
}
local_url="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
export AGENTBUS_DATABASE_URL=$local_url
agentbus migrate > /dev/null
for a in a1 a2 a3; do
  agentbus configure-agent "$a" --namespace multi --max-concurrency 2 > /dev/null
done

cat > "$work/agent.sh" <<'SH'
#!/bin/sh
# An agent: half a second of work, then the close, from inside its host.
sleep 0.5
exec agentbus complete-job "$AGENTBUS_JOB_ID" --lease-token "$AGENTBUS_LEASE_TOKEN" --summary "done on $AGENTBUS_HOST_NAME"
SH
chmod +x "$work/agent.sh"
for h in $hosts; do
  ip netns exec "abh$h" env AGENTBUS_HOST_NAME="h$h" AGENTBUS_DATABASE_URL= \
    agentbus-supervisor --database-url "postgres://postgres@10.77.$h.1:$port/postgres?sslmode=disable" \
    --namespace multi --supervisor-id "host$h" --exec "$work/agent.sh" --lease-seconds 5 \
    --reap-interval 1 --poll-interval 1 --heartbeat-interval 1 --max-in-flight 4 \
    > "$work/h$h.log" 2>&1 &
  disown
done
q() { psql "$local_url" -XAtc "$1"; }
for _ in $(seq 50); do
  beats=$(q "select count(*) from dispatcher_heartbeats where namespace = 'multi'")
  [ "$beats" = 3 ] && break
  sleep 0.2
done
[ "$beats" = 3 ] || die "$beats of 3 supervisors beat: $(cat "$work"/h*.log | tail -n 5)"

say "90 jobs for three agents (max_concurrency 2 each)"
q "insert into jobs (namespace, target_agent, job_type, subject)
   select 'multi', 'a' || (1 + g % 3), 'multihost', 'job ' || g from generate_series(1, 90) g" > /dev/null
# The moment a host holds work (so its loss has something to recover).
holding() {
  for _ in $(seq 200); do
    [ "$(q "select count(*) from jobs where namespace = 'multi' and lease_owner = '$1' and status in ('leased', 'running')")" -gt 0 ] && return 0
    sleep 0.05
  done
  die "$1 never held a lease"
}
sleep 1
holding host2
t_kill=$(q "select now()")
# Every process of h2, until none is left: an exec agent may exit, or start, between the
# listing and the kill (a listed process already gone made `kill` fail the script).
for _ in $(seq 50); do
  pids=$(ip netns pids abh2)
  [ -n "$pids" ] || break
  kill -9 $pids 2> /dev/null || true
  sleep 0.02
done
[ -z "$(ip netns pids abh2)" ] || die "processes of h2 survived SIGKILL: $(ip netns pids abh2)"
# What the dead host held (read after the kill: nothing of it can change them any more).
sleep 0.2
lost2=$(q "select string_agg(id::text, ' ') from jobs where namespace = 'multi' and lease_owner = 'host2' and status in ('leased', 'running')")
say "h2 died (SIGKILL of every process in it) holding $(wc -w <<< "$lost2") lease(s)"
sleep 1
holding host3
t_drop=$(q "select now()")
ip link set abv3 down
sleep 0.2
lost3=$(q "select string_agg(id::text, ' ') from jobs where namespace = 'multi' and lease_owner = 'host3' and status in ('leased', 'running')")
say "h3's link went down; it holds $(wc -w <<< "$lost3") lease(s)"

for _ in $(seq 600); do
  left=$(q "select count(*) from jobs where namespace = 'multi' and status <> 'succeeded'")
  [ "$left" = 0 ] && break
  sleep 0.1
done
[ "$left" = 0 ] || die "$left jobs not done: $(q "select status, lease_owner, count(*) from jobs where namespace = 'multi' group by 1, 2")"
say "h3's link comes back; its late closes meet fenced leases"
ip link set abv3 up
sleep 3

recovery() { # ids, t0 -> "claimed again within X s, succeeded within Y s" (worst job)
  [ -n "$1" ] || die "the lost host held no lease"
  q "select format('%s job(s): requeued by another host within %s s (lease 5 s), claimed again within %s s (after the retry back-off of 10 s +-20 %%), succeeded within %s s',
                   count(*),
                   round(max(extract(epoch from (select min(h.created_at) from job_history h
                                                  where h.job_id = j.id and h.to_status = 'queued'
                                                    and h.from_status in ('leased', 'running')
                                                    and h.created_at > '$2'::timestamptz) - '$2'::timestamptz))::numeric, 1),
                   round(max(extract(epoch from a.started_at - '$2'::timestamptz))::numeric, 1),
                   round(max(extract(epoch from j.completed_at - '$2'::timestamptz))::numeric, 1))
       from jobs j join job_attempts a on a.job_id = j.id and a.attempt_no = j.attempt_count
      where j.id = any(string_to_array('$1', ' ')::uuid[])"
}
echo "   h2 (killed):   $(recovery "$lost2" "$t_kill")"
echo "   h3 (cut off):  $(recovery "$lost3" "$t_drop")"
# Recovered within the lease: requeued by the survivors no later than the lease (5 s) plus a
# reap interval and the server ending a cut-off host's open transaction (5 s) after the loss.
late=$(q "select count(*) from jobs j
           where j.id = any(string_to_array('$lost2 $lost3', ' ')::uuid[])
             and not exists (select 1 from job_history h
                              where h.job_id = j.id and h.to_status = 'queued'
                                and h.from_status in ('leased', 'running')
                                and h.created_at <= (case when j.id = any(string_to_array('$lost2', ' ')::uuid[])
                                                          then '$t_kill' else '$t_drop' end)::timestamptz + interval '12 seconds')")
[ "$late" = 0 ] || die "$late lost job(s) were not requeued within 12 s of their host's loss"
dupes=$(q "select count(*) from (select job_id from job_attempts a join jobs j on j.id = a.job_id
                                  where j.namespace = 'multi' and a.status = 'succeeded'
                                  group by job_id having count(*) > 1) d")
[ "$dupes" = 0 ] || die "$dupes job(s) succeeded twice"
closers=$(q "select string_agg(distinct split_part(summary, ' ', 3), ',' order by split_part(summary, ' ', 3)) from jobs where namespace = 'multi'")
# The most attempts of one agent alive at one moment (an attempt lives from its claim to its
# end, or to the reaper's verdict on an expired lease).
peak=$(q "with e as (
            select j.target_agent ag, a.started_at t, 1 d from job_attempts a join jobs j on j.id = a.job_id where j.namespace = 'multi'
            union all
            select j.target_agent, coalesce(a.finished_at, now()), -1 from job_attempts a join jobs j on j.id = a.job_id where j.namespace = 'multi')
          select max(s) from (select sum(d) over (partition by ag order by t, d rows unbounded preceding) s from e) x")
[ "$peak" -le 2 ] || die "an agent ran $peak jobs at once (limit 2)"
stale=$(q "select count(*) from job_attempts a join jobs j on j.id = a.job_id where j.namespace = 'multi' and a.stale_calls <> '[]'")
expired=$(q "select count(*) from job_attempts a join jobs j on j.id = a.job_id where j.namespace = 'multi' and a.status in ('lost', 'timed_out', 'failed')")
echo "   90 jobs succeeded, each once (closed on hosts $closers); at most $peak at once per agent (limit 2)"
echo "   $expired attempt(s) of the lost hosts ended by the reaper; $stale late close(s) refused by fencing"
echo "test-multihost: OK"
