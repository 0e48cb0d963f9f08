//! The action mapping: from a raw action in `[-1, 1]^2` to the datapath's
//! two levers, a cwnd clamp (segments) and a pacing cap (bytes/s), given
//! the flow's [`FlowContext`] ([`ActionScaling`]), with the step limit and
//! the competition rule ([`CompetitionRule`], [`super::competition`]).
//!
//! **Why apart from the network** (`super::model`): the trainer, the daemon
//! and the explainer all apply this mapping to the network's output, and
//! it is part of a policy file's contract; the network is only one way of
//! producing the raw action. Pure arithmetic, no tensors.

use serde::{Deserialize, Serialize};

use super::api::Target;
use super::competition::{Mode, DRAIN_GAIN};
use super::round_half_away;
use crate::congestion::{ClampHold, ControllerKind};
use plume_cc_common::{CWND_UNCLAMPED, MIN_CWND_CLAMP, MIN_PACING_BYTES_PER_SEC, PACING_UNLIMITED};

/// What the action scaling needs to know about one flow.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FlowContext {
    /// Minimum RTT, microseconds (0: unknown).
    pub min_rtt_us: u32,
    /// Largest delivery rate seen on the flow, bytes/s (0: unknown); the
    /// observation builder's `max_rate_bytes_per_sec()`.
    pub max_rate_bytes_per_sec: f64,
    /// Sender MSS, bytes.
    pub mss_bytes: u32,
    /// Smoothed RTT at the latest sample, microseconds (0: unknown); only
    /// read when [`ActionScaling::rtt_ref_exponent`] is above 0.
    pub srtt_us: u32,
    /// The flow's competition mode (see [`super::competition`]); only read
    /// when [`ActionScaling::competition`] is set.
    pub mode: Mode,
}

/// Maps a raw action `a` in `[-1, 1]^2` (values outside are clamped) to a
/// [`Target`]:
///
/// - `bdp_segments = max_rate_bytes_per_sec * min_rtt / mss` (the flow's BDP
///   estimate);
/// - `cwnd_clamp = cwnd_gain * bdp_segments * 2^(a[0] * cwnd_log2_span)`,
///   rounded, within `[min_cwnd_segments, max_cwnd_segments]`;
/// - `pacing_cap = pacing_gain * max_rate_bytes_per_sec * 2^(a[1] *
///   pacing_log2_span)`, within `[min_pacing_bytes_per_sec, u32::MAX - 1]`.
///
/// The gains set what action 0 (the fixed rule) means. With a windowed rate
/// anchor they must leave headroom, as BBR's do (cwnd gain 2, a pacing gain
/// above 1 when probing): a ceiling at exactly the anchor lets a flow send
/// no faster than its own recent maximum, so the anchor can only fall. The
/// defaults, 2 and 1.25, make action 0 a BBR-like envelope; files written
/// before the gains existed read them as 1 (a ceiling at one BDP and the
/// max rate).
///
/// Before the flow has an RTT and a delivery-rate estimate the target is
/// "no limits" (the kernel's controller alone). The kernel-like base
/// controller keeps running under these ceilings (Orca's lesson: a learned
/// ceiling over a classic controller trains and fails more gracefully than a
/// learned cwnd).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActionScaling {
    /// cwnd multiplier span, in powers of two either side of one BDP.
    pub cwnd_log2_span: f32,
    /// Pacing multiplier span, in powers of two either side of the max rate.
    pub pacing_log2_span: f32,
    /// Smallest cwnd clamp, segments (at least the datapath's own floor, 2).
    pub min_cwnd_segments: u32,
    /// Largest cwnd clamp, segments.
    pub max_cwnd_segments: u32,
    /// Smallest pacing cap, bytes/s (at least the datapath's floor).
    pub min_pacing_bytes_per_sec: u32,
    /// The cwnd clamp at action 0, in BDPs.
    #[serde(default = "unit_gain")]
    pub cwnd_gain: f32,
    /// The pacing cap at action 0, in multiples of the rate anchor.
    #[serde(default = "unit_gain")]
    pub pacing_gain: f32,
    /// Largest change of either limit from one interval to the next, in
    /// octaves (0: none). See [`ActionScaling::limit_step`].
    #[serde(default)]
    pub max_log2_step: f32,
    /// Which RTT the clamp's BDP is taken over: `min_rtt^(1-e) * srtt^e`
    /// (0: the min RTT, as before this field existed; 1: the current srtt).
    ///
    /// Why: with the min RTT, a clamp of `k` BDPs of the flow's own rate
    /// lets the flow deliver at most `k * min_rtt / srtt` of that rate. When
    /// a buffer-filling competitor raises the srtt to many min RTTs, the flow
    /// cannot keep its rate, its rate anchor follows it down and the clamp
    /// with it: the starvation spiral measured in docs/TRAINING.md. Over the
    /// srtt, the same clamp keeps `k` times the anchor at whatever queue the
    /// competitor holds, so holding or taking a share is an action the
    /// policy can choose; draining its own queue is the action `k < 1`.
    #[serde(default)]
    pub rtt_ref_exponent: f32,
    /// What the second action dimension sets (see [`SecondAction`]).
    #[serde(default)]
    pub second_action: SecondAction,
    /// The competition rule: drain probes and a competitive mode (see
    /// [`CompetitionRule`]); none in files written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub competition: Option<CompetitionRule>,
    /// Segments added to the clamp, and as many segments per min RTT added
    /// to the pacing cap, after the multiplicative mapping (0: none, as in
    /// files written before it existed).
    ///
    /// Why: a ceiling that is only a multiple of the flow's own rate
    /// anchor has no preferred split of a shared link. With clamps
    /// `W_i = k * r_i * min_rtt` binding, each flow delivers `W_i / rtt`,
    /// and `r_i = k * r_i * min_rtt / rtt` holds for every split once
    /// `rtt = k * min_rtt`: whoever came first keeps its share (measured
    /// on the kernel: three flows 10 s apart end at Jain 0.74-0.88). With
    /// `W_i = k * r_i * min_rtt + c` the fixed point is
    /// `r_i * (rtt - k * min_rtt) = c` for every clamped flow, the same
    /// rate for all: an additive increase, as in AIMD, is what makes
    /// shares converge. The cost is `c` segments of standing queue per flow.
    /// Clamps are whole segments, so a flow within about `1 / (2c)` of the
    /// fair rate no longer moves (a dead band of 25% at `c = 2`, 12.5% at
    /// 4): small `c` converges only roughly.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub additive_segments: f32,
    /// When the policy decides for a flow ([`super::Cadence`]): every
    /// interval (files written before the field existed, and the default)
    /// or once per copy of the flow's statistics. Part of the mapping
    /// because it says which of the policy's outputs reach the datapath;
    /// training and the daemon both read it from here.
    #[serde(default, skip_serializing_if = "super::Cadence::is_default")]
    pub decide: super::Cadence,
    /// The daemon takes each IPv4 flow's min RTT as the smallest min RTT of
    /// the flows to the same remote address it steers at that poll, for
    /// the observation and the mapping alike (false: each flow's own, as in
    /// files written before it existed, and always in the simulator).
    ///
    /// Why: a flow that starts while others hold a queue never sees the
    /// path's empty-queue RTT (the kernel's min RTT filter keeps 5 minutes),
    /// so its BDP, and with it its clamp, is inflated by the queue it found.
    /// Measured on the kernel: three flows 10 s apart on one 40 ms path
    /// held min RTTs of 41, 77 and 108 ms, and the late flows' clamps did
    /// not bind while the first flow's did (docs/BENCHMARKS.md, "Sharing the
    /// link: why the default is not fair among 2-3 flows"). Flows to one
    /// address share a path as far as the sender can tell (the kernel's own
    /// per-destination metrics make the same assumption).
    #[serde(default, skip_serializing_if = "is_false")]
    pub path_min_rtt: bool,
    /// The rate anchor's window is at least this many milliseconds (0: the
    /// built-in 10 s, `ANCHOR_WINDOW_MIN_US`, as in files written before it
    /// existed); its other bounds (ten min RTTs, four intervals) still hold.
    /// Read by the daemon's observation builders; the simulator keeps the
    /// built-in floor, so a policy trained there saw 10 s.
    ///
    /// Why: a flow that had the link alone keeps an anchor of the whole link
    /// for the window's length after others join, so its clamp does not
    /// bind and its base controller alone decides its share.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub anchor_window_floor_ms: u32,
    /// After a loss the datapath holds the clamp in force instead of
    /// writing a new one that would restart slow start, until the base's
    /// window reaches the new clamp or the old one
    /// (`plume_cc_common::clamp_write_waits`; false: every new clamp is
    /// written at once, as in files written before it existed). The daemon
    /// sets it in the datapath's configuration; the simulator's `Clamped`
    /// applies the same rule when its model says so
    /// (`EnvConfig::clamp_hold`).
    ///
    /// Why: `TCP_BPF_SNDCWND_CLAMP` sets ssthresh to the clamp, so a
    /// clamp that changes every interval undoes each multiplicative
    /// decrease of the base within a round trip: beside one CUBIC flow on
    /// a 1-BDP buffer the default took 0.97 of the link with 1,500
    /// retransmits (docs/BENCHMARKS.md, "Holding the clamp after a loss").
    #[serde(default, skip_serializing_if = "is_false")]
    pub hold_clamp_after_loss: bool,
    /// With `hold_clamp_after_loss`: the longest a held clamp waits, in the
    /// flow's smoothed RTTs, before it is written anyway
    /// (`DatapathConfig::clamp_hold_max_srtts`,
    /// `plume_cc_common::clamp_write_waits`); 0 (files written before it
    /// existed): no bound.
    ///
    /// Why: an opt-in trade between the hold's loss response and a share
    /// beside flows that keep the buffer full (BBR on a shallow buffer);
    /// with the competition rule, 8 srtts did not change the share beside
    /// BBR (docs/BENCHMARKS.md, "The rule and the hold together").
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub hold_clamp_max_srtts: u32,
}

