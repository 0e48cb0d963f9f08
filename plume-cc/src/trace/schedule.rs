//! A link's delivery schedule as Mahimahi describes it: millisecond
//! timestamps of delivery opportunities, each worth [`OPPORTUNITY_BYTES`],
//! repeated forever (each repetition offset by the last timestamp, as
//! mm-link's `base_timestamp_ += schedule_.back()`).
//!
//! The one schedule type of the project: the simulator's link, the
//! emulator's link, the benchmark's capacity accounting and the Plume
//! pipeline's capacity series all count opportunities here, so they cannot
//! disagree on repetition or window edges.

/// Bytes one delivery opportunity may carry (one MTU-sized packet; the
/// simulator, the emulator and the trace library all use this one value).
pub const OPPORTUNITY_BYTES: u64 = 1500;

/// Why a list of timestamps is not a schedule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// A delivery schedule without opportunities.
    #[error("capacity trace is empty: it needs at least one delivery opportunity")]
    Empty,
    /// A delivery schedule whose timestamps go backwards.
    #[error("capacity trace is not sorted: entry {index} is {value_ms} ms after {previous_ms} ms")]
    Unsorted {
        /// Index of the first out-of-order timestamp.
        index: usize,
        /// The timestamp before it, ms.
        previous_ms: u64,
        /// The out-of-order timestamp, ms.
        value_ms: u64,
    },
    /// A schedule ending at 0 ms, which Mahimahi cannot repeat.
    #[error(
        "capacity trace ends at 0 ms: its last timestamp (the repetition period) must be positive"
    )]
    ZeroPeriod,
    /// A window or bin request that cannot be served.
    #[error("{0}")]
    BadRequest(String),
}

/// A validated delivery schedule: sorted millisecond timestamps and a
/// positive repetition period (for a whole trace, its last timestamp).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    opportunities_ms: Vec<u64>,
    period_ms: u64,
}

impl Schedule {
    /// Builds a schedule from opportunity timestamps in milliseconds.
    ///
    /// Errors when the list is empty, not sorted, or ends at 0 ms (Mahimahi
    /// could never advance past such a trace).
    pub fn from_ms(opportunities_ms: Vec<u64>) -> Result<Self, ScheduleError> {
        let Some(&last) = opportunities_ms.last() else {
            return Err(ScheduleError::Empty);
        };
        if let Some(i) = opportunities_ms.windows(2).position(|w| w[1] < w[0]) {
            return Err(ScheduleError::Unsorted {
                index: i + 1,
                previous_ms: opportunities_ms[i],
                value_ms: opportunities_ms[i + 1],
            });
        }
        if last == 0 {
            return Err(ScheduleError::ZeroPeriod);
        }
        Ok(Self {
            opportunities_ms,
            period_ms: last,
        })
    }

    /// A window `[start_ms, end_ms)` cut from a whole trace's sorted
    /// timestamps, rebased so the window starts at 0 ms and repeats every
    /// `end_ms - start_ms` (so an episode longer than the window replays it,
    /// quiet stretches included).
    ///
    /// Errors when the window is empty of opportunities, reversed, or the
    /// timestamps are not sorted.
    pub fn window_ms(trace_ms: &[u64], start_ms: u64, end_ms: u64) -> Result<Self, ScheduleError> {
        if end_ms <= start_ms {
            return Err(ScheduleError::BadRequest(format!(
                "trace window must end after it starts, got {start_ms}..{end_ms} ms"
            )));
        }
        let lo = trace_ms.partition_point(|&t| t < start_ms);
        let hi = trace_ms.partition_point(|&t| t < end_ms);
        let opportunities_ms: Vec<u64> = trace_ms[lo..hi.max(lo)]
            .iter()
            .map(|&t| t - start_ms)
            .collect();
        let mut out = Self::from_ms(opportunities_ms).or_else(|e| match e {
            // A window whose only opportunities are at its very start is fine.
            ScheduleError::ZeroPeriod => Ok(Self {
                opportunities_ms: trace_ms[lo..hi].iter().map(|&t| t - start_ms).collect(),
                period_ms: 1,
            }),
            e => Err(e),
        })?;
        out.period_ms = end_ms - start_ms;
        Ok(out)
    }

