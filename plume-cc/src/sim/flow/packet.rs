//! What crosses the simulated network between a sender and its receiver:
//! data [`Packet`]s and [`Ack`]s, and the sender's [`SendDecision`].
//!
//! Why its own file: the network (`crate::sim::network`) moves these
//! without looking inside the sender or the receiver; they are the whole
//! interface between the two ends and the links.

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
