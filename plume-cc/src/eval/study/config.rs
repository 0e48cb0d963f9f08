//! The study's settings ([`StudyConfig`]) and the checks that refuse a
//! study before anything is trained.
//!
//! Why its own file: the settings are written into `study.json` and read by
//! every other part, and a study that cannot give an interval (one seed, no
//! budget) must fail at once rather than after hours of training.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::StudyError;
use crate::rl::config::SamplerChoice;

/// Settings of a study.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StudyConfig {
    /// The corpus: a scenario corpus or a folder of traces.
    pub corpus: PathBuf,
    /// Output folder.
    pub out: PathBuf,
    /// Seeds of every sampler and budget.
    pub seeds: Vec<u64>,
    /// Environment-step budgets.
    pub budgets: Vec<u64>,
    /// Samplers compared (uniform first: the reference).
    pub samplers: Vec<SamplerChoice>,
    /// Held-out evaluation windows per cluster, at most.
    pub per_cluster: usize,
    /// The competition rule in every run's action mapping, the fixed rule's
    /// included (`--competition-rule`); `None`: the default's mapping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub competition: Option<crate::policy::CompetitionRule>,
}

impl StudyConfig {
    pub(super) fn validate(&self) -> Result<(), StudyError> {
        if self.seeds.len() < 2 {
            return Err(StudyError::Config(format!(
                "need at least 2 seeds for an interval (5 recommended), got {}",
                self.seeds.len()
            )));
        }
        if self.budgets.is_empty() || self.budgets.contains(&0) {
            return Err(StudyError::Config(
                "budgets must be a non-empty list of positive step counts".into(),
            ));
        }
        if self.samplers.is_empty() {
            return Err(StudyError::Config("no sampler to study".into()));
        }
        if self.per_cluster == 0 {
            return Err(StudyError::Config(
                "--per-cluster must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_few_seeds_or_no_budget_is_refused() {
        let mut c = StudyConfig {
            corpus: PathBuf::new(),
            out: PathBuf::new(),
            seeds: vec![0],
            budgets: vec![100],
            samplers: vec![SamplerChoice::Uniform],
            per_cluster: 2,
            competition: None,
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("at least 2 seeds"));
        c.seeds = vec![0, 1];
        c.budgets.clear();
        assert!(c.validate().is_err());
    }
}
