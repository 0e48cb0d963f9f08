//! The simulator as a [`BatchEnv`] for PPO: many [`crate::sim::Env`]s stepped
//! in parallel (rayon, through [`VecEnv`]), each episode on a trace window
//! chosen by a [`TraceSampler`] at its reset, with a reward normalised per
//! window so that every window scores on one scale:
//!
//! `reward = min(throughput / fair share, 2) - delay_weight * queueing delay / min RTT
//! - loss_weight * loss rate`, clipped to `[-10, 2]`,
//!
//! where the fair share is the window's mean capacity over the flows active
//! on the bottleneck (the policy's and every competitor that has started),
//! so a flow is rewarded for its share, not for starving a competitor.
//! Episodes draw their path (and competitors, loss, ACK path) from a
//! [`ScenarioSpec`] when one is given, else from [`PathRanges`].
//!
//! Raw actions become datapath targets through [`ActionScaling`] with the
//! flow context read back from the observation itself
//! ([`crate::policy::flow_context_from_observation`]), exactly as the daemon
//! does, so training and deployment apply the same mapping.

use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Env, EnvConfig, StepResult, VecEnv};
use crate::plume::TraceSampler;
use crate::policy::model::ActionScaling;
use crate::policy::observation::{Observation, OBSERVATION_LEN};
use crate::policy::Target;
use crate::policy::{flow_context, Mode};
use crate::sim::{QueueLimit, Schedule};

use super::ppo::{BatchEnv, PpoError};
use super::scenario::{Scenario, ScenarioSpec};

/// Weights of the normalised reward (see module docs).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RewardSpec {
    /// Per unit of queueing delay relative to the min RTT.
    pub delay_weight: f32,
    /// Per unit of loss rate.
    pub loss_weight: f32,
    /// Which part of the queueing delay is penalised (see [`QueuePenalty`]).
    #[serde(default)]
    pub queue_penalty: QueuePenalty,
}

impl Default for RewardSpec {
    fn default() -> Self {
        Self {
            delay_weight: 0.5,
            loss_weight: 2.0,
            queue_penalty: QueuePenalty::Whole,
        }
    }
}

/// Which part of the queueing delay the reward penalises.
///
/// Why not always the whole queue: a buffer-filling competitor (CUBIC in a
/// deep buffer) holds a queue the flow cannot drain by backing off, yet a
/// whole-queue penalty rewards backing off it, which is how the policy
/// learned to starve itself (docs/TRAINING.md). Alone, all three are equal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum QueuePenalty {
    /// The whole queueing delay (the default policy's reward).
    #[default]
    Whole,
    /// The flow's own part: the delay times its share of the bottleneck's
    /// deliveries (in a FIFO queue a flow's bytes in the queue are in
    /// proportion to its arrivals).
    Own,
    /// Only the part the flow holds beyond its fair share: the delay times
    /// `max(0, share - 1/n) / (1 - 1/n)` for `n` active flows (1 alone, 0 at
    /// or below the fair share).
    AboveFair,
}

impl QueuePenalty {
    /// The fraction of the queueing delay penalised for a flow that took
    /// `share` of the bottleneck's deliveries among `flows` active flows.
    pub fn fraction(self, share: f32, flows: usize) -> f32 {
        let share = share.clamp(0.0, 1.0);
        match self {
            Self::Whole => 1.0,
            Self::Own => share,
            Self::AboveFair if flows <= 1 => 1.0,
            Self::AboveFair => {
                let fair = 1.0 / flows as f32;
                ((share - fair) / (1.0 - fair)).max(0.0)
            }
        }
    }
}

/// One trace window ready for the simulator.
#[derive(Clone, Debug)]
pub struct SimWindow {
    /// The capacity schedule, starting at 0.
    pub trace: Arc<Schedule>,
    /// Mean capacity over the window, Mbit/s.
    pub mean_mbps: f64,
    /// Length, milliseconds.
    pub length_ms: u64,
    /// The window's own path, in a scenario corpus (None: the run's
    /// scenario distribution or fixed path applies).
    pub scenario: Option<Scenario>,
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
        let trace = Schedule::from_ms(ops).ok()?;
        Some(Self {
            trace: Arc::new(trace),
            mean_mbps: n as f64 * 1500.0 * 8.0 / (length_ms as f64 * 1000.0),
            length_ms,
            scenario: None,
        })
    }
}

