//! The explanation predictors: one small network per reward component,
//! `(observation, policy's raw action, log2 clamp multiplier)` in, that
//! component's discounted return (reward units) and its discount-weighted
//! mean (physical units) over the horizon out. Stored beside the policy as
//! `explain.safetensors` + `explain.json` (a policy folder) or
//! `NAME.explain.safetensors` + `NAME.explain.json` (a `NAME.json` policy),
//! and bound to it: the JSON records the policy's weights SHA-256 and a
//! hash of its observation layout, and loading against any other policy is
//! refused with both hashes named.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::{io_err, ExplainError, Horizon, ACTIONS_LOG2, ACTION_NAMES, COMPONENTS};
use crate::policy::format::{tensors_from_safetensors, tensors_to_safetensors};
use crate::policy::observation::OBSERVATION_LEN;
use crate::policy::{sha256_hex, LoadedPolicy, PolicyMetadata};

/// Value of [`ExplainMetadata::format`].
pub const FORMAT_NAME: &str = "plume-cc-explain";
/// Version of the layout this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// Inputs: the observation, the policy's two raw actions, the multiplier.
pub const INPUTS: usize = OBSERVATION_LEN + 3;
/// Outputs of every component's predictor: return (reward units), mean
/// (physical units).
pub const OUTPUTS: usize = 2;

/// Outputs of a component's network: [`OUTPUTS`], or with monotone heads a
/// base and two slopes of each.
pub fn outputs(monotone: bool) -> usize {
    if monotone {
        3 * OUTPUTS
    } else {
        OUTPUTS
    }
}

/// How a larger clamp moves each output with the monotone heads
/// ([`ExplainMetadata::monotone`]): throughput up (both units); the delay
/// and loss parts are penalties, so their reward-unit returns go down while
/// milliseconds and loss rates go up.
pub const DIRECTIONS: [[f32; 2]; 3] = [[1.0, 1.0], [-1.0, 1.0], [-1.0, 1.0]];

/// The directions of component `c`'s network outputs under `target`
/// ([`DIRECTIONS`] in the units the network predicts): a scaled delay
/// target counts queue, which a larger clamp makes longer, so both its
/// outputs rise with the clamp.
pub fn directions(c: usize, target: DelayTarget) -> [f32; 2] {
    if c == 1 && target != DelayTarget::Direct {
        [1.0, 1.0]
    } else {
        DIRECTIONS[c]
    }
}

/// What the delay component's network predicts.
///
/// The delay part of the reward is `-w * queueing delay / min RTT` per
/// interval (`w` the operating point's delay weight), so its return is
/// `-w` times the discounted sum of the queue *in min RTTs*, and its
/// physical mean is the min RTT times the discount-weighted mean of that
/// same ratio. `w` (0.02-2) and the min RTT (10-400 ms) are both in the
/// observation (`objective`, `min_rtt_log`), and a ReLU network on
/// standardised inputs fits a product of a scale spanning two decades and
/// a queue only roughly. [`DelayTarget::Scaled`] divides the known scales
/// out of the targets and multiplies them back into the predictions,
/// exactly ([`DelayTarget::encode`], [`DelayTarget::decode`]); the network
/// then predicts the queue in min RTTs, the unit of the observation's own
/// `srtt_excess`. Measured on the same samples (docs/TRAINING.md, "Why
/// delay is hard"), it gained 0.03-0.05 of R² in reward units and lost up
/// to 0.13 in ms: not the cause of the poor delay fit (the reward's clip
/// was, [`super::ComponentReturns::explained`]), so it stays opt-in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum DelayTarget {
    /// The return (reward units) and the mean (ms) as they are: the
    /// format of predictors written before the option existed.
    #[default]
    Direct,
    /// Both divided by their known scale: the return by `-w`, the mean by
    /// the observed min RTT.
    Scaled,
    /// As [`DelayTarget::Scaled`], then `ln(1 + x)`: the heavy tail of deep
    /// queues compressed.
    ScaledLog,
}

/// The min RTT a scaled delay target divides by when the observation has
/// none yet (a flow's first interval, before an RTT sample: the feature is
/// 0), ms. Any constant keeps the transform exact; this one is the lower
/// end of the fitted paths, so such rows' targets stay on the scale of the
/// others.
pub const UNKNOWN_MIN_RTT_MS: f64 = 10.0;

impl DelayTarget {
    /// The delay weight and the min RTT (ms) the observation of input row
    /// `x` (at least the global features) shows: the inverses of
    /// [`crate::policy::Objective::feature`] and of the `min_rtt_log`
    /// encoding ([`crate::policy::flow_context_from_observation`]).
    pub fn scales(x: &[f32]) -> (f64, f64) {
        use crate::policy::objective::{MAX_DELAY_WEIGHT, MIN_DELAY_WEIGHT};
        let f = f64::from(x.get(3).copied().unwrap_or(0.0)).clamp(0.0, 1.0);
        let (lo, hi) = (f64::from(MIN_DELAY_WEIGHT), f64::from(MAX_DELAY_WEIGHT));
        let w = lo * (hi / lo).powf(f);
        let rtt = crate::policy::flow_context_from_observation(x, 1).min_rtt_us as f64 / 1000.0;
        (w, if rtt > 0.0 { rtt } else { UNKNOWN_MIN_RTT_MS })
    }

    /// The network's targets for a delay return `reward` (reward units)
    /// and mean `ms` realised after input row `x`.
    pub fn encode(self, x: &[f32], reward: f64, ms: f64) -> (f64, f64) {
        let (w, rtt) = Self::scales(x);
        match self {
            Self::Direct => (reward, ms),
            Self::Scaled => (-reward / w, ms / rtt),
            Self::ScaledLog => ((-reward / w).max(0.0).ln_1p(), (ms / rtt).max(0.0).ln_1p()),
        }
    }

