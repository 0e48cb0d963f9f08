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
//! - [`mahimahi`]: trace files as delivery schedules (reading is the `trace`
//!   module's; the schedule is [`crate::trace::Schedule`], shared with the
//!   emulator);
//! - [`link`]: the bottleneck: opportunities, byte accounting, droptail queue;
//! - [`event`]: the event queue;
//! - [`flow`]: the sender (ACK clocking, RTT, SACK-like loss detection, RTO,
//!   pacing) and the receiver;
//! - [`network`]: links, delays, random loss and flows put together;
//! - [`metrics`]: per-flow counters and RTT percentiles;
//! - [`env`](mod@env): the RL environment (reset/step, observation, reward);
//! - [`parallel`]: many environments stepped with rayon.

pub mod env;
pub mod event;
pub mod flow;
pub mod link;
pub mod mahimahi;
pub mod metrics;
pub mod network;
pub mod parallel;

pub use crate::policy::Target;
pub use crate::trace::{Schedule, OPPORTUNITY_BYTES};
pub use env::{
    Env, EnvConfig, EpisodeMetrics, MonitorInterval, RewardComponents, RewardWeights, StepResult,
};
pub use link::QueueLimit;
pub use mahimahi::load_mahimahi;
pub use network::{FlowConfig, Network, NetworkConfig};
pub use parallel::VecEnv;

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
