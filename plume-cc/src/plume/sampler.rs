//! Trace samplers: which window the environment loads at each episode reset
//! (Plume stage 3).
//!
//! All samplers share [`TraceSampler`], the only thing a trainer touches:
//! `sample` at every reset, `observe` after every episode. Uniform sampling is
//! the baseline; Plume-static gives every cluster the same share; Plume-dynamic
//! moves the shares towards clusters whose returns are low and poorly
//! predicted. Every sampler mixes in an epsilon of uniform sampling so no
//! window is ever starved. Randomness comes from the caller's RNG (and, for
//! the dynamic regressor, from a seed given at construction); no clocks.
use std::collections::VecDeque;

use ndarray::{Array2, ArrayView2, Axis};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{gmm::argmax, regressor::ReturnRegressor};

/// Why a sampler could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SamplerError {
    /// No windows to sample from.
    #[error("sampler: no windows to sample from")]
    Empty,
    /// Shapes or values do not fit (message says which).
    #[error("sampler: {0}")]
    Invalid(String),
}

/// Picks the window of each episode and learns from its outcome.
///
/// Indices are positions in the corpus' window list (the rows of the
/// membership matrix the sampler was built with).
pub trait TraceSampler {
    /// Called at each episode reset: the index of the window to load.
    fn sample(&mut self, rng: &mut dyn RngCore) -> usize;
    /// Called when an episode on window `trace_index` ends, with its
    /// (n-step discounted) return. Samplers that do not adapt ignore it.
    fn observe(&mut self, trace_index: usize, episode_return: f64);
    /// The current probability of each window, epsilon included (sums to 1);
    /// for logging and tests.
    fn probabilities(&self) -> Vec<f64>;
    /// The current target share of each cluster (empty for uniform).
    fn cluster_targets(&self) -> Vec<f64> {
        Vec::new()
    }
}

/// Per-window probabilities from per-cluster targets:
/// `p = memberships @ (target / proportion)`, normalised, where `proportion`
/// is each cluster's share of the corpus (column sums of the memberships over
/// the number of windows). With hard memberships each cluster's target is
/// split evenly among its windows. Clusters with no mass are skipped.
pub fn window_probabilities(memberships: ArrayView2<f64>, target: &[f64]) -> Vec<f64> {
    let n = memberships.nrows();
    if n == 0 {
        return Vec::new();
    }
    let proportion = memberships.sum_axis(Axis(0)) / n as f64;
    let scale: Vec<f64> = proportion
        .iter()
        .zip(target)
        .map(|(&p, &t)| {
            if p > 1e-12 && t.is_finite() && t > 0.0 {
                t / p
            } else {
                0.0
            }
        })
        .collect();
    let mut w: Vec<f64> = memberships
        .axis_iter(Axis(0))
        .map(|row| row.iter().zip(&scale).map(|(m, s)| m * s).sum())
        .collect();
    let total: f64 = w.iter().sum();
    if total > 0.0 && total.is_finite() {
        w.iter_mut().for_each(|v| *v /= total);
    } else {
        w.iter_mut().for_each(|v| *v = 1.0 / n as f64);
    }
    w
}

/// `(1 - epsilon) * p + epsilon / n`: the epsilon-uniform exploration mix.
pub fn with_epsilon(p: &[f64], epsilon: f64) -> Vec<f64> {
    let n = p.len().max(1) as f64;
    let e = epsilon.clamp(0.0, 1.0);
    p.iter().map(|v| (1.0 - e) * v + e / n).collect()
}

/// Draws an index from a normalised distribution with one uniform number.
fn draw(cumulative: &[f64], rng: &mut dyn RngCore) -> usize {
    let u: f64 = rng.gen::<f64>() * cumulative.last().copied().unwrap_or(1.0);
    cumulative
        .partition_point(|&c| c <= u)
        .min(cumulative.len().saturating_sub(1))
}

fn cumulative(p: &[f64]) -> Vec<f64> {
    p.iter()
        .scan(0.0, |acc, v| {
            *acc += v;
            Some(*acc)
        })
        .collect()
}

