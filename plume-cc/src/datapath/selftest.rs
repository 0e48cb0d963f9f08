//! The smallest real end-to-end path: `plume-cc selftest`.
//!
//! Creates a child cgroup, attaches the sock_ops program, runs a loopback
//! transfer from a sender process inside the cgroup, shows the statistics the
//! datapath collected, clamps the flow's cwnd from user space, checks with the
//! kernel's own TCP_INFO that the sender obeys, lifts the clamp, and removes
//! everything. Each step reports what it saw; any deviation is an error.

use std::{
    io::{self, BufRead as _, BufReader},
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use plume_cc_common::{DatapathConfig, FlowStats, CWND_UNCLAMPED, PACING_UNLIMITED};

use super::{
    cgroup::{CgroupError, OwnedCgroup},
    probe::{ProbeReport, Sink},
    Datapath, DatapathError,
};

/// Why the self-test failed: a step could not run (cgroup, datapath, the
/// sender process), or it ran and saw the datapath misbehave (the rest).
/// Typed so that a caller can tell a host problem (permissions, no cgroup2)
/// from a datapath that does not do its job.
#[derive(Debug, thiserror::Error)]
pub enum SelfTestError {
    /// Creating, joining or removing the test cgroup failed.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// Loading, attaching or reading the datapath failed.
    #[error(transparent)]
    Datapath(#[from] DatapathError),
    /// A socket or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was attempted.
        what: String,
        /// The system error.
        source: io::Error,
    },
    /// The sender was started without a pipe on its stdout.
    #[error("the sender has no stdout")]
    NoStdout,
    /// The sender reported nothing in time (it failed to start or to connect).
    #[error("the sender printed no report within {} s", .0.as_secs())]
    NoReport(Duration),
    /// The datapath never registered the sender's flow.
    #[error("flow {cookie:#x} did not appear in the datapath's map within {} s", .within.as_secs())]
    NotRegistered {
        /// The flow's socket cookie (from the sender).
        cookie: u64,
        /// How long the test waited.
        within: Duration,
    },
    /// The clamp never took effect.
    #[error("the sender's cwnd never went down to the clamp {clamp}")]
    NeverClamped {
        /// The clamp written, segments.
        clamp: u32,
    },
    /// The clamp took effect but did not hold.
    #[error("cwnd {cwnd} exceeded the clamp {clamp}")]
    ClampExceeded {
        /// The largest cwnd seen while clamped, segments.
        cwnd: u32,
        /// The clamp written, segments.
        clamp: u32,
    },
    /// Releasing left flows under our limits.
    #[error("flows still limited after release: {0:?}")]
    StillLimited(Vec<u64>),
    /// The sender process failed.
    #[error("the sender exited with {0}")]
    SenderFailed(ExitStatus),
    /// The program did not delete the flow's entries when it closed.
    #[error("the flow's map entries were not removed on close")]
    EntriesLeft,
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> SelfTestError {
    let what = what.into();
    move |source| SelfTestError::Io { what, source }
}

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
    ) -> Result<Self, SelfTestError> {
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
            .map_err(io_err(format!("starting {}", opts.probe_exe.display())))?;
        let stdout = child.stdout.take().ok_or(SelfTestError::NoStdout)?;
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
pub fn run(
    opts: &SelfTestOptions,
    say: &mut dyn FnMut(&str),
) -> Result<SelfTestReport, SelfTestError> {
    let cgroup = OwnedCgroup::create_unique("plume-cc-selftest")?;
    say(&format!("created cgroup {}", cgroup.path().display()));
    let mut datapath = Datapath::attach(cgroup.path(), DatapathConfig::default())?;
    say("attached the sock_ops program");
    let sink = Sink::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .map_err(io_err("starting the loopback sink"))?;
    let sender = SenderProcess::spawn(opts, &sink, cgroup.path())?;

    // 1. The flow appears in the datapath with plausible statistics.
    // The sender is a fresh process that loads libtorch first (~0.5 s).
    let first_within = Duration::from_secs(10);
    let mut first = sender.collect_first(first_within);
    let cookie = first
        .first()
        .ok_or(SelfTestError::NoReport(first_within))?
        .cookie;
    first.extend(sender.collect(Duration::from_millis(200)));
    let within = Duration::from_secs(2);
    let deadline = Instant::now() + within;
    let stats = loop {
        if let Some(s) = datapath.flow(cookie)? {
            if s.rtt_samples > 0 && s.bytes_acked > 0 {
                break s;
            }
        }
        if Instant::now() > deadline {
            return Err(SelfTestError::NotRegistered { cookie, within });
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
        return Err(SelfTestError::NeverClamped { clamp: opts.clamp });
    }
    let max_cwnd_clamped = effective.iter().map(|r| r.snd_cwnd).max().unwrap_or(0);
    let mbps_clamped = mbps(&effective);
    say(&format!(
        "clamp {} written: sender's cwnd (TCP_INFO) at most {max_cwnd_clamped}, {mbps_clamped:.0} Mbit/s",
        opts.clamp
    ));
    if max_cwnd_clamped > opts.clamp {
        return Err(SelfTestError::ClampExceeded {
            cwnd: max_cwnd_clamped,
            clamp: opts.clamp,
        });
    }

    // 3. Lift it: the datapath hands the flow back to the kernel.
    let still = datapath.release_all(Duration::from_secs(1))?;
    if !still.is_empty() {
        return Err(SelfTestError::StillLimited(still));
    }
    let after = sender.collect(Duration::from_millis(300));
    let max_cwnd_after = after.iter().map(|r| r.snd_cwnd).max().unwrap_or(0);
    let mbps_after = mbps(&after);
    say(&format!(
        "clamp lifted: cwnd back up to {max_cwnd_after}, {mbps_after:.0} Mbit/s"
    ));

    // 4. The flow closes; its entries must go.
    let mut sender = sender;
    let status = sender
        .child
        .wait()
        .map_err(io_err("waiting for the sender"))?;
    if !status.success() {
        return Err(SelfTestError::SenderFailed(status));
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
        return Err(SelfTestError::EntriesLeft);
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
) -> Result<Vec<ProbeReport>, SelfTestError> {
    let deadline = Instant::now() + d;
    let mut out = Vec::new();
    while Instant::now() < deadline {
        datapath.set_target(cookie, clamp, PACING_UNLIMITED)?;
        out.extend(sender.collect(Duration::from_millis(50)));
    }
    debug_assert!(clamp < CWND_UNCLAMPED);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sender_that_cannot_start_names_the_executable_and_the_cause() {
        // No root needed: the sink is a loopback listener, and the spawn
        // fails before the cgroup argument matters.
        let sink = Sink::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).unwrap();
        let opts = SelfTestOptions {
            probe_exe: PathBuf::from("/nonexistent/plume-cc"),
            clamp: 10,
            duration: Duration::from_millis(100),
        };
        let Err(e) = SenderProcess::spawn(&opts, &sink, std::path::Path::new("/tmp")) else {
            panic!("a missing executable started");
        };
        assert!(
            matches!(&e, SelfTestError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound),
            "{e:?}"
        );
        let line = crate::errors::one_line(&e);
        assert!(
            line.starts_with("starting /nonexistent/plume-cc: "),
            "{line}"
        );
    }

    #[test]
    fn the_checks_messages_keep_their_figures() {
        let e = SelfTestError::NotRegistered {
            cookie: 0x2a,
            within: Duration::from_secs(2),
        };
        assert_eq!(
            e.to_string(),
            "flow 0x2a did not appear in the datapath's map within 2 s"
        );
        let e = SelfTestError::ClampExceeded {
            cwnd: 12,
            clamp: 10,
        };
        assert_eq!(e.to_string(), "cwnd 12 exceeded the clamp 10");
        assert_eq!(
            SelfTestError::NoReport(Duration::from_secs(10)).to_string(),
            "the sender printed no report within 10 s"
        );
    }
}
