//! The policy network and everything needed to turn its output into the
//! datapath's two levers.
//!
//! - [`ActorCritic`]: the trainable network in tch: an MLP actor giving the
//!   mean of a Gaussian over a 2-dimensional action with a state-independent
//!   log-std, and a separate MLP critic (value head) for PPO. Weights are
//!   initialised from a seeded ChaCha RNG, never from libtorch's global RNG.
//! - [`ObsNormalizer`]: running mean/variance of observations (parallel
//!   Welford merge), saved with the model and applied before the network.
//! - [`ActionScaling`]: the documented mapping from a raw action in
//!   `[-1, 1]^2` to a cwnd clamp (segments) and a pacing cap (bytes/s), given
//!   the flow's [`FlowContext`].
//! - [`InferenceNet`]: the deterministic forward (raw observation ->
//!   normalised -> actor mean -> clamped to `[-1, 1]`) over plain tensors,
//!   shared by the trainer's evaluation, [`crate::policy::LoadedPolicy`] and
//!   the TorchScript export, so all three compute the same function.
//!
//! This module does no I/O; files are in [`crate::policy::file`].

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Tensor};

use super::competition::{Mode, DRAIN_GAIN};
use plume_cc_common::{CWND_UNCLAMPED, MIN_CWND_CLAMP, MIN_PACING_BYTES_PER_SEC, PACING_UNLIMITED};

use super::api::Target;

/// Number of action dimensions: `[cwnd lever, pacing lever]`.
pub const ACTION_DIM: usize = 2;

/// Shape of the networks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Architecture {
    /// Length of the observation vector.
    pub obs_len: usize,
    /// Hidden layer widths, shared by actor and critic (tanh after each).
    pub hidden: Vec<usize>,
    /// Action dimensions (always [`ACTION_DIM`] today).
    pub action_dim: usize,
    /// Hidden activation; only `"tanh"` exists.
    pub activation: String,
}

impl Architecture {
    /// Two tanh layers of `width` for observations of `obs_len`.
    pub fn mlp(obs_len: usize, width: usize) -> Self {
        Self {
            obs_len,
            hidden: vec![width, width],
            action_dim: ACTION_DIM,
            activation: "tanh".to_string(),
        }
    }

    /// `(name, shape)` of every tensor of the actor (`actor.{i}.weight|bias`)
    /// followed by `log_std`, then the critic (`critic.{i}.weight|bias`).
    pub fn tensor_shapes(&self, with_critic: bool) -> Vec<(String, Vec<i64>)> {
        let mut out = Vec::new();
        let push_mlp = |prefix: &str, out_dim: usize, out: &mut Vec<(String, Vec<i64>)>| {
            let mut fan_in = self.obs_len;
            let dims: Vec<usize> = self.hidden.iter().copied().chain([out_dim]).collect();
            for (i, &d) in dims.iter().enumerate() {
                out.push((
                    format!("{prefix}.{i}.weight"),
                    vec![d as i64, fan_in as i64],
                ));
                out.push((format!("{prefix}.{i}.bias"), vec![d as i64]));
                fan_in = d;
            }
        };
        push_mlp("actor", self.action_dim, &mut out);
        out.push(("log_std".to_string(), vec![self.action_dim as i64]));
        if with_critic {
            push_mlp("critic", 1, &mut out);
        }
        out
    }
}

/// Running mean and variance of observations, per feature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObsNormalizer {
    /// Mean per feature.
    pub mean: Vec<f64>,
    /// Population variance per feature.
    pub var: Vec<f64>,
    /// Observations folded in so far (fractional after the initial prior).
    pub count: f64,
    /// Normalised values are clipped to `[-clip, clip]`.
    pub clip: f32,
}

impl ObsNormalizer {
    /// Identity-like start: mean 0, variance 1, a tiny prior count.
    pub fn new(len: usize) -> Self {
        Self {
            mean: vec![0.0; len],
            var: vec![1.0; len],
            count: 1e-4,
            clip: 10.0,
        }
    }

    /// Feature count.
    pub fn len(&self) -> usize {
        self.mean.len()
    }

    /// True when there are no features.
    pub fn is_empty(&self) -> bool {
        self.mean.is_empty()
    }

    /// Folds in `rows` observations laid out row-major in `batch`
    /// (Chan et al.'s parallel variance merge). Ignores a batch of the wrong size.
    pub fn update(&mut self, batch: &[f32], rows: usize) {
        let len = self.len();
        if rows == 0 || batch.len() != rows * len {
            return;
        }
        let n = rows as f64;
        for j in 0..len {
            let mut m = 0.0;
            for r in 0..rows {
                m += f64::from(batch[r * len + j]);
            }
            m /= n;
            let mut v = 0.0;
            for r in 0..rows {
                let d = f64::from(batch[r * len + j]) - m;
                v += d * d;
            }
            v /= n;
            let total = self.count + n;
            let delta = m - self.mean[j];
            self.mean[j] += delta * n / total;
            self.var[j] =
                (self.var[j] * self.count + v * n + delta * delta * self.count * n / total) / total;
        }
        self.count += n;
    }

