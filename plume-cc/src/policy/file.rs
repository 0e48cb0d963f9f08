//! The policy file and [`LoadedPolicy`], the one type the daemon uses to run a
//! policy.
//!
//! A policy is either
//! - **native**: `NAME.safetensors` (the tensors of [`crate::policy::model::Architecture::tensor_shapes`],
//!   float32) next to `NAME.json` ([`PolicyMetadata`]: format version,
//!   architecture, observation feature names and length, normalisation
//!   statistics, action scaling, monitor interval, versions, how it was
//!   trained, and the SHA-256 of the weights file); or
//! - **TorchScript**: `NAME.pt`, a traced module mapping raw observations
//!   `[n, obs_len]` to clamped raw actions `[n, 2]` (normalisation inside),
//!   next to `NAME.json` with `kind: "torchscript"`. [`LoadedPolicy::export_torchscript`]
//!   writes one; a policy trained in Python can be run by writing the same
//!   pair.
//!
//! Loading checks everything it can (format name and version, observation
//! layout against this build's [`observation`] module, shapes, checksum,
//! finiteness) and names the file and field of the first mismatch. It never
//! panics on a bad file.

use std::path::{Path, PathBuf};

use tch::{Kind, Tensor};

use super::model::{InferenceNet, Layer};

use super::format::{check_weights, read, resolve, sha256_hex, torch_err, write};
pub use super::format::{
    load_for_finetune, load_trainable, save_native, tensors_from_safetensors,
    tensors_to_safetensors,
};
use super::metadata::mismatch;
pub use super::metadata::{
    ModelKind, ObservationSpec, PolicyError, PolicyMetadata, TrainingInfo, Versions, FORMAT_NAME,
    FORMAT_VERSION,
};

/// The embedded default policy's weights (`policies/default/policy.safetensors`).
pub const DEFAULT_POLICY_WEIGHTS: &[u8] =
    include_bytes!("../../../policies/default/policy.safetensors");
/// The embedded default policy's metadata (`policies/default/policy.json`).
pub const DEFAULT_POLICY_METADATA: &str = include_str!("../../../policies/default/policy.json");

/// Bytes of the embedded default policy: `(safetensors weights, JSON metadata)`.
pub fn default_policy_bytes() -> (&'static [u8], &'static str) {
    (DEFAULT_POLICY_WEIGHTS, DEFAULT_POLICY_METADATA)
}

/// Loads the embedded default policy.
pub fn default_policy() -> Result<LoadedPolicy, PolicyError> {
    LoadedPolicy::from_bytes(
        DEFAULT_POLICY_WEIGHTS,
        DEFAULT_POLICY_METADATA,
        Path::new("<embedded default policy>"),
    )
}

impl LoadedPolicy {
    /// [`default_policy`] for the path `default`, else [`LoadedPolicy::load`].
    pub fn load_or_default(path: &Path) -> Result<Self, PolicyError> {
        if path.as_os_str() == "default" {
            default_policy()
        } else {
            Self::load(path)
        }
    }
}

/// Where the time of one [`LoadedPolicy::act_batch_into`] went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ForwardTiming {
    /// Normalising (native) or copying (TorchScript) the observations into
    /// the input tensor, with the finiteness check.
    pub prepare: std::time::Duration,
    /// The network's layers.
    pub forward: std::time::Duration,
    /// Copying the `[n, 2]` actions out and clamping them.
    pub readback: std::time::Duration,
}

/// The tensors [`LoadedPolicy::act_batch_into`] reuses from call to call:
/// the input and every layer's output, reallocated only when the number of
/// flows changes, plus the normalisation statistics as plain floats. One
/// scratch belongs to one policy (it keeps that policy's statistics):
/// [`crate::policy::LearnedPolicy`] owns one beside its policy.
#[derive(Default)]
pub struct BatchScratch {
    rows: usize,
    input: Option<Tensor>,
    layers: Vec<Tensor>,
    mean: Vec<f32>,
    std: Vec<f32>,
    clip: f32,
}

impl std::fmt::Debug for BatchScratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchScratch")
            .field("rows", &self.rows)
            .finish()
    }
}

