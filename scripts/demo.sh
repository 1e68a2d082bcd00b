#!/usr/bin/env bash
# scripts/demo.sh: the main job. Runs the go-to-market fleet (agents/gtm) end to end
# through agentbus-supervisor, offline, with stand-in agents (scripts/demo/agent.sh):
#
#   scout researches 4 prospects -> writer drafts (one draft fails once and is retried)
#   -> rep sends (one prospect is blocked: no email) -> closer, behind a human approval
#   that this script grants; each proposal sent makes a job for Mission Control (a
#   reaction to proposal.sent); the blocked prospect is routed to Mission Control, which
#   finds the email and unblocks it; scout's idea is promoted to an opportunity and
#   converted to a job; Mission Control's nightly standup writes a digest.
#
# Then it prints the pipeline, the trace of one prospect, and the standing-order audit, and
# writes the run as an Obsidian vault ($AGENTBUS_DEMO_OUT/vault).
# It leaves everything in namespace gtm-demo for you to explore; running it again starts
# that namespace afresh. Nothing here needs the network or a model.
#
# Environment (all optional):
#   DATABASE_URL             where to run (default: whatever scripts/pg-local.sh finds)
#   AGENTBUS_DEMO_NAMESPACE  namespace to use (default gtm-demo; it is purged first)
#   AGENTBUS_DEMO_OUT        where the outbox and the digest go (default .agentbus/demo)
#   AGENTBUS_BIN_DIR         use the binaries in this folder instead of a release build
#   AGENTBUS_DEMO_WAKE       exec (default: the supervisor runs scripts/demo/agent.sh) or
#                            hook (the fleet's own settings: a real OpenClaw gateway wakes
#                            the agents; scripts/test-openclaw.sh runs it this way)
#   AGENTBUS_DEMO_FLEET      the fleet folder (default agents/gtm)
#   AGENTBUS_DEMO_SUPERVISOR_ARGS  more arguments for agentbus-supervisor (hook mode)
#   AGENTBUS_DEMO_SETTLE     seconds each step may take (default 60)
#   AGENTBUS_DEMO_SUPERVISOR_URL, AGENTBUS_DEMO_OPERATOR_URL
#                            with guardrails (agentbus roles): the supervisor runs as the
#                            first login and the human steps (approvals, the proactive
#                            lane, firing the standup) as the second; set-up, checks and
#                            the summary stay with DATABASE_URL, the owner
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Build and run from one place, wherever CARGO_TARGET_DIR points (default: target/).
export CARGO_TARGET_DIR=$(realpath -m "${CARGO_TARGET_DIR:-$root/target}")
cd "$root"
ns=${AGENTBUS_DEMO_NAMESPACE:-gtm-demo}
out=${AGENTBUS_DEMO_OUT:-$root/.agentbus/demo}
wake=${AGENTBUS_DEMO_WAKE:-exec}
fleet=${AGENTBUS_DEMO_FLEET:-agents/gtm}
patience=${AGENTBUS_DEMO_SETTLE:-60}
read -r -a supervisor_args <<< "${AGENTBUS_DEMO_SUPERVISOR_ARGS:-}"
if [ "$wake" = hook ]; then
  # The hook token goes only to the gateway the fleet names (--hook-origin).
  fleet_hook_url=$(sed -n 's/^hook_url *= *"\(.*\)"/\1/p' "$fleet/fleet.toml" | head -n 1)
  [ -n "$fleet_hook_url" ] && supervisor_args+=(--hook-origin "$fleet_hook_url")
fi
started=$(date +%s)

supervisor_url=${AGENTBUS_DEMO_SUPERVISOR_URL:-}
operator_url=${AGENTBUS_DEMO_OPERATOR_URL:-}

step() { printf '\n== %s\n' "$*"; }
# The human steps, as the operator's login when one is given.
as_operator() { env ${operator_url:+"AGENTBUS_DATABASE_URL=$operator_url"} agentbus "$@"; }
die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }

step "database"
DATABASE_URL=$(scripts/pg-local.sh)
export DATABASE_URL

step "binaries"
if [ -n "${AGENTBUS_BIN_DIR:-}" ]; then
  bin=$AGENTBUS_BIN_DIR
else
  cargo build --release --quiet --bin agentbus --bin agentbus-supervisor
  bin=$CARGO_TARGET_DIR/release
fi
export PATH="$bin:$PATH"
export AGENTBUS_NAMESPACE=$ns AGENTBUS_DEMO_OUT=$out
agentbus --version
built=$(date +%s)

step "schema and fleet (namespace $ns)"
agentbus migrate > /dev/null
mkdir -p "$out"
if [ -f "$out/supervisor.pid" ] && kill -0 "$(cat "$out/supervisor.pid")" 2>/dev/null; then
  kill -TERM "$(cat "$out/supervisor.pid")" 2>/dev/null || true
  sleep 2
fi
rm -f "$out/outbox.txt" "$out/standup.md" "$out/supervisor.pid"
agentbus purge-namespace "$ns" --confirm "$ns" > /dev/null
# The fleet routes work blocked for 30 minutes; the demo's copy waits 5 seconds.
rm -rf "$out/fleet"
cp -r "$fleet" "$out/fleet"
sed -i 's/^route_after = .*/route_after = "5s"/' "$out/fleet/fleet.toml"
agentbus fleet sync "$out/fleet" --namespace "$ns" --format table
# The fleet's files wake OpenClaw agents over HTTP; the demo wakes the stand-ins instead.
if [ "$wake" = exec ]; then
  for agent in mission-control scout writer rep closer; do
    agentbus configure-agent "$agent" --wake exec \
      --exec-command "$root/scripts/demo/agent.sh" --exec-timeout-seconds 60 > /dev/null
  done
