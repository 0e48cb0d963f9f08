//! The learned policy's side of plume-cc: what it observes and how it acts.
//! Shared by the simulator (training) and the daemon (deployment) so a
//! policy transfers unchanged.
//!
//! - [`observation`]: the shared observation builder (datapath statistics in,
//!   fixed-length feature vector out), with [`filter`], the windowed maximum
//!   its rate anchor lives in.
//! - [`model`]: the actor-critic network and observation normalisation;
//! - [`scaling`]: the action mapping to the datapath's levers (clamp and
//!   pacing cap over the flow's context, the step limit, the competition
//!   rule's modes from [`competition`]).
//! - [`file`]: [`LoadedPolicy`], the one type the daemon uses to run a
//!   policy (native or TorchScript), with [`metadata`] (what the JSON
//!   promises and the checks against this build) and [`format`] (the files
//!   on disk, saving and loading a trainable policy);
//! - [`api`]: the policy API the daemon drives ([`FlowPolicy`], [`Target`],
//!   the one Rust-side type for the limits on a flow, and [`Guard`]) and the
//!   scripted test policy;
//! - [`learned`]: [`LoadedPolicy`] behind [`FlowPolicy`].
pub mod api;
pub mod competition;
pub mod file;
pub mod filter;
pub mod format;
pub mod learned;
pub mod metadata;
pub mod model;
pub mod objective;
pub mod observation;
pub mod scaling;

pub use api::{
    FlowPolicy, Guard, GuardCounts, LastBatch, PolicyContract, ScriptError, ScriptFile, ScriptStep,
    ScriptedPolicy, Target,
};
pub use competition::{CompetitionDetector, Mode};
pub use file::{
    default_policy, default_policy_bytes, BatchScratch, ForwardTiming, LoadedPolicy, PolicyError,
    PolicyMetadata,
};
pub(crate) use format::sha256_hex;
pub use learned::{DecideTiming, LearnedPolicy};
pub use objective::Objective;
pub use observation::{FlowSample, ObservationBuilder, OBSERVATION_LEN};
pub use scaling::{ActionScaling, CompetitionRule, FlowContext};

/// The [`FlowContext`] encoded in an observation's global features (the
/// inverse of `min_rtt_log` and `max_rate_log`, exact up to f32 rounding and
/// the features' clipping at 1 s and 10 Gbit/s), with the flow's MSS. The
/// trainer uses it, so the daemon should too: the action mapping then sees
/// exactly what the policy saw.
pub fn flow_context_from_observation(obs: &[f32], mss_bytes: u32) -> FlowContext {
    let min_rtt_ms = obs
        .first()
        .map_or(0.0, |&v| (f64::from(v) * 1001f64.ln()).exp() - 1.0);
    let max_rate_mbps = obs
        .get(1)
        .map_or(0.0, |&v| (f64::from(v) * 10001f64.ln()).exp() - 1.0);
    // The newest block's srtt_excess, srtt / min_rtt - 1 (clipped at 10).
    let srtt_excess = obs
        .get(observation::GLOBAL_FEATURES.len() + 2)
        .map_or(0.0, |&v| f64::from(v).max(0.0));
    let min_rtt_us = (min_rtt_ms.max(0.0) * 1000.0).round();
    FlowContext {
        min_rtt_us: min_rtt_us as u32,
        max_rate_bytes_per_sec: max_rate_mbps.max(0.0) * 1e6 / 8.0,
        mss_bytes,
        srtt_us: (min_rtt_us * (1.0 + srtt_excess)).round() as u32,
        mode: Mode::Default,
    }
}

/// [`flow_context_from_observation`] with the flow's competition `mode`,
/// from the builder that made `obs` ([`ObservationBuilder::mode`]: the one
/// piece of the context that is state, not a feature; see [`competition`]).
pub fn flow_context(obs: &[f32], mss_bytes: u32, mode: Mode) -> FlowContext {
    FlowContext {
        mode,
        ..flow_context_from_observation(obs, mss_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use observation::{FlowSample, ObservationBuilder};

    #[test]
    fn flow_context_round_trips_through_the_observation() {
        let mut b = ObservationBuilder::new();
        let s = |t_ms: u64, delivered: u32| FlowSample {
            timestamp_us: t_ms * 1000,
            srtt_us: 40_000,
            min_rtt_us: 40_000,
            cwnd_segments: 10,
            mss_bytes: 1000,
            delivered_segments: delivered,
            ..FlowSample::default()
        };
        b.observe(&s(0, 0)).unwrap();
        // 100 kB in 20 ms, but a rate spans at least one min RTT (40 ms):
        // 2.5 MB/s.
        let o = b.observe(&s(20, 100)).unwrap();
        let c = flow_context_from_observation(&o, 1000);
        assert!((i64::from(c.min_rtt_us) - 40_000).abs() <= 2, "{c:?}");
        assert!(
            (c.max_rate_bytes_per_sec / 2.5e6 - 1.0).abs() < 1e-4,
            "{c:?}"
        );
    }
}
