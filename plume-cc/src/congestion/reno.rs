//! Reno (the kernel's `reno`): slow start, additive increase of one segment
//! per window, halving on a congestion event, one segment after a timeout.

use super::{window::LossWindow, AckSample, Controller, LossEvent};

/// Reno congestion control, the baseline loss-based scheme.
#[derive(Clone, Debug)]
pub struct Reno {
    w: LossWindow,
}

impl Default for Reno {
    fn default() -> Self {
        Self::new()
    }
}

impl Reno {
    /// A fresh Reno state: initial window of ten segments, no ssthresh.
    pub fn new() -> Self {
        Self {
            w: LossWindow::new(),
        }
    }
}

impl Controller for Reno {
    fn on_ack(&mut self, _now_us: u64, ack: &AckSample) {
        if ack.in_recovery || ack.acked_segments == 0 || !self.w.may_grow(ack.cwnd_limited) {
            return;
        }
        // Slow start up to ssthresh; the rest of the ACK counts as avoidance.
        let acked = self.w.slow_start(f64::from(ack.acked_segments));
        if acked > 0.0 {
            self.w.cwnd += acked / self.w.cwnd.max(1.0);
        }
        self.w.apply_clamp();
    }

    fn on_loss(&mut self, _now_us: u64, loss: &LossEvent) {
        self.w.reduce(self.w.cwnd / 2.0, loss.is_timeout);
    }

    fn set_cwnd_clamp(&mut self, clamp_segments: u32) {
        self.w.set_clamp(clamp_segments);
    }

    fn adopt(&mut self, cwnd_segments: u32, ssthresh_segments: u32, clamp_segments: u32) {
        self.w
            .adopt(cwnd_segments, ssthresh_segments, clamp_segments);
    }

    fn undo_timeout(&mut self, prior_cwnd_segments: u32, prior_ssthresh_segments: u32) {
        self.w.undo(prior_cwnd_segments, prior_ssthresh_segments);
    }

    fn set_clamp_model(&mut self, model: super::ClampModel) {
        self.w.clamp_model = model;
    }

    fn window_segments(&self) -> u32 {
        self.w.segments()
    }

    fn ssthresh_segments(&self) -> u32 {
        self.w.ssthresh_segments()
    }

    fn pacing_rate_bytes_per_sec(&self) -> Option<u64> {
        None
    }

    fn name(&self) -> &'static str {
        "reno"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(n: u32) -> AckSample {
        AckSample {
            acked_segments: n,
            mss_bytes: 1448,
            // The window is in use: the growth rule runs.
            cwnd_limited: true,
            ..AckSample::default()
        }
    }

    #[test]
    fn slow_start_then_avoidance_then_halving() {
        let mut r = Reno::new();
        r.on_ack(0, &ack(10));
        assert_eq!(r.window_segments(), 20);
        r.on_loss(0, &LossEvent::default());
        assert_eq!(r.window_segments(), 10);
        assert_eq!(r.ssthresh_segments(), 10);
        for _ in 0..10 {
            r.on_ack(0, &ack(1));
        }
        assert_eq!(r.window_segments(), 10); // 10 + ~0.96
        r.on_ack(0, &ack(1));
        assert_eq!(r.window_segments(), 11);
        r.on_loss(
            0,
            &LossEvent {
                is_timeout: true,
                ..LossEvent::default()
            },
        );
        assert_eq!(r.window_segments(), 1);
    }

    #[test]
    fn clamp_sets_ssthresh_and_caps_window() {
        let mut r = Reno::new();
        r.on_ack(0, &ack(100));
        r.set_cwnd_clamp(30);
        // Linux leaves snd_cwnd until the next ACK that may grow it.
        assert_eq!(r.window_segments(), 110);
        assert_eq!(r.ssthresh_segments(), 30);
        r.on_ack(0, &ack(100));
        assert_eq!(r.window_segments(), 30);
        let mut r = Reno::new();
        r.set_clamp_model(crate::congestion::ClampModel::Immediate);
        r.on_ack(0, &ack(100));
        r.set_cwnd_clamp(30);
        assert_eq!(r.window_segments(), 30);
    }
}
