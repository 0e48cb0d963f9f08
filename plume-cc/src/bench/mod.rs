//! The iperf3 benchmark across the emulated link (Pantheon style).
//!
//! For each trace, setting (one-way delay × bottleneck queue: [`Setting`]),
//! repetition and scheme (schemes interleaved innermost, so that a noisy
//! machine disturbs them alike): start an [`Emulator`] with the trace as the
//! uplink (and, by default, the downlink: [`Downlink`]); start one iperf3
//! server per flow in the outer namespace, each on its own port; start the
//! scheme's `--flows` senders `--stagger` apart and the `--competing` kernel
//! flows in the inner namespace (every plume flow in one cgroup under one
//! daemon, as on a real host). Per flow, throughput, delay, drops and a
//! 500 ms throughput series come from the emulator's own uplink log, which
//! names each packet's flow by port ([`flows`]); retransmissions and the
//! congestion control that actually ran come from iperf3's JSON. Per run:
//! Jain's index and the scheme's share over the tail `--fair-window`, and
//! convergence time. Results are written as JSON, CSV, Markdown tables and
//! plots ([`report`], [`plot`]).
//!
//! This module runs and measures; it must not change how the link behaves
//! (that is [`crate::emu`]) or how a scheme controls its flows.

pub mod cli;
pub mod flows;
pub mod plot;
pub mod report;
pub mod scheme;

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

use crate::emu::{
    log::{read_log, LogEvent},
    DropTail, EmuConfig, EmuError, Emulator, LinkConfig, OUTER_ADDR,
};
use crate::trace::MahimahiTrace;

use flows::{convergence_bins, jain, share, split_by_port, BIN_MS};

pub use scheme::Scheme;

/// Errors of a benchmark; each names the run, file or command.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The emulator failed.
    #[error(transparent)]
    Emu(#[from] EmuError),
    /// A trace file is unreadable or malformed.
    #[error(transparent)]
    Trace(#[from] crate::trace::TraceError),
    /// A bad setting.
    #[error("{0}")]
    Config(String),
    /// A scheme could not be set up.
    #[error("{0}")]
    Scheme(String),
    /// iperf3 failed or its output was not understood.
    #[error("{run}: iperf3: {msg}")]
    Iperf {
        /// The run (trace/scheme/repetition).
        run: String,
        /// What went wrong.
        msg: String,
    },
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Plotting failed.
    #[error("plot {path}: {msg}")]
    Plot {
        /// The image file.
        path: PathBuf,
        /// What went wrong.
        msg: String,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> BenchError + 'a {
    move |source| BenchError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// What carries the ACKs: the reverse direction of the emulated link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Downlink {
    /// The run's own trace (mm-link with the same file twice).
    #[default]
    SameAsUplink,
    /// No bottleneck: only the fixed delay.
    Unlimited,
    /// This trace for every run.
    Trace(PathBuf),
}

impl Downlink {
    /// Parses `--downlink`: `same`, `unlimited` or a trace file.
    pub fn parse(s: &str) -> Self {
        match s.trim() {
            "" | "same" => Self::SameAsUplink,
            "unlimited" | "infinite" => Self::Unlimited,
            path => Self::Trace(path.into()),
        }
    }

    /// The downlink trace of a run on uplink `uplink` (None: unlimited).
    pub fn trace_for(&self, uplink: &Path) -> Option<PathBuf> {
        match self {
            Self::SameAsUplink => Some(uplink.to_owned()),
            Self::Unlimited => None,
            Self::Trace(p) => Some(p.clone()),
        }
    }

    /// For reports: `same`, `unlimited` or the trace's file name.
    pub fn describe(&self) -> String {
        match self {
            Self::SameAsUplink => "same".into(),
            Self::Unlimited => "unlimited".into(),
            Self::Trace(p) => trace_name(p),
        }
    }
}

/// A bottleneck queue as the benchmark is given it: fixed, or in multiples
/// of the path's bandwidth-delay product.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum QueueSpec {
    /// A droptail queue of fixed size (or unlimited).
    Fixed(DropTail),
    /// `bdp=X`: X times the trace's mean capacity times the round trip
    /// (twice the one-way delay), in 1500-byte packets, at least 1.
    Bdp(f64),
}

impl QueueSpec {
    /// Parses one queue: `unlimited`, `packets=N`, `bytes=N`, `bdp=X`, or
    /// mm-link's `droptail:packets=N`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(x) = s.strip_prefix("bdp=") {
            let x: f64 = x
                .parse()
                .map_err(|_| format!("queue {s:?}: {x:?} is not a number of BDPs"))?;
            if !(x.is_finite() && x > 0.0) {
                return Err(format!("queue {s:?}: the BDP multiple must be positive"));
            }
            return Ok(Self::Bdp(x));
        }
        match s {
            "unlimited" | "infinite" | "droptail" | "" => Ok(Self::Fixed(DropTail::default())),
            _ => DropTail::parse_args(s.strip_prefix("droptail:").unwrap_or(s)).map(Self::Fixed),
        }
    }

    /// Parses a comma-separated list of queues (each one `KEY=VALUE`).
    pub fn parse_list(s: &str) -> Result<Vec<Self>, String> {
        let v = s
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(Self::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if v.is_empty() {
            return Err("--queue needs at least one queue".into());
        }
        Ok(v)
    }

    /// How the queue is named in tables and folder names.
    pub fn label(&self) -> String {
        match self {
            Self::Bdp(x) => format!("bdp={x}"),
            Self::Fixed(q) => match (q.packets, q.bytes) {
                (None, None) => "unlimited".into(),
                (Some(p), None) => format!("packets={p}"),
                (None, Some(b)) => format!("bytes={b}"),
                (Some(p), Some(b)) => format!("packets={p}+bytes={b}"),
            },
        }
    }

    /// The droptail queue on `trace` with one-way `delay`.
    pub fn resolve(&self, trace: &MahimahiTrace, delay: Duration) -> DropTail {
        match *self {
            Self::Fixed(q) => q,
            Self::Bdp(x) => {
                let bdp_bytes = trace.mean_mbps() * 1e6 / 8.0 * 2.0 * delay.as_secs_f64();
                DropTail {
                    packets: Some(((x * bdp_bytes / 1500.0).round() as usize).max(1)),
                    bytes: None,
                }
            }
        }
    }
}

