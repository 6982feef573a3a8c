#!/usr/bin/env bash
# Speed of this checkout against another commit, measured side by side on this machine:
#
#   bash bench/side-by-side.sh [BASE] [ROUNDS]        (BASE default 61e996e, the commit before the fast
#                                                      paths; ROUNDS default 2)
#
# Checks BASE out into a scratch folder (a git worktree under $TMPDIR, node_modules linked), then runs,
# alternating between the two trees ROUNDS times so that both see the same machine load:
#   - bench/record-cost.ts (copied into BASE's tree if it lacks it: it uses only APIs both have):
#     JS record µs per dispatch of a decode step and dispatches per step, on the tiny preset (2 layers)
#     and on tiny with 32 layers (Vicuna-7B's per-token structure at toy width);
#   - `convllava bench --preset tiny --only tg`: decode tok/s.
# Prints one line per run and the medians per tree. The scratch worktree is removed at the end.
set -euo pipefail
BASE=${1:-61e996e}
ROUNDS=${2:-2}
HERE=$(cd "$(dirname "$0")/.." && pwd)
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/convllava-base-XXXX")
cleanup() { git -C "$HERE" worktree remove --force "$SCRATCH/tree" >/dev/null 2>&1 || true; rm -rf "$SCRATCH"; }
trap cleanup EXIT
git -C "$HERE" worktree add --detach "$SCRATCH/tree" "$BASE" >/dev/null
ln -s "$HERE/node_modules" "$SCRATCH/tree/node_modules"
[ -f "$SCRATCH/tree/bench/record-cost.ts" ] || cp "$HERE/bench/record-cost.ts" "$SCRATCH/tree/bench/record-cost.ts"
echo "machine: $(nproc) cores; $(uptime | sed 's/.*load/load/')"
echo "this tree: $(git -C "$HERE" rev-parse --short HEAD)   base: $(git -C "$SCRATCH/tree" rev-parse --short HEAD)"

record() { # tree layers → "µs per dispatch" "dispatches per step" (record-cost's JSON line)
  (cd "$1" && node --expose-gc --import tsx bench/record-cost.ts --layers "$2" --steps 60 --warmup 20 2>/dev/null | tail -1) |
    node -e 'let s = ""; process.stdin.on("data", (c) => (s += c)).on("end", () => { const j = JSON.parse(s); console.log(j.record_us_per_dispatch.toFixed(1), j.dispatches_per_step) })'
}
tg() { # tree → decode tok/s
  (cd "$1" && npx tsx cli/main.ts bench --preset tiny --only tg -n 64 -r 3 --json 2>/dev/null) |
    node -e 'let s = ""; process.stdin.on("data", (c) => (s += c)).on("end", () => console.log(JSON.parse(s).model.tg.avg_ts.toFixed(2)))'
}

declare -A REC REC32 TG
for r in $(seq 1 "$ROUNDS"); do
  for side in base this; do
    tree=$([ $side = base ] && echo "$SCRATCH/tree" || echo "$HERE")
    rec=$(record "$tree" 2); rec32=$(record "$tree" 32); tok=$(tg "$tree")
    echo "round $r  $side: record (µs/dispatch, dispatches/step) 2 layers: $rec, 32 layers: $rec32   tg $tok tok/s"
    REC[$side]+="${rec%% *} "; REC32[$side]+="${rec32%% *} "; TG[$side]+="$tok "
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
for side in base this; do
  echo "median $side: $(echo ${REC[$side]} | median) µs per dispatch recorded (2 layers), $(echo ${REC32[$side]} | median) (32 layers), $(echo ${TG[$side]} | median) tok/s (tiny tg64)"
done
