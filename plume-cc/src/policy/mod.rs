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
//!   promises and the checks against this build), [`format`] (the files
//!   on disk, saving and loading a trainable policy) and [`batch`] (the
//!   daemon's batched forward at batch cost, bit for bit the plain one);
//! - [`api`]: the policy API the daemon drives ([`FlowPolicy`], [`Target`],
//!   the one Rust-side type for the limits on a flow, and [`Guard`]) and the
//!   scripted test policy;
//! - [`learned`]: [`LoadedPolicy`] behind [`FlowPolicy`];
//! - [`cadence`]: when a flow gets a new decision (every interval, or once
//!   per copy of its statistics), the same clock in training and deployment.
pub mod api;
pub mod batch;
pub mod cadence;
pub mod competition;
pub mod derive;
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
pub use cadence::{Cadence, DecisionClock};
pub use competition::{CompetitionDetector, Mode};
pub use file::{
    default_policy, default_policy_bytes, BatchScratch, ForwardTiming, LoadedPolicy, PolicyError,
    PolicyMetadata,
};
pub(crate) use format::sha256_hex;
pub use learned::{builder_for, DecideTiming, LearnedPolicy};
pub use objective::Objective;
pub use observation::{FlowSample, ObservationBuilder, OBSERVATION_LEN};
pub use scaling::{ActionScaling, CompetitionRule, FlowContext};

/// The [`FlowContext`] encoded in an observation's global features (the
/// inverse of `min_rtt_log` and `max_rate_log`, exact up to f32 rounding and
/// the features' clipping at 1 s and 10 Gbit/s), with the flow's MSS. The
/// trainer uses it, so the daemon should too: the action mapping then sees
/// exactly what the policy saw.
pub fn flow_context_from_observation(obs: &[f32], mss_bytes: u32) -> FlowContext {
    // A missing feature decodes as 0: exp(0) - 1 is exactly 0.
    DecodedAnchor::decode(
        obs.first().copied().unwrap_or(0.0),
        obs.get(1).copied().unwrap_or(0.0),
    )
    .context(obs, mss_bytes, Mode::Default)
}

/// The part of [`flow_context_from_observation`] that costs two `exp`
/// calls: the min RTT and the rate anchor decoded from the features
/// `min_rtt_log` and `max_rate_log`, with the features they came from.
/// Both features change only when the flow's min RTT or rate anchor does,
/// so the daemon keeps one per flow and decodes again only then
/// ([`DecodedAnchor::refresh`]); the context is the same, bit for bit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DecodedAnchor {
    features: [u32; 2],
    min_rtt_us: f64,
    max_rate_bytes_per_sec: f64,
}

impl Default for DecodedAnchor {
    fn default() -> Self {
        Self::decode(0.0, 0.0)
    }
}

impl DecodedAnchor {
    /// Decodes the two features.
    pub fn decode(min_rtt_log: f32, max_rate_log: f32) -> Self {
        let min_rtt_ms = (f64::from(min_rtt_log) * 1001f64.ln()).exp() - 1.0;
        let max_rate_mbps = (f64::from(max_rate_log) * 10001f64.ln()).exp() - 1.0;
        Self {
            features: [min_rtt_log.to_bits(), max_rate_log.to_bits()],
            min_rtt_us: round_half_away(min_rtt_ms.max(0.0) * 1000.0),
            max_rate_bytes_per_sec: max_rate_mbps.max(0.0) * 1e6 / 8.0,
        }
    }

    /// Makes this the decoding of `obs`'s features, decoding only if they
    /// differ (bitwise) from the ones it holds.
    pub fn refresh(&mut self, obs: &[f32]) -> &Self {
        let f = [
            obs.first().copied().unwrap_or(0.0),
            obs.get(1).copied().unwrap_or(0.0),
        ];
        if [f[0].to_bits(), f[1].to_bits()] != self.features {
            *self = Self::decode(f[0], f[1]);
        }
        self
    }

