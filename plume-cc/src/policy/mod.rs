//! The learned policy's side of plume-cc: what it observes and how it acts.
//! Shared by the simulator (training) and the daemon (deployment) so a
//! policy transfers unchanged.
//!
//! - [`observation`]: the shared observation builder (datapath statistics in,
//!   fixed-length feature vector out).
//! - [`model`]: the actor-critic network, observation normalisation and the
//!   action scaling to the datapath's levers.
//! - [`file`]: the policy file (safetensors + JSON metadata, or TorchScript)
//!   and [`LoadedPolicy`], the one type the daemon uses.
pub mod file;
pub mod model;
pub mod observation;

pub use file::{default_policy, LoadedPolicy, PolicyError, PolicyMetadata};
pub use model::{ActionScaling, FlowContext, Target};
