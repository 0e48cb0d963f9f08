//! Whether the default policy's forward can run in blocks of rows (so that
//! each block's hidden layers stay in the core's caches) and still give the
//! whole batch's actions bit for bit, and what it costs (issue 14, the
//! 10,000-flow control step; docs/BENCHMARKS.md, "Decide step in blocks").
//!
//! Each row's output depends only on its own input row, but libtorch hands
//! the products to MKL's sgemm, whose summation order could depend on the
//! number of rows it is given. This probe compares, bit for bit, every
//! block size's outputs with one call over the whole batch, on the
//! `bench-decide` flows' real observations and on random inputs, times
//! each block size, and counts how many of a learned policy's *targets*
//! differ when its flows are decided in batches of 8 (under 16 rows, where
//! MKL takes another kernel) instead of one batch.
//!
//! Run (no root): `cargo run --release -p plume-cc --example tile_probe [FLOWS] [ITERATIONS]`
//! (default 10000 flows, 200 iterations, one libtorch thread).
#![allow(clippy::needless_range_loop)]

use std::time::Instant;

#[path = "probe_common/mod.rs"]
mod probe_common;
use probe_common::median;

use plume_cc::daemon::bench::synthetic_stats;
use plume_cc::policy::file::default_policy;
use plume_cc::policy::{FlowPolicy, LearnedPolicy, Target, OBSERVATION_LEN};
use plume_cc_common::FlowStats;
use tch::{Kind, Tensor};

/// Real observations of `n` synthetic flows, normalised as the daemon does.
fn inputs(n: usize) -> Tensor {
    probe_common::inputs(n).1
}

fn flat(t: &Tensor) -> Vec<f32> {
    let n = t.numel();
    let mut v = vec![0f32; n];
    t.contiguous().copy_data(&mut v, n);
    v
}

struct Net {
    w: Vec<Tensor>,
    b: Vec<Tensor>,
}

impl Net {
    /// The daemon's spelling over `x` into `h` (one tensor per layer, as
    /// many rows as `x`).
    fn forward(&self, x: &Tensor, h: &[Tensor]) {
        let mut cur = x.shallow_clone();
        for i in 0..3 {
            cur = cur.linear_out(&h[i], &self.w[i], Some(&self.b[i]));
            if i < 2 {
                let _ = cur.tanh_();
            }
        }
    }

    /// The same layers over blocks of `block` rows, each block's layer
    /// outputs in `scratch` (block rows each), the actions into `out`.
    fn forward_blocks(&self, x: &Tensor, block: i64, scratch: &[Tensor], out: &Tensor) {
        let n = x.size()[0];
        let mut s = 0;
        while s < n {
            let b = block.min(n - s);
            let mut cur = x.narrow(0, s, b);
            for i in 0..3 {
                let dst = if i < 2 {
                    scratch[i].narrow(0, 0, b)
                } else {
                    out.narrow(0, s, b)
                };
                cur = cur.linear_out(&dst, &self.w[i], Some(&self.b[i]));
                if i < 2 {
                    let _ = cur.tanh_();
                }
            }
            s += b;
        }
    }
}

