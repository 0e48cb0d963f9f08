//! Benchmark outputs: per-run JSON and CSV, a per-trace × scheme summary with
//! the spread across repetitions, and its Markdown table.
//!
//! Formatting only; it must not run or measure anything.

use std::{fmt::Write as _, path::PathBuf};

use serde::{Deserialize, Serialize};

use super::{io_err, plot, BenchConfig, BenchError, BenchOutput, RunResult};

/// Mean, minimum and maximum of one metric across repetitions.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Spread {
    /// Mean.
    pub mean: f64,
    /// Minimum.
    pub min: f64,
    /// Maximum.
    pub max: f64,
}

impl Spread {
    /// The spread of `values` (NaN mean when empty).
    pub fn of(values: impl IntoIterator<Item = f64>) -> Self {
        let v: Vec<f64> = values.into_iter().collect();
        if v.is_empty() {
            return Self {
                mean: f64::NAN,
                min: f64::NAN,
                max: f64::NAN,
            };
        }
        Self {
            mean: v.iter().sum::<f64>() / v.len() as f64,
            min: v.iter().copied().fold(f64::INFINITY, f64::min),
            max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }
}

/// One trace × scheme across its repetitions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Trace name.
    pub trace: String,
    /// Scheme name.
    pub scheme: String,
    /// Successful runs.
    pub runs: usize,
    /// Failed or pending runs, with the first error.
    pub failed: usize,
    /// First error text, if any.
    pub error: Option<String>,
    /// Throughput, Mbps.
    pub throughput_mbps: Spread,
    /// Utilisation of the trace capacity.
    pub utilization: Spread,
    /// Median one-way delay, ms.
    pub p50_delay_ms: Spread,
    /// 95th-percentile one-way delay, ms.
    pub p95_delay_ms: Spread,
    /// Retransmissions.
    pub retransmits: Spread,
    /// Congestion controls that ran under the sender (iperf3's
    /// `sender_tcp_congestion`), distinct values joined by `/`.
    #[serde(default)]
    pub sender_cc: String,
}

/// Groups results by trace and scheme (first-seen order).
pub fn summarize(results: &[RunResult]) -> Vec<Summary> {
    let mut keys: Vec<(String, String)> = Vec::new();
    for r in results {
        let k = (r.trace.clone(), r.scheme.clone());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.into_iter()
        .map(|(trace, scheme)| {
            let all: Vec<&RunResult> = results
                .iter()
                .filter(|r| r.trace == trace && r.scheme == scheme)
                .collect();
            let ok: Vec<&&RunResult> = all.iter().filter(|r| r.error.is_none()).collect();
            let sp = |f: fn(&RunResult) -> f64| Spread::of(ok.iter().map(|r| f(r)));
            Summary {
                runs: ok.len(),
                failed: all.len() - ok.len(),
                error: all.iter().find_map(|r| r.error.clone()),
                throughput_mbps: sp(|r| r.throughput_mbps),
                utilization: sp(|r| r.utilization),
                p50_delay_ms: sp(|r| r.p50_delay_ms),
                p95_delay_ms: sp(|r| r.p95_delay_ms),
                retransmits: sp(|r| r.retransmits as f64),
                sender_cc: {
                    let mut ccs: Vec<&str> = Vec::new();
                    for r in &ok {
                        if !ccs.contains(&r.sender_cc.as_str()) {
                            ccs.push(&r.sender_cc);
                        }
                    }
                    ccs.join("/")
                },
                trace,
                scheme,
            }
        })
        .collect()
}

fn cell(s: &Spread, digits: usize) -> String {
    if s.mean.is_nan() {
        return "–".into();
    }
    format!("{:.d$} ({:.d$}–{:.d$})", s.mean, s.min, s.max, d = digits)
}

/// The Markdown table: mean (min–max) across repetitions.
pub fn markdown(summaries: &[Summary]) -> String {
    let mut s = String::from(
        "| trace | scheme | sender CC | runs | throughput Mbps | utilization % | p50 delay ms | p95 delay ms | retransmits |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for m in summaries {
        if m.runs == 0 {
            let _ = writeln!(
                s,
                "| {} | {} | | 0/{} | {} | | | | |",
                m.trace,
                m.scheme,
                m.failed,
                m.error.as_deref().unwrap_or("failed").replace('|', "/")
            );
            continue;
        }
        let pct = Spread {
            mean: m.utilization.mean * 100.0,
            min: m.utilization.min * 100.0,
            max: m.utilization.max * 100.0,
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {}{} | {} | {} | {} | {} | {} |",
            m.trace,
            m.scheme,
            m.sender_cc,
            m.runs,
            if m.failed > 0 {
                format!(" (+{} failed)", m.failed)
            } else {
                String::new()
            },
            cell(&m.throughput_mbps, 2),
            cell(&pct, 1),
            cell(&m.p50_delay_ms, 0),
            cell(&m.p95_delay_ms, 0),
            cell(&m.retransmits, 0),
        );
    }
    s
}

/// Writes results.json, results.csv, summary.md and the plots.
pub fn write_all(cfg: &BenchConfig, results: Vec<RunResult>) -> Result<BenchOutput, BenchError> {
    let summaries = summarize(&results);
    let table = markdown(&summaries);
    let mut files: Vec<PathBuf> = Vec::new();

    let json_path = cfg.out.join("results.json");
    let json = serde_json::json!({
        "config": {
            "traces": cfg.traces,
            "downlink": cfg.downlink.describe(),
            "schemes": cfg.schemes.iter().map(|s| s.name()).collect::<Vec<_>>(),
            "duration_s": cfg.duration.as_secs_f64(),
            "delay_ms": cfg.delay.as_secs_f64() * 1000.0,
            "queue": cfg.queue.describe(),
            "runs": cfg.runs,
        },
        "runs": results,
        "summary": summaries,
    });
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&json).expect("serialisable"),
    )
    .map_err(io_err("write", &json_path))?;
    files.push(json_path);

    let csv_path = cfg.out.join("results.csv");
    let mut csv = String::from("trace,scheme,run,throughput_mbps,capacity_mbps,utilization,p50_delay_ms,p95_delay_ms,p95_queueing_ms,iperf_receiver_mbps,retransmits,drops,sender_cc,error\n");
    for r in &results {
        let _ = writeln!(
            csv,
            "{},{},{},{:.4},{:.4},{:.4},{:.1},{:.1},{:.1},{:.4},{},{},{},{}",
            r.trace,
            r.scheme,
            r.run,
            r.throughput_mbps,
            r.capacity_mbps,
            r.utilization,
            r.p50_delay_ms,
            r.p95_delay_ms,
            r.p95_queueing_ms,
            r.iperf_receiver_mbps,
            r.retransmits,
            r.drops,
            r.sender_cc,
            r.error
                .as_deref()
                .map(|e| format!("\"{}\"", e.replace('"', "'")))
                .unwrap_or_default()
        );
    }
    std::fs::write(&csv_path, csv).map_err(io_err("write", &csv_path))?;
    files.push(csv_path);

    let md_path = cfg.out.join("summary.md");
    std::fs::write(&md_path, &table).map_err(io_err("write", &md_path))?;
    files.push(md_path);

    let setting = setting(
        cfg.delay.as_secs_f64() * 1000.0,
        cfg.duration.as_secs_f64(),
        &cfg.queue.describe(),
        &cfg.downlink.describe(),
    );
    files.extend(plot_per_trace(&cfg.out, &results, &setting)?);
    Ok(BenchOutput {
        results,
        table,
        files,
    })
}

