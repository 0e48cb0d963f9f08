//! The composition the datapath enforces on a real host: a kernel-like base
//! controller (Reno, CUBIC, BBR-like) running under a cwnd clamp and a pacing
//! cap chosen by a policy, applied exactly as the sock_ops program applies a
//! `FlowTarget`:
//!
//! - limits are bounded like the program does (clamp at least
//!   [`MIN_CWND_CLAMP`], pacing at least [`MIN_PACING_BYTES_PER_SEC`],
//!   [`CWND_UNCLAMPED`] / [`PACING_UNLIMITED`] mean "none");
//! - a limit is applied only when it changes (the program compares with the
//!   value in force);
//! - `TCP_BPF_SNDCWND_CLAMP` sets both `snd_cwnd_clamp` and `ssthresh` to the
//!   value, so lifting a clamp (setting it to [`CWND_UNCLAMPED`]) restarts
//!   slow start, as on a real host;
//! - with the hold on ([`Clamped::set_clamp_hold`], the datapath's
//!   `DatapathConfig::clamp_hold`), a new clamp waits while writing it
//!   would undo a loss (`plume_cc_common::clamp_write_waits`), looked at
//!   again on every ACK and loss as the program looks on every callback;
//!   a bounded hold ([`ClampHold::max_srtts`]) writes it anyway once it
//!   has waited that many smoothed RTTs;
//! - `SO_MAX_PACING_RATE` turns on TCP internal pacing at
//!   `min(kernel pacing rate, cap)`; without a cap a loss-based base is not
//!   paced.
//!
//! Training in the simulator therefore sees what deployment does.

use plume_cc_common::{
    clamp_hold_limit_ns, clamp_write_waits, CWND_UNCLAMPED, MIN_CWND_CLAMP,
    MIN_PACING_BYTES_PER_SEC, PACING_UNLIMITED,
};

use super::{
    kernel_pacing_rate_bytes_per_sec, AckSample, CcModel, ClampModel, Controller, ControllerKind,
    LossEvent, MAX_CWND_SEGMENTS,
};

/// Bounds a requested cwnd clamp like the datapath (`bound_cwnd`).
pub fn bound_cwnd_clamp(clamp_segments: u32) -> u32 {
    if clamp_segments >= CWND_UNCLAMPED {
        CWND_UNCLAMPED
    } else {
        clamp_segments.max(MIN_CWND_CLAMP)
    }
}

/// Bounds a requested pacing cap like the datapath (`bound_pacing`).
pub fn bound_pacing_cap(bytes_per_sec: u32) -> u32 {
    if bytes_per_sec == PACING_UNLIMITED {
        PACING_UNLIMITED
    } else {
        bytes_per_sec.max(MIN_PACING_BYTES_PER_SEC)
    }
}

/// The datapath's hold of a new clamp after a loss
/// (`DatapathConfig::clamp_hold` and `clamp_hold_max_srtts`, set from the
/// policy file's `hold_clamp_after_loss` and `hold_clamp_max_srtts`): one
/// value for the layers that carry it from the policy to the simulator's
/// senders, so that the two settings cannot be passed apart.
/// [`ClampHold::default`] is off: every clamp is written at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClampHold {
    /// Whether a new clamp waits after a loss
    /// ([`plume_cc_common::clamp_write_waits`]).
    pub on: bool,
    /// The wait's bound in smoothed RTTs
    /// ([`plume_cc_common::clamp_hold_limit_ns`]); 0: unbounded.
    pub max_srtts: u32,
}

/// A base controller under datapath limits (see the module docs).
#[derive(Clone, Debug)]
pub struct Clamped<C> {
    base: C,
    cwnd_clamp_segments: u32,
    max_pacing_bytes_per_sec: u32,
    packets_out: u32,
    mss_bytes: u32,
    srtt_us: u64,
    clamp_model: ClampModel,
    /// How closely the base follows Linux's; kept for a base switched in.
    cc_model: CcModel,
    /// The clamp last asked for (bounded); differs from
    /// `cwnd_clamp_segments` while the hold keeps the old one.
    wanted_clamp_segments: u32,
    clamp_hold: ClampHold,
    /// The latest time an ACK, loss or tick was seen, µs.
    now_us: u64,
    /// When the hold first kept the clamp in force since the last write
    /// (`FlowStats::hold_since_ns`); None while nothing is held.
    hold_since_us: Option<u64>,
}

