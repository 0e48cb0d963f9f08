//! Gaussian mixture with diagonal covariance, fitted by EM.
//!
//! Plume clusters windows with a diagonal-covariance mixture (k-means++
//! initialisation, best log-likelihood over many random starts).
//! linfa-clustering 0.8.1's `GaussianMixtureModel` only offers full
//! covariance, which is ill-conditioned for ~200 windows, 10-25 features and
//! up to 15 components, so this module replaces it with a small diagonal EM:
//! log-sum-exp responsibilities and a variance floor, both steps written as
//! matrix products over `[x*x, x]`. The k-means++ seeding
//! is the same k-means++ as linfa-clustering's `KMeansInit::KMeansPlusPlus`,
//! written here with GEMM distances
//! because it runs once per start (linfa's `KMeans` is kept as an option,
//! `GmmParams::linfa_init`, and the two are tested against each other).
use linfa::{
    traits::{Fit, Predict},
    DatasetBase,
};
use linfa_clustering::{KMeans, KMeansInit};
use multiversion::multiversion;
use ndarray::{linalg::general_mat_mul, Array1, Array2, ArrayView1, ArrayView2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Why a mixture could not be fitted or used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GmmError {
    /// Asked for more components than samples, or for none.
    #[error("gaussian mixture: cannot fit {k} components to {n} samples")]
    BadK {
        /// Requested components.
        k: usize,
        /// Available samples.
        n: usize,
    },
    /// The data contains NaN or infinite values.
    #[error("gaussian mixture: input has non-finite values (row {row})")]
    NonFinite {
        /// First offending row.
        row: usize,
    },
    /// Rows to score have a different number of features than the model.
    #[error("gaussian mixture: model has {model} features, input has {input}")]
    Dimension {
        /// Features of the model.
        model: usize,
        /// Features of the input.
        input: usize,
    },
    /// linfa's k-means++ seeding refused the data.
    #[error("gaussian mixture: k-means++ initialisation failed: {0}")]
    Init(String),
}

/// Fitting settings (defaults follow scikit-learn's `GaussianMixture`, except
/// the larger variance floor, see [`GmmParams::var_floor`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GmmParams {
    /// Maximum EM iterations per start.
    pub max_iter: usize,
    /// Stop when the mean log-likelihood improves by less than this.
    pub tol: f64,
    /// Added to every variance; on standardized features 1e-3 keeps a
    /// component from collapsing onto a handful of identical windows.
    pub var_floor: f64,
    /// Random starts; the best final log-likelihood wins.
    pub n_init: usize,
    /// Lloyd iterations after k-means++ seeding (sklearn's "kmeans" init runs
    /// to convergence; a few are enough here).
    pub kmeans_iters: u64,
    /// Seed with linfa's `KMeans` (k-means++ init + Lloyd) instead of the
    /// built-in k-means++; same method, about 3x slower per start here.
    pub linfa_init: bool,
}

impl Default for GmmParams {
    fn default() -> Self {
        Self {
            max_iter: 100,
            tol: 1e-3,
            var_floor: 1e-3,
            n_init: 75,
            kmeans_iters: 3,
            linfa_init: false,
        }
    }
}

/// A fitted diagonal Gaussian mixture; serializable so a trainer can assign
/// soft memberships to new windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiagGmm {
    /// Mixing weights (sum to 1), one per component.
    pub weights: Vec<f64>,
    /// Component means, `k` rows of `d` values.
    pub means: Vec<Vec<f64>>,
    /// Component variances (diagonal), `k` rows of `d` values.
    pub variances: Vec<Vec<f64>>,
    /// Mean log-likelihood per sample on the training data.
    pub log_likelihood: f64,
    /// Whether EM converged before `max_iter`.
    pub converged: bool,
}

const LN_2PI: f64 = 1.837_877_066_409_345_3;

