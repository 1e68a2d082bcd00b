#!/usr/bin/env bash
# scripts/bench-ab.sh — the hook-mode drain of two commits, interleaved, so that the
# machine's drift hits both alike.
#
#   scripts/bench-ab.sh BASE [HEAD]        # e.g. scripts/bench-ab.sh main~1
#   ROUNDS=5 SIZE=20000 AGENTS=10 CONCURRENCY=4 scripts/bench-ab.sh 23c363f HEAD
#   LATENCY=200 scripts/bench-ab.sh main~1 WORKTREE   # the dispatch latency too
#   WHAT_IF_B=scripts/bench-what-if/strip-secondary.sql scripts/bench-ab.sh HEAD HEAD
#
# A small VM drifts by a third within the hour, and a change worth a few per cent cannot
# be seen in two runs taken ten minutes apart. This script builds each commit (release,
# in a git worktree under .agentbus/bench-ab/, removed at the end) into a target directory
# of its own (.agentbus/bench-ab/target-<commit>, and target-worktree for the working
# tree; kept for the next run), then runs examples/bench_supervisor of each in turn,
# ROUNDS times: A B B A A B. One target directory for both sides does not do: cargo
# decides what to rebuild by file times, so a side whose files are older than the other
# side's build is taken as built, and both sides run the same binaries (this script did
# that until 2026-11-30 whenever B was WORKTREE). It refuses to compare when the two
# sources differ and the builds are the same bytes. Each run migrates a fresh scratch
# database with that commit's agentbus, so a migration is part of what is compared, and
# its fake agents close through that commit's library. Prints each
# run's drain line (jobs/s, CPU a job), then per commit the median and range of jobs/s and
# of CPU a job, with the machine and the settings. With LATENCY=N (N >= 20) each run first
# times N single jobs handed over to an idle supervisor (the benchmark's dispatch latency:
# p50 from the enqueue's commit and from its start to the hook request), and the medians
# of those p50s are printed too. Nothing is asserted.
#
# HEAD may be the word WORKTREE: the working tree as it is, uncommitted changes included.
# WHAT_IF_B=file.sql runs that file in B's scratch databases after their migrations
# (examples/bench_supervisor's BENCH_WHAT_IF), never in A's: the cost of a schema change
# measured before writing it.
set -euo pipefail
# A what-if file named relative to where the script was started from.
if [ -n "${WHAT_IF_B:-}" ]; then WHAT_IF_B=$(realpath -- "$WHAT_IF_B"); fi
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
LATENCY=${LATENCY:-0}
WHAT_IF_B=${WHAT_IF_B:-}
if [ -n "$WHAT_IF_B" ]; then
  [ -r "$WHAT_IF_B" ] || { echo "bench-ab: WHAT_IF_B=$WHAT_IF_B is not a readable file" >&2; exit 2; }
fi
case "$ROUNDS$SIZE$AGENTS$CONCURRENCY$LATENCY" in
  *[!0-9]*) echo "bench-ab: ROUNDS, SIZE, AGENTS, CONCURRENCY and LATENCY are numbers" >&2; exit 2 ;;
esac
if [ "$LATENCY" != 0 ] && [ "$LATENCY" -lt 20 ]; then
  echo "bench-ab: LATENCY is 0 (none) or at least 20 jobs" >&2
  exit 2
fi

work=$repo/.agentbus/bench-ab
mkdir -p "$work"

# Builds one commit (or the working tree) and copies its three binaries to $work/bin-<label>.
# Prints the directory.
build() {
  local rev=$1 label dir src target
  if [ "$rev" = WORKTREE ]; then
    label=worktree
    src=$repo
    target=$work/target-worktree
  else
    label=$(git rev-parse --short=10 "$rev^{commit}")
    src=$work/src-$label
    target=$work/target-$label
    if [ ! -d "$src" ]; then
      git worktree add --detach --quiet "$src" "$label" >&2
    fi
  fi
  dir=$work/bin-$label
  (cd "$src" && CARGO_TARGET_DIR=$target cargo build --release --quiet --bins --example bench_supervisor) >&2
  mkdir -p "$dir"
  cp "$target/release/agentbus" "$target/release/agentbus-supervisor" \
    "$target/release/examples/bench_supervisor" "$dir/"
  echo "$dir"
}