    /// The flow context of `obs` (whose features this decoded), with the
    /// srtt read from its newest block.
    pub fn context(&self, obs: &[f32], mss_bytes: u32, mode: Mode) -> FlowContext {
        // The newest block's srtt_excess, srtt / min_rtt - 1 (clipped at 10).
        let srtt_excess = obs
            .get(observation::GLOBAL_FEATURES.len() + 2)
            .map_or(0.0, |&v| f64::from(v).max(0.0));
        FlowContext {
            min_rtt_us: self.min_rtt_us as u32,
            max_rate_bytes_per_sec: self.max_rate_bytes_per_sec,
            mss_bytes,
            srtt_us: round_half_away(self.min_rtt_us * (1.0 + srtt_excess)) as u32,
            mode,
        }
    }
}

/// `x.round()` (half away from zero), bit for bit, without the libm call
/// that `f64::round` is on baseline x86-64 (no SSE4.1): the action mapping
/// rounds five times per flow, a few per cent of the decide step at 10,000
/// flows. Below 2^52 in magnitude the truncation `x as i64` is exact and so
/// is `x - trunc(x)`; larger values are already integers, and NaN and the
/// infinities go to `f64::round`.
#[inline]
pub fn round_half_away(x: f64) -> f64 {
    const EXACT: f64 = 4_503_599_627_370_496.0; // 2^52
    if x.is_nan() || x.abs() >= EXACT {
        return x.round();
    }
    // `copysign`: -0.3 rounds to -0.0, as with `f64::round`.
    let t = ((x as i64) as f64).copysign(x);
    let frac = x - t;
    if frac >= 0.5 {
        t + 1.0
    } else if frac <= -0.5 {
        t - 1.0
    } else {
        t
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

    #[test]
    fn round_half_away_is_f64_round_bit_for_bit() {
        let mut xs = vec![
            0.0,
            -0.0,
            0.3,
            -0.3,
            0.5,
            -0.5,
            1.5,
            -1.5,
            2.5,
            -2.5,
            0.499_999_999_999_999_94,
            -0.499_999_999_999_999_94,
            4_503_599_627_370_495.5,
            -4_503_599_627_370_495.5,
            4_503_599_627_370_496.0,
            9_007_199_254_740_993.0,
            1e300,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ];
        // Every half-integer and its neighbours up to 2^20, and values
        // spread over the magnitudes the mapping sees (segments, bytes/s).
        for i in 0..(1 << 20) {
            let h = f64::from(i) + 0.5;
            xs.extend([h, -h, h.next_up(), h.next_down()]);
        }
        let mut x = 1e-3f64;
        while x < 1e17 {
            xs.extend([x, -x, x * 1.000_001, x.next_up()]);
            x *= 1.001;
        }
        for x in xs {
            let (got, want) = (round_half_away(x), x.round());
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{x:e}: {got:e} against {want:e}"
            );
        }
    }

    #[test]
    fn a_kept_decoded_anchor_gives_the_fresh_context() {
        let mut kept = DecodedAnchor::default();
        let mut obs = [0.0f32; observation::OBSERVATION_LEN];
        for (i, (f0, f1, srtt)) in [
            (0.4, 0.6, 0.1),
            (0.4, 0.6, 0.7),
            (0.41, 0.6, 0.7),
            (0.41, 0.2, 0.0),
            (0.0, 0.0, 3.0),
        ]
        .into_iter()
        .enumerate()
        {
            obs[0] = f0;
            obs[1] = f1;
            obs[observation::GLOBAL_FEATURES.len() + 2] = srtt;
            let want = flow_context(&obs, 1448, Mode::Default);
            let got = kept.refresh(&obs).context(&obs, 1448, Mode::Default);
            assert_eq!(format!("{got:?}"), format!("{want:?}"), "step {i}");
            assert_eq!(kept, DecodedAnchor::decode(f0, f1));
        }
        let empty = flow_context_from_observation(&[], 1000);
        assert_eq!((empty.min_rtt_us, empty.max_rate_bytes_per_sec), (0, 0.0));
    }
}
