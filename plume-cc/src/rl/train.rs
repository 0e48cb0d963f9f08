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

use crate::policy::file::{self, TrainingInfo};
use crate::policy::observation::OBSERVATION_LEN;

use super::env::{EpisodeRecord, SimBatch};
use super::ppo::Ppo;

pub use super::config::{SamplerChoice, TrainConfig, TrainError};
pub use super::corpus::{prepare_corpus, sampler_kind, PreparedCorpus};
pub use super::evaluation::{
    evaluate, score_windows, Actor, ControllerScores, Evaluation, WindowScore,
};
use super::log::{out_err, write_file, write_logs};
pub use super::log::{LogRow, Progress};

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
    if let Some(sel) = &config.select {
        sel.validate()?;
    }
    let out = &config.out;
    let ckpt = out.join("checkpoint");
    let resuming = resume && ckpt.join("state.json").exists();
    // A fine-tune's policy is read and checked before anything is written,
    // so a mismatch leaves no half-made run folder.
    let mut finetune = match &config.resume_from {
        Some(from) if !resuming => {
            let (model, meta) =
                file::load_for_finetune(from, config.ppo.init_log_std, config.seed)?;
            check_resume_contract(from, &meta, config)?;
            Some((from, model, meta))
        }
        _ => None,
    };
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
    let (mut ppo, mut state) = if resuming {
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
    } else if let Some((from, model, meta)) = finetune.take() {
        progress.message(&format!(
            "fine-tuning {} (trained for {} steps)",
            from.display(),
            meta.training.steps
        ));
        (
            Ppo::from_model(model, meta.normalization, config.ppo.clone())?,
            ResumeState {
                iteration: 0,
                env_steps: 0,
                log: Vec::new(),
            },
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
    let references = match config.sampler {
        SamplerChoice::PlumeDynamicRef => Some(super::corpus::reference_returns(
            config,
            &corpus,
            run_seed ^ 3,
        )?),
        _ => None,
    };
    let sampler = crate::plume::sampler::build_sampler(
        sampler_kind(config.sampler, run_seed),
        corpus.sampler_inputs(references),
    )?;
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
        // Absent means Immediate, so that files trained under it (every
        // policy before 2026-12-02) reproduce byte for byte.
        sim_clamp: (config.clamp_model != crate::congestion::ClampModel::Immediate)
            .then_some(config.clamp_model),
        sim_datapath: (config.datapath_model != crate::sim::DatapathModel::Interval)
            .then_some(config.datapath_model),
        sim_cc: (config.cc_model != crate::congestion::CcModel::Classic).then_some(config.cc_model),
        selected: None,
        derived: Vec::new(),
    };
    // The learner's current network as a policy file: checkpoints and
    // snapshots (with the critic, to resume or select from) and the final
    // policy (without).
    let save = |dir: &Path, ppo: &Ppo, steps: u64, critic: bool| {
        file::save_native(
            dir,
            &ppo.model,
            &ppo.norm,
            &config.scaling,
            config.interval_us,
            config.base.name(),
            config.objective,
            training(steps),
            critic,
            config.observation_version,
        )
    };
    let mut selection = match &config.select {
        Some(sel) => Some(Selection::new(sel, config, &corpus, per_iter)?),
        None => None,
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
            save(&ckpt, &ppo, state.env_steps, true)?;
            write_file(
                &ckpt.join("state.json"),
                &serde_json::to_vec(&state).map_err(|e| out_err(&ckpt, e))?,
            )?;
            write_logs(out, &state.log)?;
        }
        if let Some(sel) = selection.as_mut() {
            if state.iteration % sel.every_iters == 0 || state.iteration == iterations {
                let dir = out.join("snapshots").join(state.env_steps.to_string());
                save(&dir, &ppo, state.env_steps, true)?;
                sel.score(config, &dir, state.env_steps, progress)?;
            }
        }
    }
    let policy_dir = out.join("policy");
    let final_net = match selection {
        Some(sel) => {
            let (model, meta, info) = sel.finish(out)?;
            file::save_native(
                &policy_dir,
                &model,
                &meta.normalization,
                &config.scaling,
                config.interval_us,
                config.base.name(),
                info.objective,
                TrainingInfo {
                    selected: Some(info.clone()),
                    ..training(state.env_steps)
                },
                false,
                config.observation_version,
            )?;
            progress.message(&format!(
                "kept the snapshot at {} steps, objective {} (validation score {:.4})",
                info.steps,
                info.objective.delay_weight(),
                info.validation_score
            ));
            model.inference(&meta.normalization)
        }
        None => {
            save(&policy_dir, &ppo, state.env_steps, false)?;
            ppo.model.inference(&ppo.norm)
        }
    };
    write_logs(out, &state.log)?;
    if let Err(e) = super::plot::learning_curves(&out.join("curves.png"), &state.log, k) {
        progress.message(&format!("learning-curve plot skipped: {e}"));
    }
    progress.message("evaluating on held-out windows");
    let evaluation = evaluate(config, &corpus, &final_net)?;
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

