//! [`ObservationBuilder`]: one flow's state (the previous sample, the rate
//! anchor, the competition detector, the history blocks) and what every
//! version does with it; the versions' own `observe` are in `v3` and
//! `v4`, which update these fields. Its own file so that the state and
//! its invariants are read in one place, apart from either version's
//! arithmetic.

use super::features::clip;
use super::{
    FlowSample, Observation, BLOCK_LEN, GLOBAL_FEATURES, HISTORY_LEN, OBSERVATION_LEN,
    OBSERVATION_VERSION, SUPPORTED_OBSERVATION_VERSIONS,
};
use crate::policy::competition::{CompetitionDetector, DetectorSample, Mode};
use crate::policy::filter::WindowedMax;
use crate::policy::objective::Objective;

/// Errors of the builder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObservationError {
    /// A sample older than the previous one.
    #[error("flow sample at {now_us} us is older than the previous one at {previous_us} us")]
    TimeWentBackwards {
        /// Previous sample's timestamp, microseconds.
        previous_us: u64,
        /// This sample's timestamp, microseconds.
        now_us: u64,
    },
    /// A copy of the statistics older than the previous copy (version 4).
    #[error("flow statistics copied at {now_us} us are older than the previous copy at {previous_us} us")]
    CopyWentBackwards {
        /// Previous copy's time, microseconds.
        previous_us: u64,
        /// This copy's time, microseconds.
        now_us: u64,
    },
    /// A version this build cannot build.
    #[error("observation version {0} is not supported (this build builds {SUPPORTED_OBSERVATION_VERSIONS:?})")]
    UnsupportedVersion(u32),
}

/// Keeps one flow's history and builds its observations (see module docs).
#[derive(Clone, Debug)]
pub struct ObservationBuilder {
    pub(super) objective: Objective,
    /// Which observation it builds (3 or 4, [`OBSERVATION_VERSION`]).
    pub(super) version: u32,
    pub(super) prev: Option<FlowSample>,
    /// Version 4: the last new copy of the statistics (the sample that
    /// brought it), the start of the next copy's span.
    pub(super) last_copy: Option<FlowSample>,
    pub(super) anchor: WindowedMax,
    pub(super) blocks: [[f32; BLOCK_LEN]; HISTORY_LEN],
    pub(super) newest: usize,
    pub(super) seen: usize,
    pub(super) competition: CompetitionDetector,
    /// `min_rtt_log` and `max_rate_log` with the input each was computed
    /// from (its f64 bits): an `ln` each, recomputed only when the min RTT
    /// or the rate anchor moves, which is rare next to the intervals
    /// (issue 14: the two `ln` calls were about a sixth of building an
    /// observation in `perf`). The features are the same, bit for bit.
    pub(super) log_features: [Option<(u64, f32)>; 2],
    /// The rate anchor's window is at least this long, microseconds
    /// ([`super::ANCHOR_WINDOW_MIN_US`] unless set with
    /// [`Self::with_anchor_floor_us`]).
    pub(super) anchor_floor_us: u64,
}

/// `f(x)`, from `kept` when it holds it for this `x` (bitwise), else
/// computed and kept.
fn kept_or(kept: &mut Option<(u64, f32)>, x: f64, f: impl FnOnce(f64) -> f32) -> f32 {
    match *kept {
        Some((bits, v)) if bits == x.to_bits() => v,
        _ => {
            let v = f(x);
            *kept = Some((x.to_bits(), v));
            v
        }
    }
}

impl Default for ObservationBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ObservationBuilder {
    /// A builder with no history (a new flow), at the balanced objective.
    pub fn new() -> Self {
        Self::with_objective(Objective::default())
    }

    /// A builder with no history whose observations carry `objective`, of
    /// version [`OBSERVATION_VERSION`].
    pub fn with_objective(objective: Objective) -> Self {
        Self {
            objective,
            version: OBSERVATION_VERSION,
            prev: None,
            last_copy: None,
            anchor: WindowedMax::new(),
            blocks: [[0.0; BLOCK_LEN]; HISTORY_LEN],
            newest: 0,
            seen: 0,
            competition: CompetitionDetector::new(),
            log_features: [None; 2],
            anchor_floor_us: super::ANCHOR_WINDOW_MIN_US,
        }
    }

