//! The training corpus: traces cut into simulator windows, clustered by
//! Plume, split into training and held-out windows ([`prepare_corpus`]), and
//! what the sampler over the training windows is built from
//! ([`PreparedCorpus::sampler_inputs`], [`sampler_kind`]; the builder is
//! [`plume::sampler::build_sampler`]).

use std::path::Path;
use std::sync::Arc;

use crate::plume::sampler::{SamplerInputs, SamplerKind};
use crate::plume::{self, DynamicParams, TraceSampler};
use crate::trace::corpus::Corpus;
use crate::trace::window::WindowSpec;

use super::env::SimWindow;
use super::scenario::Scenario;
use crate::trace::scenario_corpus;

use super::config::{SamplerChoice, TrainError};

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

    /// What the sampler over the training windows is built over
    /// ([`plume::sampler::build_sampler`]): the memberships and features of
    /// the rows in `self.train`, in that order, and `references` (one return
    /// per training window, in the same order) for
    /// [`SamplerChoice::PlumeDynamicRef`].
    pub fn sampler_inputs(&self, references: Option<Vec<f64>>) -> SamplerInputs {
        let rows = &self.train;
        SamplerInputs {
            memberships: self.memberships.select(ndarray::Axis(0), rows),
            features: self.features.select(ndarray::Axis(0), rows),
            references,
        }
    }
}

/// Reads the traces, cuts windows, clusters them and splits them (see module docs).
/// A scenario corpus (`plume-cc traces scenarios`) gives one window per file,
/// each with its own path, clustered with its path features, and split as
/// the generator marked it.
pub fn prepare_corpus(
    dir: &Path,
    window_ms: u64,
    holdout_every: usize,
) -> Result<PreparedCorpus, TrainError> {
    if scenario_corpus::is_scenario_corpus(dir) {
        return prepare_scenario_corpus(dir, window_ms);
    }
    let spec = WindowSpec::non_overlapping(window_ms, 100);
    let corpus = Corpus::from_dir(dir, spec, 0)?;
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
    let analysis = plume::analyze(&kept, &plume::AnalysisParams::with_starts(0, 4), &|_| {})?;
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

fn prepare_scenario_corpus(dir: &Path, window_ms: u64) -> Result<PreparedCorpus, TrainError> {
    let (manifest, records) = scenario_corpus::open(dir)?;
    if manifest.mix.window_ms != window_ms {
        return Err(TrainError::WindowLength {
            corpus_ms: manifest.mix.window_ms,
            run_ms: window_ms,
        });
    }
    let spec = WindowSpec::non_overlapping(window_ms, 100);
    let corpus = Corpus::from_dir(&dir.join(scenario_corpus::TRACES_DIR), spec, 0)?;
    if corpus.windows.len() != records.len() {
        return Err(scenario_corpus::ScenarioCorpusError::Folder {
            path: dir.to_path_buf(),
            what: format!(
                "{} trace windows but {} path records",
                corpus.windows.len(),
                records.len()
            ),
        }
        .into());
    }
    let mut windows = Vec::with_capacity(records.len());
    for (w, r) in corpus.windows.iter().zip(&records) {
        let t = &corpus.traces[w.trace];
        if t.name != r.file {
            return Err(scenario_corpus::ScenarioCorpusError::Folder {
                path: dir.to_path_buf(),
                what: format!("trace {} has no record (found {})", t.name, r.file),
            }
            .into());
        }
        let mut sw = SimWindow::cut(t.trace.timestamps_ms(), 0, window_ms).ok_or_else(|| {
            scenario_corpus::ScenarioCorpusError::Folder {
                path: dir.join(scenario_corpus::TRACES_DIR).join(&r.file),
                what: "no delivery opportunity in the window".into(),
            }
        })?;
        sw.scenario = Some(
            Scenario::from_record(&r.path, sw.mean_mbps).map_err(|source| {
                TrainError::Scenario {
                    file: r.file.clone(),
                    source,
                }
            })?,
        );
        windows.push(sw);
    }
    let paths: Vec<&scenario_corpus::PathRecord> = records.iter().map(|r| &r.path).collect();
    let analysis = plume::analyze_with_paths(
        &corpus,
        Some(&plume::features::path_features(&paths)),
        &plume::AnalysisParams::with_starts(0, 4),
        &|_| {},
    )?;
    let (heldout, train): (Vec<usize>, Vec<usize>) =
        (0..records.len()).partition(|&i| records[i].heldout);
    Ok(PreparedCorpus {
        windows: Arc::new(windows),
        names: records.iter().map(|r| r.file.clone()).collect(),
        labels: analysis.labels.clone(),
        memberships: analysis.memberships.clone(),
        features: analysis.z_selected.clone(),
        train,
        heldout,
    })
}

/// The sampler a training run's `choice` stands for, with the run's settings
/// (epsilon 0.1; the dynamic sampler updates every 16 episodes after 32,
/// seeded with the run's `seed`).
pub fn sampler_kind(choice: SamplerChoice, seed: u64) -> SamplerKind {
    let dynamic = DynamicParams {
        update_every: 16,
        warmup: 32,
        seed,
        ..DynamicParams::default()
    };
    match choice {
        SamplerChoice::Uniform => SamplerKind::Uniform,
        SamplerChoice::PlumeStatic => SamplerKind::PlumeStatic { epsilon: 0.1 },
        SamplerChoice::PlumeDynamic => SamplerKind::PlumeDynamic(dynamic),
        SamplerChoice::PlumeDynamicRef => SamplerKind::PlumeDynamicRef(dynamic),
    }
}

/// Walks the training windows in order (the reference pass).
struct InOrder {
    n: usize,
    next: usize,
}

impl TraceSampler for InOrder {
    fn sample(&mut self, _: &mut dyn rand::RngCore) -> usize {
        let k = self.next % self.n;
        self.next += 1;
        k
    }
    fn observe(&mut self, _: usize, _: f64) {}
    fn probabilities(&self) -> Vec<f64> {
        vec![1.0 / self.n as f64; self.n]
    }
}

/// The fixed rule's (raw action 0's) mean reward on every training window,
/// in `corpus.train` order: one episode each, in the training environment
/// itself ([`super::env::SimBatch`], so the reward, fair share, scenario and
/// action mapping are the run's), the reference of
/// [`SamplerChoice::PlumeDynamicRef`].
pub fn reference_returns(
    config: &super::config::TrainConfig,
    corpus: &PreparedCorpus,
    seed: u64,
) -> Result<Vec<f64>, TrainError> {
    use super::ppo::BatchEnv as _;
    let n = corpus.train.len();
    let envs = config.envs.max(1).min(n);
    let mut batch = super::env::SimBatch::new(
        envs,
        &config.env_config(config.base),
        Arc::clone(&corpus.windows),
        corpus.train.clone(),
        Box::new(InOrder { n, next: 0 }),
        config.scaling,
        config.reward,
        seed,
        config.path_ranges,
        config.scenarios.clone(),
    )?;
    let mut out = vec![f64::NAN; n];
    let mut left = n;
    let zeros = vec![[0.0f32; 2]; envs];
    while left > 0 {
        let peers = batch.peer_observations().len() / crate::policy::observation::OBSERVATION_LEN;
        if peers > 0 {
            batch.set_peer_actions(&vec![[0.0; 2]; peers]);
        }
        batch.step(&zeros)?;
        for e in batch.drain_episodes() {
            if let Some(k) = corpus.train.iter().position(|&t| t == e.window) {
                if out[k].is_nan() {
                    out[k] = e.mean_reward;
                    left -= 1;
                }
            }
        }
    }
    Ok(out)
}
