//! Learning curves of a training run as a PNG: mean episode reward against
//! environment steps, overall (thick) and per cluster (thin), each smoothed
//! over a moving window of iterations that skips iterations without a
//! finished episode.

use std::path::Path;

use plotters::prelude::*;

use super::log::LogRow;

fn smooth(points: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
    let finite: Vec<(f64, f64)> = points.iter().copied().filter(|p| p.1.is_finite()).collect();
    (0..finite.len())
        .map(|i| {
            let lo = i.saturating_sub(window - 1);
            let s = &finite[lo..=i];
            (
                finite[i].0,
                s.iter().map(|p| p.1).sum::<f64>() / s.len() as f64,
            )
        })
        .collect()
}

/// Draws the curves of `log` (with `clusters` clusters) into `path`.
pub fn learning_curves(
    path: &Path,
    log: &[LogRow],
    clusters: usize,
) -> Result<(), crate::font::PlotError> {
    let e = |err: &dyn std::fmt::Display| crate::font::PlotError::new(path, err);
    crate::font::ensure().map_err(|x| e(&x))?;
    let overall: Vec<(f64, f64)> = log
        .iter()
        .map(|r| (r.env_steps as f64, r.episode_reward))
        .collect();
    let overall = smooth(&overall, 5);
    let per: Vec<Vec<(f64, f64)>> = (0..clusters)
        .map(|c| {
            let p: Vec<(f64, f64)> = log
                .iter()
                .map(|r| {
                    (
                        r.env_steps as f64,
                        r.cluster_reward.get(c).copied().unwrap_or(f64::NAN),
                    )
                })
                .collect();
            smooth(&p, 10)
        })
        .collect();
    let all = overall.iter().chain(per.iter().flatten());
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for p in all {
        lo = lo.min(p.1);
        hi = hi.max(p.1);
    }
    if !lo.is_finite() || !hi.is_finite() {
        return Err(e(&"no finished episode to plot"));
    }
    let pad = ((hi - lo) * 0.05).max(1e-3);
    let x_max = log.last().map_or(1.0, |r| r.env_steps as f64).max(1.0);
    let root = BitMapBackend::new(path, (1000, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "mean episode reward (normalised per window)",
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, (lo - pad)..(hi + pad))
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc("environment steps")
        .y_desc("reward per step")
        .draw()
        .map_err(|x| e(&x))?;
    for (c, pts) in per.iter().enumerate() {
        let color = Palette99::pick(c).to_rgba();
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(1)))
            .map_err(|x| e(&x))?
            .label(format!("cluster {c}"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .draw_series(LineSeries::new(
            overall.iter().copied(),
            BLACK.stroke_width(3),
        ))
        .map_err(|x| e(&x))?
        .label("overall")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(3)));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))
}
