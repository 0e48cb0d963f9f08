//! Congestion controllers behind one small trait, shared by the simulator,
//! the reference schemes and the learned policy.
//!
//! Modelled on quinn-proto's `congestion` module: one [`Controller`] trait with
//! event hooks that have documented meanings, and queries for the window and
//! the pacing rate. Windows are in segments (as the Linux kernel keeps
//! `snd_cwnd`), rates in bytes per second, times in microseconds.
//!
//! Controllers are pure state machines: time is passed in (`now_us`), they
//! never read clocks, never allocate on the ACK path and never panic on any
//! input (zero RTTs, huge counts, out-of-order times are all tolerated).
//!
//! - [`reno`]: NewReno-style AIMD, the kernel's `reno`.
//! - [`cubic`]: CUBIC as specified in RFC 9438.
//! - [`bbr`]: a BBR(v1)-like model-based controller.
//! - [`clamped`]: a kernel-like base controller under a cwnd clamp and a pacing
//!   cap set by a policy, exactly as the sock_ops datapath applies them.

pub mod bbr;
pub mod clamped;
pub mod cubic;
pub mod reno;
mod window;

pub use bbr::Bbr;
pub use clamped::{ClampHold, Clamped};
pub use cubic::Cubic;
pub use reno::Reno;

/// Smallest congestion window any controller reports, in segments: the kernel
/// drops to one segment after a retransmission timeout and never below.
pub const MIN_CWND_SEGMENTS: u32 = 1;

/// Initial congestion window, in segments (Linux `TCP_INIT_CWND`).
pub const INITIAL_CWND_SEGMENTS: u32 = 10;

/// Largest window a controller reports, in segments; it keeps arithmetic on
/// windows far from overflow whatever the input.
pub const MAX_CWND_SEGMENTS: u32 = 1 << 24;

/// What the sender learned from one ACK, handed to [`Controller::on_ack`].
///
/// Mirrors what the Linux kernel passes to a congestion module (`cong_avoid`,
/// `cong_control` with its rate sample): counts in segments, times in
/// microseconds, rates in bytes per second.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AckSample {
    /// Segments newly delivered by this ACK (cumulatively acked or SACKed).
    pub acked_segments: u32,
    /// RTT measured by this ACK in microseconds, 0 when it gave none.
    pub rtt_us: u64,
    /// Smoothed RTT after this ACK, microseconds (0 before the first sample).
    pub srtt_us: u64,
    /// Minimum RTT seen so far, microseconds (0 before the first sample).
    pub min_rtt_us: u64,
    /// Segments still in flight after this ACK.
    pub inflight_segments: u32,
    /// Cumulative segments delivered, including this ACK's.
    pub delivered_segments: u64,
    /// `delivered_segments` when the newest segment acked here was sent; a
    /// round trip ends when this passes the value at the round's start.
    pub prior_delivered_segments: u64,
    /// Delivery-rate sample of this ACK in bytes per second, 0 when none.
    pub delivery_rate_bytes_per_sec: u64,
    /// True while the sender is in loss recovery (the kernel stops window
    /// growth of loss-based schemes then).
    pub in_recovery: bool,
    /// `tcp_is_cwnd_limited()` at this ACK: the window was fully used in the
    /// last round (or, in slow start, is under twice the most ever in
    /// flight). Linux's Reno and CUBIC grow cwnd, and apply the clamp, only
    /// then (`cubictcp_cong_avoid`, `tcp_reno_cong_avoid`); under
    /// [`ClampModel::Immediate`] they ignore it.
    pub cwnd_limited: bool,
    /// Sender maximum segment size in bytes, to convert rates and windows.
    pub mss_bytes: u32,
}

/// A congestion event, handed to [`Controller::on_loss`] once per loss
/// episode (the first loss detected outside recovery) or on every
/// retransmission timeout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LossEvent {
    /// Segments newly marked lost.
    pub lost_segments: u32,
    /// Segments in flight when the loss was detected.
    pub inflight_segments: u32,
    /// True for a retransmission timeout, false for a dupACK/SACK detection.
    pub is_timeout: bool,
}

/// A congestion controller as the sender sees it.
///
/// The sender calls the hooks as events happen and asks the queries before
/// each transmission decision. Implementations must keep
/// [`window_segments`](Controller::window_segments) at or above
/// [`MIN_CWND_SEGMENTS`] and never return a zero pacing rate.
pub trait Controller: Send {
    /// Called for every ACK that newly delivers data, at simulated or real
    /// time `now_us` (microseconds, monotonic).
    fn on_ack(&mut self, now_us: u64, ack: &AckSample);

    /// Called when the sender detects a congestion event: once when it enters
    /// loss recovery, and on every retransmission timeout.
    fn on_loss(&mut self, now_us: u64, loss: &LossEvent);

