//! Benchmark outputs: per-run JSON and CSV (runs, flows, 500 ms series), a
//! per-trace × setting × scheme summary with the spread across repetitions,
//! its Markdown tables (one per setting, and one of the flows), and the
//! plots.
//!
//! Formatting only; it must not run or measure anything.

use std::{fmt::Write as _, path::PathBuf};

use serde::{Deserialize, Serialize};

use super::{
    first_seen, io_err, plot, BenchConfig, BenchError, BenchOutput, Competing, FlowResult,
    RunResult,
};

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

/// One trace × setting × scheme across its repetitions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Trace name.
    pub trace: String,
    /// Setting label (`20 ms, packets=100`).
    #[serde(default)]
    pub setting: String,
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
    /// Flows per run (the scheme's and the competing ones).
    #[serde(default)]
    pub flows: usize,
    /// Jain's index (runs with several flows).
    #[serde(default)]
    pub jain: Option<Spread>,
    /// The scheme's share (runs with competitors).
    #[serde(default)]
    pub share: Option<Spread>,
    /// Convergence, s, over the runs where every flow converged.
    #[serde(default)]
    pub convergence_s: Option<Spread>,
    /// Runs in which some flow never converged.
    #[serde(default)]
    pub never_converged: usize,
}

/// One flow position (index) of a trace × setting × scheme across runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlowSummary {
    /// Trace name.
    pub trace: String,
    /// Setting label.
    pub setting: String,
    /// Scheme under test.
    pub scheme: String,
    /// Flow index in the run.
    pub index: usize,
    /// The flow's scheme or competing congestion control.
    pub label: String,
    /// Whether it is one of the scheme's flows.
    pub is_scheme: bool,
    /// Its start, s.
    pub start_s: Spread,
    /// Throughput from its start, Mbps.
    pub throughput_mbps: Spread,
    /// Throughput in the fairness window, Mbps.
    pub tail_mbps: Spread,
    /// p95 one-way delay, ms.
    pub p95_delay_ms: Spread,
    /// Retransmissions.
    pub retransmits: Spread,
    /// Congestion controls that ran under it.
    pub sender_cc: String,
}

/// The distinct values of `it`, in first-seen order, joined by `/`.
pub(crate) fn distinct<'a>(it: impl IntoIterator<Item = &'a str>) -> String {
    first_seen(it).join("/")
}

fn optional_spread(values: Vec<f64>) -> Option<Spread> {
    (!values.is_empty()).then(|| Spread::of(values))
}

/// Groups results by trace, setting and scheme (first-seen order).
pub fn summarize(results: &[RunResult]) -> Vec<Summary> {
    first_seen(
        results
            .iter()
            .map(|r| (r.trace.clone(), r.setting.clone(), r.scheme.clone())),
    )
    .into_iter()
    .map(|(trace, setting, scheme)| {
        let all: Vec<&RunResult> = results
            .iter()
            .filter(|r| r.trace == trace && r.setting == setting && r.scheme == scheme)
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
            sender_cc: distinct(ok.iter().map(|r| r.sender_cc.as_str())),
            flows: ok.iter().map(|r| r.flows.len()).max().unwrap_or(0),
            jain: optional_spread(ok.iter().filter_map(|r| r.jain).collect()),
            share: optional_spread(ok.iter().filter_map(|r| r.share).collect()),
            convergence_s: optional_spread(ok.iter().filter_map(|r| r.convergence_s).collect()),
            never_converged: ok.iter().filter(|r| r.converged == Some(false)).count(),
            trace,
            setting,
            scheme,
        }
    })
    .collect()
}

