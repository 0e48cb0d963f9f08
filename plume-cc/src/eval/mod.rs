//! Evaluation of a policy:
//! - [`sim_to_real`] runs the same window and path in the simulator and
//!   across the emulated link with the real kernel, and compares outcomes and
//!   observation series (`plume-cc eval sim-to-real`);
//! - [`matrix`] scores it against the fixed rule, CUBIC and BBR-like in the
//!   simulator over held-out windows x RTTs x buffers x competition
//!   (`plume-cc eval matrix`).
//!
//! The top layer: it drives the simulator, the policy, the daemon (through
//! the bench's plume scheme) and the emulator.

pub mod matrix;
pub mod plot;
pub mod sim_to_real;
pub mod study;

use std::path::PathBuf;

/// Errors of an evaluation.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A flag's value the evaluation never accepts (the binary exits with 2,
    /// a usage error); the message names the flag.
    #[error("{0}")]
    Setting(String),
    /// Settings these traces cannot serve (e.g. too few usable windows).
    #[error("{0}")]
    Config(String),
    /// A trace could not be read or written.
    #[error(transparent)]
    Trace(#[from] crate::trace::TraceError),
    /// The simulator refused.
    #[error("simulator: {0}")]
    Sim(#[from] crate::sim::SimError),
    /// The RL environment failed.
    #[error(transparent)]
    Env(#[from] crate::rl::EnvError),
    /// The training corpus could not be prepared.
    #[error(transparent)]
    Train(#[from] crate::rl::config::TrainError),
    /// The policy could not be loaded or run.
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    /// The emulator run failed.
    #[error(transparent)]
    Bench(#[from] crate::bench::BenchError),
    /// The daemon's recording could not be read.
    #[error(transparent)]
    Record(#[from] crate::daemon::record::RecordError),
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A plot could not be drawn.
    #[error(transparent)]
    Plot(#[from] crate::font::PlotError),
}