    /// `(mean, std)` as `[1, len]` float tensors (std floored at 1e-4).
    pub fn tensors(&self) -> (Tensor, Tensor) {
        let mean: Vec<f32> = self.mean.iter().map(|&m| m as f32).collect();
        let std: Vec<f32> = self
            .var
            .iter()
            .map(|&v| v.max(0.0).sqrt().max(1e-4) as f32)
            .collect();
        (
            Tensor::from_slice(&mean).reshape([1, self.len() as i64]),
            Tensor::from_slice(&std).reshape([1, self.len() as i64]),
        )
    }

    /// True when every statistic is finite and every variance non-negative.
    pub fn is_valid(&self) -> bool {
        self.mean.len() == self.var.len()
            && self.mean.iter().all(|m| m.is_finite())
            && self.var.iter().all(|v| v.is_finite() && *v >= 0.0)
            && self.count.is_finite()
            && self.clip.is_finite()
            && self.clip > 0.0
    }
}

/// What the action scaling needs to know about one flow.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FlowContext {
    /// Minimum RTT, microseconds (0: unknown).
    pub min_rtt_us: u32,
    /// Largest delivery rate seen on the flow, bytes/s (0: unknown); the
    /// observation builder's `max_rate_bytes_per_sec()`.
    pub max_rate_bytes_per_sec: f64,
    /// Sender MSS, bytes.
    pub mss_bytes: u32,
    /// Smoothed RTT at the latest sample, microseconds (0: unknown); only
    /// read when [`ActionScaling::rtt_ref_exponent`] is above 0.
    pub srtt_us: u32,
    /// The flow's competition mode (see [`super::competition`]); only read
    /// when [`ActionScaling::competition`] is set.
    pub mode: Mode,
}

/// Maps a raw action `a` in `[-1, 1]^2` (values outside are clamped) to a
/// [`Target`]:
///
/// - `bdp_segments = max_rate_bytes_per_sec * min_rtt / mss` (the flow's BDP
///   estimate);
/// - `cwnd_clamp = cwnd_gain * bdp_segments * 2^(a[0] * cwnd_log2_span)`,
///   rounded, within `[min_cwnd_segments, max_cwnd_segments]`;
/// - `pacing_cap = pacing_gain * max_rate_bytes_per_sec * 2^(a[1] *
///   pacing_log2_span)`, within `[min_pacing_bytes_per_sec, u32::MAX - 1]`.
///
/// The gains set what action 0 (the fixed rule) means. With a windowed rate
/// anchor they must leave headroom, as BBR's do (cwnd gain 2, a pacing gain
/// above 1 when probing): a ceiling at exactly the anchor lets a flow send
/// no faster than its own recent maximum, so the anchor can only fall. The
/// defaults, 2 and 1.25, make action 0 a BBR-like envelope; files written
/// before the gains existed read them as 1 (a ceiling at one BDP and the
/// max rate).
///
/// Before the flow has an RTT and a delivery-rate estimate the target is
/// "no limits" (the kernel's controller alone). The kernel-like base
/// controller keeps running under these ceilings (Orca's lesson: a learned
/// ceiling over a classic controller trains and fails more gracefully than a
/// learned cwnd).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActionScaling {
    /// cwnd multiplier span, in powers of two either side of one BDP.
    pub cwnd_log2_span: f32,
    /// Pacing multiplier span, in powers of two either side of the max rate.
    pub pacing_log2_span: f32,
    /// Smallest cwnd clamp, segments (at least the datapath's own floor, 2).
    pub min_cwnd_segments: u32,
    /// Largest cwnd clamp, segments.
    pub max_cwnd_segments: u32,
    /// Smallest pacing cap, bytes/s (at least the datapath's floor).
    pub min_pacing_bytes_per_sec: u32,
    /// The cwnd clamp at action 0, in BDPs.
    #[serde(default = "unit_gain")]
    pub cwnd_gain: f32,
    /// The pacing cap at action 0, in multiples of the rate anchor.
    #[serde(default = "unit_gain")]
    pub pacing_gain: f32,
    /// Largest change of either limit from one interval to the next, in
    /// octaves (0: none). See [`ActionScaling::limit_step`].
    #[serde(default)]
    pub max_log2_step: f32,
    /// Which RTT the clamp's BDP is taken over: `min_rtt^(1-e) * srtt^e`
    /// (0: the min RTT, as before this field existed; 1: the current srtt).
    ///
    /// Why: with the min RTT, a clamp of `k` BDPs of the flow's own rate
    /// lets the flow deliver at most `k * min_rtt / srtt` of that rate. When
    /// a buffer-filling competitor raises the srtt to many min RTTs, the flow
    /// cannot keep its rate, its rate anchor follows it down and the clamp
    /// with it: the starvation spiral measured in docs/TRAINING.md. Over the
    /// srtt, the same clamp keeps `k` times the anchor at whatever queue the
    /// competitor holds, so holding or taking a share is an action the
    /// policy can choose; draining its own queue is the action `k < 1`.
    #[serde(default)]
    pub rtt_ref_exponent: f32,
    /// What the second action dimension sets (see [`SecondAction`]).
    #[serde(default)]
    pub second_action: SecondAction,
    /// The competition rule: drain probes and a competitive mode (see
    /// [`CompetitionRule`]); none in files written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub competition: Option<CompetitionRule>,
}

