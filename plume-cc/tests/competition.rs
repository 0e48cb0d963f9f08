//! The competition rule in the simulator: the fixed rule (action 0) beside
//! a CUBIC flow in a deep buffer starves without the rule and holds a share
//! with it, and alone the rule's probes cost little (docs/TRAINING.md,
//! "A competition rule").

use std::sync::Arc;

use plume_cc::congestion::ControllerKind;
use plume_cc::policy::model::ActionScaling;
use plume_cc::policy::{CompetitionRule, Mode};
use plume_cc::rl::env::env_action;
use plume_cc::rl::{Env, EnvConfig};
use plume_cc::sim::QueueLimit;
use plume_cc::trace::Schedule;

/// 12 Mbit/s, 40 ms min RTT, a buffer of `buffer_bdp` BDPs, 30 s; returns
/// the controlled flow's mean throughput over the last 20 s as a fraction
/// of the link, and the modes it went through.
fn run(
    scaling: &ActionScaling,
    competing: Vec<ControllerKind>,
    buffer_bdp: f64,
) -> (f64, Vec<Mode>) {
    let bdp_packets = 12e6 / 8.0 * 0.040 / 1500.0;
    let mut env = Env::new(EnvConfig {
        competing,
        one_way_delay_us: 20_000,
        queue_limit: QueueLimit::packets((bdp_packets * buffer_bdp).round() as u32),
        episode_us: Some(30_000_000),
        ..EnvConfig::default()
    })
    .unwrap();
    let mut obs = env
        .reset(Arc::new(Schedule::constant(1).unwrap()), 1)
        .unwrap();
    let (mut sum, mut n) = (0.0, 0.0);
    let mut modes = Vec::new();
    loop {
        modes.push(env.controlled_mode());
        let target = env_action(scaling, &obs, [0.0, 0.0], &env);
        let step = env.step(target).unwrap();
        if step.now_us > 10_000_000 {
            sum += f64::from(step.components.throughput_mbps);
            n += 1.0;
        }
        obs = step.observation;
        if step.done {
            break;
        }
    }
    (sum / n / 12.0, modes)
}

fn with_rule() -> ActionScaling {
    ActionScaling {
        competition: Some(CompetitionRule::default()),
        ..ActionScaling::default()
    }
}

#[test]
fn beside_cubic_in_a_deep_buffer_the_rule_holds_a_share_the_plain_rule_cannot() {
    let (plain, _) = run(&ActionScaling::default(), vec![ControllerKind::Cubic], 8.0);
    let (rule, modes) = run(&with_rule(), vec![ControllerKind::Cubic], 8.0);
    eprintln!("deep: plain {plain:.3} rule {rule:.3}");
    assert!(
        plain < 0.2,
        "the plain fixed rule got {plain:.2} of the link"
    );
    assert!(rule > 0.25, "the rule got {rule:.2} of the link");
    assert!(modes.iter().any(|m| matches!(m, Mode::Competitive { .. })));
}

#[test]
fn alone_the_rule_stays_in_default_mode_and_keeps_the_link() {
    let (plain, _) = run(&ActionScaling::default(), Vec::new(), 2.0);
    let (rule, modes) = run(&with_rule(), Vec::new(), 2.0);
    eprintln!("alone: plain {plain:.3} rule {rule:.3}");
    assert!(
        !modes.iter().any(|m| matches!(m, Mode::Competitive { .. })),
        "a false detection alone"
    );
    assert!(modes.iter().any(|m| matches!(m, Mode::Probe { .. })));
    // Probes cost at most a few percent of the link.
    assert!(
        rule > plain - 0.05,
        "alone: {rule:.3} with the rule, {plain:.3} without"
    );
    assert!(rule > 0.85, "alone: {rule:.3}");
}