/// Whether deciding flows in batches under 16 rows (MKL's other kernel)
/// changes the daemon's *targets*, not only the raw actions' last bits:
/// the same 2,000 flows (the `bench-decide` flows, with varied rates)
/// decided by one [`LearnedPolicy`] in one batch and by policies of 8
/// flows each, over 60 intervals with the one batch's limits fed back to
/// both, counting the raw actions and targets that differ.
fn small_batches_and_targets() {
    let n = 2000;
    let chunk = 8;
    let flows = |n: usize| -> Vec<(u64, FlowStats)> {
        (0..n)
            .map(|i| (1_000_000 + i as u64, synthetic_stats(i)))
            .collect()
    };
    let mut big_flows = flows(n);
    let mut small_flows = flows(n);
    let mut big = LearnedPolicy::new(default_policy().unwrap());
    let mut small: Vec<LearnedPolicy> = (0..n.div_ceil(chunk))
        .map(|_| LearnedPolicy::new(default_policy().unwrap()))
        .collect();
    let (mut raw_differ, mut targets_differ, mut raw_total, mut limited) = (0, 0, 0, 0);
    let (mut cwnd_differ, mut max_cwnd, mut max_pacing_rel) = (0, 0u32, 0f64);
    let mut out = Vec::new();
    let mut small_out = Vec::new();
    for k in 0..60u64 {
        for fl in [&mut big_flows, &mut small_flows] {
            for (i, (_, s)) in fl.iter_mut().enumerate() {
                // Varied rates and RTTs, the same on both sides.
                let segs = 5 + ((i * 7919 + k as usize * 31) % 97) as u32;
                s.delivered = s.delivered.wrapping_add(segs);
                s.rate_delivered = segs * 2;
                s.rate_interval_us = 40_000;
                s.srtt_us = 20_000 + ((i * 104_729 + k as usize * 13) % 30_000) as u32;
            }
        }
        let now = k * 20_000_000 + 1;
        big.decide(now, &big_flows, &mut out).unwrap();
        let big_raw = big.last_batch().unwrap().raw_actions.to_vec();
        for (c, (p, fl)) in small
            .iter_mut()
            .zip(small_flows.chunks_mut(chunk))
            .enumerate()
        {
            p.decide(now, fl, &mut small_out).unwrap();
            let raw = p.last_batch().unwrap().raw_actions;
            let at = c * chunk;
            for (j, t) in small_out.iter().enumerate() {
                raw_total += 2;
                raw_differ += (0..2)
                    .filter(|&a| raw[2 * j + a].to_bits() != big_raw[2 * (at + j) + a].to_bits())
                    .count();
                let b = out[at + j];
                targets_differ += usize::from(*t != b);
                cwnd_differ += usize::from(t.cwnd_clamp_segments != b.cwnd_clamp_segments);
                max_cwnd = max_cwnd.max(t.cwnd_clamp_segments.abs_diff(b.cwnd_clamp_segments));
                max_pacing_rel = max_pacing_rel.max(
                    f64::from(
                        t.max_pacing_bytes_per_sec
                            .abs_diff(b.max_pacing_bytes_per_sec),
                    ) / f64::from(b.max_pacing_bytes_per_sec.max(1)),
                );
                limited += usize::from(*t != Target::UNLIMITED);
            }
        }
        // Both sides are fed the one batch's targets, so their observations
        // stay identical and every difference counted is the kernel's own,
        // not a consequence of an earlier one.
        for fl in [&mut big_flows, &mut small_flows] {
            for ((_, s), t) in fl.iter_mut().zip(&out) {
                s.applied_cwnd_clamp = t.cwnd_clamp_segments;
                s.applied_pacing = t.max_pacing_bytes_per_sec;
            }
        }
    }
    println!(
        "{n} flows over 60 intervals (the one batch's limits fed back to both), batches of {chunk} against one batch: {raw_differ} of {raw_total} raw actions and {targets_differ} of {} targets differ ({limited} of the small batches' targets carry a limit)",
        raw_total / 2
    );
    println!(
        "  of which {cwnd_differ} cwnd clamps (by at most {max_cwnd} segments); pacing caps by at most {:.2e} of the cap",
        max_pacing_rel
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).map_or(10_000, |a| a.parse().unwrap());
    let iters: usize = args.get(2).map_or(200, |a| a.parse().unwrap());
    tch::set_num_threads(1);
    let _g = tch::no_grad_guard();
    let (w, b) = probe_common::actor_layers();
    let net = Net { w, b };
    let opts = (Kind::Float, tch::Device::Cpu);
    let r = n as i64;
    let whole: Vec<Tensor> = [32, 32, 2]
        .iter()
        .map(|&c| Tensor::empty([r, c], opts))
        .collect();
    tch::manual_seed(14);
    let real = inputs(n);
    let random = (Tensor::randn([r, OBSERVATION_LEN as i64], opts) * 3.0).contiguous();
    let blocks = [
        1i64, 2, 3, 7, 16, 64, 100, 256, 500, 512, 1000, 1024, 2048, 4096,
    ];
    for (name, x) in [("real", &real), ("random", &random)] {
        net.forward(x, &whole);
        let want = flat(&whole[2]);
        for &b in &blocks {
            let scratch: Vec<Tensor> = [32, 32]
                .iter()
                .map(|&c| Tensor::empty([b, c], opts))
                .collect();
            let out = Tensor::empty([r, 2], opts);
            net.forward_blocks(x, b, &scratch, &out);
            let got = flat(&out);
            let differ = got
                .iter()
                .zip(&want)
                .filter(|(a, b)| a.to_bits() != b.to_bits())
                .count();
            println!("{name} inputs, blocks of {b:5} rows: {differ} of {} actions differ from one call over {n} rows", want.len());
        }
        // Prefixes of every length up to 300 as whole batches of their own.
        let mut bad = 0;
        let mut differing = Vec::new();
        for m in 1..=300i64.min(r) {
            let h: Vec<Tensor> = [32, 32, 2]
                .iter()
                .map(|&c| Tensor::empty([m, c], opts))
                .collect();
            net.forward(&x.narrow(0, 0, m).contiguous(), &h);
            let got = flat(&h[2]);
            let d = got
                .iter()
                .zip(&want)
                .filter(|(a, b)| a.to_bits() != b.to_bits())
                .count();
            if d > 0 {
                differing.push(m);
            }
            bad += d;
        }
        println!("{name} inputs, batches of 1..=300 rows: {bad} actions differ, in batches of {differing:?} rows");
    }
    small_batches_and_targets();
    let mut t = Vec::new();
    for _ in 0..5 {
        net.forward(&real, &whole);
    }
    for _ in 0..iters {
        let s = Instant::now();
        net.forward(&real, &whole);
        t.push(s.elapsed().as_secs_f64() * 1e6);
    }
    println!("one call over {n} rows: median {:.1} us", median(&mut t));
    for &b in &[64i64, 128, 256, 512, 1024, 2048] {
        let scratch: Vec<Tensor> = [32, 32]
            .iter()
            .map(|&c| Tensor::empty([b, c], opts))
            .collect();
        let out = Tensor::empty([r, 2], opts);
        let mut t = Vec::new();
        for _ in 0..5 {
            net.forward_blocks(&real, b, &scratch, &out);
        }
        for _ in 0..iters {
            let s = Instant::now();
            net.forward_blocks(&real, b, &scratch, &out);
            t.push(s.elapsed().as_secs_f64() * 1e6);
        }
        println!("blocks of {b:5} rows: median {:.1} us", median(&mut t));
    }
}
