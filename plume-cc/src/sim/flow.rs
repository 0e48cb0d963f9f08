//! A TCP-like sender and its receiver, as far as a congestion controller and
//! the sock_ops datapath can tell:
//!
//! - ACK clocking: a segment is sent while in-flight segments
//!   (`packets_out - sacked_out - lost_out + retrans_out`, the kernel's
//!   formula) are below the controller's window;
//! - pacing: when the controller gives a pacing rate, departures are spaced
//!   by `wire bytes / rate` (the kernel's internal pacing);
//! - RTT: every ACK echoes the send time of the transmission that triggered
//!   it (like the timestamp option); srtt, rttvar and RTO follow RFC 6298 with
//!   Linux's 200 ms minimum, and min RTT is the minimum over the flow, in
//!   [`RttEstimator`] (shared, in `crate::flow::rtt`); the sender keeps the
//!   timer and its backoff;
//! - loss detection: SACK-like, per transmission: a transmission is lost when
//!   three later transmissions have been delivered (dupthresh in send order,
//!   which also catches lost retransmissions), plus the retransmission
//!   timeout with exponential backoff;
//! - recovery: one congestion event per window (until `snd_una` passes the
//!   recovery point); lost segments are retransmitted before new data;
//! - delivery-rate samples like the kernel's `tcp_rate.c` ([`RateSampler`]).
//!
//! The receiver acknowledges every segment (no delayed ACKs) with the
//! cumulative ACK and the segment it just received (one SACK block).
//! Applications always have data (bulk transfer); a receive window bounds
//! the data beyond the cumulative ACK.
//!
//! Simplifications against Linux, kept deliberately small: no delayed ACKs,
//! the window reduction on recovery is immediate (no PRR), no tail-loss probe,
//! RACK's time-based reordering window is replaced by dupthresh in send order
//! (the simulated path never reorders), and min RTT is the flow's minimum
//! (the kernel's filter window is 300 s).

use std::collections::VecDeque;

use crate::congestion::{AckSample, ClampModel, Clamped, Controller, LossEvent};
pub use crate::flow::rtt::{RTO_INITIAL_US, RTO_MAX_US, RTO_MIN_US};
use crate::flow::{FlowSample, RateSampler, RttEstimator, SendStamp};

use super::metrics::{FlowCounters, RttHistogram};

/// Transmissions a later-sent delivered transmission must be ahead of for an
/// earlier one to be declared lost (the kernel's dupthresh).
pub const DUPTHRESH: u64 = 3;

const SACKED: u8 = 1;
const LOST: u8 = 2;
const RETRANS: u8 = 4;

/// A data packet on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Segment sequence number (in segments).
    pub seq: u64,
    /// Transmission index (unique per transmission, increasing).
    pub tx: u64,
    /// Send time, microseconds.
    pub sent_us: u64,
}

/// An ACK as it reaches the sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    /// Arrival time at the sender, microseconds.
    pub at_us: u64,
    /// The segment whose arrival triggered this ACK (the SACK block).
    pub seq: u64,
    /// The transmission that triggered it.
    pub tx: u64,
    /// Cumulative ACK: every segment below this was received.
    pub cum_ack: u64,
    /// Echoed send time of the triggering transmission, microseconds.
    pub echo_sent_us: u64,
}

/// What the sender wants to do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendDecision {
    /// Put this packet on the wire now.
    Send(Packet),
    /// Pacing holds the next packet until this time, microseconds.
    WaitUntil(u64),
    /// The window is full; wait for ACKs.
    Blocked,
}

#[derive(Clone, Copy, Debug, Default)]
struct Seg {
    tx: u64,
    sent_us: u64,
    /// The delivery-rate state when it was sent.
    stamp: SendStamp,
    flags: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CaState {
    Open,
    Recovery,
    Loss,
}

/// The receiver: the cumulative ACK point and a bitmap of out-of-order
/// segments, as a ring indexed by sequence number.
#[derive(Debug)]
pub struct Receiver {
    rcv_nxt: u64,
    bits: Vec<u64>,
}

impl Default for Receiver {
    fn default() -> Self {
        Self::new()
    }
}

impl Receiver {
    /// A receiver expecting segment 0.
    pub fn new() -> Self {
        Self {
            rcv_nxt: 0,
            bits: vec![0; 64],
        }
    }

