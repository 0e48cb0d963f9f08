//! Detecting a buffer-filling competitor from what one flow can see: Copa's
//! competitive-mode idea (Arun and Balakrishnan, NSDI'18), made explicit
//! with periodic drain probes in the style of BBR's ProbeRTT.
//!
//! **Why.** A ceiling taken over the min RTT holds a small queue when the
//! flow is alone, but beside a CUBIC flow that keeps a deep buffer full it
//! cannot hold a share: every clamp of `k` BDPs lets the flow deliver at
//! most `k * min_rtt / srtt` of its rate, and its rate anchor follows it
//! down (docs/TRAINING.md, "Holding a share"). A ceiling over the srtt holds
//! a share there, but alone it lets the base controller fill the buffer.
//! No single mapping serves both, and the trainer did not learn to switch
//! between them from the observation (the same section). The difference is
//! observable only by acting: a queue that the flow builds itself drains
//! when the flow sends below its share for a few round trips; a queue that
//! a buffer-filling competitor holds does not.
//!
//! **The rule.** Every [`PROBE_PERIOD_US`] or [`PROBE_PERIOD_RTTS`] min
//! RTTs, whichever is longer (on the monitor's clock, so that
//! the flows of one daemon, or of one simulated bottleneck, probe together
//! and drain each other's queue too, Copa's synchronised draining) the flow
//! *probes*: its clamp drops to [`DRAIN_GAIN`] times its current delivery
//! rate times the min RTT, below one BDP of whatever share it holds. If an
//! RTT sample comes within [`DRAINED_EXCESS`] of the min RTT, the queue
//! drained and the flow is in *default* mode. If it does not by the
//! deadline (the time the flow's own queue at the start of the probe would
//! take to drain at half the rate, twice the queueing delay plus a round
//! trip, plus the two round trips a kernel flow needs to apply the probe's
//! clamp and report an RTT from after the drain, [`SAMPLING_RTTS`]; each
//! part at most [`PROBE_MAX_US`]), and the next probe does not drain either
//! ([`CONFIRM_PROBES`]), someone else holds the queue and the flow is in
//! *competitive* mode until a later probe drains. In competitive mode probes come only
//! every [`COMPETITIVE_RECHECK`]-th period, since each one gives up share.
//!
//! The detector is pure state over the samples the datapath reports (min
//! RTT, srtt, the last RTT sample, delivered segments, the monitor's
//! timestamps); the simulator and the daemon run the same code, as they do
//! the observation builder that owns it.

/// The probe period is the longer of this, microseconds, ...
pub const PROBE_PERIOD_US: u64 = 2_000_000;
/// ... and this many min RTTs (a probe costs a few round trips, so at long
/// RTTs it comes less often).
pub const PROBE_PERIOD_RTTS: u64 = 20;
/// In competitive mode, a probe every this many periods.
pub const COMPETITIVE_RECHECK: u64 = 8;
/// The clamp during a probe, in BDPs of the flow's current delivery rate
/// over the min RTT.
pub const DRAIN_GAIN: f64 = 0.5;
/// A probe has drained the queue when an RTT sample is at most
/// `min_rtt * (1 + DRAINED_EXCESS)`.
pub const DRAINED_EXCESS: f64 = 0.25;
/// The longest probe, microseconds.
pub const PROBE_MAX_US: u64 = 1_000_000;

/// Smoothed RTTs added to a probe's deadline for the datapath's own delays.
///
/// **Why.** On a host the probe's clamp and the RTT sample that shows the
/// drain each wait for a callback, and the RTT callback comes once per
/// round trip (`tcp_rtt_estimator` calls `tcp_bpf_rtt` only when `snd_una`
/// passes `rtt_seq`): the sock_ops program applies the clamp up to a round
/// trip after the daemon writes it, and the first sample from after the
/// drain comes about a round trip after that. A daemon record of one flow
/// alone on a 12 Mbit/s, 40 ms link with a 100-packet buffer (srtt 85 ms
/// at the policy's clamp) showed the clamp applied 80 ms after the write
/// and a sample 3-4 ms above the floor 110 ms later: 190-200 ms after the
/// probe began, 10-30 ms past the deadline without this term (169 ms). Two
/// such probes in a row put the lone flow in competitive mode, and the
/// flows of the rule + hold candidate on that link fell into it one after
/// another (Jain 0.70-0.82 among three; docs/BENCHMARKS.md, "The drain
/// probe's deadline on a host"). The simulator's default datapath model
/// (`sim::DatapathModel::Callbacks`) has the same once-per-round-trip
/// callbacks, and its evaluation matrix moved the same way, less. Where a
/// queue drains, a probe still ends at the first drained sample; the term
/// lengthens only probes that do not drain.
pub const SAMPLING_RTTS: u64 = 2;

