//! The evaluation matrix's cells: one scheme over held-out windows at one
//! min RTT, buffer depth and competition, scored as power against the
//! flow's fair share.
//!
//! It lives in the training layer because training uses it too: a run with
//! `--select-every` scores its snapshots on the matrix's cells over
//! *validation* windows ([`validation_positions`]), disjoint from the
//! windows `eval matrix` and the run's own held-out evaluation report
//! ([`test_positions`]). `eval::matrix` runs every scheme and writes the
//! report.
//!
//! Per cell and scheme: utilisation of the link by the scheme's flow, its
//! p95 queueing delay (p95 RTT minus min RTT), Jain's index of the two
//! flows' throughputs and the scheme's share of their sum, and a score,
//! `(throughput / fair share) / (p95 RTT / min RTT)`: Kleinrock power
//! against the flow's fair share (capacity over the flows), 1 at best.

use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::congestion::{CcModel, ClampModel, ControllerKind};
use crate::policy::Target;
use crate::policy::{LoadedPolicy, Objective};
use crate::sim::{metrics::flow_metrics, QueueLimit};
use crate::sim::{DatapathModel, MinRttSample, TimeoutModel};

use super::config::TrainError;
use super::env::{env_action, SimWindow};
use super::{Env, EnvConfig, MonitorInterval};

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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// The base controller alone (no limits).
    Base,
    /// Action 0 every interval: the policy's fixed rule.
    FixedRule,
    /// The policy.
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

/// How the matrix's simulator models the kernel: the five models of
/// [`EnvConfig`] that a matrix run takes as one. `Default` is training's
/// simulator (the clamp and datapath as Linux applies them, timeouts that
/// stand, the min RTT from the echoed sample, the classic controllers), the
/// one validation scores come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimModels {
    /// How the clamp acts on the window.
    pub clamp: ClampModel,
    /// When the datapath sees the flow and applies its limits.
    pub datapath: DatapathModel,
    /// Whether a spurious retransmission timeout is undone.
    pub timeout: TimeoutModel,
    /// Which RTT of an ACK the min RTT takes.
    pub min_rtt: MinRttSample,
    /// How closely CUBIC and BBR follow Linux's.
    pub cc_model: CcModel,
}

impl SimModels {
    /// `config` with these models.
    pub fn simulating(self, mut config: EnvConfig) -> EnvConfig {
        config.clamp_model = self.clamp;
        config.datapath_model = self.datapath;
        config.timeout_model = self.timeout;
        config.min_rtt_sample = self.min_rtt;
        config.cc_model = self.cc_model;
        config
    }
}

/// Runs one scheme over `windows` in one cell; returns the cell means.
#[allow(clippy::too_many_arguments)]
pub fn run_cell(
    policy: &LoadedPolicy,
    objective: Objective,
    actor: Scheme,
    base: ControllerKind,
    name: &str,
    windows: &[&SimWindow],
    rtt_ms: u64,
    buffer_bdp: f64,
    rival: Rival,
    models: SimModels,
) -> Result<CellScore, TrainError> {
    let meta = policy.metadata();
    let (competitor, peers) = match (rival, actor) {
        (Rival::None, _) => (None, Vec::new()),
        (Rival::Kernel(k), _) => (Some(k), Vec::new()),
        (Rival::Same, Scheme::Base) => (Some(base), Vec::new()),
        (Rival::Same, _) => (None, vec![0]),
    };
    let mut envs: Vec<Env> = windows
        .iter()
        .map(|w| {
            let bdp_packets = w.mean_mbps * 1e6 / 8.0 * (rtt_ms as f64 / 1000.0) / 1500.0;
            Env::new(
                models.simulating(
                    EnvConfig {
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
                        objective,
                        interval: MonitorInterval::FixedUs(meta.monitor_interval_us),
                        episode_us: Some(w.length_ms * 1000),
                        ..EnvConfig::default()
                    }
                    .deploying(meta),
                ),
            )
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
            Scheme::Base | Scheme::FixedRule => vec![[0.0; 2]; envs.len()],
            Scheme::Policy => {
                let flat: Vec<f32> = obs.iter().flatten().copied().collect();
                policy.act_batch(&flat, envs.len())?
            }
        };
        let actions: Vec<Target> = envs
            .iter()
            .zip(&obs)
            .zip(&raw)
            .map(|((e, o), a)| match actor {
                Scheme::Base => Target::unlimited(),
                _ => env_action(&meta.action_scaling, o, *a, e),
            })
            .collect();
        if !peers.is_empty() {
            // The peers' observations, acted on by the same scheme.
            let pobs: Vec<_> = envs.iter().flat_map(Env::peer_observations).collect();
            let praw: Vec<[f32; 2]> = match actor {
                Scheme::Policy => {
                    let flat: Vec<f32> = pobs.iter().flatten().copied().collect();
                    policy.act_batch(&flat, pobs.len())?
                }
                _ => vec![[0.0; 2]; pobs.len()],
            };
            let mut at = 0;
            for e in &mut envs {
                let n = e.peer_count();
                let t = super::env::peer_actions(&meta.action_scaling, e, &praw[at..at + n]);
                e.set_peer_actions(&t);
                at += n;
            }
        }
        let results = super::vec_env::step_live(&mut envs, &actions, &done)?;
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
        acc.jain += crate::stats::jain(&tputs) / n;
        acc.share += if total > 0.0 {
            m.throughput_mbps / total
        } else {
            0.0
        } / n;
        acc.score += (m.throughput_mbps / fair.max(1e-6)).min(1.5) / ratio / n;
    }
    Ok(acc)
}

