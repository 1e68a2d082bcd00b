#!/usr/bin/env bash
# scripts/demo/agent.sh: an offline stand-in for every agent of agents/gtm, used by
# scripts/demo.sh. agentbus-supervisor runs it in exec mode, once per job, with
# AGENTBUS_JOB_ID, AGENTBUS_LEASE_TOKEN, AGENTBUS_ATTEMPT, AGENTBUS_AGENT and
# AGENTBUS_NAMESPACE set. It does with agentbus exactly what the real agent is told to do
# in its AGENTS.md (hand work on as jobs, record facts as events, close its job), but
# deterministically and without a model or a network:
#
#   scout     reads the prospect list, enqueues one briefing for writer per prospect, and
#             files an idea; later it follows up the opportunity that idea became
#   writer    drafts copy and hands the prospect to rep; the globex draft fails once
#   rep       "sends" (to $AGENTBUS_DEMO_OUT/outbox.txt); blocks a prospect without an
#             email; hands qualified prospects to closer behind human approval
#   closer    "sends" the proposal once approved
#   mission-control  writes the nightly standup digest ($AGENTBUS_DEMO_OUT/standup.md);
#             logs each sent proposal (a reaction to proposal.sent); answers a blocked job
#             it was routed (blocked.replan) by finding the missing email in the CRM
#             export (scripts/demo/crm-export.txt) and unblocking the job with it
#
# Any other standing order that comes due during the demo is closed as no_work.
set -euo pipefail

job=${AGENTBUS_JOB_ID:?run by agentbus-supervisor}
out=${AGENTBUS_DEMO_OUT:?set by scripts/demo.sh}
get() { agentbus show-job "$job" --get "$1"; }

job_type=$(get job_type)
subject=$(get subject)

if [ "$job_type" = scheduled ]; then
  if [ "$AGENTBUS_AGENT/$subject" = mission-control/nightly-standup ]; then
    digest="$out/standup.md"
    count() { agentbus list-jobs --agent "$1" --type reactive --limit 1000 --get '[].id' | grep -c . || true; }
    lines() { grep -c "$1" "$out/outbox.txt" 2>/dev/null || true; }
    {
      echo "# Standup, $(date -u '+%Y-%m-%d %H:%M UTC')"
      echo
      echo "- prospects researched: $(count writer)"
      echo "- outreach sent: $(lines '^EMAIL')"
      echo "- proposals sent: $(lines '^PROPOSAL')"
      echo "- blocked, needs a human:"
      agentbus list-jobs --status blocked --get '[].blocked_reason' | sed 's/^/  - /'
      echo "- waiting for approval: $(agentbus list-approvals --get '[].id' | grep -c . || true)"
    } > "$digest"
    agentbus emit-event --source-job-id "$job" --topic standup.digest \
      --payload "{\"file\": \"$digest\"}" > /dev/null
    agentbus complete-job "$job" --summary "standup written to $digest" \
      --result "{\"digest_file\": \"$digest\"}" > /dev/null
  else
    agentbus complete-job "$job" --no-work \
      --summary "demo stand-in: nothing to do for $subject" > /dev/null
  fi
  exit 0
fi

if [ "$job_type" = reaction ]; then
  # Made by the database for an event this agent reacts to ([[reactions]]).
  printf 'LOGGED\t%s\t%s\n' "$(get payload.event.topic)" "$(get payload.event.payload.prospect)" \
    >> "$out/outbox.txt"
  agentbus complete-job "$job" --summary "logged $(get payload.event.topic) for the standup" > /dev/null
  exit 0
fi

if [ "$job_type" = blocked.triage ]; then
  # A job blocked too long, routed here by the fleet's [blocked] policy.
  blocked=$(get payload.blocked_job.id)
  prospect=$(agentbus show-job "$blocked" --get payload.prospect)
  email=$(awk -F'|' -v p="$prospect" '$1 == p { print $2 }' "$(dirname "$0")/crm-export.txt")
  if [ -n "$email" ]; then
    payload=$(agentbus show-job "$blocked" --get payload)
    agentbus reroute-job "$blocked" --payload "${payload%\}},\"email\":\"$email\"}" \
      --reason "found $email in the CRM export" > /dev/null
    agentbus complete-job "$job" --summary "unblocked $prospect: email found in the CRM export" > /dev/null
  else
    agentbus complete-job "$job" --summary "no email for $prospect anywhere: left for a human" > /dev/null
  fi
  exit 0
fi

