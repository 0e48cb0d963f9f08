"""A plume flow's loss response in a daemon recording (`plume-cc bench --record`'s
daemon-record.jsonl): how often its ssthresh fell below the clamp in force (each
clamp write sets ssthresh to the clamp, TCP_BPF_SNDCWND_CLAMP; only a congestion
event, or HyStart, lowers it) and how many intervals passed before a clamp write
put it back; with `series FROM TO`, the interval-by-interval cwnd, ssthresh, clamp
in force, clamp written, retransmits and srtt between FROM and TO seconds.

Only the flow that acknowledged the most bytes is read: iperf3's control
connection is in the daemon's cgroup too. docs/BENCHMARKS.md, "Holding the clamp
after a loss".

    python3 docs/scripts/ssthresh_series.py RECORDING [series FROM TO]
"""
import json
import sys


def main():
    lines = [json.loads(l) for l in open(sys.argv[1])]
    acked = {}
    for d in lines:
        for f in d["flows"]:
            acked[f["cookie"]] = max(acked.get(f["cookie"], 0), f["bytes_acked"])
    if not acked:
        sys.exit("no flows in the recording")
    bulk = max(acked, key=acked.get)
    rows = [(d["t_ns"], f) for d in lines for f in d["flows"] if f["cookie"] == bulk]
    t0 = rows[0][0]
    if len(sys.argv) > 2 and sys.argv[2] == "series":
        lo, hi = float(sys.argv[3]), float(sys.argv[4])
        print("t_s,cwnd,ssthresh,clamp_in_force,clamp_written,retransmits,srtt_ms")
        for t, f in rows:
            s = (t - t0) / 1e9
            if lo <= s <= hi:
                print(f"{s:.3f},{f['snd_cwnd']},{f['snd_ssthresh']},{f['applied_cwnd_clamp']},"
                      f"{f['target_cwnd_clamp']},{f['total_retrans']},{f['srtt_us'] / 1000:.0f}")
        return
    episodes, below = [], None
    for _, f in rows:
        if f["snd_ssthresh"] < f["applied_cwnd_clamp"]:
            below = (below or 0) + 1
        elif below is not None:
            episodes.append(below)
            below = None
    n = len(rows)
    nb = sum(1 for _, f in rows if f["snd_ssthresh"] < f["applied_cwnd_clamp"])
    ch = sum(1 for a, b in zip(rows, rows[1:])
             if a[1]["applied_cwnd_clamp"] != b[1]["applied_cwnd_clamp"])
    print(f"intervals {n}, ssthresh below the clamp in force in {nb} ({100 * nb / n:.1f}%)")
    print(f"times ssthresh fell below the clamp and a write put it back: {len(episodes)}")
    if episodes:
        episodes.sort()
        print(f"intervals until then: median {episodes[len(episodes) // 2]}, max {episodes[-1]}")
    print(f"clamp in force changed between intervals: {ch} of {n - 1} ({100 * ch / (n - 1):.0f}%)")
    print(f"retransmits: {rows[-1][1]['total_retrans'] - rows[0][1]['total_retrans']}")


if __name__ == "__main__":
    main()
