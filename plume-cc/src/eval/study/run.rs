//! Running a study: the baselines once, then every (budget, sampler, seed)
//! trained and scored on the balanced set, each run's scores kept in
//! `runs/B-SAMPLER-sSEED/study-scores.json`.
//!
//! Why its own file: this is the only part that trains, takes hours and
//! touches the disk as it goes; resuming (a finished run is read back, a
//! run cut off mid-training continues from its checkpoint) lives here and
//! nowhere else.

use std::path::PathBuf;

use super::report::{write_report, StudyResult};
use super::stats::{balanced_heldout, cluster_means, overall, summarize};
use super::{out_err, BaselineScores, RunScores, StudyConfig, StudyError};
use crate::congestion::ControllerKind;
use crate::rl::config::{SamplerChoice, TrainConfig, TrainError};
use crate::rl::corpus::prepare_corpus;
use crate::rl::env::SimWindow;
use crate::rl::evaluation::{score_windows, Actor};
use crate::rl::log::Progress;
use crate::trace::scenario_corpus;

/// What a study reports while it runs.
pub trait StudyProgress {
    /// Run `index` of `total` starts (`name` is its folder name); `cached`
    /// when its scores are already on disk.
    fn run(&mut self, index: usize, total: usize, name: &str, cached: bool);
    /// The training progress of the current run.
    fn training(&mut self) -> &mut dyn Progress;
}

/// The folder name of one run (`runs/NAME`).
pub(super) fn run_name(budget: u64, sampler: SamplerChoice, seed: u64) -> String {
    format!("{budget}-{}-s{seed}", sampler.name())
}