fn check_memberships(m: &Array2<f64>) -> Result<(), SamplerError> {
    if m.nrows() == 0 || m.ncols() == 0 {
        return Err(SamplerError::Empty);
    }
    if let Some((i, _)) = m
        .axis_iter(Axis(0))
        .enumerate()
        .find(|(_, r)| r.iter().any(|v| !v.is_finite() || *v < 0.0) || (r.sum() - 1.0).abs() > 1e-6)
    {
        return Err(SamplerError::Invalid(format!(
            "membership row {i} is not a probability distribution"
        )));
    }
    Ok(())
}

/// Every window equally likely: the baseline.
#[derive(Debug, Clone)]
pub struct UniformSampler {
    n: usize,
}

impl UniformSampler {
    /// A uniform sampler over `n` windows.
    pub fn new(n: usize) -> Result<Self, SamplerError> {
        if n == 0 {
            return Err(SamplerError::Empty);
        }
        Ok(Self { n })
    }
}

impl TraceSampler for UniformSampler {
    fn sample(&mut self, rng: &mut dyn RngCore) -> usize {
        rng.gen_range(0..self.n)
    }
    fn observe(&mut self, _: usize, _: f64) {}
    fn probabilities(&self) -> Vec<f64> {
        vec![1.0 / self.n as f64; self.n]
    }
}

/// Fixed cluster targets (Plume-static: all equal), epsilon-uniform mixed.
#[derive(Debug, Clone)]
pub struct StaticSampler {
    target: Vec<f64>,
    probs: Vec<f64>,
    cumulative: Vec<f64>,
}

impl StaticSampler {
    /// Plume-static: every cluster gets the same share. `memberships` is
    /// n windows x k clusters (soft or one-hot rows summing to 1).
    pub fn plume_static(memberships: &Array2<f64>, epsilon: f64) -> Result<Self, SamplerError> {
        let k = memberships.ncols();
        Self::with_targets(memberships, &vec![1.0 / k.max(1) as f64; k], epsilon)
    }

    /// Any fixed per-cluster targets (normalised here).
    pub fn with_targets(
        memberships: &Array2<f64>,
        target: &[f64],
        epsilon: f64,
    ) -> Result<Self, SamplerError> {
        check_memberships(memberships)?;
        if target.len() != memberships.ncols() || !(0.0..=1.0).contains(&epsilon) {
            return Err(SamplerError::Invalid(format!(
                "{} targets for {} clusters, epsilon {epsilon}",
                target.len(),
                memberships.ncols()
            )));
        }
        let total: f64 = target.iter().filter(|t| t.is_finite() && **t > 0.0).sum();
        let target: Vec<f64> = target
            .iter()
            .map(|t| {
                if t.is_finite() && *t > 0.0 && total > 0.0 {
                    t / total
                } else {
                    0.0
                }
            })
            .collect();
        let probs = with_epsilon(&window_probabilities(memberships.view(), &target), epsilon);
        Ok(Self {
            cumulative: cumulative(&probs),
            target,
            probs,
        })
    }
}

impl TraceSampler for StaticSampler {
    fn sample(&mut self, rng: &mut dyn RngCore) -> usize {
        draw(&self.cumulative, rng)
    }
    fn observe(&mut self, _: usize, _: f64) {}
    fn probabilities(&self) -> Vec<f64> {
        self.probs.clone()
    }
    fn cluster_targets(&self) -> Vec<f64> {
        self.target.clone()
    }
}

/// Settings of Plume-dynamic.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DynamicParams {
    /// Share of resets that ignore the weights.
    pub epsilon: f64,
    /// Mix between prediction error (1.0) and return gap (0.0).
    pub alpha: f64,
    /// Recompute the weights every this many episodes...
    pub update_every: usize,
    /// ...once this many episodes have been observed (static weights before).
    pub warmup: usize,
    /// Most recent samples kept per cluster.
    pub history_per_cluster: usize,
    /// Regressor training steps (Adam minibatches) per recompute.
    pub train_steps: usize,
    /// Minibatch size.
    pub batch_size: usize,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Seed of the regressor's initial weights and minibatches.
    pub seed: u64,
}

