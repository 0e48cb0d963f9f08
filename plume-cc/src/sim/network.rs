//! The simulated network: senders, the bottleneck link (`mm-link`), a fixed
//! one-way propagation delay each way (`mm-delay`), optional random loss at
//! the link's ingress (`mm-loss`), and an ACK path that is either unlimited or
//! a second Mahimahi link.
//!
//! A data packet's whole future is known when it enters the bottleneck (FIFO
//! link, fixed delays), so the receiver is updated and the ACK is computed at
//! that moment and queued for its arrival time. Each flow's ACKs arrive in
//! order, so they wait in a per-flow FIFO and only the head is in the event
//! queue: one heap operation per packet, a heap a few entries deep.
//!
//! With [`NetworkConfig::delayed_ack`] the receiver acknowledges as Linux
//! does in steady state (`tcp_input.c`, `__tcp_ack_snd_check`): every second
//! full in-order segment at once, a lone one when the delayed-ACK timer
//! fires ([`DELAYED_ACK_US`], `TCP_DELACK_MIN`), out-of-order data and data
//! that fills a hole at once, and every segment at once during the first
//! [`QUICKACK_SEGMENTS`] (quick-ACK mode at the start of a connection).
//! Arrivals are computed in send order, so a pending ACK is settled either
//! by the next arrival (which knows whether the timer fired before it) or
//! by its timer event, which runs only after every segment that can arrive
//! before the deadline has been sent.

use std::collections::VecDeque;
use std::sync::Arc;

use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::congestion::{CcModel, ClampHold, ClampModel, ControllerKind};
use crate::sim::flow::{DatapathModel, MinRttSample, TimeoutModel};

use super::event::{EventKind, EventQueue};
use super::flow::{Ack, Receiver, SendDecision, Sender};
use super::link::{Link, QueueLimit};
use super::metrics::RttHistogram;
use super::{Schedule, SimError};

/// The delayed-ACK timer, microseconds (Linux's `TCP_DELACK_MIN`, 40 ms).
pub const DELAYED_ACK_US: u64 = 40_000;
/// Segments acknowledged one by one at the start of a connection (Linux's
/// `TCP_MAX_QUICKACKS`).
pub const QUICKACK_SEGMENTS: u64 = 16;

/// One flow of a [`Network`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowConfig {
    /// The kernel-like controller driving it.
    pub controller: ControllerKind,
    /// When it starts sending, microseconds.
    pub start_us: u64,
}

impl FlowConfig {
    /// A flow of `controller` starting at time 0.
    pub fn new(controller: ControllerKind) -> Self {
        Self {
            controller,
            start_us: 0,
        }
    }
}

/// Parameters of a [`Network`].
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkConfig {
    /// One-way propagation delay, applied in each direction, microseconds.
    pub one_way_delay_us: u64,
    /// Droptail limits of the data bottleneck.
    pub queue_limit: QueueLimit,
    /// Droptail limits of the ACK link, when there is one.
    pub ack_queue_limit: QueueLimit,
    /// Probability that a data packet is lost at the link's ingress.
    pub random_loss: f64,
    /// Segment payload, bytes (1448 for Ethernet with TCP timestamps).
    pub mss_bytes: u32,
    /// Headers added on the wire, bytes (IP + TCP with timestamps: 52).
    pub header_bytes: u32,
    /// Size of an ACK on the wire, bytes.
    pub ack_bytes: u32,
    /// Receive window, segments: a sender never has more than this beyond
    /// its cumulative ACK (Linux's default `tcp_rmem` maximum of 6 MiB
    /// advertises about 3 MiB, i.e. ~2,000 to 4,000 segments).
    pub rwnd_segments: u32,
    /// The flows sharing the bottleneck.
    pub flows: Vec<FlowConfig>,
    /// Receivers delay their ACKs as Linux does (module docs); false: an
    /// ACK per segment.
    pub delayed_ack: bool,
    /// How the senders' cwnd clamps act ([`ClampModel`]).
    pub clamp_model: ClampModel,
    /// How closely the senders' controllers follow Linux's ([`CcModel`]).
    pub cc_model: CcModel,
    /// The senders hold a new clamp after a loss as the datapath does with
    /// `DatapathConfig::clamp_hold` and its bound
    /// (`Clamped::set_clamp_hold`); off, the default: every clamp is
    /// applied at once.
    pub clamp_hold: ClampHold,
    /// How the datapath sees the senders and applies their limits
    /// ([`DatapathModel`]).
    pub datapath_model: DatapathModel,
    /// Whether the senders undo a spurious retransmission timeout
    /// ([`TimeoutModel`]).
    pub timeout_model: TimeoutModel,
    /// Which RTT of an ACK the senders' min RTT takes ([`MinRttSample`]).
    pub min_rtt_sample: MinRttSample,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            one_way_delay_us: 20_000,
            queue_limit: QueueLimit::unlimited(),
            ack_queue_limit: QueueLimit::unlimited(),
            random_loss: 0.0,
            mss_bytes: 1448,
            header_bytes: 52,
            ack_bytes: 52,
            rwnd_segments: 4096,
            flows: vec![FlowConfig::new(ControllerKind::Cubic)],
            delayed_ack: false,
            clamp_model: ClampModel::default(),
            cc_model: CcModel::default(),
            clamp_hold: ClampHold::default(),
            datapath_model: DatapathModel::default(),
            timeout_model: TimeoutModel::default(),
            min_rtt_sample: MinRttSample::default(),
        }
    }
}

