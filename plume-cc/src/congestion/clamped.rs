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
//! - `SO_MAX_PACING_RATE` turns on TCP internal pacing at
//!   `min(kernel pacing rate, cap)`; without a cap a loss-based base is not
//!   paced.
//!
//! Training in the simulator therefore sees what deployment does.

use plume_cc_common::{CWND_UNCLAMPED, MIN_CWND_CLAMP, MIN_PACING_BYTES_PER_SEC, PACING_UNLIMITED};

use super::{kernel_pacing_rate_bytes_per_sec, AckSample, ClampModel, Controller, LossEvent};

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
        }
    }

    /// Applies a policy target (cwnd clamp in segments, pacing cap in bytes/s),
    /// bounded and applied-on-change like the sock_ops program.
    pub fn set_limits(&mut self, cwnd_clamp_segments: u32, max_pacing_bytes_per_sec: u32) {
        let clamp = bound_cwnd_clamp(cwnd_clamp_segments);
        if clamp != self.cwnd_clamp_segments {
            self.base.set_cwnd_clamp(clamp);
            self.cwnd_clamp_segments = clamp;
        }
        self.max_pacing_bytes_per_sec = bound_pacing_cap(max_pacing_bytes_per_sec);
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

impl<C: Controller> Controller for Clamped<C> {
    fn on_ack(&mut self, now_us: u64, ack: &AckSample) {
        self.packets_out = ack.inflight_segments;
        self.srtt_us = ack.srtt_us;
        self.mss_bytes = ack.mss_bytes;
        self.base.on_ack(now_us, ack);
    }

    fn on_loss(&mut self, now_us: u64, loss: &LossEvent) {
        self.base.on_loss(now_us, loss);
    }

    fn on_tick(&mut self, now_us: u64) {
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