impl Default for DynamicParams {
    fn default() -> Self {
        Self {
            epsilon: 0.1,
            alpha: 0.5,
            update_every: 50,
            warmup: 100,
            history_per_cluster: 200,
            train_steps: 50,
            batch_size: 64,
            learning_rate: 1e-3,
            seed: 0,
        }
    }
}

/// Per-cluster targets from per-cluster prediction errors and mean returns:
/// both normalised to sum to 1, the gap (minus the mean return) first
/// min-max scaled to [1, 10], then `alpha * error + (1 - alpha) * gap`,
/// normalised. `None` marks a cluster without samples; it gets the largest
/// value of the others on both terms (unseen clusters are explored first).
pub fn dynamic_targets(
    errors: &[Option<f64>],
    mean_returns: &[Option<f64>],
    alpha: f64,
) -> Vec<f64> {
    let k = errors.len();
    let fill = |v: &[Option<f64>], default: f64| -> Vec<f64> {
        let max = v
            .iter()
            .flatten()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        let max = if max.is_finite() { max } else { default };
        v.iter()
            .map(|x| x.filter(|x| x.is_finite()).unwrap_or(max))
            .collect()
    };
    let normalise = |v: Vec<f64>| -> Vec<f64> {
        let v: Vec<f64> = v.into_iter().map(|x| x.max(0.0)).collect();
        let s: f64 = v.iter().sum();
        if s > 0.0 {
            v.iter().map(|x| x / s).collect()
        } else {
            vec![1.0 / k.max(1) as f64; k]
        }
    };
    let gaps: Vec<Option<f64>> = mean_returns.iter().map(|r| r.map(|r| -r)).collect();
    let (lo, hi) = gaps
        .iter()
        .flatten()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &g| {
            (lo.min(g), hi.max(g))
        });
    let scaled: Vec<Option<f64>> = gaps
        .iter()
        .map(|g| {
            g.map(|g| {
                if hi > lo {
                    1.0 + 9.0 * (g - lo) / (hi - lo)
                } else {
                    1.0
                }
            })
        })
        .collect();
    let err = normalise(fill(errors, 1.0));
    let gap = normalise(fill(&scaled, 1.0));
    let a = alpha.clamp(0.0, 1.0);
    normalise(
        err.iter()
            .zip(&gap)
            .map(|(e, g)| a * e + (1.0 - a) * g)
            .collect(),
    )
}

/// Plume-dynamic: cluster targets follow the learner (see [`dynamic_targets`]),
/// recomputed every `update_every` episodes after `warmup`, from a bounded
/// per-cluster history of (window, return) and a small return regressor on
/// the windows' features.
pub struct DynamicSampler {
    /// Per-window reference returns (see [`DynamicSampler::with_references`]).
    references: Option<Vec<f64>>,
    memberships: Array2<f64>,
    features: Array2<f64>,
    params: DynamicParams,
    history: Vec<VecDeque<(usize, f64)>>,
    regressor: ReturnRegressor,
    rng: ChaCha8Rng,
    observed: usize,
    target: Vec<f64>,
    probs: Vec<f64>,
    cumulative: Vec<f64>,
}