/// Groups the flows of successful runs by trace, setting, scheme and flow
/// index (first-seen order).
pub fn summarize_flows(results: &[RunResult]) -> Vec<FlowSummary> {
    let keys = first_seen(results.iter().filter(|r| r.error.is_none()).flat_map(|r| {
        r.flows.iter().map(|f| {
            (
                r.trace.clone(),
                r.setting.clone(),
                r.scheme.clone(),
                f.index,
            )
        })
    }));
    keys.into_iter()
        .map(|(trace, setting, scheme, index)| {
            let flows: Vec<&FlowResult> = results
                .iter()
                .filter(|r| {
                    r.error.is_none()
                        && r.trace == trace
                        && r.setting == setting
                        && r.scheme == scheme
                })
                .flat_map(|r| r.flows.iter().filter(|f| f.index == index))
                .collect();
            let sp = |f: fn(&FlowResult) -> f64| Spread::of(flows.iter().map(|x| f(x)));
            FlowSummary {
                label: flows[0].label.clone(),
                is_scheme: flows[0].is_scheme,
                start_s: sp(|f| f.start_s),
                throughput_mbps: sp(|f| f.throughput_mbps),
                tail_mbps: sp(|f| f.tail_mbps),
                p95_delay_ms: sp(|f| f.p95_delay_ms),
                retransmits: sp(|f| f.retransmits as f64),
                sender_cc: distinct(flows.iter().map(|f| f.sender_cc.as_str())),
                trace,
                setting,
                scheme,
                index,
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

fn opt_cell(s: &Option<Spread>, digits: usize) -> String {
    s.as_ref().map_or_else(|| "–".into(), |s| cell(s, digits))
}

/// The Markdown tables: one per setting, mean (min–max) across repetitions;
/// then, when runs have several flows, one row per flow.
pub fn markdown(summaries: &[Summary], flows: &[FlowSummary]) -> String {
    let settings = first_seen(summaries.iter().map(|m| m.setting.as_str()));
    let multi = summaries.iter().any(|m| m.flows > 1);
    let mut s = String::new();
    for setting in &settings {
        if settings.len() > 1 || multi {
            let _ = writeln!(s, "### {setting}\n");
        }
        s.push_str("| trace | scheme | sender CC | runs | throughput Mbps | utilization % | p50 delay ms | p95 delay ms | retransmits |");
        if multi {
            s.push_str(" flows | Jain | share | convergence s |");
        }
        s.push_str("\n|---|---|---|---|---|---|---|---|---|");
        if multi {
            s.push_str("---|---|---|---|");
        }
        s.push('\n');
        for m in summaries.iter().filter(|m| m.setting == *setting) {
            if m.runs == 0 {
                let _ = writeln!(
                    s,
                    "| {} | {} | | 0/{} | {} | | | | |{}",
                    m.trace,
                    m.scheme,
                    m.failed,
                    m.error.as_deref().unwrap_or("failed").replace('|', "/"),
                    if multi { " | | | |" } else { "" }
                );
                continue;
            }
            let pct = Spread {
                mean: m.utilization.mean * 100.0,
                min: m.utilization.min * 100.0,
                max: m.utilization.max * 100.0,
            };
            let _ = write!(
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
            if multi {
                let conv = match (&m.convergence_s, m.never_converged) {
                    (None, 0) => "–".to_string(),
                    (None, n) => format!("never ({n} runs)"),
                    (Some(c), 0) => cell(c, 1),
                    (Some(c), n) => format!("{} (+{n} never)", cell(c, 1)),
                };
                let _ = write!(
                    s,
                    " {} | {} | {} | {conv} |",
                    m.flows,
                    opt_cell(&m.jain, 2),
                    opt_cell(&m.share, 2),
                );
            }
            s.push('\n');
        }
        s.push('\n');
    }
    if multi {
        s.push_str("### Flows\n\nThroughput from each flow's start; tail: over the fairness window.\n\n\
            | trace | setting | scheme | flow | sender | start s | throughput Mbps | tail Mbps | p95 delay ms | retransmits |\n\
            |---|---|---|---|---|---|---|---|---|---|\n");
        for f in flows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {}{} ({}) | {:.1} | {} | {} | {} | {} |",
                f.trace,
                f.setting,
                f.scheme,
                f.index,
                f.label,
                if f.is_scheme { "" } else { ", competing" },
                f.sender_cc,
                f.start_s.mean,
                cell(&f.throughput_mbps, 2),
                cell(&f.tail_mbps, 2),
                cell(&f.p95_delay_ms, 0),
                cell(&f.retransmits, 0),
            );
        }
    }
    s
}

/// Writes results.json, results.csv, flows.csv, series.csv, summary.md and
/// the plots.
pub fn write_all(cfg: &BenchConfig, results: Vec<RunResult>) -> Result<BenchOutput, BenchError> {
    let summaries = summarize(&results);
    let flow_summaries = summarize_flows(&results);
    let table = markdown(&summaries, &flow_summaries);
    let mut files: Vec<PathBuf> = Vec::new();

    let json_path = cfg.out.join("results.json");
    let json = serde_json::json!({
        "config": {
            "traces": cfg.traces,
            "downlink": cfg.downlink.describe(),
            "schemes": cfg.schemes.iter().map(|s| s.name()).collect::<Vec<_>>(),
            "duration_s": cfg.duration.as_secs_f64(),
            "delays_ms": cfg.delays.iter().map(|d| d.as_secs_f64() * 1000.0).collect::<Vec<_>>(),
            "queues": cfg.queues.iter().map(|q| q.label()).collect::<Vec<_>>(),
            "flows": cfg.flows,
            "stagger_s": cfg.stagger.as_secs_f64(),
            "competing": cfg.competing.as_ref().map(|c| c.label()),
            "fair_window_s": cfg.fair_window.as_secs_f64(),
            "runs": cfg.runs,
        },
        "runs": results,
        "summary": summaries,
        "flow_summary": flow_summaries,
    });
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&json).expect("serialisable"),
    )
    .map_err(io_err("write", &json_path))?;
    files.push(json_path);

    let quote = |e: &Option<String>| {
        e.as_deref()
            .map(|e| format!("\"{}\"", e.replace('"', "'")))
            .unwrap_or_default()
    };
    let opt = |v: Option<f64>| v.map(|v| format!("{v:.4}")).unwrap_or_default();
    let csv_path = cfg.out.join("results.csv");
    let mut csv = String::from("trace,delay_ms,queue,queue_resolved,scheme,run,flows,throughput_mbps,link_mbps,capacity_mbps,utilization,p50_delay_ms,p95_delay_ms,p95_queueing_ms,iperf_receiver_mbps,retransmits,drops,sender_cc,jain,share,convergence_s,converged,wall_s,emulator_cpu_s,error\n");
    for r in &results {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{:.4},{:.4},{:.4},{:.4},{:.1},{:.1},{:.1},{:.4},{},{},{},{},{},{},{},{:.2},{:.3},{}",
            r.trace,
            r.delay_ms,
            r.queue,
            r.queue_resolved,
            r.scheme,
            r.run,
            r.flows.len(),
            r.throughput_mbps,
            r.link_mbps,
            r.capacity_mbps,
            r.utilization,
            r.p50_delay_ms,
            r.p95_delay_ms,
            r.p95_queueing_ms,
            r.iperf_receiver_mbps,
            r.retransmits,
            r.drops,
            r.sender_cc,
            opt(r.jain),
            opt(r.share),
            opt(r.convergence_s),
            r.converged.map(|c| c.to_string()).unwrap_or_default(),
            r.wall_s,
            r.emulator_cpu_s,
            quote(&r.error),
        );
    }
    std::fs::write(&csv_path, csv).map_err(io_err("write", &csv_path))?;
    files.push(csv_path);

    let flows_path = cfg.out.join("flows.csv");
    let series_path = cfg.out.join("series.csv");
    let mut fc = String::from("trace,delay_ms,queue,scheme,run,flow,port,sender,is_scheme,start_s,throughput_mbps,tail_mbps,p50_delay_ms,p95_delay_ms,drops,retransmits,sender_cc,convergence_s\n");
    let mut sc = String::from("trace,delay_ms,queue,scheme,run,flow,t_s,mbps\n");
    for r in results.iter().filter(|r| r.error.is_none()) {
        for f in &r.flows {
            let _ = writeln!(
                fc,
                "{},{},{},{},{},{},{},{},{},{:.3},{:.4},{:.4},{:.1},{:.1},{},{},{},{}",
                r.trace,
                r.delay_ms,
                r.queue,
                r.scheme,
                r.run,
                f.index,
                f.port,
                f.label,
                f.is_scheme,
                f.start_s,
                f.throughput_mbps,
                f.tail_mbps,
                f.p50_delay_ms,
                f.p95_delay_ms,
                f.drops,
                f.retransmits,
                f.sender_cc,
                opt(f.convergence_s),
            );
            for (k, v) in f.series_mbps.iter().enumerate() {
                let t = (k as u64 * super::flows::BIN_MS) as f64 / 1000.0;
                let _ = writeln!(
                    sc,
                    "{},{},{},{},{},{},{t:.1},{v:.4}",
                    r.trace, r.delay_ms, r.queue, r.scheme, r.run, f.index
                );
            }
        }
    }
    std::fs::write(&flows_path, fc).map_err(io_err("write", &flows_path))?;
    files.push(flows_path);
    std::fs::write(&series_path, sc).map_err(io_err("write", &series_path))?;
    files.push(series_path);

    let md_path = cfg.out.join("summary.md");
    std::fs::write(&md_path, &table).map_err(io_err("write", &md_path))?;
    files.push(md_path);

    let title = title(
        cfg.duration.as_secs_f64(),
        &cfg.downlink.describe(),
        &flow_note(cfg.flows, cfg.stagger.as_secs_f64(), cfg.competing.as_ref()),
    );
    files.extend(plot_all(&cfg.out, &results, &summaries, &title)?);
    Ok(BenchOutput {
        results,
        table,
        files,
    })
}

