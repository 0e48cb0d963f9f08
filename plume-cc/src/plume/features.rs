//! Candidate time-series features of a capacity window, and their
//! standardization.
//!
//! Plume's first stage describes every window by many cheap features in two
//! families, *level* (central tendency: mean, quantiles, spectral centroid...)
//! and *variability* (spread and dynamics: standard deviation,
//! autocorrelation, change rates, outages...), then keeps the few that
//! separate the corpus. This module only computes; it never selects.
use std::sync::Arc;

use ndarray::{Array1, Array2, ArrayView1, Axis};
use rayon::prelude::*;
use realfft::{RealFftPlanner, RealToComplex};
use serde::{Deserialize, Serialize};

/// The two feature families that critical-feature selection keeps balanced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// How much capacity there is (central tendency).
    Level,
    /// How much and how fast it moves (spread and dynamics).
    Variability,
    /// The path around the capacity (min RTT, buffer, loss, competing
    /// flows, ACK path): only in a scenario corpus
    /// ([`crate::trace::scenario_corpus`]).
    Path,
}

impl Family {
    /// Every family, in the order selection fills its quotas.
    pub const ALL: [Family; 3] = [Family::Level, Family::Variability, Family::Path];
}

/// One candidate feature: a stable name (used in reports and saved models)
/// and its family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureDef {
    /// Stable identifier, e.g. `"q10"`.
    pub name: &'static str,
    /// Its family.
    pub family: Family,
}

const fn level(name: &'static str) -> FeatureDef {
    FeatureDef {
        name,
        family: Family::Level,
    }
}
const fn var(name: &'static str) -> FeatureDef {
    FeatureDef {
        name,
        family: Family::Variability,
    }
}

/// The candidate features, in the column order of [`FeatureExtractor::extract`].
pub const FEATURES: [FeatureDef; 26] = [
    level("mean"),
    level("median"),
    level("trimmed_mean_10"),
    level("q05"),
    level("q10"),
    level("q25"),
    level("q75"),
    level("q90"),
    level("q95"),
    level("max"),
    level("fft_centroid"),
    level("fft_variance"),
    level("fft_low_band_share"),
    var("std"),
    var("variation_coefficient"),
    var("iqr_over_median"),
    var("autocorr_lag1"),
    var("autocorr_lag5"),
    var("autocorr_lag10"),
    var("autocorr_lag50"),
    var("mean_abs_change"),
    var("relative_mean_abs_change"),
    var("outage_fraction"),
    var("longest_outage_s"),
    var("outages_per_minute"),
    var("below_half_mean_fraction"),
];

const fn path(name: &'static str) -> FeatureDef {
    FeatureDef {
        name,
        family: Family::Path,
    }
}

/// The path features of a scenario corpus, in the column order of
/// [`path_features`].
pub const PATH_FEATURES: [FeatureDef; 5] = [
    path("path_rtt_log"),
    path("path_buffer_bdp_log"),
    path("path_loss_rate"),
    path("path_competitors"),
    path("path_ack_trace"),
];

/// An unlimited buffer counts as this many BDPs in `path_buffer_bdp_log`.
pub const UNLIMITED_BUFFER_BDP: f64 = 64.0;

/// The [`PATH_FEATURES`] of each window's path (windows x 5): ln of the min
/// RTT in ms, ln of the buffer in BDPs (unlimited: [`UNLIMITED_BUFFER_BDP`]),
/// the loss rate, the number of competing flows, and 1 when the ACKs cross
/// the trace. Logs because RTTs and buffers span orders of magnitude and
/// a mixture sees distances.
pub fn path_features(paths: &[&crate::trace::scenario_corpus::PathRecord]) -> Array2<f64> {
    let mut x = Array2::zeros((paths.len(), PATH_FEATURES.len()));
    for (i, p) in paths.iter().enumerate() {
        x[[i, 0]] = p.min_rtt_ms.max(0.1).ln();
        x[[i, 1]] = p.buffer_bdp.unwrap_or(UNLIMITED_BUFFER_BDP).max(1e-3).ln();
        x[[i, 2]] = p.loss_rate;
        x[[i, 3]] = p.competitors.len() as f64;
        x[[i, 4]] = if p.ack_trace { 1.0 } else { 0.0 };
    }
    x
}

