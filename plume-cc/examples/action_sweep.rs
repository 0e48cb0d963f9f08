//! Constant actions against one competitor on a constant link, in the
//! simulator: where each reward variant has its optimum, and what share a
//! clamp over the min RTT or over the srtt can hold.
//!
//! ```sh
//! cargo run --release -p plume-cc --example action_sweep -- [E] [BUFFER_BDP] [cubic|bbr|reno|none]
//! ```
//!
//! A 12 Mbit/s link, 20 ms one way (40 ms min RTT), a droptail buffer of
//! `BUFFER_BDP` BDPs, one flow over CUBIC under the default action mapping
//! with `rtt_ref_exponent = E` and a constant action `[a0, 0]`, beside one
//! uncontrolled flow, for 20 s. Over the last 15 s it prints the flow's
//! throughput against its fair share, the queueing delay in min RTTs and the
//! mean per-step reward of each `QueuePenalty`. Why a separate diagnostic:
//! PPO's outcome depends on where the reward puts its optimum, and this
//! shows it without training (docs/TRAINING.md, "Holding a share").

use std::sync::Arc;

use plume_cc::congestion::ControllerKind;
use plume_cc::policy::model::ActionScaling;
use plume_cc::rl::env::{env_action, normalized_reward, QueuePenalty, RewardSpec};
use plume_cc::rl::{Env, EnvConfig};
use plume_cc::sim::QueueLimit;
use plume_cc::trace::Schedule;

const LINK_MBPS: f64 = 12.0;
const MIN_RTT_MS: f64 = 40.0;
const EPISODE_US: u64 = 20_000_000;
const WARM_UP_US: u64 = 5_000_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let exponent: f32 = args.next().map_or(Ok(1.0), |v| v.parse())?;
    let buffer_bdp: f64 = args.next().map_or(Ok(8.0), |v| v.parse())?;
    let rival = args.next().unwrap_or_else(|| "cubic".into());
    let competing = match rival.as_str() {
        "none" => Vec::new(),
        name => vec![ControllerKind::from_name(name)
            .ok_or_else(|| format!("unknown controller {name:?} (cubic, bbr, reno, none)"))?],
    };
    let flows = 1 + competing.len();
    // One 1500-byte opportunity per ms: 12 Mbit/s.
    let trace = Arc::new(Schedule::constant(1)?);
    let bdp_packets = LINK_MBPS * 1e6 / 8.0 * MIN_RTT_MS / 1e3 / 1500.0;
    let scaling = ActionScaling {
        rtt_ref_exponent: exponent,
        ..ActionScaling::default()
    };
    if !scaling.is_valid() {
        return Err(format!("E must be within [0, 1], got {exponent}").into());
    }
    let penalties = [
        QueuePenalty::Whole,
        QueuePenalty::Own,
        QueuePenalty::AboveFair,
    ];
    for a0 in [-1.0f32, -0.5, -0.25, 0.0, 0.25, 0.5] {
        let mut env = Env::new(EnvConfig {
            competing: competing.clone(),
            one_way_delay_us: (MIN_RTT_MS * 500.0) as u64,
            queue_limit: QueueLimit::packets(((bdp_packets * buffer_bdp).round() as u32).max(2)),
            episode_us: Some(EPISODE_US),
            ..EnvConfig::default()
        })?;
        let mut obs = env.reset(trace.clone(), 1)?;
        let (mut share, mut delay, mut n) = (0.0, 0.0, 0.0);
        let mut rewards = [0.0f64; 3];
        loop {
            let target = env_action(&scaling, &obs, [a0, 0.0], &env);
            let Ok(step) = env.step(target) else { break };
            if step.now_us > WARM_UP_US {
                let fair = LINK_MBPS / flows as f64;
                for (r, p) in rewards.iter_mut().zip(penalties) {
                    let spec = RewardSpec {
                        queue_penalty: p,
                        ..RewardSpec::default()
                    };
                    let (reward, s, d) = normalized_reward(&step, fair, flows, MIN_RTT_MS, &spec);
                    *r += f64::from(reward);
                    if p == QueuePenalty::Whole {
                        share += f64::from(s);
                        delay += f64::from(d);
                    }
                }
                n += 1.0;
            }
            obs = step.observation;
            if step.done {
                break;
            }
        }
        let n = f64::max(n, 1.0);
        println!(
            "E {exponent} buffer {buffer_bdp} BDP beside {rival}, a0 {a0:5}: throughput/fair {:.2}, \
             queueing/min RTT {:.2}, reward whole {:.3} own {:.3} above-fair {:.3}",
            share / n,
            delay / n,
            rewards[0] / n,
            rewards[1] / n,
            rewards[2] / n
        );
    }
    Ok(())
}