/// Mean score of scheme `i` over all cells.
pub fn mean_score(cells: &[Cell], i: usize) -> f64 {
    cells.iter().map(|c| c.schemes[i].score).sum::<f64>() / cells.len().max(1) as f64
}

/// Runs `actor` over every cell of the matrix (RTTs x buffers x
/// competition) on `windows`; returns its mean score over the cells.
pub fn mean_score_of(
    policy: &LoadedPolicy,
    objective: Objective,
    actor: Scheme,
    models: SimModels,
    windows: &[&SimWindow],
) -> Result<f64, TrainError> {
    let base =
        ControllerKind::from_name(&policy.metadata().base_cc).unwrap_or(ControllerKind::Cubic);
    let mut sum = 0.0;
    let mut n = 0usize;
    for &rtt_ms in &RTTS_MS {
        for &buffer_bdp in &BUFFERS_BDP {
            for rival in COMPETITION {
                let c = run_cell(
                    policy, objective, actor, base, "", windows, rtt_ms, buffer_bdp, rival, models,
                )?;
                sum += c.score;
                n += 1;
            }
        }
    }
    Ok(sum / n.max(1) as f64)
}

/// How many held-out windows the test picks are drawn over: the run's
/// held-out report (40 by default) and `eval matrix --windows N` for any N
/// that divides it (8 by default) take positions among these.
pub const TEST_PICKS: usize = 40;

/// Positions (into the held-out list of length `h`) of `take` windows
/// spread evenly: the picks of `eval matrix --windows take` and of the
/// run's held-out report. For `take` dividing [`TEST_PICKS`] they are a
/// subset of `test_positions(h, TEST_PICKS)`.
pub fn test_positions(h: usize, take: usize) -> Vec<usize> {
    let take = take.max(1).min(h);
    (0..take).map(|j| j * h / take).collect()
}

/// Positions of `n` validation windows: held-out windows that no test pick
/// uses ([`test_positions`] at [`TEST_PICKS`]), spread evenly over the rest.
/// Empty when every held-out window is a test pick.
pub fn validation_positions(h: usize, n: usize) -> Vec<usize> {
    let test: std::collections::BTreeSet<usize> =
        test_positions(h, TEST_PICKS).into_iter().collect();
    let free: Vec<usize> = (0..h).filter(|p| !test.contains(p)).collect();
    let take = n.min(free.len());
    (0..take)
        .map(|j| free[j * free.len() / take + free.len() / (2 * take)])
        .collect()
}

#[cfg(test)]
mod positions {
    use super::*;

    #[test]
    fn validation_windows_never_meet_a_test_pick() {
        for h in [1usize, 7, 40, 41, 80, 159, 160, 400] {
            let test: std::collections::BTreeSet<usize> = [1, 2, 4, 5, 8, 10, 20, 40]
                .iter()
                .flat_map(|&t| test_positions(h, t))
                .collect();
            let v = validation_positions(h, 8);
            assert!(
                v.iter().all(|p| !test.contains(p) && *p < h),
                "h={h}: {v:?}"
            );
            let mut d = v.clone();
            d.dedup();
            assert_eq!(d.len(), v.len(), "h={h}: repeated positions {v:?}");
            if h >= 2 * TEST_PICKS {
                assert_eq!(v.len(), 8, "h={h}");
            }
        }
        // The matrix's default 8 picks are among the report's 40.
        let forty: Vec<usize> = test_positions(160, 40);
        assert!(test_positions(160, 8).iter().all(|p| forty.contains(p)));
    }
}
