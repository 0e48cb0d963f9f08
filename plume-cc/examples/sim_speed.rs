//! Simulator speed: simulated seconds per wall-clock second for one saturating
//! CUBIC flow on a Mahimahi trace, on one thread and on every core (rayon, one
//! independent simulation per core).
//!
//! Run: `AYA_BUILD_SKIP=1 cargo run --release -p plume-cc --example sim_speed [TRACE] [SECONDS]`
//! (default trace: `../shared/traces/mahimahi/ATT-LTE-driving.down`, default
//! duration: one pass of the trace).
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use plume_cc::congestion::ControllerKind;
use plume_cc::sim::{load_mahimahi, FlowConfig, Network, NetworkConfig, QueueLimit};
use rayon::prelude::*;

fn config() -> NetworkConfig {
    NetworkConfig {
        one_way_delay_us: 20_000,
        queue_limit: QueueLimit::packets(250),
        flows: vec![FlowConfig::new(ControllerKind::Cubic)],
        ..NetworkConfig::default()
    }
}

/// Runs one simulation; returns (segments sent, segments delivered).
fn run(
    trace: &Arc<plume_cc::sim::CapacityTrace>,
    duration_us: u64,
    seed: u64,
) -> anyhow::Result<(u64, u64)> {
    let mut net = Network::new(config(), Arc::clone(trace), None, seed)?;
    net.run_until(duration_us);
    let c = net
        .sender(0)
        .ok_or_else(|| anyhow::anyhow!("no flow"))?
        .counters();
    Ok((c.sent_segments, c.delivered_segments))
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/traces/mahimahi/ATT-LTE-driving.down"
        ))
    });
    let trace = Arc::new(load_mahimahi(&path)?);
    let duration_us = match args.next() {
        Some(s) => s.parse::<u64>()? * 1_000_000,
        None => trace.period_ms() * 1000,
    };
    let sim_s = duration_us as f64 / 1e6;
    println!("trace {} ({:.2} Mbit/s mean), {sim_s:.0} simulated s, cubic, 20 ms one-way, droptail 250 packets",
        path.display(), trace.mean_rate_bits_per_sec() / 1e6);

    // Warm-up (page faults, caches), then the timed single-thread run.
    run(&trace, duration_us.min(10_000_000), 0)?;
    let t = Instant::now();
    let (sent, delivered) = run(&trace, duration_us, 1)?;
    let wall = t.elapsed().as_secs_f64();
    println!(
        "1 thread : {:.3} s wall, {:.0}x real time, {:.2} M packets/s sent ({sent} sent, {delivered} delivered)",
        wall,
        sim_s / wall,
        sent as f64 / wall / 1e6
    );

    let threads = rayon::current_num_threads();
    let t = Instant::now();
    let results = (0..threads as u64)
        .into_par_iter()
        .map(|seed| run(&trace, duration_us, seed + 2))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let wall = t.elapsed().as_secs_f64();
    let sent: u64 = results.iter().map(|r| r.0).sum();
    println!(
        "{threads} threads: {:.3} s wall, {:.0}x real time aggregate, {:.2} M packets/s sent",
        wall,
        sim_s * threads as f64 / wall,
        sent as f64 / wall / 1e6
    );
    Ok(())
}
