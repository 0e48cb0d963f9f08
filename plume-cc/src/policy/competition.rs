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
//! *probes*: its clamp (or, under `drain_by_pacing`, its pacing cap) drops
//! to a drain gain ([`DRAIN_GAIN`] unless the rule sets
//! `drain_gain`) times its current delivery rate (times the min RTT),
//! below one BDP of whatever share it holds. If an
//! RTT sample comes within [`DRAINED_EXCESS`] of the min RTT (or within
//! [`DRAINED_QUEUE_SHARE`] of the largest queue since the probe began, if
//! that is more), the queue
//! drained and the flow is in *default* mode. If it does not by the
//! deadline (the time the flow's own queue would take to drain at the
//! drain gain, the largest queueing delay since the probe began over one
//! less the gain, plus a round trip, plus the two round trips a kernel flow needs to apply the
//! probe's limit and report an RTT from after the drain, [`SAMPLING_RTTS`];
//! each part at most [`PROBE_MAX_US`]; `probe_span_us`), and the next probe
//! does not drain either ([`CONFIRM_PROBES`]; a probe during which the
//! flow's packets in flight did not shrink does not count,
//! `CompetitionDetector::counts_as_undrained`), someone else holds the
//! queue and the flow is in
//! *competitive* mode until a later probe drains. In competitive mode probes come only
//! every [`COMPETITIVE_RECHECK`]-th period, since each one gives up share.
//! Competitive mode also says whether the flow loses at least
//! [`LOSSY_SHARE`] of what it delivers (a competitor that does not back off
//! on loss, such as BBR; `Mode::Competitive { lossy }`); then one drained
//! probe is not enough to leave: the next period's probe must drain too,
//! since two BBR flows drain the queue together in their ProbeRTT.
//! In default mode a flow whose last probe drained probes only on even
//! periods ([`PROBE_BACKOFF_LOG2`], which says why two probes in a row
//! still always include one that every flow makes); a rise of its srtt or
//! a fall of its rate since that probe began ([`REARM_SRTT_GROWTH`],
//! [`REARM_RATE_FALL`]) brings it back to every period.
//! After a probe that drained, the flow is in [`Mode::Resume`] for one
//! smoothed RTT, in which a probe by pacing lifts its low pacing cap at
//! once.
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
/// over the min RTT (or the pacing cap, as a share of that rate), unless
/// the rule sets its own (`CompetitionRule::drain_gain`).
pub const DRAIN_GAIN: f64 = 0.5;
/// A probe has drained the queue when an RTT sample is at most
/// `min_rtt * (1 + DRAINED_EXCESS)`.
pub const DRAINED_EXCESS: f64 = 0.25;

/// ... or at most `min_rtt + DRAINED_QUEUE_SHARE * queue`, `queue` being
/// the largest queueing delay since the probe began, if that is more: a
/// probe that removed three quarters of the queue drained it. The deadline
/// follows that queue up too: a record alone on the TMobile LTE uplink
/// showed the RTT rise from 87 to 121 ms in a probe (the link slowed) and
/// the drained sample (47 ms) come 10 ms after a deadline computed from
/// the queue at the start.
///
/// **Why.** On a cellular path an empty queue does not give RTT samples at
/// the floor: a packet waits for the link's next delivery opportunity, and
/// the floor is the luckiest sample of the flow's life. Daemon records
/// alone on the TMobile UMTS downlink and LTE uplink (unlimited buffers)
/// showed probes that took the RTT from 110-180 ms down to 54-60 ms, a
/// 41 ms floor, counted as undrained (the absolute test's bound: 51 ms);
/// two in a row put the lone flow in competitive mode and CUBIC then filled
/// the buffer. Beside a buffer filler the queue does not shrink that far:
/// records beside one CUBIC flow showed probes ending at 58-60 ms from
/// 72-81 ms (1 BDP, 41 ms of buffer; a quarter of the queue is 8-10 ms,
/// under the absolute bound, so the test there is as before) and at
/// 151-153 ms from 146-155 ms (4 BDP). docs/BENCHMARKS.md, "A probe's rate
/// and its drained test on a bursty path".
pub const DRAINED_QUEUE_SHARE: f64 = 0.25;
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

/// An undrained probe counts only if the flow's packets in flight ended it
/// at most this share of what they were when it began
/// ([`CompetitionDetector::counts_as_undrained`]).
pub const INFLIGHT_SHRINK: f64 = 0.9;

/// A probe's rate is the flow's deliveries over at least this many
/// smoothed RTTs before it ([`CompetitionDetector::recent_rate`]).
///
/// **Why not the last rate sample.** The probe paces at [`DRAIN_GAIN`]
/// times the rate it starts from, which must be below what the link gives
/// the flow, or the queue cannot drain. The kernel's rate samples and the
/// deliveries of one poll interval both jump on a bursty path: a daemon
/// record alone on the TMobile UMTS downlink (about 1.9 Mbit/s, unlimited
/// buffer) showed a probe begin from the larger of the last two interval
/// rates, 4.5 Mbit/s, pace at 2.27 Mbit/s, above the link, and fail; with
/// the probe before it, the flow went competitive and CUBIC filled the
/// buffer (p95 11-14 s; docs/BENCHMARKS.md, "A probe's rate and its
/// drained test on a bursty path"). Deliveries over two round trips count every ACK burst of the
/// span once, and on a steady path they are the same rate.
pub const RATE_SPAN_SRTTS: u64 = 2;

/// Polls of deliveries the detector keeps for [`RATE_SPAN_SRTTS`]: 1.28 s
/// at the daemon's 20 ms interval; a longer span takes all of them.
const RECENT_POLLS: usize = 64;

