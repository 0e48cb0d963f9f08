//! CUBIC as specified in RFC 9438: a cubic window growth function of the time
//! since the last congestion event, with a Reno-friendly region, fast
//! convergence and a multiplicative decrease of 0.7. Slow start ends, as in
//! Linux's `tcp_cubic.c`, at the first loss or earlier by HyStart
//! ([`HyStart`]; not RFC 9406's HyStart++, which Linux does not use).
//! Windows are in segments, times in microseconds.

use super::{window::LossWindow, AckSample, CcModel, Controller, LossEvent};

/// HyStart runs only from this window on, segments (`hystart_low_window`).
const HYSTART_LOW_WINDOW: f64 = 16.0;
/// ACKs at most this far apart, microseconds, continue an ACK train
/// (`hystart_ack_delta_us`).
const HYSTART_ACK_DELTA_US: u64 = 2_000;
/// RTT samples of a round before its delay test (`HYSTART_MIN_SAMPLES`).
const HYSTART_MIN_SAMPLES: u32 = 8;
/// Bounds of the delay test's margin over the min RTT, microseconds
/// (`HYSTART_DELAY_MIN`, `HYSTART_DELAY_MAX`).
const HYSTART_DELAY_MIN_US: u64 = 4_000;
const HYSTART_DELAY_MAX_US: u64 = 16_000;
/// What `hystart_ack_delay()` adds to the ACK train's threshold,
/// microseconds: its upper bound, which it takes at the rates simulated
/// here (64 KB GSO bursts, four of them, over the pacing rate: well over a
/// millisecond below 250 MB/s).
const HYSTART_ACK_DELAY_US: u64 = 1_000;
/// Delay samples are skipped for this long after a congestion-avoidance
/// epoch begins (`bictcp_acked`: "discard delay samples right after fast
/// recovery", one second).
const HYSTART_EPOCH_QUIET_US: u64 = 1_000_000;

/// Linux CUBIC's slow-start exit (`hystart_update` in net/ipv4/tcp_cubic.c,
/// both detectors on, as by default): in a round trip of slow start with at
/// least [`HYSTART_LOW_WINDOW`] segments,
/// - an *ACK train*: ACKs at most [`HYSTART_ACK_DELTA_US`] apart from the
///   round's start for longer than half the min RTT (plus
///   [`HYSTART_ACK_DELAY_US`]): the window already spans half the path;
/// - or a *delay increase*: the round's smallest RTT, after
///   [`HYSTART_MIN_SAMPLES`] samples, above the min RTT by more than an
///   eighth of it (4-16 ms): a queue is building.
///
/// Either sets ssthresh to the window, and slow start ends. It is armed
/// once per connection (and again after a retransmission timeout or a
/// change of controller, `bictcp_reset`).
///
/// **Why the simulator needs it.** Without it a CUBIC flow's slow start
/// always runs until the buffer overflows. Beside a BBR-like flow in a
/// 4-BDP buffer that left the BBR-like flow 0.09 of the link, where on the
/// kernel BBR took 0.37-0.46 (docs/BENCHMARKS.md, "BBR beside CUBIC in the
/// simulator"); and a flow whose clamp is lifted into a full queue
/// (competitive mode) overshot until loss, where the kernel's left slow
/// start at once on the queue's delay.
#[derive(Clone, Debug, Default)]
struct HyStart {
    /// Slow start was ended by it (no more tests until a reset).
    found: bool,
    /// The smallest RTT seen since the reset, microseconds (0: none).
    delay_min_us: u64,
    /// The round ends when deliveries pass this count (`end_seq`).
    round_end: u64,
    /// When the round began, microseconds.
    round_start_us: u64,
    /// The last ACK of the round's ACK train, microseconds.
    last_ack_us: u64,
    /// The round's smallest RTT, microseconds (`u64::MAX`: none).
    curr_rtt_us: u64,
    /// RTT samples of the round.
    samples: u32,
}

impl HyStart {
    /// A new round from this ACK (`bictcp_hystart_reset`).
    fn new_round(&mut self, now_us: u64, ack: &AckSample) {
        self.round_start_us = now_us;
        self.last_ack_us = now_us;
        self.round_end = ack.delivered_segments + u64::from(ack.inflight_segments);
        self.curr_rtt_us = u64::MAX;
        self.samples = 0;
    }

