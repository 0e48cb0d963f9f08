//! Proximal Policy Optimization (clipped surrogate) with generalized advantage
//! estimation, over any batch of environments behind [`BatchEnv`].
//!
//! One iteration: [`Ppo::collect`] steps every environment `steps` times
//! with ONE batched forward per step (the policy samples
//! `mean + exp(log_std) * noise`, the noise from the caller's seeded RNG);
//! [`gae`] turns rewards and values into advantages and returns;
//! [`Ppo::update`] runs `epochs` passes of shuffled minibatches minimising
//! `-clipped surrogate + vf_coef * value MSE - ent_coef * entropy`, with
//! per-minibatch advantage normalisation, gradient-norm clipping and a
//! linearly decaying learning rate. Observations are normalised with a
//! running [`ObsNormalizer`] refreshed after every rollout (the rollout's
//! actions used the statistics from before it, and so does its update).
//!
//! Episode ends (window over) are treated as terminal. Randomness comes only
//! from the RNG passed in and the model's seed, so a run is deterministic
//! for a seed when libtorch runs on one thread.

use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};
use tch::{nn, nn::OptimizerConfig, Kind, Tensor};

use crate::policy::model::{ActorCritic, Architecture, ObsNormalizer, ACTION_DIM};

/// Errors of the trainer core.
#[derive(Debug, thiserror::Error)]
pub enum PpoError {
    /// libtorch failed.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// An environment failed.
    #[error("an environment failed")]
    Env(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A setting is out of range.
    #[error("invalid PPO setting: {0}")]
    Config(String),
}

/// A batch of environments stepped together (auto-resetting: when an
/// episode ends the environment starts the next one itself and reports
/// the new episode's first observation).
pub trait BatchEnv {
    /// Number of environments.
    fn len(&self) -> usize;
    /// True when there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Observation length.
    fn obs_len(&self) -> usize;
    /// Current observation of every environment, row-major `[len, obs_len]`.
    fn observations(&self) -> Vec<f32>;
    /// Applies one raw action (in `[-1, 1]^2`) per environment; returns the
    /// rewards and whether each episode ended with this step.
    fn step(&mut self, actions: &[[f32; 2]]) -> Result<(Vec<f32>, Vec<bool>), PpoError>;
    /// Observations of the *peers*, flows the same policy acts on but the
    /// trainer does not learn from (row-major `[peers, obs_len]`); none by
    /// default.
    fn peer_observations(&self) -> Vec<f32> {
        Vec::new()
    }
    /// The peers' raw actions for the next step, in the order of
    /// [`BatchEnv::peer_observations`].
    fn set_peer_actions(&mut self, _actions: &[[f32; 2]]) {}
    /// Monitor intervals each environment's last step spanned (one per
    /// environment, or empty: one each). A step spans several under a
    /// per-copy cadence ([`crate::policy::Cadence`]).
    fn last_spans(&self) -> Vec<u32> {
        Vec::new()
    }
}

/// PPO settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PpoConfig {
    /// Steps per environment per rollout.
    pub steps: usize,
    /// Passes over each rollout.
    pub epochs: usize,
    /// Minibatches per pass.
    pub minibatches: usize,
    /// Discount.
    pub gamma: f64,
    /// GAE lambda.
    pub lambda: f64,
    /// Surrogate clip range.
    pub clip: f64,
    /// Value-loss weight.
    pub vf_coef: f64,
    /// Entropy bonus weight.
    pub ent_coef: f64,
    /// Initial Adam learning rate (decays linearly to 10% of it).
    pub lr: f64,
    /// Gradient-norm clip.
    pub max_grad_norm: f64,
    /// Hidden width of the two tanh layers.
    pub hidden: usize,
    /// Initial log-std of the Gaussian.
    pub init_log_std: f32,
    /// Discount by time, not by decision (`train --time-discount`): a step
    /// that spans `k` monitor intervals is discounted by `gamma^k` and its
    /// reward (a mean over the span) counts as `(1 - gamma^k) / (1 -
    /// gamma)` intervals, so the horizon stays `1 / (1 - gamma)` intervals
    /// (1 s at 20 ms) whatever the decisions' spacing. Changes nothing when
    /// every step spans one interval. Left out of `config.json` when off.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub time_discount: bool,
}