    /// The inverse of [`DelayTarget::encode`]: the return and the mean
    /// from the network's outputs `(t0, t1)` for input row `x`.
    pub fn decode(self, x: &[f32], t0: f64, t1: f64) -> (f64, f64) {
        let (w, rtt) = Self::scales(x);
        match self {
            Self::Direct => (t0, t1),
            Self::Scaled => (-w * t0, rtt * t1),
            Self::ScaledLog => (-w * t0.exp_m1(), rtt * t1.exp_m1()),
        }
    }
}

/// Network outputs of component `c`'s net on standardised inputs `z`
/// (rows x [`INPUTS`]) with raw log2 multipliers `log2m` (rows x 1), as
/// standardised (return, mean). Plain heads read the multiplier as an
/// input. Monotone heads do not: the net gives a base and two slopes
/// (softplus, so never negative) and the multiplier moves the base along
/// `dir` ([`directions`]), up and down the clamp separately.
pub(crate) fn head(
    net: &dyn Fn(&Tensor) -> Tensor,
    z: &Tensor,
    log2m: &Tensor,
    dir: [f32; 2],
    monotone: bool,
) -> Tensor {
    if !monotone {
        return net(z);
    }
    let rows = z.size()[0];
    let blind = Tensor::cat(
        &[
            z.narrow(1, 0, INPUTS as i64 - 1),
            Tensor::zeros([rows, 1], (Kind::Float, tch::Device::Cpu)),
        ],
        1,
    );
    let out = net(&blind);
    let base = out.narrow(1, 0, 2);
    let up = out.narrow(1, 2, 2).softplus();
    let down = out.narrow(1, 4, 2).softplus();
    let dir = Tensor::from_slice(&dir).view([1, 2]);
    base + (log2m.clamp_min(0.0) * up + log2m.clamp_max(0.0) * down) * dir
}

/// The held-out fidelity of a fit (see [`super::fit`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Fidelity {
    /// Held-out samples (decisions of every action plus on-policy steps).
    pub samples: usize,
    /// R^2 of each component's return, reward units ([`COMPONENTS`] order).
    pub r2_reward: [f64; 3],
    /// R^2 of each component's discount-weighted mean, physical units.
    pub r2_physical: [f64; 3],
    /// Held-out decisions whose alternatives were ranked.
    pub decisions: usize,
    /// Per component: pairs of alternatives whose realised returns differ
    /// by more than the tie tolerance, and the share of them ordered alike
    /// by the prediction.
    pub ranked_pairs: [usize; 3],
    /// See [`Fidelity::ranked_pairs`].
    pub pairwise_accuracy: [f64; 3],
    /// The pairwise accuracy of the rule "a larger clamp gives more
    /// throughput, more queueing and more loss" (what a predictor knowing
    /// only the direction of the effect gets).
    #[serde(default)]
    pub direction_rule_accuracy: [f64; 3],
    /// Held-out decisions with a null-contrast branch.
    #[serde(default)]
    pub null_decisions: usize,
    /// Per component: the 90th percentile of |null contrast - policy| over
    /// the held-out decisions (reward-unit return; see
    /// [`super::BRANCH_LOG2`]).
    #[serde(default)]
    pub chaos_floor: [f64; 3],
    /// Per component: pairs apart by more than the chaos floor, the share
    /// of them the prediction orders right, and the direction rule's share.
    #[serde(default)]
    pub pairs_beyond_floor: [usize; 3],
    /// See [`Fidelity::pairs_beyond_floor`].
    #[serde(default)]
    pub pairwise_accuracy_beyond_floor: [f64; 3],
    /// See [`Fidelity::pairs_beyond_floor`].
    #[serde(default)]
    pub direction_rule_beyond_floor: [f64; 3],
    /// Per component: decisions without a tie among their alternatives,
    /// and the share whose whole order the prediction got right.
    pub ranked_decisions: [usize; 3],
    /// See [`Fidelity::ranked_decisions`].
    pub order_accuracy: [f64; 3],
    /// Tie tolerance: realised returns closer than this (reward units) are
    /// not ranked.
    pub tie_tolerance: f64,
    /// Share of held-out steps on which the reward's clip bound.
    pub clip_share: f64,
}

/// The flows the predictors were fit on, by the two scales of a path the
/// observation carries: the min RTT and the rate anchor (the flow's max
/// delivery rate). The networks see both only as features; outside the
/// fitted range they extrapolate, and what they predict there is not
/// evidence of anything (on loopback, 5 us and 3 Gbit/s, the predictors fit
/// on 10-400 ms cellular paths predicted 23 Mbit/s). [`InputRanges::outside`]
/// says so per flow, and the daemon marks such flows.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputRanges {
    /// Lowest and highest min RTT of the training samples that had one, ms.
    pub min_rtt_ms: [f64; 2],
    /// Lowest and highest rate anchor of the training samples that had
    /// one, Mbit/s.
    pub max_rate_mbps: [f64; 2],
}

