//! The policy API: what the daemon asks of any policy ([`FlowPolicy`], one
//! batched call per interval), what a policy answers ([`Target`], the one
//! Rust-side type for the limits on a flow), what a learned policy promises
//! ([`PolicyContract`]), the output guard around it ([`Guard`]), and the
//! scripted policy the kernel tests drive the datapath with. It lives here,
//! below the daemon, so that policies implement it without importing the
//! daemon.
//!
//! The daemon reads every flow once per monitor interval and hands them all
//! to the policy in ONE call (one batched forward for a learned policy). What
//! a policy answers is never written as it is: [`Guard`] raises limits below
//! the datapath's floors, lifts those above what it can represent, and counts
//! every such fix and every NaN among a learned policy's raw outputs.

use super::PolicyError;
use crate::congestion::ClampHold;
use plume_cc_common::{
    FlowStats, FlowTarget, CWND_UNCLAMPED, MIN_CWND_CLAMP, MIN_PACING_BYTES_PER_SEC,
    PACING_UNLIMITED,
};
use serde::{Deserialize, Serialize};

/// A flow's limits in the datapath's units: the fields of the maps'
/// `#[repr(C)]` [`FlowTarget`], and what the simulator applies the way the
/// sock_ops program does (a cwnd clamp, `TCP_BPF_SNDCWND_CLAMP`, and a pacing
/// cap, `SO_MAX_PACING_RATE`). The one Rust-side type for "the limits on a
/// flow": every policy answers with it, and the trainer, the simulator, the
/// evaluation and the daemon use it.
///
/// Why integers and sentinels rather than floats with infinity for "none":
/// they are the map's own values, so what a policy decides is what the
/// datapath applies, in the simulator and in the kernel alike, with no
/// rounding in between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// Ceiling on the cwnd, segments ([`CWND_UNCLAMPED`] for none; the
    /// simulator raises values below 2 to 2).
    pub cwnd_clamp_segments: u32,
    /// Ceiling on the pacing rate, bytes/s ([`PACING_UNLIMITED`] for none).
    pub max_pacing_bytes_per_sec: u32,
    /// The flow runs the policy's competitive controller instead of its
    /// base (`CompetitionRule::competitive_cc`; `FlowTarget::competitive_cc`
    /// in the datapath). False for every policy without one.
    pub competitive_cc: bool,
}

impl Target {
    /// No limits: the base controller alone, as without plume-cc.
    pub const UNLIMITED: Self = Self {
        cwnd_clamp_segments: CWND_UNCLAMPED,
        max_pacing_bytes_per_sec: PACING_UNLIMITED,
        competitive_cc: false,
    };

    /// No limits: the base controller alone, as without plume-cc.
    pub const fn unlimited() -> Self {
        Self::UNLIMITED
    }

    /// The limits in force on a flow, as the datapath reports them
    /// (`applied_cwnd_clamp`, `applied_pacing`, `applied_competitive_cc`).
    pub fn applied(stats: &FlowStats) -> Self {
        Self {
            cwnd_clamp_segments: stats.applied_cwnd_clamp,
            max_pacing_bytes_per_sec: stats.applied_pacing,
            competitive_cc: stats.applied_competitive_cc != 0,
        }
    }
}

impl From<Target> for FlowTarget {
    /// The map value; `written_ns` is stamped by the write.
    fn from(t: Target) -> Self {
        FlowTarget {
            written_ns: 0,
            cwnd_clamp: t.cwnd_clamp_segments,
            max_pacing_bytes_per_sec: t.max_pacing_bytes_per_sec,
            competitive_cc: u32::from(t.competitive_cc),
            _pad: 0,
        }
    }
}

/// A controller of all flows of one cgroup.
pub trait FlowPolicy: Send {
    /// A short description for logs.
    fn describe(&self) -> String;

    /// Decides targets for every flow in `flows` (cookie, statistics) at
    /// monotonic time `now_ns`; `out` receives exactly one target per flow,
    /// in order. Called once per monitor interval. An error (the learned
    /// policy's forward refused its input or failed in libtorch) ends the
    /// daemon, which hands every flow back to the kernel first.
    fn decide(
        &mut self,
        now_ns: u64,
        flows: &[(u64, FlowStats)],
        out: &mut Vec<Target>,
    ) -> Result<(), PolicyError>;

    /// The flow closed: drop any state kept for it.
    fn forget(&mut self, _cookie: u64) {}

