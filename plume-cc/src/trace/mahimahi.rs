//! Reading and writing Mahimahi link traces, and turning them into capacity
//! series.
//!
//! The format (as `mm-link` reads it): one line per 1500-byte delivery
//! opportunity, each line a timestamp in milliseconds from the start of the
//! trace; timestamps never decrease and may repeat (several packets in one
//! millisecond). When the link reaches the last line it starts over, shifted by
//! the last timestamp, so the last timestamp is the trace's period: a file
//! holding just `1` is one packet per millisecond forever, a 12 Mbps link.
//!
//! This module only parses, validates and counts; it never panics on bad input
//! and reads no clock.
use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
};

use super::schedule::{Schedule, OPPORTUNITY_BYTES};

/// Megabits per second carried by one opportunity per millisecond (12 Mbps).
pub const MBPS_PER_PACKET_PER_MS: f64 = (OPPORTUNITY_BYTES * 8) as f64 / 1000.0;
/// The largest timestamp we accept (30 days): anything longer is a corrupt
/// file or a unit mistake, not a link trace.
pub const MAX_TIMESTAMP_MS: u64 = 30 * 24 * 3600 * 1000;
/// The largest trace file we read (512 MiB), so a wrong path cannot exhaust memory.
pub const MAX_FILE_BYTES: u64 = 512 * 1024 * 1024;

/// Why a trace could not be read, written or used. Every message names the
/// file and, for content errors, the 1-based line.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file could not be opened, read or written.
    #[error("{path}: cannot {action}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// What we tried to do ("read", "write").
        action: &'static str,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The file holds no timestamp at all.
    #[error("{path}: empty trace (no delivery timestamps)")]
    Empty {
        /// The file concerned.
        path: PathBuf,
    },
    /// A line is not a non-negative integer number of milliseconds.
    #[error("{path}:{line}: not a non-negative integer timestamp in ms: {text:?}")]
    NotInteger {
        /// The file concerned.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The offending text (truncated to 40 characters).
        text: String,
    },
    /// A timestamp is smaller than the one before it.
    #[error(
        "{path}:{line}: timestamp {value} ms is smaller than the previous one ({previous} ms)"
    )]
    Decreasing {
        /// The file concerned.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The timestamp on this line.
        value: u64,
        /// The timestamp on the line before.
        previous: u64,
    },
    /// A timestamp or the file itself is implausibly large.
    #[error("{path}:{line}: absurd size: {what}")]
    Absurd {
        /// The file concerned.
        path: PathBuf,
        /// 1-based line number (0 when the whole file is at fault).
        line: usize,
        /// What is too large.
        what: String,
    },
    /// Every timestamp is 0, so the trace has no period (mm-link refuses it too).
    #[error("{path}:{line}: the trace lasts 0 ms (last timestamp is 0)")]
    ZeroLength {
        /// The file concerned.
        path: PathBuf,
        /// 1-based line number of the last timestamp.
        line: usize,
    },
    /// A `--traces` path that is neither a file nor a folder.
    #[error("{path}: no such trace file or folder")]
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    /// A `--traces` folder without a single trace file (see
    /// [`super::corpus::is_trace_file`]).
    #[error("{path}: no trace files in this folder")]
    NoTraces {
        /// The folder given.
        path: PathBuf,
    },
    /// A request on a valid trace that makes no sense (zero bin width, ...).
    #[error("{path}: {what}")]
    BadRequest {
        /// The file (or generator name) concerned.
        path: PathBuf,
        /// What was wrong with the request.
        what: String,
    },
}

/// A parsed Mahimahi trace: the delivery opportunities of one period.
///
/// Kept as the raw timestamps (not a rate) so that writing it back gives the
/// same file and capacity can be binned at any width.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MahimahiTrace {
    /// Where the trace came from (a path, or a generator's name); used in errors.
    origin: PathBuf,
    /// Delivery opportunities in ms, non-decreasing, last one > 0 (the
    /// period).
    schedule: Schedule,
}

impl MahimahiTrace {
    /// Builds a trace from timestamps, checking the same rules as the parser,
    /// so generated traces are always valid files.
    pub fn from_timestamps(
        origin: impl Into<PathBuf>,
        timestamps_ms: Vec<u64>,
    ) -> Result<Self, TraceError> {
        let origin = origin.into();
        let mut previous = 0;
        for (i, &t) in timestamps_ms.iter().enumerate() {
            if t > MAX_TIMESTAMP_MS {
                return Err(TraceError::Absurd {
                    path: origin,
                    line: i + 1,
                    what: format!("timestamp {t} ms exceeds {MAX_TIMESTAMP_MS} ms (30 days)"),
                });
            }
            if t < previous {
                return Err(TraceError::Decreasing {
                    path: origin,
                    line: i + 1,
                    value: t,
                    previous,
                });
            }
            previous = t;
        }
        match timestamps_ms.last() {
            None => Err(TraceError::Empty { path: origin }),
            Some(0) => Err(TraceError::ZeroLength {
                path: origin,
                line: timestamps_ms.len(),
            }),
            Some(_) => {
                let schedule = Schedule::from_ms(timestamps_ms)
                    .expect("checked above: sorted, non-empty, positive period");
                Ok(Self { origin, schedule })
            }
        }
    }

