//! Many environments stepped in parallel with rayon, for training: each
//! environment is independent (own network, own seed), so the batch result is
//! the same whatever the thread count.

use std::sync::Arc;

use rayon::prelude::*;

use crate::policy::observation::Observation;

use super::flow_env::{Env, EnvConfig, EnvError, EpisodeMetrics, StepResult};
use crate::policy::Target;
use crate::sim::Schedule;

/// A batch of environments sharing one configuration.
#[derive(Debug)]
pub struct VecEnv {
    envs: Vec<Env>,
}

impl VecEnv {
    /// `count` environments of `config`.
    pub fn new(count: usize, config: &EnvConfig) -> Result<Self, EnvError> {
        let envs = (0..count)
            .map(|_| Env::new(config.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { envs })
    }

    /// Number of environments.
    pub fn len(&self) -> usize {
        self.envs.len()
    }

    /// True when the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.envs.is_empty()
    }

    /// The environments, e.g. to reset one whose episode ended.
    pub fn envs(&self) -> &[Env] {
        &self.envs
    }

    /// The environments, mutably.
    pub fn envs_mut(&mut self) -> &mut [Env] {
        &mut self.envs
    }

    fn check(&self, got: usize) -> Result<(), EnvError> {
        if got == self.envs.len() {
            Ok(())
        } else {
            Err(EnvError::BatchSize {
                expected: self.envs.len(),
                got,
            })
        }
    }

    /// Resets environment `i` on `windows[i]` with `seeds[i]`, in parallel.
    pub fn reset_all(
        &mut self,
        windows: &[Arc<Schedule>],
        seeds: &[u64],
    ) -> Result<Vec<Observation>, EnvError> {
        self.check(windows.len())?;
        self.check(seeds.len())?;
        self.envs
            .par_iter_mut()
            .zip(windows.par_iter())
            .zip(seeds.par_iter())
            .map(|((env, w), &seed)| env.reset(Arc::clone(w), seed))
            .collect()
    }

    /// Steps environment `i` with `actions[i]`, in parallel.
    pub fn step_all(&mut self, actions: &[Target]) -> Result<Vec<StepResult>, EnvError> {
        self.check(actions.len())?;
        self.envs
            .par_iter_mut()
            .zip(actions.par_iter())
            .map(|(env, &a)| env.step(a))
            .collect()
    }

    /// Steps environment `i` with `actions[i]` where `done[i]` is false, in
    /// parallel (None for the others): windows of one length end at
    /// different steps when a step spans several intervals
    /// ([`crate::policy::Cadence::PerCopy`]).
    pub fn step_live(
        &mut self,
        actions: &[Target],
        done: &[bool],
    ) -> Result<Vec<Option<StepResult>>, EnvError> {
        self.check(actions.len())?;
        self.check(done.len())?;
        step_live(&mut self.envs, actions, done)
    }

    /// Episode metrics of every environment.
    pub fn metrics(&self) -> Vec<EpisodeMetrics> {
        self.envs.iter().map(Env::metrics).collect()
    }
}

/// Steps `envs[i]` with `actions[i]` where `done[i]` is false, in parallel
/// (None for the others): [`VecEnv::step_live`] and the evaluation
/// matrix's cells (`rl::matrix`, which holds its environments itself) step
/// their live environments with it. The three slices are as long as each
/// other (zipped: the shortest bounds).
pub fn step_live(
    envs: &mut [Env],
    actions: &[Target],
    done: &[bool],
) -> Result<Vec<Option<StepResult>>, EnvError> {
    envs.par_iter_mut()
        .zip(actions.par_iter())
        .zip(done.par_iter())
        .map(|((env, &a), &d)| if d { Ok(None) } else { env.step(a).map(Some) })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::congestion::ControllerKind;

    #[test]
    fn batch_equals_sequential_runs() {
        let config = EnvConfig {
            base: ControllerKind::Bbr,
            random_loss: 0.01,
            episode_us: Some(1_000_000),
            ..EnvConfig::default()
        };
        let windows: Vec<Arc<Schedule>> = (1..=3)
            .map(|k| Arc::new(Schedule::constant(k).expect("trace")))
            .collect();
        let seeds = [7, 8, 9];
        let mut batch = VecEnv::new(3, &config).expect("batch");
        assert!(matches!(
            batch.reset_all(&windows[..2], &seeds[..2]),
            Err(EnvError::BatchSize {
                expected: 3,
                got: 2
            })
        ));
        let first = batch.reset_all(&windows, &seeds).expect("reset");
        let actions = [Target::unlimited(); 3];
        let batched: Vec<StepResult> = (0..10)
            .flat_map(|_| batch.step_all(&actions).expect("step"))
            .collect();
        for i in 0..3 {
            let mut env = Env::new(config.clone()).expect("env");
            assert_eq!(
                env.reset(Arc::clone(&windows[i]), seeds[i]).expect("reset"),
                first[i]
            );
            for step in 0..10 {
                assert_eq!(env.step(actions[i]).expect("step"), batched[step * 3 + i]);
            }
        }
        assert_eq!(batch.metrics().len(), 3);
    }
}