/// `3 flows 10 s apart + 1 cubic`, or empty for one flow.
fn flow_note(flows: usize, stagger_s: f64, competing: Option<&Competing>) -> String {
    let mut s = String::new();
    if flows > 1 {
        let _ = write!(s, "{flows} flows {stagger_s} s apart");
    }
    if let Some(c) = competing {
        let _ = write!(
            s,
            "{}vs {} {}",
            if s.is_empty() { "" } else { " " },
            c.flows,
            c.cc
        );
    }
    s
}

/// Redraws the plots of a finished benchmark from its `results.json` in
/// `out` (to restyle them without running again); returns the files.
pub fn replot(out: &std::path::Path) -> Result<Vec<PathBuf>, BenchError> {
    let path = out.join("results.json");
    let text = std::fs::read_to_string(&path).map_err(io_err("read", &path))?;
    let bad = |msg: String| BenchError::Config(format!("{}: {msg}", path.display()));
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let mut results: Vec<RunResult> =
        serde_json::from_value(v["runs"].clone()).map_err(|e| bad(e.to_string()))?;
    let c = &v["config"];
    // Results of a single-setting benchmark from before the sweeps.
    for r in &mut results {
        if r.setting.is_empty() {
            r.setting = format!(
                "{} ms, {}",
                c["delay_ms"].as_f64().unwrap_or(f64::NAN),
                c["queue"].as_str().unwrap_or("?")
            );
        }
    }
    // The same note as the live run's, from the config it recorded.
    let note = flow_note(
        c["flows"].as_u64().unwrap_or(1) as usize,
        c["stagger_s"].as_f64().unwrap_or(0.0),
        c["competing"]
            .as_str()
            .and_then(|l| Competing::parse(l).ok())
            .as_ref(),
    );
    let title = title(
        c["duration_s"].as_f64().unwrap_or(f64::NAN),
        c["downlink"].as_str().unwrap_or("same"),
        &note,
    );
    let summaries = summarize(&results);
    plot_all(out, &results, &summaries, &title)
}

