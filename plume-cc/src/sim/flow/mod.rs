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

/// How the simulated sock_ops datapath sees a flow and applies its limits.
///
/// The kernel calls the datapath's program only at socket callbacks, and the
/// one that follows a bulk flow, `BPF_SOCK_OPS_RTT_CB`, comes once per round
/// trip, not per ACK: `tcp_rtt_estimator()` (net/ipv4/tcp_input.c) calls
/// `tcp_bpf_rtt()` on the flow's first RTT sample and then only on a sample
/// taken once `snd_una` has passed `tp->rtt_seq`, which it then moves to
/// `snd_nxt`. The program copies the flow's statistics and applies the
/// daemon's latest limits in those callbacks (and in the retransmission and
/// RTO callbacks), so a daemon polling every 20 ms reads statistics up to a
/// round trip old, often the same copy twice or three times, and its limits
/// take effect at the next callback. Measured on the emulator: 335 RTT
/// callbacks in a 30 s window that delivered 8,461 segments, one copy per
/// three 20 ms polls (docs/TRAINING.md, "The datapath sees a flow once per
/// round trip").
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum DatapathModel {
    /// As the kernel: statistics copied and limits applied at the sender's
    /// callbacks only (the RTT callback once per round trip, every
    /// retransmission, every RTO); a poll reads the latest copy.
    #[default]
    Callbacks,
    /// The simulator before 2026-12-03: every poll reads the sender's
    /// statistics as they are, and limits apply when written. The policies
    /// trained before then were trained so; it stays available so that their
    /// commands reproduce them bit for bit.
    Interval,
}