/// What the mapping does with the flow's competition [`Mode`]
/// ([`super::competition`] has the detector and why).
///
/// - [`Mode::Probe`]: the clamp is [`super::competition::DRAIN_GAIN`] BDPs
///   of the flow's current rate over the min RTT, whatever the action, and
///   it applies at once (no per-interval step limit), so that the probe
///   drains what the flow holds within a round trip or two.
/// - [`Mode::Competitive`], with no `competitive_exponent` (the
///   default): no limits at all, the base controller (CUBIC) alone, as
///   Copa's competitive mode behaves like the buffer filler it detected.
///   Why: the srtt-following clamp below let the flow take 0.76-0.98 of
///   the link from a CUBIC flow on the real kernel, because every clamp
///   increase also raises ssthresh (`TCP_BPF_SNDCWND_CLAMP`), so the base
///   keeps leaving its multiplicative decrease behind (docs/TRAINING.md).
///   One write of "no limit" lets CUBIC meet CUBIC.
/// - [`Mode::Competitive`] with `competitive_exponent = e`: the clamp's
///   BDP is taken over `min_rtt^(1-e) * srtt^e` (as
///   [`ActionScaling::rtt_ref_exponent`] does), and the action scales the
///   clamp and the pacing cap up but not below action 0 (`a < 0` counts as
///   0): policies free to go below it gave the share back.
/// - [`Mode::Default`]: the mapping as without the rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CompetitionRule {
    /// The clamp's RTT exponent in competitive mode, in `(0, 1]`; none: no
    /// limits in competitive mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub competitive_exponent: Option<f32>,
}

impl CompetitionRule {
    /// True when the exponent, if any, is within `(0, 1]`.
    pub fn is_valid(&self) -> bool {
        self.competitive_exponent
            .is_none_or(|e| e.is_finite() && e > 0.0 && e <= 1.0)
    }
}

/// What the second action dimension `a[1]` sets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecondAction {
    /// The pacing cap, `pacing_gain * anchor * 2^(a[1] * pacing_log2_span)`.
    #[default]
    Pacing,
    /// The clamp's RTT exponent, `rtt_ref_exponent * (a[1] + 1) / 2`: the
    /// policy chooses, per flow and interval, how far its clamp follows the
    /// srtt (Copa's default and competitive modes as one continuous
    /// choice). The pacing cap stays at `pacing_gain * anchor`.
    ///
    /// Why: over the min RTT a clamp holds a small queue alone but starves
    /// beside a buffer-filling competitor; over the srtt it holds a share
    /// there but alone it either drains to nothing or fills the buffer
    /// (measured in docs/TRAINING.md). No one exponent serves both.
    RttExponent,
}

fn unit_gain() -> f32 {
    1.0
}

impl Default for ActionScaling {
    fn default() -> Self {
        Self {
            cwnd_log2_span: 2.0,
            pacing_log2_span: 2.0,
            min_cwnd_segments: 4,
            max_cwnd_segments: 100_000,
            min_pacing_bytes_per_sec: MIN_PACING_BYTES_PER_SEC,
            cwnd_gain: 2.0,
            pacing_gain: 1.25,
            max_log2_step: 0.5,
            rtt_ref_exponent: 0.0,
            second_action: SecondAction::Pacing,
            competition: None,
        }
    }
}

impl ActionScaling {
    /// True when the bounds are consistent and the spans finite and positive.
    pub fn is_valid(&self) -> bool {
        self.cwnd_log2_span.is_finite()
            && self.cwnd_log2_span > 0.0
            && self.pacing_log2_span.is_finite()
            && self.pacing_log2_span > 0.0
            && self.min_cwnd_segments >= MIN_CWND_CLAMP
            && self.max_cwnd_segments >= self.min_cwnd_segments
            && self.max_cwnd_segments < CWND_UNCLAMPED
            && self.min_pacing_bytes_per_sec >= MIN_PACING_BYTES_PER_SEC
            && self.cwnd_gain.is_finite()
            && (0.25..=8.0).contains(&self.cwnd_gain)
            && self.pacing_gain.is_finite()
            && (0.25..=8.0).contains(&self.pacing_gain)
            && self.max_log2_step.is_finite()
            && (0.0..=8.0).contains(&self.max_log2_step)
            && (0.0..=1.0).contains(&self.rtt_ref_exponent)
            && self.competition.is_none_or(|c| c.is_valid())
    }

