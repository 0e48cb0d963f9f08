#!/usr/bin/env python3
"""Process start-up as an operator waits for it: the wall time of N runs of
each command, the commands interleaved round by round (so that load from
elsewhere hits each alike), with the median, the quartiles and the range.

usage: startup.py N LABEL -- CMD... [';;' LABEL -- CMD...]
e.g.   startup.py 20 help -- target/release/plume-cc --help ';;' status -- target/release/plume-cc status
"""
import statistics
import subprocess
import sys
import time

n = int(sys.argv[1])
groups, cur = [], []
for a in sys.argv[2:]:
    if a == ";;":
        groups.append(cur)
        cur = []
    else:
        cur.append(a)
groups.append(cur)
res = {g[0]: [] for g in groups}
for _ in range(n):
    for g in groups:
        cmd = g[g.index("--") + 1 :]
        t = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        res[g[0]].append((time.perf_counter() - t) * 1000)
for label, v in res.items():
    v.sort()
    q = statistics.quantiles(v, n=4)
    print(
        f"{label:32s} n={len(v)} median {statistics.median(v):7.1f} ms"
        f"  IQR {q[0]:.1f}-{q[2]:.1f}  min {v[0]:.1f} max {v[-1]:.1f}"
    )
