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
use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::congestion::{ClampModel, ControllerKind};
use crate::policy::Target;
use crate::policy::{LoadedPolicy, Objective};
use crate::rl::env::{env_action, SimWindow};
use crate::rl::{Env, EnvConfig, MonitorInterval};
use crate::sim::{metrics::flow_metrics, QueueLimit};

use super::EvalError;

/// Min RTTs of the matrix, milliseconds.
pub const RTTS_MS: [u64; 4] = [10, 40, 100, 200];
/// Buffers of the matrix, BDPs.
pub const BUFFERS_BDP: [f64; 3] = [0.5, 2.0, 8.0];
/// Who shares the bottleneck with the flow under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rival {
    /// Nobody.
    None,
    /// One kernel-like flow of this controller.
    Kernel(ControllerKind),
    /// A second flow of the same scheme: for the policy and the fixed rule
    /// a peer the same policy acts on (its own observation, the same
    /// batched forward), for CUBIC and BBR-like a second such flow.
    Same,
}

impl Rival {
    /// The name in reports (`none`, `cubic`, `bbr`, `same`).
    pub fn name(self) -> &'static str {
        match self {
            Rival::None => "none",
            Rival::Kernel(k) => k.name(),
            Rival::Same => "same",
        }
    }
}

/// Competition of the matrix: none, one CUBIC flow, one BBR-like flow, a
/// second flow of the same scheme.
pub const COMPETITION: [Rival; 4] = [
    Rival::None,
    Rival::Kernel(ControllerKind::Cubic),
    Rival::Kernel(ControllerKind::Bbr),
    Rival::Same,
];

/// Who acts for the flow under test.
#[derive(Clone, Copy, Debug)]
enum Actor {
    Base,
    FixedRule,
    Policy,
}

/// One scheme's outcome in one cell (means over the windows).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CellScore {
    /// Scheme name.
    pub scheme: String,
    /// Utilisation of the link by the scheme's flow.
    pub utilization: f64,
    /// p95 queueing delay of the scheme's flow, ms.
    pub p95_queueing_ms: f64,
    /// Jain's index of the two flows (1 alone).
    pub jain: f64,
    /// The scheme's share of the two flows' throughput (1 alone).
    pub share: f64,
    /// Power against the fair share (module docs).
    pub score: f64,
}

/// One cell of the matrix.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Cell {
    /// Min RTT, ms.
    pub rtt_ms: u64,
    /// Buffer, BDPs.
    pub buffer_bdp: f64,
    /// The competitor (`none`, `cubic`, `bbr`, `same`).
    pub competitor: String,
    /// Every scheme's outcome.
    pub schemes: Vec<CellScore>,
}

pub use crate::bench::flows::jain;

/// Runs one scheme over `windows` in one cell; returns the cell means.
#[allow(clippy::too_many_arguments)]
fn run_cell(
    policy: &LoadedPolicy,
    objective: Objective,
    actor: Actor,
    base: ControllerKind,
    name: &str,
    windows: &[&SimWindow],
    rtt_ms: u64,
    buffer_bdp: f64,
    rival: Rival,
    clamp_model: ClampModel,
) -> Result<CellScore, EvalError> {
    let meta = policy.metadata();
    let (competitor, peers) = match (rival, actor) {
        (Rival::None, _) => (None, Vec::new()),
        (Rival::Kernel(k), _) => (Some(k), Vec::new()),
        (Rival::Same, Actor::Base) => (Some(base), Vec::new()),
        (Rival::Same, _) => (None, vec![0]),
    };
    let mut envs: Vec<Env> = windows
        .iter()
        .map(|w| {
            let bdp_packets = w.mean_mbps * 1e6 / 8.0 * (rtt_ms as f64 / 1000.0) / 1500.0;
            Env::new(EnvConfig {
                base,
                competing: competitor.into_iter().collect(),
                competing_start_us: Vec::new(),
                peer_start_us: peers.clone(),
                one_way_delay_us: rtt_ms * 500,
                queue_limit: QueueLimit::packets(
                    ((buffer_bdp * bdp_packets).round() as u32).max(4),
                ),
                random_loss: 0.0,
                delayed_ack: false,
                clamp_model,
                objective,
                interval: MonitorInterval::FixedUs(meta.monitor_interval_us),
                episode_us: Some(w.length_ms * 1000),
            })
        })
        .collect::<Result<_, _>>()?;
    let mut obs: Vec<_> = envs
        .par_iter_mut()
        .zip(windows.par_iter())
        .enumerate()
        .map(|(i, (e, w))| e.reset(Arc::clone(&w.trace), 0xe7a1 ^ (i as u64 * 7919)))
        .collect::<Result<_, _>>()?;
    let mut done = vec![false; envs.len()];
    while !done.iter().all(|&d| d) {
        let raw: Vec<[f32; 2]> = match actor {
            Actor::Base | Actor::FixedRule => vec![[0.0; 2]; envs.len()],
            Actor::Policy => {
                let flat: Vec<f32> = obs.iter().flatten().copied().collect();
                policy.act_batch(&flat, envs.len())?
            }
        };
        let actions: Vec<Target> = envs
            .iter()
            .zip(&obs)
            .zip(&raw)
            .map(|((e, o), a)| match actor {
                Actor::Base => Target::unlimited(),
                _ => env_action(&meta.action_scaling, o, *a, e),
            })
            .collect();
        if !peers.is_empty() {
            // The peers' observations, acted on by the same scheme.
            let pobs: Vec<_> = envs.iter().flat_map(Env::peer_observations).collect();
            let praw: Vec<[f32; 2]> = match actor {
                Actor::Policy => {
                    let flat: Vec<f32> = pobs.iter().flatten().copied().collect();
                    policy.act_batch(&flat, pobs.len())?
                }
                _ => vec![[0.0; 2]; pobs.len()],
            };
            let mut at = 0;
            for e in &mut envs {
                let n = e.peer_count();
                let t = crate::rl::env::peer_actions(&meta.action_scaling, e, &praw[at..at + n]);
                e.set_peer_actions(&t);
                at += n;
            }
        }
        let results: Vec<_> = envs
            .par_iter_mut()
            .zip(actions.par_iter())
            .zip(done.par_iter())
            .map(|((e, &a), &d)| if d { Ok(None) } else { e.step(a).map(Some) })
            .collect::<Result<_, _>>()?;
        for (i, r) in results.into_iter().enumerate() {
            if let Some(r) = r {
                obs[i] = r.observation;
                done[i] = r.done;
            }
        }
    }
    let n = envs.len().max(1) as f64;
    let mut acc = CellScore {
        scheme: name.to_string(),
        ..CellScore::default()
    };
    let flows = if rival == Rival::None { 1.0 } else { 2.0 };
    for (e, w) in envs.iter().zip(windows) {
        let Some(net) = e.network() else { continue };
        let m = flow_metrics(net, 0).unwrap_or_default();
        let other = flow_metrics(net, 1).map(|m| m.throughput_mbps);
        let tputs: Vec<f64> = std::iter::once(m.throughput_mbps).chain(other).collect();
        let total: f64 = tputs.iter().sum();
        let fair = w.mean_mbps / flows;
        let ratio = (m.p95_rtt_us as f64 / (rtt_ms as f64 * 1000.0)).max(1.0);
        acc.utilization += m.utilization / n;
        acc.p95_queueing_ms += m.p95_queueing_delay_us as f64 / 1000.0 / n;
        acc.jain += jain(&tputs) / n;
        acc.share += if total > 0.0 {
            m.throughput_mbps / total
        } else {
            0.0
        } / n;
        acc.score += (m.throughput_mbps / fair.max(1e-6)).min(1.5) / ratio / n;
    }
    Ok(acc)
}

