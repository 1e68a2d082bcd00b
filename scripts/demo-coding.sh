#!/usr/bin/env bash
# scripts/demo-coding.sh: a coding run end to end, offline, through agentbus-supervisor.
#
# A throw-away git repository whose test wants `./greet.sh` to print "hello, world"; a
# fake coder (scripts/demo/coder.sh) whose first pass gets it wrong and whose second,
# given the failing test output, gets it right; a reviewer (scripts/demo/reviewer.sh) that
# asks for the merge. The flow:
#
#   dev.code_change for dev-runner -> `agentbus code run` (exec wake): worktree on a fresh
#   branch, pass 1 fails the test, pass 2 passes -> job completed, dev.review for reviewer
#   -> reviewer asks `agentbus code merge` -> dev.merge waits in awaiting_approval -> this
#   script approves it (the human step) -> dev-runner merges -> main has the fix.
#
# Every step is checked; the script exits non-zero if one does not happen. It leaves
# namespace coding-demo and $AGENTBUS_DEMO_OUT (default .agentbus/demo-coding: the
# repository, worktrees, artifacts, the supervisor's log) to explore; running it again
# starts afresh. Nothing here needs the network or a model.
#
# Environment (all optional): DATABASE_URL (default: scripts/pg-local.sh),
# AGENTBUS_BIN_DIR (binaries to use instead of a release build), AGENTBUS_DEMO_OUT,
# AGENTBUS_DEMO_SETTLE (seconds each step may take, default 60).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Build and run from one place, wherever CARGO_TARGET_DIR points (default: target/).
export CARGO_TARGET_DIR=$(realpath -m "${CARGO_TARGET_DIR:-$root/target}")
cd "$root"
ns=coding-demo
out=${AGENTBUS_DEMO_OUT:-$root/.agentbus/demo-coding}
patience=${AGENTBUS_DEMO_SETTLE:-60}
started=$(date +%s)
step() { printf '\n== %s\n' "$*"; }
die() { printf 'demo-coding: error: %s\n' "$*" >&2; exit 1; }

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
export AGENTBUS_NAMESPACE=$ns
agentbus migrate > /dev/null

step "a throw-away repository, a coding config, a two-agent fleet"
if [ -f "$out/supervisor.pid" ] && kill -0 "$(cat "$out/supervisor.pid")" 2>/dev/null; then
  kill -TERM "$(cat "$out/supervisor.pid")" 2>/dev/null || true
  sleep 2
fi
rm -rf "$out"
mkdir -p "$out/repo" "$out/fleet/dev-runner" "$out/fleet/reviewer"
agentbus purge-namespace "$ns" --confirm "$ns" > /dev/null
repo=$out/repo
git -C "$repo" init --quiet --initial-branch=main
printf 'test "$(sh ./greet.sh)" = "hello, world" || { echo "greet.sh printed: $(sh ./greet.sh 2>&1)"; exit 1; }\n' > "$repo/test.sh"
printf '#!/bin/sh\necho "TODO"\n' > "$repo/greet.sh"
git -C "$repo" add -A
git -C "$repo" -c user.name=demo -c user.email=demo@localhost commit --quiet -m "a greeting to write"
cat > "$out/coding.toml" <<TOML
worktree_root = "$out/worktrees"
artifact_root = "$out/artifacts"
review_agent = "reviewer"
max_runs_per_repo = 1

[repos.greeter]
path = "$repo"
test = ["sh", "test.sh"]
forbidden_paths = [".git/", "secrets/"]
max_changed_files = 3

