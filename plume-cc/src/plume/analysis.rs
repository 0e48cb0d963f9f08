//! The whole Plume analysis of a corpus: features -> critical-feature
//! selection -> k search -> soft memberships, and the JSON report a user
//! inspects (selected features, silhouette per k, cluster sizes and
//! make-up, per-cluster capacity statistics).
//!
//! Pure computation: the caller supplies the corpus, the seed and a progress
//! callback; timing and files are the CLI's business.
use std::collections::BTreeMap;

use ndarray::{Array2, Axis};
use serde::{Deserialize, Serialize};

use super::{
    cluster::{choose_k, ClusterParams, ClusteringModel, KScore},
    features::{Family, FeatureDef, FeatureExtractor, Standardizer, FEATURES, PATH_FEATURES},
    gmm::{hard_labels, GmmError},
    select::{select_features, SelectionParams, SelectionRound},
};
use crate::trace::{Corpus, WindowSpec};

/// All settings of an analysis.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AnalysisParams {
    /// Seed of every random choice (mixture starts, tree bootstraps).
    pub seed: u64,
    /// Stage 1 settings.
    pub selection: SelectionParams,
    /// Stage 2 settings.
    pub cluster: ClusterParams,
    /// Largest number of windows the mixtures, trees and silhouettes are
    /// fitted on; a larger corpus is fitted on an evenly spaced sample of
    /// this size (a seeded uniform sample) and every window then gets its
    /// memberships from the fitted mixture (see [`analyze_with_paths`]).
    #[serde(default = "default_fit_sample")]
    pub fit_sample: usize,
}

/// The default [`AnalysisParams::fit_sample`].
pub const DEFAULT_FIT_SAMPLE: usize = 2000;

fn default_fit_sample() -> usize {
    DEFAULT_FIT_SAMPLE
}

/// A seeded uniform sample of `max` of `n` indices, sorted (all when
/// `n <= max`). Random rather than evenly spaced: a corpus is ordered by
/// trace and time, and a fixed stride can alias with a period in it (every
/// other window of one kind).
pub fn fit_sample_rows(n: usize, max: usize, seed: u64) -> Vec<usize> {
    use rand::SeedableRng;
    if n <= max.max(1) {
        return (0..n).collect();
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0xf17_5a3e);
    let mut v = rand::seq::index::sample(&mut rng, n, max.max(1)).into_vec();
    v.sort_unstable();
    v
}

impl AnalysisParams {
    /// The method's defaults with `starts` random starts per mixture.
    pub fn with_starts(seed: u64, starts: usize) -> Self {
        let mut p = Self {
            seed,
            selection: SelectionParams::default(),
            cluster: ClusterParams::default(),
            fit_sample: DEFAULT_FIT_SAMPLE,
        };
        p.selection.gmm.n_init = starts;
        p.cluster.gmm.n_init = starts;
        p
    }
}

/// Progress events, in order, so a caller can drive a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Candidate features computed for all windows.
    Features,
    /// One pruning round done (0-based).
    SelectionRound(usize),
    /// The mixtures for one k are fitted.
    KFitted(usize),
}

/// Why an analysis failed.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// Too few windows to cluster.
    #[error("analysis needs at least 4 windows, the corpus has {0}")]
    TooFewWindows(usize),
    /// A mixture fit failed.
    #[error(transparent)]
    Gmm(#[from] GmmError),
    /// The path features do not match the windows.
    #[error("path features must be {windows} x 5, got {rows} x {cols}")]
    PathShape {
        /// Windows in the corpus.
        windows: usize,
        /// Rows given.
        rows: usize,
        /// Columns given.
        cols: usize,
    },
}

/// The result of [`analyze`].
#[derive(Debug, Clone)]
pub struct Analysis {
    /// The window spec of the corpus.
    pub window: WindowSpec,
    /// The candidate features: [`FEATURES`], then [`PATH_FEATURES`] for a
    /// scenario corpus.
    pub candidates: Vec<FeatureDef>,
    /// Raw candidate features (windows x `candidates`).
    pub raw_features: Array2<f64>,
    /// Selected columns of `candidates`.
    pub selected: Vec<usize>,
    /// Standardized selected features (windows x selected): what the mixture sees.
    pub z_selected: Array2<f64>,
    /// Pruning rounds of stage 1.
    pub rounds: Vec<SelectionRound>,
    /// Score of every k tried.
    pub k_scores: Vec<KScore>,
    /// The chosen clustering, ready to save.
    pub model: ClusteringModel,
    /// Soft memberships (windows x k).
    pub memberships: Array2<f64>,
    /// Hard labels.
    pub labels: Vec<usize>,
}

