#!/bin/bash
# Two-thread speed-up of several wafernoc binaries on a noisy machine: per
# round, each binary in turn runs `bench --only CASE --json` on one thread
# and then on two (not pinned), so that a drift in the machine's speed
# touches every binary alike. Prints, per binary, the median one- and
# two-thread times, the ratio of those medians and the median of the
# per-round speed-ups; then, for each binary against the first, the median
# per-round ratio of their two-thread times (> 1: faster).
#
#   tests/rotate_threads.sh CASE ROUNDS BIN...
#   tests/rotate_threads.sh 32x32_uniform_0.05 12 /tmp/old/wafernoc target/release/wafernoc
#
# docs/performance.md records where it was used ("Driver work alongside
# the cycle, session 13").
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 CASE ROUNDS BIN..." >&2
  exit 2
fi
CASE=$1; ROUNDS=$2; shift 2
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for r in $(seq "$ROUNDS"); do
  for b in "$@"; do
    for n in 1 2; do
      s=$("$b" --threads "$n" bench --only "$CASE" --json |
        sed -n 's/.*"seconds":\([0-9.e+-]*\).*/\1/p')
      [ -n "$s" ] || { echo "$b: no seconds in its bench output" >&2; exit 1; }
      echo "$r $b $n $s" >> "$out"
    done
  done
done
# shellcheck source=tests/stats.sh
. "$(dirname "$0")/stats.sh"
for b in "$@"; do
  read -r m1 _ _ _ < <(awk -v b="$b" '$2 == b && $3 == 1 {print $4}' "$out" | stats)
  read -r m2 _ _ _ < <(awk -v b="$b" '$2 == b && $3 == 2 {print $4}' "$out" | stats)
  read -r sp lo hi _ < <(awk -v b="$b" '$2 == b { t[$1, $3] = $4; r[$1] = 1 }
    END { for (k in r) print t[k, 1] / t[k, 2] }' "$out" | stats)
  awk -v b="$b" -v m1="$m1" -v m2="$m2" -v sp="$sp" -v lo="$lo" -v hi="$hi" 'BEGIN {
    printf "%s: medians %.3f s / %.3f s = %.2fx; median per-round speed-up %.2fx (range %.2f-%.2f)\n",
      b, m1, m2, m1 / m2, sp, lo, hi }'
done
first=$1
shift
for b in "$@"; do
  read -r m lo hi _ < <(awk -v a="$first" -v b="$b" '$3 == 2 && ($2 == a || $2 == b) { t[$1, $2] = $4; r[$1] = 1 }
    END { for (k in r) print t[k, a] / t[k, b] }' "$out" | stats)
  awk -v a="$first" -v b="$b" -v m="$m" -v lo="$lo" -v hi="$hi" 'BEGIN {
    printf "%s / %s, two threads: median per-round speed ratio %.3f (range %.3f-%.3f)\n", b, a, m, lo, hi }'
done