[runners.fake-coder]
command = ["sh", "$root/scripts/demo/coder.sh", "{prompt_file}", "{pass}"]
timeout_seconds = 60
TOML
export AGENTBUS_CODING_CONFIG=$out/coding.toml
cat > "$out/fleet/fleet.toml" <<TOML
name = "coding-demo"
namespace = "$ns"
description = "A dev runner and a reviewer"
TOML
cat > "$out/fleet/dev-runner/agent.toml" <<TOML
id = "dev-runner"
role = "Runs coding jobs in isolated worktrees; merges and deploys once approved"
max_concurrency = 1
handoffs = ["reviewer"]
[wake]
mode = "exec"
timeout_seconds = 120
command = ["$bin/agentbus", "code", "run", "{job_id}"]
TOML
cat > "$out/fleet/reviewer/agent.toml" <<TOML
id = "reviewer"
role = "Reviews passed coding runs and asks for the merge"
max_concurrency = 1
handoffs = ["dev-runner"]
[wake]
mode = "exec"
timeout_seconds = 60
command = ["$root/scripts/demo/reviewer.sh", "{job_id}"]
TOML
agentbus fleet sync "$out/fleet" --namespace "$ns" --format table

step "supervisor"
agentbus-supervisor --poll-interval 1 --lease-seconds 60 --supervisor-id "demo-coding-$$" \
  > "$out/supervisor.log" 2>&1 &
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

# Waits until `agentbus CMD…` prints WANT.
wait_for() {
  local want=$1; shift
  local deadline=$(( $(date +%s) + patience ))
  until [ "$(agentbus "$@" 2>/dev/null || true)" = "$want" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || die "waited ${patience}s for '$*' to say $want: see $out/supervisor.log"
    kill -0 "$supervisor" 2>/dev/null || die "the supervisor exited: see $out/supervisor.log"
    sleep 0.5
  done
}

step "a code change for dev-runner (ralph loop, at most 3 passes, merge allowed)"
job=$(agentbus enqueue-job --target-agent dev-runner --job-type dev.code_change \
  --subject "Greet the world properly" --get id --payload '{
    "repo": "greeter", "base_ref": "main",
    "problem_statement": "greet.sh must print exactly: hello, world",
    "acceptance_criteria": ["sh test.sh passes", "only greet.sh changes"],
    "constraints": {"max_changed_files": 1, "allow_merge": true},
    "handoff": {"runner": "fake-coder", "mode": "ralph-loop", "max_iterations": 3, "time_budget_seconds": 120}}')
echo "job $job"
wait_for succeeded show-job "$job" --get status
run=$(agentbus show-job "$job" --get result.coding_run_id)
agentbus show-coding-run "$run" --format table
[ "$(agentbus show-coding-run "$run" --get 'passes.0.tests_passed')" = false ] || die "pass 1 should fail its test"
[ "$(agentbus show-coding-run "$run" --get 'passes.1.tests_passed')" = true ] || die "pass 2 should pass"

step "review: the reviewer asks for the merge; it waits for a human"
review=$(agentbus show-job "$job" --get result.review_job_id)
wait_for succeeded show-job "$review" --get status
merge=$(agentbus show-job "$review" --get result.merge_job_id)
[ "$(agentbus show-job "$merge" --get status)" = awaiting_approval ] || die "the merge should wait for approval"
[ "$(git -C "$repo" show main:greet.sh | tail -n 1)" = 'echo "TODO"' ] || die "main changed before approval"
agentbus list-approvals --format table

step "approve the merge (the human step); dev-runner merges"
agentbus --actor operator:demo approve-job "$merge" --reason "diff read, tests pass (demo)" > /dev/null
wait_for succeeded show-job "$merge" --get status
[ "$(git -C "$repo" show main:greet.sh | tail -n 1)" = 'echo "hello, world"' ] || die "main does not have the fix"
[ "$(agentbus show-coding-run "$run" --get run.status)" = completed ] || die "the run should be completed"
git -C "$repo" log --oneline main | head -n 5

step "trace of the code change"
agentbus trace "$job" --format table

echo
echo "Done in $(( $(date +%s) - started ))s. The repository is $repo; artifacts (prompts, logs,"
echo "patch) are under $out/artifacts; agentbus list-coding-runs --namespace $ns lists the run."
