//! A TCP flow as the kernel shows it: [`FlowSample`], the per-flow
//! statistics the eBPF datapath reports (srtt, min RTT, last RTT sample,
//! cwnd, ssthresh, MSS, packets/retransmissions/losses out, cumulative
//! retransmissions, delivered segments, bytes acked, the kernel's
//! delivery-rate sample, the limits in force and a timestamp).
//!
//! The daemon fills it from the BPF map ([`plume_cc_common::FlowStats`]), the
//! simulator from its sender, and the policy's observation builder reads only
//! this, so training and deployment see identical inputs. It sits at the
//! bottom of the layers, beside `trace`, so that the simulator can produce it
//! without knowing anything of policies.
//!
//! [`rtt`]: the RFC 6298 RTT estimator a sender keeps (srtt, rttvar, RTO, and
//! the minimum and latest RTT), which the simulator's sender uses;
//! [`rate`]: delivery-rate sampling as `tcp_rate.c` does it.

pub mod rate;
pub mod rtt;

use plume_cc_common::FlowStats;

pub use rate::{RateSampler, SendStamp};
pub use rtt::RttEstimator;

/// Per-flow statistics, as the datapath reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowSample {
    /// When the statistics were taken, microseconds on a monotonic clock.
    /// A daemon sampling on its own tick sets it to its poll time.
    pub timestamp_us: u64,
    /// When the datapath copied these statistics (its callback), on the
    /// same clock; 0 when unknown. The kernel copies a flow's statistics
    /// about once per round trip (the RTT callback), so successive polls
    /// often read the same copy: this tells them apart, which
    /// `timestamp_us` (the poll's time) cannot (observation version 4).
    pub stats_us: u64,
    /// Smoothed RTT, microseconds (0 before the first sample).
    pub srtt_us: u32,
    /// Minimum RTT, microseconds (0 before the first sample).
    pub min_rtt_us: u32,
    /// Latest RTT sample, microseconds (0 if none yet).
    pub last_rtt_us: u32,
    /// Congestion window, segments.
    pub cwnd_segments: u32,
    /// Slow-start threshold, segments.
    pub ssthresh_segments: u32,
    /// Sender MSS, bytes.
    pub mss_bytes: u32,
    /// Segments sent and not cumulatively acknowledged.
    pub packets_out: u32,
    /// Retransmitted segments in flight.
    pub retrans_out: u32,
    /// Segments presumed lost now.
    pub lost_out: u32,
    /// Retransmitted segments, cumulative (wraps like the kernel's u32).
    pub total_retrans: u32,
    /// Segments delivered, cumulative (wraps like the kernel's u32).
    pub delivered_segments: u32,
    /// Bytes acknowledged, cumulative.
    pub bytes_acked: u64,
    /// Kernel delivery-rate sample: segments over `rate_interval_us`.
    pub rate_delivered_segments: u32,
    /// Kernel delivery-rate sample interval, microseconds.
    pub rate_interval_us: u32,
    /// cwnd clamp in force ([`plume_cc_common::CWND_UNCLAMPED`] when none), segments.
    pub cwnd_clamp_segments: u32,
    /// Pacing cap in force ([`plume_cc_common::PACING_UNLIMITED`] when none), bytes/s.
    pub max_pacing_bytes_per_sec: u32,
}

impl From<&FlowStats> for FlowSample {
    /// Takes the datapath's statistics; `timestamp_us` and `stats_us` are
    /// the stats' update time (`updated_ns / 1000`). A daemon sampling on
    /// its own tick may overwrite `timestamp_us` with its poll time, and
    /// keeps `stats_us`.
    fn from(s: &FlowStats) -> Self {
        Self {
            timestamp_us: s.updated_ns / 1000,
            stats_us: s.updated_ns / 1000,
            srtt_us: s.srtt_us,
            min_rtt_us: s.min_rtt_us,
            last_rtt_us: s.last_rtt_us,
            cwnd_segments: s.snd_cwnd,
            ssthresh_segments: s.snd_ssthresh,
            mss_bytes: s.mss,
            packets_out: s.packets_out,
            retrans_out: s.retrans_out,
            lost_out: s.lost_out,
            total_retrans: s.total_retrans,
            delivered_segments: s.delivered,
            bytes_acked: s.bytes_acked,
            rate_delivered_segments: s.rate_delivered,
            rate_interval_us: s.rate_interval_us,
            cwnd_clamp_segments: s.applied_cwnd_clamp,
            max_pacing_bytes_per_sec: s.applied_pacing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
