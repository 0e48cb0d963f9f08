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

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tch::{Kind, Tensor};

use super::model::{ActionScaling, ActorCritic, Architecture, InferenceNet, Layer, ObsNormalizer};
use super::observation::{feature_name, OBSERVATION_LEN};

/// Value of [`PolicyMetadata::format`].
pub const FORMAT_NAME: &str = "plume-cc-policy";
/// Version of the metadata layout this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

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

/// Errors of reading, checking and running a policy.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The metadata is not valid JSON for [`PolicyMetadata`].
    #[error("{path}: invalid policy metadata: {source}")]
    Json {
        /// The metadata file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// The weights file is not a valid safetensors file.
    #[error("{path}: invalid safetensors weights: {message}")]
    Safetensors {
        /// The weights file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// A metadata field disagrees with this build or with the weights.
    #[error("{path}: field `{field}` is {found}, expected {expected}")]
    Mismatch {
        /// The file checked.
        path: PathBuf,
        /// The field.
        field: String,
        /// What this build or the weights require.
        expected: String,
        /// What the file says.
        found: String,
    },
    /// A tensor named by the architecture is absent.
    #[error("{path}: tensor `{name}` is missing")]
    MissingTensor {
        /// The weights file.
        path: PathBuf,
        /// The tensor.
        name: String,
    },
    /// A tensor holds NaN or infinite values.
    #[error("{path}: tensor `{name}` holds non-finite values")]
    NonFinite {
        /// The weights file.
        path: PathBuf,
        /// The tensor.
        name: String,
    },
    /// The policy path has no recognised form.
    #[error("{path}: not a policy (expected a folder with policy.json, NAME.json + NAME.safetensors, or NAME.pt + NAME.json)")]
    UnknownKind {
        /// The path given.
        path: PathBuf,
    },
    /// libtorch failed (TorchScript load, export or forward).
    #[error("{path}: libtorch: {message}")]
    Torch {
        /// The policy.
        path: PathBuf,
        /// First line of libtorch's message.
        message: String,
    },
    /// The caller's observations do not fit the policy.
    #[error("bad observation batch: {0}")]
    BadInput(String),
}

/// Observation layout a policy was trained on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservationSpec {
    /// [`crate::policy::observation::OBSERVATION_VERSION`] of the builder the
    /// policy was trained with (files without it are version 1).
    #[serde(default = "observation_version_1")]
    pub version: u32,
    /// Vector length.
    pub len: usize,
    /// Name of every feature, in order.
    pub feature_names: Vec<String>,
}

fn observation_version_1() -> u32 {
    1
}

fn base_cc_default() -> String {
    // Files from before the field were all trained over the simulator's CUBIC.
    "cubic".to_string()
}

impl ObservationSpec {
    /// The layout of this build's [`crate::policy::observation`] builder.
    pub fn current() -> Self {
        Self {
            version: crate::policy::observation::OBSERVATION_VERSION,
            len: OBSERVATION_LEN,
            feature_names: (0..OBSERVATION_LEN).filter_map(feature_name).collect(),
        }
    }
}

/// Which file holds the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// `NAME.safetensors` with the tensors of the architecture.
    Safetensors,
    /// `NAME.pt`, a TorchScript module (normalisation inside).
    Torchscript,
}

/// Software versions that produced the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versions {
    /// plume-cc crate version.
    pub plume_cc: String,
    /// tch crate version.
    pub tch: String,
    /// libtorch version.
    pub torch: String,
}

impl Versions {
    /// This build's versions.
    pub fn current() -> Self {
        Self {
            plume_cc: env!("CARGO_PKG_VERSION").to_string(),
            tch: "0.26.0".to_string(),
            torch: "2.13.0".to_string(),
        }
    }
}

/// How a policy was trained (free-form but recorded).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainingInfo {
    /// The command line that produced it.
    pub command: String,
    /// Seed of the run.
    pub seed: u64,
    /// Trace sampler used.
    pub sampler: String,
    /// Environment steps taken.
    pub steps: u64,
}

