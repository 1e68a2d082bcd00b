#!/usr/bin/env bash
# scripts/demo/thinker.sh: an offline stand-in for the ops fleet's agents, used by
# scripts/thinking-run.sh. In a thinking window (an idle.think job) research files an
# idea, knowledge a memory candidate, devops an opportunity, the others find nothing worth
# filing (--no-work); anything else that reaches it (a standing order) is closed no_work.
set -euo pipefail

job=${AGENTBUS_JOB_ID:?run by agentbus-supervisor}
get() { agentbus show-job "$job" --get "$1"; }

if [ "$(get job_type)" != idle.think ]; then
  agentbus complete-job "$job" --no-work --summary "stand-in: nothing to do" > /dev/null
  exit 0
fi
question=$(get payload.question)
window=$(get payload.window)
case "$AGENTBUS_AGENT" in
research)
  agentbus create-idea --source-agent research --theme signals \
    --title "Window $window: three vendors moved pricing to usage-based" \
    --body "Asked: $question. Three public pricing pages changed in a month." \
    --evidence '{"sources": 3}' > /dev/null
  agentbus complete-job "$job" --summary "filed one idea" > /dev/null
  ;;
knowledge)
  agentbus create-memory-candidate --source-agent knowledge --kind pattern --scope global \
    --subject-key "renewals" --title "Window $window: renewals cluster in March" \
    --body "Asked: $question. Two years of renewals show the same cluster." \
    --source-refs "{\"jobs\": [\"$job\"]}" --confidence-score 3 > /dev/null
  agentbus complete-job "$job" --summary "filed one memory candidate" > /dev/null
  ;;
devops)
  agentbus create-opportunity --source-agent devops --theme toil \
    --title "Window $window: automate certificate renewal" \
    --why-now "Renewed by hand four times this quarter" \
    --impact-score 3 --confidence-score 4 --urgency-score 2 --reversibility high \
    --suggested-next-step "Script the renewal and add an expiry alert" --overflow-to-idea > /dev/null
  agentbus complete-job "$job" --summary "filed one opportunity" > /dev/null
  ;;
*)
  agentbus complete-job "$job" --no-work --summary "thought about: $question; nothing clears the bar" > /dev/null
  ;;
esac
