#!/usr/bin/env python3
"""wafernoc's avg_flit_latency against BookSim2's avg_flit_lat, row by row.

    REF=../shared/reference/booksim tests/flit_latency.py BIN [BIN2 ...]

Runs `BIN booksim REF/CFG --json` (seed 0, as results.csv) on every row of
REF/results.csv that has a flit latency (status ok in latency mode, and
every throughput-mode row), prints one line per row with each binary's
flit latency and error, then per binary and mode the median |error| and
the rows within 3%. docs/validation.md ("Flit latency") quotes it.
"""
import csv
import json
import os
import subprocess
import sys

ref = os.environ.get("REF", "../shared/reference/booksim")
bins = sys.argv[1:]
if not bins:
    sys.exit(__doc__)
errs = {(b, m): [] for b in bins for m in ("latency", "throughput")}
for r in csv.DictReader(open(os.path.join(ref, "results.csv"))):
    if r["status"] not in ("ok", "throughput_mode") or not r["avg_flit_lat"]:
        continue
    want = float(r["avg_flit_lat"])
    cells = []
    for b in bins:
        p = subprocess.run([b, "booksim", os.path.join(ref, r["config"]), "--json"],
                           capture_output=True, text=True, check=True)
        j = json.loads(p.stdout)
        got = j["avg_flit_latency"]
        if got is None or j["status"] != "ok":
            cells.append(j["status"])
            continue
        e = 100 * (got - want) / want
        errs[(b, r["sim_type"])].append(abs(e))
        cells.append(f"{got:.3f} ({e:+.2f}%)")
    print(f"{r['config']}  BookSim2 {want:.3f}  " + "  ".join(cells), flush=True)
for (b, mode), v in errs.items():
    v.sort()
    if v:
        print(f"{b} {mode}: {len(v)} rows, median |error| {v[len(v) // 2]:.2f}%, "
              f"max {v[-1]:.2f}%, within 3%: {sum(x <= 3 for x in v)}")