    /// Whether [`LastBatch::observed`] must hold every flow the call
    /// observed (the live explainer's predictors that read a flow's past
    /// need it). Off by default: a learned policy that decides once per
    /// copy then writes only the observations it forwards, and `observed`
    /// is empty (issue 14, docs/BENCHMARKS.md "Writing the due rows
    /// only"). Policies without observations ignore it.
    fn keep_observed(&mut self, _on: bool) {}

    /// Sets the operating point; policies without one ignore it.
    fn set_objective(&mut self, _objective: super::Objective) {}

    /// Changes the policy's action mapping with `change`, overriding its
    /// file: `run --competition-rule` turns the competition rule
    /// ([`super::competition`]) on, `run --additive-segments` sets the
    /// additive term. Returns false, changing nothing, for a policy without
    /// a mapping (a scripted schedule) or a changed mapping that is not
    /// valid.
    fn change_action_scaling(
        &mut self,
        _change: &mut dyn FnMut(&mut super::ActionScaling),
    ) -> bool {
        false
    }

    /// Acts with action 0 on every flow instead of the policy's own
    /// actions (`run --fixed-rule`): the fixed rule of docs/TRAINING.md on
    /// the real datapath. Returns false for a policy without an action
    /// mapping (a scripted schedule).
    fn set_fixed_rule(&mut self, _on: bool) -> bool {
        false
    }

    /// What the policy was trained under, if it says: the daemon pins the
    /// base controller and checks the monitor interval against it.
    fn contract(&self) -> Option<PolicyContract> {
        None
    }

    /// SHA-256 (hex) that identifies the policy, if known: the metrics
    /// export it (`plume_cc_build_info`) so that a dashboard tells which
    /// policy a host runs without reading its files.
    fn sha256(&self) -> Option<String> {
        None
    }

    /// What the last [`FlowPolicy::decide`] ran on, for a learned policy:
    /// the daemon's live explanations (`plume-cc run --explain`) run their
    /// predictors on exactly these observations and raw actions instead of
    /// building them a second time. None for policies without observations.
    fn last_batch(&self) -> Option<LastBatch<'_>> {
        None
    }

    /// Where the time of the last [`FlowPolicy::decide`] went, for a
    /// learned policy (`bench-datapath --only real-flows` reports it).
    fn last_timing(&self) -> Option<super::DecideTiming> {
        None
    }
}

/// The inputs and raw outputs of one batched decision (see
/// [`FlowPolicy::last_batch`]), row `i` of each for flow `cookies[i]`.
///
/// `cookies`, `observations` and `raw_actions` are the flows that went
/// through the forward and were decided: every flow for a policy that
/// decides every interval, only the flows whose decision was due for one
/// that decides once per copy of the statistics (the others kept their held
/// target, and had no action computed). `observed_cookies` and `observed`
/// are every flow the call observed, decided or not, when the caller asked
/// for them ([`FlowPolicy::keep_observed`]; else they may be empty): the
/// live explainer feeds each flow's past from them at every step, as its
/// fit's rollouts feed every interval.
#[derive(Clone, Copy, Debug)]
pub struct LastBatch<'a> {
    /// The decided flows, in decision order.
    pub cookies: &'a [u64],
    /// Their observations, row-major.
    pub observations: &'a [f32],
    /// The policy's raw actions, two per decided flow.
    pub raw_actions: &'a [f32],
    /// Every flow observed, in the call's order (the same as `cookies`
    /// when every flow was decided).
    pub observed_cookies: &'a [u64],
    /// Their observations, row-major.
    pub observed: &'a [f32],
}

/// The conditions a learned policy was trained under (its file's metadata).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyContract {
    /// Kernel congestion control under the limits (`cubic`, `bbr`, `reno`).
    pub base_cc: String,
    /// Monitor interval, microseconds.
    pub monitor_interval_us: u64,
    /// Whether, and how long, the datapath holds clamps after a loss
    /// ([`super::ActionScaling::clamp_hold`]).
    pub clamp_hold: ClampHold,
    /// The kernel controller of competitive mode, if the mapping's
    /// competition rule names one ([`super::CompetitionRule::competitive_cc`]).
    pub competitive_cc: Option<String>,
}

/// Counts of policy outputs the guard had to fix.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GuardCounts {
    /// Raw outputs that were NaN: a learned policy's actions
    /// ([`FlowPolicy::last_batch`]), which its action mapping reads as 0, the
    /// fixed rule (see `ActionScaling::to_target`).
    pub nan: u64,
    /// Limits below the datapath's floor (raised to it).
    pub below_min: u64,
    /// Limits above what the datapath represents (lowered to "no limit").
    pub above_max: u64,
}