    /// The same builder with the rate anchor's window at least `floor_us`
    /// instead of [`super::ANCHOR_WINDOW_MIN_US`] (its other bounds, ten min
    /// RTTs and 4 sample spans, still hold). Why: with a 10 s floor a flow
    /// that had the link alone keeps an anchor of the whole link for 10 s
    /// after others join, so its clamp does not bind and its base
    /// controller fills the buffer (docs/BENCHMARKS.md, "Sharing the link:
    /// why the default is not fair among 2-3 flows").
    pub fn with_anchor_floor_us(mut self, floor_us: u64) -> Self {
        self.anchor_floor_us = floor_us;
        self
    }

    /// A builder with no history of observation `version` (one of
    /// [`SUPPORTED_OBSERVATION_VERSIONS`]: a policy's own version, so that
    /// it is fed what it was trained on).
    pub fn with_version(objective: Objective, version: u32) -> Result<Self, ObservationError> {
        if !SUPPORTED_OBSERVATION_VERSIONS.contains(&version) {
            return Err(ObservationError::UnsupportedVersion(version));
        }
        Ok(Self {
            version,
            ..Self::with_objective(objective)
        })
    }

    /// The observation version it builds.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Forgets the flow's history (keeps the objective, the version and
    /// the anchor window's floor).
    pub fn reset(&mut self) {
        *self = Self {
            version: self.version,
            anchor_floor_us: self.anchor_floor_us,
            ..Self::with_objective(self.objective)
        };
    }

    /// The rate anchor: the windowed maximum delivery rate, bytes per second
    /// (see the module docs).
    pub fn max_rate_bytes_per_sec(&self) -> f64 {
        self.anchor.get()
    }

    /// The flow's competition mode for the next interval (see
    /// [`crate::policy::competition`]); only policies with a
    /// [`crate::policy::CompetitionRule`] act on it.
    pub fn mode(&self) -> Mode {
        self.competition.mode()
    }

    /// Consumes the sample taken at the end of a monitor interval and returns
    /// the observation. The first sample only sets the baseline (its interval
    /// features are zeros).
    pub fn observe(&mut self, s: &FlowSample) -> Result<Observation, ObservationError> {
        let mut out = [0.0f32; OBSERVATION_LEN];
        self.observe_into(s, &mut out)?;
        Ok(out)
    }

    /// [`Self::observe`] writing the observation into `out` (every one of
    /// its [`OBSERVATION_LEN`] values, history not yet seen as zeros), so
    /// the daemon builds its batch matrix in place, row by row, with no
    /// copy per flow. On an error `out` and the builder are left unchanged.
    pub fn observe_into(
        &mut self,
        s: &FlowSample,
        out: &mut [f32; OBSERVATION_LEN],
    ) -> Result<(), ObservationError> {
        if self.version >= 4 {
            self.observe_v4(s, out)
        } else {
            self.observe_v3(s, out)
        }
    }

    /// The previous sample (`s` itself for the first), refusing a sample
    /// older than it.
    pub(super) fn checked_prev(&self, s: &FlowSample) -> Result<FlowSample, ObservationError> {
        match self.prev {
            Some(p) if s.timestamp_us < p.timestamp_us => {
                Err(ObservationError::TimeWentBackwards {
                    previous_us: p.timestamp_us,
                    now_us: s.timestamp_us,
                })
            }
            Some(p) => Ok(p),
            None => Ok(*s),
        }
    }

    /// Feeds the competition detector one poll, `dt_us` after the last,
    /// with `rate` as the flow's delivery rate.
    pub(super) fn update_detector(&mut self, s: &FlowSample, dt_us: u64, rate: f64) {
        self.competition.update(&DetectorSample {
            timestamp_us: s.timestamp_us,
            min_rtt_us: s.min_rtt_us,
            srtt_us: s.srtt_us,
            last_rtt_us: s.last_rtt_us,
            interval_rate_bytes_per_sec: rate,
            interval_us: dt_us,
        });
    }

