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
//!
//! One file per concern:
//! - `config`: the settings and their checks;
//! - `stats`: the balanced evaluation set, per-cluster means, and the
//!   summaries over seeds with their intervals;
//! - `run`: training and scoring every run, resuming from what is on disk;
//! - `report`: the result file, the Markdown report, and (`plot`) its
//!   figures.

mod config;
mod plot;
mod report;
mod run;
mod stats;

use std::path::{Path, PathBuf};

pub use config::StudyConfig;
pub use report::{markdown, StudyResult};
pub use run::{run, StudyProgress};
pub use stats::{
    balanced_heldout, cluster_means, summarize, BaselineScores, BudgetSummary, EvalSet, RunScores,
    SamplerSummary,
};

/// Errors of a study.
#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    /// The settings make no study.
    #[error("study: {0}")]
    Config(String),
    /// Training, the corpus or an evaluation failed.
    #[error(transparent)]
    Train(#[from] crate::rl::config::TrainError),
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
