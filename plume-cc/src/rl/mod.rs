//! Reinforcement learning for plume-cc: PPO over the simulator's
//! environments, with the trace window of every episode chosen by a Plume
//! sampler (uniform, plume-static or plume-dynamic).
//!
//! - [`ppo`]: the algorithm (GAE, clipped surrogate, minibatches) over any
//!   [`ppo::BatchEnv`];
//! - [`env`]: the simulator as a `BatchEnv` (parallel environments, sampler
//!   at every reset, reward normalised per window);
//! - [`train`]: a whole run (corpus, clustering, checkpoints, logs,
//!   evaluation against CUBIC and BBR-like);
//! - [`plot`]: learning curves;
//! - [`cli`]: the hidden `plume-cc train` and `plume-cc bench-inference` commands.
//!
//! Nothing here reads clocks for decisions or draws unseeded randomness.
pub mod cli;
pub mod env;
pub mod plot;
pub mod ppo;
pub mod scenario;
pub mod train;
