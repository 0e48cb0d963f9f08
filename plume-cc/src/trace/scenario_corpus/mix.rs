//! The mix: which kinds of window a generated corpus holds and how often
//! (a JSON file, or [`Mix::default_mix`]), and the built-in [`Kind`]s it
//! weighs.
//!
//! Why its own file: the mix is the one input a user writes by hand, so its
//! format and its checks (known kinds, weights summing to 1, the window's
//! length) stand apart from the generator that follows it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{io_err, ScenarioCorpusError};

/// The built-in kinds a mix weighs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A public window as it is, a moderate RTT (20-100 ms), a 1-4 BDP
    /// buffer, one flow.
    Common,
    /// A public window with one or two outages (no opportunity for 1-3 s)
    /// or deep fades (5% of the capacity for 1-3 s).
    Outage,
    /// A public window thinned to a mean of 0.2-0.9 Mbit/s.
    LowRate,
    /// A long RTT (200-400 ms) over a shallow buffer (0.25-0.5 BDP).
    LongRttShallow,
    /// A CUBIC flow in a deep buffer (4-8 BDP), starting within 2 s.
    CubicDeep,
    /// A constant 6-24 Mbit/s link that steps down 10x at 3-7 s.
    StepDown,
}

impl Kind {
    /// Every kind, in the order of the default mix.
    pub const ALL: [Kind; 6] = [
        Kind::Common,
        Kind::Outage,
        Kind::LowRate,
        Kind::LongRttShallow,
        Kind::CubicDeep,
        Kind::StepDown,
    ];

    /// The name used in mixes, records and file names.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Common => "common",
            Kind::Outage => "outage",
            Kind::LowRate => "low-rate",
            Kind::LongRttShallow => "long-rtt-shallow",
            Kind::CubicDeep => "cubic-deep",
            Kind::StepDown => "step-down",
        }
    }

    /// The kind called `name`.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// A corpus mix: window length and the weight of each kind (a JSON file,
/// or [`Mix::default_mix`]). Unknown fields are errors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    /// Window (episode) length, milliseconds.
    pub window_ms: u64,
    /// Weight of each kind, by name; the weights sum to 1.
    pub mix: BTreeMap<String, f64>,
}

impl Mix {
    /// The committed default: 85% common windows, 3% of each rare kind
    /// (inside the 1-5% band), 10 s windows.
    pub fn default_mix() -> Self {
        let mut mix = BTreeMap::new();
        mix.insert(Kind::Common.name().to_string(), 0.85);
        for k in &Kind::ALL[1..] {
            mix.insert(k.name().to_string(), 0.03);
        }
        Self {
            window_ms: 10_000,
            mix,
        }
    }

    /// Reads and validates a mix file.
    pub fn load(path: &Path) -> Result<Self, ScenarioCorpusError> {
        let text = std::fs::read_to_string(path).map_err(|e| io_err(path, "read", e))?;
        let mix: Mix = serde_json::from_str(&text)
            .map_err(|e| ScenarioCorpusError::Mix(format!("{}: {e}", path.display())))?;
        mix.validate()?;
        Ok(mix)
    }

    /// The kinds and their weights, checked: every name known, every weight
    /// in [0, 1], the sum 1 (within 1e-6), the window 1-60 s.
    pub fn validate(&self) -> Result<Vec<(Kind, f64)>, ScenarioCorpusError> {
        if !(1_000..=60_000).contains(&self.window_ms) {
            return Err(ScenarioCorpusError::Mix(format!(
                "window_ms must be in [1000, 60000], got {}",
                self.window_ms
            )));
        }
        let mut out = Vec::new();
        for (name, &w) in &self.mix {
            let kind = Kind::from_name(name).ok_or_else(|| {
                let known: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
                ScenarioCorpusError::Mix(format!(
                    "unknown kind {name:?}; known kinds: {}",
                    known.join(", ")
                ))
            })?;
            if !(w.is_finite() && (0.0..=1.0).contains(&w)) {
                return Err(ScenarioCorpusError::Mix(format!(
                    "weight of {name:?} must be in [0, 1], got {w}"
                )));
            }
            out.push((kind, w));
        }
        let sum: f64 = out.iter().map(|k| k.1).sum();
        if (sum - 1.0).abs() > 1e-6 {
            return Err(ScenarioCorpusError::Mix(format!(
                "the weights sum to {sum}, not 1"
            )));
        }
        out.sort_by_key(|k| k.0);
        Ok(out)
    }
}