/// What every plot's title adds to its trace and setting.
fn title(duration_s: f64, downlink: &str, flows: &str) -> String {
    let mut t = format!("{duration_s} s, downlink {downlink}");
    if !flows.is_empty() {
        let _ = write!(t, ", {flows}");
    }
    t
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '=' {
                c
            } else {
                '-'
            }
        })
        .collect::<String>()
        .replace("--", "-")
}

/// Every plot: per trace × setting the throughput/delay plot (PNG and SVG);
/// per successful run its flows' throughput over time; with several
/// settings, per trace a heat map of throughput and of p95 delay; with
/// several flows, the fairness figure. Returns the files.
fn plot_all(
    out: &std::path::Path,
    results: &[RunResult],
    summaries: &[Summary],
    title: &str,
) -> Result<Vec<PathBuf>, BenchError> {
    let mut files = Vec::new();
    let groups = first_seen(
        results
            .iter()
            .map(|r| (r.trace.as_str(), r.setting.as_str())),
    );
    let settings = first_seen(groups.iter().map(|(_, s)| *s));
    for (t, setting) in &groups {
        let runs: Vec<&RunResult> = results
            .iter()
            .filter(|r| r.trace == *t && r.setting == *setting && r.error.is_none())
            .collect();
        if runs.is_empty() {
            continue;
        }
        let stem = if settings.len() > 1 {
            format!("plot-{t}-{}", slug(setting))
        } else {
            format!("plot-{t}")
        };
        let caption = format!("{t}: {setting}, {title}");
        for ext in ["png", "svg"] {
            let path = out.join(format!("{stem}.{ext}"));
            plot::throughput_delay(&path, &caption, &runs)?;
            files.push(path);
        }
    }
    for r in results
        .iter()
        .filter(|r| r.error.is_none() && !r.flows.is_empty() && !r.dir.is_empty())
    {
        let path = out.join(&r.dir).join("throughput.png");
        if path.parent().is_some_and(std::path::Path::is_dir) {
            plot::flow_series(
                &path,
                &format!("{} [{}] {} run {}", r.trace, r.setting, r.scheme, r.run),
                r,
            )?;
            files.push(path);
        }
    }
    if settings.len() > 1 {
        for t in first_seen(groups.iter().map(|(t, _)| *t)) {
            let mine: Vec<&Summary> = summaries.iter().filter(|m| m.trace == t).collect();
            let path = out.join(format!("heat-{t}.png"));
            plot::heat_maps(&path, &format!("{t}: {title}"), &mine)?;
            files.push(path);
        }
    }
    if summaries.iter().any(|m| m.jain.is_some()) {
        let path = out.join("fairness.png");
        plot::fairness(&path, &format!("Fairness: {title}"), results)?;
        files.push(path);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::bench::{FlowResult, QueueSpec, Setting};
    use crate::emu::DropTail;

    fn setting(queue: &str) -> Setting {
        Setting {
            delay: Duration::from_millis(20),
            queue: QueueSpec::parse(queue).unwrap(),
        }
    }

    fn flow(index: usize, is_scheme: bool, mbps: f64, conv: Option<f64>) -> FlowResult {
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
    fn run(scheme: &str, queue: &str, n: usize, share: f64, conv: Option<f64>) -> RunResult {
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

    fn jain_of(share: f64) -> f64 {
        crate::bench::flows::jain(&[share, 1.0 - share])
    }

    #[test]
    fn summaries_group_by_setting_and_count_what_failed_or_never_converged() {
        let mut failed = RunResult::failed(
            "t.trace",
            &setting("packets=100"),
            "plume",
            3,
            "iperf3: flow 1 (port 5202): refused".into(),
        );
        failed.error = Some("iperf3: flow 1 (port 5202): refused".into());
        let results = vec![
            run("plume", "packets=100", 1, 0.2, Some(4.0)),
            run("plume", "packets=100", 2, 0.4, None),
            failed,
            run("plume", "bdp=1", 1, 0.5, Some(1.0)),
        ];
        let s = summarize(&results);
        assert_eq!(s.len(), 2, "one summary per setting");
        let a = &s[0];
        assert_eq!(
            (a.setting.as_str(), a.runs, a.failed),
            ("20 ms, packets=100", 2, 1)
        );
        assert!(a.error.as_deref().unwrap().contains("port 5202"));
        let share = a.share.unwrap();
        assert!((share.mean - 0.3).abs() < 1e-12 && share.min == 0.2 && share.max == 0.4);
        // One run converged at 4 s, one never: the spread is over the one
        // that did, and the other is counted.
        assert_eq!(a.convergence_s.unwrap().mean, 4.0);
        assert_eq!(a.never_converged, 1);
        assert_eq!(a.flows, 2);
        let f = summarize_flows(&results);
        assert_eq!(f.len(), 4, "two flow positions in each of two settings");
        assert!(f.iter().any(|x| !x.is_scheme && x.label == "cubic"));
        let md = markdown(&s, &f);
        assert!(md.contains("### 20 ms, packets=100") && md.contains("### 20 ms, bdp=1"));
        assert!(md.contains("| 2 (+1 failed) |"), "{md}");
        assert!(md.contains("4.0 (4.0–4.0) (+1 never)"), "{md}");
        assert!(
            md.contains("### Flows") && md.contains("cubic, competing (cubic)"),
            "{md}"
        );
    }

    #[test]
    fn a_single_flow_benchmark_keeps_the_plain_table() {
        let mut r = RunResult::failed("t.trace", &setting("unlimited"), "bbr", 1, String::new());
        r.error = None;
        r.throughput_mbps = 11.0;
        r.sender_cc = "bbr".into();
        r.flows = vec![flow(0, true, 11.0, None)];
        let md = markdown(&summarize(&[r.clone()]), &summarize_flows(&[r]));
        assert!(!md.contains("Jain") && !md.contains("###"), "{md}");
        assert!(
            md.contains("| t.trace | bbr | bbr | 1 | 11.00 (11.00–11.00) |"),
            "{md}"
        );
    }

    #[test]
    fn replot_reads_results_from_before_the_sweeps() {
        // results.json as a single-setting benchmark wrote it before runs
        // carried their setting: the setting comes from the config.
        let dir = std::env::temp_dir().join(format!("plume-replot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = RunResult::failed("t.trace", &setting("unlimited"), "cubic", 1, String::new());
        r.error = None;
        r.throughput_mbps = 5.0;
        r.p95_delay_ms = 80.0;
        let mut v = serde_json::to_value(&r).unwrap();
        v.as_object_mut().unwrap().remove("setting");
        let json = serde_json::json!({
            "config": {"delay_ms": 20.0, "queue": DropTail::default().describe(), "duration_s": 30.0},
            "runs": [v],
        });
        std::fs::write(dir.join("results.json"), json.to_string()).unwrap();
        let files = replot(&dir).unwrap();
        assert!(
            files.iter().any(|f| f.ends_with("plot-t.trace.png")),
            "{files:?}"
        );
        assert!(
            files.iter().any(|f| f.ends_with("plot-t.trace.svg")),
            "{files:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
