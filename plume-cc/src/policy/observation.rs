//! The shared observation builder: turns successive per-flow statistics into
//! a fixed-length `f32` feature vector for the policy.
//!
//! Its input, [`FlowSample`], holds only what the eBPF datapath reports in
//! [`plume_cc_common::FlowStats`] (srtt, min RTT, last RTT sample, cwnd,
//! ssthresh, MSS, packets/retransmissions/losses out, cumulative
//! retransmissions, delivered segments, bytes acked, the kernel's delivery-rate
//! sample, the limits in force and a timestamp). The simulator fills it from
//! its sender, the daemon from the BPF map, and both call the same
//! [`ObservationBuilder`], so training and deployment see identical features.
//!
//! Layout of an [`Observation`] (length [`OBSERVATION_LEN`]): first the
//! [`GLOBAL_FEATURES`], then [`HISTORY_LEN`] blocks of [`BLOCK_FEATURES`], the
//! newest interval first (block `k` describes interval `t-k`); blocks not yet
//! seen are zeros. Every feature is finite and clipped to a documented range.
//! [`feature_name`] gives a stable name per index.
//!
//! It must not read clocks or know anything the datapath cannot see (link
//! capacity, queue length, the simulator's internals).
//!
//! **The rate anchor** (the "max delivery rate" every rate feature and the
//! action's BDP are relative to) is a windowed maximum ([`WindowedMax`],
//! BBR's bandwidth filter) over the longer of 10 min RTTs and 10 s of the
//! kernel's own
//! delivery-rate samples, each over at least one min RTT (`tcp_rate.c`,
//! tcp_rate_gen: "Normally we expect interval_us >= min-rtt"), and each over
//! the longer of the send and the ACK time of the packets it covers, so a
//! burst of ACKs cannot inflate it. Until the kernel has a sample, the
//! interval's deliveries over `max(interval, min RTT)` stand in.
//!
//! Why: with a lifetime maximum of per-interval rates (observation version
//! 1), a burst of ACKs released at once by a cellular link (or an ACK path
//! with a gap) made one 20 ms interval look 10-100x faster than the link,
//! and the anchor never came down again: the clamp "one BDP" became
//! thousands of segments. A rate needs a span of a round trip to mean
//! anything, and an anchor must forget a link that got slower.
//!
//! Why 10 s and not BBR's 10 round trips: BBR probes above its estimate
//! every few round trips, so its filter always holds a fresh maximum; a
//! learned ceiling that does not probe lets a short-window anchor follow its
//! own reduced rate down (a flow that yields to a competitor, or backs off a
//! queue, ends up at the floor). Measured in the simulator's evaluation
//! matrix (docs/TRAINING.md): 10 s beats 10 RTTs for the learned policy
//! and for the fixed rule.
//!
//! **The min RTT** is the kernel's own (`tcp_min_rtt`, a windowed minimum
//! over `net.ipv4.tcp_min_rtt_wlen`, 300 s by default); the simulator keeps
//! the same estimator, which over an episode is the lifetime minimum.
//!
//! **Version 4: features on the statistics' clock.** The kernel's sock_ops
//! RTT callback fires about once per round trip (`tcp_rtt_estimator`), so
//! the statistics the datapath copies change that often, and 20 ms polls
//! read the same copy several times (`sim::DatapathModel::Callbacks`).
//! Version 3 makes a block per poll: its `delivery_rate_norm` is 0 for a
//! poll that saw no new copy and a whole round trip of deliveries over one
//! poll (clipped at 2) for one that did, and `srtt_gradient` is 0 unless a
//! copy arrived. Version 4 makes a block per new copy
//! ([`FlowSample::stats_us`] changed): `delivery_rate_norm` and
//! `retrans_rate` over the copy-to-copy span, `srtt_gradient` as srtt's
//! slope over that span (seconds per second, so the copies' spacing does
//! not scale it), the anchor updated once per copy at the copy's time. A
//! poll that reads the same copy again repeats the last observation except
//! `copy_age_rtts` (poll time - copy time, / min RTT), which takes the
//! slot of `interval_rtts` (at the fixed 20 ms interval of every policy so
//! far, 20 ms / min RTT: what `min_rtt_log` already says), so the vector
//! keeps its length and the network its shape.

use plume_cc_common::PACING_UNLIMITED;

use super::competition::{CompetitionDetector, DetectorSample, Mode};
use super::filter::WindowedMax;
use super::objective::Objective;

/// Version of the observation's semantics. A policy file records the version
/// it was trained on, and the loader refuses another one: the feature names
/// may stay the same while their meaning changes.
///
/// - 1: the rate anchor is the lifetime maximum of per-interval rates.
/// - 2: the rate anchor is a windowed maximum (10 RTTs, at least 10 s) of
///   rates over at least one min RTT (see the module docs).
/// - 3: as 2, plus the operating point (`objective`, the reward's delay
///   weight) as a global feature.
/// - 4: as 3, with the per-interval features timed by the statistics' own
///   clock ([`FlowSample::stats_us`], see "Version 4" in the module docs):
///   a history block per new copy of the statistics, its rates over the
///   copy-to-copy span, and `copy_age_rtts` in place of `interval_rtts`.
///
/// This is the version `train` writes by default and [`ObservationBuilder::new`]
/// builds; [`SUPPORTED_OBSERVATION_VERSIONS`] lists every version this
/// build can build (a policy's own version picks the builder).
pub const OBSERVATION_VERSION: u32 = 3;

