//! Every file of a finished benchmark: results.json (the configuration,
//! the runs and the summaries), results.csv, flows.csv, series.csv and
//! summary.md, then the plots. Its own file because it is the only writer
//! of the output folder.

use std::{fmt::Write as _, path::PathBuf};

use super::figures::{flow_note, plot_all, title};
use super::{markdown, summarize, summarize_flows};
use crate::bench::{io_err, BenchConfig, BenchError, BenchOutput, RunResult};

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
                let t = (k as u64 * crate::bench::flows::BIN_MS) as f64 / 1000.0;
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