    /// One ACK with an RTT sample, in slow start from
    /// [`HYSTART_LOW_WINDOW`] on; true when slow start should end now.
    fn exit_now(&mut self, now_us: u64, ack: &AckSample) -> bool {
        if ack.delivered_segments > self.round_end {
            self.new_round(now_us, ack);
        }
        let mut exit = false;
        // The ACK train.
        if now_us.saturating_sub(self.last_ack_us) <= HYSTART_ACK_DELTA_US {
            self.last_ack_us = now_us;
            // Halved for a flow the kernel does not pace: CUBIC flows
            // without a pacing cap (`SK_PACING_NONE`).
            let threshold = (self.delay_min_us + HYSTART_ACK_DELAY_US) / 2;
            exit |= now_us.saturating_sub(self.round_start_us) > threshold;
        }
        // The delay increase.
        self.curr_rtt_us = self.curr_rtt_us.min(ack.rtt_us.max(1));
        if self.samples < HYSTART_MIN_SAMPLES {
            self.samples += 1;
        } else {
            let margin = (self.delay_min_us / 8).clamp(HYSTART_DELAY_MIN_US, HYSTART_DELAY_MAX_US);
            exit |= self.curr_rtt_us > self.delay_min_us + margin;
        }
        self.found |= exit;
        exit
    }
}

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
    /// Linux's slow-start exit; `None`: off (slow start until a loss).
    hystart: Option<HyStart>,
}

impl Default for Cubic {
    fn default() -> Self {
        Self::new()
    }
}

impl Cubic {
    /// A fresh CUBIC state: initial window of ten segments, no ssthresh,
    /// slow start until a loss ([`CcModel::Classic`]; HyStart with
    /// [`Controller::set_cc_model`]).
    pub fn new() -> Self {
        Self {
            w: LossWindow::new(),
            w_max: 0.0,
            epoch_start_us: None,
            k_s: 0.0,
            w_est: 0.0,
            cwnd_prior: 0.0,
            hystart: None,
        }
    }

    /// `bictcp_acked`'s part of an ACK: the min RTT since the reset and,
    /// in slow start from [`HYSTART_LOW_WINDOW`] segments on, HyStart's
    /// test, which may end slow start (ssthresh to the window).
    fn acked(&mut self, now_us: u64, ack: &AckSample) {
        let in_epoch_quiet = self
            .epoch_start_us
            .is_some_and(|t| now_us.saturating_sub(t) < HYSTART_EPOCH_QUIET_US);
        let Some(h) = self.hystart.as_mut() else {
            return;
        };
        if ack.rtt_us == 0 || in_epoch_quiet {
            return;
        }
        if h.delay_min_us == 0 || h.delay_min_us > ack.rtt_us {
            h.delay_min_us = ack.rtt_us;
        }
        if !h.found
            && self.w.cwnd < self.w.ssthresh
            && self.w.cwnd >= HYSTART_LOW_WINDOW
            && h.exit_now(now_us, ack)
        {
            self.w.ssthresh = self.w.cwnd;
        }
    }

