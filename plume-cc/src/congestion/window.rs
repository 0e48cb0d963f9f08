//! The window state that the loss-based controllers (Reno, CUBIC) share:
//! cwnd, ssthresh and the clamp, with the rules they have in common (slow
//! start up to ssthresh, the reduction after a congestion event, and the
//! clamp as `TCP_BPF_SNDCWND_CLAMP` applies it). Each controller keeps only
//! its own growth rule in congestion avoidance.

use super::{window_to_segments, ClampModel, INITIAL_CWND_SEGMENTS};

/// cwnd and ssthresh in segments (fractional, as the growth rules need) and
/// the clamp in whole segments.
#[derive(Clone, Debug)]
pub(crate) struct LossWindow {
    /// Congestion window, segments.
    pub cwnd: f64,
    /// Slow-start threshold, segments.
    pub ssthresh: f64,
    /// Ceiling on cwnd (`u32::MAX`: none).
    pub clamp_segments: u32,
    /// How a new clamp acts ([`ClampModel`]).
    pub clamp_model: ClampModel,
}

impl LossWindow {
    /// The initial window of ten segments, no ssthresh, no clamp.
    pub fn new() -> Self {
        Self {
            cwnd: f64::from(INITIAL_CWND_SEGMENTS),
            ssthresh: f64::from(u32::MAX),
            clamp_segments: u32::MAX,
            clamp_model: ClampModel::default(),
        }
    }

    /// Slow start: grows cwnd by `acked` segments up to ssthresh; returns
    /// what is left of the ACK for congestion avoidance.
    pub fn slow_start(&mut self, acked: f64) -> f64 {
        if self.cwnd >= self.ssthresh {
            return acked;
        }
        let grow = acked.min(self.ssthresh - self.cwnd);
        self.cwnd += grow;
        acked - grow
    }

    /// Holds cwnd at or below the clamp (after every change).
    pub fn apply_clamp(&mut self) {
        self.cwnd = self.cwnd.min(f64::from(self.clamp_segments));
    }

    /// A congestion event: ssthresh becomes `ssthresh` (at least 2), cwnd
    /// drops to it, or to one segment after a retransmission timeout.
    pub fn reduce(&mut self, ssthresh: f64, is_timeout: bool) {
        self.ssthresh = ssthresh.max(2.0);
        self.cwnd = if is_timeout { 1.0 } else { self.ssthresh };
    }

    /// Undoes a spurious timeout's reduction (`tcp_undo_cwnd_reduction()`
    /// with `tcp_reno_undo_cwnd`): the window back to at least
    /// `prior_cwnd`, ssthresh to `prior_ssthresh` where that is higher.
    /// The clamp is not applied here, as Linux sets `snd_cwnd` directly; it
    /// acts at the next ACK that may grow the window.
    pub fn undo(&mut self, prior_cwnd: u32, prior_ssthresh: u32) {
        self.cwnd = self.cwnd.max(f64::from(prior_cwnd));
        self.ssthresh = self.ssthresh.max(f64::from(prior_ssthresh));
    }

    /// Whether an ACK may grow (and clamp) the window: under
    /// [`ClampModel::Kernel`] only while the flow is cwnd-limited, as
    /// `cubictcp_cong_avoid` / `tcp_reno_cong_avoid` check
    /// `tcp_is_cwnd_limited()` first.
    pub fn may_grow(&self, cwnd_limited: bool) -> bool {
        cwnd_limited || self.clamp_model == ClampModel::Immediate
    }

    /// `TCP_BPF_SNDCWND_CLAMP`: sets both the clamp and ssthresh
    /// (`bpf_sol_tcp_setsockopt`). Under [`ClampModel::Kernel`] cwnd is
    /// left alone until the next ACK that may grow it; under
    /// [`ClampModel::Immediate`] it is cut to the clamp at once.
    pub fn set_clamp(&mut self, clamp_segments: u32) {
        let clamp = clamp_segments.max(1);
        self.clamp_segments = clamp;
        self.ssthresh = f64::from(clamp);
        if self.clamp_model == ClampModel::Immediate {
            self.cwnd = self.cwnd.min(f64::from(clamp));
        }
    }

    /// The window, ssthresh and clamp of a connection taken over from
    /// another controller ([`super::Controller::adopt`]): set as they are,
    /// the clamp without the ssthresh a clamp write would set.
    pub fn adopt(&mut self, cwnd_segments: u32, ssthresh_segments: u32, clamp_segments: u32) {
        self.cwnd = f64::from(cwnd_segments.max(1));
        self.ssthresh = if ssthresh_segments >= super::MAX_CWND_SEGMENTS {
            f64::from(u32::MAX)
        } else {
            f64::from(ssthresh_segments)
        };
        self.clamp_segments = clamp_segments.max(1);
    }

    /// cwnd in whole segments, within the controller bounds.
    pub fn segments(&self) -> u32 {
        window_to_segments(self.cwnd)
    }

    /// ssthresh in whole segments, within the controller bounds.
    pub fn ssthresh_segments(&self) -> u32 {
        window_to_segments(self.ssthresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_start_stops_at_ssthresh_and_hands_back_the_rest() {
        let mut w = LossWindow::new();
        w.ssthresh = 12.0;
        assert_eq!(w.slow_start(5.0), 3.0);
        assert_eq!(w.cwnd, 12.0);
        assert_eq!(w.slow_start(4.0), 4.0);
        assert_eq!(w.cwnd, 12.0);
    }

    #[test]
    fn reduce_and_clamp() {
        let mut w = LossWindow::new();
        w.reduce(1.0, false);
        assert_eq!((w.ssthresh, w.cwnd), (2.0, 2.0));
        w.cwnd = 40.0;
        w.reduce(20.0, true);
        assert_eq!((w.ssthresh, w.cwnd), (20.0, 1.0));
        w.cwnd = 30.0;
        w.set_clamp(8);
        // Linux leaves snd_cwnd alone when the clamp is set.
        assert_eq!((w.clamp_segments, w.ssthresh, w.cwnd), (8, 8.0, 30.0));
        w.apply_clamp();
        assert_eq!(w.cwnd, 8.0);
        w.clamp_model = ClampModel::Immediate;
        w.cwnd = 30.0;
        w.set_clamp(9);
        assert_eq!((w.clamp_segments, w.ssthresh, w.cwnd), (9, 9.0, 9.0));
        w.cwnd = 50.0;
        w.apply_clamp();
        assert_eq!(w.segments(), 9);
    }
}
