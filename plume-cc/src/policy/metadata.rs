//! The policy file's metadata ([`PolicyMetadata`], `NAME.json`): what a
//! policy promises (format, architecture, observation layout, action
//! scaling, monitor interval, base controller, how it was trained, the
//! weights' checksum), its errors, and the checks a file must pass against
//! this build before it runs.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::congestion::ClampModel;
use crate::sim::DatapathModel;

use super::model::{ActionScaling, Architecture, ObsNormalizer};
use super::observation::{feature_name_of, OBSERVATION_LEN, SUPPORTED_OBSERVATION_VERSIONS};

/// Value of [`PolicyMetadata::format`].
pub const FORMAT_NAME: &str = "plume-cc-policy";
/// Version of the metadata layout this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

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
    /// The layout of this build's [`crate::policy::observation`] builder at
    /// its default version ([`crate::policy::observation::OBSERVATION_VERSION`]).
    pub fn current() -> Self {
        Self::for_version(crate::policy::observation::OBSERVATION_VERSION)
    }

    /// The layout of observation `version` (names as this build gives them).
    pub fn for_version(version: u32) -> Self {
        Self {
            version,
            len: OBSERVATION_LEN,
            feature_names: (0..OBSERVATION_LEN)
                .filter_map(|i| feature_name_of(version, i))
                .collect(),
        }
    }

    /// What a policy of observation `version` is checked against: that
    /// version's layout when this build can build it (so a policy is fed
    /// the observation it was trained on), else [`Self::current`], whose
    /// version check then refuses it.
    pub fn to_check(version: u32) -> Self {
        if SUPPORTED_OBSERVATION_VERSIONS.contains(&version) {
            Self::for_version(version)
        } else {
            Self::current()
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
    /// How the simulator applied the cwnd clamp in training; absent in
    /// files written before 2026-12-02, which were all trained under
    /// [`ClampModel::Immediate`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sim_clamp: Option<ClampModel>,
    /// How the simulated datapath saw the flows in training; absent in
    /// files written before 2026-12-03, which were all trained under
    /// [`DatapathModel::Interval`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sim_datapath: Option<DatapathModel>,
    /// How closely the simulated controllers followed Linux's in training;
    /// absent: [`crate::congestion::CcModel::Classic`] (every file before
    /// 2026-12-05, and those trained so since).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sim_cc: Option<crate::congestion::CcModel>,
    /// The snapshot the run selected on validation windows
    /// (`train --select-every`); absent when the run's last weights are
    /// the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selected: Option<Selected>,
    /// Changes made to the action mapping after training
    /// (`plume-cc policy derive`, `policy/derive.rs`), one command line
    /// each, in order; absent when the file is the run's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub derived: Vec<String>,
}

/// Which snapshot a run with snapshot selection kept, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Selected {
    /// Environment steps of the kept snapshot.
    pub steps: u64,
    /// Its operating point, the policy's default objective.
    pub objective: crate::policy::Objective,
    /// Mean matrix score on the validation windows.
    pub validation_score: f64,
    /// Validation windows per cell.
    pub validation_windows: usize,
}

// `TrainingInfo` is `Eq`; the score is a finite mean, compared as written.
impl Eq for Selected {}

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

pub(crate) fn mismatch(
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
        if let Some((field, allowed, found)) = self.action_scaling.invalid_field() {
            return Err(mismatch(
                path,
                &format!("action_scaling.{field}"),
                allowed,
                found,
            ));
        }
        if self.monitor_interval_us == 0 {
            return Err(mismatch(path, "monitor_interval_us", "> 0", 0));
        }
        Ok(())
    }
}