impl NetworkConfig {
    fn validate(&self) -> Result<(), SimError> {
        if !(0.0..1.0).contains(&self.random_loss) {
            return Err(SimError::InvalidConfig(format!(
                "random_loss must be in [0, 1), got {}",
                self.random_loss
            )));
        }
        let wire = u64::from(self.mss_bytes) + u64::from(self.header_bytes);
        if self.mss_bytes == 0 || wire > super::OPPORTUNITY_BYTES {
            return Err(SimError::InvalidConfig(format!(
                "mss_bytes {} + header_bytes {} must be in 1..=1500 (Mahimahi rejects larger packets)",
                self.mss_bytes, self.header_bytes
            )));
        }
        if self.ack_bytes == 0 || u64::from(self.ack_bytes) > super::OPPORTUNITY_BYTES {
            return Err(SimError::InvalidConfig(format!(
                "ack_bytes must be in 1..=1500, got {}",
                self.ack_bytes
            )));
        }
        if self.flows.is_empty() {
            return Err(SimError::InvalidConfig(
                "at least one flow is needed".into(),
            ));
        }
        Ok(())
    }
}

struct FlowSlot {
    sender: Sender,
    receiver: Receiver,
    acks: VecDeque<Ack>,
    ack_event_pending: bool,
    /// Time each of the flow's data packets spent in the bottleneck (queue
    /// and serialisation), as the emulator's link log measures it.
    link_delay: RttHistogram,
    /// An in-order segment's ACK held by the delayed-ACK timer: (deadline
    /// at the receiver, the ACK).
    delack: Option<(u64, Ack)>,
}

/// A running simulation (see the module docs).
pub struct Network {
    config: NetworkConfig,
    now_us: u64,
    data_link: Link,
    ack_link: Option<Link>,
    flows: Vec<FlowSlot>,
    events: EventQueue,
    rng: ChaCha8Rng,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("now_us", &self.now_us)
            .field("flows", &self.flows.len())
            .finish_non_exhaustive()
    }
}

impl Network {
    /// Builds a network replaying `data_trace` on the bottleneck and, if
    /// given, `ack_trace` on the ACK path; `seed` drives all randomness.
    pub fn new(
        config: NetworkConfig,
        data_trace: Arc<Schedule>,
        ack_trace: Option<Arc<Schedule>>,
        seed: u64,
    ) -> Result<Self, SimError> {
        config.validate()?;
        let data_link = Link::new(data_trace, config.queue_limit)?;
        let ack_link = match ack_trace {
            Some(t) => Some(Link::new(t, config.ack_queue_limit)?),
            None => None,
        };
        let wire = config.mss_bytes + config.header_bytes;
        let mut events = EventQueue::new();
        let flows = config
            .flows
            .iter()
            .enumerate()
            .map(|(i, f)| {
                events.push(f.start_us, EventKind::Send, i as u32);
                let mut sender = Sender::new(
                    f.controller.build(config.mss_bytes),
                    config.mss_bytes,
                    wire,
                    config.rwnd_segments,
                );
                sender.set_clamp_model(config.clamp_model);
                sender.set_cc_model(config.cc_model);
                sender.set_clamp_hold(config.clamp_hold);
                sender.set_datapath_model(config.datapath_model);
                sender.set_timeout_model(config.timeout_model);
                sender.set_min_rtt_sample(config.min_rtt_sample);
                FlowSlot {
                    sender,
                    receiver: Receiver::new(),
                    acks: VecDeque::with_capacity(1024),
                    ack_event_pending: false,
                    link_delay: RttHistogram::new(),
                    delack: None,
                }
            })
            .collect();
        let mut net = Self {
            config,
            now_us: 0,
            data_link,
            ack_link,
            flows,
            events,
            rng: ChaCha8Rng::seed_from_u64(seed),
        };
        for slot in &mut net.flows {
            slot.sender.send_event_pending = true;
        }
        Ok(net)
    }