/// One point of a sweep: a one-way delay and a queue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Setting {
    /// One-way delay each way.
    pub delay: Duration,
    /// The bottleneck queue, both directions.
    pub queue: QueueSpec,
}

impl Setting {
    /// `20 ms, packets=100`.
    pub fn label(&self) -> String {
        format!(
            "{} ms, {}",
            self.delay.as_secs_f64() * 1000.0,
            self.queue.label()
        )
    }

    /// `20ms-packets=100`, for folder names.
    pub fn slug(&self) -> String {
        format!(
            "{}ms-{}",
            self.delay.as_secs_f64() * 1000.0,
            self.queue.label().replace('+', "-")
        )
    }
}

/// Kernel flows that share the bottleneck with the scheme under test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Competing {
    /// The kernel congestion control (`cubic`, `bbr`, `reno`).
    pub cc: String,
    /// How many such flows.
    pub flows: usize,
}

impl Competing {
    /// Parses `--competing`: `cubic`, `bbr:2`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (cc, n) = match s.trim().split_once(':') {
            Some((cc, n)) => (
                cc,
                n.parse::<usize>()
                    .map_err(|_| format!("--competing {s:?}: {n:?} is not a number of flows"))?,
            ),
            None => (s.trim(), 1),
        };
        if cc.is_empty() || n == 0 {
            return Err(format!(
                "--competing {s:?}: give a congestion control and at least one flow (cubic, bbr:2)"
            ));
        }
        Ok(Self {
            cc: cc.to_string(),
            flows: n,
        })
    }

    /// `cubic` or `cubic:2`.
    pub fn label(&self) -> String {
        if self.flows == 1 {
            self.cc.clone()
        } else {
            format!("{}:{}", self.cc, self.flows)
        }
    }
}

/// The first iperf3 server port; flow i listens on `FIRST_PORT + i`.
pub const FIRST_PORT: u16 = 5201;