impl std::fmt::Debug for DynamicSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamicSampler")
            .field("params", &self.params)
            .field("reference_gap", &self.references.is_some())
            .field("observed", &self.observed)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl DynamicSampler {
    /// Builds the sampler from soft memberships (n x k) and the regressor's
    /// inputs, one feature row per window (typically the standardized
    /// selected features). Starts with Plume-static weights.
    pub fn new(
        memberships: Array2<f64>,
        features: Array2<f64>,
        params: DynamicParams,
    ) -> Result<Self, SamplerError> {
        check_memberships(&memberships)?;
        if features.nrows() != memberships.nrows() || features.ncols() == 0 {
            return Err(SamplerError::Invalid(format!(
                "{} feature rows for {} windows",
                features.nrows(),
                memberships.nrows()
            )));
        }
        if features.iter().any(|v| !v.is_finite()) {
            return Err(SamplerError::Invalid(
                "features have non-finite values".into(),
            ));
        }
        if !(0.0..=1.0).contains(&params.epsilon)
            || params.update_every == 0
            || params.history_per_cluster == 0
        {
            return Err(SamplerError::Invalid(format!(
                "bad dynamic params {params:?}"
            )));
        }
        let k = memberships.ncols();
        let regressor = ReturnRegressor::new(features.ncols(), params.learning_rate, params.seed)
            .map_err(|e| SamplerError::Invalid(e.to_string()))?;
        let mut s = Self {
            references: None,
            history: vec![VecDeque::new(); k],
            regressor,
            rng: ChaCha8Rng::seed_from_u64(params.seed),
            observed: 0,
            target: vec![1.0 / k as f64; k],
            probs: Vec::new(),
            cumulative: Vec::new(),
            memberships,
            features,
            params,
        };
        s.refresh();
        Ok(s)
    }

    /// Measures each cluster's gap against a reference return per window
    /// (`references[i]` for memberships row `i`): the gap term becomes the
    /// mean of `reference - return` over the cluster's history, not minus
    /// its mean return.
    ///
    /// **Why.** The raw gap is largest where returns are structurally low
    /// (a competitor's queue, an outage: every controller scores low
    /// there), so the published gap sends episodes where nothing can be
    /// learned (docs/TRAINING.md, the sampler study). A reference from a
    /// fixed controller on the same window takes that level out: what is
    /// left is how far the learner lags (or leads) a baseline on that
    /// kind of window.
    pub fn with_references(mut self, references: Vec<f64>) -> Result<Self, SamplerError> {
        if references.len() != self.memberships.nrows() {
            return Err(SamplerError::Invalid(format!(
                "{} reference returns for {} windows",
                references.len(),
                self.memberships.nrows()
            )));
        }
        if references.iter().any(|r| !r.is_finite()) {
            return Err(SamplerError::Invalid(
                "reference returns have non-finite values".into(),
            ));
        }
        self.references = Some(references);
        Ok(self)
    }

    fn refresh(&mut self) {
        self.probs = with_epsilon(
            &window_probabilities(self.memberships.view(), &self.target),
            self.params.epsilon,
        );
        self.cumulative = cumulative(&self.probs);
    }

    /// Episodes observed so far.
    pub fn observed(&self) -> usize {
        self.observed
    }

    /// Trains the regressor on the history and recomputes the targets now.
    pub fn update(&mut self) {
        let all: Vec<(usize, f64)> = self.history.iter().flatten().copied().collect();
        if all.is_empty() {
            return;
        }
        for _ in 0..self.params.train_steps {
            let batch: Vec<(usize, f64)> = (0..self.params.batch_size.min(all.len()).max(1))
                .map(|_| all[self.rng.gen_range(0..all.len())])
                .collect();
            let x = self
                .features
                .select(Axis(0), &batch.iter().map(|b| b.0).collect::<Vec<_>>());
            let y: Vec<f64> = batch.iter().map(|b| b.1).collect();
            self.regressor.train_step(&x, &y);
        }
        let mut errors = Vec::with_capacity(self.history.len());
        let mut means = Vec::with_capacity(self.history.len());
        for h in &self.history {
            if h.is_empty() {
                errors.push(None);
                means.push(None);
                continue;
            }
            let x = self
                .features
                .select(Axis(0), &h.iter().map(|s| s.0).collect::<Vec<_>>());
            let y: Vec<f64> = h.iter().map(|s| s.1).collect();
            errors.push(self.regressor.loss(&x, &y));
            // `dynamic_targets` takes minus the mean as the gap; with
            // references the mean is of `return - reference`.
            let level = match &self.references {
                Some(r) => h.iter().map(|s| s.1 - r[s.0]).sum::<f64>(),
                None => y.iter().sum::<f64>(),
            };
            means.push(Some(level / y.len() as f64));
        }
        self.target = dynamic_targets(&errors, &means, self.params.alpha);
        self.refresh();
    }
}

impl TraceSampler for DynamicSampler {
    fn sample(&mut self, rng: &mut dyn RngCore) -> usize {
        draw(&self.cumulative, rng)
    }