/// Metadata of a policy (the JSON half of the file, see module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyMetadata {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// [`FORMAT_VERSION`] when written.
    pub format_version: u32,
    /// Which file holds the network.
    pub kind: ModelKind,
    /// Network shape.
    pub architecture: Architecture,
    /// Observation layout.
    pub observation: ObservationSpec,
    /// Normalisation statistics (already inside a TorchScript module; kept for reference).
    pub normalization: ObsNormalizer,
    /// How raw actions become a `FlowTarget`.
    pub action_scaling: ActionScaling,
    /// Monitor interval the policy was trained with, microseconds.
    pub monitor_interval_us: u64,
    /// The kernel congestion control the policy's limits sit on (`cubic`,
    /// `bbr` or `reno`): the simulator's base in training, and what the
    /// datapath pins on every flow (`TCP_CONGESTION`) when the daemon runs
    /// it, unless `plume-cc run --base` says otherwise.
    #[serde(default = "base_cc_default")]
    pub base_cc: String,
    /// The operating point `plume-cc run` uses without `--objective`.
    #[serde(default)]
    pub default_objective: crate::policy::Objective,
    /// Versions that wrote the file.
    pub versions: Versions,
    /// How it was trained.
    pub training: TrainingInfo,
    /// Hex SHA-256 of the weights file.
    pub weights_sha256: String,
}

