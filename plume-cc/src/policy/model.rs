//! The policy network and everything needed to turn its output into the
//! datapath's two levers.
//!
//! - [`ActorCritic`]: the trainable network in tch: an MLP actor giving the
//!   mean of a Gaussian over a 2-dimensional action with a state-independent
//!   log-std, and a separate MLP critic (value head) for PPO. Weights are
//!   initialised from a seeded ChaCha RNG, never from libtorch's global RNG.
//! - [`ObsNormalizer`]: running mean/variance of observations (parallel
//!   Welford merge), saved with the model and applied before the network.
//! - [`ActionScaling`] (in [`super::scaling`], re-exported here): the
//!   documented mapping from a raw action to the datapath's limits.
//! - [`InferenceNet`]: the deterministic forward (raw observation ->
//!   normalised -> actor mean -> clamped to `[-1, 1]`) over plain tensors,
//!   shared by the trainer's evaluation, [`crate::policy::LoadedPolicy`] and
//!   the TorchScript export, so all three compute the same function.
//!
//! This module does no I/O; files are in [`crate::policy::file`].

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Tensor};

pub use super::scaling::{ActionScaling, CompetitionRule, FlowContext, SecondAction};

/// Number of action dimensions: `[cwnd lever, pacing lever]`.
pub const ACTION_DIM: usize = 2;

/// Shape of the networks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Architecture {
    /// Length of the observation vector.
    pub obs_len: usize,
    /// Hidden layer widths, shared by actor and critic (tanh after each).
    pub hidden: Vec<usize>,
    /// Action dimensions (always [`ACTION_DIM`] today).
    pub action_dim: usize,
    /// Hidden activation; only `"tanh"` exists.
    pub activation: String,
}

impl Architecture {
    /// Two tanh layers of `width` for observations of `obs_len`.
    pub fn mlp(obs_len: usize, width: usize) -> Self {
        Self {
            obs_len,
            hidden: vec![width, width],
            action_dim: ACTION_DIM,
            activation: "tanh".to_string(),
        }
    }

    /// `(name, shape)` of every tensor of the actor (`actor.{i}.weight|bias`)
    /// followed by `log_std`, then the critic (`critic.{i}.weight|bias`).
    pub fn tensor_shapes(&self, with_critic: bool) -> Vec<(String, Vec<i64>)> {
        let mut out = Vec::new();
        let push_mlp = |prefix: &str, out_dim: usize, out: &mut Vec<(String, Vec<i64>)>| {
            let mut fan_in = self.obs_len;
            let dims: Vec<usize> = self.hidden.iter().copied().chain([out_dim]).collect();
            for (i, &d) in dims.iter().enumerate() {
                out.push((
                    format!("{prefix}.{i}.weight"),
                    vec![d as i64, fan_in as i64],
                ));
                out.push((format!("{prefix}.{i}.bias"), vec![d as i64]));
                fan_in = d;
            }
        };
        push_mlp("actor", self.action_dim, &mut out);
        out.push(("log_std".to_string(), vec![self.action_dim as i64]));
        if with_critic {
            push_mlp("critic", 1, &mut out);
        }
        out
    }
}

/// Running mean and variance of observations, per feature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObsNormalizer {
    /// Mean per feature.
    pub mean: Vec<f64>,
    /// Population variance per feature.
    pub var: Vec<f64>,
    /// Observations folded in so far (fractional after the initial prior).
    pub count: f64,
    /// Normalised values are clipped to `[-clip, clip]`.
    pub clip: f32,
}

impl ObsNormalizer {
    /// Identity-like start: mean 0, variance 1, a tiny prior count.
    pub fn new(len: usize) -> Self {
        Self {
            mean: vec![0.0; len],
            var: vec![1.0; len],
            count: 1e-4,
            clip: 10.0,
        }
    }

    /// Feature count.
    pub fn len(&self) -> usize {
        self.mean.len()
    }