fn check_finite(x: ArrayView2<f64>) -> Result<(), GmmError> {
    match x
        .axis_iter(Axis(0))
        .position(|r| r.iter().any(|v| !v.is_finite()))
    {
        Some(row) => Err(GmmError::NonFinite { row }),
        None => Ok(()),
    }
}

/// The data in the form EM works on: `z = [x*x, x, 1]` (n x 2d+1). With it
/// both EM steps are matrix products (matrixmultiply picks its AVX2/FMA
/// kernels at run time): the log-densities are `z` times the coefficients of
/// [`Linear`], and the responsibility-weighted sums of squares, of features
/// and of weights are the responsibilities times `z`. Built once per data set
/// and shared by every start.
struct Design {
    /// Features per row.
    d: usize,
    /// `n x 2d+1`: squared features, features, then a column of ones.
    z: Array2<f64>,
}

impl Design {
    fn new(x: ArrayView2<f64>) -> Self {
        let (n, d) = x.dim();
        let mut z = Array2::zeros((n, 2 * d + 1));
        for (row, mut out) in x.axis_iter(Axis(0)).zip(z.axis_iter_mut(Axis(0))) {
            for (j, &v) in row.iter().enumerate() {
                out[j] = v * v;
                out[d + j] = v;
            }
            out[2 * d] = 1.0;
        }
        Self { d, z }
    }

    fn n(&self) -> usize {
        self.z.nrows()
    }
}

/// A diagonal mixture written so that `ln w_c + ln N(x | c)` is
/// `z . coef_c`: expanding `(x - mu)^2 / var` gives `-0.5 / var` (the
/// coefficients of the squared features), `mu / var` (of the features) and
/// a constant per component, `ln w_c - 0.5 (d ln 2pi + sum ln var_c +
/// sum mu_c^2 / var_c)` (of the ones).
struct Linear {
    /// `2d+1 x k`.
    coef: Array2<f64>,
}

impl Linear {
    fn new(weights: ArrayView1<f64>, means: ArrayView2<f64>, variances: ArrayView2<f64>) -> Self {
        let (k, d) = means.dim();
        let mut coef = Array2::zeros((2 * d + 1, k));
        for c in 0..k {
            let mut log_det = 0.0;
            let mut mu_p_mu = 0.0;
            for j in 0..d {
                let (mu, var) = (means[[c, j]], variances[[c, j]]);
                let p = 1.0 / var;
                coef[[j, c]] = -0.5 * p;
                coef[[d + j, c]] = mu * p;
                log_det += var.ln();
                mu_p_mu += mu * mu * p;
            }
            coef[[2 * d, c]] = weights[c].max(f64::MIN_POSITIVE).ln()
                - 0.5 * (d as f64 * LN_2PI + log_det + mu_p_mu);
        }
        Self { coef }
    }
}

/// E step: fills `resp` (n x k) with responsibilities (rows sum to 1) and
/// returns the mean log-likelihood.
fn e_step(design: &Design, model: &Linear, resp: &mut Array2<f64>) -> f64 {
    general_mat_mul(1.0, &design.z, &model.coef, 0.0, resp);
    let k = resp.ncols();
    match resp.as_slice_mut() {
        Some(flat) if k > 0 => normalize_rows(flat, k) / design.n().max(1) as f64,
        _ => f64::NAN,
    }
}

/// Turns each row of log-densities (row-major, `k` per row) into
/// responsibilities and returns the sum over rows of `log sum_c exp(row_c)`.
/// Written as flat passes (row maxima, one long exp pass, row sums) so that
/// the exp pass vectorizes; compiled for AVX2+FMA too, picked at run time.
#[multiversion(targets("x86_64+avx2+fma"))]
fn normalize_rows(flat: &mut [f64], k: usize) -> f64 {
    let mut total = 0.0;
    for row in flat.chunks_exact_mut(k) {
        let best = row.iter().fold(f64::NEG_INFINITY, |m, v| m.max(*v));
        row.iter_mut().for_each(|v| *v -= best);
        total += best;
    }
    // Below e^-60 a responsibility is 0 to double precision relative to the
    // best component (which contributes 1).
    for v in flat.iter_mut() {
        let e = exp_nonpositive(v.max(-60.0));
        *v = if *v > -60.0 { e } else { 0.0 };
    }
    // Product of the rows' normalizers (each in [1, k]), folded into `total`
    // by one logarithm per many rows instead of one per row.
    let mut product = 1.0;
    for row in flat.chunks_exact_mut(k) {
        let sum: f64 = row.iter().sum();
        let inv = 1.0 / sum;
        row.iter_mut().for_each(|v| *v *= inv);
        product *= sum;
        if product > 1e200 {
            total += product.ln();
            product = 1.0;
        }
    }
    total + product.ln()
}