    /// The limits for raw action `raw` on the flow `ctx`, moved at most one
    /// step from `prev`, the limits in force ([`Self::to_target`] then
    /// [`Self::limit_step`]); a drain probe applies at once.
    pub fn next_target(&self, raw: [f32; 2], ctx: &FlowContext, prev: Target) -> Target {
        self.step_from(self.to_target(raw, ctx), ctx, prev)
    }

    /// `new` for the flow `ctx` moved at most one step from `prev`
    /// ([`Self::limit_step`]), except in a drain probe of the competition
    /// rule, which applies at once.
    pub fn step_from(&self, new: Target, ctx: &FlowContext, prev: Target) -> Target {
        if self.competition.is_some() && matches!(ctx.mode, Mode::Probe { .. }) {
            new
        } else {
            self.limit_step(new, prev)
        }
    }

    /// `new` with each limit moved at most `max_log2_step` octaves from the
    /// one in force (`prev`, what the datapath reports as applied), so a
    /// jittery policy cannot swing the clamp by large factors every interval.
    /// Why: every applied clamp change resets ssthresh in the kernel
    /// (`TCP_BPF_SNDCWND_CLAMP`), and per-interval swings of 2-3x made the
    /// kernel and the simulator diverge. A limit coming from or going to "no
    /// limit" is not smoothed (a new flow's first limit applies at once).
    pub fn limit_step(&self, new: Target, prev: Target) -> Target {
        if self.max_log2_step <= 0.0 {
            return new;
        }
        let k = f64::from(self.max_log2_step).exp2();
        let step = |n: u32, p: u32, none: u32, lo: u32| -> u32 {
            if n == none || p == none || p == 0 {
                return n;
            }
            let (n, p) = (f64::from(n), f64::from(p));
            (n.clamp(p / k, p * k).round() as u32).max(lo)
        };
        Target {
            cwnd_clamp_segments: step(
                new.cwnd_clamp_segments,
                prev.cwnd_clamp_segments,
                CWND_UNCLAMPED,
                self.min_cwnd_segments,
            ),
            max_pacing_bytes_per_sec: step(
                new.max_pacing_bytes_per_sec,
                prev.max_pacing_bytes_per_sec,
                PACING_UNLIMITED,
                self.min_pacing_bytes_per_sec,
            ),
        }
    }

    /// The target for raw action `raw` on a flow described by `ctx` (see the type docs).
    pub fn to_target(&self, raw: [f32; 2], ctx: &FlowContext) -> Target {
        let a0 = f64::from(if raw[0].is_nan() {
            0.0
        } else {
            raw[0].clamp(-1.0, 1.0)
        });
        let a1 = f64::from(if raw[1].is_nan() {
            0.0
        } else {
            raw[1].clamp(-1.0, 1.0)
        });
        let rate = ctx.max_rate_bytes_per_sec;
        if ctx.min_rtt_us == 0 || !(rate.is_finite() && rate > 0.0) {
            return Target {
                cwnd_clamp_segments: CWND_UNCLAMPED,
                max_pacing_bytes_per_sec: PACING_UNLIMITED,
            };
        }
        let mss = f64::from(ctx.mss_bytes.max(1));
        let min_rtt = f64::from(ctx.min_rtt_us);
        let exponent = match self.second_action {
            SecondAction::Pacing => f64::from(self.rtt_ref_exponent),
            SecondAction::RttExponent => f64::from(self.rtt_ref_exponent) * (a1 + 1.0) / 2.0,
        };
        let (exponent, a0, a1) = match (self.competition, ctx.mode) {
            (Some(c), Mode::Competitive) => match c.competitive_exponent {
                // The base controller meets the buffer filler alone.
                None => return Target::unlimited(),
                // The action cannot yield below the rule.
                Some(e) => (f64::from(e), a0.max(0.0), a1.max(0.0)),
            },
            _ => (exponent, a0, a1),
        };
        let a1 = match self.second_action {
            SecondAction::Pacing => a1,
            SecondAction::RttExponent => 0.0,
        };
        let ref_rtt = if exponent > 0.0 && ctx.srtt_us > ctx.min_rtt_us {
            min_rtt * (f64::from(ctx.srtt_us) / min_rtt).powf(exponent)
        } else {
            min_rtt
        };
        let bdp = rate * ref_rtt / 1e6 / mss;
        let cwnd = (f64::from(self.cwnd_gain) * bdp * (a0 * f64::from(self.cwnd_log2_span)).exp2())
            .round();
        let cwnd = match (self.competition, ctx.mode) {
            // A drain probe: below one BDP of the share the flow holds now.
            (Some(_), Mode::Probe { rate_bytes_per_sec }) => {
                (DRAIN_GAIN * rate_bytes_per_sec * min_rtt / 1e6 / mss).round()
            }
            _ => cwnd,
        };
        let cwnd = cwnd.clamp(
            f64::from(self.min_cwnd_segments),
            f64::from(self.max_cwnd_segments),
        ) as u32;
        let pacing =
            (f64::from(self.pacing_gain) * rate * (a1 * f64::from(self.pacing_log2_span)).exp2())
                .clamp(
                    f64::from(self.min_pacing_bytes_per_sec),
                    f64::from(PACING_UNLIMITED - 1),
                ) as u32;
        Target {
            cwnd_clamp_segments: cwnd,
            max_pacing_bytes_per_sec: pacing,
        }
    }
}