/// Observation versions this build can build, and so load policies of.
pub const SUPPORTED_OBSERVATION_VERSIONS: [u32; 2] = [3, 4];

/// The rate anchor's window, in min RTTs (BBR's bandwidth filter length).
pub const ANCHOR_WINDOW_RTTS: u64 = 10;
/// The rate anchor's window is at least this many monitor intervals, so that
/// a very short RTT does not make it forget within one or two decisions.
pub const ANCHOR_WINDOW_MIN_INTERVALS: u64 = 4;
/// The rate anchor's window is at least this long, microseconds.
pub const ANCHOR_WINDOW_MIN_US: u64 = 10_000_000;

pub use crate::flow::FlowSample;

/// Features describing one monitor interval (the gap between two samples).
pub const BLOCK_FEATURES: [&str; 9] = [
    // delivered bytes over the interval / the flow's max delivery rate, [0, 2]
    "delivery_rate_norm",
    // the kernel's last delivery-rate sample / max delivery rate, [0, 2]
    "rate_sample_norm",
    // srtt / min_rtt - 1 (relative queueing delay), [0, 10]
    "srtt_excess",
    // last_rtt / min_rtt - 1, [0, 10]
    "last_rtt_excess",
    // (srtt - previous srtt) / min_rtt, [-5, 5]
    "srtt_gradient",
    // retransmissions / (delivered + retransmissions) in the interval, [0, 1]
    "retrans_rate",
    // cwnd in bytes / (max rate * min_rtt), the window in BDPs, [0, 10]
    "cwnd_bdp",
    // packets_out / cwnd, [0, 4]
    "inflight_cwnd",
    // pacing cap / max delivery rate, [0, 10] (10 when no cap)
    "pacing_cap_norm",
];

/// Features describing the flow as a whole (scale), at the vector's start,
/// as versions 1 to 3 name them ([`global_features`] gives version 4's).
pub const GLOBAL_FEATURES: [&str; 4] = [
    // ln(1 + min_rtt in ms) / ln(1001), [0, 1]
    "min_rtt_log",
    // ln(1 + max delivery rate in Mbit/s) / ln(10001), [0, 1]
    "max_rate_log",
    // interval length / min_rtt, [0, 10]
    "interval_rtts",
    // the operating point: the delay weight on a log scale, [0, 1]
    // (policy::objective)
    "objective",
];

/// Version 4's global features: `copy_age_rtts` (how old the statistics'
/// copy is at the poll, / min RTT, [0, 10]) in `interval_rtts`' slot, so
/// the vector keeps its length and the network its shape.
pub const GLOBAL_FEATURES_V4: [&str; 4] =
    ["min_rtt_log", "max_rate_log", "copy_age_rtts", "objective"];

/// The global features' names of observation `version`.
pub fn global_features(version: u32) -> &'static [&'static str; 4] {
    if version >= 4 {
        &GLOBAL_FEATURES_V4
    } else {
        &GLOBAL_FEATURES
    }
}

/// Monitor intervals of history in one observation.
pub const HISTORY_LEN: usize = 8;
/// Features per interval.
pub const BLOCK_LEN: usize = BLOCK_FEATURES.len();
/// Length of an observation vector.
pub const OBSERVATION_LEN: usize = GLOBAL_FEATURES.len() + HISTORY_LEN * BLOCK_LEN;

/// One observation: the policy's input.
pub type Observation = [f32; OBSERVATION_LEN];

/// Name of feature `index` ("min_rtt_log", "srtt_excess[t-2]", ...) of
/// version [`OBSERVATION_VERSION`], or `None` past [`OBSERVATION_LEN`].
pub fn feature_name(index: usize) -> Option<String> {
    feature_name_of(OBSERVATION_VERSION, index)
}

/// Name of feature `index` of observation `version` (see [`feature_name`]).
pub fn feature_name_of(version: u32, index: usize) -> Option<String> {
    let global = global_features(version);
    if index < global.len() {
        return Some(global[index].to_string());
    }
    let i = index - GLOBAL_FEATURES.len();
    if i >= HISTORY_LEN * BLOCK_LEN {
        return None;
    }
    Some(format!(
        "{}[t-{}]",
        BLOCK_FEATURES[i % BLOCK_LEN],
        i / BLOCK_LEN
    ))
}

/// Errors of the builder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObservationError {
    /// A sample older than the previous one.
    #[error("flow sample at {now_us} us is older than the previous one at {previous_us} us")]
    TimeWentBackwards {
        /// Previous sample's timestamp, microseconds.
        previous_us: u64,
        /// This sample's timestamp, microseconds.
        now_us: u64,
    },
    /// A copy of the statistics older than the previous copy (version 4).
    #[error("flow statistics copied at {now_us} us are older than the previous copy at {previous_us} us")]
    CopyWentBackwards {
        /// Previous copy's time, microseconds.
        previous_us: u64,
        /// This copy's time, microseconds.
        now_us: u64,
    },
    /// A version this build cannot build.
    #[error("observation version {0} is not supported (this build builds {SUPPORTED_OBSERVATION_VERSIONS:?})")]
    UnsupportedVersion(u32),
}