/// `e^x` for `x` in `[-60, 0]`, within a few ulp of libm's, inlined (libm's
/// `exp` was a fifth of the EM time). Cody-Waite reduction `x = n ln 2 + r` with
/// `|r| <= ln 2 / 2`, then `e^r` by its Taylor series to degree 13 (the
/// next term is below 5e-18) and `2^n` built from its exponent bits.
#[inline(always)]
fn exp_nonpositive(x: f64) -> f64 {
    // Adding 1.5 * 2^52 rounds to an integer that sits in the low mantissa bits.
    const SHIFTER: f64 = 6_755_399_441_055_744.0;
    // ln 2 split so that `n * LN2_HI` is exact for |n| < 2^20 (fdlibm's values).
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
    let t = x * std::f64::consts::LOG2_E + SHIFTER;
    let n = t - SHIFTER;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let mut p = INV_FACTORIAL[13];
    for c in INV_FACTORIAL[..13].iter().rev() {
        p = p * r + c;
    }
    let n_int = (t.to_bits() as i64).wrapping_sub(SHIFTER.to_bits() as i64);
    f64::from_bits((n_int + 1023).wrapping_shl(52) as u64) * p
}

/// `1 / k!` for k = 0..=13.
const INV_FACTORIAL: [f64; 14] = {
    let mut out = [1.0; 14];
    let mut k = 1;
    while k < 14 {
        out[k] = out[k - 1] / k as f64;
        k += 1;
    }
    out
};

/// Reusable buffers of one EM run.
struct MStep {
    /// `k x 2d+1`: responsibility-weighted sums of squares, of features and
    /// of ones.
    sums: Array2<f64>,
    weights: Array1<f64>,
    means: Array2<f64>,
    variances: Array2<f64>,
}

impl MStep {
    fn new(k: usize, d: usize) -> Self {
        Self {
            sums: Array2::zeros((k, 2 * d + 1)),
            weights: Array1::zeros(k),
            means: Array2::zeros((k, d)),
            variances: Array2::zeros((k, d)),
        }
    }

    /// Weighted statistics under responsibilities `resp` (n x k): weights,
    /// means and floored variances (`E[x^2] - mean^2`, clamped at 0, plus
    /// the floor).
    fn run(&mut self, design: &Design, resp: &Array2<f64>, var_floor: f64) {
        let d = design.d;
        let n = design.n().max(1) as f64;
        general_mat_mul(1.0, &resp.t(), &design.z, 0.0, &mut self.sums);
        for c in 0..resp.ncols() {
            let nk = self.sums[[c, 2 * d]] + 10.0 * f64::EPSILON;
            self.weights[c] = nk / n;
            for j in 0..d {
                let m = self.sums[[c, d + j]] / nk;
                self.means[[c, j]] = m;
                self.variances[[c, j]] = (self.sums[[c, j]] / nk - m * m).max(0.0) + var_floor;
            }
        }
    }

