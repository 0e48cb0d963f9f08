//! The emulator's view of a Mahimahi trace: the opportunity timestamps of
//! one period and the counting the link and the bench need (opportunities up
//! to a time, capacity of a window). Reading and validation are the `trace`
//! module's [`MahimahiTrace`], so the emulator, the simulator and the Plume
//! pipeline accept exactly the same files with the same errors.
//!
//! One integer per line: a millisecond at which one 1500-byte delivery
//! opportunity occurs; the link repeats the trace, offset by its last
//! timestamp.

use std::path::Path;

use super::EmuError;
use crate::trace::{mahimahi::PACKET_BYTES, MahimahiTrace};

/// Bytes one delivery opportunity may carry (Mahimahi's `PACKET_SIZE`).
pub const OPPORTUNITY_BYTES: usize = PACKET_BYTES as usize;

/// A parsed Mahimahi trace: non-decreasing opportunity timestamps (ms).
#[derive(Debug, Clone)]
pub struct LinkTrace {
    trace: MahimahiTrace,
}

impl From<MahimahiTrace> for LinkTrace {
    fn from(trace: MahimahiTrace) -> Self {
        Self { trace }
    }
}

impl LinkTrace {
    /// Reads and checks the trace at `path`.
    pub fn from_file(path: &Path) -> Result<Self, EmuError> {
        Ok(MahimahiTrace::read(path)?.into())
    }

    /// Parses trace text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, EmuError> {
        Ok(MahimahiTrace::parse(path, text)?.into())
    }

    /// Where the trace was read from.
    pub fn path(&self) -> &Path {
        self.trace.origin()
    }

    /// The opportunity timestamps of one period, milliseconds.
    pub fn timestamps_ms(&self) -> &[u64] {
        self.trace.timestamps_ms()
    }

    /// The repetition period (the last timestamp), milliseconds.
    pub fn period_ms(&self) -> u64 {
        self.trace.period_ms()
    }

    /// Number of opportunities at times `<= t_ms` (with repetition), counting
    /// from the link's start at time 0.
    pub fn opportunities_up_to(&self, t_ms: u64) -> u64 {
        let ms = self.timestamps_ms();
        let p = self.period_ms();
        let k = t_ms / p;
        let rest = t_ms - k * p;
        k * ms.len() as u64 + ms.partition_point(|&m| m <= rest) as u64
    }

    /// Capacity in bytes of the opportunities in the half-open window
    /// `(from_ms, to_ms]`.
    pub fn capacity_bytes(&self, from_ms: u64, to_ms: u64) -> u64 {
        (self.opportunities_up_to(to_ms) - self.opportunities_up_to(from_ms))
            * OPPORTUNITY_BYTES as u64
    }

    /// Mean capacity over one period, megabits per second.
    pub fn mean_mbps(&self) -> f64 {
        self.trace.mean_mbps()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_with_repetition() {
        let t = LinkTrace::parse("1\n", Path::new("t")).unwrap();
        assert_eq!(t.opportunities_up_to(0), 0);
        assert_eq!(t.opportunities_up_to(1000), 1000);
        assert!((t.mean_mbps() - 12.0).abs() < 1e-9);
        let t = LinkTrace::parse("0\n0\n5\n10\n", Path::new("t")).unwrap();
        assert_eq!(t.opportunities_up_to(0), 2);
        assert_eq!(t.opportunities_up_to(9), 3);
        assert_eq!(t.opportunities_up_to(10), 6); // 10 (end of rep 0) and 10+0 twice
        assert_eq!(t.capacity_bytes(10, 20), 4 * 1500);
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = LinkTrace::parse("1\nx\n", Path::new("bad.trace")).unwrap_err();
        let s = e.to_string();
        assert!(s.contains("bad.trace") && s.contains(":2"), "{s}");
        let e = LinkTrace::parse("5\n3\n", Path::new("b")).unwrap_err();
        assert!(e.to_string().contains(":2"));
        assert!(LinkTrace::parse("0\n", Path::new("z")).is_err());
        assert!(LinkTrace::parse("", Path::new("z")).is_err());
    }
}
