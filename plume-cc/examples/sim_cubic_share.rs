//! The kernel benchmark's "beside one CUBIC flow" test in the simulator:
//! one flow of a policy and one CUBIC flow (outside the policy) on a
//! 12 Mbit/s constant link, 20 ms each way, a droptail buffer of X BDPs
//! (40 packets per BDP, as `plume-cc bench --queue bdp=X` sizes it), both
//! started together, 30 s; the policy flow's share of the bytes delivered
//! over the last 20 s, and each flow's retransmissions.
//!
//! Why: issue 11 asks for a share of 0.35-0.65 at 1 and 4 BDP, and the
//! default's 0.97 at 1 BDP on the kernel comes from `TCP_BPF_SNDCWND_CLAMP`
//! resetting ssthresh (docs/BENCHMARKS.md, "Holding the clamp after a
//! loss"), which the simulator's clamp model reproduces: this tells whether
//! the simulator agrees with the kernel with the hold off and on.
//!
//! Run: `cargo run --release -p plume-cc --example sim_cubic_share -- [POLICY] [BDP] [fixed] [hold] [seed=N]`
//! (POLICY a policy folder or `default`, BDP the buffer in BDPs, default
//! 1; `fixed` acts with action 0; `hold` turns the clamp hold on whatever
//! the file says, `nohold` off). The mapping is applied as the daemon
//! applies it, as in `sim_stagger.rs`.
use std::sync::Arc;

#[path = "const_link/mod.rs"]
mod const_link;

use plume_cc::congestion::{ClampModel, ControllerKind};
use plume_cc::policy::LoadedPolicy;
use plume_cc::rl::env::env_action;
use plume_cc::rl::{Env, EnvConfig, MonitorInterval};
use plume_cc::sim::{DatapathModel, QueueLimit};

const LENGTH_MS: u64 = 30_000;
const TAIL_FROM_US: u64 = 10_000_000;
/// 12 Mbit/s times 40 ms in 1500-byte packets.
const BDP_PACKETS: f64 = 40.0;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let policy_arg = args.first().map_or("default", String::as_str);
    let bdp: f64 = args.get(1).map_or(Ok(1.0), |v| v.parse())?;
    let has = |w: &str| args.iter().skip(2).any(|a| a == w);
    let seed: u64 = args
        .iter()
        .find_map(|a| a.strip_prefix("seed="))
        .map_or(Ok(7), str::parse)?;
    let fixed = has("fixed");
    let policy = LoadedPolicy::load_or_default(std::path::Path::new(policy_arg))?;
    let meta = policy.metadata().clone();
    let hold = if has("hold") {
        true
    } else if has("nohold") {
        false
    } else {
        meta.action_scaling.hold_clamp_after_loss
    };
    let window = const_link::window(LENGTH_MS)?;
    let packets = ((bdp * BDP_PACKETS).round() as u32).max(1);
    let mut config = EnvConfig {
        base: ControllerKind::from_name(&meta.base_cc).unwrap_or(ControllerKind::Cubic),
        competing: vec![ControllerKind::Cubic],
        competing_start_us: Vec::new(),
        peer_start_us: Vec::new(),
        one_way_delay_us: 20_000,
        queue_limit: QueueLimit::packets(packets),
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
    .deploying(&meta);
    // The hold as asked on the command line, whatever the policy's file says.
    config.clamp_hold.on = hold;
    let mut env = Env::new(config)?;
    let mut obs = env.reset(Arc::clone(&window.trace), seed)?;
    let mut at_tail: Option<[u64; 2]> = None;
    loop {
        let raw = if fixed {
            [0.0; 2]
        } else {
            policy.act_batch(&obs, 1)?[0]
        };
        let action = env_action(&meta.action_scaling, &obs, raw, &env);
        let r = env.step(action)?;
        obs = r.observation;
        if let Some(net) = env.network() {
            if at_tail.is_none() && net.now_us() >= TAIL_FROM_US {
                let d = |i| net.sender(i).map_or(0, |s| s.counters().delivered_segments);
                at_tail = Some([d(0), d(1)]);
            }
        }
        if r.done {
            break;
        }
    }
    let net = env.network().ok_or("no network")?;
    let start = at_tail.unwrap_or([0, 0]);
    let c = |i: usize| net.sender(i).map(|s| *s.counters()).unwrap_or_default();
    let (p, q) = (c(0), c(1));
    let dp = p.delivered_segments - start[0];
    let dq = q.delivered_segments - start[1];
    let share = dp as f64 / (dp + dq).max(1) as f64;
    println!("bdp,hold,fixed,seed,share,policy_retrans,cubic_retrans");
    println!(
        "{bdp},{hold},{fixed},{seed},{share:.3},{},{}",
        p.retransmitted_segments, q.retransmitted_segments
    );
    Ok(())
}
