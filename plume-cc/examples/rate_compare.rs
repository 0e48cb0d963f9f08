//! The delivery-rate samples the datapath copies, simulator against kernel,
//! on the windows of a finished sim-to-real folder.
//!
//! The rate anchor is a windowed max of these samples, so a gap in the
//! anchor between the two sides is a gap in their distribution. This probe
//! reruns the simulator's side of each window (as `eval sim-to-real` does)
//! and reads the kernel's copies from the daemon's recording; for every
//! new copy (a callback: `stats_us` / `updated_ns` moved) it takes the
//! sample the copy carries (`rate_delivered` segments over
//! `rate_interval_us`), and prints per side the 10th/50th/90th percentiles
//! and max of the sample (Mbit/s), its interval (in min RTTs) and its
//! segments, and the anchor as the policy's own builder makes it (its
//! anchor floor on both sides). `--csv DIR` also writes every copy of
//! both sides to `DIR/wN.csv`.
//!
//! Run: `cargo run --release -p plume-cc --example rate_compare -- POLICY S2R_DIR [--no-delayed-ack] [--sim-rto plain|undo] [--csv DIR] [--window N --trace-sim T0,T1]`
//! (`--trace-sim` prints the simulated sender's state at every step
//! between T0 and T1 seconds of window N).
//! (the folder's run must have used the same policy, 20 ms one-way delay,
//! 200 packets, 30 s windows).
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use plume_cc::congestion::{ClampModel, Controller as _, ControllerKind};
use plume_cc::daemon::record;
use plume_cc::policy::observation::FlowSample;
use plume_cc::policy::{builder_for, flow_context_from_observation, LoadedPolicy, Target};
use plume_cc::rl::env::{env_action, flow_mss};
use plume_cc::rl::{Env, EnvConfig, MonitorInterval};
use plume_cc::sim::{DatapathModel, MinRttSample, QueueLimit, TimeoutModel};
use plume_cc::trace::MahimahiTrace;

/// One copy of a flow's statistics: its time (s since the first copy),
/// the sample it carries and the state around it.
#[derive(Clone, Copy, Debug)]
struct Copy {
    t_s: f64,
    rate_mbps: f64,
    interval_rtts: f64,
    segments: f64,
    min_rtt_ms: f64,
    srtt_ms: f64,
    cwnd: f64,
    clamp: f64,
    anchor_mbps: f64,
}

fn copy_of(t_s: f64, s: &FlowSample, anchor_bps: f64) -> Copy {
    let mss = f64::from(s.mss_bytes.max(1));
    let rate = if s.rate_interval_us > 0 {
        f64::from(s.rate_delivered_segments) * mss * 8.0 / f64::from(s.rate_interval_us)
    } else {
        0.0
    };
    Copy {
        t_s,
        rate_mbps: rate,
        interval_rtts: f64::from(s.rate_interval_us) / f64::from(s.min_rtt_us.max(1)),
        segments: f64::from(s.rate_delivered_segments),
        min_rtt_ms: f64::from(s.min_rtt_us) / 1e3,
        srtt_ms: f64::from(s.srtt_us) / 1e3,
        cwnd: f64::from(s.cwnd_segments),
        clamp: f64::from(s.cwnd_clamp_segments),
        anchor_mbps: anchor_bps * 8.0 / 1e6,
    }
}

fn quantiles(mut v: Vec<f64>) -> String {
    if v.is_empty() {
        return "-".into();
    }
    v.sort_by(f64::total_cmp);
    format!(
        "{:7.2} {:7.2} {:7.2} {:7.2}",
        plume_cc::stats::quantile(&v, 0.1),
        plume_cc::stats::quantile(&v, 0.5),
        plume_cc::stats::quantile(&v, 0.9),
        v[v.len() - 1]
    )
}

