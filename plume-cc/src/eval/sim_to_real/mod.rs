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
//!
//! One file per concern:
//! - `windows`: which trace windows the check runs on;
//! - `sim`: the simulator's side (and its observation series);
//! - `kernel`: the emulator's side with the real kernel and the daemon's
//!   recording, read back into series and observations;
//! - `report`: the Markdown table.
//!
//! This file holds the settings, the per-side and per-window results and
//! the run that puts the sides together.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::congestion::ControllerKind;
use crate::policy::LoadedPolicy;

use super::EvalError;

mod kernel;
mod report;
mod sim;
mod windows;

pub use kernel::{observations_from_recording, series_from_recording};
pub use report::markdown;
pub use sim::{run_sim, run_sim_observed};
pub use windows::pick_windows;

use kernel::run_emu;

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
    /// Whether the simulated senders undo a spurious timeout.
    pub timeout_model: crate::sim::TimeoutModel,
    /// Which RTT of an ACK the simulated senders' min RTT takes.
    pub min_rtt_sample: crate::sim::MinRttSample,
    /// How closely the simulated controllers follow Linux's.
    pub cc_model: crate::congestion::CcModel,
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

pub(super) fn second_half_mean(series: &[SeriesPoint], f: impl Fn(&SeriesPoint) -> f64) -> f64 {
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

pub(super) fn clamp_value(c: u32) -> f64 {
    if c == plume_cc_common::CWND_UNCLAMPED {
        f64::NAN
    } else {
        f64::from(c)
    }
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
                match run_emu(cfg, policy.as_ref(), &file, &dir) {
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
        // A stop asked for (bench::cancel): the windows so far are the
        // result; the caller reports them and says it was stopped.
        if crate::bench::cancel::requested() {
            break;
        }
    }
    Ok(results)
}
