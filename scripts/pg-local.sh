#!/usr/bin/env bash
# scripts/pg-local.sh — find or make a PostgreSQL database for agentbus, print its URL.
#
#   export DATABASE_URL=$(scripts/pg-local.sh)      # find or start one, print the URL
#   scripts/pg-local.sh --private                   # skip the first two choices (below)
#   scripts/pg-local.sh status                      # report each choice; changes nothing
#   scripts/pg-local.sh stop                        # stop the private cluster, if we started it
#
# Choices, in order:
#   1. $DATABASE_URL, when it is set and answers;
#   2. a server on 127.0.0.1:5432 (user postgres, or the current user), where a database
#      named $AGENTBUS_PGDATABASE (default agentbus) is created if missing;
#   3. a private cluster under .agentbus/pg (port $AGENTBUS_PGPORT, default 54329, bound to
#      127.0.0.1 only, trust auth), made with the machine's PostgreSQL binaries; as root on
#      Debian, the postgresql package is installed first when there are none. As root the
#      cluster runs as the postgres user (PostgreSQL refuses to run as root).
#
# Only the URL goes to stdout; progress goes to stderr. Running it again reuses what is
# there; it never deletes data.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state_dir="$root/.agentbus"
dbname=${AGENTBUS_PGDATABASE:-agentbus}
port=${AGENTBUS_PGPORT:-54329}

say() { printf 'pg-local: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

pg_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
  d=$(command -v initdb 2>/dev/null || true)
  if [ -n "$d" ]; then dirname "$d"; return 0; fi
  return 1
}

psql_bin() {
  if command -v psql >/dev/null 2>&1; then command -v psql; return 0; fi
  local d; d=$(pg_bindir) || return 1
  [ -x "$d/psql" ] && echo "$d/psql"
}

# answers URL: true when a trivial query succeeds within a few seconds.
answers() {
  local psql; psql=$(psql_bin) || return 1
  PGCONNECT_TIMEOUT=3 "$psql" "$1" -XAtqc 'select 1' >/dev/null 2>&1
}

# ensure_db BASE_URL_WITHOUT_DB: creates $dbname on that server if it is missing.
ensure_db() {
  local base=$1 psql; psql=$(psql_bin)
  local exists
  exists=$(PGCONNECT_TIMEOUT=3 "$psql" "$base/postgres" -XAtqc \
    "select 1 from pg_database where datname = '$dbname'" 2>/dev/null || true)
  if [ "$exists" != "1" ]; then
    say "creating database $dbname"
    # A concurrent creator may win the race; that is fine as long as the database exists.
    PGCONNECT_TIMEOUT=3 "$psql" "$base/postgres" -XAtqc "create database \"$dbname\"" >/dev/null 2>&1 || true
    exists=$(PGCONNECT_TIMEOUT=3 "$psql" "$base/postgres" -XAtqc \
      "select 1 from pg_database where datname = '$dbname'" 2>/dev/null || true)
    [ "$exists" = "1" ] || die "could not create database $dbname on ${base#*@}"
  fi
}

install_postgres() {
  if [ "$(id -u)" != 0 ]; then
    die "no PostgreSQL binaries found; install PostgreSQL 13 or newer (Debian: apt-get install postgresql) or set DATABASE_URL"
  fi
  command -v apt-get >/dev/null 2>&1 || die "no PostgreSQL binaries and no apt-get; install PostgreSQL 13+ or set DATABASE_URL"
  say "installing Debian's postgresql package"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || die "apt-get update failed"
  apt-get install -y -qq postgresql >&2 || die "apt-get install postgresql failed"
}

# The data directory must be reachable by the user the server runs as. As root that is
# postgres, who may not be able to enter the checkout (e.g. under /root); then the cluster
# lives under /var/tmp and .agentbus/pg is a symlink to it.
data_dir() { echo "$state_dir/pg"; }

run_as_owner() {
  if [ "$(id -u)" = 0 ]; then
    local u=postgres
    id "$u" >/dev/null 2>&1 || die "running as root but there is no postgres user to run the server"
    if command -v runuser >/dev/null 2>&1; then runuser -u "$u" -- "$@"; else su "$u" -s /bin/sh -c "$(printf '%q ' "$@")"; fi
  else
    "$@"
  fi
}

private_url() { echo "postgresql://postgres@127.0.0.1:$port/$dbname"; }

