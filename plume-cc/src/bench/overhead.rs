//! `plume-cc bench-overhead`: what the datapath costs a saturating transfer.
//!
//! Issue 14 asks what an operator pays at line rate, not in a synthetic
//! loop: a loopback iperf3 transfer (one or several parallel flows, the
//! client in a cgroup this module creates, the server outside it) runs for
//! the same time in three modes:
//! - `none`: no program attached to the cgroup (the kernel alone);
//! - `observe`: the sock_ops program attached in observe-only mode (it
//!   records every flow's statistics on every callback, applies nothing);
//! - `daemon`: `plume-cc run` on the cgroup with its policy (by default the
//!   embedded learned one), reading and steering every flow each interval.
//!
//! The modes are interleaved within each round, in an order that rotates
//! from round to round, so that a machine whose load drifts (other builds
//! on a shared VM) disturbs them alike. Per run: throughput (iperf3's
//! received bytes over the test time) and CPU per byte, the CPU being that
//! of the iperf3 client and server (their rusage, user + system), of the
//! kernel's softirq threads (where loopback receive work lands when it is
//! deferred) and, in `daemon` mode, of the daemon. The machine-wide busy
//! time from /proc/stat is kept beside it, as context: other work on the
//! machine counts there too. Each mode's overhead is the median over rounds
//! of its ratio to the same round's `none` run, with the range.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde::Serialize;

use crate::datapath::{self, cgroup::OwnedCgroup, Datapath};

use super::scheme::{Scheme, SenderSetup};
use super::BenchError;

/// One of the compared modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// No program attached.
    None,
    /// The sock_ops program in observe-only mode, no daemon.
    Observe,
    /// The daemon with its policy.
    Daemon,
}

impl Mode {
    /// All modes, in their first round's order.
    pub const ALL: [Mode; 3] = [Mode::None, Mode::Observe, Mode::Daemon];

    /// The mode's name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Mode::None => "none",
            Mode::Observe => "observe",
            Mode::Daemon => "daemon",
        }
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct OverheadConfig {
    /// Length of each transfer (iperf3 `-t`, whole seconds, at least 1).
    pub duration: Duration,
    /// Parallel flows of the client (iperf3 `-P`), 1..=128.
    pub flows: usize,
    /// Rounds; each runs every mode once. 1..=100.
    pub rounds: usize,
    /// The iperf3 program.
    pub iperf3: PathBuf,
    /// The `plume-cc` binary that has the `run` command (the daemon mode).
    pub plume_exe: PathBuf,
    /// The daemon's policy (None: its embedded default).
    pub policy: Option<PathBuf>,
    /// First TCP port for the iperf3 server (one port per run).
    pub port: u16,
    /// The client's MSS (iperf3 `-M`), bytes, in [536, 9000]; None keeps
    /// loopback's own (about 64 KB, which makes few ACKs per byte). A
    /// 1448-byte MSS, as on an Ethernet path, makes the ACK rate (and so
    /// the program's callbacks) per byte that of a real link.
    pub mss: Option<u32>,
    /// Turn the kernel's BPF statistics on during `observe` runs and report
    /// the program's mean cost per callback. They cost two clock reads per
    /// callback themselves, so they are off unless asked for.
    pub bpf_stats: bool,
}

impl OverheadConfig {
    /// Checks the ranges; the error names the field and its allowed range.
    pub fn validate(&self) -> Result<(), BenchError> {
        let secs = self.duration.as_secs_f64();
        if !(1.0..=3600.0).contains(&secs) || self.duration.subsec_nanos() != 0 {
            return Err(BenchError::Config(format!(
                "--duration {}: must be whole seconds in [1s, 3600s] (iperf3 -t)",
                humantime::format_duration(self.duration)
            )));
        }
        if !(1..=128).contains(&self.flows) {
            return Err(BenchError::Config(format!(
                "--flows {}: must be in [1, 128] (iperf3 -P)",
                self.flows
            )));
        }
        if !(1..=100).contains(&self.rounds) {
            return Err(BenchError::Config(format!(
                "--rounds {}: must be in [1, 100]",
                self.rounds
            )));
        }
        if let Some(m) = self.mss.filter(|m| !(536..=9000).contains(m)) {
            return Err(BenchError::Config(format!(
                "--mss {m}: must be in [536, 9000] bytes"
            )));
        }
        if self.port < 1024 {
            return Err(BenchError::Config(format!(
                "--port {}: must be in [1024, 65535]",
                self.port
            )));
        }
        Ok(())
    }
}

