//! The statistics of a study: the held-out set balanced across clusters
//! ([`balanced_heldout`]), each run's per-cluster means, and the summaries
//! over seeds ([`summarize`]): Student's t intervals, and Welch's for the
//! gains over the reference sampler.
//!
//! Why its own file: these are pure functions of scores, so they are tested
//! on hand-made numbers without training anything, and the report only
//! prints what they computed.

use serde::{Deserialize, Serialize};

use super::StudyConfig;
use crate::rl::config::SamplerChoice;
use crate::rl::corpus::PreparedCorpus;
use crate::stats::{diff_ci95, mean_ci95, MeanCi};

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
pub(super) fn overall(set: &EvalSet, means: &[f64]) -> (f64, f64) {
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::{markdown, StudyResult};
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
}
