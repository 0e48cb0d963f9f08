//! Version 4 of the observation (module docs, "Version 4"): a history
//! block per new copy of the statistics, its rates over the copy-to-copy
//! span. Its own file (beside `v3`) so that each version's timing of the
//! features reads whole, and a version can be retired by removing its
//! file.

use super::builder::Pending;
use super::features::{
    anchor_window_us, block_of, kernel_rates, preferred_rate, ratio, spanned_rate,
};
use super::{FlowSample, ObservationBuilder, ObservationError};

/// The time of `s`'s copy of the statistics: `stats_us`, or the poll's
/// time where the copy's is unknown (0), so that every poll is a new copy.
fn copy_time_us(s: &FlowSample) -> u64 {
    if s.stats_us == 0 {
        s.timestamp_us
    } else {
        s.stats_us
    }
}

impl ObservationBuilder {
    /// Version 4 (module docs, "Version 4"): a history block only when the
    /// sample brings a new copy of the statistics ([`FlowSample::stats_us`]
    /// changed), its rates over the copy-to-copy span; a poll that reads
    /// the same copy again gets the same blocks and anchor, and only
    /// `copy_age_rtts` says that the copy is older. The competition
    /// detector still runs at every poll, as in version 3: its probes are
    /// timed by the polls, and its rate is the kernel's sample.
    pub(super) fn advance_v4(&mut self, s: &FlowSample) -> Result<Pending, ObservationError> {
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
                    anchor_window_us(min_rtt_us, span_us, self.anchor_floor_us),
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
            self.update_detector(s, dt_us, d_delivered * mss);
        }
        self.prev = Some(*s);
        let age_us = s.timestamp_us.saturating_sub(copy_us);
        Ok(Pending::new(
            min_rtt,
            max_rate,
            ratio(age_us as f64, min_rtt),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::sample;
    use super::super::{BLOCK_LEN, GLOBAL_FEATURES, HISTORY_LEN, OBSERVATION_LEN};
    use super::*;
    use crate::policy::objective::Objective;

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
}