/// The kernel's available congestion controls
/// (`/proc/sys/net/ipv4/tcp_available_congestion_control`).
pub fn available_congestion_controls() -> Result<Vec<String>, BenchError> {
    let path = Path::new("/proc/sys/net/ipv4/tcp_available_congestion_control");
    let text = std::fs::read_to_string(path).map_err(io_err("read", path))?;
    Ok(text.split_whitespace().map(String::from).collect())
}

/// What to benchmark.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Mahimahi traces, the uplink (data direction) of their runs.
    pub traces: Vec<PathBuf>,
    /// The downlink (ACK direction) of every run.
    pub downlink: Downlink,
    /// Schemes to compare.
    pub schemes: Vec<Scheme>,
    /// Length of a run (the first flow's iperf3 test); later flows end with it.
    pub duration: Duration,
    /// One-way delays to sweep.
    pub delays: Vec<Duration>,
    /// Bottleneck queues to sweep (both directions).
    pub queues: Vec<QueueSpec>,
    /// Flows of the scheme under test per run.
    pub flows: usize,
    /// Start of flow i: i × stagger after the first.
    pub stagger: Duration,
    /// Kernel flows competing with the scheme's (they start with the first).
    pub competing: Option<Competing>,
    /// Tail of the run over which fairness and share are measured.
    pub fair_window: Duration,
    /// Repetitions per trace, setting and scheme.
    pub runs: usize,
    /// Output folder (created).
    pub out: PathBuf,
    /// The iperf3 program.
    pub iperf3: PathBuf,
    /// The plume-cc binary (for the `plume` scheme's daemon).
    pub plume_exe: PathBuf,
}

/// One flow of a run, planned before it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedFlow {
    /// Index in the run (its port is `FIRST_PORT + index`).
    pub index: usize,
    /// Its server's port.
    pub port: u16,
    /// A flow of the scheme under test (false: a competing kernel flow).
    pub is_scheme: bool,
    /// The scheme's name, or the competing congestion control.
    pub label: String,
    /// When it starts, after the first flow.
    pub start: Duration,
    /// Its iperf3 test length (it ends with the run).
    pub duration: Duration,
}

impl BenchConfig {
    /// A single-setting, single-flow configuration (the common case).
    pub fn single(
        traces: Vec<PathBuf>,
        schemes: Vec<Scheme>,
        duration: Duration,
        delay: Duration,
        queue: DropTail,
        out: PathBuf,
        plume_exe: PathBuf,
    ) -> Self {
        Self {
            traces,
            downlink: Downlink::SameAsUplink,
            schemes,
            duration,
            delays: vec![delay],
            queues: vec![QueueSpec::Fixed(queue)],
            flows: 1,
            stagger: Duration::ZERO,
            competing: None,
            fair_window: Duration::from_secs(20),
            runs: 1,
            out,
            iperf3: "iperf3".into(),
            plume_exe,
        }
    }

    /// Every setting of the sweep: delays × queues.
    pub fn settings(&self) -> Vec<Setting> {
        self.delays
            .iter()
            .flat_map(|&delay| {
                self.queues
                    .iter()
                    .map(move |&queue| Setting { delay, queue })
            })
            .collect()
    }

    /// Flows per run, the scheme's and the competing ones.
    pub fn total_flows(&self) -> usize {
        self.flows + self.competing.as_ref().map_or(0, |c| c.flows)
    }

    /// The flows of one run of `scheme`: the scheme's first, `stagger`
    /// apart, then the competing ones, all starting with the first.
    pub fn flow_plan(&self, scheme: &Scheme) -> Vec<PlannedFlow> {
        let mut plan = Vec::with_capacity(self.total_flows());
        for i in 0..self.flows {
            let start = self.stagger * i as u32;
            plan.push(PlannedFlow {
                index: i,
                port: FIRST_PORT + i as u16,
                is_scheme: true,
                label: scheme.name().to_string(),
                start,
                duration: self.duration.saturating_sub(start),
            });
        }
        if let Some(c) = &self.competing {
            for _ in 0..c.flows {
                let i = plan.len();
                plan.push(PlannedFlow {
                    index: i,
                    port: FIRST_PORT + i as u16,
                    is_scheme: false,
                    label: c.cc.clone(),
                    start: Duration::ZERO,
                    duration: self.duration,
                });
            }
        }
        plan
    }