/// One linear layer as plain tensors: `y = x W^T + b`.
#[derive(Debug)]
pub struct Layer {
    /// `[out, in]`.
    pub weight: Tensor,
    /// `[out]`.
    pub bias: Tensor,
}

fn mlp(layers: &[Layer], x: &Tensor) -> Tensor {
    let mut h = x.shallow_clone();
    for (i, l) in layers.iter().enumerate() {
        h = h.linear(&l.weight, Some(&l.bias));
        if i + 1 < layers.len() {
            h = h.tanh();
        }
    }
    h
}

/// The deterministic policy: raw observation -> normalised (clipped) ->
/// actor MLP -> mean clamped to `[-1, 1]`. Holds detached float tensors.
#[derive(Debug)]
pub struct InferenceNet {
    /// Actor layers, input first.
    pub actor: Vec<Layer>,
    /// Observation mean, `[1, obs_len]`.
    pub obs_mean: Tensor,
    /// Observation std, `[1, obs_len]`.
    pub obs_std: Tensor,
    /// Clip of normalised observations.
    pub obs_clip: f64,
}

impl InferenceNet {
    /// Actions `[n, action_dim]` for raw observations `[n, obs_len]`.
    pub fn forward(&self, obs: &Tensor) -> Tensor {
        let x = ((obs - &self.obs_mean) / &self.obs_std).clamp(-self.obs_clip, self.obs_clip);
        mlp(&self.actor, &x).clamp(-1.0, 1.0)
    }
}

/// Trainable actor-critic (see the module docs).
#[derive(Debug)]
pub struct ActorCritic {
    vs: nn::VarStore,
    arch: Architecture,
    actor: Vec<Layer>,
    critic: Vec<Layer>,
    log_std: Tensor,
}

impl ActorCritic {
    /// A fresh network: weights uniform in `±sqrt(6 / (fan_in + fan_out))`
    /// (the output layers scaled down by 100 for the actor and 1 for the
    /// critic), biases zero, log-std `init_log_std`, all from `seed`.
    pub fn new(arch: &Architecture, init_log_std: f32, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut named = Vec::new();
        let shapes = arch.tensor_shapes(true);
        let n_actor = arch.hidden.len() + 1;
        for (name, shape) in &shapes {
            let numel: i64 = shape.iter().product();
            let t = if name == "log_std" {
                Tensor::full(
                    shape.as_slice(),
                    f64::from(init_log_std),
                    (Kind::Float, tch::Device::Cpu),
                )
            } else if name.ends_with(".bias") {
                Tensor::zeros(shape.as_slice(), (Kind::Float, tch::Device::Cpu))
            } else {
                let (fan_out, fan_in) = (shape[0] as f64, shape[1] as f64);
                let mut bound = (6.0 / (fan_in + fan_out)).sqrt();
                if name == &format!("actor.{}.weight", n_actor - 1) {
                    bound *= 0.01;
                }
                let data: Vec<f32> = (0..numel)
                    .map(|_| rng.gen_range(-bound..bound) as f32)
                    .collect();
                Tensor::from_slice(&data).reshape(shape.as_slice())
            };
            named.push((name.clone(), t));
        }
        Self::from_named(arch, named)
            .unwrap_or_else(|_| unreachable!("shapes built from the architecture"))
    }

