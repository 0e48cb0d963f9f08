//! `plume-cc explain run`: every decision of one replayed window explained.
//!
//! The policy runs the window in the simulator on a fixed path; at every
//! monitor interval (every decision) the predictors give each component's
//! return under the policy's own action and under half and double its
//! clamp, and the realised returns of what the policy did are summed from
//! the rollout. The result is a CSV (one row per decision) and a PNG
//! (throughput and queueing delay predicted under each action against the
//! realised ones, and the clamp).

use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;

use super::fit::r_squared;
use super::predictor::Predictors;
use super::returns::returns_from;
use super::rollout::{run_branches, Branch, Episode};
use super::{io_err, ExplainError, ACTION_NAMES, COMPONENTS};
use crate::font::PlotError;
use crate::policy::{LoadedPolicy, Objective};
use crate::rl::env::SimWindow;
use crate::rl::scenario::Scenario;
use crate::sim::QueueLimit;

/// The path of an offline explanation.
#[derive(Clone, Copy, Debug)]
pub struct OfflinePath {
    /// Min RTT, ms.
    pub rtt_ms: f64,
    /// Droptail buffer, in BDPs of the window's mean capacity.
    pub buffer_bdp: f64,
    /// The operating point.
    pub objective: Objective,
}

/// One explained decision.
#[derive(Clone, Debug, Serialize)]
pub struct DecisionRow {
    /// Step index.
    pub step: usize,
    /// Time of the decision, s.
    pub t_s: f64,
    /// The cwnd clamp applied at the step (segments; none before the flow
    /// has an RTT and a rate).
    pub clamp: Option<u32>,
    /// The policy's raw action.
    pub raw: [f32; 2],
    /// Predicted returns under each action of [`ACTION_NAMES`].
    pub predicted: [super::Predictions; 3],
    /// Realised returns of the policy's own action.
    pub realised: super::Predictions,
    /// Realised discounted sum of the reward's clip part.
    pub realised_clip: f64,
    /// Realised discounted return of the training reward.
    pub realised_total: f64,
    /// Steps in the realised horizon (fewer near the window's end).
    pub horizon_steps: usize,
}

/// Summary of an offline explanation.
#[derive(Clone, Debug, Serialize)]
pub struct OfflineSummary {
    /// Decisions explained.
    pub decisions: usize,
    /// R^2 of the policy-action predictions against the realised returns
    /// over the decisions with a whole horizon, reward units.
    pub r2_reward: [f64; 3],
    /// The same in physical units.
    pub r2_physical: [f64; 3],
    /// Decisions with a whole horizon.
    pub whole_horizon: usize,
}

/// Explains every decision of `window` (module docs).
pub fn explain_window(
    policy: &LoadedPolicy,
    predictors: &Predictors,
    window: &SimWindow,
    path: &OfflinePath,
    seed: u64,
) -> Result<(Vec<DecisionRow>, OfflineSummary), ExplainError> {
    let bdp_packets = window.mean_mbps * 1e6 / 8.0 * (path.rtt_ms / 1000.0) / 1500.0;
    let scenario = Scenario {
        objective: Some(path.objective),
        one_way_delay_us: ((path.rtt_ms * 500.0).round() as u64).max(1),
        queue: QueueLimit::packets(((path.buffer_bdp * bdp_packets).round() as u32).max(4)),
        random_loss: 0.0,
        ack_trace: false,
        delayed_ack: false,
        competitors: Vec::new(),
        peers: Vec::new(),
    };
    let episodes = [Episode {
        window: window.clone(),
        scenario,
        seed,
    }];
    let branch = Branch::whole_episode(0);
    let horizon = predictors.metadata().horizon;
    let t = run_branches(
        policy,
        path.objective,
        &episodes,
        &[branch],
        &horizon,
        &mut |_| {},
    )?
    .remove(0);
    let obs: Vec<f32> = t.kept.iter().flat_map(|k| k.obs).collect();
    let past: Vec<f32> = t.kept.iter().flat_map(|k| k.past).collect();
    let raw: Vec<[f32; 2]> = t.kept.iter().map(|k| k.raw).collect();
    let pred = predictors.predict_actions(&obs, &past, &raw)?;
    let dt_s = policy.metadata().monitor_interval_us as f64 / 1e6;
    // The realised delay return as the predictors define it.
    let counts_clip = predictors.metadata().delay_counts_clip;
    let rows: Vec<DecisionRow> = t
        .kept
        .iter()
        .zip(pred)
        .map(|(k, p)| {
            let r = returns_from(&t.parts, k.step, horizon.steps, horizon.gamma);
            let clamp = t.clamps[k.step];
            DecisionRow {
                step: k.step,
                t_s: k.step as f64 * dt_s,
                clamp: (clamp != plume_cc_common::CWND_UNCLAMPED).then_some(clamp),
                raw: k.raw,
                predicted: p,
                realised: super::Predictions {
                    reward_units: r.explained(counts_clip),
                    physical: r.physical,
                },
                realised_clip: if counts_clip { 0.0 } else { r.clip },
                realised_total: r.total,
                horizon_steps: r.steps,
            }
        })
        .collect();
    let whole: Vec<&DecisionRow> = rows
        .iter()
        .filter(|r| r.horizon_steps == horizon.steps)
        .collect();
    let mut summary = OfflineSummary {
        decisions: rows.len(),
        r2_reward: [0.0; 3],
        r2_physical: [0.0; 3],
        whole_horizon: whole.len(),
    };
    for c in 0..3 {
        let f = |g: &dyn Fn(&super::Predictions) -> f64| -> (Vec<f64>, Vec<f64>) {
            (
                whole.iter().map(|r| g(&r.predicted[0])).collect(),
                whole.iter().map(|r| g(&r.realised)).collect(),
            )
        };
        let (p, r) = f(&|q| q.reward_units[c]);
        summary.r2_reward[c] = r_squared(&p, &r);
        let (p, r) = f(&|q| q.physical[c]);
        summary.r2_physical[c] = r_squared(&p, &r);
    }
    Ok((rows, summary))
}

