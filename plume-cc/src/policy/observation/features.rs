//! The arithmetic both observation versions share: the rates they take
//! (the kernel's delivery-rate sample, deliveries over at least a min
//! RTT, which of the two the anchor prefers), the anchor's window, one
//! history block of features and their clipping. Its own file so that
//! `v3` and `v4` differ only in the spans they feed it, not in copies of
//! it.

use plume_cc_common::PACING_UNLIMITED;

use super::{FlowSample, BLOCK_LEN};

/// The rate anchor's window, in min RTTs (BBR's bandwidth filter length).
pub const ANCHOR_WINDOW_RTTS: u64 = 10;
/// The rate anchor's window is at least this many monitor intervals, so that
/// a very short RTT does not make it forget within one or two decisions.
pub const ANCHOR_WINDOW_MIN_INTERVALS: u64 = 4;
/// The rate anchor's window is at least this long, microseconds.
pub const ANCHOR_WINDOW_MIN_US: u64 = 10_000_000;

/// `num / den`, 0 where `den` is not positive (no min RTT or anchor yet).
pub(super) fn ratio(num: f64, den: f64) -> f64 {
    if den > 0.0 {
        num / den
    } else {
        0.0
    }
}

/// The kernel's last delivery-rate sample of `s` (bytes/s; 0 before it has
/// one), and the same where the sample spans at least a min RTT (else 0):
/// `tcp_rate.c`, tcp_rate_gen: "Normally we expect interval_us >= min-rtt".
pub(super) fn kernel_rates(s: &FlowSample, mss: f64, min_rtt_us: u64) -> (f64, f64) {
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
pub(super) fn spanned_rate(d_delivered: f64, mss: f64, span_us: u64, min_rtt_us: u64) -> f64 {
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
pub(super) fn preferred_rate(kernel_rate: f64, spanned: f64) -> f64 {
    if kernel_rate > 0.0 {
        kernel_rate
    } else {
        spanned
    }
}

/// The rate anchor's window for samples `span_us` apart, at least
/// `floor_us` (the builder's [`ANCHOR_WINDOW_MIN_US`] unless its policy
/// sets another: `ActionScaling::anchor_window_floor_ms`).
pub(super) fn anchor_window_us(min_rtt_us: u64, span_us: u64, floor_us: u64) -> u64 {
    (ANCHOR_WINDOW_RTTS * min_rtt_us)
        .max(ANCHOR_WINDOW_MIN_INTERVALS * span_us)
        .max(floor_us)
}

/// One history block of sample `s` (layout [`BLOCK_FEATURES`]), from the
/// rates and changes its version computed: `delivery_rate`, the kernel's
/// `sample_rate` (bytes/s), the unclipped `srtt_gradient` and
/// `retrans_rate`.
pub(super) fn block_of(
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

pub(super) fn clip(v: f64, lo: f64, hi: f64) -> f32 {
    if v.is_nan() {
        0.0
    } else {
        v.clamp(lo, hi) as f32
    }
}
