#!/usr/bin/env bash
# scripts/thinking-run.sh: the ops fleet's idle-time thinking, run for real through
# agentbus-supervisor with offline stand-ins (scripts/demo/thinker.sh), then
# `agentbus digest thinking`. The fleet's copy waits 2 seconds of quiet instead of 45
# minutes and thinks at any hour; everything else is agents/ops as shipped. It leaves the
# namespace (default ops-thinking) to explore and starts it afresh on every run.
#
# Environment: DATABASE_URL (default: scripts/pg-local.sh), AGENTBUS_BIN_DIR (binaries to
# use instead of a release build), AGENTBUS_THINKING_NAMESPACE.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Build and run from one place, wherever CARGO_TARGET_DIR points (default: target/).
export CARGO_TARGET_DIR=$(realpath -m "${CARGO_TARGET_DIR:-$root/target}")
cd "$root"
ns=${AGENTBUS_THINKING_NAMESPACE:-ops-thinking}
DATABASE_URL=$(scripts/pg-local.sh)
export DATABASE_URL AGENTBUS_NAMESPACE=$ns
if [ -n "${AGENTBUS_BIN_DIR:-}" ]; then
  export PATH="$AGENTBUS_BIN_DIR:$PATH"
else
  cargo build --release --quiet
  export PATH="$CARGO_TARGET_DIR/release:$PATH"
fi
work=$(mktemp -d)
supervisor=
cleanup() {
  if [ -n "$supervisor" ] && kill -0 "$supervisor" 2>/dev/null; then
    kill -TERM "$supervisor"; wait "$supervisor" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

agentbus migrate > /dev/null
agentbus purge-namespace "$ns" --confirm "$ns" > /dev/null
cp -r agents/ops "$work/ops"
sed -i 's/^quiet_for = .*/quiet_for = "2s"/; /^hours = /d' "$work/ops/fleet.toml"
agentbus fleet sync "$work/ops" --namespace "$ns" > /dev/null
for dir in "$work"/ops/*/; do
  agentbus configure-agent "$(basename "$dir")" --wake exec \
    --exec-command "$root/scripts/demo/thinker.sh" --exec-timeout-seconds 60 > /dev/null
done
agentbus-supervisor --poll-interval 1 --lease-seconds 30 --supervisor-id "thinking-$$" \
  > "$work/supervisor.log" 2>&1 &
supervisor=$!

settle() {
  local deadline=$(( $(date +%s) + 60 )) open s
  while :; do
    open=0
    for s in queued leased running; do open=$(( open + $(agentbus status --get "jobs.$s") )); done
    [ "$open" -eq 0 ] && return 0
    [ "$(date +%s)" -lt "$deadline" ] || { echo "thinking-run: jobs still open" >&2; exit 1; }
    sleep 0.5
  done
}
for round in 1 2 3; do
  opened=$(agentbus idle-windows --get '[].agent_id' | tr '\n' ' ')
  echo "round $round: windows opened for: ${opened:-none}"
  settle
  sleep 3
done
# A person promotes one of research's ideas: that agent's thinking paid off.
idea=$(agentbus list-ideas --agent research --get '0.id')
agentbus --actor coordinator promote-idea-to-opportunity --idea-id "$idea" --promoted-by coordinator \
  --why-now "Pricing shifts hit our renewals" --impact-score 4 --confidence-score 3 \
  --urgency-score 2 --reversibility high --suggested-next-step "Compare our pricing" > /dev/null
echo
agentbus digest thinking --since 1h --format table
