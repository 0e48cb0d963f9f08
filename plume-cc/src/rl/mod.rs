//! Reinforcement learning for plume-cc: PPO over the simulator's
//! environments, with the trace window of every episode chosen by a Plume
//! sampler (uniform, plume-static or plume-dynamic).
//!
//! - [`ppo`]: the algorithm (GAE, clipped surrogate, minibatches) over any
//!   [`ppo::BatchEnv`];
//! - [`flow_env`]: the RL environment: one controlled flow (plus competitors)
//!   on a simulated bottleneck, stepped one monitor interval at a time, its
//!   observation from the shared builder and the reward's components;
//! - [`vec_env`]: many of them stepped in parallel with rayon;
//! - [`env`]: those as a `BatchEnv` for PPO (sampler at every reset, and the
//!   one reward: normalised per window, fair-share throughput);
//! - [`train`]: a whole run, put together from [`config`] (settings,
//!   errors), [`corpus`] (windows, clusters, split, sampler), [`log`] (the
//!   per-iteration log and progress) and [`evaluation`] (held-out scores
//!   against CUBIC, BBR-like and the fixed rule);
//! - [`plot`]: learning curves.
//!
//! The `plume-cc train`, `bench-inference` and `eval-table` command lines
//! are the binary's (`src/cli/train.rs`).
//!
//! Nothing here reads clocks for decisions or draws unseeded randomness.
pub mod config;
pub mod corpus;
pub mod env;
pub mod evaluation;
pub mod flow_env;
pub mod log;
pub mod matrix;
pub mod plot;
pub mod ppo;
pub mod scenario;
pub mod train;
pub mod vec_env;

pub use flow_env::{
    Env, EnvConfig, EnvError, EpisodeMetrics, MonitorInterval, RewardComponents, StepResult,
};
pub use vec_env::VecEnv;