impl<C: Controller> Clamped<C> {
    /// Wraps `base` with no limits in force (the kernel without our program).
    pub fn new(base: C, mss_bytes: u32) -> Self {
        Self {
            base,
            cwnd_clamp_segments: CWND_UNCLAMPED,
            max_pacing_bytes_per_sec: PACING_UNLIMITED,
            packets_out: 0,
            mss_bytes,
            srtt_us: 0,
            clamp_model: ClampModel::default(),
            cc_model: CcModel::default(),
            wanted_clamp_segments: CWND_UNCLAMPED,
            clamp_hold: ClampHold::default(),
            now_us: 0,
            hold_since_us: None,
        }
    }

    /// Holds clamps after a loss as the datapath does with
    /// `DatapathConfig::clamp_hold` set (off: every new clamp is applied at
    /// once, as before the hold existed), bounded as with
    /// `DatapathConfig::clamp_hold_max_srtts`: a held clamp is written once
    /// it has waited that many smoothed RTTs (0: no bound).
    pub fn set_clamp_hold(&mut self, hold: ClampHold) {
        self.clamp_hold = hold;
        self.apply_wanted_clamp();
    }

    /// Applies a policy target (cwnd clamp in segments, pacing cap in bytes/s),
    /// bounded and applied-on-change like the sock_ops program.
    pub fn set_limits(&mut self, cwnd_clamp_segments: u32, max_pacing_bytes_per_sec: u32) {
        self.wanted_clamp_segments = bound_cwnd_clamp(cwnd_clamp_segments);
        self.apply_wanted_clamp();
        self.max_pacing_bytes_per_sec = bound_pacing_cap(max_pacing_bytes_per_sec);
    }

    /// Applies the wanted clamp if it differs from the one in force and
    /// the hold does not keep the old one (the program's `apply_target`).
    fn apply_wanted_clamp(&mut self) {
        let want = self.wanted_clamp_segments;
        if want == self.cwnd_clamp_segments {
            self.hold_since_us = None;
            return;
        }
        if self.clamp_hold.on {
            // The kernel's unset ssthresh (TCP_INFINITE_SSTHRESH) is
            // CWND_UNCLAMPED; the model's windows stop at MAX_CWND_SEGMENTS.
            let kernel = |w: u32| {
                if w >= MAX_CWND_SEGMENTS {
                    CWND_UNCLAMPED
                } else {
                    w
                }
            };
            let cwnd = kernel(self.base.window_segments());
            let ssthresh = kernel(self.base.ssthresh_segments());
            let held_ns = self
                .hold_since_us
                .map_or(0, |since| self.now_us.saturating_sub(since) * 1_000);
            let srtt_us = u32::try_from(self.srtt_us).unwrap_or(u32::MAX);
            let limit = clamp_hold_limit_ns(srtt_us, self.clamp_hold.max_srtts);
            // False for a lift: the datapath's lift waits only in loss
            // recovery (`plume_cc_common::lift_waits`), and the model's
            // bases have none (the window is cut at the loss itself).
            if clamp_write_waits(
                want,
                self.cwnd_clamp_segments,
                cwnd,
                ssthresh,
                held_ns,
                limit,
            ) {
                self.hold_since_us.get_or_insert(self.now_us);
                return;
            }
        }
        self.hold_since_us = None;
        self.base.set_cwnd_clamp(want);
        self.cwnd_clamp_segments = want;
    }

    /// The cwnd clamp in force, segments ([`CWND_UNCLAMPED`] for none).
    pub fn cwnd_clamp_segments(&self) -> u32 {
        self.cwnd_clamp_segments
    }

    /// The pacing cap in force, bytes/s ([`PACING_UNLIMITED`] for none).
    pub fn max_pacing_bytes_per_sec(&self) -> u32 {
        self.max_pacing_bytes_per_sec
    }

    /// The base controller, for inspection.
    pub fn base(&self) -> &C {
        &self.base
    }
}

