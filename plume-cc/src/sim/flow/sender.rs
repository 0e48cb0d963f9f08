//! The sender of one flow as a state machine: it decides each transmission
//! (window, receive window, pacing, lost segments first), processes ACKs
//! (RTT and delivery-rate samples, loss detection, one congestion event per
//! window), runs the retransmission timer with its backoff, and reports
//! what the sock_ops datapath would see of it ([`Sender::flow_sample`]).
//!
//! Why its own file: this is the order of events the kernel follows, in one
//! place; the state it orders lives in its pieces: the scoreboard
//! (`super::scoreboard`), the RTT estimator and the delivery-rate sampler
//! (`crate::flow`), and the controller with its datapath limits.

use crate::congestion::{
    AckSample, CcModel, ClampHold, ClampModel, Clamped, Controller, ControllerKind, LossEvent,
};
use crate::flow::{FlowSample, RateSampler, RttEstimator};
use crate::sim::metrics::{FlowCounters, RttHistogram};

use super::scoreboard::{Scoreboard, Seg};
use super::{Ack, DatapathModel, MinRttSample, Packet, SendDecision, TimeoutModel};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CaState {
    Open,
    Recovery,
    Loss,
}

/// The sender side of one flow (see the module docs).
pub struct Sender {
    controller: Clamped<Box<dyn Controller>>,
    mss_bytes: u32,
    wire_bytes: u32,
    rwnd_segments: u64,
    /// Per-segment state, the in-flight counts and loss detection.
    board: Scoreboard,
    snd_una: u64,
    snd_nxt: u64,
    state: CaState,
    recovery_point: u64,
    /// Delivery-rate sampling (`tcp_rate.c`).
    rate: RateSampler,
    rtt: RttEstimator,
    /// Expirations of the retransmission timer since the last new ACK
    /// (RFC 6298 (5.5)); the RTO is doubled this many times.
    backoff: u32,
    /// RTO deadline, microseconds.
    pub(crate) rto_deadline_us: Option<u64>,
    /// Time of the RTO event in the queue, if one is.
    pub(crate) rto_event_us: Option<u64>,
    /// A pacing/send event is in the queue.
    pub(crate) send_event_pending: bool,
    next_send_ns: u64,
    bytes_acked: u64,
    counters: FlowCounters,
    rtt_hist: RttHistogram,
    /// `tp->is_cwnd_limited`, `max_packets_out` and `cwnd_usage_seq`
    /// (`tcp_cwnd_validate`).
    is_cwnd_limited: bool,
    max_packets_out: u32,
    cwnd_usage_seq: u64,
    /// How the datapath sees this flow ([`DatapathModel`]).
    datapath: DatapathModel,
    /// `tp->rtt_seq`: the RTT callback comes with the first RTT sample taken
    /// once `snd_una` is past it, which then moves it to `snd_nxt`.
    rtt_seq: u64,
    /// The statistics as the datapath last copied them, at a callback.
    snapshot: Option<FlowSample>,
    /// Limits written and not yet applied (at the next callback).
    pending_limits: Option<(u32, u32)>,
    /// The controller written with the pending limits, if the writer
    /// chose one ([`Self::write_controller`]).
    pending_controller: Option<ControllerKind>,
    /// Whether a spurious timeout is undone ([`TimeoutModel`]).
    timeout_model: TimeoutModel,
    /// Which RTT of an ACK the min RTT takes ([`MinRttSample`]).
    min_rtt_sample: MinRttSample,
    /// What a timeout entered from the open state may be undone to:
    /// `prior_cwnd` and `prior_ssthresh` (`tcp_enter_loss()`), while the
    /// timeout's loss state lasts (`tp->undo_marker`).
    undo: Option<(u32, u32)>,
    /// Send time of the first retransmission of that loss state
    /// (`tp->retrans_stamp`): an ACK echoing an older send time was
    /// triggered by an original transmission.
    retrans_stamp_us: Option<u64>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("controller", &self.controller.name())
            .field("snd_una", &self.snd_una)
            .field("snd_nxt", &self.snd_nxt)
            .field("cwnd", &self.controller.window_segments())
            .finish_non_exhaustive()
    }
}

impl Sender {
    /// A sender of `mss_bytes` segments, `wire_bytes` on the wire each,
    /// driven by `controller` under (initially absent) datapath limits, and
    /// never more than `rwnd_segments` beyond `snd_una` (the receiver's
    /// window, which bounds Linux's cwnd in practice).
    pub fn new(
        controller: Box<dyn Controller>,
        mss_bytes: u32,
        wire_bytes: u32,
        rwnd_segments: u32,
    ) -> Self {
        Self {
            controller: Clamped::new(controller, mss_bytes),
            mss_bytes,
            wire_bytes,
            rwnd_segments: u64::from(rwnd_segments.max(1)),
            board: Scoreboard::new(1024),
            snd_una: 0,
            snd_nxt: 0,
            state: CaState::Open,
            recovery_point: 0,
            rate: RateSampler::new(),
            rtt: RttEstimator::new(),
            backoff: 0,
            rto_deadline_us: None,
            rto_event_us: None,
            send_event_pending: false,
            next_send_ns: 0,
            bytes_acked: 0,
            counters: FlowCounters::default(),
            rtt_hist: RttHistogram::new(),
            is_cwnd_limited: false,
            max_packets_out: 0,
            cwnd_usage_seq: 0,
            datapath: DatapathModel::default(),
            rtt_seq: 0,
            snapshot: None,
            pending_limits: None,
            pending_controller: None,
            timeout_model: TimeoutModel::default(),
            min_rtt_sample: MinRttSample::default(),
            undo: None,
            retrans_stamp_us: None,
        }
    }