impl InputRanges {
    /// The ranges over input rows `x` ([`INPUTS`] values each). Rows
    /// without a min RTT or a rate yet (the feature is 0: no sample) do not
    /// count for it; with none at all the range is empty and every flow
    /// that has the scale is outside it.
    pub fn of_inputs(x: &[f32]) -> Self {
        let mut rtt = [f64::INFINITY, f64::NEG_INFINITY];
        let mut rate = [f64::INFINITY, f64::NEG_INFINITY];
        for row in x.chunks_exact(INPUTS) {
            let (r, m) = flow_scales(row);
            for (acc, v) in [(&mut rtt, r), (&mut rate, m)] {
                if let Some(v) = v {
                    acc[0] = acc[0].min(v);
                    acc[1] = acc[1].max(v);
                }
            }
        }
        Self {
            min_rtt_ms: rtt,
            max_rate_mbps: rate,
        }
    }

    /// Why a flow with observation `obs` lies outside the ranges (e.g.
    /// `min RTT 0.00500 ms outside the fitted 10.0-400 ms`), or None when
    /// it lies within them. A scale the flow has not measured yet is not
    /// held against it.
    pub fn outside(&self, obs: &[f32]) -> Option<String> {
        let (rtt, rate) = flow_scales(obs);
        let mut why = Vec::new();
        let out = |v: f64, r: [f64; 2]| !(r[0]..=r[1]).contains(&v);
        if let Some(v) = rtt.filter(|&v| out(v, self.min_rtt_ms)) {
            why.push(format!(
                "min RTT {} ms outside the fitted {}-{} ms",
                sig3(v),
                sig3(self.min_rtt_ms[0]),
                sig3(self.min_rtt_ms[1])
            ));
        }
        if let Some(v) = rate.filter(|&v| out(v, self.max_rate_mbps)) {
            why.push(format!(
                "rate {} Mbit/s outside the fitted {}-{} Mbit/s",
                sig3(v),
                sig3(self.max_rate_mbps[0]),
                sig3(self.max_rate_mbps[1])
            ));
        }
        (!why.is_empty()).then(|| why.join(", "))
    }
}

/// `v` with three significant digits (0.00500, 10.0, 400, 3120).
fn sig3(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let digits = if v.abs() >= 100.0 {
        0
    } else {
        (2 - v.abs().max(1e-9).log10().floor() as i32).clamp(0, 9) as usize
    };
    format!("{v:.digits$}")
}

/// The min RTT (ms) and rate anchor (Mbit/s) an observation shows, each
/// None before the flow has measured it (its feature is 0).
fn flow_scales(obs: &[f32]) -> (Option<f64>, Option<f64>) {
    let known = |i: usize| obs.get(i).is_some_and(|&v| v > 0.0);
    let ctx = crate::policy::flow_context_from_observation(obs, 1);
    (
        known(0).then_some(f64::from(ctx.min_rtt_us) / 1000.0),
        known(1).then_some(ctx.max_rate_bytes_per_sec * 8.0 / 1e6),
    )
}

/// How a fit was run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FitInfo {
    /// The command line.
    pub command: String,
    /// Seed of the episodes and the networks.
    pub seed: u64,
    /// Training decisions (episodes), each branched into every action.
    pub decisions: usize,
    /// Training samples.
    pub samples: usize,
    /// Epochs over them.
    pub epochs: usize,
    /// Wall time of the fit, seconds.
    pub seconds: f64,
}

/// The JSON half of the predictors (see module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExplainMetadata {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// [`FORMAT_VERSION`] when written.
    pub format_version: u32,
    /// The policy's `weights_sha256`.
    pub policy_weights_sha256: String,
    /// [`observation_hash`] of the policy's observation layout.
    pub observation_sha256: String,
    /// The policy's monitor interval, microseconds.
    pub monitor_interval_us: u64,
    /// Horizon and hold of the returns.
    pub horizon: Horizon,
    /// The actions compared (log2 clamp multipliers) and their names.
    pub actions_log2: Vec<f32>,
    /// See [`ExplainMetadata::actions_log2`].
    pub action_names: Vec<String>,
    /// The components, one network each.
    pub components: Vec<String>,
    /// Hidden layer widths.
    pub hidden: Vec<usize>,
    /// Monotone heads (see [`head`]): the predicted effect of a larger
    /// clamp always has the sign of [`DIRECTIONS`].
    #[serde(default)]
    pub monotone: bool,
    /// What the delay network predicts (absent in files written before
    /// the option: [`DelayTarget::Direct`], which they used).
    #[serde(default)]
    pub delay_target: DelayTarget,
    /// The delay component counts the reward's clip
    /// ([`super::ComponentReturns::explained`]); false in files written
    /// before the option, which did not.
    #[serde(default)]
    pub delay_counts_clip: bool,
    /// The flows the training samples came from ([`InputRanges`]); None in
    /// files written before they were recorded, whose flows are then not
    /// checked.
    #[serde(default)]
    pub ranges: Option<InputRanges>,
    /// Input standardisation (mean, std), [`INPUTS`] long.
    pub in_mean: Vec<f32>,
    /// See [`ExplainMetadata::in_mean`].
    pub in_std: Vec<f32>,
    /// Output standardisation per component (mean, std of both outputs).
    pub out_mean: Vec<[f32; 2]>,
    /// See [`ExplainMetadata::out_mean`].
    pub out_std: Vec<[f32; 2]>,
    /// The loss weight of the reward split (the delay weight is the
    /// episode's operating point, an input through the observation).
    pub loss_weight: f32,
    /// The held-out fidelity.
    pub fidelity: Fidelity,
    /// How the fit ran.
    pub fit: FitInfo,
    /// Hex SHA-256 of the weights file.
    pub weights_sha256: String,
}

/// A hash of the observation layout a policy observes (its version,
/// length and feature names), so that predictors fit on one layout are
/// refused on another even if the weights happened to agree.
pub fn observation_hash(meta: &PolicyMetadata) -> String {
    sha256_hex(&serde_json::to_vec(&meta.observation).unwrap_or_default())
}

