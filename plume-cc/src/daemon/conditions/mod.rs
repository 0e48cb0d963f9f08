//! `plume-cc record`: a host's own link conditions, recorded from the live
//! datapath as a scenario corpus that `traces analyze` and `train` read.
//!
//! Why from the datapath: the sock_ops program already keeps every flow's
//! cumulative delivery counter, cwnd, packets in flight, min RTT and
//! retransmissions (`FlowStats`), so a second process can sample them from
//! the pinned maps of a running daemon without touching a packet.
//!
//! What a recording is made of: every `--sample` (10 ms) each flow's
//! statistics are read. An interval between two reads counts as
//! *network-limited* when the flow was cwnd-limited at both ends, with the
//! kernel's own test: at least half the congestion window in flight at
//! some point of the last RTT (`tcp_is_cwnd_limited()` in
//! include/net/tcp.h: `tcp_snd_cwnd(tp) < 2 * tp->max_packets_out`, where
//! `max_packets_out` is the most in flight over the last window of data).
//! Why the most over an RTT and not the value read: a read often lands
//! just after an ACK took its segments out of flight and before new ones
//! were sent, so the instantaneous value dips exactly when much was
//! delivered; testing it would drop the intervals with the most delivery
//! and bias the trace low. A flow with less in flight was
//! held back by its application (or its receiver) and its delivery says
//! nothing about the path, so those intervals are left out. An interval
//! whose latest statistics are older than [`STALE_NS`] is left out too (a
//! flow the kernel no longer calls back, or a datapath that was detached).
//! `FlowStats` carries no copy of the kernel's `tp->app_limited` mark (the
//! program would need the `tcp_sock` itself), so the window test is the
//! signal used here.
//!
//! The network-limited intervals of a flow, put end to end, become its
//! delivery series: each interval's delivered segments (`tp->delivered`
//! deltas) as wire bytes (MSS plus the IPv4/TCP headers with timestamps,
//! as Linux sends them), turned into 1500-byte Mahimahi opportunities
//! spread evenly over the interval. The series is cut into `--window`
//! windows. Delivery is what the path *gave* this flow, so each window is
//! a lower bound of its capacity (a flow under a daemon's pacing cap, or
//! sharing the bottleneck, got less than the link had); the corpus says so
//! in every record's `source` and in `recording.json`.
//!
//! Each window's path record takes the flow's min RTT, and a buffer
//! estimate from the queueing delay it saw (95th percentile of the smoothed
//! RTT over the network-limited time, less the min RTT, in min RTTs). The
//! losses it saw go to `flows.jsonl` as a loss summary and not into the
//! record's `loss_rate`: they were drops of a full queue, which the
//! simulator's buffer reproduces; its `loss_rate` is random loss on top.

//!
//! In three parts: `flow.rs` (one flow's reads, the network-limited test and
//! its delivery series, windows and path record), `corpus.rs` (the finished
//! flows written as a scenario corpus) and, here, the settings and the live
//! loop over the datapath.

mod corpus;
mod flow;

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use plume_cc_common::DatapathConfig;

use crate::datapath::{self, Datapath, DatapathError};
use crate::trace::scenario_corpus::ScenarioCorpusError;

pub use corpus::{write_corpus, RecordOutcome};
pub use flow::{classify, FlowRecording, FlowSummary, Interval, LossSummary, Sample, STALE_NS};

/// The kind every recorded window carries in the corpus.
pub const RECORDED_KIND: &str = "recorded";

