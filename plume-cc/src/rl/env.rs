//! The simulator as a [`BatchEnv`] for PPO: many [`crate::sim::Env`]s stepped
//! in parallel (rayon, through [`VecEnv`]), each episode on a trace window
//! chosen by a [`TraceSampler`] at its reset, with a reward normalised per
//! window so that every window scores on one scale:
//!
//! `reward = min(throughput / window mean capacity, 2) - delay_weight * queueing delay / min RTT
//! - loss_weight * loss rate`, clipped to `[-10, 2]`.
//!
//! Raw actions become datapath targets through [`ActionScaling`] with the
//! flow context read back from the observation itself
//! ([`crate::policy::flow_context_from_observation`]), exactly as the daemon
//! does, so training and deployment apply the same mapping.

use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::plume::TraceSampler;
use crate::policy::flow_context_from_observation;
use crate::policy::model::ActionScaling;
use crate::policy::observation::{Observation, OBSERVATION_LEN};
use crate::sim::{Action, CapacityTrace, Env, EnvConfig, StepResult, VecEnv};

use super::ppo::{BatchEnv, PpoError};

/// Weights of the normalised reward (see module docs).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RewardSpec {
    /// Per unit of queueing delay relative to the min RTT.
    pub delay_weight: f32,
    /// Per unit of loss rate.
    pub loss_weight: f32,
}

impl Default for RewardSpec {
    fn default() -> Self {
        Self {
            delay_weight: 0.5,
            loss_weight: 2.0,
        }
    }
}

/// One trace window ready for the simulator.
#[derive(Clone, Debug)]
pub struct SimWindow {
    /// The capacity schedule, starting at 0.
    pub trace: Arc<CapacityTrace>,
    /// Mean capacity over the window, Mbit/s.
    pub mean_mbps: f64,
    /// Length, milliseconds.
    pub length_ms: u64,
}

impl SimWindow {
    /// The window `[start_ms, start_ms + length_ms)` of Mahimahi timestamps
    /// `timestamps_ms`, or `None` when it holds no delivery opportunity.
    pub fn cut(timestamps_ms: &[u64], start_ms: u64, length_ms: u64) -> Option<Self> {
        let end = start_ms + length_ms;
        let ops: Vec<u64> = timestamps_ms
            .iter()
            .filter(|&&t| t > start_ms && t <= end)
            .map(|&t| t - start_ms)
            .collect();
        let n = ops.len();
        let trace = CapacityTrace::from_ms(ops).ok()?;
        Some(Self {
            trace: Arc::new(trace),
            mean_mbps: n as f64 * 1500.0 * 8.0 / (length_ms as f64 * 1000.0),
            length_ms,
        })
    }
}

/// The normalised reward of one step (see module docs).
pub fn normalized_reward(
    step: &StepResult,
    window_mean_mbps: f64,
    min_rtt_ms: f64,
    spec: &RewardSpec,
) -> (f32, f32, f32) {
    let c = &step.components;
    let share = (f64::from(c.throughput_mbps) / window_mean_mbps.max(1e-3)).min(2.0) as f32;
    let delay = (f64::from(c.queueing_delay_ms) / min_rtt_ms.max(1e-3)) as f32;
    let r = share - spec.delay_weight * delay - spec.loss_weight * c.loss_rate;
    (r.clamp(-10.0, 2.0), share, delay)
}

/// A finished training episode.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpisodeRecord {
    /// Corpus index of the window.
    pub window: usize,
    /// Mean per-step reward (what the sampler observes).
    pub mean_reward: f64,
    /// Mean throughput share of capacity.
    pub mean_share: f64,
    /// Mean queueing delay over min RTT.
    pub mean_delay: f64,
}

/// Simulated environments behind [`BatchEnv`] (see module docs).
pub struct SimBatch {
    envs: VecEnv,
    windows: Arc<Vec<SimWindow>>,
    train: Vec<usize>,
    sampler: Box<dyn TraceSampler>,
    rng: ChaCha8Rng,
    current: Vec<usize>,
    obs: Vec<Observation>,
    acc: Vec<(f64, f64, f64, u64)>,
    /// Episodes finished since the last [`SimBatch::drain_episodes`].
    finished: Vec<EpisodeRecord>,
    scaling: ActionScaling,
    reward: RewardSpec,
    min_rtt_ms: f64,
}

