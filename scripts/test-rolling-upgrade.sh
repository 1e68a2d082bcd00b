#!/usr/bin/env bash
# scripts/test-rolling-upgrade.sh: the previous release keeps working on the new schema.
#
# A rolling upgrade migrates first and replaces binaries host by host, so for a while the
# previous release's supervisor and agents run against the new schema. This builds the
# previous release (the commit before the first migration after sql/RELEASED), migrates a
# scratch database with this checkout's agentbus, then:
#
#   1. the previous supervisor wakes an exec agent whose closing call is the previous
#      agentbus: jobs enqueued by the new agentbus are claimed, woken and completed;
#   2. the new supervisor takes over (the previous one stopped), and agents still running
#      the previous agentbus close their jobs; the new `agentbus audit` finds nothing wrong.
#
# It stops what it started and drops its database. Environment: DATABASE_URL (default:
# scripts/pg-local.sh; a database agentbus_rolling_upgrade is made next to it),
# AGENTBUS_PREVIOUS_REF (default: found from sql/RELEASED as above).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Build and run from one place, wherever CARGO_TARGET_DIR points (default: target/).
export CARGO_TARGET_DIR=$(realpath -m "${CARGO_TARGET_DIR:-$root/target}")
cd "$root"
say() { printf '== %s\n' "$*"; }
die() { printf 'test-rolling-upgrade: error: %s\n' "$*" >&2; exit 1; }

released=$(grep -v '^#' sql/RELEASED | grep -m1 -E '^[0-9]+$')
next=$(printf '%04d' $((10#$released + 1)))
if [ -n "${AGENTBUS_PREVIOUS_REF:-}" ]; then
  prev=$(git rev-parse "$AGENTBUS_PREVIOUS_REF")
else
  # A shallow clone has no previous release to build: deepen it when the remote allows.
  if [ "$(git rev-parse --is-shallow-repository)" = true ]; then
    git fetch --quiet --unshallow 2>/dev/null || true
  fi
  added=$(git log --format=%H --diff-filter=A -- "sql/${next}_*.sql" | tail -n 1)
  [ -n "$added" ] || { echo "test-rolling-upgrade: no migration after $released yet: nothing to test"; exit 0; }
  prev=$(git rev-parse --verify -q "$added^") || {
    echo "test-rolling-upgrade: SKIPPED: the history before $added is not in this clone (shallow), so the previous release cannot be built" >&2
    exit 0
  }
fi
say "previous release: $(git log -1 --format='%h %s' "$prev" | cut -c1-80) (migrations up to $released)"

work=$(mktemp -d)
base=${DATABASE_URL:-$(scripts/pg-local.sh)}
url=${base%/*}/agentbus_rolling_upgrade
supervisor=
cleanup() {
  [ -n "$supervisor" ] && kill -TERM "$supervisor" 2>/dev/null && wait "$supervisor" 2>/dev/null
  psql "$base" -Xqc "drop database if exists agentbus_rolling_upgrade with (force)" > /dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

say "building both"
git archive "$prev" | tar -x -C "$work" --one-top-level=prev
cargo build --quiet --manifest-path "$work/prev/Cargo.toml" --target-dir "$CARGO_TARGET_DIR/previous-release" \
  --bin agentbus --bin agentbus-supervisor
cargo build --quiet --bin agentbus --bin agentbus-supervisor
old=$CARGO_TARGET_DIR/previous-release/debug
new=$CARGO_TARGET_DIR/debug
"$old/agentbus" --version; "$new/agentbus" --version

psql "$base" -Xq -c "drop database if exists agentbus_rolling_upgrade with (force)" \
  -c "create database agentbus_rolling_upgrade" > /dev/null
export AGENTBUS_DATABASE_URL=$url AGENTBUS_NAMESPACE=upgrade
say "the new agentbus migrates"
"$new/agentbus" migrate --format table | tail -n 3

# An exec agent that closes its job with the previous agentbus.
cat > "$work/agent.sh" <<AGENT
#!/bin/sh
exec "$old/agentbus" complete-job "\$AGENTBUS_JOB_ID" --summary "closed by the previous agentbus"
AGENT
chmod +x "$work/agent.sh"
"$old/agentbus" configure-agent writer --wake exec --exec-command "$work/agent.sh" \
  --exec-timeout-seconds 30 > /dev/null

wait_done() {
  local want=$1 deadline=$(( $(date +%s) + 60 ))
  until [ "$("$new/agentbus" list-jobs --status succeeded --limit 1000 --get '[].id' | grep -c .)" -ge "$want" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || die "only $("$new/agentbus" list-jobs --status succeeded --get '[].id' | grep -c .) of $want jobs succeeded: $(tail -n 5 "$work/supervisor.log")"
    kill -0 "$supervisor" 2>/dev/null || die "the supervisor exited: $(tail -n 5 "$work/supervisor.log")"
    sleep 0.5
  done
}

say "1. the previous supervisor on the new schema"
"$old/agentbus-supervisor" --poll-interval 1 --lease-seconds 30 --supervisor-id old \
  --namespace upgrade > "$work/supervisor.log" 2>&1 &
supervisor=$!
for i in 1 2 3; do "$new/agentbus" enqueue-job --target-agent writer --subject "during the upgrade $i" > /dev/null; done
wait_done 3
kill -TERM "$supervisor"; wait "$supervisor" 2>/dev/null || true

say "2. the new supervisor, agents still on the previous agentbus"
"$new/agentbus-supervisor" --poll-interval 1 --lease-seconds 30 --supervisor-id new \
  --namespace upgrade > "$work/supervisor.log" 2>&1 &
supervisor=$!
for i in 1 2 3; do "$old/agentbus" enqueue-job --target-agent writer --subject "after the upgrade $i" > /dev/null; done
wait_done 6
"$new/agentbus" list-jobs --limit 10 --format table
findings=$("$new/agentbus" audit --format json --get 'findings' | tr -d '[:space:]')
[ "$findings" = "[]" ] || die "the audit found: $findings"
version=$(psql "$url" -XAtc "select max(version) from agentbus_migrations")
echo "test-rolling-upgrade: 6 jobs through the previous ($released migrations) and the new supervisor on migration $version: OK"