    /// True when there are no features.
    pub fn is_empty(&self) -> bool {
        self.mean.is_empty()
    }

    /// Folds in `rows` observations laid out row-major in `batch`
    /// (Chan et al.'s parallel variance merge). Ignores a batch of the wrong size.
    pub fn update(&mut self, batch: &[f32], rows: usize) {
        let len = self.len();
        if rows == 0 || batch.len() != rows * len {
            return;
        }
        let n = rows as f64;
        for j in 0..len {
            let mut m = 0.0;
            for r in 0..rows {
                m += f64::from(batch[r * len + j]);
            }
            m /= n;
            let mut v = 0.0;
            for r in 0..rows {
                let d = f64::from(batch[r * len + j]) - m;
                v += d * d;
            }
            v /= n;
            let total = self.count + n;
            let delta = m - self.mean[j];
            self.mean[j] += delta * n / total;
            self.var[j] =
                (self.var[j] * self.count + v * n + delta * delta * self.count * n / total) / total;
        }
        self.count += n;
    }

    /// `(mean, std)` as `[1, len]` float tensors (std floored at 1e-4).
    pub fn tensors(&self) -> (Tensor, Tensor) {
        let mean: Vec<f32> = self.mean.iter().map(|&m| m as f32).collect();
        let std: Vec<f32> = self
            .var
            .iter()
            .map(|&v| v.max(0.0).sqrt().max(1e-4) as f32)
            .collect();
        (
            Tensor::from_slice(&mean).reshape([1, self.len() as i64]),
            Tensor::from_slice(&std).reshape([1, self.len() as i64]),
        )
    }

    /// True when every statistic is finite and every variance non-negative.
    pub fn is_valid(&self) -> bool {
        self.mean.len() == self.var.len()
            && self.mean.iter().all(|m| m.is_finite())
            && self.var.iter().all(|v| v.is_finite() && *v >= 0.0)
            && self.count.is_finite()
            && self.clip.is_finite()
            && self.clip > 0.0
    }
}

/// One linear layer as plain tensors: `y = x W^T + b`.
#[derive(Debug)]
pub struct Layer {
    /// `[out, in]`.
    pub weight: Tensor,
    /// `[out]`.
    pub bias: Tensor,
}

fn mlp(layers: &[Layer], x: &Tensor) -> Tensor {
    let mut h = x.shallow_clone();
    for (i, l) in layers.iter().enumerate() {
        h = h.linear(&l.weight, Some(&l.bias));
        if i + 1 < layers.len() {
            h = h.tanh();
        }
    }
    h
}

/// The deterministic policy: raw observation -> normalised (clipped) ->
/// actor MLP -> mean clamped to `[-1, 1]`. Holds detached float tensors.
#[derive(Debug)]
pub struct InferenceNet {
    /// Actor layers, input first.
    pub actor: Vec<Layer>,
    /// Observation mean, `[1, obs_len]`.
    pub obs_mean: Tensor,
    /// Observation std, `[1, obs_len]`.
    pub obs_std: Tensor,
    /// Clip of normalised observations.
    pub obs_clip: f64,
}

impl InferenceNet {
    /// Actions `[n, action_dim]` for raw observations `[n, obs_len]`.
    pub fn forward(&self, obs: &Tensor) -> Tensor {
        let x = ((obs - &self.obs_mean) / &self.obs_std).clamp(-self.obs_clip, self.obs_clip);
        mlp(&self.actor, &x).clamp(-1.0, 1.0)
    }
}

/// Trainable actor-critic (see the module docs).
#[derive(Debug)]
pub struct ActorCritic {
    vs: nn::VarStore,
    arch: Architecture,
    actor: Vec<Layer>,
    critic: Vec<Layer>,
    log_std: Tensor,
}

