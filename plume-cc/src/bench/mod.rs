//! The iperf3 benchmark across the emulated link (Pantheon style).
//!
//! For each trace, scheme and repetition: start an [`Emulator`] with the
//! trace as the uplink (and, by default, the downlink: [`Downlink`]), a
//! fixed one-way delay and a droptail queue, run
//! an iperf3 server in the outer namespace and the iperf3 client (the sender,
//! set up by its [`Scheme`]) in the inner one, then compute throughput,
//! utilisation of the trace's capacity, p50/p95 delay (from the emulator's
//! uplink log) and retransmissions (from iperf3's JSON). Results are written
//! as JSON, CSV, a Markdown table and one throughput-vs-p95-delay PNG per
//! trace.
//!
//! This module runs and measures; it must not change how the link behaves
//! (that is [`crate::emu`]) or how a scheme controls its flows.

pub mod cli;
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
    DropTail, EmuConfig, EmuError, Emulator, LinkConfig, LinkTrace, OUTER_ADDR,
};

pub use scheme::Scheme;

/// Errors of a benchmark; each names the run, file or command.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The emulator failed.
    #[error(transparent)]
    Emu(#[from] EmuError),
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

/// What to benchmark.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Mahimahi traces, the uplink (data direction) of their runs.
    pub traces: Vec<PathBuf>,
    /// The downlink (ACK direction) of every run.
    pub downlink: Downlink,
    /// Schemes to compare.
    pub schemes: Vec<Scheme>,
    /// iperf3 test length.
    pub duration: Duration,
    /// One-way delay each way.
    pub delay: Duration,
    /// Bottleneck queue, both directions.
    pub queue: DropTail,
    /// Repetitions per trace and scheme.
    pub runs: usize,
    /// Output folder (created).
    pub out: PathBuf,
    /// The iperf3 program.
    pub iperf3: PathBuf,
    /// The plume-cc binary (for the `plume` scheme's daemon).
    pub plume_exe: PathBuf,
}

/// The measurements of one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    /// Trace name (file name).
    pub trace: String,
    /// Scheme name.
    pub scheme: String,
    /// Repetition, from 1.
    pub run: usize,
    /// Error text if the run failed or is pending (then the numbers are 0).
    pub error: Option<String>,
    /// Bytes the link delivered in the window / window, Mbps.
    pub throughput_mbps: f64,
    /// The trace's capacity in the same window, Mbps.
    pub capacity_mbps: f64,
    /// throughput / capacity.
    pub utilization: f64,
    /// Median one-way delay (link sojourn + propagation), ms.
    pub p50_delay_ms: f64,
    /// 95th-percentile one-way delay, ms.
    pub p95_delay_ms: f64,
    /// 95th-percentile time in the link's queue alone (mm-link's delay), ms.
    pub p95_queueing_ms: f64,
    /// iperf3 receiver throughput, Mbps.
    pub iperf_receiver_mbps: f64,
    /// TCP retransmissions the sender reported.
    pub retransmits: u64,
    /// The congestion control that actually ran under the sender (iperf3's
    /// `sender_tcp_congestion`): for `plume`, the base under its limits.
    #[serde(default)]
    pub sender_cc: String,
    /// Packets the uplink queue dropped.
    pub drops: u64,
    /// Start of the measurement window (first uplink packet), ms after link start.
    pub window_start_ms: u64,
    /// Window length, ms.
    pub window_ms: u64,
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
    /// The Markdown table.
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

/// Link-side metrics of one direction's log over `window_ms` from its first
/// arrival.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct LogMetrics {
    /// First arrival, ms.
    pub start_ms: u64,
    /// Bytes departed in the window.
    pub bytes: u64,
    /// Capacity bytes in the window (0 for an unlimited link).
    pub capacity_bytes: u64,
    /// Median time in the link of the packets that arrived in the window, ms.
    pub p50_link_ms: f64,
    /// 95th-percentile time in the link, ms.
    pub p95_link_ms: f64,
    /// Drops in the window.
    pub drops: u64,
}

