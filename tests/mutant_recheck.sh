#!/usr/bin/env bash
# mutant_recheck.sh TREE DONE LIST
#
# Runs tests/mutant_check.sh on every mutant of LIST not yet in DONE,
# with the wider oracles that session 30 used on network.rs's survivors,
# cheapest first. LIST has one line per mutant: the cargo-mutants output
# directory (the one holding mutants.out), a tab, and the line of its
# missed.txt. Each mutant checked is appended to DONE and its report to
# DONE.log, so an interrupted run resumes where it stopped. TREE is a
# clean clone (one recheck loop per clone; the validation oracle reads
# ../shared beside it), best at the newest commit: the diffs apply with
# `patch`'s line offsets as long as the mutated line's context is
# unchanged (an ERROR otherwise), and the tests written since the
# mutants were made then count. The first two oracles are the ones
# cargo-mutants ran the shards with (`-C --lib -C --test engine -C
# --test threads`), for the tests added since. A mutant
# caught by a property test leaves its case in the clone's
# *.proptest-regressions, which later runs replay first; `git checkout`
# them for independent runs.
#
# Example (session 30; the spin-barrier mutants were skipped by adding
# them to DONE first):
#   for pat in 3238:32 2744:17; do grep "network.rs:$pat:" \
#     /tmp/out6/mutants.out/missed.txt | sed "s#^#/tmp/out6\t#"; done > list
#   tests/mutant_recheck.sh /tmp/clone /tmp/done list
set -u
[ $# -eq 3 ] || { sed -n '2,20p' "$0" >&2; exit 2; }
tree=$1 done_file=$2 list=$3
here=$(cd "$(dirname "$0")" && pwd)
touch "$done_file"
while IFS=$'\t' read -r out m; do
    [ -n "$m" ] || continue
    grep -qF "$m" "$done_file" && continue
    LIMIT=${LIMIT:-600} "$here/mutant_check.sh" "$tree" "$out/mutants.out" "$m" \
        "-p wafernoc-mesh --lib" \
        "-p wafernoc-traffic --test engine --test threads" \
        "-p wafernoc --test cli deterministic" \
        "-p wafernoc --test robustness_cli" \
        "-p wafernoc-traffic --test deadlock_props" \
        "-p wafernoc --test bench_cli" \
        "-p wafernoc --test validation knob_sets" >> "$done_file.log" 2>&1
    echo "$m" >> "$done_file"
done < "$list"
