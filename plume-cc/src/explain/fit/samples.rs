//! The samples of a fit: each branch's decision (and the policy's earlier
//! steps) as one row of inputs and realised component returns, and the
//! targets as the networks see them.

use crate::explain::predictor::{input_len, DelayTarget};
use crate::explain::returns::returns_from;
use crate::explain::rollout::Trajectory;
use crate::explain::{Horizon, BRANCH_LOG2, NULL_BRANCH};

/// The rows of every decision with all its alternatives, in
/// [`super::ACTIONS_LOG2`] order.
pub fn decision_rows(s: &Samples) -> Vec<[usize; 3]> {
    let mut by_episode: std::collections::BTreeMap<usize, [Option<usize>; 3]> = Default::default();
    for (i, d) in s.decision.iter().enumerate() {
        if let Some((e, a)) = d {
            by_episode.entry(*e).or_default()[*a] = Some(i);
        }
    }
    by_episode
        .values()
        .filter_map(|rows| Some([rows[0]?, rows[1]?, rows[2]?]))
        .collect()
}

/// Samples as matrices: inputs, targets (per component: reward units,
/// physical), weights, and which branch and action each came from.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    /// Rows of [`Samples::width`] values ([`input_len`]).
    pub x: Vec<f32>,
    /// Values per row of [`Samples::x`].
    pub width: usize,
    /// Rows of 6 targets: component `c`'s return at `2c`, its physical mean at `2c + 1`.
    pub y: Vec<f32>,
    /// Loss weight of each row.
    pub w: Vec<f32>,
    /// Per row: (episode, action) when it is a decision, else None.
    pub decision: Vec<Option<(usize, usize)>>,
    /// Steps seen, and those on which the reward's clip bound.
    pub steps: usize,
    /// See [`Samples::steps`].
    pub clipped: usize,
    /// Per episode, the realised reward-unit returns of the null contrast
    /// (not a sample: see [`super::BRANCH_LOG2`]).
    pub null: std::collections::BTreeMap<usize, [f64; 3]>,
    /// The same, physical means.
    pub null_physical: std::collections::BTreeMap<usize, [f64; 3]>,
    /// Per row, the discounted return of the reward's clip part (not
    /// predicted; kept to measure what the clip does to the delay target).
    pub clip: Vec<f32>,
}

impl Samples {
    /// Rows.
    pub fn len(&self) -> usize {
        self.w.len()
    }

    /// No rows.
    pub fn is_empty(&self) -> bool {
        self.w.is_empty()
    }
}

/// The samples of `trajectories` (module docs).
pub fn samples(
    trajectories: &[Trajectory],
    horizon: &Horizon,
    contrast_weight: f32,
    delay_counts_clip: bool,
    past: bool,
) -> Samples {
    let mut s = Samples {
        width: input_len(past),
        ..Samples::default()
    };
    for t in trajectories {
        s.steps += t.parts.len();
        s.clipped += t.parts.iter().filter(|p| p.clip != 0.0).count();
        for k in &t.kept {
            let at_decision = k.step == t.branch.decision;
            let log2 = if at_decision {
                BRANCH_LOG2[t.branch.action]
            } else {
                0.0
            };
            let r = returns_from(&t.parts, k.step, horizon.steps, horizon.gamma);
            if r.steps < horizon.steps {
                continue; // the episode ended inside the horizon
            }
            if t.branch.action == NULL_BRANCH {
                s.null
                    .insert(t.branch.episode, r.explained(delay_counts_clip));
                s.null_physical.insert(t.branch.episode, r.physical);
                continue;
            }
            s.x.extend_from_slice(&k.obs);
            if past {
                s.x.extend_from_slice(&k.past);
            }
            s.x.extend_from_slice(&[k.raw[0], k.raw[1], log2]);
            let explained = r.explained(delay_counts_clip);
            for (reward, physical) in explained.iter().zip(r.physical) {
                s.y.push(*reward as f32);
                s.y.push(physical as f32);
            }
            s.clip.push(r.clip as f32);
            s.w.push(if at_decision { contrast_weight } else { 1.0 });
            s.decision
                .push(at_decision.then_some((t.branch.episode, t.branch.action)));
        }
    }
    s
}

/// Mean and standard deviation (at least 1e-3) of column `col` of rows
/// `cols` wide.
pub fn mean_std(v: &[f32], cols: usize, col: usize) -> (f32, f32) {
    let n = (v.len() / cols).max(1) as f64;
    let m = v
        .iter()
        .skip(col)
        .step_by(cols)
        .map(|&x| f64::from(x))
        .sum::<f64>()
        / n;
    let var = v
        .iter()
        .skip(col)
        .step_by(cols)
        .map(|&x| (f64::from(x) - m).powi(2))
        .sum::<f64>()
        / n;
    (m as f32, (var.sqrt() as f32).max(1e-3))
}

/// The training targets of `s` as the networks see them: [`Samples::y`]
/// with the delay columns encoded by `target` ([`DelayTarget::encode`]).
pub fn network_targets(s: &Samples, target: DelayTarget) -> Vec<f32> {
    let mut y = s.y.clone();
    if target != DelayTarget::Direct {
        for (r, row) in y.chunks_exact_mut(6).enumerate() {
            let (t0, t1) = target.encode(
                &s.x[r * s.width..(r + 1) * s.width],
                f64::from(row[2]),
                f64::from(row[3]),
            );
            row[2] = t0 as f32;
            row[3] = t1 as f32;
        }
    }
    y
}
