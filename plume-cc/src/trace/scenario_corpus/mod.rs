//! A scenario corpus: episode windows, each with its capacity series and
//! its path (min RTT, buffer, loss, competing flows, ACK path), skewed on
//! purpose.
//!
//! Why: Plume's claim is about skewed corpora, where most windows are alike
//! and a few rare kinds are hard. The ten public traces are skewed only in
//! capacity, and every training episode draws its path from one
//! distribution, so a sampler over capacity windows cannot prioritise a
//! rare *path* (a long RTT over a shallow buffer, a CUBIC flow in a deep
//! buffer). A scenario corpus fixes each window's path, so path and
//! capacity together define what is common and what is rare, and a
//! sampler's choice of window is also a choice of path.
//!
//! [`generate`] writes a folder:
//! - `traces/NNNNN-KIND.trace`: each window as a Mahimahi trace of exactly
//!   the window's length (every existing tool reads these);
//! - `paths.jsonl`: one [`WindowRecord`] per trace file, in file order;
//! - `corpus.json`: the [`Manifest`] (mix, seed, counts per kind).
//!
//! The mix ([`Mix`]) weighs built-in kinds ([`Kind`]). The capacity of every
//! kind but `step-down` comes from the public traces (a window cut at a
//! random source window, possibly transformed); `step-down` comes from the
//! project's constant-rate generator. Every fifth window (index 4, 9, ...)
//! is held out, and held-out windows draw their source only from every fifth
//! source window, so no held-out window shares its capacity with a training
//! window.
//!
//! One file per concern:
//! - `record`: a window's path and its line of `paths.jsonl`, with the
//!   ranges the simulator accepts (what every reader relies on);
//! - `mix`: the built-in kinds and the mix file that weighs them;
//! - `generate`: drawing windows of each kind from the public traces;
//! - `folder`: the corpus on disk: writing the traces and the index (for
//!   the generator and for `plume-cc record`), and reading it back.

mod folder;
mod generate;
mod mix;
mod record;

use std::path::{Path, PathBuf};

use super::mahimahi::TraceError;

pub use folder::{is_scenario_corpus, open, write_windows, Manifest, WindowInput};
pub use generate::generate;
pub use mix::{Kind, Mix};
pub use record::{
    Competitor, PathRecord, PathRecordError, WindowRecord, COMPETITOR_KINDS, MAX_COMPETITORS,
};

/// File of the per-window records.
pub const PATHS_FILE: &str = "paths.jsonl";
/// File of the manifest.
pub const MANIFEST_FILE: &str = "corpus.json";
/// Folder of the window traces.
pub const TRACES_DIR: &str = "traces";
/// Every this many windows one is held out (the trainer's default split).
pub const HOLDOUT_EVERY: usize = 5;

/// Errors of a scenario corpus: a bad mix, a bad folder, or trace errors.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioCorpusError {
    /// The mix does not describe a distribution over known kinds.
    #[error("corpus mix: {0}")]
    Mix(String),
    /// The folder is not a usable scenario corpus.
    #[error("{path}: {what}")]
    Folder {
        /// The folder or file concerned.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// Reading or writing a trace failed.
    #[error(transparent)]
    Trace(#[from] TraceError),
}

fn folder_err(path: &Path, what: impl Into<String>) -> ScenarioCorpusError {
    ScenarioCorpusError::Folder {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

/// A failed file operation `action` on `path`, as a corpus error (every
/// read and write of the folder reports the same way).
fn io_err(path: &Path, action: &'static str, e: std::io::Error) -> ScenarioCorpusError {
    ScenarioCorpusError::Trace(TraceError::Io {
        path: path.to_path_buf(),
        action,
        source: e,
    })
}
