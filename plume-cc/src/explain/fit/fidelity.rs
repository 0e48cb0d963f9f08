//! How well fitted predictors explain held-out decisions: R² per component
//! and how often they order a decision's alternatives as realised.

use super::{decision_rows, Samples};
use crate::explain::predictor::{Fidelity, Predictors};
use crate::explain::{ExplainError, BRANCH_LOG2, COMPONENTS};

/// `1 - SS_res / SS_tot` (NaN when the realised values do not vary).
pub fn r_squared(pred: &[f64], real: &[f64]) -> f64 {
    let n = real.len().max(1) as f64;
    let m = real.iter().sum::<f64>() / n;
    let tot: f64 = real.iter().map(|r| (r - m).powi(2)).sum();
    let res: f64 = pred.iter().zip(real).map(|(p, r)| (p - r).powi(2)).sum();
    if tot > 0.0 {
        1.0 - res / tot
    } else {
        f64::NAN
    }
}

/// The fidelity of `p` on held-out samples `s` (module docs).
pub fn fidelity(p: &Predictors, s: &Samples, tie_tolerance: f64) -> Result<Fidelity, ExplainError> {
    let pred = p.predict_inputs(&s.x, s.len())?;
    let mut f = Fidelity {
        samples: s.len(),
        tie_tolerance,
        clip_share: s.clipped as f64 / s.steps.max(1) as f64,
        ..Fidelity::default()
    };
    for c in 0..3 {
        let real_r: Vec<f64> = (0..s.len())
            .map(|i| f64::from(s.y[i * 6 + 2 * c]))
            .collect();
        let real_p: Vec<f64> = (0..s.len())
            .map(|i| f64::from(s.y[i * 6 + 2 * c + 1]))
            .collect();
        let pr: Vec<f64> = pred.iter().map(|q| q.reward_units[c]).collect();
        let pp: Vec<f64> = pred.iter().map(|q| q.physical[c]).collect();
        f.r2_reward[c] = r_squared(&pr, &real_r);
        f.r2_physical[c] = r_squared(&pp, &real_p);
    }
    let complete = decision_rows(s);
    f.decisions = complete.len();
    for c in 0..3 {
        // The chaos floor: the 90th percentile of how far the null
        // contrast moved the return from the policy's.
        let mut noise: Vec<f64> = complete
            .iter()
            .filter_map(|rows| {
                let e = s.decision[rows[0]]?.0;
                let null = s.null.get(&e)?[c];
                Some((null - f64::from(s.y[rows[0] * 6 + 2 * c])).abs())
            })
            .collect();
        noise.sort_by(f64::total_cmp);
        f.null_decisions = noise.len();
        f.chaos_floor[c] = noise
            .get((noise.len() * 9 / 10).min(noise.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0);
    }
    for c in 0..3 {
        let (mut pairs, mut right, mut orders, mut orders_right) = (0usize, 0usize, 0usize, 0usize);
        let mut rule_right = 0usize;
        let (mut beyond, mut beyond_right, mut beyond_rule) = (0usize, 0usize, 0usize);
        // Throughput rises with the clamp; the delay and loss parts (penalties) fall.
        let direction = if c == 0 { 1.0 } else { -1.0 };
        for rows in &complete {
            let real: Vec<f64> = rows
                .iter()
                .map(|&i| f64::from(s.y[i * 6 + 2 * c]))
                .collect();
            let pr: Vec<f64> = rows.iter().map(|&i| pred[i].reward_units[c]).collect();
            let mut all_apart = true;
            let mut all_right = true;
            for (a, b) in [(0, 1), (0, 2), (1, 2)] {
                let d = real[a] - real[b];
                if d.abs() <= tie_tolerance {
                    all_apart = false;
                    continue;
                }
                pairs += 1;
                let ok = (pr[a] - pr[b]).signum() == d.signum();
                let rule = direction * f64::from(BRANCH_LOG2[a] - BRANCH_LOG2[b]);
                let rule_ok = rule.signum() == d.signum();
                rule_right += usize::from(rule_ok);
                if d.abs() > f.chaos_floor[c] {
                    beyond += 1;
                    beyond_right += usize::from(ok);
                    beyond_rule += usize::from(rule_ok);
                }
                right += usize::from(ok);
                all_right &= ok;
            }
            if all_apart {
                orders += 1;
                orders_right += usize::from(all_right);
            }
        }
        f.ranked_pairs[c] = pairs;
        f.pairwise_accuracy[c] = right as f64 / pairs.max(1) as f64;
        f.direction_rule_accuracy[c] = rule_right as f64 / pairs.max(1) as f64;
        f.pairs_beyond_floor[c] = beyond;
        f.pairwise_accuracy_beyond_floor[c] = beyond_right as f64 / beyond.max(1) as f64;
        f.direction_rule_beyond_floor[c] = beyond_rule as f64 / beyond.max(1) as f64;
        f.ranked_decisions[c] = orders;
        f.order_accuracy[c] = orders_right as f64 / orders.max(1) as f64;
    }
    Ok(f)
}

/// The fidelity as a Markdown table.
pub fn fidelity_table(f: &Fidelity) -> String {
    let mut s = String::from(
        "| component | R² (reward units) | R² (physical) | pairs ranked | pairwise accuracy | direction rule | decisions ordered | order accuracy |\n|---|---|---|---|---|---|---|---|\n",
    );
    let units = ["Mbit/s", "ms", "loss rate"];
    for c in 0..3 {
        s.push_str(&format!(
            "| {} | {:.3} | {:.3} ({}) | {} | {:.1}% | {:.1}% | {} | {:.1}% |\n",
            COMPONENTS[c],
            f.r2_reward[c],
            f.r2_physical[c],
            units[c],
            f.ranked_pairs[c],
            100.0 * f.pairwise_accuracy[c],
            100.0 * f.direction_rule_accuracy[c],
            f.ranked_decisions[c],
            100.0 * f.order_accuracy[c],
        ));
    }
    s.push_str(&format!(
        "\nBeyond the chaos floor (pairs whose realised returns differ by more than the 90th percentile of what a 3.5% clamp change does, over {} decisions):\n\n| component | chaos floor | pairs | pairwise accuracy | direction rule |\n|---|---|---|---|---|\n",
        f.null_decisions
    ));
    for (c, name) in COMPONENTS.iter().enumerate() {
        s.push_str(&format!(
            "| {} | {:.3} | {} | {:.1}% | {:.1}% |\n",
            name,
            f.chaos_floor[c],
            f.pairs_beyond_floor[c],
            100.0 * f.pairwise_accuracy_beyond_floor[c],
            100.0 * f.direction_rule_beyond_floor[c],
        ));
    }
    s.push_str(&format!(
        "\n{} held-out samples, {} held-out decisions; ties within {} (reward-unit return) not ranked; the reward's clip bound on {:.2}% of held-out steps.\n",
        f.samples,
        f.decisions,
        f.tie_tolerance,
        100.0 * f.clip_share
    ));
    s
}