/// Runs (or resumes) the study and writes its report (see module docs).
pub fn run(
    config: &StudyConfig,
    progress: &mut dyn StudyProgress,
) -> Result<StudyResult, StudyError> {
    config.validate()?;
    // A scenario corpus' records, read once: its window length, and the
    // kinds per cluster for the report. Other corpora use 10 s windows.
    let records = if scenario_corpus::is_scenario_corpus(&config.corpus) {
        Some(scenario_corpus::open(&config.corpus).map_err(TrainError::from)?)
    } else {
        None
    };
    let window_ms = records.as_ref().map_or(10_000, |(m, _)| m.mix.window_ms);
    let corpus = prepare_corpus(&config.corpus, window_ms, scenario_corpus::HOLDOUT_EVERY)?;
    let set = balanced_heldout(&corpus, config.per_cluster);
    if set.windows.is_empty() {
        return Err(StudyError::Config(
            "the corpus has no held-out window".into(),
        ));
    }
    std::fs::create_dir_all(&config.out).map_err(|e| out_err(&config.out, e))?;
    let windows: Vec<&SimWindow> = set.windows.iter().map(|&i| &corpus.windows[i]).collect();
    let base_config = |sampler, budget, seed, out: PathBuf| {
        let mut c = TrainConfig::new(config.corpus.clone(), sampler, budget, seed, out);
        c.window_ms = window_ms;
        c.eval_windows = 8;
        c.scaling.competition = config.competition;
        c.command = format!(
            "plume-cc eval study --corpus {} (budget {budget}, {}, seed {seed})",
            config.corpus.display(),
            sampler.name()
        );
        c
    };
    // Baselines, once: they do not depend on the sampler.
    let ref_cfg = base_config(SamplerChoice::Uniform, 1, 0, config.out.clone());
    let mut baselines = Vec::new();
    for (name, base, actor) in [
        ("fixed rule", ControllerKind::Cubic, Actor::FixedRule),
        ("CUBIC", ControllerKind::Cubic, Actor::Base),
        ("BBR-like", ControllerKind::Bbr, Actor::Base),
    ] {
        let s = score_windows(&ref_cfg, base, actor, &windows, 0xe7a1)?;
        let power: Vec<f64> = s.iter().map(|w| w.power).collect();
        let m = cluster_means(&set, &power);
        let (balanced, natural) = overall(&set, &m);
        baselines.push(BaselineScores {
            name: name.into(),
            per_cluster: m,
            balanced,
            natural,
        });
    }
    let total = config.budgets.len() * config.samplers.len() * config.seeds.len();
    let mut runs = Vec::with_capacity(total);
    let mut index = 0;
    for &budget in &config.budgets {
        for &sampler in &config.samplers {
            for &seed in &config.seeds {
                index += 1;
                let name = run_name(budget, sampler, seed);
                let dir = config.out.join("runs").join(&name);
                let cache = dir.join("study-scores.json");
                if let Ok(bytes) = std::fs::read(&cache) {
                    if let Ok(r) = serde_json::from_slice::<RunScores>(&bytes) {
                        if r.power.len() == windows.len() {
                            progress.run(index, total, &name, true);
                            runs.push(r);
                            continue;
                        }
                    }
                }
                progress.run(index, total, &name, false);
                let cfg = base_config(sampler, budget, seed, dir.clone());
                let outcome = crate::rl::train::train(&cfg, true, progress.training())?;
                let policy = crate::policy::LoadedPolicy::load(&outcome.policy_dir)?;
                let s = score_windows(&cfg, cfg.base, Actor::Loaded(&policy), &windows, 0xe7a1)?;
                let r = RunScores {
                    budget,
                    sampler,
                    seed,
                    power: s.iter().map(|w| w.power).collect(),
                };
                std::fs::write(
                    &cache,
                    serde_json::to_vec(&r).map_err(|e| out_err(&cache, e))?,
                )
                .map_err(|e| out_err(&cache, e))?;
                runs.push(r);
            }
        }
    }
    let cluster_kinds = match &records {
        Some((_, records)) => {
            let mut v = vec![std::collections::BTreeMap::new(); set.clusters];
            for (r, &l) in records.iter().zip(&corpus.labels) {
                *v[l].entry(r.kind.clone()).or_insert(0) += 1;
            }
            v
        }
        None => Vec::new(),
    };
    let budgets = summarize(config, &set, &runs);
    let result = StudyResult {
        config: config.clone(),
        eval: set,
        cluster_kinds,
        runs,
        budgets,
        baselines,
    };
    write_report(&result)?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::rl::log::LogRow;

    struct Quiet {
        runs: Vec<(String, bool)>,
    }

    impl Progress for Quiet {
        fn iteration(&mut self, _row: &LogRow, _total: usize) {}
        fn message(&mut self, _text: &str) {}
    }

    impl StudyProgress for Quiet {
        fn run(&mut self, _index: usize, _total: usize, name: &str, cached: bool) {
            self.runs.push((name.to_string(), cached));
        }
        fn training(&mut self) -> &mut dyn Progress {
            self
        }
    }

    #[test]
    fn a_study_resumes_without_retraining_finished_runs() {
        use rand::SeedableRng;
        tch::set_num_threads(1);
        let dir = tempfile::tempdir().unwrap();
        let sources: Vec<crate::trace::CorpusTrace> = (0..3u64)
            .map(|i| {
                let spec = crate::trace::SynthSpec {
                    kind: crate::trace::SynthKind::Lte,
                    mbps: 6.0,
                    duration_ms: 60_000,
                };
                crate::trace::CorpusTrace {
                    name: format!("s{i}"),
                    path: format!("s{i}").into(),
                    trace: spec
                        .generate(&mut rand_chacha::ChaCha8Rng::seed_from_u64(i))
                        .unwrap(),
                }
            })
            .collect();
        let corpus = dir.path().join("corpus");
        scenario_corpus::generate(
            &scenario_corpus::Mix::default_mix(),
            &sources,
            Path::new("synthetic"),
            30,
            3,
            &corpus,
            &mut |_| {},
        )
        .unwrap();
        let config = StudyConfig {
            corpus,
            out: dir.path().join("study"),
            seeds: vec![0, 1],
            budgets: vec![2048],
            samplers: vec![SamplerChoice::Uniform, SamplerChoice::PlumeStatic],
            per_cluster: 2,
            competition: None,
        };
        let mut first = Quiet { runs: Vec::new() };
        let a = run(&config, &mut first).unwrap();
        assert_eq!(first.runs.len(), 4);
        assert!(first.runs.iter().all(|r| !r.1), "{:?}", first.runs);
        assert!(config.out.join("study.md").is_file());
        assert!(config.out.join("study-clusters.png").is_file());
        // Run again: nothing is retrained, and the result is the same.
        let mut again = Quiet { runs: Vec::new() };
        let b = run(&config, &mut again).unwrap();
        assert!(again.runs.iter().all(|r| r.1), "{:?}", again.runs);
        // (JSON keeps the scores to the last bit or so.)
        for (x, y) in a.runs.iter().zip(&b.runs) {
            assert_eq!((x.budget, x.sampler, x.seed), (y.budget, y.sampler, y.seed));
            assert!(x
                .power
                .iter()
                .zip(&y.power)
                .all(|(p, q)| (p - q).abs() < 1e-12));
        }
        // A run cut off before its scores were written is trained again,
        // and only that one.
        let cut = config.out.join("runs").join("2048-uniform-s1");
        std::fs::remove_file(cut.join("study-scores.json")).unwrap();
        let mut third = Quiet { runs: Vec::new() };
        let c = run(&config, &mut third).unwrap();
        let retrained: Vec<&str> = third
            .runs
            .iter()
            .filter(|r| !r.1)
            .map(|r| r.0.as_str())
            .collect();
        assert_eq!(retrained, vec!["2048-uniform-s1"]);
        assert_eq!(c.runs.len(), 4);
    }
}
