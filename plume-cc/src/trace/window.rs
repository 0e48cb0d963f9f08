//! Episode windows: slicing a long trace into fixed-length pieces.
//!
//! Training episodes and the Plume analysis both work on windows (e.g. 30 s)
//! of a trace rather than whole multi-minute recordings. A window is a start
//! time plus a length; its capacity series is binned on demand. Offsets come
//! from a caller-supplied RNG, never from a clock.
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::mahimahi::{MahimahiTrace, TraceError};

/// How to cut traces into windows and bin them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSpec {
    /// Window (episode) length in ms.
    pub length_ms: u64,
    /// Distance between the starts of consecutive windows in ms
    /// (`== length_ms`: back to back; smaller: overlapping).
    pub stride_ms: u64,
    /// Width of one capacity bin in ms.
    pub bin_ms: u64,
}

impl WindowSpec {
    /// Back-to-back windows of `length_ms`, binned at `bin_ms`.
    pub fn non_overlapping(length_ms: u64, bin_ms: u64) -> Self {
        Self {
            length_ms,
            stride_ms: length_ms,
            bin_ms,
        }
    }

    /// Bins per window (the window length rounded down to whole bins).
    pub fn bins(&self) -> usize {
        (self.length_ms / self.bin_ms.max(1)) as usize
    }

    /// Checks that the spec is usable, naming `origin` in the error.
    pub fn validate(&self, origin: &std::path::Path) -> Result<(), TraceError> {
        if self.bin_ms == 0 || self.stride_ms == 0 || self.length_ms < self.bin_ms {
            return Err(TraceError::BadRequest {
                path: origin.to_path_buf(),
                what: format!(
                    "window spec needs bin > 0, stride > 0 and length >= bin (got {self:?})"
                ),
            });
        }
        Ok(())
    }

    /// Window starts in one period of `trace`, beginning at `offset_ms`
    /// (taken modulo the stride), keeping only windows that end inside the
    /// recorded period (no wrap-around).
    pub fn starts(&self, trace: &MahimahiTrace, offset_ms: u64) -> Result<Vec<u64>, TraceError> {
        self.validate(trace.origin())?;
        let period = trace.period_ms();
        let mut start = offset_ms % self.stride_ms;
        let mut out = Vec::new();
        while start + self.length_ms <= period {
            out.push(start);
            start += self.stride_ms;
        }
        Ok(out)
    }

    /// A uniformly random offset in `[0, stride)` for [`Self::starts`], so
    /// that repeated slicings do not always cut at the same instants.
    pub fn random_offset(&self, rng: &mut impl Rng) -> u64 {
        rng.gen_range(0..self.stride_ms.max(1))
    }

    /// A random episode start anywhere in the trace's period; the window may
    /// wrap around the end, as mm-link repeats the trace.
    pub fn random_start(&self, trace: &MahimahiTrace, rng: &mut impl Rng) -> u64 {
        rng.gen_range(0..trace.period_ms())
    }
}

/// One window of one trace, with its binned capacity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceWindow {
    /// Index of the source trace in its corpus.
    pub trace: usize,
    /// Start of the window in ms from the start of the trace.
    pub start_ms: u64,
    /// Length of the window in ms.
    pub length_ms: u64,
    /// Bin width in ms.
    pub bin_ms: u64,
    /// Capacity per bin in Mbps.
    pub capacity_mbps: Vec<f64>,
}

impl TraceWindow {
    /// Cuts the window starting at `start_ms` out of `trace` (index `trace_index`).
    pub fn cut(
        trace: &MahimahiTrace,
        trace_index: usize,
        start_ms: u64,
        spec: &WindowSpec,
    ) -> Result<Self, TraceError> {
        spec.validate(trace.origin())?;
        Ok(Self {
            trace: trace_index,
            start_ms,
            length_ms: spec.length_ms,
            bin_ms: spec.bin_ms,
            capacity_mbps: trace.capacity_mbps(start_ms, spec.bin_ms, spec.bins())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn ramp(period: u64) -> MahimahiTrace {
        MahimahiTrace::from_timestamps("ramp", (1..=period).collect()).unwrap()
    }

    #[test]
    fn non_overlapping_windows_fit_in_the_period() {
        let spec = WindowSpec::non_overlapping(30_000, 100);
        let t = ramp(95_000);
        assert_eq!(spec.starts(&t, 0).unwrap(), vec![0, 30_000, 60_000]);
        assert_eq!(spec.starts(&t, 5_000).unwrap(), vec![5_000, 35_000, 65_000]);
        assert_eq!(spec.starts(&t, 30_000 + 5).unwrap()[0], 5);
        assert!(spec.starts(&ramp(29_999), 0).unwrap().is_empty());
        let w = TraceWindow::cut(&t, 7, 30_000, &spec).unwrap();
        assert_eq!(w.capacity_mbps.len(), 300);
        assert!(w.capacity_mbps.iter().all(|&c| (c - 12.0).abs() < 1e-9));
    }

    #[test]
    fn overlapping_stride_and_bad_specs() {
        let spec = WindowSpec {
            length_ms: 1000,
            stride_ms: 500,
            bin_ms: 10,
        };
        assert_eq!(spec.starts(&ramp(2000), 0).unwrap(), vec![0, 500, 1000]);
        let bad = WindowSpec {
            length_ms: 10,
            stride_ms: 0,
            bin_ms: 10,
        };
        assert!(bad.starts(&ramp(100), 0).is_err());
        let bad = WindowSpec::non_overlapping(5, 10);
        assert!(bad
            .starts(&ramp(100), 0)
            .unwrap_err()
            .to_string()
            .contains("ramp"));
    }

    #[test]
    fn offsets_are_seeded() {
        let spec = WindowSpec::non_overlapping(30_000, 100);
        let a: Vec<u64> = {
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            (0..5).map(|_| spec.random_offset(&mut rng)).collect()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let b: Vec<u64> = (0..5).map(|_| spec.random_offset(&mut rng)).collect();
        assert_eq!(a, b);
        assert!(a.iter().all(|&o| o < 30_000));
    }
}