/// The normalised reward of one step (see module docs); `fair_share_mbps`
/// is the window's mean capacity over the active flows.
pub fn normalized_reward(
    step: &StepResult,
    fair_share_mbps: f64,
    flows: usize,
    min_rtt_ms: f64,
    spec: &RewardSpec,
) -> (f32, f32, f32) {
    let c = &step.components;
    let share = (f64::from(c.throughput_mbps) / fair_share_mbps.max(1e-3)).min(2.0) as f32;
    let delay = (f64::from(c.queueing_delay_ms) / min_rtt_ms.max(1e-3)) as f32;
    let penalised = delay * spec.queue_penalty.fraction(c.bottleneck_share, flows);
    let r = share - spec.delay_weight * penalised - spec.loss_weight * c.loss_rate;
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

/// Per-episode randomisation of the path (domain randomisation, as in
/// Aurora and Orca): every reset draws the one-way delay and the droptail
/// limit uniformly from these inclusive ranges, so one policy learns many
/// RTTs and buffer depths. A degenerate range is a fixed value and draws
/// nothing from the random stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathRanges {
    /// One-way propagation delay, microseconds (low, high).
    pub one_way_delay_us: (u64, u64),
    /// Droptail limit, packets (low, high).
    pub queue_packets: (u32, u32),
}

impl PathRanges {
    /// The path of the next episode: (one-way delay in us, queue limit in packets).
    pub fn draw(&self, rng: &mut impl Rng) -> (u64, u32) {
        let (d0, d1) = self.one_way_delay_us;
        let (q0, q1) = self.queue_packets;
        let delay = if d1 > d0 { rng.gen_range(d0..=d1) } else { d0 };
        let queue = if q1 > q0 { rng.gen_range(q0..=q1) } else { q0 };
        (delay, queue.max(1))
    }
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
    /// Propagation RTT of each environment's current episode (the reward's
    /// delay unit).
    min_rtt_ms: Vec<f64>,
    paths: Option<PathRanges>,
    scenarios: Option<ScenarioSpec>,
    /// Each environment's current scenario (None without a spec).
    scenario: Vec<Option<Scenario>>,
}

