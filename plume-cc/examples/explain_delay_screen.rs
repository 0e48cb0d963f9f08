//! Cheap screens of the delay predictor (issue 16): the rollouts of one
//! `plume-cc explain fit --seed SEED` simulated once and cached, then one
//! delay network per variant fit on the very same samples and scored with
//! the fit's held-out R² (reward units, with the clip counted as `explain
//! fit` does by default, and ms). Only the delay network is fit: the
//! throughput and loss networks do not depend on it, and a third of the
//! training time makes a screen affordable on two shared cores.
//!
//! ```sh
//! cargo build --release -p plume-cc --example explain_delay_screen
//! target/release/examples/explain_delay_screen SEED DECISIONS HELDOUT CACHE VARIANT...
//! ```
//!
//! CACHE is a file: written on the first run, read (and the simulation
//! skipped) on later ones, refused if its seed or sizes differ. A VARIANT
//! is `key=value` pairs joined by `/`: `h=64x64` (hidden widths),
//! `e=40` (epochs), `lr=1e-3`, `cos=1` (cosine decay of the learning rate
//! to 0), `cw=4` (contrast sample weight), `k=1` (ensemble members, each
//! from its own seed, predictions averaged), `mono=1` (monotone head),
//! `dw=0.3` (the contrast loss' weight, as `explain fit`), `wd=0`
//! (weight decay, AdamW), `bs=256` (batch), `hist=1` (the flow's past
//! from the simulator's records), `past=1` (the flow's past as `explain
//! fit --past true` computes it from the observations, live too),
//! `uq=1` (the unclipped queue, [`plume_cc::explain::past::QueuePast`],
//! from the flow's srtt and min RTT as the datapath reports them, live
//! too), `ht=asinh` (a heavy-tail-aware delay target: the network fits
//! `asinh(return / hs)` and `asinh(ms / (10 hs))`, decoded by `sinh`;
//! `hs=1`). Unset keys take `explain fit`'s defaults. Prints one Markdown
//! row per variant: the delay return's R² (reward units and ms, held out
//! and on the training samples) and the held-out pairwise accuracy of
//! the delay return (pairs of a decision's alternatives whose realised
//! returns differ by more than 0.1, as `explain fit` counts them).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use plume_cc::explain::fit::{
    contrast_triplets, decision_rows, mean_std, r_squared, samples, simulate, FitOptions, Quiet,
    Samples, TripletDraw,
};
use plume_cc::explain::past::{PAST_LEN, QUEUE_LEN};
use plume_cc::explain::predictor::{directions, DelayTarget, INPUTS};
use plume_cc::explain::returns::{returns_from, StepParts};
use plume_cc::explain::NULL_BRANCH;
use plume_cc::policy::LoadedPolicy;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{nn, nn::Module, nn::OptimizerConfig, Device, Kind, Tensor};

const MAGIC: u64 = 0x706c_756d_6573_6333;

/// Past-window features per sample (see [`history`]).
const EXTRA: usize = 8;