/// Refuses a `--resume-from` policy whose contract is not the run's: a
/// different observation (version or length) would feed the weights
/// features they never saw, and a different monitor interval, base
/// controller or action scaling would train the weights against actions
/// that mean something else than what the saved policy will claim. Each
/// error names the field and both values.
pub fn check_resume_contract(
    from: &std::path::Path,
    meta: &crate::policy::file::PolicyMetadata,
    config: &TrainConfig,
) -> Result<(), TrainError> {
    let differ = |field: &'static str, policy_value: String, run_value: String| {
        Err(TrainError::ResumeMismatch {
            policy: from.to_path_buf(),
            field,
            policy_value,
            run_value,
        })
    };
    let version = config.observation_version;
    if meta.observation.version != version {
        return differ(
            "observation version",
            meta.observation.version.to_string(),
            version.to_string(),
        );
    }
    if meta.architecture.obs_len != OBSERVATION_LEN || meta.observation.len != OBSERVATION_LEN {
        return differ(
            "observation length",
            meta.architecture.obs_len.to_string(),
            OBSERVATION_LEN.to_string(),
        );
    }
    if meta.monitor_interval_us != config.interval_us {
        return differ(
            "monitor interval",
            format!("{} us", meta.monitor_interval_us),
            format!("{} us", config.interval_us),
        );
    }
    if meta.base_cc != config.base.name() {
        return differ(
            "base controller (--base)",
            meta.base_cc.clone(),
            config.base.name().to_string(),
        );
    }
    if meta.action_scaling != config.scaling {
        return differ(
            "action scaling",
            format!("{:?}", meta.action_scaling),
            format!("{:?}", config.scaling),
        );
    }
    Ok(())
}

/// One scored snapshot of a run with snapshot selection.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SnapshotScore {
    /// Environment steps at the snapshot.
    pub steps: u64,
    /// The operating point it was scored at (delay weight).
    pub objective: f32,
    /// Mean matrix score over the validation windows.
    pub score: f64,
}

/// `selection.json`: every snapshot's validation scores and the one kept
/// (serialised as a struct, so that f32 weights print as written).
#[derive(Serialize)]
struct SelectionReport<'a> {
    validation_windows: usize,
    scores: &'a [SnapshotScore],
    selected: &'a crate::policy::metadata::Selected,
}

/// Snapshot selection in progress (see [`super::config::SelectConfig`]).
struct Selection {
    every_iters: usize,
    objectives: Vec<crate::policy::Objective>,
    windows: Vec<super::env::SimWindow>,
    scores: Vec<SnapshotScore>,
    best: Option<(std::path::PathBuf, crate::policy::metadata::Selected)>,
}

impl Selection {
    fn new(
        sel: &super::config::SelectConfig,
        config: &TrainConfig,
        corpus: &PreparedCorpus,
        per_iter: u64,
    ) -> Result<Self, TrainError> {
        let h = &corpus.heldout;
        let windows: Vec<_> = super::matrix::validation_positions(h.len(), sel.windows)
            .into_iter()
            .map(|p| corpus.windows[h[p]].clone())
            .collect();
        if windows.is_empty() {
            return Err(TrainError::Select(format!(
                "{}: its {} held-out windows are all test picks, none is left to validate on; use more or longer traces",
                config.traces.display(),
                h.len()
            )));
        }
        Ok(Self {
            every_iters: (sel.every_steps / per_iter).max(1) as usize,
            objectives: sel.objectives.clone(),
            windows,
            scores: Vec::new(),
            best: None,
        })
    }

