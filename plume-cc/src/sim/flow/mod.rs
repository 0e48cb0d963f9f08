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
//!   [`RttEstimator`](crate::flow::RttEstimator) (shared, in
//!   `crate::flow::rtt`); the sender keeps the timer and its backoff;
//! - loss detection: SACK-like, per transmission: a transmission is lost when
//!   three later transmissions have been delivered (dupthresh in send order,
//!   which also catches lost retransmissions), plus the retransmission
//!   timeout with exponential backoff;
//! - recovery: one congestion event per window (until `snd_una` passes the
//!   recovery point); lost segments are retransmitted before new data;
//! - delivery-rate samples like the kernel's `tcp_rate.c`
//!   ([`RateSampler`](crate::flow::RateSampler)).
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
//!
//! One file per concern:
//! - `packet`: what crosses the network between them (data packets, ACKs)
//!   and the sender's answer to "may I send now?";
//! - `sender`: the sender's state machine: sending, ACK processing,
//!   recovery, the retransmission timer, and what the datapath sees;
//! - `scoreboard`: its per-segment state (sent, SACKed, lost,
//!   retransmitted), the counts the in-flight formula needs, and
//!   loss detection;
//! - `receiver`: the cumulative ACK point and the out-of-order segments.

mod packet;
mod receiver;
mod scoreboard;
mod sender;

pub use crate::flow::rtt::{RTO_INITIAL_US, RTO_MAX_US, RTO_MIN_US};
pub use packet::{Ack, Packet, SendDecision};
pub use receiver::Receiver;
pub use scoreboard::DUPTHRESH;
pub use sender::Sender;