/// The CSV of `rows`: per decision the clamp and raw action, then for each
/// action and component the predicted return (`_ret`, reward units) and
/// mean (Mbit/s, ms, loss rate), then the realised ones.
pub fn write_csv(path: &Path, rows: &[DecisionRow]) -> Result<(), ExplainError> {
    use std::fmt::Write as _;
    let phys = ["mbps", "qdelay_ms", "loss_rate"];
    let mut s = String::from("step,t_s,clamp_segments,raw_cwnd,raw_pacing");
    for a in ACTION_NAMES {
        for c in 0..3 {
            let _ = write!(s, ",pred_{a}_{}_ret,pred_{a}_{}", COMPONENTS[c], phys[c]);
        }
    }
    for c in 0..3 {
        let _ = write!(s, ",real_{}_ret,real_{}", COMPONENTS[c], phys[c]);
    }
    s.push_str(",real_clip_ret,real_total_ret,horizon_steps\n");
    for r in rows {
        let _ = write!(
            s,
            "{},{:.3},{},{:.4},{:.4}",
            r.step,
            r.t_s,
            r.clamp.map_or(String::new(), |c| c.to_string()),
            r.raw[0],
            r.raw[1]
        );
        for p in r.predicted.iter().chain(std::iter::once(&r.realised)) {
            for c in 0..3 {
                let _ = write!(s, ",{:.5},{:.5}", p.reward_units[c], p.physical[c]);
            }
        }
        let _ = writeln!(
            s,
            ",{:.5},{:.5},{}",
            r.realised_clip, r.realised_total, r.horizon_steps
        );
    }
    std::fs::write(path, s).map_err(io_err(path))
}

const COLORS: [RGBColor; 3] = [
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
];

/// The PNG of `rows`: throughput and queueing delay over the next ~1 s as
/// predicted under each action and as realised, and the clamp.
pub fn plot(path: &Path, rows: &[DecisionRow], title: &str) -> Result<(), ExplainError> {
    let err = |e: &dyn std::fmt::Display| ExplainError::Plot(PlotError::new(path, e));
    crate::font::ensure().map_err(|e| err(&e))?;
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(path, (1200, 900)).into_drawing_area();
        root.fill(&WHITE)?;
        let panels = root.split_evenly((3, 1));
        let tmax = rows.last().map_or(1.0, |r| r.t_s).max(0.1);
        let labels = [
            "throughput, next ~1 s (Mbit/s)",
            "queueing delay, next ~1 s (ms)",
        ];
        for (k, label) in labels.iter().enumerate() {
            let ymax = rows
                .iter()
                .flat_map(|r| {
                    r.predicted
                        .iter()
                        .map(move |p| p.physical[k])
                        .chain(std::iter::once(r.realised.physical[k]))
                })
                .filter(|v| v.is_finite())
                .fold(1e-3, f64::max)
                * 1.1;
            let mut chart = ChartBuilder::on(&panels[k])
                .caption(
                    if k == 0 {
                        format!("{title}: {label}")
                    } else {
                        label.to_string()
                    },
                    ("sans-serif", 16),
                )
                .margin(8)
                .x_label_area_size(30)
                .y_label_area_size(60)
                .build_cartesian_2d(0.0..tmax, 0.0..ymax)?;
            chart.configure_mesh().x_desc("time (s)").draw()?;
            for (a, name) in ACTION_NAMES.iter().enumerate() {
                let c = COLORS[a];
                chart
                    .draw_series(LineSeries::new(
                        rows.iter().map(|r| (r.t_s, r.predicted[a].physical[k])),
                        c.stroke_width(if a == 0 { 2 } else { 1 }),
                    ))?
                    .label(format!("predicted, {name}"))
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], c));
            }
            chart
                .draw_series(LineSeries::new(
                    rows.iter()
                        .filter(|r| r.horizon_steps > 0)
                        .map(|r| (r.t_s, r.realised.physical[k])),
                    BLACK.stroke_width(1),
                ))?
                .label("realised (policy)")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK));
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()?;
        }
        let cmax = rows
            .iter()
            .filter_map(|r| r.clamp)
            .max()
            .unwrap_or(1)
            .max(1) as f64
            * 1.1;
        let mut chart = ChartBuilder::on(&panels[2])
            .caption("cwnd clamp applied (segments)", ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..tmax, 0.0..cmax)?;
        chart.configure_mesh().x_desc("time (s)").draw()?;
        chart.draw_series(LineSeries::new(
            rows.iter()
                .filter_map(|r| r.clamp.map(|c| (r.t_s, f64::from(c)))),
            COLORS[0].stroke_width(2),
        ))?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| err(&e))
}
