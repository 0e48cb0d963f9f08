//! The study's result ([`StudyResult`], `study.json`) and its report:
//! `study.md` (per-cluster tables and the gains with their verdicts) and
//! the figures drawn by `plot`.
//!
//! Why its own file: how a result is worded (an interval, whether it
//! excludes 0) is a presentation choice that must not leak into the
//! statistics, and the report can be rewritten from `study.json` alone.

use serde::{Deserialize, Serialize};

use super::run::run_name;
use super::{out_err, BaselineScores, BudgetSummary, EvalSet, RunScores, SamplerSummary};
use super::{StudyConfig, StudyError};
use crate::rl::config::SamplerChoice;
use crate::rl::log::LogRow;
use crate::stats::MeanCi;

/// The study's result (`study.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StudyResult {
    /// Settings.
    pub config: StudyConfig,
    /// The evaluation set.
    pub eval: EvalSet,
    /// Kinds per cluster (scenario corpora; empty otherwise).
    pub cluster_kinds: Vec<std::collections::BTreeMap<String, usize>>,
    /// Every run's scores.
    pub runs: Vec<RunScores>,
    /// Per budget.
    pub budgets: Vec<BudgetSummary>,
    /// Fixed rule, CUBIC and BBR-like on the same set.
    pub baselines: Vec<BaselineScores>,
}

fn ci(c: &MeanCi) -> String {
    if c.half_width.is_finite() {
        format!("{:.3} ± {:.3}", c.mean, c.half_width)
    } else {
        format!("{:.3}", c.mean)
    }
}

fn gain(g: &MeanCi, reference: f64) -> String {
    let rel = if reference.abs() > 1e-12 {
        format!(" ({:+.0}%)", 100.0 * g.mean / reference)
    } else {
        String::new()
    };
    let verdict = if g.low() > 0.0 {
        "better, CI excludes 0"
    } else if g.high() < 0.0 {
        "worse, CI excludes 0"
    } else {
        "CI includes 0"
    };
    format!(
        "{:+.3} [{:+.3}, {:+.3}]{rel}, {verdict}",
        g.mean,
        g.low(),
        g.high()
    )
}

/// The Markdown report.
pub fn markdown(r: &StudyResult) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Sampler study on `{}`: {} seeds ({:?}), budgets {:?} steps. Held-out evaluation: up to {} windows per cluster ({} windows, {} clusters). Score: power against the fair share, `min(throughput / fair share, 1.5) / (p95 RTT / min RTT)`; mean over seeds ± the 95% interval (Student's t over seeds); gains are differences from `{}` with Welch's interval.\n",
        r.config.corpus.display(),
        r.config.seeds.len(),
        r.config.seeds,
        r.config.budgets,
        r.config.per_cluster,
        r.eval.windows.len(),
        r.eval.clusters,
        r.config.samplers[0].name()
    );
    if r.config.competition.is_some() {
        let _ = writeln!(
            s,
            "Every run, and the fixed rule, act under the competition rule (`--competition-rule`).\n"
        );
    }
    let _ = writeln!(
        s,
        "| cluster | corpus share | eval windows | kinds |\n|---|---|---|---|"
    );
    for c in 0..r.eval.clusters {
        let n = r.eval.cluster.iter().filter(|&&x| x == c).count();
        let kinds = r.cluster_kinds.get(c).map_or(String::new(), |k| {
            k.iter()
                .map(|(name, n)| format!("{name} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        });
        let _ = writeln!(
            s,
            "| {c} | {:.1}% | {n} | {kinds} |",
            100.0 * r.eval.corpus_share[c]
        );
    }
    for b in &r.budgets {
        let _ = writeln!(s, "\n### {} steps\n", b.budget);
        let mut head = String::from("| cluster |");
        let mut rule = String::from("|---|");
        for x in &b.samplers {
            let _ = write!(head, " {} |", x.sampler.name());
            rule.push_str("---|");
        }
        for x in &r.baselines {
            let _ = write!(head, " {} |", x.name);
            rule.push_str("---|");
        }
        let _ = writeln!(s, "{head}\n{rule}");
        for c in 0..r.eval.clusters {
            let mark = if c == b.worst_cluster { " (worst)" } else { "" };
            let mut row = format!("| {c}{mark} |");
            for x in &b.samplers {
                let _ = write!(row, " {} |", ci(&x.per_cluster[c]));
            }
            for x in &r.baselines {
                let _ = write!(row, " {:.3} |", x.per_cluster[c]);
            }
            let _ = writeln!(s, "{row}");
        }
        for (label, pick, base) in [
            (
                "balanced overall",
                (|x: &SamplerSummary| x.balanced) as fn(&SamplerSummary) -> MeanCi,
                (|x: &BaselineScores| x.balanced) as fn(&BaselineScores) -> f64,
            ),
            ("natural overall", |x| x.natural, |x| x.natural),
        ] {
            let mut row = format!("| **{label}** |");
            for x in &b.samplers {
                let _ = write!(row, " {} |", ci(&pick(x)));
            }
            for x in &r.baselines {
                let _ = write!(row, " {:.3} |", base(x));
            }
            let _ = writeln!(s, "{row}");
        }
        let reference = &b.samplers[0];
        let _ = writeln!(s);
        for x in &b.samplers[1..] {
            if let (Some(w), Some(bal), Some(nat)) =
                (&x.worst_gain, &x.balanced_gain, &x.natural_gain)
            {
                let _ = writeln!(
                    s,
                    "- {} vs {}: worst cluster ({}) {}; balanced overall {}; natural overall {}.",
                    x.sampler.name(),
                    reference.sampler.name(),
                    b.worst_cluster,
                    gain(w, reference.per_cluster[b.worst_cluster].mean),
                    gain(bal, reference.balanced.mean),
                    gain(nat, reference.natural.mean)
                );
            }
        }
    }
    s
}

pub(super) fn write_report(r: &StudyResult) -> Result<(), StudyError> {
    let out = &r.config.out;
    let p = out.join("study.json");
    std::fs::write(
        &p,
        serde_json::to_vec_pretty(r).map_err(|e| out_err(&p, e))?,
    )
    .map_err(|e| out_err(&p, e))?;
    let p = out.join("study.md");
    std::fs::write(&p, markdown(r)).map_err(|e| out_err(&p, e))?;
    let p = out.join("study-clusters.png");
    super::plot::cluster_bars(&p, r)?;
    for b in &r.config.budgets {
        let logs = |s: SamplerChoice| -> Vec<Vec<LogRow>> {
            r.config
                .seeds
                .iter()
                .filter_map(|&seed| {
                    let f = out
                        .join("runs")
                        .join(run_name(*b, s, seed))
                        .join("log.json");
                    std::fs::read(f)
                        .ok()
                        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                })
                .collect()
        };
        let per_sampler: Vec<(SamplerChoice, Vec<Vec<LogRow>>)> =
            r.config.samplers.iter().map(|&s| (s, logs(s))).collect();
        let p = out.join(format!("curves-{b}.png"));
        super::plot::learning_curves(&p, &per_sampler, r.eval.clusters)?;
        if let Some((_, dynamic)) = per_sampler
            .iter()
            .find(|(s, _)| *s == SamplerChoice::PlumeDynamic)
        {
            let p = out.join(format!("weights-{b}.png"));
            super::plot::cluster_weights(&p, dynamic, r.eval.clusters)?;
        }
    }
    Ok(())
}
