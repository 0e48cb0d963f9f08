//! The explanation predictors: one small network per reward component,
//! `(observation, policy's raw action, log2 clamp multiplier)` in, that
//! component's discounted return (reward units) and its discount-weighted
//! mean (physical units) over the horizon out. Stored beside the policy as
//! `explain.safetensors` + `explain.json` (a policy folder) or
//! `NAME.explain.safetensors` + `NAME.explain.json` (a `NAME.json` policy),
//! and bound to it: the JSON records the policy's weights SHA-256 and a
//! hash of its observation layout, and loading against any other policy is
//! refused with both hashes named.

//!
//! In three parts: `target.rs` (what a network reads and predicts: the
//! inputs, the outputs, the delay target's transform and the monotone
//! heads), `metadata.rs` (the JSON half, its fidelity and input ranges, the
//! files' places and the binding to the policy) and, here, the networks
//! themselves (load, save, predict).

mod metadata;
mod target;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

pub use metadata::{
    check_policy, new_metadata, observation_hash, paths_beside, paths_in, predictor_paths,
    ExplainMetadata, Fidelity, FitInfo, InputRanges, FORMAT_NAME, FORMAT_VERSION,
};
pub(crate) use target::head;
pub use target::{
    directions, input_len, outputs, DelayTarget, DIRECTIONS, INPUTS, OUTPUTS, UNKNOWN_MIN_RTT_MS,
};

