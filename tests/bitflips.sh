#!/usr/bin/env bash
# bitflips.sh WAFERNOC_BIN FILE [N] [SEED]
#
# Flips one random bit of FILE (a binary trace) N times (default 30), each
# in a fresh copy, runs `wafernoc trace stats` on the copy, and counts the
# copies that decode without an error (silent corruption) and those the
# checksum alone catches ("corrupt: checksum mismatch"). Deterministic for
# a SEED (bash's RANDOM; default 7). Used for docs/traces.md's figures.
set -euo pipefail
bin=$1 file=$2 n=${3:-30}
RANDOM=${4:-7}
size=$(stat -c %s "$file")
ext=${file##*.}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
silent=0 checksum=0 other=0
for _ in $(seq "$n"); do
    off=$(( (RANDOM * 32768 + RANDOM) % size ))
    bit=$(( RANDOM % 8 ))
    copy="$tmp/flip.$ext"
    cp "$file" "$copy"
    byte=$(od -An -tu1 -j "$off" -N1 "$file" | tr -d ' ')
    printf "$(printf '\\%03o' $(( byte ^ (1 << bit) )))" |
        dd of="$copy" bs=1 seek="$off" conv=notrunc status=none
    if err=$("$bin" trace stats "$copy" 2>&1 >/dev/null); then
        silent=$((silent + 1))
    elif [[ $err == *"checksum mismatch"* ]]; then
        checksum=$((checksum + 1))
    else
        other=$((other + 1))
    fi
done
echo "$file: $n flips: $silent decoded silently, $checksum caught by the checksum, $other by the decoder"