/// Consecutive undrained probes before the flow enters competitive mode.
///
/// **Why two.** On a cellular link a deep fade during a probe looks like a
/// competitor: the capacity falls as fast as the flow drains, and no RTT
/// sample reaches the floor. A competitor that fills the buffer is still
/// there one period later; a fade rarely is. With one probe, the rule alone
/// on the shared traces raised the evaluation matrix's single-flow p95
/// queueing from 242 to 289 ms (10 s windows) and from 303 to 452 ms (30 s
/// windows); with two, 237 and 354 ms, at the same share beside CUBIC in an
/// 8-BDP buffer (0.21 and 0.32 of the link, against 0.21 and 0.33).
/// Three gave no further delay gain and lost share (0.16 and 0.29).
/// docs/TRAINING.md, "A competition rule", has the commands.
pub const CONFIRM_PROBES: u32 = 2;

/// What the detector says about a flow now.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Mode {
    /// No evidence of a competitor (the last probe drained, or none yet).
    #[default]
    Default,
    /// Draining: the clamp should be [`DRAIN_GAIN`] BDPs of this rate, bytes/s.
    Probe {
        /// The flow's delivery rate when the probe began, bytes/s.
        rate_bytes_per_sec: f64,
    },
    /// The last probe did not drain the queue: a competitor holds it.
    Competitive,
}

/// The per-flow state machine (module docs).
#[derive(Clone, Debug, Default)]
pub struct CompetitionDetector {
    first_us: Option<u64>,
    period: u64,
    probe: Option<Probe>,
    /// The last two intervals' delivery rates, bytes/s (newest first).
    rates: [f64; 2],
    /// Undrained probes in a row: competitive mode from
    /// [`CONFIRM_PROBES`] on ([`Self::competitive`]).
    undrained: u32,
}

#[derive(Clone, Copy, Debug)]
struct Probe {
    rate: f64,
    deadline_us: u64,
}

/// One monitor sample, as the detector needs it.
#[derive(Clone, Copy, Debug, Default)]
pub struct DetectorSample {
    /// Monitor timestamp, microseconds.
    pub timestamp_us: u64,
    /// The kernel's min RTT, microseconds.
    pub min_rtt_us: u32,
    /// Smoothed RTT, microseconds.
    pub srtt_us: u32,
    /// The latest RTT sample, microseconds.
    pub last_rtt_us: u32,
    /// Delivery rate over the interval that ends at this sample, bytes/s.
    pub interval_rate_bytes_per_sec: f64,
    /// Length of that interval, microseconds.
    pub interval_us: u64,
}

impl CompetitionDetector {
    /// A new flow: default mode, no probe before it has run half a period.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether enough probes in a row found a queue someone else holds.
    fn competitive(&self) -> bool {
        self.undrained >= CONFIRM_PROBES
    }

    /// The mode in force for the next interval.
    pub fn mode(&self) -> Mode {
        match (self.probe, self.competitive()) {
            (Some(p), _) => Mode::Probe {
                rate_bytes_per_sec: p.rate,
            },
            (None, true) => Mode::Competitive,
            (None, false) => Mode::Default,
        }
    }