fn is_zero(x: &f32) -> bool {
    *x == 0.0
}

fn is_zero_u32(x: &u32) -> bool {
    *x == 0
}

fn is_false(x: &bool) -> bool {
    !*x
}

/// Largest [`ActionScaling::anchor_window_floor_ms`]: a minute, six times
/// the built-in floor.
pub const MAX_ANCHOR_WINDOW_FLOOR_MS: u32 = 60_000;

/// What the mapping does with the flow's competition [`Mode`]
/// ([`super::competition`] has the detector and why).
///
/// - [`Mode::Probe`]: the clamp is [`super::competition::DRAIN_GAIN`] BDPs
///   of the flow's current rate over the min RTT, whatever the action, and
///   it applies at once (no per-interval step limit), so that the probe
///   drains what the flow holds within a round trip or two. With
///   [`CompetitionRule::drain_by_pacing`] the clamp in force stays (no
///   limit in a competitive flow's recheck) and the pacing cap drops at
///   once to `DRAIN_GAIN` times that rate instead.
/// - [`Mode::Competitive`], with no `competitive_exponent` (the
///   default): no limits at all, the base controller (CUBIC) alone, as
///   Copa's competitive mode behaves like the buffer filler it detected.
///   Why: the srtt-following clamp below let the flow take 0.76-0.98 of
///   the link from a CUBIC flow on the real kernel, because every clamp
///   increase also raises ssthresh (`TCP_BPF_SNDCWND_CLAMP`), so the base
///   keeps leaving its multiplicative decrease behind (docs/TRAINING.md).
///   One write of "no limit" lets CUBIC meet CUBIC.
/// - [`Mode::Competitive`] with `competitive_exponent = e`: the clamp's
///   BDP is taken over `min_rtt^(1-e) * srtt^e` (as
///   [`ActionScaling::rtt_ref_exponent`] does), and the action scales the
///   clamp and the pacing cap up but not below action 0 (`a < 0` counts as
///   0): policies free to go below it gave the share back.
/// - [`Mode::Competitive`] with `competitive_ceiling = k` (and no
///   exponent): a clamp of `k` BDPs over the min RTT, the BDP's rate being
///   the anchor rounded up to a power of two, and no pacing cap; it applies
///   at once, like a probe. The base still meets the buffer filler, but a
///   false detection (a fade during two probes alone on an unlimited
///   buffer) can no longer grow a queue of seconds.
/// - [`Mode::Resume`] (one srtt after a probe that drained): as
///   [`Mode::Default`], except that with
///   [`CompetitionRule::drain_by_pacing`] the pacing cap returns to the
///   mapping's at once instead of in steps from the probe's.
/// - [`Mode::Default`]: the mapping as without the rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CompetitionRule {
    /// The clamp's RTT exponent in competitive mode, in `(0, 1]`; none: no
    /// limits in competitive mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub competitive_exponent: Option<f32>,
    /// Probes drain through the pacing cap (`DRAIN_GAIN` times the flow's
    /// rate) rather than the clamp; false (files before it): the clamp.
    ///
    /// Why: a clamp write sets ssthresh too (`TCP_BPF_SNDCWND_CLAMP`), so a
    /// probe's low clamp and the writes that raise it again after the
    /// probe put the base back into slow start every period, erasing the
    /// loss response the hold after a loss keeps: beside one CUBIC flow on
    /// a 1-BDP buffer a daemon record showed the window climb from the
    /// probe's 13 segments to the policy's 70 within 300 ms and a loss
    /// follow every probe (docs/BENCHMARKS.md, "The drain probe's deadline
    /// on a host"). `SO_MAX_PACING_RATE` leaves cwnd and ssthresh as the
    /// base set them; the queue drains at half the rate, which the probe's
    /// deadline already allows for (twice the queueing delay).
    #[serde(default, skip_serializing_if = "is_false")]
    pub drain_by_pacing: bool,
    /// In competitive mode, a ceiling of this many BDPs
    /// ([`COMPETITIVE_CEILING_RANGE`]) instead of no limits; none (files
    /// before it): no limits. Not with `competitive_exponent`.
    ///
    /// Why: with no limits a competitive-mode flow is its base controller,
    /// and CUBIC alone on an unlimited buffer never stops growing. On the
    /// kernel one false detection on a cellular uplink with an unlimited
    /// buffer (a fade through two probes) gave a p95 of 3.8-6.3 s, and the
    /// queue it built was then too long for any later probe to drain in
    /// its deadline, so the flow stayed competitive (docs/BENCHMARKS.md,
    /// "The pacing candidate on the default's selection tests"). A ceiling
    /// over the min RTT bounds that queue to `k - 1` min RTTs of the
    /// anchor's rate. Its cost: beside CUBIC on a `B`-BDP buffer an equal
    /// share needs about `(1 + B) / 2` link BDPs in flight, and the anchor
    /// is the flow's own, squeezed rate, so at `k = 4` and 4 BDPs the share
    /// fell to 0.11-0.24 on the kernel (docs/BENCHMARKS.md, "A probe's
    /// rate and its drained test on a bursty path"). The anchor is rounded
    /// up to a power of two so that the clamp is rewritten only when the
    /// anchor crosses one: every write also sets ssthresh
    /// (`TCP_BPF_SNDCWND_CLAMP`), which beside CUBIC is what a follower of
    /// the rate would keep doing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub competitive_ceiling: Option<f32>,
    /// A probe sends at this share of the flow's rate
    /// ([`DRAIN_GAIN_RANGE`]); none (files before it): [`DRAIN_GAIN`], half.
    ///
    /// Why higher than half: alone, a probe costs throughput only from the
    /// moment its queue is empty until the limits return, and then at
    /// `1 - gain` of the rate; the queue itself feeds the link while it
    /// drains, only more slowly. On a host that moment lasts one to two
    /// round trips, however deep the queue: the RTT sample that shows the
    /// drain comes with the next once-per-round-trip callback, and the
    /// lifted limit waits for the one after (`Mode::Resume`). A daemon
    /// record alone on a 12 Mbit/s, 40 ms link showed the pacing cap low
    /// for 174 ms per probe at half the rate, most of it with the queue
    /// empty. At 0.75 the flow loses half as much per probe and the probe
    /// lasts longer (its deadline allows `queue / (1 - gain)` for the
    /// drain, `probe_span_us`). docs/BENCHMARKS.md, "A shallower drain
    /// probe".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_gain: Option<f32>,
    /// In competitive mode beside a competitor that does not back off on
    /// loss (`Mode::Competitive { lossy: true }`, the detector's
    /// [`super::competition::LOSSY_SHARE`]) the flow runs this kernel
    /// controller instead of the policy's base (`TCP_CONGESTION`, switched
    /// by the datapath at the flow's next callback, and back when a probe
    /// drains); none (files before it): the base throughout.
    ///
    /// Why: competitive mode lifts every limit, so the flow is its base
    /// meeting the buffer filler alone, and a loss-based base meets a
    /// BBR(v1) flow badly: BBR keeps about two BDPs in flight whatever it
    /// loses, so a shallow buffer overflows all the time and CUBIC keeps
    /// halving. On the kernel beside one BBR flow (1 BDP) the pacing
    /// candidate got 0.12-0.13 of the link over CUBIC and 0.40 with a
    /// competitive BBR. Beside CUBIC a BBR there took 0.83 of the link in a
    /// 1-BDP buffer (the CUBIC base 0.47) and gained nothing in a 4-BDP one
    /// (0.21 against 0.30), hence only beside a competitor that makes the
    /// flow lose: over CUBIC the candidate lost 1-4% of its segments beside
    /// BBR and 0-0.4% beside CUBIC (docs/BENCHMARKS.md, "A competitive
    /// controller").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub competitive_cc: Option<ControllerKind>,
}