fn put_f32(w: &mut Vec<u8>, v: &[f32]) {
    w.extend_from_slice(&(v.len() as u64).to_le_bytes());
    for x in v {
        w.extend_from_slice(&x.to_le_bytes());
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn u64(&mut self) -> u64 {
        let (a, b) = self.0.split_at(8);
        self.0 = b;
        u64::from_le_bytes(a.try_into().unwrap())
    }
    fn f32s(&mut self) -> Vec<f32> {
        let n = self.u64() as usize;
        let (a, b) = self.0.split_at(4 * n);
        self.0 = b;
        a.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }
}

/// The parts of [`Samples`] a screen needs: inputs, targets, weights,
/// decision rows (episode, action; u64::MAX when on-policy).
fn encode(s: &Samples, out: &mut Vec<u8>) {
    put_f32(out, &s.x);
    put_f32(out, &s.y);
    put_f32(out, &s.w);
    out.extend_from_slice(&(s.decision.len() as u64).to_le_bytes());
    for d in &s.decision {
        let (e, a) = d.map_or((u64::MAX, 0), |(e, a)| (e as u64, a as u64));
        out.extend_from_slice(&e.to_le_bytes());
        out.extend_from_slice(&a.to_le_bytes());
    }
}

fn decode(r: &mut Reader) -> Samples {
    let mut s = Samples {
        x: r.f32s(),
        y: r.f32s(),
        w: r.f32s(),
        ..Samples::default()
    };
    let n = r.u64() as usize;
    for _ in 0..n {
        let (e, a) = (r.u64(), r.u64());
        s.decision
            .push((e != u64::MAX).then_some((e as usize, a as usize)));
    }
    s
}

/// One split's samples with their extra inputs per row: [`history`]
/// ([`EXTRA`]), the live past ([`PAST_LEN`]) and the unclipped queue
/// ([`QUEUE_LEN`]).
struct Split {
    s: Samples,
    hist: Vec<f32>,
    past: Vec<f32>,
    queue: Vec<f32>,
}

impl Split {
    fn encode(&self, out: &mut Vec<u8>) {
        encode(&self.s, out);
        put_f32(out, &self.hist);
        put_f32(out, &self.past);
        put_f32(out, &self.queue);
    }

    fn decode(r: &mut Reader) -> Self {
        let s = decode(r);
        Split {
            s,
            hist: r.f32s(),
            past: r.f32s(),
            queue: r.f32s(),
        }
    }
}

/// What the flow's own past shows beyond the observation's 8 intervals,
/// from the steps before `step`: the discounted mean queueing delay of the
/// last 50 intervals (ms), its max over them and over the whole past, the
/// mean over the last 10, the mean goodput (Mbit/s) and loss rate over the
/// last 50, the discounted delay part (reward units, clip counted), and the
/// flow's age (seconds at 20 ms).
fn history(parts: &[StepParts], step: usize, gamma: f64) -> [f32; EXTRA] {
    let all = &parts[..step.min(parts.len())];
    let past = &all[all.len().saturating_sub(50)..];
    let last10 = &all[all.len().saturating_sub(10)..];
    if past.is_empty() {
        return [0.0; EXTRA];
    }
    let (mut num, mut den, mut dr) = (0.0, 0.0, 0.0);
    for (j, p) in past.iter().rev().enumerate() {
        let g = gamma.powi(j as i32);
        num += g * p.qdelay_ms;
        dr += g * (p.delay + p.clip);
        den += g;
    }
    let mean = |v: &[StepParts], f: &dyn Fn(&StepParts) -> f64| {
        v.iter().map(f).sum::<f64>() / v.len() as f64
    };
    let max = |v: &[StepParts]| v.iter().map(|p| p.qdelay_ms).fold(0.0, f64::max);
    [
        (num / den) as f32,
        max(past) as f32,
        max(all) as f32,
        mean(last10, &|p| p.qdelay_ms) as f32,
        mean(past, &|p| p.mbps) as f32,
        mean(past, &|p| p.loss_rate) as f32,
        (dr / den) as f32,
        step as f32 / 50.0,
    ]
}

/// `explain::fit`'s simulation of one split ([`simulate`], then the same
/// samples in the same order), with [`history`] per sample.
#[allow(clippy::too_many_arguments)]
fn simulate_with_history(
    policy: &LoadedPolicy,
    corpus: &plume_cc::rl::corpus::PreparedCorpus,
    pick: &[usize],
    decisions: usize,
    opts: &FitOptions,
    seed: u64,
    null: bool,
) -> Result<Split, Box<dyn std::error::Error>> {
    let traj = simulate(
        policy, corpus, pick, decisions, opts, seed, null, &mut Quiet, "",
    )?;
    let s = samples(
        &traj,
        &opts.horizon,
        opts.contrast_weight,
        opts.delay_counts_clip,
        false,
    );
    let (mut h, mut past, mut queue) = (Vec::new(), Vec::new(), Vec::new());
    for t in &traj {
        for k in &t.kept {
            let r = returns_from(&t.parts, k.step, opts.horizon.steps, opts.horizon.gamma);
            if r.steps < opts.horizon.steps || t.branch.action == NULL_BRANCH {
                continue;
            }
            h.extend_from_slice(&history(&t.parts, k.step, opts.horizon.gamma));
            past.extend_from_slice(&k.past);
            queue.extend_from_slice(&k.queue);
        }
    }
    assert_eq!(h.len(), s.len() * EXTRA);
    assert_eq!(queue.len(), s.len() * QUEUE_LEN);
    Ok(Split {
        s,
        hist: h,
        past,
        queue,
    })
}

fn load_or_simulate(
    cache: &Path,
    key: [u64; 3],
    opts: &FitOptions,
) -> Result<(Split, Split), Box<dyn std::error::Error>> {
    if cache.exists() {
        let mut bytes = Vec::new();
        std::fs::File::open(cache)?.read_to_end(&mut bytes)?;
        let mut r = Reader(&bytes);
        let found = [r.u64(), r.u64(), r.u64(), r.u64()];
        if found != [MAGIC, key[0], key[1], key[2]] {
            return Err(format!("{}: cache of another seed or size", cache.display()).into());
        }
        let train = Split::decode(&mut r);
        let held = Split::decode(&mut r);
        return Ok((train, held));
    }
    let policy = LoadedPolicy::load_or_default(Path::new("policies/default"))?;
    let corpus =
        plume_cc::rl::corpus::prepare_corpus(Path::new("/work/shared/traces/mahimahi"), 10_000, 5)?;
    let t = std::time::Instant::now();
    let train = simulate_with_history(
        &policy,
        &corpus,
        &corpus.train,
        opts.decisions,
        opts,
        opts.seed,
        false,
    )?;
    let held = simulate_with_history(
        &policy,
        &corpus,
        &corpus.heldout,
        opts.heldout_decisions,
        opts,
        opts.seed.wrapping_add(1),
        true,
    )?;
    eprintln!("simulated in {:.0} s", t.elapsed().as_secs_f64());
    let mut out = Vec::new();
    for k in [MAGIC, key[0], key[1], key[2]] {
        out.extend_from_slice(&k.to_le_bytes());
    }
    train.encode(&mut out);
    held.encode(&mut out);
    std::fs::File::create(cache)?.write_all(&out)?;
    Ok((train, held))
}

#[derive(Clone, Debug)]
struct Variant {
    hidden: Vec<i64>,
    epochs: usize,
    lr: f64,
    cosine: bool,
    contrast_weight: f32,
    members: usize,
    monotone: bool,
    difference_weight: f64,
    weight_decay: f64,
    batch: usize,
    target: DelayTarget,
    /// With a log target: Duan's smearing, the decoded prediction times
    /// the training mean of exp(residual), so that it estimates the mean
    /// rather than the geometric mean.
    smear: bool,
    /// The flow's past beyond the observation ([`history`]) as inputs.
    hist: bool,
    /// The flow's past as `explain fit --past true` computes it.
    past: bool,
    /// The unclipped queue ([`plume_cc::explain::past::QueuePast`]).
    queue: bool,
    /// Heavy-tail target: asinh of the delay return over `hs` (and of the
    /// ms mean over 10 `hs`).
    asinh: bool,
    hs: f64,
}

impl Variant {
    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error>> {
        let mut v = Variant {
            hidden: vec![64, 64],
            epochs: 40,
            lr: 1e-3,
            cosine: false,
            contrast_weight: 4.0,
            members: 1,
            monotone: false,
            difference_weight: 0.3,
            weight_decay: 0.0,
            batch: 256,
            target: DelayTarget::Direct,
            smear: false,
            hist: false,
            past: false,
            queue: false,
            asinh: false,
            hs: 1.0,
        };
        for kv in s.split('/').filter(|p| !p.is_empty()) {
            let (k, val) = kv.split_once('=').ok_or("key=value")?;
            match k {
                "h" => v.hidden = val.split('x').map(str::parse).collect::<Result<_, _>>()?,
                "e" => v.epochs = val.parse()?,
                "lr" => v.lr = val.parse()?,
                "cos" => v.cosine = val == "1",
                "cw" => v.contrast_weight = val.parse()?,
                "k" => v.members = val.parse()?,
                "mono" => v.monotone = val == "1",
                "dw" => v.difference_weight = val.parse()?,
                "wd" => v.weight_decay = val.parse()?,
                "bs" => v.batch = val.parse()?,
                "tgt" => v.target = <DelayTarget as clap::ValueEnum>::from_str(val, true)?,
                "smear" => v.smear = val == "1",
                "hist" => v.hist = val == "1",
                "past" => v.past = val == "1",
                "uq" => v.queue = val == "1",
                "ht" => v.asinh = val == "asinh",
                "hs" => v.hs = val.parse()?,
                _ => return Err(format!("unknown key {k}").into()),
            }
        }
        Ok(v)
    }
}

/// The delay head: plain, or monotone in the multiplier (as
/// `explain::predictor::head` with the delay's directions).
fn forward(
    net: &nn::Sequential,
    z: &Tensor,
    log2m: &Tensor,
    monotone: bool,
    dir: [f32; 2],
) -> Tensor {
    if !monotone {
        return net.forward(z);
    }
    let rows = z.size()[0];
    let blind = Tensor::cat(
        &[
            z.narrow(1, 0, z.size()[1] - 1),
            Tensor::zeros([rows, 1], (Kind::Float, Device::Cpu)),
        ],
        1,
    );
    let out = net.forward(&blind);
    let dir = Tensor::from_slice(&dir).view([1, 2]);
    out.narrow(1, 0, 2)
        + (log2m.clamp_min(0.0) * out.narrow(1, 2, 2).softplus()
            + log2m.clamp_max(0.0) * out.narrow(1, 4, 2).softplus())
            * dir
}

struct Standard {
    in_mean: Tensor,
    in_std: Tensor,
    out_mean: Tensor,
    out_std: Tensor,
}

/// The network's input rows of `sp`: its [`INPUTS`], with the extras `v`
/// asks for put before the log2 multiplier, which stays last.
fn augmented(sp: &Split, v: &Variant) -> Vec<f32> {
    if !(v.hist || v.past || v.queue) {
        return sp.s.x.clone();
    }
    let s = &sp.s;
    let mut out = Vec::new();
    for r in 0..s.len() {
        let x = &s.x[r * INPUTS..(r + 1) * INPUTS];
        out.extend_from_slice(&x[..INPUTS - 1]);
        if v.hist {
            let e = &sp.hist[r * EXTRA..(r + 1) * EXTRA];
            // Queues and rates are heavy-tailed: log them.
            out.extend(e[..5].iter().map(|v| v.max(0.0).ln_1p()));
            out.extend_from_slice(&e[5..]);
        }
        if v.past {
            out.extend_from_slice(&sp.past[r * PAST_LEN..(r + 1) * PAST_LEN]);
        }
        if v.queue {
            out.extend_from_slice(&sp.queue[r * QUEUE_LEN..(r + 1) * QUEUE_LEN]);
        }
        out.push(x[INPUTS - 1]);
    }
    out
}

fn inputs(xa: &[f32], st: &Standard) -> (Tensor, Tensor) {
    let width = st.in_mean.size()[1];
    let x = Tensor::from_slice(xa).view([-1, width]);
    let log2m = x.narrow(1, width - 1, 1).copy();
    (((x - &st.in_mean) / &st.in_std).clamp(-10.0, 10.0), log2m)
}

/// Fits one delay network of `v` with `seed` on the network targets
/// `targets` (rows of 2); returns its predictions in the targets' units
/// on `held` and on `train`.
#[allow(clippy::too_many_arguments)]
fn member(
    v: &Variant,
    train: &Samples,
    targets: &[f32],
    (train_x, held_x): (&[f32], &[f32]),
    st: &Standard,
    seed: u64,
) -> (Tensor, Tensor) {
    tch::manual_seed(seed as i64);
    let n = train.len() as i64;
    let (x, log2m) = inputs(train_x, st);
    let y = Tensor::from_slice(targets).view([n, 2]);
    let y = (y - &st.out_mean) / &st.out_std;
    let w: Vec<f32> = train
        .decision
        .iter()
        .map(|d| if d.is_some() { v.contrast_weight } else { 1.0 })
        .collect();
    let w = Tensor::from_slice(&w).view([n, 1]);
    let vs = nn::VarStore::new(Device::Cpu);
    let mut widths = vec![st.in_mean.size()[1]];
    widths.extend(&v.hidden);
    widths.push(if v.monotone { 6 } else { 2 });
    let mut net = nn::seq();
    for i in 0..widths.len() - 1 {
        net = net.add(nn::linear(
            vs.root() / i,
            widths[i],
            widths[i + 1],
            Default::default(),
        ));
        if i + 2 < widths.len() {
            net = net.add_fn(|t| t.relu());
        }
    }
    let mut opt = if v.weight_decay > 0.0 {
        nn::AdamW {
            wd: v.weight_decay,
            ..Default::default()
        }
        .build(&vs, v.lr)
        .unwrap()
    } else {
        nn::Adam::default().build(&vs, v.lr).unwrap()
    };
    let (triplets, diff_scale) = contrast_triplets(train, &y);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xf17);
    let mut order: Vec<i64> = (0..n).collect();
    let mut draw = TripletDraw::new(triplets.len(), (v.batch / 3).max(1));
    let steps = v.epochs * train.len().div_ceil(v.batch);
    let mut step = 0usize;
    for _ in 0..v.epochs {
        order.shuffle(&mut rng);
        for chunk in order.chunks(v.batch) {
            if v.cosine {
                let f = 0.5 * (1.0 + (std::f64::consts::PI * step as f64 / steps as f64).cos());
                opt.set_lr(v.lr * f);
            }
            step += 1;
            let idx = Tensor::from_slice(chunk);
            let pred = forward(
                &net,
                &x.index_select(0, &idx),
                &log2m.index_select(0, &idx),
                v.monotone,
                directions(1, v.target),
            );
            let mut loss = ((pred - y.index_select(0, &idx)).square() * w.index_select(0, &idx))
                .mean(Kind::Float);
            if v.difference_weight > 0.0 {
                let t = draw.next(&triplets, &mut rng);
                let fwd = |r: &Tensor| {
                    forward(
                        &net,
                        &x.index_select(0, r),
                        &log2m.index_select(0, r),
                        v.monotone,
                        directions(1, v.target),
                    )
                };
                let r0 = t.select(1, 0);
                let p0 = fwd(&r0);
                let y0 = y.index_select(0, &r0);
                for k in [1, 2] {
                    let r = t.select(1, k);
                    let dp = fwd(&r) - &p0;
                    let dy = y.index_select(0, &r) - &y0;
                    loss +=
                        ((dp - dy) / &diff_scale).square().mean(Kind::Float) * v.difference_weight;
                }
            }
            opt.backward_step(&loss);
        }
    }
    let predict = |xa: &[f32]| {
        let (xs, ls) = inputs(xa, st);
        tch::no_grad(|| forward(&net, &xs, &ls, v.monotone, directions(1, v.target))) * &st.out_std
            + &st.out_mean
    };
    (predict(held_x), predict(train_x))
}

