//! When a policy decides for a flow: at every monitor interval, or once per
//! copy of the flow's statistics.
//!
//! Why: the kernel runs the sock_ops program about once per round trip
//! (`BPF_SOCK_OPS_RTT_CB` fires from `tcp_rtt_estimator` only when
//! `after(tp->snd_una, tp->rtt_seq)`, i.e. once per window of data), and
//! that callback both copies the flow's statistics and applies the target
//! written since the last one (docs/TRAINING.md, "The datapath sees a flow
//! once per round trip"). A daemon that decides every 20 ms interval on a
//! 200 ms path writes ten targets per round trip, of which only the last
//! one before the callback is applied: the other nine actions have no
//! effect, yet training credits each with the reward that follows. With
//! [`Cadence::PerCopy`] a flow's decision is taken when a new copy of its
//! statistics is seen and held (re-written unchanged, so the datapath's
//! staleness check stays fed) until the next one, in the simulator and in
//! the daemon alike: one action per round trip, each credited with the
//! round trip it governs.

use serde::{Deserialize, Serialize};

/// When a policy decides (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Cadence {
    /// A new decision at every monitor interval (every policy before this
    /// field existed).
    #[default]
    EveryInterval,
    /// A new decision when the flow's statistics were copied again since
    /// the last one (about once per round trip), or after
    /// [`MAX_HELD_INTERVALS`] intervals without a copy.
    PerCopy,
}

impl Cadence {
    /// The spelling of the command line and the policy file.
    pub fn name(self) -> &'static str {
        match self {
            Self::EveryInterval => "every-interval",
            Self::PerCopy => "per-copy",
        }
    }

    /// True for the default (left out of policy files, so files written
    /// before the field existed stay byte for byte as they were).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

impl std::str::FromStr for Cadence {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "every-interval" => Ok(Self::EveryInterval),
            "per-copy" => Ok(Self::PerCopy),
            other => Err(format!(
                "unknown decision cadence `{other}` (expected every-interval or per-copy)"
            )),
        }
    }
}

/// Longest a per-copy decision is held without a new copy, in monitor
/// intervals (500 ms at 20 ms): a flow whose callbacks stop (an idle or
/// RTO-bound flow, a bloated queue of seconds) still gets a decision now
/// and then, which takes effect at its next callback.
pub const MAX_HELD_INTERVALS: u32 = 25;

/// One flow's decision clock: a small pure state machine fed each poll's
/// copy time. The simulator's environment and the daemon's learned policy
/// both run one per flow, so they decide at the same polls, except for the
/// daemon's phase of the first hold ([`DecisionClock::for_flow`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecisionClock {
    /// Copy time of the statistics the last decision saw (microseconds).
    last_copy_us: u64,
    /// Polls since the last decision.
    held: u32,
    /// False until the first decision.
    started: bool,
    /// Polls by which the first decision's hold is shortened when no copy
    /// comes (below [`MAX_HELD_INTERVALS`]; 0 for [`Default`]).
    phase: u32,
}

