#!/usr/bin/env bash
# scripts/pgbouncer-local.sh: a PgBouncer (Debian's package) in front of one database, for
# the tests and benchmarks of agents connecting through a pooler.
#
#   url=$(scripts/pgbouncer-local.sh start DATABASE_URL DIR [MODE] [LOGIN...])
#   scripts/pgbouncer-local.sh stop DIR
#
# start: writes DIR/pgbouncer.ini (listen 127.0.0.1:$AGENTBUS_PGBOUNCER_PORT, default 64320;
# MODE transaction (default) or session; server pool of $AGENTBUS_PGBOUNCER_POOL, default 20;
# up to 2,000 clients; trust auth for postgres and each LOGIN, which PostgreSQL then
# authenticates as usual), starts it as the postgres user (it refuses root) and prints the URL
# of the database through it. Installs the pgbouncer package first when it is missing and
# this is root on Debian. stop: stops the one started with DIR.
set -euo pipefail
say() { printf 'pgbouncer-local: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

cmd=${1:-}
case "$cmd" in
  start)
    [ $# -ge 3 ] || die "usage: start DATABASE_URL DIR [MODE] [LOGIN...]"
    url=$2 dir=$3 mode=${4:-transaction}
    shift $(( $# >= 4 ? 4 : 3 ))
    case "$mode" in transaction|session) ;; *) die "MODE must be transaction or session, not $mode" ;; esac
    if ! command -v pgbouncer > /dev/null && [ ! -x /usr/sbin/pgbouncer ]; then
      [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null || die "pgbouncer is not installed (Debian: apt-get install pgbouncer)"
      say "installing Debian's pgbouncer package"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer > /dev/null 2>&1 \
        || { apt-get update -qq > /dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer > /dev/null; } \
        || die "apt-get install pgbouncer failed"
    fi
    bin=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
    # host, port and database of the URL (postgres://user@host:port/db?...)
    read -r host port dbname < <(python3 -c '
import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1])
print(p.hostname or "127.0.0.1", p.port or 5432, p.path.lstrip("/") or "postgres")' "$url")
    listen=${AGENTBUS_PGBOUNCER_PORT:-64320}
    mkdir -p "$dir"
    {
      printf '"postgres" ""\n'
      for login in "$@"; do printf '"%s" ""\n' "$login"; done
    } > "$dir/userlist.txt"
    cat > "$dir/pgbouncer.ini" <<INI
[databases]
$dbname = host=$host port=$port dbname=$dbname

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $listen
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
admin_users = postgres
pool_mode = $mode
max_client_conn = 2000
default_pool_size = ${AGENTBUS_PGBOUNCER_POOL:-20}
server_tls_sslmode = prefer
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
    if [ "$(id -u)" = 0 ]; then
      chown -R postgres "$dir"
      chmod 755 "$dir"
      runuser -u postgres -- "$bin" -d "$dir/pgbouncer.ini" >&2
    else
      "$bin" -d "$dir/pgbouncer.ini" >&2
    fi
    for _ in $(seq 50); do
      PGOPTIONS= psql "postgres://postgres@127.0.0.1:$listen/$dbname?sslmode=disable" -XAtqc 'select 1' > /dev/null 2>&1 && break
      sleep 0.1
    done
    PGOPTIONS= psql "postgres://postgres@127.0.0.1:$listen/$dbname?sslmode=disable" -XAtqc "select 1" > /dev/null \
      || die "pgbouncer did not answer on 127.0.0.1:$listen (log: $dir/pgbouncer.log)"
    say "pgbouncer $("$bin" --version | head -n 1 | cut -d' ' -f2) in $mode mode on 127.0.0.1:$listen -> $host:$port/$dbname"
    echo "postgres://postgres@127.0.0.1:$listen/$dbname?sslmode=disable"
    ;;
  stop)
    [ $# -ge 2 ] || die "usage: stop DIR"
    pidfile=$2/pgbouncer.pid
    if [ -f "$pidfile" ]; then
      pid=$(cat "$pidfile")
      kill -TERM "$pid" 2> /dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
    fi
    ;;
  *) die "usage: $0 start DATABASE_URL DIR [MODE] [LOGIN...] | stop DIR" ;;
esac