/// The simulator's side of one window, as `eval sim-to-real` runs it: the
/// copies the daemon reads (one per callback).
fn sim_copies(
    policy: &LoadedPolicy,
    trace: &MahimahiTrace,
    delayed_ack: bool,
    seed: u64,
    trace_span: Option<(f64, f64)>,
    timeout_model: TimeoutModel,
) -> anyhow::Result<(Vec<Copy>, f64)> {
    let m = policy.metadata();
    let base = ControllerKind::from_name(&m.base_cc).unwrap_or(ControllerKind::Cubic);
    let window = Arc::new(trace.schedule().clone());
    let mut env = Env::new(
        EnvConfig {
            base,
            competing: Vec::new(),
            competing_start_us: Vec::new(),
            peer_start_us: Vec::new(),
            one_way_delay_us: 20_000,
            queue_limit: QueueLimit::packets(200),
            random_loss: 0.0,
            delayed_ack,
            clamp_model: ClampModel::Kernel,
            datapath_model: DatapathModel::Callbacks,
            timeout_model,
            min_rtt_sample: if timeout_model == TimeoutModel::Undo {
                MinRttSample::Newest
            } else {
                MinRttSample::Echoed
            },
            objective: m.default_objective,
            interval: MonitorInterval::FixedUs(m.monitor_interval_us),
            episode_us: Some(30_000_000),
            ..EnvConfig::default()
        }
        .deploying(m),
    )?;
    let mut obs = env.reset_with_ack_trace(Arc::clone(&window), Some(window), seed)?;
    let mut out: Vec<Copy> = Vec::new();
    let mut last_stats_us = None;
    loop {
        let raw = policy.act_batch(&obs, 1)?[0];
        let action: Target = env_action(&m.action_scaling, &obs, raw, &env);
        let r = env.step(action)?;
        let ctx = flow_context_from_observation(&r.observation, flow_mss(&env));
        if let Some(s) = env.network().and_then(|n| n.sender(0)) {
            let t = r.now_us as f64 / 1e6;
            if trace_span.is_some_and(|(a, b)| t >= a && t <= b) {
                let c = s.counters();
                println!(
                    "  sim {t:.3}: cwnd {} ssthresh {} out {} srtt {} ms timeouts {} retrans {} lost {} delivered {} clamp {} pacing {:?}",
                    s.controller().window_segments(),
                    s.controller().ssthresh_segments(),
                    s.packets_out(),
                    s.srtt_us() / 1000,
                    c.timeouts,
                    c.retransmitted_segments,
                    c.lost_segments,
                    c.delivered_segments,
                    s.controller().cwnd_clamp_segments(),
                    s.controller().pacing_rate_bytes_per_sec(),
                );
            }
            let snap = s.datapath_sample(r.now_us);
            if last_stats_us != Some(snap.stats_us) {
                last_stats_us = Some(snap.stats_us);
                out.push(copy_of(
                    snap.stats_us as f64 / 1e6,
                    &snap,
                    ctx.max_rate_bytes_per_sec,
                ));
            }
        }
        obs = r.observation;
        if r.done {
            break;
        }
    }
    Ok((out, env.metrics().utilization))
}

/// The kernel's side: every new copy of the busiest flow in the recording,
/// through the policy's own builder.
fn kernel_copies(
    policy: &LoadedPolicy,
    rec: &[record::RecordedInterval],
) -> anyhow::Result<Vec<Copy>> {
    let busiest = rec
        .iter()
        .flat_map(|i| i.flows.iter())
        .max_by_key(|f| f.stats.delivered)
        .map(|f| f.cookie);
    let mut b = builder_for(policy, policy.metadata().default_objective);
    let mut out = Vec::new();
    let mut t0 = None;
    let mut last = None;
    for i in rec {
        let Some(f) = i.flows.iter().find(|f| Some(f.cookie) == busiest) else {
            continue;
        };
        let mut s = FlowSample::from(&f.stats);
        s.timestamp_us = i.t_ns / 1000;
        if b.observe(&s).is_err() {
            continue;
        }
        if last == Some(f.stats.updated_ns) {
            continue;
        }
        last = Some(f.stats.updated_ns);
        let t0 = *t0.get_or_insert(f.stats.updated_ns);
        out.push(copy_of(
            (f.stats.updated_ns - t0) as f64 / 1e9,
            &s,
            b.max_rate_bytes_per_sec(),
        ));
    }
    Ok(out)
}

