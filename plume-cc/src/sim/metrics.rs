//! Per-flow measurements for episode metrics (Pantheon-style: throughput,
//! utilisation, 95th-percentile delay, loss), kept in fixed-size buffers so
//! recording on the per-packet path never allocates.

use super::network::Network;

/// Width of one fine RTT histogram bucket, microseconds.
pub const RTT_BUCKET_US: u64 = 100;
/// Number of fine RTT buckets (covering 0 to 6.55 s).
pub const RTT_BUCKETS: usize = 65_536;
/// Width of one coarse bucket above the fine range, microseconds.
pub const RTT_COARSE_BUCKET_US: u64 = 10_000;
/// Number of coarse buckets (to about 126 s; the last collects the rest).
pub const RTT_COARSE_BUCKETS: usize = 12_000;
const FINE_END_US: u64 = RTT_BUCKET_US * RTT_BUCKETS as u64;

/// Histogram of RTT samples: [`RTT_BUCKET_US`] resolution up to 6.55 s,
/// [`RTT_COARSE_BUCKET_US`] above (cellular buffers reach seconds).
#[derive(Clone, Debug)]
pub struct RttHistogram {
    counts: Box<[u32]>,
    samples: u64,
}

impl Default for RttHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl RttHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self {
            counts: vec![0u32; RTT_BUCKETS + RTT_COARSE_BUCKETS].into_boxed_slice(),
            samples: 0,
        }
    }

    /// Records one sample.
    #[inline]
    pub fn record(&mut self, rtt_us: u64) {
        let i = if rtt_us < FINE_END_US {
            (rtt_us / RTT_BUCKET_US) as usize
        } else {
            let coarse = ((rtt_us - FINE_END_US) / RTT_COARSE_BUCKET_US) as usize;
            RTT_BUCKETS + coarse.min(RTT_COARSE_BUCKETS - 1)
        };
        self.counts[i] = self.counts[i].saturating_add(1);
        self.samples += 1;
    }

    /// Number of samples recorded.
    pub fn len(&self) -> u64 {
        self.samples
    }

    /// True when no sample was recorded.
    pub fn is_empty(&self) -> bool {
        self.samples == 0
    }

    /// The `q`-quantile (0..=1) in microseconds (bucket upper edge), 0 when empty.
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.samples == 0 {
            return 0;
        }
        let q = if q.is_nan() { 1.0 } else { q.clamp(0.0, 1.0) };
        let rank = ((q * self.samples as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += u64::from(c);
            if seen >= rank {
                return Self::upper_edge_us(i);
            }
        }
        Self::upper_edge_us(self.counts.len() - 1)
    }

    fn upper_edge_us(i: usize) -> u64 {
        if i < RTT_BUCKETS {
            (i as u64 + 1) * RTT_BUCKET_US
        } else {
            FINE_END_US + ((i - RTT_BUCKETS) as u64 + 1) * RTT_COARSE_BUCKET_US
        }
    }
}

/// Cumulative counters of one flow, kept by the sender.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowCounters {
    /// Segments transmitted, first transmissions and retransmissions.
    pub sent_segments: u64,
    /// Retransmitted segments.
    pub retransmitted_segments: u64,
    /// Segments the sender marked lost (dupACK/SACK or timeout).
    pub lost_segments: u64,
    /// Unique segments delivered (acked or SACKed).
    pub delivered_segments: u64,
    /// Retransmission timeouts.
    pub timeouts: u64,
    /// Sum of RTT samples, microseconds.
    pub rtt_sum_us: u64,
    /// Number of RTT samples.
    pub rtt_samples: u64,
}

/// Pantheon-style metrics of one flow over a run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EpisodeMetrics {
    /// Simulated time so far, microseconds.
    pub elapsed_us: u64,
    /// Payload bytes delivered (unique segments times MSS).
    pub delivered_bytes: u64,
    /// Link capacity offered so far, bytes (opportunities times 1500).
    pub capacity_bytes: u64,
    /// Delivered segments on the wire / capacity (can be slightly off 1 at
    /// the edges because of the propagation delay).
    pub utilization: f64,
    /// 95th-percentile RTT, microseconds.
    pub p95_rtt_us: u64,
    /// 95th-percentile RTT minus min RTT, microseconds.
    pub p95_queueing_delay_us: u64,
    /// Segments marked lost / segments sent.
    pub loss_rate: f64,
    /// Mean goodput, Mbit/s.
    pub throughput_mbps: f64,
}

/// Pantheon-style metrics of flow `index` of `net` since time 0.
pub fn flow_metrics(net: &Network, index: usize) -> Option<EpisodeMetrics> {
    let sender = net.sender(index)?;
    let c = sender.counters();
    let now = net.now_us();
    let capacity_bytes = net.data_link().trace().capacity_bytes_between_us(0, now);
    let delivered_bytes = c.delivered_segments * u64::from(sender.mss_bytes());
    let wire = c.delivered_segments * u64::from(sender.wire_bytes());
    let p95 = sender.rtt_histogram().quantile_us(0.95);
    Some(EpisodeMetrics {
        elapsed_us: now,
        delivered_bytes,
        capacity_bytes,
        utilization: if capacity_bytes > 0 {
            wire as f64 / capacity_bytes as f64
        } else {
            0.0
        },
        p95_rtt_us: p95,
        p95_queueing_delay_us: p95.saturating_sub(sender.min_rtt_us()),
        loss_rate: if c.sent_segments > 0 {
            c.lost_segments as f64 / c.sent_segments as f64
        } else {
            0.0
        },
        throughput_mbps: if now > 0 {
            delivered_bytes as f64 * 8.0 / now as f64
        } else {
            0.0
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles() {
        let mut h = RttHistogram::new();
        assert_eq!(h.quantile_us(0.95), 0);
        for ms in 1..=100u64 {
            h.record(ms * 1000);
        }
        assert_eq!(h.quantile_us(0.95), 95_100);
        assert_eq!(h.quantile_us(0.0), 1_100);
        h.record(8_000_000);
        assert_eq!(h.quantile_us(1.0), 8_003_600);
        h.record(u64::MAX);
        assert_eq!(
            h.quantile_us(1.0),
            FINE_END_US + RTT_COARSE_BUCKETS as u64 * RTT_COARSE_BUCKET_US
        );
    }
}