impl BatchScratch {
    /// Makes the tensors fit `rows` flows of `len` features for `net`.
    fn fit(&mut self, net: &Net, rows: usize, len: usize) -> Result<(), tch::TchError> {
        if self.rows == rows && self.input.is_some() {
            return Ok(());
        }
        let opts = (Kind::Float, tch::Device::Cpu);
        let r = rows as i64;
        self.input = Some(Tensor::f_empty([r, len as i64], opts)?);
        self.layers.clear();
        if let Net::Native(n) = net {
            for l in &n.actor {
                self.layers
                    .push(Tensor::f_empty([r, l.weight.size()[0]], opts)?);
            }
            // The values InferenceNet::forward divides by, read back from
            // its own tensors (so the two paths cannot disagree).
            let read = |t: &Tensor| -> Result<Vec<f32>, tch::TchError> {
                let t = t.f_to_kind(Kind::Float)?.f_contiguous()?;
                let mut v = vec![0.0f32; len];
                t.f_copy_data(&mut v, len)?;
                Ok(v)
            };
            self.mean = read(&n.obs_mean)?;
            self.std = read(&n.obs_std)?;
            self.clip = n.obs_clip as f32;
        }
        self.rows = rows;
        Ok(())
    }
}

/// Whether every value is finite. Branch-free over the whole slice (an
/// exponent of all ones marks infinities and NaNs), so it vectorises; the
/// caller looks for the first bad value only when there is one.
#[inline(always)]
fn all_finite(v: &[f32]) -> bool {
    v.iter().fold(0u32, |bad, x| {
        bad | u32::from(x.to_bits() & 0x7f80_0000 == 0x7f80_0000)
    }) == 0
}

/// Writes each row of `obs` normalised into `out` (the same f32
/// operations, in the same order, as [`InferenceNet::forward`]'s
/// `((obs - mean) / std).clamp(-clip, clip)`, so the result is bit for bit
/// the same) and says whether every value of `obs` was finite, in one pass.
/// Where the CPU has AVX2 the loop runs 8 lanes wide: IEEE division,
/// subtraction and comparison give the same bits at any width, so only the
/// speed changes (the binary is built for baseline x86-64, SSE2).
fn normalise_rows(obs: &[f32], out: &mut [f32], mean: &[f32], std: &[f32], clip: f32) -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU was just checked for AVX2.
        return unsafe { normalise_rows_avx2(obs, out, mean, std, clip) };
    }
    normalise_rows_generic(obs, out, mean, std, clip)
}

/// [`normalise_rows`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn normalise_rows_avx2(
    obs: &[f32],
    out: &mut [f32],
    mean: &[f32],
    std: &[f32],
    clip: f32,
) -> bool {
    normalise_rows_generic(obs, out, mean, std, clip)
}

/// The body of [`normalise_rows`], inlined into each instruction-set
/// version.
#[inline(always)]
fn normalise_rows_generic(
    obs: &[f32],
    out: &mut [f32],
    mean: &[f32],
    std: &[f32],
    clip: f32,
) -> bool {
    let len = mean.len();
    let mut bad = 0u32;
    for (row_in, row_out) in obs.chunks_exact(len).zip(out.chunks_exact_mut(len)) {
        for (((o, &v), &m), &s) in row_out.iter_mut().zip(row_in).zip(mean).zip(std) {
            bad |= u32::from(v.to_bits() & 0x7f80_0000 == 0x7f80_0000);
            // `f32::clamp(-clip, clip)` as the standard library defines
            // it (NaN passes through), without its assertion on the bounds.
            let y = (v - m) / s;
            let y = if y < -clip { -clip } else { y };
            *o = if y > clip { clip } else { y };
        }
    }
    bad == 0
}

enum Net {
    Native(InferenceNet),
    Script(tch::CModule),
}

/// A checked policy ready to run (see module docs). Cheap to call from one
/// thread; wrap in a mutex to share.
pub struct LoadedPolicy {
    meta: PolicyMetadata,
    net: Net,
    source: PathBuf,
}

impl std::fmt::Debug for LoadedPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPolicy")
            .field("source", &self.source)
            .field("kind", &self.meta.kind)
            .finish()
    }
}

