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

pub use super::batch::{BatchScratch, ForwardTiming};
use super::format::{check_weights, read, read_metadata_at, sha256_hex, torch_err, write};
pub use super::format::{
    load_for_finetune, load_trainable, read_metadata, save_native, tensors_from_safetensors,
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

/// The network of a [`LoadedPolicy`]: the deterministic actor rebuilt
/// from native weights, or a TorchScript module.
pub(super) enum Net {
    Native(InferenceNet),
    Script(tch::CModule),
}

/// A checked policy ready to run (see module docs). Cheap to call from one
/// thread; wrap in a mutex to share.
pub struct LoadedPolicy {
    pub(super) meta: PolicyMetadata,
    pub(super) net: Net,
    pub(super) source: PathBuf,
}

impl std::fmt::Debug for LoadedPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPolicy")
            .field("source", &self.source)
            .field("kind", &self.meta.kind)
            .finish()
    }
}

/// The error for observations that hold a non-finite value: it names the
/// flow and feature of the first.
pub(super) fn non_finite(obs: &[f32], len: usize) -> PolicyError {
    let i = obs.iter().position(|v| !v.is_finite()).unwrap_or(0);
    PolicyError::BadInput(format!(
        "non-finite value at flow {}, feature {}",
        i / len,
        i % len
    ))
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
    /// The observation layout checked is the policy's own version's, when
    /// this build supports it ([`ObservationSpec::to_check`]).
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        Self::load_checked(path, None)
    }

    /// Like [`LoadedPolicy::load`], checking against an explicit observation layout.
    pub fn load_with_spec(path: &Path, spec: &ObservationSpec) -> Result<Self, PolicyError> {
        Self::load_checked(path, Some(spec))
    }

    fn load_checked(path: &Path, spec: Option<&ObservationSpec>) -> Result<Self, PolicyError> {
        let (meta, json_path, weights_path) = read_metadata_at(path)?;
        let own = ObservationSpec::to_check(meta.observation.version);
        meta.check(&json_path, spec.unwrap_or(&own))?;
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
        meta.check(name, &ObservationSpec::to_check(meta.observation.version))?;
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

    /// Overrides the file's action mapping (the weights do not depend on
    /// it: the mapping acts after the network, so the competition rule or
    /// the additive term can be set on trained weights). Returns false,
    /// changing nothing, for a mapping that is not
    /// [`super::ActionScaling::is_valid`].
    pub fn set_action_scaling(&mut self, scaling: super::ActionScaling) -> bool {
        let valid = scaling.is_valid();
        if valid {
            self.meta.action_scaling = scaling;
        }
        valid
    }

    /// Where it was loaded from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The observation length, once `obs` holds exactly `n_flows` of them
    /// and every value is finite (the error names the flow and feature).
    fn check_input(&self, obs: &[f32], n_flows: usize) -> Result<usize, PolicyError> {
        let len = self.check_len(obs, n_flows)?;
        if obs.iter().any(|v| !v.is_finite()) {
            return Err(non_finite(obs, len));
        }
        Ok(len)
    }

    /// The observation length, once `obs` holds exactly `n_flows` of them.
    pub(super) fn check_len(&self, obs: &[f32], n_flows: usize) -> Result<usize, PolicyError> {
        let len = self.meta.observation.len;
        if obs.len() != n_flows * len {
            return Err(PolicyError::BadInput(format!(
                "{} values for {n_flows} flows of {len} features",
                obs.len()
            )));
        }
        Ok(len)
    }

    /// Refuses a network output that is not one `[lever, lever]` pair per
    /// flow (a TorchScript module can return anything).
    pub(super) fn check_output(&self, y: &Tensor, n_flows: usize) -> Result<(), PolicyError> {
        if y.size() != [n_flows as i64, 2] {
            return Err(mismatch(
                &self.source,
                "output shape",
                format!("[{n_flows}, 2]"),
                format!("{:?}", y.size()),
            ));
        }
        Ok(())
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
        self.check_output(&y, n_flows)?;
        let v = Vec::<f32>::try_from(y.to_kind(Kind::Float).contiguous().flatten(0, -1))
            .map_err(|source| torch_err(self.source.clone(), source))?;
        Ok(v.chunks_exact(2)
            .map(|c| [c[0].clamp(-1.0, 1.0), c[1].clamp(-1.0, 1.0)])
            .collect())
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
pub(super) mod tests {
    use super::*;
    use crate::policy::model::{ActionScaling, ActorCritic, Architecture, ObsNormalizer};
    use crate::policy::observation::OBSERVATION_LEN;

    pub(crate) fn saved(dir: &Path, seed: u64) -> (ActorCritic, ObsNormalizer) {
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
            crate::policy::observation::OBSERVATION_VERSION,
        )
        .unwrap();
        (model, norm)
    }

    fn obs(n: usize) -> Vec<f32> {
        (0..n * OBSERVATION_LEN)
            .map(|i| ((i * 37 % 101) as f32) / 50.0 - 1.0)
            .collect()
    }

    /// A version 4 policy loads as version 4 (its own layout, with
    /// `copy_age_rtts`), the daemon's policy builds version 4 for it, and
    /// a version this build does not build, or names that are not the
    /// version's, are refused.
    #[test]
    fn a_v4_policy_loads_with_its_own_layout() {
        tch::set_num_threads(1);
        let dir = tempfile::tempdir().unwrap();
        let arch = Architecture::mlp(OBSERVATION_LEN, 8);
        let model = ActorCritic::new(&arch, -0.5, 4);
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
            false,
            4,
        )
        .unwrap();
        let p = LoadedPolicy::load(dir.path()).unwrap();
        assert_eq!(p.metadata().observation, ObservationSpec::for_version(4));
        assert_eq!(p.metadata().observation.feature_names[2], "copy_age_rtts");
        assert_eq!(
            crate::policy::LearnedPolicy::new(p).observation_version(),
            4
        );
        let json_path = dir.path().join("policy.json");
        let json = std::fs::read_to_string(&json_path).unwrap();
        for (version, field) in [
            (
                5,
                "observation.version (retrain the policy with this build)",
            ),
            (3, "observation.feature_names[2]"),
        ] {
            std::fs::write(
                &json_path,
                json.replace("\"version\": 4", &format!("\"version\": {version}")),
            )
            .unwrap();
            match LoadedPolicy::load(dir.path()) {
                Err(PolicyError::Mismatch { field: f, .. }) => assert_eq!(f, field),
                other => panic!("version {version}: {other:?}"),
            }
        }
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
                "action_scaling.min_cwnd_segments",
                Box::new(|v| v["action_scaling"]["min_cwnd_segments"] = 0.into()),
            ),
            (
                "field `action_scaling.competition.drain_gain` is 1.5, expected [0.25, 0.9]",
                Box::new(|v| {
                    v["action_scaling"]["competition"] = serde_json::json!({"drain_gain": 1.5})
                }),
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

    /// A native policy saved in `dir` from `seed`, and its TorchScript
    /// export (in `dir/ts/policy.pt`), both loaded back.
    pub(crate) fn native_and_script(dir: &Path, seed: u64) -> (LoadedPolicy, LoadedPolicy) {
        saved(dir, seed);
        let native = LoadedPolicy::load(dir).unwrap();
        native
            .export_torchscript(&dir.join("ts").join("policy.pt"))
            .unwrap();
        let script = LoadedPolicy::load(&dir.join("ts").join("policy.pt")).unwrap();
        (native, script)
    }

    #[test]
    fn torchscript_round_trip_gives_identical_outputs() {
        tch::set_num_threads(1);
        let dir = tempfile::tempdir().unwrap();
        let (native, script) = native_and_script(dir.path(), 5);
        let pt = dir.path().join("ts").join("policy.pt");
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
            crate::policy::observation::OBSERVATION_VERSION,
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