/// Errors of a recording. Each names what is wrong and, for a flag, its
/// allowed range.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// A flag is out of its range.
    #[error("{flag} must be {allowed}, got {got}")]
    Flag {
        /// The flag.
        flag: &'static str,
        /// The allowed values.
        allowed: &'static str,
        /// What was given.
        got: String,
    },
    /// `--out` exists and holds files.
    #[error("--out {0}: exists and is not empty; choose a new folder")]
    OutNotEmpty(PathBuf),
    /// `--cgroup` is not a cgroup v2 folder.
    #[error("--cgroup {0}: not a cgroup v2 folder")]
    NotCgroup(PathBuf),
    /// No datapath runs on the cgroup and `--observe` was not given.
    #[error(
        "no plume-cc datapath is attached to {cgroup} (no pinned link in {pins}): start the daemon on it first (`plume-cc run --cgroup {cgroup}`), or pass --observe to attach an observe-only datapath for the recording"
    )]
    NoDatapath {
        /// The cgroup.
        cgroup: PathBuf,
        /// Where its pins would be.
        pins: PathBuf,
    },
    /// The datapath could not be read or attached.
    #[error(transparent)]
    Datapath(#[from] DatapathError),
    /// Signals or the timer could not be set up.
    #[error("setting up the sampling loop: {0}")]
    Runtime(std::io::Error),
    /// No flow was network-limited long enough: nothing is written.
    #[error(
        "no usable flow: {seen} flows seen, none network-limited for at least {need_s:.1} s (longest: {longest_s:.1} s); nothing written to {out}. Record longer, or while bulk transfers run in the cgroup"
    )]
    NoUsableFlows {
        /// Flows seen.
        seen: usize,
        /// Network-limited seconds a flow needed.
        need_s: f64,
        /// The longest network-limited time of any flow.
        longest_s: f64,
        /// The output folder.
        out: PathBuf,
    },
    /// Writing the corpus failed.
    #[error(transparent)]
    Corpus(#[from] ScenarioCorpusError),
    /// Writing a side file failed.
    #[error("{path}: cannot write: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// What `record` does.
#[derive(Clone, Debug)]
pub struct RecordOptions {
    /// The cgroup whose flows are recorded.
    pub cgroup: PathBuf,
    /// The pin folder of its datapath (default: the daemon's for the cgroup).
    pub pin_dir: Option<PathBuf>,
    /// Attach an observe-only datapath when none runs.
    pub observe: bool,
    /// The output folder.
    pub out: PathBuf,
    /// Sampling interval.
    pub sample: Duration,
    /// Window length of the corpus.
    pub window: Duration,
    /// Network-limited time a flow needs to be kept.
    pub min_duration: Duration,
    /// Stop after this long (None: at SIGINT/SIGTERM).
    pub duration: Option<Duration>,
}

impl RecordOptions {
    /// Checks the flags' ranges before anything runs.
    pub fn validate(&self) -> Result<(), RecordError> {
        let ms = |d: Duration| d.as_millis();
        if !(1..=1000).contains(&ms(self.sample)) {
            return Err(RecordError::Flag {
                flag: "--sample",
                allowed: "in [1ms, 1s]",
                got: humantime::format_duration(self.sample).to_string(),
            });
        }
        if !(1_000..=60_000).contains(&ms(self.window)) {
            return Err(RecordError::Flag {
                flag: "--window",
                allowed: "in [1s, 60s] (a scenario corpus' window length)",
                got: humantime::format_duration(self.window).to_string(),
            });
        }
        if self.min_duration < self.window {
            return Err(RecordError::Flag {
                flag: "--min-duration",
                allowed: "at least --window (a flow must fill one whole window)",
                got: humantime::format_duration(self.min_duration).to_string(),
            });
        }
        if let Some(d) = self.duration {
            if d < self.min_duration {
                return Err(RecordError::Flag {
                    flag: "--duration",
                    allowed: "at least --min-duration",
                    got: humantime::format_duration(d).to_string(),
                });
            }
        }
        if self.out.exists()
            && std::fs::read_dir(&self.out)
                .map(|mut d| d.next().is_some())
                .unwrap_or(true)
        {
            return Err(RecordError::OutNotEmpty(self.out.clone()));
        }
        Ok(())
    }
}

/// Live progress of a recording.
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    /// Time recorded.
    pub elapsed: Duration,
    /// Flows open now.
    pub open: usize,
    /// Flows seen.
    pub seen: usize,
    /// Network-limited time summed over flows.
    pub network_limited: Duration,
}

