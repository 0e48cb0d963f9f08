//! `plume-cc run --record FILE`: every monitor interval, the statistics the
//! datapath reported for each flow and the target the daemon wrote, as one
//! JSON line. It is the host's own view of its conditions: what a sim-to-real
//! comparison reads, and what a later training run can replay.
//!
//! One line per interval: `{"t_ns": ..., "flows": [{"cookie": ..., ...}]}`.

use std::{
    fs::File,
    io::{BufWriter, Write as _},
    path::Path,
};

use plume_cc_common::{FlowStats, FlowTarget};
use serde::{Deserialize, Serialize};

/// One flow in one interval of a recording: the datapath's statistics as
/// they were read (`FlowStats`, flattened into the line), and the target the
/// daemon wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedFlow {
    /// Socket cookie.
    pub cookie: u64,
    /// The statistics the daemon read.
    #[serde(flatten)]
    pub stats: FlowStats,
    /// Clamp written this interval, segments.
    pub target_cwnd_clamp: u32,
    /// Pacing cap written this interval, bytes/s.
    pub target_pacing: u32,
    /// Whether the target asked for the competitive controller (absent in
    /// recordings from before it: false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub target_competitive_cc: bool,
}

impl RecordedFlow {
    /// The record of one flow's stats and target.
    pub fn new(cookie: u64, stats: &FlowStats, t: &FlowTarget) -> Self {
        Self {
            cookie,
            stats: *stats,
            target_cwnd_clamp: t.cwnd_clamp,
            target_pacing: t.max_pacing_bytes_per_sec,
            target_competitive_cc: t.competitive_cc != 0,
        }
    }
}

/// One interval of a recording.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedInterval {
    /// When the daemon read the flows and the policy decided
    /// (CLOCK_MONOTONIC ns), the time the policy was given: replaying the
    /// recording through the same policy reproduces every target.
    pub t_ns: u64,
    /// Every flow of the interval.
    pub flows: Vec<RecordedFlow>,
}

/// Errors of a recording.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The file could not be created or written.
    #[error("recording to {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line of a recording is not a recorded interval.
    #[error("{path}:{line}: not a plume-cc recording line: {source}")]
    Parse {
        /// The file.
        path: std::path::PathBuf,
        /// 1-based line.
        line: usize,
        /// The cause.
        source: serde_json::Error,
    },
}

/// Writes a recording, one interval per line.
#[derive(Debug)]
pub struct Recorder {
    out: BufWriter<File>,
    path: std::path::PathBuf,
}

impl Recorder {
    /// Creates (truncates) `path`.
    pub fn create(path: &Path) -> Result<Self, RecordError> {
        let f = File::create(path).map_err(|source| RecordError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            out: BufWriter::new(f),
            path: path.to_path_buf(),
        })
    }

    /// Appends one interval.
    pub fn write(
        &mut self,
        t_ns: u64,
        flows: &[(u64, FlowStats)],
        targets: &[FlowTarget],
    ) -> Result<(), RecordError> {
        let rec = RecordedInterval {
            t_ns,
            flows: flows
                .iter()
                .zip(targets)
                .map(|((c, s), t)| RecordedFlow::new(*c, s, t))
                .collect(),
        };
        let io = |source| RecordError::Io {
            path: self.path.clone(),
            source,
        };
        serde_json::to_writer(&mut self.out, &rec).map_err(|e| io(e.into()))?;
        self.out.write_all(b"\n").map_err(io)
    }

    /// Flushes buffered lines.
    pub fn flush(&mut self) -> Result<(), RecordError> {
        self.out.flush().map_err(|source| RecordError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

/// Reads a recording written by [`Recorder`].
pub fn read(path: &Path) -> Result<Vec<RecordedInterval>, RecordError> {
    let text = std::fs::read_to_string(path).map_err(|source| RecordError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|source| RecordError::Parse {
                path: path.to_path_buf(),
                line: i + 1,
                source,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_names_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("rec.jsonl");
        let mut r = Recorder::create(&p).unwrap();
        let s = FlowStats {
            delivered: 7,
            srtt_us: 41_000,
            ..FlowStats::default()
        };
        let t = FlowTarget {
            written_ns: 0,
            cwnd_clamp: 12,
            max_pacing_bytes_per_sec: 99,
            ..FlowTarget::default()
        };
        r.write(5, &[(1, s)], &[t]).unwrap();
        r.write(6, &[], &[]).unwrap();
        r.flush().unwrap();
        let back = read(&p).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].flows[0].stats, s);
        assert_eq!(back[0].flows[0].target_cwnd_clamp, 12);
        assert!(back[1].flows.is_empty());
        std::fs::write(&p, "{\"t_ns\":1,\"flows\":[]}\nnot json\n").unwrap();
        match read(&p) {
            Err(RecordError::Parse { line, .. }) => assert_eq!(line, 2),
            other => panic!("{other:?}"),
        }
    }
}