/// Where the predictors of the policy at `policy` live: `explain.json` +
/// `explain.safetensors` in a policy folder, `NAME.explain.json` +
/// `NAME.explain.safetensors` beside a `NAME.json` policy; `None` for the
/// embedded `default` (it has no folder: give one explicitly).
pub fn paths_beside(policy: &Path) -> Option<(PathBuf, PathBuf)> {
    if policy.as_os_str() == "default" {
        return None;
    }
    if policy.is_dir() {
        return Some((
            policy.join("explain.json"),
            policy.join("explain.safetensors"),
        ));
    }
    let stem = policy.file_stem()?.to_string_lossy().to_string();
    let dir = policy.parent().unwrap_or(Path::new(""));
    Some((
        dir.join(format!("{stem}.explain.json")),
        dir.join(format!("{stem}.explain.safetensors")),
    ))
}

/// The predictors in folder `dir` (`explain.json` + `explain.safetensors`).
pub fn paths_in(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("explain.json"), dir.join("explain.safetensors"))
}

/// The predictor files of `policy`: in `dir` when given, else beside the
/// policy ([`paths_beside`]); the embedded default has no folder, so it
/// needs `dir` ([`ExplainError::NoFolder`]).
pub fn predictor_paths(
    policy: &Path,
    dir: Option<&Path>,
) -> Result<(PathBuf, PathBuf), ExplainError> {
    match dir {
        Some(d) => Ok(paths_in(d)),
        None => paths_beside(policy).ok_or(ExplainError::NoFolder),
    }
}

/// Loads the predictors of `policy` (read from `policy_path`), from `dir`
/// or beside the policy, checked against it.
pub fn load_predictors(
    policy: &LoadedPolicy,
    policy_path: &Path,
    dir: Option<&Path>,
) -> Result<Predictors, ExplainError> {
    let (json, weights) = predictor_paths(policy_path, dir)?;
    Predictors::load(&json, &weights, policy)
}

/// One component's network as plain tensors.
#[derive(Debug)]
struct Net {
    layers: Vec<(Tensor, Tensor)>,
}

impl Net {
    fn forward(&self, x: &Tensor) -> Tensor {
        let mut h = x.shallow_clone();
        let last = self.layers.len() - 1;
        for (i, (w, b)) in self.layers.iter().enumerate() {
            h = h.matmul(&w.tr()) + b;
            if i < last {
                h = h.relu();
            }
        }
        h
    }
}

/// One prediction: per component, the return in reward units and the
/// discount-weighted mean in physical units (Mbit/s, ms, loss rate).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Predictions {
    /// [`COMPONENTS`] order.
    pub reward_units: [f64; 3],
    /// [`COMPONENTS`] order.
    pub physical: [f64; 3],
}

/// Loaded, checked predictors (module docs).
#[derive(Debug)]
pub struct Predictors {
    meta: ExplainMetadata,
    nets: Vec<Net>,
    in_mean: Tensor,
    in_std: Tensor,
    source: PathBuf,
}

/// The tensor names of component `c`'s network with `hidden` layers.
fn tensor_names(c: &str, layers: usize) -> Vec<(String, String)> {
    (0..layers)
        .map(|i| (format!("{c}.{i}.weight"), format!("{c}.{i}.bias")))
        .collect()
}

impl Predictors {
    /// Builds predictors from metadata and named tensors (checked: every
    /// tensor present, shaped as the metadata says, finite).
    pub fn from_parts(
        meta: ExplainMetadata,
        named: Vec<(String, Tensor)>,
        source: &Path,
    ) -> Result<Self, ExplainError> {
        let invalid = |what: String| ExplainError::Invalid {
            path: source.to_path_buf(),
            what,
        };
        if meta.format != FORMAT_NAME || meta.format_version != FORMAT_VERSION {
            return Err(invalid(format!(
                "format {} version {}, expected {FORMAT_NAME} version {FORMAT_VERSION}",
                meta.format, meta.format_version
            )));
        }
        if meta.components != COMPONENTS
            || meta.in_mean.len() != INPUTS
            || meta.in_std.len() != INPUTS
            || meta.out_mean.len() != COMPONENTS.len()
            || meta.out_std.len() != COMPONENTS.len()
            || meta.actions_log2 != ACTIONS_LOG2
        {
            return Err(invalid(format!(
                "expected components {COMPONENTS:?}, actions {ACTIONS_LOG2:?} and {INPUTS} inputs"
            )));
        }
        let mut map: HashMap<String, Tensor> = named.into_iter().collect();
        let mut widths = vec![INPUTS as i64];
        widths.extend(meta.hidden.iter().map(|&h| h as i64));
        widths.push(outputs(meta.monotone) as i64);
        let mut nets = Vec::new();
        for c in COMPONENTS {
            let mut layers = Vec::new();
            for (i, (wn, bn)) in tensor_names(c, widths.len() - 1).into_iter().enumerate() {
                let w = map
                    .remove(&wn)
                    .ok_or_else(|| invalid(format!("tensor {wn} is missing")))?;
                let b = map
                    .remove(&bn)
                    .ok_or_else(|| invalid(format!("tensor {bn} is missing")))?;
                if w.size() != [widths[i + 1], widths[i]] || b.size() != [widths[i + 1]] {
                    return Err(invalid(format!(
                        "tensor {wn} is {:?}, expected [{}, {}]",
                        w.size(),
                        widths[i + 1],
                        widths[i]
                    )));
                }
                for (n, t) in [(&wn, &w), (&bn, &b)] {
                    if !bool::try_from(t.isfinite().all()).unwrap_or(false) {
                        return Err(invalid(format!("tensor {n} holds non-finite values")));
                    }
                }
                layers.push((w, b));
            }
            nets.push(Net { layers });
        }
        let in_mean = Tensor::from_slice(&meta.in_mean).view([1, INPUTS as i64]);
        let in_std = Tensor::from_slice(&meta.in_std)
            .clamp_min(1e-6)
            .view([1, INPUTS as i64]);
        Ok(Self {
            meta,
            nets,
            in_mean,
            in_std,
            source: source.to_path_buf(),
        })
    }