    /// Chooses which RTT of an ACK the min RTT takes ([`MinRttSample`]).
    pub fn set_min_rtt_sample(&mut self, model: MinRttSample) {
        self.min_rtt_sample = model;
    }

    /// Chooses whether a spurious timeout is undone ([`TimeoutModel`]).
    pub fn set_timeout_model(&mut self, model: TimeoutModel) {
        self.timeout_model = model;
    }

    /// Chooses how the datapath sees the flow and applies its limits
    /// ([`DatapathModel`]).
    pub fn set_datapath_model(&mut self, model: DatapathModel) {
        self.datapath = model;
    }

    /// Writes the daemon's limits for this flow: under
    /// [`DatapathModel::Callbacks`] they take effect at the next callback
    /// (the datapath's target check runs there), under
    /// [`DatapathModel::Interval`] at once.
    pub fn write_limits(&mut self, cwnd_clamp_segments: u32, max_pacing_bytes_per_sec: u32) {
        match self.datapath {
            DatapathModel::Callbacks => {
                self.pending_limits = Some((cwnd_clamp_segments, max_pacing_bytes_per_sec));
            }
            DatapathModel::Interval => self
                .controller
                .set_limits(cwnd_clamp_segments, max_pacing_bytes_per_sec),
        }
    }

    /// Writes the kernel controller the flow should run (a policy's
    /// competitive controller, or its base), applied as the limits are: at
    /// the next callback, before them (the program switches
    /// `TCP_CONGESTION` first), or at once ([`Clamped::switch_base`]).
    pub fn write_controller(&mut self, kind: ControllerKind) {
        match self.datapath {
            DatapathModel::Callbacks => self.pending_controller = Some(kind),
            DatapathModel::Interval => self.controller.switch_base(kind),
        }
    }

    /// What a daemon polling at `now_us` reads of this flow: under
    /// [`DatapathModel::Callbacks`] the statistics of the last callback
    /// (the flow's state now before its first one), under
    /// [`DatapathModel::Interval`] the state now. The daemon times its
    /// samples at its own poll, so `timestamp_us` is `now_us` either way;
    /// `stats_us` stays the copy's time (the callback's, or `now_us` for
    /// the state now), as the kernel's `updated_ns` does.
    pub fn datapath_sample(&self, now_us: u64) -> FlowSample {
        match (self.datapath, self.snapshot) {
            (DatapathModel::Callbacks, Some(s)) => FlowSample {
                timestamp_us: now_us,
                ..s
            },
            _ => self.flow_sample(now_us),
        }
    }

    /// A sock_ops callback at `now_us`: the program copies the statistics
    /// (`fill`), then its target check applies the limits written since the
    /// last one and records them as applied (plume-cc-ebpf's `update`).
    fn datapath_callback(&mut self, now_us: u64) {
        if self.datapath != DatapathModel::Callbacks {
            return;
        }
        let mut snap = self.flow_sample(now_us);
        if let Some(kind) = self.pending_controller.take() {
            self.controller.switch_base(kind);
        }
        if let Some((clamp, pacing)) = self.pending_limits.take() {
            self.controller.set_limits(clamp, pacing);
        }
        snap.cwnd_clamp_segments = self.controller.cwnd_clamp_segments();
        snap.max_pacing_bytes_per_sec = self.controller.max_pacing_bytes_per_sec();
        self.snapshot = Some(snap);
    }

    /// Chooses how the clamp acts on the window ([`ClampModel`]).
    pub fn set_clamp_model(&mut self, model: ClampModel) {
        self.controller.set_clamp_model(model);
    }

    /// Chooses how closely the controller follows Linux's ([`CcModel`]).
    pub fn set_cc_model(&mut self, model: CcModel) {
        self.controller.set_cc_model(model);
    }

    /// Holds a new clamp after a loss as the datapath does
    /// ([`Clamped::set_clamp_hold`]).
    pub fn set_clamp_hold(&mut self, hold: ClampHold) {
        self.controller.set_clamp_hold(hold);
    }

    /// The controller with its datapath limits (the policy sets them here).
    pub fn controller(&self) -> &Clamped<Box<dyn Controller>> {
        &self.controller
    }

    /// Mutable access to the controller, e.g. to apply a policy target.
    pub fn controller_mut(&mut self) -> &mut Clamped<Box<dyn Controller>> {
        &mut self.controller
    }

    /// Cumulative counters.
    pub fn counters(&self) -> &FlowCounters {
        &self.counters
    }

    /// RTT samples of the whole flow.
    pub fn rtt_histogram(&self) -> &RttHistogram {
        &self.rtt_hist
    }