    /// Builds the network from `(name, tensor)` pairs (actor, `log_std`,
    /// critic; see [`Architecture::tensor_shapes`]). Returns the first missing
    /// or misshapen name as `Err((name, expected shape, found shape))`.
    pub fn from_named(
        arch: &Architecture,
        named: Vec<(String, Tensor)>,
    ) -> Result<Self, (String, Vec<i64>, Vec<i64>)> {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let root = vs.root();
        let mut map: std::collections::HashMap<String, Tensor> = named.into_iter().collect();
        let mut vars = std::collections::HashMap::new();
        for (name, shape) in arch.tensor_shapes(true) {
            let t = map
                .remove(&name)
                .ok_or_else(|| (name.clone(), shape.clone(), vec![]))?;
            if t.size() != shape {
                return Err((name, shape, t.size()));
            }
            let v = root.var_copy(&name.replace('.', "_"), &t.to_kind(Kind::Float));
            vars.insert(name, v);
        }
        let take_layers = |prefix: &str, vars: &mut std::collections::HashMap<String, Tensor>| {
            (0..=arch.hidden.len())
                .map(|i| Layer {
                    weight: vars
                        .remove(&format!("{prefix}.{i}.weight"))
                        .unwrap_or_else(|| Tensor::zeros([1], (Kind::Float, tch::Device::Cpu))),
                    bias: vars
                        .remove(&format!("{prefix}.{i}.bias"))
                        .unwrap_or_else(|| Tensor::zeros([1], (Kind::Float, tch::Device::Cpu))),
                })
                .collect::<Vec<_>>()
        };
        let actor = take_layers("actor", &mut vars);
        let critic = take_layers("critic", &mut vars);
        let log_std = vars
            .remove("log_std")
            .unwrap_or_else(|| Tensor::zeros([2], (Kind::Float, tch::Device::Cpu)));
        Ok(Self {
            vs,
            arch: arch.clone(),
            actor,
            critic,
            log_std,
        })
    }

    /// The architecture.
    pub fn architecture(&self) -> &Architecture {
        &self.arch
    }

    /// The variable store (for the optimizer).
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// Actor mean `[n, action_dim]` (unclamped) for normalised observations.
    pub fn actor_mean(&self, obs_norm: &Tensor) -> Tensor {
        mlp(&self.actor, obs_norm)
    }

    /// Value `[n]` for normalised observations.
    pub fn value(&self, obs_norm: &Tensor) -> Tensor {
        mlp(&self.critic, obs_norm).squeeze_dim(-1)
    }

    /// The state-independent log-std `[action_dim]`.
    pub fn log_std(&self) -> &Tensor {
        &self.log_std
    }

    /// Log-density `[n]` of `actions` `[n, d]` under `N(mean, exp(log_std))`.
    pub fn log_prob(&self, mean: &Tensor, actions: &Tensor) -> Tensor {
        let std = self.log_std.exp();
        let z = (actions - mean) / &std;
        let d = self.arch.action_dim as f64;
        (z.square() * -0.5 - &self.log_std).sum_dim_intlist(-1, false, Kind::Float)
            - 0.5 * d * (2.0 * std::f64::consts::PI).ln()
    }

    /// Entropy of the Gaussian (a scalar; the same for every state).
    pub fn entropy(&self) -> Tensor {
        let d = self.arch.action_dim as f64;
        self.log_std.sum(Kind::Float) + 0.5 * d * (1.0 + (2.0 * std::f64::consts::PI).ln())
    }

