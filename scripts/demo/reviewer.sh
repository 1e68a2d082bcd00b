#!/usr/bin/env bash
# scripts/demo/reviewer.sh: an offline stand-in for the reviewing agent (devops in the ops
# fleet), used by scripts/demo-coding.sh; agentbus-supervisor runs it once per dev.review
# job. It reads the run, checks the patch touches only what the problem is about, asks for
# the merge (a dev.merge job that waits for a human) and completes the review.
set -euo pipefail
job=${AGENTBUS_JOB_ID:?run by agentbus-supervisor}
run=$(agentbus show-job "$job" --get payload.run_id)
files=$(agentbus show-coding-run "$run" --format json --get run.changed_files)
case "$files" in
  *greet.sh*) ;;
  *) agentbus block-job "$job" --blocked-reason "the patch does not touch greet.sh: $files"; exit 0 ;;
esac
merge=$(agentbus code merge "$run" --get id)
agentbus complete-job "$job" --summary "patch reviewed: greet.sh only, tests pass; merge asked ($merge)" \
  --result "{\"merge_job_id\": \"$merge\"}" > /dev/null
