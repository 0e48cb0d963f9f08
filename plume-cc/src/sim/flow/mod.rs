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

/// Which RTT sample of an ACK feeds the sender's min RTT filter.
///
/// Linux takes two RTTs from one ACK (`tcp_clean_rtx_queue()`,
/// net/ipv4/tcp_input.c): `seq_rtt_us` from the oldest segment it newly
/// delivers (`first_ackt`), which feeds srtt (`tcp_rtt_estimator()`), and
/// `ca_rtt_us` from the newest (`last_ackt`, "RTT of last (S)ACKed
/// packet"), which feeds the min RTT filter: `tcp_ack_update_rtt()` calls
/// `tcp_update_rtt_min(sk, ca_rtt_us, flag)` and then
/// `tcp_rtt_estimator(sk, seq_rtt_us)`. Both skip retransmitted segments
/// (Karn); with none left, both are the timestamp echo's RTT. Under delayed
/// ACKs an ACK covers two segments, and on a slow link the newer one
/// arrived an opportunity later, so its RTT is the smaller: the kernel's
/// min RTT was 0.5-15 ms below the simulator's on the five sim-to-real
/// windows, 15 ms on the 0.94 Mbit/s uplink (docs/TRAINING.md, "The anchor
/// gap was the report's").
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum MinRttSample {
    /// The simulator before 2026-12-04, and training's default (so that
    /// every training command reproduces): the one sample srtt takes (the
    /// echoed send time, the older segment of a delayed ACK) feeds the min
    /// RTT too.
    #[default]
    Echoed,
    /// As Linux: the min RTT takes the RTT of the newest segment the ACK
    /// delivers, when that segment is not a retransmission (else the
    /// echoed sample, as the kernel's timestamp fallback does).
    Newest,
}

/// What the sender does when a retransmission timeout proves spurious: the
/// segments it marked lost were only delayed (a link outage held them in
/// the bottleneck queue), and an ACK for one of them arrives after the
/// timeout's retransmission went out.
///
/// Linux finds that out and takes the timeout back. With TCP timestamps
/// (on by default), the ACK echoes the timestamp of the segment that
/// triggered it; when that echo is older than the first retransmission
/// (`tcp_packet_delayed()`: `tcp_tsopt_ecr_before(tp, tp->retrans_stamp)`,
/// net/ipv4/tcp_input.c), the ACK was for an original transmission, and
/// `tcp_process_loss()` calls `tcp_try_undo_loss()` on an ACK that advances
/// `snd_una`: `tcp_undo_cwnd_reduction()` restores the window
/// (`undo_cwnd`, for Reno and CUBIC `max(cwnd, prior_cwnd)`) and ssthresh
/// (`prior_ssthresh`, saved by `tcp_enter_loss()` as
/// `tcp_current_ssthresh()`), clears every lost mark (`lost_out = 0`, so
/// nothing more is retransmitted) and returns to `TCP_CA_Open`. F-RTO
/// (RFC 5682, `tcp_frto`) reaches the same undo when never-retransmitted
/// data is acknowledged. Measured on the emulator (docs/TRAINING.md, "The
/// anchor gap was the report's"): after a 3 s outage of
/// ATT-LTE-driving.down the kernel flow retransmitted one segment, and its
/// first copy after the outage showed the window and ssthresh of before it
/// (51 / 51) and no segment lost.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum TimeoutModel {
    /// The simulator before 2026-12-04, and training's default (so that
    /// every training command reproduces): a timeout always stands; its
    /// segments stay lost and are retransmitted from a window of one.
    #[default]
    Plain,
    /// As Linux with timestamps: a timeout whose delayed originals are
    /// acknowledged is undone (see the type's docs). The timeout entered
    /// from loss recovery is not undone (the simulator has no undo of fast
    /// recovery either).
    Undo,
}

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