/// A bin counts as an outage when its capacity is at most this (Mbps): no
/// delivery opportunity in the bin.
pub const OUTAGE_MBPS: f64 = 1e-9;

/// Computes [`FEATURES`] for capacity windows of a fixed bin width.
///
/// Holds FFT plans so that thousands of windows of the same length reuse them;
/// `Sync`, so windows are processed in parallel.
#[derive(Clone)]
pub struct FeatureExtractor {
    bin_ms: u64,
    planner: Arc<std::sync::Mutex<RealFftPlanner<f64>>>,
}

impl std::fmt::Debug for FeatureExtractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeatureExtractor")
            .field("bin_ms", &self.bin_ms)
            .finish_non_exhaustive()
    }
}

impl FeatureExtractor {
    /// An extractor for windows binned at `bin_ms` (used to express outage
    /// lengths in seconds and rates per minute).
    pub fn new(bin_ms: u64) -> Self {
        Self {
            bin_ms: bin_ms.max(1),
            planner: Arc::new(std::sync::Mutex::new(RealFftPlanner::new())),
        }
    }

    fn plan(&self, n: usize) -> Arc<dyn RealToComplex<f64>> {
        match self.planner.lock() {
            Ok(mut p) => p.plan_fft_forward(n),
            Err(poisoned) => poisoned.into_inner().plan_fft_forward(n),
        }
    }

    /// The feature vector of one capacity series (Mbps per bin). Always
    /// finite: undefined ratios (zero mean, zero variance) are 0.
    pub fn extract_one(&self, x: &[f64]) -> Vec<f64> {
        let n = x.len();
        if n == 0 {
            return vec![0.0; FEATURES.len()];
        }
        let nf = n as f64;
        let mean = x.iter().sum::<f64>() / nf;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / nf;
        let std = var.sqrt();
        let mut sorted = x.to_vec();
        sorted.sort_by(f64::total_cmp);
        // The project's one convention; an empty window's quantiles are 0.
        let q = |p: f64| {
            if sorted.is_empty() {
                0.0
            } else {
                crate::stats::quantile(&sorted, p)
            }
        };
        let median = q(0.5);
        let trim = n / 10;
        let trimmed = &sorted[trim..n - trim];
        let trimmed_mean = trimmed.iter().sum::<f64>() / trimmed.len().max(1) as f64;
        let ratio = |a: f64, b: f64| if b.abs() > 1e-12 { a / b } else { 0.0 };
        let autocorr = |lag: usize| {
            if lag >= n || var <= 1e-12 {
                return 0.0;
            }
            let s: f64 = (0..n - lag)
                .map(|i| (x[i] - mean) * (x[i + lag] - mean))
                .sum();
            s / ((n - lag) as f64 * var)
        };
        let mean_abs_change = if n > 1 {
            x.windows(2).map(|w| (w[1] - w[0]).abs()).sum::<f64>() / (nf - 1.0)
        } else {
            0.0
        };
        let (fft_centroid, fft_variance, fft_low) = self.fft_aggregates(x);
        let mut outage_bins = 0usize;
        let mut longest = 0usize;
        let mut outages = 0usize;
        let mut run = 0usize;
        for &v in x {
            if v <= OUTAGE_MBPS {
                outage_bins += 1;
                run += 1;
                if run == 1 {
                    outages += 1;
                }
                longest = longest.max(run);
            } else {
                run = 0;
            }
        }
        let bin_s = self.bin_ms as f64 / 1000.0;
        let minutes = nf * bin_s / 60.0;
        let below_half = x.iter().filter(|&&v| v < 0.5 * mean).count() as f64 / nf;
        vec![
            mean,
            median,
            trimmed_mean,
            q(0.05),
            q(0.10),
            q(0.25),
            q(0.75),
            q(0.90),
            q(0.95),
            sorted[n - 1],
            fft_centroid,
            fft_variance,
            fft_low,
            std,
            ratio(std, mean),
            ratio(q(0.75) - q(0.25), median),
            autocorr(1),
            autocorr(5),
            autocorr(10),
            autocorr(50),
            mean_abs_change,
            ratio(mean_abs_change, mean),
            outage_bins as f64 / nf,
            longest as f64 * bin_s,
            ratio(outages as f64, minutes),
            below_half,
        ]
    }