impl ActorCritic {
    /// A fresh network: weights uniform in `±sqrt(6 / (fan_in + fan_out))`
    /// (the output layers scaled down by 100 for the actor and 1 for the
    /// critic), biases zero, log-std `init_log_std`, all from `seed`.
    pub fn new(arch: &Architecture, init_log_std: f32, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut named = Vec::new();
        let shapes = arch.tensor_shapes(true);
        let n_actor = arch.hidden.len() + 1;
        for (name, shape) in &shapes {
            let numel: i64 = shape.iter().product();
            let t = if name == "log_std" {
                Tensor::full(
                    shape.as_slice(),
                    f64::from(init_log_std),
                    (Kind::Float, tch::Device::Cpu),
                )
            } else if name.ends_with(".bias") {
                Tensor::zeros(shape.as_slice(), (Kind::Float, tch::Device::Cpu))
            } else {
                let (fan_out, fan_in) = (shape[0] as f64, shape[1] as f64);
                let mut bound = (6.0 / (fan_in + fan_out)).sqrt();
                if name == &format!("actor.{}.weight", n_actor - 1) {
                    bound *= 0.01;
                }
                let data: Vec<f32> = (0..numel)
                    .map(|_| rng.gen_range(-bound..bound) as f32)
                    .collect();
                Tensor::from_slice(&data).reshape(shape.as_slice())
            };
            named.push((name.clone(), t));
        }
        Self::from_named(arch, named)
            .unwrap_or_else(|_| unreachable!("shapes built from the architecture"))
    }

    /// Builds the network from `(name, tensor)` pairs (actor, `log_std`,
    /// critic; see [`Architecture::tensor_shapes`]). Returns the first missing
    /// or misshapen name as `Err((name, expected shape, found shape))`.
    pub fn from_named(
        arch: &Architecture,
        named: Vec<(String, Tensor)>,
    ) -> Result<Self, (String, Vec<i64>, Vec<i64>)> {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let root = vs.root();
        let mut map: std::collections::HashMap<String, Tensor> = named.into_iter().collect();
        let mut vars = std::collections::HashMap::new();
        for (name, shape) in arch.tensor_shapes(true) {
            let t = map
                .remove(&name)
                .ok_or_else(|| (name.clone(), shape.clone(), vec![]))?;
            if t.size() != shape {
                return Err((name, shape, t.size()));
            }
            let v = root.var_copy(&name.replace('.', "_"), &t.to_kind(Kind::Float));
            vars.insert(name, v);
        }
        let take_layers = |prefix: &str, vars: &mut std::collections::HashMap<String, Tensor>| {
            (0..=arch.hidden.len())
                .map(|i| Layer {
                    weight: vars
                        .remove(&format!("{prefix}.{i}.weight"))
                        .unwrap_or_else(|| Tensor::zeros([1], (Kind::Float, tch::Device::Cpu))),
                    bias: vars
                        .remove(&format!("{prefix}.{i}.bias"))
                        .unwrap_or_else(|| Tensor::zeros([1], (Kind::Float, tch::Device::Cpu))),
                })
                .collect::<Vec<_>>()
        };
        let actor = take_layers("actor", &mut vars);
        let critic = take_layers("critic", &mut vars);
        let log_std = vars
            .remove("log_std")
            .unwrap_or_else(|| Tensor::zeros([2], (Kind::Float, tch::Device::Cpu)));
        Ok(Self {
            vs,
            arch: arch.clone(),
            actor,
            critic,
            log_std,
        })
    }

    /// The architecture.
    pub fn architecture(&self) -> &Architecture {
        &self.arch
    }

    /// The variable store (for the optimizer).
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// Actor mean `[n, action_dim]` (unclamped) for normalised observations.
    pub fn actor_mean(&self, obs_norm: &Tensor) -> Tensor {
        mlp(&self.actor, obs_norm)
    }

    /// Value `[n]` for normalised observations.
    pub fn value(&self, obs_norm: &Tensor) -> Tensor {
        mlp(&self.critic, obs_norm).squeeze_dim(-1)
    }

    /// The state-independent log-std `[action_dim]`.
    pub fn log_std(&self) -> &Tensor {
        &self.log_std
    }