    /// Called periodically (every monitor interval in the simulator), so that
    /// time-driven state can advance even without ACKs. Default: nothing.
    fn on_tick(&mut self, now_us: u64) {
        let _ = now_us;
    }

    /// Applies a `snd_cwnd_clamp` the way `TCP_BPF_SNDCWND_CLAMP` does: the
    /// window is held at or below `clamp_segments` from now on and the
    /// slow-start threshold is set to it. Default: nothing (no clamp support).
    fn set_cwnd_clamp(&mut self, clamp_segments: u32) {
        let _ = clamp_segments;
    }

    /// Chooses how [`Controller::set_cwnd_clamp`] acts on the window
    /// ([`ClampModel`]). Default: nothing (the controller applies its clamp
    /// on every ACK, as Linux's BBR does in `bbr_set_cwnd`).
    fn set_clamp_model(&mut self, model: ClampModel) {
        let _ = model;
    }

    /// Chooses how closely the controller follows Linux's ([`CcModel`]).
    /// Default: nothing (Reno has one way).
    fn set_cc_model(&mut self, model: CcModel) {
        let _ = model;
    }

    /// Takes back the reduction of a retransmission timeout found spurious
    /// (`tcp_undo_cwnd_reduction()`, net/ipv4/tcp_input.c): the window
    /// becomes the controller's `undo_cwnd` (Reno's and CUBIC's
    /// `tcp_reno_undo_cwnd`: `max(cwnd, prior_cwnd)`) and ssthresh
    /// `prior_ssthresh` where that is higher. Default: nothing (BBR's
    /// `bbr_undo_cwnd` keeps its window; its model is its own).
    fn undo_timeout(&mut self, prior_cwnd_segments: u32, prior_ssthresh_segments: u32) {
        let _ = (prior_cwnd_segments, prior_ssthresh_segments);
    }

    /// Takes over a connection from another controller, as a
    /// `TCP_CONGESTION` change mid-connection does
    /// (`tcp_reinit_congestion_control`, net/ipv4/tcp_cong.c): the socket
    /// keeps `snd_cwnd`, `snd_ssthresh` and `snd_cwnd_clamp`, and the new
    /// controller's `init` runs on them. Reno's and CUBIC's `init` keep
    /// all three (CUBIC resets only its own epoch); BBR's sets ssthresh to
    /// infinity (`bbr_init`). `ssthresh_segments` at or above
    /// [`MAX_CWND_SEGMENTS`] is unset. Default: nothing.
    fn adopt(&mut self, cwnd_segments: u32, ssthresh_segments: u32, clamp_segments: u32) {
        let _ = (cwnd_segments, ssthresh_segments, clamp_segments);
    }

    /// Congestion window in segments, at least [`MIN_CWND_SEGMENTS`].
    fn window_segments(&self) -> u32;

    /// Slow-start threshold in segments (`u32::MAX`-like when unset).
    fn ssthresh_segments(&self) -> u32;

    /// Pacing rate in bytes per second, or `None` when the sender is not
    /// paced (Reno and CUBIC without fq or a pacing cap). Never `Some(0)`.
    fn pacing_rate_bytes_per_sec(&self) -> Option<u64>;

    /// Short name for logs and result tables ("reno", "cubic", "bbr", ...).
    fn name(&self) -> &'static str;
}

/// The kernel's own pacing rate for a loss-based controller once pacing is
/// enabled (`tcp_update_pacing_rate`): `mss * max(cwnd, packets_out) / srtt`,
/// doubled in slow start (cwnd below half ssthresh) and times 1.2 otherwise.
///
/// Why: with `SO_MAX_PACING_RATE` set, Linux paces Reno/CUBIC at the minimum of
/// this rate and the cap, so the clamped composition needs it to match
/// deployment. Returns at least 1 byte/s; with no RTT yet the kernel's 1 ms
/// fallback is used.
pub fn kernel_pacing_rate_bytes_per_sec(
    cwnd_segments: u32,
    ssthresh_segments: u32,
    packets_out: u32,
    mss_bytes: u32,
    srtt_us: u64,
) -> u64 {
    let srtt_us = if srtt_us == 0 { 1_000 } else { srtt_us };
    let ratio_percent: u128 = if cwnd_segments < ssthresh_segments / 2 {
        200
    } else {
        120
    };
    let segs = u128::from(cwnd_segments.max(packets_out).max(1));
    let rate = u128::from(mss_bytes) * segs * 1_000_000 * ratio_percent / 100 / u128::from(srtt_us);
    u64::try_from(rate).unwrap_or(u64::MAX).max(1)
}