    /// tsfresh-style aggregates of the amplitude spectrum (DC included),
    /// seen as a distribution over frequency index: centroid and variance
    /// (in cycles per second), plus the share of amplitude below 1 Hz.
    fn fft_aggregates(&self, x: &[f64]) -> (f64, f64, f64) {
        let n = x.len();
        if n < 2 {
            return (0.0, 0.0, 1.0);
        }
        let plan = self.plan(n);
        let mut input = x.to_vec();
        let mut spectrum = plan.make_output_vec();
        if plan.process(&mut input, &mut spectrum).is_err() {
            return (0.0, 0.0, 1.0);
        }
        let hz_per_index = 1000.0 / (n as f64 * self.bin_ms as f64);
        let amp: Vec<f64> = spectrum.iter().map(|c| c.norm()).collect();
        let total: f64 = amp.iter().sum();
        if total <= 1e-12 {
            return (0.0, 0.0, 1.0);
        }
        let centroid = amp
            .iter()
            .enumerate()
            .map(|(i, a)| i as f64 * a)
            .sum::<f64>()
            / total;
        let variance = amp
            .iter()
            .enumerate()
            .map(|(i, a)| (i as f64 - centroid).powi(2) * a)
            .sum::<f64>()
            / total;
        let low = amp
            .iter()
            .enumerate()
            .filter(|(i, _)| *i as f64 * hz_per_index < 1.0)
            .map(|(_, a)| a)
            .sum::<f64>()
            / total;
        (
            centroid * hz_per_index,
            variance * hz_per_index * hz_per_index,
            low,
        )
    }

    /// The raw (unstandardized) feature matrix, one row per series, computed
    /// in parallel.
    pub fn extract(&self, series: &[&[f64]]) -> Array2<f64> {
        let rows: Vec<Vec<f64>> = series.par_iter().map(|s| self.extract_one(s)).collect();
        let mut out = Array2::zeros((rows.len(), FEATURES.len()));
        for (mut row, values) in out.axis_iter_mut(Axis(0)).zip(rows) {
            row.assign(&Array1::from(values));
        }
        out
    }
}

/// Per-feature mean and standard deviation of the corpus, so the same
/// transform can be applied to new windows (saved inside the clustering model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    /// Column means.
    pub mean: Vec<f64>,
    /// Column standard deviations (population); 1 where a column is constant.
    pub std: Vec<f64>,
}

impl Standardizer {
    /// Fits the column statistics of `x`.
    pub fn fit(x: &Array2<f64>) -> Self {
        let n = x.nrows().max(1) as f64;
        let mean: Vec<f64> = x.axis_iter(Axis(1)).map(|c| c.sum() / n).collect();
        let std = x
            .axis_iter(Axis(1))
            .zip(&mean)
            .map(|(c, m)| {
                let s = (c.iter().map(|v| (v - m).powi(2)).sum::<f64>() / n).sqrt();
                if s > 1e-12 {
                    s
                } else {
                    1.0
                }
            })
            .collect();
        Self { mean, std }
    }

    /// `(x - mean) / std`, column by column.
    pub fn transform(&self, x: &Array2<f64>) -> Array2<f64> {
        let mut out = x.clone();
        for (j, mut col) in out.axis_iter_mut(Axis(1)).enumerate() {
            let (m, s) = (
                self.mean.get(j).copied().unwrap_or(0.0),
                self.std.get(j).copied().unwrap_or(1.0),
            );
            col.mapv_inplace(|v| (v - m) / s);
        }
        out
    }