/// Smallest and largest [`CompetitionRule::drain_gain`].
///
/// Why these bounds: under a quarter the probe gives up most of the rate
/// for no faster verdict; above 0.9 the drain takes ten times the queue,
/// and a probe's rate estimate, 0.9-1.4 times the rate on the kernel
/// ([`super::competition::RATE_SPAN_SRTTS`]), puts the probe above the
/// link more often than not.
pub const DRAIN_GAIN_RANGE: (f32, f32) = (0.25, 0.9);

/// True when `g` is a finite drain gain within [`DRAIN_GAIN_RANGE`].
pub fn drain_gain_in_range(g: f32) -> bool {
    finite_within(g, DRAIN_GAIN_RANGE)
}

/// True when `x` is finite and within `lo..=hi`: the test of every bounded
/// field of the mapping.
fn finite_within(x: f32, (lo, hi): (f32, f32)) -> bool {
    x.is_finite() && (lo..=hi).contains(&x)
}

/// Smallest and largest [`CompetitionRule::competitive_ceiling`], BDPs.
pub const COMPETITIVE_CEILING_RANGE: (f32, f32) = (1.0, 64.0);

/// True when `k` is a finite ceiling within [`COMPETITIVE_CEILING_RANGE`].
pub fn ceiling_in_range(k: f32) -> bool {
    finite_within(k, COMPETITIVE_CEILING_RANGE)
}

impl CompetitionRule {
    /// True when the exponent, if any, is within `(0, 1]`, the ceiling, if
    /// any, within [`COMPETITIVE_CEILING_RANGE`], not both are set, and the
    /// drain gain, if any, is within [`DRAIN_GAIN_RANGE`].
    pub fn is_valid(&self) -> bool {
        self.invalid_field().is_none()
    }

    /// The first field that [`Self::is_valid`] refuses: its name (under
    /// `competition.`), what it allows, and what it holds.
    pub fn invalid_field(&self) -> Option<(&'static str, String, String)> {
        if let Some(e) = self
            .competitive_exponent
            .filter(|e| !(e.is_finite() && *e > 0.0 && *e <= 1.0))
        {
            return Some(("competitive_exponent", "(0, 1]".into(), e.to_string()));
        }
        if let Some(k) = self.competitive_ceiling.filter(|k| !ceiling_in_range(*k)) {
            let (lo, hi) = COMPETITIVE_CEILING_RANGE;
            return Some((
                "competitive_ceiling",
                format!("[{lo}, {hi}] BDPs"),
                k.to_string(),
            ));
        }
        if self.competitive_exponent.is_some() && self.competitive_ceiling.is_some() {
            return Some((
                "competitive_ceiling",
                "not with competitive_exponent".into(),
                "both set".into(),
            ));
        }
        if let Some(g) = self.drain_gain.filter(|g| !drain_gain_in_range(*g)) {
            let (lo, hi) = DRAIN_GAIN_RANGE;
            return Some(("drain_gain", format!("[{lo}, {hi}]"), g.to_string()));
        }
        None
    }

    /// The share of its rate a probing flow sends at
    /// ([`Self::drain_gain`], else [`DRAIN_GAIN`]).
    pub fn drain_gain(&self) -> f64 {
        self.drain_gain.map_or(DRAIN_GAIN, f64::from)
    }

    /// The competitive-mode ceiling for a flow whose anchor is `rate`
    /// bytes/s (finite, positive) over `min_rtt_us`, if the rule has one
    /// ([`Self::competitive_ceiling`]).
    fn ceiling(&self, rate: f64, min_rtt_us: f64, mss: f64, s: &ActionScaling) -> Option<Target> {
        let k = f64::from(self.competitive_ceiling?);
        let rate = rate.log2().ceil().exp2();
        let cwnd = round_half_away(k * rate * min_rtt_us / 1e6 / mss).clamp(
            f64::from(s.min_cwnd_segments),
            f64::from(s.max_cwnd_segments),
        ) as u32;
        Some(Target {
            cwnd_clamp_segments: cwnd,
            max_pacing_bytes_per_sec: PACING_UNLIMITED,
            competitive_cc: false,
        })
    }
}

/// What the second action dimension `a[1]` sets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecondAction {
    /// The pacing cap, `pacing_gain * anchor * 2^(a[1] * pacing_log2_span)`.
    #[default]
    Pacing,
    /// The clamp's RTT exponent, `rtt_ref_exponent * (a[1] + 1) / 2`: the
    /// policy chooses, per flow and interval, how far its clamp follows the
    /// srtt (Copa's default and competitive modes as one continuous
    /// choice). The pacing cap stays at `pacing_gain * anchor`.
    ///
    /// Why: over the min RTT a clamp holds a small queue alone but starves
    /// beside a buffer-filling competitor; over the srtt it holds a share
    /// there but alone it either drains to nothing or fills the buffer
    /// (measured in docs/TRAINING.md). No one exponent serves both.
    RttExponent,
}

fn unit_gain() -> f32 {
    1.0
}

impl Default for ActionScaling {
    fn default() -> Self {
        Self {
            cwnd_log2_span: 2.0,
            pacing_log2_span: 2.0,
            min_cwnd_segments: 4,
            max_cwnd_segments: 100_000,
            min_pacing_bytes_per_sec: MIN_PACING_BYTES_PER_SEC,
            cwnd_gain: 2.0,
            pacing_gain: 1.25,
            max_log2_step: 0.5,
            rtt_ref_exponent: 0.0,
            second_action: SecondAction::Pacing,
            competition: None,
            additive_segments: 0.0,
            decide: super::Cadence::EveryInterval,
            path_min_rtt: false,
            anchor_window_floor_ms: 0,
            hold_clamp_after_loss: false,
            hold_clamp_max_srtts: 0,
        }
    }
}