    /// Smoothed RTT, microseconds (0 before the first sample).
    pub fn srtt_us(&self) -> u64 {
        self.rtt.srtt_us()
    }

    /// Minimum RTT, microseconds (0 before the first sample).
    pub fn min_rtt_us(&self) -> u64 {
        self.rtt.min_rtt_us()
    }

    /// The RTT estimator (RFC 6298).
    pub fn rtt(&self) -> &RttEstimator {
        &self.rtt
    }

    /// Segments sent and not cumulatively acknowledged (`packets_out`).
    pub fn packets_out(&self) -> u32 {
        u32::try_from(self.snd_nxt - self.snd_una).unwrap_or(u32::MAX)
    }

    /// Segments in flight by the kernel's formula.
    pub fn inflight_segments(&self) -> u32 {
        let b = &self.board;
        (self.packets_out() + b.retrans_out()).saturating_sub(b.sacked_out() + b.lost_out())
    }

    /// Wire bytes of one segment (payload plus headers).
    pub fn wire_bytes(&self) -> u32 {
        self.wire_bytes
    }

    /// Payload bytes of one segment.
    pub fn mss_bytes(&self) -> u32 {
        self.mss_bytes
    }

    /// The statistics the eBPF datapath would report for this flow now
    /// (copied now: `stats_us` is `now_us`).
    pub fn flow_sample(&self, now_us: u64) -> FlowSample {
        let sat = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        FlowSample {
            timestamp_us: now_us,
            stats_us: now_us,
            srtt_us: sat(self.rtt.srtt_us()),
            min_rtt_us: sat(self.rtt.min_rtt_us()),
            last_rtt_us: sat(self.rtt.last_rtt_us()),
            cwnd_segments: self.controller.window_segments(),
            ssthresh_segments: self.controller.ssthresh_segments(),
            mss_bytes: self.mss_bytes,
            packets_out: self.packets_out(),
            retrans_out: self.board.retrans_out(),
            lost_out: self.board.lost_out(),
            total_retrans: self.counters.retransmitted_segments as u32,
            delivered_segments: self.rate.delivered() as u32,
            bytes_acked: self.bytes_acked,
            rate_delivered_segments: sat(self.rate.rate_delivered()),
            rate_interval_us: sat(self.rate.rate_interval_us()),
            cwnd_clamp_segments: self.controller.cwnd_clamp_segments(),
            max_pacing_bytes_per_sec: self.controller.max_pacing_bytes_per_sec(),
        }
    }

    /// Decides the next transmission at `now_us`.
    pub fn poll_send(&mut self, now_us: u64) -> SendDecision {
        let cwnd = self.controller.window_segments();
        if self.inflight_segments() >= cwnd {
            self.cwnd_validate(true);
            return SendDecision::Blocked;
        }
        let rate = self.controller.pacing_rate_bytes_per_sec();
        if rate.is_some() && now_us.saturating_mul(1000) < self.next_send_ns {
            return SendDecision::WaitUntil(self.next_send_ns.div_ceil(1000));
        }
        // Lost segments first, then new data within the receive window.
        let retransmit = self.board.next_retransmit(self.snd_una, self.snd_nxt);
        if retransmit.is_none() && self.snd_nxt - self.snd_una >= self.rwnd_segments {
            return SendDecision::Blocked;
        }
        // Nothing in flight: a new rate-sampling interval starts now.
        let stamp = self.rate.on_send(now_us, self.snd_una == self.snd_nxt);
        let seq = match retransmit {
            Some(s) => s,
            None => {
                self.board.make_room(self.snd_una, self.snd_nxt);
                self.snd_nxt += 1;
                self.snd_nxt - 1
            }
        };
        let tx = self.board.on_send(seq, now_us, stamp, retransmit.is_some());
        if retransmit.is_some() {
            self.counters.retransmitted_segments += 1;
            // tcp_retransmit_skb(): `if (!tp->retrans_stamp)
            // tp->retrans_stamp = tcp_skb_timestamp_ts(...)`, the first
            // retransmission's send time.
            if self.state == CaState::Loss && self.retrans_stamp_us.is_none() {
                self.retrans_stamp_us = Some(now_us);
            }
        }
        self.counters.sent_segments += 1;
        if let Some(rate) = rate {
            let gap_ns = u64::from(self.wire_bytes) * 1_000_000_000 / rate.max(1);
            self.next_send_ns = self.next_send_ns.max(now_us.saturating_mul(1000)) + gap_ns;
        }
        if self.rto_deadline_us.is_none() {
            self.rto_deadline_us = Some(now_us + self.current_rto_us());
        }
        let limited = self.inflight_segments() >= self.controller.window_segments();
        self.cwnd_validate(limited);
        if retransmit.is_some() {
            // BPF_SOCK_OPS_RETRANS_CB, after the retransmission went out
            // (tcp_retransmit_skb).
            self.datapath_callback(now_us);
        }
        SendDecision::Send(Packet {
            seq,
            tx,
            sent_us: now_us,
        })
    }