    fn linear(&self) -> Linear {
        Linear::new(
            self.weights.view(),
            self.means.view(),
            self.variances.view(),
        )
    }
}
/// Squared distances (n x k) from rows of `x` to `centers`, via GEMM.
fn sq_dists(x: ArrayView2<f64>, x_norms: &Array1<f64>, centers: &Array2<f64>) -> Array2<f64> {
    let c_norms: Array1<f64> = centers.axis_iter(Axis(0)).map(|c| c.dot(&c)).collect();
    let mut d = x.dot(&centers.t()) * -2.0;
    for (mut row, xn) in d.axis_iter_mut(Axis(0)).zip(x_norms.iter()) {
        row.iter_mut()
            .zip(c_norms.iter())
            .for_each(|(v, cn)| *v = (*v + xn + cn).max(0.0));
    }
    d
}

/// k-means++ seeding (D^2 sampling) plus `lloyd` Lloyd iterations; returns
/// the nearest-centre label of each row. Same method as linfa's
/// `KMeansInit::KMeansPlusPlus` (whose seeding function is crate-private),
/// written with matrix products because it runs once per random start.
pub fn kmeans_pp_labels(
    x: ArrayView2<f64>,
    k: usize,
    lloyd: u64,
    rng: &mut impl Rng,
) -> Vec<usize> {
    let n = x.nrows();
    if n == 0 || k == 0 {
        return vec![0; n];
    }
    let x_norms: Array1<f64> = x.axis_iter(Axis(0)).map(|r| r.dot(&r)).collect();
    let mut chosen = vec![rng.gen_range(0..n)];
    let mut min_d: Array1<f64> = sq_dists(x, &x_norms, &x.select(Axis(0), &chosen))
        .column(0)
        .to_owned();
    while chosen.len() < k {
        let total: f64 = min_d.sum();
        let next = if total > 0.0 {
            let u = rng.gen::<f64>() * total;
            let mut acc = 0.0;
            min_d
                .iter()
                .position(|d| {
                    acc += d;
                    acc > u
                })
                .unwrap_or(n - 1)
        } else {
            rng.gen_range(0..n)
        };
        chosen.push(next);
        let d = sq_dists(x, &x_norms, &x.select(Axis(0), &[next]));
        min_d.zip_mut_with(&d.column(0), |a, b| *a = a.min(*b));
    }
    let mut centers = x.select(Axis(0), &chosen);
    let mut labels = hard_labels_min(&sq_dists(x, &x_norms, &centers));
    for _ in 0..lloyd {
        let mut sums = Array2::<f64>::zeros(centers.dim());
        let mut counts = vec![0usize; k];
        for (row, &l) in x.axis_iter(Axis(0)).zip(&labels) {
            let mut s = sums.row_mut(l);
            s += &row;
            counts[l] += 1;
        }
        for (c, &count) in counts.iter().enumerate() {
            if count > 0 {
                centers.row_mut(c).assign(&(&sums.row(c) / count as f64));
            }
        }
        labels = hard_labels_min(&sq_dists(x, &x_norms, &centers));
    }
    labels
}

fn hard_labels_min(d: &Array2<f64>) -> Vec<usize> {
    d.axis_iter(Axis(0))
        .map(|row| {
            let mut best = 0;
            for (i, v) in row.iter().enumerate() {
                if *v < row[best] {
                    best = i;
                }
            }
            best
        })
        .collect()
}

impl DiagGmm {
    /// One EM run from a k-means++ start drawn with `rng_seed`.
    pub fn fit_once(
        x: ArrayView2<f64>,
        k: usize,
        params: &GmmParams,
        rng_seed: u64,
    ) -> Result<Self, GmmError> {
        Self::check_fit(x, k)?;
        let x = x.as_standard_layout();
        Self::em(x.view(), &Design::new(x.view()), k, params, rng_seed)
    }

    fn check_fit(x: ArrayView2<f64>, k: usize) -> Result<(), GmmError> {
        let n = x.nrows();
        if k == 0 || k > n || x.ncols() == 0 {
            return Err(GmmError::BadK { k, n });
        }
        check_finite(x)
    }

