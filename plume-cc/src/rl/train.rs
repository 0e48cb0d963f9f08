//! A whole training run: trace corpus -> Plume clustering -> sampler -> PPO
//! over simulated environments -> checkpoints, logs, learning curves ->
//! evaluation on held-out windows against the simulator's CUBIC and BBR-like
//! controllers.
//!
//! Windows: the corpus is cut into back-to-back windows of `window_ms`;
//! windows without any delivery opportunity are dropped; every
//! `holdout_every`-th window (index `% holdout_every == holdout_every - 1`) is
//! held out for evaluation, the rest are sampled for training. The
//! clustering (Plume stages 1-2) runs on all windows with a fixed seed (it
//! sees capacities only, never results), so every run and seed shares the
//! same clusters and per-cluster scores compare.
//!
//! Evaluation scores each controller per held-out window with the
//! simulator's Pantheon-style metrics: utilization, 95th-percentile RTT over
//! the min RTT ("p95 delay ratio"), and `power = utilization / p95 delay ratio`
//! (1 is ideal: full link, no queue).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::{EnvConfig, MonitorInterval, VecEnv};
use crate::congestion::ControllerKind;
use crate::plume::{
    self, DynamicParams, DynamicSampler, StaticSampler, TraceSampler, UniformSampler,
};
use crate::policy::file::{self, TrainingInfo};
use crate::policy::model::{ActionScaling, InferenceNet};
use crate::policy::observation::OBSERVATION_LEN;
use crate::policy::Target;
use crate::sim::QueueLimit;
use crate::trace::corpus::Corpus;
use crate::trace::window::WindowSpec;

use super::env::{sim_actions, EpisodeRecord, PathRanges, RewardSpec, SimBatch, SimWindow};
use super::ppo::{Ppo, PpoConfig, PpoError, UpdateStats};

/// Errors of a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The corpus could not be read or cut.
    #[error("traces: {0}")]
    Trace(String),
    /// The clustering failed.
    #[error("clustering: {0}")]
    Cluster(String),
    /// The sampler could not be built.
    #[error("sampler: {0}")]
    Sampler(String),
    /// PPO or the environments failed.
    #[error(transparent)]
    Ppo(#[from] PpoError),
    /// A policy file failed.
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum SamplerChoice {
    /// Every training window equally likely.
    Uniform,
    /// Plume-static: every cluster equally likely.
    PlumeStatic,
    /// Plume-dynamic: clusters weighted by return gap and prediction error.
    PlumeDynamic,
}

impl SamplerChoice {
    /// The CLI spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::Uniform => "uniform",
            Self::PlumeStatic => "plume-static",
            Self::PlumeDynamic => "plume-dynamic",
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
            checkpoint_every: 10,
            ppo: PpoConfig::default(),
            reward: RewardSpec::default(),
            scaling: ActionScaling::default(),
            command: String::new(),
        }
    }

    /// The simulator environment of this run, with base controller `base`.
    pub fn env_config(&self, base: ControllerKind) -> EnvConfig {
        EnvConfig {
            base,
            competing: Vec::new(),
            competing_start_us: Vec::new(),
            one_way_delay_us: self.one_way_delay_us,
            queue_limit: QueueLimit::packets(self.queue_packets),
            random_loss: 0.0,
            delayed_ack: false,
            objective: self.objective,
            interval: MonitorInterval::FixedUs(self.interval_us),
            episode_us: Some(self.window_ms * 1000),
        }
    }
}

fn cubic() -> ControllerKind {
    ControllerKind::Cubic
}

/// The corpus as simulator windows, with clusters and the split.
#[derive(Clone, Debug)]
pub struct PreparedCorpus {
    /// Every usable window.
    pub windows: Arc<Vec<SimWindow>>,
    /// Name of each window (`trace@start_ms`).
    pub names: Vec<String>,
    /// Hard cluster label of each window.
    pub labels: Vec<usize>,
    /// Soft memberships (windows x k).
    pub memberships: ndarray::Array2<f64>,
    /// Standardised selected features (windows x f), the dynamic sampler's inputs.
    pub features: ndarray::Array2<f64>,
    /// Training window indices.
    pub train: Vec<usize>,
    /// Held-out window indices.
    pub heldout: Vec<usize>,
}