fn print_side(name: &str, c: &[Copy]) {
    let half = &c[c.len() / 2..];
    let col = |f: fn(&Copy) -> f64| quantiles(half.iter().map(f).collect());
    println!(
        "  {name}: {} copies in all, {} in the second half",
        c.len(),
        half.len()
    );
    println!("    sample Mbit/s        {}", col(|c| c.rate_mbps));
    println!("    interval / min RTT   {}", col(|c| c.interval_rtts));
    println!("    segments             {}", col(|c| c.segments));
    println!("    min RTT ms           {}", col(|c| c.min_rtt_ms));
    println!("    srtt ms              {}", col(|c| c.srtt_ms));
    println!("    anchor Mbit/s        {}", col(|c| c.anchor_mbps));
    println!("    cwnd                 {}", col(|c| c.cwnd));
}

fn write_csv(path: &Path, sim: &[Copy], real: &[Copy]) -> anyhow::Result<()> {
    let mut s = String::from(
        "side,t_s,rate_mbps,interval_rtts,segments,min_rtt_ms,srtt_ms,cwnd,clamp,anchor_mbps\n",
    );
    for (side, cs) in [("sim", sim), ("real", real)] {
        for c in cs {
            writeln!(
                s,
                "{side},{:.4},{:.4},{:.3},{},{:.2},{:.2},{},{},{:.4}",
                c.t_s,
                c.rate_mbps,
                c.interval_rtts,
                c.segments,
                c.min_rtt_ms,
                c.srtt_ms,
                c.cwnd,
                c.clamp,
                c.anchor_mbps
            )?;
        }
    }
    std::fs::write(path, s)?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(
        args.len() >= 2,
        "usage: rate_compare POLICY S2R_DIR [--no-delayed-ack] [--csv DIR]"
    );
    let policy = LoadedPolicy::load_or_default(Path::new(&args[0]))?;
    let dir = PathBuf::from(&args[1]);
    let delayed_ack = !args.iter().any(|a| a == "--no-delayed-ack");
    let csv = args
        .iter()
        .position(|a| a == "--csv")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    if let Some(c) = &csv {
        std::fs::create_dir_all(c)?;
    }
    let arg_after = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let trace_span = arg_after("--trace-sim").and_then(|v| {
        let (a, b) = v.split_once(',')?;
        Some((a.parse::<f64>().ok()?, b.parse::<f64>().ok()?))
    });
    let only: Option<u64> = arg_after("--window").and_then(|v| v.parse().ok());
    // As `eval sim-to-real`: spurious timeouts undone and the min RTT from
    // the newest segment, unless `--sim-rto plain` (the simulator of
    // training for both).
    let timeout_model = match arg_after("--sim-rto").as_deref() {
        Some("plain") => TimeoutModel::Plain,
        _ => TimeoutModel::Undo,
    };
    for w in 0.. {
        let trace_path = dir.join("windows").join(format!("w{w}.trace"));
        if !trace_path.is_file() {
            break;
        }
        if only.is_some_and(|o| o != w) {
            continue;
        }
        let trace = MahimahiTrace::read(&trace_path)?;
        let (sim, util) = sim_copies(
            &policy,
            &trace,
            delayed_ack,
            0x51 + w,
            trace_span.filter(|_| only.is_none_or(|o| o == w)),
            timeout_model,
        )?;
        let rec_path = dir.join(format!("w{w}")).join("daemon-record.jsonl");
        let real = if rec_path.is_file() {
            kernel_copies(&policy, &record::read(&rec_path)?)?
        } else {
            Vec::new()
        };
        println!(
            "\n== w{w} {}: capacity {:.2} Mbit/s, sim utilization {:.1}%; p10 p50 p90 max over the second half",
            trace.origin().display(),
            trace.mean_mbps(),
            util * 100.0
        );
        print_side("sim", &sim);
        if !real.is_empty() {
            print_side("real", &real);
        }
        if let Some(c) = &csv {
            write_csv(&c.join(format!("w{w}.csv")), &sim, &real)?;
        }
    }
    Ok(())
}