    /// Loads the predictors whose metadata is `json` (weights at
    /// `weights`) and checks them against `policy`.
    pub fn load(json: &Path, weights: &Path, policy: &LoadedPolicy) -> Result<Self, ExplainError> {
        if !json.exists() {
            return Err(ExplainError::Missing {
                path: json.to_path_buf(),
            });
        }
        let text = std::fs::read(json).map_err(io_err(json))?;
        let meta: ExplainMetadata =
            serde_json::from_slice(&text).map_err(|e| ExplainError::Invalid {
                path: json.to_path_buf(),
                what: format!("invalid explanation metadata: {e}"),
            })?;
        check_policy(&meta, json, policy.metadata())?;
        let bytes = std::fs::read(weights).map_err(io_err(weights))?;
        let digest = sha256_hex(&bytes);
        if digest != meta.weights_sha256 {
            return Err(ExplainError::Invalid {
                path: weights.to_path_buf(),
                what: format!(
                    "weights SHA-256 is {digest}, but {} says {}",
                    json.display(),
                    meta.weights_sha256
                ),
            });
        }
        let named = tensors_from_safetensors(&bytes, weights)?;
        Self::from_parts(meta, named, json)
    }

    /// Writes the predictors to `json` + `weights` (folders created).
    pub fn save(&mut self, json: &Path, weights: &Path) -> Result<(), ExplainError> {
        let mut named = Vec::new();
        for (c, net) in COMPONENTS.iter().zip(&self.nets) {
            for ((wn, bn), (w, b)) in tensor_names(c, net.layers.len())
                .into_iter()
                .zip(&net.layers)
            {
                named.push((wn, w.shallow_clone()));
                named.push((bn, b.shallow_clone()));
            }
        }
        let bytes = tensors_to_safetensors(&named, weights)?;
        self.meta.weights_sha256 = sha256_hex(&bytes);
        for p in [json, weights] {
            if let Some(d) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(d).map_err(io_err(d))?;
            }
        }
        std::fs::write(weights, &bytes).map_err(io_err(weights))?;
        let text = serde_json::to_string_pretty(&self.meta).map_err(|e| ExplainError::Invalid {
            path: json.to_path_buf(),
            what: e.to_string(),
        })?;
        std::fs::write(json, text + "\n").map_err(io_err(json))?;
        self.source = json.to_path_buf();
        Ok(())
    }

    /// The metadata.
    pub fn metadata(&self) -> &ExplainMetadata {
        &self.meta
    }

    /// Mutable metadata (the fit fills in its fidelity before saving).
    pub fn metadata_mut(&mut self) -> &mut ExplainMetadata {
        &mut self.meta
    }

    /// Where they were loaded from or saved to.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Predictions for `rows` inputs laid out row-major in `x` (each
    /// [`INPUTS`] long: observation, raw action, log2 multiplier), one
    /// batched forward per component.
    pub fn predict_inputs(&self, x: &[f32], rows: usize) -> Result<Vec<Predictions>, ExplainError> {
        if x.len() != rows * INPUTS {
            return Err(ExplainError::Range {
                field: "explanation inputs",
                allowed: "rows x (observation length + 3) values",
                found: format!("{} values for {rows} rows", x.len()),
            });
        }
        let mut out = vec![Predictions::default(); rows];
        if rows == 0 {
            return Ok(out);
        }
        let t = Tensor::from_slice(x).view([rows as i64, INPUTS as i64]);
        let log2m = t.narrow(1, INPUTS as i64 - 1, 1);
        let z = ((t - &self.in_mean) / &self.in_std).clamp(-10.0, 10.0);
        for (c, net) in self.nets.iter().enumerate() {
            let dir = directions(c, self.meta.delay_target);
            let y = tch::no_grad(|| head(&|z| net.forward(z), &z, &log2m, dir, self.meta.monotone))
                .to_kind(Kind::Float);
            let v = Vec::<f32>::try_from(y.flatten(0, -1))?;
            let (m, s) = (self.meta.out_mean[c], self.meta.out_std[c]);
            for (r, p) in out.iter_mut().enumerate() {
                let t0 = f64::from(v[r * 2] * s[0] + m[0]);
                let t1 = f64::from(v[r * 2 + 1] * s[1] + m[1]);
                (p.reward_units[c], p.physical[c]) = if c == 1 {
                    self.meta
                        .delay_target
                        .decode(&x[r * INPUTS..(r + 1) * INPUTS], t0, t1)
                } else {
                    (t0, t1)
                };
            }
        }
        // Physical means cannot be negative.
        for p in &mut out {
            for v in &mut p.physical {
                *v = v.max(0.0);
            }
        }
        Ok(out)
    }

    /// For each of `n` flows (observations row-major in `obs`, the
    /// policy's raw actions in `raw`), the predictions under every action
    /// of [`ACTIONS_LOG2`], in one batch of `n x actions` rows.
    pub fn predict_actions(
        &self,
        obs: &[f32],
        raw: &[[f32; 2]],
    ) -> Result<Vec<[Predictions; 3]>, ExplainError> {
        let n = raw.len();
        if obs.len() != n * OBSERVATION_LEN {
            return Err(ExplainError::Range {
                field: "observations",
                allowed: "one observation per raw action",
                found: format!("{} values for {n} actions", obs.len()),
            });
        }
        let mut x = Vec::with_capacity(n * 3 * INPUTS);
        for (o, a) in obs.chunks_exact(OBSERVATION_LEN).zip(raw) {
            for m in ACTIONS_LOG2 {
                x.extend_from_slice(o);
                x.extend_from_slice(&[a[0], a[1], m]);
            }
        }
        let p = self.predict_inputs(&x, n * 3)?;
        Ok(p.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect())
    }
}

