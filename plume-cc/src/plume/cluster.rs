//! Choosing the number of clusters (Plume stage 2) and the saved clustering
//! model.
//!
//! For every k in a range, fit the best-of-many-starts diagonal mixture on
//! the selected features, score its hard labels by silhouette and reject k
//! whose smallest cluster is below a minimum share of the corpus. The winner
//! becomes a [`ClusteringModel`]: everything a trainer needs to give any
//! window its soft cluster memberships.
use std::path::Path;

use linfa::{metrics::SilhouetteScore, DatasetBase};
use ndarray::{Array1, Array2, ArrayView2, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{
    features::{FeatureExtractor, Standardizer, FEATURES},
    gmm::{hard_labels, DiagGmm, GmmError, GmmParams},
};
use crate::trace::WindowSpec;

/// Settings of the k search.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClusterParams {
    /// Smallest k tried.
    pub k_min: usize,
    /// Largest k tried (capped at one less than the number of windows).
    pub k_max: usize,
    /// A k is rejected when its smallest cluster holds less than this share
    /// of the windows.
    pub min_cluster_fraction: f64,
    /// Mixture settings (starts per k, ...).
    pub gmm: GmmParams,
}

impl Default for ClusterParams {
    fn default() -> Self {
        Self {
            k_min: 6,
            k_max: 15,
            min_cluster_fraction: 0.02,
            gmm: GmmParams::default(),
        }
    }
}

/// How one k scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KScore {
    /// Number of components.
    pub k: usize,
    /// Silhouette of the hard labels (None when fewer than 2 clusters are used).
    pub silhouette: Option<f64>,
    /// Windows in the smallest cluster (0 if a component got none).
    pub smallest_cluster: usize,
    /// Mean log-likelihood of the best start.
    pub log_likelihood: f64,
    /// Whether the smallest cluster meets the minimum share.
    pub valid: bool,
}

/// Silhouette of `labels` over rows of `x` (linfa), or None when fewer than
/// two clusters are present.
pub fn silhouette(x: ArrayView2<f64>, labels: &[usize]) -> Option<f64> {
    let mut used: Vec<usize> = labels.to_vec();
    used.sort_unstable();
    used.dedup();
    if used.len() < 2 || used.len() >= labels.len() {
        return None;
    }
    let data = DatasetBase::new(x.to_owned(), Array1::from(labels.to_vec()));
    data.silhouette_score().ok().filter(|s| s.is_finite())
}

/// Fits every k of the range in parallel and picks the valid k with the best
/// silhouette (if none is valid: the k whose smallest cluster is largest).
pub fn choose_k(
    x: ArrayView2<f64>,
    params: &ClusterParams,
    seed: u64,
    on_k: &(dyn Fn(usize) + Sync),
) -> Result<(DiagGmm, Vec<KScore>), GmmError> {
    let n = x.nrows();
    let k_max = params.k_max.min(n.saturating_sub(1));
    let k_min = params.k_min.clamp(2, k_max.max(2));
    if n < 3 || k_min > k_max {
        return Err(GmmError::BadK { k: params.k_min, n });
    }
    let min_size = (params.min_cluster_fraction * n as f64).ceil() as usize;
    let fits: Vec<Result<(DiagGmm, KScore), GmmError>> = (k_min..=k_max)
        .into_par_iter()
        .map(|k| {
            let gmm = DiagGmm::fit(x, k, &params.gmm, seed.wrapping_add(k as u64 * 7919))?;
            let labels = gmm.predict(x)?;
            let mut sizes = vec![0usize; k];
            labels.iter().for_each(|&l| sizes[l] += 1);
            let smallest = sizes.iter().copied().min().unwrap_or(0);
            let score = KScore {
                k,
                silhouette: silhouette(x, &labels),
                smallest_cluster: smallest,
                log_likelihood: gmm.log_likelihood,
                valid: smallest >= min_size.max(1),
            };
            on_k(k);
            Ok((gmm, score))
        })
        .collect();
    let fits: Vec<(DiagGmm, KScore)> = fits.into_iter().collect::<Result<_, _>>()?;
    let pick = fits
        .iter()
        .enumerate()
        .filter(|(_, (_, s))| s.valid && s.silhouette.is_some())
        .max_by(|a, b| {
            let (sa, sb) = (
                a.1 .1.silhouette.unwrap_or(-1.0),
                b.1 .1.silhouette.unwrap_or(-1.0),
            );
            sa.total_cmp(&sb).then(b.0.cmp(&a.0))
        })
        .or_else(|| {
            fits.iter().enumerate().max_by(|a, b| {
                a.1 .1
                    .smallest_cluster
                    .cmp(&b.1 .1.smallest_cluster)
                    .then(b.0.cmp(&a.0))
            })
        })
        .map(|(i, _)| i)
        .unwrap_or(0);
    let scores = fits.iter().map(|(_, s)| s.clone()).collect();
    let gmm = fits.into_iter().nth(pick).map(|(g, _)| g);
    gmm.map(|g| (g, scores))
        .ok_or(GmmError::BadK { k: k_min, n })
}