    /// A constant-rate schedule of `packets_per_ms` opportunities every
    /// millisecond (1 = 12 Mbit/s), one millisecond long.
    pub fn constant(packets_per_ms: u32) -> Result<Self, ScheduleError> {
        Self::from_ms(vec![1; packets_per_ms as usize])
    }

    /// Opportunities per repetition.
    pub fn len(&self) -> usize {
        self.opportunities_ms.len()
    }

    /// Always false: a valid schedule has at least one opportunity.
    pub fn is_empty(&self) -> bool {
        self.opportunities_ms.is_empty()
    }

    /// Repetition period in milliseconds (the last timestamp of a whole
    /// trace, the window length of a window).
    pub fn period_ms(&self) -> u64 {
        self.period_ms
    }

    /// The timestamps, milliseconds.
    pub fn opportunities_ms(&self) -> &[u64] {
        &self.opportunities_ms
    }

    /// Time in milliseconds of the opportunity with global index `index`
    /// (counting across repetitions).
    #[inline]
    pub fn opportunity_ms(&self, index: u64) -> u64 {
        let n = self.opportunities_ms.len() as u64;
        let rep = index / n;
        let j = (index % n) as usize;
        rep * self.period_ms() + self.opportunities_ms[j]
    }

    /// Number of opportunities at or before `time_ms`.
    pub fn count_at_or_before_ms(&self, time_ms: u64) -> u64 {
        let p = self.period_ms();
        let rep = time_ms / p;
        let rem = time_ms - rep * p;
        let within = self.opportunities_ms.partition_point(|&t| t <= rem) as u64;
        rep * self.opportunities_ms.len() as u64 + within
    }

    /// Global index of the first opportunity strictly after `time_ms`.
    #[inline]
    pub fn first_after_ms(&self, time_ms: u64) -> u64 {
        self.count_at_or_before_ms(time_ms)
    }

    /// Capacity in bytes of the opportunities in `(from_us, to_us]`, using
    /// Mahimahi's millisecond resolution.
    pub fn capacity_bytes_between_us(&self, from_us: u64, to_us: u64) -> u64 {
        if to_us <= from_us {
            return 0;
        }
        let a = self.count_at_or_before_ms(from_us / 1000);
        let b = self.count_at_or_before_ms(to_us / 1000);
        (b - a) * OPPORTUNITY_BYTES
    }

    /// Capacity in bytes of the opportunities in the half-open window
    /// `(from_ms, to_ms]`.
    pub fn capacity_bytes(&self, from_ms: u64, to_ms: u64) -> u64 {
        if to_ms <= from_ms {
            return 0;
        }
        (self.count_at_or_before_ms(to_ms) - self.count_at_or_before_ms(from_ms))
            * OPPORTUNITY_BYTES
    }

    /// Mean capacity over one repetition, bits per second.
    pub fn mean_rate_bits_per_sec(&self) -> f64 {
        (self.len() as f64 * OPPORTUNITY_BYTES as f64 * 8.0) / (self.period_ms() as f64 / 1000.0)
    }

    /// Mean capacity over one repetition, Mbit/s.
    pub fn mean_mbps(&self) -> f64 {
        self.mean_rate_bits_per_sec() / 1e6
    }

