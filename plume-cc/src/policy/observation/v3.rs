//! Version 3 of the observation: one history block per poll, its rates
//! over the poll interval. Its own file (beside `v4`) so that each
//! version's timing of the features reads whole, and a version can be
//! retired by removing its file.

use super::builder::Pending;
use super::features::{
    anchor_window_us, block_of, kernel_rates, preferred_rate, ratio, spanned_rate,
};
use super::{FlowSample, ObservationBuilder, ObservationError, BLOCK_LEN, HISTORY_LEN};

impl ObservationBuilder {
    /// Versions 1 to 3: one history block per poll, its rates over the
    /// poll interval.
    pub(super) fn advance_v3(&mut self, s: &FlowSample) -> Result<Pending, ObservationError> {
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
        // The anchor's input: one interval's deliveries come from the statistics the
        // datapath copied at its last callback, once per round trip
        // (`sim::DatapathModel`), so one 20 ms interval often holds a whole
        // round trip's (up to 4x the link at an 80 ms RTT).
        let rate = preferred_rate(
            kernel_rate,
            spanned_rate(d_delivered, mss, dt_us, min_rtt_us),
        );
        let max_rate = if self.prev.is_some() {
            self.anchor.update(
                s.timestamp_us,
                anchor_window_us(min_rtt_us, dt_us, self.anchor_floor_us),
                rate,
            )
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
            self.update_detector(s, dt_us, d_delivered * mss);
        }
        self.prev = Some(*s);
        Ok(Pending::new(
            min_rtt,
            max_rate,
            ratio(dt_us as f64, min_rtt),
        ))
    }
}

impl ObservationBuilder {
    /// [`Self::advance_v3`] of `p` (the previous sample) again at each of
    /// `times_us` (ascending, none before `p`'s), bit for bit
    /// ([`ObservationBuilder::advance_unchanged`]). With the statistics
    /// unchanged every delta is +0.0, so what moves from poll to poll is
    /// the poll interval, the anchor (its window and its samples' ages)
    /// and the detector's clock. The block is a function of the anchor
    /// alone here: it is built again only when the anchor's value moved,
    /// and only for the last [`HISTORY_LEN`] polls, since the earlier ones'
    /// blocks are overwritten by those (the ring's place and the count of
    /// blocks seen still move for them).
    pub(super) fn replay_unchanged_v3(&mut self, p: &FlowSample, times_us: &[u64]) {
        // The same expressions as `advance_v3`, with `s` and `prev` equal
        // but for the time.
        let mss = f64::from(p.mss_bytes.max(1));
        let d_delivered = f64::from(p.delivered_segments.wrapping_sub(p.delivered_segments));
        let d_retrans = f64::from(p.total_retrans.wrapping_sub(p.total_retrans));
        let min_rtt_us = u64::from(p.min_rtt_us);
        let (sample_rate, kernel_rate) = kernel_rates(p, mss, min_rtt_us);
        let min_rtt = f64::from(p.min_rtt_us);
        let srtt_gradient = ratio(f64::from(p.srtt_us) - f64::from(p.srtt_us), min_rtt);
        let retrans_rate = ratio(d_retrans, d_delivered + d_retrans);
        let first_kept = times_us.len().saturating_sub(HISTORY_LEN);
        // The last block built, with the anchor and the interval rate it
        // was built from (their f64 bits).
        let mut built: Option<(u64, u64, [f32; BLOCK_LEN])> = None;
        let mut last = p.timestamp_us;
        for (k, &t) in times_us.iter().enumerate() {
            let dt_us = t - last;
            let interval_rate = if dt_us > 0 {
                d_delivered * mss * 1e6 / dt_us as f64
            } else {
                0.0
            };
            let rate = preferred_rate(
                kernel_rate,
                spanned_rate(d_delivered, mss, dt_us, min_rtt_us),
            );
            let max_rate = self.anchor.update(
                t,
                anchor_window_us(min_rtt_us, dt_us, self.anchor_floor_us),
                rate,
            );
            if k >= first_kept {
                let key = (max_rate.to_bits(), interval_rate.to_bits());
                let block = match built {
                    Some((a, i, b)) if (a, i) == key => b,
                    _ => {
                        let b = block_of(
                            p,
                            max_rate,
                            interval_rate,
                            sample_rate,
                            srtt_gradient,
                            retrans_rate,
                        );
                        built = Some((key.0, key.1, b));
                        b
                    }
                };
                self.push(block);
            } else {
                // Overwritten by one of the last HISTORY_LEN pushes.
                self.newest = (self.newest + 1) % HISTORY_LEN;
                self.seen = (self.seen + 1).min(HISTORY_LEN);
            }
            if self.detector {
                let s = FlowSample {
                    timestamp_us: t,
                    ..*p
                };
                self.update_detector(&s, dt_us, d_delivered * mss);
            }
            last = t;
        }
        self.prev = Some(FlowSample {
            timestamp_us: last,
            ..*p
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{sample, with_kernel_rate};
    use super::super::BLOCK_LEN;
    use super::*;
    use crate::policy::objective::Objective;

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

    /// Feeds `b` 12 s at 1 MB/s (20 ms polls), then a link at a fifth of
    /// that until `until_ms`: when the anchor first reads the new rate.
    fn anchor_drop_ms(mut b: ObservationBuilder, until_ms: u64) -> Option<u64> {
        let mut delivered = 0;
        for i in 0..600u64 {
            b.observe(&with_kernel_rate(i * 20, delivered, 20)).unwrap();
            delivered += 20;
        }
        for i in 600..until_ms / 20 {
            b.observe(&with_kernel_rate(i * 20, delivered, 4)).unwrap();
            delivered += 4;
            if (b.max_rate_bytes_per_sec() - 2e5).abs() < 1.0 {
                return Some(i * 20);
            }
        }
        None
    }

    #[test]
    fn the_anchor_follows_a_capacity_drop() {
        // min RTT 20 ms: 10 RTTs would be 200 ms, but the window is at
        // least ANCHOR_WINDOW_MIN_US (10 s), so the old rate leaves after 10 s.
        let t =
            anchor_drop_ms(ObservationBuilder::new(), 26_000).expect("the anchor must come down");
        assert!((21_900..=22_300).contains(&t), "{t} ms");
    }

    #[test]
    fn a_lower_anchor_floor_forgets_sooner_and_survives_a_reset() {
        // The same drop with the window's floor at 1 s: the old rate
        // leaves about 1 s after the drop instead of 10 s.
        let mut b = ObservationBuilder::new().with_anchor_floor_us(1_000_000);
        b.reset();
        let t = anchor_drop_ms(b, 16_000).expect("the anchor must come down within 4 s");
        assert!((12_900..=13_300).contains(&t), "{t} ms");
    }
}