    /// Makes `block` the newest of the history.
    pub(super) fn push(&mut self, block: [f32; BLOCK_LEN]) {
        self.newest = (self.newest + 1) % HISTORY_LEN;
        self.blocks[self.newest] = block;
        self.seen = (self.seen + 1).min(HISTORY_LEN);
    }

    /// Writes the global features (`third`, unclipped, is `interval_rtts`
    /// or `copy_age_rtts`) and the history into `out`.
    pub(super) fn fill(
        &mut self,
        out: &mut [f32; OBSERVATION_LEN],
        min_rtt: f64,
        max_rate: f64,
        third: f64,
    ) {
        let [kept_rtt, kept_rate] = &mut self.log_features;
        out[0] = kept_or(kept_rtt, min_rtt, |min_rtt| {
            clip((1.0 + min_rtt / 1000.0).ln() / 1001f64.ln(), 0.0, 1.0)
        });
        out[1] = kept_or(kept_rate, max_rate, |max_rate| {
            clip((1.0 + max_rate * 8.0 / 1e6).ln() / 10001f64.ln(), 0.0, 1.0)
        });
        out[2] = clip(third, 0.0, 10.0);
        out[3] = self.objective.feature();
        for k in 0..self.seen {
            let b = &self.blocks[(self.newest + HISTORY_LEN - k) % HISTORY_LEN];
            let at = GLOBAL_FEATURES.len() + k * BLOCK_LEN;
            out[at..at + BLOCK_LEN].copy_from_slice(b);
        }
        out[GLOBAL_FEATURES.len() + self.seen * BLOCK_LEN..].fill(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::super::feature_name_of;
    use super::super::fixtures::sample;
    use super::*;

    #[test]
    fn the_kept_log_features_equal_the_formula_whenever_their_input_moves() {
        let mut b = ObservationBuilder::new();
        let mut delivered = 0u32;
        // The min RTT and the rate both move, stay, and come back.
        let rtts = [
            20_000u32, 20_000, 18_000, 18_000, 18_000, 25_000, 18_000, 18_000,
        ];
        let rates = [0u32, 50, 50, 400, 400, 10, 10, 90_000];
        for (k, (&rtt, &rate)) in rtts.iter().zip(&rates).enumerate() {
            delivered += rate;
            let s = FlowSample {
                min_rtt_us: rtt,
                rate_delivered_segments: rate,
                rate_interval_us: 40_000,
                ..sample(20 * k as u64, delivered, 30)
            };
            let o = b.observe(&s).unwrap();
            let min_rtt = f64::from(rtt);
            let max_rate = b.max_rate_bytes_per_sec();
            let want0 = clip((1.0 + min_rtt / 1000.0).ln() / 1001f64.ln(), 0.0, 1.0);
            let want1 = clip((1.0 + max_rate * 8.0 / 1e6).ln() / 10001f64.ln(), 0.0, 1.0);
            assert_eq!(
                (o[0].to_bits(), o[1].to_bits()),
                (want0.to_bits(), want1.to_bits()),
                "sample {k}"
            );
        }
    }

    #[test]
    fn only_supported_versions_build() {
        assert_eq!(
            ObservationBuilder::with_version(Objective::BALANCED, 2).unwrap_err(),
            ObservationError::UnsupportedVersion(2)
        );
        assert_eq!(ObservationBuilder::new().version(), OBSERVATION_VERSION);
        assert_eq!(
            feature_name_of(4, 2).as_deref(),
            Some("copy_age_rtts"),
            "v4 names its third feature"
        );
        assert_eq!(feature_name_of(3, 2).as_deref(), Some("interval_rtts"));
        assert_eq!(feature_name_of(4, 5), feature_name_of(3, 5));
    }
}
