//! Raw actions to datapath targets: the policy's [`ActionScaling`] with the
//! flow context read back from the flow's own observation, as the daemon
//! does, for the controlled flow and for each peer running the same policy.
//!
//! Why its own file: training, evaluation, sim-to-real and the examples
//! must all map actions exactly as deployment does; one mapping here is
//! what keeps the simulator's flows under the limits the daemon would set.

use super::super::Env;
use crate::policy::model::ActionScaling;
use crate::policy::observation::Observation;
use crate::policy::Target;
use crate::policy::{flow_context, Mode};

/// The datapath action for raw action `raw` on `env`'s controlled flow,
/// whose latest observation is `obs`: the policy's [`ActionScaling`] with the
/// flow context read back from the observation (as the daemon does), each
/// limit moved at most one step from the limits in force.
pub fn env_action(scaling: &ActionScaling, obs: &Observation, raw: [f32; 2], env: &Env) -> Target {
    mapped_target(
        scaling,
        obs,
        raw,
        env.flow_limits_and_mss(0),
        env.controlled_mode(),
    )
}

/// The action mapping shared by the controlled flow and its peers: `raw`
/// scaled with the context read back from `obs` and the flow's MSS, moved at
/// most one step from `prev`, the limits in force.
fn mapped_target(
    scaling: &ActionScaling,
    obs: &Observation,
    raw: [f32; 2],
    (prev, mss): (Target, u32),
    mode: Mode,
) -> Target {
    let ctx = flow_context(obs, mss, mode);
    scaling.next_target(raw, &ctx, prev)
}

/// The targets of `env`'s peers for raw actions `raw` (one per peer, in
/// order): the same mapping as [`env_action`], each with its own flow's
/// context and limits in force.
pub fn peer_actions(scaling: &ActionScaling, env: &Env, raw: &[[f32; 2]]) -> Vec<Target> {
    env.peer_observations()
        .iter()
        .zip(raw)
        .enumerate()
        .map(|(i, (obs, a))| {
            let flow = env.peer_flow(i).unwrap_or(usize::MAX);
            mapped_target(
                scaling,
                obs,
                *a,
                env.flow_limits_and_mss(flow),
                env.peer_mode(i),
            )
        })
        .collect()
}

/// [`env_action`] for every environment (one observation and raw action each).
pub fn sim_actions(
    scaling: &ActionScaling,
    obs: &[Observation],
    raw: &[[f32; 2]],
    envs: &[Env],
) -> Vec<Target> {
    obs.iter()
        .zip(raw)
        .zip(envs)
        .map(|((o, a), e)| env_action(scaling, o, *a, e))
        .collect()
}

/// MSS of `env`'s controlled flow (1448 before a reset).
pub fn flow_mss(env: &Env) -> u32 {
    env.flow_limits_and_mss(0).1
}
