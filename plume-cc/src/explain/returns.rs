//! The reward split into its components, and their discounted returns.
//!
//! The training reward ([`crate::rl::env::normalized_reward`]) of one
//! interval is `clip(r_thr + r_delay + r_loss, -10, 2)` with
//! `r_thr = min(throughput / fair share, 2)`,
//! `r_delay = -delay_weight * queueing delay / min RTT * f` (`f` the part
//! of the queue the run's [`crate::rl::env::QueuePenalty`] counts: 1 for
//! the default `whole`) and
//! `r_loss = -loss_weight * loss rate`. The upper clip never binds (the
//! share is at most 2 and the penalties are never positive); the lower one
//! does on a deep queue over a short path. Its effect is kept as a fourth
//! part, `r_clip = reward - (r_thr + r_delay + r_loss)`, so the parts of
//! every step, and hence of every return, add up to the training reward's.
//! The explanations predict the three named components; `r_clip` is
//! reported (how often and how much it bites) but not predicted.

#[cfg(doc)]
use crate::rl::env::normalized_reward;
use crate::rl::env::RewardSpec;
use crate::rl::StepResult;

/// The training reward's clip (see [`normalized_reward`]).
pub const REWARD_RANGE: (f64, f64) = (-10.0, 2.0);

/// One interval's reward, split (module docs), with the components in
/// physical units.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepParts {
    /// `min(throughput / fair share, 2)`.
    pub thr: f64,
    /// `-delay_weight * queueing delay / min RTT`, times the part of the
    /// queue the run's queue penalty counts.
    pub delay: f64,
    /// `-loss_weight * loss rate`.
    pub loss: f64,
    /// What the reward's clip adds (0 unless it binds).
    pub clip: f64,
    /// The training reward itself, as [`normalized_reward`] returns it.
    pub reward: f64,
    /// Goodput, Mbit/s.
    pub mbps: f64,
    /// Queueing delay (mean RTT minus min RTT), ms.
    pub qdelay_ms: f64,
    /// Loss rate.
    pub loss_rate: f64,
}

impl StepParts {
    /// The parts of `step`'s reward on a path of `min_rtt_ms` with a fair
    /// share of `fair_share_mbps` among `flows` active flows, under `spec`
    /// (the episode's weights).
    pub fn of(
        step: &StepResult,
        fair_share_mbps: f64,
        flows: usize,
        min_rtt_ms: f64,
        spec: &RewardSpec,
    ) -> Self {
        // The formula of `normalized_reward`, in f64 so that the parts add
        // up exactly; `the_parts_match_the_training_reward` checks the two
        // agree to f32 precision.
        let c = &step.components;
        let thr = (f64::from(c.throughput_mbps) / fair_share_mbps.max(1e-3)).min(2.0);
        // The f32 ratio, as `normalized_reward` computes it.
        let ratio = (f64::from(c.queueing_delay_ms) / min_rtt_ms.max(1e-3)) as f32;
        let penalised = ratio * spec.queue_penalty.fraction(c.bottleneck_share, flows);
        let delay = -f64::from(spec.delay_weight) * f64::from(penalised);
        let loss = -f64::from(spec.loss_weight) * f64::from(c.loss_rate);
        let sum = thr + delay + loss;
        let reward = sum.clamp(REWARD_RANGE.0, REWARD_RANGE.1);
        Self {
            thr,
            delay,
            loss,
            clip: reward - sum,
            reward,
            mbps: f64::from(c.throughput_mbps),
            qdelay_ms: f64::from(c.queueing_delay_ms),
            loss_rate: f64::from(c.loss_rate),
        }
    }

    /// The three predicted components in [`super::COMPONENTS`] order, reward units.
    pub fn reward_units(&self) -> [f64; 3] {
        [self.thr, self.delay, self.loss]
    }

    /// The same components in physical units (Mbit/s, ms, loss rate).
    pub fn physical(&self) -> [f64; 3] {
        [self.mbps, self.qdelay_ms, self.loss_rate]
    }
}

/// Discounted sums of the parts over a horizon from one step on.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ComponentReturns {
    /// Discounted sum of each component, reward units ([`super::COMPONENTS`] order).
    pub reward_units: [f64; 3],
    /// Discounted sum of the clip's part.
    pub clip: f64,
    /// Discounted sum of the training reward.
    pub total: f64,
    /// Discount-weighted mean of each component in physical units
    /// (Mbit/s, ms, loss rate): what the next ~second looks like.
    pub physical: [f64; 3],
    /// Steps summed (fewer than the horizon at the end of an episode).
    pub steps: usize,
}

impl ComponentReturns {
    /// The three explained returns, reward units: with `delay_counts_clip`
    /// the clip's part is counted in the delay component. The clip binds
    /// only on a deep queue: the throughput part is at least 0 and the
    /// loss part at least `-loss_weight` (-2), so the sum falls under -10
    /// only with a delay part under -8, and what the clip removes is delay
    /// penalty the training reward does not count. Counted in, the three
    /// components add up to the training reward's return with no fourth
    /// part.
    pub fn explained(&self, delay_counts_clip: bool) -> [f64; 3] {
        let mut r = self.reward_units;
        if delay_counts_clip {
            r[1] += self.clip;
        }
        r
    }
}