    fn cap(&self) -> u64 {
        self.bits.len() as u64 * 64
    }

    fn bit(&self, seq: u64) -> bool {
        let i = seq % self.cap();
        self.bits[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    fn set(&mut self, seq: u64, on: bool) {
        let i = seq % self.cap();
        let w = &mut self.bits[(i / 64) as usize];
        if on {
            *w |= 1 << (i % 64);
        } else {
            *w &= !(1 << (i % 64));
        }
    }

    fn grow(&mut self, need: u64) {
        let mut cap = self.cap();
        while cap <= need {
            cap *= 2;
        }
        let old = std::mem::replace(&mut self.bits, vec![0; (cap / 64) as usize]);
        let old_cap = old.len() as u64 * 64;
        for seq in self.rcv_nxt..self.rcv_nxt + old_cap {
            let i = seq % old_cap;
            if old[(i / 64) as usize] & (1 << (i % 64)) != 0 {
                self.set(seq, true);
            }
        }
    }

    /// Records the arrival of segment `seq`; returns the cumulative ACK.
    pub fn receive(&mut self, seq: u64) -> u64 {
        if seq == self.rcv_nxt {
            self.rcv_nxt += 1;
            while self.bit(self.rcv_nxt) {
                let n = self.rcv_nxt;
                self.set(n, false);
                self.rcv_nxt += 1;
            }
        } else if seq > self.rcv_nxt {
            if seq - self.rcv_nxt >= self.cap() {
                self.grow(seq - self.rcv_nxt);
            }
            self.set(seq, true);
        }
        self.rcv_nxt
    }

    /// Next expected segment.
    pub fn rcv_nxt(&self) -> u64 {
        self.rcv_nxt
    }
}

/// The sender side of one flow (see the module docs).
pub struct Sender {
    controller: Clamped<Box<dyn Controller>>,
    mss_bytes: u32,
    wire_bytes: u32,
    rwnd_segments: u64,
    ring: Vec<Seg>,
    mask: u64,
    snd_una: u64,
    snd_nxt: u64,
    next_tx: u64,
    tx_fifo: VecDeque<u64>,
    tx_fifo_base: u64,
    max_delivered_tx: u64,
    retx_queue: VecDeque<u64>,
    sacked_out: u32,
    lost_out: u32,
    retrans_out: u32,
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
        let cap = 1024;
        Self {
            controller: Clamped::new(controller, mss_bytes),
            mss_bytes,
            wire_bytes,
            rwnd_segments: u64::from(rwnd_segments.max(1)),
            ring: vec![Seg::default(); cap],
            mask: cap as u64 - 1,
            snd_una: 0,
            snd_nxt: 0,
            next_tx: 1,
            tx_fifo: VecDeque::with_capacity(cap),
            tx_fifo_base: 1,
            max_delivered_tx: 0,
            retx_queue: VecDeque::with_capacity(cap),
            sacked_out: 0,
            lost_out: 0,
            retrans_out: 0,
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
        }
    }

    /// Chooses how the clamp acts on the window ([`ClampModel`]).
    pub fn set_clamp_model(&mut self, model: ClampModel) {
        self.controller.set_clamp_model(model);
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
        (self.packets_out() + self.retrans_out).saturating_sub(self.sacked_out + self.lost_out)
    }

    /// Wire bytes of one segment (payload plus headers).
    pub fn wire_bytes(&self) -> u32 {
        self.wire_bytes
    }

    /// Payload bytes of one segment.
    pub fn mss_bytes(&self) -> u32 {
        self.mss_bytes
    }

    /// The statistics the eBPF datapath would report for this flow now.
    pub fn flow_sample(&self, now_us: u64) -> FlowSample {
        let sat = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        FlowSample {
            timestamp_us: now_us,
            srtt_us: sat(self.rtt.srtt_us()),
            min_rtt_us: sat(self.rtt.min_rtt_us()),
            last_rtt_us: sat(self.rtt.last_rtt_us()),
            cwnd_segments: self.controller.window_segments(),
            ssthresh_segments: self.controller.ssthresh_segments(),
            mss_bytes: self.mss_bytes,
            packets_out: self.packets_out(),
            retrans_out: self.retrans_out,
            lost_out: self.lost_out,
            total_retrans: self.counters.retransmitted_segments as u32,
            delivered_segments: self.rate.delivered() as u32,
            bytes_acked: self.bytes_acked,
            rate_delivered_segments: sat(self.rate.rate_delivered()),
            rate_interval_us: sat(self.rate.rate_interval_us()),
            cwnd_clamp_segments: self.controller.cwnd_clamp_segments(),
            max_pacing_bytes_per_sec: self.controller.max_pacing_bytes_per_sec(),
        }
    }

    fn grow_ring(&mut self) {
        let old_cap = self.ring.len() as u64;
        let new_cap = old_cap * 2;
        let mut ring = vec![Seg::default(); new_cap as usize];
        for seq in self.snd_una..self.snd_nxt {
            ring[(seq & (new_cap - 1)) as usize] = self.ring[(seq & (old_cap - 1)) as usize];
        }
        self.ring = ring;
        self.mask = new_cap - 1;
    }

    #[inline]
    fn seg(&mut self, seq: u64) -> &mut Seg {
        &mut self.ring[(seq & self.mask) as usize]
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
        let mut retransmit = None;
        while let Some(s) = self.retx_queue.pop_front() {
            if s < self.snd_una || s >= self.snd_nxt {
                continue;
            }
            let f = self.seg(s).flags;
            if f & LOST != 0 && f & (SACKED | RETRANS) == 0 {
                retransmit = Some(s);
                break;
            }
        }
        if retransmit.is_none() && self.snd_nxt - self.snd_una >= self.rwnd_segments {
            return SendDecision::Blocked;
        }
        // Nothing in flight: a new rate-sampling interval starts now.
        let stamp = self.rate.on_send(now_us, self.snd_una == self.snd_nxt);
        let seq = match retransmit {
            Some(s) => s,
            None => {
                if self.snd_nxt - self.snd_una >= self.ring.len() as u64 {
                    self.grow_ring();
                }
                self.snd_nxt += 1;
                self.snd_nxt - 1
            }
        };
        let tx = self.next_tx;
        self.next_tx += 1;
        let seg = self.seg(seq);
        if retransmit.is_some() {
            seg.flags |= RETRANS;
        } else {
            seg.flags = 0;
        }
        seg.tx = tx;
        seg.sent_us = now_us;
        seg.stamp = stamp;
        if retransmit.is_some() {
            self.retrans_out += 1;
            self.counters.retransmitted_segments += 1;
        }
        self.counters.sent_segments += 1;
        self.tx_fifo.push_back(seq);
        if let Some(rate) = rate {
            let gap_ns = u64::from(self.wire_bytes) * 1_000_000_000 / rate.max(1);
            self.next_send_ns = self.next_send_ns.max(now_us.saturating_mul(1000)) + gap_ns;
        }
        if self.rto_deadline_us.is_none() {
            self.rto_deadline_us = Some(now_us + self.current_rto_us());
        }
        let limited = self.inflight_segments() >= self.controller.window_segments();
        self.cwnd_validate(limited);
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

    fn update_rtt(&mut self, rtt_us: u64) {
        let rtt = self.rtt.sample(rtt_us);
        self.counters.rtt_sum_us += rtt;
        self.counters.rtt_samples += 1;
        self.rtt_hist.record(rtt);
    }

    /// Marks `seq` delivered; returns its rate-sampling info if it is newer
    /// than `best` (the kernel takes the most recently sent delivered skb).
    #[inline]
    fn deliver(&mut self, seq: u64, best: &mut Option<Seg>) {
        let seg = *self.seg(seq);
        if seg.flags & LOST != 0 {
            self.lost_out -= 1;
        }
        if seg.flags & RETRANS != 0 {
            self.retrans_out -= 1;
        }
        self.seg(seq).flags = SACKED;
        if best.is_none_or(|b| seg.stamp.delivered >= b.stamp.delivered) {
            *best = Some(seg);
        }
    }

    /// Processes an ACK at `now_us`.
    pub fn on_ack(&mut self, now_us: u64, ack: &Ack) {
        let mut newly = 0u64;
        let mut best: Option<Seg> = None;
        let cum = ack.cum_ack.min(self.snd_nxt);
        // The segment that triggered the ACK (SACK block or in-order).
        if ack.seq >= self.snd_una
            && ack.seq < self.snd_nxt
            && self.seg(ack.seq).flags & SACKED == 0
        {
            self.deliver(ack.seq, &mut best);
            newly += 1;
            self.sacked_out += 1;
        }
        let una_advanced = cum > self.snd_una;
        if una_advanced {
            for s in self.snd_una..cum {
                if self.seg(s).flags & SACKED == 0 {
                    self.deliver(s, &mut best);
                    newly += 1;
                } else {
                    self.sacked_out -= 1;
                }
            }
            self.bytes_acked += (cum - self.snd_una) * u64::from(self.mss_bytes);
            self.snd_una = cum;
            self.backoff = 0;
        }
        if newly > 0 {
            self.update_rtt(now_us.saturating_sub(ack.echo_sent_us));
            self.counters.delivered_segments += newly;
            self.rate.on_ack(
                now_us,
                newly,
                best.map(|s| (s.sent_us, s.stamp)),
                self.rtt.min_rtt_us(),
            );
        }
        if ack.tx > self.max_delivered_tx {
            self.max_delivered_tx = ack.tx;
        }
        let newly_lost = self.detect_losses();
        if self.state != CaState::Open && self.snd_una >= self.recovery_point {
            self.state = CaState::Open;
        }
        if newly_lost > 0 {
            self.counters.lost_segments += newly_lost;
            if self.state == CaState::Open {
                self.state = CaState::Recovery;
                self.recovery_point = self.snd_nxt;
                let ev = LossEvent {
                    lost_segments: newly_lost as u32,
                    inflight_segments: self.inflight_segments(),
                    is_timeout: false,
                };
                self.controller.on_loss(now_us, &ev);
            }
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

    /// Declares lost every transmission three or more behind the newest
    /// delivered one; returns how many segments became lost.
    fn detect_losses(&mut self) -> u64 {
        let mut lost = 0;
        while self.tx_fifo_base + DUPTHRESH <= self.max_delivered_tx {
            let Some(s) = self.tx_fifo.pop_front() else {
                break;
            };
            let tx = self.tx_fifo_base;
            self.tx_fifo_base += 1;
            if s < self.snd_una || s >= self.snd_nxt {
                continue;
            }
            let seg = self.seg(s);
            if seg.tx != tx || seg.flags & SACKED != 0 {
                continue;
            }
            if seg.flags & RETRANS != 0 {
                seg.flags &= !RETRANS;
                self.retrans_out -= 1;
            } else if seg.flags & LOST == 0 {
                seg.flags |= LOST;
                self.lost_out += 1;
            } else {
                continue;
            }
            self.retx_queue.push_back(s);
            lost += 1;
        }
        lost
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
        self.backoff += 1;
        let mut newly_lost = 0u64;
        self.retx_queue.clear();
        for s in self.snd_una..self.snd_nxt {
            let seg = self.seg(s);
            if seg.flags & SACKED != 0 {
                continue;
            }
            let was_lost = seg.flags & LOST != 0;
            let was_retrans = seg.flags & RETRANS != 0;
            seg.flags = LOST;
            if was_retrans {
                self.retrans_out -= 1;
            }
            if !was_lost {
                self.lost_out += 1;
                newly_lost += 1;
            }
            self.retx_queue.push_back(s);
        }
        self.counters.lost_segments += newly_lost;
        self.state = CaState::Loss;
        self.recovery_point = self.snd_nxt;
        let ev = LossEvent {
            lost_segments: newly_lost as u32,
            inflight_segments: self.inflight_segments(),
            is_timeout: true,
        };
        self.controller.on_loss(now_us, &ev);
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

    #[test]
    fn receiver_cumulates_and_buffers_out_of_order() {
        let mut r = Receiver::new();
        assert_eq!(r.receive(0), 1);
        assert_eq!(r.receive(2), 1);
        assert_eq!(r.receive(3), 1);
        assert_eq!(r.receive(1), 4);
        assert_eq!(r.receive(1), 4);
        // Far ahead: the bitmap grows.
        assert_eq!(r.receive(5000), 4);
        for s in 4..5000 {
            r.receive(s);
        }
        assert_eq!(r.rcv_nxt(), 5001);
    }
}
