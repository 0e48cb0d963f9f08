//! The policy replayed in the simulator, branching at a decision into the
//! contrasting actions.
//!
//! A [`Branch`] is an episode (window, path, seed) followed from its reset
//! with the policy's own limits up to a decision step; there it takes one of
//! [`super::ACTIONS_LOG2`] (the policy's cwnd clamp times 2^x, held for
//! [`super::Horizon::hold`] intervals, then the policy again) and runs to
//! the end of the horizon. The simulator is deterministic for a seed and a
//! sequence of limits, so the branches of one decision share their past
//! exactly and differ only by the action: the realised returns of the
//! alternatives are measured, not estimated. Every branch of a batch steps
//! in lockstep, with one batched policy forward per interval (as the
//! daemon decides for all flows at once).

use std::sync::Arc;

use plume_cc_common::CWND_UNCLAMPED;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::past::{FlowPast, QueuePast, PAST_LEN, QUEUE_LEN};
use super::returns::StepParts;
use super::{ExplainError, Horizon, ACTIONS_LOG2, BRANCH_LOG2, NULL_BRANCH};
use crate::congestion::ControllerKind;
use crate::policy::cadence::DecisionClock;
use crate::policy::model::ActionScaling;
use crate::policy::observation::Observation;
use crate::policy::{flow_context, LoadedPolicy, Objective, Target};
use crate::rl::env::{apply_scenario, RewardSpec, SimWindow};
use crate::rl::scenario::{Scenario, ScenarioSpec};
use crate::rl::{Env, EnvConfig, MonitorInterval};

/// One episode: a window, its path and its seed.
#[derive(Clone, Debug)]
pub struct Episode {
    /// The capacity window.
    pub window: SimWindow,
    /// The path (competitors, loss, ACK path, operating point). Peers are
    /// not explained and dropped.
    pub scenario: Scenario,
    /// The simulator's seed.
    pub seed: u64,
}

impl Episode {
    /// The reward weights of the episode: its own operating point's delay
    /// weight, else `objective`'s; the loss weight of [`RewardSpec`].
    pub fn reward_spec(&self, objective: Objective) -> RewardSpec {
        RewardSpec {
            delay_weight: self.scenario.objective.unwrap_or(objective).delay_weight(),
            ..RewardSpec::default()
        }
    }

    /// Monitor intervals in the episode at `interval_us`.
    pub fn steps(&self, interval_us: u64) -> usize {
        (self.window.length_ms * 1000).div_ceil(interval_us.max(1)) as usize
    }
}

/// `n` episodes over `windows` (indices `pick`), each path drawn from
/// `spec`, all from `seed`.
pub fn draw_episodes(
    windows: &[SimWindow],
    pick: &[usize],
    n: usize,
    spec: &ScenarioSpec,
    seed: u64,
) -> Vec<Episode> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .filter_map(|_| {
            let w = windows.get(*pick.get(rng.gen_range(0..pick.len().max(1)))?)?;
            let mut scenario = spec.draw(&mut rng, w.mean_mbps);
            scenario.peers.clear();
            Some(Episode {
                window: w.clone(),
                scenario,
                seed: rng.gen(),
            })
        })
        .collect()
}

/// One branch to simulate (module docs).
#[derive(Clone, Copy, Debug)]
pub struct Branch {
    /// Index of its episode.
    pub episode: usize,
    /// The step at which the contrasting action is taken.
    pub decision: usize,
    /// Which of [`BRANCH_LOG2`] it takes there ([`ACTIONS_LOG2`], or the
    /// null contrast).
    pub action: usize,
    /// The step it stops before (`usize::MAX`: the episode's end).
    pub end: usize,
    /// Keep the observation of every `keep_every`-th step up to the
    /// decision (0: only the decision's).
    pub keep_every: usize,
}

impl Branch {
    /// The policy's own rollout of episode `episode`, whole: no contrasting
    /// action (its decision step is never reached), run to the episode's
    /// end, every step's observation kept. What `explain run` explains
    /// decision by decision.
    pub fn whole_episode(episode: usize) -> Self {
        Self {
            episode,
            decision: usize::MAX,
            action: 0,
            end: usize::MAX,
            keep_every: 1,
        }
    }
}

