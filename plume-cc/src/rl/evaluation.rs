//! Evaluation of a policy on held-out windows against the simulator's
//! CUBIC and BBR-like controllers and the fixed rule: per-window
//! Pantheon-style scores, per-cluster means, and the Markdown table.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::VecEnv;
use crate::congestion::ControllerKind;
use crate::policy::model::InferenceNet;
use crate::policy::observation::OBSERVATION_LEN;
use crate::policy::Target;

use super::env::{sim_actions, SimWindow};
use super::ppo::PpoError;

use super::config::{TrainConfig, TrainError};
use super::corpus::PreparedCorpus;

/// Scores of one controller on one window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowScore {
    /// Delivered / capacity.
    pub utilization: f64,
    /// 95th-percentile RTT, milliseconds.
    pub p95_rtt_ms: f64,
    /// 95th-percentile RTT over the min RTT.
    pub p95_delay_ratio: f64,
    /// `utilization / p95_delay_ratio`.
    pub power: f64,
}

/// Mean scores of one controller, overall and per cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ControllerScores {
    /// Controller name.
    pub name: String,
    /// Mean over all evaluated windows.
    pub overall: WindowScore,
    /// Mean per cluster (zeros where no held-out window falls).
    pub per_cluster: Vec<WindowScore>,
    /// Windows per cluster.
    pub cluster_windows: Vec<usize>,
    /// The cluster with the lowest mean power.
    pub worst_cluster: usize,
    /// Its mean scores.
    pub worst: WindowScore,
}

/// The evaluation of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Held-out windows evaluated.
    pub windows: Vec<String>,
    /// Policy, CUBIC, BBR-like.
    pub controllers: Vec<ControllerScores>,
}

fn mean_score(s: &[WindowScore]) -> WindowScore {
    let n = s.len().max(1) as f64;
    WindowScore {
        utilization: s.iter().map(|x| x.utilization).sum::<f64>() / n,
        p95_rtt_ms: s.iter().map(|x| x.p95_rtt_ms).sum::<f64>() / n,
        p95_delay_ratio: s.iter().map(|x| x.p95_delay_ratio).sum::<f64>() / n,
        power: s.iter().map(|x| x.power).sum::<f64>() / n,
    }
}

/// Who acts in an evaluation.
#[derive(Clone, Copy, Debug)]
pub enum Actor<'a> {
    /// The base controller alone (no limits).
    Base,
    /// The fixed rule: action 0 every interval (what a policy that learned
    /// nothing does: the action scaling's gains around the rate anchor).
    FixedRule,
    /// A learned network.
    Policy(&'a InferenceNet),
    /// A policy file, as the daemon runs it (its own action scaling is the
    /// run's `config.scaling`, which a caller keeps equal to the file's).
    Loaded(&'a crate::policy::LoadedPolicy),
}

/// Runs `actor` on every window of `windows` in parallel environments, one
/// batched forward per step.
pub fn score_windows(
    config: &TrainConfig,
    base: ControllerKind,
    actor: Actor<'_>,
    windows: &[&SimWindow],
    seed: u64,
) -> Result<Vec<WindowScore>, TrainError> {
    let env_err = TrainError::Env;
    let mut envs = VecEnv::new(windows.len(), &config.env_config(base)).map_err(env_err)?;
    let seeds: Vec<u64> = (0..windows.len() as u64)
        .map(|i| seed ^ (i * 7919))
        .collect();
    // Windows of a scenario corpus run on their own path; the others on the
    // run's evaluation path.
    let mut min_rtt_ms = vec![2.0 * config.one_way_delay_us as f64 / 1000.0; windows.len()];
    let mut flows = vec![1.0f64; windows.len()];
    let mut obs = Vec::with_capacity(windows.len());
    for (i, (env, w)) in envs.envs_mut().iter_mut().zip(windows).enumerate() {
        let ack = match &w.scenario {
            Some(sc) => {
                min_rtt_ms[i] = 2.0 * sc.one_way_delay_us as f64 / 1000.0;
                flows[i] = 1.0 + sc.competitors.len() as f64;
                super::env::apply_scenario(env, sc, config.objective, &w.trace)
            }
            None => None,
        };
        obs.push(
            env.reset_with_ack_trace(Arc::clone(&w.trace), ack, seeds[i])
                .map_err(env_err)?,
        );
    }
    let mut done = vec![false; windows.len()];
    while !done.iter().all(|&d| d) {
        let actions = match actor {
            Actor::Base => vec![Target::unlimited(); windows.len()],
            Actor::FixedRule => {
                let raw = vec![[0.0f32; 2]; windows.len()];
                sim_actions(&config.scaling, &obs, &raw, envs.envs_mut())
            }
            Actor::Policy(net) => {
                let flat: Vec<f32> = obs.iter().flatten().copied().collect();
                let x = Tensor::from_slice(&flat)
                    .reshape([windows.len() as i64, OBSERVATION_LEN as i64]);
                let a = Vec::<f32>::try_from(tch::no_grad(|| net.forward(&x)).flatten(0, -1))
                    .map_err(|e| TrainError::Ppo(PpoError::Torch(e)))?;
                let raw: Vec<[f32; 2]> = a.chunks_exact(2).map(|c| [c[0], c[1]]).collect();
                sim_actions(&config.scaling, &obs, &raw, envs.envs_mut())
            }
            Actor::Loaded(p) => {
                let flat: Vec<f32> = obs.iter().flatten().copied().collect();
                let raw = p
                    .act_batch(&flat, windows.len())
                    .map_err(TrainError::Policy)?;
                sim_actions(&config.scaling, &obs, &raw, envs.envs_mut())
            }
        };
        // Finished environments would error on step. Windows of one length
        // end together unless a step spans several intervals (a per-copy
        // policy), so only the live ones step.
        let res = envs.step_live(&actions, &done).map_err(env_err)?;
        for (i, r) in res.iter().enumerate() {
            if let Some(r) = r {
                obs[i] = r.observation;
                done[i] = r.done;
            }
        }
    }
    Ok(envs
        .metrics()
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let p95 = m.p95_rtt_us as f64 / 1000.0;
            let ratio = (p95 / min_rtt_ms[i]).max(1.0);
            // Power against the fair share: with competitors, the flow's
            // utilization over its fair share of the link (at most 1.5).
            let fair = (m.utilization * flows[i]).min(1.5);
            WindowScore {
                utilization: m.utilization,
                p95_rtt_ms: p95,
                p95_delay_ratio: ratio,
                power: fair / ratio,
            }
        })
        .collect())
}