/// A flow whose probes drain probes less often: after `k` drained probes
/// in a row, only on periods that are multiples of
/// `2^min(k, PROBE_BACKOFF_LOG2)`.
///
/// **Why fewer.** Each probe costs a lone flow throughput: the queue it
/// drains was feeding the link, and the flow stays below its rate until
/// an RTT sample from after the drain comes back, a round trip or two
/// later. A daemon record alone on a 12 Mbit/s, 40 ms link (2 BDP of
/// buffer) showed 0.2-0.25 s at half rate every 2 s; the candidate policy
/// used 94.9-95.9% of the link where BBR used 97.5% and the policy
/// without the rule 98% (docs/BENCHMARKS.md, "Fewer probes while they
/// drain").
///
/// **Why one doubling, not more.** Synchronised draining needs the flows
/// on a bottleneck to probe together. With one doubling every
/// default-mode flow probes on every even period, and any two probes in a
/// row of any flow include an even one, so two undrained probes in a row
/// ([`CONFIRM_PROBES`]) always include one that every default-mode flow
/// made too. With spacings of four periods (a second doubling) a third
/// flow arriving beside two backed-off ones probed alone twice, did not
/// drain their queue, and went competitive (both records of three flows,
/// 100 packets, 10 s apart; Jain 0.98 only because all three then ended
/// up CUBIC), and a first flow still re-arming beside a backed-off second
/// did the same. Unit test
/// `a_newcomer_beside_a_backed_off_flow_meets_it_on_every_second_probe`.
pub const PROBE_BACKOFF_LOG2: u32 = 1;
/// The backoff ends when the srtt grows past this factor of the srtt at
/// the start of the last drained probe (a competitor that queues) ...
pub const REARM_SRTT_GROWTH: f64 = 1.5;
/// ... or the flow's rate falls below that probe's rate over this factor
/// (a competitor in a buffer the flow already kept full).
pub const REARM_RATE_FALL: f64 = 1.5;
/// The rates of the re-arm test are over this many srtts, and the test
/// waits two more after a drained probe (whose own low rate is in them).
///
/// **Why not two, as a probe's own rate.** The kernel's deliveries come
/// in one burst per round trip, so the deliveries over two srtts of 20 ms
/// polls hold two or three bursts, 0.9-1.4x the rate: on the kernel, a
/// test over two ended the backoff after every probe.
pub const REARM_SPAN_SRTTS: u64 = 8;

/// In competitive mode, the share of its deliveries a flow retransmits at
/// or above which its competitor counts as loss-insensitive
/// ([`Mode::Competitive`]'s `lossy`).
///
/// **Why 1%.** Over a CUBIC base in competitive mode, daemon records on the
/// 12 Mbit/s, 40 ms link showed 1-4% (0.9-4.3% per 2 s) beside one BBR
/// flow in a 1-BDP buffer, against 0-0.4% beside one CUBIC flow (1 and 4
/// BDP) once the slow start that follows the lift had passed
/// ([`LOSSY_GRACE_US`]): BBR(v1) keeps its two BDPs in flight whatever it
/// loses, CUBIC backs off. docs/BENCHMARKS.md, "A competitive controller".
pub const LOSSY_SHARE: f64 = 0.01;
/// The loss test starts this long into competitive mode, microseconds, or
/// [`LOSSY_GRACE_SRTTS`] smoothed RTTs if that is longer: the lift of the
/// limits lets the base slow-start into the full queue, and beside CUBIC
/// too that overshoot and its recovery lose 1-12% of what the flow
/// delivers over 2 s windows, for a time that grows with the round trip:
/// up to 2 s after the lift in a 1-BDP buffer (srtt about 60 ms), up to
/// 4 s in a 4-BDP one (srtt about 180 ms), where a fixed 2 s grace let one
/// of two runs count as lossy (docs/BENCHMARKS.md, "A competitive
/// controller"). Beside BBR the loss does not end, and a verdict 2 s in
/// leaves the competitive controller more of the race.
pub const LOSSY_GRACE_US: u64 = 2_000_000;
/// ... the grace in smoothed RTTs (at entry).
pub const LOSSY_GRACE_SRTTS: u64 = 25;
/// ... and decides only after this many segments delivered since.
pub const LOSSY_MIN_SEGMENTS: u32 = 200;

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

/// How long a probe may wait for a drained sample, microseconds, on a path
/// with floor `min_rtt` whose RTT is `rtt` (the largest since the probe
/// began) at a poll interval of `interval`, sending at `gain` times its
/// rate: the time the queue would take to drain, the queueing delay over
/// `1 - gain` (twice it at half the rate), plus a round trip and two
/// intervals, and the two round trips of [`SAMPLING_RTTS`]; each part at
/// most [`PROBE_MAX_US`], since on a long path the datapath's delays alone
/// can take most of a second.
fn probe_span_us(min_rtt: u64, rtt: u64, interval: u64, gain: f64) -> u64 {
    let queue = rtt.saturating_sub(min_rtt);
    let drain = (queue as f64 / (1.0 - gain)).min(PROBE_MAX_US as f64) as u64;
    (min_rtt + drain + 2 * interval).min(PROBE_MAX_US) + (SAMPLING_RTTS * rtt).min(PROBE_MAX_US)
}

/// What the detector says about a flow now.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Mode {
    /// No evidence of a competitor (the last probe drained, or none yet).
    #[default]
    Default,
    /// Draining: the clamp should be the drain gain's BDPs of this rate
    /// (or the pacing cap that share of it), bytes/s.
    Probe {
        /// The flow's delivery rate when the probe began, bytes/s.
        rate_bytes_per_sec: f64,
    },
    /// The last probe did not drain the queue: a competitor holds it.
    Competitive {
        /// The flow has lost at least [`LOSSY_SHARE`] of what it delivered
        /// since competitive mode began (after [`LOSSY_GRACE_US`]): the
        /// competitor does not back off on loss (BBR-like).
        lossy: bool,
    },
    /// Default mode in the smoothed RTT after a probe that drained: the
    /// limits the probe lowered return at once rather than in steps.
    Resume,
}

