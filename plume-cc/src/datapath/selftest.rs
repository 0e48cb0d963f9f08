//! The smallest real end-to-end path: `plume-cc selftest`.
//!
//! Creates a child cgroup, attaches the sock_ops program, runs a loopback
//! transfer from a sender process inside the cgroup, shows the statistics the
//! datapath collected, clamps the flow's cwnd from user space, checks with the
//! kernel's own TCP_INFO that the sender obeys, lifts the clamp, and removes
//! everything. Each step reports what it saw; any deviation is an error.

use std::{
    io::{BufRead as _, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};
use plume_cc_common::{DatapathConfig, FlowStats, CWND_UNCLAMPED, PACING_UNLIMITED};

use super::{
    cgroup::OwnedCgroup,
    probe::{ProbeReport, Sink},
    Datapath,
};

/// Options of the self-test.
#[derive(Clone, Debug)]
pub struct SelfTestOptions {
    /// The `plume-cc` executable that runs the sender (`plume-cc probe`).
    pub probe_exe: PathBuf,
    /// cwnd clamp to apply, segments.
    pub clamp: u32,
    /// How long the sender runs.
    pub duration: Duration,
}

/// What the self-test observed.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SelfTestReport {
    /// The cgroup folder used (removed at the end).
    pub cgroup: PathBuf,
    /// Socket cookie of the flow.
    pub cookie: u64,
    /// The flow's statistics as the datapath saw them before the clamp.
    pub stats_before: FlowStatsView,
    /// Largest cwnd TCP_INFO showed before the clamp.
    pub max_cwnd_before: u32,
    /// Largest cwnd TCP_INFO showed while clamped (after it took effect).
    pub max_cwnd_clamped: u32,
    /// Largest cwnd TCP_INFO showed after the clamp was lifted.
    pub max_cwnd_after: u32,
    /// Throughput while clamped and after, Mbit/s.
    pub mbps_clamped: f64,
    /// Throughput after the clamp was lifted, Mbit/s.
    pub mbps_after: f64,
    /// Whether the flow's map entries were gone after it closed.
    pub entries_removed: bool,
}

/// A readable subset of [`FlowStats`].
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct FlowStatsView {
    /// Smoothed RTT, microseconds.
    pub srtt_us: u32,
    /// Minimum RTT, microseconds.
    pub min_rtt_us: u32,
    /// cwnd, segments.
    pub snd_cwnd: u32,
    /// MSS, bytes.
    pub mss: u32,
    /// Segments delivered.
    pub delivered: u32,
    /// Bytes acknowledged.
    pub bytes_acked: u64,
    /// RTT samples seen.
    pub rtt_samples: u32,
}

impl From<&FlowStats> for FlowStatsView {
    fn from(s: &FlowStats) -> Self {
        Self {
            srtt_us: s.srtt_us,
            min_rtt_us: s.min_rtt_us,
            snd_cwnd: s.snd_cwnd,
            mss: s.mss,
            delivered: s.delivered,
            bytes_acked: s.bytes_acked,
            rtt_samples: s.rtt_samples,
        }
    }
}

/// A sender process whose report lines arrive on a channel.
struct SenderProcess {
    child: Child,
    lines: mpsc::Receiver<ProbeReport>,
}

impl SenderProcess {
    fn spawn(
        opts: &SelfTestOptions,
        sink: &Sink,
        cgroup: &std::path::Path,
    ) -> anyhow::Result<Self> {
        let mut child = Command::new(&opts.probe_exe)
            .arg("probe")
            .arg("--connect")
            .arg(sink.addr().to_string())
            .arg("--cgroup")
            .arg(cgroup)
            .arg("--duration")
            .arg(format!("{}ms", opts.duration.as_millis()))
            .arg("--report")
            .arg("10ms")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", opts.probe_exe.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(r) = serde_json::from_str::<ProbeReport>(&line) {
                    if tx.send(r).is_err() {
                        break;
                    }
                }
            }
        });
        Ok(Self { child, lines })
    }

    /// Waits up to `d` for the first report.
    fn collect_first(&self, d: Duration) -> Vec<ProbeReport> {
        self.lines.recv_timeout(d).into_iter().collect()
    }

    /// Collects the reports that arrive within `d` (fewer once the sender has finished).
    fn collect(&self, d: Duration) -> Vec<ProbeReport> {
        let deadline = Instant::now() + d;
        let mut out = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(r) => out.push(r),
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        out
    }
}