/// Bounds for policy outputs, between a policy and the flow maps.
#[derive(Clone, Copy, Debug)]
pub struct Guard {
    /// Smallest cwnd clamp written, segments.
    pub min_cwnd: u32,
    /// Smallest pacing cap written, bytes/s.
    pub min_pacing: u32,
    /// Counts so far.
    pub counts: GuardCounts,
}

impl Default for Guard {
    fn default() -> Self {
        Self {
            min_cwnd: MIN_CWND_CLAMP,
            min_pacing: MIN_PACING_BYTES_PER_SEC,
            counts: GuardCounts::default(),
        }
    }
}

impl Guard {
    /// Checks a policy's raw outputs (a learned policy's actions, as
    /// [`FlowPolicy::last_batch`] gives them) and counts the NaNs. This is
    /// the one place floating-point outputs are validated: a policy answers
    /// in [`Target`]s, which cannot be NaN, so a NaN is only visible here.
    /// Values outside `[-1, 1]` need no count: the loaders clamp them, and
    /// `f32::clamp` keeps a NaN a NaN, so none hides behind the clamp.
    pub fn check_raw(&mut self, raw: &[f32]) {
        self.counts.nan += raw.iter().filter(|v| v.is_nan()).count() as u64;
    }

    /// The limits written for a policy's `target`: a limit below the floor
    /// is raised to it, one above what the datapath represents becomes "no
    /// limit" (each counted); the "no limit" sentinels pass as they are.
    pub fn apply(&mut self, target: Target) -> Target {
        Target {
            cwnd_clamp_segments: self.bound(
                target.cwnd_clamp_segments,
                self.min_cwnd,
                CWND_UNCLAMPED,
            ),
            max_pacing_bytes_per_sec: self.bound(
                target.max_pacing_bytes_per_sec,
                self.min_pacing,
                PACING_UNLIMITED,
            ),
            competitive_cc: target.competitive_cc,
        }
    }

    fn bound(&mut self, v: u32, min: u32, unlimited: u32) -> u32 {
        if v == unlimited {
            return unlimited;
        }
        if v > unlimited {
            self.counts.above_max += 1;
            return unlimited;
        }
        if v < min {
            self.counts.below_min += 1;
            return min;
        }
        v
    }
}

/// A policy that replays a fixed schedule of targets, the same for every
/// flow, each step held for a duration and the last one held forever. The
/// schedule starts when the first flow is seen.
/// For tests and for measuring the datapath; not a controller.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScriptedPolicy {
    /// The steps.
    pub steps: Vec<ScriptStep>,
    #[serde(skip)]
    start_ns: Option<u64>,
    /// SHA-256 of the file it was read from (see [`FlowPolicy::sha256`]).
    #[serde(skip)]
    pub source_sha256: Option<String>,
}

/// One step of a [`ScriptedPolicy`].
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct ScriptStep {
    /// cwnd clamp, segments (absent = none).
    #[serde(default)]
    pub cwnd: Option<u32>,
    /// Pacing cap, bytes/s (absent = none).
    #[serde(default)]
    pub pacing_bytes_per_sec: Option<u32>,
    /// How long the step lasts, milliseconds.
    pub hold_ms: u64,
}

/// The JSON form of a scripted policy file: `{"scripted": {"steps": [...]}}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScriptFile {
    /// The schedule.
    pub scripted: ScriptedPolicy,
}

/// Why a scripted schedule file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    /// Not `{"scripted": {"steps": [...]}}`.
    #[error("malformed scripted schedule: {0}")]
    Json(#[from] serde_json::Error),
    /// No steps.
    #[error("the scripted schedule has no steps")]
    NoSteps,
    /// The steps last longer than a u64 of milliseconds can hold.
    #[error("the scripted schedule's hold_ms values add up past {} ms", u64::MAX)]
    TooLong,
}