    /// Parses trace text; `origin` names the source in error messages.
    ///
    /// Leading/trailing spaces and `\r` are tolerated on a line, and blank
    /// lines at the very end of the file are ignored; a blank line in the
    /// middle is an error (mm-link would reject it as well).
    pub fn parse(origin: impl Into<PathBuf>, text: &str) -> Result<Self, TraceError> {
        let origin = origin.into();
        let mut timestamps = Vec::with_capacity(text.len() / 6 + 1);
        let mut blank_line: Option<usize> = None;
        for (i, raw) in text.as_bytes().split(|&b| b == b'\n').enumerate() {
            let line = raw.trim_ascii();
            if line.is_empty() {
                blank_line.get_or_insert(i + 1);
                continue;
            }
            if let Some(blank) = blank_line {
                return Err(TraceError::NotInteger {
                    path: origin,
                    line: blank,
                    text: String::new(),
                });
            }
            let value = parse_ms(line).ok_or_else(|| TraceError::NotInteger {
                path: origin.clone(),
                line: i + 1,
                text: String::from_utf8_lossy(line).chars().take(40).collect(),
            })?;
            timestamps.push(value);
        }
        Self::from_timestamps(origin, timestamps)
    }

    /// Reads and parses a trace file, refusing files over [`MAX_FILE_BYTES`].
    pub fn read(path: impl AsRef<Path>) -> Result<Self, TraceError> {
        let path = path.as_ref();
        let io = |source| TraceError::Io {
            path: path.to_path_buf(),
            action: "read",
            source,
        };
        let size = fs::metadata(path).map_err(io)?.len();
        if size > MAX_FILE_BYTES {
            return Err(TraceError::Absurd {
                path: path.to_path_buf(),
                line: 0,
                what: format!("file is {size} bytes, more than {MAX_FILE_BYTES}"),
            });
        }
        let bytes = fs::read(path).map_err(io)?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let line = e.as_bytes()[..e.utf8_error().valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            TraceError::NotInteger {
                path: path.to_path_buf(),
                line,
                text: "<not UTF-8>".into(),
            }
        })?;
        Self::parse(path, &text)
    }

    /// The trace as file text, one timestamp per line (what mm-link reads).
    pub fn to_text(&self) -> String {
        let mut out = String::with_capacity(self.timestamps_ms().len() * 7);
        for t in self.timestamps_ms() {
            // Writing into a String cannot fail.
            let _ = writeln!(out, "{t}");
        }
        out
    }

    /// Writes the trace to `path` in Mahimahi format.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), TraceError> {
        let path = path.as_ref();
        fs::write(path, self.to_text()).map_err(|source| TraceError::Io {
            path: path.to_path_buf(),
            action: "write",
            source,
        })
    }

    /// Where the trace came from, for messages and reports.
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// The raw delivery timestamps of one period, in ms.
    pub fn timestamps_ms(&self) -> &[u64] {
        self.schedule.opportunities_ms()
    }

    /// The delivery schedule (repetition, counting, capacity of a window).
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The period after which the trace repeats (its last timestamp), in ms.
    pub fn period_ms(&self) -> u64 {
        self.schedule.period_ms()
    }

    /// Mean capacity over one period, in Mbps.
    pub fn mean_mbps(&self) -> f64 {
        self.schedule.mean_mbps()
    }

    /// Capacity in bytes of the opportunities in `(from_ms, to_ms]` of the
    /// endlessly repeated trace.
    pub fn capacity_bytes(&self, from_ms: u64, to_ms: u64) -> u64 {
        self.schedule.capacity_bytes(from_ms, to_ms)
    }

    /// Delivery opportunities per bin over `[start_ms, start_ms + bins * bin_ms)`
    /// of the endlessly repeated trace.
    ///
    /// Repetition follows mm-link: period `c` delivers at `c * period + t` for
    /// every timestamp `t` of the file.
    pub fn packet_counts(
        &self,
        start_ms: u64,
        bin_ms: u64,
        bins: usize,
    ) -> Result<Vec<u32>, TraceError> {
        self.schedule
            .packet_counts(start_ms, bin_ms, bins)
            .map_err(|e| TraceError::BadRequest {
                path: self.origin.clone(),
                what: e.to_string(),
            })
    }

    /// Capacity in Mbps per bin over `[start_ms, start_ms + bins * bin_ms)`.
    pub fn capacity_mbps(
        &self,
        start_ms: u64,
        bin_ms: u64,
        bins: usize,
    ) -> Result<Vec<f64>, TraceError> {
        let scale = MBPS_PER_PACKET_PER_MS / bin_ms.max(1) as f64;
        Ok(self
            .packet_counts(start_ms, bin_ms, bins)?
            .into_iter()
            .map(|c| f64::from(c) * scale)
            .collect())
    }
}

