//! The competition rule's modes over time: one flow under the fixed rule
//! (action 0) with the competition rule on, beside one competitor that
//! runs from `FROM_S` to `TO_S`, on a constant 12 Mbit/s link with a 40 ms
//! min RTT, in the simulator. Prints, every 100 ms, the mode, the clamp,
//! the queueing delay and the flow's throughput against the link.
//!
//! ```sh
//! cargo run --release -p plume-cc --example competition_trace -- [BUFFER_BDP] [cubic|bbr|none] [E]
//! ```
//!
//! Without `E` competitive mode lifts every limit (the rule's default).
//!
//! ```sh
//! ```
//!
//! Why: the detector (policy::competition) is a state machine whose
//! behaviour on a path is easier to judge from its trajectory than from a
//! matrix score.

use std::sync::Arc;

use plume_cc::congestion::ControllerKind;
use plume_cc::policy::model::ActionScaling;
use plume_cc::policy::{CompetitionRule, Mode};
use plume_cc::rl::env::env_action;
use plume_cc::rl::{Env, EnvConfig};
use plume_cc::sim::QueueLimit;
use plume_cc::trace::Schedule;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let buffer_bdp: f64 = args.next().map_or(Ok(8.0), |v| v.parse())?;
    let rival = args.next().unwrap_or_else(|| "cubic".into());
    // E: the competitive-mode exponent; none: no limits in competitive mode.
    let exponent: Option<f32> = args.next().map(|v| v.parse()).transpose()?;
    let competing = match rival.as_str() {
        "none" => Vec::new(),
        name => vec![ControllerKind::from_name(name)
            .ok_or_else(|| format!("unknown controller {name:?}"))?],
    };
    let trace = Arc::new(Schedule::constant(1)?);
    let bdp_packets = 12e6 / 8.0 * 0.040 / 1500.0;
    let scaling = ActionScaling {
        competition: Some(CompetitionRule {
            competitive_exponent: exponent,
            ..CompetitionRule::default()
        }),
        ..ActionScaling::default()
    };
    let mut env = Env::new(EnvConfig {
        competing,
        one_way_delay_us: 20_000,
        queue_limit: QueueLimit::packets(((bdp_packets * buffer_bdp).round() as u32).max(2)),
        episode_us: Some(30_000_000),
        ..EnvConfig::default()
    })?;
    let mut obs = env.reset(trace, 1)?;
    let (mut tput, mut q, mut n, mut next_print) = (0.0, 0.0, 0.0, 100_000);
    loop {
        let mode = env.controlled_mode();
        let target = env_action(&scaling, &obs, [0.0, 0.0], &env);
        let step = env.step(target)?;
        tput += f64::from(step.components.throughput_mbps);
        q += f64::from(step.components.queueing_delay_ms);
        n += 1.0;
        if step.now_us >= next_print {
            let m = match mode {
                Mode::Default => "default",
                Mode::Resume => "resume",
                Mode::Probe { .. } => "PROBE",
                Mode::Competitive { lossy: false } => "COMPETITIVE",
                Mode::Competitive { lossy: true } => "COMPETITIVE-LOSSY",
            };
            println!(
                "{:6.1} s {:12} clamp {:5} queueing {:6.0} ms throughput/link {:.2}",
                step.now_us as f64 / 1e6,
                m,
                target.cwnd_clamp_segments,
                q / n,
                tput / n / 12.0
            );
            (tput, q, n) = (0.0, 0.0, 0.0);
            next_print += 100_000;
        }
        obs = step.observation;
        if step.done {
            break;
        }
    }
    Ok(())
}
