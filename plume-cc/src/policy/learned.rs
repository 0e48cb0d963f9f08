//! [`LearnedPolicy`]: a [`LoadedPolicy`] behind the daemon's
//! [`FlowPolicy`] trait. It keeps one [`ObservationBuilder`] per flow
//! (socket cookie), builds every flow's observation from the datapath's
//! statistics, runs ONE batched forward for all flows, and maps each raw
//! action to kernel units with the policy's [`crate::policy::ActionScaling`]
//! and the flow context read back from the observation (exactly as in
//! training, see [`crate::policy::flow_context_from_observation`]).

use std::collections::HashMap;

use plume_cc_common::{FlowStats, CWND_UNCLAMPED, PACING_UNLIMITED};

use super::observation::{FlowSample, ObservationBuilder};
use super::{flow_context_from_observation, LoadedPolicy};
use crate::daemon::policy::{Decision, FlowPolicy, PolicyContract};

/// A learned policy for the daemon (see module docs).
#[derive(Debug)]
pub struct LearnedPolicy {
    policy: LoadedPolicy,
    objective: super::Objective,
    builders: HashMap<u64, ObservationBuilder>,
    obs: Vec<f32>,
}

impl LearnedPolicy {
    /// Wraps a loaded policy.
    pub fn new(policy: LoadedPolicy) -> Self {
        Self {
            objective: policy.metadata().default_objective,
            policy,
            builders: HashMap::new(),
            obs: Vec::new(),
        }
    }
}

impl FlowPolicy for LearnedPolicy {
    fn describe(&self) -> String {
        let m = self.policy.metadata();
        format!(
            "learned policy {} ({:?}, trained with {} for {} steps, seed {}; objective: delay weight {})",
            self.policy.source().display(),
            m.kind,
            m.training.sampler,
            m.training.steps,
            m.training.seed,
            self.objective.delay_weight()
        )
    }

    fn set_objective(&mut self, objective: super::Objective) {
        self.objective = objective;
        self.builders.clear();
    }

    fn decide(
        &mut self,
        now_ns: u64,
        flows: &[(u64, FlowStats)],
        out: &mut Vec<Decision>,
    ) -> anyhow::Result<()> {
        out.clear();
        self.obs.clear();
        // Flows that closed without the daemon seeing the event.
        if self.builders.len() > 2 * flows.len() + 64 {
            let live: std::collections::HashSet<u64> = flows.iter().map(|(c, _)| *c).collect();
            self.builders.retain(|c, _| live.contains(c));
        }
        for (cookie, stats) in flows {
            let mut sample = FlowSample::from(stats);
            // The daemon samples on its own tick: intervals are poll to poll.
            sample.timestamp_us = now_ns / 1000;
            let objective = self.objective;
            let b = self
                .builders
                .entry(*cookie)
                .or_insert_with(|| ObservationBuilder::with_objective(objective));
            let o = b.observe(&sample).unwrap_or_else(|_| {
                b.reset();
                b.observe(&sample).unwrap_or([0.0; super::OBSERVATION_LEN])
            });
            self.obs.extend_from_slice(&o);
        }
        let actions = self.policy.act_batch(&self.obs, flows.len())?;
        let scaling = self.policy.metadata().action_scaling;
        let len = self.policy.metadata().observation.len;
        for (i, (a, (_, stats))) in actions.iter().zip(flows).enumerate() {
            let obs = &self.obs[i * len..(i + 1) * len];
            let t = scaling.limit_step(
                scaling.to_target(*a, &flow_context_from_observation(obs, stats.mss)),
                super::Target {
                    cwnd_clamp_segments: stats.applied_cwnd_clamp,
                    max_pacing_bytes_per_sec: stats.applied_pacing,
                },
            );
            out.push(Decision {
                cwnd_clamp: if t.cwnd_clamp_segments == CWND_UNCLAMPED {
                    f32::INFINITY
                } else {
                    t.cwnd_clamp_segments as f32
                },
                max_pacing_bytes_per_sec: if t.max_pacing_bytes_per_sec == PACING_UNLIMITED {
                    f32::INFINITY
                } else {
                    t.max_pacing_bytes_per_sec as f32
                },
            });
        }
        Ok(())
    }

    fn forget(&mut self, cookie: u64) {
        self.builders.remove(&cookie);
    }

    fn contract(&self) -> Option<PolicyContract> {
        let m = self.policy.metadata();
        Some(PolicyContract {
            base_cc: m.base_cc.clone(),
            monitor_interval_us: m.monitor_interval_us,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_decision_per_flow_in_kernel_units() {
        tch::set_num_threads(1);
        let mut p = LearnedPolicy::new(super::super::default_policy().unwrap());
        let stats = |delivered: u32| FlowStats {
            srtt_us: 50_000,
            min_rtt_us: 40_000,
            snd_cwnd: 20,
            mss: 1448,
            delivered,
            ..FlowStats::default()
        };
        let mut out = Vec::new();
        p.decide(0, &[(1, stats(0)), (2, stats(0))], &mut out)
            .unwrap();
        assert_eq!(out.len(), 2);
        // No rate estimate yet: no limits.
        assert!(out.iter().all(|d| d.cwnd_clamp.is_infinite()));
        // `out` is reused as the daemon reuses it: decide must replace its contents.
        p.decide(20_000_000, &[(1, stats(100)), (2, stats(50))], &mut out)
            .unwrap();
        assert_eq!(out.len(), 2);
        for d in &out {
            assert!(d.cwnd_clamp.is_finite() && d.cwnd_clamp >= 4.0, "{d:?}");
            assert!(d.max_pacing_bytes_per_sec >= 12_500.0, "{d:?}");
        }
        p.forget(1);
        assert_eq!(p.builders.len(), 1);
    }
}