    /// Scores the snapshot in `dir` at every operating point; keeps the best
    /// (the earlier snapshot on a tie).
    fn score(
        &mut self,
        config: &TrainConfig,
        dir: &std::path::Path,
        steps: u64,
        progress: &mut dyn Progress,
    ) -> Result<(), TrainError> {
        let policy = crate::policy::LoadedPolicy::load(dir)?;
        let refs: Vec<&super::env::SimWindow> = self.windows.iter().collect();
        for &objective in &self.objectives {
            let score = super::matrix::mean_score_of(
                &policy,
                objective,
                super::matrix::Scheme::Policy,
                config.sim_models(),
                &refs,
            )?;
            progress.message(&format!(
                "snapshot at {steps} steps, objective {}: validation score {score:.4}",
                objective.delay_weight()
            ));
            self.scores.push(SnapshotScore {
                steps,
                objective: objective.delay_weight(),
                score,
            });
            if score.is_finite()
                && self
                    .best
                    .as_ref()
                    .is_none_or(|(_, b)| score > b.validation_score)
            {
                self.best = Some((
                    dir.to_path_buf(),
                    crate::policy::metadata::Selected {
                        steps,
                        objective,
                        validation_score: score,
                        validation_windows: self.windows.len(),
                    },
                ));
            }
        }
        Ok(())
    }

