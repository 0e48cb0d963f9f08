//! Benchmark outputs: per-run JSON and CSV (runs, flows, 500 ms series), a
//! per-trace × setting × scheme summary with the spread across repetitions,
//! its Markdown tables (one per setting, and one of the flows), and the
//! plots.
//!
//! Formatting only; it must not run or measure anything.
//!
//! One file per output:
//! - `summary`: the summaries across repetitions (per trace × setting ×
//!   scheme, and per flow position), the one input of the tables and the
//!   heat maps;
//! - `table`: their Markdown tables;
//! - `files`: every file of a finished benchmark (JSON, CSV, Markdown,
//!   then the plots);
//! - `figures`: the plots, drawn live or again from `results.json`.

mod figures;
mod files;
mod summary;
mod table;

pub use figures::replot;
pub use files::write_all;
pub(crate) use summary::distinct;
pub use summary::{summarize, summarize_flows, FlowSummary, Spread, Summary};
pub use table::markdown;

/// Results the tests of every output are built from.
#[cfg(test)]
mod fixtures {
    use std::time::Duration;

    use crate::bench::{FlowResult, QueueSpec, RunResult, Setting};

    pub(super) fn setting(queue: &str) -> Setting {
        Setting {
            delay: Duration::from_millis(20),
            queue: QueueSpec::parse(queue).unwrap(),
        }
    }

    pub(super) fn flow(index: usize, is_scheme: bool, mbps: f64, conv: Option<f64>) -> FlowResult {
        FlowResult {
            index,
            port: 5201 + index as u16,
            is_scheme,
            label: if is_scheme { "plume" } else { "cubic" }.into(),
            start_s: 0.0,
            throughput_mbps: mbps,
            tail_mbps: mbps,
            p50_delay_ms: 30.0,
            p95_delay_ms: 60.0,
            drops: 0,
            retransmits: 2,
            sender_cc: "cubic".into(),
            convergence_s: conv,
            series_mbps: vec![mbps; 4],
        }
    }

    /// A finished run of `scheme` with a plume flow and a CUBIC competitor.
    pub(super) fn run(
        scheme: &str,
        queue: &str,
        n: usize,
        share: f64,
        conv: Option<f64>,
    ) -> RunResult {
        let mut r = RunResult::failed("t.trace", &setting(queue), scheme, n, String::new());
        r.error = None;
        r.throughput_mbps = 12.0 * share;
        r.utilization = share;
        r.p95_delay_ms = 60.0 + n as f64;
        r.sender_cc = "cubic".into();
        r.flows = vec![
            flow(0, true, 12.0 * share, conv),
            flow(1, false, 12.0 * (1.0 - share), Some(0.5)),
        ];
        r.jain = Some(jain_of(share));
        r.share = Some(share);
        r.converged = Some(conv.is_some());
        r.convergence_s = conv;
        r
    }

    pub(super) fn jain_of(share: f64) -> f64 {
        crate::bench::flows::jain(&[share, 1.0 - share])
    }
}