/// Runs stages 1 and 2 on the corpus' windows.
pub fn analyze(
    corpus: &Corpus,
    params: &AnalysisParams,
    progress: &(dyn Fn(Stage) + Sync),
) -> Result<Analysis, AnalysisError> {
    analyze_with_paths(corpus, None, params, progress)
}

/// [`analyze`] with each window's path next to its capacity (a scenario
/// corpus): the [`PATH_FEATURES`] of `paths` (windows x 5, from
/// [`super::features::path_features`]) join the candidates as a third
/// family, which selection keeps balanced with the other two.
pub fn analyze_with_paths(
    corpus: &Corpus,
    paths: Option<&Array2<f64>>,
    params: &AnalysisParams,
    progress: &(dyn Fn(Stage) + Sync),
) -> Result<Analysis, AnalysisError> {
    let n = corpus.windows.len();
    if n < 4 {
        return Err(AnalysisError::TooFewWindows(n));
    }
    let mut raw = FeatureExtractor::new(corpus.spec.bin_ms).extract(&corpus.series());
    let mut candidates: Vec<FeatureDef> = FEATURES.to_vec();
    if let Some(p) = paths {
        if p.nrows() != n || p.ncols() != PATH_FEATURES.len() {
            return Err(AnalysisError::PathShape {
                windows: n,
                rows: p.nrows(),
                cols: p.ncols(),
            });
        }
        raw = ndarray::concatenate(Axis(1), &[raw.view(), p.view()])
            .expect("same number of rows, checked above");
        candidates.extend(PATH_FEATURES);
    }
    progress(Stage::Features);
    // Why a sample: the mixtures (many random starts per k), the trees and
    // the silhouette (quadratic in the windows) cost far more than the
    // features, and a few thousand windows pin the clusters down as well
    // as twenty thousand; every window still gets memberships below. Below
    // `fit_sample` windows nothing changes.
    let fit_rows = fit_sample_rows(n, params.fit_sample, params.seed);
    let fit_raw = raw.select(Axis(0), &fit_rows);
    let z = Standardizer::fit(&fit_raw).transform(&fit_raw);
    let families: Vec<Family> = candidates.iter().map(|f| f.family).collect();
    let (selected, rounds) =
        select_features(z.view(), &families, &params.selection, params.seed, &|r| {
            progress(Stage::SelectionRound(r))
        })?;
    let raw_sel = raw.select(Axis(1), &selected);
    let standardizer = Standardizer::fit(&raw_sel.select(Axis(0), &fit_rows));
    let z_selected = standardizer.transform(&raw_sel);
    let (gmm, k_scores) = choose_k(
        z_selected.select(Axis(0), &fit_rows).view(),
        &params.cluster,
        params.seed ^ 0x5eed,
        &|k| progress(Stage::KFitted(k)),
    )?;
    let memberships = gmm.predict_proba(z_selected.view())?;
    let labels = hard_labels(&memberships);
    let model = ClusteringModel {
        window: corpus.spec,
        features: selected
            .iter()
            .map(|&i| candidates[i].name.to_string())
            .collect(),
        standardizer,
        gmm,
    };
    Ok(Analysis {
        window: corpus.spec,
        candidates,
        raw_features: raw,
        selected,
        z_selected,
        rounds,
        k_scores,
        model,
        memberships,
        labels,
    })
}

/// Capacity statistics of the windows of one cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityStats {
    /// Mean capacity (Mbps).
    pub mean_mbps: f64,
    /// Median of the per-window means (Mbps; [`crate::stats::quantile`]).
    pub median_window_mean_mbps: f64,
    /// 10th percentile over all bins (Mbps; [`crate::stats::quantile`]).
    pub p10_mbps: f64,
    /// 90th percentile over all bins (Mbps; [`crate::stats::quantile`]).
    pub p90_mbps: f64,
    /// Mean within-window standard deviation (Mbps).
    pub mean_std_mbps: f64,
    /// Fraction of bins with no delivery opportunity.
    pub outage_fraction: f64,
}