impl SimBatch {
    /// `n` environments of `config` over `windows`; `train` lists the corpus
    /// indices the sampler's rows stand for (sampler index `k` is window
    /// `train[k]`). Every environment is reset once, windows drawn by the
    /// sampler, paths drawn from `paths` (None: `config`'s path throughout).
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
        paths: Option<PathRanges>,
        scenarios: Option<ScenarioSpec>,
    ) -> Result<Self, PpoError> {
        let envs = VecEnv::new(n, config).map_err(|e| PpoError::Env(e.into()))?;
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
            min_rtt_ms: vec![2.0 * config.one_way_delay_us as f64 / 1000.0; n],
            paths,
            scenarios,
            scenario: vec![None; n],
        };
        for i in 0..n {
            b.reset_one(i)?;
        }
        Ok(b)
    }

    fn reset_one(&mut self, i: usize) -> Result<(), PpoError> {
        let k = self.sampler.sample(&mut self.rng);
        let w = *self.train.get(k).ok_or_else(|| {
            PpoError::Env(format!("sampler returned index {k} of {}", self.train.len()).into())
        })?;
        let seed = self.rng.gen();
        let trace = Arc::clone(&self.windows[w].trace);
        // A scenario corpus' window brings its own path; otherwise the
        // distribution draws one (the same random stream as before windows
        // had paths, so earlier runs reproduce).
        let scenario = match &self.windows[w].scenario {
            Some(sc) => Some(sc.clone()),
            None => self
                .scenarios
                .as_ref()
                .map(|spec| spec.draw(&mut self.rng, self.windows[w].mean_mbps)),
        };
        let path = match &scenario {
            Some(_) => None,
            None => self.paths.map(|p| p.draw(&mut self.rng)),
        };
        let env: &mut Env = &mut self.envs.envs_mut()[i];
        if let Some((delay_us, queue)) = path {
            env.set_path(delay_us, QueueLimit::packets(queue));
            self.min_rtt_ms[i] = 2.0 * delay_us as f64 / 1000.0;
        }
        let ack = match &scenario {
            Some(sc) => {
                let objective = sc.objective.unwrap_or_else(|| {
                    crate::policy::Objective::new(self.reward.delay_weight).unwrap_or_default()
                });
                self.min_rtt_ms[i] = 2.0 * sc.one_way_delay_us as f64 / 1000.0;
                apply_scenario(env, sc, objective, &trace)
            }
            None => None,
        };
        self.obs[i] = env
            .reset_with_ack_trace(trace, ack, seed)
            .map_err(|e| PpoError::Env(e.into()))?;
        self.scenario[i] = scenario;
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

/// Sets `env` up for `sc` from its next reset on (path, competitors, loss,
/// ACK path, operating point `objective`); returns the ACK path's trace
/// (`trace` itself when the ACKs cross the same link).
pub fn apply_scenario(
    env: &mut Env,
    sc: &Scenario,
    objective: crate::policy::Objective,
    trace: &Arc<Schedule>,
) -> Option<Arc<Schedule>> {
    env.set_path(sc.one_way_delay_us, sc.queue);
    env.set_competition(&sc.competitors, sc.random_loss);
    env.set_peers(&sc.peers);
    env.set_delayed_ack(sc.delayed_ack);
    env.set_objective(objective);
    sc.ack_trace.then(|| Arc::clone(trace))
}

/// The datapath action for raw action `raw` on `env`'s controlled flow,
/// whose latest observation is `obs`: the policy's [`ActionScaling`] with the
/// flow context read back from the observation (as the daemon does), each
/// limit moved at most one step from the limits in force.
pub fn env_action(scaling: &ActionScaling, obs: &Observation, raw: [f32; 2], env: &Env) -> Target {
    mapped_target(
        scaling,
        obs,
        raw,
        env.flow_limits_and_mss(0),
        env.controlled_mode(),
    )
}

/// The action mapping shared by the controlled flow and its peers: `raw`
/// scaled with the context read back from `obs` and the flow's MSS, moved at
/// most one step from `prev`, the limits in force.
fn mapped_target(
    scaling: &ActionScaling,
    obs: &Observation,
    raw: [f32; 2],
    (prev, mss): (Target, u32),
    mode: Mode,
) -> Target {
    let ctx = flow_context(obs, mss, mode);
    scaling.next_target(raw, &ctx, prev)
}

/// The targets of `env`'s peers for raw actions `raw` (one per peer, in
/// order): the same mapping as [`env_action`], each with its own flow's
/// context and limits in force.
pub fn peer_actions(scaling: &ActionScaling, env: &Env, raw: &[[f32; 2]]) -> Vec<Target> {
    env.peer_observations()
        .iter()
        .zip(raw)
        .enumerate()
        .map(|(i, (obs, a))| {
            let flow = env.peer_flow(i).unwrap_or(usize::MAX);
            mapped_target(
                scaling,
                obs,
                *a,
                env.flow_limits_and_mss(flow),
                env.peer_mode(i),
            )
        })
        .collect()
}

/// [`env_action`] for every environment (one observation and raw action each).
pub fn sim_actions(
    scaling: &ActionScaling,
    obs: &[Observation],
    raw: &[[f32; 2]],
    envs: &[Env],
) -> Vec<Target> {
    obs.iter()
        .zip(raw)
        .zip(envs)
        .map(|((o, a), e)| env_action(scaling, o, *a, e))
        .collect()
}

/// MSS of `env`'s controlled flow (1448 before a reset).
pub fn flow_mss(env: &Env) -> u32 {
    env.flow_limits_and_mss(0).1
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

    fn peer_observations(&self) -> Vec<f32> {
        let mut v = Vec::new();
        for e in self.envs.envs() {
            for o in e.peer_observations() {
                v.extend_from_slice(&o);
            }
        }
        v
    }

    fn set_peer_actions(&mut self, raw: &[[f32; 2]]) {
        let scaling = self.scaling;
        let mut at = 0;
        for e in self.envs.envs_mut() {
            let n = e.peer_count();
            let r = &raw[at.min(raw.len())..(at + n).min(raw.len())];
            let t = peer_actions(&scaling, e, r);
            e.set_peer_actions(&t);
            at += n;
        }
    }

    fn step(&mut self, actions: &[[f32; 2]]) -> Result<(Vec<f32>, Vec<bool>), PpoError> {
        let acts = sim_actions(&self.scaling, &self.obs, actions, self.envs.envs_mut());
        let results = self
            .envs
            .step_all(&acts)
            .map_err(|e| PpoError::Env(e.into()))?;
        let mut rewards = Vec::with_capacity(results.len());
        let mut dones = Vec::with_capacity(results.len());
        for (i, s) in results.iter().enumerate() {
            let w = &self.windows[self.current[i]];
            let flows = self.scenario[i]
                .as_ref()
                .map_or(1, |sc| sc.active_flows(s.now_us));
            let fair_mbps = w.mean_mbps / flows as f64;
            let spec = RewardSpec {
                delay_weight: self.scenario[i]
                    .as_ref()
                    .and_then(|sc| sc.objective)
                    .map_or(self.reward.delay_weight, |o| o.delay_weight()),
                ..self.reward
            };
            let (r, share, delay) =
                normalized_reward(s, fair_mbps, flows, self.min_rtt_ms[i], &spec);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::congestion::ControllerKind;
    use crate::plume::sampler::UniformSampler;

    fn windows() -> Arc<Vec<SimWindow>> {
        // A 12 Mbps link for 2 s, as four 500 ms windows.
        let ms: Vec<u64> = (1..=2000).collect();
        Arc::new(
            (0..4)
                .filter_map(|w| SimWindow::cut(&ms, w * 500, 500))
                .collect(),
        )
    }

    fn batch(paths: Option<PathRanges>) -> SimBatch {
        let config = EnvConfig {
            base: ControllerKind::Cubic,
            one_way_delay_us: 20_000,
            queue_limit: QueueLimit::packets(250),
            episode_us: Some(500_000),
            ..EnvConfig::default()
        };
        batch_of(8, &config, 7, paths, None)
    }

    /// `n` environments of `config` over [`windows`], uniformly sampled.
    fn batch_of(
        n: usize,
        config: &EnvConfig,
        seed: u64,
        paths: Option<PathRanges>,
        scenarios: Option<ScenarioSpec>,
    ) -> SimBatch {
        SimBatch::new(
            n,
            config,
            windows(),
            (0..4).collect(),
            Box::new(UniformSampler::new(4).unwrap()),
            ActionScaling::default(),
            RewardSpec::default(),
            seed,
            paths,
            scenarios,
        )
        .unwrap()
    }

    /// The path (one-way delay, queue limit) each environment is configured with.
    fn paths(b: &mut SimBatch) -> Vec<(u64, QueueLimit)> {
        b.envs
            .envs_mut()
            .iter()
            .map(|e| (e.config().one_way_delay_us, e.config().queue_limit))
            .collect()
    }

    #[test]
    fn paths_are_drawn_per_episode_within_their_ranges() {
        let ranges = PathRanges {
            one_way_delay_us: (5_000, 80_000),
            queue_packets: (20, 600),
        };
        let mut b = batch(Some(ranges));
        let (delays, queues): (Vec<u64>, Vec<QueueLimit>) = paths(&mut b).into_iter().unzip();
        assert!(
            delays.iter().all(|d| (5_000..=80_000).contains(d)),
            "{delays:?}"
        );
        let mut distinct = delays.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(distinct.len() >= 6, "8 draws should differ: {delays:?}");
        assert!(queues.iter().any(|q| *q != queues[0]), "{queues:?}");
        // The reward's delay unit follows each environment's path.
        for (m, d) in b.min_rtt_ms.iter().zip(&delays) {
            assert!((m - 2.0 * *d as f64 / 1000.0).abs() < 1e-9);
        }
    }

    fn scenario_batch(seed: u64) -> SimBatch {
        let config = EnvConfig {
            episode_us: Some(500_000),
            ..EnvConfig::default()
        };
        let spec = ScenarioSpec {
            competitors: [1, 1],
            competitor_start_ms: [0, 200],
            ..ScenarioSpec::default_distribution()
        };
        batch_of(4, &config, seed, None, Some(spec))
    }

    #[test]
    fn a_multi_flow_scenario_episode_is_deterministic_for_a_seed() {
        let run = |seed| {
            let mut b = scenario_batch(seed);
            let mut rewards = Vec::new();
            for k in 0..60 {
                let a = [(k as f32 * 0.1).sin(), 0.2];
                let (r, _) = b.step(&[a; 4]).unwrap();
                rewards.extend(r);
            }
            let flows: Vec<usize> = b
                .envs
                .envs_mut()
                .iter()
                .map(|e| e.network().map_or(0, |n| n.flow_count()))
                .collect();
            (rewards, flows)
        };
        let (a, flows) = run(11);
        assert_eq!(flows, vec![2; 4], "every episode has its competitor");
        assert_eq!(a, run(11).0);
        assert_ne!(a, run(12).0, "another seed draws other scenarios");
    }

    #[test]
    fn the_own_queue_penalty_counts_the_flows_part_of_the_queue() {
        let step = StepResult {
            observation: [0.0; OBSERVATION_LEN],
            components: crate::rl::RewardComponents {
                throughput_mbps: 2.5,
                queueing_delay_ms: 160.0,
                loss_rate: 0.0,
                bottleneck_share: 0.25,
            },
            done: false,
            now_us: 0,
            interval_us: 20_000,
        };
        let whole = RewardSpec::default();
        let own = RewardSpec {
            queue_penalty: QueuePenalty::Own,
            ..whole
        };
        let above = RewardSpec {
            queue_penalty: QueuePenalty::AboveFair,
            ..whole
        };
        // A quarter of the bottleneck's deliveries, 4 min RTTs of queue:
        // the whole queue costs 0.5 * 4 = 2, the flow's own part 0.5, and
        // nothing beyond its fair share of two flows.
        let (r_whole, share, delay) = normalized_reward(&step, 5.0, 2, 40.0, &whole);
        let (r_own, _, _) = normalized_reward(&step, 5.0, 2, 40.0, &own);
        let (r_above, _, _) = normalized_reward(&step, 5.0, 2, 40.0, &above);
        assert!((share - 0.5).abs() < 1e-6 && (delay - 4.0).abs() < 1e-6);
        assert!((r_whole - (0.5 - 2.0)).abs() < 1e-6, "{r_whole}");
        assert!((r_own - (0.5 - 0.5)).abs() < 1e-6, "{r_own}");
        assert!((r_above - 0.5).abs() < 1e-6, "{r_above}");
        // Three quarters of two flows' deliveries: half the way from the
        // fair share to all of it.
        assert!((QueuePenalty::AboveFair.fraction(0.75, 2) - 0.5).abs() < 1e-6);
        assert_eq!(QueuePenalty::AboveFair.fraction(0.2, 3), 0.0);
        // Alone (share 1) the two are the same.
        let alone = StepResult {
            components: crate::rl::RewardComponents {
                bottleneck_share: 1.0,
                ..step.components
            },
            ..step
        };
        for spec in [own, above] {
            assert_eq!(
                normalized_reward(&alone, 5.0, 1, 40.0, &whole),
                normalized_reward(&alone, 5.0, 1, 40.0, &spec)
            );
        }
    }

    #[test]
    fn the_reward_counts_throughput_against_the_fair_share() {
        let step = |mbps: f32, qdelay_ms: f32| StepResult {
            observation: [0.0; OBSERVATION_LEN],
            components: crate::rl::RewardComponents {
                throughput_mbps: mbps,
                queueing_delay_ms: qdelay_ms,
                loss_rate: 0.0,
                bottleneck_share: 0.25,
            },
            done: false,
            now_us: 0,
            interval_us: 20_000,
        };
        let spec = RewardSpec::default();
        // 5 Mbit/s on a 10 Mbit/s link shared by two flows: the full share.
        let (r, share, _) = normalized_reward(&step(5.0, 0.0), 10.0 / 2.0, 1, 40.0, &spec);
        assert!((share - 1.0).abs() < 1e-6 && (r - 1.0).abs() < 1e-6);
        // Alone, the same 5 Mbit/s is half the share.
        let (_, share, _) = normalized_reward(&step(5.0, 0.0), 10.0, 1, 40.0, &spec);
        assert!((share - 0.5).abs() < 1e-6);
        // Taking the whole link from a competitor is capped at 2 shares.
        let (_, share, _) = normalized_reward(&step(30.0, 0.0), 5.0, 1, 40.0, &spec);
        assert_eq!(share, 2.0);
        // 40 ms of queue over a 40 ms min RTT costs the delay weight.
        let (r, _, delay) = normalized_reward(&step(5.0, 40.0), 5.0, 1, 40.0, &spec);
        assert!((delay - 1.0).abs() < 1e-6);
        assert!((r - (1.0 - spec.delay_weight)).abs() < 1e-6);
    }

    #[test]
    fn no_ranges_keep_the_configured_path() {
        let mut b = batch(None);
        assert!(paths(&mut b)
            .iter()
            .all(|p| *p == (20_000, QueueLimit::packets(250))));
        assert!(b.min_rtt_ms.iter().all(|m| (*m - 40.0).abs() < 1e-9));
        // A degenerate range is a fixed path and consumes no randomness.
        let fixed = PathRanges {
            one_way_delay_us: (30_000, 30_000),
            queue_packets: (100, 100),
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(fixed.draw(&mut rng), (30_000, 100));
        assert_eq!(rng.gen::<u64>(), ChaCha8Rng::seed_from_u64(1).gen::<u64>());
    }

    #[test]
    fn a_window_with_its_own_path_overrides_the_distribution() {
        use crate::trace::scenario_corpus::{Competitor, PathRecord};
        let path = PathRecord {
            min_rtt_ms: 300.0,
            buffer_bdp: Some(0.5),
            loss_rate: 0.0,
            competitors: vec![Competitor {
                cc: "cubic".into(),
                start_ms: 0,
            }],
            ack_trace: false,
            delayed_ack: false,
        };
        let mut ws: Vec<SimWindow> = windows().iter().cloned().collect();
        for w in &mut ws {
            w.scenario = Some(Scenario::from_record(&path, w.mean_mbps).unwrap());
        }
        let config = EnvConfig {
            episode_us: Some(500_000),
            ..EnvConfig::default()
        };
        let mut b = SimBatch::new(
            4,
            &config,
            Arc::new(ws),
            (0..4).collect(),
            Box::new(UniformSampler::new(4).unwrap()),
            ActionScaling::default(),
            RewardSpec::default(),
            1,
            None,
            Some(ScenarioSpec::default_distribution()),
        )
        .unwrap();
        // 12 Mbit/s x 300 ms = 300 packets of BDP: half of it.
        for (d, q) in paths(&mut b) {
            assert_eq!(d, 150_000);
            assert_eq!(q, QueueLimit::packets(150));
        }
        assert!(b
            .envs
            .envs_mut()
            .iter()
            .all(|e| e.config().competing == vec![ControllerKind::Cubic]));
        assert!(b.min_rtt_ms.iter().all(|&m| (m - 300.0).abs() < 1e-9));
    }

    #[test]
    fn peers_of_the_same_policy_get_their_own_observations_and_limits() {
        let config = EnvConfig {
            episode_us: Some(500_000),
            ..EnvConfig::default()
        };
        let spec = ScenarioSpec {
            competitors: [0, 0],
            peers: [1, 1],
            competitor_start_ms: [0, 100],
            ..ScenarioSpec::default_distribution()
        };
        let run = |seed| {
            let mut b = batch_of(4, &config, seed, None, Some(spec.clone()));
            let mut rewards = Vec::new();
            let mut peer_obs_seen = false;
            for k in 0..24 {
                let peers = b.peer_observations();
                assert_eq!(peers.len(), 4 * OBSERVATION_LEN, "one peer per environment");
                peer_obs_seen |= peers.iter().any(|&v| v != 0.0);
                // The peers are told to clamp hard; the trained flows not.
                b.set_peer_actions(&[[-1.0, -1.0]; 4]);
                let (r, _) = b.step(&[[(k as f32 * 0.3).sin(), 0.5]; 4]).unwrap();
                rewards.extend(r);
            }
            let clamps: Vec<(u32, u32)> = b
                .envs
                .envs()
                .iter()
                .map(|e| {
                    let n = e.network().unwrap();
                    (
                        n.sender(0).unwrap().controller().cwnd_clamp_segments(),
                        n.sender(1).unwrap().controller().cwnd_clamp_segments(),
                    )
                })
                .collect();
            (rewards, clamps, peer_obs_seen)
        };
        let (a, clamps, seen) = run(5);
        assert!(seen, "peers observe once they have started");
        // Every network has the trained flow and its peer, and the peer's
        // limits are its own (the smallest clamp the scaling allows).
        for (own, peer) in &clamps {
            assert!(
                peer < own || *own == plume_cc_common::CWND_UNCLAMPED,
                "{clamps:?}"
            );
        }
        assert_eq!(a, run(5).0, "deterministic for a seed");
        assert_ne!(a, run(6).0);
        // Peers count towards the fair share.
        let sc = Scenario {
            peers: vec![0, 1_000],
            ..spec.draw(&mut ChaCha8Rng::seed_from_u64(1), 12.0)
        };
        assert_eq!(sc.active_flows(500), 2);
        assert_eq!(sc.active_flows(1_000), 3);
    }
}
