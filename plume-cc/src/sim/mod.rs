//! Trace-driven packet-level simulator: the fast training environment.
//!
//! A discrete-event model of one Mahimahi bottleneck (`mm-delay D mm-link`)
//! shared by TCP-like senders, plus the RL environment built on it. It is
//! faithful to the Mahimahi link model ([`link`]) and to what the kernel
//! datapath lets a policy see ([`crate::policy::observation::FlowSample`]) and
//! do (a cwnd clamp and a pacing cap, [`crate::congestion::Clamped`]).
//!
//! Everything here is a pure function of its inputs: simulated time is
//! explicit, randomness comes from a seeded ChaCha generator, and the same
//! seed gives the same run. Nothing reads a clock; nothing panics on bad input
//! (errors are [`SimError`]). The per-packet path does not allocate once the
//! buffers have grown to the flow's window.
//!
//! One file per concern:
//! - [`capacity`]: the delivery schedule (Mahimahi timestamps, repetition);
//! - [`mahimahi`]: a minimal private trace-file reader (to be replaced by the
//!   shared `trace` module);
//! - [`link`]: the bottleneck: opportunities, byte accounting, droptail queue;
//! - [`event`]: the event queue;
//! - [`flow`]: the sender (ACK clocking, RTT, SACK-like loss detection, RTO,
//!   pacing) and the receiver;
//! - [`network`]: links, delays, random loss and flows put together;
//! - [`metrics`]: per-flow counters and RTT percentiles;
//! - [`env`](mod@env): the RL environment (reset/step, observation, reward);
//! - [`parallel`]: many environments stepped with rayon.

pub mod capacity;
pub mod env;
pub mod event;
pub mod flow;
pub mod link;
pub mod mahimahi;
pub mod metrics;
pub mod network;
pub mod parallel;

pub use capacity::{CapacityTrace, OPPORTUNITY_BYTES};
pub use env::{
    Action, Env, EnvConfig, EpisodeMetrics, MonitorInterval, RewardComponents, RewardWeights,
    StepResult,
};
pub use link::QueueLimit;
pub use mahimahi::load_mahimahi;
pub use network::{FlowConfig, Network, NetworkConfig};
pub use parallel::VecEnv;

/// Errors of the simulator; every message names the offending value.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A delivery schedule without opportunities.
    #[error("capacity trace is empty: it needs at least one delivery opportunity")]
    EmptyTrace,
    /// A delivery schedule whose timestamps go backwards.
    #[error("capacity trace is not sorted: entry {index} is {value_ms} ms after {previous_ms} ms")]
    UnsortedTrace {
        /// Index of the first out-of-order timestamp.
        index: usize,
        /// The timestamp before it, ms.
        previous_ms: u64,
        /// The out-of-order timestamp, ms.
        value_ms: u64,
    },
    /// A schedule ending at 0 ms, which Mahimahi cannot repeat.
    #[error(
        "capacity trace ends at 0 ms: its last timestamp (the repetition period) must be positive"
    )]
    ZeroPeriodTrace,
    /// A trace file that could not be read or is malformed.
    #[error(transparent)]
    TraceFile(#[from] crate::trace::TraceError),
    /// A configuration value out of its domain.
    #[error("invalid simulator configuration: {0}")]
    InvalidConfig(String),
    /// `step` before `reset`.
    #[error("environment stepped before reset")]
    NotReset,
    /// `step` after the episode ended.
    #[error("environment stepped after its episode ended at {end_us} us; call reset")]
    EpisodeDone {
        /// End of the episode, simulated microseconds.
        end_us: u64,
    },
    /// The observation builder refused a sample.
    #[error(transparent)]
    Observation(#[from] crate::policy::observation::ObservationError),
    /// Parallel calls given slices of different lengths.
    #[error("expected {expected} entries (one per environment), got {got}")]
    BatchSize {
        /// Number of environments.
        expected: usize,
        /// Entries given.
        got: usize,
    },
}