impl PreparedCorpus {
    /// Number of clusters.
    pub fn clusters(&self) -> usize {
        self.memberships.ncols()
    }
}

/// Reads the traces, cuts windows, clusters them and splits them (see module docs).
pub fn prepare_corpus(
    dir: &Path,
    window_ms: u64,
    holdout_every: usize,
) -> Result<PreparedCorpus, TrainError> {
    let spec = WindowSpec::non_overlapping(window_ms, 100);
    let corpus = Corpus::from_dir(dir, spec, 0).map_err(|e| TrainError::Trace(e.to_string()))?;
    let mut keep = Vec::new();
    let mut windows = Vec::new();
    let mut names = Vec::new();
    for (i, w) in corpus.windows.iter().enumerate() {
        let t = &corpus.traces[w.trace];
        if let Some(sw) = SimWindow::cut(t.trace.timestamps_ms(), w.start_ms, window_ms) {
            if sw.mean_mbps >= 0.1 {
                keep.push(i);
                windows.push(sw);
                names.push(format!("{}@{}", t.name, w.start_ms));
            }
        }
    }
    let kept = Corpus {
        traces: corpus.traces.clone(),
        windows: keep.iter().map(|&i| corpus.windows[i].clone()).collect(),
        spec,
    };
    let analysis = plume::analyze(&kept, &plume::AnalysisParams::with_starts(0, 4), &|_| {})
        .map_err(|e| TrainError::Cluster(e.to_string()))?;
    let h = holdout_every.max(2);
    let (heldout, train): (Vec<usize>, Vec<usize>) =
        (0..windows.len()).partition(|i| i % h == h - 1);
    Ok(PreparedCorpus {
        windows: Arc::new(windows),
        names,
        labels: analysis.labels.clone(),
        memberships: analysis.memberships.clone(),
        features: analysis.z_selected.clone(),
        train,
        heldout,
    })
}

/// The sampler over the training windows.
pub fn build_sampler(
    choice: SamplerChoice,
    corpus: &PreparedCorpus,
    seed: u64,
) -> Result<Box<dyn TraceSampler>, TrainError> {
    let rows = &corpus.train;
    let m = corpus.memberships.select(ndarray::Axis(0), rows);
    let err = |e: plume::sampler::SamplerError| TrainError::Sampler(e.to_string());
    Ok(match choice {
        SamplerChoice::Uniform => Box::new(UniformSampler::new(rows.len()).map_err(err)?),
        SamplerChoice::PlumeStatic => Box::new(StaticSampler::plume_static(&m, 0.1).map_err(err)?),
        SamplerChoice::PlumeDynamic => {
            let f = corpus.features.select(ndarray::Axis(0), rows);
            let params = DynamicParams {
                update_every: 16,
                warmup: 32,
                seed,
                ..DynamicParams::default()
            };
            Box::new(DynamicSampler::new(m, f, params).map_err(err)?)
        }
    })
}

/// One line of the training log.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LogRow {
    /// PPO iteration (1-based).
    pub iteration: usize,
    /// Environment steps so far.
    pub env_steps: u64,
    /// Mean reward per step of the rollout.
    pub rollout_reward: f64,
    /// Episodes finished in this iteration.
    pub episodes: usize,
    /// Mean episode reward of those episodes (NaN if none; `null` in JSON).
    #[serde(deserialize_with = "nan_if_null")]
    pub episode_reward: f64,
    /// Their mean throughput share of capacity.
    #[serde(deserialize_with = "nan_if_null")]
    pub throughput_share: f64,
    /// Their mean queueing delay over min RTT.
    #[serde(deserialize_with = "nan_if_null")]
    pub delay_ratio: f64,
    /// Mean episode reward per cluster (NaN where no episode ended).
    #[serde(deserialize_with = "nans_if_null")]
    pub cluster_reward: Vec<f64>,
    /// Sampler's cluster targets (empty for uniform).
    pub cluster_targets: Vec<f64>,
    /// PPO statistics.
    pub update: UpdateStats,
}

fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

fn nans_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    Ok(Vec::<Option<f64>>::deserialize(d)?
        .into_iter()
        .map(|v| v.unwrap_or(f64::NAN))
        .collect())
}

/// Scores of one controller on one window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowScore {
    /// Delivered / capacity.
    pub utilization: f64,
    /// 95th-percentile RTT, milliseconds.
    pub p95_rtt_ms: f64,
    /// 95th-percentile RTT over the min RTT.
    pub p95_delay_ratio: f64,
    /// `utilization / p95_delay_ratio`.
    pub power: f64,
}

/// Mean scores of one controller, overall and per cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ControllerScores {
    /// Controller name.
    pub name: String,
    /// Mean over all evaluated windows.
    pub overall: WindowScore,
    /// Mean per cluster (zeros where no held-out window falls).
    pub per_cluster: Vec<WindowScore>,
    /// Windows per cluster.
    pub cluster_windows: Vec<usize>,
    /// The cluster with the lowest mean power.
    pub worst_cluster: usize,
    /// Its mean scores.
    pub worst: WindowScore,
}

/// The evaluation of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Held-out windows evaluated.
    pub windows: Vec<String>,
    /// Policy, CUBIC, BBR-like.
    pub controllers: Vec<ControllerScores>,
}

fn mean_score(s: &[WindowScore]) -> WindowScore {
    let n = s.len().max(1) as f64;
    WindowScore {
        utilization: s.iter().map(|x| x.utilization).sum::<f64>() / n,
        p95_rtt_ms: s.iter().map(|x| x.p95_rtt_ms).sum::<f64>() / n,
        p95_delay_ratio: s.iter().map(|x| x.p95_delay_ratio).sum::<f64>() / n,
        power: s.iter().map(|x| x.power).sum::<f64>() / n,
    }
}

/// Who acts in an evaluation.
#[derive(Clone, Copy, Debug)]
pub enum Actor<'a> {
    /// The base controller alone (no limits).
    Base,
    /// The fixed rule: action 0 every interval (what a policy that learned
    /// nothing does: the action scaling's gains around the rate anchor).
    FixedRule,
    /// A learned network.
    Policy(&'a InferenceNet),
}

/// Runs `actor` on every window of `windows` in parallel environments, one
/// batched forward per step.
pub fn score_windows(
    config: &TrainConfig,
    base: ControllerKind,
    actor: Actor<'_>,
    windows: &[&SimWindow],
    seed: u64,
) -> Result<Vec<WindowScore>, TrainError> {
    let env_err = |e: super::EnvError| TrainError::Ppo(PpoError::Env(e.to_string()));
    let mut envs = VecEnv::new(windows.len(), &config.env_config(base)).map_err(env_err)?;
    let traces: Vec<_> = windows.iter().map(|w| Arc::clone(&w.trace)).collect();
    let seeds: Vec<u64> = (0..windows.len() as u64)
        .map(|i| seed ^ (i * 7919))
        .collect();
    let mut obs = envs.reset_all(&traces, &seeds).map_err(env_err)?;
    let mut done = vec![false; windows.len()];
    let min_rtt_ms = 2.0 * config.one_way_delay_us as f64 / 1000.0;
    while !done.iter().all(|&d| d) {
        let actions = match actor {
            Actor::Base => vec![Target::unlimited(); windows.len()],
            Actor::FixedRule => {
                let raw = vec![[0.0f32; 2]; windows.len()];
                sim_actions(&config.scaling, &obs, &raw, envs.envs_mut())
            }
            Actor::Policy(net) => {
                let flat: Vec<f32> = obs.iter().flatten().copied().collect();
                let x = Tensor::from_slice(&flat)
                    .reshape([windows.len() as i64, OBSERVATION_LEN as i64]);
                let a = Vec::<f32>::try_from(tch::no_grad(|| net.forward(&x)).flatten(0, -1))
                    .map_err(|e| TrainError::Ppo(PpoError::Torch(e)))?;
                let raw: Vec<[f32; 2]> = a.chunks_exact(2).map(|c| [c[0], c[1]]).collect();
                sim_actions(&config.scaling, &obs, &raw, envs.envs_mut())
            }
        };
        // Finished environments would error on step; all windows have the same length so they end together.
        let res = envs.step_all(&actions).map_err(env_err)?;
        for (i, r) in res.iter().enumerate() {
            obs[i] = r.observation;
            done[i] = r.done;
        }
    }
    Ok(envs
        .metrics()
        .iter()
        .map(|m| {
            let p95 = m.p95_rtt_us as f64 / 1000.0;
            let ratio = (p95 / min_rtt_ms).max(1.0);
            WindowScore {
                utilization: m.utilization,
                p95_rtt_ms: p95,
                p95_delay_ratio: ratio,
                power: m.utilization / ratio,
            }
        })
        .collect())
}

