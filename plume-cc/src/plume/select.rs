//! Critical-feature selection (Plume stage 1).
//!
//! Over a few rounds, cluster the windows on the current features, learn
//! which features predict the cluster (decision-tree impurity importances
//! averaged over seeds) and keep the most important ones, split evenly
//! between the level and variability families, so the clustering in stage 2
//! sees few, informative features of both kinds.
use ndarray::{Array2, ArrayView2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{
    features::Family,
    gmm::{DiagGmm, GmmError, GmmParams},
};

/// Settings of the pruning rounds (defaults from the method description).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SelectionParams {
    /// Pruning rounds.
    pub rounds: usize,
    /// Clusters in the first round; grows linearly to `k_last`.
    pub k_first: usize,
    /// Clusters in the last round.
    pub k_last: usize,
    /// Fraction of the candidate features kept after the first round.
    pub keep_first: f64,
    /// Fraction kept after the last round (never fewer than 2 features).
    pub keep_last: f64,
    /// Decision trees (seeds) averaged per round.
    pub n_trees: usize,
    /// Mixture settings for the per-round clustering.
    pub gmm: GmmParams,
}

impl Default for SelectionParams {
    fn default() -> Self {
        Self {
            rounds: 5,
            k_first: 3,
            k_last: 7,
            keep_first: 0.975,
            keep_last: 0.5,
            n_trees: 20,
            gmm: GmmParams::default(),
        }
    }
}

/// What one pruning round did, for the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectionRound {
    /// Clusters used this round.
    pub k: usize,
    /// Features going in (column indices of the candidate matrix).
    pub features_in: Vec<usize>,
    /// Their mean importances, in the order of `features_in`.
    pub importances: Vec<f64>,
    /// Features kept.
    pub kept: Vec<usize>,
}

/// Averaged impurity importances of decision trees predicting `labels` from
/// `x` (CART, Gini, sample weights; ours rather than linfa-trees', whose
/// class counts live in `HashMap`s with per-process random order, so its
/// near-tied splits, and with them the selected features, change from run to
/// run). Each tree sees a class-stratified bootstrap with class-balanced
/// sample weights (rare clusters count as much as common ones); the seeds make
/// the trees differ, and the result is deterministic for `seed`.
pub fn tree_importances(
    x: ArrayView2<f64>,
    labels: &[usize],
    n_trees: usize,
    seed: u64,
) -> Vec<f64> {
    let d = x.ncols();
    let n_classes = labels.iter().max().map_or(0, |m| m + 1);
    let mut members = vec![Vec::new(); n_classes];
    for (i, &l) in labels.iter().enumerate() {
        members[l].push(i);
    }
    let present = members.iter().filter(|m| !m.is_empty()).count();
    if present < 2 || d == 0 {
        return vec![0.0; d];
    }
    let per_tree: Vec<Vec<f64>> = (0..n_trees.max(1) as u64)
        .into_par_iter()
        .map(|t| {
            let mut rng =
                ChaCha8Rng::seed_from_u64(seed ^ (0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(t + 1)));
            let mut rows = Vec::with_capacity(labels.len());
            let mut weights = Vec::with_capacity(labels.len());
            for m in members.iter().filter(|m| !m.is_empty()) {
                let w = labels.len() as f64 / (present * m.len()) as f64;
                for _ in 0..m.len() {
                    rows.push(m[rng.gen_range(0..m.len())]);
                    weights.push(w);
                }
            }
            let mut imp = cart_importances(x, &rows, &weights, labels, n_classes, 10);
            imp.iter_mut().for_each(|v| {
                if !v.is_finite() {
                    *v = 0.0
                }
            });
            imp
        })
        .collect();
    let mut mean = vec![0.0; d];
    for imp in &per_tree {
        for (m, v) in mean.iter_mut().zip(imp) {
            *m += v / per_tree.len() as f64;
        }
    }
    mean
}

/// Gini impurity of weighted class counts.
fn gini(counts: &[f64], total: f64) -> f64 {
    if total <= 0.0 {
        return 0.0;
    }
    1.0 - counts
        .iter()
        .map(|c| (c / total) * (c / total))
        .sum::<f64>()
}