impl Clamped<Box<dyn Controller>> {
    /// Runs `kind` under the limits from now on, taking the connection over
    /// as `bpf_setsockopt(TCP_CONGESTION)` does ([`Controller::adopt`]):
    /// the window, ssthresh and the clamp in force carry over. Nothing
    /// changes when `kind` already runs (the kernel returns early for the
    /// same controller).
    pub fn switch_base(&mut self, kind: ControllerKind) {
        if self.base.name() == kind.name() {
            return;
        }
        let mut next = kind.build(self.mss_bytes);
        next.set_clamp_model(self.clamp_model);
        next.set_cc_model(self.cc_model);
        next.adopt(
            self.base.window_segments(),
            self.base.ssthresh_segments(),
            self.cwnd_clamp_segments,
        );
        self.base = next;
    }
}

impl<C: Controller> Controller for Clamped<C> {
    fn on_ack(&mut self, now_us: u64, ack: &AckSample) {
        self.now_us = now_us;
        self.packets_out = ack.inflight_segments;
        self.srtt_us = ack.srtt_us;
        self.mss_bytes = ack.mss_bytes;
        self.base.on_ack(now_us, ack);
        self.apply_wanted_clamp();
    }

    fn on_loss(&mut self, now_us: u64, loss: &LossEvent) {
        self.now_us = now_us;
        self.base.on_loss(now_us, loss);
        self.apply_wanted_clamp();
    }

    fn on_tick(&mut self, now_us: u64) {
        self.now_us = now_us;
        self.base.on_tick(now_us);
    }

    fn undo_timeout(&mut self, prior_cwnd_segments: u32, prior_ssthresh_segments: u32) {
        self.base
            .undo_timeout(prior_cwnd_segments, prior_ssthresh_segments);
    }

    fn set_cwnd_clamp(&mut self, clamp_segments: u32) {
        let pacing = self.max_pacing_bytes_per_sec;
        self.set_limits(clamp_segments, pacing);
    }

    fn set_clamp_model(&mut self, model: ClampModel) {
        self.clamp_model = model;
        self.base.set_clamp_model(model);
    }

    fn set_cc_model(&mut self, model: CcModel) {
        self.cc_model = model;
        self.base.set_cc_model(model);
    }

    /// The base's window. Under [`ClampModel::Kernel`] it may exceed the
    /// clamp until the base applies it (see [`ClampModel`]); under
    /// [`ClampModel::Immediate`] the clamp caps it at once.
    fn window_segments(&self) -> u32 {
        let w = self.base.window_segments();
        match self.clamp_model {
            ClampModel::Kernel => w.max(1),
            ClampModel::Immediate => w.min(self.cwnd_clamp_segments).max(1),
        }
    }

    fn ssthresh_segments(&self) -> u32 {
        self.base.ssthresh_segments()
    }

    fn pacing_rate_bytes_per_sec(&self) -> Option<u64> {
        let base = self.base.pacing_rate_bytes_per_sec();
        if self.max_pacing_bytes_per_sec == PACING_UNLIMITED {
            return base;
        }
        let own = base.unwrap_or_else(|| {
            kernel_pacing_rate_bytes_per_sec(
                self.window_segments(),
                self.base.ssthresh_segments(),
                self.packets_out,
                self.mss_bytes,
                self.srtt_us,
            )
        });
        Some(own.min(u64::from(self.max_pacing_bytes_per_sec)).max(1))
    }

    fn name(&self) -> &'static str {
        self.base.name()
    }
}