impl ActionScaling {
    /// True when the bounds are consistent and the spans finite and positive
    /// ([`Self::invalid_field`] finds none wrong).
    pub fn is_valid(&self) -> bool {
        self.invalid_field().is_none()
    }

    /// The first field that [`Self::is_valid`] refuses: its name (a path
    /// under `action_scaling`), what it allows, and what it holds, so that
    /// an error about a policy file can name the one bad value.
    pub fn invalid_field(&self) -> Option<(String, String, String)> {
        let span_ok = |x: f32| x.is_finite() && x > 0.0;
        let in_range = |x: f32, lo: f32, hi: f32| finite_within(x, (lo, hi));
        let (min_cwnd, max_cwnd) = (self.min_cwnd_segments, self.max_cwnd_segments);
        // (field, valid, allowed, found); built only when a file is loaded
        // or a mapping changed, so the strings cost nothing that matters.
        let checks: [(&str, bool, String, String); 11] = [
            (
                "cwnd_log2_span",
                span_ok(self.cwnd_log2_span),
                "finite, > 0".into(),
                self.cwnd_log2_span.to_string(),
            ),
            (
                "pacing_log2_span",
                span_ok(self.pacing_log2_span),
                "finite, > 0".into(),
                self.pacing_log2_span.to_string(),
            ),
            (
                "min_cwnd_segments",
                min_cwnd >= MIN_CWND_CLAMP,
                format!(">= {MIN_CWND_CLAMP}"),
                min_cwnd.to_string(),
            ),
            (
                "max_cwnd_segments",
                max_cwnd >= min_cwnd && max_cwnd < CWND_UNCLAMPED,
                format!("[min_cwnd_segments ({min_cwnd}), {CWND_UNCLAMPED})"),
                max_cwnd.to_string(),
            ),
            (
                "min_pacing_bytes_per_sec",
                self.min_pacing_bytes_per_sec >= MIN_PACING_BYTES_PER_SEC,
                format!(">= {MIN_PACING_BYTES_PER_SEC}"),
                self.min_pacing_bytes_per_sec.to_string(),
            ),
            (
                "cwnd_gain",
                in_range(self.cwnd_gain, 0.25, 8.0),
                "[0.25, 8]".into(),
                self.cwnd_gain.to_string(),
            ),
            (
                "pacing_gain",
                in_range(self.pacing_gain, 0.25, 8.0),
                "[0.25, 8]".into(),
                self.pacing_gain.to_string(),
            ),
            (
                "max_log2_step",
                in_range(self.max_log2_step, 0.0, 8.0),
                "[0, 8]".into(),
                self.max_log2_step.to_string(),
            ),
            (
                "rtt_ref_exponent",
                in_range(self.rtt_ref_exponent, 0.0, 1.0),
                "[0, 1]".into(),
                self.rtt_ref_exponent.to_string(),
            ),
            (
                "additive_segments",
                in_range(self.additive_segments, 0.0, 64.0),
                "[0, 64]".into(),
                self.additive_segments.to_string(),
            ),
            (
                "anchor_window_floor_ms",
                self.anchor_window_floor_ms <= MAX_ANCHOR_WINDOW_FLOOR_MS,
                format!("<= {MAX_ANCHOR_WINDOW_FLOOR_MS}"),
                self.anchor_window_floor_ms.to_string(),
            ),
        ];
        if let Some((field, _, allowed, found)) = checks.into_iter().find(|c| !c.1) {
            return Some((field.to_string(), allowed, found));
        }
        let (field, allowed, found) = self.competition.and_then(|c| c.invalid_field())?;
        Some((format!("competition.{field}"), allowed, found))
    }

    /// The share of its rate a probe of the competition rule sends at
    /// ([`CompetitionRule::drain_gain`]; [`DRAIN_GAIN`] without a rule).
    pub fn drain_gain(&self) -> f64 {
        self.competition.map_or(DRAIN_GAIN, |c| c.drain_gain())
    }

    /// The datapath's hold after a loss as one value
    /// ([`Self::hold_clamp_after_loss`], [`Self::hold_clamp_max_srtts`]),
    /// the form every layer below the policy file carries.
    pub fn clamp_hold(&self) -> ClampHold {
        ClampHold {
            on: self.hold_clamp_after_loss,
            max_srtts: self.hold_clamp_max_srtts,
        }
    }

    /// The rate anchor window's floor the daemon's builders take,
    /// microseconds ([`Self::anchor_window_floor_ms`], or the built-in
    /// floor when 0).
    pub fn anchor_floor_us(&self) -> u64 {
        if self.anchor_window_floor_ms == 0 {
            super::observation::ANCHOR_WINDOW_MIN_US
        } else {
            u64::from(self.anchor_window_floor_ms) * 1000
        }
    }

    /// The limits for raw action `raw` on the flow `ctx`, moved at most one
    /// step from `prev`, the limits in force ([`Self::to_target`] then
    /// [`Self::limit_step`]); a drain probe applies at once.
    pub fn next_target(&self, raw: [f32; 2], ctx: &FlowContext, prev: Target) -> Target {
        self.next_target_by(raw, ctx, prev, self.step_factor())
    }

    /// [`Self::next_target`] with the [`Self::step_factor`] computed once
    /// by the caller: the daemon maps thousands of flows per interval, and
    /// the factor is an `exp2` call.
    pub fn next_target_by(
        &self,
        raw: [f32; 2],
        ctx: &FlowContext,
        prev: Target,
        step_factor: f64,
    ) -> Target {
        self.step_from_by(self.to_target(raw, ctx), ctx, prev, step_factor)
    }

    /// The most one interval may move a limit, as a factor:
    /// `2^max_log2_step` ([`Self::limit_step`]).
    pub fn step_factor(&self) -> f64 {
        f64::from(self.max_log2_step).exp2()
    }

    /// `new` for the flow `ctx` moved at most one step from `prev`
    /// ([`Self::limit_step`]), except in a drain probe of the competition
    /// rule, which applies at once.
    pub fn step_from(&self, new: Target, ctx: &FlowContext, prev: Target) -> Target {
        self.step_from_by(new, ctx, prev, self.step_factor())
    }

    fn step_from_by(&self, new: Target, ctx: &FlowContext, prev: Target, k: f64) -> Target {
        match (self.competition, ctx.mode) {
            // The pacing cap drops at once; the clamp in force stays, so
            // that the probe writes nothing that sets ssthresh. Why: a
            // record beside CUBIC in a 4-BDP buffer showed a competitive
            // flow's recheck probe write the default mode's clamp (22
            // segments) over "no limit" and cut the window from 37 to 22,
            // and a clamp that followed the falling anchor down during a
            // probe would write every interval.
            (Some(c), Mode::Probe { .. }) if c.drain_by_pacing => Target {
                max_pacing_bytes_per_sec: new.max_pacing_bytes_per_sec,
                // None in force yet (0): the mapping's, as the step limit
                // would pass it.
                cwnd_clamp_segments: if prev.cwnd_clamp_segments == 0 {
                    new.cwnd_clamp_segments
                } else {
                    prev.cwnd_clamp_segments
                },
                competitive_cc: prev.competitive_cc,
            },
            // A probe keeps the controller in force: a recheck probe in
            // competitive mode does not switch back and forth (each switch
            // re-initialises the controller); the probe's outcome decides.
            (Some(_), Mode::Probe { .. }) => Target {
                competitive_cc: prev.competitive_cc,
                ..new
            },
            // After a probe by pacing that drained, the pacing cap returns
            // at once: stepped up from the probe's, it held the flow below
            // the link for several more intervals.
            (Some(c), Mode::Resume) if c.drain_by_pacing => Target {
                max_pacing_bytes_per_sec: new.max_pacing_bytes_per_sec,
                ..self.limit_step_by(new, prev, k)
            },
            // The ceiling is written once, not climbed to in steps: each
            // step would be a write, and each write sets ssthresh.
            (Some(c), Mode::Competitive { .. }) if c.competitive_ceiling.is_some() => new,
            _ => self.limit_step_by(new, prev, k),
        }
    }