impl Drop for SenderProcess {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn mbps(reports: &[ProbeReport]) -> f64 {
    match (reports.first(), reports.last()) {
        (Some(a), Some(b)) if b.t_ms > a.t_ms => {
            (b.bytes_acked - a.bytes_acked) as f64 * 8.0 / ((b.t_ms - a.t_ms) as f64 * 1e3)
        }
        _ => 0.0,
    }
}

/// Runs the self-test; `say` receives one line per step.
pub fn run(opts: &SelfTestOptions, say: &mut dyn FnMut(&str)) -> anyhow::Result<SelfTestReport> {
    let cgroup = OwnedCgroup::create_unique("plume-cc-selftest")?;
    say(&format!("created cgroup {}", cgroup.path().display()));
    let mut datapath = Datapath::attach(cgroup.path(), DatapathConfig::default())?;
    say("attached the sock_ops program");
    let sink = Sink::start("127.0.0.1:0".parse()?)?;
    let sender = SenderProcess::spawn(opts, &sink, cgroup.path())?;

    // 1. The flow appears in the datapath with plausible statistics.
    // The sender is a fresh process that loads libtorch first (~0.5 s).
    let mut first = sender.collect_first(Duration::from_secs(10));
    let cookie = first
        .first()
        .context("the sender printed no report within 10 s")?
        .cookie;
    first.extend(sender.collect(Duration::from_millis(200)));
    let deadline = Instant::now() + Duration::from_secs(2);
    let stats = loop {
        if let Some(s) = datapath.flow(cookie)? {
            if s.rtt_samples > 0 && s.bytes_acked > 0 {
                break s;
            }
        }
        if Instant::now() > deadline {
            bail!("flow {cookie:#x} did not appear in the datapath's map within 2 s");
        }
        thread::sleep(Duration::from_millis(5));
    };
    say(&format!(
        "flow {cookie:#x}: srtt {} us, min RTT {} us, cwnd {}, mss {}, delivered {} segments, {} RTT samples",
        stats.srtt_us, stats.min_rtt_us, stats.snd_cwnd, stats.mss, stats.delivered, stats.rtt_samples
    ));
    let max_cwnd_before = first.iter().map(|r| r.snd_cwnd).max().unwrap_or(0);

    // 2. Clamp, and watch the sender's own TCP_INFO.
    datapath.set_target(cookie, opts.clamp, PACING_UNLIMITED)?;
    let clamped = keep_fresh(
        &mut datapath,
        &sender,
        cookie,
        opts.clamp,
        Duration::from_millis(400),
    )?;
    let effective: Vec<ProbeReport> = clamped
        .iter()
        .skip_while(|r| r.snd_cwnd > opts.clamp)
        .copied()
        .collect();
    if effective.is_empty() {
        bail!(
            "the sender's cwnd never went down to the clamp {}",
            opts.clamp
        );
    }
    let max_cwnd_clamped = effective.iter().map(|r| r.snd_cwnd).max().unwrap_or(0);
    let mbps_clamped = mbps(&effective);
    say(&format!(
        "clamp {} written: sender's cwnd (TCP_INFO) at most {max_cwnd_clamped}, {mbps_clamped:.0} Mbit/s",
        opts.clamp
    ));
    if max_cwnd_clamped > opts.clamp {
        bail!("cwnd {max_cwnd_clamped} exceeded the clamp {}", opts.clamp);
    }

    // 3. Lift it: the datapath hands the flow back to the kernel.
    let still = datapath.release_all(Duration::from_secs(1))?;
    if !still.is_empty() {
        bail!("flows still limited after release: {still:?}");
    }
    let after = sender.collect(Duration::from_millis(300));
    let max_cwnd_after = after.iter().map(|r| r.snd_cwnd).max().unwrap_or(0);
    let mbps_after = mbps(&after);
    say(&format!(
        "clamp lifted: cwnd back up to {max_cwnd_after}, {mbps_after:.0} Mbit/s"
    ));

    // 4. The flow closes; its entries must go.
    let mut sender = sender;
    let status = sender.child.wait()?;
    if !status.success() {
        bail!("the sender exited with {status}");
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    let entries_removed = loop {
        let gone =
            datapath.flow(cookie)?.is_none() && !datapath.target_cookies()?.contains(&cookie);
        if gone || Instant::now() > deadline {
            break gone;
        }
        thread::sleep(Duration::from_millis(10));
    };
    say(&format!(
        "flow closed: map entries {}",
        if entries_removed {
            "removed"
        } else {
            "STILL PRESENT"
        }
    ));
    datapath.flush_logs();
    let report = SelfTestReport {
        cgroup: cgroup.path().to_owned(),
        cookie,
        stats_before: FlowStatsView::from(&stats),
        max_cwnd_before,
        max_cwnd_clamped,
        max_cwnd_after,
        mbps_clamped,
        mbps_after,
        entries_removed,
    };
    drop(datapath);
    cgroup.remove()?;
    say("detached and removed the cgroup");
    if !entries_removed {
        bail!("the flow's map entries were not removed on close");
    }
    Ok(report)
}

/// Keeps the target fresh (as the daemon would every interval) while
/// collecting the sender's reports for `d`.
fn keep_fresh(
    datapath: &mut Datapath,
    sender: &SenderProcess,
    cookie: u64,
    clamp: u32,
    d: Duration,
) -> anyhow::Result<Vec<ProbeReport>> {
    let deadline = Instant::now() + d;
    let mut out = Vec::new();
    while Instant::now() < deadline {
        datapath.set_target(cookie, clamp, PACING_UNLIMITED)?;
        out.extend(sender.collect(Duration::from_millis(50)));
    }
    debug_assert!(clamp < CWND_UNCLAMPED);
    Ok(out)
}
