#!/usr/bin/env bash
# scripts/bench-ab.sh — the hook-mode drain of two commits, interleaved, so that the
# machine's drift hits both alike.
#
#   scripts/bench-ab.sh BASE [HEAD]        # e.g. scripts/bench-ab.sh main~1
#   ROUNDS=5 SIZE=20000 AGENTS=10 CONCURRENCY=4 scripts/bench-ab.sh 23c363f HEAD
#
# A small VM drifts by a third within the hour, and a change worth a few per cent cannot
# be seen in two runs taken ten minutes apart. This script builds each commit (release,
# in a git worktree under .agentbus/bench-ab/, removed at the end; one shared target
# directory), then runs examples/bench_supervisor of each in turn, ROUNDS times: A B B A A B.
# Each run
# migrates a fresh scratch database with that commit's agentbus, so a migration is part of
# what is compared, and its fake agents close through that commit's library. Prints each
# run's drain line (jobs/s, CPU a job), then per commit the median and range of jobs/s and
# of CPU a job, with the machine and the settings. Nothing is asserted.
#
# HEAD may be the word WORKTREE: the working tree as it is, uncommitted changes included.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: scripts/bench-ab.sh BASE [HEAD|WORKTREE]" >&2
  exit 2
fi
ROUNDS=${ROUNDS:-3}
SIZE=${SIZE:-20000}
AGENTS=${AGENTS:-10}
CONCURRENCY=${CONCURRENCY:-4}
case "$ROUNDS$SIZE$AGENTS$CONCURRENCY" in
  *[!0-9]*) echo "bench-ab: ROUNDS, SIZE, AGENTS and CONCURRENCY are numbers" >&2; exit 2 ;;
esac

export CARGO_TARGET_DIR=$(realpath -m "${CARGO_TARGET_DIR:-$PWD/target}")
work=$repo/.agentbus/bench-ab
mkdir -p "$work"

# Builds one commit (or the working tree) and copies its three binaries to $work/bin-<label>.
# Prints the directory.
build() {
  local rev=$1 label dir src
  if [ "$rev" = WORKTREE ]; then
    label=worktree
    src=$repo
  else
    label=$(git rev-parse --short=10 "$rev^{commit}")
    src=$work/src-$label
    if [ ! -d "$src" ]; then
      git worktree add --detach --quiet "$src" "$label" >&2
    fi
  fi
  dir=$work/bin-$label
  (cd "$src" && cargo build --release --quiet --bins --example bench_supervisor) >&2
  mkdir -p "$dir"
  cp "$CARGO_TARGET_DIR/release/agentbus" "$CARGO_TARGET_DIR/release/agentbus-supervisor" \
    "$CARGO_TARGET_DIR/release/examples/bench_supervisor" "$dir/"
  echo "$dir"
}

export BENCH_SUPERVISOR_ID=bench-ab-$$
base=$(scripts/pg-local.sh)
admin="${base%/*}/postgres"
cleanup() {
  for w in "$work"/src-*; do
    [ -d "$w" ] && git worktree remove --force "$w" 2>/dev/null || true
  done
  pkill -TERM -f -- "--supervisor-id $BENCH_SUPERVISOR_ID\$" 2>/dev/null || true
  for db in agentbus_bench_latency agentbus_bench_hook agentbus_bench_exec; do
    psql "$admin" -XAtqc "drop database if exists $db with (force)" >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT

a_rev=$1
b_rev=${2:-HEAD}
a_bin=$(build "$a_rev")
b_bin=$(build "$b_rev")
a_name=$(basename "$a_bin" | sed 's/^bin-//')
b_name=$(basename "$b_bin" | sed 's/^bin-//')

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(free -g | awk '/Mem:/{print $2}') GiB"
echo "postgres: $(psql "$admin" -XAtqc 'show server_version' 2>/dev/null || echo unknown) at ${admin%/*}"
echo "settings: release builds, $SIZE jobs over $AGENTS agents, max_concurrency $CONCURRENCY, $ROUNDS rounds, A = $a_name ($a_rev), B = $b_name ($b_rev)"

results=$work/results-$$
: > "$results"
for round in $(seq 1 "$ROUNDS"); do
  # A B, then B A, then A B...: a machine that drifts one way through the run (they do)
  # would otherwise favour whichever commit runs first in every round.
  order="A B"
  [ $((round % 2)) = 0 ] && order="B A"
  for side in $order; do
    if [ "$side" = A ]; then bin=$a_bin; else bin=$b_bin; fi
    # One latency job and a 100-job first size keep the benchmark's other phases short
    # (exec mode runs at the first size).
    out=$("$bin/bench_supervisor" "$admin" "$bin/agentbus-supervisor" "$bin/agentbus" 1 "100,$SIZE" "$AGENTS" "$CONCURRENCY")
    rate=$(printf '%s\n' "$out" | sed -n "s/^drain, hook mode (.*): $SIZE jobs over .*, \([0-9]*\) jobs\/s$/\1/p")
    cpu=$(printf '%s\n' "$out" | grep '^drain, hook mode, cost per job' | tail -n 1 | sed -n 's/.*CPU \([0-9.]*\) ms.*/\1/p')
    if [ -z "$rate" ] || [ -z "$cpu" ]; then
      printf '%s\n' "$out" >&2
      echo "bench-ab: round $round, $side: no drain figure in the output above" >&2
      exit 1
    fi
    echo "round $round, $side: $rate jobs/s, CPU $cpu ms a job"
    echo "$side $rate $cpu" >> "$results"
  done
done

summary() {
  local side=$1 name=$2
  awk -v side="$side" -v name="$name" '
    function median(v, n,   i, j, t) {
      for (i = 2; i <= n; i++) { t = v[i]; for (j = i - 1; j >= 1 && v[j] > t; j--) v[j + 1] = v[j]; v[j + 1] = t }
      return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    }
    $1 == side { n++; r[n] = $2; c[n] = $3 }
    END {
      mr = median(r, n); lo = r[1]; hi = r[n]
      mc = median(c, n); clo = c[1]; chi = c[n]
      printf "%s (%s): drain median %.0f jobs/s (%d-%d), CPU a job median %.2f ms (%.2f-%.2f), %d runs\n",
        side, name, mr, lo, hi, mc, clo, chi, n
    }' "$results"
}
summary A "$a_name"
summary B "$b_name"
rm -f "$results"