/// The datapath a recording reads: a running daemon's, adopted from its
/// pins, or (with `--observe`) one attached here in observe-only mode,
/// unpinned, so it is detached when the recording ends or dies and never
/// limits a flow.
fn open_datapath(
    opts: &RecordOptions,
) -> Result<(Datapath, &'static str, Option<PathBuf>), RecordError> {
    if datapath::cgroup::check_cgroup2(&opts.cgroup).is_err() {
        return Err(RecordError::NotCgroup(opts.cgroup.clone()));
    }
    let pins = opts
        .pin_dir
        .clone()
        .unwrap_or_else(|| datapath::default_pin_dir(&opts.cgroup));
    if datapath::attached_at(&pins) {
        return Ok((Datapath::adopt(&opts.cgroup, &pins)?, "daemon", Some(pins)));
    }
    if !opts.observe {
        return Err(RecordError::NoDatapath {
            cgroup: opts.cgroup.clone(),
            pins,
        });
    }
    let config = DatapathConfig {
        enforce: 0,
        ..DatapathConfig::default()
    };
    Ok((
        Datapath::attach(&opts.cgroup, config)?,
        "observe-only",
        None,
    ))
}

/// Records the cgroup's flows until `opts.duration` passes, SIGINT or
/// SIGTERM arrives, or an adopted datapath goes away, then writes the
/// corpus ([`write_corpus`]). `progress` hears about every 250 ms.
pub fn record(
    opts: &RecordOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<RecordOutcome, RecordError> {
    opts.validate()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RecordError::Runtime)?;
    let _guard = rt.enter();
    let mut signals = super::StopSignals::install().map_err(RecordError::Runtime)?;
    let (dp, kind, pins) = open_datapath(opts)?;
    let start = Instant::now();
    let mut open: std::collections::HashMap<u64, FlowRecording> = Default::default();
    let mut done: Vec<FlowRecording> = Vec::new();
    let mut buf = Vec::new();
    let mut ticker = tokio::time::interval(opts.sample);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_report = Instant::now();
    let stopped: Result<String, RecordError> = rt.block_on(async {
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                s = signals.recv() => return Ok(s.to_string()),
            }
            if opts.duration.is_some_and(|d| start.elapsed() >= d) {
                return Ok("--duration".to_string());
            }
            if let Some(p) = &pins {
                if !datapath::attached_at(p) {
                    return Ok(format!("the datapath at {} was detached", p.display()));
                }
            }
            dp.read_flows(&mut buf)?;
            let now = datapath::monotonic_ns();
            let mut live = std::collections::HashSet::with_capacity(buf.len());
            for (cookie, s) in &buf {
                live.insert(*cookie);
                let sample = Sample::of(now, s);
                open.entry(*cookie)
                    .and_modify(|f| f.push(sample))
                    .or_insert_with(|| FlowRecording::new(*cookie, s, sample));
            }
            let gone: Vec<u64> = open.keys().filter(|c| !live.contains(c)).copied().collect();
            for c in gone {
                if let Some(f) = open.remove(&c) {
                    done.push(f);
                }
            }
            if last_report.elapsed() >= Duration::from_millis(250) {
                last_report = Instant::now();
                progress(&Progress {
                    elapsed: start.elapsed(),
                    open: open.len(),
                    seen: open.len() + done.len(),
                    network_limited: open
                        .values()
                        .chain(&done)
                        .map(FlowRecording::network_limited)
                        .sum(),
                });
            }
        }
    });
    let stopped_by = stopped?;
    let recorded = start.elapsed();
    drop(dp);
    done.extend(open.into_values());
    done.sort_by_key(|f| f.first.t_ns);
    write_corpus(opts, &done, recorded, kind, stopped_by)
}

#[cfg(test)]
mod tests {
    use plume_cc_common::FlowStats;

    use super::*;
    use crate::trace::mahimahi::MBPS_PER_PACKET_PER_MS;
    use crate::trace::scenario_corpus;

    /// A read of a bulk flow at `t_ms` that has delivered `delivered`
    /// segments, with `inflight` of a cwnd of 20 in flight.
    fn sample(t_ms: u64, delivered: u32, inflight: u32) -> Sample {
        Sample {
            t_ns: t_ms * 1_000_000,
            updated_ns: t_ms * 1_000_000,
            delivered,
            packets_out: inflight,
            snd_cwnd: 20,
            mss: 1448,
            srtt_us: 30_000,
            min_rtt_us: 20_000,
            family: 2,
            ..Sample::default()
        }
    }