/// One transfer.
#[derive(Clone, Debug, Serialize)]
pub struct OverheadRun {
    /// Round number, from 0.
    pub round: usize,
    /// Mode of the run.
    pub mode: Mode,
    /// Bytes the server received.
    pub bytes: u64,
    /// Test time iperf3 reports, seconds.
    pub seconds: f64,
    /// Throughput, Gbit/s.
    pub gbps: f64,
    /// CPU seconds of iperf3 client and server, softirq threads and daemon.
    pub cpu_s: f64,
    /// Of which the daemon (0 in other modes).
    pub daemon_cpu_s: f64,
    /// `cpu_s` per byte received, nanoseconds per kB (1,000 bytes).
    pub cpu_ns_per_kb: f64,
    /// Busy CPU time of the whole machine (all CPUs, /proc/stat) over the
    /// transfer, seconds: context for the load of other work.
    pub machine_busy_s: f64,
    /// Load average (1 min) at the start of the run.
    pub loadavg: f64,
    /// Program callbacks that checked a target (observe mode: one per RTT,
    /// retransmission or RTO callback), from the datapath's counters.
    pub callbacks: Option<u64>,
    /// Mean nanoseconds per program run (observe mode with `bpf_stats`).
    pub ns_per_callback: Option<f64>,
    /// Program runs per second of transfer (observe mode with `bpf_stats`).
    pub runs_per_sec: Option<f64>,
}

/// A mode's figures over all rounds (median and range).
#[derive(Clone, Debug, Serialize)]
pub struct ModeSummary {
    /// The mode.
    pub mode: Mode,
    /// Runs.
    pub runs: usize,
    /// Throughput, Gbit/s: median, min, max.
    pub gbps: [f64; 3],
    /// CPU per kB, ns: median, min, max.
    pub cpu_ns_per_kb: [f64; 3],
    /// Throughput against the same round's `none` run, percent
    /// (negative: slower): median, min, max.
    pub gbps_vs_none_pct: [f64; 3],
    /// CPU per byte against the same round's `none` run, percent
    /// (positive: dearer): median, min, max.
    pub cpu_per_byte_vs_none_pct: [f64; 3],
}

/// The whole measurement.
#[derive(Clone, Debug, Serialize)]
pub struct OverheadReport {
    /// Seconds per transfer.
    pub duration_s: u64,
    /// The client's MSS, if set.
    pub mss: Option<u32>,
    /// Parallel flows.
    pub flows: usize,
    /// Rounds.
    pub rounds: usize,
    /// Logical CPUs of the machine.
    pub cpus: usize,
    /// Every run, in the order they ran.
    pub runs: Vec<OverheadRun>,
    /// Per mode, in [`Mode::ALL`] order.
    pub summary: Vec<ModeSummary>,
}

/// Median, min and max of `v` (NaNs for an empty slice).
fn spread(v: &[f64]) -> [f64; 3] {
    if v.is_empty() {
        return [f64::NAN; 3];
    }
    let mut s = v.to_vec();
    let median = crate::stats::quantile_of(&mut s, 0.5);
    let min = s.iter().copied().fold(f64::INFINITY, f64::min);
    let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    [median, min, max]
}