impl Default for PpoConfig {
    fn default() -> Self {
        Self {
            steps: 64,
            epochs: 4,
            minibatches: 4,
            gamma: 0.98,
            lambda: 0.95,
            clip: 0.2,
            vf_coef: 0.5,
            ent_coef: 0.001,
            lr: 1e-3,
            max_grad_norm: 0.5,
            hidden: 32,
            init_log_std: -0.7,
            time_discount: false,
        }
    }
}

/// Advantages and returns by GAE. Inputs are `[T][N]` flattened row-major
/// (time major): `rewards[t*N+i]`, `values[t*N+i]`, `dones[t*N+i]` (episode
/// ended after step `t`), and `last_values[i]` = V of the observation after
/// the last step. Returns `(advantages, returns)` in the same layout.
pub fn gae(
    rewards: &[f32],
    values: &[f32],
    dones: &[bool],
    last_values: &[f32],
    gamma: f64,
    lambda: f64,
) -> (Vec<f32>, Vec<f32>) {
    gae_spans(rewards, values, dones, last_values, &[], gamma, lambda)
}

/// [`gae`] for steps of unequal length: step `k` spans `spans[k]` monitor
/// intervals and is discounted by `gamma^spans[k]` (empty `spans`: one
/// interval each, exactly [`gae`]).
pub fn gae_spans(
    rewards: &[f32],
    values: &[f32],
    dones: &[bool],
    last_values: &[f32],
    spans: &[u32],
    gamma: f64,
    lambda: f64,
) -> (Vec<f32>, Vec<f32>) {
    let n = last_values.len();
    let t_len = rewards.len().checked_div(n).unwrap_or(0);
    let mut adv = vec![0.0f32; rewards.len()];
    let mut next_adv = vec![0.0f64; n];
    let mut next_value: Vec<f64> = last_values.iter().map(|&v| f64::from(v)).collect();
    for t in (0..t_len).rev() {
        for i in 0..n {
            let k = t * n + i;
            let live = if dones[k] { 0.0 } else { 1.0 };
            let gamma = match spans.get(k) {
                Some(&span) if span > 1 => gamma.powi(span as i32),
                _ => gamma,
            };
            let delta = f64::from(rewards[k]) + gamma * live * next_value[i] - f64::from(values[k]);
            next_adv[i] = delta + gamma * lambda * live * next_adv[i];
            adv[k] = next_adv[i] as f32;
            next_value[i] = f64::from(values[k]);
        }
    }
    let returns = adv.iter().zip(values).map(|(a, v)| a + v).collect();
    (adv, returns)
}

/// One rollout of `T` steps of `N` environments (time major).
#[derive(Debug, Default)]
pub struct Rollout {
    /// Normalised observations `[T*N, obs_len]`.
    pub obs: Vec<f32>,
    /// Sampled (unclipped) actions `[T*N, 2]`.
    pub actions: Vec<f32>,
    /// Log-probabilities of the actions when sampled.
    pub logp: Vec<f32>,
    /// Value estimates.
    pub values: Vec<f32>,
    /// Rewards.
    pub rewards: Vec<f32>,
    /// Episode ended after the step.
    pub dones: Vec<bool>,
    /// Monitor intervals each step spanned, when discounting by time
    /// ([`PpoConfig::time_discount`]); empty otherwise.
    pub spans: Vec<u32>,
    /// Values of the observations after the last step.
    pub last_values: Vec<f32>,
    /// Raw observations seen, for the normaliser.
    pub raw_obs: Vec<f32>,
}

/// Statistics of one [`Ppo::update`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateStats {
    /// Mean clipped-surrogate loss.
    pub policy_loss: f64,
    /// Mean value loss.
    pub value_loss: f64,
    /// Entropy of the action distribution.
    pub entropy: f64,
    /// Mean approximate KL between old and new policy.
    pub approx_kl: f64,
    /// Share of samples whose ratio was clipped.
    pub clip_fraction: f64,
    /// Learning rate used.
    pub lr: f64,
}

