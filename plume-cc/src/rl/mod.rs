//! Reinforcement learning for plume-cc: PPO over the simulator's
//! environments, with the trace of every episode chosen by a Plume sampler.
//!
//! - [`ppo`]: the algorithm (GAE, clipped surrogate, minibatches) over any
//!   [`ppo::BatchEnv`].
pub mod ppo;