/// Runs the whole matrix for `policy` on `windows`; `progress` hears each cell.
pub fn run(
    policy: &LoadedPolicy,
    objective: Objective,
    clamp_model: ClampModel,
    windows: &[&SimWindow],
    progress: &mut dyn FnMut(&Cell),
) -> Result<Vec<Cell>, EvalError> {
    let base =
        ControllerKind::from_name(&policy.metadata().base_cc).unwrap_or(ControllerKind::Cubic);
    let schemes: [(&str, Actor, ControllerKind); 4] = [
        ("policy", Actor::Policy, base),
        ("fixed rule", Actor::FixedRule, base),
        ("CUBIC", Actor::Base, ControllerKind::Cubic),
        ("BBR-like", Actor::Base, ControllerKind::Bbr),
    ];
    let mut cells = Vec::new();
    for &rtt_ms in &RTTS_MS {
        for &buffer_bdp in &BUFFERS_BDP {
            for competitor in COMPETITION {
                let mut scores = Vec::new();
                for (name, actor, base) in schemes {
                    scores.push(run_cell(
                        policy,
                        objective,
                        actor,
                        base,
                        name,
                        windows,
                        rtt_ms,
                        buffer_bdp,
                        competitor,
                        clamp_model,
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

/// Mean score of scheme `i` over all cells.
pub fn mean_score(cells: &[Cell], i: usize) -> f64 {
    cells.iter().map(|c| c.schemes[i].score).sum::<f64>() / cells.len().max(1) as f64
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
/// `window_ms`, every 5th held out), at most `limit`, spread evenly.
pub fn heldout_windows(
    traces: &Path,
    window_ms: u64,
    limit: usize,
) -> Result<Vec<SimWindow>, EvalError> {
    let corpus = crate::rl::train::prepare_corpus(traces, window_ms, 5)?;
    let h = &corpus.heldout;
    let take = limit.max(1).min(h.len());
    Ok((0..take)
        .map(|j| corpus.windows[h[j * h.len() / take]].clone())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_is_deterministic_and_the_fixed_rule_limits_the_flow() {
        let ms: Vec<u64> = (1..=3000).collect(); // 12 Mbit/s for 3 s
        let w = SimWindow::cut(&ms, 0, 3000).unwrap();
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
                ClampModel::Kernel,
            )
            .unwrap()
        };
        let run = |actor, base| run_with(actor, base, Rival::None);
        let a = run(Actor::FixedRule, ControllerKind::Cubic);
        let b = run(Actor::FixedRule, ControllerKind::Cubic);
        assert_eq!(a.score, b.score);
        let cubic = run(Actor::Base, ControllerKind::Cubic);
        // CUBIC alone fills the 8-BDP buffer; the fixed rule's 2-BDP clamp
        // keeps the queue well below it.
        assert!(
            a.p95_queueing_ms < cubic.p95_queueing_ms / 2.0,
            "{a:?} vs {cubic:?}"
        );
        assert!(a.utilization > 0.8, "{a:?}");
        // Two flows of the same policy: a peer, both acted on by the
        // policy, sharing the link between them.
        let same = run_with(Actor::Policy, ControllerKind::Cubic, Rival::Same);
        assert!(same.share > 0.2 && same.share < 0.8, "{same:?}");
        assert!(same.jain > 0.7, "{same:?}");
        let two_cubic = run_with(Actor::Base, ControllerKind::Cubic, Rival::Same);
        assert!(
            two_cubic.jain > 0.7 && two_cubic.utilization < 0.8,
            "{two_cubic:?}"
        );
    }
}