use super::past::PAST_LEN;
use super::{io_err, ExplainError, ACTIONS_LOG2, COMPONENTS};
use crate::policy::format::{tensors_from_safetensors, tensors_to_safetensors};
use crate::policy::observation::OBSERVATION_LEN;
use crate::policy::{sha256_hex, LoadedPolicy};
#[cfg(test)]
use {super::Horizon, crate::policy::PolicyMetadata};

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
    /// [`input_len`] of the metadata.
    width: usize,
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
        let width = input_len(meta.past);
        if meta.components != COMPONENTS
            || meta.in_mean.len() != width
            || meta.in_std.len() != width
            || meta.out_mean.len() != COMPONENTS.len()
            || meta.out_std.len() != COMPONENTS.len()
            || meta.actions_log2 != ACTIONS_LOG2
        {
            return Err(invalid(format!(
                "expected components {COMPONENTS:?}, actions {ACTIONS_LOG2:?} and {width} inputs"
            )));
        }
        let mut map: HashMap<String, Tensor> = named.into_iter().collect();
        let mut widths = vec![width as i64];
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
        let in_mean = Tensor::from_slice(&meta.in_mean).view([1, width as i64]);
        let in_std = Tensor::from_slice(&meta.in_std)
            .clamp_min(1e-6)
            .view([1, width as i64]);
        Ok(Self {
            meta,
            width,
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
    /// [`input_len`] long: observation, the past's features if the
    /// predictors read them, raw action, log2 multiplier), one batched
    /// forward per component.
    pub fn predict_inputs(&self, x: &[f32], rows: usize) -> Result<Vec<Predictions>, ExplainError> {
        let width = self.width;
        if x.len() != rows * width {
            return Err(ExplainError::Range {
                field: "explanation inputs",
                allowed: "rows x (observation length + past features + 3) values",
                found: format!("{} values for {rows} rows of {width}", x.len()),
            });
        }
        let mut out = vec![Predictions::default(); rows];
        if rows == 0 {
            return Ok(out);
        }
        let t = Tensor::from_slice(x).view([rows as i64, width as i64]);
        let log2m = t.narrow(1, width as i64 - 1, 1);
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
                        .decode(&x[r * width..(r + 1) * width], t0, t1)
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

    /// For each of `n` flows (observations row-major in `obs`, their
    /// past's features in `past`, [`PAST_LEN`] each, the policy's raw
    /// actions in `raw`), the predictions under every action of
    /// [`ACTIONS_LOG2`], in one batch of `n x actions` rows. Predictors
    /// that do not read the past ignore `past`; those that do refuse to
    /// predict without it.
    pub fn predict_actions(
        &self,
        obs: &[f32],
        past: &[f32],
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
        if self.meta.past && past.len() != n * PAST_LEN {
            return Err(ExplainError::Range {
                field: "past features",
                allowed: "one row of past features per raw action (these predictors read the flow's past)",
                found: format!("{} values for {n} actions", past.len()),
            });
        }
        let mut x = Vec::with_capacity(n * 3 * self.width);
        for (i, (o, a)) in obs.chunks_exact(OBSERVATION_LEN).zip(raw).enumerate() {
            for m in ACTIONS_LOG2 {
                x.extend_from_slice(o);
                if self.meta.past {
                    x.extend_from_slice(&past[i * PAST_LEN..(i + 1) * PAST_LEN]);
                }
                x.extend_from_slice(&[a[0], a[1], m]);
            }
        }
        let p = self.predict_inputs(&x, n * 3)?;
        Ok(p.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect())
    }
}

/// Predictors of `policy` with random weights (tests).
#[cfg(test)]
pub(crate) fn random_predictors(policy: &PolicyMetadata, seed: i64) -> Predictors {
    random_predictors_with(policy, seed, false)
}

/// [`random_predictors`] that read the flow's past ([`super::past`]).
#[cfg(test)]
pub(crate) fn random_predictors_with_past(policy: &PolicyMetadata, seed: i64) -> Predictors {
    random_predictors_of(policy, seed, false, true)
}

/// [`random_predictors`], with monotone heads or not.
#[cfg(test)]
pub(crate) fn random_predictors_with(
    policy: &PolicyMetadata,
    seed: i64,
    monotone: bool,
) -> Predictors {
    random_predictors_of(policy, seed, monotone, false)
}

#[cfg(test)]
fn random_predictors_of(
    policy: &PolicyMetadata,
    seed: i64,
    monotone: bool,
    past: bool,
) -> Predictors {
    let _rng = super::TORCH_RNG
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    tch::manual_seed(seed);
    let hidden = vec![8, 8];
    let mut meta = new_metadata(policy, Horizon::default(), hidden.clone());
    meta.monotone = monotone;
    meta.past = past;
    meta.in_mean = vec![0.0; input_len(past)];
    meta.in_std = vec![1.0; input_len(past)];
    meta.out_mean = vec![[1.0, 5.0], [-0.5, 30.0], [-0.01, 0.001]];
    meta.out_std = vec![[2.0, 3.0], [0.5, 20.0], [0.01, 0.001]];
    let mut widths = vec![input_len(past) as i64];
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
        let per_flow = q
            .predict_actions(&obs, &[], &[[0.1, -0.2], [0.5, 0.5]])
            .unwrap();
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
        let per_flow = p.predict_actions(&obs, &[], &raw).unwrap();
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
        assert_eq!(q.predict_actions(&obs, &[], &raw).unwrap(), per_flow);
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
        let r = InputRanges::of_inputs(&rows, INPUTS);
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
    fn predictors_that_read_the_past_round_trip_and_need_it() {
        let policy = default_policy().unwrap();
        let mut p = random_predictors_with_past(policy.metadata(), 21);
        assert_eq!(p.metadata().in_mean.len(), INPUTS + PAST_LEN);
        let dir = tempfile::tempdir().unwrap();
        let (json, weights) = paths_in(dir.path());
        p.save(&json, &weights).unwrap();
        let q = Predictors::load(&json, &weights, &policy).unwrap();
        assert!(q.metadata().past);
        let obs: Vec<f32> = inputs(2)
            .chunks_exact(INPUTS)
            .flat_map(|r| r[..OBSERVATION_LEN].to_vec())
            .collect();
        let raw = [[0.2, -0.1], [0.4, 0.3]];
        let past_a = [0.5f32; 2 * PAST_LEN];
        let mut past_b = past_a;
        past_b[2] = 4.0; // a deep queue in the first flow's past
        let a = q.predict_actions(&obs, &past_a, &raw).unwrap();
        assert_eq!(a, p.predict_actions(&obs, &past_a, &raw).unwrap());
        let b = q.predict_actions(&obs, &past_b, &raw).unwrap();
        assert_ne!(a[0], b[0], "the past is an input");
        assert_eq!(a[1], b[1], "of its own flow only");
        // Without the past they refuse, naming what is missing.
        let e = q.predict_actions(&obs, &[], &raw).unwrap_err().to_string();
        assert!(e.contains("past features"), "{e}");
        // Rows of the wrong width are refused too.
        assert!(q.predict_inputs(&inputs(1), 1).is_err());
        // Their JSON without `past` describes other networks: refused.
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        v.as_object_mut().unwrap().remove("past");
        std::fs::write(&json, serde_json::to_vec(&v).unwrap()).unwrap();
        let e = Predictors::load(&json, &weights, &policy)
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("{INPUTS} inputs")), "{e}");
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
        assert!(o.remove("past").is_some());
        std::fs::write(&json, serde_json::to_vec(&v).unwrap()).unwrap();
        let q = Predictors::load(&json, &weights, &policy).unwrap();
        assert!(!q.metadata().past);
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
        for f in p.predict_actions(&obs, &[], &[[0.3, -0.1]; 4]).unwrap() {
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