    /// Checks everything that can be checked before the first run, with one
    /// clear error each: counts, stagger, ports, kernel congestion controls,
    /// traces, and that a BDP queue has a capacity to multiply.
    pub fn validate(&self) -> Result<(), BenchError> {
        let bad = |m: String| Err(BenchError::Config(m));
        if self.traces.is_empty() || self.schemes.is_empty() || self.runs == 0 {
            return bad("need at least one trace, one scheme and one run".into());
        }
        if self.flows == 0 {
            return bad("--flows must be at least 1".into());
        }
        if self.duration.is_zero() {
            return bad("--duration must be positive".into());
        }
        if self.delays.is_empty() || self.queues.is_empty() {
            return bad("need at least one --delay and one --queue".into());
        }
        if self.fair_window.is_zero() {
            return bad("--fair-window must be positive".into());
        }
        let last_start = self.stagger * (self.flows as u32 - 1);
        if self.flows > 1 && last_start >= self.duration {
            return bad(format!(
                "--stagger {:?} × {} later flows starts the last flow at {:?}, \
                 not before the end of the {:?} run; shorten the stagger or lengthen --duration",
                self.stagger,
                self.flows - 1,
                last_start,
                self.duration
            ));
        }
        let free_ports = usize::from(u16::MAX - FIRST_PORT) + 1;
        if self.total_flows() > free_ports {
            return bad(format!(
                "{} flows need {} server ports, but only {free_ports} are free from port {FIRST_PORT}",
                self.total_flows(),
                self.total_flows()
            ));
        }
        let mut kernel: Vec<&str> = self
            .schemes
            .iter()
            .filter_map(|s| match s {
                Scheme::Kernel(cc) => Some(cc.as_str()),
                Scheme::Plume { .. } => None,
            })
            .collect();
        if let Some(c) = &self.competing {
            kernel.push(&c.cc);
        }
        if !kernel.is_empty() {
            let have = available_congestion_controls()?;
            if let Some(missing) = kernel.iter().find(|cc| !have.iter().any(|h| h == *cc)) {
                return bad(format!(
                    "this kernel has no congestion control {missing:?} \
                     (tcp_available_congestion_control: {})",
                    have.join(" ")
                ));
            }
        }
        if let Downlink::Trace(t) = &self.downlink {
            MahimahiTrace::read(t)?;
        }
        let has_bdp = self.queues.iter().any(|q| matches!(q, QueueSpec::Bdp(_)));
        for t in &self.traces {
            let trace = MahimahiTrace::read(t)?; // fail before any run on a bad trace
            if has_bdp && trace.mean_mbps().partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
                return bad(format!(
                    "a bdp= queue needs a trace with capacity; {} has none",
                    t.display()
                ));
            }
        }
        Ok(())
    }
}

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
    fn failed(trace: &str, setting: &Setting, scheme: &str, run: usize, error: String) -> Self {
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

/// The p-th percentile (0..=100) of sorted values, nearest rank.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn trace_name(p: &Path) -> String {
    p.file_name()
        .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into())
}

/// Starts an iperf3 command (`program` names it in errors) with its JSON
/// output going to `out` and nothing on stdin or stderr.
fn spawn_iperf3(cmd: &mut Command, program: &Path, out: &Path) -> Result<Child, BenchError> {
    let file = File::create(out).map_err(io_err("create", out))?;
    Ok(cmd
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| EmuError::Spawn {
            program: program.display().to_string(),
            source,
        })?)
}

