//! `plume-cc explain fit`: the predictors fit on simulator rollouts of the
//! policy, and their fidelity on held-out windows.
//!
//! Data: episodes on the training windows of the corpus (the same split as
//! `plume-cc train`, every 5th window held out), each path drawn from the
//! committed default scenario distribution (the default policy's training
//! distribution). In each episode one decision step is drawn and branched
//! into every action of [`super::ACTIONS_LOG2`] ([`super::rollout`]); a
//! branch's decision is one sample (observation, raw action, multiplier ->
//! the realised component returns), and the policy's own branch adds its
//! earlier steps, every `keep_every`-th, as on-policy samples (multiplier
//! 0). Contrasting samples weigh `contrast_weight` times an on-policy one
//! in the loss, as they are the rarer and the point of the explanation.
//!
//! Fidelity, on episodes of the held-out windows drawn the same way:
//! R^2 between predicted and realised returns per component (reward units
//! and physical units), and how often the predictions order the three
//! alternatives of a decision as their realised returns do (pairwise, and
//! the whole order), alternatives closer than a tie tolerance not ranked.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{nn, nn::Module, nn::OptimizerConfig, Device, Kind, Tensor};

use super::predictor::{
    directions, head, new_metadata, DelayTarget, Fidelity, FitInfo, InputRanges, Predictors, INPUTS,
};
use super::returns::returns_from;
use super::rollout::{decision_branches, draw_episodes, run_branches, Trajectory};
use super::{ExplainError, Horizon, BRANCH_LOG2, COMPONENTS, NULL_BRANCH};
use crate::policy::LoadedPolicy;
use crate::rl::corpus::PreparedCorpus;
use crate::rl::scenario::ScenarioSpec;

/// Settings of a fit.
#[derive(Clone, Debug)]
pub struct FitOptions {
    /// Training decisions (episodes), each branched into every action.
    pub decisions: usize,
    /// Held-out decisions for the fidelity.
    pub heldout_decisions: usize,
    /// Epochs over the training samples.
    pub epochs: usize,
    /// Hidden layer widths of every component's network.
    pub hidden: Vec<usize>,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// Minibatch size.
    pub batch: usize,
    /// On-policy samples: every this many steps before a decision.
    pub keep_every: usize,
    /// Loss weight of a contrasting sample relative to an on-policy one.
    pub contrast_weight: f32,
    /// Weight of the contrast loss: the error of the predicted differences
    /// between a decision's alternatives (in units of their spread), which
    /// the plain loss hardly sees (the differences are small next to the
    /// spread of the returns across states).
    pub difference_weight: f32,
    /// Seed of the episodes and the networks.
    pub seed: u64,
    /// Monotone heads (see [`super::predictor::head`]).
    pub monotone: bool,
    /// What the delay network predicts ([`DelayTarget`]).
    pub delay_target: DelayTarget,
    /// The delay component counts the reward's clip
    /// ([`super::ComponentReturns::explained`]).
    pub delay_counts_clip: bool,
    /// Horizon and hold.
    pub horizon: Horizon,
    /// Tie tolerance of the ranking (reward-unit returns).
    pub tie_tolerance: f64,
    /// The command line, recorded.
    pub command: String,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            decisions: 4000,
            heldout_decisions: 600,
            epochs: 40,
            hidden: vec![64, 64],
            learning_rate: 1e-3,
            batch: 256,
            keep_every: 10,
            contrast_weight: 4.0,
            difference_weight: 0.3,
            seed: 0,
            monotone: false,
            delay_target: DelayTarget::Direct,
            // The held-out R² of the delay return rose from 0.40-0.47 to
            // 0.69-0.75 with it (docs/TRAINING.md, "Why delay is hard").
            delay_counts_clip: true,
            horizon: Horizon::default(),
            tie_tolerance: 0.1,
            command: String::new(),
        }
    }
}

