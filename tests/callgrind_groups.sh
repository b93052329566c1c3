#!/bin/bash
# Instructions of one function grouped by how often each executed: code
# inlined into a big function (the router step inlines `switch_flit`, the
# scan, the allocators' fast paths) shows up as groups of instructions
# that share an execution count, e.g. "236 instructions x 911,618" for a
# flit switched after an uncontested grant. docs/performance.md
# ("Instruction budget") uses it.
#
#   valgrind --tool=callgrind --dump-instr=yes --callgrind-out-file=OUT \
#       BIN bench --only 8x8_uniform_0.3 --scale 0.05
#   tests/callgrind_groups.sh OUT process_routers [TOP]
#
# Prints the TOP (default 12) largest groups: execution count, number of
# instructions, and their total. Counts are self cost (callees excluded).
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 CALLGRIND_OUT FUNCTION_SUBSTRING [TOP]" >&2
  exit 2
fi
awk -v want="$2" '
  # Function names are compressed: "(id) name" the first time, "(id)" later.
  function fname(s,   id) {
    id = s; sub(/\).*/, "", id); sub(/^\(/, "", id)
    if (s ~ /\) /) { n = s; sub(/^\([0-9]+\) /, "", n); names[id] = n }
    return names[id]
  }
  # Hexadecimal address (POSIX awk has no strtonum).
  function hex(s,   i, v) {
    v = 0; s = tolower(substr(s, 3))
    for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
    return v
  }
  /^fn=/  { cur = fname(substr($0, 4)); next }
  /^cfn=/ { fname(substr($0, 5)); next }
  /^calls=/ { skip = 1; next }
  /^(cfi|cfl|fl|fi|fe|ob|cob)=/ { next }
  /^(0x[0-9a-f]+|[+-][0-9]+|\*)[ \t]/ {
    a = $1
    if (a ~ /^0x/) addr = hex(a)
    else if (a ~ /^\+/) addr += substr(a, 2)
    else if (a ~ /^-/) addr -= substr(a, 2)
    if (skip) { skip = 0; next }   # the cost line of a call: inclusive, not ours
    if (index(cur, want) && NF >= 3) cnt[addr] += $3
  }
  END {
    for (a in cnt) { sum[cnt[a]] += cnt[a]; tot += cnt[a] }
    printf "total %d\n", tot
    for (c in sum) printf "%d %d %d\n", sum[c], c, sum[c] / c
  }' "$1" | {
  read -r _ tot
  echo "$2: $tot instructions (self)"
  sort -k1,1nr | head -n "${3:-12}" |
    awk '{ printf "count %10d  instructions %5d  total %8.1f M\n", $2, $3, $1 / 1e6 }'
}