/// Summaries per mode: each run against the `none` run of its round.
pub fn summarize(runs: &[OverheadRun]) -> Vec<ModeSummary> {
    Mode::ALL
        .iter()
        .map(|&mode| {
            let mine: Vec<&OverheadRun> = runs.iter().filter(|r| r.mode == mode).collect();
            let base = |round: usize| {
                runs.iter()
                    .find(|r| r.mode == Mode::None && r.round == round)
            };
            let (mut dg, mut dc) = (Vec::new(), Vec::new());
            for r in &mine {
                if let Some(b) = base(r.round) {
                    dg.push((r.gbps / b.gbps - 1.0) * 100.0);
                    dc.push((r.cpu_ns_per_kb / b.cpu_ns_per_kb - 1.0) * 100.0);
                }
            }
            ModeSummary {
                mode,
                runs: mine.len(),
                gbps: spread(&mine.iter().map(|r| r.gbps).collect::<Vec<_>>()),
                cpu_ns_per_kb: spread(&mine.iter().map(|r| r.cpu_ns_per_kb).collect::<Vec<_>>()),
                gbps_vs_none_pct: spread(&dg),
                cpu_per_byte_vs_none_pct: spread(&dc),
            }
        })
        .collect()
}

/// The modes of round `round`: [`Mode::ALL`] rotated by the round number.
pub fn round_order(round: usize) -> [Mode; 3] {
    let mut m = Mode::ALL;
    m.rotate_left(round % 3);
    m
}

/// Runs every round and mode; `progress` is called after each run.
pub fn run(
    cfg: &OverheadConfig,
    progress: &mut dyn FnMut(&OverheadRun),
) -> Result<OverheadReport, BenchError> {
    cfg.validate()?;
    let mut runs = Vec::new();
    let mut port = cfg.port;
    for round in 0..cfg.rounds {
        for mode in round_order(round) {
            let r = run_one(cfg, round, mode, port)?;
            progress(&r);
            runs.push(r);
            // A fresh port per run: no TIME_WAIT or lingering listener of
            // the previous run can be in the way.
            port = if port == u16::MAX { cfg.port } else { port + 1 };
        }
    }
    Ok(OverheadReport {
        duration_s: cfg.duration.as_secs(),
        mss: cfg.mss,
        flows: cfg.flows,
        rounds: cfg.rounds,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        summary: summarize(&runs),
        runs,
    })
}

/// User + system CPU seconds of the children this process has waited for.
fn children_cpu_s() -> f64 {
    // SAFETY: getrusage fills the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// USER_HZ: the unit of /proc's tick counts (proc(5)).
fn user_hz() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

/// utime + stime of a process or thread, ticks (0 if it is gone).
fn proc_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th of the line (proc(5)).
    let after = stat.rsplit_once(')').map(|(_, a)| a).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

/// Process ids of the kernel's `ksoftirqd/N` threads.
fn softirq_threads() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.starts_with("ksoftirqd/"))
        })
        .collect()
}

/// Busy ticks of the whole machine: the first line of /proc/stat less idle
/// and iowait (proc(5); guest time is already inside user).
fn machine_busy_ticks() -> u64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().next() else {
        return 0;
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal guest guest_nice
    v.iter().take(8).sum::<u64>() - v.get(3).copied().unwrap_or(0) - v.get(4).copied().unwrap_or(0)
}

fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Waits until a TCP socket listens on 127.0.0.1:`port`.
fn wait_listening(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let needle = format!("0100007F:{port:04X} 00000000:0000 0A");
    while Instant::now() < deadline {
        let text = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        if text.contains(&needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Kills and reaps a child left running when a run ends early.
struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            if matches!(c.try_wait(), Ok(None)) {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
}

/// Why an iperf3 `-J` report gave no transfer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Iperf3ReportError {
    /// The output is not JSON (iperf3 died before writing it).
    #[error("report is not JSON: {0}")]
    NotJson(String),
    /// iperf3's own `error` field.
    #[error("{0}")]
    Reported(String),
    /// A field the transfer needs is missing (or, for seconds, not positive).
    #[error("no {0} in the report")]
    Missing(&'static str),
}

/// Bytes received and test seconds from iperf3's `-J` report of the client.
pub fn parse_iperf3(json: &str) -> Result<(u64, f64), Iperf3ReportError> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| Iperf3ReportError::NotJson(e.to_string()))?;
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        return Err(Iperf3ReportError::Reported(e.to_string()));
    }
    let recv = &v["end"]["sum_received"];
    let bytes = recv["bytes"]
        .as_u64()
        .ok_or(Iperf3ReportError::Missing("end.sum_received.bytes"))?;
    let secs = recv["seconds"]
        .as_f64()
        .filter(|s| *s > 0.0)
        .ok_or(Iperf3ReportError::Missing("end.sum_received.seconds"))?;
    Ok((bytes, secs))
}

