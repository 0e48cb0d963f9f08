//! A link's capacity as Mahimahi describes it: millisecond timestamps of
//! delivery opportunities, each worth [`OPPORTUNITY_BYTES`], repeated forever
//! (each repetition offset by the last timestamp).
//!
//! This is the plain capacity description the environment takes, so a trainer
//! can hand it windows cut from any trace library.

use super::SimError;

/// Bytes one delivery opportunity may carry (Mahimahi's `PACKET_SIZE`).
pub const OPPORTUNITY_BYTES: u64 = 1500;

/// A validated delivery schedule: sorted millisecond timestamps and a
/// positive repetition period (for a whole trace, its last timestamp).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapacityTrace {
    opportunities_ms: Vec<u64>,
    period_ms: u64,
}

impl CapacityTrace {
    /// Builds a schedule from opportunity timestamps in milliseconds.
    ///
    /// Errors when the list is empty, not sorted, or ends at 0 ms (Mahimahi
    /// could never advance past such a trace).
    pub fn from_ms(opportunities_ms: Vec<u64>) -> Result<Self, SimError> {
        let Some(&last) = opportunities_ms.last() else {
            return Err(SimError::EmptyTrace);
        };
        if let Some(i) = opportunities_ms.windows(2).position(|w| w[1] < w[0]) {
            return Err(SimError::UnsortedTrace {
                index: i + 1,
                previous_ms: opportunities_ms[i],
                value_ms: opportunities_ms[i + 1],
            });
        }
        if last == 0 {
            return Err(SimError::ZeroPeriodTrace);
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
    pub fn window_ms(trace_ms: &[u64], start_ms: u64, end_ms: u64) -> Result<Self, SimError> {
        if end_ms <= start_ms {
            return Err(SimError::InvalidConfig(format!(
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
            SimError::ZeroPeriodTrace => Ok(Self {
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
    pub fn constant(packets_per_ms: u32) -> Result<Self, SimError> {
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

    /// Mean capacity over one repetition, bits per second.
    pub fn mean_rate_bits_per_sec(&self) -> f64 {
        (self.len() as f64 * OPPORTUNITY_BYTES as f64 * 8.0) / (self.period_ms() as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_schedules() {
        assert!(matches!(
            CapacityTrace::from_ms(vec![]),
            Err(SimError::EmptyTrace)
        ));
        assert!(matches!(
            CapacityTrace::from_ms(vec![0, 0]),
            Err(SimError::ZeroPeriodTrace)
        ));
        assert!(matches!(
            CapacityTrace::from_ms(vec![3, 2]),
            Err(SimError::UnsortedTrace { index: 1, .. })
        ));
    }

    #[test]
    fn repetition_offsets_by_the_last_timestamp() {
        let t = CapacityTrace::from_ms(vec![0, 2, 5]).unwrap();
        let times: Vec<u64> = (0..7).map(|i| t.opportunity_ms(i)).collect();
        assert_eq!(times, vec![0, 2, 5, 5, 7, 10, 10]);
        for ms in 0..20 {
            let brute = (0..100).filter(|&i| t.opportunity_ms(i) <= ms).count() as u64;
            assert_eq!(t.count_at_or_before_ms(ms), brute, "at {ms}");
        }
        let w = CapacityTrace::window_ms(&[0, 2, 5, 7, 10, 12], 5, 11).unwrap();
        assert_eq!(w.opportunities_ms(), &[0, 2, 5]);
        assert_eq!(w.period_ms(), 6);
        assert_eq!(w.opportunity_ms(3), 6);
        assert_eq!(w.count_at_or_before_ms(12), 7);
        assert!(CapacityTrace::window_ms(&[0, 2], 3, 9).is_err());
        assert!(CapacityTrace::window_ms(&[0, 2], 3, 3).is_err());
        let edge = CapacityTrace::window_ms(&[4, 4, 9], 4, 8).unwrap();
        assert_eq!((edge.len(), edge.period_ms()), (2, 4));
        let one = CapacityTrace::constant(1).unwrap();
        assert!((one.mean_rate_bits_per_sec() - 12e6).abs() < 1.0);
        assert_eq!(one.capacity_bytes_between_us(0, 1_000_000), 1000 * 1500);
    }
}