/// Keeps one flow's history and builds its observations (see module docs).
#[derive(Clone, Debug)]
pub struct ObservationBuilder {
    objective: Objective,
    /// Which observation it builds (3 or 4, [`OBSERVATION_VERSION`]).
    version: u32,
    prev: Option<FlowSample>,
    /// Version 4: the last new copy of the statistics (the sample that
    /// brought it), the start of the next copy's span.
    last_copy: Option<FlowSample>,
    anchor: WindowedMax,
    blocks: [[f32; BLOCK_LEN]; HISTORY_LEN],
    newest: usize,
    seen: usize,
    competition: CompetitionDetector,
    /// `min_rtt_log` and `max_rate_log` with the input each was computed
    /// from (its f64 bits): an `ln` each, recomputed only when the min RTT
    /// or the rate anchor moves, which is rare next to the intervals
    /// (issue 14: the two `ln` calls were about a sixth of building an
    /// observation in `perf`). The features are the same, bit for bit.
    log_features: [Option<(u64, f32)>; 2],
}

/// `f(x)`, from `kept` when it holds it for this `x` (bitwise), else
/// computed and kept.
fn kept_or(kept: &mut Option<(u64, f32)>, x: f64, f: impl FnOnce(f64) -> f32) -> f32 {
    match *kept {
        Some((bits, v)) if bits == x.to_bits() => v,
        _ => {
            let v = f(x);
            *kept = Some((x.to_bits(), v));
            v
        }
    }
}

impl Default for ObservationBuilder {
    fn default() -> Self {
        Self::new()
    }
}

/// `num / den`, 0 where `den` is not positive (no min RTT or anchor yet).
fn ratio(num: f64, den: f64) -> f64 {
    if den > 0.0 {
        num / den
    } else {
        0.0
    }
}

/// The time of `s`'s copy of the statistics: `stats_us`, or the poll's
/// time where the copy's is unknown (0), so that every poll is a new copy.
fn copy_time_us(s: &FlowSample) -> u64 {
    if s.stats_us == 0 {
        s.timestamp_us
    } else {
        s.stats_us
    }
}

/// The kernel's last delivery-rate sample of `s` (bytes/s; 0 before it has
/// one), and the same where the sample spans at least a min RTT (else 0):
/// `tcp_rate.c`, tcp_rate_gen: "Normally we expect interval_us >= min-rtt".
fn kernel_rates(s: &FlowSample, mss: f64, min_rtt_us: u64) -> (f64, f64) {
    let sample_rate = if s.rate_interval_us > 0 {
        f64::from(s.rate_delivered_segments) * mss * 1e6 / f64::from(s.rate_interval_us)
    } else {
        0.0
    };
    let kernel_rate = if u64::from(s.rate_interval_us) >= min_rtt_us {
        sample_rate
    } else {
        0.0
    };
    (sample_rate, kernel_rate)
}

/// `d_delivered` segments over the longer of `span_us` and the min RTT,
/// bytes/s (module docs: a rate needs a round trip to mean anything).
fn spanned_rate(d_delivered: f64, mss: f64, span_us: u64, min_rtt_us: u64) -> f64 {
    let span_us = span_us.max(min_rtt_us);
    if span_us > 0 {
        d_delivered * mss * 1e6 / span_us as f64
    } else {
        0.0
    }
}

/// The rate the anchor and the competition detector take: the kernel's
/// sample while it has one that spans a min RTT, else `spanned`. The
/// kernel's sample spans max(send time, ACK time) of the packets it
/// covers, so a burst of ACKs for packets sent over a longer time cannot
/// inflate it; deliveries counted between two reads can.
fn preferred_rate(kernel_rate: f64, spanned: f64) -> f64 {
    if kernel_rate > 0.0 {
        kernel_rate
    } else {
        spanned
    }
}

/// The rate anchor's window for samples `span_us` apart.
fn anchor_window_us(min_rtt_us: u64, span_us: u64) -> u64 {
    (ANCHOR_WINDOW_RTTS * min_rtt_us)
        .max(ANCHOR_WINDOW_MIN_INTERVALS * span_us)
        .max(ANCHOR_WINDOW_MIN_US)
}

