//! The simulated environments behind [`BatchEnv`] for PPO: each reset draws
//! a window through the [`TraceSampler`] and a path, each step maps the
//! actions, steps every environment in parallel, and scores it with the
//! reward; finished episodes are reported back to the sampler.
//!
//! Why its own file: this is where the sampler, the episode set-up, the
//! action mapping and the reward meet, in the order the random stream is
//! drawn; that order is what makes a run reproduce bit for bit.

use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::super::ppo::{BatchEnv, PpoError};
use super::super::scenario::{Scenario, ScenarioSpec};
use super::super::{Env, EnvConfig, VecEnv};
use super::{
    apply_scenario, normalized_reward, peer_actions, sim_actions, PathRanges, RewardSpec, SimWindow,
};
use crate::plume::TraceSampler;
use crate::policy::model::ActionScaling;
use crate::policy::observation::{Observation, OBSERVATION_LEN};
use crate::sim::QueueLimit;

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
    /// Propagation RTT of each environment's current episode (the reward's
    /// delay unit).
    min_rtt_ms: Vec<f64>,
    paths: Option<PathRanges>,
    scenarios: Option<ScenarioSpec>,
    /// Each environment's current scenario (None without a spec).
    scenario: Vec<Option<Scenario>>,
    /// Monitor intervals each environment's last step spanned.
    spans: Vec<u32>,
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
            spans: vec![1; n],
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

    fn last_spans(&self) -> Vec<u32> {
        self.spans.clone()
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
            self.spans[i] = s.intervals;
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
        batch_of(windows(), 8, &config, 7, paths, None)
    }

    /// Episodes of 500 ms (one window), the rest as configured by default.
    fn short_episodes() -> EnvConfig {
        EnvConfig {
            episode_us: Some(500_000),
            ..EnvConfig::default()
        }
    }

    /// `n` environments of `config` over the four `windows` (e.g.
    /// [`windows`]), uniformly sampled.
    fn batch_of(
        windows: Arc<Vec<SimWindow>>,
        n: usize,
        config: &EnvConfig,
        seed: u64,
        paths: Option<PathRanges>,
        scenarios: Option<ScenarioSpec>,
    ) -> SimBatch {
        SimBatch::new(
            n,
            config,
            windows,
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
        let spec = ScenarioSpec {
            competitors: [1, 1],
            competitor_start_ms: [0, 200],
            ..ScenarioSpec::default_distribution()
        };
        batch_of(windows(), 4, &short_episodes(), seed, None, Some(spec))
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
        let mut b = batch_of(
            Arc::new(ws),
            4,
            &short_episodes(),
            1,
            None,
            Some(ScenarioSpec::default_distribution()),
        );
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
        let config = short_episodes();
        let spec = ScenarioSpec {
            competitors: [0, 0],
            peers: [1, 1],
            competitor_start_ms: [0, 100],
            ..ScenarioSpec::default_distribution()
        };
        let run = |seed| {
            let mut b = batch_of(windows(), 4, &config, seed, None, Some(spec.clone()));
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
