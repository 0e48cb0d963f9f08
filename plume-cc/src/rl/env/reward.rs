//! The one reward of training (see [`normalized_reward`]): throughput
//! against the fair share, minus the penalised part of the queueing delay
//! over the min RTT, minus the loss rate, each weighed by a [`RewardSpec`].
//!
//! Why its own file: the explanations (`crate::explain`) split this same
//! reward into components and the examples sweep it, so it must be one
//! pure function of a step, apart from the batch that calls it.

use serde::{Deserialize, Serialize};

use crate::rl::StepResult;

/// Weights of the normalised reward (see module docs).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RewardSpec {
    /// Per unit of queueing delay relative to the min RTT.
    pub delay_weight: f32,
    /// Per unit of loss rate.
    pub loss_weight: f32,
    /// Which part of the queueing delay is penalised (see [`QueuePenalty`]).
    #[serde(default)]
    pub queue_penalty: QueuePenalty,
}

impl Default for RewardSpec {
    fn default() -> Self {
        Self {
            delay_weight: 0.5,
            loss_weight: 2.0,
            queue_penalty: QueuePenalty::Whole,
        }
    }
}

/// Which part of the queueing delay the reward penalises.
///
/// Why not always the whole queue: a buffer-filling competitor (CUBIC in a
/// deep buffer) holds a queue the flow cannot drain by backing off, yet a
/// whole-queue penalty rewards backing off it, which is how the policy
/// learned to starve itself (docs/TRAINING.md). Alone, all three are equal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum QueuePenalty {
    /// The whole queueing delay (the default policy's reward).
    #[default]
    Whole,
    /// The flow's own part: the delay times its share of the bottleneck's
    /// deliveries (in a FIFO queue a flow's bytes in the queue are in
    /// proportion to its arrivals).
    Own,
    /// Only the part the flow holds beyond its fair share: the delay times
    /// `max(0, share - 1/n) / (1 - 1/n)` for `n` active flows (1 alone, 0 at
    /// or below the fair share).
    AboveFair,
}

impl QueuePenalty {
    /// The fraction of the queueing delay penalised for a flow that took
    /// `share` of the bottleneck's deliveries among `flows` active flows.
    pub fn fraction(self, share: f32, flows: usize) -> f32 {
        let share = share.clamp(0.0, 1.0);
        match self {
            Self::Whole => 1.0,
            Self::Own => share,
            Self::AboveFair if flows <= 1 => 1.0,
            Self::AboveFair => {
                let fair = 1.0 / flows as f32;
                ((share - fair) / (1.0 - fair)).max(0.0)
            }
        }
    }
}

/// The normalised reward of one step (see module docs); `fair_share_mbps`
/// is the window's mean capacity over the active flows.
pub fn normalized_reward(
    step: &StepResult,
    fair_share_mbps: f64,
    flows: usize,
    min_rtt_ms: f64,
    spec: &RewardSpec,
) -> (f32, f32, f32) {
    let c = &step.components;
    let share = (f64::from(c.throughput_mbps) / fair_share_mbps.max(1e-3)).min(2.0) as f32;
    let delay = (f64::from(c.queueing_delay_ms) / min_rtt_ms.max(1e-3)) as f32;
    let penalised = delay * spec.queue_penalty.fraction(c.bottleneck_share, flows);
    let r = share - spec.delay_weight * penalised - spec.loss_weight * c.loss_rate;
    (r.clamp(-10.0, 2.0), share, delay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::observation::OBSERVATION_LEN;

    /// A step of `mbps` with `qdelay_ms` of queue, the flow taking `share`
    /// of the bottleneck's deliveries.
    fn step(mbps: f32, qdelay_ms: f32, share: f32) -> StepResult {
        StepResult {
            observation: [0.0; OBSERVATION_LEN],
            components: crate::rl::RewardComponents {
                throughput_mbps: mbps,
                queueing_delay_ms: qdelay_ms,
                loss_rate: 0.0,
                bottleneck_share: share,
            },
            done: false,
            now_us: 0,
            interval_us: 20_000,
            intervals: 1,
        }
    }

    #[test]
    fn the_own_queue_penalty_counts_the_flows_part_of_the_queue() {
        let quarter = step(2.5, 160.0, 0.25);
        let whole = RewardSpec::default();
        let own = RewardSpec {
            queue_penalty: QueuePenalty::Own,
            ..whole
        };
        let above = RewardSpec {
            queue_penalty: QueuePenalty::AboveFair,
            ..whole
        };
        // A quarter of the bottleneck's deliveries, 4 min RTTs of queue:
        // the whole queue costs 0.5 * 4 = 2, the flow's own part 0.5, and
        // nothing beyond its fair share of two flows.
        let (r_whole, share, delay) = normalized_reward(&quarter, 5.0, 2, 40.0, &whole);
        let (r_own, _, _) = normalized_reward(&quarter, 5.0, 2, 40.0, &own);
        let (r_above, _, _) = normalized_reward(&quarter, 5.0, 2, 40.0, &above);
        assert!((share - 0.5).abs() < 1e-6 && (delay - 4.0).abs() < 1e-6);
        assert!((r_whole - (0.5 - 2.0)).abs() < 1e-6, "{r_whole}");
        assert!((r_own - (0.5 - 0.5)).abs() < 1e-6, "{r_own}");
        assert!((r_above - 0.5).abs() < 1e-6, "{r_above}");
        // Three quarters of two flows' deliveries: half the way from the
        // fair share to all of it.
        assert!((QueuePenalty::AboveFair.fraction(0.75, 2) - 0.5).abs() < 1e-6);
        assert_eq!(QueuePenalty::AboveFair.fraction(0.2, 3), 0.0);
        // Alone (share 1) the two are the same.
        let alone = step(2.5, 160.0, 1.0);
        for spec in [own, above] {
            assert_eq!(
                normalized_reward(&alone, 5.0, 1, 40.0, &whole),
                normalized_reward(&alone, 5.0, 1, 40.0, &spec)
            );
        }
    }

    #[test]
    fn the_reward_counts_throughput_against_the_fair_share() {
        let spec = RewardSpec::default();
        // 5 Mbit/s on a 10 Mbit/s link shared by two flows: the full share.
        let (r, share, _) = normalized_reward(&step(5.0, 0.0, 0.25), 10.0 / 2.0, 1, 40.0, &spec);
        assert!((share - 1.0).abs() < 1e-6 && (r - 1.0).abs() < 1e-6);
        // Alone, the same 5 Mbit/s is half the share.
        let (_, share, _) = normalized_reward(&step(5.0, 0.0, 0.25), 10.0, 1, 40.0, &spec);
        assert!((share - 0.5).abs() < 1e-6);
        // Taking the whole link from a competitor is capped at 2 shares.
        let (_, share, _) = normalized_reward(&step(30.0, 0.0, 0.25), 5.0, 1, 40.0, &spec);
        assert_eq!(share, 2.0);
        // 40 ms of queue over a 40 ms min RTT costs the delay weight.
        let (r, _, delay) = normalized_reward(&step(5.0, 40.0, 0.25), 5.0, 1, 40.0, &spec);
        assert!((delay - 1.0).abs() < 1e-6);
        assert!((r - (1.0 - spec.delay_weight)).abs() < 1e-6);
    }
}
