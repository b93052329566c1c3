#!/usr/bin/env python3
"""Two-sample check: BookSim2 seeds 0-19 (results.csv here) against wafernoc
seeds 0..N-1 on the same configurations (docs/validation.md, "Rows that
pass only by the widening, against BookSim2's own seeds").

    tests/data/booksim-seeds/twosample.py WAFERNOC [N]      # N = 40 by default

Runs `WAFERNOC booksim REF/CONFIG seed=S --json --quiet` one after another
(REF: the environment variable, default ../shared/reference/booksim) and
prints, per configuration and metric (mean packet latency, accepted
flits/node/cycle): BookSim2's seed 0, BookSim2's mean and sd, wafernoc's
mean and sd, the relative difference of the means and Welch's
z = (mean_w - mean_b) / sqrt(var_b / n_b + var_w / n_w). Needs python3.
"""
import csv, json, math, os, statistics as st, subprocess, sys

here = os.path.dirname(os.path.abspath(__file__))
ref = os.environ.get("REF", "../shared/reference/booksim")
if len(sys.argv) not in (2, 3):
    sys.exit(__doc__)
wafernoc, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) == 3 else 40

bs = {}
for r in csv.DictReader(open(os.path.join(here, "results.csv"))):
    if r["status"] == "ok":
        bs.setdefault(r["config"], []).append(r)

metrics = [("latency", "avg_pkt_lat", "avg_packet_latency"),
           ("accepted", "accepted_flits_per_node_cycle", "accepted_flits_per_node_cycle")]
print("| config | metric | BookSim2 seed 0 | BookSim2 mean ± sd (n) | wafernoc mean ± sd (n) | diff | z |")
print("|---|---|---|---|---|---|---|")
for cfg, rows in bs.items():
    w = []
    for s in range(n):
        out = subprocess.run([wafernoc, "booksim", os.path.join(ref, cfg), f"seed={s}",
                              "--json", "--quiet"], capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"{cfg} seed {s}: {out.stderr.strip()}")
        d = json.loads(out.stdout)
        if d["status"] == "ok":
            w.append(d)
    for name, bk, wk in metrics:
        b = [float(r[bk]) for r in rows]
        x = [float(d[wk]) for d in w]
        b0 = next(float(r[bk]) for r in rows if r["seed"] == "0")
        z = (st.mean(x) - st.mean(b)) / math.sqrt(st.variance(b) / len(b) + st.variance(x) / len(x))
        diff = 100 * (st.mean(x) / st.mean(b) - 1)
        print(f"| {os.path.basename(cfg)[:-4]} | {name} | {b0:.6g} | {st.mean(b):.6g} ± {st.stdev(b):.3g} ({len(b)}) "
              f"| {st.mean(x):.6g} ± {st.stdev(x):.3g} ({len(x)}) | {diff:+.2f}% | {z:+.2f} |")