/// One history block of sample `s` (layout [`BLOCK_FEATURES`]), from the
/// rates and changes its version computed: `delivery_rate`, the kernel's
/// `sample_rate` (bytes/s), the unclipped `srtt_gradient` and
/// `retrans_rate`.
fn block_of(
    s: &FlowSample,
    max_rate: f64,
    delivery_rate: f64,
    sample_rate: f64,
    srtt_gradient: f64,
    retrans_rate: f64,
) -> [f32; BLOCK_LEN] {
    let mss = f64::from(s.mss_bytes.max(1));
    let min_rtt = f64::from(s.min_rtt_us);
    let bdp_bytes = max_rate * min_rtt / 1e6;
    let pacing = if s.max_pacing_bytes_per_sec == PACING_UNLIMITED {
        10.0
    } else {
        ratio(f64::from(s.max_pacing_bytes_per_sec), max_rate)
    };
    [
        clip(ratio(delivery_rate, max_rate), 0.0, 2.0),
        clip(ratio(sample_rate, max_rate), 0.0, 2.0),
        clip(ratio(f64::from(s.srtt_us), min_rtt) - 1.0, 0.0, 10.0),
        clip(ratio(f64::from(s.last_rtt_us), min_rtt) - 1.0, 0.0, 10.0),
        clip(srtt_gradient, -5.0, 5.0),
        clip(retrans_rate, 0.0, 1.0),
        clip(
            ratio(f64::from(s.cwnd_segments) * mss, bdp_bytes),
            0.0,
            10.0,
        ),
        clip(
            ratio(f64::from(s.packets_out), f64::from(s.cwnd_segments)),
            0.0,
            4.0,
        ),
        clip(pacing, 0.0, 10.0),
    ]
}

fn clip(v: f64, lo: f64, hi: f64) -> f32 {
    if v.is_nan() {
        0.0
    } else {
        v.clamp(lo, hi) as f32
    }
}

impl ObservationBuilder {
    /// A builder with no history (a new flow), at the balanced objective.
    pub fn new() -> Self {
        Self::with_objective(Objective::default())
    }

    /// A builder with no history whose observations carry `objective`, of
    /// version [`OBSERVATION_VERSION`].
    pub fn with_objective(objective: Objective) -> Self {
        Self {
            objective,
            version: OBSERVATION_VERSION,
            prev: None,
            last_copy: None,
            anchor: WindowedMax::new(),
            blocks: [[0.0; BLOCK_LEN]; HISTORY_LEN],
            newest: 0,
            seen: 0,
            competition: CompetitionDetector::new(),
            log_features: [None; 2],
        }
    }

    /// A builder with no history of observation `version` (one of
    /// [`SUPPORTED_OBSERVATION_VERSIONS`]: a policy's own version, so that
    /// it is fed what it was trained on).
    pub fn with_version(objective: Objective, version: u32) -> Result<Self, ObservationError> {
        if !SUPPORTED_OBSERVATION_VERSIONS.contains(&version) {
            return Err(ObservationError::UnsupportedVersion(version));
        }
        Ok(Self {
            version,
            ..Self::with_objective(objective)
        })
    }

    /// The observation version it builds.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Forgets the flow's history (keeps the objective and the version).
    pub fn reset(&mut self) {
        *self = Self {
            version: self.version,
            ..Self::with_objective(self.objective)
        };
    }

    /// The rate anchor: the windowed maximum delivery rate, bytes per second
    /// (see the module docs).
    pub fn max_rate_bytes_per_sec(&self) -> f64 {
        self.anchor.get()
    }

    /// The flow's competition mode for the next interval (see
    /// [`super::competition`]); only policies with a
    /// [`super::CompetitionRule`] act on it.
    pub fn mode(&self) -> Mode {
        self.competition.mode()
    }

    /// Consumes the sample taken at the end of a monitor interval and returns
    /// the observation. The first sample only sets the baseline (its interval
    /// features are zeros).
    pub fn observe(&mut self, s: &FlowSample) -> Result<Observation, ObservationError> {
        let mut out = [0.0f32; OBSERVATION_LEN];
        self.observe_into(s, &mut out)?;
        Ok(out)
    }

    /// [`Self::observe`] writing the observation into `out` (every one of
    /// its [`OBSERVATION_LEN`] values, history not yet seen as zeros), so
    /// the daemon builds its batch matrix in place, row by row, with no
    /// copy per flow. On an error `out` and the builder are left unchanged.
    pub fn observe_into(
        &mut self,
        s: &FlowSample,
        out: &mut [f32; OBSERVATION_LEN],
    ) -> Result<(), ObservationError> {
        if self.version >= 4 {
            self.observe_v4(s, out)
        } else {
            self.observe_v3(s, out)
        }
    }

