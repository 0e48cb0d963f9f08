//! The simulator's side of the check: the policy on the window in
//! [`crate::rl::Env`], with the ACKs through the same trace, as the
//! emulator's bench path runs it.

use std::sync::Arc;

use crate::congestion::{Controller as _, ControllerKind};
use crate::policy::Target;
use crate::policy::{flow_context_from_observation, observation::Observation, LoadedPolicy};
use crate::rl::env::{env_action, flow_mss};
use crate::rl::{Env, EnvConfig, MonitorInterval};
use crate::sim::QueueLimit;
use crate::trace::MahimahiTrace;

use super::super::EvalError;
use super::{clamp_value, second_half_mean, SeriesPoint, SideResult, SimToRealConfig};

/// Runs `policy` on `trace` in the simulator with the ACKs through the same
/// trace, as the emulator's bench path does.
pub fn run_sim(
    policy: Option<&LoadedPolicy>,
    base: ControllerKind,
    trace: &MahimahiTrace,
    cfg: &SimToRealConfig,
    seed: u64,
) -> Result<SideResult, EvalError> {
    run_sim_observed(policy, base, trace, cfg, seed, &mut |_, _| {})
}

/// [`run_sim`] that also hands every observation the policy acted on, with
/// its raw action, to `on_step` (the feature-by-feature comparison with the
/// kernel's side, `examples/obs_compare.rs`).
pub fn run_sim_observed(
    policy: Option<&LoadedPolicy>,
    base: ControllerKind,
    trace: &MahimahiTrace,
    cfg: &SimToRealConfig,
    seed: u64,
    on_step: &mut dyn FnMut(&Observation, Option<[f32; 2]>),
) -> Result<SideResult, EvalError> {
    let interval_us = policy.map_or(20_000, |p| p.metadata().monitor_interval_us);
    let window = Arc::new(trace.schedule().clone());
    let config = EnvConfig {
        base,
        competing: Vec::new(),
        competing_start_us: Vec::new(),
        peer_start_us: Vec::new(),
        one_way_delay_us: cfg.delay_ms * 1000,
        queue_limit: QueueLimit::packets(cfg.queue_packets),
        random_loss: 0.0,
        delayed_ack: cfg.delayed_ack,
        clamp_model: cfg.clamp_model,
        datapath_model: cfg.datapath_model,
        timeout_model: cfg.timeout_model,
        min_rtt_sample: cfg.min_rtt_sample,
        cc_model: cfg.cc_model,
        objective: cfg
            .objective
            .or(policy.map(|p| p.metadata().default_objective))
            .unwrap_or_default(),
        interval: MonitorInterval::FixedUs(interval_us),
        episode_us: Some(cfg.window_ms * 1000),
        ..EnvConfig::default()
    };
    // A policy is fed the observation it was trained on, and decides,
    // anchors and clamps as its daemon runs it (one flow here, so the
    // shared min RTT is its own).
    let config = match policy {
        Some(p) => config.deploying(p.metadata()),
        None => config,
    };
    let mut env = Env::new(config)?;
    let mut obs = env.reset_with_ack_trace(Arc::clone(&window), Some(window), seed)?;
    let mut series = Vec::new();
    loop {
        let raw = match policy {
            Some(p) => Some(p.act_batch(&obs, 1)?[0]),
            None => None,
        };
        on_step(&obs, raw);
        let action = match (policy, raw) {
            (Some(p), Some(raw)) => env_action(&p.metadata().action_scaling, &obs, raw, &env),
            _ => Target::unlimited(),
        };
        let r = env.step(action)?;
        let ctx = flow_context_from_observation(&r.observation, flow_mss(&env));
        let cwnd = env
            .network()
            .and_then(|n| n.sender(0))
            .map_or(0.0, |s| f64::from(s.controller().window_segments()));
        series.push(SeriesPoint {
            t_s: r.now_us as f64 / 1e6,
            anchor_mbps: ctx.max_rate_bytes_per_sec * 8.0 / 1e6,
            cwnd,
            clamp: clamp_value(action.cwnd_clamp_segments),
        });
        obs = r.observation;
        if r.done {
            break;
        }
    }
    let m = env.metrics();
    let p95 = env
        .network()
        .and_then(|n| n.link_delay_histogram(0))
        .map_or(0, |h| h.quantile_us(0.95));
    Ok(SideResult {
        utilization: m.utilization,
        p95_link_ms: p95 as f64 / 1000.0,
        mean_anchor_mbps: second_half_mean(&series, |p| p.anchor_mbps),
        mean_cwnd: second_half_mean(&series, |p| p.cwnd),
        mean_clamp: second_half_mean(&series, |p| p.clamp),
        base_cc: base.name().to_string(),
        series,
    })
}