/// One cluster in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterReport {
    /// Cluster id (mixture component).
    pub id: usize,
    /// Windows whose most likely cluster this is.
    pub size: usize,
    /// Sum of soft memberships.
    pub soft_size: f64,
    /// Mixture weight.
    pub weight: f64,
    /// Hard-labelled windows per source file.
    pub sources: BTreeMap<String, usize>,
    /// Capacity statistics of its hard-labelled windows.
    pub capacity: Option<CapacityStats>,
    /// The window with the highest membership (an example of the cluster).
    pub example_window: Option<usize>,
    /// Path summary of its hard-labelled windows (scenario corpora only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<PathStats>,
}

/// Path statistics of the windows of one cluster of a scenario corpus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathStats {
    /// Mean min RTT, ms.
    pub mean_min_rtt_ms: f64,
    /// Median buffer in BDPs (unlimited counts as
    /// [`super::features::UNLIMITED_BUFFER_BDP`]): the upper median, a
    /// buffer some window had, not an interpolation.
    pub median_buffer_bdp: f64,
    /// Mean random loss rate.
    pub mean_loss_rate: f64,
    /// Share of windows with a competing flow.
    pub with_competitors: f64,
    /// Share of windows whose ACKs cross the trace.
    pub ack_trace: f64,
    /// Windows per generated kind.
    pub kinds: BTreeMap<String, usize>,
}

impl PathStats {
    /// The statistics of `records` (None when empty).
    pub fn of(records: &[&crate::trace::scenario_corpus::WindowRecord]) -> Option<Self> {
        if records.is_empty() {
            return None;
        }
        let n = records.len() as f64;
        let mut buffers: Vec<f64> = records
            .iter()
            .map(|r| {
                r.path
                    .buffer_bdp
                    .unwrap_or(super::features::UNLIMITED_BUFFER_BDP)
            })
            .collect();
        buffers.sort_by(f64::total_cmp);
        let mut kinds = BTreeMap::new();
        for r in records {
            *kinds.entry(r.kind.clone()).or_insert(0) += 1;
        }
        Some(Self {
            mean_min_rtt_ms: records.iter().map(|r| r.path.min_rtt_ms).sum::<f64>() / n,
            // A sample, not `stats::quantile`'s interpolation: "unlimited"
            // stands in as 64 BDPs, and the mean of 2 and that is no buffer
            // any window had.
            median_buffer_bdp: buffers[buffers.len() / 2],
            mean_loss_rate: records.iter().map(|r| r.path.loss_rate).sum::<f64>() / n,
            with_competitors: records
                .iter()
                .filter(|r| !r.path.competitors.is_empty())
                .count() as f64
                / n,
            ack_trace: records.iter().filter(|r| r.path.ack_trace).count() as f64 / n,
            kinds,
        })
    }
}

/// One window in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowReport {
    /// Index in the corpus' window list (what samplers return).
    pub index: usize,
    /// Source file name.
    pub source: String,
    /// Start in the source trace (ms).
    pub start_ms: u64,
    /// Most likely cluster.
    pub cluster: usize,
    /// Soft memberships (one per cluster).
    pub memberships: Vec<f64>,
}

/// A selection round with feature names instead of indices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundReport {
    /// Clusters used.
    pub k: usize,
    /// Mean tree importance of each feature going in.
    pub importances: BTreeMap<String, f64>,
    /// Features kept.
    pub kept: Vec<String>,
}

/// The JSON report of `plume-cc traces analyze`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The analysed folder.
    pub corpus_dir: String,
    /// Trace files and their window counts.
    pub traces: BTreeMap<String, usize>,
    /// Window spec.
    pub window: WindowSpec,
    /// Number of windows.
    pub n_windows: usize,
    /// Settings used.
    pub params: AnalysisParams,
    /// All candidate features with their family.
    pub candidate_features: Vec<(String, Family)>,
    /// Stage 1 rounds.
    pub selection_rounds: Vec<RoundReport>,
    /// The selected features.
    pub selected_features: Vec<String>,
    /// Silhouette etc. per k.
    pub k_scores: Vec<KScore>,
    /// The chosen k.
    pub chosen_k: usize,
    /// Per-cluster summary.
    pub clusters: Vec<ClusterReport>,
    /// Per-window memberships.
    pub windows: Vec<WindowReport>,
    /// The model a trainer loads (also written on its own).
    pub model: ClusteringModel,
    /// Wall-clock timings in ms, filled in by the CLI.
    pub timing_ms: BTreeMap<String, f64>,
}