/// The observation a decision was taken on, with the policy's raw action.
#[derive(Clone, Debug)]
pub struct Kept {
    /// Step index.
    pub step: usize,
    /// The observation before the step's action.
    pub obs: Observation,
    /// The policy's raw action on it.
    pub raw: [f32; 2],
    /// The flow's past up to and with `obs` ([`super::past`]).
    pub past: [f32; PAST_LEN],
    /// The flow's unclipped queue up to and with the interval of `obs`
    /// ([`super::past::QueuePast`], from the simulated flow's srtt and min
    /// RTT as the datapath reports them).
    pub queue: [f32; QUEUE_LEN],
}

/// What one branch did.
#[derive(Clone, Debug)]
pub struct Trajectory {
    /// The branch.
    pub branch: Branch,
    /// Every step's reward parts.
    pub parts: Vec<StepParts>,
    /// The cwnd clamp applied at every step (segments; [`CWND_UNCLAMPED`] for none).
    pub clamps: Vec<u32>,
    /// The observations kept (see [`Branch::keep_every`]).
    pub kept: Vec<Kept>,
}

/// The target for the policy's raw action `raw` on a flow whose latest
/// observation is `obs`, with its cwnd clamp times `2^log2_mult`: the
/// trainer's mapping ([`crate::rl::env::env_action`]) with the multiplier
/// applied before the per-interval step limit, so a contrast moves the
/// clamp as fast as the datapath lets the policy move it. `log2_mult = 0`
/// is exactly the policy's own target.
pub fn contrast_target(
    scaling: &ActionScaling,
    obs: &Observation,
    raw: [f32; 2],
    (prev, mss): (Target, u32),
    mode: crate::policy::Mode,
    log2_mult: f32,
) -> Target {
    let ctx = flow_context(obs, mss, mode);
    let mut t = scaling.to_target(raw, &ctx);
    if log2_mult != 0.0 && t.cwnd_clamp_segments != CWND_UNCLAMPED {
        let c = (f64::from(t.cwnd_clamp_segments) * f64::from(log2_mult).exp2()).round();
        t.cwnd_clamp_segments = c.clamp(
            f64::from(scaling.min_cwnd_segments),
            f64::from(scaling.max_cwnd_segments),
        ) as u32;
    }
    scaling.step_from(t, &ctx, prev)
}