impl FitOptions {
    /// Checks every setting, naming the field and its range.
    pub fn validate(&self) -> Result<(), ExplainError> {
        let range = |field, allowed, ok: bool, found: String| {
            if ok {
                Ok(())
            } else {
                Err(ExplainError::Range {
                    field,
                    allowed,
                    found,
                })
            }
        };
        range(
            "--decisions",
            "in [10, 100000]",
            (10..=100_000).contains(&self.decisions),
            self.decisions.to_string(),
        )?;
        range(
            "--heldout-decisions",
            "in [10, 100000]",
            (10..=100_000).contains(&self.heldout_decisions),
            self.heldout_decisions.to_string(),
        )?;
        range(
            "--epochs",
            "in [1, 10000]",
            (1..=10_000).contains(&self.epochs),
            self.epochs.to_string(),
        )?;
        range(
            "--hidden",
            "1 to 4 widths, each in [4, 1024]",
            (1..=4).contains(&self.hidden.len())
                && self.hidden.iter().all(|h| (4..=1024).contains(h)),
            format!("{:?}", self.hidden),
        )?;
        range(
            "--gamma",
            "in (0, 1)",
            self.horizon.gamma > 0.0 && self.horizon.gamma < 1.0,
            self.horizon.gamma.to_string(),
        )?;
        range(
            "--horizon",
            "in [1, 1000] intervals",
            (1..=1000).contains(&self.horizon.steps),
            self.horizon.steps.to_string(),
        )?;
        range(
            "--hold",
            "in [1, horizon] intervals",
            self.horizon.hold >= 1 && self.horizon.hold <= self.horizon.steps,
            self.horizon.hold.to_string(),
        )?;
        range(
            "--keep-every",
            "in [1, 1000]",
            (1..=1000).contains(&self.keep_every),
            self.keep_every.to_string(),
        )?;
        Ok(())
    }
}

/// Progress of a fit.
pub trait FitProgress {
    /// A stage begins with `total` units of work.
    fn stage(&mut self, name: &str, total: u64);
    /// `n` more units done.
    fn advance(&mut self, n: u64);
}

/// No progress shown.
pub struct Quiet;

impl FitProgress for Quiet {
    fn stage(&mut self, _: &str, _: u64) {}
    fn advance(&mut self, _: u64) {}
}

/// The rows of every decision with all its alternatives, in
/// [`super::ACTIONS_LOG2`] order.
pub fn decision_rows(s: &Samples) -> Vec<[usize; 3]> {
    let mut by_episode: std::collections::BTreeMap<usize, [Option<usize>; 3]> = Default::default();
    for (i, d) in s.decision.iter().enumerate() {
        if let Some((e, a)) = d {
            by_episode.entry(*e).or_default()[*a] = Some(i);
        }
    }
    by_episode
        .values()
        .filter_map(|rows| Some([rows[0]?, rows[1]?, rows[2]?]))
        .collect()
}

/// Samples as matrices: inputs, targets (per component: reward units,
/// physical), weights, and which branch and action each came from.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    /// Rows of [`INPUTS`] values.
    pub x: Vec<f32>,
    /// Rows of 6 targets: component `c`'s return at `2c`, its physical mean at `2c + 1`.
    pub y: Vec<f32>,
    /// Loss weight of each row.
    pub w: Vec<f32>,
    /// Per row: (episode, action) when it is a decision, else None.
    pub decision: Vec<Option<(usize, usize)>>,
    /// Steps seen, and those on which the reward's clip bound.
    pub steps: usize,
    /// See [`Samples::steps`].
    pub clipped: usize,
    /// Per episode, the realised reward-unit returns of the null contrast
    /// (not a sample: see [`super::BRANCH_LOG2`]).
    pub null: std::collections::BTreeMap<usize, [f64; 3]>,
    /// The same, physical means.
    pub null_physical: std::collections::BTreeMap<usize, [f64; 3]>,
    /// Per row, the discounted return of the reward's clip part (not
    /// predicted; kept to measure what the clip does to the delay target).
    pub clip: Vec<f32>,
}

impl Samples {
    /// Rows.
    pub fn len(&self) -> usize {
        self.w.len()
    }

    /// No rows.
    pub fn is_empty(&self) -> bool {
        self.w.is_empty()
    }
}