    /// `tcp_cwnd_validate()` (tcp_output.c): remembers whether the window
    /// was fully used in the current round, or the most segments out.
    fn cwnd_validate(&mut self, is_cwnd_limited: bool) {
        let packets_out = self.packets_out();
        if self.snd_una >= self.cwnd_usage_seq
            || is_cwnd_limited
            || (!self.is_cwnd_limited && packets_out > self.max_packets_out)
        {
            self.is_cwnd_limited = is_cwnd_limited;
            self.max_packets_out = packets_out;
            self.cwnd_usage_seq = self.snd_nxt;
        }
    }

    /// `tcp_is_cwnd_limited()` (include/net/tcp.h).
    fn tcp_is_cwnd_limited(&self) -> bool {
        if self.is_cwnd_limited {
            return true;
        }
        let cwnd = self.controller.window_segments();
        cwnd < self.controller.ssthresh_segments() && cwnd < 2 * self.max_packets_out
    }

    fn current_rto_us(&self) -> u64 {
        self.rtt.backed_off_rto_us(self.backoff)
    }

    /// Takes an RTT sample; returns whether the kernel's RTT callback comes
    /// with it (`tcp_rtt_estimator()`: the first sample, then once per
    /// round trip, when `snd_una` is past `rtt_seq`).
    fn update_rtt(&mut self, rtt_us: u64) -> bool {
        let first = self.counters.rtt_samples == 0;
        let rtt = self.rtt.sample(rtt_us);
        self.counters.rtt_sum_us += rtt;
        self.counters.rtt_samples += 1;
        self.rtt_hist.record(rtt);
        if first || self.snd_una > self.rtt_seq {
            self.rtt_seq = self.snd_nxt;
            true
        } else {
            false
        }
    }

    /// Processes an ACK at `now_us`.
    pub fn on_ack(&mut self, now_us: u64, ack: &Ack) {
        let mut newly = 0u64;
        // Only this ACK's deliveries count for its `last_ackt`.
        self.board.take_newest_ackt();
        let mut best: Option<Seg> = None;
        let cum = ack.cum_ack.min(self.snd_nxt);
        // The segment that triggered the ACK (SACK block or in-order).
        if self
            .board
            .sack(ack.seq, self.snd_una, self.snd_nxt, &mut best)
        {
            newly += 1;
        }
        let una_advanced = cum > self.snd_una;
        if una_advanced {
            newly += self.board.cumulative_ack(self.snd_una, cum, &mut best);
            self.bytes_acked += (cum - self.snd_una) * u64::from(self.mss_bytes);
            self.snd_una = cum;
            self.backoff = 0;
        }
        let mut rtt_callback = false;
        if newly > 0 {
            rtt_callback = self.update_rtt(now_us.saturating_sub(ack.echo_sent_us));
            // tcp_ack_update_rtt(): `tcp_update_rtt_min(sk, ca_rtt_us,
            // flag)`, ca_rtt_us from the newest segment delivered
            // (`last_ackt`, never a retransmission).
            if self.min_rtt_sample == MinRttSample::Newest {
                if let Some(sent_us) = self.board.take_newest_ackt() {
                    self.rtt.sample_min(now_us.saturating_sub(sent_us));
                }
            }
            self.counters.delivered_segments += newly;
            self.rate.on_ack(
                now_us,
                newly,
                best.map(|s| (s.sent_us, s.stamp)),
                self.rtt.min_rtt_us(),
            );
        }
        if una_advanced {
            self.try_undo_timeout(ack);
        }
        let newly_lost = self.board.detect_losses(ack.tx, self.snd_una, self.snd_nxt);
        if self.state != CaState::Open && self.snd_una >= self.recovery_point {
            self.state = CaState::Open;
            self.undo = None;
            self.retrans_stamp_us = None;
        }
        if newly_lost > 0 {
            self.counters.lost_segments += newly_lost;
            if self.state == CaState::Open {
                self.congestion_event(now_us, CaState::Recovery, newly_lost);
            }
        }
        // The RTT callback runs inside the ACK's processing, before the
        // controller's window update (tcp_ack: tcp_clean_rtx_queue, then
        // tcp_cong_control).
        if rtt_callback {
            self.datapath_callback(now_us);
        }
        if newly > 0 {
            let sample = AckSample {
                acked_segments: newly as u32,
                rtt_us: self.rtt.last_rtt_us(),
                srtt_us: self.rtt.srtt_us(),
                min_rtt_us: self.rtt.min_rtt_us(),
                inflight_segments: self.inflight_segments(),
                delivered_segments: self.rate.delivered(),
                prior_delivered_segments: best.map_or(0, |s| s.stamp.delivered),
                delivery_rate_bytes_per_sec: self.rate.bytes_per_sec(self.mss_bytes),
                in_recovery: self.state == CaState::Recovery,
                cwnd_limited: self.tcp_is_cwnd_limited(),
                mss_bytes: self.mss_bytes,
            };
            self.controller.on_ack(now_us, &sample);
        }
        if newly > 0 || una_advanced {
            self.rto_deadline_us = if self.snd_nxt > self.snd_una {
                Some(now_us + self.current_rto_us())
            } else {
                None
            };
        }
    }

