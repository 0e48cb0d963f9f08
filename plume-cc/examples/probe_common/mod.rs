//! What the forward probes (`forward_probe`, `tile_probe`) share: the
//! `bench-decide` flows' real observations after a warm-up, and the median
//! their timing tables print. One copy, so that both probes measure the
//! same inputs. Not an example itself (no `main.rs`): each probe includes
//! it with `#[path]`.

use plume_cc::daemon::bench::synthetic_stats;
use plume_cc::policy::file::{default_policy, tensors_from_safetensors, DEFAULT_POLICY_WEIGHTS};
use plume_cc::policy::{FlowPolicy, LearnedPolicy, Target, OBSERVATION_LEN};
use plume_cc_common::FlowStats;
use tch::Tensor;

/// The median, by the project's one quantile convention
/// ([`plume_cc::stats::quantile_of`], type 7: the mean of the two middle
/// values of an even count; the probes printed the upper one before).
pub fn median(v: &mut [f64]) -> f64 {
    plume_cc::stats::quantile_of(v, 0.5)
}

/// Real observations of `n` synthetic flows (as `bench-decide` makes them,
/// after 12 intervals with the limits fed back), raw, and normalised as the
/// daemon normalises them (`[n, OBSERVATION_LEN]`, contiguous).
pub fn inputs(n: usize) -> (Vec<f32>, Tensor) {
    let mut p = LearnedPolicy::new(default_policy().unwrap());
    let mut flows: Vec<(u64, FlowStats)> = (0..n)
        .map(|i| (1_000_000 + i as u64, synthetic_stats(i)))
        .collect();
    let mut out: Vec<Target> = Vec::new();
    for k in 0..12u64 {
        for (i, (_, s)) in flows.iter_mut().enumerate() {
            let segs = 20 + (i % 30) as u32;
            s.delivered = s.delivered.wrapping_add(segs);
            s.rate_delivered = segs * 2;
            s.rate_interval_us = 40_000;
        }
        p.decide(k * 20_000_000 + 1, &flows, &mut out).unwrap();
        for ((_, s), t) in flows.iter_mut().zip(&out) {
            s.applied_cwnd_clamp = t.cwnd_clamp_segments;
            s.applied_pacing = t.max_pacing_bytes_per_sec;
        }
    }
    let raw = p.last_batch().unwrap().observations.to_vec();
    let meta = default_policy().unwrap().metadata().clone();
    let (m, s) = meta.normalization.tensors();
    let x = Tensor::from_slice(&raw).reshape([n as i64, OBSERVATION_LEN as i64]);
    let clip = f64::from(meta.normalization.clip);
    (raw, ((x - m) / s).clamp(-clip, clip).contiguous())
}

/// The default policy's actor layers as `(weights, biases)`, input layer
/// first, straight from the embedded safetensors.
pub fn actor_layers() -> (Vec<Tensor>, Vec<Tensor>) {
    let named = tensors_from_safetensors(DEFAULT_POLICY_WEIGHTS, "default".as_ref()).unwrap();
    let get = |n: &str| {
        named
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, t)| t.shallow_clone())
            .unwrap()
    };
    let w = (0..3).map(|i| get(&format!("actor.{i}.weight"))).collect();
    let b = (0..3).map(|i| get(&format!("actor.{i}.bias"))).collect();
    (w, b)
}