/// Builds the deterministic network from checked tensors.
fn native_net(
    meta: &PolicyMetadata,
    named: Vec<(String, Tensor)>,
    path: &Path,
) -> Result<InferenceNet, PolicyError> {
    let mut map: std::collections::HashMap<String, Tensor> = named.into_iter().collect();
    let mut actor = Vec::new();
    let shapes = meta.architecture.tensor_shapes(false);
    for (name, shape) in &shapes {
        let t = map.get(name).ok_or_else(|| PolicyError::MissingTensor {
            path: path.to_path_buf(),
            name: name.clone(),
        })?;
        if &t.size() != shape {
            return Err(mismatch(
                path,
                &format!("tensor {name} shape"),
                format!("{shape:?}"),
                format!("{:?}", t.size()),
            ));
        }
        if !bool::try_from(t.isfinite().all()).unwrap_or(false) {
            return Err(PolicyError::NonFinite {
                path: path.to_path_buf(),
                name: name.clone(),
            });
        }
    }
    for i in 0..=meta.architecture.hidden.len() {
        let take = |n: String, map: &mut std::collections::HashMap<String, Tensor>| {
            map.remove(&n).ok_or(PolicyError::MissingTensor {
                path: path.to_path_buf(),
                name: n,
            })
        };
        actor.push(Layer {
            weight: take(format!("actor.{i}.weight"), &mut map)?,
            bias: take(format!("actor.{i}.bias"), &mut map)?,
        });
    }
    let (obs_mean, obs_std) = meta.normalization.tensors();
    Ok(InferenceNet {
        actor,
        obs_mean,
        obs_std,
        obs_clip: f64::from(meta.normalization.clip),
    })
}

