#!/bin/bash
# The speed issue's load-proportionality figure: cost per simulated cycle
# of 32x32 uniform at 0.01 over that at 0.1, for each binary.
#
#   tests/cost_ratio.sh ROUNDS BIN...        # wall clock, rotated
#   INSTR=1 tests/cost_ratio.sh 0 BIN...     # callgrind instructions
#
# Wall clock: ROUNDS rounds, each running every binary in turn pinned to
# one CPU (`bench --only 32x32_uniform_0.01 --scale 1`, then `--only
# 32x32_uniform_0.1 --scale 0.1`); prints per binary the ratio of the
# median µs/cycle and the median and range of the per-round ratios.
# INSTR=1: callgrind's marginal instructions (`--scale 0.1` minus
# `--scale 0.05`: the instructions of 1,000 timed cycles, without set-up
# and warm-up) at 0.01 over the same at 0.1; independent of machine load.
# CPU (default 0) picks the CPU. docs/performance.md records where it was used.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 ROUNDS BIN...   (INSTR=1 for callgrind counts)" >&2
  exit 2
fi
ROUNDS=$1; shift
CPU=${CPU:-0}
if [ "${INSTR:-0}" = 1 ]; then
  ir() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$1" bench \
      --only "32x32_uniform_$2" --scale "$3" 2>&1 |
      sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
  }
  for b in "$@"; do
    lo=$(( $(ir "$b" 0.01 0.1) - $(ir "$b" 0.01 0.05) ))
    hi=$(( $(ir "$b" 0.1 0.1) - $(ir "$b" 0.1 0.05) ))
    awk -v b="$b" -v lo="$lo" -v hi="$hi" 'BEGIN {
      printf "%s: %.1f k / %.1f k instructions per cycle = %.4f\n",
        b, lo / 1e6, hi / 1e6, lo / hi }'
  done
  exit 0
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
us() {
  taskset -c "$CPU" "$1" bench --only "32x32_uniform_$2" --scale "$3" --json |
    sed -n 's/.*"us_per_cycle":\([0-9.e+]*\).*/\1/p'
}
for _ in $(seq "$ROUNDS"); do
  for b in "$@"; do
    echo "$b $(us "$b" 0.01 1) $(us "$b" 0.1 0.1)" >> "$out"
  done
done
for b in "$@"; do
  grep -F "$b " "$out" | awk -v b="$b" '$1 == b {lo[NR] = $2; hi[NR] = $3; r[NR] = $2 / $3; n++}
    function med(a,   k, m, i, j, t, s) {
      m = 0; for (k in a) s[++m] = a[k]
      for (i = 2; i <= m; i++) { t = s[i]; for (j = i - 1; j > 0 && s[j] > t; j--) s[j + 1] = s[j]; s[j + 1] = t }
      return m % 2 ? s[(m + 1) / 2] : (s[m / 2] + s[m / 2 + 1]) / 2 }
    END {
      mn = 1e9; mx = 0; for (k in r) { if (r[k] < mn) mn = r[k]; if (r[k] > mx) mx = r[k] }
      printf "%s: median %.1f / %.1f us/cycle = %.3f; per-round ratios median %.3f, range %.3f-%.3f (%d rounds)\n",
        b, med(lo), med(hi), med(lo) / med(hi), med(r), mn, mx, n }'
done