impl SimBatch {
    /// `n` environments of `config` over `windows`; `train` lists the corpus
    /// indices the sampler's rows stand for (sampler index `k` is window
    /// `train[k]`). Every environment is reset once, windows drawn by the sampler.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        n: usize,
        config: &EnvConfig,
        windows: Arc<Vec<SimWindow>>,
        train: Vec<usize>,
        sampler: Box<dyn TraceSampler>,
        scaling: ActionScaling,
        reward: RewardSpec,
        seed: u64,
    ) -> Result<Self, PpoError> {
        let envs = VecEnv::new(n, config).map_err(|e| PpoError::Env(e.to_string()))?;
        let mut b = Self {
            envs,
            windows,
            train,
            sampler,
            rng: ChaCha8Rng::seed_from_u64(seed),
            current: vec![0; n],
            obs: vec![[0.0; OBSERVATION_LEN]; n],
            acc: vec![(0.0, 0.0, 0.0, 0); n],
            finished: Vec::new(),
            scaling,
            reward,
            min_rtt_ms: 2.0 * config.one_way_delay_us as f64 / 1000.0,
        };
        for i in 0..n {
            b.reset_one(i)?;
        }
        Ok(b)
    }

    fn reset_one(&mut self, i: usize) -> Result<(), PpoError> {
        let k = self.sampler.sample(&mut self.rng);
        let w = *self.train.get(k).ok_or_else(|| {
            PpoError::Env(format!(
                "sampler returned index {k} of {}",
                self.train.len()
            ))
        })?;
        let seed = self.rng.gen();
        let trace = Arc::clone(&self.windows[w].trace);
        let env: &mut Env = &mut self.envs.envs_mut()[i];
        self.obs[i] = env
            .reset(trace, seed)
            .map_err(|e| PpoError::Env(e.to_string()))?;
        self.current[i] = w;
        self.acc[i] = (0.0, 0.0, 0.0, 0);
        Ok(())
    }

    /// Episodes finished since the last call.
    pub fn drain_episodes(&mut self) -> Vec<EpisodeRecord> {
        std::mem::take(&mut self.finished)
    }

    /// The sampler (e.g. to log its cluster targets).
    pub fn sampler(&self) -> &dyn TraceSampler {
        self.sampler.as_ref()
    }
}

/// Targets for raw actions on observations (one per environment), with the
/// MSS of each flow.
pub fn sim_actions(
    scaling: &ActionScaling,
    obs: &[Observation],
    raw: &[[f32; 2]],
    mss_bytes: &[u32],
) -> Vec<Action> {
    obs.iter()
        .zip(raw)
        .zip(mss_bytes)
        .map(|((o, a), &mss)| {
            let t = scaling.to_target(*a, &flow_context_from_observation(o, mss));
            Action {
                cwnd_clamp_segments: t.cwnd_clamp_segments,
                max_pacing_bytes_per_sec: t.max_pacing_bytes_per_sec,
            }
        })
        .collect()
}

/// MSS of the controlled flow of every environment (1448 before a reset).
pub fn env_mss(envs: &mut VecEnv) -> Vec<u32> {
    envs.envs_mut()
        .iter()
        .map(|e| {
            e.network()
                .and_then(|n| n.sender(0))
                .map_or(1448, |s| s.mss_bytes())
        })
        .collect()
}

impl BatchEnv for SimBatch {
    fn len(&self) -> usize {
        self.obs.len()
    }

    fn obs_len(&self) -> usize {
        OBSERVATION_LEN
    }

    fn observations(&self) -> Vec<f32> {
        self.obs.iter().flatten().copied().collect()
    }

    fn step(&mut self, actions: &[[f32; 2]]) -> Result<(Vec<f32>, Vec<bool>), PpoError> {
        let mss = env_mss(&mut self.envs);
        let acts = sim_actions(&self.scaling, &self.obs, actions, &mss);
        let results = self
            .envs
            .step_all(&acts)
            .map_err(|e| PpoError::Env(e.to_string()))?;
        let mut rewards = Vec::with_capacity(results.len());
        let mut dones = Vec::with_capacity(results.len());
        for (i, s) in results.iter().enumerate() {
            let w = &self.windows[self.current[i]];
            let (r, share, delay) =
                normalized_reward(s, w.mean_mbps, self.min_rtt_ms, &self.reward);
            rewards.push(r);
            dones.push(s.done);
            self.obs[i] = s.observation;
            let a = &mut self.acc[i];
            a.0 += f64::from(r);
            a.1 += f64::from(share);
            a.2 += f64::from(delay);
            a.3 += 1;
            if s.done {
                let n = a.3.max(1) as f64;
                let rec = EpisodeRecord {
                    window: self.current[i],
                    mean_reward: a.0 / n,
                    mean_share: a.1 / n,
                    mean_delay: a.2 / n,
                };
                if let Some(k) = self.train.iter().position(|&t| t == rec.window) {
                    self.sampler.observe(k, rec.mean_reward);
                }
                self.finished.push(rec);
                self.reset_one(i)?;
            }
        }
        Ok((rewards, dones))
    }
}