    /// Current simulated time, microseconds.
    pub fn now_us(&self) -> u64 {
        self.now_us
    }

    /// The configuration.
    pub fn config(&self) -> &NetworkConfig {
        &self.config
    }

    /// Number of flows.
    pub fn flow_count(&self) -> usize {
        self.flows.len()
    }

    /// The sender of flow `index`, if it exists.
    pub fn sender(&self, index: usize) -> Option<&Sender> {
        self.flows.get(index).map(|f| &f.sender)
    }

    /// Histogram of the time flow `index`'s data packets spent in the
    /// bottleneck (enqueue to departure), the quantity Mahimahi's and the
    /// emulator's link logs report per packet.
    pub fn link_delay_histogram(&self, index: usize) -> Option<&RttHistogram> {
        self.flows.get(index).map(|f| &f.link_delay)
    }

    /// Mutable sender of flow `index` (to apply datapath limits).
    pub fn sender_mut(&mut self, index: usize) -> Option<&mut Sender> {
        self.flows.get_mut(index).map(|f| &mut f.sender)
    }

    /// The data bottleneck.
    pub fn data_link(&self) -> &Link {
        &self.data_link
    }

    /// Mutable data bottleneck (to read its queue at a time).
    pub fn data_link_mut(&mut self) -> &mut Link {
        &mut self.data_link
    }

    /// Processes every event up to and including `until_us`, then sets the
    /// clock to `until_us` and gives every controller its tick.
    pub fn run_until(&mut self, until_us: u64) {
        while let Some(ev) = self.events.pop_due(until_us) {
            self.now_us = self.now_us.max(ev.at_us);
            let f = ev.flow as usize;
            match ev.kind {
                EventKind::Ack => {
                    self.flows[f].ack_event_pending = false;
                    self.drain_acks(f, until_us);
                }
                EventKind::Send => {
                    self.flows[f].sender.send_event_pending = false;
                    self.try_send(f);
                }
                EventKind::Rto => self.rto_event(f, ev.at_us),
                EventKind::DelAck => {
                    if let Some((deadline, ack)) = self.flows[f].delack {
                        if deadline == ev.at_us {
                            self.flows[f].delack = None;
                            self.send_ack(f, deadline, ack);
                        }
                    }
                }
            }
        }
        self.now_us = self.now_us.max(until_us);
        let now = self.now_us;
        for slot in &mut self.flows {
            slot.sender.on_tick(now);
        }
    }

    /// Processes flow `f`'s due ACKs in order while nothing else is earlier,
    /// then leaves one event for the new head (if any).
    fn drain_acks(&mut self, f: usize, until_us: u64) {
        // Pending while draining, so that transmissions do not schedule the head.
        self.flows[f].ack_event_pending = true;
        loop {
            let Some(next) = self.flows[f].acks.front().map(|a| a.at_us) else {
                self.flows[f].ack_event_pending = false;
                return;
            };
            let other_first = self.events.peek_time_us().is_some_and(|t| t < next);
            if next > until_us || other_first {
                self.events.push(next, EventKind::Ack, f as u32);
                return;
            }
            let Some(ack) = self.flows[f].acks.pop_front() else {
                return;
            };
            self.now_us = self.now_us.max(ack.at_us);
            let now = self.now_us;
            self.flows[f].sender.on_ack(now, &ack);
            self.try_send(f);
        }
    }

    fn rto_event(&mut self, f: usize, at_us: u64) {
        let sender = &mut self.flows[f].sender;
        if sender.rto_event_us != Some(at_us) {
            return; // superseded
        }
        sender.rto_event_us = None;
        match sender.rto_deadline_us {
            Some(d) if d > at_us => {
                sender.rto_event_us = Some(d);
                self.events.push(d, EventKind::Rto, f as u32);
            }
            Some(_) => {
                if sender.on_rto(at_us) {
                    self.try_send(f);
                }
                self.arm_rto(f);
            }
            None => {}
        }
    }