/// Refuses predictors fit for another policy (module docs).
pub fn check_policy(
    meta: &ExplainMetadata,
    json: &Path,
    policy: &PolicyMetadata,
) -> Result<(), ExplainError> {
    let obs = observation_hash(policy);
    if meta.observation_sha256 != obs {
        return Err(ExplainError::Mismatch {
            path: json.to_path_buf(),
            what: "observation layout hash",
            predictors: meta.observation_sha256.clone(),
            policy: obs,
        });
    }
    if meta.policy_weights_sha256 != policy.weights_sha256 {
        return Err(ExplainError::Mismatch {
            path: json.to_path_buf(),
            what: "weights SHA-256",
            predictors: meta.policy_weights_sha256.clone(),
            policy: policy.weights_sha256.clone(),
        });
    }
    Ok(())
}

/// Metadata for predictors of `policy` before a fit fills in the rest.
pub fn new_metadata(
    policy: &PolicyMetadata,
    horizon: Horizon,
    hidden: Vec<usize>,
) -> ExplainMetadata {
    ExplainMetadata {
        format: FORMAT_NAME.into(),
        format_version: FORMAT_VERSION,
        policy_weights_sha256: policy.weights_sha256.clone(),
        observation_sha256: observation_hash(policy),
        monitor_interval_us: policy.monitor_interval_us,
        horizon,
        actions_log2: ACTIONS_LOG2.to_vec(),
        action_names: ACTION_NAMES.iter().map(|s| s.to_string()).collect(),
        components: COMPONENTS.iter().map(|s| s.to_string()).collect(),
        hidden,
        monotone: false,
        delay_target: DelayTarget::Direct,
        delay_counts_clip: false,
        ranges: None,
        in_mean: vec![0.0; INPUTS],
        in_std: vec![1.0; INPUTS],
        out_mean: vec![[0.0; 2]; 3],
        out_std: vec![[1.0; 2]; 3],
        loss_weight: crate::rl::env::RewardSpec::default().loss_weight,
        fidelity: Fidelity::default(),
        fit: FitInfo::default(),
        weights_sha256: String::new(),
    }
}

/// Predictors of `policy` with random weights (tests).
#[cfg(test)]
pub(crate) fn random_predictors(policy: &PolicyMetadata, seed: i64) -> Predictors {
    random_predictors_with(policy, seed, false)
}