/// Computes [`LogMetrics`] from a link log and its trace over the window
/// `(start, start + window_ms]`, where start is the first arrival: bytes and
/// capacity count departures in the window; the delay percentiles are over
/// every packet that *arrived* in the window, wherever it departed (as
/// Mahimahi's per-packet delay graphs count them).
pub fn analyze_log(events: &[LogEvent], trace: Option<&LinkTrace>, window_ms: u64) -> LogMetrics {
    let start_ms = events
        .iter()
        .find_map(|e| match e {
            LogEvent::Arrival { t_ms, .. } => Some(*t_ms),
            _ => None,
        })
        .unwrap_or(0);
    let end = start_ms + window_ms;
    let mut bytes = 0;
    let mut drops = 0;
    let mut delays = Vec::new();
    for e in events {
        match *e {
            LogEvent::Departure {
                t_ms,
                size,
                delay_ms,
            } => {
                if t_ms > start_ms && t_ms <= end {
                    bytes += u64::from(size);
                }
                // Delay of every packet sent in the window, also of those
                // that leave after it (a deep queue drains after the test).
                let arrived = t_ms.saturating_sub(delay_ms);
                if arrived >= start_ms && arrived <= end {
                    delays.push(delay_ms as f64);
                }
            }
            LogEvent::Drop { t_ms, .. } if t_ms > start_ms && t_ms <= end => drops += 1,
            _ => {}
        }
    }
    delays.sort_by(f64::total_cmp);
    LogMetrics {
        start_ms,
        bytes,
        capacity_bytes: trace.map_or(0, |t| t.capacity_bytes(start_ms, end)),
        p50_link_ms: percentile(&delays, 50.0),
        p95_link_ms: percentile(&delays, 95.0),
        drops,
    }
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

/// Waits until a TCP socket listens on `port` in the namespace.
fn wait_listening(emu: &Emulator, port: u16, timeout: Duration) -> Result<bool, EmuError> {
    let needle = format!(":{port:04X} 00000000:0000 0A");
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let text = emu
            .outer()
            .run(|| std::fs::read_to_string("/proc/thread-self/net/tcp").unwrap_or_default())?;
        if text.contains(&needle) {
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(false)
}

fn wait_child(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
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

/// Runs one trace × scheme × repetition and writes its files into `dir`.
pub fn run_one(
    cfg: &BenchConfig,
    trace_path: &Path,
    scheme: &Scheme,
    run: usize,
    dir: &Path,
) -> Result<RunResult, BenchError> {
    let label = format!("{}/{}/{run}", trace_name(trace_path), scheme.name());
    std::fs::create_dir_all(dir).map_err(io_err("create", dir))?;
    let trace = LinkTrace::from_file(trace_path)?;
    // Set the scheme up first: a pending scheme costs no emulator run.
    let setup = scheme.start(&cfg.plume_exe)?;
    let up_log = dir.join("uplink.log");
    let emu = Emulator::start(&EmuConfig {
        uplink: LinkConfig {
            trace: Some(trace_path.into()),
            queue: cfg.queue,
            log: Some(up_log.clone()),
        },
        downlink: LinkConfig {
            trace: cfg.downlink.trace_for(trace_path),
            queue: cfg.queue,
            log: None,
        },
        delay: cfg.delay,
        command_line: format!("plume-cc bench ({label})"),
    })?;
    let server_out = dir.join("iperf3-server.json");
    let mut server = spawn_iperf3(
        emu.outer_command(&cfg.iperf3)
            .args(["-s", "-1", "-B", &OUTER_ADDR.to_string(), "--json"]),
        &cfg.iperf3,
        &server_out,
    )?;
    if !wait_listening(&emu, 5201, Duration::from_secs(5))? {
        let _ = server.kill();
        let _ = server.wait();
        return Err(BenchError::Iperf {
            run: label,
            msg: "the server did not listen on port 5201 within 5 s".into(),
        });
    }
    let client_out = dir.join("iperf3-client.json");
    let mut client_cmd = emu.inner_command(&cfg.iperf3);
    client_cmd.args([
        "-c",
        &OUTER_ADDR.to_string(),
        "-t",
        &format!("{}", cfg.duration.as_secs_f64()),
        "--json",
    ]);
    setup.configure_sender(&mut client_cmd)?;
    let mut client = spawn_iperf3(&mut client_cmd, &cfg.iperf3, &client_out)?;
    // A deep queue (seconds of data) delays iperf3's end-of-test exchange.
    let status = wait_child(&mut client, cfg.duration + Duration::from_secs(120));
    let _ = wait_child(&mut server, Duration::from_secs(10));
    drop(setup);
    let report = emu.stop()?;
    let client_ok = status.is_some_and(|s| s.success());
    let json: serde_json::Value = std::fs::read_to_string(&client_out)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    if !client_ok {
        let msg = json
            .get("error")
            .and_then(|e| e.as_str())
            .map_or_else(|| format!("client failed ({status:?})"), String::from);
        return Err(BenchError::Iperf { run: label, msg });
    }
    let end = &json["end"];
    let events = read_log(&up_log)?;
    let window_ms = cfg.duration.as_millis() as u64;
    let m = analyze_log(&events, Some(&trace), window_ms);
    let secs = window_ms as f64 / 1000.0;
    let delay_ms = cfg.delay.as_secs_f64() * 1000.0;
    let throughput_mbps = m.bytes as f64 * 8.0 / secs / 1e6;
    let capacity_mbps = m.capacity_bytes as f64 * 8.0 / secs / 1e6;
    Ok(RunResult {
        trace: trace_name(trace_path),
        scheme: scheme.name().into(),
        run,
        error: None,
        throughput_mbps,
        capacity_mbps,
        utilization: if capacity_mbps > 0.0 {
            throughput_mbps / capacity_mbps
        } else {
            0.0
        },
        p50_delay_ms: m.p50_link_ms + delay_ms,
        p95_delay_ms: m.p95_link_ms + delay_ms,
        p95_queueing_ms: m.p95_link_ms,
        iperf_receiver_mbps: end["sum_received"]["bits_per_second"]
            .as_f64()
            .unwrap_or(0.0)
            / 1e6,
        retransmits: end["sum_sent"]["retransmits"].as_u64().unwrap_or(0),
        sender_cc: end["sender_tcp_congestion"]
            .as_str()
            .unwrap_or("?")
            .to_string(),
        drops: report.uplink.drops,
        window_start_ms: m.start_ms,
        window_ms,
    })
}

/// Runs every trace × scheme × repetition, writes the results into
/// `cfg.out`, and reports progress through `progress`. A failed or pending
/// run is recorded with its error and the benchmark goes on.
pub fn run_bench(
    cfg: &BenchConfig,
    progress: &mut dyn FnMut(&Progress),
) -> Result<BenchOutput, BenchError> {
    if cfg.traces.is_empty() || cfg.schemes.is_empty() || cfg.runs == 0 {
        return Err(BenchError::Config(
            "need at least one trace, one scheme and one run".into(),
        ));
    }
    if let Downlink::Trace(t) = &cfg.downlink {
        LinkTrace::from_file(t)?;
    }
    for t in &cfg.traces {
        LinkTrace::from_file(t)?; // fail before any run on a bad trace
    }
    std::fs::create_dir_all(&cfg.out).map_err(io_err("create", &cfg.out))?;
    let total = cfg.traces.len() * cfg.schemes.len() * cfg.runs;
    let mut results = Vec::with_capacity(total);
    for trace in &cfg.traces {
        for run in 1..=cfg.runs {
            for scheme in &cfg.schemes {
                let label = format!("{} {} run {run}", trace_name(trace), scheme.name());
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
                    .join(scheme.name())
                    .join(run.to_string());
                let r = run_one(cfg, trace, scheme, run, &dir).unwrap_or_else(|e| RunResult {
                    trace: trace_name(trace),
                    scheme: scheme.name().into(),
                    run,
                    error: Some(e.to_string()),
                    throughput_mbps: 0.0,
                    capacity_mbps: 0.0,
                    utilization: 0.0,
                    p50_delay_ms: 0.0,
                    p95_delay_ms: 0.0,
                    p95_queueing_ms: 0.0,
                    iperf_receiver_mbps: 0.0,
                    retransmits: 0,
                    sender_cc: String::new(),
                    drops: 0,
                    window_start_ms: 0,
                    window_ms: 0,
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

    #[test]
    fn window_metrics_count_delays_by_arrival() {
        let ev = vec![
            LogEvent::Arrival {
                t_ms: 10,
                size: 1500,
            },
            LogEvent::Departure {
                t_ms: 11,
                size: 1500,
                delay_ms: 1,
            },
            LogEvent::Arrival {
                t_ms: 20,
                size: 1500,
            },
            // Arrived in the window, left after it: its delay counts, its bytes do not.
            LogEvent::Departure {
                t_ms: 200,
                size: 1500,
                delay_ms: 180,
            },
        ];
        let t = LinkTrace::parse("1\n", Path::new("t")).unwrap();
        let m = analyze_log(&ev, Some(&t), 100);
        assert_eq!((m.start_ms, m.bytes, m.capacity_bytes), (10, 1500, 150_000));
        assert_eq!((m.p50_link_ms, m.p95_link_ms), (1.0, 180.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 50.0), 2.0);
    }
}