    /// Delivery opportunities per bin over `[start_ms, start_ms + bins *
    /// bin_ms)` of the endlessly repeated schedule (an opportunity at time
    /// `t` falls in bin `(t - start_ms) / bin_ms`).
    pub fn packet_counts(
        &self,
        start_ms: u64,
        bin_ms: u64,
        bins: usize,
    ) -> Result<Vec<u32>, ScheduleError> {
        if bin_ms == 0 || bins == 0 {
            return Err(ScheduleError::BadRequest(format!(
                "capacity series needs bin_ms > 0 and bins > 0 (got {bin_ms}, {bins})"
            )));
        }
        let end_ms = (bins as u64)
            .checked_mul(bin_ms)
            .and_then(|len| len.checked_add(start_ms))
            .filter(|&e| e <= u64::MAX / 4)
            .ok_or_else(|| {
                ScheduleError::BadRequest(format!(
                    "window of {bins} x {bin_ms} ms from {start_ms} ms is absurdly long"
                ))
            })?;
        let mut counts = vec![0u32; bins];
        // Opportunities at times in [start, end): counts at or before
        // `end - 1` minus those at or before `start - 1`, bin by bin.
        let before = |t: u64| -> u64 {
            match t.checked_sub(1) {
                Some(t) => self.count_at_or_before_ms(t),
                None => 0,
            }
        };
        let mut prev = before(start_ms);
        for (k, c) in counts.iter_mut().enumerate() {
            let next = before(start_ms + (k as u64 + 1) * bin_ms);
            *c = u32::try_from(next - prev).unwrap_or(u32::MAX);
            prev = next;
        }
        debug_assert_eq!(prev, before(end_ms));
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_schedules() {
        assert_eq!(Schedule::from_ms(vec![]), Err(ScheduleError::Empty));
        assert!(matches!(
            Schedule::from_ms(vec![0, 0]),
            Err(ScheduleError::ZeroPeriod)
        ));
        assert!(matches!(
            Schedule::from_ms(vec![3, 2]),
            Err(ScheduleError::Unsorted { index: 1, .. })
        ));
    }

    #[test]
    fn repetition_offsets_by_the_last_timestamp() {
        let t = Schedule::from_ms(vec![0, 2, 5]).unwrap();
        let times: Vec<u64> = (0..7).map(|i| t.opportunity_ms(i)).collect();
        assert_eq!(times, vec![0, 2, 5, 5, 7, 10, 10]);
        for ms in 0..20 {
            let brute = (0..100).filter(|&i| t.opportunity_ms(i) <= ms).count() as u64;
            assert_eq!(t.count_at_or_before_ms(ms), brute, "at {ms}");
        }
        let w = Schedule::window_ms(&[0, 2, 5, 7, 10, 12], 5, 11).unwrap();
        assert_eq!(w.opportunities_ms(), &[0, 2, 5]);
        assert_eq!(w.period_ms(), 6);
        assert_eq!(w.opportunity_ms(3), 6);
        assert_eq!(w.count_at_or_before_ms(12), 7);
        assert!(Schedule::window_ms(&[0, 2], 3, 9).is_err());
        assert!(Schedule::window_ms(&[0, 2], 3, 3).is_err());
        let edge = Schedule::window_ms(&[4, 4, 9], 4, 8).unwrap();
        assert_eq!((edge.len(), edge.period_ms()), (2, 4));
        let one = Schedule::constant(1).unwrap();
        assert!((one.mean_rate_bits_per_sec() - 12e6).abs() < 1.0);
        assert!((one.mean_mbps() - 12.0).abs() < 1e-9);
        assert_eq!(one.capacity_bytes_between_us(0, 1_000_000), 1000 * 1500);
        assert_eq!(one.capacity_bytes(0, 1000), 1000 * 1500);
        assert_eq!(one.capacity_bytes(10, 10), 0);
    }

    #[test]
    fn bins_count_what_the_counter_counts() {
        // Mahimahi's repetition: [0, 0, 5, 10] repeats as 10, 10, 15, 20, ...
        let t = Schedule::from_ms(vec![0, 0, 5, 10]).unwrap();
        assert_eq!(t.packet_counts(0, 10, 2).unwrap(), vec![3, 4]);
        assert_eq!(t.packet_counts(10, 5, 2).unwrap(), vec![3, 1]);
        for (start, bin) in [(0, 1), (3, 4), (7, 3), (20, 7)] {
            let c = t.packet_counts(start, bin, 10).unwrap();
            for (k, &n) in c.iter().enumerate() {
                let lo = start + k as u64 * bin;
                let brute = (0..100)
                    .filter(|&i| (lo..lo + bin).contains(&t.opportunity_ms(i)))
                    .count() as u32;
                assert_eq!(n, brute, "start {start} bin {bin} k {k}");
            }
        }
        assert!(t.packet_counts(0, 0, 3).is_err());
        assert!(t.packet_counts(0, 10, 0).is_err());
        assert!(t.packet_counts(u64::MAX - 5, 10, 3).is_err());
    }
}