impl Controller for Box<dyn Controller> {
    fn on_ack(&mut self, now_us: u64, ack: &AckSample) {
        (**self).on_ack(now_us, ack);
    }
    fn on_loss(&mut self, now_us: u64, loss: &LossEvent) {
        (**self).on_loss(now_us, loss);
    }
    fn on_tick(&mut self, now_us: u64) {
        (**self).on_tick(now_us);
    }
    fn undo_timeout(&mut self, prior_cwnd_segments: u32, prior_ssthresh_segments: u32) {
        (**self).undo_timeout(prior_cwnd_segments, prior_ssthresh_segments);
    }
    fn set_cwnd_clamp(&mut self, clamp_segments: u32) {
        (**self).set_cwnd_clamp(clamp_segments);
    }
    fn set_clamp_model(&mut self, model: ClampModel) {
        (**self).set_clamp_model(model);
    }
    fn set_cc_model(&mut self, model: CcModel) {
        (**self).set_cc_model(model);
    }
    fn adopt(&mut self, cwnd_segments: u32, ssthresh_segments: u32, clamp_segments: u32) {
        (**self).adopt(cwnd_segments, ssthresh_segments, clamp_segments);
    }
    fn window_segments(&self) -> u32 {
        (**self).window_segments()
    }
    fn ssthresh_segments(&self) -> u32 {
        (**self).ssthresh_segments()
    }
    fn pacing_rate_bytes_per_sec(&self) -> Option<u64> {
        (**self).pacing_rate_bytes_per_sec()
    }
    fn name(&self) -> &'static str {
        (**self).name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::congestion::{Bbr, Cubic, Reno};

    fn ack(n: u32) -> AckSample {
        AckSample {
            acked_segments: n,
            srtt_us: 10_000,
            mss_bytes: 1448,
            // The window is in use: the growth rule runs.
            cwnd_limited: true,
            ..AckSample::default()
        }
    }

    /// A switch of the base is `TCP_CONGESTION` mid-connection: the new
    /// controller runs from the window and the clamp in force; BBR's init
    /// unsets ssthresh, CUBIC's keeps it; the same controller again changes
    /// nothing.
    #[test]
    fn a_switched_base_takes_the_window_and_the_clamp_over() {
        let base: Box<dyn Controller> = Box::new(Cubic::new());
        let mut c = Clamped::new(base, 1448);
        for _ in 0..3 {
            c.on_ack(0, &ack(10));
        }
        c.set_limits(100, PACING_UNLIMITED);
        c.on_loss(
            1,
            &LossEvent {
                lost_segments: 1,
                inflight_segments: 40,
                is_timeout: false,
            },
        );
        let (cwnd, ssthresh) = (c.window_segments(), c.base().ssthresh_segments());
        assert_eq!((cwnd, ssthresh), (28, 28), "CUBIC's decrease from 40");
        c.switch_base(ControllerKind::Cubic);
        assert_eq!(c.base().ssthresh_segments(), 28, "nothing re-initialised");
        c.switch_base(ControllerKind::Bbr);
        assert_eq!(c.name(), "bbr");
        assert_eq!(c.window_segments(), 28);
        assert!(
            c.base().ssthresh_segments() >= MAX_CWND_SEGMENTS,
            "bbr_init"
        );
        assert_eq!(c.cwnd_clamp_segments(), 100);
        // BBR's window grows in Startup but stays under the clamp in force.
        for _ in 0..20 {
            c.on_ack(2, &ack(10));
        }
        assert_eq!(c.window_segments(), 100);
        c.switch_base(ControllerKind::Cubic);
        assert_eq!(c.name(), "cubic");
        assert_eq!(c.window_segments(), 100);
        assert!(c.base().ssthresh_segments() >= MAX_CWND_SEGMENTS);
    }

    #[test]
    fn a_clamp_comes_down_on_the_window_only_while_it_is_used_as_in_linux() {
        let mut c = Clamped::new(Cubic::new(), 1448);
        c.on_ack(0, &ack(50));
        assert_eq!(c.window_segments(), 60);
        c.set_limits(20, PACING_UNLIMITED);
        // bpf_sol_tcp_setsockopt sets snd_cwnd_clamp and ssthresh only.
        assert_eq!(c.window_segments(), 60);
        assert_eq!(c.ssthresh_segments(), 20);
        // A paced flow that does not fill its window keeps it.
        let idle = AckSample {
            cwnd_limited: false,
            ..ack(5)
        };
        c.on_ack(0, &idle);
        assert_eq!(c.window_segments(), 60);
        // The first ACK of a cwnd-limited round applies the clamp
        // (tcp_cong_avoid_ai ends with min(cwnd, snd_cwnd_clamp)).
        c.on_ack(0, &ack(1));
        assert_eq!(c.window_segments(), 20);
        // Below the floor the datapath applies MIN_CWND_CLAMP.
        c.set_limits(0, PACING_UNLIMITED);
        c.on_ack(0, &ack(1));
        assert_eq!(c.window_segments(), MIN_CWND_CLAMP);
        // Lifting the clamp sets ssthresh huge: slow start resumes.
        c.set_limits(CWND_UNCLAMPED, PACING_UNLIMITED);
        c.on_ack(0, &ack(10));
        assert_eq!(c.window_segments(), 12);
    }

