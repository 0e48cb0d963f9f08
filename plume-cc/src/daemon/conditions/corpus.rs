//! The finished flows of a recording written out as a scenario corpus,
//! with every flow's summary and the recording's own account.

use std::{path::PathBuf, time::Duration};

use serde::Serialize;

use super::{FlowRecording, RecordError, RecordOptions, RECORDED_KIND};
use crate::trace::scenario_corpus::{self, WindowInput};

/// What `recording.json` holds, and what `record` prints.
#[derive(Clone, Debug, Serialize)]
pub struct RecordOutcome {
    /// The cgroup.
    pub cgroup: PathBuf,
    /// `daemon` (a running daemon's datapath was read) or `observe-only`
    /// (record attached its own for the recording).
    pub datapath: &'static str,
    /// How long it recorded, seconds.
    pub recorded_s: f64,
    /// Sampling interval, ms.
    pub sample_ms: u64,
    /// Window length, ms.
    pub window_ms: u64,
    /// Network-limited seconds a flow needed.
    pub min_duration_s: f64,
    /// Flows seen.
    pub flows_seen: usize,
    /// Flows that gave windows.
    pub flows_used: usize,
    /// Windows written.
    pub windows: usize,
    /// Held-out windows.
    pub heldout: usize,
    /// Mean delivery of the used flows over their network-limited time,
    /// Mbit/s (each weighted by its time).
    pub mean_mbps: f64,
    /// Always true: the traces are lower bounds of capacity.
    pub lower_bound: bool,
    /// Why the recording stopped.
    pub stopped_by: String,
}

/// Turns finished flow recordings into the corpus under `opts.out`:
/// `traces/`, `paths.jsonl`, `corpus.json` (a scenario corpus), plus
/// `flows.jsonl` (every flow's summary, the unused ones with 0 windows)
/// and `recording.json`. A recording with no usable flow writes nothing.
pub fn write_corpus(
    opts: &RecordOptions,
    flows: &[FlowRecording],
    recorded: Duration,
    datapath_kind: &'static str,
    stopped_by: String,
) -> Result<RecordOutcome, RecordError> {
    let window_ms = opts.window.as_millis() as u64;
    let mut inputs = Vec::new();
    let mut summaries = Vec::new();
    let (mut used, mut nl_sum, mut opp_bits) = (0usize, 0.0f64, 0.0f64);
    for f in flows {
        let usable = f.network_limited() >= opts.min_duration;
        let ws = if usable {
            f.windows(window_ms)
        } else {
            Vec::new()
        };
        let s = f.summary(ws.len());
        if !ws.is_empty() {
            used += 1;
            nl_sum += s.network_limited_s;
            opp_bits += s.mean_mbps * s.network_limited_s;
            let path = f.path_record();
            for (i, ts) in ws.into_iter().enumerate() {
                inputs.push(WindowInput {
                    timestamps_ms: ts,
                    kind: RECORDED_KIND.to_string(),
                    source: format!(
                        "recorded:{}:{}->{}#{i} (lower bound of capacity)",
                        opts.cgroup.display(),
                        f.ports.0,
                        f.ports.1
                    ),
                    path: path.clone(),
                });
            }
        }
        summaries.push(s);
    }
    if inputs.is_empty() {
        return Err(RecordError::NoUsableFlows {
            seen: flows.len(),
            need_s: opts.min_duration.as_secs_f64(),
            longest_s: flows
                .iter()
                .map(|f| f.network_limited().as_secs_f64())
                .fold(0.0, f64::max),
            out: opts.out.clone(),
        });
    }
    let n = inputs.len();
    let manifest = scenario_corpus::write_windows(
        &opts.out,
        window_ms,
        &format!(
            "recorded by plume-cc record on cgroup {} (delivery of network-limited flows: lower bounds of capacity)",
            opts.cgroup.display()
        ),
        inputs,
    )?;
    let outcome = RecordOutcome {
        cgroup: opts.cgroup.clone(),
        datapath: datapath_kind,
        recorded_s: recorded.as_secs_f64(),
        sample_ms: opts.sample.as_millis() as u64,
        window_ms,
        min_duration_s: opts.min_duration.as_secs_f64(),
        flows_seen: flows.len(),
        flows_used: used,
        windows: n,
        heldout: manifest.heldout_counts.values().sum(),
        mean_mbps: if nl_sum > 0.0 { opp_bits / nl_sum } else { 0.0 },
        lower_bound: true,
        stopped_by,
    };
    let write = |name: &str, text: String| {
        let p = opts.out.join(name);
        std::fs::write(&p, text).map_err(|source| RecordError::Io { path: p, source })
    };
    let mut lines = String::new();
    for s in &summaries {
        lines.push_str(&serde_json::to_string(s).unwrap_or_default());
        lines.push('\n');
    }
    write("flows.jsonl", lines)?;
    write(
        "recording.json",
        serde_json::to_string_pretty(&outcome).unwrap_or_default(),
    )?;
    Ok(outcome)
}
