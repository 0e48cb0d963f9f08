//! The measurements of a run and of each of its flows, and the events and
//! outputs a caller of the benchmark sees.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Setting;

/// The measurements of one flow of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlowResult {
    /// Index in the run.
    pub index: usize,
    /// Its server's port (how the link log names it).
    pub port: u16,
    /// A flow of the scheme under test (false: competing).
    pub is_scheme: bool,
    /// The scheme's name or the competing congestion control.
    pub label: String,
    /// When it started, seconds after the run's window start.
    pub start_s: f64,
    /// Bytes the link delivered from its start to the end / that time, Mbps.
    pub throughput_mbps: f64,
    /// Its rate over the fairness window (its part of it), Mbps.
    pub tail_mbps: f64,
    /// Median one-way delay of its packets, ms.
    pub p50_delay_ms: f64,
    /// 95th-percentile one-way delay of its packets, ms.
    pub p95_delay_ms: f64,
    /// Its packets the uplink queue dropped.
    pub drops: u64,
    /// TCP retransmissions its sender reported.
    pub retransmits: u64,
    /// The congestion control that ran under it (iperf3's
    /// `sender_tcp_congestion`).
    pub sender_cc: String,
    /// Seconds from its start until it was within 20% of its fair share
    /// (None: never, or a lone flow).
    pub convergence_s: Option<f64>,
    /// Mbps in 500 ms bins from the window start.
    pub series_mbps: Vec<f64>,
}

/// The measurements of one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    /// Trace name (file name).
    pub trace: String,
    /// Scheme name.
    pub scheme: String,
    /// The setting's label (`20 ms, packets=100`).
    #[serde(default)]
    pub setting: String,
    /// Its one-way delay, ms.
    #[serde(default)]
    pub delay_ms: f64,
    /// Its queue as given (`bdp=1`).
    #[serde(default)]
    pub queue: String,
    /// The droptail queue it resolved to on this trace.
    #[serde(default)]
    pub queue_resolved: String,
    /// Repetition, from 1.
    pub run: usize,
    /// Error text if the run failed or is pending (then the numbers are 0).
    pub error: Option<String>,
    /// The scheme's flows: bytes the link delivered in the window / window, Mbps.
    pub throughput_mbps: f64,
    /// Every flow together, Mbps.
    #[serde(default)]
    pub link_mbps: f64,
    /// The trace's capacity in the same window, Mbps.
    pub capacity_mbps: f64,
    /// The scheme's throughput / capacity.
    pub utilization: f64,
    /// Median one-way delay of the scheme's packets (link sojourn +
    /// propagation), ms.
    pub p50_delay_ms: f64,
    /// 95th-percentile one-way delay of the scheme's packets, ms.
    pub p95_delay_ms: f64,
    /// 95th-percentile time in the link's queue alone (mm-link's delay), ms.
    pub p95_queueing_ms: f64,
    /// iperf3 receiver throughput of the scheme's flows, Mbps.
    pub iperf_receiver_mbps: f64,
    /// TCP retransmissions of the scheme's senders.
    pub retransmits: u64,
    /// The congestion control that actually ran under the scheme's senders
    /// (iperf3's `sender_tcp_congestion`): for `plume`, the base under its
    /// limits.
    #[serde(default)]
    pub sender_cc: String,
    /// Packets the uplink queue dropped (every flow).
    pub drops: u64,
    /// Jain's index over every flow's rate in the fairness window (None: one flow).
    #[serde(default)]
    pub jain: Option<f64>,
    /// The scheme's share of the bytes in the fairness window (None: no
    /// competing flows).
    #[serde(default)]
    pub share: Option<f64>,
    /// The slowest flow's convergence, s (None: one flow, or some flow never
    /// converged; see `converged`).
    #[serde(default)]
    pub convergence_s: Option<f64>,
    /// Whether every flow converged (None: one flow).
    #[serde(default)]
    pub converged: Option<bool>,
    /// Every flow of the run.
    #[serde(default)]
    pub flows: Vec<FlowResult>,
    /// Start of the measurement window (first uplink packet), ms after link start.
    pub window_start_ms: u64,
    /// Window length, ms.
    pub window_ms: u64,
    /// Wall time of the whole run (set-up, traffic, drain), s.
    #[serde(default)]
    pub wall_s: f64,
    /// CPU time of the emulator's two forwarding threads, s.
    #[serde(default)]
    pub emulator_cpu_s: f64,
    /// The run's folder, relative to the output folder.
    #[serde(default)]
    pub dir: String,
}

impl RunResult {
    /// A run that failed (or is pending) with `error`.
    pub(crate) fn failed(
        trace: &str,
        setting: &Setting,
        scheme: &str,
        run: usize,
        error: String,
    ) -> Self {
        Self {
            trace: trace.into(),
            scheme: scheme.into(),
            setting: setting.label(),
            delay_ms: setting.delay.as_secs_f64() * 1000.0,
            queue: setting.queue.label(),
            queue_resolved: String::new(),
            run,
            error: Some(error),
            throughput_mbps: 0.0,
            link_mbps: 0.0,
            capacity_mbps: 0.0,
            utilization: 0.0,
            p50_delay_ms: 0.0,
            p95_delay_ms: 0.0,
            p95_queueing_ms: 0.0,
            iperf_receiver_mbps: 0.0,
            retransmits: 0,
            sender_cc: String::new(),
            drops: 0,
            jain: None,
            share: None,
            convergence_s: None,
            converged: None,
            flows: Vec::new(),
            window_start_ms: 0,
            window_ms: 0,
            wall_s: 0.0,
            emulator_cpu_s: 0.0,
            dir: String::new(),
        }
    }
}

/// Progress events for a caller's progress bar.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Progress {
    /// Runs finished so far.
    pub done: usize,
    /// Runs in total.
    pub total: usize,
    /// The run just started or finished.
    pub label: String,
    /// Its result once finished.
    pub result: Option<RunResult>,
}

/// Everything a benchmark wrote.
#[derive(Debug, Clone)]
pub struct BenchOutput {
    /// Every run.
    pub results: Vec<RunResult>,
    /// The Markdown tables.
    pub table: String,
    /// Files written (JSON, CSV, Markdown, plots).
    pub files: Vec<PathBuf>,
}
