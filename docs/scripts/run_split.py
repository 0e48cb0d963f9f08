#!/usr/bin/env python3
"""Where `plume-cc run`'s start and stop go: runs `plume-cc run --cgroup CG
--run-for 20ms --log-format json` N times (as root, under the kernel-test
lock) and splits each run's wall time at its log lines' timestamps: exec to
the first line ("starting", i.e. libtorch loaded and main running), to
"controlling" (policy loaded, BPF program loaded, verified and attached),
to "detached", and to the process's end.

usage: run_split.py EXE CGROUP [N]
"""
import datetime
import json
import statistics
import subprocess
import sys
import time

exe, cg = sys.argv[1], sys.argv[2]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 10
rows = []
for _ in range(n):
    t0 = time.time()
    p = subprocess.run(
        [exe, "run", "--cgroup", cg, "--run-for", "20ms", "--log-format", "json"],
        capture_output=True,
        text=True,
    )
    t1 = time.time()
    ts = {}
    for line in p.stderr.splitlines():
        try:
            d = json.loads(line)
        except ValueError:
            continue
        msg = d.get("fields", {}).get("message", "")
        t = datetime.datetime.fromisoformat(d["timestamp"].replace("Z", "+00:00")).timestamp()
        for k in ("starting", "controlling", "detached"):
            if k in msg and k not in ts:
                ts[k] = t
    rows.append(
        (
            (ts["starting"] - t0) * 1e3,
            (ts["controlling"] - ts["starting"]) * 1e3,
            (ts["detached"] - ts["controlling"]) * 1e3,
            (t1 - ts["detached"]) * 1e3,
            (t1 - t0) * 1e3,
        )
    )
names = [
    "exec -> first log line (libtorch loaded)",
    "policy load + BPF load/verify/attach",
    "20 ms run + detach",
    "detached -> process end",
    "total",
]
for i, name in enumerate(names):
    v = sorted(r[i] for r in rows)
    print(f"{name:42s} median {statistics.median(v):6.1f} ms  min {v[0]:.1f} max {v[-1]:.1f}  (n={len(v)})")