/// The samples of `trajectories` (module docs).
pub fn samples(
    trajectories: &[Trajectory],
    horizon: &Horizon,
    contrast_weight: f32,
    delay_counts_clip: bool,
) -> Samples {
    let mut s = Samples::default();
    for t in trajectories {
        s.steps += t.parts.len();
        s.clipped += t.parts.iter().filter(|p| p.clip != 0.0).count();
        for k in &t.kept {
            let at_decision = k.step == t.branch.decision;
            let log2 = if at_decision {
                BRANCH_LOG2[t.branch.action]
            } else {
                0.0
            };
            let r = returns_from(&t.parts, k.step, horizon.steps, horizon.gamma);
            if r.steps < horizon.steps {
                continue; // the episode ended inside the horizon
            }
            if t.branch.action == NULL_BRANCH {
                s.null
                    .insert(t.branch.episode, r.explained(delay_counts_clip));
                s.null_physical.insert(t.branch.episode, r.physical);
                continue;
            }
            s.x.extend_from_slice(&k.obs);
            s.x.extend_from_slice(&[k.raw[0], k.raw[1], log2]);
            let explained = r.explained(delay_counts_clip);
            for (reward, physical) in explained.iter().zip(r.physical) {
                s.y.push(*reward as f32);
                s.y.push(physical as f32);
            }
            s.clip.push(r.clip as f32);
            s.w.push(if at_decision { contrast_weight } else { 1.0 });
            s.decision
                .push(at_decision.then_some((t.branch.episode, t.branch.action)));
        }
    }
    s
}

fn mean_std(v: &[f32], cols: usize, col: usize) -> (f32, f32) {
    let n = (v.len() / cols).max(1) as f64;
    let m = v
        .iter()
        .skip(col)
        .step_by(cols)
        .map(|&x| f64::from(x))
        .sum::<f64>()
        / n;
    let var = v
        .iter()
        .skip(col)
        .step_by(cols)
        .map(|&x| (f64::from(x) - m).powi(2))
        .sum::<f64>()
        / n;
    (m as f32, (var.sqrt() as f32).max(1e-3))
}

/// Simulates `decisions` decisions on the windows `pick` of `corpus` and
/// returns their trajectories.
#[allow(clippy::too_many_arguments)]
fn simulate(
    policy: &LoadedPolicy,
    corpus: &PreparedCorpus,
    pick: &[usize],
    decisions: usize,
    opts: &FitOptions,
    seed: u64,
    null: bool,
    progress: &mut dyn FitProgress,
    stage: &str,
) -> Result<Vec<Trajectory>, ExplainError> {
    let meta = policy.metadata();
    let episodes = draw_episodes(
        &corpus.windows,
        pick,
        decisions,
        &ScenarioSpec::default_distribution(),
        seed,
    );
    let branches = decision_branches(
        &episodes,
        meta.monitor_interval_us,
        &opts.horizon,
        opts.keep_every,
        seed ^ 0x5eed,
        null,
    );
    let total: u64 = branches.iter().map(|b| (b.end) as u64).sum();
    progress.stage(stage, total);
    // Chunks bound the memory of simultaneous simulators.
    let mut out = Vec::with_capacity(branches.len());
    for chunk in branches.chunks(4 * 128) {
        out.extend(run_branches(
            policy,
            meta.default_objective,
            &episodes,
            chunk,
            &opts.horizon,
            &mut |n| progress.advance(n),
        )?);
    }
    Ok(out)
}

/// Fits the predictors of `policy` on `corpus` (module docs) and measures
/// their fidelity; nothing is written.
pub fn fit(
    policy: &LoadedPolicy,
    corpus: &PreparedCorpus,
    opts: &FitOptions,
    progress: &mut dyn FitProgress,
) -> Result<Predictors, ExplainError> {
    let started = std::time::Instant::now();
    let (train, held) = simulate_split(policy, corpus, opts, progress)?;
    let mut p = fit_samples(policy, &train, &held, opts, progress)?;
    p.metadata_mut().fit.seconds = started.elapsed().as_secs_f64();
    Ok(p)
}

/// The training and held-out samples of a fit (module docs): the
/// expensive half, simulated once so that several fits can share it
/// (`examples/explain_variants.rs` compares fits on the same samples).
pub fn simulate_split(
    policy: &LoadedPolicy,
    corpus: &PreparedCorpus,
    opts: &FitOptions,
    progress: &mut dyn FitProgress,
) -> Result<(Samples, Samples), ExplainError> {
    opts.validate()?;
    if corpus.train.is_empty() || corpus.heldout.is_empty() {
        return Err(ExplainError::Range {
            field: "--traces",
            allowed: "a corpus with training and held-out windows",
            found: format!(
                "{} training, {} held-out windows",
                corpus.train.len(),
                corpus.heldout.len()
            ),
        });
    }
    let train_t = simulate(
        policy,
        corpus,
        &corpus.train,
        opts.decisions,
        opts,
        opts.seed,
        false,
        progress,
        "rollouts",
    )?;
    let train = samples(
        &train_t,
        &opts.horizon,
        opts.contrast_weight,
        opts.delay_counts_clip,
    );
    drop(train_t);
    let held_t = simulate(
        policy,
        corpus,
        &corpus.heldout,
        opts.heldout_decisions,
        opts,
        opts.seed.wrapping_add(1),
        true,
        progress,
        "held-out rollouts",
    )?;
    let held = samples(
        &held_t,
        &opts.horizon,
        opts.contrast_weight,
        opts.delay_counts_clip,
    );
    Ok((train, held))
}

