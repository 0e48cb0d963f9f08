//! CUBIC as specified in RFC 9438: a cubic window growth function of the time
//! since the last congestion event, with a Reno-friendly region, fast
//! convergence and a multiplicative decrease of 0.7. Slow start is standard
//! (no HyStart++). Windows are in segments, times in microseconds.

use super::{window::LossWindow, AckSample, Controller, LossEvent};

/// RFC 9438 `C`: the cubic scaling constant (segments / s^3).
const C_CUBIC: f64 = 0.4;
/// RFC 9438 `beta_cubic`: the multiplicative decrease factor.
const BETA_CUBIC: f64 = 0.7;
/// RFC 9438 `alpha_cubic`: the Reno-friendly additive increase per RTT.
const ALPHA_CUBIC: f64 = 3.0 * (1.0 - BETA_CUBIC) / (1.0 + BETA_CUBIC);

/// CUBIC congestion control (RFC 9438), the Linux default.
#[derive(Clone, Debug)]
pub struct Cubic {
    w: LossWindow,
    /// Window before the last reduction (RFC `W_max`).
    w_max: f64,
    /// Time the current congestion-avoidance epoch started (RFC `t_epoch`).
    epoch_start_us: Option<u64>,
    /// RFC `K`, seconds.
    k_s: f64,
    /// Reno-friendly estimate (RFC `W_est`).
    w_est: f64,
    /// Window just before the last reduction (RFC `cwnd_prior`).
    cwnd_prior: f64,
}

impl Default for Cubic {
    fn default() -> Self {
        Self::new()
    }
}

impl Cubic {
    /// A fresh CUBIC state: initial window of ten segments, no ssthresh.
    pub fn new() -> Self {
        Self {
            w: LossWindow::new(),
            w_max: 0.0,
            epoch_start_us: None,
            k_s: 0.0,
            w_est: 0.0,
            cwnd_prior: 0.0,
        }
    }

    /// RFC 9438 eq. 1: `W_cubic(t) = C (t - K)^3 + W_max`, t in seconds.
    fn w_cubic(&self, t_s: f64) -> f64 {
        let d = t_s - self.k_s;
        C_CUBIC * d * d * d + self.w_max
    }

    fn congestion_avoidance(&mut self, now_us: u64, ack: &AckSample, acked: f64) {
        let epoch_start = match self.epoch_start_us {
            Some(t) => t,
            None => {
                // Start of a congestion-avoidance stage (RFC 9438 4.2).
                if self.w_max < self.w.cwnd {
                    self.w_max = self.w.cwnd;
                }
                self.k_s = ((self.w_max - self.w.cwnd) / C_CUBIC).max(0.0).cbrt();
                self.w_est = self.w.cwnd;
                self.epoch_start_us = Some(now_us);
                now_us
            }
        };
        let t_s = now_us.saturating_sub(epoch_start) as f64 / 1e6;
        let rtt_s = ack.srtt_us as f64 / 1e6;
        // Reno-friendly estimate (RFC 9438 4.3); alpha becomes 1 above cwnd_prior.
        let alpha = if self.w_est >= self.cwnd_prior {
            1.0
        } else {
            ALPHA_CUBIC
        };
        self.w_est += alpha * acked / self.w.cwnd.max(1.0);
        let w_cubic_now = self.w_cubic(t_s);
        if w_cubic_now < self.w_est {
            self.w.cwnd = self.w_est;
        } else {
            let target = self
                .w_cubic(t_s + rtt_s)
                .max(self.w.cwnd)
                .min(1.5 * self.w.cwnd);
            self.w.cwnd += (target - self.w.cwnd) * acked / self.w.cwnd.max(1.0);
        }
    }
}

impl Controller for Cubic {
    fn on_ack(&mut self, now_us: u64, ack: &AckSample) {
        if ack.in_recovery || ack.acked_segments == 0 || !self.w.may_grow(ack.cwnd_limited) {
            return;
        }
        let acked = self.w.slow_start(f64::from(ack.acked_segments));
        if acked > 0.0 {
            self.congestion_avoidance(now_us, ack, acked);
        }
        self.w.apply_clamp();
    }

    fn on_loss(&mut self, _now_us: u64, loss: &LossEvent) {
        let cwnd = self.w.cwnd;
        self.cwnd_prior = cwnd;
        // Fast convergence (RFC 9438 4.7).
        self.w_max = if cwnd < self.w_max {
            cwnd * (1.0 + BETA_CUBIC) / 2.0
        } else {
            cwnd
        };
        self.w.reduce(cwnd * BETA_CUBIC, loss.is_timeout);
        self.epoch_start_us = None;
    }

    fn set_cwnd_clamp(&mut self, clamp_segments: u32) {
        self.w.set_clamp(clamp_segments);
    }

    fn adopt(&mut self, cwnd_segments: u32, ssthresh_segments: u32, clamp_segments: u32) {
        // `cubictcp_init` resets CUBIC's own state (`bictcp_reset`) and
        // keeps the socket's window and ssthresh.
        self.w_max = 0.0;
        self.epoch_start_us = None;
        self.k_s = 0.0;
        self.w_est = 0.0;
        self.cwnd_prior = 0.0;
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
        "cubic"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(n: u32, srtt_us: u64) -> AckSample {
        AckSample {
            acked_segments: n,
            srtt_us,
            mss_bytes: 1448,
            // The window is in use: the growth rule runs.
            cwnd_limited: true,
            ..AckSample::default()
        }
    }

    #[test]
    fn reduces_by_beta_and_regrows_to_w_max_near_k() {
        let mut c = Cubic::new();
        c.on_ack(0, &ack(90, 100_000));
        assert_eq!(c.window_segments(), 100);
        c.on_loss(0, &LossEvent::default());
        assert_eq!(c.window_segments(), 70);
        // K = cbrt(30 / 0.4) = 4.217 s. Feed one window of ACKs per 100 ms RTT.
        let mut now = 0;
        while now < 4_200_000 {
            let w = c.window_segments();
            c.on_ack(now, &ack(w, 100_000));
            now += 100_000;
        }
        let w = c.window_segments();
        assert!((95..=105).contains(&w), "window near W_max at K: {w}");
    }

    #[test]
    fn timeout_drops_to_one_segment() {
        let mut c = Cubic::new();
        c.on_loss(
            5,
            &LossEvent {
                is_timeout: true,
                ..LossEvent::default()
            },
        );
        assert_eq!(c.window_segments(), 1);
        assert_eq!(c.ssthresh_segments(), 7);
    }
}