    fn arm_rto(&mut self, f: usize) {
        let sender = &mut self.flows[f].sender;
        if let Some(d) = sender.rto_deadline_us {
            if sender.rto_event_us.is_none_or(|e| e > d) {
                sender.rto_event_us = Some(d);
                self.events.push(d, EventKind::Rto, f as u32);
            }
        }
    }

    /// Sends what flow `f`'s window and pacing allow now.
    fn try_send(&mut self, f: usize) {
        let now = self.now_us;
        loop {
            match self.flows[f].sender.poll_send(now) {
                SendDecision::Send(pkt) => self.transmit(f, pkt.seq, pkt.tx, pkt.sent_us),
                SendDecision::WaitUntil(t) => {
                    let s = &mut self.flows[f].sender;
                    if !s.send_event_pending {
                        s.send_event_pending = true;
                        self.events.push(t, EventKind::Send, f as u32);
                    }
                    break;
                }
                SendDecision::Blocked => break,
            }
        }
        self.arm_rto(f);
    }

    /// Puts one data packet on the path and, if it survives, computes its ACK.
    fn transmit(&mut self, f: usize, seq: u64, tx: u64, sent_us: u64) {
        if self.config.random_loss > 0.0 && self.rng.gen::<f64>() < self.config.random_loss {
            return;
        }
        let wire = self.flows[f].sender.wire_bytes();
        let Some(depart_us) = self.data_link.enqueue(sent_us, wire) else {
            return;
        };
        let at_receiver = depart_us + self.config.one_way_delay_us;
        let slot = &mut self.flows[f];
        slot.link_delay.record(depart_us.saturating_sub(sent_us));
        let expected = slot.receiver.rcv_nxt();
        let cum_ack = slot.receiver.receive(seq);
        let ack = Ack {
            at_us: 0,
            seq,
            tx,
            cum_ack,
            echo_sent_us: sent_us,
        };
        if !self.config.delayed_ack {
            self.send_ack(f, at_receiver, ack);
            return;
        }
        // A pending ACK whose timer fired before this arrival leaves first.
        if let Some((deadline, pending)) = self.flows[f].delack {
            if deadline <= at_receiver {
                self.flows[f].delack = None;
                self.send_ack(f, deadline, pending);
            }
        }
        let in_order = seq == expected && cum_ack == seq + 1;
        let slot = &mut self.flows[f];
        if !in_order || cum_ack <= QUICKACK_SEGMENTS {
            // At once; it covers a pending in-order segment too.
            slot.delack = None;
            self.send_ack(f, at_receiver, ack);
        } else if let Some((_, pending)) = slot.delack.take() {
            // The second full segment: one ACK for both, its RTT sample from
            // the older (tcp_clean_rtx_queue takes the first acked segment).
            self.send_ack(
                f,
                at_receiver,
                Ack {
                    echo_sent_us: pending.echo_sent_us,
                    ..ack
                },
            );
        } else {
            let deadline = at_receiver + DELAYED_ACK_US;
            slot.delack = Some((deadline, ack));
            self.events.push(deadline, EventKind::DelAck, f as u32);
        }
    }

    /// The receiver of flow `f` sends `ack` at `at_receiver_us`: across the
    /// ACK link if there is one (an ACK it drops is lost), then the
    /// propagation delay.
    fn send_ack(&mut self, f: usize, at_receiver_us: u64, mut ack: Ack) {
        let ack_leaves = match &mut self.ack_link {
            Some(link) => match link.enqueue(at_receiver_us, self.config.ack_bytes) {
                Some(t) => t,
                None => return,
            },
            None => at_receiver_us,
        };
        ack.at_us = ack_leaves + self.config.one_way_delay_us;
        let slot = &mut self.flows[f];
        // A delayed ACK may leave the receiver before an earlier-computed
        // ACK of another flow; per flow the order holds (module docs).
        let at_us = slot
            .acks
            .back()
            .map_or(ack.at_us, |b| b.at_us.max(ack.at_us));
        ack.at_us = at_us;
        slot.acks.push_back(ack);
        if !slot.ack_event_pending {
            slot.ack_event_pending = true;
            self.events.push(at_us, EventKind::Ack, f as u32);
        }
    }
}