    /// `tcp_process_loss()` on an ACK that advanced `snd_una`, under
    /// [`TimeoutModel::Undo`]: when the ACK echoes a send time older than
    /// the loss state's first retransmission (`tcp_packet_delayed()`), or
    /// nothing was retransmitted yet (`!tp->undo_retrans`),
    /// `tcp_try_undo_loss()` undoes the timeout: the window and ssthresh
    /// of before it, no segment lost, the open state.
    fn try_undo_timeout(&mut self, ack: &Ack) {
        if self.state != CaState::Loss {
            return;
        }
        let Some((prior_cwnd, prior_ssthresh)) = self.undo else {
            return;
        };
        if self
            .retrans_stamp_us
            .is_some_and(|first| ack.echo_sent_us >= first)
        {
            return;
        }
        self.controller.undo_timeout(prior_cwnd, prior_ssthresh);
        self.board.unmark_lost(self.snd_una, self.snd_nxt);
        self.state = CaState::Open;
        self.undo = None;
        self.retrans_stamp_us = None;
    }

    /// Enters `state` (recovery after dupthresh losses, loss after a
    /// timeout) until `snd_una` passes what is sent now, and tells the
    /// controller: one congestion event per window.
    fn congestion_event(&mut self, now_us: u64, state: CaState, newly_lost: u64) {
        self.state = state;
        self.recovery_point = self.snd_nxt;
        let ev = LossEvent {
            lost_segments: newly_lost as u32,
            inflight_segments: self.inflight_segments(),
            is_timeout: state == CaState::Loss,
        };
        self.controller.on_loss(now_us, &ev);
    }

    /// Handles the retransmission timer at `now_us`; returns true if it fired.
    pub fn on_rto(&mut self, now_us: u64) -> bool {
        if self.snd_nxt == self.snd_una {
            self.rto_deadline_us = None;
            return false;
        }
        match self.rto_deadline_us {
            Some(d) if d <= now_us => {}
            _ => return false,
        }
        self.counters.timeouts += 1;
        // BPF_SOCK_OPS_RTO_CB (tcp_write_timeout), before the timeout's
        // window reduction.
        self.datapath_callback(now_us);
        // tcp_enter_loss(): from the open state the timeout saves what an
        // undo restores (`prior_cwnd`, `prior_ssthresh =
        // tcp_current_ssthresh()`: ssthresh or 3/4 of the window, the
        // larger) and starts a new undo episode (`tcp_init_undo()`); a
        // repeated timeout of the same loss state keeps both.
        match (self.timeout_model, self.state) {
            (TimeoutModel::Undo, CaState::Open) => {
                let cwnd = self.controller.window_segments();
                let ssthresh = self.controller.ssthresh_segments();
                self.undo = Some((cwnd, ssthresh.max((cwnd >> 1) + (cwnd >> 2))));
                self.retrans_stamp_us = None;
            }
            (TimeoutModel::Undo, CaState::Loss) => {}
            _ => {
                self.undo = None;
                self.retrans_stamp_us = None;
            }
        }
        self.backoff += 1;
        let newly_lost = self.board.mark_all_lost(self.snd_una, self.snd_nxt);
        self.counters.lost_segments += newly_lost;
        self.congestion_event(now_us, CaState::Loss, newly_lost);
        self.next_send_ns = 0;
        self.rto_deadline_us = Some(now_us + self.current_rto_us());
        true
    }