/// The returns of `parts[from..]` over at most `steps` intervals with
/// discount `gamma`: `sum_k gamma^k x[from + k]`, and for the physical
/// units that sum over `sum_k gamma^k`.
pub fn returns_from(
    parts: &[StepParts],
    from: usize,
    steps: usize,
    gamma: f64,
) -> ComponentReturns {
    let mut out = ComponentReturns::default();
    let mut w = 1.0;
    let mut wsum = 0.0;
    for p in parts.iter().skip(from).take(steps) {
        for (acc, v) in out.reward_units.iter_mut().zip(p.reward_units()) {
            *acc += w * v;
        }
        for (acc, v) in out.physical.iter_mut().zip(p.physical()) {
            *acc += w * v;
        }
        out.clip += w * p.clip;
        out.total += w * p.reward;
        wsum += w;
        w *= gamma;
        out.steps += 1;
    }
    if wsum > 0.0 {
        for v in &mut out.physical {
            *v /= wsum;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::observation::OBSERVATION_LEN;
    use crate::rl::RewardComponents;

    fn step(mbps: f32, qdelay_ms: f32, loss: f32) -> StepResult {
        StepResult {
            observation: [0.0; OBSERVATION_LEN],
            components: RewardComponents {
                throughput_mbps: mbps,
                queueing_delay_ms: qdelay_ms,
                loss_rate: loss,
                bottleneck_share: 1.0,
            },
            done: false,
            now_us: 0,
            interval_us: 20_000,
            intervals: 1,
        }
    }

    #[test]
    fn the_parts_add_up_to_the_reward_even_when_it_is_clipped() {
        let spec = RewardSpec::default();
        // Plain: no clip.
        let p = StepParts::of(&step(5.0, 20.0, 0.01), 10.0, 1, 40.0, &spec);
        assert_eq!(p.clip, 0.0);
        assert!((p.thr - 0.5).abs() < 1e-6 && (p.delay + 0.25).abs() < 1e-6);
        assert!((p.loss + 0.02).abs() < 1e-6);
        // 2 s of queue on a 10 ms path: the reward is clipped at -10.
        let p = StepParts::of(&step(5.0, 2000.0, 0.0), 10.0, 1, 10.0, &spec);
        assert_eq!(p.reward, -10.0);
        assert!(p.clip > 80.0, "{p:?}");
        assert!((p.thr + p.delay + p.loss + p.clip - p.reward).abs() < 1e-9);
    }

    #[test]
    fn the_parts_match_the_training_reward() {
        use crate::rl::env::normalized_reward;
        for (mbps, q, loss, fair, rtt, w) in [
            (5.0, 20.0, 0.01, 10.0, 40.0, 0.5),
            (30.0, 3.0, 0.0, 5.0, 10.0, 2.0),
            (0.5, 900.0, 0.2, 12.0, 10.0, 1.0),
            (0.0, 0.0, 0.0, 1.0, 200.0, 0.02),
        ] {
            let spec = RewardSpec {
                delay_weight: w,
                ..RewardSpec::default()
            };
            let s = step(mbps, q, loss);
            let p = StepParts::of(&s, fair, 1, rtt, &spec);
            let (r, _, _) = normalized_reward(&s, fair, 1, rtt, &spec);
            assert!(
                (p.reward - f64::from(r)).abs() < 1e-5 * (1.0 + p.reward.abs()),
                "{p:?} vs {r}"
            );
            assert!((p.thr + p.delay + p.loss + p.clip - p.reward).abs() < 1e-9);
        }
    }

    #[test]
    fn returns_are_discounted_truncated_sums() {
        let spec = RewardSpec::default();
        let parts: Vec<StepParts> = (0..5)
            .map(|i| StepParts::of(&step(i as f32, 0.0, 0.0), 4.0, 1, 40.0, &spec))
            .collect();
        let r = returns_from(&parts, 1, 3, 0.5);
        // shares 0.25, 0.5, 0.75 at weights 1, 0.5, 0.25.
        assert!((r.reward_units[0] - (0.25 + 0.25 + 0.1875)).abs() < 1e-9);
        assert_eq!(r.steps, 3);
        // Mbit/s 1, 2, 3 weighted: (1 + 1 + 0.75) / 1.75.
        assert!((r.physical[0] - 2.75 / 1.75).abs() < 1e-9);
        // Past the end: only what is left.
        // With a clipped step, the explained parts (the clip counted in
        // the delay) add up to the training reward's return.
        let mut clipped = parts.clone();
        clipped[2] = StepParts::of(&step(1.0, 2000.0, 0.01), 4.0, 1, 10.0, &spec);
        let r = returns_from(&clipped, 0, 5, 0.5);
        assert!(r.clip > 0.0);
        let [thr, delay, loss] = r.explained(true);
        assert!((thr + delay + loss - r.total).abs() < 1e-9, "{r:?}");
        assert_eq!(r.explained(false), r.reward_units);
        assert_eq!(returns_from(&parts, 4, 3, 0.5).steps, 1);
        assert_eq!(returns_from(&parts, 5, 3, 0.5).steps, 0);
    }
}
