//! The evaluation matrix (`plume-cc eval matrix`): a policy against its
//! baselines in the simulator, over held-out windows crossed with RTTs,
//! buffer depths and competition.
//!
//! Schemes, each run on the same windows and seeds:
//! - the policy over its base controller;
//! - the fixed rule: action 0 every interval over the same base (what the
//!   policy does if it learned nothing);
//! - CUBIC and the BBR-like controller alone.
//!
//! Cells: min RTT {10, 40, 100, 200} ms x buffer {0.5, 2, 8} BDP (of the
//! window's mean capacity) x flows {the scheme alone, with one CUBIC flow,
//! with one BBR-like flow, with a second flow of the same scheme}, both
//! flows starting together. For the policy (and the fixed rule) the second
//! flow is a peer: the same policy acts on it from its own observation, as
//! the daemon acts on every flow of its cgroup. The windows are
//! the training corpus's held-out ones (every 5th 10 s window), so no cell
//! is measured on a window the policy trained on.
//!
//! Per cell and scheme: utilisation of the link by the scheme's flow, its
//! p95 queueing delay (p95 RTT minus min RTT), Jain's index of the two
//! flows' throughputs and the scheme's share of their sum, and a score,
//! `(throughput / fair share) / (p95 RTT / min RTT)`: Kleinrock power
//! against the flow's fair share (capacity over the flows), 1 at best.

use std::path::Path;

use crate::congestion::ControllerKind;
use crate::policy::{LoadedPolicy, Objective};
use crate::rl::env::SimWindow;
pub use crate::rl::matrix::{
    mean_score, run_cell, Cell, CellScore, Rival, Scheme, SimModels, BUFFERS_BDP, COMPETITION,
    RTTS_MS,
};
pub use crate::stats::jain;

use super::EvalError;

/// Runs the whole matrix for `policy` on `windows`; `progress` hears each cell.
pub fn run(
    policy: &LoadedPolicy,
    objective: Objective,
    models: SimModels,
    windows: &[&SimWindow],
    progress: &mut dyn FnMut(&Cell),
) -> Result<Vec<Cell>, EvalError> {
    let base =
        ControllerKind::from_name(&policy.metadata().base_cc).unwrap_or(ControllerKind::Cubic);
    let schemes: [(&str, Scheme, ControllerKind); 4] = [
        ("policy", Scheme::Policy, base),
        ("fixed rule", Scheme::FixedRule, base),
        ("CUBIC", Scheme::Base, ControllerKind::Cubic),
        ("BBR-like", Scheme::Base, ControllerKind::Bbr),
    ];
    let mut cells = Vec::new();
    for &rtt_ms in &RTTS_MS {
        for &buffer_bdp in &BUFFERS_BDP {
            for competitor in COMPETITION {
                let mut scores = Vec::new();
                for (name, actor, base) in schemes {
                    scores.push(run_cell(
                        policy, objective, actor, base, name, windows, rtt_ms, buffer_bdp,
                        competitor, models,
                    )?);
                }
                let cell = Cell {
                    rtt_ms,
                    buffer_bdp,
                    competitor: competitor.name().to_string(),
                    schemes: scores,
                };
                progress(&cell);
                cells.push(cell);
            }
        }
    }
    Ok(cells)
}

/// The Markdown report: one row per cell, the scores, and for competition
/// cells the shares.
pub fn markdown(cells: &[Cell], policy: &str, objective: Objective, windows: usize) -> String {
    use std::fmt::Write as _;
    let names: Vec<&str> = cells
        .first()
        .map(|c| c.schemes.iter().map(|s| s.scheme.as_str()).collect())
        .unwrap_or_default();
    let mut s = format!(
        "Evaluation matrix: policy `{policy}` at objective {} (delay weight), {windows} held-out windows per cell. \
         Cells: utilization % / p95 queueing ms / score; with a competitor also the scheme's share.\n\n| RTT ms | buffer BDP | competitor |",
        objective.delay_weight()
    );
    for n in &names {
        let _ = write!(s, " {n} |");
    }
    s.push_str("\n|---|---|---|");
    for _ in &names {
        s.push_str("---|");
    }
    s.push('\n');
    for c in cells {
        let _ = write!(s, "| {} | {} | {} |", c.rtt_ms, c.buffer_bdp, c.competitor);
        for x in &c.schemes {
            let _ = write!(
                s,
                " {:.0} / {:.0} / {:.3}{} |",
                x.utilization * 100.0,
                x.p95_queueing_ms,
                x.score,
                if c.competitor == "none" {
                    String::new()
                } else {
                    format!(" / share {:.2}", x.share)
                }
            );
        }
        s.push('\n');
    }
    s.push_str("\nMean score over all cells:");
    for (i, n) in names.iter().enumerate() {
        let _ = write!(s, " {n} {:.3};", mean_score(cells, i));
    }
    s.push('\n');
    s
}