    /// `bictcp_reset` with `bictcp_hystart_reset`: HyStart armed again, its
    /// min RTT forgotten.
    fn rearm_hystart(&mut self) {
        if let Some(h) = self.hystart.as_mut() {
            *h = HyStart::default();
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
        // `pkts_acked` comes before `cong_avoid` in Linux (tcp_ack), for
        // every ACK that delivers data.
        if ack.acked_segments > 0 {
            self.acked(now_us, ack);
        }
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
        // A timeout puts the socket in TCP_CA_Loss, where `cubictcp_state`
        // resets CUBIC and HyStart.
        if loss.is_timeout {
            self.rearm_hystart();
        }
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
        self.rearm_hystart();
        self.w
            .adopt(cwnd_segments, ssthresh_segments, clamp_segments);
    }

    fn undo_timeout(&mut self, prior_cwnd_segments: u32, prior_ssthresh_segments: u32) {
        self.w.undo(prior_cwnd_segments, prior_ssthresh_segments);
    }

    fn set_clamp_model(&mut self, model: super::ClampModel) {
        self.w.clamp_model = model;
    }

    fn set_cc_model(&mut self, model: CcModel) {
        match (model, &self.hystart) {
            (CcModel::Classic, _) => self.hystart = None,
            (CcModel::Linux, None) => self.hystart = Some(HyStart::default()),
            (CcModel::Linux, Some(_)) => {}
        }
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

    /// One slow-start round trip: a window's worth of ACKs, one segment
    /// each, `spacing_us` apart (1 ms: 12 Mbit/s at the bottleneck), every
    /// RTT sample `rtt_us`; the round starts at `now`. Returns the time
    /// after it.
    fn round(c: &mut Cubic, now: u64, rtt_us: u64, delivered: &mut u64, spacing_us: u64) -> u64 {
        let n = c.window_segments();
        let mut t = now;
        for _ in 0..n {
            *delivered += 1;
            let a = AckSample {
                rtt_us,
                min_rtt_us: 40_000,
                delivered_segments: *delivered,
                inflight_segments: n,
                ..ack(1, rtt_us)
            };
            c.on_ack(t, &a);
            t += spacing_us;
        }
        now + rtt_us
    }

    /// HyStart's delay test (`hystart_update`): once a round's RTTs sit
    /// more than an eighth of the min RTT (4-16 ms) above it, slow start
    /// ends with ssthresh at the window, before any loss. Without it
    /// (`Classic`) the window keeps doubling. ACKs 3 ms apart, so that the
    /// ACK train (2 ms) does not end it first.
    #[test]
    fn hystart_ends_slow_start_when_the_rtt_rises() {
        for (model, expect_exit) in [(CcModel::Linux, true), (CcModel::Classic, false)] {
            let mut c = Cubic::new();
            c.set_cc_model(model);
            let (mut now, mut delivered) = (0, 0);
            // Two rounds at the floor: the window grows to 40.
            for _ in 0..2 {
                now = round(&mut c, now, 40_000, &mut delivered, 3_000);
            }
            assert_eq!(c.window_segments(), 40, "{model:?}");
            assert!(
                c.ssthresh_segments() > 1000,
                "{model:?}: left slow start at the floor"
            );
            // A queue of 10 ms (the margin at 40 ms is 5 ms).
            now = round(&mut c, now, 50_000, &mut delivered, 3_000);
            let _ = round(&mut c, now, 50_000, &mut delivered, 3_000);
            if expect_exit {
                let w = c.window_segments();
                assert!(
                    c.ssthresh_segments() <= w && w < 80,
                    "{model:?}: ssthresh {} window {w}",
                    c.ssthresh_segments()
                );
            } else {
                assert!(c.ssthresh_segments() > 1000, "{model:?}");
                assert_eq!(c.window_segments(), 160, "{model:?}");
            }
        }
    }

    /// HyStart's ACK train: ACKs at most 2 ms apart for longer than half
    /// the min RTT end slow start although the RTT never rises; a
    /// timeout and a change of controller arm HyStart again.
    #[test]
    fn an_ack_train_of_half_the_min_rtt_ends_slow_start_and_a_timeout_rearms_it() {
        let mut c = Cubic::new();
        c.set_cc_model(CcModel::Linux);
        let (mut now, mut delivered) = (0, 0);
        // 1 ms apart: 10, 20, then a round of 20 ACKs spans 20 ms, which
        // passes (40 + 1) / 2 ms only at the 22nd: 40 ACKs do.
        for _ in 0..3 {
            now = round(&mut c, now, 40_000, &mut delivered, 1_000);
        }
        let w = c.window_segments();
        assert!(
            c.ssthresh_segments() == w && (21..80).contains(&w),
            "ssthresh {} window {w}",
            c.ssthresh_segments()
        );
        // Armed once per connection: a clamp write's new ssthresh is not
        // cut again ...
        c.set_cwnd_clamp(1000);
        for _ in 0..2 {
            now = round(&mut c, now, 40_000, &mut delivered, 1_000);
        }
        assert!(
            c.window_segments() > 2 * w,
            "window {} after the clamp's slow start",
            c.window_segments()
        );
        // ... until a timeout (TCP_CA_Loss resets CUBIC and HyStart): the
        // slow start back to ssthresh ends at the ACK train again.
        let before = c.window_segments();
        c.on_loss(
            now,
            &LossEvent {
                is_timeout: true,
                ..LossEvent::default()
            },
        );
        let ssthresh = c.ssthresh_segments();
        assert!(
            ssthresh >= 100,
            "ssthresh {ssthresh} after a window of {before}"
        );
        for _ in 0..7 {
            now = round(&mut c, now, 40_000, &mut delivered, 1_000);
        }
        assert!(
            c.ssthresh_segments() < 80,
            "HyStart not armed again after the timeout: ssthresh {}",
            c.ssthresh_segments()
        );
        // A change of controller too (`cubictcp_init`).
        let mut d = Cubic::new();
        d.set_cc_model(CcModel::Linux);
        let (mut now, mut delivered) = (0, 0);
        for _ in 0..3 {
            now = round(&mut d, now, 40_000, &mut delivered, 1_000);
        }
        d.adopt(10, u32::MAX, 1000);
        for _ in 0..3 {
            now = round(&mut d, now, 40_000, &mut delivered, 1_000);
        }
        assert!(
            d.ssthresh_segments() < 80,
            "HyStart not armed again after adopt: ssthresh {}",
            d.ssthresh_segments()
        );
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
