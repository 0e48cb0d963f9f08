//! The JSON half of the predictors: how they were fit and how well
//! (fidelity, input ranges), where their files live, and the binding to
//! one policy's weights and observation layout.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::target::DelayTarget;
use super::INPUTS;
use crate::explain::{ExplainError, Horizon, ACTIONS_LOG2, ACTION_NAMES, COMPONENTS};
use crate::policy::{sha256_hex, PolicyMetadata};

/// Value of [`ExplainMetadata::format`].
pub const FORMAT_NAME: &str = "plume-cc-explain";
/// Version of the layout this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
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
    /// The ranges over input rows `x` (`width` values each, the
    /// observation first). Rows
    /// without a min RTT or a rate yet (the feature is 0: no sample) do not
    /// count for it; with none at all the range is empty and every flow
    /// that has the scale is outside it.
    pub fn of_inputs(x: &[f32], width: usize) -> Self {
        let mut rtt = [f64::INFINITY, f64::NEG_INFINITY];
        let mut rate = [f64::INFINITY, f64::NEG_INFINITY];
        for row in x.chunks_exact(width) {
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
    /// The networks also read the flow's past ([`crate::explain::past`]); false in
    /// files written before the option, which did not.
    #[serde(default)]
    pub past: bool,
    /// Input standardisation (mean, std), [`super::input_len`] long.
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
        past: false,
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