    /// Standardizes one row.
    pub fn transform_row(&self, x: ArrayView1<f64>) -> Array1<f64> {
        Array1::from_iter(x.iter().enumerate().map(|(j, v)| {
            (v - self.mean.get(j).copied().unwrap_or(0.0)) / self.std.get(j).copied().unwrap_or(1.0)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(name: &str) -> usize {
        FEATURES.iter().position(|f| f.name == name).unwrap()
    }

    #[test]
    fn at_least_20_features_in_both_families() {
        assert!(FEATURES.len() >= 20);
        let level = FEATURES
            .iter()
            .filter(|f| f.family == Family::Level)
            .count();
        assert!(level >= 8 && FEATURES.len() - level >= 8);
        let mut names: Vec<_> = FEATURES.iter().map(|f| f.name).collect();
        names.dedup();
        assert_eq!(names.len(), FEATURES.len());
    }

    #[test]
    fn known_values() {
        let fx = FeatureExtractor::new(100);
        // 10 s at 100 ms: 2 s outage then 8 s at 10 Mbps.
        let mut x = vec![0.0; 20];
        x.extend(std::iter::repeat_n(10.0, 80));
        let f = fx.extract_one(&x);
        assert!((f[idx("mean")] - 8.0).abs() < 1e-12);
        assert!((f[idx("median")] - 10.0).abs() < 1e-12);
        assert!((f[idx("outage_fraction")] - 0.2).abs() < 1e-12);
        assert!((f[idx("longest_outage_s")] - 2.0).abs() < 1e-12);
        assert!((f[idx("std")] - 4.0).abs() < 1e-12);
        assert!((f[idx("variation_coefficient")] - 0.5).abs() < 1e-12);
        assert!((f[idx("mean_abs_change")] - 10.0 / 99.0).abs() < 1e-12);
        assert!((f[idx("outages_per_minute")] - 6.0).abs() < 1e-9);
        assert!(f[idx("autocorr_lag1")] > 0.9);
        // Constant: no variability, all finite.
        let c = fx.extract_one(&[5.0; 64]);
        assert!(c.iter().all(|v| v.is_finite()));
        assert_eq!(c[idx("std")], 0.0);
        assert_eq!(c[idx("fft_centroid")], 0.0);
        assert!(fx.extract_one(&[]).iter().all(|v| *v == 0.0));
        assert!(fx.extract_one(&[0.0; 10]).iter().all(|v| v.is_finite()));
    }

    #[test]
    fn fft_centroid_tracks_oscillation_frequency() {
        let fx = FeatureExtractor::new(100);
        let wave = |hz: f64| -> Vec<f64> {
            (0..300)
                .map(|i| 5.0 + 4.0 * (2.0 * std::f64::consts::PI * hz * i as f64 * 0.1).sin())
                .collect()
        };
        let slow = fx.extract_one(&wave(0.2));
        let fast = fx.extract_one(&wave(2.0));
        assert!(fast[idx("fft_centroid")] > slow[idx("fft_centroid")]);
        assert!(slow[idx("fft_low_band_share")] > fast[idx("fft_low_band_share")]);
    }

    #[test]
    fn standardizer_zero_mean_unit_variance() {
        let x = ndarray::array![[1.0, 3.0], [3.0, 3.0], [5.0, 3.0]];
        let s = Standardizer::fit(&x);
        let z = s.transform(&x);
        assert!((z.column(0).sum()).abs() < 1e-12);
        assert!((z.column(0).mapv(|v| v * v).sum() / 3.0 - 1.0).abs() < 1e-12);
        assert!(z.column(1).iter().all(|v| *v == 0.0));
        assert_eq!(s.transform_row(x.row(0)), z.row(0));
    }
}
