//! The iperf3 benchmark across the emulated link (Pantheon style).
//!
//! For each trace, setting (one-way delay × bottleneck queue: [`Setting`]),
//! repetition and scheme (schemes interleaved innermost, so that a noisy
//! machine disturbs them alike): start an [`Emulator`] with the trace as the
//! uplink (and, by default, the downlink: [`Downlink`]); start one iperf3
//! server per flow in the outer namespace, each on its own port; start the
//! scheme's `--flows` senders `--stagger` apart and the `--competing` kernel
//! flows in the inner namespace (every plume flow in one cgroup under one
//! daemon, as on a real host). Per flow, throughput, delay, drops and a
//! 500 ms throughput series come from the emulator's own uplink log, which
//! names each packet's flow by port ([`flows`]); retransmissions and the
//! congestion control that actually ran come from iperf3's JSON. Per run:
//! Jain's index and the scheme's share over the tail `--fair-window`, and
//! convergence time. Results are written as JSON, CSV, Markdown tables and
//! plots ([`report`], [`plot`]).
//!
//! This module runs and measures; it must not change how the link behaves
//! (that is [`crate::emu`]) or how a scheme controls its flows.

pub mod cancel;
pub mod config;
pub mod flows;
pub mod overhead;
pub mod plot;
pub mod report;
pub mod result;
pub mod run;
pub mod scheme;

use std::path::{Path, PathBuf};

use crate::emu::EmuError;

pub use config::{
    available_congestion_controls, BenchConfig, Competing, Downlink, PlannedFlow, QueueSpec,
    Setting, FIRST_PORT,
};
pub use flows::percentile;
pub use result::{BenchOutput, FlowResult, Progress, RunResult};
pub use run::{run_bench, run_one};
pub use scheme::Scheme;

/// Errors of a benchmark; each names the run, file or command.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The emulator failed.
    #[error(transparent)]
    Emu(#[from] EmuError),
    /// A trace file is unreadable or malformed.
    #[error(transparent)]
    Trace(#[from] crate::trace::TraceError),
    /// A bad setting.
    #[error("{0}")]
    Config(String),
    /// A scheme could not be set up.
    #[error("{0}")]
    Scheme(String),
    /// iperf3 failed or its output was not understood.
    #[error("{run}: iperf3: {msg}")]
    Iperf {
        /// The run (trace/scheme/repetition).
        run: String,
        /// What went wrong.
        msg: String,
    },
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Plotting failed.
    #[error(transparent)]
    Plot(#[from] crate::font::PlotError),
    /// A stop was asked for ([`cancel::request`]) while this run was going
    /// on; it was wound down and is not measured.
    #[error("{run}: stopped by a signal before it ended")]
    Cancelled {
        /// The run (trace/scheme/repetition).
        run: String,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> BenchError + 'a {
    move |source| BenchError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// The distinct items of `it` in first-seen order: tables and plots list
/// traces, settings and schemes in the order they ran.
pub(crate) fn first_seen<T: PartialEq>(it: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut v = Vec::new();
    for x in it {
        if !v.contains(&x) {
            v.push(x);
        }
    }
    v
}

fn trace_name(p: &Path) -> String {
    p.file_name()
        .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into())
}