/// Waits until TCP sockets listen on every port in `ports` in the outer
/// namespace; returns the first port that did not.
fn wait_listening(
    emu: &Emulator,
    ports: &[u16],
    timeout: Duration,
) -> Result<Option<u16>, EmuError> {
    let deadline = Instant::now() + timeout;
    loop {
        let text = emu
            .outer()
            .run(|| std::fs::read_to_string("/proc/thread-self/net/tcp").unwrap_or_default())?;
        let missing = ports
            .iter()
            .find(|p| !text.contains(&format!(":{p:04X} 00000000:0000 0A")));
        match missing {
            None => return Ok(None),
            Some(&p) if Instant::now() >= deadline => return Ok(Some(p)),
            Some(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn wait_child(child: &mut Child, deadline: Instant) -> Option<std::process::ExitStatus> {
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills and reaps children left running when a run ends early.
struct Reaper(Vec<Child>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for c in &mut self.0 {
            if matches!(c.try_wait(), Ok(None)) {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
}

/// Runs one trace × setting × scheme × repetition and writes its files into
/// `dir`.
pub fn run_one(
    cfg: &BenchConfig,
    trace_path: &Path,
    setting: &Setting,
    scheme: &Scheme,
    run: usize,
    dir: &Path,
) -> Result<RunResult, BenchError> {
    let wall = Instant::now();
    let label = format!(
        "{}/{}/{}/{run}",
        trace_name(trace_path),
        setting.label(),
        scheme.name()
    );
    std::fs::create_dir_all(dir).map_err(io_err("create", dir))?;
    let trace = MahimahiTrace::read(trace_path)?;
    let queue = setting.queue.resolve(&trace, setting.delay);
    let plan = cfg.flow_plan(scheme);
    // Set the schemes up first: a pending scheme costs no emulator run.
    let daemon_log = dir.join("daemon.log");
    let setup = scheme.start(&cfg.plume_exe, &daemon_log)?;
    let competing_setup = cfg
        .competing
        .as_ref()
        .map(|c| Scheme::Kernel(c.cc.clone()).start(&cfg.plume_exe, &daemon_log))
        .transpose()?;
    let up_log = dir.join("uplink.log");
    let emu = Emulator::start(&EmuConfig {
        uplink: LinkConfig {
            trace: Some(trace_path.into()),
            queue,
            log: Some(up_log.clone()),
        },
        downlink: LinkConfig {
            trace: cfg.downlink.trace_for(trace_path),
            queue,
            log: None,
        },
        delay: setting.delay,
        command_line: format!("plume-cc bench ({label})"),
    })?;
    let mut servers = Reaper(Vec::new());
    for f in &plan {
        servers.0.push(spawn_iperf3(
            emu.outer_command(&cfg.iperf3).args([
                "-s",
                "-1",
                "-B",
                &OUTER_ADDR.to_string(),
                "-p",
                &f.port.to_string(),
                "--json",
            ]),
            &cfg.iperf3,
            &dir.join(format!("iperf3-server-{}.json", f.index)),
        )?);
    }
    let ports: Vec<u16> = plan.iter().map(|f| f.port).collect();
    if let Some(p) = wait_listening(&emu, &ports, Duration::from_secs(5))? {
        return Err(BenchError::Iperf {
            run: label,
            msg: format!("the server did not listen on port {p} within 5 s"),
        });
    }
    // Start the clients on schedule; each flow's start is taken when it is
    // spawned, on the link's clock.
    let mut order: Vec<&PlannedFlow> = plan.iter().collect();
    order.sort_by_key(|f| f.start);
    let t0 = Instant::now();
    let mut clients = Reaper(Vec::new());
    let mut client_index = Vec::new();
    let mut started_ms = vec![0u64; plan.len()];
    for f in order {
        if let Some(wait) = (t0 + f.start).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let mut cmd = emu.inner_command(&cfg.iperf3);
        cmd.args([
            "-c",
            &OUTER_ADDR.to_string(),
            "-p",
            &f.port.to_string(),
            "-t",
            &format!("{:.3}", f.duration.as_secs_f64()),
            "--json",
        ]);
        let who = if f.is_scheme {
            &setup
        } else {
            competing_setup
                .as_ref()
                .expect("a competing flow has its setup")
        };
        who.configure_sender(&mut cmd)?;
        started_ms[f.index] = emu.epoch().elapsed().as_millis() as u64;
        clients.0.push(spawn_iperf3(
            &mut cmd,
            &cfg.iperf3,
            &dir.join(format!("iperf3-client-{}.json", f.index)),
        )?);
        client_index.push(f.index);
    }
    // A deep queue (seconds of data) delays iperf3's end-of-test exchange.
    let deadline = t0 + cfg.duration + Duration::from_secs(120);
    let statuses: Vec<_> = clients
        .0
        .iter_mut()
        .map(|c| wait_child(c, deadline))
        .collect();
    let server_deadline = Instant::now() + Duration::from_secs(10);
    for s in &mut servers.0 {
        let _ = wait_child(s, server_deadline);
    }
    drop((clients, servers, setup, competing_setup));
    let report = emu.stop()?;
    let mut json = vec![serde_json::Value::Null; plan.len()];
    for (k, &i) in client_index.iter().enumerate() {
        let path = dir.join(format!("iperf3-client-{i}.json"));
        json[i] = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        if !statuses[k].is_some_and(|s| s.success()) {
            let msg = json[i].get("error").and_then(|e| e.as_str()).map_or_else(
                || format!("client failed ({:?})", statuses[k]),
                String::from,
            );
            return Err(BenchError::Iperf {
                run: label,
                msg: format!("flow {i} (port {}): {msg}", plan[i].port),
            });
        }
    }
    let events = read_log(&up_log)?;
    let window_ms = cfg.duration.as_millis() as u64;
    let start_ms = events
        .iter()
        .find_map(|e| match e {
            LogEvent::Arrival { t_ms, .. } => Some(*t_ms),
            _ => None,
        })
        .unwrap_or(0);
    let end_ms = start_ms + window_ms;
    let tail_from = end_ms
        .saturating_sub(cfg.fair_window.as_millis() as u64)
        .max(start_ms);
    let logs = split_by_port(&events, &ports);
    let delay_ms = setting.delay.as_secs_f64() * 1000.0;
    let flow_start: Vec<u64> = started_ms.iter().map(|&s| s.max(start_ms)).collect();
    let series: Vec<Vec<f64>> = logs.iter().map(|l| l.series(start_ms, end_ms)).collect();
    let start_bin: Vec<usize> = flow_start
        .iter()
        .map(|&s| ((s - start_ms) / BIN_MS) as usize)
        .collect();
    let many = plan.len() > 1;
    let conv = convergence_bins(&series, &start_bin);
    let mut flows = Vec::with_capacity(plan.len());
    for (f, l) in plan.iter().zip(&logs) {
        let end = &json[f.index]["end"];
        let d = l.link_delays(flow_start[f.index], end_ms);
        flows.push(FlowResult {
            index: f.index,
            port: f.port,
            is_scheme: f.is_scheme,
            label: f.label.clone(),
            start_s: (flow_start[f.index] - start_ms) as f64 / 1000.0,
            throughput_mbps: l.mbps(flow_start[f.index], end_ms),
            tail_mbps: l.mbps(flow_start[f.index].max(tail_from), end_ms),
            p50_delay_ms: percentile(&d, 50.0) + delay_ms,
            p95_delay_ms: percentile(&d, 95.0) + delay_ms,
            drops: l.drops(start_ms, end_ms),
            retransmits: end["sum_sent"]["retransmits"].as_u64().unwrap_or(0),
            sender_cc: end["sender_tcp_congestion"].as_str().unwrap_or("?").into(),
            convergence_s: if many {
                conv[f.index].map(|b| b as f64 * BIN_MS as f64 / 1000.0)
            } else {
                None
            },
            series_mbps: series[f.index].clone(),
        });
    }
    let mine: Vec<bool> = plan.iter().map(|f| f.is_scheme).collect();
    let secs = window_ms as f64 / 1000.0;
    let scheme_bytes: u64 = logs
        .iter()
        .zip(&mine)
        .filter(|(_, &m)| m)
        .map(|(l, _)| l.bytes(start_ms, end_ms))
        .sum();
    let all_bytes: u64 = logs.iter().map(|l| l.bytes(start_ms, end_ms)).sum();
    let mut scheme_delays: Vec<f64> = logs
        .iter()
        .zip(&mine)
        .filter(|(_, &m)| m)
        .flat_map(|(l, _)| l.link_delays(start_ms, end_ms))
        .collect();
    scheme_delays.sort_by(f64::total_cmp);
    let throughput_mbps = scheme_bytes as f64 * 8.0 / secs / 1e6;
    let capacity_mbps = trace.capacity_bytes(start_ms, end_ms) as f64 * 8.0 / secs / 1e6;
    let tail: Vec<f64> = flows.iter().map(|f| f.tail_mbps).collect();
    let mut ccs: Vec<String> = Vec::new();
    for f in flows.iter().filter(|f| f.is_scheme) {
        if !ccs.contains(&f.sender_cc) {
            ccs.push(f.sender_cc.clone());
        }
    }
    let all_converged = flows.iter().all(|f| f.convergence_s.is_some());
    let scheme_json = plan
        .iter()
        .filter(|f| f.is_scheme)
        .map(|f| &json[f.index]["end"]);
    Ok(RunResult {
        trace: trace_name(trace_path),
        scheme: scheme.name().into(),
        setting: setting.label(),
        delay_ms,
        queue: setting.queue.label(),
        queue_resolved: queue.describe(),
        run,
        error: None,
        throughput_mbps,
        link_mbps: all_bytes as f64 * 8.0 / secs / 1e6,
        capacity_mbps,
        utilization: if capacity_mbps > 0.0 {
            throughput_mbps / capacity_mbps
        } else {
            0.0
        },
        p50_delay_ms: percentile(&scheme_delays, 50.0) + delay_ms,
        p95_delay_ms: percentile(&scheme_delays, 95.0) + delay_ms,
        p95_queueing_ms: percentile(&scheme_delays, 95.0),
        iperf_receiver_mbps: scheme_json
            .clone()
            .map(|e| e["sum_received"]["bits_per_second"].as_f64().unwrap_or(0.0))
            .sum::<f64>()
            / 1e6,
        retransmits: flows
            .iter()
            .filter(|f| f.is_scheme)
            .map(|f| f.retransmits)
            .sum(),
        sender_cc: ccs.join("/"),
        drops: report.uplink.drops,
        jain: many.then(|| jain(&tail)),
        share: cfg.competing.is_some().then(|| share(&tail, &mine)),
        convergence_s: if many && all_converged {
            flows
                .iter()
                .filter_map(|f| f.convergence_s)
                .reduce(f64::max)
        } else {
            None
        },
        converged: many.then_some(all_converged),
        flows,
        window_start_ms: start_ms,
        window_ms,
        wall_s: wall.elapsed().as_secs_f64(),
        emulator_cpu_s: (report.uplink_forward.cpu_us + report.downlink_forward.cpu_us) as f64
            / 1e6,
        dir: dir
            .strip_prefix(&cfg.out)
            .unwrap_or(dir)
            .display()
            .to_string(),
    })
}

/// Runs every trace × setting × repetition × scheme (schemes innermost, so
/// they interleave), writes the results into `cfg.out`, and reports progress
/// through `progress`. A failed or pending run is recorded with its error and
/// the benchmark goes on.
pub fn run_bench(
    cfg: &BenchConfig,
    progress: &mut dyn FnMut(&Progress),
) -> Result<BenchOutput, BenchError> {
    cfg.validate()?;
    std::fs::create_dir_all(&cfg.out).map_err(io_err("create", &cfg.out))?;
    let settings = cfg.settings();
    let total = cfg.traces.len() * settings.len() * cfg.schemes.len() * cfg.runs;
    let mut results = Vec::with_capacity(total);
    for trace in &cfg.traces {
        for setting in &settings {
            for run in 1..=cfg.runs {
                for scheme in &cfg.schemes {
                    let label = format!(
                        "{} [{}] {} run {run}",
                        trace_name(trace),
                        setting.label(),
                        scheme.name()
                    );
                    progress(&Progress {
                        done: results.len(),
                        total,
                        label: label.clone(),
                        result: None,
                    });
                    let dir = cfg
                        .out
                        .join("runs")
                        .join(trace_name(trace))
                        .join(setting.slug())
                        .join(scheme.name())
                        .join(run.to_string());
                    let r = run_one(cfg, trace, setting, scheme, run, &dir).unwrap_or_else(|e| {
                        RunResult::failed(
                            &trace_name(trace),
                            setting,
                            scheme.name(),
                            run,
                            e.to_string(),
                        )
                    });
                    results.push(r.clone());
                    progress(&Progress {
                        done: results.len(),
                        total,
                        label,
                        result: Some(r),
                    });
                }
            }
        }
    }
    report::write_all(cfg, results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downlink_choices() {
        let up = Path::new("traces/a.trace");
        assert_eq!(Downlink::parse("same"), Downlink::SameAsUplink);
        assert_eq!(Downlink::parse("same").trace_for(up), Some(up.to_owned()));
        assert_eq!(Downlink::parse("unlimited").trace_for(up), None);
        let fixed = Downlink::parse("/tmp/b.trace");
        assert_eq!(fixed.trace_for(up), Some(PathBuf::from("/tmp/b.trace")));
        assert_eq!(fixed.describe(), "b.trace");
    }

    fn planned(cfg: &BenchConfig) -> Vec<(u16, bool, u64, u64)> {
        cfg.flow_plan(&Scheme::Kernel("cubic".into()))
            .iter()
            .map(|f| (f.port, f.is_scheme, f.start.as_secs(), f.duration.as_secs()))
            .collect()
    }

    fn config() -> BenchConfig {
        BenchConfig::single(
            vec![PathBuf::from("/nonexistent.trace")],
            vec![Scheme::Kernel("cubic".into())],
            Duration::from_secs(30),
            Duration::from_millis(20),
            DropTail::default(),
            PathBuf::from("/tmp/x"),
            PathBuf::from("plume-cc"),
        )
    }

    #[test]
    fn flows_are_staggered_and_competitors_start_first() {
        let mut cfg = config();
        cfg.flows = 3;
        cfg.stagger = Duration::from_secs(10);
        cfg.competing = Some(Competing::parse("bbr:2").unwrap());
        assert_eq!(
            planned(&cfg),
            vec![
                (5201, true, 0, 30),
                (5202, true, 10, 20),
                (5203, true, 20, 10),
                (5204, false, 0, 30),
                (5205, false, 0, 30),
            ]
        );
    }

    #[test]
    fn bad_settings_are_refused_before_any_run() {
        let msg = |cfg: &BenchConfig| cfg.validate().unwrap_err().to_string();
        let mut cfg = config();
        cfg.flows = 0;
        assert!(msg(&cfg).contains("--flows"), "{}", msg(&cfg));
        let mut cfg = config();
        cfg.flows = 3;
        cfg.stagger = Duration::from_secs(15);
        assert!(msg(&cfg).contains("--stagger"), "{}", msg(&cfg));
        let mut cfg = config();
        cfg.flows = 70_000;
        assert!(msg(&cfg).contains("ports"), "{}", msg(&cfg));
        let mut cfg = config();
        cfg.competing = Some(Competing::parse("nosuchcc").unwrap());
        assert!(msg(&cfg).contains("nosuchcc"), "{}", msg(&cfg));
        assert!(Competing::parse("cubic:0").is_err());
        assert!(Competing::parse("cubic:x").is_err());
        // A BDP queue on a trace without capacity (every line the same
        // instant would be refused by the trace parser; an unreadable trace
        // is refused too).
        let mut cfg = config();
        cfg.queues = vec![QueueSpec::parse("bdp=1").unwrap()];
        assert!(msg(&cfg).contains("nonexistent"), "{}", msg(&cfg));
    }

    #[test]
    fn queues_parse_and_bdp_resolves_from_the_trace_capacity() {
        let q = QueueSpec::parse_list("packets=20,packets=100,bdp=1,bdp=4,unlimited").unwrap();
        let labels: Vec<String> = q.iter().map(QueueSpec::label).collect();
        assert_eq!(
            labels,
            ["packets=20", "packets=100", "bdp=1", "bdp=4", "unlimited"]
        );
        assert!(QueueSpec::parse("bdp=0").is_err());
        assert!(QueueSpec::parse("bdp=x").is_err());
        assert!(QueueSpec::parse("frames=3").is_err());
        // 12 Mbit/s, 20 ms each way: a 40 ms RTT holds 60,000 bytes, 40 packets.
        let t = MahimahiTrace::parse(Path::new("t"), "1\n").unwrap();
        let d = Duration::from_millis(20);
        assert_eq!(q[2].resolve(&t, d).packets, Some(40));
        assert_eq!(q[3].resolve(&t, d).packets, Some(160));
        assert_eq!(q[0].resolve(&t, d).packets, Some(20));
        let s = Setting {
            delay: d,
            queue: q[2],
        };
        assert_eq!(
            (s.label().as_str(), s.slug().as_str()),
            ("20 ms, bdp=1", "20ms-bdp=1")
        );
    }

    #[test]
    fn nearest_rank_percentile() {
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 50.0), 2.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 95.0), 4.0);
        assert!(percentile(&[], 50.0).is_nan());
    }
}
