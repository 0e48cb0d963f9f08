//! The sampler study's figures: per-cluster scores with their intervals,
//! per-cluster learning curves per sampler, and plume-dynamic's cluster
//! weights over training.

use std::path::Path;

use plotters::prelude::*;

use super::StudyResult;
use crate::font::PlotError;
use crate::rl::config::SamplerChoice;
use crate::rl::log::LogRow;

type Res = Result<(), PlotError>;

/// The backend's error `e` while drawing `path`.
fn err<E: std::fmt::Display>(path: &Path) -> impl FnOnce(E) -> PlotError + '_ {
    move |e| PlotError::new(path, e)
}

/// One panel per budget: for every cluster, one bar per sampler (mean over
/// seeds) with its 95% interval as a whisker.
pub fn cluster_bars(path: &Path, r: &StudyResult) -> Res {
    crate::font::ensure().map_err(err(path))?;
    let panels = r.budgets.len().max(1);
    let root = BitMapBackend::new(path, (1100, 420 * panels as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let areas = root.split_evenly((panels, 1));
    for (area, b) in areas.iter().zip(&r.budgets) {
        let k = r.eval.clusters;
        let ns = b.samplers.len().max(1);
        let hi = b
            .samplers
            .iter()
            .flat_map(|s| s.per_cluster.iter())
            .map(|c| {
                if c.half_width.is_finite() {
                    c.high()
                } else {
                    c.mean
                }
            })
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max)
            .max(1e-3)
            * 1.1;
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!(
                    "{} steps: held-out score per cluster (mean over seeds, 95% CI); worst = cluster {}",
                    b.budget, b.worst_cluster
                ),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0..k as f64, 0.0..hi)
            .map_err(err(path))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            // Ticks every half cluster; only the middles are labelled.
            .x_labels(2 * k + 1)
            .x_label_formatter(&|x| {
                if (x - x.floor() - 0.5).abs() < 0.01 {
                    format!("cluster {}", x.floor() as usize)
                } else {
                    String::new()
                }
            })
            .y_desc("power vs fair share")
            .draw()
            .map_err(err(path))?;
        let width = 0.8 / ns as f64;
        for (j, s) in b.samplers.iter().enumerate() {
            let color = Palette99::pick(j).to_rgba();
            let bars = s
                .per_cluster
                .iter()
                .enumerate()
                .filter(|(_, m)| m.mean.is_finite())
                .map(|(c, m)| {
                    let x0 = c as f64 + 0.1 + j as f64 * width;
                    Rectangle::new([(x0, 0.0), (x0 + width * 0.9, m.mean)], color.filled())
                });
            chart
                .draw_series(bars)
                .map_err(err(path))?
                .label(s.sampler.name())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 15, y + 5)], color.filled())
                });
            let whiskers = s
                .per_cluster
                .iter()
                .enumerate()
                .filter(|(_, m)| m.half_width.is_finite())
                .map(|(c, m)| {
                    let x = c as f64 + 0.1 + (j as f64 + 0.45) * width;
                    PathElement::new(vec![(x, m.low().max(0.0)), (x, m.high())], BLACK)
                });
            chart.draw_series(whiskers).map_err(err(path))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(err(path))?;
    }
    root.present().map_err(err(path))
}

/// Mean over seeds of a per-iteration series, then a moving average over
/// `window` points that skips NaNs.
fn seed_mean(
    logs: &[Vec<LogRow>],
    pick: &dyn Fn(&LogRow) -> f64,
    window: usize,
) -> Vec<(f64, f64)> {
    let len = logs.iter().map(Vec::len).min().unwrap_or(0);
    let raw: Vec<(f64, f64)> = (0..len)
        .map(|i| {
            let v: Vec<f64> = logs
                .iter()
                .map(|l| pick(&l[i]))
                .filter(|v| v.is_finite())
                .collect();
            let y = if v.is_empty() {
                f64::NAN
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            };
            (logs[0][i].env_steps as f64, y)
        })
        .collect();
    let finite: Vec<(f64, f64)> = raw.into_iter().filter(|p| p.1.is_finite()).collect();
    (0..finite.len())
        .map(|i| {
            let lo = i.saturating_sub(window.max(1) - 1);
            let s = &finite[lo..=i];
            (
                finite[i].0,
                s.iter().map(|p| p.1).sum::<f64>() / s.len() as f64,
            )
        })
        .collect()
}