/// The loss test of competitive mode ([`CompetitionDetector::track_loss`]).
#[derive(Clone, Copy, Debug)]
enum LossCount {
    /// In the grace after competitive mode began, until this monitor time,
    /// microseconds.
    Grace { until_us: u64 },
    /// Counting from the grace's end, when the flow had retransmitted
    /// `retrans` and delivered `delivered` segments (cumulative).
    From { retrans: u32, delivered: u32 },
}

/// The per-flow state machine (module docs).
#[derive(Clone, Debug)]
pub struct CompetitionDetector {
    /// The share of its rate the flow sends at in a probe
    /// ([`DRAIN_GAIN`] by default): the probe's deadline allows for it.
    drain_gain: f64,
    first_us: Option<u64>,
    period: u64,
    probe: Option<Probe>,
    /// The last polls' (interval, delivered bytes), a ring; `recent_len`
    /// of them are filled, the newest at `recent_at`.
    recent: [(u64, f64); RECENT_POLLS],
    recent_at: usize,
    recent_len: usize,
    /// Undrained probes in a row: competitive mode from
    /// [`CONFIRM_PROBES`] on ([`Self::competitive`]).
    undrained: u32,
    /// Drained probes in a row, at most [`PROBE_BACKOFF_LOG2`]: in default
    /// mode the flow probes every `2^calm` periods.
    calm: u32,
    /// The srtt, microseconds, and the rate, bytes/s, when the last drained
    /// probe began: a later srtt above [`REARM_SRTT_GROWTH`] times it or a
    /// rate below it divided by [`REARM_RATE_FALL`] ends the backoff.
    calm_srtt_us: u32,
    calm_rate: f64,
    /// [`Mode::Resume`] until this monitor time, microseconds.
    resume_until_us: u64,
    resume: bool,
    /// No re-arm test before this monitor time, microseconds.
    calm_check_from_us: u64,
    /// The loss test of competitive mode (none outside competitive mode).
    loss: Option<LossCount>,
    /// The loss test found a loss-insensitive competitor
    /// ([`Self::track_loss`]).
    lossy: bool,
    /// A probe drained in lossy competitive mode; the next period's probe
    /// decides whether the flow leaves it.
    exit_pending: bool,
}

#[derive(Clone, Copy, Debug)]
struct Probe {
    rate: f64,
    start_us: u64,
    /// The poll interval when it began, microseconds.
    interval_us: u64,
    /// The largest of the srtt and the RTT sample since it began,
    /// microseconds: its deadline and its drained bound follow the queue
    /// up (a fade during the probe), never down.
    rtt_us: u64,
    /// The flow's packets in flight when the probe began.
    packets_out: u32,
    /// The srtt when it began, microseconds.
    start_srtt_us: u32,
    /// The flow's rate over [`REARM_SPAN_SRTTS`] when it began, bytes/s.
    long_rate: f64,
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
    /// Bytes delivered in the interval that ends at this sample.
    pub interval_delivered_bytes: f64,
    /// Length of that interval, microseconds.
    pub interval_us: u64,
    /// The flow's packets in flight (the datapath's last copy).
    pub packets_out: u32,
    /// Segments retransmitted, cumulative (the kernel's `total_retrans`).
    pub total_retrans: u32,
    /// Segments delivered, cumulative (the kernel's `delivered`).
    pub delivered_segments: u32,
}

impl Default for CompetitionDetector {
    fn default() -> Self {
        Self {
            drain_gain: DRAIN_GAIN,
            first_us: None,
            period: 0,
            probe: None,
            recent: [(0, 0.0); RECENT_POLLS],
            recent_at: 0,
            recent_len: 0,
            undrained: 0,
            calm: 0,
            calm_srtt_us: 0,
            calm_rate: 0.0,
            resume_until_us: 0,
            resume: false,
            calm_check_from_us: 0,
            loss: None,
            lossy: false,
            exit_pending: false,
        }
    }
}

impl CompetitionDetector {
    /// A new flow: default mode, no probe before it has run half a period.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new flow whose probes send at `gain` times its rate (the rule's
    /// `drain_gain`, in `(0, 1)`), with deadlines to match.
    pub fn with_drain_gain(gain: f64) -> Self {
        Self {
            drain_gain: gain,
            ..Self::default()
        }
    }

    /// A new flow's detector with this one's configuration (its drain
    /// gain): what a reset or a restart of the detector starts from.
    pub fn renewed(&self) -> Self {
        Self::with_drain_gain(self.drain_gain)
    }

