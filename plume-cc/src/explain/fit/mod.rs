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
//!
//! In three parts: `samples.rs` (the rollouts as matrices, and the targets
//! the networks see), `fidelity.rs` (the held-out scores and their table)
//! and, here, the settings, the simulation and the training of the
//! networks.

mod fidelity;
mod samples;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{nn, nn::Module, nn::OptimizerConfig, Device, Kind, Tensor};

use super::predictor::{
    directions, head, input_len, new_metadata, DelayTarget, FitInfo, InputRanges, Predictors,
};
use super::rollout::{decision_branches, draw_episodes, run_branches, Trajectory};
use super::{ExplainError, Horizon, COMPONENTS};

use crate::policy::LoadedPolicy;
use crate::rl::corpus::PreparedCorpus;
use crate::rl::scenario::ScenarioSpec;
pub use fidelity::{fidelity, fidelity_table, r_squared};
pub use samples::mean_std;
pub use samples::{decision_rows, network_targets, samples, Samples};

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
    /// The networks also read the flow's past ([`super::past`]).
    pub past: bool,
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
            past: false,
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

/// Simulates `decisions` decisions on the windows `pick` of `corpus` and
/// returns their trajectories (also the delay screen's, in
/// `examples/explain_delay_screen.rs`).
#[allow(clippy::too_many_arguments)]
pub fn simulate(
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
        opts.past,
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
        opts.past,
    );
    Ok((train, held))
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
    meta.past = opts.past;
    let width = input_len(opts.past);
    if train.width != width || held.width != width {
        return Err(ExplainError::Range {
            field: "samples",
            allowed: "rows as wide as the fit's inputs (with or without the past)",
            found: format!(
                "{} and {} values per row, expected {width}",
                train.width, held.width
            ),
        });
    }
    meta.ranges = Some(InputRanges::of_inputs(&train.x, width));
    meta.in_mean = vec![0.0; width];
    meta.in_std = vec![1.0; width];
    for c in 0..width {
        let (m, s) = mean_std(&train.x, width, c);
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

/// The contrast loss' triplets (each decision's rows: the null branch and
/// the two contrasting clamps, as [`decision_rows`] gives them) and the
/// spread of their differences in the standardised targets `y` (`[n, 6]`):
/// the root mean square per output, at least 1e-3, that scales the
/// contrast loss (ones where there are no triplets). Public so that the
/// research examples fit exactly as `explain fit` does.
pub fn contrast_triplets(s: &Samples, y: &Tensor) -> (Vec<[i64; 3]>, Tensor) {
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
    (triplets, diff_scale)
}

/// Draws the contrast loss' triplets in batches: every pass over them in a
/// fresh shuffled order, so each triplet is drawn once per pass, and a
/// batch may run across two passes. The caller's generator also orders
/// the samples, so the draws interleave with that in a fixed way (the fit
/// is deterministic for a seed).
#[derive(Debug)]
pub struct TripletDraw {
    order: Vec<usize>,
    at: usize,
    batch: usize,
}

impl TripletDraw {
    /// A draw over `n` triplets, `batch` at a time.
    pub fn new(n: usize, batch: usize) -> Self {
        Self {
            order: (0..n).collect(),
            at: 0,
            batch,
        }
    }

    /// The next batch of `triplets` (the `n` given to [`TripletDraw::new`],
    /// at least one) as a `[batch, 3]` tensor of sample rows.
    pub fn next(&mut self, triplets: &[[i64; 3]], rng: &mut impl rand::Rng) -> Tensor {
        let mut rows = Vec::with_capacity(self.batch * 3);
        for _ in 0..self.batch {
            if self.at == 0 {
                self.order.shuffle(rng);
            }
            rows.extend_from_slice(&triplets[self.order[self.at]]);
            self.at = (self.at + 1) % triplets.len();
        }
        Tensor::from_slice(&rows).view([-1, 3])
    }
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
    let width = s.width as i64;
    let x = Tensor::from_slice(&s.x).view([n, width]);
    let log2m = x.narrow(1, width - 1, 1).copy();
    let in_mean = Tensor::from_slice(&meta.in_mean).view([1, width]);
    let in_std = Tensor::from_slice(&meta.in_std).view([1, width]);
    let x = ((x - in_mean) / in_std).clamp(-10.0, 10.0);
    let out_mean: Vec<f32> = meta.out_mean.iter().flatten().copied().collect();
    let out_std: Vec<f32> = meta.out_std.iter().flatten().copied().collect();
    let y = (Tensor::from_slice(targets).view([n, 6]) - Tensor::from_slice(&out_mean).view([1, 6]))
        / Tensor::from_slice(&out_std).view([1, 6]);
    let w = Tensor::from_slice(&s.w).view([n, 1]);
    let vs = nn::VarStore::new(Device::Cpu);
    let mut nets = Vec::new();
    for c in COMPONENTS {
        let mut widths = vec![width];
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
    let (triplets, diff_scale) = contrast_triplets(s, &y);
    let mut draw = TripletDraw::new(triplets.len(), (opts.batch / 3).max(1));
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
                let t = draw.next(&triplets, &mut rng);
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
        let (w, _) = DelayTarget::scales(&train.x[..train.width]);
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