fi

step "supervisor"
env ${supervisor_url:+"AGENTBUS_DATABASE_URL=$supervisor_url"} \
  agentbus-supervisor --poll-interval 1 --lease-seconds 30 --hook-request-timeout 10 \
  --supervisor-id "demo-$$" ${supervisor_args[@]+"${supervisor_args[@]}"} > "$out/supervisor.log" 2>&1 &
supervisor=$!
echo "$supervisor" > "$out/supervisor.pid"
stop_supervisor() {
  if kill -0 "$supervisor" 2>/dev/null; then
    kill -TERM "$supervisor" 2>/dev/null || true
    wait "$supervisor" 2>/dev/null || true
  fi
  rm -f "$out/supervisor.pid"
}
trap stop_supervisor EXIT

# Waits until no job of the namespace is queued, leased, running or waiting.
settle() {
  local deadline=$(( $(date +%s) + ${1:-60} )) open
  while :; do
    open=0
    for s in queued leased running waiting; do
      open=$(( open + $(agentbus status --get "jobs.$s") ))
    done
    [ "$open" -eq 0 ] && return 0
    [ "$(date +%s)" -lt "$deadline" ] || die "jobs still open after ${1:-60}s: see $out/supervisor.log"
    kill -0 "$supervisor" 2>/dev/null || die "the supervisor exited: see $out/supervisor.log"
    sleep 0.5
  done
}

step "pipeline: scout -> writer -> rep -> closer"
agentbus enqueue-job --target-agent scout --subject "Prospect list: demo" \
  --payload "{\"prospects_file\": \"$root/scripts/demo/prospects.txt\"}" > /dev/null
settle "$patience"

step "approvals (the human step)"
agentbus list-approvals --format table
for id in $(agentbus list-approvals --get '[].id'); do
  as_operator --actor operator:demo approve-job "$id" --reason "pricing checked (demo)" > /dev/null
done
settle "$patience"

step "blocked work picked up: the blocked prospect goes to Mission Control"
# Every supervisor runs this pass once a minute; the demo runs it now.
deadline=$(( $(date +%s) + 30 ))
while :; do
  as_operator route-blocked > /dev/null
  routed=$(agentbus list-jobs --type blocked.triage --limit 1 --get '[].parent_job_id')
  [ -n "$routed" ] && break
  [ "$(date +%s)" -lt "$deadline" ] || die "nothing was routed: see $out/supervisor.log"
  sleep 1
done
settle "$patience"
agentbus trace "$routed" --format table

step "proactive lane: scout's idea, promoted to an opportunity, converted to a job"
idea=$(agentbus list-ideas --agent scout --get '0.id')
opportunity=$(as_operator --actor coordinator promote-idea-to-opportunity --idea-id "$idea" \
  --source-agent coordinator --theme targeting \
  --title "Target logistics firms that are hiring dispatchers" \
  --why-now "Acme qualified on exactly this signal today" \
  --evidence '{"qualified": ["acme"], "idea": "scout"}' \
  --impact-score 4 --confidence-score 3 --urgency-score 2 --reversibility high \
  --owner-candidate scout \
  --suggested-next-step "Build a prospect list of logistics firms hiring dispatchers" \
  --notes "promoted at the demo's pipeline review" --get opportunity.id)
as_operator --actor coordinator triage-opportunity --opportunity-id "$opportunity" \
  --decision accepted --notes "cheap to try, easy to stop" > /dev/null
as_operator --actor coordinator convert-opportunity --opportunity-id "$opportunity" \
  --target-agent scout --subject "Prospect list: logistics firms hiring dispatchers" > /dev/null
settle "$patience"
agentbus show-opportunity "$opportunity" --format table

step "nightly standup, fired now"
as_operator --actor operator:demo fire-standing-order --agent-id mission-control \
  --order-name nightly-standup > /dev/null
settle "$patience"
stop_supervisor
trap - EXIT
finished=$(date +%s)

step "pipeline summary"
printf '%-10s %-17s %-9s %-10s %s\n' PROSPECT COMPANY STAGE STATUS NOTE
while IFS='|' read -r id company _; do
  case "$id" in ''|'#'*) continue ;; esac
  newest() { agentbus list-jobs --flow "prospect:$id" --type reactive --limit 1 --get "0.$1"; }
  note=$(newest blocked_reason)
  [ -n "$note" ] || note=$(newest summary)
  printf '%-10s %-17s %-9s %-10s %s\n' "$id" "$company" "$(newest target_agent)" "$(newest status)" "$note"
done < scripts/demo/prospects.txt

step "trace of one prospect (acme), from the prospect list to the proposal"
agentbus trace "$(agentbus list-jobs --flow prospect:acme --agent closer --get '0.id')" --format table

step "standing-order audit"
agentbus audit standing-orders --format table

step "standup digest ($out/standup.md)"
cat "$out/standup.md"

step "the run as an Obsidian vault ($out/vault)"
agentbus vault export "$out/vault" --format table
echo "Open $out/vault in Obsidian (Open folder as vault); 01 Daily/ is the morning read."

cat <<MSG

Done in $(( finished - built ))s (build and setup: $(( built - started ))s). Everything is
still in namespace $ns; look around with:

  export DATABASE_URL='$DATABASE_URL' AGENTBUS_NAMESPACE=$ns PATH="$bin:\$PATH"
  agentbus status
  agentbus list-jobs
  agentbus trace --flow prospect:globex      # the retried draft: two attempts
  agentbus activity --agent rep --since 1h
  agentbus events --since 1h

Clean up: agentbus purge-namespace $ns --confirm $ns   (scripts/pg-local.sh stop stops a
private cluster the demo started)
MSG