    /// The share of its rate the flow sends at in a probe.
    pub fn drain_gain(&self) -> f64 {
        self.drain_gain
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
            (None, true) => Mode::Competitive { lossy: self.lossy },
            (None, false) if self.resume => Mode::Resume,
            (None, false) => Mode::Default,
        }
    }

    /// The flow's delivery rate, bytes/s, over its newest polls spanning
    /// at least `span_us` (all it keeps if they span less); 0 before any.
    fn recent_rate(&self, span_us: u64) -> f64 {
        let (mut us, mut bytes) = (0u64, 0.0);
        for k in 0..self.recent_len {
            let (dt, b) = self.recent[(self.recent_at + RECENT_POLLS - k) % RECENT_POLLS];
            us += dt;
            bytes += b;
            if us >= span_us {
                break;
            }
        }
        if us > 0 {
            bytes * 1e6 / us as f64
        } else {
            0.0
        }
    }

    /// Whether a probe that reached its deadline undrained counts towards
    /// competitive mode: only if the flow's packets in flight shrank to at
    /// most [`INFLIGHT_SHRINK`] of what they were when it began. One in
    /// which they did not is inconclusive (the count of undrained probes
    /// stays).
    ///
    /// **Why.** A probe sends at half the flow's rate. Beside a buffer
    /// filler the link still delivers what the flow sends, so its packets
    /// in flight shrink with its rate (or, in a probe by the clamp, drop to
    /// the clamp at once), whether or not the shared queue drains: records
    /// beside one CUBIC flow showed them end at 0.33-0.55 of the start
    /// (1 and 4 BDP), and at 0.87 where a low clamp already bound the
    /// window (15 to 13; with 0.75 here that probe was inconclusive and
    /// competitive mode came a period later). Alone through outages and
    /// fades they ended at 0.94-1.25 of the start. They stay or grow when
    /// the link delivers no more than that half: a fade or an outage on
    /// the flow's own path (nothing is delivered, so nothing more is
    /// sent), or a competitor that takes the link faster than the flow
    /// yields it (one in slow start), which a later probe still finds. A
    /// daemon record alone on the TMobile LTE uplink (unlimited buffer)
    /// showed the trace's outage at 18-22 s span two probes; in the second
    /// the RTT only rose and the packets in flight stayed at 22, and the
    /// lone flow went competitive (p95 3.7-4.1 s). docs/BENCHMARKS.md, "A
    /// probe's rate and its drained test on a bursty path".
    fn counts_as_undrained(p: &Probe, s: &DetectorSample) -> bool {
        f64::from(s.packets_out) <= INFLIGHT_SHRINK * f64::from(p.packets_out)
    }

    /// Consumes one monitor sample.
    pub fn update(&mut self, s: &DetectorSample) {
        self.update_mode(s);
        self.track_loss(s);
    }

    /// Whether the competitor is loss-insensitive ([`Mode::Competitive`]'s
    /// `lossy`): while competitive mode lasts, the share of the flow's
    /// deliveries it retransmitted since [`LOSSY_GRACE_US`] (or
    /// [`LOSSY_GRACE_SRTTS`]) into the mode,
    /// once [`LOSSY_MIN_SEGMENTS`] were delivered, against [`LOSSY_SHARE`].
    /// Once set it stays until competitive mode ends (a probe drains), so
    /// that a controller chosen for it is not switched back and forth.
    fn track_loss(&mut self, s: &DetectorSample) {
        if !self.competitive() {
            self.loss = None;
            self.lossy = false;
            self.exit_pending = false;
            return;
        }
        let grace = LOSSY_GRACE_US.max(LOSSY_GRACE_SRTTS * u64::from(s.srtt_us));
        match *self.loss.get_or_insert(LossCount::Grace {
            until_us: s.timestamp_us.saturating_add(grace),
        }) {
            LossCount::Grace { until_us } => {
                if s.timestamp_us >= until_us {
                    self.loss = Some(LossCount::From {
                        retrans: s.total_retrans,
                        delivered: s.delivered_segments,
                    });
                }
            }
            LossCount::From { retrans, delivered } => {
                let delivered = s.delivered_segments.wrapping_sub(delivered);
                let lost = s.total_retrans.wrapping_sub(retrans);
                if delivered >= LOSSY_MIN_SEGMENTS
                    && f64::from(lost) >= LOSSY_SHARE * f64::from(delivered)
                {
                    self.lossy = true;
                }
            }
        }
    }

    /// [`Self::update`] of the modes: probes, their verdicts, the backoff.
    fn update_mode(&mut self, s: &DetectorSample) {
        if s.interval_us > 0 {
            self.recent_at = (self.recent_at + 1) % RECENT_POLLS;
            self.recent[self.recent_at] = (s.interval_us, s.interval_delivered_bytes.max(0.0));
            self.recent_len = (self.recent_len + 1).min(RECENT_POLLS);
        }
        self.resume = self.resume && s.timestamp_us < self.resume_until_us;
        if s.min_rtt_us == 0 {
            return;
        }
        let min_rtt = u64::from(s.min_rtt_us);
        let first = *self.first_us.get_or_insert(s.timestamp_us);
        let pp = PROBE_PERIOD_US.max(PROBE_PERIOD_RTTS * min_rtt);
        let period = s.timestamp_us / pp;
        if let Some(mut p) = self.probe {
            p.rtt_us = p.rtt_us.max(u64::from(s.srtt_us.max(s.last_rtt_us)));
            self.probe = Some(p);
            let queue = p.rtt_us.saturating_sub(min_rtt);
            // A sample at most DRAINED_EXCESS above the floor (or a quarter
            // of the largest queue since the probe began): the queue
            // drained, so it was (mostly) the flow's own.
            let bound = (min_rtt as f64 + DRAINED_QUEUE_SHARE * queue as f64)
                .max(min_rtt as f64 * (1.0 + DRAINED_EXCESS));
            let drained = s.last_rtt_us > 0 && f64::from(s.last_rtt_us) <= bound;
            if drained && self.lossy && !self.exit_pending {
                // Beside a loss-insensitive competitor one drained probe
                // is not enough to leave: two BBR flows drain the queue
                // together in their ProbeRTT, and a probe that falls there
                // sees the floor. The next period's probe confirms.
                self.exit_pending = true;
                self.probe = None;
            } else if drained {
                let was_competitive = self.competitive();
                self.exit_pending = false;
                self.undrained = 0;
                self.probe = None;
                if !was_competitive {
                    self.calm = (self.calm + 1).min(PROBE_BACKOFF_LOG2);
                    self.calm_srtt_us = p.start_srtt_us;
                    self.calm_rate = p.long_rate;
                }
                self.resume = true;
                let srtt = u64::from(s.srtt_us.max(s.min_rtt_us));
                self.resume_until_us = s.timestamp_us + srtt;
                // The rate over the next round trips still has the probe in it.
                self.calm_check_from_us = s.timestamp_us + (REARM_SPAN_SRTTS + 2) * srtt;
            } else if s.timestamp_us
                >= p.start_us + probe_span_us(min_rtt, p.rtt_us, p.interval_us, self.drain_gain)
            {
                if Self::counts_as_undrained(&p, s) {
                    self.undrained = self.undrained.saturating_add(1);
                }
                self.exit_pending = false;
                self.calm = 0;
                self.probe = None;
            }
            self.period = period;
            return;
        }
        let new_period = period != self.period;
        self.period = period;
        let old_enough = s.timestamp_us.saturating_sub(first) >= pp / 2;
        let span = RATE_SPAN_SRTTS * u64::from(s.srtt_us.max(s.min_rtt_us));
        let long_span = REARM_SPAN_SRTTS * u64::from(s.srtt_us.max(s.min_rtt_us));
        if self.calm > 0
            && s.timestamp_us >= self.calm_check_from_us
            && (f64::from(s.srtt_us) > REARM_SRTT_GROWTH * f64::from(self.calm_srtt_us)
                || self.recent_rate(long_span) * REARM_RATE_FALL < self.calm_rate)
        {
            self.calm = 0;
        }
        let due = if self.competitive() {
            self.exit_pending || period.is_multiple_of(COMPETITIVE_RECHECK)
        } else {
            period.is_multiple_of(1 << self.calm)
        };
        // A starved flow (no delivery in the span) probes too: its limit
        // drops to the floor, and whether the queue drains tells it who
        // holds it.
        if new_period && old_enough && due {
            let rtt = u64::from(s.srtt_us.max(s.last_rtt_us));
            let rate = self.recent_rate(span);
            self.resume = false;
            self.probe = Some(Probe {
                rate,
                start_us: s.timestamp_us,
                interval_us: s.interval_us,
                rtt_us: rtt,
                packets_out: s.packets_out,
                start_srtt_us: s.srtt_us,
                long_rate: self.recent_rate(long_span),
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
            interval_delivered_bytes: 20_000.0,
            interval_us: 20_000,
            packets_out: 0,
            total_retrans: 0,
            delivered_segments: 0,
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
        // 80 ms RTT outside probes, the floor as soon as the flow drains.
        let (_, modes) = lone_flow(10_000);
        assert!(modes.iter().any(|m| matches!(m, Mode::Probe { .. })));
        assert!(
            !modes.contains(&Mode::Competitive { lossy: false }),
            "{modes:?}"
        );
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
        assert_eq!(modes[end(starts[1])], Mode::Competitive { lossy: false });
        // Competitive from then on, rechecking every 8th period: 2 s..20 s
        // holds the probes at 2, 4 and 16 s.
        assert_eq!(starts.len(), 3, "{modes:?}");
        assert_eq!(starts[2] * 20, 16_000, "{starts:?}");
    }

    /// A flow beside a queue that never drains (competitive from the end
    /// of the second probe, 4.8 s in), delivering 50 segments per 20 ms
    /// interval, with `lost(t_ms)` segments retransmitted in all by
    /// `t_ms`, and its RTT `rtt(t_ms)`: the modes, with their times.
    fn competing_with_loss(
        lost: impl Fn(u64) -> u32,
        rtt: impl Fn(u64) -> u32,
        until_ms: u64,
    ) -> Vec<(u64, Mode)> {
        let mut d = CompetitionDetector::new();
        (0..until_ms)
            .step_by(20)
            .map(|t| {
                d.update(&DetectorSample {
                    total_retrans: lost(t),
                    delivered_segments: (t / 20 * 50) as u32,
                    ..sample(t, rtt(t))
                });
                (t, d.mode())
            })
            .collect()
    }

    #[test]
    fn a_competitor_that_makes_the_flow_lose_is_lossy_after_the_grace() {
        let first = |modes: &[(u64, Mode)], want: Mode| {
            modes.iter().find(|(_, m)| *m == want).map(|(t, _)| *t)
        };
        let grace_ms = |srtt_ms: u64| (LOSSY_GRACE_US / 1000).max(LOSSY_GRACE_SRTTS * srtt_ms);
        // 2% of the deliveries lost throughout (1 per 50 segments): lossy
        // from the grace's end (the floor on a short path, 25 srtts on a
        // long one), once 200 more segments came (4 intervals).
        for rtt_ms in [60, 200, 300] {
            let modes = competing_with_loss(|t| (t / 20) as u32, |_| rtt_ms as u32, 16_000);
            let competitive = first(&modes, Mode::Competitive { lossy: false }).unwrap();
            let lossy = first(&modes, Mode::Competitive { lossy: true });
            assert_eq!(
                lossy,
                Some(competitive + grace_ms(rtt_ms) + 80),
                "rtt {rtt_ms} ms, competitive at {competitive}"
            );
        }
        assert_eq!(grace_ms(60), 2_000);
        let queued = |_| 200;
        // 0.4% lost: below the share, never lossy.
        let modes = competing_with_loss(|t| (t / 100) as u32, queued, 12_000);
        assert_eq!(first(&modes, Mode::Competitive { lossy: true }), None);
        // 20% lost in the grace only (the slow start after the lift), none
        // after it: not lossy.
        let end = 4_800 + grace_ms(200);
        let modes =
            competing_with_loss(|t| (t.clamp(4_800, end) - 4_800) as u32 / 2, queued, 12_000);
        assert_eq!(
            first(&modes, Mode::Competitive { lossy: false }),
            Some(4_800)
        );
        assert_eq!(first(&modes, Mode::Competitive { lossy: true }), None);
        // Lossy stays through the recheck probe at 16 s. One probe that
        // drains (the RTT at the floor for 400 ms, as in two BBR flows'
        // ProbeRTT) does not end it: the next period's probe, at 18 s,
        // finds the queue again.
        let floor_in = |spans: &'static [u64]| {
            move |t: u64| {
                if spans.iter().any(|&s0| (s0..s0 + 400).contains(&t)) {
                    40
                } else {
                    200
                }
            }
        };
        let modes = competing_with_loss(|t| (t / 20) as u32, floor_in(&[16_000]), 30_000);
        let at = |modes: &[(u64, Mode)], ms: u64| modes[(ms / 20) as usize].1;
        assert_eq!(at(&modes, 15_980), Mode::Competitive { lossy: true });
        assert!(matches!(at(&modes, 16_000), Mode::Probe { .. }));
        assert!(
            matches!(at(&modes, 18_000), Mode::Probe { .. }),
            "no confirming probe"
        );
        assert!(
            modes[(16_000 / 20) as usize..]
                .iter()
                .all(|(_, m)| !matches!(
                    m,
                    Mode::Default | Mode::Resume | Mode::Competitive { lossy: false }
                )),
            "left lossy competitive mode on one drained probe"
        );
        // Two in a row (16 and 18 s) end competitive mode and the verdict;
        // back in competitive mode later, the count starts again from a new
        // grace.
        let modes = competing_with_loss(|t| (t / 20) as u32, floor_in(&[16_000, 18_000]), 34_000);
        assert!(
            matches!(at(&modes, 18_500), Mode::Default | Mode::Resume),
            "{:?}",
            at(&modes, 18_500)
        );
        let back = modes
            .iter()
            .find(|(t, m)| *t > 18_000 && matches!(m, Mode::Competitive { .. }))
            .unwrap();
        assert_eq!(back.1, Mode::Competitive { lossy: false }, "{back:?}");
        assert_eq!(
            first(
                &modes[(back.0 / 20) as usize..],
                Mode::Competitive { lossy: true }
            ),
            Some(back.0 + grace_ms(200) + 80)
        );
        // Without the loss verdict one drained probe still ends competitive
        // mode, as before.
        let modes = competing_with_loss(|_| 0, floor_in(&[16_000]), 20_000);
        assert!(
            matches!(at(&modes, 16_500), Mode::Default | Mode::Resume),
            "{:?}",
            at(&modes, 16_500)
        );
    }

    /// A lone flow on a host, driven at 20 ms intervals for `until_ms`: its
    /// RTT is `queued_ms` (floor `min_rtt_ms`) except from `lag_ms` after
    /// a probe began until the probe ends, when the drained queue shows as
    /// `drained_ms` (the program applies the probe's clamp, and reports an
    /// RTT sample, once per round trip), into the detector `d`. Returns the
    /// modes seen.
    fn lone_flow_with_lagged_samples(
        mut d: CompetitionDetector,
        min_rtt_ms: u32,
        queued_ms: u32,
        drained_ms: u32,
        lag_ms: u64,
        until_ms: u64,
    ) -> Vec<Mode> {
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

    /// The times, ms, at which probes begin in `modes` (one per 20 ms).
    fn probe_starts_ms(modes: &[Mode]) -> Vec<u64> {
        (0..modes.len())
            .filter(|&i| {
                (i == 0 || !matches!(modes[i - 1], Mode::Probe { .. }))
                    && matches!(modes[i], Mode::Probe { .. })
            })
            .map(|i| i as u64 * 20)
            .collect()
    }

    /// A lone flow driven over `0..until_ms` (80 ms outside probes on a
    /// 40 ms floor, the floor in them): its detector and the modes seen.
    fn lone_flow(until_ms: u64) -> (CompetitionDetector, Vec<Mode>) {
        let mut d = CompetitionDetector::new();
        let modes = drive(&mut d, 0, until_ms, |_, m| match m {
            Mode::Probe { .. } => 40,
            _ => 80,
        });
        (d, modes)
    }

    /// [`lone_flow`]'s detector and its probe starts.
    fn lone_flow_backing_off(until_ms: u64) -> (CompetitionDetector, Vec<u64>) {
        let (d, modes) = lone_flow(until_ms);
        (d, probe_starts_ms(&modes))
    }

    #[test]
    fn drained_probes_back_off_and_a_queue_or_a_rate_fall_rearms_them() {
        // Periods of 2 s: the first probe at 2 s, the second a period
        // later, then every second period.
        let (mut d, starts) = lone_flow_backing_off(17_000);
        assert_eq!(starts, vec![2_000, 4_000, 8_000, 12_000, 16_000]);
        // A competitor arrives at 17 s: the srtt grows past 1.5 x its
        // 80 ms, so probes come every period again, 18 and 20 s, both
        // undrained: competitive from the second (a period on which every
        // flow probes). Backed off it would probe at 20 s, and then 22 s.
        let mut modes = drive(&mut d, 17_000, 22_000, |t, m| match m {
            Mode::Probe { .. } if t < 17_000 => 40,
            _ => 200,
        });
        let starts: Vec<u64> = probe_starts_ms(&modes).iter().map(|t| t + 17_000).collect();
        assert_eq!(starts, vec![18_000, 20_000], "{modes:?}");
        assert_eq!(modes.pop(), Some(Mode::Competitive { lossy: false }));
        // A competitor that holds no more queue but takes a third of the
        // rate (a buffer the flow kept full alone too) rearms it as well:
        // a probe at 18 s, where the backoff would wait for 20 s.
        let (mut d, _) = lone_flow_backing_off(17_000);
        let mut starts = Vec::new();
        for t in (17_000..19_000u64).step_by(20) {
            let was = d.mode();
            d.update(&DetectorSample {
                interval_delivered_bytes: if t >= 17_000 { 12_000.0 } else { 20_000.0 },
                ..sample(
                    t,
                    if matches!(was, Mode::Probe { .. }) {
                        40
                    } else {
                        80
                    },
                )
            });
            if !matches!(was, Mode::Probe { .. }) && matches!(d.mode(), Mode::Probe { .. }) {
                starts.push(t);
            }
        }
        assert_eq!(starts, vec![18_000]);
    }

    #[test]
    fn a_newcomer_beside_a_backed_off_flow_meets_it_on_every_second_probe() {
        // Two flows share one queue: 80 ms on a 40 ms floor, the floor when
        // both probe, 60 ms (above the 51 ms bound) when one probes alone.
        // The old flow is alone from 0 and backs off; the newcomer arrives
        // at 16.5 s, so its first probe (18 s, an odd period) is alone and
        // undrained. Its second (20 s) is on an even period, on which the
        // old flow probes too: the queue drains, and neither ever goes
        // competitive. (With spacings of four periods the old flow would
        // probe at 16 and 24 s, and the newcomer's 20 s probe, alone too,
        // would confirm a competitor that is not there.)
        let mut old = CompetitionDetector::new();
        let mut new: Option<CompetitionDetector> = None;
        let (mut old_modes, mut new_modes) = (Vec::new(), Vec::new());
        for t in (0..40_000u64).step_by(20) {
            if t == 16_500 {
                new = Some(CompetitionDetector::new());
            }
            let probing = |m: Mode| matches!(m, Mode::Probe { .. });
            let (a, b) = (
                probing(old.mode()),
                new.as_ref().is_some_and(|d| probing(d.mode())),
            );
            let rtt = match (a, b, new.is_some()) {
                (true, _, false) | (true, true, true) => 40,
                (true, false, true) | (false, true, true) => 60,
                _ => 80,
            };
            old.update(&DetectorSample {
                interval_delivered_bytes: if new.is_some() { 15_000.0 } else { 20_000.0 },
                ..sample(t, rtt)
            });
            old_modes.push(old.mode());
            if let Some(d) = new.as_mut() {
                d.update(&DetectorSample {
                    interval_delivered_bytes: 5_000.0,
                    ..sample(t, rtt)
                });
                new_modes.push(d.mode());
            }
        }
        let new_starts: Vec<u64> = probe_starts_ms(&new_modes)
            .iter()
            .map(|t| t + 16_500)
            .collect();
        assert_eq!(&new_starts[..2], &[18_000, 20_000], "{new_starts:?}");
        let competitive = |m: &[Mode]| {
            m.iter()
                .filter(|m| **m == Mode::Competitive { lossy: false })
                .count()
        };
        assert_eq!(competitive(&old_modes), 0, "old flow");
        assert_eq!(competitive(&new_modes), 0, "newcomer: {new_starts:?}");
    }

    #[test]
    fn after_a_drained_probe_the_flow_resumes_for_one_srtt() {
        let (_, modes) = lone_flow(3_000);
        // The probe begins at 2 s and drains at its first sample (2.02 s);
        // the srtt then is 40 ms: Resume at 2.02 and 2.04 s, Default from
        // 2.06 s.
        assert!(
            matches!(modes[100], Mode::Probe { .. }),
            "{:?}",
            &modes[99..105]
        );
        assert_eq!(
            &modes[101..104],
            &[Mode::Resume, Mode::Resume, Mode::Default]
        );
    }

    #[test]
    fn a_lone_flow_on_a_host_drains_though_its_samples_lag_two_round_trips() {
        // The daemon record behind SAMPLING_RTTS: srtt 85 ms at the policy's
        // clamp (a 41 ms floor), and the first sample near the floor 190 ms
        // after the probe began (one round trip until the program applied
        // the clamp, one more until an ACK sampled the drained queue). A
        // deadline without the two round trips (169 ms here) missed it on
        // every probe, and the lone flow went competitive.
        // Every probe drains, so they back off (PROBE_BACKOFF_LOG2): one
        // that did not would put the next at the next period.
        let modes =
            lone_flow_with_lagged_samples(CompetitionDetector::new(), 41, 85, 44, 190, 20_000);
        assert_eq!(
            probe_starts_ms(&modes),
            vec![2_000, 4_000, 8_000, 12_000, 16_000]
        );
        assert!(
            !modes.contains(&Mode::Competitive { lossy: false }),
            "{modes:?}"
        );
    }

    #[test]
    fn a_shallower_probe_is_given_the_longer_drain_it_needs() {
        // 41 ms floor, srtt 85 ms: a 44 ms queue, which drains in 88 ms at
        // half the rate and in 176 ms at 0.75 of it. The deadline allows
        // the queue over one less the gain, plus the floor, two intervals
        // and two srtts.
        assert_eq!(
            probe_span_us(41_000, 85_000, 20_000, 0.5),
            41_000 + 88_000 + 40_000 + 170_000
        );
        assert_eq!(
            probe_span_us(41_000, 85_000, 20_000, 0.75),
            41_000 + 176_000 + 40_000 + 170_000
        );
        assert_eq!(CompetitionDetector::new().drain_gain(), DRAIN_GAIN);
        // A lone flow whose drained sample comes 380 ms into each probe,
        // as a 0.75 probe's would with the datapath's two round trips of
        // lag (176 + 2 x 85 = 346 ms, and a poll or two): inside the 0.75
        // deadline (427 ms), past the half-rate one (339 ms).
        let shallow = lone_flow_with_lagged_samples(
            CompetitionDetector::with_drain_gain(0.75),
            41,
            85,
            44,
            380,
            12_000,
        );
        assert!(
            !shallow.contains(&Mode::Competitive { lossy: false }),
            "{shallow:?}"
        );
        assert_eq!(probe_starts_ms(&shallow), vec![2_000, 4_000, 8_000]);
        let half =
            lone_flow_with_lagged_samples(CompetitionDetector::new(), 41, 85, 44, 380, 12_000);
        assert!(
            half.contains(&Mode::Competitive { lossy: false }),
            "{half:?}"
        );
    }

    #[test]
    fn on_a_long_path_the_datapaths_delays_are_not_cut_by_the_drains_bound() {
        // A daemon record at a 201 ms floor, srtt 378 ms: the probe applied
        // one srtt after it began, the drained sample about 1.1 s after
        // it. The drain's own estimate alone (1.35 s) is cut to
        // PROBE_MAX_US; the two srtts for the datapath come on top of it.
        let modes =
            lone_flow_with_lagged_samples(CompetitionDetector::new(), 201, 378, 202, 1_100, 40_000);
        assert!(modes.iter().any(|m| matches!(m, Mode::Probe { .. })));
        assert!(
            !modes.contains(&Mode::Competitive { lossy: false }),
            "{modes:?}"
        );
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
        assert!(
            !modes.contains(&Mode::Competitive { lossy: false }),
            "{modes:?}"
        );
    }

    #[test]
    fn a_competitor_that_leaves_is_noticed_at_the_next_recheck() {
        let mut d = CompetitionDetector::new();
        drive(&mut d, 0, 6_000, |_, _| 200);
        assert_eq!(d.mode(), Mode::Competitive { lossy: false });
        // From 7 s the queue drains whenever the flow probes.
        let modes = drive(&mut d, 6_000, 20_000, |t, m| match m {
            Mode::Probe { .. } if t >= 7_000 => 40,
            _ => 120,
        });
        assert_eq!(d.mode(), Mode::Default, "{modes:?}");
    }

    #[test]
    fn a_probe_that_removes_three_quarters_of_a_large_queue_drained_it() {
        // The UMTS record: a 41 ms floor, 150 ms when the probe begins,
        // and samples no lower than 60 ms while it drains (a quarter of the
        // queue is 27 ms: the bound is 68 ms, where 1.25 x the floor is
        // 51 ms). Every probe drains, however many.
        let modes =
            lone_flow_with_lagged_samples(CompetitionDetector::new(), 41, 150, 60, 100, 20_000);
        assert!(modes.iter().any(|m| matches!(m, Mode::Probe { .. })));
        assert!(
            !modes.contains(&Mode::Competitive { lossy: false }),
            "{modes:?}"
        );
        // At 70 ms, above that bound, they do not.
        let modes =
            lone_flow_with_lagged_samples(CompetitionDetector::new(), 41, 150, 70, 100, 20_000);
        assert!(
            modes.contains(&Mode::Competitive { lossy: false }),
            "{modes:?}"
        );
    }

    #[test]
    fn an_undrained_probe_whose_inflight_did_not_shrink_is_a_fade_not_a_competitor() {
        // A queue that never drains, 200 ms on a 40 ms floor, 40 packets in
        // flight outside probes. Where they stay (an outage: nothing
        // delivered, nothing sent) or grow (the link delivers less than
        // the probe sends) while the flow probes, no probe counts; where
        // they shrink with its rate (a competitor keeps the link), the
        // second probe makes it competitive, as before.
        for (in_probe, competitive) in [
            (40, false),
            (80, false),
            (37, false),
            (36, true),
            (20, true),
        ] {
            let mut d = CompetitionDetector::new();
            let mut modes = Vec::new();
            for t in (0..10_000u64).step_by(20) {
                let inflight = match d.mode() {
                    Mode::Probe { .. } => in_probe,
                    _ => 40,
                };
                d.update(&DetectorSample {
                    packets_out: inflight,
                    ..sample(t, 200)
                });
                modes.push(d.mode());
            }
            assert!(modes.iter().any(|m| matches!(m, Mode::Probe { .. })));
            assert_eq!(
                modes.contains(&Mode::Competitive { lossy: false }),
                competitive,
                "{in_probe}: {modes:?}"
            );
        }
    }

    #[test]
    fn a_queue_that_grows_in_the_probe_extends_its_deadline() {
        // The LTE record: 87 ms outside probes on a 41 ms floor; in the
        // probe the link slows (121 ms) and the drained sample (47 ms)
        // comes 360 ms after the probe began. From the queue at the start
        // the deadline would be 347 ms (every probe undrained, the lone
        // flow competitive); from the largest since, 483 ms.
        let mut d = CompetitionDetector::new();
        let mut start = None::<u64>;
        let mut modes = Vec::new();
        for t in (0..20_000u64).step_by(20) {
            start = match (d.mode(), start) {
                (Mode::Probe { .. }, None) => Some(t),
                (Mode::Probe { .. }, s) => s,
                _ => None,
            };
            let rtt_ms = match start {
                Some(s0) if t >= s0 + 360 => 47,
                Some(_) => 121,
                None => 87,
            };
            // The flow's packets in flight shrink as it probes, so an
            // undrained probe counts.
            let packets_out = if start.is_some() { 10 } else { 40 };
            d.update(&DetectorSample {
                min_rtt_us: 41_000,
                packets_out,
                ..sample(t, rtt_ms)
            });
            modes.push(d.mode());
        }
        assert!(modes.iter().any(|m| matches!(m, Mode::Probe { .. })));
        assert!(
            !modes.contains(&Mode::Competitive { lossy: false }),
            "{modes:?}"
        );
    }

    #[test]
    fn beside_a_buffer_filler_a_small_queue_keeps_the_absolute_bound() {
        // The CUBIC record at 1 BDP: 41 ms floor, 80 ms when the probe
        // begins, 58 ms at best while it drains. A quarter of the queue
        // (10 ms) is below 1.25 x the floor, so 51 ms is the bound, and
        // the competitor is found.
        let modes =
            lone_flow_with_lagged_samples(CompetitionDetector::new(), 41, 80, 58, 100, 20_000);
        assert!(
            modes.contains(&Mode::Competitive { lossy: false }),
            "{modes:?}"
        );
    }

    #[test]
    fn a_probes_rate_is_its_deliveries_over_two_srtts_not_the_last_burst() {
        // 80 ms srtt at 20 ms polls; the deliveries of a round trip come in
        // one poll of four (the datapath's callbacks come once per round
        // trip): 80 kB every 80 ms is 1 MB/s, whatever poll the probe
        // begins at; the largest poll's rate would be 4 MB/s.
        let mut d = CompetitionDetector::new();
        let mut rates = Vec::new();
        for t in (0..10_000u64).step_by(20) {
            let was = d.mode();
            d.update(&DetectorSample {
                interval_delivered_bytes: if t % 80 == 0 { 80_000.0 } else { 0.0 },
                ..sample(t, 80)
            });
            if let (Mode::Default, Mode::Probe { rate_bytes_per_sec }) = (was, d.mode()) {
                rates.push(rate_bytes_per_sec);
            }
        }
        assert!(rates.len() >= 2, "{rates:?}");
        for r in rates {
            assert!((r - 1e6).abs() < 1.0, "{r}");
        }
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
        // queue (20 ms) is within DRAINED_EXCESS, so every probe drains,
        // and the third waits for a multiple of two periods, 16 s.
        assert_eq!(starts, vec![4_000, 8_000, 16_000]);
        assert_eq!(d.mode(), Mode::Default);
    }
}
