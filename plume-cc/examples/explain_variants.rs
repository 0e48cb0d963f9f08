//! Why the delay predictor is hard to fit, and which delay target fits it
//! best: the rollouts of one `plume-cc explain fit` simulated once, the
//! held-out delay returns described, then one fit per variant on the very
//! same samples, each measured with the fit's own held-out protocol.
//!
//! ```sh
//! cargo run --release -p plume-cc --example explain_variants -- \
//!     SEED DECISIONS HELDOUT EPOCHS [VARIANTS] [TRACES] [POLICY]
//! ```
//!
//! (defaults: every variant, the corpus /work/shared/traces/mahimahi and
//! policies/default). VARIANTS is a comma-separated list of
//! `HEADS:TARGET[+clip]`, HEADS `plain` or `monotone`, TARGET `direct`,
//! `scaled` or `scaled-log`; `+clip` counts the reward's clip as part of
//! the delay component (the clip binds only on deep queues), in training
//! and in the held-out fidelity alike. The simulation is most of a fit's time; sharing it
//! makes the variants comparable sample for sample and affordable. Prints
//! Markdown: the diagnostics, then a row per variant (docs/TRAINING.md,
//! "Why delay is hard").

use std::path::PathBuf;

use plume_cc::explain::fit::{fit_samples, simulate_split, FitOptions, Quiet, Samples};
use plume_cc::explain::predictor::{DelayTarget, INPUTS};
use plume_cc::explain::Horizon;
use plume_cc::policy::observation::GLOBAL_FEATURES;
use plume_cc::policy::LoadedPolicy;

fn r2(pred: &[f64], real: &[f64]) -> f64 {
    plume_cc::explain::fit::r_squared(pred, real)
}

/// The project's one quantile convention (type 7, `plume_cc::stats`).
fn quantile(v: &[f64], q: f64) -> f64 {
    plume_cc::stats::quantile_of(&mut v.to_vec(), q)
}

/// Share of the total sum of squares (around the mean) carried by the
/// `top` most distant values.
fn tail_share(v: &[f64], top: f64) -> f64 {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let mut d: Vec<f64> = v.iter().map(|x| (x - m).powi(2)).collect();
    d.sort_by(|a, b| b.total_cmp(a));
    let k = ((v.len() as f64) * top).ceil() as usize;
    d[..k].iter().sum::<f64>() / d.iter().sum::<f64>()
}

fn column(s: &Samples, col: usize) -> Vec<f64> {
    (0..s.len()).map(|i| f64::from(s.y[i * 6 + col])).collect()
}

fn diagnostics(held: &Samples, horizon: &Horizon) {
    let reward = column(held, 2);
    let ms = column(held, 3);
    println!("### Held-out delay returns ({} samples)\n", held.len());
    println!("| target | p50 | p90 | p99 | max | SS share of top 1% | of top 5% |");
    println!("|---|---|---|---|---|---|---|");
    for (name, v) in [("return (reward units)", &reward), ("mean (ms)", &ms)] {
        let mag: Vec<f64> = v.iter().map(|x| x.abs()).collect();
        println!(
            "| {name} | {:.3} | {:.3} | {:.3} | {:.3} | {:.2} | {:.2} |",
            quantile(&mag, 0.5),
            quantile(&mag, 0.9),
            quantile(&mag, 0.99),
            quantile(&mag, 1.0),
            tail_share(v, 0.01),
            tail_share(v, 0.05)
        );
    }
    // The scales the observation knows: how much of the spread they carry.
    let scaled: Vec<(f64, f64)> = (0..held.len())
        .map(|i| {
            DelayTarget::Scaled.encode(&held.x[i * INPUTS..(i + 1) * INPUTS], reward[i], ms[i])
        })
        .collect();
    let q: Vec<f64> = scaled.iter().map(|s| s.0).collect();
    let q_ms: Vec<f64> = scaled.iter().map(|s| s.1).collect();
    println!(
        "\nQueue in min RTTs (the scaled target): p50 {:.3}, p99 {:.3}, max {:.3} (return units); SS share of the top 1% {:.2}; mean ratio p99 {:.3}, max {:.3}\n",
        quantile(&q, 0.5),
        quantile(&q, 0.99),
        quantile(&q, 1.0),
        tail_share(&q, 0.01),
        quantile(&q_ms, 0.99),
        quantile(&q_ms, 1.0),
    );
    // Persistence: the queue of the last interval held for the horizon.
    let wsum: f64 = (0..horizon.steps)
        .map(|k| horizon.gamma.powi(k as i32))
        .sum();
    let srtt_excess = GLOBAL_FEATURES.len() + 2;
    let (mut pr, mut pm) = (Vec::new(), Vec::new());
    for i in 0..held.len() {
        let x = &held.x[i * INPUTS..(i + 1) * INPUTS];
        let now = f64::from(x[srtt_excess]);
        let (r, m) = DelayTarget::Scaled.decode(x, now * wsum, now);
        pr.push(r);
        pm.push(m);
    }
    println!(
        "Persistence (the last interval's srtt_excess held for the horizon, scaled by the known delay weight and min RTT): R² {:.3} (reward units), {:.3} (ms)\n",
        r2(&pr, &reward),
        r2(&pm, &ms)
    );
    let unknown = (0..held.len())
        .filter(|&i| held.x[i * INPUTS] <= 0.0)
        .count();
    println!(
        "Samples whose observation has no min RTT yet: {unknown} ({:.1}%)\n",
        100.0 * unknown as f64 / held.len() as f64
    );
}