    /// Writes `selection.json` and returns the kept snapshot's weights.
    #[allow(clippy::type_complexity)]
    fn finish(
        self,
        out: &std::path::Path,
    ) -> Result<
        (
            crate::policy::model::ActorCritic,
            crate::policy::metadata::PolicyMetadata,
            crate::policy::metadata::Selected,
        ),
        TrainError,
    > {
        let Some((dir, info)) = self.best else {
            return Err(TrainError::Select(
                "no snapshot scored a finite validation score".to_string(),
            ));
        };
        write_file(
            &out.join("selection.json"),
            &serde_json::to_vec_pretty(&SelectionReport {
                validation_windows: self.windows.len(),
                scores: &self.scores,
                selected: &info,
            })
            .map_err(|e| out_err(out, e))?,
        )?;
        let (model, meta) = file::load_trainable(&dir)?;
        Ok((model, meta, info))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    struct Quiet;

    impl Progress for Quiet {
        fn iteration(&mut self, _row: &LogRow, _total: usize) {}
        fn message(&mut self, _text: &str) {}
    }

    /// A small run on four of the repository's synthetic traces: 4
    /// environments of 64 steps per iteration.
    fn small(dir: &Path, total_steps: u64) -> TrainConfig {
        let traces = dir.join("traces");
        std::fs::create_dir_all(&traces).unwrap();
        for name in [
            "lte-4mbps-s1.trace",
            "markov-4mbps-s1.trace",
            "step-6mbps.trace",
            "outage-5mbps-s1.trace",
        ] {
            let repo = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../traces/synthetic"));
            std::fs::copy(repo.join(name), traces.join(name)).unwrap();
        }
        let mut c = TrainConfig::new(
            traces,
            SamplerChoice::PlumeDynamic,
            total_steps,
            7,
            dir.join("out"),
        );
        c.envs = 4;
        c.ppo.steps = 64;
        c.ppo.minibatches = 2;
        c.ppo.epochs = 1;
        c.window_ms = 5_000;
        c.eval_windows = 4;
        c.checkpoint_every = 1;
        c
    }

    /// The reference pass of plume-dynamic-ref: one finite return per
    /// training window, the same for a seed, different across windows; a
    /// short run with the sampler trains.
    #[test]
    fn reference_returns_score_every_training_window_once() {
        tch::set_num_threads(1);
        let dir = std::env::temp_dir().join(format!("plume-ref-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut c = small(&dir, 256);
        c.sampler = SamplerChoice::PlumeDynamicRef;
        let corpus = prepare_corpus(&c.traces, c.window_ms, c.holdout_every).unwrap();
        let r = super::super::corpus::reference_returns(&c, &corpus, 1).unwrap();
        assert_eq!(r.len(), corpus.train.len());
        assert!(r.iter().all(|x| x.is_finite()), "{r:?}");
        assert_eq!(
            r,
            super::super::corpus::reference_returns(&c, &corpus, 1).unwrap()
        );
        // Every window ran its own episode: the returns differ.
        let (lo, hi) = r
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| {
                (l.min(*x), h.max(*x))
            });
        assert!(hi - lo > 0.05, "{r:?}");
        let out = train(&c, false, &mut Quiet).unwrap();
        assert_eq!(out.log.len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_resumed_run_continues_its_log_and_evaluates_every_baseline() {
        tch::set_num_threads(1);
        let dir = std::env::temp_dir().join(format!("plume-train-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = train(&small(&dir, 512), false, &mut Quiet).unwrap();
        assert_eq!(first.log.len(), 2, "512 steps of 256 per iteration");
        assert!(dir.join("out/checkpoint/state.json").is_file());
        // The same folder, twice the budget, resumed: iterations 3 and 4 are
        // appended to the saved log, with the step count carried over.
        let second = train(&small(&dir, 1024), true, &mut Quiet).unwrap();
        let its: Vec<usize> = second.log.iter().map(|r| r.iteration).collect();
        assert_eq!(its, vec![1, 2, 3, 4]);
        // The first two rows come back from the checkpoint (through JSON).
        for (a, b) in second.log[..2].iter().zip(&first.log) {
            assert_eq!((a.iteration, a.env_steps), (b.iteration, b.env_steps));
            assert!((a.rollout_reward - b.rollout_reward).abs() < 1e-9);
        }
        assert!(second
            .log
            .windows(2)
            .all(|w| w[1].env_steps > w[0].env_steps));
        // The evaluation scores the policy against every baseline on the
        // held-out windows, overall and per cluster.
        let names: Vec<&str> = second
            .evaluation
            .controllers
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names.len(), 4, "{names:?}");
        assert!(names.iter().any(|n| n.contains("fixed")), "{names:?}");
        assert!(names.iter().any(|n| n.contains("CUBIC")), "{names:?}");
        assert!(names.iter().any(|n| n.contains("BBR")), "{names:?}");
        let e = &second.evaluation;
        assert!(!e.windows.is_empty() && e.windows.len() <= 4);
        for c in &e.controllers {
            assert!(
                c.overall.utilization > 0.0 && c.overall.utilization <= 1.1,
                "{c:?}"
            );
            assert_eq!(c.cluster_windows.iter().sum::<usize>(), e.windows.len());
        }
        assert!(dir.join("out/eval.md").is_file() && dir.join("out/policy/policy.json").is_file());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Snapshot selection scores every snapshot at every operating point on
    /// validation windows, keeps the best one as the policy with that
    /// operating point as its default, and says so in policy.json and
    /// selection.json.
    #[test]
    fn snapshot_selection_keeps_the_best_validated_snapshot() {
        tch::set_num_threads(1);
        let dir = std::env::temp_dir().join(format!("plume-select-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut c = small(&dir, 512);
        // 1 s windows: enough held-out windows (over 40) to leave some for
        // validation beside the test picks.
        c.window_ms = 1_000;
        let weights = [0.05f32, 1.0];
        c.select = Some(super::super::config::SelectConfig {
            every_steps: 256,
            windows: 2,
            objectives: weights
                .iter()
                .map(|&w| crate::policy::Objective::try_from(w).unwrap())
                .collect(),
        });
        train(&c, false, &mut Quiet).unwrap();
        let sel: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("out/selection.json")).unwrap())
                .unwrap();
        let scores = sel["scores"].as_array().unwrap();
        assert_eq!(scores.len(), 2 * weights.len(), "{sel}");
        let best = scores
            .iter()
            .map(|s| s["score"].as_f64().unwrap())
            .fold(f64::NEG_INFINITY, f64::max);
        let meta: crate::policy::file::PolicyMetadata =
            serde_json::from_slice(&std::fs::read(dir.join("out/policy/policy.json")).unwrap())
                .unwrap();
        let kept = meta.training.selected.clone().expect("training.selected");
        assert_eq!(kept.validation_score, best);
        assert_eq!(kept.validation_windows, 2);
        assert_eq!(meta.default_objective, kept.objective);
        assert!(weights.contains(&kept.objective.delay_weight()));
        assert!([256u64, 512].contains(&kept.steps), "{kept:?}");
        // The policy's weights are the kept snapshot's.
        let snap = std::fs::read(
            dir.join("out/snapshots")
                .join(kept.steps.to_string())
                .join("policy.safetensors"),
        )
        .unwrap();
        let snap_t = file::tensors_from_safetensors(&snap, &dir).unwrap();
        let pol = std::fs::read(dir.join("out/policy/policy.safetensors")).unwrap();
        for (n, t) in file::tensors_from_safetensors(&pol, &dir).unwrap() {
            let (_, f) = snap_t.iter().find(|(m, _)| *m == n).unwrap();
            assert!(t.equal(f), "{n} differs from the kept snapshot");
        }
        // Settings that select nothing are refused before anything runs.
        let mut bad = small(&dir.join("bad"), 256);
        bad.select = Some(super::super::config::SelectConfig {
            every_steps: 0,
            windows: 2,
            objectives: vec![crate::policy::Objective::default()],
        });
        let e = train(&bad, false, &mut Quiet).unwrap_err().to_string();
        assert!(
            e.contains("--select-every must be at least one step"),
            "{e}"
        );
        assert!(!dir.join("bad/out").exists(), "nothing is written");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn resume_from_refuses_another_contract_naming_both_values() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/default");
        let meta: crate::policy::file::PolicyMetadata =
            serde_json::from_slice(&std::fs::read(root.join("policy.json")).unwrap()).unwrap();
        let mut config = TrainConfig::new("t".into(), SamplerChoice::Uniform, 1, 0, "o".into());
        // The run takes the policy's mapping (the CLI does so for a
        // fine-tune without mapping flags); another is refused.
        config.scaling = meta.action_scaling;
        check_resume_contract(&root, &meta, &config).unwrap();
        let mut other = config.clone();
        other.scaling.cwnd_log2_span += 1.0;
        let e = check_resume_contract(&root, &meta, &other)
            .unwrap_err()
            .to_string();
        assert!(e.contains("action scaling"), "{e}");
        config.interval_us = 10_000;
        let e = check_resume_contract(&root, &meta, &config)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("monitor interval is 20000 us, but this run's is 10000 us"),
            "{e}"
        );
        config.interval_us = 20_000;
        config.base = crate::congestion::ControllerKind::Reno;
        let e = check_resume_contract(&root, &meta, &config)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is cubic, but this run's is reno"), "{e}");
        let mut old = meta.clone();
        old.observation.version = 2;
        config.base = crate::congestion::ControllerKind::Cubic;
        let e = check_resume_contract(&root, &old, &config)
            .unwrap_err()
            .to_string();
        assert!(e.contains("observation version is 2"), "{e}");
    }

    #[test]
    fn a_shipped_policy_loads_for_fine_tuning_with_a_fresh_critic() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/default");
        let (model, meta) = file::load_for_finetune(&root, -0.7, 3).unwrap();
        let names: Vec<String> = model.named_tensors(true).into_iter().map(|t| t.0).collect();
        assert!(names.iter().any(|n| n.starts_with("critic.")));
        // The actor is the file's, bit for bit.
        let bytes = std::fs::read(root.join("policy.safetensors")).unwrap();
        let file_t = file::tensors_from_safetensors(&bytes, &root).unwrap();
        for (n, t) in model.named_tensors(false) {
            let (_, f) = file_t.iter().find(|(m, _)| *m == n).unwrap();
            assert!(t.equal(f), "{n} differs from the file");
        }
        assert_eq!(meta.base_cc, "cubic");
    }
}