    /// Log-density `[n]` of `actions` `[n, d]` under `N(mean, exp(log_std))`.
    pub fn log_prob(&self, mean: &Tensor, actions: &Tensor) -> Tensor {
        let std = self.log_std.exp();
        let z = (actions - mean) / &std;
        let d = self.arch.action_dim as f64;
        (z.square() * -0.5 - &self.log_std).sum_dim_intlist(-1, false, Kind::Float)
            - 0.5 * d * (2.0 * std::f64::consts::PI).ln()
    }

    /// Entropy of the Gaussian (a scalar; the same for every state).
    pub fn entropy(&self) -> Tensor {
        let d = self.arch.action_dim as f64;
        self.log_std.sum(Kind::Float) + 0.5 * d * (1.0 + (2.0 * std::f64::consts::PI).ln())
    }

    /// Every tensor by name, detached copies (actor, `log_std`, and the
    /// critic when `with_critic`).
    pub fn named_tensors(&self, with_critic: bool) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        let layers = |prefix: &str, ls: &[Layer], out: &mut Vec<(String, Tensor)>| {
            for (i, l) in ls.iter().enumerate() {
                out.push((format!("{prefix}.{i}.weight"), l.weight.detach().copy()));
                out.push((format!("{prefix}.{i}.bias"), l.bias.detach().copy()));
            }
        };
        layers("actor", &self.actor, &mut out);
        out.push(("log_std".to_string(), self.log_std.detach().copy()));
        if with_critic {
            layers("critic", &self.critic, &mut out);
        }
        out
    }

    /// The deterministic policy with `norm`, as detached tensors.
    pub fn inference(&self, norm: &ObsNormalizer) -> InferenceNet {
        let (obs_mean, obs_std) = norm.tensors();
        InferenceNet {
            actor: self
                .actor
                .iter()
                .map(|l| Layer {
                    weight: l.weight.detach().copy(),
                    bias: l.bias.detach().copy(),
                })
                .collect(),
            obs_mean,
            obs_std,
            obs_clip: f64::from(norm.clip),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizer_matches_batch_statistics() {
        let mut n = ObsNormalizer::new(2);
        let data: Vec<f32> = (0..100).flat_map(|i| [i as f32, 5.0]).collect();
        n.update(&data[..100], 50);
        n.update(&data[100..], 50);
        assert!((n.mean[0] - 49.5).abs() < 1e-3, "{}", n.mean[0]);
        assert!((n.var[0] - 833.25).abs() < 0.5, "{}", n.var[0]);
        assert!((n.mean[1] - 5.0).abs() < 1e-3);
        assert!(n.var[1] < 1e-3);
        assert!(n.is_valid());
    }

    #[test]
    fn network_is_seeded_and_inference_matches_training_mean() {
        tch::set_num_threads(1);
        let arch = Architecture::mlp(5, 8);
        let a = ActorCritic::new(&arch, -0.5, 7);
        let b = ActorCritic::new(&arch, -0.5, 7);
        for ((na, ta), (_, tb)) in a
            .named_tensors(true)
            .iter()
            .zip(b.named_tensors(true).iter())
        {
            assert!(ta.equal(tb), "{na} differs for one seed");
        }
        let norm = ObsNormalizer::new(5);
        let x = Tensor::from_slice(&[0.1f32, -0.2, 0.3, 0.0, 1.0]).reshape([1, 5]);
        let inf = a.inference(&norm).forward(&x);
        let (m, s) = norm.tensors();
        let train = a.actor_mean(&((&x - m) / s)).clamp(-1.0, 1.0);
        assert!(inf.allclose(&train, 1e-6, 1e-6, false));
        let lp = a.log_prob(&train, &train);
        // At the mean: -sum(log_std) - d/2 ln(2 pi).
        let expect = 1.0 - (2.0 * std::f64::consts::PI).ln();
        assert!((lp.double_value(&[0]) - expect).abs() < 1e-5);
    }
}