fn torch_err(path: impl Into<PathBuf>, e: tch::TchError) -> PolicyError {
    PolicyError::Torch {
        path: path.into(),
        message: e.to_string().lines().next().unwrap_or("").to_string(),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn mismatch(
    path: &Path,
    field: &str,
    expected: impl ToString,
    found: impl ToString,
) -> PolicyError {
    PolicyError::Mismatch {
        path: path.to_path_buf(),
        field: field.to_string(),
        expected: expected.to_string(),
        found: found.to_string(),
    }
}

impl PolicyMetadata {
    /// Checks the metadata against this build (`spec`); `path` names the file in errors.
    pub fn check(&self, path: &Path, spec: &ObservationSpec) -> Result<(), PolicyError> {
        if self.format != FORMAT_NAME {
            return Err(mismatch(path, "format", FORMAT_NAME, &self.format));
        }
        if self.format_version != FORMAT_VERSION {
            return Err(mismatch(
                path,
                "format_version",
                FORMAT_VERSION,
                self.format_version,
            ));
        }
        if self.observation.version != spec.version {
            return Err(mismatch(
                path,
                "observation.version (retrain the policy with this build)",
                spec.version,
                self.observation.version,
            ));
        }
        if crate::congestion::ControllerKind::from_name(&self.base_cc).is_none() {
            return Err(mismatch(
                path,
                "base_cc",
                "cubic, bbr or reno",
                &self.base_cc,
            ));
        }
        if self.observation.len != spec.len {
            return Err(mismatch(
                path,
                "observation.len",
                spec.len,
                self.observation.len,
            ));
        }
        if self.observation.feature_names != spec.feature_names {
            let i = self
                .observation
                .feature_names
                .iter()
                .zip(&spec.feature_names)
                .position(|(a, b)| a != b)
                .unwrap_or(spec.len.min(self.observation.feature_names.len()));
            return Err(mismatch(
                path,
                &format!("observation.feature_names[{i}]"),
                spec.feature_names.get(i).map_or("<none>", |s| s.as_str()),
                self.observation
                    .feature_names
                    .get(i)
                    .map_or("<none>", |s| s.as_str()),
            ));
        }
        let a = &self.architecture;
        if a.obs_len != spec.len {
            return Err(mismatch(path, "architecture.obs_len", spec.len, a.obs_len));
        }
        if a.action_dim != super::model::ACTION_DIM {
            return Err(mismatch(
                path,
                "architecture.action_dim",
                super::model::ACTION_DIM,
                a.action_dim,
            ));
        }
        if a.activation != "tanh" {
            return Err(mismatch(
                path,
                "architecture.activation",
                "tanh",
                &a.activation,
            ));
        }
        if a.hidden.is_empty() || a.hidden.iter().any(|&h| h == 0 || h > 4096) {
            return Err(mismatch(
                path,
                "architecture.hidden",
                "1..=4096 per layer, at least one layer",
                format!("{:?}", a.hidden),
            ));
        }
        if self.normalization.len() != spec.len || !self.normalization.is_valid() {
            return Err(mismatch(
                path,
                "normalization",
                format!("{} finite means and non-negative variances", spec.len),
                format!(
                    "{} entries (valid: {})",
                    self.normalization.len(),
                    self.normalization.is_valid()
                ),
            ));
        }
        if !self.action_scaling.is_valid() {
            return Err(mismatch(
                path,
                "action_scaling",
                "positive spans and consistent bounds",
                format!("{:?}", self.action_scaling),
            ));
        }
        if self.monitor_interval_us == 0 {
            return Err(mismatch(path, "monitor_interval_us", "> 0", 0));
        }
        Ok(())
    }
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

fn read(path: &Path) -> Result<Vec<u8>, PolicyError> {
    std::fs::read(path).map_err(|source| PolicyError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), PolicyError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| PolicyError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    std::fs::write(path, bytes).map_err(|source| PolicyError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Parses safetensors bytes into named float tensors.
pub fn tensors_from_safetensors(
    bytes: &[u8],
    path: &Path,
) -> Result<Vec<(String, Tensor)>, PolicyError> {
    let st =
        safetensors::SafeTensors::deserialize(bytes).map_err(|e| PolicyError::Safetensors {
            path: path.to_path_buf(),
            message: format!("{e:?}"),
        })?;
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        if view.dtype() != safetensors::Dtype::F32 {
            return Err(mismatch(
                path,
                &format!("tensor {name} dtype"),
                "F32",
                format!("{:?}", view.dtype()),
            ));
        }
        let t = Tensor::try_from(view).map_err(|source| torch_err(path.to_path_buf(), source))?;
        out.push((name, t));
    }
    Ok(out)
}

/// Serialises named float tensors to safetensors bytes (sorted by name).
pub fn tensors_to_safetensors(
    named: &[(String, Tensor)],
    path: &Path,
) -> Result<Vec<u8>, PolicyError> {
    let mut data: Vec<(String, Vec<u8>, Vec<usize>)> = Vec::new();
    for (name, t) in named {
        let t = t.to_kind(Kind::Float).contiguous();
        let v: Vec<f32> = Vec::<f32>::try_from(t.flatten(0, -1))
            .map_err(|source| torch_err(path.to_path_buf(), source))?;
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        data.push((
            name.clone(),
            bytes,
            t.size().iter().map(|&d| d as usize).collect(),
        ));
    }
    data.sort_by(|a, b| a.0.cmp(&b.0));
    let views = data
        .iter()
        .map(|(n, b, s)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| PolicyError::Safetensors {
                    path: path.to_path_buf(),
                    message: format!("{e:?}"),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::tensor::serialize(views, &None).map_err(|e| PolicyError::Safetensors {
        path: path.to_path_buf(),
        message: format!("{e:?}"),
    })
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

/// Where the two halves of a policy live.
fn resolve(path: &Path) -> Result<(PathBuf, PathBuf), PolicyError> {
    if path.is_dir() {
        let json = path.join("policy.json");
        let weights_st = path.join("policy.safetensors");
        let weights_pt = path.join("policy.pt");
        let weights = if weights_st.exists() || !weights_pt.exists() {
            weights_st
        } else {
            weights_pt
        };
        return Ok((json, weights));
    }
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => {
            let st = path.with_extension("safetensors");
            let pt = path.with_extension("pt");
            let weights = if st.exists() || !pt.exists() { st } else { pt };
            Ok((path.to_path_buf(), weights))
        }
        Some("safetensors") | Some("pt") => Ok((path.with_extension("json"), path.to_path_buf())),
        _ => Err(PolicyError::UnknownKind {
            path: path.to_path_buf(),
        }),
    }
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
        let digest = sha256_hex(weights);
        if digest != meta.weights_sha256 {
            return Err(mismatch(
                weights_path,
                "weights_sha256",
                &meta.weights_sha256,
                digest,
            ));
        }
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

    /// Where it was loaded from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Deterministic raw actions for `n_flows` observations laid out
    /// row-major in `obs` (each [`ObservationSpec::len`] long, built by
    /// [`crate::policy::observation::ObservationBuilder`]), in ONE batched
    /// forward. Each action is in `[-1, 1]^2`; turn it into a `FlowTarget`
    /// with [`PolicyMetadata::action_scaling`] and the flow's
    /// [`crate::policy::FlowContext`].
    pub fn act_batch(&self, obs: &[f32], n_flows: usize) -> Result<Vec<[f32; 2]>, PolicyError> {
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

/// Saves a native policy: `dir/policy.safetensors` + `dir/policy.json`.
/// `with_critic` also stores the value head (checkpoints; the daemon ignores it).
/// Returns the metadata written.
#[allow(clippy::too_many_arguments)]
pub fn save_native(
    dir: &Path,
    model: &ActorCritic,
    norm: &ObsNormalizer,
    scaling: &ActionScaling,
    monitor_interval_us: u64,
    base_cc: &str,
    default_objective: crate::policy::Objective,
    training: TrainingInfo,
    with_critic: bool,
) -> Result<PolicyMetadata, PolicyError> {
    let weights_path = dir.join("policy.safetensors");
    let bytes = tensors_to_safetensors(&model.named_tensors(with_critic), &weights_path)?;
    let meta = PolicyMetadata {
        format: FORMAT_NAME.to_string(),
        format_version: FORMAT_VERSION,
        kind: ModelKind::Safetensors,
        architecture: model.architecture().clone(),
        observation: ObservationSpec {
            version: crate::policy::observation::OBSERVATION_VERSION,
            len: model.architecture().obs_len,
            feature_names: if model.architecture().obs_len == OBSERVATION_LEN {
                ObservationSpec::current().feature_names
            } else {
                (0..model.architecture().obs_len)
                    .map(|i| format!("f{i}"))
                    .collect()
            },
        },
        normalization: norm.clone(),
        action_scaling: *scaling,
        monitor_interval_us,
        base_cc: base_cc.to_string(),
        default_objective,
        versions: Versions::current(),
        training,
        weights_sha256: sha256_hex(&bytes),
    };
    write(&weights_path, &bytes)?;
    let json = serde_json::to_vec_pretty(&meta).map_err(|source| PolicyError::Json {
        path: dir.join("policy.json"),
        source,
    })?;
    write(&dir.join("policy.json"), &json)?;
    Ok(meta)
}

/// Reads a native policy with its critic, for resuming training.
pub fn load_trainable(dir: &Path) -> Result<(ActorCritic, PolicyMetadata), PolicyError> {
    let json_path = dir.join("policy.json");
    let weights_path = dir.join("policy.safetensors");
    let meta: PolicyMetadata =
        serde_json::from_slice(&read(&json_path)?).map_err(|source| PolicyError::Json {
            path: json_path.clone(),
            source,
        })?;
    let bytes = read(&weights_path)?;
    let digest = sha256_hex(&bytes);
    if digest != meta.weights_sha256 {
        return Err(mismatch(
            &weights_path,
            "weights_sha256",
            &meta.weights_sha256,
            digest,
        ));
    }
    let named = tensors_from_safetensors(&bytes, &weights_path)?;
    let model =
        ActorCritic::from_named(&meta.architecture, named).map_err(|(name, expected, found)| {
            if found.is_empty() {
                PolicyError::MissingTensor {
                    path: weights_path.clone(),
                    name,
                }
            } else {
                mismatch(
                    &weights_path,
                    &format!("tensor {name} shape"),
                    format!("{expected:?}"),
                    format!("{found:?}"),
                )
            }
        })?;
    Ok((model, meta))
}

#[cfg(test)]
mod tests {
    use super::*;

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