impl ScriptedPolicy {
    /// Parses a scripted schedule file (`{"scripted": {"steps": [...]}}`),
    /// recording the SHA-256 of `bytes` as its source.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ScriptError> {
        let mut file: ScriptFile = serde_json::from_slice(bytes)?;
        if file.scripted.steps.is_empty() {
            return Err(ScriptError::NoSteps);
        }
        file.scripted
            .steps
            .iter()
            .try_fold(0u64, |t, s| t.checked_add(s.hold_ms))
            .ok_or(ScriptError::TooLong)?;
        file.scripted.source_sha256 = Some(super::sha256_hex(bytes));
        Ok(file.scripted)
    }

    /// A schedule.
    pub fn new(steps: Vec<ScriptStep>) -> Self {
        Self {
            steps,
            start_ns: None,
            source_sha256: None,
        }
    }

    /// The step in force `elapsed_ms` after the first decision.
    pub fn step_at(&self, elapsed_ms: u64) -> Option<ScriptStep> {
        let mut t = 0u64;
        for s in &self.steps {
            t = t.saturating_add(s.hold_ms);
            if elapsed_ms < t {
                return Some(*s);
            }
        }
        self.steps.last().copied()
    }
}

impl FlowPolicy for ScriptedPolicy {
    fn describe(&self) -> String {
        format!("scripted ({} steps)", self.steps.len())
    }

    fn sha256(&self) -> Option<String> {
        self.source_sha256.clone()
    }

    fn decide(
        &mut self,
        now_ns: u64,
        flows: &[(u64, FlowStats)],
        out: &mut Vec<Target>,
    ) -> Result<(), PolicyError> {
        out.clear();
        if flows.is_empty() && self.start_ns.is_none() {
            // The schedule's clock starts with the first flow.
            return Ok(());
        }
        let start = *self.start_ns.get_or_insert(now_ns);
        let step = self.step_at(now_ns.saturating_sub(start) / 1_000_000);
        let d = step.map_or(Target::UNLIMITED, |s| Target {
            cwnd_clamp_segments: s.cwnd.unwrap_or(CWND_UNCLAMPED),
            max_pacing_bytes_per_sec: s.pacing_bytes_per_sec.unwrap_or(PACING_UNLIMITED),
            competitive_cc: false,
        });
        out.clear();
        out.extend(flows.iter().map(|_| d));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(cwnd_clamp_segments: u32, max_pacing_bytes_per_sec: u32) -> Target {
        Target {
            cwnd_clamp_segments,
            max_pacing_bytes_per_sec,
            competitive_cc: false,
        }
    }

    #[test]
    fn guard_clamps_and_counts() {
        let mut g = Guard::default();
        assert_eq!(g.apply(Target::UNLIMITED), Target::UNLIMITED);
        assert_eq!(g.counts, GuardCounts::default(), "no limit is no fix");
        assert_eq!(
            g.apply(target(0, 5)),
            target(MIN_CWND_CLAMP, MIN_PACING_BYTES_PER_SEC)
        );
        assert_eq!(
            g.apply(target(CWND_UNCLAMPED + 1, 2_000_000)),
            target(CWND_UNCLAMPED, 2_000_000)
        );
        // Exact: no float in between (a pacing cap above 2^24 bytes/s
        // kept its low bits).
        assert_eq!(g.apply(target(10, 16_777_217)), target(10, 16_777_217));
        g.check_raw(&[0.5, f32::NAN, -1.0, f32::NAN]);
        assert_eq!(
            g.counts,
            GuardCounts {
                nan: 2,
                below_min: 2,
                above_max: 1
            }
        );
    }

    #[test]
    fn script_steps_in_time() {
        let mut p = ScriptedPolicy::new(vec![
            ScriptStep {
                cwnd: Some(4),
                pacing_bytes_per_sec: None,
                hold_ms: 100,
            },
            ScriptStep {
                cwnd: Some(8),
                pacing_bytes_per_sec: Some(1000),
                hold_ms: 100,
            },
        ]);
        let flows = vec![(1u64, FlowStats::default()), (2, FlowStats::default())];
        let mut out = Vec::new();
        p.decide(1_000_000_000, &flows, &mut out).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0], target(4, PACING_UNLIMITED));
        p.decide(1_150_000_000, &flows, &mut out).unwrap();
        assert_eq!(out[1], target(8, 1000));
        p.decide(9_000_000_000, &flows, &mut out).unwrap();
        assert_eq!(out[0].cwnd_clamp_segments, 8, "the last step holds");
    }

    #[test]
    fn script_file_parses() {
        let f: ScriptFile = serde_json::from_str(
            r#"{"scripted":{"steps":[{"cwnd":4,"hold_ms":500},{"pacing_bytes_per_sec":2000000,"hold_ms":500}]}}"#,
        )
        .unwrap();
        assert_eq!(f.scripted.steps[1].pacing_bytes_per_sec, Some(2_000_000));
        assert_eq!(f.scripted.steps[1].cwnd, None);
    }
}