/// Evaluates `policy` against CUBIC and BBR-like on the held-out windows.
pub fn evaluate(
    config: &TrainConfig,
    corpus: &PreparedCorpus,
    policy: &InferenceNet,
) -> Result<Evaluation, TrainError> {
    let h = &corpus.heldout;
    let take = config.eval_windows.max(1).min(h.len());
    let idx: Vec<usize> = (0..take).map(|j| h[j * h.len() / take]).collect();
    let windows: Vec<&SimWindow> = idx.iter().map(|&i| &corpus.windows[i]).collect();
    let k = corpus.clusters();
    let mut controllers = Vec::new();
    for (name, base, pol) in [
        (
            match config.base {
                ControllerKind::Cubic => "plume-cc policy (over CUBIC)",
                ControllerKind::Bbr => "plume-cc policy (over BBR-like)",
                ControllerKind::Reno => "plume-cc policy (over Reno)",
            },
            config.base,
            Actor::Policy(policy),
        ),
        ("fixed rule (action 0)", config.base, Actor::FixedRule),
        ("CUBIC", ControllerKind::Cubic, Actor::Base),
        ("BBR-like", ControllerKind::Bbr, Actor::Base),
    ] {
        let scores = score_windows(config, base, pol, &windows, 0xe7a1)?;
        let mut per_cluster = Vec::new();
        let mut counts = Vec::new();
        for c in 0..k {
            let s: Vec<WindowScore> = idx
                .iter()
                .zip(&scores)
                .filter(|(&i, _)| corpus.labels[i] == c)
                .map(|(_, s)| *s)
                .collect();
            counts.push(s.len());
            per_cluster.push(mean_score(&s));
        }
        let worst_cluster = (0..k)
            .filter(|&c| counts[c] > 0)
            .min_by(|&a, &b| per_cluster[a].power.total_cmp(&per_cluster[b].power))
            .unwrap_or(0);
        controllers.push(ControllerScores {
            name: name.to_string(),
            overall: mean_score(&scores),
            worst: per_cluster.get(worst_cluster).copied().unwrap_or_default(),
            per_cluster,
            cluster_windows: counts,
            worst_cluster,
        });
    }
    Ok(Evaluation {
        windows: idx.iter().map(|&i| corpus.names[i].clone()).collect(),
        controllers,
    })
}

impl Evaluation {
    /// A markdown table: overall and worst-cluster scores per controller.
    pub fn table(&self) -> String {
        let mut s = String::from(
            "| controller | utilization | p95 RTT (ms) | p95 RTT / min RTT | power | worst cluster | worst-cluster power |\n|---|---|---|---|---|---|---|\n",
        );
        for c in &self.controllers {
            s.push_str(&format!(
                "| {} | {:.3} | {:.1} | {:.2} | {:.3} | {} | {:.3} |\n",
                c.name,
                c.overall.utilization,
                c.overall.p95_rtt_ms,
                c.overall.p95_delay_ratio,
                c.overall.power,
                c.worst_cluster,
                c.worst.power
            ));
        }
        s
    }
}

/// Progress of a run, for the caller's display.
pub trait Progress {
    /// After every iteration.
    fn iteration(&mut self, row: &LogRow, total_iterations: usize);
    /// A free-form status line.
    fn message(&mut self, text: &str);
}

