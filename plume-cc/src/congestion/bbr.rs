//! A BBR(v1)-like model-based controller: it estimates the bottleneck
//! bandwidth (windowed max of delivery-rate samples over ten round trips) and
//! the round-trip propagation time (windowed min over ten seconds), paces at a
//! gain times the bandwidth and caps the window at a gain times the estimated
//! bandwidth-delay product. Modes: Startup, Drain, ProbeBW (eight-phase gain
//! cycle), ProbeRTT. Under [`CcModel::Linux`] the window target includes
//! Linux's allowance for ACK aggregation (`bbr_update_ack_aggregation`,
//! `bbr_ack_aggregation_cwnd` in net/ipv4/tcp_bbr.c, since 5.1): the most
//! data ACKed beyond the bandwidth estimate in one aggregation epoch over
//! the last 5-10 rounds, at most 100 ms at the estimated bandwidth
//! ([`AckAggregation`]). Simplifications against Linux `tcp_bbr`: no
//! packet-conservation step on non-timeout losses, no long-term bandwidth
//! (policer) model, a deterministic ProbeBW phase, time-based cycling.

use super::{AckSample, CcModel, Controller, LossEvent, INITIAL_CWND_SEGMENTS, MAX_CWND_SEGMENTS};

/// Startup gain 2/ln(2), for both pacing and window.
const HIGH_GAIN: f64 = 2.885;
/// ProbeBW pacing gains, one phase per min RTT.
const CYCLE_GAINS: [f64; 8] = [1.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
/// Bandwidth filter length in round trips.
const BW_ROUNDS: usize = 10;
/// Min-RTT filter length, microseconds.
const MIN_RTT_WINDOW_US: u64 = 10_000_000;
/// Time spent at the ProbeRTT window, microseconds.
const PROBE_RTT_DURATION_US: u64 = 200_000;
/// Window during ProbeRTT and the general floor, segments.
const MIN_PIPE_CWND_SEGMENTS: u32 = 4;
/// Rounds per window of the ACK-aggregation max filter; the filter keeps
/// two windows (`bbr_extra_acked_win_rtts` in tcp_bbr.c: 5).
const EXTRA_ACKED_WIN_ROUNDS: u32 = 5;
/// The most the aggregation allowance adds, microseconds at the estimated
/// bandwidth (`bbr_extra_acked_max_us`: 100 ms).
const EXTRA_ACKED_MAX_US: u64 = 100_000;
/// An aggregation epoch that has ACKed this many segments starts over
/// (`bbr_ack_epoch_acked_reset_thresh`: 2^20).
const ACK_EPOCH_RESET_SEGMENTS: u64 = 1 << 20;

/// How much more data the ACKs deliver than the bandwidth estimate
/// predicts, in bursts: Linux's BBR adds it to its window target, so that a
/// path whose ACKs come in aggregates (Wi-Fi, cellular, delayed ACKs, or a
/// flow whose estimate fell below what the path now gives it) does not
/// starve the sender between bursts. An epoch begins when the ACKs fall
/// behind the estimate; the allowance is the most that one epoch got ahead
/// of it, over the last two windows of [`EXTRA_ACKED_WIN_ROUNDS`] rounds,
/// at most the window.
#[derive(Clone, Debug, Default)]
struct AckAggregation {
    /// The max filter: two windows of [`EXTRA_ACKED_WIN_ROUNDS`] rounds,
    /// segments.
    extra: [u32; 2],
    /// The window being filled.
    index: usize,
    /// Rounds since it began.
    rounds: u32,
    /// When the current aggregation epoch began, microseconds.
    epoch_start_us: u64,
    /// Segments ACKed in it.
    epoch_acked: u64,
}

impl AckAggregation {
    /// Takes one ACK of `acked` segments at `now_us`, whether it starts a
    /// round, the bandwidth estimate in segments per second and the window.
    fn update(&mut self, now_us: u64, acked: u32, round_start: bool, bw_segments: f64, cwnd: u32) {
        if acked == 0 {
            return;
        }
        if round_start {
            self.rounds += 1;
            if self.rounds >= EXTRA_ACKED_WIN_ROUNDS {
                self.rounds = 0;
                self.index = 1 - self.index;
                self.extra[self.index] = 0;
            }
        }
        let elapsed_us = now_us.saturating_sub(self.epoch_start_us);
        let mut expected = (bw_segments * elapsed_us as f64 / 1e6) as u64;
        // An epoch whose ACKs came no faster than the estimate ends here,
        // as does a very long one.
        if self.epoch_acked <= expected
            || self.epoch_acked + u64::from(acked) >= ACK_EPOCH_RESET_SEGMENTS
        {
            self.epoch_acked = 0;
            self.epoch_start_us = now_us;
            expected = 0;
        }
        self.epoch_acked += u64::from(acked);
        let extra = self
            .epoch_acked
            .saturating_sub(expected)
            .min(u64::from(cwnd)) as u32;
        self.extra[self.index] = self.extra[self.index].max(extra);
    }

    /// The filter's value, segments.
    fn extra_segments(&self) -> u32 {
        self.extra[0].max(self.extra[1])
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Startup,
    Drain,
    ProbeBw,
    ProbeRtt,
}

/// BBR-like congestion control, the model-based reference scheme.
#[derive(Clone, Debug)]
pub struct Bbr {
    mss_bytes: u32,
    mode: Mode,
    cwnd: u32,
    clamp_segments: u32,
    ssthresh: u32,
    pacing_bytes_per_sec: u64,
    pacing_gain: f64,
    cwnd_gain: f64,
    bw_rounds: [u64; BW_ROUNDS],
    round_count: u64,
    next_round_delivered: u64,
    min_rtt_us: u64,
    min_rtt_stamp_us: u64,
    full_bw: u64,
    full_bw_count: u32,
    filled_pipe: bool,
    cycle_index: usize,
    cycle_start_us: u64,
    probe_rtt_done_us: Option<u64>,
    prior_cwnd: u32,
    /// The ACK-aggregation allowance; `None` under [`CcModel::Classic`].
    aggregation: Option<AckAggregation>,
}

impl Bbr {
    /// A fresh BBR-like state for a sender with `mss_bytes` segments.
    pub fn new(mss_bytes: u32) -> Self {
        Self {
            mss_bytes: mss_bytes.max(1),
            mode: Mode::Startup,
            cwnd: INITIAL_CWND_SEGMENTS,
            clamp_segments: u32::MAX,
            ssthresh: u32::MAX,
            // Initial pacing: high gain times IW per 1 ms (the kernel's no-RTT fallback).
            pacing_bytes_per_sec: (HIGH_GAIN
                * f64::from(INITIAL_CWND_SEGMENTS)
                * f64::from(mss_bytes.max(1))
                * 1_000.0) as u64,
            pacing_gain: HIGH_GAIN,
            cwnd_gain: HIGH_GAIN,
            bw_rounds: [0; BW_ROUNDS],
            round_count: 0,
            next_round_delivered: 0,
            min_rtt_us: u64::MAX,
            min_rtt_stamp_us: 0,
            full_bw: 0,
            full_bw_count: 0,
            filled_pipe: false,
            cycle_index: 0,
            cycle_start_us: 0,
            probe_rtt_done_us: None,
            prior_cwnd: 0,
            aggregation: None,
        }
    }

    /// Bottleneck bandwidth estimate in bytes per second.
    pub fn btl_bw_bytes_per_sec(&self) -> u64 {
        self.bw_rounds.iter().copied().max().unwrap_or(0)
    }

    /// Estimated BDP in segments, `None` before any bandwidth or RTT sample.
    fn bdp_segments(&self, gain: f64) -> Option<u32> {
        let bw = self.btl_bw_bytes_per_sec();
        if bw == 0 || self.min_rtt_us == u64::MAX {
            return None;
        }
        let bdp = bw as f64 * self.min_rtt_us as f64 / 1e6 / f64::from(self.mss_bytes);
        Some((gain * bdp).ceil().min(f64::from(MAX_CWND_SEGMENTS)) as u32)
    }

    /// The window allowance for ACK aggregation, segments: the filter's
    /// value once the pipe is full, at most [`EXTRA_ACKED_MAX_US`] of the
    /// estimated bandwidth (`bbr_ack_aggregation_cwnd`); 0 without it.
    fn aggregation_segments(&self) -> u32 {
        match &self.aggregation {
            Some(a) if self.filled_pipe => {
                let bw = self.btl_bw_bytes_per_sec() as f64;
                let most = bw * EXTRA_ACKED_MAX_US as f64 / 1e6 / f64::from(self.mss_bytes);
                a.extra_segments().min(most as u32)
            }
            _ => 0,
        }
    }

    fn enter_probe_bw(&mut self, now_us: u64) {
        self.mode = Mode::ProbeBw;
        self.pacing_gain = 1.0;
        self.cwnd_gain = 2.0;
        self.cycle_index = 2;
        self.cycle_start_us = now_us;
    }

    fn update_model(&mut self, now_us: u64, ack: &AckSample) -> bool {
        let mut round_start = false;
        if ack.prior_delivered_segments >= self.next_round_delivered {
            self.next_round_delivered = ack.delivered_segments;
            self.round_count += 1;
            round_start = true;
            self.bw_rounds[(self.round_count % BW_ROUNDS as u64) as usize] = 0;
        }
        let slot = &mut self.bw_rounds[(self.round_count % BW_ROUNDS as u64) as usize];
        *slot = (*slot).max(ack.delivery_rate_bytes_per_sec);
        let expired = now_us.saturating_sub(self.min_rtt_stamp_us) > MIN_RTT_WINDOW_US;
        if ack.rtt_us > 0 && (ack.rtt_us <= self.min_rtt_us || expired) {
            self.min_rtt_us = ack.rtt_us;
            self.min_rtt_stamp_us = now_us;
        }
        if expired && self.mode != Mode::ProbeRtt {
            self.mode = Mode::ProbeRtt;
            self.pacing_gain = 1.0;
            self.prior_cwnd = self.cwnd;
            self.probe_rtt_done_us = None;
        }
        round_start
    }

    fn update_mode(&mut self, now_us: u64, ack: &AckSample, round_start: bool) {
        if !self.filled_pipe && round_start {
            let bw = self.btl_bw_bytes_per_sec();
            if bw as f64 >= self.full_bw as f64 * 1.25 {
                self.full_bw = bw;
                self.full_bw_count = 0;
            } else {
                self.full_bw_count += 1;
                self.filled_pipe = self.full_bw_count >= 3;
            }
        }
        match self.mode {
            Mode::Startup if self.filled_pipe => {
                self.mode = Mode::Drain;
                self.pacing_gain = 1.0 / HIGH_GAIN;
                self.cwnd_gain = HIGH_GAIN;
            }
            Mode::Drain => {
                if self
                    .bdp_segments(1.0)
                    .is_some_and(|bdp| ack.inflight_segments <= bdp)
                {
                    self.enter_probe_bw(now_us);
                }
            }
            Mode::ProbeBw => {
                let phase_us = if self.min_rtt_us == u64::MAX {
                    0
                } else {
                    self.min_rtt_us
                };
                if now_us.saturating_sub(self.cycle_start_us) > phase_us {
                    self.cycle_index = (self.cycle_index + 1) % CYCLE_GAINS.len();
                    self.cycle_start_us = now_us;
                }
                self.pacing_gain = CYCLE_GAINS[self.cycle_index];
            }
            Mode::ProbeRtt => match self.probe_rtt_done_us {
                None if ack.inflight_segments <= MIN_PIPE_CWND_SEGMENTS => {
                    self.probe_rtt_done_us = Some(now_us + PROBE_RTT_DURATION_US);
                }
                Some(done) if now_us >= done => {
                    self.min_rtt_stamp_us = now_us;
                    self.cwnd = self.cwnd.max(self.prior_cwnd);
                    if self.filled_pipe {
                        self.enter_probe_bw(now_us);
                    } else {
                        self.mode = Mode::Startup;
                        self.pacing_gain = HIGH_GAIN;
                        self.cwnd_gain = HIGH_GAIN;
                    }
                }
                _ => {}
            },
            Mode::Startup => {}
        }
    }

    fn update_pacing(&mut self) {
        let bw = self.btl_bw_bytes_per_sec();
        if bw == 0 {
            return;
        }
        let rate = ((self.pacing_gain * bw as f64) as u64).max(1);
        // In Startup the rate only rises, as in Linux.
        if self.filled_pipe || rate > self.pacing_bytes_per_sec {
            self.pacing_bytes_per_sec = rate;
        }
    }

    fn update_cwnd(&mut self, ack: &AckSample) {
        let acked = ack.acked_segments;
        match self.bdp_segments(self.cwnd_gain) {
            Some(target) => {
                let target = target
                    .saturating_add(self.aggregation_segments())
                    .saturating_add(3)
                    .max(MIN_PIPE_CWND_SEGMENTS);
                if self.filled_pipe {
                    self.cwnd = self.cwnd.saturating_add(acked).min(target);
                } else if self.cwnd < target
                    || ack.delivered_segments < u64::from(INITIAL_CWND_SEGMENTS)
                {
                    self.cwnd = self.cwnd.saturating_add(acked);
                }
            }
            None => self.cwnd = self.cwnd.saturating_add(acked),
        }
        if self.mode == Mode::ProbeRtt {
            self.cwnd = self.cwnd.min(MIN_PIPE_CWND_SEGMENTS);
        }
        self.cwnd = self
            .cwnd
            .min(MAX_CWND_SEGMENTS)
            .min(self.clamp_segments)
            .max(1);
    }
}

impl Controller for Bbr {
    fn on_ack(&mut self, now_us: u64, ack: &AckSample) {
        let round_start = self.update_model(now_us, ack);
        let bw_segments = self.btl_bw_bytes_per_sec() as f64 / f64::from(self.mss_bytes);
        let cwnd = self.cwnd;
        if let Some(a) = self.aggregation.as_mut() {
            a.update(now_us, ack.acked_segments, round_start, bw_segments, cwnd);
        }
        self.update_mode(now_us, ack, round_start);
        self.update_pacing();
        self.update_cwnd(ack);
    }

    fn on_loss(&mut self, _now_us: u64, loss: &LossEvent) {
        if loss.is_timeout {
            self.prior_cwnd = self.cwnd;
            self.cwnd = 1;
        }
    }

    fn set_cc_model(&mut self, model: CcModel) {
        match (model, &self.aggregation) {
            (CcModel::Classic, _) => self.aggregation = None,
            (CcModel::Linux, None) => self.aggregation = Some(AckAggregation::default()),
            (CcModel::Linux, Some(_)) => {}
        }
    }

    fn set_cwnd_clamp(&mut self, clamp_segments: u32) {
        let clamp = clamp_segments.max(1);
        self.clamp_segments = clamp;
        self.ssthresh = clamp;
        self.cwnd = self.cwnd.min(clamp);
    }

    fn adopt(&mut self, cwnd_segments: u32, _ssthresh_segments: u32, clamp_segments: u32) {
        // `bbr_init`: a fresh model in STARTUP over the socket's window,
        // and ssthresh set to infinity (TCP_INFINITE_SSTHRESH).
        let linux = self.aggregation.is_some();
        *self = Self::new(self.mss_bytes);
        if linux {
            self.aggregation = Some(AckAggregation::default());
        }
        self.cwnd = cwnd_segments.max(1);
        self.clamp_segments = clamp_segments.max(1);
    }

    fn window_segments(&self) -> u32 {
        self.cwnd.max(1)
    }

    fn ssthresh_segments(&self) -> u32 {
        self.ssthresh
    }

    fn pacing_rate_bytes_per_sec(&self) -> Option<u64> {
        Some(self.pacing_bytes_per_sec.max(1))
    }

    fn name(&self) -> &'static str {
        "bbr"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ACK of one 1000-byte segment on a 1 MB/s, 50 ms path (BDP 50
    /// segments), `delivered` segments in.
    fn steady_ack(delivered: u64) -> AckSample {
        AckSample {
            acked_segments: 1,
            rtt_us: 50_000,
            srtt_us: 50_000,
            min_rtt_us: 50_000,
            inflight_segments: 50,
            delivered_segments: delivered,
            prior_delivered_segments: delivered.saturating_sub(50),
            delivery_rate_bytes_per_sec: 1_000_000,
            in_recovery: false,
            cwnd_limited: true,
            mss_bytes: 1000,
        }
    }

    #[test]
    fn converges_to_bandwidth_and_leaves_startup() {
        // 1000 segments/s of 1000 bytes = 1 MB/s, 50 ms RTT: BDP 50 segments.
        let mut b = Bbr::new(1000);
        let mut delivered = 0u64;
        let mut now = 0u64;
        for i in 0..4000u64 {
            now += 1_000;
            delivered += 1;
            b.on_ack(now, &steady_ack(delivered));
            assert!(b.window_segments() >= 1, "step {i}");
        }
        assert_eq!(b.btl_bw_bytes_per_sec(), 1_000_000);
        assert!(b.filled_pipe);
        assert!(b.window_segments() <= 2 * 50 + 3 + 1);
        let rate = b.pacing_rate_bytes_per_sec().unwrap_or(0);
        assert!((750_000..=1_250_000).contains(&rate), "pacing {rate}");
    }

    /// ACKs that come in bursts of 20 segments every 20 ms at an estimate
    /// of 1,000 segments/s (the same average rate): under `Linux` each
    /// burst runs up to 20 segments ahead of the estimate, and the window
    /// target grows by about that (`bbr_ack_aggregation_cwnd`); under
    /// `Classic` it stays at two BDPs plus 3. A model switch (`adopt`)
    /// keeps the allowance on.
    #[test]
    fn aggregated_acks_widen_the_window_under_the_linux_model_only() {
        let run = |model: CcModel, adopt: bool| {
            let mut b = Bbr::new(1000);
            b.set_cc_model(model);
            if adopt {
                b.adopt(10, u32::MAX, u32::MAX);
            }
            let (mut delivered, mut now) = (0u64, 0u64);
            // Steady ACKs first: the pipe fills at 1 MB/s, 50 ms RTT.
            let ack = steady_ack;
            for _ in 0..2000 {
                now += 1_000;
                delivered += 1;
                b.on_ack(now, &ack(delivered));
            }
            assert!(b.filled_pipe);
            // Then bursts: 20 ACKs 50 us apart every 20 ms.
            for _ in 0..100 {
                now += 20_000 - 20 * 50;
                for _ in 0..20 {
                    now += 50;
                    delivered += 1;
                    b.on_ack(now, &ack(delivered));
                }
            }
            b.window_segments()
        };
        let classic = run(CcModel::Classic, false);
        assert_eq!(classic, 2 * 50 + 3);
        for adopt in [false, true] {
            let linux = run(CcModel::Linux, adopt);
            assert!(
                (classic + 15..=classic + 20).contains(&linux),
                "window {linux} under Linux (adopt {adopt}), {classic} under Classic"
            );
        }
    }
}