    fn flow() -> FlowRecording {
        FlowRecording::new(1, &FlowStats::default(), sample(0, 0, 20))
    }

    #[test]
    fn app_limited_periods_are_left_out_of_the_series() {
        // 2 s network-limited at 1 segment per ms (12 Mbit/s of 1500-byte
        // packets), 3 s application-limited at a tenth of that with 2 of 20
        // segments in flight, then 2 s network-limited again.
        let mut f = flow();
        let mut delivered = 0;
        for t in (10..=7_000).step_by(10) {
            let app = t > 2_000 && t <= 5_000;
            delivered += if app { 1 } else { 10 };
            f.push(sample(t, delivered, if app { 2 } else { 19 }));
        }
        let s = f.summary(0);
        // The switch to app-limited is seen one RTT (30 ms) late, as the
        // kernel's own test sees it; the switch back at once.
        assert!((s.network_limited_s - 4.02).abs() < 0.015, "{s:?}");
        assert!((s.app_limited_s - 2.98).abs() < 0.015, "{s:?}");
        assert!((s.mean_mbps - 12.0).abs() < 0.1, "{s:?}");
        let w = f.windows(1_000);
        assert_eq!(w.len(), 4, "4 whole 1 s windows in 4.02 s");
        for ts in &w {
            let mbps = ts.len() as f64 * MBPS_PER_PACKET_PER_MS / 1000.0;
            assert!((mbps - 12.0).abs() < 0.5, "{mbps}");
            assert!(ts.iter().all(|&t| (1..=1000).contains(&t)));
            assert!(ts.windows(2).all(|p| p[0] <= p[1]));
        }
        // Counting the app-limited time in would have said 7.4 Mbit/s.
        let naive = delivered as f64 * 1500.0 * 8.0 / 7.0 / 1e6;
        assert!(naive < 8.0, "{naive}");
    }

    #[test]
    fn reads_just_after_an_ack_burst_do_not_bias_the_trace_low() {
        // A bulk flow at 1 segment per ms; every third read lands right
        // after an ACK burst took 12 of its 19 segments out of flight, and
        // that read's interval delivered 15 segments instead of 7.5.
        let mut f = flow();
        let mut delivered = 0;
        for (i, t) in (10..=3_000).step_by(10).enumerate() {
            let burst = i % 3 == 2;
            delivered += if burst { 15 } else { 7 + (i % 3) as u32 };
            f.push(sample(t, delivered, if burst { 7 } else { 19 }));
        }
        let s = f.summary(0);
        assert!((s.network_limited_s - 3.0).abs() < 0.02, "{s:?}");
        assert!((s.mean_mbps - 12.0).abs() < 0.2, "{s:?}");
    }

    #[test]
    fn counters_are_timed_by_their_snapshot_not_by_the_read() {
        // A bulk flow at 1 segment per ms, read every 10 ms; in every third
        // read the latest callback is 8 ms old, and the read after it lands
        // just after an ACK burst with little in flight (a 1 ms RTT, so only
        // that read counts). The kept intervals end on the old snapshots:
        // timed by the reads they delivered 2 segments in 10 ms (2.4 Mbit/s).
        let mut f = flow();
        for (i, t) in (10..=3_000u64).step_by(10).enumerate() {
            let (lag, inflight) = match i % 3 {
                0 => (8, 20),
                1 => (0, 5),
                _ => (0, 20),
            };
            let mut s = sample(t, (t - lag) as u32, inflight);
            s.updated_ns = (t - lag) * 1_000_000;
            s.srtt_us = 1_000;
            f.push(s);
        }
        let s = f.summary(0);
        assert!((s.mean_mbps - 12.0).abs() < 0.3, "{s:?}");
        assert!(s.network_limited_s > 0.15, "{s:?}");
    }

    #[test]
    fn an_outage_while_cwnd_limited_stays_in_as_zero_capacity() {
        let mut f = flow();
        let mut delivered = 0;
        for t in (10..=3_000).step_by(10) {
            let outage = t > 1_000 && t <= 2_000;
            if !outage {
                delivered += 10;
            }
            let mut s = sample(t, delivered, 20);
            if outage {
                s.updated_ns = 1_000 * 1_000_000; // no ACK, no callback
            }
            f.push(s);
        }
        let s = f.summary(0);
        assert!((s.network_limited_s - 3.0).abs() < 0.02, "{s:?}");
        assert!((s.mean_mbps - 8.0).abs() < 0.2, "{s:?}");
        let ts = f.opportunities_ms();
        assert!(
            !ts.iter().any(|&t| t > 1_010 && t <= 2_000),
            "no opportunity in the outage"
        );
    }

