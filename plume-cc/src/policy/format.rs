//! The policy file's formats on disk: safetensors weights beside the JSON
//! metadata (read, written, checksummed), where the two halves of a policy
//! live, and saving and loading a trainable policy.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tch::{Kind, Tensor};

use super::metadata::{
    mismatch, ModelKind, ObservationSpec, PolicyError, PolicyMetadata, TrainingInfo, Versions,
    FORMAT_NAME, FORMAT_VERSION,
};
use super::model::{ActionScaling, ActorCritic, ObsNormalizer};
use super::observation::OBSERVATION_LEN;

pub(crate) fn torch_err(path: impl Into<PathBuf>, e: tch::TchError) -> PolicyError {
    PolicyError::Torch {
        path: path.into(),
        message: e.to_string().lines().next().unwrap_or("").to_string(),
    }
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, PolicyError> {
    std::fs::read(path).map_err(|source| PolicyError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Refuses `weights` (read from `path`) unless their SHA-256 is the one
/// `meta` records; the error names the file and both digests.
pub(crate) fn check_weights(
    meta: &PolicyMetadata,
    weights: &[u8],
    path: &Path,
) -> Result<(), PolicyError> {
    let digest = sha256_hex(weights);
    if digest != meta.weights_sha256 {
        return Err(mismatch(
            path,
            "weights_sha256",
            &meta.weights_sha256,
            digest,
        ));
    }
    Ok(())
}

pub(crate) fn write(path: &Path, bytes: &[u8]) -> Result<(), PolicyError> {
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

/// A policy's metadata (the JSON half, parsed, not checked against this
/// build) from a folder or either file of a pair, with the paths of its
/// two halves: what every reader of a policy file starts with.
pub(crate) fn read_metadata_at(
    path: &Path,
) -> Result<(PolicyMetadata, PathBuf, PathBuf), PolicyError> {
    let (json_path, weights_path) = resolve(path)?;
    let meta = serde_json::from_slice(&read(&json_path)?).map_err(|source| PolicyError::Json {
        path: json_path.clone(),
        source,
    })?;
    Ok((meta, json_path, weights_path))
}

/// A policy's metadata, as [`read_metadata_at`] reads it, without loading
/// its weights (no libtorch): e.g. to take a policy's action mapping for a
/// fine-tune of it.
pub fn read_metadata(path: &Path) -> Result<PolicyMetadata, PolicyError> {
    read_metadata_at(path).map(|(meta, _, _)| meta)
}

/// Where the two halves of a policy live.
pub(crate) fn resolve(path: &Path) -> Result<(PathBuf, PathBuf), PolicyError> {
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
    observation_version: u32,
) -> Result<PolicyMetadata, PolicyError> {
    let weights_path = dir.join("policy.safetensors");
    let bytes = tensors_to_safetensors(&model.named_tensors(with_critic), &weights_path)?;
    let meta = PolicyMetadata {
        format: FORMAT_NAME.to_string(),
        format_version: FORMAT_VERSION,
        kind: ModelKind::Safetensors,
        architecture: model.architecture().clone(),
        observation: ObservationSpec {
            version: observation_version,
            len: model.architecture().obs_len,
            feature_names: if model.architecture().obs_len == OBSERVATION_LEN {
                ObservationSpec::for_version(observation_version).feature_names
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
    check_weights(&meta, &bytes, &weights_path)?;
    let named = tensors_from_safetensors(&bytes, &weights_path)?;
    let model = model_from_named(&meta, named, &weights_path)?;
    Ok((model, meta))
}

/// Reads a native policy to fine-tune it (`plume-cc train --resume-from`):
/// a folder or `NAME.json` as the daemon takes it. A shipped policy holds
/// no critic (the daemon needs none), so a missing value head is drawn
/// fresh from `seed` as [`ActorCritic::new`] would; a checkpoint's critic
/// is kept. The actor, its log-std and the observation normalisation are
/// the policy's own, which is the point: training starts where the policy
/// stands instead of from random weights.
///
/// The caller checks the contract (observation, interval, base, action
/// scaling) against its run; this checks the file: its checksum and that
/// its weights are safetensors of its architecture.
pub fn load_for_finetune(
    path: &Path,
    init_log_std: f32,
    seed: u64,
) -> Result<(ActorCritic, PolicyMetadata), PolicyError> {
    let (meta, json_path, weights_path) = read_metadata_at(path)?;
    if meta.kind != ModelKind::Safetensors {
        return Err(mismatch(
            &json_path,
            "kind",
            "safetensors (a TorchScript export cannot be trained further)",
            format!("{:?}", meta.kind).to_lowercase(),
        ));
    }
    let bytes = read(&weights_path)?;
    check_weights(&meta, &bytes, &weights_path)?;
    let mut named = tensors_from_safetensors(&bytes, &weights_path)?;
    if !named.iter().any(|(n, _)| n.starts_with("critic.")) {
        let fresh = ActorCritic::new(&meta.architecture, init_log_std, seed);
        named.extend(
            fresh
                .named_tensors(true)
                .into_iter()
                .filter(|(n, _)| n.starts_with("critic.")),
        );
    }
    let model = model_from_named(&meta, named, &weights_path)?;
    Ok((model, meta))
}

/// The trainable network from named tensors, a missing or misshapen tensor
/// named in the error (shared by loading and resuming a policy).
fn model_from_named(
    meta: &PolicyMetadata,
    named: Vec<(String, Tensor)>,
    weights_path: &Path,
) -> Result<ActorCritic, PolicyError> {
    ActorCritic::from_named(&meta.architecture, named).map_err(|(name, expected, found)| {
        if found.is_empty() {
            PolicyError::MissingTensor {
                path: weights_path.to_path_buf(),
                name,
            }
        } else {
            mismatch(
                weights_path,
                &format!("tensor {name} shape"),
                format!("{expected:?}"),
                format!("{found:?}"),
            )
        }
    })
}