    fn observe(&mut self, trace_index: usize, episode_return: f64) {
        if trace_index >= self.memberships.nrows() || !episode_return.is_finite() {
            return;
        }
        let c = argmax(self.memberships.row(trace_index));
        let h = &mut self.history[c];
        if h.len() == self.params.history_per_cluster {
            h.pop_front();
        }
        h.push_back((trace_index, episode_return));
        self.regressor.observe_return(episode_return);
        self.observed += 1;
        if self.observed >= self.params.warmup
            && self.observed.is_multiple_of(self.params.update_every)
        {
            self.update();
        }
    }

    fn probabilities(&self) -> Vec<f64> {
        self.probs.clone()
    }

    fn cluster_targets(&self) -> Vec<f64> {
        self.target.clone()
    }
}

/// Which sampler a trainer wants (the experiment's independent variable).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum SamplerKind {
    /// Every window equally likely.
    Uniform,
    /// Equal cluster shares, with this epsilon.
    PlumeStatic {
        /// Share of uniform resets.
        epsilon: f64,
    },
    /// Learner-driven cluster shares.
    PlumeDynamic(DynamicParams),
    /// Learner-driven cluster shares with the return gap taken against a
    /// reference return per window ([`DynamicSampler::with_references`]);
    /// needs [`SamplerInputs::references`].
    PlumeDynamicRef(DynamicParams),
}

/// What a sampler is built over, one row (or entry) per window, in the
/// order of the indices the sampler will hand out.
#[derive(Debug, Clone)]
pub struct SamplerInputs {
    /// Soft cluster memberships (windows x k).
    pub memberships: Array2<f64>,
    /// The dynamic regressor's inputs (windows x f), typically the
    /// standardised selected features; unused by the other kinds.
    pub features: Array2<f64>,
    /// A reference return per window, for [`SamplerKind::PlumeDynamicRef`]
    /// only.
    pub references: Option<Vec<f64>>,
}