/// Held-out windows of the training split of `traces` (windows of
/// `window_ms`, every 5th held out), at most `limit`, spread evenly: the
/// test picks ([`crate::rl::matrix::test_positions`]).
pub fn heldout_windows(
    traces: &Path,
    window_ms: u64,
    limit: usize,
) -> Result<Vec<SimWindow>, EvalError> {
    heldout_picks(traces, window_ms, limit, crate::rl::matrix::test_positions)
}

/// `limit` validation windows of the same held-out list: none of them is a
/// test pick ([`crate::rl::matrix::validation_positions`]); what a run's
/// `--select-every` scores its snapshots on.
pub fn validation_windows(
    traces: &Path,
    window_ms: u64,
    limit: usize,
) -> Result<Vec<SimWindow>, EvalError> {
    heldout_picks(
        traces,
        window_ms,
        limit,
        crate::rl::matrix::validation_positions,
    )
}

/// The windows at `positions(held-out count, limit)` of the held-out list.
fn heldout_picks(
    traces: &Path,
    window_ms: u64,
    limit: usize,
    positions: fn(usize, usize) -> Vec<usize>,
) -> Result<Vec<SimWindow>, EvalError> {
    let corpus = crate::rl::train::prepare_corpus(traces, window_ms, 5)?;
    let h = &corpus.heldout;
    Ok(positions(h.len(), limit)
        .into_iter()
        .map(|p| corpus.windows[h[p]].clone())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_is_deterministic_and_the_fixed_rule_limits_the_flow() {
        // 12 Mbit/s for 10 s: the datapath applies a limit once per round
        // trip, so at 40 ms the rule's step-limited clamp needs seconds to
        // reach the link (3 s windows gave 0.71 of it, 10 s 0.91).
        let ms: Vec<u64> = (1..=10_000).collect();
        let w = SimWindow::cut(&ms, 0, 10_000).unwrap();
        let policy = crate::policy::default_policy().unwrap();
        let run_with = |actor, base, rival| {
            run_cell(
                &policy,
                Objective::default(),
                actor,
                base,
                "x",
                &[&w],
                40,
                8.0,
                rival,
                SimModels {
                    clamp: crate::congestion::ClampModel::Kernel,
                    ..SimModels::default()
                },
            )
            .unwrap()
        };
        let run = |actor, base| run_with(actor, base, Rival::None);
        let a = run(Scheme::FixedRule, ControllerKind::Cubic);
        let b = run(Scheme::FixedRule, ControllerKind::Cubic);
        assert_eq!(a.score, b.score);
        let cubic = run(Scheme::Base, ControllerKind::Cubic);
        // CUBIC alone fills the 8-BDP buffer; the fixed rule's 2-BDP clamp
        // keeps the queue well below it.
        assert!(
            a.p95_queueing_ms < cubic.p95_queueing_ms / 2.0,
            "{a:?} vs {cubic:?}"
        );
        assert!(a.utilization > 0.8, "{a:?}");
        // Two flows of the same policy: a peer, both acted on by the
        // policy, sharing the link between them.
        let same = run_with(Scheme::Policy, ControllerKind::Cubic, Rival::Same);
        assert!(same.share > 0.2 && same.share < 0.8, "{same:?}");
        assert!(same.jain > 0.7, "{same:?}");
        let two_cubic = run_with(Scheme::Base, ControllerKind::Cubic, Rival::Same);
        assert!(
            two_cubic.jain > 0.7 && two_cubic.utilization < 0.8,
            "{two_cubic:?}"
        );
    }
}
