//! The sim-to-real check: the same trace window and path, once in the
//! simulator and once across the emulated link with the real kernel, the
//! daemon and iperf3, with the same policy over the same base controller.
//!
//! What is compared, per window:
//! - the outcomes, measured the same way on both sides: utilisation (bytes
//!   that left the bottleneck / its capacity) and the 95th percentile of the
//!   time data packets spent in the bottleneck (queueing plus serialisation,
//!   what Mahimahi's and the emulator's link logs report per packet);
//! - the observation series: the policy's rate anchor, the cwnd and the clamp
//!   written, per monitor interval. The emulator's side comes from the
//!   daemon's own recording (`plume-cc run --record`), run through the same
//!   [`ObservationBuilder`] the daemon uses.
//!
//! A window passes when both outcomes agree within the tolerance (relative
//! to the simulator's value). The path is the bench's: the same trace carries
//! the ACKs (`--downlink same`), droptail in packets on both directions.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use serde::{Deserialize, Serialize};

use crate::bench::{self, scheme::Scheme, BenchConfig};
use crate::congestion::{Controller as _, ControllerKind};
use crate::daemon::record;
use crate::emu::link::DropTail;
use crate::policy::Target;
use crate::policy::{
    flow_context_from_observation,
    observation::{FlowSample, Observation},
    LoadedPolicy, ObservationBuilder,
};
use crate::rl::env::{env_action, flow_mss};
use crate::rl::{Env, EnvConfig, MonitorInterval};
use crate::sim::QueueLimit;
use crate::trace::MahimahiTrace;

use super::EvalError;

/// Settings of a sim-to-real check.
#[derive(Clone, Debug)]
pub struct SimToRealConfig {
    /// Mahimahi trace files to cut windows from.
    pub traces: Vec<PathBuf>,
    /// Number of windows (spread round-robin over the traces).
    pub windows: usize,
    /// Window length, milliseconds.
    pub window_ms: u64,
    /// One-way propagation delay, milliseconds.
    pub delay_ms: u64,
    /// Droptail limit of both link directions, packets.
    pub queue_packets: u32,
    /// Policy file, or `default`.
    pub policy: PathBuf,
    /// Relative tolerance on utilisation and p95 link delay.
    pub tolerance: f64,
    /// Output folder.
    pub out: PathBuf,
    /// iperf3 binary.
    pub iperf3: PathBuf,
    /// The `plume-cc` binary (for the daemon).
    pub plume_exe: PathBuf,
    /// Skip the emulator (simulator side only; needs no root).
    pub sim_only: bool,
    /// The simulator's receiver delays ACKs as Linux's does.
    pub delayed_ack: bool,
    /// How the simulator applies the cwnd clamp.
    pub clamp_model: crate::congestion::ClampModel,
    /// How the simulated datapath sees the flow and applies the limits.
    pub datapath_model: crate::sim::DatapathModel,
    /// The policy's operating point (None: its file's default).
    pub objective: Option<crate::policy::Objective>,
    /// Emulator runs per window (the kernel side varies from run to run;
    /// the simulator's is deterministic): the comparison is with their mean.
    pub repeats: usize,
}

/// One monitor interval of a series.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesPoint {
    /// Seconds since the flow's first interval.
    pub t_s: f64,
    /// The policy's rate anchor, Mbit/s.
    pub anchor_mbps: f64,
    /// cwnd, segments.
    pub cwnd: f64,
    /// cwnd clamp written for the next interval, segments (NaN: none).
    pub clamp: f64,
}

/// One side's outcome on one window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SideResult {
    /// Bytes out of the bottleneck / its capacity.
    pub utilization: f64,
    /// 95th-percentile bottleneck sojourn of data packets, ms.
    pub p95_link_ms: f64,
    /// Mean rate anchor over the window's second half, Mbit/s.
    pub mean_anchor_mbps: f64,
    /// Mean cwnd over the window's second half, segments.
    pub mean_cwnd: f64,
    /// Mean clamp over the window's second half, segments.
    pub mean_clamp: f64,
    /// Congestion control under the flow (the emulator's from iperf3).
    pub base_cc: String,
    /// The interval series.
    pub series: Vec<SeriesPoint>,
}