/// Builds a sampler of `kind` over `inputs`. The one place a sampler is
/// constructed: training (`rl::train`, inputs from its prepared corpus) and
/// the analysis test (inputs from a saved clustering model) both come here,
/// so the two cannot drift apart.
pub fn build_sampler(
    kind: SamplerKind,
    inputs: SamplerInputs,
) -> Result<Box<dyn TraceSampler>, SamplerError> {
    let SamplerInputs {
        memberships,
        features,
        references,
    } = inputs;
    // References change what the dynamic sampler learns from; given to a
    // kind that ignores them they would be a silent no-op, so refuse them.
    if references.is_some() && !matches!(kind, SamplerKind::PlumeDynamicRef(_)) {
        return Err(SamplerError::Invalid(format!(
            "reference returns given to {kind:?}, which does not use them"
        )));
    }
    Ok(match kind {
        SamplerKind::Uniform => Box::new(UniformSampler::new(memberships.nrows())?),
        SamplerKind::PlumeStatic { epsilon } => {
            Box::new(StaticSampler::plume_static(&memberships, epsilon)?)
        }
        SamplerKind::PlumeDynamic(params) => {
            Box::new(DynamicSampler::new(memberships, features, params)?)
        }
        SamplerKind::PlumeDynamicRef(params) => {
            let references = references.ok_or_else(|| {
                SamplerError::Invalid("plume-dynamic-ref needs reference returns".into())
            })?;
            Box::new(
                DynamicSampler::new(memberships, features, params)?.with_references(references)?,
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn cluster_share(p: &[f64], labels: &[usize], k: usize) -> Vec<f64> {
        let mut s = vec![0.0; k];
        p.iter().zip(labels).for_each(|(v, &l)| s[l] += v);
        s
    }

    #[test]
    fn hard_memberships_give_target_shares_split_evenly() {
        // 6 windows in cluster 0, 2 in cluster 1, 1 in cluster 2 (skewed).
        let labels = [0, 0, 0, 0, 0, 0, 1, 1, 2];
        let m = Array2::from_shape_fn((9, 3), |(i, c)| f64::from(u8::from(labels[i] == c)));
        let s = StaticSampler::plume_static(&m, 0.0).unwrap();
        let p = s.probabilities();
        let share = cluster_share(&p, &labels, 3);
        share
            .iter()
            .for_each(|v| assert!((v - 1.0 / 3.0).abs() < 1e-12, "{share:?}"));
        assert!((p[0] - 1.0 / 18.0).abs() < 1e-12 && (p[8] - 1.0 / 3.0).abs() < 1e-12);
        let t = StaticSampler::with_targets(&m, &[0.5, 0.3, 0.2], 0.0).unwrap();
        let share = cluster_share(&t.probabilities(), &labels, 3);
        for (a, b) in share.iter().zip([0.5, 0.3, 0.2]) {
            assert!((a - b).abs() < 1e-12);
        }
    }

    #[test]
    fn soft_memberships_reproduce_target_shares() {
        let m = array![[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4], [0.1, 0.9]];
        let target = [0.25, 0.75];
        let p = window_probabilities(m.view(), &target);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // Each window's probability is the sum of its share of every
        // cluster's pool (pool c split in proportion to membership), and
        // the pools add up to exactly the targets.
        let n = 5.0;
        let prop: Vec<f64> = (0..2).map(|c| m.column(c).sum() / n).collect();
        let pools: Vec<Vec<f64>> = (0..2)
            .map(|c| {
                m.column(c)
                    .iter()
                    .map(|v| v * target[c] / (prop[c] * n))
                    .collect()
            })
            .collect();
        for (i, pi) in p.iter().enumerate() {
            assert!((pi - (pools[0][i] + pools[1][i])).abs() < 1e-12);
        }
        for c in 0..2 {
            assert!((pools[c].iter().sum::<f64>() - target[c]).abs() < 1e-12);
        }
        // Nearly hard soft memberships: sampled cluster shares match the targets.
        let labels = [0, 0, 0, 0, 0, 0, 0, 1, 1, 1];
        let soft =
            Array2::from_shape_fn((10, 2), |(i, c)| if labels[i] == c { 0.99 } else { 0.01 });
        let p = window_probabilities(soft.view(), &target);
        let share = cluster_share(&p, &labels, 2);
        assert!((share[1] - 0.75).abs() < 0.02, "{share:?}");
        // Targets equal to the proportions give uniform windows.
        let u = window_probabilities(m.view(), &prop);
        u.iter().for_each(|v| assert!((v - 0.2).abs() < 1e-12));
    }

    #[test]
    fn epsilon_is_respected_empirically() {
        let labels = [0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let m = Array2::from_shape_fn((10, 2), |(i, c)| f64::from(u8::from(labels[i] == c)));
        let mut s = StaticSampler::with_targets(&m, &[0.0, 1.0], 0.2).unwrap();
        let p = s.probabilities();
        // Cluster 0 has target 0: only the epsilon share reaches it.
        for v in &p[..9] {
            assert!((v - 0.02).abs() < 1e-12);
        }
        assert!((p[9] - (0.8 + 0.02)).abs() < 1e-12);
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let draws = 20_000;
        let hits = (0..draws).filter(|_| s.sample(&mut rng) == 9).count();
        assert!((hits as f64 / draws as f64 - 0.82).abs() < 0.015);
        assert!(StaticSampler::with_targets(&m, &[0.5, 0.5], 1.5).is_err());
    }

    #[test]
    fn samplers_are_deterministic_for_a_seed() {
        let m = Array2::from_shape_fn((7, 2), |(i, c)| f64::from(u8::from((i % 2) == c)));
        let run = |seed| {
            let mut s = StaticSampler::plume_static(&m, 0.1).unwrap();
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..50).map(|_| s.sample(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
        let mut u = UniformSampler::new(3).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        assert!((0..100).all(|_| u.sample(&mut rng) < 3));
        assert!(UniformSampler::new(0).is_err());
    }

    #[test]
    fn dynamic_target_formula() {
        // Equal errors; cluster 1 has the lowest return -> largest gap.
        let t = dynamic_targets(
            &[Some(1.0), Some(1.0), Some(1.0)],
            &[Some(10.0), Some(0.0), Some(5.0)],
            0.0,
        );
        // gaps -10, 0, -5 -> scaled 1, 10, 5.5 -> normalised by 16.5
        assert!((t[0] - 1.0 / 16.5).abs() < 1e-12 && (t[1] - 10.0 / 16.5).abs() < 1e-12);
        let e = dynamic_targets(&[Some(3.0), Some(1.0), Some(0.0)], &[Some(1.0); 3], 1.0);
        assert!((e[0] - 0.75).abs() < 1e-12 && e[2].abs() < 1e-12);
        let mix = dynamic_targets(
            &[Some(3.0), Some(1.0), Some(0.0)],
            &[Some(10.0), Some(0.0), Some(5.0)],
            0.5,
        );
        assert!((mix.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!((mix[0] - (0.5 * 0.75 + 0.5 / 16.5)).abs() < 1e-12);
        // Unseen cluster gets the maximum of the others.
        let u = dynamic_targets(&[Some(1.0), None], &[Some(0.0), None], 0.5);
        assert!((u[0] - u[1]).abs() < 1e-12);
    }

    #[test]
    fn dynamic_weights_move_to_low_and_unpredictable_cluster() {
        // Two clusters of 20 windows; cluster 1's returns are low and noisy.
        let n = 40;
        let m = Array2::from_shape_fn((n, 2), |(i, c)| {
            f64::from(u8::from((i >= 20) as usize == c))
        });
        let f = Array2::from_shape_fn((n, 2), |(i, j)| {
            if j == 0 {
                f64::from(u8::from(i >= 20))
            } else {
                (i % 5) as f64 / 5.0
            }
        });
        let params = DynamicParams {
            warmup: 100,
            update_every: 50,
            train_steps: 30,
            ..DynamicParams::default()
        };
        let mut s = DynamicSampler::new(m, f, params).unwrap();
        let before = s.cluster_targets();
        assert!((before[0] - 0.5).abs() < 1e-12);
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for _ in 0..300 {
            let i = s.sample(&mut rng);
            let r = if i < 20 {
                10.0
            } else {
                rng.gen_range(-10.0..0.0)
            };
            s.observe(i, r);
        }
        let after = s.cluster_targets();
        assert!(after[1] > 0.6, "{after:?}");
        let p = s.probabilities();
        let share1: f64 = p[20..].iter().sum();
        assert!(share1 > 0.55, "{share1}");
        assert!(p.iter().all(|v| *v >= 0.1 / n as f64 - 1e-12));
    }
    #[test]
    fn a_reference_gap_takes_the_clusters_level_out() {
        // Cluster 1's returns are low (-5) but above its reference (-20:
        // nothing does better there); cluster 0's are high (10) but below
        // its reference (12). Gap term only (alpha 0).
        let n = 40;
        let m = Array2::from_shape_fn((n, 2), |(i, c)| {
            f64::from(u8::from((i >= 20) as usize == c))
        });
        let f = Array2::from_shape_fn((n, 1), |(i, _)| f64::from(u8::from(i >= 20)));
        let params = DynamicParams {
            alpha: 0.0,
            warmup: 50,
            update_every: 25,
            train_steps: 5,
            ..DynamicParams::default()
        };
        let run = |refs: Option<Vec<f64>>| {
            let mut s = DynamicSampler::new(m.clone(), f.clone(), params).unwrap();
            if let Some(r) = refs {
                s = s.with_references(r).unwrap();
            }
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            for _ in 0..200 {
                let i = s.sample(&mut rng);
                s.observe(i, if i < 20 { 10.0 } else { -5.0 });
            }
            s.cluster_targets()
        };
        let raw = run(None);
        assert!(raw[1] > 0.8, "the raw gap favours the low cluster: {raw:?}");
        let refs: Vec<f64> = (0..n).map(|i| if i < 20 { 12.0 } else { -20.0 }).collect();
        let gap = run(Some(refs));
        assert!(
            gap[0] > 0.8,
            "the reference gap favours the lagging cluster: {gap:?}"
        );
        let bad = DynamicSampler::new(m.clone(), f.clone(), params)
            .unwrap()
            .with_references(vec![0.0; 3]);
        assert!(bad.is_err());
    }
}