fn normal(rng: &mut dyn RngCore) -> f32 {
    // Box-Muller on two uniforms from the caller's RNG.
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// The learner: network, optimizer and observation statistics.
pub struct Ppo {
    /// The network.
    pub model: ActorCritic,
    /// Observation statistics.
    pub norm: ObsNormalizer,
    /// Settings.
    pub config: PpoConfig,
    opt: nn::Optimizer,
}

impl std::fmt::Debug for Ppo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ppo")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Ppo {
    /// A fresh learner for observations of `obs_len`, weights from `seed`.
    pub fn new(obs_len: usize, config: PpoConfig, seed: u64) -> Result<Self, PpoError> {
        let model = ActorCritic::new(
            &Architecture::mlp(obs_len, config.hidden),
            config.init_log_std,
            seed,
        );
        Self::from_model(model, ObsNormalizer::new(obs_len), config)
    }

    /// A learner continuing from `model` and `norm` (Adam moments start afresh).
    pub fn from_model(
        model: ActorCritic,
        norm: ObsNormalizer,
        config: PpoConfig,
    ) -> Result<Self, PpoError> {
        if config.steps == 0 || config.epochs == 0 || config.minibatches == 0 {
            return Err(PpoError::Config(
                "steps, epochs and minibatches must be positive".into(),
            ));
        }
        let opt = nn::Adam::default().build(model.var_store(), config.lr)?;
        Ok(Self {
            model,
            norm,
            config,
            opt,
        })
    }

    fn normalize(&self, obs: &[f32], rows: usize) -> Tensor {
        let (m, s) = self.norm.tensors();
        let c = f64::from(self.norm.clip);
        ((Tensor::from_slice(obs).reshape([rows as i64, self.norm.len() as i64]) - m) / s)
            .clamp(-c, c)
    }

    /// Steps `env` for `config.steps` steps with sampled actions; one
    /// batched forward per step. Also returns per-step mean reward.
    pub fn collect<E: BatchEnv + ?Sized>(
        &self,
        env: &mut E,
        rng: &mut dyn RngCore,
    ) -> Result<Rollout, PpoError> {
        let n = env.len();
        let l = env.obs_len();
        let mut r = Rollout::default();
        let std: Vec<f32> = Vec::<f32>::try_from(self.model.log_std().detach().exp())?;
        for _ in 0..self.config.steps {
            let raw = env.observations();
            let peers = env.peer_observations();
            let np = peers.len() / l.max(1);
            let (x, mean, value) = if np == 0 {
                let x = self.normalize(&raw, n);
                let (mean, value) =
                    tch::no_grad(|| (self.model.actor_mean(&x), self.model.value(&x)));
                (x, mean, value)
            } else {
                // One batched forward for the trained flows and their peers,
                // as the daemon makes one for every flow of its cgroup; the
                // peers act on the mean action.
                let mut all = raw.clone();
                all.extend_from_slice(&peers);
                let x_all = self.normalize(&all, n + np);
                let x = x_all.narrow(0, 0, n as i64);
                let (mean, value) =
                    tch::no_grad(|| (self.model.actor_mean(&x_all), self.model.value(&x)));
                (x, mean, value)
            };
            let mean: Vec<f32> = Vec::<f32>::try_from(mean.flatten(0, -1))?;
            if np > 0 {
                let peer_acts: Vec<[f32; 2]> = mean[n * 2..]
                    .chunks_exact(2)
                    .map(|c| [c[0].clamp(-1.0, 1.0), c[1].clamp(-1.0, 1.0)])
                    .collect();
                env.set_peer_actions(&peer_acts);
            }
            let value: Vec<f32> = Vec::<f32>::try_from(value)?;
            let mut acts = Vec::with_capacity(n);
            for i in 0..n {
                let mut a = [0.0f32; 2];
                let mut lp = 0.0f64;
                for d in 0..ACTION_DIM {
                    let z = normal(rng);
                    a[d] = mean[i * 2 + d] + std[d] * z;
                    lp += -0.5 * f64::from(z * z)
                        - f64::from(std[d].ln())
                        - 0.5 * (2.0 * std::f64::consts::PI).ln();
                }
                r.actions.extend_from_slice(&a);
                r.logp.push(lp as f32);
                acts.push([a[0].clamp(-1.0, 1.0), a[1].clamp(-1.0, 1.0)]);
            }
            let (mut rew, done) = env.step(&acts)?;
            if self.config.time_discount {
                let spans = env.last_spans();
                let g = self.config.gamma;
                for (k, reward) in rew.iter_mut().enumerate() {
                    let span = spans.get(k).copied().unwrap_or(1).max(1);
                    if span > 1 {
                        // The span's mean reward, as the discounted sum of
                        // its intervals.
                        *reward *= ((1.0 - g.powi(span as i32)) / (1.0 - g)) as f32;
                    }
                    r.spans.push(span);
                }
            }
            r.obs.extend(Vec::<f32>::try_from(x.flatten(0, -1))?);
            r.raw_obs.extend_from_slice(&raw);
            r.values.extend_from_slice(&value);
            r.rewards.extend_from_slice(&rew);
            r.dones.extend_from_slice(&done);
        }
        let raw = env.observations();
        let x = self.normalize(&raw, n);
        r.last_values = Vec::<f32>::try_from(tch::no_grad(|| self.model.value(&x)))?;
        debug_assert_eq!(r.obs.len(), self.config.steps * n * l);
        Ok(r)
    }

    /// PPO update on `rollout`; `progress` in `[0, 1]` sets the learning
    /// rate (linear decay to 10%). Updates the normaliser afterwards.
    pub fn update(
        &mut self,
        rollout: &Rollout,
        progress: f64,
        rng: &mut dyn RngCore,
    ) -> Result<UpdateStats, PpoError> {
        let c = &self.config;
        let lr = c.lr * (1.0 - 0.9 * progress.clamp(0.0, 1.0));
        self.opt.set_lr(lr);
        let total = rollout.rewards.len();
        let l = self.norm.len() as i64;
        let (adv, ret) = gae_spans(
            &rollout.rewards,
            &rollout.values,
            &rollout.dones,
            &rollout.last_values,
            &rollout.spans,
            c.gamma,
            c.lambda,
        );
        let obs = Tensor::from_slice(&rollout.obs).reshape([total as i64, l]);
        let actions = Tensor::from_slice(&rollout.actions).reshape([total as i64, 2]);
        let old_logp = Tensor::from_slice(&rollout.logp);
        let adv_t = Tensor::from_slice(&adv);
        let ret_t = Tensor::from_slice(&ret);
        let mb = (total / c.minibatches).max(1);
        let mut stats = UpdateStats {
            lr,
            ..UpdateStats::default()
        };
        let mut count = 0.0;
        let mut idx: Vec<i64> = (0..total as i64).collect();
        for _ in 0..c.epochs {
            // Fisher-Yates with the caller's RNG.
            for i in (1..idx.len()).rev() {
                let j = rng.gen_range(0..=i);
                idx.swap(i, j);
            }
            for chunk in idx.chunks(mb) {
                let ix = Tensor::from_slice(chunk);
                let o = obs.index_select(0, &ix);
                let a = actions.index_select(0, &ix);
                let olp = old_logp.index_select(0, &ix);
                let mut ad = adv_t.index_select(0, &ix);
                if chunk.len() > 1 {
                    ad = (&ad - ad.mean(Kind::Float)) / (ad.std(true) + 1e-8);
                }
                let rt = ret_t.index_select(0, &ix);
                let mean = self.model.actor_mean(&o);
                let lp = self.model.log_prob(&mean, &a);
                let log_ratio = &lp - &olp;
                let ratio = log_ratio.exp();
                let s1 = &ratio * &ad;
                let s2 = ratio.clamp(1.0 - c.clip, 1.0 + c.clip) * &ad;
                let policy_loss = -s1.min_other(&s2).mean(Kind::Float);
                let v = self.model.value(&o);
                let value_loss = (v - rt).square().mean(Kind::Float) * 0.5;
                let entropy = self.model.entropy();
                let loss = &policy_loss + &value_loss * c.vf_coef - &entropy * c.ent_coef;
                self.opt.zero_grad();
                loss.backward();
                self.opt.clip_grad_norm(c.max_grad_norm);
                self.opt.step();
                tch::no_grad(|| {
                    stats.policy_loss += policy_loss.double_value(&[]);
                    stats.value_loss += value_loss.double_value(&[]);
                    stats.entropy += entropy.double_value(&[]);
                    stats.approx_kl += ((&ratio - 1.0) - &log_ratio)
                        .mean(Kind::Float)
                        .double_value(&[]);
                    stats.clip_fraction += (&ratio - 1.0)
                        .abs()
                        .gt(c.clip)
                        .to_kind(Kind::Float)
                        .mean(Kind::Float)
                        .double_value(&[]);
                });
                count += 1.0;
            }
        }
        stats.policy_loss /= count;
        stats.value_loss /= count;
        stats.entropy /= count;
        stats.approx_kl /= count;
        stats.clip_fraction /= count;
        self.norm.update(&rollout.raw_obs, total);
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn gae_matches_a_hand_computed_case() {
        // One environment, three steps, episode ends after step 1.
        // gamma 0.9, lambda 0.5.
        let rewards = [1.0, 2.0, 3.0];
        let values = [0.5, 1.0, 1.5];
        let dones = [false, true, false];
        let last = [2.0];
        let (adv, ret) = gae(&rewards, &values, &dones, &last, 0.9, 0.5);
        // t=2: delta = 3 + 0.9*2 - 1.5 = 3.3; adv = 3.3
        // t=1: done: delta = 2 - 1 = 1; adv = 1
        // t=0: delta = 1 + 0.9*1.0 - 0.5 = 1.4; adv = 1.4 + 0.45*1 = 1.85
        let want = [1.85, 1.0, 3.3];
        for (a, w) in adv.iter().zip(want) {
            assert!((a - w).abs() < 1e-6, "{adv:?}");
        }
        for ((r, a), v) in ret.iter().zip(&adv).zip(values) {
            assert!((r - (a + v)).abs() < 1e-6);
        }
        // Two environments interleaved time-major keep their own chains.
        let (adv2, _) = gae(
            &[1.0, 0.0, 1.0, 0.0],
            &[0.0; 4],
            &[false; 4],
            &[0.0, 0.0],
            1.0,
            1.0,
        );
        assert_eq!(adv2, vec![2.0, 0.0, 1.0, 0.0]);
        // Spans of one interval are plain GAE; a step of three intervals
        // discounts the next value by gamma^3.
        let (same, _) = gae_spans(&rewards, &values, &dones, &last, &[1, 1, 1], 0.9, 0.5);
        assert_eq!(same, adv);
        let (long, _) = gae_spans(&[0.0], &[0.0], &[false], &[1.0], &[3], 0.9, 1.0);
        assert!((long[0] - 0.729).abs() < 1e-6, "{long:?}");
    }

    /// A one-step bandit: observation `c` in [-1, 1]; reward
    /// `-(a0 - c)^2 - (a1 + c/2)^2`.
    struct Toy {
        ctx: Vec<f32>,
        rng: ChaCha8Rng,
    }

    impl BatchEnv for Toy {
        fn len(&self) -> usize {
            self.ctx.len()
        }
        fn obs_len(&self) -> usize {
            1
        }
        fn observations(&self) -> Vec<f32> {
            self.ctx.clone()
        }
        fn step(&mut self, actions: &[[f32; 2]]) -> Result<(Vec<f32>, Vec<bool>), PpoError> {
            let r = actions
                .iter()
                .zip(&self.ctx)
                .map(|(a, &c)| -(a[0] - c).powi(2) - (a[1] + 0.5 * c).powi(2))
                .collect();
            for c in &mut self.ctx {
                *c = self.rng.gen_range(-1.0..1.0);
            }
            Ok((r, vec![true; self.ctx.len()]))
        }
    }

    fn mean_greedy_reward(ppo: &Ppo) -> f64 {
        let cs: Vec<f32> = (0..21).map(|i| i as f32 / 10.0 - 1.0).collect();
        let net = ppo.model.inference(&ppo.norm);
        let a = net.forward(&Tensor::from_slice(&cs).reshape([21, 1]));
        let a = Vec::<f32>::try_from(a.flatten(0, -1)).unwrap();
        cs.iter()
            .enumerate()
            .map(|(i, &c)| f64::from(-(a[2 * i] - c).powi(2) - (a[2 * i + 1] + 0.5 * c).powi(2)))
            .sum::<f64>()
            / 21.0
    }

    #[test]
    fn ppo_improves_on_a_toy_problem() {
        tch::set_num_threads(1);
        let mut env = Toy {
            ctx: vec![0.0; 16],
            rng: ChaCha8Rng::seed_from_u64(1),
        };
        let config = PpoConfig {
            steps: 16,
            hidden: 16,
            lr: 3e-3,
            ..PpoConfig::default()
        };
        let mut ppo = Ppo::new(1, config, 0).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let before = mean_greedy_reward(&ppo);
        let iters = 60;
        for it in 0..iters {
            let r = ppo.collect(&mut env, &mut rng).unwrap();
            ppo.update(&r, it as f64 / iters as f64, &mut rng).unwrap();
        }
        let after = mean_greedy_reward(&ppo);
        assert!(before < -0.3, "untrained policy already good: {before}");
        assert!(
            after > -0.05,
            "PPO did not learn the toy: {before} -> {after}"
        );
    }
}
