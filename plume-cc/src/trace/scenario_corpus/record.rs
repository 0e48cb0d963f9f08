//! What `paths.jsonl` holds: one [`WindowRecord`] per window, with the
//! [`PathRecord`] the simulator replays it over.
//!
//! Why its own file: the record is the contract between every writer of a
//! corpus (the generator, `plume-cc record`) and every reader (training,
//! `traces analyze`, the study), so its fields and the ranges the simulator
//! accepts ([`PathRecord::validate`]) are kept apart from how windows are
//! drawn or laid out on disk.

use serde::{Deserialize, Serialize};

/// Competitor controllers a record may name.
pub const COMPETITOR_KINDS: [&str; 3] = ["cubic", "bbr", "reno"];

/// Why a window's path record is outside the ranges the simulator accepts;
/// each names the field and the value found.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PathRecordError {
    /// A number outside its range.
    #[error("{field} must be in {allowed}, got {value}")]
    OutOfRange {
        /// The field (`min_rtt_ms`, `buffer_bdp`, `loss_rate`).
        field: &'static str,
        /// Its range, as written in the message.
        allowed: &'static str,
        /// The value found.
        value: f64,
    },
    /// More competitors than a record may hold.
    #[error("at most {MAX_COMPETITORS} competitors, got {0}")]
    TooManyCompetitors(usize),
    /// A competitor's controller outside [`COMPETITOR_KINDS`].
    #[error("competitor cc {0:?} is not one of {COMPETITOR_KINDS:?}")]
    UnknownCompetitor(String),
}

/// The most competitors one record may hold.
pub const MAX_COMPETITORS: usize = 8;

/// A competing kernel flow of a window's path.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Competitor {
    /// Its controller, one of [`COMPETITOR_KINDS`].
    pub cc: String,
    /// Its start after the controlled flow's, milliseconds.
    pub start_ms: u64,
}

/// The path of one window (what the simulator needs beyond capacity).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathRecord {
    /// Min RTT (twice the one-way propagation delay), milliseconds.
    pub min_rtt_ms: f64,
    /// Bottleneck buffer in BDPs of the window's mean capacity at
    /// `min_rtt_ms`; `None`: unlimited.
    pub buffer_bdp: Option<f64>,
    /// Random loss rate at the bottleneck's ingress.
    pub loss_rate: f64,
    /// Competing kernel flows.
    pub competitors: Vec<Competitor>,
    /// The ACKs cross the same trace (bursty, as on cellular links).
    pub ack_trace: bool,
    /// The receiver delays its ACKs as Linux's does.
    pub delayed_ack: bool,
}

impl PathRecord {
    /// Checks the ranges the simulator accepts; the error names the field.
    pub fn validate(&self) -> Result<(), PathRecordError> {
        let out = |field, allowed, value| PathRecordError::OutOfRange {
            field,
            allowed,
            value,
        };
        if !(self.min_rtt_ms.is_finite() && (1.0..=2000.0).contains(&self.min_rtt_ms)) {
            return Err(out("min_rtt_ms", "[1, 2000]", self.min_rtt_ms));
        }
        if let Some(b) = self.buffer_bdp {
            if !(b.is_finite() && (0.01..=100.0).contains(&b)) {
                return Err(out("buffer_bdp", "[0.01, 100] or null (unlimited)", b));
            }
        }
        if !(self.loss_rate.is_finite() && (0.0..0.5).contains(&self.loss_rate)) {
            return Err(out("loss_rate", "[0, 0.5)", self.loss_rate));
        }
        if self.competitors.len() > MAX_COMPETITORS {
            return Err(PathRecordError::TooManyCompetitors(self.competitors.len()));
        }
        if let Some(c) = self
            .competitors
            .iter()
            .find(|c| !COMPETITOR_KINDS.contains(&c.cc.as_str()))
        {
            return Err(PathRecordError::UnknownCompetitor(c.cc.clone()));
        }
        Ok(())
    }
}

/// One window of a scenario corpus (one line of `paths.jsonl`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowRecord {
    /// Its trace file, in `traces/`.
    pub file: String,
    /// The kind it was generated as ([`super::Kind::name`]).
    pub kind: String,
    /// Held out from training.
    pub heldout: bool,
    /// Where its capacity came from (`TRACE@START_MS` or `synth:...`).
    pub source: String,
    /// Mean capacity, Mbit/s.
    pub mean_mbps: f64,
    /// Its path.
    pub path: PathRecord,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `record` fails its check on `field`.
    fn out_of_range(record: PathRecord, field: &str) -> bool {
        matches!(
            record.validate(),
            Err(PathRecordError::OutOfRange { field: f, .. }) if f == field
        )
    }

    #[test]
    fn a_path_record_out_of_range_names_its_field_and_value() {
        let ok = PathRecord {
            min_rtt_ms: 40.0,
            buffer_bdp: Some(2.0),
            loss_rate: 0.0,
            competitors: Vec::new(),
            ack_trace: false,
            delayed_ack: false,
        };
        assert_eq!(ok.validate(), Ok(()));
        let e = PathRecord {
            min_rtt_ms: 0.5,
            ..ok.clone()
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.to_string(), "min_rtt_ms must be in [1, 2000], got 0.5");
        assert!(out_of_range(
            PathRecord {
                buffer_bdp: Some(f64::NAN),
                ..ok.clone()
            },
            "buffer_bdp"
        ));
        assert!(out_of_range(
            PathRecord {
                loss_rate: 0.5,
                ..ok.clone()
            },
            "loss_rate"
        ));
        assert!(!out_of_range(ok.clone(), "loss_rate"));
        let competitor = |cc: &str| Competitor {
            cc: cc.into(),
            start_ms: 0,
        };
        assert_eq!(
            PathRecord {
                competitors: vec![competitor("cubic"); MAX_COMPETITORS + 1],
                ..ok.clone()
            }
            .validate(),
            Err(PathRecordError::TooManyCompetitors(MAX_COMPETITORS + 1))
        );
        assert_eq!(
            PathRecord {
                competitors: vec![competitor("vegas")],
                ..ok
            }
            .validate(),
            Err(PathRecordError::UnknownCompetitor("vegas".into()))
        );
    }
}
