//! The sampler study (`plume-cc eval study`, `cargo xtask study`): uniform,
//! plume-static and plume-dynamic trained at equal step budgets with several
//! seeds each, evaluated on a held-out set balanced across clusters, with
//! per-cluster means and 95% confidence intervals.
//!
//! Why balanced: on a skewed corpus a held-out set drawn like the corpus
//! holds a handful of windows of each rare cluster, and the overall mean is
//! the common case's. Plume's claim is about the rare clusters, so each
//! cluster gets the same number of held-out windows (up to `per_cluster`,
//! spread evenly over its held-out windows), and the overall score is
//! reported both balanced (the mean of the cluster means) and natural (the
//! cluster means weighted by the clusters' shares of the corpus).
//!
//! Seeds are the unit of replication: a run's score on a cluster is its
//! mean over that cluster's evaluation windows, and the interval is over
//! seeds (Student's t). A gain over uniform is the difference of means with
//! Welch's interval.
//!
//! Finished runs are kept (`runs/B-SAMPLER-sSEED/study-scores.json`), and an
//! interrupted study resumes: finished runs are not retrained, and a run cut
//! off mid-training continues from its checkpoint.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::congestion::ControllerKind;
use crate::rl::config::{SamplerChoice, TrainConfig, TrainError};
use crate::rl::corpus::{prepare_corpus, PreparedCorpus};
use crate::rl::env::SimWindow;
use crate::rl::evaluation::{score_windows, Actor};
use crate::rl::log::{LogRow, Progress};
use crate::stats::{diff_ci95, mean_ci95, MeanCi};
use crate::trace::scenario_corpus;