    /// Calls the controller's periodic hook.
    pub fn on_tick(&mut self, now_us: u64) {
        self.controller.on_tick(now_us);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::congestion::Reno;
    use crate::sim::flow::{Receiver, DUPTHRESH, RTO_INITIAL_US, RTO_MIN_US};

    /// A Reno sender of 1000-byte segments with a large receive window.
    fn reno() -> Sender {
        Sender::new(Box::new(Reno::new()), 1000, 1040, 10_000)
    }

    /// Everything the sender may send at `now_us`.
    fn burst(s: &mut Sender, now_us: u64) -> Vec<Packet> {
        let mut out = Vec::new();
        while let SendDecision::Send(p) = s.poll_send(now_us) {
            out.push(p);
        }
        out
    }

    /// Delivers `p` to `r` and its ACK to `s` at `at_us`.
    fn ack(s: &mut Sender, r: &mut Receiver, p: &Packet, at_us: u64) {
        let cum_ack = r.receive(p.seq);
        s.on_ack(
            at_us,
            &Ack {
                at_us,
                seq: p.seq,
                tx: p.tx,
                cum_ack,
                echo_sent_us: p.sent_us,
            },
        );
    }

    /// One window over a fixed 50 ms path: the initial window goes out at
    /// once, every ACK is an RTT sample of exactly 50 ms (RFC 6298 then
    /// holds SRTT at 50 ms), slow start grows the window by one per
    /// segment acknowledged, and the delivery-rate sample is tcp_rate.c's:
    /// segments delivered since the newest acknowledged one was sent, over
    /// the longer of its send and ACK phases (here 10 over 50 ms).
    #[test]
    fn one_window_over_a_fixed_path_samples_the_rtt_and_the_rate() {
        let (mut s, mut r) = (reno(), Receiver::new());
        assert_eq!(s.rto_deadline_us, None, "nothing sent, no timer");
        let sent = burst(&mut s, 0);
        assert_eq!(sent.len(), 10, "the initial window");
        assert_eq!(s.poll_send(0), SendDecision::Blocked);
        assert_eq!(s.rto_deadline_us, Some(RTO_INITIAL_US));
        assert_eq!((s.packets_out(), s.inflight_segments()), (10, 10));
        for p in &sent {
            ack(&mut s, &mut r, p, 50_000);
        }
        let f = s.flow_sample(50_000);
        assert_eq!(
            (f.srtt_us, f.min_rtt_us, f.last_rtt_us),
            (50_000, 50_000, 50_000)
        );
        assert_eq!(s.rtt().rto_us(), 50_000 + RTO_MIN_US);
        assert_eq!((f.delivered_segments, f.bytes_acked), (10, 10_000));
        assert_eq!((f.packets_out, f.lost_out, f.retrans_out), (0, 0, 0));
        assert_eq!(f.cwnd_segments, 20, "slow start: one more per segment");
        assert_eq!(
            (f.rate_delivered_segments, f.rate_interval_us),
            (10, 50_000)
        );
        assert_eq!(s.rto_deadline_us, None, "nothing in flight, no timer");
        assert_eq!(s.counters().rtt_samples, 10);
    }

    /// The datapath sees the flow once per round trip
    /// (`DatapathModel::Callbacks`, the default): the first RTT sample
    /// calls back, the rest of the initial flight does not (`snd_una` is not
    /// past `rtt_seq`, the `snd_nxt` of that first callback), and the first
    /// ACK of the next flight does. A poll between callbacks reads the last
    /// copy; limits written in between apply at the next callback, which
    /// reports them as applied.
    #[test]
    fn the_datapath_sees_the_flow_once_per_round_trip() {
        let (mut s, mut r) = (reno(), Receiver::new());
        let first = burst(&mut s, 0);
        ack(&mut s, &mut r, &first[0], 50_000);
        assert_eq!(s.datapath_sample(50_000).delivered_segments, 1);
        for (i, p) in first.iter().enumerate().skip(1) {
            ack(&mut s, &mut r, p, 50_000 + i as u64);
        }
        let polled = s.datapath_sample(60_000);
        assert_eq!(
            (
                polled.delivered_segments,
                polled.timestamp_us,
                polled.stats_us
            ),
            (1, 60_000, 50_000),
            "the copy of the first callback, timed at the poll, its own time kept"
        );
        assert_eq!(s.flow_sample(60_000).delivered_segments, 10);
        // Limits written now wait for the next callback.
        s.write_limits(5, plume_cc_common::PACING_UNLIMITED);
        assert_eq!(
            s.controller().cwnd_clamp_segments(),
            plume_cc_common::CWND_UNCLAMPED
        );
        let second = burst(&mut s, 60_000);
        assert_eq!(second.len(), 20, "slow start doubled the window");
        ack(&mut s, &mut r, &second[0], 110_000);
        assert_eq!(s.controller().cwnd_clamp_segments(), 5);
        let polled = s.datapath_sample(120_000);
        assert_eq!(polled.delivered_segments, 11);
        assert_eq!(polled.cwnd_clamp_segments, 5, "reported as applied");
        assert_eq!(s.counters().rtt_samples, 11);
    }

    /// The simulator before 2026-12-03 (`DatapathModel::Interval`): every
    /// poll sees the flow as it is, and limits apply when written.
    #[test]
    fn the_interval_model_sees_everything_at_once() {
        let (mut s, mut r) = (reno(), Receiver::new());
        s.set_datapath_model(DatapathModel::Interval);
        for p in burst(&mut s, 0) {
            ack(&mut s, &mut r, &p, 50_000);
        }
        assert_eq!(s.datapath_sample(60_000), s.flow_sample(60_000));
        s.write_limits(5, plume_cc_common::PACING_UNLIMITED);
        assert_eq!(s.controller().cwnd_clamp_segments(), 5);
    }

    /// Linux's clamp (`ClampModel::Kernel`): a clamp below the window does
    /// not shrink it while the flow leaves the window unused
    /// (`tcp_is_cwnd_limited()` false: Reno does not run); once a burst
    /// fills the window, the next ACK brings it down to the clamp.
    #[test]
    fn a_clamp_binds_only_once_the_window_is_used() {
        let (mut s, mut r) = (reno(), Receiver::new());
        for p in burst(&mut s, 0) {
            ack(&mut s, &mut r, &p, 50_000);
        }
        assert_eq!(
            s.controller().window_segments(),
            20,
            "slow start, window used"
        );
        s.controller_mut()
            .set_limits(5, plume_cc_common::PACING_UNLIMITED);
        // Three segments only (an application that writes little).
        let few: Vec<Packet> = (0..3)
            .map(|_| match s.poll_send(60_000) {
                SendDecision::Send(p) => p,
                d => panic!("{d:?}"),
            })
            .collect();
        for p in &few {
            ack(&mut s, &mut r, p, 110_000);
        }
        assert_eq!(
            s.controller().window_segments(),
            20,
            "not cwnd-limited: kept"
        );
        // A full window goes out (the window is still 20), then its first
        // ACK applies the clamp.
        let full = burst(&mut s, 120_000);
        assert_eq!(full.len(), 20);
        ack(&mut s, &mut r, &full[0], 170_000);
        assert_eq!(s.controller().window_segments(), 5);
        // Under the simulator's old model the clamp cuts at once.
        let mut s = reno();
        s.set_clamp_model(ClampModel::Immediate);
        s.controller_mut()
            .set_limits(5, plume_cc_common::PACING_UNLIMITED);
        assert_eq!(burst(&mut s, 0).len(), 5);
    }

    /// One ACK for two segments sent 10 ms apart (a delayed ACK), echoing
    /// the older one's send time, arrives 60 ms after the first: srtt takes
    /// 60 ms either way; Linux's min RTT takes the newer segment's 50 ms
    /// (`tcp_update_rtt_min(sk, ca_rtt_us)`, `MinRttSample::Newest`), the
    /// simulator before it the echoed 60 ms.
    #[test]
    fn the_min_rtt_takes_the_newest_segment_as_linux_does() {
        let min_rtt = |model: MinRttSample| {
            let (mut s, mut r) = (reno(), Receiver::new());
            s.set_min_rtt_sample(model);
            let SendDecision::Send(older) = s.poll_send(0) else {
                panic!("nothing sent")
            };
            let SendDecision::Send(newer) = s.poll_send(10_000) else {
                panic!("nothing sent")
            };
            r.receive(older.seq);
            let cum_ack = r.receive(newer.seq);
            s.on_ack(
                60_000,
                &Ack {
                    at_us: 60_000,
                    seq: newer.seq,
                    tx: newer.tx,
                    cum_ack,
                    echo_sent_us: older.sent_us,
                },
            );
            (s.srtt_us(), s.min_rtt_us())
        };
        assert_eq!(min_rtt(MinRttSample::Newest), (60_000, 50_000));
        assert_eq!(min_rtt(MinRttSample::Echoed), (60_000, 60_000));
    }

    /// A window sent, then held by an outage past the RTO: the timeout
    /// fires, marks the window lost and retransmits its head at `t_r`.
    /// Returns the sender, its receiver, the held window and `t_r`.
    fn timeout_behind_an_outage(model: TimeoutModel) -> (Sender, Receiver, Vec<Packet>, u64) {
        let (mut s, mut r) = (reno(), Receiver::new());
        s.set_timeout_model(model);
        for p in burst(&mut s, 0) {
            ack(&mut s, &mut r, &p, 50_000);
        }
        let held = burst(&mut s, 60_000);
        assert_eq!(held.len(), 20, "slow start doubled the window");
        let t_r = s.rto_deadline_us.expect("data in flight, a timer");
        assert!(s.on_rto(t_r));
        assert_eq!(s.flow_sample(t_r).lost_out, 20);
        assert_eq!(s.controller().window_segments(), 1);
        let SendDecision::Send(re) = s.poll_send(t_r) else {
            panic!("the timeout retransmits")
        };
        assert_eq!(re.seq, held[0].seq);
        (s, r, held, t_r)
    }

    /// Linux with timestamps (`TimeoutModel::Undo`): the outage ends and
    /// the ACK of the *original* head arrives, echoing its send time (60
    /// ms), older than the retransmission: the timeout was spurious
    /// (`tcp_packet_delayed()`), so `tcp_try_undo_loss()` restores the
    /// window of before it (20, then one more for the ACK's own slow
    /// start) and ssthresh (unset, as before), clears
    /// every lost mark, and the sender goes on with new data instead of
    /// retransmitting the window. As the kernel did on the emulator after
    /// a 3 s outage (docs/TRAINING.md, "Spurious timeouts after an
    /// outage": one retransmission, window and ssthresh of before).
    #[test]
    fn a_spurious_timeout_is_undone_as_linux_does() {
        let (mut s, mut r, held, t_r) = timeout_behind_an_outage(TimeoutModel::Undo);
        let ssthresh_before = reno().controller().ssthresh_segments();
        ack(&mut s, &mut r, &held[0], t_r + 100_000);
        let f = s.flow_sample(t_r + 100_000);
        assert_eq!(f.lost_out, 0, "no segment lost any more");
        // The window of before the timeout (20), and the ACK's own slow
        // start after the undo (tcp_ack: tcp_fastretrans_alert, then
        // tcp_cong_control), as under Plain below (1 + 1).
        assert_eq!(f.cwnd_segments, 21, "the window of before the timeout");
        assert_eq!(f.ssthresh_segments, ssthresh_before);
        let next = burst(&mut s, t_r + 100_000);
        assert!(
            next.iter().all(|p| p.seq > held[19].seq),
            "new data, no retransmission of the held window: {:?}",
            next.iter().map(|p| p.seq).collect::<Vec<_>>()
        );
        assert_eq!(s.counters().retransmitted_segments, 1);
    }

    /// The same outage in the simulator before 2026-12-04 and in training
    /// (`TimeoutModel::Plain`): the timeout stands; the window restarts
    /// from one segment and the rest of the held window is retransmitted.
    /// And under `Undo` an ACK of the retransmission itself (the original
    /// really was lost) does not undo it.
    #[test]
    fn a_timeout_stands_without_the_model_or_when_the_retransmission_is_acked() {
        let (mut s, mut r, held, t_r) = timeout_behind_an_outage(TimeoutModel::Plain);
        ack(&mut s, &mut r, &held[0], t_r + 100_000);
        let f = s.flow_sample(t_r + 100_000);
        assert_eq!(f.lost_out, 19);
        assert_eq!(f.cwnd_segments, 2, "slow start from one segment");
        let next = burst(&mut s, t_r + 100_000);
        assert_eq!(
            next.iter().map(|p| p.seq).collect::<Vec<_>>(),
            vec![held[1].seq, held[2].seq],
            "the held window is retransmitted"
        );
        let (mut s, mut r, held, t_r) = timeout_behind_an_outage(TimeoutModel::Undo);
        let mut re = held[0];
        re.sent_us = t_r;
        ack(&mut s, &mut r, &re, t_r + 100_000);
        let f = s.flow_sample(t_r + 100_000);
        assert_eq!((f.lost_out, f.cwnd_segments), (19, 2), "not undone");
    }

    /// A dropped segment is declared lost once three later transmissions
    /// are delivered (dupthresh), not before; it is the next one sent; its
    /// delivery completes the window; the controller halved once.
    #[test]
    fn a_lost_segment_is_detected_by_dupthresh_and_retransmitted_first() {
        let (mut s, mut r) = (reno(), Receiver::new());
        let sent = burst(&mut s, 0);
        let dropped = sent[2];
        let mut later = sent.iter().filter(|p| p.seq != dropped.seq);
        for p in later.by_ref().take(DUPTHRESH as usize + 1) {
            // seq 0, 1, 3, 4: only two transmissions after the dropped one.
            ack(&mut s, &mut r, p, 50_000);
        }
        assert_eq!(s.flow_sample(50_000).lost_out, 0, "not yet");
        let p = later.next().unwrap(); // seq 5: the third one after it
        ack(&mut s, &mut r, p, 50_000);
        let f = s.flow_sample(50_000);
        assert_eq!(f.lost_out, 1);
        assert_eq!(s.counters().lost_segments, 1);
        // Slow start took the window from 10 to 14 on the four ACKs before.
        assert_eq!(f.ssthresh_segments, 7, "half of the window at the loss");
        for p in later {
            ack(&mut s, &mut r, p, 50_000);
        }
        let SendDecision::Send(re) = s.poll_send(60_000) else {
            panic!("nothing sent")
        };
        assert_eq!(re.seq, dropped.seq, "the lost segment goes first");
        let f = s.flow_sample(60_000);
        assert_eq!((f.retrans_out, f.total_retrans), (1, 1));
        ack(&mut s, &mut r, &re, 110_000);
        let f = s.flow_sample(110_000);
        assert_eq!((f.lost_out, f.retrans_out), (0, 0));
        assert_eq!(f.delivered_segments, 10);
        assert_eq!(s.counters().lost_segments, 1, "one loss, counted once");
    }

    /// Without ACKs the timer fires at the RTO, not before, every
    /// unacknowledged segment becomes lost, and the next deadline is one
    /// doubled RTO later (RFC 6298 (5.5)); a new ACK clears the backoff.
    #[test]
    fn the_retransmission_timer_fires_at_the_rto_and_backs_off() {
        let (mut s, mut r) = (reno(), Receiver::new());
        let sent = burst(&mut s, 0);
        assert!(!s.on_rto(RTO_INITIAL_US - 1));
        assert!(s.on_rto(RTO_INITIAL_US));
        let f = s.flow_sample(RTO_INITIAL_US);
        assert_eq!(f.lost_out, 10);
        assert_eq!(f.cwnd_segments, 1, "one segment after a timeout");
        assert_eq!(s.counters().timeouts, 1);
        assert_eq!(s.rto_deadline_us, Some(3 * RTO_INITIAL_US));
        assert!(!s.on_rto(3 * RTO_INITIAL_US - 1));
        assert!(s.on_rto(3 * RTO_INITIAL_US));
        assert_eq!(s.rto_deadline_us, Some(7 * RTO_INITIAL_US));
        // The first segment's retransmission is acknowledged: an RTT
        // sample of 10 ms (the echoed send time is the retransmission's),
        // and the timer restarts at the new, un-backed-off RTO.
        let SendDecision::Send(re) = s.poll_send(3 * RTO_INITIAL_US) else {
            panic!("nothing sent")
        };
        assert_eq!(re.seq, sent[0].seq);
        ack(&mut s, &mut r, &re, 3 * RTO_INITIAL_US + 10_000);
        assert_eq!(s.srtt_us(), 10_000);
        assert_eq!(
            s.rto_deadline_us,
            Some(3 * RTO_INITIAL_US + 10_000 + 10_000 + RTO_MIN_US)
        );
    }
}