/// The training targets of `s` as the networks see them: [`Samples::y`]
/// with the delay columns encoded by `target` ([`DelayTarget::encode`]).
pub fn network_targets(s: &Samples, target: DelayTarget) -> Vec<f32> {
    let mut y = s.y.clone();
    if target != DelayTarget::Direct {
        for (r, row) in y.chunks_exact_mut(6).enumerate() {
            let (t0, t1) = target.encode(
                &s.x[r * INPUTS..(r + 1) * INPUTS],
                f64::from(row[2]),
                f64::from(row[3]),
            );
            row[2] = t0 as f32;
            row[3] = t1 as f32;
        }
    }
    y
}

/// Fits the predictors on samples `train` and measures their fidelity on
/// `held` (the cheap half of [`fit`]; `seconds` is left at 0).
pub fn fit_samples(
    policy: &LoadedPolicy,
    train: &Samples,
    held: &Samples,
    opts: &FitOptions,
    progress: &mut dyn FitProgress,
) -> Result<Predictors, ExplainError> {
    opts.validate()?;
    let mut meta = new_metadata(policy.metadata(), opts.horizon, opts.hidden.clone());
    meta.monotone = opts.monotone;
    meta.delay_target = opts.delay_target;
    meta.delay_counts_clip = opts.delay_counts_clip;
    meta.ranges = Some(InputRanges::of_inputs(&train.x));
    for c in 0..INPUTS {
        let (m, s) = mean_std(&train.x, INPUTS, c);
        meta.in_mean[c] = m;
        meta.in_std[c] = s;
    }
    let y = network_targets(train, opts.delay_target);
    for c in 0..3 {
        let (m0, s0) = mean_std(&y, 6, 2 * c);
        let (m1, s1) = mean_std(&y, 6, 2 * c + 1);
        meta.out_mean[c] = [m0, m1];
        meta.out_std[c] = [s0, s1];
    }
    let named = train_nets(train, &y, &meta, opts, progress)?;
    meta.fit = FitInfo {
        command: opts.command.clone(),
        seed: opts.seed,
        decisions: opts.decisions,
        samples: train.len(),
        epochs: opts.epochs,
        seconds: 0.0,
    };
    let mut predictors = Predictors::from_parts(meta, named, std::path::Path::new("(fit)"))?;
    let fidelity = fidelity(&predictors, held, opts.tie_tolerance)?;
    predictors.metadata_mut().fidelity = fidelity;
    Ok(predictors)
}