    /// `new` with each limit moved at most `max_log2_step` octaves from the
    /// one in force (`prev`, what the datapath reports as applied), so a
    /// jittery policy cannot swing the clamp by large factors every interval.
    /// Why: every applied clamp change resets ssthresh in the kernel
    /// (`TCP_BPF_SNDCWND_CLAMP`), and per-interval swings of 2-3x made the
    /// kernel and the simulator diverge. A limit coming from or going to "no
    /// limit" is not smoothed (a new flow's first limit applies at once).
    pub fn limit_step(&self, new: Target, prev: Target) -> Target {
        self.limit_step_by(new, prev, self.step_factor())
    }

    /// [`Self::limit_step`] with `k` = [`Self::step_factor`].
    fn limit_step_by(&self, new: Target, prev: Target, k: f64) -> Target {
        if self.max_log2_step <= 0.0 {
            return new;
        }
        let step = |n: u32, p: u32, none: u32, lo: u32| -> u32 {
            if n == none || p == none || p == 0 {
                return n;
            }
            let (n, p) = (f64::from(n), f64::from(p));
            (round_half_away(n.clamp(p / k, p * k)) as u32).max(lo)
        };
        Target {
            cwnd_clamp_segments: step(
                new.cwnd_clamp_segments,
                prev.cwnd_clamp_segments,
                CWND_UNCLAMPED,
                self.min_cwnd_segments,
            ),
            max_pacing_bytes_per_sec: step(
                new.max_pacing_bytes_per_sec,
                prev.max_pacing_bytes_per_sec,
                PACING_UNLIMITED,
                self.min_pacing_bytes_per_sec,
            ),
            competitive_cc: new.competitive_cc,
        }
    }