/// One line per cluster on `area`: `curves[c]` against environment steps,
/// y over `y` (None: the curves' own range, padded).
fn cluster_lines<DB: DrawingBackend>(
    path: &Path,
    area: &DrawingArea<DB, plotters::coord::Shift>,
    caption: &str,
    y_desc: &str,
    curves: &[Vec<(f64, f64)>],
    y: Option<std::ops::Range<f64>>,
    legend: SeriesLabelPosition,
) -> Res {
    let (lo, hi) = curves
        .iter()
        .flatten()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.1), b.max(p.1))
        });
    if !lo.is_finite() {
        return Ok(());
    }
    let pad = ((hi - lo) * 0.05).max(1e-3);
    let y = y.unwrap_or((lo - pad)..(hi + pad));
    let x_max = curves.iter().flatten().map(|p| p.0).fold(1.0f64, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..x_max, y)
        .map_err(err(path))?;
    chart
        .configure_mesh()
        .x_desc("environment steps")
        .y_desc(y_desc)
        .draw()
        .map_err(err(path))?;
    for (c, pts) in curves.iter().enumerate() {
        let color = Palette99::pick(c).to_rgba();
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
            .map_err(err(path))?
            .label(format!("cluster {c}"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(legend)
        .draw()
        .map_err(err(path))
}

/// One panel per sampler: each cluster's training episode reward over
/// steps, averaged over seeds.
pub fn learning_curves(
    path: &Path,
    per_sampler: &[(SamplerChoice, Vec<Vec<LogRow>>)],
    clusters: usize,
) -> Res {
    crate::font::ensure().map_err(err(path))?;
    let n = per_sampler.len().max(1);
    let root = BitMapBackend::new(path, (1000, 330 * n as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    for (area, (s, logs)) in root.split_evenly((n, 1)).iter().zip(per_sampler) {
        let curves: Vec<Vec<(f64, f64)>> = (0..clusters)
            .map(|c| {
                seed_mean(
                    logs,
                    &|r: &LogRow| r.cluster_reward.get(c).copied().unwrap_or(f64::NAN),
                    20,
                )
            })
            .collect();
        cluster_lines(
            path,
            area,
            &format!(
                "{}: training reward per cluster (mean over seeds)",
                s.name()
            ),
            "reward per step",
            &curves,
            None,
            SeriesLabelPosition::LowerRight,
        )?;
    }
    root.present().map_err(err(path))
}

/// plume-dynamic's cluster target weights over training, averaged over
/// seeds.
pub fn cluster_weights(path: &Path, logs: &[Vec<LogRow>], clusters: usize) -> Res {
    crate::font::ensure().map_err(err(path))?;
    let root = BitMapBackend::new(path, (1000, 450)).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let curves: Vec<Vec<(f64, f64)>> = (0..clusters)
        .map(|c| {
            seed_mean(
                logs,
                &|r: &LogRow| r.cluster_targets.get(c).copied().unwrap_or(f64::NAN),
                1,
            )
        })
        .collect();
    let hi = curves
        .iter()
        .flatten()
        .map(|p| p.1)
        .fold(0.0f64, f64::max)
        .max(1e-3)
        * 1.1;
    cluster_lines(
        path,
        &root,
        "plume-dynamic: cluster target weights over training (mean over seeds)",
        "target weight",
        &curves,
        Some(0.0..hi),
        SeriesLabelPosition::UpperRight,
    )?;
    root.present().map_err(err(path))
}