    #[test]
    fn the_immediate_model_cuts_at_once_and_grows_regardless() {
        let mut c = Clamped::new(Cubic::new(), 1448);
        c.set_clamp_model(ClampModel::Immediate);
        c.on_ack(0, &ack(50));
        assert_eq!(c.window_segments(), 60);
        c.set_limits(20, PACING_UNLIMITED);
        assert_eq!(c.window_segments(), 20);
        assert_eq!(c.ssthresh_segments(), 20);
        c.set_limits(0, PACING_UNLIMITED);
        assert_eq!(c.window_segments(), MIN_CWND_CLAMP);
        c.set_limits(CWND_UNCLAMPED, PACING_UNLIMITED);
        let idle = AckSample {
            cwnd_limited: false,
            ..ack(10)
        };
        c.on_ack(0, &idle);
        assert_eq!(c.window_segments(), 12);
    }

    /// A loss of one segment, not a timeout.
    fn one_loss() -> LossEvent {
        LossEvent {
            lost_segments: 1,
            is_timeout: false,
            ..LossEvent::default()
        }
    }

    /// `base` under the datapath (`hold` on or off), its window grown to a
    /// clamp of 40 by 1 ms, then one segment lost at 2 ms.
    fn at_40_then_a_loss<C: Controller>(base: C, hold: bool) -> Clamped<C> {
        let mut c = Clamped::new(base, 1448);
        c.set_clamp_hold(ClampHold {
            on: hold,
            max_srtts: 0,
        });
        c.on_ack(0, &ack(30));
        c.set_limits(40, PACING_UNLIMITED);
        c.on_ack(1_000, &ack(10));
        assert_eq!(c.window_segments(), 40);
        c.on_loss(2_000, &one_loss());
        c
    }

    #[test]
    fn with_the_hold_a_clamp_waits_after_a_loss_until_the_window_reaches_it() {
        for hold in [false, true] {
            // A loss at a window of 40: CUBIC keeps 0.7 of it.
            let mut c = at_40_then_a_loss(Cubic::new(), hold);
            assert_eq!((c.window_segments(), c.ssthresh_segments()), (28, 28));
            // The policy raises the clamp to 44.
            c.set_limits(44, PACING_UNLIMITED);
            if !hold {
                // Written: ssthresh back at the clamp, slow start resumes
                // and the loss is undone within a round trip.
                assert_eq!(c.ssthresh_segments(), 44);
                c.on_ack(3_000, &ack(16));
                assert_eq!(c.window_segments(), 44);
                continue;
            }
            // Held: the clamp in force stays, ssthresh stays the base's,
            // and the window grows by congestion avoidance only.
            assert_eq!(c.cwnd_clamp_segments(), 40);
            assert_eq!(c.ssthresh_segments(), 28);
            c.on_ack(3_000, &ack(16));
            assert!(c.window_segments() < 30, "{}", c.window_segments());
            assert_eq!(c.cwnd_clamp_segments(), 40);
            // A lower clamp at or below the window is written at once.
            c.set_limits(20, PACING_UNLIMITED);
            assert_eq!(c.cwnd_clamp_segments(), 20);
            c.on_ack(4_000, &ack(1));
            assert_eq!(c.window_segments(), 20);
            // No loss since that write: a raise is written at once.
            c.set_limits(44, PACING_UNLIMITED);
            assert_eq!((c.cwnd_clamp_segments(), c.ssthresh_segments()), (44, 44));
        }
    }