    /// EM from one k-means++ start on checked data and its design matrix.
    fn em(
        x: ArrayView2<f64>,
        design: &Design,
        k: usize,
        params: &GmmParams,
        rng_seed: u64,
    ) -> Result<Self, GmmError> {
        let n = x.nrows();
        // k-means++ seeding, then hard responsibilities -> first M step.
        let mut rng = ChaCha8Rng::seed_from_u64(rng_seed);
        let labels = if params.linfa_init {
            let data = DatasetBase::from(x.to_owned());
            let kmeans = KMeans::params_with_rng(k, rng)
                .init_method(KMeansInit::KMeansPlusPlus)
                .n_runs(1)
                .max_n_iterations(params.kmeans_iters.max(1))
                .tolerance(1e-4)
                .fit(&data)
                .map_err(|e| GmmError::Init(e.to_string()))?;
            kmeans.predict(&data).to_vec()
        } else {
            kmeans_pp_labels(x, k, params.kmeans_iters, &mut rng)
        };
        let mut resp = Array2::zeros((n, k));
        for (i, &l) in labels.iter().enumerate() {
            resp[[i, l.min(k - 1)]] = 1.0;
        }
        let mut stats = MStep::new(k, design.d);
        stats.run(design, &resp, params.var_floor);
        let mut previous = f64::NEG_INFINITY;
        let mut converged = false;
        let mut ll = previous;
        for _ in 0..params.max_iter.max(1) {
            ll = e_step(design, &stats.linear(), &mut resp);
            stats.run(design, &resp, params.var_floor);
            if (ll - previous).abs() < params.tol {
                converged = true;
                break;
            }
            previous = ll;
        }
        // Final log-likelihood of the returned parameters.
        let final_ll = e_step(design, &stats.linear(), &mut resp);
        Ok(Self {
            weights: stats.weights.to_vec(),
            means: stats.means.axis_iter(Axis(0)).map(|r| r.to_vec()).collect(),
            variances: stats
                .variances
                .axis_iter(Axis(0))
                .map(|r| r.to_vec())
                .collect(),
            log_likelihood: if final_ll.is_finite() { final_ll } else { ll },
            converged,
        })
    }

    /// The best of `params.n_init` starts (seeded `seed`, `seed + 1`, ...)
    /// by final log-likelihood, run in parallel; deterministic for a seed
    /// (ties go to the lowest start).
    pub fn fit(
        x: ArrayView2<f64>,
        k: usize,
        params: &GmmParams,
        seed: u64,
    ) -> Result<Self, GmmError> {
        Self::check_fit(x, k)?;
        let x = x.as_standard_layout();
        let x = x.view();
        let design = Design::new(x);
        let fits: Vec<Result<Self, GmmError>> = (0..params.n_init.max(1) as u64)
            .into_par_iter()
            .map(|s| {
                let start = seed.wrapping_mul(1_000_003).wrapping_add(s);
                Self::em(x, &design, k, params, start)
            })
            .collect();
        let mut best: Option<Self> = None;
        for fit in fits {
            let fit = fit?;
            if best
                .as_ref()
                .is_none_or(|b| fit.log_likelihood > b.log_likelihood)
            {
                best = Some(fit);
            }
        }
        best.ok_or(GmmError::BadK { k, n: x.nrows() })
    }

    /// Number of components.
    pub fn k(&self) -> usize {
        self.weights.len()
    }

    fn linear(&self) -> Linear {
        let k = self.k();
        let d = self.means.first().map_or(0, Vec::len);
        let flat = |rows: &Vec<Vec<f64>>| {
            Array2::from_shape_vec((k, d), rows.iter().flatten().copied().collect())
                .unwrap_or_else(|_| Array2::zeros((k, d)))
        };
        Linear::new(
            Array1::from(self.weights.clone()).view(),
            flat(&self.means).view(),
            flat(&self.variances).view(),
        )
    }

    /// Responsibilities and mean log-likelihood of checked rows.
    fn posterior(&self, x: ArrayView2<f64>) -> Result<(Array2<f64>, f64), GmmError> {
        let d = self.means.first().map_or(0, Vec::len);
        if x.ncols() != d {
            return Err(GmmError::Dimension {
                model: d,
                input: x.ncols(),
            });
        }
        check_finite(x)?;
        let mut resp = Array2::zeros((x.nrows(), self.k()));
        let ll = e_step(&Design::new(x), &self.linear(), &mut resp);
        Ok((resp, ll))
    }

