#!/usr/bin/env bash
# mutant_check.sh TREE MUTANTS_OUT MUTANT ORACLE...
#
# Runs one mutant that cargo-mutants reported as missed against wider
# oracles than the one it was run with. TREE is a clean clone of the
# repository (its mutated file is restored on exit), MUTANTS_OUT the
# `mutants.out` directory of the cargo-mutants run, MUTANT a line of its
# missed.txt ("path:line:col: description"), and each ORACLE one quoted
# set of `cargo test` arguments, tried in turn until one fails.
# Prints "CAUGHT by [ORACLE]" or "MISSED", with the seconds each took
# (or "ERROR", exit 2, when cargo fails other than by a failing test: a
# usage error in an ORACLE, or a mutant that does not build);
# an oracle running past LIMIT seconds (default 900: a mutant can make a
# drain endless) is stopped and reported as "TIMEOUT", as cargo-mutants
# does (a hang is detected, not missed).
#
# Example (session 26, on sim.rs's survivors of a `-C --lib` run):
#   tests/mutant_check.sh /tmp/clone /tmp/out/mutants.out \
#     "crates/mesh/src/sim.rs:613:42: replace == with != in run_measured_observed" \
#     "-p wafernoc-traffic --test threads --test engine" "-p wafernoc --test validation"
# The validation oracle reads ../shared beside TREE.
set -eu
[ $# -ge 4 ] || { sed -n '2,21p' "$0" >&2; exit 2; }
tree=$1 out=$2 mutant=$3
shift 3
file=${mutant%%:*}
desc=${mutant#* }
loc=$(echo "$mutant" | sed -E 's/^([^:]+):([0-9]+):([0-9]+):.*/\1_line_\2_col_\3/; s#/#__#g')
# cargo-mutants names a diff by its place, with _001, _002... for the
# other mutants there; the second line of each names the mutation.
diff=
for d in "$out/diff/$loc.diff" "$out/diff/${loc}"_[0-9]*.diff; do
    if [ -f "$d" ] && [ "$(sed -n 2p "$d")" = "+++ $desc" ]; then diff=$d; fi
done
[ -n "$diff" ] || { echo "no diff in $out/diff for: $mutant" >&2; exit 2; }
cd "$tree"
git diff --quiet -- "$file" || { echo "$tree/$file is not clean" >&2; exit 2; }
log=$(mktemp)
trap 'git checkout -q -- "$file"; rm -f "$log"' EXIT
patch -s -p0 < "$diff"
for oracle in "$@"; do
    start=$(date +%s)
    # shellcheck disable=SC2086 # each oracle is a list of arguments
    rc=0
    PROPTEST_CASES=${PROPTEST_CASES:-64} timeout -k 10 "${LIMIT:-900}" \
        cargo test --profile ci -q $oracle > "$log" 2>&1 || rc=$?
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        echo "TIMEOUT (${LIMIT:-900} s, a hang counts as caught) in [$oracle]: $mutant"
        exit 0
    elif [ "$rc" != 0 ] && { [ "$rc" != 101 ] || grep -q "could not compile" "$log"; }; then
        # A bad oracle (cargo's usage error) or a mutant that does not
        # build is not a caught mutant.
        echo "ERROR (cargo exit $rc) in [$oracle]: $mutant" >&2
        grep -m3 "^error" "$log" >&2 || true
        exit 2
    elif [ "$rc" != 0 ]; then
        echo "CAUGHT by [$oracle] in $(( $(date +%s) - start )) s: $mutant"
        exit 0
    fi
    echo "  passed [$oracle] in $(( $(date +%s) - start )) s"
done
echo "MISSED: $mutant"