/// How a cwnd clamp acts on a loss-based (Reno, CUBIC) window.
///
/// Why two: the simulator first cut the window to a new clamp at once and
/// grew it on every ACK. Linux does neither, and on the emulated link the
/// kernel's cwnd sat 1.5-3x above the policy's clamp for whole windows
/// while the simulator's sat below it (docs/TRAINING.md, "Sim-to-real").
/// The policies trained before 2026-12-02 were trained under `Immediate`,
/// which stays available so that their commands reproduce them bit for bit.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum ClampModel {
    /// As Linux: `TCP_BPF_SNDCWND_CLAMP` sets `snd_cwnd_clamp` and
    /// `snd_ssthresh` and leaves `snd_cwnd` alone (`bpf_sol_tcp_setsockopt`,
    /// net/core/filter.c); the window comes down to the clamp only on an
    /// ACK that may grow it, i.e. while `tcp_is_cwnd_limited()`
    /// (`tcp_cong_avoid_ai` and `tcp_slow_start` end with
    /// `min(cwnd, snd_cwnd_clamp)`; `cubictcp_cong_avoid` and
    /// `tcp_reno_cong_avoid` return first when the flow is not cwnd-limited).
    /// A paced flow that does not fill its window keeps a window above the
    /// clamp, and its in-flight data is bounded by the pacing cap alone.
    #[default]
    Kernel,
    /// The simulator before 2026-12-02: the window is cut to the clamp when
    /// it is set and grows on every ACK, whether or not it is used.
    Immediate,
}

/// How closely the kernel-like controllers follow Linux's.
///
/// Why two: the simulator's CUBIC slow-started until the buffer overflowed,
/// where Linux's ends slow start earlier by HyStart (`tcp_cubic.c`, on by
/// default), and its BBR-like window had no allowance for ACK aggregation,
/// which Linux's BBR has had since 5.1 (`bbr_ack_aggregation_cwnd`). Beside
/// one CUBIC flow in a 4-BDP buffer the BBR-like flow took 0.09 of the
/// link with both missing and 0.22 with both (Linux's BBR: 0.37-0.46;
/// docs/BENCHMARKS.md, "BBR beside CUBIC in the simulator"). The policies
/// trained before 2026-12-05 were trained under `Classic`, which stays the
/// default of training and of the evaluation matrix so that their commands
/// reproduce them bit for bit.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum CcModel {
    /// The simulator's controllers before 2026-12-05: CUBIC slow-starts
    /// until a loss (or ssthresh), BBR's window target has no aggregation
    /// allowance.
    #[default]
    Classic,
    /// As Linux: CUBIC's HyStart (`cubic::HyStart`) and BBR's ACK-
    /// aggregation allowance (`bbr::AckAggregation`). Reno has neither in
    /// Linux and is unchanged.
    Linux,
}

/// Which kernel-like algorithm runs a flow, for configurations and factories.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum ControllerKind {
    /// Reno (the kernel's `reno`; the simulator's `Reno`).
    Reno,
    /// CUBIC, RFC 9438 (the kernel's `cubic`; the simulator's `Cubic`).
    Cubic,
    /// BBR v1 (the kernel's `bbr`; the simulator's BBR-like `Bbr`).
    Bbr,
}

impl ControllerKind {
    /// Builds a fresh controller of this kind for a sender with `mss_bytes`.
    pub fn build(self, mss_bytes: u32) -> Box<dyn Controller> {
        match self {
            ControllerKind::Reno => Box::new(Reno::new()),
            ControllerKind::Cubic => Box::new(Cubic::new()),
            ControllerKind::Bbr => Box::new(Bbr::new(mss_bytes)),
        }
    }

    /// The kind whose kernel name is `name` (`reno`, `cubic`, `bbr`).
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Reno, Self::Cubic, Self::Bbr]
            .into_iter()
            .find(|k| k.name() == name)
    }

    /// The kernel's name of this algorithm (`TCP_CONGESTION`).
    pub fn name(self) -> &'static str {
        match self {
            ControllerKind::Reno => "reno",
            ControllerKind::Cubic => "cubic",
            ControllerKind::Bbr => "bbr",
        }
    }
}