    #[test]
    fn stale_statistics_are_left_out() {
        let mut f = flow();
        f.push(sample(10, 10, 20));
        let mut s = sample(5_000, 10, 20);
        s.updated_ns = 10 * 1_000_000;
        f.push(s);
        assert_eq!(classify(&sample(0, 0, 20), &s), Interval::Stale);
        assert!((f.summary(0).stale_s - 4.99).abs() < 1e-6);
        assert!(f.network_limited() < Duration::from_millis(20));
    }

    #[test]
    fn the_kernel_cwnd_limited_test() {
        assert!(sample(0, 0, 10).cwnd_limited());
        assert!(!sample(0, 0, 9).cwnd_limited());
        let mut s = sample(0, 0, 0);
        s.snd_cwnd = 0;
        assert!(!s.cwnd_limited());
    }

    fn opts(out: PathBuf) -> RecordOptions {
        RecordOptions {
            cgroup: "/sys/fs/cgroup/x".into(),
            pin_dir: None,
            observe: false,
            out,
            sample: Duration::from_millis(10),
            window: Duration::from_secs(1),
            min_duration: Duration::from_secs(2),
            duration: None,
        }
    }

    #[test]
    fn a_recording_becomes_a_corpus_that_opens_and_a_useless_one_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("rec");
        let mut good = flow();
        let mut short = FlowRecording::new(2, &FlowStats::default(), sample(0, 0, 20));
        let mut d = 0;
        for t in (10..=6_000).step_by(10) {
            d += 10;
            good.push(sample(t, d, 20));
            if t <= 1_500 {
                short.push(sample(t, d, 20));
            }
        }
        let e = write_corpus(
            &opts(out.clone()),
            &[short.clone()],
            Duration::from_secs(6),
            "daemon",
            "test".into(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no usable flow") && e.contains("1.5 s"), "{e}");
        assert!(!out.exists(), "nothing written");
        let o = write_corpus(
            &opts(out.clone()),
            &[good, short],
            Duration::from_secs(6),
            "daemon",
            "test".into(),
        )
        .unwrap();
        assert_eq!(
            (o.flows_seen, o.flows_used, o.windows, o.heldout),
            (2, 1, 6, 1)
        );
        let (m, recs) = scenario_corpus::open(&out).unwrap();
        assert_eq!(m.mix.window_ms, 1000);
        assert_eq!(recs.len(), 6);
        for r in &recs {
            assert!((r.mean_mbps - 12.0).abs() < 0.2, "{r:?}");
            assert_eq!(r.path.min_rtt_ms, 20.0);
            assert!((r.path.buffer_bdp.unwrap() - 0.5).abs() < 1e-9);
            assert!(r.source.contains("lower bound"));
        }
        let flows = std::fs::read_to_string(out.join("flows.jsonl")).unwrap();
        assert_eq!(flows.lines().count(), 2);
        assert!(out.join("recording.json").is_file());
        // A second recording into the same folder is refused up front.
        let e = opts(out).validate().unwrap_err().to_string();
        assert!(e.contains("not empty"), "{e}");
    }

    #[test]
    fn flags_out_of_range_name_the_flag_and_range() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts(dir.path().join("x"));
        o.window = Duration::from_millis(500);
        let e = o.validate().unwrap_err().to_string();
        assert!(e.contains("--window must be in [1s, 60s]"), "{e}");
        let mut o = opts(dir.path().join("x"));
        o.min_duration = Duration::from_millis(500);
        let e = o.validate().unwrap_err().to_string();
        assert!(
            e.contains("--min-duration must be at least --window"),
            "{e}"
        );
        let mut o = opts(dir.path().join("x"));
        o.sample = Duration::from_secs(2);
        assert!(o.validate().unwrap_err().to_string().contains("--sample"));
    }
}
