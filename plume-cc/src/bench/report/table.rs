//! The Markdown tables of the summaries: one per setting, mean (min–max)
//! across repetitions, and one of the flows when runs have several. Its
//! own file because it is the one text format a reader sees (summary.md,
//! and the command's output).

use std::fmt::Write as _;

use super::{FlowSummary, Spread, Summary};
use crate::bench::first_seen;

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

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::fixtures::{flow, setting};
    use super::super::{summarize, summarize_flows};
    use crate::bench::RunResult;

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
}