fn capacity_stats(corpus: &Corpus, members: &[usize]) -> Option<CapacityStats> {
    if members.is_empty() {
        return None;
    }
    let mut all: Vec<f64> = members
        .iter()
        .flat_map(|&i| corpus.windows[i].capacity_mbps.iter().copied())
        .collect();
    if all.is_empty() {
        return None;
    }
    all.sort_by(f64::total_cmp);
    // The project's one quantile convention (type 7, `stats`).
    let pick = |p: f64| crate::stats::quantile(&all, p);
    let mut window_means: Vec<f64> = members
        .iter()
        .map(|&i| {
            let c = &corpus.windows[i].capacity_mbps;
            c.iter().sum::<f64>() / c.len().max(1) as f64
        })
        .collect();
    window_means.sort_by(f64::total_cmp);
    let mean_std = members
        .iter()
        .map(|&i| {
            let c = &corpus.windows[i].capacity_mbps;
            let m = c.iter().sum::<f64>() / c.len().max(1) as f64;
            (c.iter().map(|v| (v - m).powi(2)).sum::<f64>() / c.len().max(1) as f64).sqrt()
        })
        .sum::<f64>()
        / members.len() as f64;
    Some(CapacityStats {
        mean_mbps: all.iter().sum::<f64>() / all.len() as f64,
        median_window_mean_mbps: crate::stats::quantile(&window_means, 0.5),
        p10_mbps: pick(0.1),
        p90_mbps: pick(0.9),
        mean_std_mbps: mean_std,
        outage_fraction: all
            .iter()
            .filter(|v| **v <= super::features::OUTAGE_MBPS)
            .count() as f64
            / all.len() as f64,
    })
}

impl Analysis {
    /// The hard-labelled window indices of each cluster.
    pub fn members(&self) -> Vec<Vec<usize>> {
        let mut out = vec![Vec::new(); self.model.gmm.k()];
        for (i, &l) in self.labels.iter().enumerate() {
            if let Some(m) = out.get_mut(l) {
                m.push(i);
            }
        }
        out
    }

    /// For each cluster, the window with the highest membership in it.
    pub fn examples(&self) -> Vec<Option<usize>> {
        self.memberships
            .axis_iter(Axis(1))
            .enumerate()
            .map(|(c, col)| {
                let best = super::gmm::argmax(col);
                (self.labels.get(best) == Some(&c)).then_some(best)
            })
            .collect()
    }