/// Evaluates `policy` against CUBIC and BBR-like on the held-out windows.
pub fn evaluate(
    config: &TrainConfig,
    corpus: &PreparedCorpus,
    policy: &InferenceNet,
) -> Result<Evaluation, TrainError> {
    let h = &corpus.heldout;
    let take = config.eval_windows.max(1).min(h.len());
    let idx: Vec<usize> = (0..take).map(|j| h[j * h.len() / take]).collect();
    let windows: Vec<&SimWindow> = idx.iter().map(|&i| &corpus.windows[i]).collect();
    let k = corpus.clusters();
    let mut controllers = Vec::new();
    for (name, base, pol) in [
        (
            match config.base {
                ControllerKind::Cubic => "plume-cc policy (over CUBIC)",
                ControllerKind::Bbr => "plume-cc policy (over BBR-like)",
                ControllerKind::Reno => "plume-cc policy (over Reno)",
            },
            config.base,
            Actor::Policy(policy),
        ),
        ("fixed rule (action 0)", config.base, Actor::FixedRule),
        ("CUBIC", ControllerKind::Cubic, Actor::Base),
        ("BBR-like", ControllerKind::Bbr, Actor::Base),
    ] {
        let scores = score_windows(config, base, pol, &windows, 0xe7a1)?;
        let mut per_cluster = Vec::new();
        let mut counts = Vec::new();
        for c in 0..k {
            let s: Vec<WindowScore> = idx
                .iter()
                .zip(&scores)
                .filter(|(&i, _)| corpus.labels[i] == c)
                .map(|(_, s)| *s)
                .collect();
            counts.push(s.len());
            per_cluster.push(mean_score(&s));
        }
        let worst_cluster = (0..k)
            .filter(|&c| counts[c] > 0)
            .min_by(|&a, &b| per_cluster[a].power.total_cmp(&per_cluster[b].power))
            .unwrap_or(0);
        controllers.push(ControllerScores {
            name: name.to_string(),
            overall: mean_score(&scores),
            worst: per_cluster.get(worst_cluster).copied().unwrap_or_default(),
            per_cluster,
            cluster_windows: counts,
            worst_cluster,
        });
    }
    Ok(Evaluation {
        windows: idx.iter().map(|&i| corpus.names[i].clone()).collect(),
        controllers,
    })
}

impl Evaluation {
    /// A markdown table: overall and worst-cluster scores per controller.
    pub fn table(&self) -> String {
        let mut s = String::from(
            "| controller | utilization | p95 RTT (ms) | p95 RTT / min RTT | power | worst cluster | worst-cluster power |\n|---|---|---|---|---|---|---|\n",
        );
        for c in &self.controllers {
            s.push_str(&format!(
                "| {} | {:.3} | {:.1} | {:.2} | {:.3} | {} | {:.3} |\n",
                c.name,
                c.overall.utilization,
                c.overall.p95_rtt_ms,
                c.overall.p95_delay_ratio,
                c.overall.power,
                c.worst_cluster,
                c.worst.power
            ));
        }
        s
    }
}