/// How well any predictor could do: the simulated link and CUBIC are
/// chaotic, so the realised return after a state is one draw of many. The
/// null contrast (the clamp times 2^0.05) is a second draw after the same
/// state; half the mean squared difference of the two estimates the
/// variance of a draw around its expectation, and `1 - that / the variance
/// of the held-out returns` the R² of a predictor that knew the expectation
/// exactly.
fn ceiling(held: &Samples) {
    let rows = plume_cc::explain::fit::decision_rows(held);
    println!(
        "| component | noise ceiling R² (reward units) | noise ceiling R² (physical) | decisions |"
    );
    println!("|---|---|---|---|");
    for (c, name) in plume_cc::explain::COMPONENTS.iter().enumerate() {
        let mut out = Vec::new();
        for (col, null) in [(2 * c, &held.null), (2 * c + 1, &held.null_physical)] {
            let all = column(held, col);
            let m = all.iter().sum::<f64>() / all.len() as f64;
            let var = all.iter().map(|x| (x - m).powi(2)).sum::<f64>() / all.len() as f64;
            let d: Vec<f64> = rows
                .iter()
                .filter_map(|r| {
                    let e = held.decision[r[0]]?.0;
                    Some(null.get(&e)?[c] - f64::from(held.y[r[0] * 6 + col]))
                })
                .collect();
            let noise = d.iter().map(|x| x * x).sum::<f64>() / (2.0 * d.len().max(1) as f64);
            out.push((1.0 - noise / var, d.len()));
        }
        println!(
            "| {name} | {:.3} | {:.3} | {} |",
            out[0].0, out[1].0, out[0].1
        );
    }
    println!();
}

/// `s` with the clip's return counted in the delay component.
fn with_clip(s: &Samples) -> Samples {
    let mut t = s.clone();
    for (r, row) in t.y.chunks_exact_mut(6).enumerate() {
        row[2] += s.clip[r];
    }
    t
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let seed: u64 = args.next().map_or(Ok(0), |v| v.parse())?;
    let decisions: usize = args.next().map_or(Ok(4000), |v| v.parse())?;
    let heldout: usize = args.next().map_or(Ok(600), |v| v.parse())?;
    let epochs: usize = args.next().map_or(Ok(40), |v| v.parse())?;
    let variants = args.next().unwrap_or_else(|| {
        "plain:direct,plain:scaled,plain:scaled-log,monotone:direct,monotone:scaled,monotone:scaled-log".into()
    });
    let traces = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "/work/shared/traces/mahimahi".into()),
    );
    let policy_path = PathBuf::from(args.next().unwrap_or_else(|| "policies/default".into()));
    tch::set_num_threads(1);
    let policy = LoadedPolicy::load_or_default(&policy_path)?;
    let corpus = plume_cc::rl::corpus::prepare_corpus(&traces, 10_000, 5)?;
    // Unclipped samples: `+clip` variants add the clip's part themselves.
    let base = FitOptions {
        delay_counts_clip: false,
        decisions,
        heldout_decisions: heldout,
        epochs,
        seed,
        ..FitOptions::default()
    };
    let t = std::time::Instant::now();
    let (train, held) = simulate_split(&policy, &corpus, &base, &mut Quiet)?;
    println!(
        "seed {seed}: {} training samples ({decisions} decisions), {} held-out samples ({heldout} decisions), simulated in {:.0} s\n",
        train.len(),
        held.len(),
        t.elapsed().as_secs_f64()
    );
    diagnostics(&held, &base.horizon);
    ceiling(&held);
    let clipped = (with_clip(&train), with_clip(&held));
    let delay_clip = column(&clipped.1, 2);
    let mag: Vec<f64> = delay_clip.iter().map(|x| x.abs()).collect();
    println!(
        "Delay return with the clip counted in it: p99 {:.3}, max {:.3}, SS share of the top 1% {:.2}\n",
        quantile(&mag, 0.99),
        quantile(&mag, 1.0),
        tail_share(&delay_clip, 0.01)
    );
    println!("| seed | heads | delay target | R² thr | R² thr Mbit/s | R² delay | R² delay ms | R² loss | pairwise thr / delay / loss | beyond floor thr / delay / loss | order thr / delay / loss | fit s |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for v in variants.split(',') {
        let (heads, rest) = v
            .split_once(':')
            .ok_or("a variant is HEADS:TARGET[+clip]")?;
        let (target_name, clip) = match rest.strip_suffix("+clip") {
            Some(t) => (t, true),
            None => (rest, false),
        };
        let monotone = heads == "monotone";
        let target = <DelayTarget as clap::ValueEnum>::from_str(target_name, true)?;
        {
            let opts = FitOptions {
                monotone,
                delay_target: target,
                delay_counts_clip: clip,
                ..base.clone()
            };
            let t = std::time::Instant::now();
            let (tr, he) = if clip {
                (&clipped.0, &clipped.1)
            } else {
                (&train, &held)
            };
            let p = fit_samples(&policy, tr, he, &opts, &mut Quiet)?;
            let f = &p.metadata().fidelity;
            let pct = |v: [f64; 3]| {
                format!(
                    "{:.1} / {:.1} / {:.1}",
                    100.0 * v[0],
                    100.0 * v[1],
                    100.0 * v[2]
                )
            };
            println!(
                "| {seed} | {} | {target:?}{} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {} | {} | {:.0} |",
                if monotone { "monotone" } else { "plain" },
                if clip { " + clip" } else { "" },
                f.r2_reward[0],
                f.r2_physical[0],
                f.r2_reward[1],
                f.r2_physical[1],
                f.r2_reward[2],
                pct(f.pairwise_accuracy),
                pct(f.pairwise_accuracy_beyond_floor),
                pct(f.order_accuracy),
                t.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}
