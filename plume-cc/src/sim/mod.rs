//! Trace-driven packet-level simulator: the network under the fast training
//! environment (which is [`crate::rl::flow_env`]; this module knows nothing
//! of policies).
//!
//! A discrete-event model of one Mahimahi bottleneck (`mm-delay D mm-link`)
//! shared by TCP-like senders. It is faithful to the Mahimahi link model
//! ([`link`]), to what the kernel datapath shows of a flow
//! ([`crate::flow::FlowSample`]) and to what it can do to one (a cwnd clamp
//! and a pacing cap, [`crate::congestion::Clamped`]).
//!
//! Everything here is a pure function of its inputs: simulated time is
//! explicit, randomness comes from a seeded ChaCha generator, and the same
//! seed gives the same run. Nothing reads a clock; nothing panics on bad input
//! (errors are [`SimError`]). The per-packet path does not allocate once the
//! buffers have grown to the flow's window.
//!
//! One file per concern:
//! - [`mahimahi`]: trace files as delivery schedules (reading is the `trace`
//!   module's; the schedule is [`crate::trace::Schedule`], shared with the
//!   emulator);
//! - [`link`]: the bottleneck: opportunities, byte accounting, droptail queue;
//! - [`event`]: the event queue;
//! - [`flow`]: the sender (ACK clocking, RTT, SACK-like loss detection, RTO,
//!   pacing) and the receiver;
//! - [`network`]: links, delays, random loss and flows put together;
//! - [`metrics`]: per-flow counters and RTT percentiles.

pub mod event;
pub mod flow;
pub mod link;
pub mod mahimahi;
pub mod metrics;
pub mod network;

pub use crate::trace::{Schedule, OPPORTUNITY_BYTES};

pub use flow::{DatapathModel, MinRttSample, TimeoutModel};
pub use link::QueueLimit;
pub use mahimahi::load_mahimahi;
pub use network::{FlowConfig, Network, NetworkConfig};

/// Errors of the simulator; every message names the offending value.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A delivery schedule that is not one (empty, unsorted, zero period).
    #[error(transparent)]
    Schedule(#[from] crate::trace::ScheduleError),
    /// A trace file that could not be read or is malformed.
    #[error(transparent)]
    TraceFile(#[from] crate::trace::TraceError),
    /// A configuration value out of its domain.
    #[error("invalid simulator configuration: {0}")]
    InvalidConfig(String),
}
