//! Property tests of the environment: whatever the capacity window, seed and
//! actions, nothing panics, the window stays at or above its floor, pacing is
//! never zero and observations stay finite, under either timeout model and
//! either min RTT sample.

use std::sync::Arc;

use plume_cc::congestion::{Controller, ControllerKind, MIN_CWND_SEGMENTS};
use plume_cc::policy::Target;
use plume_cc::rl::{Env, EnvConfig, MonitorInterval};
use plume_cc::sim::{MinRttSample, QueueLimit, Schedule, TimeoutModel};
use proptest::prelude::*;

fn kind() -> impl Strategy<Value = ControllerKind> {
    prop_oneof![
        Just(ControllerKind::Reno),
        Just(ControllerKind::Cubic),
        Just(ControllerKind::Bbr)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn env_never_panics_and_keeps_invariants(
        gaps in proptest::collection::vec(0u64..30, 1..200),
        seed in any::<u64>(),
        base in kind(),
        loss in 0.0f64..0.2,
        queue in 1u32..300,
        actions in proptest::collection::vec((any::<u32>(), any::<u32>()), 1..40),
        undo in any::<bool>(),
        newest in any::<bool>(),
    ) {
        // Random schedules: sorted by construction; some are invalid (all 0).
        let mut t = 0;
        let ms: Vec<u64> = gaps.iter().map(|g| { t += g; t }).collect();
        let Ok(trace) = Schedule::from_ms(ms) else { return Ok(()); };
        let config = EnvConfig {
            base,
            random_loss: loss,
            queue_limit: QueueLimit::packets(queue),
            interval: MonitorInterval::Srtt { min_us: 5_000, max_us: 50_000 },
            episode_us: Some(2_000_000),
            timeout_model: if undo { TimeoutModel::Undo } else { TimeoutModel::Plain },
            min_rtt_sample: if newest { MinRttSample::Newest } else { MinRttSample::Echoed },
            ..EnvConfig::default()
        };
        let mut env = Env::new(config).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let obs = env.reset(Arc::new(trace), seed).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(obs.iter().all(|v| v.is_finite()));
        for (c, p) in actions {
            let r = match env.step(Target { cwnd_clamp_segments: c, max_pacing_bytes_per_sec: p, competitive_cc: false }) {
                Ok(r) => r,
                // Only the end of the episode may stop it; any other error fails.
                Err(plume_cc::rl::EnvError::EpisodeDone { .. }) => break,
                Err(e) => return Err(TestCaseError::fail(format!("step failed: {e}"))),
            };
            prop_assert!(r.observation.iter().all(|v| v.is_finite()));
            let c = r.components;
            prop_assert!(c.throughput_mbps.is_finite() && c.queueing_delay_ms.is_finite());
            prop_assert!((0.0..=1.0).contains(&c.loss_rate));
            let s = env.network().and_then(|n| n.sender(0)).ok_or_else(|| TestCaseError::fail("no flow"))?;
            prop_assert!(s.controller().window_segments() >= MIN_CWND_SEGMENTS);
            prop_assert_ne!(s.controller().pacing_rate_bytes_per_sec(), Some(0));
        }
    }
}