/// Simulates `branches` of `episodes` with `policy` (module docs);
/// `objective` is the operating point of episodes without their own.
/// `on_step` hears the number of branch-steps done after every interval.
pub fn run_branches(
    policy: &LoadedPolicy,
    objective: Objective,
    episodes: &[Episode],
    branches: &[Branch],
    horizon: &Horizon,
    on_step: &mut dyn FnMut(u64),
) -> Result<Vec<Trajectory>, ExplainError> {
    let meta = policy.metadata();
    // Rollouts, horizons and the flow's past count monitor intervals. A
    // per-copy policy decides only at the intervals that bring a new copy of
    // the flow's statistics and holds its target in between, as the daemon
    // does (`policy/cadence.rs`): its branches do the same, with the one
    // exception that every branch decides at its decision step and again
    // when the contrast's hold ends, so that the contrast is in force for
    // exactly `horizon.hold` intervals whatever the flow's callbacks.
    let cadence = meta.action_scaling.decide;
    let base = ControllerKind::from_name(&meta.base_cc).unwrap_or(ControllerKind::Cubic);
    let interval_us = meta.monitor_interval_us;
    let scaling = meta.action_scaling;
    let n = branches.len();
    let mut envs = Vec::with_capacity(n);
    let mut obs = Vec::with_capacity(n);
    for (i, b) in branches.iter().enumerate() {
        let ep = episodes.get(b.episode).ok_or_else(|| ExplainError::Range {
            field: "branch episode",
            allowed: "an index of the episodes",
            found: format!("{} (branch {i})", b.episode),
        })?;
        // What the policy's file decides, as its daemon deploys it
        // (`EnvConfig::deploying`): the observation version the network
        // reads, the anchor window's floor, the shared min RTT and the
        // clamp hold, so that the predictors learn the futures the
        // deployed mapping makes. All but the cadence: these rollouts hold
        // each decision over the flow's copies themselves (above), so the
        // environment steps one interval at a time.
        let config = EnvConfig {
            base,
            interval: MonitorInterval::FixedUs(interval_us),
            episode_us: Some(ep.window.length_ms * 1000),
            ..EnvConfig::default()
        }
        .deploying(meta);
        let mut env = Env::new(EnvConfig {
            cadence: crate::policy::Cadence::EveryInterval,
            ..config
        })?;
        let sc_objective = ep.scenario.objective.unwrap_or(objective);
        let ack = apply_scenario(&mut env, &ep.scenario, sc_objective, &ep.window.trace);
        obs.push(env.reset_with_ack_trace(Arc::clone(&ep.window.trace), ack, ep.seed)?);
        envs.push(env);
    }
    let specs: Vec<RewardSpec> = branches
        .iter()
        .map(|b| episodes[b.episode].reward_spec(objective))
        .collect();
    let mut out: Vec<Trajectory> = branches
        .iter()
        .map(|&branch| Trajectory {
            branch,
            parts: Vec::new(),
            clamps: Vec::new(),
            kept: Vec::new(),
        })
        .collect();
    let mut done = vec![false; n];
    let mut past = vec![FlowPast::new(interval_us); n];
    let mut queue = vec![QueuePast::default(); n];
    // The (srtt, min RTT) of the flow sample each `obs[i]` was built from
    // (none before the first interval).
    let mut rtts: Vec<(u32, u32)> = vec![(0, 0); n];
    // Each branch's decision clock, the copy time of the statistics behind
    // `obs[i]`, and the target in force with the raw action it came from.
    let mut clocks = vec![DecisionClock::default(); n];
    let mut copy_us = vec![0u64; n];
    let mut held: Vec<Option<(Target, [f32; 2])>> = vec![None; n];
    let mut step = 0usize;
    loop {
        let active: Vec<usize> = (0..n)
            .filter(|&i| !done[i] && step < branches[i].end)
            .collect();
        if active.is_empty() {
            break;
        }
        let flat: Vec<f32> = active.iter().flat_map(|&i| obs[i]).collect();
        let raw = policy.act_batch(&flat, active.len())?;
        let mut targets: Vec<Option<Target>> = vec![None; n];
        for (k, &i) in active.iter().enumerate() {
            let b = &branches[i];
            let log2 = if step >= b.decision && step < b.decision + horizon.hold {
                BRANCH_LOG2[b.action]
            } else {
                0.0
            };
            let forced = step == b.decision || step == b.decision.saturating_add(horizon.hold);
            let due = if forced {
                clocks[i].decide_now(copy_us[i]);
                true
            } else {
                clocks[i].due(cadence, copy_us[i])
            };
            let (t, raw_in_force) = match held[i] {
                Some(h) if !due => h,
                _ => {
                    let t = contrast_target(
                        &scaling,
                        &obs[i],
                        raw[k],
                        envs[i].flow_limits_and_mss(0),
                        envs[i].controlled_mode(),
                        log2,
                    );
                    held[i] = Some((t, raw[k]));
                    (t, raw[k])
                }
            };
            targets[i] = Some(t);
            past[i].update(&obs[i]);
            queue[i].update(rtts[i].0, rtts[i].1);
            let keep = step == b.decision
                || (b.keep_every > 0 && step.is_multiple_of(b.keep_every) && step < b.decision);
            if keep {
                out[i].kept.push(Kept {
                    step,
                    obs: obs[i],
                    raw: raw_in_force,
                    past: past[i].features(),
                    queue: queue[i].features(),
                });
            }
        }
        let results: Vec<Option<crate::rl::StepResult>> = envs
            .par_iter_mut()
            .zip(targets.par_iter())
            .map(|(e, t)| t.map(|t| e.step(t)).transpose())
            .collect::<Result<_, _>>()?;
        for (i, r) in results.into_iter().enumerate() {
            let Some(r) = r else { continue };
            let ep = &episodes[branches[i].episode];
            let flows = ep.scenario.active_flows(r.now_us);
            let min_rtt_ms = 2.0 * ep.scenario.one_way_delay_us as f64 / 1000.0;
            out[i].parts.push(StepParts::of(
                &r,
                ep.window.mean_mbps / flows as f64,
                flows,
                min_rtt_ms,
                &specs[i],
            ));
            out[i]
                .clamps
                .push(targets[i].map_or(CWND_UNCLAMPED, |t| t.cwnd_clamp_segments));
            obs[i] = r.observation;
            (rtts[i], copy_us[i]) =
                envs[i]
                    .network()
                    .and_then(|net| net.sender(0))
                    .map_or(((0, 0), 0), |s| {
                        let f = s.datapath_sample(r.now_us);
                        ((f.srtt_us, f.min_rtt_us), f.stats_us)
                    });
            done[i] = r.done;
        }
        on_step(active.len() as u64);
        step += 1;
    }
    Ok(out)
}

