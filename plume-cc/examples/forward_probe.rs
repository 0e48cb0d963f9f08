//! Where the default policy's 10,000-flow forward spends its time, layer by
//! layer, and whether libtorch settings or other spellings of the same
//! layers change it (issue 14, "Inference at batch cost";
//! docs/BENCHMARKS.md, "Decide step"). Every variant's actions are compared
//! bit for bit with the daemon's spelling (`linear_out` + `tanh_`).
//!
//! Run (no root): `cargo run --release -p plume-cc --example forward_probe [FLOWS] [ITERATIONS]`
//! (default 10000 flows, 200 iterations; one libtorch thread unless a
//! variant says otherwise).
// The layers, their outputs and their weights are three parallel arrays.
#![allow(clippy::needless_range_loop)]

use std::time::Instant;

#[path = "probe_common/mod.rs"]
mod probe_common;
use probe_common::median;

use plume_cc::policy::OBSERVATION_LEN;
use tch::{Kind, Tensor};

/// Real observations of `n` synthetic flows (as `bench-decide` makes them),
/// raw and normalised as the daemon normalises them.
fn inputs(n: usize) -> (Vec<f32>, Vec<f32>) {
    let (raw, x) = probe_common::inputs(n);
    let mut norm = vec![0f32; raw.len()];
    x.copy_data(&mut norm, raw.len());
    (raw, norm)
}

struct Layers {
    w: Vec<Tensor>,
    b: Vec<Tensor>,
}

fn layers() -> Layers {
    let (w, b) = probe_common::actor_layers();
    for (i, (w, b)) in w.iter().zip(&b).enumerate() {
        println!(
            "layer {i}: weight {:?} {:?} strides {:?} contiguous {}; bias {:?} {:?}",
            w.kind(),
            w.size(),
            w.stride(),
            w.is_contiguous(),
            b.kind(),
            b.size()
        );
    }
    Layers { w, b }
}

fn flat(t: &Tensor) -> Vec<f32> {
    let n = t.numel();
    let mut v = vec![0f32; n];
    t.contiguous().copy_data(&mut v, n);
    v
}

/// Times `iters` runs of `f`, which returns per-part durations (µs);
/// prints the medians of each part and of their sum.
fn time(name: &str, iters: usize, parts: &[&str], mut f: impl FnMut() -> Vec<f64>) {
    let mut all: Vec<Vec<f64>> = vec![Vec::new(); parts.len() + 1];
    for _ in 0..5 {
        f();
    }
    for _ in 0..iters {
        let p = f();
        all[parts.len()].push(p.iter().sum());
        for (v, x) in all.iter_mut().zip(p) {
            v.push(x);
        }
    }
    let mut line = format!("{name:<44}");
    for (p, v) in parts.iter().zip(all.iter_mut()) {
        line += &format!(" {p} {:7.1}", median(v));
    }
    line += &format!(" | total {:7.1} us", median(&mut all[parts.len()]));
    println!("{line}");
}