    /// Soft memberships (posterior probability of each component), n x k.
    pub fn predict_proba(&self, x: ArrayView2<f64>) -> Result<Array2<f64>, GmmError> {
        Ok(self.posterior(x)?.0)
    }

    /// Hard labels (most probable component) per row.
    pub fn predict(&self, x: ArrayView2<f64>) -> Result<Vec<usize>, GmmError> {
        Ok(hard_labels(&self.predict_proba(x)?))
    }

    /// Mean log-likelihood of the rows of `x` under the model.
    pub fn score(&self, x: ArrayView2<f64>) -> Result<f64, GmmError> {
        Ok(self.posterior(x)?.1)
    }
}

/// Argmax per row of a membership matrix.
pub fn hard_labels(memberships: &Array2<f64>) -> Vec<usize> {
    memberships.axis_iter(Axis(0)).map(argmax).collect()
}

/// Index of the largest value (first on ties), 0 for an empty view.
pub fn argmax(row: ArrayView1<f64>) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_distr::{Distribution, Normal};

    /// Samples from a known diagonal mixture.
    fn sample(
        comps: &[(f64, [f64; 2], [f64; 2])],
        n: usize,
        seed: u64,
    ) -> (Array2<f64>, Vec<usize>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let z = Normal::new(0.0, 1.0).unwrap();
        let mut x = Array2::zeros((n, 2));
        let mut truth = Vec::new();
        let mut i = 0;
        for (c, (w, mu, sd)) in comps.iter().enumerate() {
            let count = (w * n as f64).round() as usize;
            for _ in 0..count.min(n - i) {
                for j in 0..2 {
                    x[[i, j]] = mu[j] + sd[j] * z.sample(&mut rng);
                }
                truth.push(c);
                i += 1;
            }
        }
        (x.slice(ndarray::s![..i, ..]).to_owned(), truth)
    }

    #[test]
    fn recovers_a_known_three_component_mixture() {
        let comps = [
            (0.5, [0.0, 0.0], [1.0, 0.5]),
            (0.3, [6.0, 1.0], [0.5, 1.5]),
            (0.2, [0.0, 8.0], [2.0, 0.7]),
        ];
        let (x, truth) = sample(&comps, 1000, 7);
        let params = GmmParams {
            n_init: 10,
            ..GmmParams::default()
        };
        let gmm = DiagGmm::fit(x.view(), 3, &params, 1).unwrap();
        // Match each true component to the fitted one with the nearest mean.
        for (w, mu, sd) in comps {
            let c = (0..3)
                .min_by(|&a, &b| {
                    let da = (gmm.means[a][0] - mu[0]).powi(2) + (gmm.means[a][1] - mu[1]).powi(2);
                    let db = (gmm.means[b][0] - mu[0]).powi(2) + (gmm.means[b][1] - mu[1]).powi(2);
                    da.total_cmp(&db)
                })
                .unwrap();
            assert!((gmm.weights[c] - w).abs() < 0.03, "{gmm:?}");
            for j in 0..2 {
                assert!((gmm.means[c][j] - mu[j]).abs() < 0.25, "{gmm:?}");
                let sd_fit = gmm.variances[c][j].sqrt();
                assert!((sd_fit / sd[j] - 1.0).abs() < 0.15, "{gmm:?}");
            }
        }
        // Labels agree with the truth up to relabelling.
        let labels = gmm.predict(x.view()).unwrap();
        let mut agree = 0;
        for c in 0..3 {
            let members: Vec<usize> = (0..truth.len()).filter(|&i| truth[i] == c).collect();
            let mut counts = [0usize; 3];
            members.iter().for_each(|&i| counts[labels[i]] += 1);
            agree += counts.iter().max().unwrap();
        }
        assert!(agree as f64 / truth.len() as f64 > 0.97);
        let proba = gmm.predict_proba(x.view()).unwrap();
        assert!(proba
            .axis_iter(Axis(0))
            .all(|r| (r.sum() - 1.0).abs() < 1e-9));
    }

    #[test]
    fn recovers_two_components_and_is_deterministic() {
        let comps = [
            (0.7, [-2.0, 0.0], [0.5, 0.5]),
            (0.3, [2.0, 0.0], [0.5, 0.5]),
        ];
        let (x, _) = sample(&comps, 300, 3);
        let params = GmmParams {
            n_init: 8,
            ..GmmParams::default()
        };
        let a = DiagGmm::fit(x.view(), 2, &params, 42).unwrap();
        let b = DiagGmm::fit(x.view(), 2, &params, 42).unwrap();
        assert_eq!(a, b);
        let mut w = a.weights.clone();
        w.sort_by(f64::total_cmp);
        assert!(
            (w[0] - 0.3).abs() < 0.03 && (w[1] - 0.7).abs() < 0.03,
            "{w:?}"
        );
        assert!(a.converged);
    }

    #[test]
    fn builtin_and_linfa_kmeans_pp_seeding_agree() {
        let comps = [
            (0.5, [0.0, 0.0], [1.0, 0.5]),
            (0.3, [6.0, 1.0], [0.5, 1.5]),
            (0.2, [0.0, 8.0], [2.0, 0.7]),
        ];
        let (x, _) = sample(&comps, 600, 5);
        let ours = GmmParams {
            n_init: 6,
            ..GmmParams::default()
        };
        let linfa = GmmParams {
            linfa_init: true,
            ..ours
        };
        let a = DiagGmm::fit(x.view(), 3, &ours, 2).unwrap();
        let b = DiagGmm::fit(x.view(), 3, &linfa, 2).unwrap();
        assert!(
            (a.log_likelihood - b.log_likelihood).abs() < 1e-3,
            "{} vs {}",
            a.log_likelihood,
            b.log_likelihood
        );
        let mut wa = a.weights.clone();
        let mut wb = b.weights.clone();
        wa.sort_by(f64::total_cmp);
        wb.sort_by(f64::total_cmp);
        for (p, q) in wa.iter().zip(&wb) {
            assert!((p - q).abs() < 1e-3);
        }
    }

    #[test]
    fn exp_nonpositive_matches_libm() {
        let mut worst = 0.0f64;
        for i in 0..=600_000 {
            let x = -60.0 * i as f64 / 600_000.0;
            let (ours, libm) = (exp_nonpositive(x), x.exp());
            worst = worst.max(((ours - libm) / libm).abs());
        }
        assert!(worst < 1e-15, "worst relative error {worst:e}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-0.0), 1.0);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let x = Array2::<f64>::zeros((3, 2));
        let p = GmmParams::default();
        assert!(matches!(
            DiagGmm::fit_once(x.view(), 4, &p, 0),
            Err(GmmError::BadK { .. })
        ));
        assert!(DiagGmm::fit_once(x.view(), 0, &p, 0).is_err());
        let mut y = Array2::<f64>::ones((5, 2));
        y[[3, 1]] = f64::NAN;
        assert_eq!(
            DiagGmm::fit_once(y.view(), 2, &p, 0),
            Err(GmmError::NonFinite { row: 3 })
        );
        let ok = Array2::from_shape_fn((6, 2), |(i, j)| (i * 3 + j) as f64);
        let g = DiagGmm::fit_once(ok.view(), 2, &p, 0).unwrap();
        assert!(g.predict(Array2::zeros((2, 3)).view()).is_err());
        // Identical points: still finite thanks to the variance floor.
        let same = Array2::<f64>::ones((10, 2));
        let g = DiagGmm::fit_once(same.view(), 2, &p, 0);
        if let Ok(g) = g {
            assert!(g.log_likelihood.is_finite());
        }
    }
}