/// Errors of a study.
#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    /// The settings make no study.
    #[error("study: {0}")]
    Config(String),
    /// Training, the corpus or an evaluation failed.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// A policy could not be loaded.
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    /// A figure could not be drawn.
    #[error(transparent)]
    Plot(#[from] crate::font::PlotError),
    /// A result file could not be read or written.
    #[error("{path}: {message}")]
    Output {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

fn out_err(path: &Path, e: impl std::fmt::Display) -> StudyError {
    StudyError::Output {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Settings of a study.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StudyConfig {
    /// The corpus: a scenario corpus or a folder of traces.
    pub corpus: PathBuf,
    /// Output folder.
    pub out: PathBuf,
    /// Seeds of every sampler and budget.
    pub seeds: Vec<u64>,
    /// Environment-step budgets.
    pub budgets: Vec<u64>,
    /// Samplers compared (uniform first: the reference).
    pub samplers: Vec<SamplerChoice>,
    /// Held-out evaluation windows per cluster, at most.
    pub per_cluster: usize,
    /// The competition rule in every run's action mapping, the fixed rule's
    /// included (`--competition-rule`); `None`: the default's mapping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub competition: Option<crate::policy::CompetitionRule>,
}

impl StudyConfig {
    fn validate(&self) -> Result<(), StudyError> {
        if self.seeds.len() < 2 {
            return Err(StudyError::Config(format!(
                "need at least 2 seeds for an interval (5 recommended), got {}",
                self.seeds.len()
            )));
        }
        if self.budgets.is_empty() || self.budgets.contains(&0) {
            return Err(StudyError::Config(
                "budgets must be a non-empty list of positive step counts".into(),
            ));
        }
        if self.samplers.is_empty() {
            return Err(StudyError::Config("no sampler to study".into()));
        }
        if self.per_cluster == 0 {
            return Err(StudyError::Config(
                "--per-cluster must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// The balanced held-out evaluation set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalSet {
    /// Corpus indices of the evaluation windows.
    pub windows: Vec<usize>,
    /// Cluster of each.
    pub cluster: Vec<usize>,
    /// Number of clusters.
    pub clusters: usize,
    /// Each cluster's share of the whole corpus (hard labels).
    pub corpus_share: Vec<f64>,
}

/// Up to `per_cluster` held-out windows of every cluster, spread evenly
/// over its held-out windows.
pub fn balanced_heldout(corpus: &PreparedCorpus, per_cluster: usize) -> EvalSet {
    let k = corpus.clusters();
    let mut windows = Vec::new();
    let mut cluster = Vec::new();
    for c in 0..k {
        let h: Vec<usize> = corpus
            .heldout
            .iter()
            .copied()
            .filter(|&i| corpus.labels[i] == c)
            .collect();
        let take = per_cluster.min(h.len());
        for j in 0..take {
            windows.push(h[j * h.len() / take]);
            cluster.push(c);
        }
    }
    let n = corpus.labels.len().max(1) as f64;
    let corpus_share = (0..k)
        .map(|c| corpus.labels.iter().filter(|&&l| l == c).count() as f64 / n)
        .collect();
    EvalSet {
        windows,
        cluster,
        clusters: k,
        corpus_share,
    }
}

/// One run's held-out scores (fair-share power per evaluation window).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunScores {
    /// Step budget.
    pub budget: u64,
    /// Sampler.
    pub sampler: SamplerChoice,
    /// Seed.
    pub seed: u64,
    /// Power of each evaluation window, in [`EvalSet::windows`] order.
    pub power: Vec<f64>,
}

/// Per-cluster means of `power` over `set` (NaN for a cluster without
/// evaluation windows).
pub fn cluster_means(set: &EvalSet, power: &[f64]) -> Vec<f64> {
    (0..set.clusters)
        .map(|c| {
            let v: Vec<f64> = set
                .cluster
                .iter()
                .zip(power)
                .filter(|(&cl, _)| cl == c)
                .map(|(_, &p)| p)
                .collect();
            if v.is_empty() {
                f64::NAN
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            }
        })
        .collect()
}

/// Balanced and natural overall scores of one run's cluster means.
fn overall(set: &EvalSet, means: &[f64]) -> (f64, f64) {
    let present: Vec<usize> = (0..set.clusters)
        .filter(|&c| means[c].is_finite())
        .collect();
    let balanced = present.iter().map(|&c| means[c]).sum::<f64>() / present.len().max(1) as f64;
    let w: f64 = present.iter().map(|&c| set.corpus_share[c]).sum();
    let natural = present
        .iter()
        .map(|&c| means[c] * set.corpus_share[c])
        .sum::<f64>()
        / w.max(1e-12);
    (balanced, natural)
}

/// One sampler at one budget, aggregated over seeds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SamplerSummary {
    /// Sampler.
    pub sampler: SamplerChoice,
    /// Per cluster: mean over seeds of the run's cluster mean, with its CI.
    pub per_cluster: Vec<MeanCi>,
    /// Balanced overall (mean of cluster means).
    pub balanced: MeanCi,
    /// Natural overall (weighted by the clusters' corpus shares).
    pub natural: MeanCi,
    /// Worst cluster's score minus uniform's, with Welch's interval.
    pub worst_gain: Option<MeanCi>,
    /// Balanced overall minus uniform's.
    pub balanced_gain: Option<MeanCi>,
    /// Natural overall minus uniform's.
    pub natural_gain: Option<MeanCi>,
}

/// All samplers at one budget.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BudgetSummary {
    /// Step budget.
    pub budget: u64,
    /// The worst cluster: uniform's lowest mean (the reference's tail).
    pub worst_cluster: usize,
    /// One entry per sampler.
    pub samplers: Vec<SamplerSummary>,
}

/// A baseline's per-cluster and overall scores (deterministic: one run).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BaselineScores {
    /// Name.
    pub name: String,
    /// Per-cluster means.
    pub per_cluster: Vec<f64>,
    /// Balanced overall.
    pub balanced: f64,
    /// Natural overall.
    pub natural: f64,
}

/// The study's result (`study.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StudyResult {
    /// Settings.
    pub config: StudyConfig,
    /// The evaluation set.
    pub eval: EvalSet,
    /// Kinds per cluster (scenario corpora; empty otherwise).
    pub cluster_kinds: Vec<std::collections::BTreeMap<String, usize>>,
    /// Every run's scores.
    pub runs: Vec<RunScores>,
    /// Per budget.
    pub budgets: Vec<BudgetSummary>,
    /// Fixed rule, CUBIC and BBR-like on the same set.
    pub baselines: Vec<BaselineScores>,
}

/// Aggregates `runs` by budget and sampler (see module docs).
pub fn summarize(config: &StudyConfig, set: &EvalSet, runs: &[RunScores]) -> Vec<BudgetSummary> {
    let mut out = Vec::new();
    for &budget in &config.budgets {
        let of = |s: SamplerChoice| -> Vec<Vec<f64>> {
            runs.iter()
                .filter(|r| r.budget == budget && r.sampler == s)
                .map(|r| cluster_means(set, &r.power))
                .collect()
        };
        let reference = of(config.samplers[0]);
        let ref_means: Vec<f64> = (0..set.clusters)
            .map(|c| {
                let v: Vec<f64> = reference
                    .iter()
                    .map(|m| m[c])
                    .filter(|v| v.is_finite())
                    .collect();
                mean_ci95(&v).mean
            })
            .collect();
        let worst_cluster = (0..set.clusters)
            .filter(|&c| ref_means[c].is_finite())
            .min_by(|&a, &b| ref_means[a].total_cmp(&ref_means[b]))
            .unwrap_or(0);
        let overall_of = |ms: &[Vec<f64>]| -> (Vec<f64>, Vec<f64>) {
            ms.iter().map(|m| overall(set, m)).unzip()
        };
        let (ref_bal, ref_nat) = overall_of(&reference);
        let ref_worst: Vec<f64> = reference.iter().map(|m| m[worst_cluster]).collect();
        let samplers = config
            .samplers
            .iter()
            .map(|&s| {
                let ms = of(s);
                let (bal, nat) = overall_of(&ms);
                let worst: Vec<f64> = ms.iter().map(|m| m[worst_cluster]).collect();
                let is_ref = s == config.samplers[0];
                SamplerSummary {
                    sampler: s,
                    per_cluster: (0..set.clusters)
                        .map(|c| {
                            let v: Vec<f64> =
                                ms.iter().map(|m| m[c]).filter(|v| v.is_finite()).collect();
                            mean_ci95(&v)
                        })
                        .collect(),
                    balanced: mean_ci95(&bal),
                    natural: mean_ci95(&nat),
                    worst_gain: (!is_ref).then(|| diff_ci95(&worst, &ref_worst)),
                    balanced_gain: (!is_ref).then(|| diff_ci95(&bal, &ref_bal)),
                    natural_gain: (!is_ref).then(|| diff_ci95(&nat, &ref_nat)),
                }
            })
            .collect();
        out.push(BudgetSummary {
            budget,
            worst_cluster,
            samplers,
        });
    }
    out
}

/// What a study reports while it runs.
pub trait StudyProgress {
    /// Run `index` of `total` starts (`name` is its folder name); `cached`
    /// when its scores are already on disk.
    fn run(&mut self, index: usize, total: usize, name: &str, cached: bool);
    /// The training progress of the current run.
    fn training(&mut self) -> &mut dyn Progress;
}

fn run_name(budget: u64, sampler: SamplerChoice, seed: u64) -> String {
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

fn ci(c: &MeanCi) -> String {
    if c.half_width.is_finite() {
        format!("{:.3} ± {:.3}", c.mean, c.half_width)
    } else {
        format!("{:.3}", c.mean)
    }
}

fn gain(g: &MeanCi, reference: f64) -> String {
    let rel = if reference.abs() > 1e-12 {
        format!(" ({:+.0}%)", 100.0 * g.mean / reference)
    } else {
        String::new()
    };
    let verdict = if g.low() > 0.0 {
        "better, CI excludes 0"
    } else if g.high() < 0.0 {
        "worse, CI excludes 0"
    } else {
        "CI includes 0"
    };
    format!(
        "{:+.3} [{:+.3}, {:+.3}]{rel}, {verdict}",
        g.mean,
        g.low(),
        g.high()
    )
}

/// The Markdown report.
pub fn markdown(r: &StudyResult) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Sampler study on `{}`: {} seeds ({:?}), budgets {:?} steps. Held-out evaluation: up to {} windows per cluster ({} windows, {} clusters). Score: power against the fair share, `min(throughput / fair share, 1.5) / (p95 RTT / min RTT)`; mean over seeds ± the 95% interval (Student's t over seeds); gains are differences from `{}` with Welch's interval.\n",
        r.config.corpus.display(),
        r.config.seeds.len(),
        r.config.seeds,
        r.config.budgets,
        r.config.per_cluster,
        r.eval.windows.len(),
        r.eval.clusters,
        r.config.samplers[0].name()
    );
    if r.config.competition.is_some() {
        let _ = writeln!(
            s,
            "Every run, and the fixed rule, act under the competition rule (`--competition-rule`).\n"
        );
    }
    let _ = writeln!(
        s,
        "| cluster | corpus share | eval windows | kinds |\n|---|---|---|---|"
    );
    for c in 0..r.eval.clusters {
        let n = r.eval.cluster.iter().filter(|&&x| x == c).count();
        let kinds = r.cluster_kinds.get(c).map_or(String::new(), |k| {
            k.iter()
                .map(|(name, n)| format!("{name} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        });
        let _ = writeln!(
            s,
            "| {c} | {:.1}% | {n} | {kinds} |",
            100.0 * r.eval.corpus_share[c]
        );
    }
    for b in &r.budgets {
        let _ = writeln!(s, "\n### {} steps\n", b.budget);
        let mut head = String::from("| cluster |");
        let mut rule = String::from("|---|");
        for x in &b.samplers {
            let _ = write!(head, " {} |", x.sampler.name());
            rule.push_str("---|");
        }
        for x in &r.baselines {
            let _ = write!(head, " {} |", x.name);
            rule.push_str("---|");
        }
        let _ = writeln!(s, "{head}\n{rule}");
        for c in 0..r.eval.clusters {
            let mark = if c == b.worst_cluster { " (worst)" } else { "" };
            let mut row = format!("| {c}{mark} |");
            for x in &b.samplers {
                let _ = write!(row, " {} |", ci(&x.per_cluster[c]));
            }
            for x in &r.baselines {
                let _ = write!(row, " {:.3} |", x.per_cluster[c]);
            }
            let _ = writeln!(s, "{row}");
        }
        for (label, pick, base) in [
            (
                "balanced overall",
                (|x: &SamplerSummary| x.balanced) as fn(&SamplerSummary) -> MeanCi,
                (|x: &BaselineScores| x.balanced) as fn(&BaselineScores) -> f64,
            ),
            ("natural overall", |x| x.natural, |x| x.natural),
        ] {
            let mut row = format!("| **{label}** |");
            for x in &b.samplers {
                let _ = write!(row, " {} |", ci(&pick(x)));
            }
            for x in &r.baselines {
                let _ = write!(row, " {:.3} |", base(x));
            }
            let _ = writeln!(s, "{row}");
        }
        let reference = &b.samplers[0];
        let _ = writeln!(s);
        for x in &b.samplers[1..] {
            if let (Some(w), Some(bal), Some(nat)) =
                (&x.worst_gain, &x.balanced_gain, &x.natural_gain)
            {
                let _ = writeln!(
                    s,
                    "- {} vs {}: worst cluster ({}) {}; balanced overall {}; natural overall {}.",
                    x.sampler.name(),
                    reference.sampler.name(),
                    b.worst_cluster,
                    gain(w, reference.per_cluster[b.worst_cluster].mean),
                    gain(bal, reference.balanced.mean),
                    gain(nat, reference.natural.mean)
                );
            }
        }
    }
    s
}

fn write_report(r: &StudyResult) -> Result<(), StudyError> {
    let out = &r.config.out;
    let p = out.join("study.json");
    std::fs::write(
        &p,
        serde_json::to_vec_pretty(r).map_err(|e| out_err(&p, e))?,
    )
    .map_err(|e| out_err(&p, e))?;
    let p = out.join("study.md");
    std::fs::write(&p, markdown(r)).map_err(|e| out_err(&p, e))?;
    let p = out.join("study-clusters.png");
    super::study_plot::cluster_bars(&p, r)?;
    for b in &r.config.budgets {
        let logs = |s: SamplerChoice| -> Vec<Vec<LogRow>> {
            r.config
                .seeds
                .iter()
                .filter_map(|&seed| {
                    let f = out
                        .join("runs")
                        .join(run_name(*b, s, seed))
                        .join("log.json");
                    std::fs::read(f)
                        .ok()
                        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                })
                .collect()
        };
        let per_sampler: Vec<(SamplerChoice, Vec<Vec<LogRow>>)> =
            r.config.samplers.iter().map(|&s| (s, logs(s))).collect();
        let p = out.join(format!("curves-{b}.png"));
        super::study_plot::learning_curves(&p, &per_sampler, r.eval.clusters)?;
        if let Some((_, dynamic)) = per_sampler
            .iter()
            .find(|(s, _)| *s == SamplerChoice::PlumeDynamic)
        {
            let p = out.join(format!("weights-{b}.png"));
            super::study_plot::cluster_weights(&p, dynamic, r.eval.clusters)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> EvalSet {
        EvalSet {
            windows: vec![0, 1, 2, 3],
            cluster: vec![0, 0, 1, 1],
            clusters: 2,
            corpus_share: vec![0.9, 0.1],
        }
    }

    #[test]
    fn summaries_find_the_reference_tail_and_the_gains() {
        let config = StudyConfig {
            corpus: PathBuf::new(),
            out: PathBuf::new(),
            seeds: vec![0, 1, 2],
            budgets: vec![100],
            samplers: vec![SamplerChoice::Uniform, SamplerChoice::PlumeStatic],
            per_cluster: 2,
            competition: None,
        };
        let run = |s, seed, p: [f64; 4]| RunScores {
            budget: 100,
            sampler: s,
            seed,
            power: p.to_vec(),
        };
        // Uniform: cluster 0 at 0.5, cluster 1 (rare) at 0.1 +- seed noise;
        // plume-static: cluster 1 at 0.2.
        let runs = vec![
            run(SamplerChoice::Uniform, 0, [0.5, 0.5, 0.1, 0.1]),
            run(SamplerChoice::Uniform, 1, [0.5, 0.5, 0.11, 0.11]),
            run(SamplerChoice::Uniform, 2, [0.5, 0.5, 0.09, 0.09]),
            run(SamplerChoice::PlumeStatic, 0, [0.5, 0.5, 0.2, 0.2]),
            run(SamplerChoice::PlumeStatic, 1, [0.5, 0.5, 0.21, 0.21]),
            run(SamplerChoice::PlumeStatic, 2, [0.5, 0.5, 0.19, 0.19]),
        ];
        let b = &summarize(&config, &set(), &runs)[0];
        assert_eq!(b.worst_cluster, 1);
        let u = &b.samplers[0];
        assert!((u.per_cluster[1].mean - 0.1).abs() < 1e-12);
        assert!(u.worst_gain.is_none());
        let p = &b.samplers[1];
        let g = p.worst_gain.unwrap();
        assert!((g.mean - 0.1).abs() < 1e-12 && g.low() > 0.0, "{g:?}");
        // Balanced: (0.5 + 0.2) / 2; natural: 0.9 * 0.5 + 0.1 * 0.2.
        assert!((p.balanced.mean - 0.35).abs() < 1e-12);
        assert!((p.natural.mean - 0.47).abs() < 1e-12);
        let md = markdown(&StudyResult {
            config: config.clone(),
            eval: set(),
            cluster_kinds: Vec::new(),
            runs: runs.clone(),
            budgets: vec![b.clone()],
            baselines: Vec::new(),
        });
        assert!(md.contains("| 1 (worst) |"), "{md}");
        assert!(md.contains("better, CI excludes 0"), "{md}");
    }

    #[test]
    fn too_few_seeds_or_no_budget_is_refused() {
        let mut c = StudyConfig {
            corpus: PathBuf::new(),
            out: PathBuf::new(),
            seeds: vec![0],
            budgets: vec![100],
            samplers: vec![SamplerChoice::Uniform],
            per_cluster: 2,
            competition: None,
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("at least 2 seeds"));
        c.seeds = vec![0, 1];
        c.budgets.clear();
        assert!(c.validate().is_err());
    }

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
