//! Simulator speed: simulated seconds per wall-clock second for one saturating
//! CUBIC flow on a Mahimahi trace, on one thread and on every core (rayon, one
//! independent simulation per core).
//!
//! Run: `AYA_BUILD_SKIP=1 cargo run --release -p plume-cc --example sim_speed [TRACE] [SECONDS]`
//! (default trace: `../shared/traces/mahimahi/ATT-LTE-driving.down`, default
//! duration: ten passes of the trace, about 7860 simulated seconds).
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use plume_cc::congestion::ControllerKind;
use plume_cc::policy::Target;
use plume_cc::rl::{Env, EnvConfig};
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
    trace: &Arc<plume_cc::sim::Schedule>,
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

/// CPU time of the calling thread, seconds (the machine is shared, so wall
/// time alone understates the simulator's own speed).
fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return f64::NAN;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
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
        None => trace.period_ms() * 1000 * 10,
    };
    let sim_s = duration_us as f64 / 1e6;
    println!("trace {} ({:.2} Mbit/s mean), {sim_s:.0} simulated s, cubic, 20 ms one-way, droptail 250 packets",
        path.display(), trace.mean_rate_bits_per_sec() / 1e6);

    // Warm-up (page faults, caches), then the timed single-thread run.
    run(&trace, duration_us.min(10_000_000), 0)?;
    let t = Instant::now();
    let cpu0 = thread_cpu_s();
    let (sent, delivered) = run(&trace, duration_us, 1)?;
    let cpu = thread_cpu_s() - cpu0;
    let wall = t.elapsed().as_secs_f64();
    println!(
        "1 thread : {:.3} s wall, {:.0}x real time, {:.2} M packets/s sent ({sent} sent, {delivered} delivered); \
         {:.3} s thread CPU, {:.0}x real time per CPU-second",
        wall,
        sim_s / wall,
        sent as f64 / wall / 1e6,
        cpu,
        sim_s / cpu
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

    // The RL environment on the same trace: 20 ms monitor intervals, a CUBIC
    // base under the policy's limits (here: none), one pass of the trace.
    let mut env = Env::new(EnvConfig {
        queue_limit: QueueLimit::packets(250),
        ..EnvConfig::default()
    })?;
    let t = Instant::now();
    env.reset(Arc::clone(&trace), 1)?;
    let mut steps = 1u64;
    while !env.step(Target::unlimited())?.done {
        steps += 1;
    }
    let wall = t.elapsed().as_secs_f64();
    let m = env.metrics();
    println!(
        "env      : {steps} steps of 20 ms in {:.3} s wall = {:.0} steps/s, {:.0}x real time (utilization {:.3}, p95 RTT {:.1} ms)",
        wall,
        steps as f64 / wall,
        m.elapsed_us as f64 / 1e6 / wall,
        m.utilization,
        m.p95_rtt_us as f64 / 1000.0
    );
    Ok(())
}
