#!/bin/sh
# scripts/demo/coder.sh: an offline stand-in for a coder (Claude Code, a ralph-loop pass),
# used by scripts/demo-coding.sh. `agentbus code run` starts it in the run's worktree as
#   coder.sh PROMPT_FILE PASS
# The first pass writes a greeting with a bug (the repository's test catches it); the
# second reads the failing test output the runner put in the prompt and fixes it.
set -eu
prompt=$1
pass=$2
echo "coder: pass $pass, prompt $(head -n 1 "$prompt")"
if [ "$pass" -eq 1 ]; then
  printf '#!/bin/sh\necho "hello world"\n' > greet.sh
else
  grep -q 'the tests failed after the last pass' "$prompt" || { echo "no test feedback in the prompt" >&2; exit 1; }
  printf '#!/bin/sh\necho "hello, world"\n' > greet.sh
fi
chmod +x greet.sh