/// One transfer in one mode.
fn run_one(
    cfg: &OverheadConfig,
    round: usize,
    mode: Mode,
    port: u16,
) -> Result<OverheadRun, BenchError> {
    let label = format!("round {round} {}", mode.name());
    // kernel.bpf_stats_enabled as found, restored after an observe run.
    let mut stats_were_on = false;
    let (setup, observer) = match mode {
        Mode::Daemon => {
            let scheme = Scheme::Plume {
                policy: cfg.policy.clone(),
                daemon_args: Vec::new(),
                label: "plume".into(),
            };
            let log = std::env::temp_dir().join(format!(
                "plume-cc-bench-overhead-{}-daemon.log",
                std::process::id()
            ));
            (scheme.start(&cfg.plume_exe, &log)?, None)
        }
        Mode::None | Mode::Observe => {
            let cg = OwnedCgroup::create_unique("plume-overhead")
                .map_err(|e| BenchError::Scheme(format!("{label}: {e}")))?;
            let observer = if mode == Mode::Observe {
                if cfg.bpf_stats {
                    stats_were_on = crate::daemon::bench::set_bpf_stats(true)
                        .map_err(|e| BenchError::Scheme(format!("{label}: {e:#}")))?;
                }
                let config = plume_cc_common::DatapathConfig {
                    enforce: 0,
                    ..Default::default()
                };
                Some(
                    Datapath::attach(cg.path(), config)
                        .map_err(|e| BenchError::Scheme(format!("{label}: {e}")))?,
                )
            } else {
                None
            };
            (SenderSetup::cgroup_only(cg), observer)
        }
    };
    let server = Command::new(&cfg.iperf3)
        .args(["-s", "-1", "-B", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            BenchError::Scheme(format!("{label}: starting {}: {e}", cfg.iperf3.display()))
        })?;
    let mut server = KillOnDrop(Some(server));
    if !wait_listening(port, Duration::from_secs(5)) {
        return Err(BenchError::Iperf {
            run: label,
            msg: format!("the server did not listen on 127.0.0.1:{port} within 5 s"),
        });
    }
    let mut client = Command::new(&cfg.iperf3);
    client
        .args(["-c", "127.0.0.1", "-p", &port.to_string(), "-J"])
        .args(["-t", &cfg.duration.as_secs().to_string()])
        .args(["-P", &cfg.flows.to_string()])
        .args(
            cfg.mss
                .map(|m| ["-M".to_string(), m.to_string()])
                .into_iter()
                .flatten(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    setup.configure_sender(&mut client)?;
    let daemon_pid = setup.daemon_pid();
    let softirqd = softirq_threads();
    let soft_ticks = |ids: &[u32]| ids.iter().map(|&p| proc_ticks(p)).sum::<u64>();
    let hz = user_hz();
    let (cpu0, soft0, busy0) = (
        children_cpu_s(),
        soft_ticks(&softirqd),
        machine_busy_ticks(),
    );
    let daemon0 = daemon_pid.map_or(0, proc_ticks);
    let load = loadavg();
    let out = client
        .spawn()
        .and_then(|c| c.wait_with_output())
        .map_err(|e| BenchError::Iperf {
            run: label.clone(),
            msg: format!("client: {e}"),
        })?;
    let daemon1 = daemon_pid.map_or(0, proc_ticks);
    let (soft1, busy1) = (soft_ticks(&softirqd), machine_busy_ticks());
    // The one-off server exits right after its client; wait for it so its
    // CPU time lands in RUSAGE_CHILDREN.
    if let Some(mut s) = server.0.take() {
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(s.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = s.kill();
        let _ = s.wait();
    }
    let cpu1 = children_cpu_s();
    let run_stats = match &observer {
        Some(dp) if cfg.bpf_stats => {
            let (count, ns) = dp
                .program_run_stats()
                .map_err(|e| BenchError::Scheme(format!("{label}: {e}")))?;
            (count > 0).then(|| (ns as f64 / count as f64, count as f64 / seconds_of(&out)))
        }
        _ => None,
    };
    let callbacks = match &observer {
        Some(dp) => Some(
            dp.counters()
                .map_err(|e| BenchError::Scheme(format!("{label}: {e}")))?
                .target_checks,
        ),
        None => None,
    };
    if observer.is_some() && cfg.bpf_stats {
        crate::daemon::bench::set_bpf_stats(stats_were_on)
            .map_err(|e| BenchError::Scheme(format!("{label}: {e:#}")))?;
    }
    if let Some(dp) = observer {
        dp.shutdown(Duration::from_secs(1))
            .map_err(|e| BenchError::Scheme(format!("{label}: {e}")))?;
    }
    drop(setup); // stops the daemon, removes the cgroup
    let (bytes, seconds) =
        parse_iperf3(&String::from_utf8_lossy(&out.stdout)).map_err(|msg| BenchError::Iperf {
            run: label.clone(),
            msg: format!("{msg} (exit {})", out.status),
        })?;
    let daemon_cpu_s = daemon1.saturating_sub(daemon0) as f64 / hz;
    let cpu_s = (cpu1 - cpu0) + soft1.saturating_sub(soft0) as f64 / hz + daemon_cpu_s;
    Ok(OverheadRun {
        round,
        mode,
        bytes,
        seconds,
        gbps: bytes as f64 * 8.0 / seconds / 1e9,
        cpu_s,
        daemon_cpu_s,
        cpu_ns_per_kb: cpu_s * 1e9 / (bytes as f64 / 1e3),
        machine_busy_s: busy1.saturating_sub(busy0) as f64 / hz,
        loadavg: load,
        callbacks,
        ns_per_callback: run_stats.map(|r| r.0),
        runs_per_sec: run_stats.map(|r| r.1),
    })
}

/// Test seconds of a client report (the configured time if unreadable).
fn seconds_of(out: &std::process::Output) -> f64 {
    parse_iperf3(&String::from_utf8_lossy(&out.stdout)).map_or(f64::NAN, |(_, s)| s)
}

/// The side-by-side table of a report.
pub fn table(report: &OverheadReport) -> String {
    let mut s = format!(
        "{} rounds x {} s, {} flow(s), MSS {}, {} CPUs; median [min, max] over rounds\n",
        report.rounds,
        report.duration_s,
        report.flows,
        report
            .mss
            .map_or("loopback's".to_string(), |m| m.to_string()),
        report.cpus
    );
    s += &format!(
        "{:<8} {:>26} {:>17} {:>29} {:>25}\n",
        "mode", "Gbit/s", "vs none %", "CPU ns/kB", "vs none %"
    );
    let f = |v: [f64; 3], p: usize| format!("{:.p$} [{:.p$}, {:.p$}]", v[0], v[1], v[2], p = p);
    for m in &report.summary {
        let (dg, dc) = if m.mode == Mode::None {
            ("-".to_string(), "-".to_string())
        } else {
            (f(m.gbps_vs_none_pct, 1), f(m.cpu_per_byte_vs_none_pct, 1))
        };
        s += &format!(
            "{:<8} {:>26} {:>17} {:>29} {:>25}\n",
            m.mode.name(),
            f(m.gbps, 2),
            dg,
            f(m.cpu_ns_per_kb, 1),
            dc
        );
    }
    let ns: Vec<f64> = report
        .runs
        .iter()
        .filter_map(|r| r.ns_per_callback)
        .collect();
    let rate: Vec<f64> = report.runs.iter().filter_map(|r| r.runs_per_sec).collect();
    if !ns.is_empty() {
        s += &format!(
            "observe: program {} ns per callback at {} callbacks/s (kernel BPF statistics)\n",
            f(spread(&ns), 0),
            f(spread(&rate), 0)
        );
    }
    s
}

/// Whether the datapath can be attached here at all (root, cgroup v2,
/// bpffs): checked before the first run so the error comes at once.
pub fn preflight() -> Result<(), BenchError> {
    datapath::cgroup::cgroup2_mount()
        .map(|_| ())
        .map_err(|e| BenchError::Scheme(format!("cgroup v2: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(round: usize, mode: Mode, gbps: f64, cpu: f64) -> OverheadRun {
        OverheadRun {
            round,
            mode,
            bytes: 1,
            seconds: 1.0,
            gbps,
            cpu_s: 0.0,
            daemon_cpu_s: 0.0,
            cpu_ns_per_kb: cpu,
            machine_busy_s: 0.0,
            loadavg: 0.0,
            callbacks: None,
            ns_per_callback: None,
            runs_per_sec: None,
        }
    }

    #[test]
    fn overhead_is_taken_against_the_same_rounds_baseline() {
        let runs = vec![
            run(0, Mode::None, 10.0, 100.0),
            run(0, Mode::Observe, 9.0, 110.0),
            run(1, Mode::Observe, 20.0, 200.0),
            run(1, Mode::None, 20.0, 100.0),
        ];
        let s = summarize(&runs);
        let obs = &s[1];
        assert_eq!(obs.mode, Mode::Observe);
        assert_eq!(obs.runs, 2);
        // Round 0: -10 % throughput, +10 % CPU; round 1: 0 % and +100 %.
        assert!((obs.gbps_vs_none_pct[1] + 10.0).abs() < 1e-9);
        assert!((obs.gbps_vs_none_pct[2] - 0.0).abs() < 1e-9);
        assert!((obs.cpu_per_byte_vs_none_pct[1] - 10.0).abs() < 1e-9);
        assert!((obs.cpu_per_byte_vs_none_pct[2] - 100.0).abs() < 1e-9);
        // No daemon runs: NaN, not a made-up 0.
        assert_eq!(s[2].runs, 0);
        assert!(s[2].gbps[0].is_nan());
    }

    #[test]
    fn rounds_rotate_the_mode_order() {
        assert_eq!(round_order(0), [Mode::None, Mode::Observe, Mode::Daemon]);
        assert_eq!(round_order(1), [Mode::Observe, Mode::Daemon, Mode::None]);
        assert_eq!(round_order(2), [Mode::Daemon, Mode::None, Mode::Observe]);
        assert_eq!(round_order(3), round_order(0));
    }

    #[test]
    fn iperf3_reports_are_read_or_refused() {
        let ok = r#"{"end":{"sum_received":{"bytes":1250000000,"seconds":10.0}}}"#;
        assert_eq!(parse_iperf3(ok).unwrap(), (1_250_000_000, 10.0));
        let err = r#"{"error":"unable to connect to server"}"#;
        assert_eq!(
            parse_iperf3(err),
            Err(Iperf3ReportError::Reported(
                "unable to connect to server".into()
            ))
        );
        assert_eq!(
            parse_iperf3("{}"),
            Err(Iperf3ReportError::Missing("end.sum_received.bytes"))
        );
        let zero = r#"{"end":{"sum_received":{"bytes":5,"seconds":0}}}"#;
        assert_eq!(
            parse_iperf3(zero),
            Err(Iperf3ReportError::Missing("end.sum_received.seconds"))
        );
        assert!(matches!(
            parse_iperf3("not json"),
            Err(Iperf3ReportError::NotJson(_))
        ));
    }

    #[test]
    fn bad_settings_name_the_field_and_range() {
        let cfg = OverheadConfig {
            duration: Duration::from_secs(5),
            flows: 1,
            rounds: 3,
            iperf3: "iperf3".into(),
            plume_exe: "plume-cc".into(),
            policy: None,
            port: 5400,
            mss: None,
            bpf_stats: false,
        };
        assert!(cfg.validate().is_ok());
        let e = OverheadConfig {
            flows: 0,
            ..cfg.clone()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("--flows") && e.contains("[1, 128]"), "{e}");
        let e = OverheadConfig {
            duration: Duration::from_millis(1500),
            ..cfg.clone()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("--duration") && e.contains("whole seconds"),
            "{e}"
        );
        let e = OverheadConfig {
            rounds: 0,
            ..cfg.clone()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("--rounds") && e.contains("[1, 100]"), "{e}");
        let e = OverheadConfig {
            mss: Some(100),
            ..cfg.clone()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("--mss") && e.contains("[536, 9000]"), "{e}");
    }
}