    /// The target for raw action `raw` on a flow described by `ctx` (see the type docs).
    pub fn to_target(&self, raw: [f32; 2], ctx: &FlowContext) -> Target {
        let a0 = f64::from(if raw[0].is_nan() {
            0.0
        } else {
            raw[0].clamp(-1.0, 1.0)
        });
        let a1 = f64::from(if raw[1].is_nan() {
            0.0
        } else {
            raw[1].clamp(-1.0, 1.0)
        });
        let rate = ctx.max_rate_bytes_per_sec;
        if ctx.min_rtt_us == 0 || !(rate.is_finite() && rate > 0.0) {
            return Target {
                cwnd_clamp_segments: CWND_UNCLAMPED,
                max_pacing_bytes_per_sec: PACING_UNLIMITED,
                competitive_cc: false,
            };
        }
        let mss = f64::from(ctx.mss_bytes.max(1));
        let min_rtt = f64::from(ctx.min_rtt_us);
        let exponent = match self.second_action {
            SecondAction::Pacing => f64::from(self.rtt_ref_exponent),
            SecondAction::RttExponent => f64::from(self.rtt_ref_exponent) * (a1 + 1.0) / 2.0,
        };
        // The rule's competitive controller, beside a lossy competitor.
        let competitive_cc = matches!(
            (self.competition, ctx.mode),
            (
                Some(CompetitionRule {
                    competitive_cc: Some(_),
                    ..
                }),
                Mode::Competitive { lossy: true }
            )
        );
        let (exponent, a0, a1) = match (self.competition, ctx.mode) {
            (Some(c), Mode::Competitive { .. }) => match c.competitive_exponent {
                // The base (or the competitive) controller meets the buffer
                // filler alone, under the ceiling if the rule has one.
                None => {
                    return Target {
                        competitive_cc,
                        ..c.ceiling(rate, min_rtt, mss, self)
                            .unwrap_or_else(Target::unlimited)
                    };
                }
                // The action cannot yield below the rule.
                Some(e) => (f64::from(e), a0.max(0.0), a1.max(0.0)),
            },
            _ => (exponent, a0, a1),
        };
        let a1 = match self.second_action {
            SecondAction::Pacing => a1,
            SecondAction::RttExponent => 0.0,
        };
        let ref_rtt = if exponent > 0.0 && ctx.srtt_us > ctx.min_rtt_us {
            min_rtt * (f64::from(ctx.srtt_us) / min_rtt).powf(exponent)
        } else {
            min_rtt
        };
        let bdp = rate * ref_rtt / 1e6 / mss;
        // Files without the additive term map bit for bit as before: adding
        // +0.0 to a finite number leaves it as it is.
        let additive = f64::from(self.additive_segments);
        let cwnd = round_half_away(
            f64::from(self.cwnd_gain) * bdp * (a0 * f64::from(self.cwnd_log2_span)).exp2()
                + additive,
        );
        let cwnd = match (self.competition, ctx.mode) {
            // A drain probe: below one BDP of the share the flow holds now.
            (Some(c), Mode::Probe { rate_bytes_per_sec }) if !c.drain_by_pacing => {
                round_half_away(c.drain_gain() * rate_bytes_per_sec * min_rtt / 1e6 / mss)
            }
            _ => cwnd,
        };
        let cwnd = cwnd.clamp(
            f64::from(self.min_cwnd_segments),
            f64::from(self.max_cwnd_segments),
        ) as u32;
        // `additive` segments per min RTT: looser than the clamp's term at
        // any queue, so the clamp's fixed point governs the split.
        let pacing =
            f64::from(self.pacing_gain) * rate * (a1 * f64::from(self.pacing_log2_span)).exp2()
                + additive * mss * 1e6 / min_rtt;
        let pacing = match (self.competition, ctx.mode) {
            // A drain probe by pacing: the drain gain (half by default) of
            // the rate the flow delivers now.
            (Some(c), Mode::Probe { rate_bytes_per_sec }) if c.drain_by_pacing => {
                pacing.min(c.drain_gain() * rate_bytes_per_sec)
            }
            _ => pacing,
        };
        let pacing = pacing.clamp(
            f64::from(self.min_pacing_bytes_per_sec),
            f64::from(PACING_UNLIMITED - 1),
        ) as u32;
        Target {
            cwnd_clamp_segments: cwnd,
            max_pacing_bytes_per_sec: pacing,
            competitive_cc,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flow of 40 ms min RTT at 1.25 MB/s with a 1000-byte MSS (a BDP of
    /// 50 segments) and the given srtt, in default mode.
    fn ctx_40ms(srtt_us: u32) -> FlowContext {
        FlowContext {
            min_rtt_us: 40_000,
            max_rate_bytes_per_sec: 1.25e6,
            mss_bytes: 1000,
            srtt_us,
            mode: Mode::Default,
        }
    }

    #[test]
    fn default_scaling_leaves_bbr_like_headroom_at_action_zero() {
        let s = ActionScaling::default();
        let ctx = ctx_40ms(0);
        // 2 BDPs (2 x 50 segments), 1.25 x the anchor.
        let t = s.to_target([0.0, 0.0], &ctx);
        assert_eq!(t.cwnd_clamp_segments, 100);
        assert_eq!(t.max_pacing_bytes_per_sec, 1_562_500);
        let t = s.to_target([1.0, -1.0], &ctx);
        assert_eq!(t.cwnd_clamp_segments, 400);
        assert_eq!(t.max_pacing_bytes_per_sec, 390_625);
        let t = s.to_target([-5.0, f32::NAN], &ctx);
        assert_eq!(t.cwnd_clamp_segments, 25);
        assert_eq!(t.max_pacing_bytes_per_sec, 1_562_500);
        // The step limit: at most half an octave from the limits in force.
        let prev = Target {
            cwnd_clamp_segments: 100,
            max_pacing_bytes_per_sec: 1_000_000,
            competitive_cc: false,
        };
        let t = s.limit_step(
            Target {
                cwnd_clamp_segments: 400,
                max_pacing_bytes_per_sec: 100_000,
                competitive_cc: false,
            },
            prev,
        );
        assert_eq!(t.cwnd_clamp_segments, 141);
        assert_eq!(t.max_pacing_bytes_per_sec, 707_107);
        let free = Target {
            cwnd_clamp_segments: CWND_UNCLAMPED,
            max_pacing_bytes_per_sec: PACING_UNLIMITED,
            competitive_cc: false,
        };
        assert_eq!(
            s.limit_step(prev, free),
            prev,
            "a first limit applies at once"
        );
        // Out-of-range gains are invalid.
        assert!(!ActionScaling {
            pacing_gain: 0.0,
            ..s
        }
        .is_valid());
    }

    #[test]
    fn the_additive_term_adds_segments_to_the_clamp_and_per_rtt_to_the_pacing_cap() {
        let ctx = ctx_40ms(0);
        let s = ActionScaling {
            additive_segments: 4.0,
            ..ActionScaling::default()
        };
        assert!(s.is_valid());
        let t = s.to_target([0.0, 0.0], &ctx);
        // 2 BDPs (100 segments) + 4; 1.25 x the anchor + 4 x 1000 B / 40 ms.
        assert_eq!(t.cwnd_clamp_segments, 104);
        assert_eq!(t.max_pacing_bytes_per_sec, 1_662_500);
        // Without it the mapping is the old one, and files without the
        // field do not write it.
        let plain = ActionScaling::default();
        assert_eq!(plain.to_target([0.0, 0.0], &ctx).cwnd_clamp_segments, 100);
        assert!(!serde_json::to_string(&plain).unwrap().contains("additive"));
        assert!(serde_json::to_string(&s)
            .unwrap()
            .contains("\"additive_segments\":4.0"));
        for bad in [-1.0, 65.0, f32::NAN] {
            assert!(!ActionScaling {
                additive_segments: bad,
                ..s
            }
            .is_valid());
        }
    }

    /// Two flows under clamps from this mapping share a fluid bottleneck of
    /// 1000 segments/s at a 40 ms min RTT: each delivers its clamp over the
    /// RTT the clamps' sum sets, and its anchor is what it delivered.
    /// Returns the first flow's share after `rounds` round trips, from a
    /// 90/10 split.
    fn fluid_share(s: &ActionScaling, rounds: usize) -> f64 {
        let (cap, min_rtt) = (1000.0, 0.04);
        let mut rates = [900.0_f64, 100.0];
        for _ in 0..rounds {
            let w: Vec<f64> = rates
                .iter()
                .map(|&r| {
                    let ctx = FlowContext {
                        min_rtt_us: 40_000,
                        max_rate_bytes_per_sec: r * 1000.0,
                        mss_bytes: 1000,
                        srtt_us: 0,
                        mode: Mode::Default,
                    };
                    f64::from(s.to_target([-0.5, 1.0], &ctx).cwnd_clamp_segments)
                })
                .collect();
            let rtt = (w.iter().sum::<f64>() / cap).max(min_rtt);
            rates = [w[0] / rtt, w[1] / rtt];
        }
        rates[0] / (rates[0] + rates[1])
    }

    #[test]
    fn an_additive_term_makes_shares_converge_where_a_multiple_alone_keeps_them() {
        // 2 x 2^-1 = one BDP of the own rate at action -0.5: the clamps bind
        // as soon as their sum exceeds the link's BDP.
        let plain = fluid_share(&ActionScaling::default(), 400);
        assert!(
            plain > 0.85,
            "a multiple alone keeps the first flow's share: {plain}"
        );
        // Whole segments leave a dead band: a clamp stops moving once its
        // flow is within `1 / (2c)` of the fair rate (type docs).
        for (c, band) in [(2.0, 0.25), (4.0, 0.125), (8.0, 0.0625)] {
            let share = fluid_share(
                &ActionScaling {
                    additive_segments: c,
                    ..ActionScaling::default()
                },
                400,
            );
            assert!(
                (share / 0.5 - 1.0).abs() <= band + 0.01,
                "c = {c}: the share {share} is within the dead band of the fair one"
            );
            assert!(share < plain - 0.2, "c = {c} moves the share: {share}");
        }
    }

    #[test]
    fn the_clamp_can_follow_the_srtt() {
        let ctx = ctx_40ms(160_000);
        let at = |e: f32| {
            ActionScaling {
                rtt_ref_exponent: e,
                ..ActionScaling::default()
            }
            .to_target([0.0, 0.0], &ctx)
            .cwnd_clamp_segments
        };
        // 2 BDPs over the min RTT (50 segments), over the srtt (4x), and
        // over their geometric mean (2x).
        assert_eq!(at(0.0), 100);
        assert_eq!(at(1.0), 400);
        assert_eq!(at(0.5), 200);
        // An srtt below the min RTT (or unknown) leaves the min RTT.
        let low = FlowContext { srtt_us: 0, ..ctx };
        let s = ActionScaling {
            rtt_ref_exponent: 1.0,
            ..ActionScaling::default()
        };
        assert_eq!(s.to_target([0.0, 0.0], &low).cwnd_clamp_segments, 100);
        assert!(!ActionScaling {
            rtt_ref_exponent: 1.5,
            ..s
        }
        .is_valid());
        // The second action as the exponent: -1 is the min RTT, 1 the srtt,
        // 0 their geometric mean; the pacing cap stays at its gain.
        let x = ActionScaling {
            second_action: SecondAction::RttExponent,
            ..s
        };
        assert_eq!(x.to_target([0.0, -1.0], &ctx).cwnd_clamp_segments, 100);
        assert_eq!(x.to_target([0.0, 0.0], &ctx).cwnd_clamp_segments, 200);
        let t = x.to_target([0.0, 1.0], &ctx);
        assert_eq!(t.cwnd_clamp_segments, 400);
        assert_eq!(t.max_pacing_bytes_per_sec, 1_562_500);
    }

    #[test]
    fn scaling_is_documented_mapping_and_bounded() {
        // The version-1 mapping: unit gains, spans of 4 octaves.
        let s = ActionScaling {
            cwnd_log2_span: 4.0,
            pacing_log2_span: 4.0,
            cwnd_gain: 1.0,
            pacing_gain: 1.0,
            ..ActionScaling::default()
        };
        // 1.25 MB/s * 40 ms / 1000 B = 50 segments of BDP.
        let ctx = ctx_40ms(0);
        let t = s.to_target([0.0, 0.0], &ctx);
        assert_eq!(t.cwnd_clamp_segments, 50);
        assert_eq!(t.max_pacing_bytes_per_sec, 1_250_000);
        let t = s.to_target([1.0, -1.0], &ctx);
        assert_eq!(t.cwnd_clamp_segments, 800);
        assert_eq!(t.max_pacing_bytes_per_sec, 78_125);
        let t = s.to_target([-0.5, 0.25], &ctx);
        assert_eq!(t.cwnd_clamp_segments, 13); // 50 / 4 = 12.5, rounded
        assert_eq!(t.max_pacing_bytes_per_sec, 2_500_000);
        let t = s.to_target([-5.0, f32::NAN], &ctx);
        assert_eq!(t.cwnd_clamp_segments, 4);
        assert_eq!(t.max_pacing_bytes_per_sec, 1_250_000);
        let t = s.to_target([0.0, 0.0], &FlowContext::default());
        assert_eq!(t.cwnd_clamp_segments, CWND_UNCLAMPED);
        assert_eq!(t.max_pacing_bytes_per_sec, PACING_UNLIMITED);
        let tiny = FlowContext {
            min_rtt_us: 100,
            max_rate_bytes_per_sec: 1000.0,
            mss_bytes: 1500,
            srtt_us: 0,
            mode: Mode::Default,
        };
        let t = s.to_target([-1.0, -1.0], &tiny);
        assert_eq!(t.cwnd_clamp_segments, s.min_cwnd_segments);
        assert_eq!(t.max_pacing_bytes_per_sec, MIN_PACING_BYTES_PER_SEC);
        assert!(s.is_valid());
    }

    /// The competitive controller is asked for only in competitive mode
    /// beside a lossy competitor, with no limits; a probe keeps the
    /// controller in force (a recheck probe in competitive mode does not
    /// switch back); default mode and a rule without one never ask.
    #[test]
    fn the_competitive_controller_comes_with_a_lossy_competitor_and_stays_through_a_probe() {
        let rule = CompetitionRule {
            drain_by_pacing: true,
            competitive_cc: Some(ControllerKind::Bbr),
            ..CompetitionRule::default()
        };
        let s = ActionScaling {
            competition: Some(rule),
            ..ActionScaling::default()
        };
        let plain = ActionScaling {
            competition: Some(CompetitionRule {
                competitive_cc: None,
                ..rule
            }),
            ..ActionScaling::default()
        };
        let with = |mode| FlowContext {
            mode,
            ..ctx_40ms(40_000)
        };
        let lossy = with(Mode::Competitive { lossy: true });
        let t = s.next_target([0.3, -0.2], &lossy, Target::unlimited());
        assert_eq!(
            t,
            Target {
                competitive_cc: true,
                ..Target::unlimited()
            }
        );
        let quiet = with(Mode::Competitive { lossy: false });
        assert_eq!(s.to_target([0.3, -0.2], &quiet), Target::unlimited());
        assert!(!plain.to_target([0.3, -0.2], &lossy).competitive_cc);
        for mode in [Mode::Default, Mode::Resume] {
            assert!(!s.next_target([0.0, 0.0], &with(mode), t).competitive_cc);
        }
        // A recheck probe from competitive mode keeps the competitive
        // controller, and one from default mode the base.
        let (probe, prev) = probing_at_half_a_megabyte(&ctx_40ms(40_000));
        let kept = Target {
            competitive_cc: true,
            ..prev
        };
        assert!(s.next_target([0.0, 0.0], &probe, kept).competitive_cc);
        assert!(!s.next_target([0.0, 0.0], &probe, prev).competitive_cc);
        let clamp = ActionScaling {
            competition: Some(CompetitionRule {
                drain_by_pacing: false,
                ..rule
            }),
            ..ActionScaling::default()
        };
        assert!(clamp.next_target([0.0, 0.0], &probe, kept).competitive_cc);
        // A policy file names it, and files without it keep none.
        let json = serde_json::to_string(&rule).unwrap();
        assert!(json.contains(r#""competitive_cc":"bbr""#), "{json}");
        let old: CompetitionRule = serde_json::from_str(r#"{"drain_by_pacing":true}"#).unwrap();
        assert_eq!(old.competitive_cc, None);
    }

    /// `ctx` in a drain probe begun at 0.5 MB/s, and the target in force
    /// before it (2 BDPs of 50 segments, 1.25 x 1.25 MB/s).
    fn probing_at_half_a_megabyte(ctx: &FlowContext) -> (FlowContext, Target) {
        let probe = FlowContext {
            mode: Mode::Probe {
                rate_bytes_per_sec: 0.5e6,
            },
            ..*ctx
        };
        let prev = Target {
            cwnd_clamp_segments: 100,
            max_pacing_bytes_per_sec: 1_562_500,
            competitive_cc: false,
        };
        (probe, prev)
    }

    #[test]
    fn a_competitive_ceiling_is_k_bdps_of_the_anchors_octave_written_at_once() {
        let rule = ActionScaling {
            competition: Some(CompetitionRule {
                drain_by_pacing: true,
                competitive_ceiling: Some(4.0),
                ..CompetitionRule::default()
            }),
            ..ActionScaling::default()
        };
        assert!(rule.is_valid());
        let comp = |rate: f64| FlowContext {
            mode: Mode::Competitive { lossy: false },
            max_rate_bytes_per_sec: rate,
            ..ctx_40ms(400_000)
        };
        // 1.25 MB/s rounds up to 2^21 B/s: 4 x 2,097,152 x 40 ms / 1000 B.
        let t = rule.to_target([0.0, 0.0], &comp(1.25e6));
        assert_eq!(t.cwnd_clamp_segments, 336);
        assert_eq!(t.max_pacing_bytes_per_sec, PACING_UNLIMITED);
        // Whatever the action, and the srtt (400 ms) does not enter it.
        assert_eq!(rule.to_target([-1.0, -1.0], &comp(1.25e6)), t);
        assert_eq!(rule.to_target([1.0, 1.0], &comp(1.25e6)), t);
        // Anchors within one octave give one clamp (no rewrite), the next
        // octave down half of it.
        assert_eq!(rule.to_target([0.0, 0.0], &comp(1.1e6)), t);
        assert_eq!(rule.to_target([0.0, 0.0], &comp(2.0e6)), t);
        assert_eq!(
            rule.to_target([0.0, 0.0], &comp(1.0e6)).cwnd_clamp_segments,
            168
        );
        // From a default-mode clamp of 100 it applies at once, not in
        // steps of 2^0.5.
        let prev = rule.to_target([0.0, 0.0], &ctx_40ms(80_000));
        assert_eq!(prev.cwnd_clamp_segments, 100);
        assert_eq!(rule.next_target([0.0, 0.0], &comp(1.25e6), prev), t);
        // Out of range, not finite, or beside an exponent: invalid.
        for (k, e) in [
            (0.5, None),
            (65.0, None),
            (f32::NAN, None),
            (4.0, Some(1.0)),
        ] {
            let bad = CompetitionRule {
                competitive_ceiling: Some(k),
                competitive_exponent: e,
                ..CompetitionRule::default()
            };
            assert!(!bad.is_valid(), "{bad:?}");
        }
    }

    #[test]
    fn the_competition_rule_drains_in_a_probe_and_follows_the_srtt_when_competitive() {
        let ctx = ctx_40ms(160_000);
        let rule = ActionScaling {
            competition: Some(CompetitionRule {
                competitive_exponent: Some(1.0),
                ..CompetitionRule::default()
            }),
            ..ActionScaling::default()
        };
        let unlimited = ActionScaling {
            competition: Some(CompetitionRule::default()),
            ..ActionScaling::default()
        };
        let plain = ActionScaling::default();
        // Default mode: exactly the mapping without the rule (2 BDPs of 50).
        let t = rule.to_target([0.0, 0.0], &ctx);
        assert_eq!(t, plain.to_target([0.0, 0.0], &ctx));
        assert_eq!(t.cwnd_clamp_segments, 100);
        // Competitive: over the srtt, 4x; the action still scales it.
        let comp = FlowContext {
            mode: Mode::Competitive { lossy: false },
            ..ctx
        };
        assert_eq!(rule.to_target([0.0, 0.0], &comp).cwnd_clamp_segments, 400);
        assert_eq!(rule.to_target([0.5, 0.0], &comp).cwnd_clamp_segments, 800);
        // ... but not below action 0.
        assert_eq!(rule.to_target([-0.5, 0.0], &comp).cwnd_clamp_segments, 400);
        // Without an exponent, competitive mode lifts every limit.
        assert_eq!(
            unlimited.to_target([-1.0, -1.0], &comp),
            Target::unlimited()
        );
        assert_eq!(unlimited.to_target([0.0, 0.0], &ctx), t);
        // The mode means nothing to a policy without the rule.
        assert_eq!(plain.to_target([0.0, 0.0], &comp), t);
        // A probe: half a BDP of the current rate (0.5 MB/s: 10 segments),
        // whatever the action, and at once.
        let (probe, prev) = probing_at_half_a_megabyte(&ctx);
        assert_eq!(
            rule.next_target([1.0, 0.0], &probe, prev)
                .cwnd_clamp_segments,
            10
        );
        // Without the rule the step limit holds: 100 / 2^0.5.
        assert_eq!(
            plain
                .next_target([-1.0, 0.0], &ctx, prev)
                .cwnd_clamp_segments,
            71
        );
        // Invalid exponents are refused.
        for e in [0.0, -1.0, 1.5, f32::NAN] {
            let bad = ActionScaling {
                competition: Some(CompetitionRule {
                    competitive_exponent: Some(e),
                    ..CompetitionRule::default()
                }),
                ..ActionScaling::default()
            };
            assert!(!bad.is_valid(), "{e}");
        }
        assert!(rule.is_valid());
    }

    /// The default mapping with the rule, its probes draining by pacing.
    fn draining_by_pacing() -> ActionScaling {
        ActionScaling {
            competition: Some(CompetitionRule {
                drain_by_pacing: true,
                ..CompetitionRule::default()
            }),
            ..ActionScaling::default()
        }
    }

    #[test]
    fn a_probe_by_pacing_halves_the_pacing_cap_at_once_and_keeps_the_clamp_in_force() {
        let ctx = ctx_40ms(160_000);
        let by_pacing = draining_by_pacing();
        let plain = ActionScaling::default();
        let (probe, prev) = probing_at_half_a_megabyte(&ctx);
        let t = by_pacing.next_target([1.0, 0.0], &probe, prev);
        // The pacing cap: half of 0.5 MB/s, at once (no step limit) ...
        assert_eq!(t.max_pacing_bytes_per_sec, 250_000);
        // ... the clamp: the one in force, whatever the action asks (the
        // mapping would step it to 141 here) ...
        assert_eq!(t.cwnd_clamp_segments, 100);
        assert_eq!(
            plain
                .next_target([1.0, 0.0], &ctx, prev)
                .cwnd_clamp_segments,
            141
        );
        // ... "no limit" too (a recheck probe in competitive mode) ...
        let free = Target {
            cwnd_clamp_segments: CWND_UNCLAMPED,
            ..prev
        };
        let t = by_pacing.next_target([0.0, 0.0], &probe, free);
        assert_eq!(t.cwnd_clamp_segments, CWND_UNCLAMPED);
        assert_eq!(t.max_pacing_bytes_per_sec, 250_000);
        // ... and with none in force yet, the mapping's.
        let none = Target {
            cwnd_clamp_segments: 0,
            ..prev
        };
        assert_eq!(
            by_pacing
                .next_target([0.0, 0.0], &probe, none)
                .cwnd_clamp_segments,
            100
        );
        // Outside probes it maps as without the rule.
        assert_eq!(
            by_pacing.next_target([0.3, -0.2], &ctx, prev),
            plain.next_target([0.3, -0.2], &ctx, prev)
        );
        // The file records it only when on, so older files read the same.
        let json = serde_json::to_string(&by_pacing.competition).unwrap();
        assert!(json.contains("\"drain_by_pacing\":true"), "{json}");
        let clamp = serde_json::to_string(&Some(CompetitionRule::default())).unwrap();
        assert!(!clamp.contains("drain_by_pacing"), "{clamp}");
    }

    #[test]
    fn a_drain_gain_sets_the_probes_share_of_the_rate_and_is_checked_by_name() {
        let ctx = ctx_40ms(160_000);
        let (probe, prev) = probing_at_half_a_megabyte(&ctx);
        let shallow = |by_pacing: bool, g: Option<f32>| ActionScaling {
            competition: Some(CompetitionRule {
                drain_by_pacing: by_pacing,
                drain_gain: g,
                ..CompetitionRule::default()
            }),
            ..ActionScaling::default()
        };
        // By pacing: 0.75 of 0.5 MB/s; by the clamp: 0.75 BDP of it over
        // the 40 ms floor, 15 segments of 1000 bytes (half: 10).
        let t = shallow(true, Some(0.75)).next_target([0.0, 0.0], &probe, prev);
        assert_eq!(t.max_pacing_bytes_per_sec, 375_000);
        assert_eq!(
            shallow(false, Some(0.75))
                .to_target([0.0, 0.0], &probe)
                .cwnd_clamp_segments,
            15
        );
        assert_eq!(
            shallow(false, None)
                .to_target([0.0, 0.0], &probe)
                .cwnd_clamp_segments,
            10
        );
        assert_eq!(shallow(true, Some(0.75)).drain_gain(), 0.75);
        assert_eq!(shallow(true, None).drain_gain(), DRAIN_GAIN);
        assert_eq!(ActionScaling::default().drain_gain(), DRAIN_GAIN);
        // Outside its range, or not finite: refused, by its name.
        for g in [0.2, 0.95, f32::NAN] {
            let (field, allowed, _) = shallow(true, Some(g)).invalid_field().unwrap();
            assert_eq!(field, "competition.drain_gain");
            assert_eq!(allowed, "[0.25, 0.9]");
        }
        // Files without it read and write as before.
        let json = serde_json::to_string(&shallow(true, None).competition).unwrap();
        assert!(!json.contains("drain_gain"), "{json}");
    }

    #[test]
    fn an_invalid_mapping_names_its_first_bad_field() {
        let bad = |s: ActionScaling| s.invalid_field().map(|(f, a, v)| format!("{f} {a} {v}"));
        assert_eq!(bad(ActionScaling::default()), None);
        assert_eq!(
            bad(ActionScaling {
                cwnd_gain: 9.0,
                ..ActionScaling::default()
            })
            .as_deref(),
            Some("cwnd_gain [0.25, 8] 9")
        );
        assert_eq!(
            bad(ActionScaling {
                pacing_log2_span: 0.0,
                ..ActionScaling::default()
            })
            .as_deref(),
            Some("pacing_log2_span finite, > 0 0")
        );
        assert_eq!(
            bad(ActionScaling {
                additive_segments: 65.0,
                ..ActionScaling::default()
            })
            .as_deref(),
            Some("additive_segments [0, 64] 65")
        );
        let ceiling = ActionScaling {
            competition: Some(CompetitionRule {
                competitive_ceiling: Some(0.5),
                ..CompetitionRule::default()
            }),
            ..ActionScaling::default()
        };
        assert_eq!(
            bad(ceiling).as_deref(),
            Some("competition.competitive_ceiling [1, 64] BDPs 0.5")
        );
    }

    #[test]
    fn after_a_drained_probe_by_pacing_the_pacing_cap_returns_at_once() {
        let ctx = ctx_40ms(160_000);
        let by_pacing = draining_by_pacing();
        let by_clamp = ActionScaling {
            competition: Some(CompetitionRule::default()),
            ..ActionScaling::default()
        };
        // The probe's limits in force: its pacing cap, the clamp kept.
        let after_probe = Target {
            cwnd_clamp_segments: 100,
            max_pacing_bytes_per_sec: 250_000,
            competitive_cc: false,
        };
        let resume = FlowContext {
            mode: Mode::Resume,
            ..ctx
        };
        let t = by_pacing.next_target([1.0, 0.0], &resume, after_probe);
        // The mapping's pacing cap (1.25 x the anchor) at once; the clamp
        // stepped as always (400 asked, 100 x 2^0.5 given).
        assert_eq!(t.max_pacing_bytes_per_sec, 1_562_500);
        assert_eq!(t.cwnd_clamp_segments, 141);
        // In default mode, and under a rule that drains by the clamp, the
        // pacing cap steps up (250 kB/s x 2^0.5).
        for (s, c) in [(&by_pacing, &ctx), (&by_clamp, &resume)] {
            let t = s.next_target([1.0, 0.0], c, after_probe);
            assert_eq!(t.max_pacing_bytes_per_sec, 353_553, "{:?}", c.mode);
        }
    }
}
