//! The check's Markdown report: one row per window, both sides' outcomes
//! and series means, and whether the window passed.

use super::{SideResult, SimToRealConfig, WindowResult};

fn pct(v: f64) -> String {
    if v.is_finite() {
        format!("{:.0}%", v * 100.0)
    } else {
        "–".into()
    }
}

/// ` (lo-hi)` over several runs, empty for one.
fn spread(runs: &[SideResult], f: fn(&SideResult) -> f64, d: usize) -> String {
    if runs.len() < 2 {
        return String::new();
    }
    let lo = runs.iter().map(f).fold(f64::INFINITY, f64::min);
    let hi = runs.iter().map(f).fold(f64::NEG_INFINITY, f64::max);
    format!(" ({lo:.d$}-{hi:.d$})")
}

fn num(v: f64, d: usize) -> String {
    if v.is_finite() {
        format!("{v:.d$}")
    } else {
        "–".into()
    }
}

/// The Markdown report.
pub fn markdown(cfg: &SimToRealConfig, results: &[WindowResult]) -> String {
    use std::fmt::Write as _;
    let mut s = format!(
        "Sim-to-real: policy `{}`, {} ms windows, {} ms one-way delay, {}-packet droptail, \
         ACKs through the same trace, simulated receiver {}, simulated clamp `{}`, simulated datapath `{}`, simulated timeouts `{}`, simulated min RTT sample `{}`, simulated controllers `{}`; \
         real: mean of {} emulator run(s) per window (range in brackets); tolerance {:.0}%.\n\n\
         | window | capacity Mbit/s | base (sim / real) | utilization sim | real | gap | p95 link delay ms sim | real | gap | anchor Mbit/s sim | real | cwnd sim | real | clamp sim | real | pass |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        cfg.policy.display(),
        cfg.window_ms,
        cfg.delay_ms,
        cfg.queue_packets,
        if cfg.delayed_ack {
            "with delayed ACKs"
        } else {
            "ACKing every segment"
        },
        match cfg.clamp_model {
            crate::congestion::ClampModel::Kernel => "kernel",
            crate::congestion::ClampModel::Immediate => "immediate",
        },
        match cfg.datapath_model {
            crate::sim::DatapathModel::Callbacks => "callbacks",
            crate::sim::DatapathModel::Interval => "interval",
        },
        match cfg.timeout_model {
            crate::sim::TimeoutModel::Undo => "undo",
            crate::sim::TimeoutModel::Plain => "plain",
        },
        match cfg.min_rtt_sample {
            crate::sim::MinRttSample::Newest => "newest",
            crate::sim::MinRttSample::Echoed => "echoed",
        },
        match cfg.cc_model {
            crate::congestion::CcModel::Linux => "linux",
            crate::congestion::CcModel::Classic => "classic",
        },
        cfg.repeats.max(1),
        cfg.tolerance * 100.0
    );
    for r in results {
        let e = r.emu.clone().unwrap_or_default();
        let (gu, gd) = r.gaps().unwrap_or((f64::NAN, f64::NAN));
        let _ = writeln!(
            s,
            "| {} | {:.2} | {} / {} | {:.1}% | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.name,
            r.capacity_mbps,
            r.sim.base_cc,
            if r.emu.is_some() { e.base_cc.as_str() } else { "–" },
            r.sim.utilization * 100.0,
            if r.emu.is_some() { format!("{:.1}%{}", e.utilization * 100.0, spread(&r.emu_runs, |x| x.utilization * 100.0, 1)) } else { r.error.clone().unwrap_or_else(|| "–".into()).replace('|', "/") },
            pct(gu),
            r.sim.p95_link_ms,
            if r.emu.is_some() { format!("{}{}", num(e.p95_link_ms, 0), spread(&r.emu_runs, |x| x.p95_link_ms, 0)) } else { "–".into() },
            pct(gd),
            num(r.sim.mean_anchor_mbps, 2),
            num(e.mean_anchor_mbps, 2),
            num(r.sim.mean_cwnd, 0),
            num(e.mean_cwnd, 0),
            num(r.sim.mean_clamp, 0),
            num(e.mean_clamp, 0),
            if r.emu.is_none() {
                "–"
            } else if r.passes(cfg.tolerance) {
                "yes"
            } else {
                "no"
            },
        );
    }
    let checked: Vec<&WindowResult> = results.iter().filter(|r| r.emu.is_some()).collect();
    if !checked.is_empty() {
        let passed = checked.iter().filter(|r| r.passes(cfg.tolerance)).count();
        let mean = |f: &dyn Fn(&WindowResult) -> f64| {
            checked.iter().map(|r| f(r)).sum::<f64>() / checked.len() as f64
        };
        let _ = writeln!(
            s,
            "\n{passed} of {} windows within {:.0}% on both. Mean gap: utilization {}, p95 link delay {}. \
             Anchor, cwnd and clamp are means over each window's second half.",
            checked.len(),
            cfg.tolerance * 100.0,
            pct(mean(&|r| r.gaps().map_or(f64::NAN, |g| g.0))),
            pct(mean(&|r| r.gaps().map_or(f64::NAN, |g| g.1))),
        );
    }
    s
}
