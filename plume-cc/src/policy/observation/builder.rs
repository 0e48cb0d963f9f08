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

/// What [`ObservationBuilder::write`] needs, besides the builder's
/// history, to write the observation of a sample taken by
/// [`ObservationBuilder::advance`]: the global features' inputs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pending {
    min_rtt: f64,
    max_rate: f64,
    /// `interval_rtts` (version 3) or `copy_age_rtts` (version 4), unclipped.
    third: f64,
}

impl Pending {
    /// Builds one (for the versions' `advance`).
    pub(super) fn new(min_rtt: f64, max_rate: f64, third: f64) -> Self {
        Self {
            min_rtt,
            max_rate,
            third,
        }
    }
}

/// Keeps one flow's history and builds its observations (see module docs).
///
/// `repr(C)`, fields in the order an observation reads them: what every
/// [`ObservationBuilder::advance`] reads first (the version, the ring's
/// place, the previous sample, the anchor), the detector, version 4's last
/// copy, then what only [`ObservationBuilder::write`] reads, the history
/// last. Why: a daemon step finds its builders cold from the 20 ms since
/// the last step (issue 14); with the hot fields together an advance
/// without a row (an idle flow's, when its sample changed without a new
/// copy) touches 3 of the builder's 11 cache lines, not all of them.
#[derive(Clone, Debug)]
#[repr(C)]
pub struct ObservationBuilder {
    /// Which observation it builds (3 or 4, [`OBSERVATION_VERSION`]).
    pub(super) version: u32,
    /// Whether the competition detector runs (see [`Self::set_detector`]).
    pub(super) detector: bool,
    pub(super) newest: usize,
    pub(super) seen: usize,
    /// The rate anchor's window is at least this long, microseconds
    /// ([`super::ANCHOR_WINDOW_MIN_US`] unless set with
    /// [`Self::with_anchor_floor_us`]).
    pub(super) anchor_floor_us: u64,
    pub(super) prev: Option<FlowSample>,
    pub(super) anchor: WindowedMax,
    pub(super) competition: CompetitionDetector,
    /// Version 4: the last new copy of the statistics (the sample that
    /// brought it), the start of the next copy's span.
    pub(super) last_copy: Option<FlowSample>,
    pub(super) objective: Objective,
    /// `min_rtt_log` and `max_rate_log` with the input each was computed
    /// from (its f64 bits): an `ln` each, recomputed only when the min RTT
    /// or the rate anchor moves, which is rare next to the intervals
    /// (issue 14: the two `ln` calls were about a sixth of building an
    /// observation in `perf`). The features are the same, bit for bit.
    pub(super) log_features: [Option<(u64, f32)>; 2],
    pub(super) blocks: [[f32; BLOCK_LEN]; HISTORY_LEN],
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
            detector: true,
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