/// Trains one network per component on the inputs of `s` and the network
/// targets `targets` ([`network_targets`]), both standardised by `meta`;
/// returns the named tensors.
fn train_nets(
    s: &Samples,
    targets: &[f32],
    meta: &super::ExplainMetadata,
    opts: &FitOptions,
    progress: &mut dyn FitProgress,
) -> Result<Vec<(String, Tensor)>, ExplainError> {
    let rng_guard = super::TORCH_RNG
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    tch::manual_seed(opts.seed as i64);
    let n = s.len() as i64;
    let x = Tensor::from_slice(&s.x).view([n, INPUTS as i64]);
    let log2m = x.narrow(1, INPUTS as i64 - 1, 1).copy();
    let in_mean = Tensor::from_slice(&meta.in_mean).view([1, INPUTS as i64]);
    let in_std = Tensor::from_slice(&meta.in_std).view([1, INPUTS as i64]);
    let x = ((x - in_mean) / in_std).clamp(-10.0, 10.0);
    let out_mean: Vec<f32> = meta.out_mean.iter().flatten().copied().collect();
    let out_std: Vec<f32> = meta.out_std.iter().flatten().copied().collect();
    let y = (Tensor::from_slice(targets).view([n, 6]) - Tensor::from_slice(&out_mean).view([1, 6]))
        / Tensor::from_slice(&out_std).view([1, 6]);
    let w = Tensor::from_slice(&s.w).view([n, 1]);
    let vs = nn::VarStore::new(Device::Cpu);
    let mut nets = Vec::new();
    for c in COMPONENTS {
        let mut widths = vec![INPUTS as i64];
        widths.extend(opts.hidden.iter().map(|&h| h as i64));
        widths.push(super::predictor::outputs(opts.monotone) as i64);
        let mut seq = nn::seq();
        for i in 0..widths.len() - 1 {
            seq = seq.add(nn::linear(
                vs.root() / c / i,
                widths[i],
                widths[i + 1],
                Default::default(),
            ));
            if i + 2 < widths.len() {
                seq = seq.add_fn(|t| t.relu());
            }
        }
        nets.push(seq);
    }
    drop(rng_guard); // the networks are drawn; training draws from ChaCha8
    let mut opt = nn::Adam::default().build(&vs, opts.learning_rate)?;
    // The contrast loss' triplets and the spread of their differences.
    let triplets: Vec<[i64; 3]> = decision_rows(s)
        .into_iter()
        .map(|r| r.map(|i| i as i64))
        .collect();
    let diff_scale = if triplets.is_empty() {
        Tensor::ones([1, 6], (Kind::Float, Device::Cpu))
    } else {
        let t = Tensor::from_slice(&triplets.concat()).view([-1, 3]);
        let y0 = y.index_select(0, &t.select(1, 0));
        let d = Tensor::cat(
            &[
                y.index_select(0, &t.select(1, 1)) - &y0,
                y.index_select(0, &t.select(1, 2)) - &y0,
            ],
            0,
        );
        d.square()
            .mean_dim(0, true, Kind::Float)
            .sqrt()
            .clamp_min(1e-3)
    };
    let mut trip_order: Vec<usize> = (0..triplets.len()).collect();
    let mut trip_at = 0usize;
    let trip_batch = (opts.batch / 3).max(1);
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0xf17);
    let mut order: Vec<i64> = (0..n).collect();
    let batches = (s.len().div_ceil(opts.batch)) as u64;
    progress.stage("fit", batches * opts.epochs as u64);
    for _ in 0..opts.epochs {
        order.shuffle(&mut rng);
        for chunk in order.chunks(opts.batch) {
            let idx = Tensor::from_slice(chunk);
            let (xb, yb, wb) = (
                x.index_select(0, &idx),
                y.index_select(0, &idx),
                w.index_select(0, &idx),
            );
            let mb = log2m.index_select(0, &idx);
            let mut loss = Tensor::zeros([], (Kind::Float, Device::Cpu));
            for (c, net) in nets.iter().enumerate() {
                let dir = directions(c, opts.delay_target);
                let pred = head(&|z| net.forward(z), &xb, &mb, dir, opts.monotone);
                let target = yb.narrow(1, 2 * c as i64, 2);
                loss += ((pred - target).square() * &wb).mean(Kind::Float);
            }
            if !triplets.is_empty() && opts.difference_weight > 0.0 {
                let mut rows = Vec::with_capacity(trip_batch * 3);
                for _ in 0..trip_batch {
                    if trip_at == 0 {
                        trip_order.shuffle(&mut rng);
                    }
                    rows.extend_from_slice(&triplets[trip_order[trip_at]]);
                    trip_at = (trip_at + 1) % triplets.len();
                }
                let t = Tensor::from_slice(&rows).view([-1, 3]);
                let pick = |k: i64| t.select(1, k);
                let (r0, r1, r2) = (pick(0), pick(1), pick(2));
                for (c, net) in nets.iter().enumerate() {
                    let col = |tensor: &Tensor| tensor.narrow(1, 2 * c as i64, 2);
                    let scale = diff_scale.narrow(1, 2 * c as i64, 2);
                    let fwd = |r: &Tensor| {
                        head(
                            &|z| net.forward(z),
                            &x.index_select(0, r),
                            &log2m.index_select(0, r),
                            directions(c, opts.delay_target),
                            opts.monotone,
                        )
                    };
                    let p0 = fwd(&r0);
                    let y0 = col(&y.index_select(0, &r0));
                    for r in [&r1, &r2] {
                        let dp = fwd(r) - &p0;
                        let dy = col(&y.index_select(0, r)) - &y0;
                        loss += ((dp - dy) / &scale).square().mean(Kind::Float)
                            * f64::from(opts.difference_weight);
                    }
                }
            }
            opt.backward_step(&loss);
            progress.advance(1);
        }
    }
    let vars = vs.variables();
    let mut named: Vec<(String, Tensor)> = vars
        .into_iter()
        .map(|(k, v)| (k, v.detach().copy()))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(named)
}