/// Why a saved clustering model cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The model file.
        path: std::path::PathBuf,
        /// The reason.
        source: std::io::Error,
    },
    /// The file is not a valid model.
    #[error("{path}:{line}: not a clustering model: {message}")]
    Format {
        /// The model file.
        path: std::path::PathBuf,
        /// Line of the JSON error.
        line: usize,
        /// What was wrong.
        message: String,
    },
    /// The model refers to a feature this build does not compute, or its
    /// arrays disagree in size.
    #[error("clustering model is inconsistent: {0}")]
    Inconsistent(String),
    /// Scoring failed.
    #[error(transparent)]
    Gmm(#[from] GmmError),
}

/// The serializable description of a clustering: which features, how they
/// are standardized, and the mixture. A trainer loads it to assign soft
/// memberships to any window cut with the same [`WindowSpec`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusteringModel {
    /// How the windows were cut and binned (features depend on the bin width).
    pub window: WindowSpec,
    /// Names of the selected features (in [`FEATURES`]), in column order.
    pub features: Vec<String>,
    /// Standardization of the selected features (corpus mean and std).
    pub standardizer: Standardizer,
    /// The mixture over the standardized selected features.
    pub gmm: DiagGmm,
}

impl ClusteringModel {
    /// Column indices (into [`FEATURES`]) of the model's features.
    pub fn feature_indices(&self) -> Result<Vec<usize>, ModelError> {
        self.features
            .iter()
            .map(|name| {
                FEATURES
                    .iter()
                    .position(|f| f.name == name)
                    .ok_or_else(|| ModelError::Inconsistent(format!("unknown feature {name:?}")))
            })
            .collect()
    }

    /// The standardized selected features of capacity series binned at
    /// `self.window.bin_ms` (what the mixture scores; also the dynamic
    /// sampler's regressor input).
    pub fn features_of(&self, series: &[&[f64]]) -> Result<Array2<f64>, ModelError> {
        let idx = self.feature_indices()?;
        if self.standardizer.mean.len() != idx.len() || self.standardizer.std.len() != idx.len() {
            return Err(ModelError::Inconsistent(
                "standardizer size differs from feature count".into(),
            ));
        }
        let raw = FeatureExtractor::new(self.window.bin_ms).extract(series);
        Ok(self.standardizer.transform(&raw.select(Axis(1), &idx)))
    }

    /// Soft memberships (rows sum to 1) of capacity series binned at
    /// `self.window.bin_ms`.
    pub fn memberships(&self, series: &[&[f64]]) -> Result<Array2<f64>, ModelError> {
        let z = self.features_of(series)?;
        Ok(self.gmm.predict_proba(z.view())?)
    }

    /// Hard cluster labels of capacity series.
    pub fn labels(&self, series: &[&[f64]]) -> Result<Vec<usize>, ModelError> {
        Ok(hard_labels(&self.memberships(series)?))
    }

    /// Writes the model as pretty JSON.
    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        let text = serde_json::to_string_pretty(self).map_err(|e| ModelError::Format {
            path: path.to_path_buf(),
            line: 0,
            message: e.to_string(),
        })?;
        std::fs::write(path, text).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads a model written by [`Self::save`] (or the `model` field of an
    /// analysis report saved on its own).
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let model: Self = serde_json::from_str(&text).map_err(|e| ModelError::Format {
            path: path.to_path_buf(),
            line: e.line(),
            message: e.to_string(),
        })?;
        model.feature_indices()?;
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, Normal};

    #[test]
    fn picks_the_true_number_of_well_separated_clusters() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let z = Normal::new(0.0, 0.3).unwrap();
        let centers = [[0.0, 0.0], [4.0, 0.0], [0.0, 4.0], [4.0, 4.0]];
        let x = Array2::from_shape_fn((160, 2), |(i, j)| centers[i % 4][j] + z.sample(&mut rng));
        let params = ClusterParams {
            k_min: 2,
            k_max: 7,
            min_cluster_fraction: 0.05,
            gmm: GmmParams {
                n_init: 5,
                ..GmmParams::default()
            },
        };
        let (gmm, scores) = choose_k(x.view(), &params, 1, &|_| {}).unwrap();
        assert_eq!(gmm.k(), 4, "{scores:?}");
        assert_eq!(scores.len(), 6);
        let (again, _) = choose_k(x.view(), &params, 1, &|_| {}).unwrap();
        assert_eq!(gmm, again);
    }

    #[test]
    fn model_load_errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("model.json");
        std::fs::write(&p, "{\n  \"window\": 3\n}").unwrap();
        let err = ClusteringModel::load(&p).unwrap_err().to_string();
        assert!(err.contains("model.json:2:"), "{err}");
        assert!(ClusteringModel::load(&dir.path().join("none.json")).is_err());
    }
}