    /// Every tensor by name, detached copies (actor, `log_std`, and the
    /// critic when `with_critic`).
    pub fn named_tensors(&self, with_critic: bool) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        let layers = |prefix: &str, ls: &[Layer], out: &mut Vec<(String, Tensor)>| {
            for (i, l) in ls.iter().enumerate() {
                out.push((format!("{prefix}.{i}.weight"), l.weight.detach().copy()));
                out.push((format!("{prefix}.{i}.bias"), l.bias.detach().copy()));
            }
        };
        layers("actor", &self.actor, &mut out);
        out.push(("log_std".to_string(), self.log_std.detach().copy()));
        if with_critic {
            layers("critic", &self.critic, &mut out);
        }
        out
    }

    /// The deterministic policy with `norm`, as detached tensors.
    pub fn inference(&self, norm: &ObsNormalizer) -> InferenceNet {
        let (obs_mean, obs_std) = norm.tensors();
        InferenceNet {
            actor: self
                .actor
                .iter()
                .map(|l| Layer {
                    weight: l.weight.detach().copy(),
                    bias: l.bias.detach().copy(),
                })
                .collect(),
            obs_mean,
            obs_std,
            obs_clip: f64::from(norm.clip),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flow of 40 ms min RTT at 1.25 MB/s with a 1000-byte MSS (a BDP of
    /// 50 segments) and the given srtt, in default mode.
    fn ctx_40ms(srtt_us: u32) -> FlowContext {
        FlowContext {
            min_rtt_us: 40_000,
            max_rate_bytes_per_sec: 1.25e6,
            mss_bytes: 1000,
            srtt_us,
            mode: Mode::Default,
        }
    }

    #[test]
    fn normalizer_matches_batch_statistics() {
        let mut n = ObsNormalizer::new(2);
        let data: Vec<f32> = (0..100).flat_map(|i| [i as f32, 5.0]).collect();
        n.update(&data[..100], 50);
        n.update(&data[100..], 50);
        assert!((n.mean[0] - 49.5).abs() < 1e-3, "{}", n.mean[0]);
        assert!((n.var[0] - 833.25).abs() < 0.5, "{}", n.var[0]);
        assert!((n.mean[1] - 5.0).abs() < 1e-3);
        assert!(n.var[1] < 1e-3);
        assert!(n.is_valid());
    }

    #[test]
    fn default_scaling_leaves_bbr_like_headroom_at_action_zero() {
        let s = ActionScaling::default();
        let ctx = ctx_40ms(0);
        // 2 BDPs (2 x 50 segments), 1.25 x the anchor.
        let t = s.to_target([0.0, 0.0], &ctx);
        assert_eq!(t.cwnd_clamp_segments, 100);
        assert_eq!(t.max_pacing_bytes_per_sec, 1_562_500);
        let t = s.to_target([1.0, -1.0], &ctx);
        assert_eq!(t.cwnd_clamp_segments, 400);
        assert_eq!(t.max_pacing_bytes_per_sec, 390_625);
        let t = s.to_target([-5.0, f32::NAN], &ctx);
        assert_eq!(t.cwnd_clamp_segments, 25);
        assert_eq!(t.max_pacing_bytes_per_sec, 1_562_500);
        // The step limit: at most half an octave from the limits in force.
        let prev = Target {
            cwnd_clamp_segments: 100,
            max_pacing_bytes_per_sec: 1_000_000,
        };
        let t = s.limit_step(
            Target {
                cwnd_clamp_segments: 400,
                max_pacing_bytes_per_sec: 100_000,
            },
            prev,
        );
        assert_eq!(t.cwnd_clamp_segments, 141);
        assert_eq!(t.max_pacing_bytes_per_sec, 707_107);
        let free = Target {
            cwnd_clamp_segments: CWND_UNCLAMPED,
            max_pacing_bytes_per_sec: PACING_UNLIMITED,
        };
        assert_eq!(
            s.limit_step(prev, free),
            prev,
            "a first limit applies at once"
        );
        // Out-of-range gains are invalid.
        assert!(!ActionScaling {
            pacing_gain: 0.0,
            ..s
        }
        .is_valid());
    }

    #[test]
    fn the_clamp_can_follow_the_srtt() {
        let ctx = ctx_40ms(160_000);
        let at = |e: f32| {
            ActionScaling {
                rtt_ref_exponent: e,
                ..ActionScaling::default()
            }
            .to_target([0.0, 0.0], &ctx)
            .cwnd_clamp_segments
        };
        // 2 BDPs over the min RTT (50 segments), over the srtt (4x), and
        // over their geometric mean (2x).
        assert_eq!(at(0.0), 100);
        assert_eq!(at(1.0), 400);
        assert_eq!(at(0.5), 200);
        // An srtt below the min RTT (or unknown) leaves the min RTT.
        let low = FlowContext { srtt_us: 0, ..ctx };
        let s = ActionScaling {
            rtt_ref_exponent: 1.0,
            ..ActionScaling::default()
        };
        assert_eq!(s.to_target([0.0, 0.0], &low).cwnd_clamp_segments, 100);
        assert!(!ActionScaling {
            rtt_ref_exponent: 1.5,
            ..s
        }
        .is_valid());
        // The second action as the exponent: -1 is the min RTT, 1 the srtt,
        // 0 their geometric mean; the pacing cap stays at its gain.
        let x = ActionScaling {
            second_action: SecondAction::RttExponent,
            ..s
        };
        assert_eq!(x.to_target([0.0, -1.0], &ctx).cwnd_clamp_segments, 100);
        assert_eq!(x.to_target([0.0, 0.0], &ctx).cwnd_clamp_segments, 200);
        let t = x.to_target([0.0, 1.0], &ctx);
        assert_eq!(t.cwnd_clamp_segments, 400);
        assert_eq!(t.max_pacing_bytes_per_sec, 1_562_500);
    }

    #[test]
    fn scaling_is_documented_mapping_and_bounded() {
        // The version-1 mapping: unit gains, spans of 4 octaves.
        let s = ActionScaling {
            cwnd_log2_span: 4.0,
            pacing_log2_span: 4.0,
            cwnd_gain: 1.0,
            pacing_gain: 1.0,
            ..ActionScaling::default()
        };
        // 1.25 MB/s * 40 ms / 1000 B = 50 segments of BDP.
        let ctx = ctx_40ms(0);
        let t = s.to_target([0.0, 0.0], &ctx);
        assert_eq!(t.cwnd_clamp_segments, 50);
        assert_eq!(t.max_pacing_bytes_per_sec, 1_250_000);
        let t = s.to_target([1.0, -1.0], &ctx);
        assert_eq!(t.cwnd_clamp_segments, 800);
        assert_eq!(t.max_pacing_bytes_per_sec, 78_125);
        let t = s.to_target([-0.5, 0.25], &ctx);
        assert_eq!(t.cwnd_clamp_segments, 13); // 50 / 4 = 12.5, rounded
        assert_eq!(t.max_pacing_bytes_per_sec, 2_500_000);
        let t = s.to_target([-5.0, f32::NAN], &ctx);
        assert_eq!(t.cwnd_clamp_segments, 4);
        assert_eq!(t.max_pacing_bytes_per_sec, 1_250_000);
        let t = s.to_target([0.0, 0.0], &FlowContext::default());
        assert_eq!(t.cwnd_clamp_segments, CWND_UNCLAMPED);
        assert_eq!(t.max_pacing_bytes_per_sec, PACING_UNLIMITED);
        let tiny = FlowContext {
            min_rtt_us: 100,
            max_rate_bytes_per_sec: 1000.0,
            mss_bytes: 1500,
            srtt_us: 0,
            mode: Mode::Default,
        };
        let t = s.to_target([-1.0, -1.0], &tiny);
        assert_eq!(t.cwnd_clamp_segments, s.min_cwnd_segments);
        assert_eq!(t.max_pacing_bytes_per_sec, MIN_PACING_BYTES_PER_SEC);
        assert!(s.is_valid());
    }

    #[test]
    fn network_is_seeded_and_inference_matches_training_mean() {
        tch::set_num_threads(1);
        let arch = Architecture::mlp(5, 8);
        let a = ActorCritic::new(&arch, -0.5, 7);
        let b = ActorCritic::new(&arch, -0.5, 7);
        for ((na, ta), (_, tb)) in a
            .named_tensors(true)
            .iter()
            .zip(b.named_tensors(true).iter())
        {
            assert!(ta.equal(tb), "{na} differs for one seed");
        }
        let norm = ObsNormalizer::new(5);
        let x = Tensor::from_slice(&[0.1f32, -0.2, 0.3, 0.0, 1.0]).reshape([1, 5]);
        let inf = a.inference(&norm).forward(&x);
        let (m, s) = norm.tensors();
        let train = a.actor_mean(&((&x - m) / s)).clamp(-1.0, 1.0);
        assert!(inf.allclose(&train, 1e-6, 1e-6, false));
        let lp = a.log_prob(&train, &train);
        // At the mean: -sum(log_std) - d/2 ln(2 pi).
        let expect = 1.0 - (2.0 * std::f64::consts::PI).ln();
        assert!((lp.double_value(&[0]) - expect).abs() < 1e-5);
    }

    #[test]
    fn the_competition_rule_drains_in_a_probe_and_follows_the_srtt_when_competitive() {
        let ctx = ctx_40ms(160_000);
        let rule = ActionScaling {
            competition: Some(CompetitionRule {
                competitive_exponent: Some(1.0),
            }),
            ..ActionScaling::default()
        };
        let unlimited = ActionScaling {
            competition: Some(CompetitionRule::default()),
            ..ActionScaling::default()
        };
        let plain = ActionScaling::default();
        // Default mode: exactly the mapping without the rule (2 BDPs of 50).
        let t = rule.to_target([0.0, 0.0], &ctx);
        assert_eq!(t, plain.to_target([0.0, 0.0], &ctx));
        assert_eq!(t.cwnd_clamp_segments, 100);
        // Competitive: over the srtt, 4x; the action still scales it.
        let comp = FlowContext {
            mode: Mode::Competitive,
            ..ctx
        };
        assert_eq!(rule.to_target([0.0, 0.0], &comp).cwnd_clamp_segments, 400);
        assert_eq!(rule.to_target([0.5, 0.0], &comp).cwnd_clamp_segments, 800);
        // ... but not below action 0.
        assert_eq!(rule.to_target([-0.5, 0.0], &comp).cwnd_clamp_segments, 400);
        // Without an exponent, competitive mode lifts every limit.
        assert_eq!(
            unlimited.to_target([-1.0, -1.0], &comp),
            Target::unlimited()
        );
        assert_eq!(unlimited.to_target([0.0, 0.0], &ctx), t);
        // The mode means nothing to a policy without the rule.
        assert_eq!(plain.to_target([0.0, 0.0], &comp), t);
        // A probe: half a BDP of the current rate (0.5 MB/s: 10 segments),
        // whatever the action, and at once.
        let probe = FlowContext {
            mode: Mode::Probe {
                rate_bytes_per_sec: 0.5e6,
            },
            ..ctx
        };
        let prev = Target {
            cwnd_clamp_segments: 100,
            max_pacing_bytes_per_sec: 1_562_500,
        };
        assert_eq!(
            rule.next_target([1.0, 0.0], &probe, prev)
                .cwnd_clamp_segments,
            10
        );
        // Without the rule the step limit holds: 100 / 2^0.5.
        assert_eq!(
            plain
                .next_target([-1.0, 0.0], &ctx, prev)
                .cwnd_clamp_segments,
            71
        );
        // Invalid exponents are refused.
        for e in [0.0, -1.0, 1.5, f32::NAN] {
            let bad = ActionScaling {
                competition: Some(CompetitionRule {
                    competitive_exponent: Some(e),
                }),
                ..ActionScaling::default()
            };
            assert!(!bad.is_valid(), "{e}");
        }
        assert!(rule.is_valid());
    }
}