/// The check on one window.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WindowResult {
    /// `trace@start_s`.
    pub name: String,
    /// Mean capacity of the window, Mbit/s.
    pub capacity_mbps: f64,
    /// Simulator side.
    pub sim: SideResult,
    /// Emulator side: the mean of [`WindowResult::emu_runs`] (None with
    /// `sim_only` or when every run failed).
    pub emu: Option<SideResult>,
    /// Each emulator run (`repeats` of them, less the failed ones).
    #[serde(default)]
    pub emu_runs: Vec<SideResult>,
    /// The emulator run's error, if any.
    pub error: Option<String>,
}

/// The mean of several emulator runs of one window: every figure averaged,
/// the series and base of the first run.
fn mean_side(runs: &[SideResult]) -> Option<SideResult> {
    let first = runs.first()?;
    let n = runs.len() as f64;
    let avg = |f: fn(&SideResult) -> f64| runs.iter().map(f).sum::<f64>() / n;
    Some(SideResult {
        utilization: avg(|r| r.utilization),
        p95_link_ms: avg(|r| r.p95_link_ms),
        mean_anchor_mbps: avg(|r| r.mean_anchor_mbps),
        mean_cwnd: avg(|r| r.mean_cwnd),
        mean_clamp: avg(|r| r.mean_clamp),
        base_cc: first.base_cc.clone(),
        series: first.series.clone(),
    })
}

fn rel(a: f64, b: f64) -> f64 {
    if b.abs() < 1e-12 {
        if a.abs() < 1e-12 {
            0.0
        } else {
            f64::INFINITY
        }
    } else {
        (a - b).abs() / b.abs()
    }
}

impl WindowResult {
    /// |emu - sim| / sim of utilisation and of p95 link delay.
    pub fn gaps(&self) -> Option<(f64, f64)> {
        let e = self.emu.as_ref()?;
        Some((
            rel(e.utilization, self.sim.utilization),
            rel(e.p95_link_ms, self.sim.p95_link_ms),
        ))
    }

    /// Both gaps within `tol`.
    pub fn passes(&self, tol: f64) -> bool {
        self.gaps().is_some_and(|(u, d)| u <= tol && d <= tol)
    }
}

/// Picks `n` windows of `window_ms`, round-robin over `traces` (sorted),
/// skipping each trace's first window (the trace's own start-up) and windows
/// under 0.5 Mbit/s. Returns (name, trace window).
pub fn pick_windows(
    traces: &[PathBuf],
    n: usize,
    window_ms: u64,
) -> Result<Vec<(String, MahimahiTrace)>, EvalError> {
    let mut loaded = Vec::new();
    let mut sorted = traces.to_vec();
    sorted.sort();
    for p in &sorted {
        loaded.push(MahimahiTrace::read(p)?);
    }
    let mut next = vec![1u64; loaded.len()];
    let mut out = Vec::new();
    let mut stalled = 0;
    let mut i = 0;
    while out.len() < n && stalled < loaded.len() {
        let t = &loaded[i % loaded.len()];
        let k = &mut next[i % loaded.len()];
        i += 1;
        let mut found = false;
        while (*k + 1) * window_ms <= t.period_ms() {
            let start = *k * window_ms;
            *k += 1;
            let ops: Vec<u64> = t
                .timestamps_ms()
                .iter()
                .filter(|&&x| x > start && x <= start + window_ms)
                .map(|&x| x - start)
                .collect();
            let mbps = ops.len() as f64 * crate::trace::OPPORTUNITY_BYTES as f64 * 8.0
                / (window_ms as f64 * 1000.0);
            if mbps < 0.5 {
                continue;
            }
            let name = format!(
                "{}@{}s",
                t.origin()
                    .file_name()
                    .map_or_else(|| "trace".into(), |s| s.to_string_lossy()),
                start / 1000
            );
            out.push((name.clone(), MahimahiTrace::from_timestamps(name, ops)?));
            found = true;
            break;
        }
        stalled = if found { 0 } else { stalled + 1 };
    }
    if out.len() < n {
        return Err(EvalError::Config(format!(
            "only {} windows of {} ms with at least 0.5 Mbit/s in the traces, {n} asked",
            out.len(),
            window_ms
        )));
    }
    Ok(out)
}

