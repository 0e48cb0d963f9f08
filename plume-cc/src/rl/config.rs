//! The settings of a training run ([`TrainConfig`], [`SamplerChoice`]) and
//! its errors ([`TrainError`]).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{EnvConfig, MonitorInterval};
use crate::congestion::{CcModel, ClampModel, ControllerKind};
use crate::policy::model::ActionScaling;
use crate::sim::{DatapathModel, QueueLimit};

use super::env::{PathRanges, RewardSpec};
use super::ppo::{PpoConfig, PpoError};

/// Errors of a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The corpus could not be read or cut.
    #[error("reading the traces")]
    Trace(#[from] crate::trace::TraceError),
    /// A scenario corpus could not be read or used.
    #[error("reading the scenario corpus")]
    ScenarioCorpus(#[from] crate::trace::scenario_corpus::ScenarioCorpusError),
    /// A scenario corpus record does not make a simulator scenario.
    #[error("scenario corpus window {file}")]
    Scenario {
        /// The window's file.
        file: String,
        /// Why.
        #[source]
        source: super::scenario::ScenarioError,
    },
    /// The run's window length differs from the scenario corpus'.
    #[error("the scenario corpus has {corpus_ms} ms windows; train with --window {corpus_ms}ms (got {run_ms} ms)")]
    WindowLength {
        /// The corpus' window length.
        corpus_ms: u64,
        /// The run's.
        run_ms: u64,
    },
    /// The clustering failed.
    #[error("clustering the windows")]
    Cluster(#[from] crate::plume::analysis::AnalysisError),
    /// The sampler could not be built.
    #[error("building the sampler")]
    Sampler(#[from] crate::plume::sampler::SamplerError),
    /// An environment failed.
    #[error(transparent)]
    Env(#[from] super::EnvError),
    /// PPO or the environments failed.
    #[error(transparent)]
    Ppo(#[from] PpoError),
    /// A policy file failed.
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    /// Snapshot selection was asked for with settings that select nothing,
    /// or found no validation window.
    #[error("snapshot selection: {0}")]
    Select(String),
    /// `--resume-from` names a policy whose contract differs from the run's.
    #[error("--resume-from {policy}: its {field} is {policy_value}, but this run's is {run_value}; fine-tune only a policy of the same contract (or change the run's flag)")]
    ResumeMismatch {
        /// The policy.
        policy: PathBuf,
        /// The field that differs.
        field: &'static str,
        /// The policy's value.
        policy_value: String,
        /// The run's value.
        run_value: String,
    },
    /// A log or result file failed.
    #[error("{path}: {message}")]
    Output {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

/// Which trace sampler picks each episode's window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum SamplerChoice {
    /// Every training window equally likely.
    Uniform,
    /// Plume-static: every cluster equally likely.
    PlumeStatic,
    /// Plume-dynamic: clusters weighted by return gap and prediction error.
    PlumeDynamic,
    /// Plume-dynamic with the return gap taken against the fixed rule's
    /// return on each window (`DynamicSampler::with_references`), not the
    /// raw return: not the published method, a fix of its reward-scale
    /// bias (docs/TRAINING.md, the sampler study).
    PlumeDynamicRef,
}

impl SamplerChoice {
    /// The CLI spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::Uniform => "uniform",
            Self::PlumeStatic => "plume-static",
            Self::PlumeDynamic => "plume-dynamic",
            Self::PlumeDynamicRef => "plume-dynamic-ref",
        }
    }
}

/// Settings of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Folder of Mahimahi traces.
    pub traces: PathBuf,
    /// Trace sampler.
    pub sampler: SamplerChoice,
    /// Environment steps in total (all environments together).
    pub total_steps: u64,
    /// Seed of everything random in the run.
    pub seed: u64,
    /// Output folder.
    pub out: PathBuf,
    /// Parallel environments.
    pub envs: usize,
    /// Window (episode) length, milliseconds.
    pub window_ms: u64,
    /// Every this many windows one is held out.
    pub holdout_every: usize,
    /// Held-out windows evaluated at most (spread evenly).
    pub eval_windows: usize,
    /// Monitor interval, microseconds.
    pub interval_us: u64,
    /// One-way propagation delay, microseconds (of training when
    /// `path_ranges` is None, and of the held-out evaluation always).
    pub one_way_delay_us: u64,
    /// Bottleneck droptail limit, packets (as `one_way_delay_us`).
    pub queue_packets: u32,
    /// Training paths drawn per episode (None: the fixed path above).
    #[serde(default)]
    pub path_ranges: Option<PathRanges>,
    /// The kernel-like controller under the policy's limits (recorded in the
    /// policy file as `base_cc`, and pinned by the datapath in deployment).
    #[serde(default = "cubic")]
    pub base: ControllerKind,
    /// Scenario distribution drawn per episode (path, competitors, loss,
    /// ACK path); when set it replaces `path_ranges`.
    #[serde(default)]
    pub scenarios: Option<super::scenario::ScenarioSpec>,
    /// The operating point of the held-out evaluation, and the policy
    /// file's default (`plume-cc run` without `--objective`).
    #[serde(default)]
    pub objective: crate::policy::Objective,
    /// Start from this policy's weights instead of random ones
    /// (`--resume-from`): a fine-tune. Left out of `config.json` when
    /// unset, so earlier runs' files stay as they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_from: Option<PathBuf>,
    /// Save a checkpoint every this many PPO iterations.
    pub checkpoint_every: usize,
    /// PPO settings.
    pub ppo: PpoConfig,
    /// Reward weights.
    pub reward: RewardSpec,
    /// Action mapping.
    pub scaling: ActionScaling,
    /// Command line recorded in the policy metadata.
    pub command: String,
    /// How the simulator applies the cwnd clamp ([`ClampModel`]); a run
    /// configuration written before the field existed was trained under
    /// [`ClampModel::Immediate`].
    #[serde(default = "immediate_clamp")]
    pub clamp_model: ClampModel,
    /// How the simulated datapath sees the flows and applies the policy's
    /// limits ([`DatapathModel`]); a run configuration written before the
    /// field existed was trained under [`DatapathModel::Interval`].
    #[serde(default = "interval_datapath")]
    pub datapath_model: DatapathModel,
    /// How closely the simulated controllers follow Linux's ([`CcModel`]);
    /// absent (every run before 2026-12-05): [`CcModel::Classic`].
    #[serde(default, skip_serializing_if = "is_classic")]
    pub cc_model: CcModel,
    /// Snapshot selection on validation windows (`--select-every`); None:
    /// the run's last weights are its policy, as every run before
    /// 2026-12-03. Left out of `config.json` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<SelectConfig>,
    /// The observation version the policy is trained on
    /// (`--observation-version`; [`crate::policy::observation`]). Left out
    /// of `config.json` at the default, so earlier runs' files stay as
    /// they were.
    #[serde(
        default = "default_observation_version",
        skip_serializing_if = "is_default_observation_version"
    )]
    pub observation_version: u32,
}

fn default_observation_version() -> u32 {
    crate::policy::observation::OBSERVATION_VERSION
}

fn is_default_observation_version(v: &u32) -> bool {
    *v == crate::policy::observation::OBSERVATION_VERSION
}

/// Snapshot selection: every `every_steps` environment steps (and at the
/// end) the run scores its current weights on the evaluation matrix's cells
/// (`rl::matrix`) over `windows` validation windows, at each operating point
/// of `objectives`; the best (weights, operating point) becomes the policy,
/// with that operating point as its default. Validation windows are held-out
/// windows that neither the run's held-out report nor `eval matrix` uses
/// ([`super::matrix::validation_positions`]), so those stay measurements on
/// data the selection never saw.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SelectConfig {
    /// Environment steps between snapshots.
    pub every_steps: u64,
    /// Validation windows per cell.
    pub windows: usize,
    /// Operating points each snapshot is scored at (the policy's default
    /// objective is chosen among them).
    pub objectives: Vec<crate::policy::Objective>,
}