/// [`random_predictors`], with monotone heads or not.
#[cfg(test)]
pub(crate) fn random_predictors_with(
    policy: &PolicyMetadata,
    seed: i64,
    monotone: bool,
) -> Predictors {
    let _rng = super::TORCH_RNG
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    tch::manual_seed(seed);
    let hidden = vec![8, 8];
    let mut meta = new_metadata(policy, Horizon::default(), hidden.clone());
    meta.monotone = monotone;
    meta.out_mean = vec![[1.0, 5.0], [-0.5, 30.0], [-0.01, 0.001]];
    meta.out_std = vec![[2.0, 3.0], [0.5, 20.0], [0.01, 0.001]];
    let mut widths = vec![INPUTS as i64];
    widths.extend(hidden.iter().map(|&h| h as i64));
    widths.push(outputs(monotone) as i64);
    let mut named = Vec::new();
    for c in COMPONENTS {
        for (i, (wn, bn)) in tensor_names(c, widths.len() - 1).into_iter().enumerate() {
            named.push((
                wn,
                Tensor::randn([widths[i + 1], widths[i]], (Kind::Float, tch::Device::Cpu)) * 0.3,
            ));
            named.push((
                bn,
                Tensor::randn([widths[i + 1]], (Kind::Float, tch::Device::Cpu)) * 0.1,
            ));
        }
    }
    Predictors::from_parts(meta, named, Path::new("(test)")).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::default_policy;

    fn inputs(rows: usize) -> Vec<f32> {
        (0..rows * INPUTS)
            .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
            .collect()
    }

    #[test]
    fn save_and_load_round_trip_bit_for_bit_and_flows_batch_by_action() {
        let policy = default_policy().unwrap();
        let mut p = random_predictors(policy.metadata(), 3);
        let before = p.predict_inputs(&inputs(5), 5).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (json, weights) = paths_in(dir.path());
        p.save(&json, &weights).unwrap();
        let q = Predictors::load(&json, &weights, &policy).unwrap();
        assert_eq!(q.metadata(), p.metadata());
        assert_eq!(q.predict_inputs(&inputs(5), 5).unwrap(), before);
        // Per flow and action, in one batch: row (flow, action) of the same inputs.
        let obs: Vec<f32> = inputs(2)
            .chunks_exact(INPUTS)
            .flat_map(|r| r[..OBSERVATION_LEN].to_vec())
            .collect();
        let per_flow = q.predict_actions(&obs, &[[0.1, -0.2], [0.5, 0.5]]).unwrap();
        assert_eq!(per_flow.len(), 2);
        assert_ne!(per_flow[0][1], per_flow[0][2], "the actions differ");
        let mut one = obs[..OBSERVATION_LEN].to_vec();
        one.extend_from_slice(&[0.1, -0.2, ACTIONS_LOG2[2]]);
        // (a batch of one rounds differently in the last bits)
        let single = q.predict_inputs(&one, 1).unwrap()[0];
        for c in 0..3 {
            assert!((single.reward_units[c] - per_flow[0][2].reward_units[c]).abs() < 1e-5);
            assert!((single.physical[c] - per_flow[0][2].physical[c]).abs() < 1e-4);
        }
    }

    #[test]
    fn predictors_of_another_policy_are_refused_naming_both_hashes() {
        let policy = default_policy().unwrap();
        let mut p = random_predictors(policy.metadata(), 4);
        let dir = tempfile::tempdir().unwrap();
        let (json, weights) = paths_in(dir.path());
        p.metadata_mut().policy_weights_sha256 = "f00d".repeat(16);
        p.save(&json, &weights).unwrap();
        let e = Predictors::load(&json, &weights, &policy)
            .unwrap_err()
            .to_string();
        assert!(e.contains(&"f00d".repeat(16)), "{e}");
        assert!(e.contains(&policy.metadata().weights_sha256), "{e}");
        assert!(e.contains("weights SHA-256"), "{e}");
        // Another observation layout (a policy of observation version 2).
        let mut other = policy.metadata().clone();
        other.observation.version = 2;
        let mut p = random_predictors(&other, 4);
        p.save(&json, &weights).unwrap();
        let e = Predictors::load(&json, &weights, &policy)
            .unwrap_err()
            .to_string();
        assert!(e.contains("observation layout hash"), "{e}");
        assert!(e.contains(&observation_hash(&other)), "{e}");
        assert!(e.contains(&observation_hash(policy.metadata())), "{e}");
        // Weights that are not the ones the JSON promises.
        let mut p = random_predictors(policy.metadata(), 5);
        p.save(&json, &weights).unwrap();
        let mut q = random_predictors(policy.metadata(), 6);
        let other_dir = tempfile::tempdir().unwrap();
        let (j2, w2) = paths_in(other_dir.path());
        q.save(&j2, &w2).unwrap();
        std::fs::copy(&w2, &weights).unwrap();
        let e = Predictors::load(&json, &weights, &policy)
            .unwrap_err()
            .to_string();
        assert!(e.contains("weights SHA-256 is"), "{e}");
        // None at all.
        let e = Predictors::load(&dir.path().join("nope.json"), &weights, &policy)
            .unwrap_err()
            .to_string();
        assert!(e.contains("explain fit"), "{e}");
    }

    #[test]
    fn monotone_heads_order_the_actions_as_the_clamp_and_round_trip() {
        let policy = default_policy().unwrap();
        let mut p = random_predictors_with(policy.metadata(), 11, true);
        let obs: Vec<f32> = inputs(6)
            .chunks_exact(INPUTS)
            .flat_map(|r| r[..OBSERVATION_LEN].to_vec())
            .collect();
        let raw = [[0.3, -0.1]; 6];
        let per_flow = p.predict_actions(&obs, &raw).unwrap();
        for f in &per_flow {
            let (base, half, double) = (f[0], f[1], f[2]);
            for (c, dir) in DIRECTIONS.iter().enumerate() {
                let d = f64::from(dir[0]);
                assert!(
                    d * (double.reward_units[c] - base.reward_units[c]) >= 0.0,
                    "{f:?}"
                );
                assert!(
                    d * (base.reward_units[c] - half.reward_units[c]) >= 0.0,
                    "{f:?}"
                );
            }
            assert!(double.physical[1] >= base.physical[1] && base.physical[1] >= half.physical[1]);
        }
        let dir = tempfile::tempdir().unwrap();
        let (json, weights) = paths_in(dir.path());
        p.save(&json, &weights).unwrap();
        let q = Predictors::load(&json, &weights, &policy).unwrap();
        assert!(q.metadata().monotone);
        assert_eq!(q.predict_actions(&obs, &raw).unwrap(), per_flow);
    }

    /// An observation whose flow has min RTT `ms` and rate anchor `mbps`
    /// (0: not measured yet), encoded as the observation builder does.
    fn obs_with(ms: f64, mbps: f64) -> Vec<f32> {
        let mut o = vec![0.0f32; INPUTS];
        o[0] = ((1.0 + ms).ln() / 1001f64.ln()) as f32;
        o[1] = ((1.0 + mbps).ln() / 10001f64.ln()) as f32;
        o
    }

    #[test]
    fn flows_outside_the_fitted_ranges_are_named_with_the_range() {
        let rows: Vec<f32> = [(10.0, 1.0), (400.0, 50.0), (40.0, 12.0), (0.0, 0.0)]
            .iter()
            .flat_map(|&(ms, mbps)| obs_with(ms, mbps))
            .collect();
        let r = InputRanges::of_inputs(&rows);
        // The unmeasured row (a flow's first interval) does not widen the range to 0.
        assert!((r.min_rtt_ms[0] - 10.0).abs() < 0.01, "{r:?}");
        assert!((r.min_rtt_ms[1] - 400.0).abs() < 0.5, "{r:?}");
        assert!((r.max_rate_mbps[0] - 1.0).abs() < 0.01, "{r:?}");
        assert!((r.max_rate_mbps[1] - 50.0).abs() < 0.1, "{r:?}");
        assert_eq!(r.outside(&obs_with(40.0, 10.0)), None);
        assert_eq!(r.outside(&obs_with(0.0, 0.0)), None, "not measured yet");
        // The loopback flow of docs/TRAINING.md: 5 us, 3 Gbit/s.
        let why = r.outside(&obs_with(0.005, 3000.0)).unwrap();
        assert!(
            why.starts_with("min RTT 0.00500 ms outside the fitted 10.0-"),
            "{why}"
        );
        assert!(
            why.contains(", rate 3000 Mbit/s outside the fitted 1.00-"),
            "{why}"
        );
        let why = r.outside(&obs_with(600.0, 10.0)).unwrap();
        assert!(
            why.starts_with("min RTT 600 ms") && !why.contains("rate"),
            "{why}"
        );
    }

    #[test]
    fn the_delay_targets_decode_what_they_encode() {
        let x = obs_with(40.0, 10.0);
        let (w, rtt) = DelayTarget::scales(&x);
        // The default objective's feature is 0 here: the lowest weight.
        assert!((w - 0.02).abs() < 1e-6, "{w}");
        assert!((rtt - 40.0).abs() < 0.01, "{rtt}");
        let mut x2 = x.clone();
        x2[3] = crate::policy::Objective::new(1.0).unwrap().feature();
        assert!((DelayTarget::scales(&x2).0 - 1.0).abs() < 1e-5);
        for target in [
            DelayTarget::Direct,
            DelayTarget::Scaled,
            DelayTarget::ScaledLog,
        ] {
            for (reward, ms) in [(-3.0, 35.0), (0.0, 0.0), (-40.0, 900.0)] {
                let (t0, t1) = target.encode(&x2, reward, ms);
                let (r, m) = target.decode(&x2, t0, t1);
                assert!(
                    (r - reward).abs() < 1e-9 * (1.0 + reward.abs()),
                    "{target:?}"
                );
                assert!((m - ms).abs() < 1e-9 * (1.0 + ms), "{target:?}");
            }
        }
        // Scaled: the queue in min RTTs (-reward / w, ms / min RTT).
        let (t0, t1) = DelayTarget::Scaled.encode(&x2, -3.0, 80.0);
        assert!(
            (t0 - 3.0).abs() < 1e-4 && (t1 - 2.0).abs() < 1e-3,
            "{t0} {t1}"
        );
        // No min RTT yet: the documented stand-in, still invertible.
        let (_, rtt) = DelayTarget::scales(&obs_with(0.0, 0.0));
        assert_eq!(rtt, UNKNOWN_MIN_RTT_MS);
    }

    #[test]
    fn predictors_written_before_delay_targets_and_ranges_still_load() {
        let policy = default_policy().unwrap();
        let mut p = random_predictors(policy.metadata(), 12);
        let dir = tempfile::tempdir().unwrap();
        let (json, weights) = paths_in(dir.path());
        p.save(&json, &weights).unwrap();
        let before = p.predict_inputs(&inputs(3), 3).unwrap();
        // The JSON as the previous version wrote it: neither key.
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        let o = v.as_object_mut().unwrap();
        assert!(o.remove("delay_target").is_some() && o.remove("ranges").is_some());
        assert!(o.remove("delay_counts_clip").is_some());
        std::fs::write(&json, serde_json::to_vec(&v).unwrap()).unwrap();
        let q = Predictors::load(&json, &weights, &policy).unwrap();
        assert_eq!(q.metadata().delay_target, DelayTarget::Direct);
        assert_eq!(q.metadata().ranges, None);
        assert!(!q.metadata().delay_counts_clip);
        assert_eq!(q.predict_inputs(&inputs(3), 3).unwrap(), before);
        // An unknown delay target (a newer version's) is refused by name.
        let mut v = v.clone();
        v["delay_target"] = "cubed".into();
        std::fs::write(&json, serde_json::to_vec(&v).unwrap()).unwrap();
        let e = Predictors::load(&json, &weights, &policy)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("invalid explanation metadata") && e.contains("cubed"),
            "{e}"
        );
    }

    #[test]
    fn scaled_monotone_heads_still_order_the_actions_as_the_clamp() {
        let policy = default_policy().unwrap();
        let mut p = random_predictors_with(policy.metadata(), 13, true);
        p.metadata_mut().delay_target = DelayTarget::Scaled;
        let obs: Vec<f32> = (0..4)
            .flat_map(|i| obs_with(20.0 + 50.0 * f64::from(i), 5.0)[..OBSERVATION_LEN].to_vec())
            .collect();
        for f in p.predict_actions(&obs, &[[0.3, -0.1]; 4]).unwrap() {
            let (base, half, double) = (f[0], f[1], f[2]);
            // More queue (a more negative delay return) for a larger clamp.
            assert!(double.reward_units[1] <= base.reward_units[1], "{f:?}");
            assert!(base.reward_units[1] <= half.reward_units[1], "{f:?}");
            assert!(double.physical[1] >= base.physical[1], "{f:?}");
        }
    }

    #[test]
    fn predictors_live_beside_their_policy() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            paths_beside(dir.path()).unwrap(),
            (
                dir.path().join("explain.json"),
                dir.path().join("explain.safetensors")
            )
        );
        assert_eq!(
            paths_beside(Path::new("/p/mine.json")).unwrap(),
            (
                PathBuf::from("/p/mine.explain.json"),
                PathBuf::from("/p/mine.explain.safetensors")
            )
        );
        assert_eq!(paths_beside(Path::new("default")), None);
    }
}
