#!/usr/bin/env bash
# Before/after benchmark table of two git revisions, measured in the same
# session: builds the criterion benches of A and of B (each in a git
# worktree under target/bench-compare/), then runs every bench ROUNDS times,
# A and B in turn (A first in odd rounds, B first in even ones), into
# criterion baselines a1.., b1.., and prints, per group, our side before and
# after (B / A per round, median and range) and each side's ratio to its
# anchor (benches/report.py --compare).
#
#   scripts/bench_compare.sh 79840fe HEAD         # about 30 min on 2 cores
#   ROUNDS=1 BENCHES=core FILTER=chain_ scripts/bench_compare.sh A B
#
# Settings (environment): ROUNDS (3), BENCHES (the criterion benches,
# default "core primitives timers threads oversubscribed"; a bench that a
# revision does not have is skipped on that side), FILTER (a criterion
# filter passed to every bench). B defaults to HEAD. Only committed trees
# are compared (commit or stash first). The worktrees are removed at the
# end; the builds stay in target/bench-compare/ for the next run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: scripts/bench_compare.sh REV_A [REV_B]" >&2
  exit 2
fi
REV_A=$(git rev-parse --verify "$1^{commit}")
REV_B=$(git rev-parse --verify "${2:-HEAD}^{commit}")
ROUNDS=${ROUNDS:-3}
BENCHES=${BENCHES:-"core primitives timers threads oversubscribed"}
FILTER=${FILTER:-}

DIR="$ROOT/target/bench-compare"
mkdir -p "$DIR"
cleanup() {
  for side in a b; do
    git worktree remove --force "$DIR/src-$side" 2>/dev/null || true
  done
}
trap cleanup EXIT

declare -A EXE
for side in a b; do
  rev=$REV_A; [ "$side" = b ] && rev=$REV_B
  git worktree remove --force "$DIR/src-$side" 2>/dev/null || true
  rm -rf "$DIR/src-$side"
  git worktree add --detach --force "$DIR/src-$side" "$rev" >/dev/null
  echo "building the benches of $side = $(git log -1 --format='%h %s' "$rev")" >&2
  # One build of every bench target; the JSON messages name the executables.
  (cd "$DIR/src-$side" && CARGO_TARGET_DIR="$DIR/target-$side" \
     cargo bench --benches --no-run --message-format=json 2>/dev/null) > "$DIR/build-$side.json"
  for bench in $BENCHES; do
    exe=$(python3 - "$DIR/build-$side.json" "$bench" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    t = m.get("target") or {}
    if m.get("reason") == "compiler-artifact" and "bench" in t.get("kind", []) \
            and t.get("name") == sys.argv[2] and m.get("executable"):
        print(m["executable"])
PY
)
    EXE[$side-$bench]=$exe
    [ -n "$exe" ] || echo "  ($side has no bench named $bench)" >&2
  done
done

export CRITERION_HOME="$DIR/criterion"
rm -rf "$CRITERION_HOME"
a_names=() b_names=()
for round in $(seq "$ROUNDS"); do
  order="a b"; [ $((round % 2)) = 0 ] && order="b a"
  a_names+=("a$round"); b_names+=("b$round")
  for bench in $BENCHES; do
    for side in $order; do
      exe=${EXE[$side-$bench]}
      [ -n "$exe" ] || continue
      echo "round $round/$ROUNDS: $bench, $side" >&2
      (cd "$DIR/src-$side" && "$exe" --bench ${FILTER:+"$FILTER"} --save-baseline "$side$round" > "$DIR/last-run.log" 2>&1) \
        || { cat "$DIR/last-run.log" >&2; exit 1; }
    done
  done
done

echo "A = $(git log -1 --format='%h %s' "$REV_A")"
echo "B = $(git log -1 --format='%h %s' "$REV_B")"
echo
# Before the clean-up, the nested row as a program sees it was named
# nested_chain_fire_reused_heap (nested_chain_fire was measured on a heap
# prepared before each build); the alias applies only where A has it.
IFS=,
python3 benches/report.py --compare "${a_names[*]}" "${b_names[*]}" \
  --alias nested_chain_fire=nested_chain_fire_reused_heap
