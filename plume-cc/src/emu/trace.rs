//! A minimal Mahimahi trace reader for the emulator.
//!
//! One integer per line: a millisecond at which one 1500-byte delivery
//! opportunity occurs; the link repeats the trace, offset by its last
//! timestamp. This reader is deliberately small (the `trace` module holds the
//! full reader) so it can be swapped later; it must not grow features the
//! emulator does not need.

use std::path::{Path, PathBuf};

use super::EmuError;

/// Bytes one delivery opportunity may carry (Mahimahi's `PACKET_SIZE`).
pub const OPPORTUNITY_BYTES: usize = 1500;

/// A parsed Mahimahi trace: non-decreasing opportunity timestamps (ms).
#[derive(Debug, Clone)]
pub struct LinkTrace {
    path: PathBuf,
    ms: Vec<u64>,
}

impl LinkTrace {
    /// Reads and checks the trace at `path`.
    pub fn from_file(path: &Path) -> Result<Self, EmuError> {
        let text = std::fs::read_to_string(path).map_err(|source| EmuError::Io {
            op: "read trace",
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses trace text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, EmuError> {
        let err = |line: usize, msg: String| EmuError::Trace {
            path: path.to_owned(),
            line,
            msg,
        };
        let mut ms = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let s = raw.trim();
            if s.is_empty() {
                continue;
            }
            let v: u64 = s
                .parse()
                .map_err(|e| err(i + 1, format!("{s:?} is not a millisecond timestamp ({e})")))?;
            if let Some(&prev) = ms.last() {
                if v < prev {
                    return Err(err(
                        i + 1,
                        format!("timestamp {v} is before the previous one ({prev})"),
                    ));
                }
            }
            ms.push(v);
        }
        match ms.last() {
            None => Err(err(0, "the trace has no timestamps".into())),
            Some(0) => Err(err(
                ms.len(),
                "the last timestamp must be positive (it is the repetition period)".into(),
            )),
            Some(_) => Ok(Self {
                path: path.to_owned(),
                ms,
            }),
        }
    }

    /// Where the trace was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The opportunity timestamps of one period, milliseconds.
    pub fn timestamps_ms(&self) -> &[u64] {
        &self.ms
    }

    /// The repetition period (the last timestamp), milliseconds.
    pub fn period_ms(&self) -> u64 {
        *self.ms.last().expect("a parsed trace is never empty")
    }

    /// Number of opportunities at times `<= t_ms` (with repetition), counting
    /// from the link's start at time 0.
    pub fn opportunities_up_to(&self, t_ms: u64) -> u64 {
        let p = self.period_ms();
        let k = t_ms / p;
        let rest = t_ms - k * p;
        k * self.ms.len() as u64 + self.ms.partition_point(|&m| m <= rest) as u64
    }

    /// Capacity in bytes of the opportunities in the half-open window
    /// `(from_ms, to_ms]`.
    pub fn capacity_bytes(&self, from_ms: u64, to_ms: u64) -> u64 {
        (self.opportunities_up_to(to_ms) - self.opportunities_up_to(from_ms))
            * OPPORTUNITY_BYTES as u64
    }

    /// Mean capacity over one period, megabits per second.
    pub fn mean_mbps(&self) -> f64 {
        self.ms.len() as f64 * OPPORTUNITY_BYTES as f64 * 8.0 / (self.period_ms() as f64 * 1000.0)
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