/// `1 - SS_res / SS_tot` (NaN when the realised values do not vary).
pub fn r_squared(pred: &[f64], real: &[f64]) -> f64 {
    let n = real.len().max(1) as f64;
    let m = real.iter().sum::<f64>() / n;
    let tot: f64 = real.iter().map(|r| (r - m).powi(2)).sum();
    let res: f64 = pred.iter().zip(real).map(|(p, r)| (p - r).powi(2)).sum();
    if tot > 0.0 {
        1.0 - res / tot
    } else {
        f64::NAN
    }
}

/// The fidelity of `p` on held-out samples `s` (module docs).
pub fn fidelity(p: &Predictors, s: &Samples, tie_tolerance: f64) -> Result<Fidelity, ExplainError> {
    let pred = p.predict_inputs(&s.x, s.len())?;
    let mut f = Fidelity {
        samples: s.len(),
        tie_tolerance,
        clip_share: s.clipped as f64 / s.steps.max(1) as f64,
        ..Fidelity::default()
    };
    for c in 0..3 {
        let real_r: Vec<f64> = (0..s.len())
            .map(|i| f64::from(s.y[i * 6 + 2 * c]))
            .collect();
        let real_p: Vec<f64> = (0..s.len())
            .map(|i| f64::from(s.y[i * 6 + 2 * c + 1]))
            .collect();
        let pr: Vec<f64> = pred.iter().map(|q| q.reward_units[c]).collect();
        let pp: Vec<f64> = pred.iter().map(|q| q.physical[c]).collect();
        f.r2_reward[c] = r_squared(&pr, &real_r);
        f.r2_physical[c] = r_squared(&pp, &real_p);
    }
    let complete = decision_rows(s);
    f.decisions = complete.len();
    for c in 0..3 {
        // The chaos floor: the 90th percentile of how far the null
        // contrast moved the return from the policy's.
        let mut noise: Vec<f64> = complete
            .iter()
            .filter_map(|rows| {
                let e = s.decision[rows[0]]?.0;
                let null = s.null.get(&e)?[c];
                Some((null - f64::from(s.y[rows[0] * 6 + 2 * c])).abs())
            })
            .collect();
        noise.sort_by(f64::total_cmp);
        f.null_decisions = noise.len();
        f.chaos_floor[c] = noise
            .get((noise.len() * 9 / 10).min(noise.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0);
    }
    for c in 0..3 {
        let (mut pairs, mut right, mut orders, mut orders_right) = (0usize, 0usize, 0usize, 0usize);
        let mut rule_right = 0usize;
        let (mut beyond, mut beyond_right, mut beyond_rule) = (0usize, 0usize, 0usize);
        // Throughput rises with the clamp; the delay and loss parts (penalties) fall.
        let direction = if c == 0 { 1.0 } else { -1.0 };
        for rows in &complete {
            let real: Vec<f64> = rows
                .iter()
                .map(|&i| f64::from(s.y[i * 6 + 2 * c]))
                .collect();
            let pr: Vec<f64> = rows.iter().map(|&i| pred[i].reward_units[c]).collect();
            let mut all_apart = true;
            let mut all_right = true;
            for (a, b) in [(0, 1), (0, 2), (1, 2)] {
                let d = real[a] - real[b];
                if d.abs() <= tie_tolerance {
                    all_apart = false;
                    continue;
                }
                pairs += 1;
                let ok = (pr[a] - pr[b]).signum() == d.signum();
                let rule = direction * f64::from(BRANCH_LOG2[a] - BRANCH_LOG2[b]);
                let rule_ok = rule.signum() == d.signum();
                rule_right += usize::from(rule_ok);
                if d.abs() > f.chaos_floor[c] {
                    beyond += 1;
                    beyond_right += usize::from(ok);
                    beyond_rule += usize::from(rule_ok);
                }
                right += usize::from(ok);
                all_right &= ok;
            }
            if all_apart {
                orders += 1;
                orders_right += usize::from(all_right);
            }
        }
        f.ranked_pairs[c] = pairs;
        f.pairwise_accuracy[c] = right as f64 / pairs.max(1) as f64;
        f.direction_rule_accuracy[c] = rule_right as f64 / pairs.max(1) as f64;
        f.pairs_beyond_floor[c] = beyond;
        f.pairwise_accuracy_beyond_floor[c] = beyond_right as f64 / beyond.max(1) as f64;
        f.direction_rule_beyond_floor[c] = beyond_rule as f64 / beyond.max(1) as f64;
        f.ranked_decisions[c] = orders;
        f.order_accuracy[c] = orders_right as f64 / orders.max(1) as f64;
    }
    Ok(f)
}

/// The fidelity as a Markdown table.
pub fn fidelity_table(f: &Fidelity) -> String {
    let mut s = String::from(
        "| component | R² (reward units) | R² (physical) | pairs ranked | pairwise accuracy | direction rule | decisions ordered | order accuracy |\n|---|---|---|---|---|---|---|---|\n",
    );
    let units = ["Mbit/s", "ms", "loss rate"];
    for c in 0..3 {
        s.push_str(&format!(
            "| {} | {:.3} | {:.3} ({}) | {} | {:.1}% | {:.1}% | {} | {:.1}% |\n",
            COMPONENTS[c],
            f.r2_reward[c],
            f.r2_physical[c],
            units[c],
            f.ranked_pairs[c],
            100.0 * f.pairwise_accuracy[c],
            100.0 * f.direction_rule_accuracy[c],
            f.ranked_decisions[c],
            100.0 * f.order_accuracy[c],
        ));
    }
    s.push_str(&format!(
        "\nBeyond the chaos floor (pairs whose realised returns differ by more than the 90th percentile of what a 3.5% clamp change does, over {} decisions):\n\n| component | chaos floor | pairs | pairwise accuracy | direction rule |\n|---|---|---|---|---|\n",
        f.null_decisions
    ));
    for (c, name) in COMPONENTS.iter().enumerate() {
        s.push_str(&format!(
            "| {} | {:.3} | {} | {:.1}% | {:.1}% |\n",
            name,
            f.chaos_floor[c],
            f.pairs_beyond_floor[c],
            100.0 * f.pairwise_accuracy_beyond_floor[c],
            100.0 * f.direction_rule_beyond_floor[c],
        ));
    }
    s.push_str(&format!(
        "\n{} held-out samples, {} held-out decisions; ties within {} (reward-unit return) not ranked; the reward's clip bound on {:.2}% of held-out steps.\n",
        f.samples,
        f.decisions,
        f.tie_tolerance,
        100.0 * f.clip_share
    ));
    s
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::rl::env::SimWindow;

    /// Six 3 s windows: constant links of 6 to 16 Mbit/s, the last two held out.
    fn corpus() -> PreparedCorpus {
        let windows: Vec<SimWindow> = (0..6u64)
            .map(|i| {
                let per_ms = 1 + i % 3; // 12, 24, 36 Mbit/s ...
                let ms: Vec<u64> = (1..=3000).flat_map(|t| vec![t; per_ms as usize]).collect();
                SimWindow::cut(&ms, 0, 3000).unwrap()
            })
            .collect();
        let n = windows.len();
        PreparedCorpus {
            windows: Arc::new(windows),
            names: (0..n).map(|i| format!("w{i}")).collect(),
            labels: vec![0; n],
            memberships: ndarray::Array2::ones((n, 1)),
            features: ndarray::Array2::zeros((n, 1)),
            train: (0..4).collect(),
            heldout: vec![4, 5],
        }
    }

    fn small(seed: u64) -> FitOptions {
        FitOptions {
            decisions: 12,
            heldout_decisions: 10,
            epochs: 3,
            hidden: vec![16],
            seed,
            ..FitOptions::default()
        }
    }

    #[test]
    fn a_fit_is_deterministic_for_a_seed_and_reports_its_fidelity() {
        let policy = crate::policy::default_policy().unwrap();
        let c = corpus();
        let dir = tempfile::tempdir().unwrap();
        let sha = |seed: u64, name: &str| {
            let mut p = fit(&policy, &c, &small(seed), &mut Quiet).unwrap();
            let (j, w) = super::super::predictor::paths_in(&dir.path().join(name));
            p.save(&j, &w).unwrap();
            p.metadata().clone()
        };
        let a = sha(1, "a");
        assert_eq!(a.weights_sha256, sha(1, "b").weights_sha256);
        assert_ne!(a.weights_sha256, sha(2, "c").weights_sha256);
        let f = &a.fidelity;
        assert_eq!(
            f.decisions, 10,
            "every held-out decision has its 3 branches"
        );
        assert!(f.samples > 30, "{f:?}");
        assert!(
            f.r2_physical[0].is_finite() && f.r2_physical[0] <= 1.0,
            "{f:?}"
        );
        assert!(f.ranked_pairs.iter().all(|&p| p <= 30));
        assert_eq!(a.fit.decisions, 12);
        assert_eq!(a.policy_weights_sha256, policy.metadata().weights_sha256);
        // The paths it was fit on: the default scenario distribution's min
        // RTTs (10-400 ms) and the corpus' rates (12-36 Mbit/s, a flow's
        // anchor below that).
        let r = a.ranges.expect("a fit records its ranges");
        assert!(
            r.min_rtt_ms[0] >= 9.0 && r.min_rtt_ms[1] <= 450.0 && r.min_rtt_ms[0] < r.min_rtt_ms[1],
            "{r:?}"
        );
        assert!(
            r.max_rate_mbps[1] <= 80.0 && r.max_rate_mbps[0] > 0.0,
            "{r:?}"
        );
    }

    #[test]
    fn a_scaled_delay_target_fits_on_the_same_samples_and_is_recorded() {
        let policy = crate::policy::default_policy().unwrap();
        let c = corpus();
        let opts = small(3);
        let (train, held) = simulate_split(&policy, &c, &opts, &mut Quiet).unwrap();
        let direct = fit_samples(&policy, &train, &held, &opts, &mut Quiet).unwrap();
        let scaled = FitOptions {
            delay_target: DelayTarget::Scaled,
            ..opts
        };
        let p = fit_samples(&policy, &train, &held, &scaled, &mut Quiet).unwrap();
        assert_eq!(p.metadata().delay_target, DelayTarget::Scaled);
        let (f, g) = (&p.metadata().fidelity, &direct.metadata().fidelity);
        assert_eq!(f.samples, g.samples, "the same held-out samples");
        assert!(
            f.r2_reward[1].is_finite() && f.r2_physical[1].is_finite(),
            "{f:?}"
        );
        // Throughput and loss do not depend on the delay target.
        assert!(
            (f.r2_reward[0] - g.r2_reward[0]).abs() < 1e-6,
            "{f:?} {g:?}"
        );
        assert_ne!(f.r2_reward[1], g.r2_reward[1]);
        // The network's targets: the delay return over -w, the others as they are.
        let y = network_targets(&train, DelayTarget::Scaled);
        let (w, _) = DelayTarget::scales(&train.x[..INPUTS]);
        assert!(
            (f64::from(y[2]) + f64::from(train.y[2]) / w).abs()
                < 1e-3 * (1.0 + f64::from(y[2]).abs())
        );
        assert_eq!(y[0], train.y[0]);
    }

    #[test]
    fn bad_settings_are_refused_naming_the_field() {
        let policy = crate::policy::default_policy().unwrap();
        for (opts, field) in [
            (
                FitOptions {
                    decisions: 0,
                    ..small(0)
                },
                "--decisions",
            ),
            (
                FitOptions {
                    epochs: 0,
                    ..small(0)
                },
                "--epochs",
            ),
            (
                FitOptions {
                    horizon: Horizon {
                        hold: 60,
                        ..Horizon::default()
                    },
                    ..small(0)
                },
                "--hold",
            ),
            (
                FitOptions {
                    hidden: vec![],
                    ..small(0)
                },
                "--hidden",
            ),
        ] {
            let e = fit(&policy, &corpus(), &opts, &mut Quiet)
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(field), "{e}");
        }
    }

    #[test]
    fn r_squared_is_one_for_a_perfect_prediction_and_zero_for_the_mean() {
        let real = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(r_squared(&real, &real), 1.0);
        assert!(r_squared(&[2.5; 4], &real).abs() < 1e-12);
        assert!(r_squared(&[1.0; 2], &[1.0; 2]).is_nan());
    }
}