/// Redraws the plots of a finished benchmark from its `results.json` in
/// `out` (to restyle them without running again); returns the files.
pub fn replot(out: &std::path::Path) -> Result<Vec<PathBuf>, BenchError> {
    let path = out.join("results.json");
    let text = std::fs::read_to_string(&path).map_err(io_err("read", &path))?;
    let bad = |msg: String| BenchError::Config(format!("{}: {msg}", path.display()));
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let results: Vec<RunResult> =
        serde_json::from_value(v["runs"].clone()).map_err(|e| bad(e.to_string()))?;
    let c = &v["config"];
    let setting = setting(
        c["delay_ms"].as_f64().unwrap_or(f64::NAN),
        c["duration_s"].as_f64().unwrap_or(f64::NAN),
        c["queue"].as_str().unwrap_or("?"),
        c["downlink"].as_str().unwrap_or("same"),
    );
    plot_per_trace(out, &results, &setting)
}

/// The run settings as the plots' titles give them.
fn setting(delay_ms: f64, duration_s: f64, queue: &str, downlink: &str) -> String {
    format!("{delay_ms} ms one-way delay, {duration_s} s, {queue}, downlink {downlink}")
}

/// One throughput-vs-p95-delay plot per trace (`plot-TRACE.png` in `out`),
/// titled with the trace and `setting`; returns the files.
fn plot_per_trace(
    out: &std::path::Path,
    results: &[RunResult],
    setting: &str,
) -> Result<Vec<PathBuf>, BenchError> {
    let mut files = Vec::new();
    let mut traces: Vec<&str> = Vec::new();
    for r in results {
        if !traces.contains(&r.trace.as_str()) {
            traces.push(&r.trace);
        }
    }
    for t in traces {
        let runs: Vec<&RunResult> = results
            .iter()
            .filter(|r| r.trace == t && r.error.is_none())
            .collect();
        if runs.is_empty() {
            continue;
        }
        let png = out.join(format!("plot-{t}.png"));
        plot::throughput_delay(&png, &format!("{t}: {setting}"), &runs)?;
        files.push(png);
    }
    Ok(files)
}