/// The branches of `groups` decisions: for each episode one decision step,
/// drawn uniformly from those with a whole horizon after them (and a few
/// intervals of history before), branched into every action; the policy's
/// own branch keeps every `keep_every`-th observation before the decision
/// (on-policy samples). With `null`, each decision also gets the null
/// contrast's branch.
pub fn decision_branches(
    episodes: &[Episode],
    interval_us: u64,
    horizon: &Horizon,
    keep_every: usize,
    seed: u64,
    null: bool,
) -> Vec<Branch> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut v = Vec::new();
    for (e, ep) in episodes.iter().enumerate() {
        let last = ep.steps(interval_us).saturating_sub(horizon.steps);
        let first = 5.min(last);
        let decision = if last > first {
            rng.gen_range(first..=last)
        } else {
            first
        };
        let n = if null {
            NULL_BRANCH + 1
        } else {
            ACTIONS_LOG2.len()
        };
        for action in 0..n {
            v.push(Branch {
                episode: e,
                decision,
                action,
                end: decision + horizon.steps,
                keep_every: if action == 0 { keep_every } else { 0 },
            });
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::returns::returns_from;
    use crate::rl::env::{env_action, normalized_reward};

    /// A per-copy policy's own branch holds each target until the flow's
    /// statistics are copied again, exactly as the trainer's environment
    /// steps it under that cadence (one step per copy, the target held over
    /// the step's intervals).
    #[test]
    fn a_per_copy_policy_holds_its_targets_as_the_trainer_does() {
        let mut policy = crate::policy::default_policy().unwrap();
        let scaling = crate::policy::ActionScaling {
            decide: crate::policy::Cadence::PerCopy,
            // The datapath's hold after a loss too: the rollout must take it
            // from the policy as the daemon does.
            hold_clamp_after_loss: true,
            ..policy.metadata().action_scaling
        };
        assert!(policy.set_action_scaling(scaling));
        let meta = policy.metadata();
        let ep = episode();
        let (mut env, mut obs) = trainer_env(
            &ep,
            meta.monitor_interval_us,
            crate::policy::Cadence::PerCopy,
            meta.action_scaling.anchor_floor_us(),
            meta.action_scaling.clamp_hold(),
        );
        let (mut clamps, mut decisions) = (Vec::new(), 0);
        loop {
            let raw = policy.act_batch(&obs, 1).unwrap()[0];
            let target = env_action(&meta.action_scaling, &obs, raw, &env);
            let s = env.step(target).unwrap();
            decisions += 1;
            clamps.extend(std::iter::repeat_n(
                target.cwnd_clamp_segments,
                s.intervals as usize,
            ));
            obs = s.observation;
            if s.done {
                break;
            }
        }
        let t = run_branches(
            &policy,
            Objective::default(),
            &[ep],
            &[Branch::whole_episode(0)],
            &Horizon::default(),
            &mut |_| {},
        )
        .unwrap()
        .remove(0);
        assert!(
            decisions < clamps.len() * 3 / 4,
            "a 40 ms path is copied about every other interval: {decisions} decisions in {} intervals",
            clamps.len()
        );
        assert_eq!(t.clamps, clamps);
    }

    /// A rollout feeds the network the observation version of the
    /// policy's file, as its daemon does: the default's weights under a v4
    /// file (the same shape; `copy_age_rtts` in the third global slot)
    /// roll out differently from the same weights under their own v3 file.
    /// (The rollouts once built the build's default version whatever the
    /// file said.)
    #[test]
    fn a_rollout_builds_the_policys_own_observation_version() {
        let (weights, metadata) = crate::policy::default_policy_bytes();
        let mut v: serde_json::Value = serde_json::from_str(metadata).unwrap();
        assert_eq!(v["observation"]["version"], 3);
        v["observation"]["version"] = 4.into();
        v["observation"]["feature_names"][2] = "copy_age_rtts".into();
        let v4 = LoadedPolicy::from_bytes(
            weights,
            &v.to_string(),
            std::path::Path::new("<default as v4>"),
        )
        .unwrap();
        let v3 = crate::policy::default_policy().unwrap();
        let clamps = |p: &LoadedPolicy| {
            run_branches(
                p,
                Objective::default(),
                &[episode()],
                &[Branch::whole_episode(0)],
                &Horizon::default(),
                &mut |_| {},
            )
            .unwrap()
            .remove(0)
            .clamps
        };
        let (a, b) = (clamps(&v3), clamps(&v4));
        assert_eq!(a.len(), b.len());
        assert_ne!(a, b, "the v4 file's rollout read v3 observations");
    }

    /// The trainer's environment on `ep` (3 s) at `cadence` with the
    /// policy's anchor window floor and clamp hold, reset: what the
    /// explainer's rollouts are checked against.
    fn trainer_env(
        ep: &Episode,
        interval_us: u64,
        cadence: crate::policy::Cadence,
        anchor_floor_us: u64,
        clamp_hold: crate::congestion::ClampHold,
    ) -> (Env, Observation) {
        let mut env = Env::new(EnvConfig {
            interval: MonitorInterval::FixedUs(interval_us),
            episode_us: Some(3_000_000),
            cadence,
            anchor_floor_us,
            clamp_hold,
            ..EnvConfig::default()
        })
        .unwrap();
        let ack = apply_scenario(
            &mut env,
            &ep.scenario,
            Objective::default(),
            &ep.window.trace,
        );
        let obs = env
            .reset_with_ack_trace(Arc::clone(&ep.window.trace), ack, ep.seed)
            .unwrap();
        (env, obs)
    }

    /// A 12 Mbit/s window of 3 s on a 40 ms path with a 2-BDP buffer, with
    /// a CUBIC competitor joining at 1 s.
    pub(crate) fn episode() -> Episode {
        let ms: Vec<u64> = (1..=3000).collect();
        let window = SimWindow::cut(&ms, 0, 3000).unwrap();
        Episode {
            window,
            scenario: Scenario {
                objective: Some(Objective::default()),
                one_way_delay_us: 20_000,
                queue: crate::sim::QueueLimit::packets(80),
                random_loss: 0.0,
                ack_trace: false,
                delayed_ack: false,
                competitors: vec![(ControllerKind::Cubic, 1_000_000)],
                peers: Vec::new(),
            },
            seed: 9,
        }
    }

    #[test]
    fn component_returns_sum_to_the_total_return_on_a_recorded_rollout() {
        // Decided every interval, so that the recorded rollout below steps
        // one interval per step (a per-copy policy's own branch is checked
        // by `a_per_copy_policy_holds_its_targets_as_the_trainer_does`).
        let mut policy = crate::policy::default_policy().unwrap();
        let scaling = crate::policy::ActionScaling {
            decide: crate::policy::Cadence::EveryInterval,
            ..policy.metadata().action_scaling
        };
        policy.set_action_scaling(scaling);
        let meta = policy.metadata();
        let ep = episode();
        let spec = ep.reward_spec(meta.default_objective);
        // The rollout recorded the way the trainer steps it (SimBatch):
        // env_action, normalized_reward.
        let (mut env, mut obs) = trainer_env(
            &ep,
            meta.monitor_interval_us,
            crate::policy::Cadence::EveryInterval,
            meta.action_scaling.anchor_floor_us(),
            meta.action_scaling.clamp_hold(),
        );
        let mut rewards = Vec::new();
        loop {
            let raw = policy.act_batch(&obs, 1).unwrap()[0];
            let s = env
                .step(env_action(&meta.action_scaling, &obs, raw, &env))
                .unwrap();
            let flows = ep.scenario.active_flows(s.now_us);
            rewards.push(f64::from(
                normalized_reward(&s, ep.window.mean_mbps / flows as f64, flows, 40.0, &spec).0,
            ));
            obs = s.observation;
            if s.done {
                break;
            }
        }
        // The same episode through the explainer's rollout: the policy's
        // own branch reproduces it step for step.
        let branch = Branch::whole_episode(0);
        let t = run_branches(
            &policy,
            Objective::default(),
            &[ep],
            &[branch],
            &Horizon::default(),
            &mut |_| {},
        )
        .unwrap()
        .remove(0);
        assert_eq!(t.parts.len(), rewards.len());
        assert!(t.parts.len() >= 140, "{}", t.parts.len());
        assert!(
            t.clamps.iter().any(|&c| c != CWND_UNCLAMPED),
            "the policy clamps"
        );
        let h = Horizon::default();
        for from in [0, 10, 60, 120, 140] {
            let r = returns_from(&t.parts, from, h.steps, h.gamma);
            let recorded: f64 = rewards[from..]
                .iter()
                .take(h.steps)
                .enumerate()
                .map(|(k, x)| h.gamma.powi(k as i32) * x)
                .sum();
            let parts: f64 = r.reward_units.iter().sum::<f64>() + r.clip;
            assert!((parts - r.total).abs() < 1e-9, "{r:?}");
            assert!(
                (r.total - recorded).abs() < 1e-4 * (1.0 + recorded.abs()),
                "from {from}: components sum to {} but the recorded return is {recorded}",
                r.total
            );
        }
        // The competitor halves the fair share: throughput's part is a
        // share, not Mbit/s.
        assert!(t
            .parts
            .iter()
            .all(|p| p.thr <= 2.0 && p.delay <= 0.0 && p.loss <= 0.0));
    }

    #[test]
    fn branches_share_their_past_and_differ_after_the_decision() {
        let policy = crate::policy::default_policy().unwrap();
        let eps = [episode()];
        let h = Horizon::default();
        let branches: Vec<Branch> = (0..3)
            .map(|action| Branch {
                episode: 0,
                decision: 40,
                action,
                end: 40 + h.steps,
                keep_every: 0,
            })
            .collect();
        let t = run_branches(
            &policy,
            Objective::default(),
            &eps,
            &branches,
            &h,
            &mut |_| {},
        )
        .unwrap();
        for b in &t[1..] {
            assert_eq!(b.parts[..40], t[0].parts[..40]);
            assert_eq!(b.kept.len(), 1);
            assert_eq!(b.kept[0].obs, t[0].kept[0].obs);
        }
        // Half the clamp, then double: the clamps applied while the
        // contrast holds are below and above the policy's on average (one
        // interval can cross: the policy's own clamp swings between
        // intervals as the window meets it, as in Linux, only while used).
        let mean_after = |b: &Trajectory| {
            let held = &b.clamps[40..40 + h.hold];
            held.iter().map(|&c| f64::from(c)).sum::<f64>() / held.len() as f64
        };
        let (policy, half, double) = (mean_after(&t[0]), mean_after(&t[1]), mean_after(&t[2]));
        assert!(half < policy && policy < double, "{half} {policy} {double}");
    }
}
