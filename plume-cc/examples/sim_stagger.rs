//! The kernel benchmark's sharing test in the simulator: N flows of one
//! policy on a 12 Mbit/s constant link, 20 ms each way, a 100-packet
//! droptail buffer, started 10 s apart, 30 s; Jain's index over the last
//! 20 s (a flow that starts inside it counts over its own part, as
//! `plume-cc bench` counts it), and each flow's min RTT at the end.
//!
//! Why: `plume-cc eval matrix` starts its two flows together, so it never
//! meets what a late flow meets on the kernel: a standing queue when it
//! starts, which its min RTT then includes (docs/BENCHMARKS.md, "Sharing
//! the link: why the default is not fair among 2-3 flows").
//!
//! Run: `cargo run --release -p plume-cc --example sim_stagger -- [POLICY] [FLOWS] [fixed]`
//! (POLICY a policy folder or `default`, FLOWS 2 or 3, default 3;
//! `fixed` acts with action 0, the fixed rule). The policy's mapping is
//! applied as the daemon applies it: `additive_segments`, the anchor
//! window floor (`anchor_window_floor_ms`) and the min RTT shared among its
//! flows (`path_min_rtt`; all flows here go to one address).
use std::sync::Arc;

#[path = "const_link/mod.rs"]
mod const_link;

use plume_cc::congestion::{ClampModel, ControllerKind};
use plume_cc::policy::LoadedPolicy;
use plume_cc::rl::env::{env_action, peer_actions};
use plume_cc::rl::{Env, EnvConfig, MonitorInterval};
use plume_cc::sim::{DatapathModel, QueueLimit};

const STAGGER_US: u64 = 10_000_000;
const LENGTH_MS: u64 = 30_000;
const TAIL_FROM_US: u64 = 10_000_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let policy_arg = args.first().map_or("default", String::as_str);
    let flows: u64 = args.get(1).map_or(Ok(3), |v| v.parse())?;
    let fixed = args.get(2).is_some_and(|a| a == "fixed");
    let policy = LoadedPolicy::load_or_default(std::path::Path::new(policy_arg))?;
    let meta = policy.metadata().clone();
    let window = const_link::window(LENGTH_MS)?;
    let mut env = Env::new(
        EnvConfig {
            base: ControllerKind::from_name(&meta.base_cc).unwrap_or(ControllerKind::Cubic),
            competing: Vec::new(),
            competing_start_us: Vec::new(),
            peer_start_us: (1..flows).map(|i| i * STAGGER_US).collect(),
            one_way_delay_us: 20_000,
            queue_limit: QueueLimit::packets(100),
            random_loss: 0.0,
            delayed_ack: false,
            clamp_model: ClampModel::Kernel,
            datapath_model: DatapathModel::default(),
            timeout_model: Default::default(),
            min_rtt_sample: Default::default(),
            objective: meta.default_objective,
            interval: MonitorInterval::FixedUs(meta.monitor_interval_us),
            episode_us: Some(LENGTH_MS * 1000),
            ..EnvConfig::default()
        }
        .deploying(&meta),
    )?;
    let mut obs = env.reset(Arc::clone(&window.trace), 7)?;
    let n = flows as usize;
    // Each flow's delivered segments when the tail starts (or at its start).
    let mut at_tail: Vec<Option<u64>> = vec![None; n];
    loop {
        let raw = if fixed {
            [0.0; 2]
        } else {
            policy.act_batch(&obs, 1)?[0]
        };
        let action = env_action(&meta.action_scaling, &obs, raw, &env);
        let pobs = env.peer_observations();
        let praw: Vec<[f32; 2]> = if fixed || pobs.is_empty() {
            vec![[0.0; 2]; pobs.len()]
        } else {
            let flat: Vec<f32> = pobs.iter().flatten().copied().collect();
            policy.act_batch(&flat, pobs.len())?
        };
        let t = peer_actions(&meta.action_scaling, &env, &praw);
        env.set_peer_actions(&t);
        let r = env.step(action)?;
        obs = r.observation;
        if let Some(net) = env.network() {
            if net.now_us() >= TAIL_FROM_US {
                for (i, slot) in at_tail.iter_mut().enumerate() {
                    if slot.is_none() {
                        if let Some(s) = net.sender(flow_index(&env, i)) {
                            *slot = Some(s.counters().delivered_segments);
                        }
                    }
                }
            }
        }
        if r.done {
            break;
        }
    }
    let net = env.network().ok_or("no network")?;
    let now = net.now_us();
    let mut rates = Vec::new();
    println!("flow,start_s,tail_mbps,min_rtt_ms");
    for (i, start) in at_tail.iter().enumerate() {
        let s = net.sender(flow_index(&env, i)).ok_or("missing flow")?;
        let from_us = TAIL_FROM_US.max(i as u64 * STAGGER_US);
        let d = s.counters().delivered_segments - start.unwrap_or(0);
        let mbps = d as f64 * f64::from(s.mss_bytes()) * 8.0 / (now - from_us) as f64;
        rates.push(mbps);
        println!(
            "{i},{},{mbps:.2},{:.1}",
            i as u64 * STAGGER_US / 1_000_000,
            s.min_rtt_us() as f64 / 1e3
        );
    }
    println!("jain,{:.3}", plume_cc::stats::jain(&rates));
    Ok(())
}

/// The network's index of flow `i` (0 the env's own flow, then its peers).
fn flow_index(env: &Env, i: usize) -> usize {
    if i == 0 {
        0
    } else {
        env.peer_flow(i - 1).unwrap_or(usize::MAX)
    }
}
