//! Many environments stepped in parallel with rayon, for training: each
//! environment is independent (own network, own seed), so the batch result is
//! the same whatever the thread count.

use std::sync::Arc;

use rayon::prelude::*;

use crate::policy::observation::Observation;

use super::env::{Action, Env, EnvConfig, EpisodeMetrics, StepResult};
use super::{CapacityTrace, SimError};

/// A batch of environments sharing one configuration.
#[derive(Debug)]
pub struct VecEnv {
    envs: Vec<Env>,
}

impl VecEnv {
    /// `count` environments of `config`.
    pub fn new(count: usize, config: &EnvConfig) -> Result<Self, SimError> {
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
    pub fn envs_mut(&mut self) -> &mut [Env] {
        &mut self.envs
    }

    fn check(&self, got: usize) -> Result<(), SimError> {
        if got == self.envs.len() {
            Ok(())
        } else {
            Err(SimError::BatchSize {
                expected: self.envs.len(),
                got,
            })
        }
    }

    /// Resets environment `i` on `windows[i]` with `seeds[i]`, in parallel.
    pub fn reset_all(
        &mut self,
        windows: &[Arc<CapacityTrace>],
        seeds: &[u64],
    ) -> Result<Vec<Observation>, SimError> {
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
    pub fn step_all(&mut self, actions: &[Action]) -> Result<Vec<StepResult>, SimError> {
        self.check(actions.len())?;
        self.envs
            .par_iter_mut()
            .zip(actions.par_iter())
            .map(|(env, &a)| env.step(a))
            .collect()
    }

    /// Episode metrics of every environment.
    pub fn metrics(&self) -> Vec<EpisodeMetrics> {
        self.envs.iter().map(Env::metrics).collect()
    }
}