start_private() {
  local bindir
  bindir=$(pg_bindir) || { install_postgres; bindir=$(pg_bindir) || die "PostgreSQL binaries still missing after install"; }
  mkdir -p "$state_dir"
  local data; data=$(data_dir)
  if [ ! -e "$data" ]; then
    if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$state_dir" 2>/dev/null; then
      local outside="/var/tmp/agentbus-pg-$(printf '%s' "$root" | cksum | cut -d' ' -f1)"
      mkdir -p "$outside"
      ln -s "$outside" "$data"
      say "the postgres user cannot enter $state_dir; the cluster lives in $outside"
    else
      mkdir -p "$data"
    fi
  fi
  local real; real=$(cd "$data" && pwd -P)
  mkdir -p "$real/run"
  if [ "$(id -u)" = 0 ]; then chown -R postgres "$real"; chmod 700 "$real"; fi
  if [ ! -f "$real/db/PG_VERSION" ]; then
    say "initialising a private cluster in $real/db"
    run_as_owner "$bindir/initdb" -D "$real/db" -U postgres --auth=trust --encoding=UTF8 --locale=C >"$real/initdb.log" 2>&1 \
      || die "initdb failed; see $real/initdb.log"
  fi
  # TLS, as a real server has it: a CA of its own (ca.crt, the sslrootcert clients verify
  # with) and a server certificate it signed for localhost and 127.0.0.1.
  if [ ! -f "$real/db/server.crt" ] && command -v openssl >/dev/null 2>&1; then
    local tls="$real/db"
    if openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=agentbus local CA" \
         -keyout "$tls/ca.key" -out "$tls/ca.crt" >/dev/null 2>&1 \
       && openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
         -keyout "$tls/server.key" -out "$tls/server.csr" >/dev/null 2>&1 \
       && printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=CA:FALSE" \
         "keyUsage=digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" > "$tls/server.ext" \
       && openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" \
         -CAcreateserial -days 3650 -extfile "$tls/server.ext" -out "$tls/server.crt" >/dev/null 2>&1; then
      chmod 600 "$tls/server.key" "$tls/ca.key"
      rm -f "$tls/server.csr" "$tls/server.ext"
      if [ "$(id -u)" = 0 ]; then chown postgres "$tls/server.key" "$tls/server.crt" "$tls/ca.crt" "$tls/ca.key"; fi
    else
      rm -f "$tls/server.key" "$tls/server.crt" "$tls/ca.key" "$tls/ca.crt" "$tls/server.csr" "$tls/server.ext"
    fi
  fi
  local ssl=off
  if [ -f "$real/db/server.crt" ]; then ssl=on; fi
  if ! run_as_owner "$bindir/pg_ctl" -D "$real/db" status >/dev/null 2>&1; then
    say "starting the private cluster on 127.0.0.1:$port (TLS $ssl)"
    run_as_owner "$bindir/pg_ctl" -D "$real/db" -l "$real/server.log" -w -t 60 \
      -o "-p $port -k $real/run -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=${AGENTBUS_PG_FSYNC:-on} -c ssl=$ssl" \
      start >&2 || die "the private cluster did not start; see $real/server.log"
  fi
  ensure_db "postgresql://postgres@127.0.0.1:$port"
  private_url
}

stop_private() {
  local data; data=$(data_dir)
  if [ ! -e "$data/db/PG_VERSION" ]; then say "no private cluster under $data"; return 0; fi
  local bindir; bindir=$(pg_bindir) || die "PostgreSQL binaries not found"
  if run_as_owner "$bindir/pg_ctl" -D "$data/db" status >/dev/null 2>&1; then
    run_as_owner "$bindir/pg_ctl" -D "$data/db" -m fast -w stop >&2
  else
    say "the private cluster is not running"
  fi
}

# Says what each choice would give, without creating or starting anything.
report_status() {
  if [ -n "${DATABASE_URL:-}" ]; then
    if answers "$DATABASE_URL"; then say "1. DATABASE_URL answers (would be used)"; else say "1. DATABASE_URL is set but does not answer"; fi
  else
    say "1. DATABASE_URL is not set"
  fi
  local user found=""
  for user in postgres "$(id -un)"; do
    if answers "postgresql://$user@127.0.0.1:5432/postgres"; then found=$user; break; fi
  done
  if [ -n "$found" ]; then say "2. a server answers on 127.0.0.1:5432 as $found"; else say "2. nothing answers on 127.0.0.1:5432"; fi
  local data; data=$(data_dir)
  if [ -e "$data/db/PG_VERSION" ]; then
    if answers "$(private_url)"; then say "3. private cluster $data is running on port $port"; else say "3. private cluster $data exists, stopped"; fi
  else
    say "3. no private cluster under $data"
  fi
}

find_url() {
  local private_only=$1
  if [ "$private_only" = 0 ]; then
    if [ -n "${DATABASE_URL:-}" ]; then
      if answers "$DATABASE_URL"; then echo "$DATABASE_URL"; return 0; fi
      say "DATABASE_URL is set but does not answer; looking further"
    fi
    local user
    for user in postgres "$(id -un)"; do
      if answers "postgresql://$user@127.0.0.1:5432/postgres"; then
        ensure_db "postgresql://$user@127.0.0.1:5432"
        echo "postgresql://$user@127.0.0.1:5432/$dbname"
        return 0
      fi
    done
  fi
  start_private
}

case "${1:-url}" in
  url) find_url 0 ;;
  --private|private) find_url 1 ;;
  stop) stop_private ;;
  status) report_status ;;
  -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command: $1 (use url, --private, status or stop)" ;;
esac
