//! Two kernel-like flows on the kernel benchmark's link, in the simulator:
//! 12 Mbit/s constant, 20 ms each way, a droptail buffer of X BDPs (40
//! packets per BDP, as `plume-cc bench --queue bdp=X` sizes it), delayed
//! ACKs, 30 s; flow 0 starts at 0 and flow 1 `LATE_S` later. Prints flow
//! 0's share of the bytes delivered over the last 20 s and each flow's
//! retransmissions as a share of what it delivered.
//!
//! Why: the same pairs on the kernel (`plume-cc bench --schemes bbr
//! --competing cubic --queue bdp=X`) say how far the simulator's BBR-like
//! and CUBIC flows are from Linux's when they share a link
//! (docs/BENCHMARKS.md, "BBR beside CUBIC in the simulator").
//!
//! Run: `cargo run --release -p plume-cc --example sim_pair -- A B [BDP] [LATE_S] [SEEDS] [linux]`
//! (A and B `cubic|reno|bbr`; BDP default 1; LATE_S default 0; SEEDS
//! default 3; `linux`: CUBIC and BBR as Linux's, with HyStart and the
//! ACK-aggregation allowance, `CcModel::Linux`). `SIM_PAIR_TRACE=1` prints both flows every 500 ms on
//! stderr.
use plume_cc::congestion::{CcModel, Controller as _, ControllerKind};
use plume_cc::sim::{FlowConfig, Network, NetworkConfig, QueueLimit};

#[path = "const_link/mod.rs"]
mod const_link;

const LENGTH_US: u64 = 30_000_000;
const TAIL_FROM_US: u64 = 10_000_000;
const BDP_PACKETS: f64 = 40.0;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let kind = |i: usize| -> Result<ControllerKind, Box<dyn std::error::Error>> {
        let name = args
            .get(i)
            .ok_or("usage: sim_pair A B [BDP] [LATE_S] [SEEDS]")?;
        ControllerKind::from_name(name).ok_or_else(|| format!("unknown controller {name:?}").into())
    };
    let (a, b) = (kind(0)?, kind(1)?);
    let bdp: f64 = args.get(2).map_or(Ok(1.0), |v| v.parse())?;
    let late_s: f64 = args.get(3).map_or(Ok(0.0), |v| v.parse())?;
    let seeds: u64 = args.get(4).map_or(Ok(3), |v| v.parse())?;
    let cc_model = if args.get(5).is_some_and(|a| a == "linux") {
        CcModel::Linux
    } else {
        CcModel::Classic
    };
    let window = const_link::window(LENGTH_US / 1000 + 1000)?;
    println!("seed,share_a,retrans_a_pct,retrans_b_pct,util");
    for seed in 0..seeds {
        let config = NetworkConfig {
            queue_limit: QueueLimit::packets((bdp * BDP_PACKETS).round() as u32),
            ack_queue_limit: QueueLimit::packets((bdp * BDP_PACKETS).round() as u32),
            delayed_ack: true,
            cc_model,
            flows: vec![
                FlowConfig::new(a),
                FlowConfig {
                    controller: b,
                    start_us: (late_s * 1e6) as u64,
                },
            ],
            ..NetworkConfig::default()
        };
        let mut net = Network::new(
            config,
            window.trace.clone(),
            Some(window.trace.clone()),
            seed,
        )?;
        if std::env::var_os("SIM_PAIR_TRACE").is_some() {
            let mut last = (0u64, 0u64);
            for t in 1..=(LENGTH_US / 500_000) {
                net.run_until(t * 500_000);
                let s0 = net.sender(0).unwrap();
                let s1 = net.sender(1).unwrap();
                let (d0, d1) = (
                    s0.counters().delivered_segments,
                    s1.counters().delivered_segments,
                );
                eprintln!(
                    "{:5.1} a: cwnd {:4} pace {:8.2} Mbit/s srtt {:6.1} min {:5.1} rate {:5.2} | b: cwnd {:4} rate {:5.2}",
                    t as f64 / 2.0,
                    s0.controller().window_segments(),
                    s0.controller().pacing_rate_bytes_per_sec().unwrap_or(0) as f64 * 8e-6,
                    s0.srtt_us() as f64 / 1e3,
                    s0.min_rtt_us() as f64 / 1e3,
                    (d0 - last.0) as f64 * 1448.0 * 16.0 / 1e6,
                    s1.controller().window_segments(),
                    (d1 - last.1) as f64 * 1448.0 * 16.0 / 1e6,
                );
                last = (d0, d1);
            }
        }
        net.run_until(TAIL_FROM_US);
        let at =
            |net: &Network, i: usize| net.sender(i).map_or(0, |s| s.counters().delivered_segments);
        let (a0, b0) = (at(&net, 0), at(&net, 1));
        net.run_until(LENGTH_US);
        let (da, db) = (at(&net, 0) - a0, at(&net, 1) - b0);
        let pct = |i: usize| {
            net.sender(i).map_or(0.0, |s| {
                let c = s.counters();
                100.0 * c.retransmitted_segments as f64 / c.delivered_segments.max(1) as f64
            })
        };
        // 1448-byte payloads against 12 Mbit/s of 1500-byte packets.
        let util = (da + db) as f64 * 1500.0 * 8.0 / 20.0 / 12e6;
        println!(
            "{seed},{:.3},{:.2},{:.2},{:.3}",
            da as f64 / (da + db).max(1) as f64,
            pct(0),
            pct(1),
            util
        );
    }
    Ok(())
}