fn out_err(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Output {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| out_err(d, e))?;
    }
    std::fs::write(path, bytes).map_err(|e| out_err(path, e))
}

/// Resume state saved with every checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ResumeState {
    /// Iterations done.
    pub iteration: usize,
    /// Environment steps done.
    pub env_steps: u64,
    /// The log so far.
    pub log: Vec<LogRow>,
}

/// The result of [`train`].
#[derive(Debug)]
pub struct TrainOutcome {
    /// Final evaluation.
    pub evaluation: Evaluation,
    /// The log.
    pub log: Vec<LogRow>,
    /// Where the final policy is.
    pub policy_dir: PathBuf,
}

/// Runs training (see module docs). Writes into `config.out`:
/// `policy/` (final policy, no critic), `checkpoint/` (policy with critic +
/// `state.json`), `log.csv`, `log.json`, `curves.png`, `eval.json`,
/// `eval.md`, `config.json`, `clusters.json`. With `resume`, continues from
/// `checkpoint/` if present (Adam moments and environment states restart).
pub fn train(
    config: &TrainConfig,
    resume: bool,
    progress: &mut dyn Progress,
) -> Result<TrainOutcome, TrainError> {
    let out = &config.out;
    progress.message("reading and clustering traces");
    let corpus = prepare_corpus(&config.traces, config.window_ms, config.holdout_every)?;
    progress.message(&format!(
        "{} windows ({} train, {} held out), {} clusters",
        corpus.windows.len(),
        corpus.train.len(),
        corpus.heldout.len(),
        corpus.clusters()
    ));
    write_file(
        &out.join("config.json"),
        &serde_json::to_vec_pretty(config).map_err(|e| out_err(out, e))?,
    )?;
    let clusters: Vec<(String, usize, bool)> = (0..corpus.windows.len())
        .map(|i| {
            (
                corpus.names[i].clone(),
                corpus.labels[i],
                corpus.heldout.contains(&i),
            )
        })
        .collect();
    write_file(
        &out.join("clusters.json"),
        &serde_json::to_vec_pretty(&clusters).map_err(|e| out_err(out, e))?,
    )?;

    let per_iter = (config.envs * config.ppo.steps) as u64;
    let iterations = config.total_steps.div_ceil(per_iter).max(1) as usize;
    let ckpt = out.join("checkpoint");
    let (mut ppo, mut state) = if resume && ckpt.join("state.json").exists() {
        let (model, meta) = file::load_trainable(&ckpt)?;
        let s: ResumeState = serde_json::from_slice(
            &std::fs::read(ckpt.join("state.json")).map_err(|e| out_err(&ckpt, e))?,
        )
        .map_err(|e| out_err(&ckpt, e))?;
        progress.message(&format!("resuming at iteration {}", s.iteration));
        (
            Ppo::from_model(model, meta.normalization, config.ppo.clone())?,
            s,
        )
    } else {
        (
            Ppo::new(OBSERVATION_LEN, config.ppo.clone(), config.seed)?,
            ResumeState {
                iteration: 0,
                env_steps: 0,
                log: Vec::new(),
            },
        )
    };
    let run_seed = config.seed ^ (state.iteration as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let sampler = build_sampler(config.sampler, &corpus, run_seed)?;
    let mut batch = SimBatch::new(
        config.envs,
        &config.env_config(config.base),
        Arc::clone(&corpus.windows),
        corpus.train.clone(),
        sampler,
        config.scaling,
        config.reward,
        run_seed ^ 1,
        config.path_ranges,
        config.scenarios.clone(),
    )?;
    let mut rng = ChaCha8Rng::seed_from_u64(run_seed ^ 2);
    let training = |steps: u64| TrainingInfo {
        command: config.command.clone(),
        seed: config.seed,
        sampler: config.sampler.name().to_string(),
        steps,
    };
    let k = corpus.clusters();
    while state.iteration < iterations {
        let rollout = ppo.collect(&mut batch, &mut rng)?;
        let update = ppo.update(
            &rollout,
            state.iteration as f64 / iterations as f64,
            &mut rng,
        )?;
        state.iteration += 1;
        state.env_steps += per_iter;
        let eps: Vec<EpisodeRecord> = batch.drain_episodes();
        let mean = |f: &dyn Fn(&EpisodeRecord) -> f64, e: &[EpisodeRecord]| {
            if e.is_empty() {
                f64::NAN
            } else {
                e.iter().map(f).sum::<f64>() / e.len() as f64
            }
        };
        let cluster_reward = (0..k)
            .map(|c| {
                let e: Vec<EpisodeRecord> = eps
                    .iter()
                    .filter(|r| corpus.labels[r.window] == c)
                    .copied()
                    .collect();
                mean(&|r| r.mean_reward, &e)
            })
            .collect();
        let row = LogRow {
            iteration: state.iteration,
            env_steps: state.env_steps,
            rollout_reward: rollout.rewards.iter().map(|&r| f64::from(r)).sum::<f64>()
                / rollout.rewards.len().max(1) as f64,
            episodes: eps.len(),
            episode_reward: mean(&|r| r.mean_reward, &eps),
            throughput_share: mean(&|r| r.mean_share, &eps),
            delay_ratio: mean(&|r| r.mean_delay, &eps),
            cluster_reward,
            cluster_targets: batch.sampler().cluster_targets(),
            update,
        };
        progress.iteration(&row, iterations);
        state.log.push(row);
        if state.iteration % config.checkpoint_every.max(1) == 0 || state.iteration == iterations {
            file::save_native(
                &ckpt,
                &ppo.model,
                &ppo.norm,
                &config.scaling,
                config.interval_us,
                config.base.name(),
                config.objective,
                training(state.env_steps),
                true,
            )?;
            write_file(
                &ckpt.join("state.json"),
                &serde_json::to_vec(&state).map_err(|e| out_err(&ckpt, e))?,
            )?;
            write_logs(out, &state.log)?;
        }
    }
    let policy_dir = out.join("policy");
    file::save_native(
        &policy_dir,
        &ppo.model,
        &ppo.norm,
        &config.scaling,
        config.interval_us,
        config.base.name(),
        config.objective,
        training(state.env_steps),
        false,
    )?;
    write_logs(out, &state.log)?;
    if let Err(e) = super::plot::learning_curves(&out.join("curves.png"), &state.log, k) {
        progress.message(&format!("learning-curve plot skipped: {e}"));
    }
    progress.message("evaluating on held-out windows");
    let evaluation = evaluate(config, &corpus, &ppo.model.inference(&ppo.norm))?;
    write_file(
        &out.join("eval.json"),
        &serde_json::to_vec_pretty(&evaluation).map_err(|e| out_err(out, e))?,
    )?;
    write_file(&out.join("eval.md"), evaluation.table().as_bytes())?;
    Ok(TrainOutcome {
        evaluation,
        log: state.log,
        policy_dir,
    })
}

fn write_logs(out: &Path, log: &[LogRow]) -> Result<(), TrainError> {
    let mut csv = String::from(
        "iteration,env_steps,rollout_reward,episodes,episode_reward,throughput_share,delay_ratio,policy_loss,value_loss,entropy,approx_kl,clip_fraction,lr,cluster_reward,cluster_targets\n",
    );
    for r in log {
        let join = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.4}"))
                .collect::<Vec<_>>()
                .join(";")
        };
        csv.push_str(&format!(
            "{},{},{:.5},{},{:.5},{:.5},{:.5},{:.5},{:.5},{:.5},{:.6},{:.4},{:.6},{},{}\n",
            r.iteration,
            r.env_steps,
            r.rollout_reward,
            r.episodes,
            r.episode_reward,
            r.throughput_share,
            r.delay_ratio,
            r.update.policy_loss,
            r.update.value_loss,
            r.update.entropy,
            r.update.approx_kl,
            r.update.clip_fraction,
            r.update.lr,
            join(&r.cluster_reward),
            join(&r.cluster_targets)
        ));
    }
    write_file(&out.join("log.csv"), csv.as_bytes())?;
    write_file(
        &out.join("log.json"),
        &serde_json::to_vec(log).map_err(|e| out_err(out, e))?,
    )
}