    /// Versions 1 to 3: one history block per poll, its rates over the
    /// poll interval.
    fn observe_v3(
        &mut self,
        s: &FlowSample,
        out: &mut [f32; OBSERVATION_LEN],
    ) -> Result<(), ObservationError> {
        let prev = self.checked_prev(s)?;
        let mss = f64::from(s.mss_bytes.max(1));
        let dt_us = s.timestamp_us - prev.timestamp_us;
        let d_delivered = f64::from(s.delivered_segments.wrapping_sub(prev.delivered_segments));
        let d_retrans = f64::from(s.total_retrans.wrapping_sub(prev.total_retrans));
        let interval_rate = if dt_us > 0 {
            d_delivered * mss * 1e6 / dt_us as f64
        } else {
            0.0
        };
        let min_rtt_us = u64::from(s.min_rtt_us);
        let (sample_rate, kernel_rate) = kernel_rates(s, mss, min_rtt_us);
        // The anchor's input, and the rate a competition probe drains
        // below: one interval's deliveries come from the statistics the
        // datapath copied at its last callback, once per round trip
        // (`sim::DatapathModel`), so one 20 ms interval often holds a whole
        // round trip's (up to 4x the link at an 80 ms RTT).
        let rate = preferred_rate(
            kernel_rate,
            spanned_rate(d_delivered, mss, dt_us, min_rtt_us),
        );
        let max_rate = if self.prev.is_some() {
            self.anchor
                .update(s.timestamp_us, anchor_window_us(min_rtt_us, dt_us), rate)
        } else {
            self.anchor.get()
        };
        let min_rtt = f64::from(s.min_rtt_us);
        let block = block_of(
            s,
            max_rate,
            interval_rate,
            sample_rate,
            ratio(f64::from(s.srtt_us) - f64::from(prev.srtt_us), min_rtt),
            ratio(d_retrans, d_delivered + d_retrans),
        );
        if self.prev.is_some() {
            self.push(block);
            self.update_detector(s, dt_us, rate);
        }
        self.prev = Some(*s);
        self.fill(out, min_rtt, max_rate, ratio(dt_us as f64, min_rtt));
        Ok(())
    }

    /// Version 4 (module docs, "Version 4"): a history block only when the
    /// sample brings a new copy of the statistics ([`FlowSample::stats_us`]
    /// changed), its rates over the copy-to-copy span; a poll that reads
    /// the same copy again gets the same blocks and anchor, and only
    /// `copy_age_rtts` says that the copy is older. The competition
    /// detector still runs at every poll, as in version 3: its probes are
    /// timed by the polls, and its rate is the kernel's sample.
    fn observe_v4(
        &mut self,
        s: &FlowSample,
        out: &mut [f32; OBSERVATION_LEN],
    ) -> Result<(), ObservationError> {
        let prev = self.checked_prev(s)?;
        let copy_us = copy_time_us(s);
        let new_copy = match self.last_copy {
            Some(c) if copy_us < copy_time_us(&c) => {
                return Err(ObservationError::CopyWentBackwards {
                    previous_us: copy_time_us(&c),
                    now_us: copy_us,
                })
            }
            Some(c) => copy_us != copy_time_us(&c),
            None => true,
        };
        let mss = f64::from(s.mss_bytes.max(1));
        let min_rtt_us = u64::from(s.min_rtt_us);
        let min_rtt = f64::from(s.min_rtt_us);
        let (sample_rate, kernel_rate) = kernel_rates(s, mss, min_rtt_us);
        let mut max_rate = self.anchor.get();
        match self.last_copy {
            Some(c) if new_copy => {
                // Deliveries over the copy-to-copy span (about a round
                // trip): a rate the statistics really measured, where one
                // poll interval held either nothing or a whole round trip.
                let span_us = copy_us - copy_time_us(&c);
                let d_delivered =
                    f64::from(s.delivered_segments.wrapping_sub(c.delivered_segments));
                let d_retrans = f64::from(s.total_retrans.wrapping_sub(c.total_retrans));
                let copy_rate = d_delivered * mss * 1e6 / span_us as f64;
                let anchor_input = preferred_rate(
                    kernel_rate,
                    spanned_rate(d_delivered, mss, span_us, min_rtt_us),
                );
                max_rate = self.anchor.update(
                    copy_us,
                    anchor_window_us(min_rtt_us, span_us),
                    anchor_input,
                );
                // srtt's slope over the span (seconds of srtt per second):
                // how fast the queue grows, whatever the spacing of the
                // copies (one round trip, or less at a retransmission).
                let srtt_slope = (f64::from(s.srtt_us) - f64::from(c.srtt_us)) / span_us as f64;
                let block = block_of(
                    s,
                    max_rate,
                    copy_rate,
                    sample_rate,
                    srtt_slope,
                    ratio(d_retrans, d_delivered + d_retrans),
                );
                self.push(block);
                self.last_copy = Some(*s);
            }
            Some(_) => {}
            None => self.last_copy = Some(*s),
        }
        if self.prev.is_some() {
            let dt_us = s.timestamp_us - prev.timestamp_us;
            let d_delivered = f64::from(s.delivered_segments.wrapping_sub(prev.delivered_segments));
            let rate = preferred_rate(
                kernel_rate,
                spanned_rate(d_delivered, mss, dt_us, min_rtt_us),
            );
            self.update_detector(s, dt_us, rate);
        }
        self.prev = Some(*s);
        let age_us = s.timestamp_us.saturating_sub(copy_us);
        self.fill(out, min_rtt, max_rate, ratio(age_us as f64, min_rtt));
        Ok(())
    }

    /// The previous sample (`s` itself for the first), refusing a sample
    /// older than it.
    fn checked_prev(&self, s: &FlowSample) -> Result<FlowSample, ObservationError> {
        match self.prev {
            Some(p) if s.timestamp_us < p.timestamp_us => {
                Err(ObservationError::TimeWentBackwards {
                    previous_us: p.timestamp_us,
                    now_us: s.timestamp_us,
                })
            }
            Some(p) => Ok(p),
            None => Ok(*s),
        }
    }