    #[test]
    fn a_held_clamp_is_written_once_the_window_grows_to_it() {
        let mut c = at_40_then_a_loss(Reno::new(), true);
        assert_eq!(c.window_segments(), 20, "Reno halves");
        c.set_limits(24, PACING_UNLIMITED);
        assert_eq!(c.cwnd_clamp_segments(), 40, "held");
        // Congestion avoidance: one segment per window of ACKs.
        let mut t = 3_000;
        while c.window_segments() < 24 {
            assert_eq!(c.cwnd_clamp_segments(), 40);
            c.on_ack(t, &ack(1));
            t += 1_000;
        }
        // The ACK that took the window to 24 wrote the clamp.
        assert_eq!((c.cwnd_clamp_segments(), c.ssthresh_segments()), (24, 24));
    }

    #[test]
    fn with_the_hold_a_lift_after_a_loss_is_written_at_once() {
        // The model has no recovery phase (the window is cut at the loss),
        // so the datapath's wait for the end of recovery never applies:
        // a lift after a loss is written at once, with or without the hold.
        for hold in [false, true] {
            let mut c = at_40_then_a_loss(Reno::new(), hold);
            assert_eq!(c.window_segments(), 20, "Reno halves");
            c.set_limits(CWND_UNCLAMPED, PACING_UNLIMITED);
            assert_eq!(c.cwnd_clamp_segments(), CWND_UNCLAMPED, "hold {hold}");
        }
    }

    #[test]
    fn a_bounded_hold_writes_the_clamp_after_its_smoothed_rtts() {
        let mut c = at_40_then_a_loss(Reno::new(), true);
        assert_eq!(c.window_segments(), 20, "Reno halves");
        // srtt 10 ms (`ack`), bounded to 4 srtts: 40 ms (set with the
        // clamp in force, so nothing is pending yet).
        c.set_clamp_hold(ClampHold {
            on: true,
            max_srtts: 4,
        });
        // Held from the first try (t = 2 ms) for 40 ms.
        c.set_limits(44, PACING_UNLIMITED);
        assert_eq!(c.cwnd_clamp_segments(), 40, "held");
        c.on_tick(41_999);
        c.set_limits(44, PACING_UNLIMITED);
        assert_eq!(c.cwnd_clamp_segments(), 40, "still held at 39.999 ms");
        assert!(c.window_segments() < 24);
        // 40 ms after the hold began: written, the loss undone late.
        c.on_tick(42_000);
        c.set_limits(44, PACING_UNLIMITED);
        assert_eq!((c.cwnd_clamp_segments(), c.ssthresh_segments()), (44, 44));
        // A second loss starts a new 40 ms hold, not counted from the first.
        c.on_loss(50_000, &one_loss());
        c.set_limits(48, PACING_UNLIMITED);
        c.on_tick(89_999);
        c.set_limits(48, PACING_UNLIMITED);
        assert_eq!(c.cwnd_clamp_segments(), 44, "held again");
        c.on_tick(90_000);
        c.set_limits(48, PACING_UNLIMITED);
        assert_eq!(c.cwnd_clamp_segments(), 48);
    }

    #[test]
    fn pacing_cap_turns_on_pacing_at_the_minimum() {
        let mut c = Clamped::new(Reno::new(), 1448);
        assert_eq!(c.pacing_rate_bytes_per_sec(), None);
        c.set_limits(CWND_UNCLAMPED, 100_000);
        assert_eq!(c.pacing_rate_bytes_per_sec(), Some(100_000));
        c.set_limits(CWND_UNCLAMPED, 1);
        assert_eq!(
            c.pacing_rate_bytes_per_sec(),
            Some(u64::from(MIN_PACING_BYTES_PER_SEC))
        );
        c.set_limits(CWND_UNCLAMPED, 4_000_000_000);
        // No RTT yet: 10 segments per the kernel's 1 ms fallback, doubled
        // in slow start = 28.96 MB/s, below the cap.
        assert_eq!(c.pacing_rate_bytes_per_sec(), Some(28_960_000));
        let mut b = Clamped::new(Bbr::new(1448), 1448);
        b.set_limits(CWND_UNCLAMPED, 50_000);
        assert_eq!(b.pacing_rate_bytes_per_sec(), Some(50_000));
    }
}