/// Parses a plain decimal `u64` (no sign, no exponent), as mm-link expects.
fn parse_ms(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_of_one_is_a_12_mbps_link() {
        let t = MahimahiTrace::parse("one", "1\n").unwrap();
        assert_eq!(t.period_ms(), 1);
        assert!((t.mean_mbps() - 12.0).abs() < 1e-12);
        let c = t.capacity_mbps(0, 100, 5).unwrap();
        // Opportunities at 1, 2, ... : the first 100 ms bin holds 99 of them
        // (t = 1..=99), later bins 100 each.
        assert_eq!(t.packet_counts(0, 100, 3).unwrap(), vec![99, 100, 100]);
        assert!((c[2] - 12.0).abs() < 1e-12);
    }

    #[test]
    fn repeats_and_wraps_like_mm_link() {
        let t = MahimahiTrace::parse("rep", "0\n0\n5\n10\n").unwrap();
        assert_eq!(t.period_ms(), 10);
        // Cycle 0: 0,0,5,10; cycle 1: 10,10,15,20; ...
        assert_eq!(t.packet_counts(0, 10, 2).unwrap(), vec![3, 4]);
        assert_eq!(t.packet_counts(10, 5, 2).unwrap(), vec![3, 1]);
        // Round trip.
        assert_eq!(MahimahiTrace::parse("rep", &t.to_text()).unwrap(), t);
    }

    #[test]
    fn tolerates_crlf_and_trailing_blank_lines() {
        let t = MahimahiTrace::parse("crlf", "3\r\n 4 \r\n\n\n").unwrap();
        assert_eq!(t.timestamps_ms(), &[3, 4]);
    }

    #[test]
    fn bad_inputs_name_file_and_line() {
        let cases: [(&str, &str); 7] = [
            ("", "empty trace"),
            ("\n\n", "empty trace"),
            ("1\n2\nx\n", "f.trace:3:"),
            ("1\n-2\n", "f.trace:2:"),
            ("5\n4\n", "f.trace:2: timestamp 4 ms is smaller"),
            ("0\n0\n", "f.trace:2: the trace lasts 0 ms"),
            ("1\n\n2\n", "f.trace:2:"),
        ];
        for (text, want) in cases {
            let err = MahimahiTrace::parse("f.trace", text)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
        let huge = format!("1\n{}\n", MAX_TIMESTAMP_MS + 1);
        let err = MahimahiTrace::parse("f.trace", &huge)
            .unwrap_err()
            .to_string();
        assert!(err.contains("f.trace:2: absurd size"), "{err}");
        let err = MahimahiTrace::parse("f.trace", "99999999999999999999999\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("f.trace:1:"), "{err}");
    }

    #[test]
    fn unreadable_file_is_an_error_naming_it() {
        let err = MahimahiTrace::read("/nonexistent/x.down")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/x.down"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let err = MahimahiTrace::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("cannot read"), "{err}");
        let bin = dir.path().join("bin.trace");
        fs::write(&bin, b"1\n2\n\xff\xfe\n").unwrap();
        let err = MahimahiTrace::read(&bin).unwrap_err().to_string();
        assert!(err.contains("bin.trace:3:"), "{err}");
    }

    #[test]
    fn bad_requests_are_errors() {
        let t = MahimahiTrace::parse("one", "1\n").unwrap();
        assert!(t.packet_counts(0, 0, 3).is_err());
        assert!(t.packet_counts(0, 10, 0).is_err());
        assert!(t.packet_counts(u64::MAX - 5, 10, 3).is_err());
    }

    #[test]
    fn write_then_read_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.trace");
        let t = MahimahiTrace::from_timestamps("gen", vec![0, 1, 1, 7, 30]).unwrap();
        t.write(&path).unwrap();
        let back = MahimahiTrace::read(&path).unwrap();
        assert_eq!(back.timestamps_ms(), t.timestamps_ms());
    }
}