/// Converts a floating window to whole segments within
/// [`MIN_CWND_SEGMENTS`]..=[`MAX_CWND_SEGMENTS`] (NaN maps to the floor).
pub(crate) fn window_to_segments(cwnd: f64) -> u32 {
    if cwnd.is_nan() || cwnd < f64::from(MIN_CWND_SEGMENTS) {
        MIN_CWND_SEGMENTS
    } else if cwnd >= f64::from(MAX_CWND_SEGMENTS) {
        MAX_CWND_SEGMENTS
    } else {
        cwnd as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_pacing_rate_doubles_in_slow_start() {
        // 10 segments of 1448 bytes per 10 ms = 1.448 MB/s.
        let ss = kernel_pacing_rate_bytes_per_sec(10, u32::MAX, 0, 1448, 10_000);
        let ca = kernel_pacing_rate_bytes_per_sec(10, 10, 0, 1448, 10_000);
        assert_eq!(ss, 2_896_000);
        assert_eq!(ca, 1_737_600);
        assert!(kernel_pacing_rate_bytes_per_sec(0, 0, 0, 0, 0) >= 1);
    }

    #[test]
    fn window_conversion_is_total() {
        assert_eq!(window_to_segments(f64::NAN), MIN_CWND_SEGMENTS);
        assert_eq!(window_to_segments(-3.0), MIN_CWND_SEGMENTS);
        assert_eq!(window_to_segments(1e30), MAX_CWND_SEGMENTS);
        assert_eq!(window_to_segments(7.9), 7);
    }

    mod invariants {
        use super::super::*;
        use proptest::prelude::*;

        #[derive(Clone, Debug)]
        enum Op {
            Ack(AckSample, u64),
            Loss(LossEvent, u64),
            Tick(u64),
            Clamp(u32),
            Limits(u32, u32),
        }

        fn op() -> impl Strategy<Value = Op> {
            let ack = (
                any::<u32>(),
                any::<u64>(),
                any::<u64>(),
                any::<u64>(),
                any::<u32>(),
                any::<u64>(),
                any::<u64>(),
                any::<u64>(),
                any::<bool>(),
                any::<u32>(),
                any::<bool>(),
            )
                .prop_map(|(a, r, s, m, i, d, p, rate, rec, mss, lim)| AckSample {
                    acked_segments: a,
                    rtt_us: r,
                    srtt_us: s,
                    min_rtt_us: m,
                    inflight_segments: i,
                    delivered_segments: d,
                    prior_delivered_segments: p,
                    delivery_rate_bytes_per_sec: rate,
                    in_recovery: rec,
                    cwnd_limited: lim,
                    mss_bytes: mss,
                });
            prop_oneof![
                (ack, any::<u64>()).prop_map(|(a, t)| Op::Ack(a, t)),
                (any::<u32>(), any::<u32>(), any::<bool>(), any::<u64>()).prop_map(
                    |(l, i, to, t)| Op::Loss(
                        LossEvent {
                            lost_segments: l,
                            inflight_segments: i,
                            is_timeout: to
                        },
                        t
                    )
                ),
                any::<u64>().prop_map(Op::Tick),
                any::<u32>().prop_map(Op::Clamp),
                (any::<u32>(), any::<u32>()).prop_map(|(c, p)| Op::Limits(c, p)),
            ]
        }

        fn check(c: &mut dyn Controller, ops: &[Op]) -> Result<(), TestCaseError> {
            for op in ops {
                match op {
                    Op::Ack(a, t) => c.on_ack(*t, a),
                    Op::Loss(l, t) => c.on_loss(*t, l),
                    Op::Tick(t) => c.on_tick(*t),
                    Op::Clamp(k) | Op::Limits(k, _) => c.set_cwnd_clamp(*k),
                }
                prop_assert!(c.window_segments() >= MIN_CWND_SEGMENTS);
                prop_assert!(c.window_segments() <= MAX_CWND_SEGMENTS);
                prop_assert_ne!(c.pacing_rate_bytes_per_sec(), Some(0));
            }
            Ok(())
        }

        proptest! {
            #[test]
            fn window_floor_and_nonzero_pacing(ops in proptest::collection::vec(op(), 1..60)) {
                for kind in [ControllerKind::Reno, ControllerKind::Cubic, ControllerKind::Bbr] {
                    check(kind.build(1448).as_mut(), &ops)?;
                    for model in [ClampModel::Kernel, ClampModel::Immediate] {
                    let mut clamped = Clamped::new(kind.build(1448), 1448);
                    clamped.set_clamp_model(model);
                    // Under the kernel model the window may sit above a new
                    // clamp until an ACK that may grow it applies the clamp.
                    let mut applied = false;
                    for op in &ops {
                        match op {
                            Op::Limits(c, p) => {
                                clamped.set_limits(*c, *p);
                                applied = false;
                            }
                            Op::Ack(a, t) => {
                                clamped.on_ack(*t, a);
                                applied |= a.cwnd_limited && !a.in_recovery && a.acked_segments > 0;
                            }
                            Op::Loss(l, t) => clamped.on_loss(*t, l),
                            Op::Tick(t) => clamped.on_tick(*t),
                            Op::Clamp(k) => {
                                clamped.set_cwnd_clamp(*k);
                                applied = false;
                            }
                        }
                        prop_assert!(clamped.window_segments() >= MIN_CWND_SEGMENTS);
                        if model == ClampModel::Immediate || applied {
                            prop_assert!(clamped.window_segments() <= clamped.cwnd_clamp_segments().max(1));
                        }
                        prop_assert_ne!(clamped.pacing_rate_bytes_per_sec(), Some(0));
                    }
                    }
                }
            }
        }
    }
}