impl DecisionClock {
    /// The daemon's clock for the flow of socket cookie `cookie`: its first
    /// decision is held at most `MAX_HELD_INTERVALS - phase` polls without a
    /// copy, for a phase in `0..MAX_HELD_INTERVALS` taken from a hash of the
    /// cookie; every later hold is the usual one.
    ///
    /// Why: flows first seen at the same poll (thousands of idle
    /// connections opened together, or every flow adopted after a daemon
    /// restart) that then get no callback would otherwise all be re-decided
    /// at the same poll every `MAX_HELD_INTERVALS`, a forward of every one
    /// of them in one step in 25, which is the step's 99th percentile
    /// (docs/BENCHMARKS.md, "Only the due flows through the forward"). The
    /// phase spreads them over 25 polls, and keeps them spread since each
    /// later forced decision comes `MAX_HELD_INTERVALS` after the last.
    /// The simulator keeps phase 0 ([`Default`]): training, and its
    /// reproduction hashes, are unchanged; a deployed flow differs from a
    /// simulated one only when it gets no copy within its shortened first
    /// hold, and then by one earlier decision.
    pub fn for_flow(cookie: u64) -> Self {
        // A multiplicative hash (Knuth's): socket cookies come from one
        // kernel counter, so a controlled cgroup's may be evenly strided.
        let h = (cookie.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32;
        Self {
            phase: h % MAX_HELD_INTERVALS,
            ..Self::default()
        }
    }

    /// Whether a decision is due at a poll that read statistics copied at
    /// `copy_us` (0: unknown, which is always due), and the clock's advance
    /// past this poll.
    pub fn due(&mut self, cadence: Cadence, copy_us: u64) -> bool {
        let due = match cadence {
            Cadence::EveryInterval => true,
            Cadence::PerCopy => {
                !self.started
                    || copy_us == 0
                    || copy_us != self.last_copy_us
                    || self.held + 1 >= MAX_HELD_INTERVALS
            }
        };
        if due {
            self.decide_now(copy_us);
        } else {
            self.held += 1;
        }
        due
    }

    /// Records a decision taken now on statistics copied at `copy_us`:
    /// what [`Self::due`] does when one is due, and what the explanations'
    /// contrasts (`explain::rollout`), which start and end at fixed
    /// intervals, call whatever `due` would say.
    pub fn decide_now(&mut self, copy_us: u64) {
        // The first hold starts `phase` polls in (see `for_flow`).
        self.held = if self.started { 0 } else { self.phase };
        self.started = true;
        self.last_copy_us = copy_us;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_interval_is_always_due() {
        let mut c = DecisionClock::default();
        assert!((0..5).all(|_| c.due(Cadence::EveryInterval, 7)));
    }

    #[test]
    fn per_copy_decides_on_the_first_poll_and_on_each_new_copy() {
        let mut c = DecisionClock::default();
        // Copies at 0.1 s and 0.3 s, polled every 20 ms.
        let polls = [100_000, 100_000, 100_000, 300_000, 300_000];
        let due: Vec<bool> = polls.iter().map(|&t| c.due(Cadence::PerCopy, t)).collect();
        assert_eq!(due, [true, false, false, true, false]);
    }

    #[test]
    fn per_copy_decides_at_least_every_max_held_intervals() {
        let mut c = DecisionClock::default();
        assert!(c.due(Cadence::PerCopy, 5));
        let gaps: Vec<usize> = (0..3 * MAX_HELD_INTERVALS)
            .map(|_| c.due(Cadence::PerCopy, 5))
            .enumerate()
            .filter_map(|(i, d)| d.then_some(i))
            .collect();
        let n = MAX_HELD_INTERVALS as usize;
        assert_eq!(gaps, [n - 1, 2 * n - 1, 3 * n - 1]);
    }

    /// A flow's phase shortens only its first hold without a copy; the
    /// forced decisions of flows first seen together spread over every
    /// residue of `MAX_HELD_INTERVALS`, and the default clock (the
    /// simulator's) has none.
    #[test]
    fn the_phase_shortens_the_first_hold_only_and_spreads_flows_seen_together() {
        let n = MAX_HELD_INTERVALS as usize;
        let forced = |mut c: DecisionClock| -> Vec<usize> {
            (0..3 * n)
                .map(|_| c.due(Cadence::PerCopy, 5))
                .enumerate()
                .filter_map(|(i, d)| d.then_some(i))
                .collect()
        };
        assert_eq!(forced(DecisionClock::default()), [0, n, 2 * n]);
        let mut polls = std::collections::BTreeMap::new();
        for cookie in 4096..4096 + 10_000u64 {
            let c = DecisionClock::for_flow(cookie);
            let p = c.phase as usize;
            assert!(p < n);
            let f = forced(c);
            assert_eq!(f[..3], [0, n - p, 2 * n - p], "cookie {cookie}");
            *polls.entry(f[1]).or_insert(0usize) += 1;
        }
        // 10,000 flows seen at poll 0: their first forced decisions fall on
        // all 25 polls 1..=25, none with more than twice its share.
        assert_eq!(polls.len(), n, "{polls:?}");
        assert!(polls.values().all(|&k| k <= 2 * 10_000 / n), "{polls:?}");
        // A copy ends the shortened hold as it ends any other.
        let mut c = DecisionClock::for_flow(4096);
        assert!(c.due(Cadence::PerCopy, 5));
        assert!(c.due(Cadence::PerCopy, 6));
        let after_copy: Vec<bool> = (0..n).map(|_| c.due(Cadence::PerCopy, 6)).collect();
        assert_eq!(after_copy.iter().position(|&d| d), Some(n - 1));
    }

    #[test]
    fn a_decision_taken_now_restarts_the_hold() {
        let mut c = DecisionClock::default();
        assert!(c.due(Cadence::PerCopy, 100));
        assert!(!c.due(Cadence::PerCopy, 100));
        c.decide_now(200);
        // The copy it decided on is not new any more; the hold restarted.
        assert!(!c.due(Cadence::PerCopy, 200));
        let gap = (0..MAX_HELD_INTERVALS)
            .position(|_| c.due(Cadence::PerCopy, 200))
            .unwrap();
        assert_eq!(gap as u32, MAX_HELD_INTERVALS - 2);
    }

    #[test]
    fn an_unknown_copy_time_is_always_due() {
        let mut c = DecisionClock::default();
        assert!((0..4).all(|_| c.due(Cadence::PerCopy, 0)));
    }

    #[test]
    fn names_round_trip() {
        for c in [Cadence::EveryInterval, Cadence::PerCopy] {
            assert_eq!(c.name().parse::<Cadence>(), Ok(c));
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.name()));
        }
        assert!("sometimes".parse::<Cadence>().is_err());
    }
}