# Whether the sources of the two sides differ (tracked and untracked files of the working
# tree count for WORKTREE).
sources_differ() {
  local a=$1 b=$2
  if [ "$b" = WORKTREE ]; then
    ! git diff --quiet "$a" -- || [ -n "$(git ls-files --others --exclude-standard)" ]
  else
    [ "$(git rev-parse "$a^{tree}")" != "$(git rev-parse "$b^{tree}")" ]
  fi
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
if sources_differ "$a_rev" "$b_rev" \
  && cmp -s "$a_bin/agentbus-supervisor" "$b_bin/agentbus-supervisor" \
  && cmp -s "$a_bin/agentbus" "$b_bin/agentbus" \
  && cmp -s "$a_bin/bench_supervisor" "$b_bin/bench_supervisor"; then
  echo "bench-ab: $a_name and $b_name differ in their sources but built the same binaries: not comparing" >&2
  exit 1
fi

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(free -g | awk '/Mem:/{print $2}') GiB"
echo "postgres: $(psql "$admin" -XAtqc 'show server_version' 2>/dev/null || echo unknown) at ${admin%/*}"
echo "settings: release builds, $SIZE jobs over $AGENTS agents, max_concurrency $CONCURRENCY, $LATENCY latency jobs, $ROUNDS rounds, A = $a_name ($a_rev), B = $b_name ($b_rev)${WHAT_IF_B:+ with $WHAT_IF_B run after its migrations}"

results=$work/results-$$
: > "$results"
for round in $(seq 1 "$ROUNDS"); do
  # A B, then B A, then A B...: a machine that drifts one way through the run (they do)
  # would otherwise favour whichever commit runs first in every round.
  order="A B"
  [ $((round % 2)) = 0 ] && order="B A"
  for side in $order; do
    if [ "$side" = A ]; then bin=$a_bin; else bin=$b_bin; fi
    # A 100-job first size keeps the benchmark's exec-mode phase short (it runs at the
    # first size); without LATENCY, one latency job does the same for that phase.
    what_if=""
    [ "$side" = B ] && what_if=$WHAT_IF_B
    out=$(BENCH_WHAT_IF=$what_if "$bin/bench_supervisor" "$admin" "$bin/agentbus-supervisor" "$bin/agentbus" "$((LATENCY > 0 ? LATENCY : 1))" "100,$SIZE" "$AGENTS" "$CONCURRENCY")
    rate=$(printf '%s\n' "$out" | sed -n "s/^drain, hook mode (.*): $SIZE jobs over .*, \([0-9]*\) jobs\/s$/\1/p")
    cpu=$(printf '%s\n' "$out" | grep '^drain, hook mode, cost per job' | tail -n 1 | sed -n 's/.*CPU \([0-9.]*\) ms.*/\1/p')
    if [ -z "$rate" ] || [ -z "$cpu" ]; then
      printf '%s\n' "$out" >&2
      echo "bench-ab: round $round, $side: no drain figure in the output above" >&2
      exit 1
    fi
    lat=""
    if [ "$LATENCY" != 0 ]; then
      commit=$(printf '%s\n' "$out" | sed -n 's/^dispatch latency, enqueue commit -> .*: p50 \([0-9.]*\) ms,.*/\1/p')
      start=$(printf '%s\n' "$out" | sed -n 's/^dispatch latency, enqueue start .*: p50 \([0-9.]*\) ms,.*/\1/p')
      if [ -z "$commit" ] || [ -z "$start" ]; then
        printf '%s\n' "$out" >&2
        echo "bench-ab: round $round, $side: no dispatch latency in the output above" >&2
        exit 1
      fi
      lat=", dispatch p50 $commit ms from the commit, $start ms from the start"
    fi
    echo "round $round, $side: $rate jobs/s, CPU $cpu ms a job$lat"
    echo "$side $rate $cpu ${commit:-0} ${start:-0}" >> "$results"
  done
done

summary() {
  local side=$1 name=$2
  awk -v side="$side" -v name="$name" '
    function median(v, n,   i, j, t) {
      for (i = 2; i <= n; i++) { t = v[i]; for (j = i - 1; j >= 1 && v[j] > t; j--) v[j + 1] = v[j]; v[j + 1] = t }
      return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    }
    $1 == side { n++; r[n] = $2; c[n] = $3; lc[n] = $4; ls[n] = $5 }
    END {
      mr = median(r, n); lo = r[1]; hi = r[n]
      mc = median(c, n); clo = c[1]; chi = c[n]
      printf "%s (%s): drain median %.0f jobs/s (%d-%d), CPU a job median %.2f ms (%.2f-%.2f), %d runs\n",
        side, name, mr, lo, hi, mc, clo, chi, n
      if (lc[1] > 0) {
        m1 = median(lc, n); a1 = lc[1]; b1 = lc[n]
        m2 = median(ls, n); a2 = ls[1]; b2 = ls[n]
        printf "%s (%s): dispatch p50 median %.2f ms from the commit (%.2f-%.2f), %.2f ms from the start (%.2f-%.2f)\n",
          side, name, m1, a1, b1, m2, a2, b2
      }
    }' "$results"
}
summary A "$a_name"
summary B "$b_name"
rm -f "$results"