/// Fits one weighted CART classifier (Gini, best split over all features,
/// depth-limited, leaves of weight >= 1) on the `rows` of `x` and returns its
/// normalised impurity-decrease importances. Deterministic: features and
/// thresholds are scanned in order and a split must beat the best by 1e-12.
fn cart_importances(
    x: ArrayView2<f64>,
    rows: &[usize],
    weights: &[f64],
    labels: &[usize],
    n_classes: usize,
    max_depth: usize,
) -> Vec<f64> {
    let d = x.ncols();
    let mut importance = vec![0.0; d];
    let total_weight: f64 = weights.iter().sum();
    // Each stack entry: sample positions (into rows/weights) and depth.
    let mut stack: Vec<(Vec<usize>, usize)> = vec![((0..rows.len()).collect(), 0)];
    while let Some((node, depth)) = stack.pop() {
        let mut counts = vec![0.0; n_classes];
        let mut w_node = 0.0;
        for &s in &node {
            counts[labels[rows[s]]] += weights[s];
            w_node += weights[s];
        }
        let impurity = gini(&counts, w_node);
        if depth >= max_depth || impurity <= 1e-12 || w_node < 2.0 {
            continue;
        }
        let mut best: Option<(f64, usize, f64)> = None;
        // (value, position) pairs of the node for one feature, sorted by
        // value then position (a total order: the same split every run).
        let mut order: Vec<(f64, usize)> = Vec::with_capacity(node.len());
        let mut left = vec![0.0; n_classes];
        for f in 0..d {
            order.clear();
            order.extend(node.iter().map(|&s| (x[[rows[s], f]], s)));
            order.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            left.iter_mut().for_each(|v| *v = 0.0);
            let mut w_left = 0.0;
            for i in 0..order.len() - 1 {
                let (v, s) = order[i];
                left[labels[rows[s]]] += weights[s];
                w_left += weights[s];
                let next = order[i + 1].0;
                let w_right = w_node - w_left;
                if next <= v || w_left < 1.0 || w_right < 1.0 {
                    continue;
                }
                // Sum of squared class weights on each side (Gini without
                // building the right-hand counts).
                let (mut sq_left, mut sq_right) = (0.0, 0.0);
                for (c, l) in counts.iter().zip(&left) {
                    sq_left += l * l;
                    sq_right += (c - l) * (c - l);
                }
                let child = (w_left - sq_left / w_left + w_right - sq_right / w_right) / w_node;
                let gain = impurity - child;
                if best.is_none_or(|(g, _, _)| gain > g + 1e-12) {
                    best = Some((gain, f, 0.5 * (v + next)));
                }
            }
        }
        let Some((gain, f, threshold)) = best else {
            continue;
        };
        if gain <= 1e-12 {
            continue;
        }
        importance[f] += gain * w_node / total_weight;
        let (l, r): (Vec<usize>, Vec<usize>) =
            node.iter().partition(|&&s| x[[rows[s], f]] <= threshold);
        stack.push((r, depth + 1));
        stack.push((l, depth + 1));
    }
    let sum: f64 = importance.iter().sum();
    if sum > 0.0 {
        importance.iter_mut().for_each(|v| *v /= sum);
    }
    importance
}

/// Keeps `n_keep` of `features` (candidate column indices, with `importances`
/// in the same order), an even share from each family present by importance
/// (the earlier families in [`Family::ALL`] take the remainder); a family
/// with too few features leaves its quota to the others. Returned sorted by
/// index.
pub fn balanced_top(
    features: &[usize],
    importances: &[f64],
    families: &[Family],
    n_keep: usize,
) -> Vec<usize> {
    let ranked = |fam: Family| {
        let mut v: Vec<(usize, f64)> = features
            .iter()
            .zip(importances)
            .filter(|(&f, _)| families.get(f) == Some(&fam))
            .map(|(&f, &i)| (f, i))
            .collect();
        // Descending importance, ties by index for determinism.
        v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    };
    let lists: Vec<Vec<(usize, f64)>> = Family::ALL
        .iter()
        .map(|&f| ranked(f))
        .filter(|l| !l.is_empty())
        .collect();
    let available: usize = lists.iter().map(Vec::len).sum();
    let n_keep = n_keep.min(available);
    // Round-robin quotas: one more to each family in turn while it has
    // features left, so the split is as even as the families allow.
    let mut quota = vec![0usize; lists.len()];
    let mut given = 0;
    while given < n_keep {
        for (q, l) in quota.iter_mut().zip(&lists) {
            if given < n_keep && *q < l.len() {
                *q += 1;
                given += 1;
            }
        }
    }
    let mut kept: Vec<usize> = lists
        .iter()
        .zip(&quota)
        .flat_map(|(l, &q)| l[..q].iter().map(|(f, _)| *f))
        .collect();
    kept.sort_unstable();
    kept
}