impl LoadedPolicy {
    /// Loads and checks a policy: a folder with `policy.json` (+ `policy.safetensors`
    /// or `policy.pt`), or either file of a `NAME.json` + `NAME.safetensors|pt` pair.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        Self::load_with_spec(path, &ObservationSpec::current())
    }

    /// Like [`LoadedPolicy::load`], checking against an explicit observation layout.
    pub fn load_with_spec(path: &Path, spec: &ObservationSpec) -> Result<Self, PolicyError> {
        let (json_path, weights_path) = resolve(path)?;
        let json = read(&json_path)?;
        let meta: PolicyMetadata =
            serde_json::from_slice(&json).map_err(|source| PolicyError::Json {
                path: json_path.clone(),
                source,
            })?;
        meta.check(&json_path, spec)?;
        let weights = read(&weights_path)?;
        Self::from_parts(meta, &weights, &weights_path)
    }

    /// Loads a native policy from bytes (e.g. the embedded default);
    /// `name` appears in errors.
    pub fn from_bytes(
        weights: &[u8],
        metadata_json: &str,
        name: &Path,
    ) -> Result<Self, PolicyError> {
        let meta: PolicyMetadata =
            serde_json::from_str(metadata_json).map_err(|source| PolicyError::Json {
                path: name.to_path_buf(),
                source,
            })?;
        meta.check(name, &ObservationSpec::current())?;
        Self::from_parts(meta, weights, name)
    }

    fn from_parts(
        meta: PolicyMetadata,
        weights: &[u8],
        weights_path: &Path,
    ) -> Result<Self, PolicyError> {
        check_weights(&meta, weights, weights_path)?;
        let net = match meta.kind {
            ModelKind::Safetensors => {
                let named = tensors_from_safetensors(weights, weights_path)?;
                Net::Native(native_net(&meta, named, weights_path)?)
            }
            ModelKind::Torchscript => {
                let mut cursor = std::io::Cursor::new(weights);
                let mut m = tch::CModule::load_data(&mut cursor)
                    .map_err(|source| torch_err(weights_path.to_path_buf(), source))?;
                m.set_eval();
                Net::Script(m)
            }
        };
        let p = Self {
            meta,
            net,
            source: weights_path.to_path_buf(),
        };
        // One probe forward: a module with the wrong input or output shape fails here, not in the daemon.
        let probe = vec![0.0f32; p.meta.observation.len];
        p.act_batch(&probe, 1)?;
        Ok(p)
    }

    /// The metadata.
    pub fn metadata(&self) -> &PolicyMetadata {
        &self.meta
    }

    /// Overrides the file's competition rule (the weights do not depend on
    /// it: the rule acts in the action mapping, after the network).
    pub fn set_competition_rule(&mut self, rule: Option<super::CompetitionRule>) {
        self.meta.action_scaling.competition = rule;
    }

    /// Overrides the file's additive term (`ActionScaling::additive_segments`;
    /// like the rule, it acts after the network). Returns false, changing
    /// nothing, for a value outside `[0, 64]`.
    pub fn set_additive_segments(&mut self, segments: f32) -> bool {
        let scaling = super::ActionScaling {
            additive_segments: segments,
            ..self.meta.action_scaling
        };
        if scaling.is_valid() {
            self.meta.action_scaling = scaling;
        }
        scaling.is_valid()
    }

    /// Where it was loaded from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The observation length, once `obs` holds exactly `n_flows` of them
    /// and every value is finite (the error names the flow and feature).
    fn check_input(&self, obs: &[f32], n_flows: usize) -> Result<usize, PolicyError> {
        let len = self.meta.observation.len;
        if obs.len() != n_flows * len {
            return Err(PolicyError::BadInput(format!(
                "{} values for {n_flows} flows of {len} features",
                obs.len()
            )));
        }
        if let Some(i) = obs.iter().position(|v| !v.is_finite()) {
            return Err(PolicyError::BadInput(format!(
                "non-finite value at flow {}, feature {}",
                i / len,
                i % len
            )));
        }
        Ok(len)
    }

    /// Deterministic raw actions for `n_flows` observations laid out
    /// row-major in `obs` (each [`ObservationSpec::len`] long, built by
    /// [`crate::policy::observation::ObservationBuilder`]), in ONE batched
    /// forward. Each action is in `[-1, 1]^2`; turn it into a `FlowTarget`
    /// with [`PolicyMetadata::action_scaling`] and the flow's
    /// [`crate::policy::FlowContext`].
    pub fn act_batch(&self, obs: &[f32], n_flows: usize) -> Result<Vec<[f32; 2]>, PolicyError> {
        let len = self.check_input(obs, n_flows)?;
        if n_flows == 0 {
            return Ok(Vec::new());
        }
        let x = Tensor::from_slice(obs).reshape([n_flows as i64, len as i64]);
        let y = tch::no_grad(|| match &self.net {
            Net::Native(n) => Ok(n.forward(&x)),
            Net::Script(m) => m.forward_ts(&[x]),
        })
        .map_err(|source| torch_err(self.source.clone(), source))?;
        if y.size() != [n_flows as i64, 2] {
            return Err(mismatch(
                &self.source,
                "output shape",
                format!("[{n_flows}, 2]"),
                format!("{:?}", y.size()),
            ));
        }
        let v = Vec::<f32>::try_from(y.to_kind(Kind::Float).contiguous().flatten(0, -1))
            .map_err(|source| torch_err(self.source.clone(), source))?;
        Ok(v.chunks_exact(2)
            .map(|c| [c[0].clamp(-1.0, 1.0), c[1].clamp(-1.0, 1.0)])
            .collect())
    }

    /// [`Self::act_batch`] at batch cost, for the daemon's every interval:
    /// the raw actions of `n_flows` observations (row-major in `obs`) go into
    /// `actions` as `[cwnd lever, pacing lever]` pairs, each clamped to
    /// `[-1, 1]`. Nothing is allocated per flow or per call once `scratch`
    /// has seen this flow count: a native policy normalises the observations
    /// straight into a libtorch tensor kept in `scratch`, runs every layer
    /// into tensors kept there too (`linear_out`, `tanh_` in place), and
    /// copies the `[n, 2]` result into `actions`. A TorchScript module keeps
    /// its own intermediate tensors; only its input is reused.
    ///
    /// Why in place rather than a hand-written MLP: the layers stay
    /// libtorch's own kernels, so the actions are bit-for-bit those of
    /// [`Self::act_batch`] (and of training's evaluation), and only the
    /// tensor churn around them goes (docs/BENCHMARKS.md, "Decide step").
    pub fn act_batch_into(
        &self,
        scratch: &mut BatchScratch,
        obs: &[f32],
        n_flows: usize,
        actions: &mut Vec<f32>,
    ) -> Result<ForwardTiming, PolicyError> {
        actions.clear();
        let len = self.meta.observation.len;
        if obs.len() != n_flows * len {
            return Err(PolicyError::BadInput(format!(
                "{} values for {n_flows} flows of {len} features",
                obs.len()
            )));
        }
        let mut timing = ForwardTiming::default();
        if n_flows == 0 {
            return Ok(timing);
        }
        // The finiteness check is part of `prepare`: a native policy's runs
        // in the same pass as the normalisation (one read of the matrix
        // instead of two; the separate scan cost as much as the
        // normalisation, docs/BENCHMARKS.md "Decide step").
        let t0 = std::time::Instant::now();
        let torch = |source| torch_err(self.source.clone(), source);
        scratch.fit(&self.net, n_flows, len).map_err(torch)?;
        let input = scratch
            .input
            .as_mut()
            .ok_or_else(|| PolicyError::BadInput("no input tensor for a non-empty batch".into()))?;
        // SAFETY: `input` is a contiguous float tensor of exactly
        // n_flows * len elements that `scratch` allocated and alone holds;
        // no libtorch operation runs on it while this slice lives.
        let x = unsafe {
            std::slice::from_raw_parts_mut(input.data_ptr().cast::<f32>(), n_flows * len)
        };
        let finite = match &self.net {
            Net::Native(_) => normalise_rows(obs, x, &scratch.mean, &scratch.std, scratch.clip),
            Net::Script(_) => {
                x.copy_from_slice(obs);
                all_finite(obs)
            }
        };
        if !finite {
            let i = obs.iter().position(|v| !v.is_finite()).unwrap_or(0);
            return Err(PolicyError::BadInput(format!(
                "non-finite value at flow {}, feature {}",
                i / len,
                i % len
            )));
        }
        let t1 = std::time::Instant::now();
        let y = tch::no_grad(|| -> Result<Tensor, tch::TchError> {
            match &self.net {
                Net::Native(n) => {
                    let mut h = input.shallow_clone();
                    for (i, (l, out)) in n.actor.iter().zip(&scratch.layers).enumerate() {
                        let mut o = h.f_linear_out(out, &l.weight, Some(&l.bias))?;
                        if i + 1 < n.actor.len() {
                            let _ = o.f_tanh_()?;
                        }
                        h = o;
                    }
                    Ok(h)
                }
                Net::Script(m) => m.forward_ts(&[input.shallow_clone()]),
            }
        })
        .map_err(torch)?;
        let t2 = std::time::Instant::now();
        if y.size() != [n_flows as i64, 2] {
            return Err(mismatch(
                &self.source,
                "output shape",
                format!("[{n_flows}, 2]"),
                format!("{:?}", y.size()),
            ));
        }
        let y = if y.kind() == Kind::Float && y.is_contiguous() {
            y
        } else {
            y.f_to_kind(Kind::Float)
                .and_then(|t| t.f_contiguous())
                .map_err(torch)?
        };
        actions.resize(2 * n_flows, 0.0);
        y.f_copy_data(actions, 2 * n_flows).map_err(torch)?;
        for a in actions.iter_mut() {
            *a = a.clamp(-1.0, 1.0);
        }
        timing.prepare = t1 - t0;
        timing.forward = t2 - t1;
        timing.readback = t2.elapsed();
        Ok(timing)
    }

    /// Writes a TorchScript version (`path` ends in `.pt`; metadata to
    /// `path.with_extension("json")`, so use a folder other than the native
    /// policy's) tracing the deterministic forward of a native policy.
    pub fn export_torchscript(&self, path: &Path) -> Result<(), PolicyError> {
        let Net::Native(net) = &self.net else {
            return Err(mismatch(
                path,
                "kind",
                "safetensors (a native policy to trace)",
                "torchscript",
            ));
        };
        let example = Tensor::zeros(
            [1, self.meta.observation.len as i64],
            (Kind::Float, tch::Device::Cpu),
        );
        let module = tch::no_grad(|| {
            tch::CModule::create_by_tracing("PlumePolicy", "forward", &[example], &mut |xs| {
                vec![net.forward(&xs[0])]
            })
        })
        .map_err(|source| torch_err(path.to_path_buf(), source))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| PolicyError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let tmp = path.with_extension("pt.tmp");
        module
            .save(&tmp)
            .map_err(|source| torch_err(tmp.clone(), source))?;
        let bytes = read(&tmp)?;
        let _ = std::fs::remove_file(&tmp);
        let mut meta = self.meta.clone();
        meta.kind = ModelKind::Torchscript;
        meta.weights_sha256 = sha256_hex(&bytes);
        write(path, &bytes)?;
        let json = serde_json::to_vec_pretty(&meta).map_err(|source| PolicyError::Json {
            path: path.with_extension("json"),
            source,
        })?;
        write(&path.with_extension("json"), &json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::{ActionScaling, ActorCritic, Architecture, ObsNormalizer};
    use crate::policy::observation::OBSERVATION_LEN;

    fn saved(dir: &Path, seed: u64) -> (ActorCritic, ObsNormalizer) {
        let arch = Architecture::mlp(OBSERVATION_LEN, 16);
        let model = ActorCritic::new(&arch, -0.5, seed);
        let mut norm = ObsNormalizer::new(OBSERVATION_LEN);
        let batch: Vec<f32> = (0..OBSERVATION_LEN * 4)
            .map(|i| (i % 7) as f32 * 0.3)
            .collect();
        norm.update(&batch, 4);
        save_native(
            dir,
            &model,
            &norm,
            &ActionScaling::default(),
            20_000,
            "cubic",
            crate::policy::Objective::default(),
            TrainingInfo::default(),
            false,
        )
        .unwrap();
        (model, norm)
    }

    fn obs(n: usize) -> Vec<f32> {
        (0..n * OBSERVATION_LEN)
            .map(|i| ((i * 37 % 101) as f32) / 50.0 - 1.0)
            .collect()
    }

    #[test]
    fn native_round_trip_matches_the_model() {
        tch::set_num_threads(1);
        let dir = tempfile::tempdir().unwrap();
        let (model, norm) = saved(dir.path(), 3);
        let p = LoadedPolicy::load(dir.path()).unwrap();
        assert_eq!(p.metadata().observation, ObservationSpec::current());
        let o = obs(5);
        let got = p.act_batch(&o, 5).unwrap();
        let x = Tensor::from_slice(&o).reshape([5, OBSERVATION_LEN as i64]);
        let want = Vec::<f32>::try_from(model.inference(&norm).forward(&x).flatten(0, -1)).unwrap();
        for (g, w) in got.iter().flatten().zip(&want) {
            assert_eq!(g, w);
        }
        assert!(p.act_batch(&o, 4).is_err());
        let mut bad = o.clone();
        bad[3] = f32::NAN;
        assert!(matches!(
            p.act_batch(&bad, 5),
            Err(PolicyError::BadInput(_))
        ));
        assert!(p.act_batch(&[], 0).unwrap().is_empty());
        // The other spellings of the same policy.
        assert!(LoadedPolicy::load(&dir.path().join("policy.json")).is_ok());
        assert!(LoadedPolicy::load(&dir.path().join("policy.safetensors")).is_ok());
    }

    #[test]
    fn corrupt_or_mismatched_files_are_rejected() {
        tch::set_num_threads(1);
        let dir = tempfile::tempdir().unwrap();
        saved(dir.path(), 4);
        let json_path = dir.path().join("policy.json");
        let st_path = dir.path().join("policy.safetensors");
        let json = std::fs::read_to_string(&json_path).unwrap();
        let weights = std::fs::read(&st_path).unwrap();

        // Flipped weight byte: checksum.
        let mut w = weights.clone();
        let last = w.len() - 1;
        w[last] ^= 0x55;
        std::fs::write(&st_path, &w).unwrap();
        let e = LoadedPolicy::load(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("weights_sha256") && e.contains("policy.safetensors"),
            "{e}"
        );
        // Truncated weights with a matching checksum: safetensors parse error.
        let t = &weights[..weights.len() / 2];
        std::fs::write(&st_path, t).unwrap();
        let mut meta: PolicyMetadata = serde_json::from_str(&json).unwrap();
        meta.weights_sha256 = sha256_hex(t);
        std::fs::write(&json_path, serde_json::to_string(&meta).unwrap()).unwrap();
        assert!(matches!(
            LoadedPolicy::load(dir.path()),
            Err(PolicyError::Safetensors { .. })
        ));
        std::fs::write(&st_path, &weights).unwrap();

        type Edit = Box<dyn Fn(&mut serde_json::Value)>;
        let cases: Vec<(&str, Edit)> = vec![
            (
                "format_version",
                Box::new(|v| v["format_version"] = 99.into()),
            ),
            (
                "observation.len",
                Box::new(|v| v["observation"]["len"] = 74.into()),
            ),
            (
                "observation.feature_names[2]",
                Box::new(|v| v["observation"]["feature_names"][2] = "other".into()),
            ),
            (
                "normalization",
                Box::new(|v| v["normalization"]["mean"] = serde_json::json!([0.0])),
            ),
            (
                "action_scaling",
                Box::new(|v| v["action_scaling"]["min_cwnd_segments"] = 0.into()),
            ),
            (
                "tensor actor.0.weight shape",
                Box::new(|v| v["architecture"]["hidden"] = serde_json::json!([8, 16])),
            ),
        ];
        for (field, edit) in cases {
            let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
            edit(&mut v);
            std::fs::write(&json_path, v.to_string()).unwrap();
            let e = LoadedPolicy::load(dir.path()).unwrap_err();
            assert!(e.to_string().contains(field), "{field}: {e}");
        }
        std::fs::write(&json_path, "{not json").unwrap();
        assert!(matches!(
            LoadedPolicy::load(dir.path()),
            Err(PolicyError::Json { .. })
        ));
        std::fs::remove_file(&json_path).unwrap();
        assert!(matches!(
            LoadedPolicy::load(dir.path()),
            Err(PolicyError::Io { .. })
        ));
        assert!(matches!(
            LoadedPolicy::load(&dir.path().join("x.txt")),
            Err(PolicyError::UnknownKind { .. })
        ));
    }

    /// Random observations in a wide range (beyond the normaliser's clip,
    /// negative and tiny values), as f32 bits from a seeded generator.
    fn random_obs(n: usize, seed: u64) -> Vec<f32> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n * OBSERVATION_LEN)
            .map(|_| match rng.gen_range(0..10) {
                0 => 0.0,
                1 => rng.gen_range(-1e3f32..1e3),
                _ => rng.gen_range(-2.0f32..12.0),
            })
            .collect()
    }

    /// The batch-cost path gives bit-for-bit the actions of the plain one,
    /// for both kinds of policy, as the flow count grows, shrinks and stays
    /// (tensors reused or reallocated), and the same errors.
    #[test]
    fn act_batch_into_matches_act_batch_bit_for_bit() {
        tch::set_num_threads(1);
        let dir = tempfile::tempdir().unwrap();
        saved(dir.path(), 11);
        let native = LoadedPolicy::load(dir.path()).unwrap();
        let pt = dir.path().join("ts").join("policy.pt");
        native.export_torchscript(&pt).unwrap();
        let script = LoadedPolicy::load(&pt).unwrap();
        for p in [&native, &script] {
            let mut scratch = BatchScratch::default();
            let mut got = Vec::new();
            for (k, n) in [1usize, 1, 300, 300, 7, 2048, 0, 5].into_iter().enumerate() {
                let o = random_obs(n, k as u64);
                p.act_batch_into(&mut scratch, &o, n, &mut got).unwrap();
                let want: Vec<f32> = p.act_batch(&o, n).unwrap().into_iter().flatten().collect();
                assert_eq!(got.len(), 2 * n);
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert_eq!(
                        g.to_bits(),
                        w.to_bits(),
                        "{:?} n={n} value {i}",
                        p.metadata().kind
                    );
                }
            }
            let mut bad = random_obs(3, 99);
            bad[5] = f32::INFINITY;
            assert!(matches!(
                p.act_batch_into(&mut scratch, &bad, 3, &mut got),
                Err(PolicyError::BadInput(_))
            ));
            assert!(p.act_batch_into(&mut scratch, &bad, 2, &mut got).is_err());
            // The check runs in the normalising pass now: it still finds
            // every non-finite value and names the first.
            for (at, v) in [
                (5, f32::INFINITY),
                (OBSERVATION_LEN + 7, f32::NAN),
                (2 * OBSERVATION_LEN + 75, f32::NEG_INFINITY),
            ] {
                let mut bad = random_obs(3, 98);
                bad[at] = v;
                bad[3 * OBSERVATION_LEN - 1] = f32::NAN;
                let e = p
                    .act_batch_into(&mut scratch, &bad, 3, &mut got)
                    .unwrap_err()
                    .to_string();
                let want = format!(
                    "flow {}, feature {}",
                    at / OBSERVATION_LEN,
                    at % OBSERVATION_LEN
                );
                assert!(e.contains(&want), "{e}: {want}");
            }
        }
    }

    #[test]
    fn every_build_of_the_normalisation_gives_the_same_bits() {
        let len = OBSERVATION_LEN;
        let mean: Vec<f32> = (0..len).map(|j| (j as f32 - 30.0) * 0.37).collect();
        let std: Vec<f32> = (0..len).map(|j| 1e-4 + (j % 9) as f32 * 0.83).collect();
        let obs = random_obs(257, 3);
        let obs: Vec<f32> = obs
            .iter()
            .enumerate()
            .map(|(i, v)| v * (1 + i % 50) as f32)
            .collect();
        let mut plain = vec![0f32; obs.len()];
        let mut fast = vec![1f32; obs.len()];
        assert!(normalise_rows_generic(&obs, &mut plain, &mean, &std, 5.0));
        assert!(normalise_rows(&obs, &mut fast, &mean, &std, 5.0));
        for (i, ((p, f), v)) in plain.iter().zip(&fast).zip(&obs).enumerate() {
            let (m, s) = (mean[i % len], std[i % len]);
            let want = ((v - m) / s).clamp(-5.0, 5.0);
            assert_eq!(
                (p.to_bits(), f.to_bits()),
                (want.to_bits(), want.to_bits()),
                "value {i}"
            );
        }
        assert!(plain.iter().any(|v| v.abs() == 5.0) && plain.iter().any(|v| v.abs() < 5.0));
        for v in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut bad = obs.clone();
            bad[200 * len + 3] = v;
            assert!(!normalise_rows(&bad, &mut fast, &mean, &std, 5.0));
            assert!(!all_finite(&bad));
        }
        assert!(all_finite(&obs));
    }

    #[test]
    fn torchscript_round_trip_gives_identical_outputs() {
        tch::set_num_threads(1);
        let dir = tempfile::tempdir().unwrap();
        saved(dir.path(), 5);
        let native = LoadedPolicy::load(dir.path()).unwrap();
        let pt = dir.path().join("ts").join("policy.pt");
        native.export_torchscript(&pt).unwrap();
        let script = LoadedPolicy::load(&pt).unwrap();
        assert_eq!(script.metadata().kind, ModelKind::Torchscript);
        for n in [1, 3, 17] {
            let o = obs(n);
            assert_eq!(
                native.act_batch(&o, n).unwrap(),
                script.act_batch(&o, n).unwrap()
            );
        }
        // A corrupt module is an error, not a crash.
        let mut bytes = std::fs::read(&pt).unwrap();
        bytes.truncate(bytes.len() / 3);
        std::fs::write(&pt, &bytes).unwrap();
        let mut meta = script.metadata().clone();
        meta.weights_sha256 = sha256_hex(&bytes);
        std::fs::write(
            pt.with_extension("json"),
            serde_json::to_string(&meta).unwrap(),
        )
        .unwrap();
        assert!(matches!(
            LoadedPolicy::load(&pt),
            Err(PolicyError::Torch { .. })
        ));
    }

    #[test]
    fn embedded_default_policy_loads() {
        tch::set_num_threads(1);
        let p = default_policy().unwrap();
        let out = p.act_batch(&obs(2), 2).unwrap();
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn trainable_round_trip_keeps_the_critic() {
        tch::set_num_threads(1);
        let dir = tempfile::tempdir().unwrap();
        let arch = Architecture::mlp(OBSERVATION_LEN, 8);
        let model = ActorCritic::new(&arch, -0.5, 9);
        let norm = ObsNormalizer::new(OBSERVATION_LEN);
        save_native(
            dir.path(),
            &model,
            &norm,
            &ActionScaling::default(),
            20_000,
            "cubic",
            crate::policy::Objective::default(),
            TrainingInfo::default(),
            true,
        )
        .unwrap();
        let (back, _) = load_trainable(dir.path()).unwrap();
        for ((n, a), (_, b)) in model
            .named_tensors(true)
            .iter()
            .zip(back.named_tensors(true).iter())
        {
            assert!(a.equal(b), "{n}");
        }
        // The daemon's loader ignores the critic.
        assert!(LoadedPolicy::load(dir.path()).is_ok());
    }
}