impl SelectConfig {
    /// Refuses settings that would select nothing: no steps between
    /// snapshots, no window, no operating point.
    pub fn validate(&self) -> Result<(), TrainError> {
        if self.every_steps == 0 || self.windows == 0 || self.objectives.is_empty() {
            return Err(TrainError::Select(format!(
                "--select-every must be at least one step (got {}), --select-windows at least 1 (got {}), and --select-objectives must name at least one operating point (got {})",
                self.every_steps,
                self.windows,
                self.objectives.len()
            )));
        }
        Ok(())
    }
}

fn immediate_clamp() -> ClampModel {
    ClampModel::Immediate
}

fn interval_datapath() -> DatapathModel {
    DatapathModel::Interval
}

fn is_classic(m: &CcModel) -> bool {
    *m == CcModel::Classic
}

impl TrainConfig {
    /// Defaults for `traces`, `sampler`, `total_steps`, `seed`, `out`.
    pub fn new(
        traces: PathBuf,
        sampler: SamplerChoice,
        total_steps: u64,
        seed: u64,
        out: PathBuf,
    ) -> Self {
        Self {
            traces,
            sampler,
            total_steps,
            seed,
            out,
            envs: 16,
            window_ms: 10_000,
            holdout_every: 5,
            eval_windows: 40,
            interval_us: 20_000,
            one_way_delay_us: 20_000,
            queue_packets: 250,
            path_ranges: None,
            base: ControllerKind::Cubic,
            scenarios: None,
            objective: crate::policy::Objective::default(),
            resume_from: None,
            checkpoint_every: 10,
            ppo: PpoConfig::default(),
            reward: RewardSpec::default(),
            scaling: ActionScaling::default(),
            command: String::new(),
            clamp_model: ClampModel::default(),
            datapath_model: DatapathModel::default(),
            cc_model: CcModel::Classic,
            select: None,
            observation_version: crate::policy::observation::OBSERVATION_VERSION,
        }
    }

    /// How this run's simulator models the kernel: its clamp, datapath and
    /// controller models; a spurious timeout stands and the min RTT takes
    /// the echoed sample, as in every run so far (its reproduction
    /// hashes). The episodes and the validation scoring both use it.
    pub fn sim_models(&self) -> super::matrix::SimModels {
        super::matrix::SimModels {
            clamp: self.clamp_model,
            datapath: self.datapath_model,
            timeout: crate::sim::TimeoutModel::Plain,
            min_rtt: crate::sim::MinRttSample::Echoed,
            cc_model: self.cc_model,
        }
    }

    /// The simulator environment of this run, with base controller `base`.
    pub fn env_config(&self, base: ControllerKind) -> EnvConfig {
        let config = EnvConfig {
            base,
            competing: Vec::new(),
            competing_start_us: Vec::new(),
            peer_start_us: Vec::new(),
            one_way_delay_us: self.one_way_delay_us,
            queue_limit: QueueLimit::packets(self.queue_packets),
            random_loss: 0.0,
            delayed_ack: false,
            objective: self.objective,
            interval: MonitorInterval::FixedUs(self.interval_us),
            episode_us: Some(self.window_ms * 1000),
            ..EnvConfig::default()
        }
        .mapped(self.observation_version, &self.scaling);
        self.sim_models().simulating(config)
    }
}

fn cubic() -> ControllerKind {
    ControllerKind::Cubic
}