/// Runs the pruning rounds on standardized candidates `z` (n x d) whose
/// columns belong to `families`; returns the selected columns and the rounds.
pub fn select_features(
    z: ArrayView2<f64>,
    families: &[Family],
    params: &SelectionParams,
    seed: u64,
    on_round: &(dyn Fn(usize) + Sync),
) -> Result<(Vec<usize>, Vec<SelectionRound>), GmmError> {
    let d = z.ncols();
    let rounds = params.rounds.max(1);
    let mut current: Vec<usize> = (0..d).collect();
    let mut log = Vec::with_capacity(rounds);
    for r in 0..rounds {
        let frac = if rounds == 1 {
            1.0
        } else {
            r as f64 / (rounds - 1) as f64
        };
        let k = (params.k_first as f64 + frac * (params.k_last as f64 - params.k_first as f64))
            .round() as usize;
        let k = k.clamp(2, z.nrows().max(2) - 1);
        let keep = params.keep_first + frac * (params.keep_last - params.keep_first);
        let n_keep = ((keep * d as f64).round() as usize)
            .max(2)
            .min(current.len());
        let x: Array2<f64> = z.select(Axis(1), &current);
        let round_seed = seed.wrapping_add(1000 * r as u64);
        let gmm = DiagGmm::fit(x.view(), k, &params.gmm, round_seed)?;
        let labels = gmm.predict(x.view())?;
        let importances = tree_importances(x.view(), &labels, params.n_trees, round_seed);
        let kept = balanced_top(&current, &importances, families, n_keep);
        log.push(SelectionRound {
            k,
            features_in: current.clone(),
            importances,
            kept: kept.clone(),
        });
        current = kept;
        on_round(r);
    }
    Ok((current, log))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_distr::{Distribution, Normal};

    #[test]
    fn balanced_top_splits_families() {
        use Family::*;
        let fams = [Level, Level, Level, Variability, Variability, Variability];
        let feats = [0, 1, 2, 3, 4, 5];
        let imp = [0.9, 0.8, 0.7, 0.1, 0.05, 0.0];
        assert_eq!(balanced_top(&feats, &imp, &fams, 4), vec![0, 1, 3, 4]);
        assert_eq!(balanced_top(&feats, &imp, &fams, 3), vec![0, 1, 3]);
        // Only one variability feature left: level fills the quota.
        assert_eq!(
            balanced_top(&[0, 1, 2, 5], &[0.1, 0.2, 0.3, 0.0], &fams, 4),
            vec![0, 1, 2, 5]
        );
        assert_eq!(
            balanced_top(&[0, 1, 2, 5], &[0.1, 0.2, 0.3, 0.0], &fams, 2),
            vec![2, 5]
        );
        // Three families: a third each, the remainder to the earlier ones.
        let fams = [Level, Level, Variability, Variability, Path, Path];
        let imp = [0.1, 0.2, 0.3, 0.0, 0.05, 0.9];
        let feats = [0, 1, 2, 3, 4, 5];
        assert_eq!(balanced_top(&feats, &imp, &fams, 3), vec![1, 2, 5]);
        assert_eq!(balanced_top(&feats, &imp, &fams, 5), vec![0, 1, 2, 3, 5]);
    }

    #[test]
    fn trees_find_the_informative_feature_and_selection_keeps_it() {
        // Three groups: feature 0 (level) splits off one, feature 3
        // (variability) another; the rest is noise.
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let z = Normal::new(0.0, 1.0).unwrap();
        let n = 210;
        let group = |i: usize| i * 3 / n;
        let x = Array2::from_shape_fn((n, 6), |(i, j)| match (j, group(i)) {
            (0, 1) | (3, 2) => 3.0 + 0.3 * z.sample(&mut rng),
            (0, _) | (3, _) => -1.5 + 0.3 * z.sample(&mut rng),
            _ => z.sample(&mut rng),
        });
        let labels: Vec<usize> = (0..n).map(group).collect();
        let imp = tree_importances(x.view(), &labels, 10, 5);
        assert!(imp[0] + imp[3] > 0.9, "{imp:?}");
        assert_eq!(imp, tree_importances(x.view(), &labels, 10, 5));
        use Family::*;
        let fams = [Level, Level, Level, Variability, Variability, Variability];
        let params = SelectionParams {
            rounds: 3,
            k_first: 3,
            k_last: 3,
            keep_last: 0.34,
            n_trees: 8,
            gmm: GmmParams {
                n_init: 5,
                ..GmmParams::default()
            },
            ..SelectionParams::default()
        };
        let (sel, rounds) = select_features(x.view(), &fams, &params, 3, &|_| {}).unwrap();
        assert_eq!(rounds.len(), 3);
        assert_eq!(sel, vec![0, 3]);
    }
}
