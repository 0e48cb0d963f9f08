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
//! action's BDP are relative to) is a windowed maximum
//! ([`WindowedMax`](super::filter::WindowedMax), BBR's bandwidth filter)
//! over the longer of 10 min RTTs and 10 s of the kernel's own
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
//!
//! One file per concern:
//! - `layout`: the vector's layout, its lengths and feature names, and the
//!   versions this build builds (what a policy file's metadata checks);
//! - `features`: the arithmetic both versions share: the rates they take
//!   (the kernel's sample, a rate over at least a min RTT), the anchor's
//!   window, one history block and its clipping;
//! - `builder`: [`ObservationBuilder`], one flow's state, and what every
//!   version does with it (the previous sample, the competition detector,
//!   the history, the global features);
//! - `v3` and `v4`: each version's `observe`, the one place where they
//!   differ (a block per poll, or per new copy of the statistics).

mod builder;
mod features;
mod layout;
mod v3;
mod v4;

pub use builder::{ObservationBuilder, ObservationError, Pending};
pub use features::{ANCHOR_WINDOW_MIN_INTERVALS, ANCHOR_WINDOW_MIN_US, ANCHOR_WINDOW_RTTS};
pub use layout::{
    feature_name, feature_name_of, global_features, Observation, BLOCK_FEATURES, BLOCK_LEN,
    GLOBAL_FEATURES, GLOBAL_FEATURES_V4, HISTORY_LEN, OBSERVATION_LEN, OBSERVATION_VERSION,
    SUPPORTED_OBSERVATION_VERSIONS,
};

pub use crate::flow::FlowSample;

/// Samples the tests of every version build on.
#[cfg(test)]
mod fixtures {
    use plume_cc_common::{CWND_UNCLAMPED, PACING_UNLIMITED};

    use super::FlowSample;

    pub(super) fn sample(t_ms: u64, delivered: u32, srtt_ms: u32) -> FlowSample {
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

    /// A sample with a kernel delivery-rate sample of `rate_segs` segments
    /// of 1000 B over one 20 ms min RTT.
    pub(super) fn with_kernel_rate(t_ms: u64, delivered: u32, rate_segs: u32) -> FlowSample {
        FlowSample {
            rate_delivered_segments: rate_segs,
            rate_interval_us: 20_000,
            ..sample(t_ms, delivered, 20)
        }
    }
}