if [ "$job_type" = proactive ]; then
  # Work converted from an opportunity: its context is in payload.opportunity.
  agentbus emit-event --source-job-id "$job" --topic opportunity.followed_up \
    --payload "{\"opportunity\": \"$(get payload.opportunity.id)\"}" > /dev/null
  agentbus complete-job "$job" \
    --summary "followed up: $(get payload.opportunity.suggested_next_step)" > /dev/null
  exit 0
fi

# A prospect job's payload, as written by scout: {prospect, company, contact, email, tier,
# signals, qualified, ...}. The demo's data has no quotes or backslashes, so plain string
# splicing builds valid JSON here; a real agent would use its JSON tooling.
prospect_payload() {
  printf '{"prospect":"%s","company":"%s","contact":"%s","email":"%s","tier":"%s","signals":"%s","qualified":"%s"}' "$@"
}

case "$AGENTBUS_AGENT" in
scout)
  file=$(get payload.prospects_file)
  n=0
  while IFS='|' read -r id company contact email tier signals qualified; do
    case "$id" in ''|'#'*) continue ;; esac
    agentbus enqueue-job --target-agent writer --subject "Draft outreach: $company" \
      --flow-key "prospect:$id" --correlation-key "prospect:$id" \
      --payload "$(prospect_payload "$id" "$company" "$contact" "$email" "$tier" "$signals" "$qualified")" > /dev/null
    agentbus emit-event --source-job-id "$job" --topic prospect.found \
      --payload "{\"prospect\": \"$id\"}" > /dev/null
    n=$((n + 1))
  done < "$file"
  # Something noticed on the way that might matter later: an idea, not yet a proposal.
  agentbus create-idea --source-agent scout --theme targeting \
    --title "Logistics firms hiring dispatchers look ready to buy" \
    --body "Acme's signal (a second warehouse, 40 dispatchers) is the strongest on the list." \
    --evidence '{"prospects": ["acme"]}' --dedupe-key targeting:dispatch-hiring > /dev/null
  agentbus complete-job "$job" --summary "briefed writer on $n prospects" > /dev/null
  ;;
writer)
  id=$(get payload.prospect)
  if [ "$id" = globex ] && [ "${AGENTBUS_ATTEMPT:-1}" = 1 ]; then
    # The step that fails once: the retry (attempt 2) succeeds.
    agentbus fail-job "$job" --last-error "model timed out drafting (the demo fails this once)" \
      --retry-seconds 1 > /dev/null
    exit 0
  fi
  payload=$(get payload)
  draft="Hi $(get payload.contact), congratulations: $(get payload.company) $(get payload.signals). Worth a short call?"
  agentbus enqueue-job --target-agent rep --subject "Send outreach: $(get payload.company)" \
    --payload "${payload%\}},\"draft\":\"$draft\"}" > /dev/null
  agentbus emit-event --source-job-id "$job" --topic copy.drafted \
    --payload "{\"prospect\": \"$id\", \"channel\": \"email\"}" > /dev/null
  agentbus complete-job "$job" --summary "drafted the first email" > /dev/null
  ;;
rep)
  id=$(get payload.prospect)
  email=$(get payload.email)
  company=$(get payload.company)
  if [ -z "$email" ]; then
    agentbus block-job "$job" --blocked-reason "no email address for $(get payload.contact) at $company" > /dev/null
    exit 0
  fi
  printf 'EMAIL\t%s\t%s\t%s\n' "$id" "$email" "$(get payload.draft)" >> "$out/outbox.txt"
  agentbus emit-event --source-job-id "$job" --topic outreach.sent \
    --payload "{\"prospect\": \"$id\", \"channel\": \"email\"}" > /dev/null
  if [ "$(get payload.qualified)" = yes ]; then
    agentbus enqueue-job --target-agent closer --subject "Proposal: $company" \
      --requires-approval --payload "$(get payload)" > /dev/null
    agentbus emit-event --source-job-id "$job" --topic prospect.qualified \
      --payload "{\"prospect\": \"$id\"}" > /dev/null
    agentbus complete-job "$job" --summary "sent; qualified, proposal waits for approval" > /dev/null
  else
    agentbus complete-job "$job" --summary "sent; not qualified yet" > /dev/null
  fi
  ;;
closer)
  id=$(get payload.prospect)
  printf 'PROPOSAL\t%s\t%s\n' "$id" "$(get payload.company)" >> "$out/outbox.txt"
  agentbus emit-event --source-job-id "$job" --topic proposal.sent \
    --payload "{\"prospect\": \"$id\"}" > /dev/null
  agentbus complete-job "$job" --summary "proposal sent" > /dev/null
  ;;
*)
  agentbus fail-job "$job" --last-error "the demo has no stand-in for $AGENTBUS_AGENT" > /dev/null
  ;;
esac