    /// The same builder with a competition detector whose probes send at
    /// `gain` times the flow's rate (the policy's
    /// `CompetitionRule::drain_gain`), so that their deadlines allow for
    /// the slower drain. Kept through [`Self::reset`] and
    /// [`Self::set_detector`].
    pub fn with_drain_gain(mut self, gain: f64) -> Self {
        self.competition = CompetitionDetector::with_drain_gain(gain);
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

    /// Forgets the flow's history (keeps the objective, the version, the
    /// anchor window's floor, whether the detector runs and its drain gain).
    pub fn reset(&mut self) {
        *self = Self {
            version: self.version,
            detector: self.detector,
            anchor_floor_us: self.anchor_floor_us,
            competition: self.competition.renewed(),
            ..Self::with_objective(self.objective)
        };
    }

    /// Runs the competition detector at every observation (on, the
    /// default), or not: its mode is read only by a mapping with the
    /// competition rule, and the observation does not depend on it. Why
    /// off: with it off, a version-4 builder's poll that brings no new
    /// copy changes nothing a later observation reads
    /// ([`Self::idle_polls_change_nothing`]). Turned on again, the detector
    /// starts afresh, as for a new flow.
    pub fn set_detector(&mut self, on: bool) {
        if on && !self.detector {
            self.competition = self.competition.renewed();
        }
        self.detector = on;
    }

    /// Whether the detector runs ([`Self::set_detector`]).
    pub fn runs_detector(&self) -> bool {
        self.detector
    }

    /// The share of its rate the flow's probes send at
    /// ([`Self::with_drain_gain`]).
    pub fn drain_gain(&self) -> f64 {
        self.competition.drain_gain()
    }

    /// True when a poll whose statistics are the copy the builder's last
    /// observation took (no new copy) changes nothing that a later
    /// [`Self::write`] or [`Self::mode`] reads, so [`Self::advance`] may be
    /// skipped for it: version 4 (no block, no anchor update without a new
    /// copy) with the detector off. What such a poll would still move is
    /// the previous sample, whose only readers are the detector and the
    /// check that time does not go back. A per-copy policy's daemon uses it
    /// to leave idle flows' builders untouched (issue 14: reading them was
    /// most of the control step at 10,000 flows).
    pub fn idle_polls_change_nothing(&self) -> bool {
        self.version >= 4 && !self.detector
    }

    /// The last sample taken (None for a new or reset builder): what
    /// [`Self::advance_unchanged`] takes again.
    pub fn previous_sample(&self) -> Option<&FlowSample> {
        self.prev.as_ref()
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
        let p = self.advance(s)?;
        self.write(p, out);
        Ok(())
    }

    /// [`Self::observe_into`] without the writing: takes the sample into
    /// the flow's state (previous sample, anchor, detector, history) and
    /// returns what [`Self::write`] needs to write the observation that
    /// `observe_into` would have written, bit for bit. Why apart: a
    /// per-copy policy's daemon must take every flow's sample at every
    /// poll, but needs the rows of the due flows only, a few hundred of
    /// 10,000 (issue 14: the 75 values written and the history copied for
    /// every idle flow were most of the observe pass). On an error the
    /// builder is left unchanged.
    pub fn advance(&mut self, s: &FlowSample) -> Result<Pending, ObservationError> {
        if self.version >= 4 {
            self.advance_v4(s)
        } else {
            self.advance_v3(s)
        }
    }

    /// [`Self::advance`] of the sample this builder last took, taken again
    /// at each of `times_us` in turn, where each advance's result is
    /// dropped: what a poll of an idle flow does, whose statistics are the
    /// ones it took last (the same copy, the same limits) and only the
    /// poll's time moves. The builder after it is bit for bit the builder
    /// after those advances, and `advance_or_reset`'s reset is followed too
    /// (a time before the last one resets the builder and takes the sample
    /// there). Nothing happens without a previous sample.
    ///
    /// Why: a version-3 builder pushes a history block at every poll, so a
    /// per-copy policy's daemon had to advance all 10,000 builders of a
    /// host at every poll, cold from the 20 ms since the last one (issue 14,
    /// docs/BENCHMARKS.md "Idle polls replayed at the next decision"). It
    /// now records an idle flow's polls and replays them here when its next
    /// decision is due, while its builder is in cache. Version 3 replays
    /// them in a fraction of the advances' time: of polls more than a
    /// history back it only moves the anchor (their blocks are overwritten),
    /// and a block is built again only when the anchor moved
    /// ([`Self::replay_unchanged_v3`]); version 4 advances once per time.
    pub fn advance_unchanged(&mut self, times_us: &[u64]) {
        let Some(p) = self.prev else {
            return;
        };
        let monotonic = times_us
            .iter()
            .try_fold(p.timestamp_us, |last, &t| (t >= last).then_some(t))
            .is_some();
        if self.version < 4 && monotonic {
            self.replay_unchanged_v3(&p, times_us);
            return;
        }
        for &t in times_us {
            let s = FlowSample {
                timestamp_us: t,
                ..p
            };
            if self.advance(&s).is_err() {
                // As `advance_or_reset` (learned.rs): start over from this sample.
                self.reset();
                // A reset builder takes any sample of a version 3; a
                // version 4 one refuses no first copy either.
                let _ = self.advance(&s);
            }
        }
    }

    /// Writes the observation of the last [`Self::advance`], which
    /// returned `p` (the state must not have moved since: the history
    /// written is the builder's now).
    pub fn write(&mut self, p: Pending, out: &mut [f32; OBSERVATION_LEN]) {
        self.fill(out, p.min_rtt, p.max_rate, p.third);
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
    /// in which the flow delivered `bytes`.
    pub(super) fn update_detector(&mut self, s: &FlowSample, dt_us: u64, bytes: f64) {
        if !self.detector {
            return;
        }
        self.competition.update(&DetectorSample {
            timestamp_us: s.timestamp_us,
            min_rtt_us: s.min_rtt_us,
            srtt_us: s.srtt_us,
            last_rtt_us: s.last_rtt_us,
            interval_delivered_bytes: bytes,
            interval_us: dt_us,
            packets_out: s.packets_out,
            total_retrans: s.total_retrans,
            delivered_segments: s.delivered_segments,
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
    fn the_drain_gain_survives_a_reset_and_the_detector_going_off_and_on() {
        let mut b = ObservationBuilder::with_version(Objective::BALANCED, 4)
            .unwrap()
            .with_drain_gain(0.75);
        assert_eq!(b.drain_gain(), 0.75);
        b.reset();
        assert_eq!(b.drain_gain(), 0.75);
        b.set_detector(false);
        b.set_detector(true);
        assert_eq!(b.drain_gain(), 0.75);
        assert_eq!(
            ObservationBuilder::new().drain_gain(),
            crate::policy::competition::DRAIN_GAIN
        );
    }

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

    /// With the detector off, a version-4 builder that skips the polls
    /// bringing no new copy (but for a few, as a forced decision would
    /// take) writes at every poll it takes the observation of one that
    /// took every poll, bit for bit: what a per-copy policy's daemon
    /// relies on to leave idle flows' builders untouched. Version 3 pushes
    /// a block per poll, so there the skip changes the observation, and
    /// the predicate says so; with the detector on it says so too (the
    /// detector is timed by the polls).
    #[test]
    fn with_the_detector_off_version_4_skips_polls_without_a_new_copy_exactly() {
        let poll = |t_ms: u64, copy_ms: u64, delivered: u32, srtt_ms: u32| FlowSample {
            stats_us: copy_ms * 1000,
            rate_delivered_segments: 20 + delivered % 30,
            rate_interval_us: 20_000,
            ..sample(t_ms, delivered, srtt_ms)
        };
        for (version, detector, skippable) in
            [(4, false, true), (4, true, false), (3, false, false)]
        {
            let mut every = ObservationBuilder::with_version(Objective::BALANCED, version).unwrap();
            every.set_detector(detector);
            assert_eq!(every.runs_detector(), detector);
            assert_eq!(every.idle_polls_change_nothing(), skippable);
            let mut skipping = every.clone();
            let (mut copy_ms, mut delivered, mut differs, mut compared) = (0, 0u32, false, 0);
            for k in 0..80u64 {
                let t_ms = 100 + 20 * k;
                let new_copy = k % 4 == 0 || k % 9 == 1;
                if new_copy {
                    copy_ms = t_ms - 5;
                    delivered += 30 + (k as u32 % 7) * 10;
                }
                let s = poll(t_ms, copy_ms, delivered, 40 + (k % 5) as u32 * 10);
                let want = every.observe(&s).unwrap();
                if new_copy || k % 11 == 6 {
                    let got = skipping.observe(&s).unwrap();
                    compared += 1;
                    differs |= got.map(f32::to_bits) != want.map(f32::to_bits)
                        || skipping.mode() != every.mode();
                }
            }
            assert!(compared > 20);
            if skippable {
                assert!(!differs, "version {version}, detector {detector}");
            }
            if version == 3 {
                assert!(differs, "version 3 skipped polls without a change");
            }
        }
    }

    /// `advance_unchanged` of a run of times is, bit for bit, `advance`
    /// (with `advance_or_reset`'s reset) of the previous sample at each of
    /// them: the builder's state after it, and every observation after
    /// it. Runs short and longer than the history, over anchors that
    /// expire during the run (a 1 ms floor) and that do not (the 10 s
    /// default), with and without a kernel rate sample, the detector on and
    /// off, both versions, and times that stand still or go back.
    #[test]
    fn replaying_unchanged_polls_is_advancing_at_each() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut runs = 0;
        for trial in 0..400u64 {
            let version = if trial % 4 == 3 { 4 } else { 3 };
            let mut b = ObservationBuilder::with_version(Objective::BALANCED, version).unwrap();
            if trial % 2 == 0 {
                b = b.with_anchor_floor_us(1_000);
            }
            b.set_detector(trial % 3 == 0);
            let mut other = b.clone();
            let (mut t_ms, mut delivered) = (0u64, 0u32);
            for _ in 0..6 {
                // A few polls that deliver, then a run of the last sample.
                for _ in 0..rng.gen_range(1..4) {
                    t_ms += 20;
                    delivered += rng.gen_range(0..200);
                    let s = FlowSample {
                        stats_us: t_ms * 1000 - 3_000,
                        min_rtt_us: rng.gen_range(1..80_000),
                        rate_delivered_segments: rng.gen_range(0..300),
                        rate_interval_us: if rng.gen_bool(0.7) {
                            rng.gen_range(0..200_000)
                        } else {
                            0
                        },
                        cwnd_segments: rng.gen_range(1..500),
                        ..sample(t_ms, delivered, rng.gen_range(1..200))
                    };
                    let (x, y) = (b.observe(&s), other.observe(&s));
                    assert_eq!(
                        x.map(|o| o.map(f32::to_bits)),
                        y.map(|o| o.map(f32::to_bits))
                    );
                }
                let p = *b.previous_sample().unwrap();
                let mut times = Vec::new();
                for _ in 0..rng.gen_range(0..40) {
                    t_ms = match rng.gen_range(0..20) {
                        0 => t_ms,
                        1 => t_ms.saturating_sub(30),
                        2 => t_ms + rng.gen_range(100..3_000),
                        _ => t_ms + 20,
                    };
                    times.push(t_ms * 1000 + rng.gen_range(0..999));
                }
                for &t in &times {
                    let s = FlowSample {
                        timestamp_us: t,
                        ..p
                    };
                    if other.advance(&s).is_err() {
                        other.reset();
                        other.advance(&s).unwrap();
                    }
                }
                b.advance_unchanged(&times);
                runs += usize::from(times.len() > HISTORY_LEN);
                assert_eq!(format!("{b:?}"), format!("{other:?}"), "trial {trial}");
                // Everything later read: the next observation.
                t_ms = t_ms.max(p.timestamp_us / 1000) + 20;
                let s = sample(t_ms, delivered + 10, 30);
                let (x, y) = (b.observe(&s), other.observe(&s));
                assert_eq!(
                    x.map(|o| o.map(f32::to_bits)),
                    y.map(|o| o.map(f32::to_bits))
                );
                assert_eq!(b.mode(), other.mode());
            }
        }
        assert!(runs > 300, "{runs} runs longer than the history");
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