fn us(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e6
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).map_or(10_000, |a| a.parse().unwrap());
    let iters: usize = args.get(2).map_or(200, |a| a.parse().unwrap());
    tch::set_num_threads(1);
    let _g = tch::no_grad_guard();
    let l = layers();
    let (_raw, norm) = inputs(n);
    let r = n as i64;
    let opts = (Kind::Float, tch::Device::Cpu);
    let x = Tensor::from_slice(&norm).reshape([r, OBSERVATION_LEN as i64]);
    println!(
        "input {:?} {:?} contiguous {}",
        x.kind(),
        x.size(),
        x.is_contiguous()
    );
    let h: Vec<Tensor> = [32, 32, 2]
        .iter()
        .map(|&c| Tensor::empty([r, c], opts))
        .collect();
    // The daemon's spelling.
    let reference = |h: &[Tensor]| {
        let mut cur = x.shallow_clone();
        for i in 0..3 {
            cur = cur.linear_out(&h[i], &l.w[i], Some(&l.b[i]));
            if i < 2 {
                let _ = cur.tanh_();
            }
        }
        flat(&cur)
    };
    let want = reference(&h);
    let hidden: Vec<Vec<f32>> = h[..2].iter().map(flat).collect();
    let subnormal = hidden
        .iter()
        .flatten()
        .chain(&norm)
        .filter(|v| v.is_subnormal())
        .count();
    let saturated = hidden.iter().flatten().filter(|v| v.abs() == 1.0).count();
    println!(
        "subnormal values in input and hidden layers: {subnormal}; tanh outputs exactly +-1: {saturated} of {}",
        2 * 32 * n
    );
    let parts = ["lin1", "tanh1", "lin2", "tanh2", "lin3"];
    let check = |name: &str, got: &[f32]| {
        let same = got.len() == want.len()
            && got
                .iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits());
        let differ = got
            .iter()
            .zip(&want)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        println!(
            "  {name}: bit-for-bit {same} ({differ} of {} differ)",
            want.len()
        );
    };

    // The daemon's spelling, timed layer by layer (every setting below
    // that keeps the spelling reuses it).
    let daemon_timed = || {
        let mut t = Vec::new();
        let mut cur = x.shallow_clone();
        for i in 0..3 {
            let s = Instant::now();
            cur = cur.linear_out(&h[i], &l.w[i], Some(&l.b[i]));
            t.push(us(s));
            if i < 2 {
                let s = Instant::now();
                let _ = cur.tanh_();
                t.push(us(s));
            }
        }
        t
    };
    time("linear_out + tanh_ (daemon)", iters, &parts, daemon_timed);
    // Fresh tensors per op (the old act_batch path).
    time("linear + tanh, fresh tensors", iters, &parts, || {
        let mut t = Vec::new();
        let mut cur = x.shallow_clone();
        for i in 0..3 {
            let s = Instant::now();
            cur = cur.linear(&l.w[i], Some(&l.b[i]));
            t.push(us(s));
            if i < 2 {
                let s = Instant::now();
                cur = cur.tanh();
                t.push(us(s));
            }
        }
        t
    });
    // Pre-transposed weights: an NN gemm instead of TN.
    let wt: Vec<Tensor> = l.w.iter().map(|w| w.tr().contiguous()).collect();
    let run_addmm = |h: &[Tensor]| {
        let mut t = Vec::new();
        let mut cur = x.shallow_clone();
        for i in 0..3 {
            let s = Instant::now();
            cur = l.b[i].addmm_out(&h[i], &cur, &wt[i]);
            t.push(us(s));
            if i < 2 {
                let s = Instant::now();
                let _ = cur.tanh_();
                t.push(us(s));
            }
        }
        t
    };
    time(
        "addmm_out, weights pre-transposed (NN)",
        iters,
        &parts,
        || run_addmm(&h),
    );
    run_addmm(&h);
    check("addmm_out NN", &flat(&h[2]));
    // addmm_out with the transposed view (what linear_out does itself).
    let run_addmm_t = |h: &[Tensor]| {
        let mut t = Vec::new();
        let mut cur = x.shallow_clone();
        for i in 0..3 {
            let s = Instant::now();
            cur = l.b[i].addmm_out(&h[i], &cur, &l.w[i].tr());
            t.push(us(s));
            if i < 2 {
                let s = Instant::now();
                let _ = cur.tanh_();
                t.push(us(s));
            }
        }
        t
    };
    time("addmm_out, weight.t() view (TN)", iters, &parts, || {
        run_addmm_t(&h)
    });
    run_addmm_t(&h);
    check("addmm_out TN", &flat(&h[2]));
    // Matmul, then the bias added.
    let run_mm = |h: &[Tensor]| {
        let mut t = Vec::new();
        let mut cur = x.shallow_clone();
        for i in 0..3 {
            let s = Instant::now();
            cur = cur.mm_out(&h[i], &l.w[i].tr());
            let _ = cur.g_add_(&l.b[i]);
            t.push(us(s));
            if i < 2 {
                let s = Instant::now();
                let _ = cur.tanh_();
                t.push(us(s));
            }
        }
        t
    };
    time("mm_out + add_ bias", iters, &parts, || run_mm(&h));
    run_mm(&h);
    check("mm_out + add_", &flat(&h[2]));
    // tanh_out into a second tensor instead of in place.
    let h2: Vec<Tensor> = [32, 32]
        .iter()
        .map(|&c| Tensor::empty([r, c], opts))
        .collect();
    let run_tanh_out = |h: &[Tensor]| {
        let mut t = Vec::new();
        let mut cur = x.shallow_clone();
        for i in 0..3 {
            let s = Instant::now();
            cur = cur.linear_out(&h[i], &l.w[i], Some(&l.b[i]));
            t.push(us(s));
            if i < 2 {
                let s = Instant::now();
                cur = cur.tanh_out(&h2[i]);
                t.push(us(s));
            }
        }
        t
    };
    time("linear_out + tanh_out", iters, &parts, || run_tanh_out(&h));
    run_tanh_out(&h);
    check("tanh_out", &flat(&h[2]));
    // Flush-to-zero and denormals-are-zero in MXCSR for this thread.
    #[allow(deprecated)]
    let csr = unsafe { std::arch::x86_64::_mm_getcsr() };
    #[allow(deprecated)]
    unsafe {
        std::arch::x86_64::_mm_setcsr(csr | 0x8040)
    };
    time(
        "linear_out + tanh_, FTZ/DAZ on",
        iters,
        &parts,
        daemon_timed,
    );
    check("FTZ/DAZ", &reference(&h));
    #[allow(deprecated)]
    unsafe {
        std::arch::x86_64::_mm_setcsr(csr)
    };
    // Without the no-grad guard (grad mode on; no tensor requires grad).
    {
        tch::with_grad(|| {
            time(
                "linear_out + tanh_, grad mode on",
                iters,
                &parts,
                daemon_timed,
            );
        });
    }
    tch::set_num_threads(2);
    time(
        "linear_out + tanh_, 2 libtorch threads",
        iters,
        &parts,
        daemon_timed,
    );
    check("2 threads", &reference(&h));
    tch::set_num_threads(1);
    // Memory traffic alone: one pass over each hidden layer (a copy).
    let mut c: Vec<Tensor> = [32, 32]
        .iter()
        .map(|&c| Tensor::empty([r, c], opts))
        .collect();
    time(
        "copy_ of each hidden layer (memory only)",
        iters,
        &["c1", "c2"],
        || {
            let mut t = Vec::new();
            for i in 0..2 {
                let s = Instant::now();
                c[i].f_copy_(&h[i]).unwrap();
                t.push(us(s));
            }
            t
        },
    );
}
