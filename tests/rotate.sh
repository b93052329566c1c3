#!/bin/bash
# Wall-clock comparison of wafernoc binaries on a noisy machine: runs
# `BIN bench --only CASE --scale SCALE` for every binary in turn, ROUNDS
# times (so that a drift in the machine's speed touches every binary
# alike), pinned to one CPU, and prints each binary's median flit-hops/s
# with its range, then each binary's median per-round ratio to the first.
#
#   tests/rotate.sh CASE SCALE ROUNDS BIN...
#   tests/rotate.sh 8x8_uniform_0.3 0.1 25 /tmp/old/wafernoc target/release/wafernoc
#
# CPU (default 0) picks the CPU. docs/performance.md records where it was
# used ("rotated medians").
set -euo pipefail
if [ $# -lt 4 ]; then
  echo "usage: $0 CASE SCALE ROUNDS BIN..." >&2
  exit 2
fi
CASE=$1; SCALE=$2; ROUNDS=$3; shift 3
CPU=${CPU:-0}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for _ in $(seq "$ROUNDS"); do
  for b in "$@"; do
    r=$(taskset -c "$CPU" "$b" bench --only "$CASE" --scale "$SCALE" --json |
      sed -n 's/.*"flit_hops_per_s":\([0-9.e+]*\).*/\1/p')
    [ -n "$r" ] || { echo "$b: no flit_hops_per_s in its bench output" >&2; exit 1; }
    echo "$b $r" >> "$out"
  done
done
# shellcheck source=tests/stats.sh
. "$(dirname "$0")/stats.sh"
for b in "$@"; do
  read -r m lo hi runs < <(awk -v b="$b" '$1 == b {print $2}' "$out" | stats)
  awk -v b="$b" -v m="$m" -v lo="$lo" -v hi="$hi" -v n="$runs" 'BEGIN {
    printf "%s: median %.3f M flit-hops/s (min %.3f, max %.3f, %d runs)\n", b, m / 1e6, lo / 1e6, hi / 1e6, n }'
done
# Each binary against the first, round by round: the runs of one round
# follow each other within a second or two, so the machine's slower
# drifts cancel in their ratio (its faster flips do not; see the range).
n=$#
for k in $(seq 2 "$n"); do
  read -r m lo hi rounds < <(awk -v n="$n" -v k="$k" '
    { i = NR - 1; r = int(i / n); j = i % n + 1; v[r, j] = $2; rounds = r + 1 }
    END { for (r = 0; r < rounds; r++) print v[r, k] / v[r, 1] }' "$out" | stats)
  awk -v b="${!k}" -v a="$1" -v m="$m" -v lo="$lo" -v hi="$hi" -v n="$rounds" 'BEGIN {
    printf "%s / %s: median per-round ratio %.3f (range %.3f-%.3f, %d rounds)\n", b, a, m, lo, hi, n }'
done
