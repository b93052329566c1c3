#!/usr/bin/env python3
"""When do runs past saturation abort on the latency threshold?

For the lowest BookSim2-unstable rate of every latency-mode family in the
reference sets, run BookSim2 and one or two wafernoc binaries with seeds
0..SEEDS-1 and print a markdown table: per tool the median cycle of the
abort (range), the phases it happened in (p: a sample period's end in
BookSim2, which does not say warm-up or measure; w/m: warm-up/measure in
wafernoc; d: drain; n: never warmed up, at `max_samples`) and how many
runs ended stable.

BookSim2's abort cycle is read from its output: 1000 cycles per "Class 0:"
block (one per sample period, and one per passed drain check), plus the
1000 of the drain check that aborted (it prints no block).

Usage (from the repository root, ../shared beside it):
  tests/threshold_aborts.py BOOKSIM SEEDS WAFERNOC [WAFERNOC2]
Session 27: /tmp/booksim2/src/booksim, 5 seeds, binaries before and after
the threshold change (docs/validation.md, "The latency threshold's mean").
"""
import csv, json, re, statistics, subprocess, sys
from collections import defaultdict

SETS = ['../shared/reference/booksim', 'tests/data/booksim-extra',
        'tests/data/booksim-knobs/p1wftc']


def rows():
    out = []
    for d in SETS:
        fam = defaultdict(list)
        for r in csv.DictReader(open(d + '/results.csv')):
            if r['sim_type'] != 'latency':
                continue
            key = re.sub(r'_r[0-9.]+_latency\.cfg$', '', r['config'])
            fam[key].append((float(r['rate']), r['status'], r['config']))
        for lst in fam.values():
            uns = sorted(x for x in lst if x[1] != 'ok')
            if uns:
                out.append((d, uns[0][2]))
    return out


def booksim(binary, d, cfg, seed):
    out = subprocess.run([binary, cfg, f'seed={seed}'], cwd=d,
                         capture_output=True, text=True).stdout
    n = out.count('\nClass 0:')
    if 'Aborting' not in out:
        # "Too many sample periods needed to converge" alone: never warmed
        # up (it also follows an abort, hence the order of the tests).
        return ('n', n * 1000) if 'Too many sample periods' in out else ('o', 0)
    drain = 'Draining all recorded' in out
    return ('d' if drain else 'p', n * 1000 + (1000 if drain else 0))


def wafernoc(binary, d, cfg, seed):
    out = subprocess.run([binary, 'booksim', cfg, f'seed={seed}', '--json',
                          '--quiet'], cwd=d, capture_output=True, text=True).stdout
    j = json.loads(out)
    if j['status'] == 'ok':
        return ('o', 0)
    u = j['unstable']
    if u['kind'] == 'not_warmed_up':
        return ('n', j['simulated_cycles'])
    return ({'warm-up': 'w', 'measure': 'm', 'drain': 'd'}[u['phase']], u['cycle'])


def cell(runs):
    cyc = [c for p, c in runs if p != 'o']
    stable = sum(p == 'o' for p, _ in runs)
    if not cyc:
        return 'all stable', None
    m = statistics.median(cyc)
    s = f"{m:,.0f}" + (f" ({min(cyc):,}–{max(cyc):,})" if min(cyc) != max(cyc) else '')
    s += ' ' + ''.join(sorted(set(p for p, _ in runs if p != 'o')))
    return s + (f", {stable} stable" if stable else ''), m


def main():
    bs, seeds, wns = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    print('| row | BookSim2 | ' + ' | '.join(f'wafernoc {i + 1}' for i in range(len(wns))) + ' |')
    print('|---' * (2 + len(wns)) + '|')
    same = [0] * len(wns)
    diff = [0.0] * len(wns)
    n = 0
    for d, cfg in rows():
        b, mb = cell([booksim(bs, d, cfg, s) for s in range(seeds)])
        ws = [cell([wafernoc(w, d, cfg, s) for s in range(seeds)]) for w in wns]
        name = cfg.replace('configs/', '').replace('_latency.cfg', '')
        print(f"| {name} | {b} | " + ' | '.join(c for c, _ in ws) + ' |', flush=True)
        if mb is not None and all(m is not None for _, m in ws):
            n += 1
            for i, (_, m) in enumerate(ws):
                same[i] += m == mb
                diff[i] += abs(m - mb)
    for i in range(len(wns)):
        print(f"\nwafernoc {i + 1}: {n} rows where all abort; median cycle equal to "
              f"BookSim2's in {same[i]}, mean |difference| {diff[i] / max(n, 1):.0f} cycles")


if __name__ == '__main__':
    main()