    /// Builds the JSON report.
    pub fn report(&self, corpus: &Corpus, corpus_dir: &str, params: &AnalysisParams) -> Report {
        let name = |i: usize| self.candidates[i].name.to_string();
        let mut traces = BTreeMap::new();
        for w in &corpus.windows {
            if let Some(t) = corpus.traces.get(w.trace) {
                *traces.entry(t.name.clone()).or_insert(0) += 1;
            }
        }
        for t in &corpus.traces {
            traces.entry(t.name.clone()).or_insert(0);
        }
        let examples = self.examples();
        let clusters = self
            .members()
            .iter()
            .enumerate()
            .map(|(c, members)| {
                let mut sources = BTreeMap::new();
                for &i in members {
                    *sources
                        .entry(corpus.window_source(i).to_string())
                        .or_insert(0) += 1;
                }
                ClusterReport {
                    paths: None,
                    id: c,
                    size: members.len(),
                    soft_size: self.memberships.column(c).sum(),
                    weight: self.model.gmm.weights.get(c).copied().unwrap_or(0.0),
                    sources,
                    capacity: capacity_stats(corpus, members),
                    example_window: examples.get(c).copied().flatten(),
                }
            })
            .collect();
        let windows = corpus
            .windows
            .iter()
            .enumerate()
            .map(|(i, w)| WindowReport {
                index: i,
                source: corpus.window_source(i).to_string(),
                start_ms: w.start_ms,
                cluster: self.labels[i],
                memberships: self
                    .memberships
                    .row(i)
                    .iter()
                    .map(|v| (v * 1e6).round() / 1e6)
                    .collect(),
            })
            .collect();
        Report {
            corpus_dir: corpus_dir.to_string(),
            traces,
            window: self.window,
            n_windows: corpus.windows.len(),
            params: *params,
            candidate_features: self
                .candidates
                .iter()
                .map(|f| (f.name.to_string(), f.family))
                .collect(),
            selection_rounds: self
                .rounds
                .iter()
                .map(|r| RoundReport {
                    k: r.k,
                    importances: r
                        .features_in
                        .iter()
                        .zip(&r.importances)
                        .map(|(&f, &v)| (name(f), v))
                        .collect(),
                    kept: r.kept.iter().map(|&f| name(f)).collect(),
                })
                .collect(),
            selected_features: self.model.features.clone(),
            k_scores: self.k_scores.clone(),
            chosen_k: self.model.gmm.k(),
            clusters,
            windows,
            model: self.model.clone(),
            timing_ms: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::corpus::tests::{shared_corpus_30s, MAHIMAHI_DIR};

    /// (majority cluster, its count, total) of the windows matching `keep`.
    fn majority(a: &Analysis, keep: impl Fn(usize) -> bool) -> (usize, usize, usize) {
        let mut counts = vec![0usize; a.model.gmm.k()];
        let mut total = 0;
        for (i, &l) in a.labels.iter().enumerate() {
            if keep(i) {
                counts[l] += 1;
                total += 1;
            }
        }
        let best = (0..counts.len())
            .max_by_key(|&c| (counts[c], usize::MAX - c))
            .unwrap_or(0);
        (best, counts[best], total)
    }

    #[test]
    fn separates_evdo_umts_and_lte_windows_of_the_shared_traces() {
        let Some(corpus) =
            shared_corpus_30s("separates_evdo_umts_and_lte_windows_of_the_shared_traces")
        else {
            return;
        };
        assert_eq!(corpus.windows.len(), 206);
        // Fewer starts than the CLI's 75 to keep the debug-build test short.
        let params = AnalysisParams::with_starts(0, 15);
        let a = analyze(&corpus, &params, &|_| {}).unwrap();
        let k = a.model.gmm.k();
        assert!((6..=15).contains(&k), "k = {k}");
        assert!(a.selected.len() >= 2);
        let families: Vec<Family> = a.selected.iter().map(|&i| a.candidates[i].family).collect();
        assert!(families.contains(&Family::Level) && families.contains(&Family::Variability));
        // Downlinks are the populations that differ in kind (every uplink
        // is a low-rate link, whatever the technology).
        let down = |i: usize, tech: &str| {
            let s = corpus.window_source(i);
            s.contains(tech) && s.ends_with(".down")
        };
        let (evdo, evdo_n, evdo_total) = majority(&a, |i| down(i, "EVDO"));
        let (lte, _, _) = majority(&a, |i| down(i, "LTE"));
        let (umts, _, _) = majority(&a, |i| down(i, "UMTS"));
        assert_ne!(
            evdo, lte,
            "EVDO and LTE downlink windows share their majority cluster"
        );
        assert_ne!(
            umts, lte,
            "UMTS and LTE downlink windows share their majority cluster"
        );
        assert!(
            evdo_n * 2 > evdo_total,
            "EVDO windows scattered: {evdo_n}/{evdo_total}"
        );
        // Outage-heavy windows (over half the bins empty) stay together, away
        // from the LTE windows (with few clusters they may join EVDO, itself
        // outage-prone).
        let outage = |i: usize| {
            let c = &corpus.windows[i].capacity_mbps;
            c.iter().filter(|v| **v <= 0.0).count() * 2 > c.len()
        };
        let (out, out_n, out_total) = majority(&a, outage);
        assert!(out_total >= 3, "expected some outage-heavy windows");
        assert!(
            out != lte && out_n * 2 > out_total,
            "outage windows: {out_n}/{out_total} in {out}; EVDO {evdo}, LTE {lte}, UMTS {umts}; sizes {:?}", a.members().iter().map(Vec::len).collect::<Vec<_>>()
        );
        // Soft memberships are distributions; the model reproduces them.
        assert!(a
            .memberships
            .axis_iter(Axis(0))
            .all(|r| (r.sum() - 1.0).abs() < 1e-9));
        let again = a.model.memberships(&corpus.series()).unwrap();
        assert!((&again - &a.memberships).mapv(f64::abs).sum() < 1e-6);
        // Deterministic for a seed.
        let b = analyze(&corpus, &params, &|_| {}).unwrap();
        assert_eq!(a.labels, b.labels);
        assert_eq!(a.model, b.model);
        let report = a.report(&corpus, MAHIMAHI_DIR, &params);
        assert_eq!(report.clusters.iter().map(|c| c.size).sum::<usize>(), 206);
        assert!(serde_json::to_string(&report).is_ok());
    }

    #[test]
    fn builds_every_sampler_from_a_synthetic_folder() {
        use crate::plume::sampler::{build_sampler, DynamicParams, SamplerInputs, SamplerKind};
        use rand::SeedableRng;
        let dir = tempfile::tempdir().unwrap();
        crate::trace::synth::write_preset_set(dir.path()).unwrap();
        let corpus =
            Corpus::from_dir(dir.path(), WindowSpec::non_overlapping(10_000, 100), 0).unwrap();
        let mut params = AnalysisParams::with_starts(1, 4);
        params.cluster.k_min = 2;
        params.cluster.k_max = 5;
        params.selection.n_trees = 4;
        let a = analyze(&corpus, &params, &|_| {}).unwrap();
        // Save and reload the model, as a trainer would.
        let path = dir.path().join("model.json");
        a.model.save(&path).unwrap();
        let model = ClusteringModel::load(&path).unwrap();
        assert_eq!(model.features, a.model.features);
        // JSON keeps floats to the last bit or so; memberships must agree.
        let reloaded = model.memberships(&corpus.series()).unwrap();
        assert!((&reloaded - &a.memberships).mapv(f64::abs).sum() < 1e-6);
        let dynamic = DynamicParams {
            warmup: 10,
            update_every: 10,
            train_steps: 5,
            ..DynamicParams::default()
        };
        // The saved model gives the sampler's inputs (its memberships and
        // standardised features); the builder is the one training uses.
        let series = corpus.series();
        let inputs = |references: Option<Vec<f64>>| SamplerInputs {
            memberships: model.memberships(&series).unwrap(),
            features: model.features_of(&series).unwrap(),
            references,
        };
        let n = corpus.windows.len();
        let references: Vec<f64> = (0..n).map(|i| -(i as f64)).collect();
        for (kind, refs) in [
            (SamplerKind::Uniform, None),
            (SamplerKind::PlumeStatic { epsilon: 0.1 }, None),
            (SamplerKind::PlumeDynamic(dynamic), None),
            (
                SamplerKind::PlumeDynamicRef(dynamic),
                Some(references.clone()),
            ),
        ] {
            let mut s = build_sampler(kind, inputs(refs)).unwrap();
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
            for _ in 0..40 {
                let i = s.sample(&mut rng);
                assert!(i < n);
                s.observe(i, -(corpus.windows[i].capacity_mbps[0]));
            }
            let p = s.probabilities();
            assert_eq!(p.len(), n);
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }
        // Reference returns go with the reference kind and nothing else.
        assert!(build_sampler(SamplerKind::PlumeDynamicRef(dynamic), inputs(None)).is_err());
        assert!(
            build_sampler(SamplerKind::PlumeDynamic(dynamic), inputs(Some(references))).is_err()
        );
    }

    #[test]
    fn cluster_capacity_quantiles_follow_the_one_convention() {
        use rand::SeedableRng;
        let dir = tempfile::tempdir().unwrap();
        let (name, spec, seed) = crate::trace::synth::preset_set().remove(0);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        spec.generate(&mut rng)
            .unwrap()
            .write(dir.path().join(name))
            .unwrap();
        let corpus =
            Corpus::from_dir(dir.path(), WindowSpec::non_overlapping(10_000, 100), 0).unwrap();
        // An even count of windows, so the median interpolates.
        let members: Vec<usize> = (0..corpus.windows.len() / 2 * 2).collect();
        assert!(members.len() >= 2);
        let c = capacity_stats(&corpus, &members).unwrap();
        let mut bins: Vec<f64> = members
            .iter()
            .flat_map(|&i| corpus.windows[i].capacity_mbps.iter().copied())
            .collect();
        let mut means: Vec<f64> = members
            .iter()
            .map(|&i| {
                let w = &corpus.windows[i].capacity_mbps;
                w.iter().sum::<f64>() / w.len() as f64
            })
            .collect();
        assert_eq!(c.p10_mbps, crate::stats::quantile_of(&mut bins, 0.1));
        assert_eq!(c.p90_mbps, crate::stats::quantile_of(&mut bins, 0.9));
        assert_eq!(
            c.median_window_mean_mbps,
            crate::stats::quantile_of(&mut means, 0.5)
        );
    }

    #[test]
    fn path_features_are_selected_when_only_the_rtt_separates_the_windows() {
        use crate::trace::scenario_corpus::PathRecord;
        use rand::SeedableRng;
        // 60 windows of the same LTE-like capacity, half at a 20 ms RTT,
        // half at 300 ms: only the path separates them.
        let traces: Vec<crate::trace::CorpusTrace> = (0..60u64)
            .map(|i| {
                let spec = crate::trace::SynthSpec {
                    kind: crate::trace::SynthKind::Lte,
                    mbps: 6.0,
                    duration_ms: 10_000,
                };
                let t = spec
                    .generate(&mut rand_chacha::ChaCha8Rng::seed_from_u64(7))
                    .unwrap();
                crate::trace::CorpusTrace {
                    name: format!("w{i:02}"),
                    path: format!("w{i:02}").into(),
                    trace: t,
                }
            })
            .collect();
        let corpus =
            Corpus::from_traces(traces, WindowSpec::non_overlapping(10_000, 100), 0).unwrap();
        assert_eq!(corpus.windows.len(), 60);
        let long = |i: usize| i % 2 == 1;
        let records: Vec<PathRecord> = (0..60)
            .map(|i| PathRecord {
                min_rtt_ms: if long(i) { 300.0 } else { 20.0 },
                buffer_bdp: Some(2.0),
                loss_rate: 0.0,
                competitors: Vec::new(),
                ack_trace: false,
                delayed_ack: false,
            })
            .collect();
        let refs: Vec<&PathRecord> = records.iter().collect();
        let paths = super::super::features::path_features(&refs);
        let mut params = AnalysisParams::with_starts(3, 4);
        params.cluster.k_min = 2;
        params.cluster.k_max = 4;
        params.selection.n_trees = 8;
        let a = analyze_with_paths(&corpus, Some(&paths), &params, &|_| {}).unwrap();
        assert!(
            a.model.features.iter().any(|f| f == "path_rtt_log"),
            "{:?}",
            a.model.features
        );
        // Windows in their cluster's RTT majority.
        let pure_of = |x: &Analysis| -> usize {
            x.members()
                .iter()
                .map(|m| {
                    let l = m.iter().filter(|&&i| long(i)).count();
                    l.max(m.len() - l)
                })
                .sum()
        };
        // Every cluster is (almost) all short or all long RTTs.
        let pure = pure_of(&a);
        assert!(
            pure >= 57,
            "{pure} of 60 windows in their cluster's RTT majority; features {:?}, labels {:?}",
            a.model.features,
            a.labels
        );
        // Fitted on a random half, every window still gets its
        // memberships, and the RTT still separates them.
        let mut half = params;
        half.fit_sample = 30;
        let h = analyze_with_paths(&corpus, Some(&paths), &half, &|_| {}).unwrap();
        assert_eq!((h.memberships.nrows(), h.labels.len()), (60, 60));
        let pure_half = pure_of(&h);
        assert!(pure_half >= 57, "{pure_half}");
        let rows = fit_sample_rows(10, 4, 1);
        assert_eq!(rows.len(), 4);
        assert!(rows.windows(2).all(|w| w[0] < w[1]) && rows[3] < 10);
        assert_eq!(rows, fit_sample_rows(10, 4, 1));
        assert_eq!(fit_sample_rows(3, 4, 1), vec![0, 1, 2]);
        // Without the paths, the same windows do not split by RTT.
        let b = analyze(&corpus, &params, &|_| {}).unwrap();
        assert!(b.candidates.iter().all(|f| f.family != Family::Path));
        assert!(analyze_with_paths(
            &corpus,
            Some(&paths.slice(ndarray::s![..10, ..]).to_owned()),
            &params,
            &|_| {}
        )
        .is_err());
    }
}
