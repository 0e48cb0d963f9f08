//! The training corpus: traces cut into simulator windows, clustered by
//! Plume, split into training and held-out windows ([`prepare_corpus`]), and
//! the sampler over the training windows ([`build_sampler`]).

use std::path::Path;
use std::sync::Arc;

use crate::plume::{self, sampler::SamplerKind, DynamicParams, TraceSampler};
use crate::trace::corpus::Corpus;
use crate::trace::window::WindowSpec;

use super::env::SimWindow;

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
}

/// Reads the traces, cuts windows, clusters them and splits them (see module docs).
pub fn prepare_corpus(
    dir: &Path,
    window_ms: u64,
    holdout_every: usize,
) -> Result<PreparedCorpus, TrainError> {
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

/// The sampler over the training windows.
pub fn build_sampler(
    choice: SamplerChoice,
    corpus: &PreparedCorpus,
    seed: u64,
) -> Result<Box<dyn TraceSampler>, TrainError> {
    let rows = &corpus.train;
    let kind = match choice {
        SamplerChoice::Uniform => SamplerKind::Uniform,
        SamplerChoice::PlumeStatic => SamplerKind::PlumeStatic { epsilon: 0.1 },
        SamplerChoice::PlumeDynamic => SamplerKind::PlumeDynamic(DynamicParams {
            update_every: 16,
            warmup: 32,
            seed,
            ..DynamicParams::default()
        }),
    };
    plume::sampler::from_memberships(
        kind,
        corpus.memberships.select(ndarray::Axis(0), rows),
        corpus.features.select(ndarray::Axis(0), rows),
    )
    .map_err(TrainError::from)
}
