//! Every flow of a daemon recording, interval by interval: its rate
//! anchor as the daemon's own observation builder rebuilds it, beside the
//! kernel's cwnd, the clamp and pacing cap the daemon wrote, and the
//! flow's delivery rate.
//!
//! Why: `plume-cc bench` reports how several flows split a link, not why;
//! whether a flow's clamp binds (cwnd at the clamp) and how its anchor
//! compares with its share of the link are the questions of
//! docs/BENCHMARKS.md, "Sharing the link: why the default is not fair
//! among 2-3 flows". The recording has no anchor (it is the builder's
//! state), so it is replayed through a builder of the policy's version
//! and objective, as the daemon made it.
//!
//! Run on a `plume-cc bench --record` run folder's recording:
//! `cargo run --release -p plume-cc --example flow_anchor -- RECORDING [OBJECTIVE] [VERSION] [MIN_SEGMENTS] [FLOOR_MS] [path]`
//! (OBJECTIVE the daemon's delay weight, default 0.05, the default
//! policy's; VERSION the policy's observation version, default 3; flows
//! that delivered fewer than MIN_SEGMENTS, default 1000, are left out:
//! iperf3's control connections, though their min RTT still counts for
//! `path`; FLOOR_MS the policy's `anchor_window_floor_ms`, default 0;
//! `path` when the policy has `path_min_rtt`: each flow's min RTT is then
//! the smallest of the flows to its address, as the daemon took it).
//! Prints CSV on stdout: one line per flow and interval, flows numbered by
//! their first appearance; `min_rtt_ms` is the one the builder was given.
use std::collections::BTreeMap;
use std::path::PathBuf;

use plume_cc::daemon::record;
use plume_cc::policy::observation::FlowSample;
use plume_cc::policy::{Objective, ObservationBuilder};
use plume_cc_common::{CWND_UNCLAMPED, PACING_UNLIMITED};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first().map(PathBuf::from) else {
        return Err("usage: flow_anchor RECORDING [OBJECTIVE] [VERSION] [MIN_SEGMENTS]".into());
    };
    let objective = Objective::parse(args.get(1).map_or("0.05", String::as_str))?;
    let version: u32 = args.get(2).map_or(Ok(3), |v| v.parse())?;
    let min_segments: u32 = args.get(3).map_or(Ok(1000), |v| v.parse())?;
    let floor_ms: u64 = args.get(4).map_or(Ok(0), |v| v.parse())?;
    let share_path = args.get(5).is_some_and(|a| a == "path");
    let rec = record::read(&path)?;
    let t0 = rec.first().map_or(0, |i| i.t_ns);
    // The busy flows, by first appearance.
    let mut last_delivered: BTreeMap<u64, u32> = BTreeMap::new();
    let mut first_seen: Vec<u64> = Vec::new();
    for f in rec.iter().flat_map(|i| i.flows.iter()) {
        if !last_delivered.contains_key(&f.cookie) {
            first_seen.push(f.cookie);
        }
        last_delivered.insert(f.cookie, f.stats.delivered);
    }
    let busy: Vec<u64> = first_seen
        .into_iter()
        .filter(|c| last_delivered[c] >= min_segments)
        .collect();
    println!("flow,t_s,anchor_mbps,rate_sample_mbps,min_rtt_ms,srtt_ms,cwnd,ssthresh,clamp,pacing_mbps,packets_out,total_retrans,delivered,mss");
    for (n, cookie) in busy.iter().enumerate() {
        let mut b = ObservationBuilder::with_version(objective, version)?;
        if floor_ms > 0 {
            b = b.with_anchor_floor_us(floor_ms * 1000);
        }
        for i in &rec {
            let Some(f) = i.flows.iter().find(|f| f.cookie == *cookie) else {
                continue;
            };
            // As the daemon builds it: the poll's time, the copy's fields.
            let mut s = FlowSample::from(&f.stats);
            s.timestamp_us = i.t_ns / 1000;
            if share_path && f.stats.family == 2 {
                for o in &i.flows {
                    if o.stats.remote_ip4 == f.stats.remote_ip4 && o.stats.min_rtt_us > 0 {
                        s.min_rtt_us = s.min_rtt_us.min(o.stats.min_rtt_us);
                    }
                }
            }
            if b.observe(&s).is_err() {
                b.reset();
                if b.observe(&s).is_err() {
                    continue;
                }
            }
            let st = &f.stats;
            let sample_mbps = if st.rate_interval_us > 0 {
                f64::from(st.rate_delivered) * f64::from(st.mss) * 8.0
                    / f64::from(st.rate_interval_us)
            } else {
                0.0
            };
            let clamp = if f.target_cwnd_clamp == CWND_UNCLAMPED {
                -1.0
            } else {
                f64::from(f.target_cwnd_clamp)
            };
            let pacing = if f.target_pacing == PACING_UNLIMITED {
                -1.0
            } else {
                f64::from(f.target_pacing) * 8.0 / 1e6
            };
            println!(
                "{n},{:.3},{:.3},{:.3},{:.1},{:.1},{},{},{},{:.3},{},{},{},{}",
                (i.t_ns.saturating_sub(t0)) as f64 / 1e9,
                b.max_rate_bytes_per_sec() * 8.0 / 1e6,
                sample_mbps,
                f64::from(s.min_rtt_us) / 1e3,
                f64::from(st.srtt_us) / 1e3,
                st.snd_cwnd,
                st.snd_ssthresh,
                clamp,
                pacing,
                st.packets_out,
                st.total_retrans,
                st.delivered,
                st.mss,
            );
        }
    }
    Ok(())
}