    /// Feeds the competition detector one poll, `dt_us` after the last,
    /// with `rate` as the flow's delivery rate.
    fn update_detector(&mut self, s: &FlowSample, dt_us: u64, rate: f64) {
        self.competition.update(&DetectorSample {
            timestamp_us: s.timestamp_us,
            min_rtt_us: s.min_rtt_us,
            srtt_us: s.srtt_us,
            last_rtt_us: s.last_rtt_us,
            interval_rate_bytes_per_sec: rate,
            interval_us: dt_us,
        });
    }

    /// Makes `block` the newest of the history.
    fn push(&mut self, block: [f32; BLOCK_LEN]) {
        self.newest = (self.newest + 1) % HISTORY_LEN;
        self.blocks[self.newest] = block;
        self.seen = (self.seen + 1).min(HISTORY_LEN);
    }

    /// Writes the global features (`third`, unclipped, is `interval_rtts`
    /// or `copy_age_rtts`) and the history into `out`.
    fn fill(&mut self, out: &mut [f32; OBSERVATION_LEN], min_rtt: f64, max_rate: f64, third: f64) {
        let [kept_rtt, kept_rate] = &mut self.log_features;
        out[0] = kept_or(kept_rtt, min_rtt, |min_rtt| {
            clip((1.0 + min_rtt / 1000.0).ln() / 1001f64.ln(), 0.0, 1.0)
        });
        out[1] = kept_or(kept_rate, max_rate, |max_rate| {
            clip((1.0 + max_rate * 8.0 / 1e6).ln() / 10001f64.ln(), 0.0, 1.0)
        });
        out[2] = clip(third, 0.0, 10.0);
        out[3] = self.objective.feature();
        for k in 0..self.seen {
            let b = &self.blocks[(self.newest + HISTORY_LEN - k) % HISTORY_LEN];
            let at = GLOBAL_FEATURES.len() + k * BLOCK_LEN;
            out[at..at + BLOCK_LEN].copy_from_slice(b);
        }
        out[GLOBAL_FEATURES.len() + self.seen * BLOCK_LEN..].fill(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plume_cc_common::FlowStats;
    use plume_cc_common::CWND_UNCLAMPED;

    fn sample(t_ms: u64, delivered: u32, srtt_ms: u32) -> FlowSample {
        FlowSample {
            timestamp_us: t_ms * 1000,
            srtt_us: srtt_ms * 1000,
            min_rtt_us: 20_000,
            last_rtt_us: srtt_ms * 1000,
            cwnd_segments: 20,
            ssthresh_segments: u32::MAX,
            mss_bytes: 1000,
            packets_out: 10,
            delivered_segments: delivered,
            cwnd_clamp_segments: CWND_UNCLAMPED,
            max_pacing_bytes_per_sec: PACING_UNLIMITED,
            ..FlowSample::default()
        }
    }

    #[test]
    fn names_cover_the_vector() {
        assert_eq!(OBSERVATION_LEN, 76);
        assert_eq!(feature_name(0).as_deref(), Some("min_rtt_log"));
        assert_eq!(feature_name(3).as_deref(), Some("objective"));
        assert_eq!(feature_name(4).as_deref(), Some("delivery_rate_norm[t-0]"));
        assert_eq!(
            feature_name(4 + BLOCK_LEN + 2).as_deref(),
            Some("srtt_excess[t-1]")
        );
        assert!(feature_name(OBSERVATION_LEN - 1).is_some());
        assert!(feature_name(OBSERVATION_LEN).is_none());
    }

    #[test]
    fn features_from_deltas_and_history_shifts() {
        let mut b = ObservationBuilder::new();
        let o0 = b.observe(&sample(0, 0, 20)).unwrap();
        assert_eq!(o0[3], Objective::BALANCED.feature());
        assert!(o0[4..].iter().all(|&v| v == 0.0));
        // 20 segments of 1000 B in 20 ms = 1 MB/s, the max so far.
        let o1 = b.observe(&sample(20, 20, 30)).unwrap();
        assert_eq!(o1[4], 1.0);
        assert!((o1[6] - 0.5).abs() < 1e-6); // srtt_excess
        assert!((o1[8] - 0.5).abs() < 1e-6); // srtt_gradient
                                             // cwnd 20 kB over BDP (1 MB/s * 20 ms = 20 kB) = 1.
        assert!((o1[10] - 1.0).abs() < 1e-6);
        let o2 = b.observe(&sample(40, 30, 30)).unwrap();
        assert!((o2[4] - 0.5).abs() < 1e-6);
        assert_eq!(o2[4 + BLOCK_LEN], 1.0, "previous block moved to t-1");
        assert!(o2.iter().all(|v| v.is_finite()));
        assert!(matches!(
            b.observe(&sample(10, 30, 30)),
            Err(ObservationError::TimeWentBackwards { .. })
        ));
        // The objective is carried through resets.
        let mut t = ObservationBuilder::with_objective(Objective::THROUGHPUT);
        t.reset();
        assert_eq!(
            t.observe(&sample(0, 0, 20)).unwrap()[3],
            Objective::THROUGHPUT.feature()
        );
    }

    /// A sample with a kernel delivery-rate sample of `rate_segs` segments
    /// of 1000 B over one 20 ms min RTT.
    fn with_kernel_rate(t_ms: u64, delivered: u32, rate_segs: u32) -> FlowSample {
        FlowSample {
            rate_delivered_segments: rate_segs,
            rate_interval_us: 20_000,
            ..sample(t_ms, delivered, 20)
        }
    }

    #[test]
    fn the_kept_log_features_equal_the_formula_whenever_their_input_moves() {
        let mut b = ObservationBuilder::new();
        let mut delivered = 0u32;
        // The min RTT and the rate both move, stay, and come back.
        let rtts = [
            20_000u32, 20_000, 18_000, 18_000, 18_000, 25_000, 18_000, 18_000,
        ];
        let rates = [0u32, 50, 50, 400, 400, 10, 10, 90_000];
        for (k, (&rtt, &rate)) in rtts.iter().zip(&rates).enumerate() {
            delivered += rate;
            let s = FlowSample {
                min_rtt_us: rtt,
                rate_delivered_segments: rate,
                rate_interval_us: 40_000,
                ..sample(20 * k as u64, delivered, 30)
            };
            let o = b.observe(&s).unwrap();
            let min_rtt = f64::from(rtt);
            let max_rate = b.max_rate_bytes_per_sec();
            let want0 = clip((1.0 + min_rtt / 1000.0).ln() / 1001f64.ln(), 0.0, 1.0);
            let want1 = clip((1.0 + max_rate * 8.0 / 1e6).ln() / 10001f64.ln(), 0.0, 1.0);
            assert_eq!(
                (o[0].to_bits(), o[1].to_bits()),
                (want0.to_bits(), want1.to_bits()),
                "sample {k}"
            );
        }
    }

    #[test]
    fn an_ack_burst_does_not_inflate_the_anchor() {
        let mut b = ObservationBuilder::new();
        // 1 MB/s: 20 segments of 1000 B per 20 ms, the kernel agrees.
        let mut delivered = 0;
        for i in 0..20u64 {
            b.observe(&with_kernel_rate(i * 20, delivered, 20)).unwrap();
            delivered += 20;
        }
        assert!((b.max_rate_bytes_per_sec() - 1e6).abs() < 1.0);
        // The ACK path stalls for 200 ms, then 200 segments are acknowledged
        // in one interval: 10 MB/s by the interval, not by the kernel.
        for i in 20..30u64 {
            b.observe(&with_kernel_rate(i * 20, delivered, 20)).unwrap();
        }
        delivered += 200;
        b.observe(&with_kernel_rate(600, delivered, 20)).unwrap();
        assert!(
            (b.max_rate_bytes_per_sec() - 1e6).abs() < 1.0,
            "{}",
            b.max_rate_bytes_per_sec()
        );
    }

    #[test]
    fn the_anchor_follows_a_capacity_drop() {
        let mut b = ObservationBuilder::new();
        let mut delivered = 0;
        // 12 s at 1 MB/s, then the link drops to a fifth.
        for i in 0..600u64 {
            b.observe(&with_kernel_rate(i * 20, delivered, 20)).unwrap();
            delivered += 20;
        }
        let mut dropped_at = None;
        for i in 600..1300u64 {
            b.observe(&with_kernel_rate(i * 20, delivered, 4)).unwrap();
            delivered += 4;
            if dropped_at.is_none() && (b.max_rate_bytes_per_sec() - 2e5).abs() < 1.0 {
                dropped_at = Some(i * 20);
            }
        }
        // min RTT 20 ms: 10 RTTs would be 200 ms, but the window is at
        // least ANCHOR_WINDOW_MIN_US (10 s), so the old rate leaves after 10 s.
        let t = dropped_at.expect("the anchor must come down");
        assert!((21_900..=22_300).contains(&t), "{t} ms");
    }

    /// Version 4: a poll that reads the same copy of the statistics again
    /// pushes no block and repeats the observation but for the copy's
    /// age; a new copy's block has its rates over the copy-to-copy span.
    #[test]
    fn v4_pushes_a_block_per_copy_with_rates_over_its_span() {
        let mut b = ObservationBuilder::with_version(Objective::BALANCED, 4).unwrap();
        assert_eq!(b.version(), 4);
        // Polls every 20 ms (min RTT 20 ms); copies of the statistics at
        // 100, 140 and 200 ms.
        let copy = |poll_ms: u64, copy_ms: u64, delivered: u32, srtt_ms: u32| FlowSample {
            stats_us: copy_ms * 1000,
            ..sample(poll_ms, delivered, srtt_ms)
        };
        b.observe(&copy(100, 100, 0, 40)).unwrap();
        let o = b.observe(&copy(120, 100, 0, 40)).unwrap();
        assert!(o[4..].iter().all(|&v| v == 0.0), "no copy yet, no block");
        assert_eq!(o[2], 1.0, "copy_age_rtts: 20 ms / 20 ms");
        // 40 segments of 1000 B over the 40 ms span: 1 MB/s (a v3 block
        // would say 2 MB/s over the 20 ms poll), which the anchor takes
        // too (no kernel sample yet: over max(span, min RTT)); srtt from 40
        // to 60 ms over 40 ms: a slope of 0.5.
        let o1 = b.observe(&copy(140, 140, 40, 60)).unwrap();
        assert!((b.max_rate_bytes_per_sec() - 1e6).abs() < 1e-6);
        assert_eq!(o1[4], 1.0, "delivery_rate_norm over the span");
        assert!((o1[4 + 4] - 0.5).abs() < 1e-6, "srtt_gradient {}", o1[8]);
        assert_eq!(o1[4 + BLOCK_LEN..], [0.0; OBSERVATION_LEN - 4 - BLOCK_LEN]);
        assert_eq!(o1[2], 0.0);
        // The same copy, polled 20 and 40 ms later: no new block, the
        // same anchor, only the age moves (1 and 2 min RTTs).
        let o2 = b.observe(&copy(160, 140, 40, 60)).unwrap();
        let o3 = b.observe(&copy(180, 140, 40, 60)).unwrap();
        assert_eq!((o2[2], o3[2]), (1.0, 2.0), "copy_age_rtts");
        assert_eq!(o1[..2], o2[..2]);
        assert_eq!(o1[3..], o2[3..], "no block pushed for a repeated copy");
        assert_eq!(o2[3..], o3[3..]);
        // A new copy at 200 ms: 30 segments over its 60 ms span, 0.5 MB/s,
        // half the anchor; srtt from 60 to 90 ms over 60 ms, a slope of 0.5.
        let o4 = b.observe(&copy(200, 200, 70, 90)).unwrap();
        assert!((o4[4] - 0.5).abs() < 1e-6, "{}", o4[4]);
        assert!((o4[4 + 4] - 0.5).abs() < 1e-6, "srtt_gradient {}", o4[8]);
        assert!((o4[4 + 2] - 3.5).abs() < 1e-6, "srtt_excess of the copy");
        assert_eq!(o4[4 + BLOCK_LEN..], o3[4..OBSERVATION_LEN - BLOCK_LEN]);
        assert_eq!(o4[2], 0.0);
        // A copy older than the last one is refused, the builder unchanged.
        assert_eq!(
            b.observe(&copy(220, 150, 70, 90)),
            Err(ObservationError::CopyWentBackwards {
                previous_us: 200_000,
                now_us: 150_000
            })
        );
        let o5 = b.observe(&copy(220, 200, 70, 90)).unwrap();
        assert_eq!((o5[2], &o5[3..]), (1.0, &o4[3..]));
        // A reset keeps the version.
        b.reset();
        assert_eq!(b.version(), 4);
    }

    /// Without a copy time (`stats_us` 0) every poll is a new copy: version
    /// 4 then has version 3's blocks (only the third global feature, and
    /// `srtt_gradient`'s scale, differ).
    #[test]
    fn v4_without_copy_times_makes_a_block_per_poll() {
        let mut v3 = ObservationBuilder::new();
        let mut v4 = ObservationBuilder::with_version(Objective::BALANCED, 4).unwrap();
        for (i, (delivered, srtt)) in [(0, 20), (20, 30), (30, 30), (55, 25)].iter().enumerate() {
            let s = sample(20 * i as u64, *delivered, *srtt);
            let (a, b) = (v3.observe(&s).unwrap(), v4.observe(&s).unwrap());
            assert_eq!(b[2], 0.0, "age 0");
            for k in 0..HISTORY_LEN {
                let at = GLOBAL_FEATURES.len() + k * BLOCK_LEN;
                for f in 0..BLOCK_LEN {
                    // srtt_gradient: (delta srtt)/min RTT in v3, /span in
                    // v4; equal here, where span = min RTT = 20 ms.
                    assert_eq!(a[at + f], b[at + f], "poll {i} block {k} feature {f}");
                }
            }
        }
    }

    #[test]
    fn only_supported_versions_build() {
        assert_eq!(
            ObservationBuilder::with_version(Objective::BALANCED, 2).unwrap_err(),
            ObservationError::UnsupportedVersion(2)
        );
        assert_eq!(ObservationBuilder::new().version(), OBSERVATION_VERSION);
        assert_eq!(
            feature_name_of(4, 2).as_deref(),
            Some("copy_age_rtts"),
            "v4 names its third feature"
        );
        assert_eq!(feature_name_of(3, 2).as_deref(), Some("interval_rtts"));
        assert_eq!(feature_name_of(4, 5), feature_name_of(3, 5));
    }

    #[test]
    fn from_flow_stats_keeps_the_fields() {
        let stats = FlowStats {
            updated_ns: 5_000_000,
            srtt_us: 1,
            min_rtt_us: 2,
            snd_cwnd: 3,
            delivered: 4,
            applied_pacing: 5,
            ..FlowStats::default()
        };
        let s = FlowSample::from(&stats);
        assert_eq!((s.timestamp_us, s.stats_us), (5_000, 5_000));
        assert_eq!((s.srtt_us, s.min_rtt_us, s.cwnd_segments), (1, 2, 3));
        assert_eq!((s.delivered_segments, s.max_pacing_bytes_per_sec), (4, 5));
    }
}
