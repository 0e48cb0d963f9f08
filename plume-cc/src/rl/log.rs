//! What a run reports: one [`LogRow`] per PPO iteration (written as
//! `log.csv` and `log.json`, drawn by [`super::plot`]), the caller's
//! [`Progress`], and the output-file helpers.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ppo::UpdateStats;

use super::config::TrainError;

/// One line of the training log.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LogRow {
    /// PPO iteration (1-based).
    pub iteration: usize,
    /// Environment steps so far.
    pub env_steps: u64,
    /// Mean reward per step of the rollout.
    pub rollout_reward: f64,
    /// Episodes finished in this iteration.
    pub episodes: usize,
    /// Mean episode reward of those episodes (NaN if none; `null` in JSON).
    #[serde(deserialize_with = "nan_if_null")]
    pub episode_reward: f64,
    /// Their mean throughput share of capacity.
    #[serde(deserialize_with = "nan_if_null")]
    pub throughput_share: f64,
    /// Their mean queueing delay over min RTT.
    #[serde(deserialize_with = "nan_if_null")]
    pub delay_ratio: f64,
    /// Mean episode reward per cluster (NaN where no episode ended).
    #[serde(deserialize_with = "nans_if_null")]
    pub cluster_reward: Vec<f64>,
    /// Sampler's cluster targets (empty for uniform).
    pub cluster_targets: Vec<f64>,
    /// PPO statistics.
    pub update: UpdateStats,
}

fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

fn nans_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    Ok(Vec::<Option<f64>>::deserialize(d)?
        .into_iter()
        .map(|v| v.unwrap_or(f64::NAN))
        .collect())
}

/// Progress of a run, for the caller's display.
pub trait Progress {
    /// After every iteration.
    fn iteration(&mut self, row: &LogRow, total_iterations: usize);
    /// A free-form status line.
    fn message(&mut self, text: &str);
}

pub(crate) fn out_err(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Output {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| out_err(d, e))?;
    }
    std::fs::write(path, bytes).map_err(|e| out_err(path, e))
}

pub(crate) fn write_logs(out: &Path, log: &[LogRow]) -> Result<(), TrainError> {
    let mut csv = String::from(
        "iteration,env_steps,rollout_reward,episodes,episode_reward,throughput_share,delay_ratio,policy_loss,value_loss,entropy,approx_kl,clip_fraction,lr,cluster_reward,cluster_targets\n",
    );
    for r in log {
        let join = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.4}"))
                .collect::<Vec<_>>()
                .join(";")
        };
        csv.push_str(&format!(
            "{},{},{:.5},{},{:.5},{:.5},{:.5},{:.5},{:.5},{:.5},{:.6},{:.4},{:.6},{},{}\n",
            r.iteration,
            r.env_steps,
            r.rollout_reward,
            r.episodes,
            r.episode_reward,
            r.throughput_share,
            r.delay_ratio,
            r.update.policy_loss,
            r.update.value_loss,
            r.update.entropy,
            r.update.approx_kl,
            r.update.clip_fraction,
            r.update.lr,
            join(&r.cluster_reward),
            join(&r.cluster_targets)
        ));
    }
    write_file(&out.join("log.csv"), csv.as_bytes())?;
    write_file(
        &out.join("log.json"),
        &serde_json::to_vec(log).map_err(|e| out_err(out, e))?,
    )
}
