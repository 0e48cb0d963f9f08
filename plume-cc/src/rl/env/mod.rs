//! The simulator as a [`BatchEnv`](super::ppo::BatchEnv) for PPO: many
//! [`Env`](super::Env)s stepped in parallel (rayon, through
//! [`VecEnv`](super::VecEnv)), each episode on a trace window chosen by a
//! [`TraceSampler`](crate::plume::TraceSampler) at its reset, with a reward
//! normalised per window so that every window scores on one scale:
//!
//! `reward = min(throughput / fair share, 2) - delay_weight * queueing delay / min RTT
//! - loss_weight * loss rate`, clipped to `[-10, 2]`,
//!
//! where the fair share is the window's mean capacity over the flows active
//! on the bottleneck (the policy's and every competitor that has started),
//! so a flow is rewarded for its share, not for starving a competitor.
//! Episodes draw their path (and competitors, loss, ACK path) from a
//! [`ScenarioSpec`](super::scenario::ScenarioSpec) when one is given, else
//! from [`PathRanges`].
//!
//! Raw actions become datapath targets through
//! [`ActionScaling`](crate::policy::model::ActionScaling) with the flow
//! context read back from the observation itself
//! ([`crate::policy::flow_context_from_observation`]), exactly as the daemon
//! does, so training and deployment apply the same mapping.
//!
//! One file per concern:
//! - `reward`: the one reward and its weights;
//! - `episode`: what an episode runs on: its trace window and its path
//!   (drawn from ranges, or a scenario applied to the environment);
//! - `action`: raw actions to datapath targets, for the controlled flow and
//!   its peers, with the context read back from their observations;
//! - `batch`: the environments behind [`BatchEnv`](super::ppo::BatchEnv):
//!   resets through the sampler, steps, rewards and finished episodes.

mod action;
mod batch;
mod episode;
mod reward;

pub use action::{env_action, flow_mss, peer_actions, sim_actions};
pub use batch::{EpisodeRecord, SimBatch};
pub use episode::{apply_scenario, PathRanges, SimWindow};
pub use reward::{normalized_reward, QueuePenalty, RewardSpec};