fn column(t: &Tensor, c: i64) -> Vec<f64> {
    Vec::<f32>::try_from(t.select(1, c).contiguous())
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect()
}

fn real(s: &Samples, col: usize) -> Vec<f64> {
    (0..s.len()).map(|i| f64::from(s.y[i * 6 + col])).collect()
}

/// The held-out pairwise accuracy of the delay return: over every
/// decision with its three alternatives, the pairs whose realised returns
/// differ by more than 0.1, the share the predictions `pred` order alike.
fn pairwise(held: &Samples, pred: &[f64]) -> f64 {
    let (mut pairs, mut right) = (0usize, 0usize);
    for rows in decision_rows(held) {
        for (a, b) in [(0, 1), (0, 2), (1, 2)] {
            let d = f64::from(held.y[rows[a] * 6 + 2]) - f64::from(held.y[rows[b] * 6 + 2]);
            if d.abs() <= 0.1 {
                continue;
            }
            pairs += 1;
            if (pred[rows[a]] - pred[rows[b]]) * d > 0.0 {
                right += 1;
            }
        }
    }
    100.0 * right as f64 / pairs.max(1) as f64
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seed: u64 = args[0].parse()?;
    let decisions: usize = args[1].parse()?;
    let heldout: usize = args[2].parse()?;
    let cache = PathBuf::from(&args[3]);
    tch::set_num_threads(1);
    let opts = FitOptions {
        decisions,
        heldout_decisions: heldout,
        seed,
        ..FitOptions::default()
    };
    let (train_split, held_split) =
        load_or_simulate(&cache, [seed, decisions as u64, heldout as u64], &opts)?;
    let (train, held) = (&train_split.s, &held_split.s);
    println!(
        "seed {seed}: {} training samples ({decisions} decisions), {} held-out ({heldout} decisions)\n",
        train.len(),
        held.len()
    );
    println!("| seed | variant | R² delay (held out) | R² delay ms (held out) | R² delay (train) | R² delay ms (train) | pairwise delay % | fit s |");
    println!("|---|---|---|---|---|---|---|---|");
    for spec in &args[4..] {
        let v = Variant::parse(spec)?;
        let t = std::time::Instant::now();
        let targets: Vec<f32> = (0..train.len())
            .flat_map(|r| {
                let (a, b) = v.target.encode(
                    &train.x[r * INPUTS..(r + 1) * INPUTS],
                    f64::from(train.y[r * 6 + 2]),
                    f64::from(train.y[r * 6 + 3]),
                );
                if v.asinh {
                    [
                        (a / v.hs).asinh() as f32,
                        (b / (10.0 * v.hs)).asinh() as f32,
                    ]
                } else {
                    [a as f32, b as f32]
                }
            })
            .collect();
        let (train_x, held_x) = (augmented(&train_split, &v), augmented(&held_split, &v));
        let width = train_x.len() / train.len();
        let mut in_mean = vec![0f32; width];
        let mut in_std = vec![0f32; width];
        for c in 0..width {
            (in_mean[c], in_std[c]) = mean_std(&train_x, width, c);
        }
        let (m0, s0) = mean_std(&targets, 2, 0);
        let (m1, s1) = mean_std(&targets, 2, 1);
        let st = Standard {
            in_mean: Tensor::from_slice(&in_mean).view([1, width as i64]),
            in_std: Tensor::from_slice(&in_std).view([1, width as i64]),
            out_mean: Tensor::from_slice(&[m0, m1]).view([1, 2]),
            out_std: Tensor::from_slice(&[s0, s1]).view([1, 2]),
        };
        let (mut ph, mut pt): (Option<Tensor>, Option<Tensor>) = (None, None);
        for k in 0..v.members {
            let (h, tr) = member(
                &v,
                train,
                &targets,
                (&train_x, &held_x),
                &st,
                seed + 1000 * k as u64,
            );
            ph = Some(ph.map_or(h.shallow_clone(), |p| p + &h));
            pt = Some(pt.map_or(tr.shallow_clone(), |p| p + &tr));
        }
        let k = v.members as f64;
        let (ph, pt) = (ph.unwrap() / k, pt.unwrap() / k);
        let (pt0, pt1) = (column(&pt, 0), column(&pt, 1));
        // Duan's smearing factors, from the training residuals in log units.
        let smear = |p: &[f64], col: usize| {
            let m = p
                .iter()
                .enumerate()
                .map(|(r, q)| (f64::from(targets[r * 2 + col]) - q).exp())
                .sum::<f64>()
                / p.len() as f64;
            if v.smear && v.target == DelayTarget::ScaledLog {
                m
            } else {
                1.0
            }
        };
        let (f0, f1) = (smear(&pt0, 0), smear(&pt1, 1));
        // Decoded (reward units, ms); the ms mean is never below 0 (as
        // `Predictors` clamps it).
        let decoded = |s: &Samples, p0: &[f64], p1: &[f64]| -> (Vec<f64>, Vec<f64>) {
            (0..s.len())
                .map(|r| {
                    let x = &s.x[r * INPUTS..(r + 1) * INPUTS];
                    let (a, b) = if v.asinh {
                        v.target
                            .decode(x, v.hs * p0[r].sinh(), 10.0 * v.hs * p1[r].sinh())
                    } else if v.target == DelayTarget::ScaledLog {
                        // exp(t) * factor - 1 in place of exp_m1(t)
                        let (w, rtt) = DelayTarget::scales(x);
                        (
                            -w * (p0[r].exp() * f0 - 1.0),
                            rtt * (p1[r].exp() * f1 - 1.0),
                        )
                    } else {
                        v.target.decode(x, p0[r], p1[r])
                    };
                    (a, b.max(0.0))
                })
                .unzip()
        };
        let (hr, hm) = decoded(held, &column(&ph, 0), &column(&ph, 1));
        let (tr, tm) = decoded(train, &pt0, &pt1);
        println!(
            "| {seed} | `{spec}` | {:.3} | {:.3} | {:.3} | {:.3} | {:.1} | {:.0} |",
            r_squared(&hr, &real(held, 2)),
            r_squared(&hm, &real(held, 3)),
            r_squared(&tr, &real(train, 2)),
            r_squared(&tm, &real(train, 3)),
            pairwise(held, &hr),
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
