//! The operating point: how much the policy trades throughput for delay.
//!
//! It is the reward's delay weight (see `rl::env`), and it is also an input
//! of the policy (the observation's `objective` feature), so one trained
//! policy serves a range of operating points: `plume-cc run --objective
//! latency|balanced|throughput|NUMBER`. Training draws the weight per episode
//! (a scenario file's `delay_weight` range), so the policy learns what each
//! weight asks for.

use serde::{Deserialize, Serialize};

/// Smallest delay weight (the throughput end).
pub const MIN_DELAY_WEIGHT: f32 = 0.02;
/// Largest delay weight (the latency end).
pub const MAX_DELAY_WEIGHT: f32 = 2.0;

/// A delay weight within [`MIN_DELAY_WEIGHT`, `MAX_DELAY_WEIGHT`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "f32", into = "f32")]
pub struct Objective(f32);

/// An objective outside its range, or an unknown name.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("objective {found:?}: use latency, balanced, throughput, or a delay weight in [{MIN_DELAY_WEIGHT}, {MAX_DELAY_WEIGHT}]")]
pub struct ObjectiveError {
    /// What was given.
    pub found: String,
}

impl TryFrom<f32> for Objective {
    type Error = ObjectiveError;
    fn try_from(w: f32) -> Result<Self, ObjectiveError> {
        Self::new(w)
    }
}

impl From<Objective> for f32 {
    fn from(o: Objective) -> f32 {
        o.0
    }
}

impl Objective {
    /// Delay weight 1.5: low delay first.
    pub const LATENCY: Objective = Objective(1.5);
    /// Delay weight 0.5: the reward every earlier policy was trained with.
    pub const BALANCED: Objective = Objective(0.5);
    /// Delay weight 0.05: throughput first (the default policy's default).
    pub const THROUGHPUT: Objective = Objective(0.05);

    /// A delay weight, if inside the range.
    pub fn new(w: f32) -> Result<Self, ObjectiveError> {
        if w.is_finite() && (MIN_DELAY_WEIGHT..=MAX_DELAY_WEIGHT).contains(&w) {
            Ok(Self(w))
        } else {
            Err(ObjectiveError {
                found: w.to_string(),
            })
        }
    }

    /// `latency`, `balanced`, `throughput` or a number.
    pub fn parse(s: &str) -> Result<Self, ObjectiveError> {
        match s {
            "latency" => Ok(Self::LATENCY),
            "balanced" => Ok(Self::BALANCED),
            "throughput" => Ok(Self::THROUGHPUT),
            other => other
                .parse::<f32>()
                .map_err(|_| ObjectiveError {
                    found: other.to_string(),
                })
                .and_then(Self::new),
        }
    }

    /// The delay weight.
    pub fn delay_weight(self) -> f32 {
        self.0
    }

    /// The observation feature: the weight on a log scale, in [0, 1].
    pub fn feature(self) -> f32 {
        (self.0 / MIN_DELAY_WEIGHT).ln() / (MAX_DELAY_WEIGHT / MIN_DELAY_WEIGHT).ln()
    }
}

impl std::str::FromStr for Objective {
    type Err = ObjectiveError;
    /// [`Objective::parse`] (so command-line flags take it directly).
    fn from_str(s: &str) -> Result<Self, ObjectiveError> {
        Self::parse(s)
    }
}

impl Default for Objective {
    fn default() -> Self {
        Self::BALANCED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_numbers_and_bad_input() {
        assert_eq!(Objective::parse("latency").unwrap(), Objective::LATENCY);
        assert_eq!(Objective::parse("0.25").unwrap().delay_weight(), 0.25);
        for bad in ["fast", "-1", "5", "NaN", ""] {
            let e = Objective::parse(bad).unwrap_err();
            assert!(e.to_string().contains("delay weight in [0.02, 2]"), "{e}");
        }
        assert_eq!(Objective::new(MIN_DELAY_WEIGHT).unwrap().feature(), 0.0);
        assert!((Objective::new(MAX_DELAY_WEIGHT).unwrap().feature() - 1.0).abs() < 1e-6);
        assert!(Objective::THROUGHPUT.feature() < Objective::LATENCY.feature());
        let back: Objective = serde_json::from_str("0.5").unwrap();
        assert_eq!(back, Objective::BALANCED);
        assert!(serde_json::from_str::<Objective>("9.0").is_err());
    }
}