    /// Consumes one monitor sample.
    pub fn update(&mut self, s: &DetectorSample) {
        if s.interval_us > 0 {
            self.rates = [s.interval_rate_bytes_per_sec, self.rates[0]];
        }
        if s.min_rtt_us == 0 {
            return;
        }
        let min_rtt = u64::from(s.min_rtt_us);
        let first = *self.first_us.get_or_insert(s.timestamp_us);
        let pp = PROBE_PERIOD_US.max(PROBE_PERIOD_RTTS * min_rtt);
        let period = s.timestamp_us / pp;
        if let Some(p) = self.probe {
            // A sample at most DRAINED_EXCESS above the floor: the queue
            // drained, so it was (mostly) the flow's own.
            let drained = s.last_rtt_us > 0
                && f64::from(s.last_rtt_us) <= f64::from(s.min_rtt_us) * (1.0 + DRAINED_EXCESS);
            if drained {
                self.undrained = 0;
                self.probe = None;
            } else if s.timestamp_us >= p.deadline_us {
                self.undrained = self.undrained.saturating_add(1);
                self.probe = None;
            }
            self.period = period;
            return;
        }
        let new_period = period != self.period;
        self.period = period;
        let old_enough = s.timestamp_us.saturating_sub(first) >= pp / 2;
        let due = !self.competitive() || period.is_multiple_of(COMPETITIVE_RECHECK);
        let rate = self.rates[0].max(self.rates[1]);
        // A starved flow (no delivery in two intervals) probes too: its
        // clamp drops to the floor, and whether the queue drains tells it
        // who holds it.
        if new_period && old_enough && due {
            let rtt = u64::from(s.srtt_us.max(s.last_rtt_us));
            let queue = rtt.saturating_sub(min_rtt);
            // The drain's own time is bounded by PROBE_MAX_US, and the
            // datapath's delays are added after that bound, bounded alike:
            // on a long path they alone can take most of a second.
            let span = (min_rtt + 2 * queue + 2 * s.interval_us).min(PROBE_MAX_US)
                + (SAMPLING_RTTS * rtt).min(PROBE_MAX_US);
            self.probe = Some(Probe {
                rate,
                deadline_us: s.timestamp_us + span,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t_ms: u64, rtt_ms: u32) -> DetectorSample {
        DetectorSample {
            timestamp_us: t_ms * 1000,
            min_rtt_us: 40_000,
            srtt_us: rtt_ms * 1000,
            last_rtt_us: rtt_ms * 1000,
            interval_rate_bytes_per_sec: 1e6,
            interval_us: 20_000,
        }
    }

    /// Drives the detector at 20 ms intervals from `from_ms` to `to_ms`
    /// with the RTT `rtt(t_ms)`, returning the modes seen.
    fn drive(
        d: &mut CompetitionDetector,
        from_ms: u64,
        to_ms: u64,
        rtt: impl Fn(u64, Mode) -> u32,
    ) -> Vec<Mode> {
        let mut modes = Vec::new();
        let mut t = from_ms;
        while t < to_ms {
            let m = d.mode();
            d.update(&sample(t, rtt(t, m)));
            modes.push(d.mode());
            t += 20;
        }
        modes
    }

    #[test]
    fn a_queue_that_drains_in_the_probe_keeps_default_mode() {
        let mut d = CompetitionDetector::new();
        // 80 ms RTT outside probes, the floor as soon as the flow drains.
        let modes = drive(&mut d, 0, 10_000, |_, m| match m {
            Mode::Probe { .. } => 40,
            _ => 80,
        });
        assert!(modes.iter().any(|m| matches!(m, Mode::Probe { .. })));
        assert!(!modes.contains(&Mode::Competitive), "{modes:?}");
        // Probes last one interval here and come once per period.
        let probes = modes
            .iter()
            .filter(|m| matches!(m, Mode::Probe { .. }))
            .count();
        assert!((3..=5).contains(&probes), "{probes}");
    }

    #[test]
    fn a_queue_that_stays_means_competition_and_rechecks_are_rarer() {
        let mut d = CompetitionDetector::new();
        let modes = drive(&mut d, 0, 20_000, |_, _| 200);
        let starts: Vec<usize> = (1..modes.len())
            .filter(|&i| {
                !matches!(modes[i - 1], Mode::Probe { .. })
                    && matches!(modes[i], Mode::Probe { .. })
            })
            .collect();
        // Probes begin on a period boundary after half a period.
        assert_eq!(starts[0] * 20, 2000, "{starts:?}");
        // Each lasts min_rtt + 2 * queue + 2 intervals + 2 srtts = 800 ms.
        let end = |start: usize| {
            start
                + modes[start..]
                    .iter()
                    .position(|m| !matches!(m, Mode::Probe { .. }))
                    .unwrap()
        };
        assert!((39..=41).contains(&(end(starts[0]) - starts[0])));
        // One undrained probe is not enough (a fade looks the same) ...
        assert_eq!(modes[end(starts[0])], Mode::Default);
        // ... the second, one period later, is.
        assert_eq!(starts[1] * 20, 4000, "{starts:?}");
        assert_eq!(modes[end(starts[1])], Mode::Competitive);
        // Competitive from then on, rechecking every 8th period: 2 s..20 s
        // holds the probes at 2, 4 and 16 s.
        assert_eq!(starts.len(), 3, "{modes:?}");
        assert_eq!(starts[2] * 20, 16_000, "{starts:?}");
    }

    /// A lone flow on a host, driven at 20 ms intervals for `until_ms`: its
    /// RTT is `queued_ms` (floor `min_rtt_ms`) except from `lag_ms` after
    /// a probe began until the probe ends, when the drained queue shows as
    /// `drained_ms` (the program applies the probe's clamp, and reports an
    /// RTT sample, once per round trip). Returns the modes seen.
    fn lone_flow_with_lagged_samples(
        min_rtt_ms: u32,
        queued_ms: u32,
        drained_ms: u32,
        lag_ms: u64,
        until_ms: u64,
    ) -> Vec<Mode> {
        let mut d = CompetitionDetector::new();
        let mut start = None::<u64>;
        let mut modes = Vec::new();
        for t in (0..until_ms).step_by(20) {
            let probing = matches!(d.mode(), Mode::Probe { .. });
            start = match (probing, start) {
                (true, None) => Some(t),
                (true, s) => s,
                (false, _) => None,
            };
            let rtt_ms = match start {
                Some(s0) if t >= s0 + lag_ms => drained_ms,
                _ => queued_ms,
            };
            d.update(&DetectorSample {
                min_rtt_us: min_rtt_ms * 1000,
                ..sample(t, rtt_ms)
            });
            modes.push(d.mode());
        }
        modes
    }

    #[test]
    fn a_lone_flow_on_a_host_drains_though_its_samples_lag_two_round_trips() {
        // The daemon record behind SAMPLING_RTTS: srtt 85 ms at the policy's
        // clamp (a 41 ms floor), and the first sample near the floor 190 ms
        // after the probe began (one round trip until the program applied
        // the clamp, one more until an ACK sampled the drained queue). A
        // deadline without the two round trips (169 ms here) missed it on
        // every probe, and the lone flow went competitive.
        let modes = lone_flow_with_lagged_samples(41, 85, 44, 190, 20_000);
        let probes = (1..modes.len())
            .filter(|&i| {
                !matches!(modes[i - 1], Mode::Probe { .. })
                    && matches!(modes[i], Mode::Probe { .. })
            })
            .count();
        assert!(probes >= 8, "a probe every 2 s: {probes}");
        assert!(!modes.contains(&Mode::Competitive), "{modes:?}");
    }

    #[test]
    fn on_a_long_path_the_datapaths_delays_are_not_cut_by_the_drains_bound() {
        // A daemon record at a 201 ms floor, srtt 378 ms: the probe applied
        // one srtt after it began, the drained sample about 1.1 s after
        // it. The drain's own estimate alone (1.35 s) is cut to
        // PROBE_MAX_US; the two srtts for the datapath come on top of it.
        let modes = lone_flow_with_lagged_samples(201, 378, 202, 1_100, 40_000);
        assert!(modes.iter().any(|m| matches!(m, Mode::Probe { .. })));
        assert!(!modes.contains(&Mode::Competitive), "{modes:?}");
    }

    #[test]
    fn one_undrained_probe_between_drained_ones_is_a_fade_not_a_competitor() {
        let mut d = CompetitionDetector::new();
        // The probe at 4 s meets a fade (no sample near the floor); every
        // other probe drains.
        let modes = drive(&mut d, 0, 20_000, |t, m| match m {
            Mode::Probe { .. } if !(4_000..5_000).contains(&t) => 40,
            _ => 90,
        });
        assert!(!modes.contains(&Mode::Competitive), "{modes:?}");
    }

    #[test]
    fn a_competitor_that_leaves_is_noticed_at_the_next_recheck() {
        let mut d = CompetitionDetector::new();
        drive(&mut d, 0, 6_000, |_, _| 200);
        assert_eq!(d.mode(), Mode::Competitive);
        // From 7 s the queue drains whenever the flow probes.
        let modes = drive(&mut d, 6_000, 20_000, |t, m| match m {
            Mode::Probe { .. } if t >= 7_000 => 40,
            _ => 120,
        });
        assert_eq!(d.mode(), Mode::Default, "{modes:?}");
    }

    #[test]
    fn no_probe_without_an_rtt() {
        let mut d = CompetitionDetector::new();
        for t in (0..6_000).step_by(20) {
            d.update(&DetectorSample {
                min_rtt_us: 0,
                ..sample(t, 200)
            });
            assert_eq!(d.mode(), Mode::Default);
        }
    }

    #[test]
    fn at_long_rtts_probes_come_every_twenty_min_rtts() {
        let mut d = CompetitionDetector::new();
        let mut starts = Vec::new();
        let mut was_probing = false;
        for t in (0..20_000u64).step_by(20) {
            d.update(&DetectorSample {
                min_rtt_us: 200_000,
                ..sample(t, 220)
            });
            let probing = matches!(d.mode(), Mode::Probe { .. });
            if probing && !was_probing {
                starts.push(t);
            }
            was_probing = probing;
        }
        // A 4 s period (20 x 200 ms): boundaries at 4, 8, 12 and 16 s; the
        // queue (20 ms) is within DRAINED_EXCESS, so every probe drains.
        assert_eq!(starts, vec![4_000, 8_000, 12_000, 16_000]);
        assert_eq!(d.mode(), Mode::Default);
    }
}