fn second_half_mean(series: &[SeriesPoint], f: impl Fn(&SeriesPoint) -> f64) -> f64 {
    let half = series.len() / 2;
    let v: Vec<f64> = series[half..]
        .iter()
        .map(f)
        .filter(|x| x.is_finite())
        .collect();
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn clamp_value(c: u32) -> f64 {
    if c == plume_cc_common::CWND_UNCLAMPED {
        f64::NAN
    } else {
        f64::from(c)
    }
}

/// Runs `policy` on `trace` in the simulator with the ACKs through the same
/// trace, as the emulator's bench path does.
pub fn run_sim(
    policy: Option<&LoadedPolicy>,
    base: ControllerKind,
    trace: &MahimahiTrace,
    cfg: &SimToRealConfig,
    seed: u64,
) -> Result<SideResult, EvalError> {
    run_sim_observed(policy, base, trace, cfg, seed, &mut |_, _| {})
}

/// [`run_sim`] that also hands every observation the policy acted on, with
/// its raw action, to `on_step` (the feature-by-feature comparison with the
/// kernel's side, `examples/obs_compare.rs`).
pub fn run_sim_observed(
    policy: Option<&LoadedPolicy>,
    base: ControllerKind,
    trace: &MahimahiTrace,
    cfg: &SimToRealConfig,
    seed: u64,
    on_step: &mut dyn FnMut(&Observation, Option<[f32; 2]>),
) -> Result<SideResult, EvalError> {
    let interval_us = policy.map_or(20_000, |p| p.metadata().monitor_interval_us);
    let window = Arc::new(trace.schedule().clone());
    let mut env = Env::new(EnvConfig {
        base,
        competing: Vec::new(),
        competing_start_us: Vec::new(),
        peer_start_us: Vec::new(),
        one_way_delay_us: cfg.delay_ms * 1000,
        queue_limit: QueueLimit::packets(cfg.queue_packets),
        random_loss: 0.0,
        delayed_ack: cfg.delayed_ack,
        clamp_model: cfg.clamp_model,
        datapath_model: cfg.datapath_model,
        objective: cfg
            .objective
            .or(policy.map(|p| p.metadata().default_objective))
            .unwrap_or_default(),
        // A policy is fed the observation it was trained on.
        observation_version: policy.map_or(crate::policy::observation::OBSERVATION_VERSION, |p| {
            p.metadata().observation.version
        }),
        interval: MonitorInterval::FixedUs(interval_us),
        // ... and decides as the daemon runs it.
        cadence: policy.map_or(Default::default(), |p| p.metadata().action_scaling.decide),
        episode_us: Some(cfg.window_ms * 1000),
    })?;
    let mut obs = env.reset_with_ack_trace(Arc::clone(&window), Some(window), seed)?;
    let mut series = Vec::new();
    loop {
        let raw = match policy {
            Some(p) => Some(p.act_batch(&obs, 1)?[0]),
            None => None,
        };
        on_step(&obs, raw);
        let action = match (policy, raw) {
            (Some(p), Some(raw)) => env_action(&p.metadata().action_scaling, &obs, raw, &env),
            _ => Target::unlimited(),
        };
        let r = env.step(action)?;
        let ctx = flow_context_from_observation(&r.observation, flow_mss(&env));
        let cwnd = env
            .network()
            .and_then(|n| n.sender(0))
            .map_or(0.0, |s| f64::from(s.controller().window_segments()));
        series.push(SeriesPoint {
            t_s: r.now_us as f64 / 1e6,
            anchor_mbps: ctx.max_rate_bytes_per_sec * 8.0 / 1e6,
            cwnd,
            clamp: clamp_value(action.cwnd_clamp_segments),
        });
        obs = r.observation;
        if r.done {
            break;
        }
    }
    let m = env.metrics();
    let p95 = env
        .network()
        .and_then(|n| n.link_delay_histogram(0))
        .map_or(0, |h| h.quantile_us(0.95));
    Ok(SideResult {
        utilization: m.utilization,
        p95_link_ms: p95 as f64 / 1000.0,
        mean_anchor_mbps: second_half_mean(&series, |p| p.anchor_mbps),
        mean_cwnd: second_half_mean(&series, |p| p.cwnd),
        mean_clamp: second_half_mean(&series, |p| p.clamp),
        base_cc: base.name().to_string(),
        series,
    })
}

/// The busiest flow of a daemon recording (the iperf3 data connection; its
/// control connection carries a few hundred bytes): each interval's read of
/// it, with its statistics as the daemon builds them, timed at the poll.
fn busiest_flow(
    rec: &[record::RecordedInterval],
) -> impl Iterator<Item = (u64, &record::RecordedFlow, FlowSample)> {
    let busiest = rec
        .iter()
        .flat_map(|i| i.flows.iter())
        .max_by_key(|f| f.stats.delivered)
        .map(|f| f.cookie);
    rec.iter().filter_map(move |i| {
        let f = i.flows.iter().find(|f| Some(f.cookie) == busiest)?;
        let mut s = FlowSample::from(&f.stats);
        s.timestamp_us = i.t_ns / 1000;
        Some((i.t_ns, f, s))
    })
}

/// The series of the busiest flow of a daemon recording, through the
/// daemon's own observation builder.
pub fn series_from_recording(
    rec: &[record::RecordedInterval],
    objective: crate::policy::Objective,
) -> Vec<SeriesPoint> {
    let mut b = ObservationBuilder::with_objective(objective);
    let mut t0 = None;
    let mut out = Vec::new();
    for (t_ns, f, s) in busiest_flow(rec) {
        if b.observe(&s).is_err() {
            continue;
        }
        let t0 = *t0.get_or_insert(t_ns);
        out.push(SeriesPoint {
            t_s: (t_ns - t0) as f64 / 1e9,
            anchor_mbps: b.max_rate_bytes_per_sec() * 8.0 / 1e6,
            cwnd: f64::from(f.stats.snd_cwnd),
            clamp: clamp_value(f.target_cwnd_clamp),
        });
    }
    out
}

/// The observations of the busiest flow of a daemon recording, as the
/// daemon's builder made them (what [`series_from_recording`] summarises),
/// through `b`: a new builder at the daemon's objective and the policy's
/// observation version.
pub fn observations_from_recording(
    rec: &[record::RecordedInterval],
    mut b: ObservationBuilder,
) -> Vec<Observation> {
    busiest_flow(rec)
        .filter_map(|(_, _, s)| b.observe(&s).ok())
        .collect()
}

/// Runs the policy across the emulated link on `trace_file`, with the daemon
/// recording.
fn run_emu(cfg: &SimToRealConfig, trace_file: &Path, dir: &Path) -> Result<SideResult, EvalError> {
    let rec_path = dir.join("daemon-record.jsonl");
    let scheme = match cfg.policy.to_str().and_then(ControllerKind::from_name) {
        Some(kind) => Scheme::Kernel(kind.name().to_string()),
        None => Scheme::Plume {
            policy: (cfg.policy.as_os_str() != "default").then(|| cfg.policy.clone()),
            daemon_args: {
                let mut a = vec!["--record".into(), rec_path.display().to_string()];
                if let Some(o) = cfg.objective {
                    a.extend(["--objective".into(), o.delay_weight().to_string()]);
                }
                a
            },
            label: "plume".into(),
        },
    };
    let queue = DropTail {
        packets: Some(cfg.queue_packets as usize),
        bytes: None,
    };
    let bench_cfg = BenchConfig {
        iperf3: cfg.iperf3.clone(),
        ..BenchConfig::single(
            vec![trace_file.to_path_buf()],
            vec![scheme.clone()],
            Duration::from_millis(cfg.window_ms),
            Duration::from_millis(cfg.delay_ms),
            queue,
            dir.to_path_buf(),
            cfg.plume_exe.clone(),
        )
    };
    let setting = bench::Setting {
        delay: Duration::from_millis(cfg.delay_ms),
        queue: bench::QueueSpec::Fixed(queue),
    };
    let r = bench::run_one(&bench_cfg, trace_file, &setting, &scheme, 1, dir)?;
    let series = match scheme {
        Scheme::Plume { .. } => {
            series_from_recording(&record::read(&rec_path)?, cfg.objective.unwrap_or_default())
        }
        Scheme::Kernel(_) => Vec::new(),
    };
    Ok(SideResult {
        utilization: r.utilization,
        p95_link_ms: r.p95_queueing_ms,
        mean_anchor_mbps: second_half_mean(&series, |p| p.anchor_mbps),
        mean_cwnd: second_half_mean(&series, |p| p.cwnd),
        mean_clamp: second_half_mean(&series, |p| p.clamp),
        base_cc: r.sender_cc,
        series,
    })
}

/// Runs the whole check; `progress` hears one line per finished side.
pub fn run(
    cfg: &SimToRealConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<WindowResult>, EvalError> {
    if cfg.windows == 0 || cfg.window_ms < 1000 || cfg.queue_packets == 0 {
        return Err(EvalError::Setting(format!(
            "--windows must be >= 1, --window >= 1s, --queue-packets >= 1 (got {}, {}, {})",
            cfg.windows, cfg.window_ms, cfg.queue_packets
        )));
    }
    // A kernel controller's name instead of a policy: that controller alone
    // on both sides (the fidelity of the base itself).
    let policy = match cfg.policy.to_str().and_then(ControllerKind::from_name) {
        Some(_) => None,
        None => Some(LoadedPolicy::load_or_default(&cfg.policy)?),
    };
    let base_name = match (&policy, cfg.policy.to_str()) {
        (Some(p), _) => p.metadata().base_cc.clone(),
        (None, Some(cc)) => cc.to_string(),
        (None, None) => "cubic".to_string(),
    };
    let base = ControllerKind::from_name(&base_name).unwrap_or(ControllerKind::Cubic);
    let windows = pick_windows(&cfg.traces, cfg.windows, cfg.window_ms)?;
    let wdir = cfg.out.join("windows");
    std::fs::create_dir_all(&wdir).map_err(|source| EvalError::Io {
        path: wdir.clone(),
        source,
    })?;
    let mut results = Vec::new();
    for (i, (name, trace)) in windows.iter().enumerate() {
        let file = wdir.join(format!("w{i}.trace"));
        trace.write(&file)?;
        let sim = run_sim(policy.as_ref(), base, trace, cfg, 0x51_u64 + i as u64)?;
        progress(&format!(
            "[{}/{}] {name} sim: utilization {:.1}%, p95 link delay {:.0} ms",
            i + 1,
            windows.len(),
            sim.utilization * 100.0,
            sim.p95_link_ms
        ));
        let mut runs = Vec::new();
        let mut error = None;
        if !cfg.sim_only {
            let repeats = cfg.repeats.max(1);
            for r in 0..repeats {
                let dir = if repeats == 1 {
                    cfg.out.join(format!("w{i}"))
                } else {
                    cfg.out.join(format!("w{i}-r{r}"))
                };
                match run_emu(cfg, &file, &dir) {
                    Ok(e) => {
                        progress(&format!(
                            "[{}/{}] {name} emulator ({}) run {}/{repeats}: utilization {:.1}%, p95 link delay {:.0} ms",
                            i + 1,
                            windows.len(),
                            e.base_cc,
                            r + 1,
                            e.utilization * 100.0,
                            e.p95_link_ms
                        ));
                        runs.push(e);
                    }
                    Err(e) => {
                        progress(&format!(
                            "[{}/{}] {name} emulator run {}/{repeats} failed: {e}",
                            i + 1,
                            windows.len(),
                            r + 1
                        ));
                        error = Some(e.to_string());
                    }
                }
            }
        }
        let emu = mean_side(&runs);
        results.push(WindowResult {
            name: name.clone(),
            capacity_mbps: trace.mean_mbps(),
            sim,
            emu,
            emu_runs: runs,
            error,
        });
    }
    Ok(results)
}

fn pct(v: f64) -> String {
    if v.is_finite() {
        format!("{:.0}%", v * 100.0)
    } else {
        "–".into()
    }
}

/// ` (lo-hi)` over several runs, empty for one.
fn spread(runs: &[SideResult], f: fn(&SideResult) -> f64, d: usize) -> String {
    if runs.len() < 2 {
        return String::new();
    }
    let lo = runs.iter().map(f).fold(f64::INFINITY, f64::min);
    let hi = runs.iter().map(f).fold(f64::NEG_INFINITY, f64::max);
    format!(" ({lo:.d$}-{hi:.d$})")
}

fn num(v: f64, d: usize) -> String {
    if v.is_finite() {
        format!("{v:.d$}")
    } else {
        "–".into()
    }
}

/// The Markdown report.
pub fn markdown(cfg: &SimToRealConfig, results: &[WindowResult]) -> String {
    use std::fmt::Write as _;
    let mut s = format!(
        "Sim-to-real: policy `{}`, {} ms windows, {} ms one-way delay, {}-packet droptail, \
         ACKs through the same trace, simulated receiver {}, simulated clamp `{}`, simulated datapath `{}`; \
         real: mean of {} emulator run(s) per window (range in brackets); tolerance {:.0}%.\n\n\
         | window | capacity Mbit/s | base (sim / real) | utilization sim | real | gap | p95 link delay ms sim | real | gap | anchor Mbit/s sim | real | cwnd sim | real | clamp sim | real | pass |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        cfg.policy.display(),
        cfg.window_ms,
        cfg.delay_ms,
        cfg.queue_packets,
        if cfg.delayed_ack {
            "with delayed ACKs"
        } else {
            "ACKing every segment"
        },
        match cfg.clamp_model {
            crate::congestion::ClampModel::Kernel => "kernel",
            crate::congestion::ClampModel::Immediate => "immediate",
        },
        match cfg.datapath_model {
            crate::sim::DatapathModel::Callbacks => "callbacks",
            crate::sim::DatapathModel::Interval => "interval",
        },
        cfg.repeats.max(1),
        cfg.tolerance * 100.0
    );
    for r in results {
        let e = r.emu.clone().unwrap_or_default();
        let (gu, gd) = r.gaps().unwrap_or((f64::NAN, f64::NAN));
        let _ = writeln!(
            s,
            "| {} | {:.2} | {} / {} | {:.1}% | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.name,
            r.capacity_mbps,
            r.sim.base_cc,
            if r.emu.is_some() { e.base_cc.as_str() } else { "–" },
            r.sim.utilization * 100.0,
            if r.emu.is_some() { format!("{:.1}%{}", e.utilization * 100.0, spread(&r.emu_runs, |x| x.utilization * 100.0, 1)) } else { r.error.clone().unwrap_or_else(|| "–".into()).replace('|', "/") },
            pct(gu),
            r.sim.p95_link_ms,
            if r.emu.is_some() { format!("{}{}", num(e.p95_link_ms, 0), spread(&r.emu_runs, |x| x.p95_link_ms, 0)) } else { "–".into() },
            pct(gd),
            num(r.sim.mean_anchor_mbps, 2),
            num(e.mean_anchor_mbps, 2),
            num(r.sim.mean_cwnd, 0),
            num(e.mean_cwnd, 0),
            num(r.sim.mean_clamp, 0),
            num(e.mean_clamp, 0),
            if r.emu.is_none() {
                "–"
            } else if r.passes(cfg.tolerance) {
                "yes"
            } else {
                "no"
            },
        );
    }
    let checked: Vec<&WindowResult> = results.iter().filter(|r| r.emu.is_some()).collect();
    if !checked.is_empty() {
        let passed = checked.iter().filter(|r| r.passes(cfg.tolerance)).count();
        let mean = |f: &dyn Fn(&WindowResult) -> f64| {
            checked.iter().map(|r| f(r)).sum::<f64>() / checked.len() as f64
        };
        let _ = writeln!(
            s,
            "\n{passed} of {} windows within {:.0}% on both. Mean gap: utilization {}, p95 link delay {}. \
             Anchor, cwnd and clamp are means over each window's second half.",
            checked.len(),
            cfg.tolerance * 100.0,
            pct(mean(&|r| r.gaps().map_or(f64::NAN, |g| g.0))),
            pct(mean(&|r| r.gaps().map_or(f64::NAN, |g| g.1))),
        );
    }
    s
}
