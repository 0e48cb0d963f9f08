//! The analysis figure: the windows in a 2-D PCA projection of the selected
//! features, coloured by cluster, next to one example capacity curve per
//! cluster. A PNG, so it can be attached to issues and reports.
use std::path::Path;

use ndarray::{Array1, Array2, Axis};
use plotters::prelude::*;

use super::analysis::Analysis;
use crate::trace::Corpus;

pub use crate::font::PlotError;

/// The top `n` principal components of the columns of `x` (centred), by
/// power iteration with deflation from a fixed start (deterministic).
/// Returns (scores n_rows x n, explained variance per component).
pub fn pca(x: &Array2<f64>, n: usize) -> (Array2<f64>, Vec<f64>) {
    let rows = x.nrows().max(1) as f64;
    let mean = x
        .mean_axis(Axis(0))
        .unwrap_or_else(|| Array1::zeros(x.ncols()));
    let centred = x - &mean;
    let mut cov = centred.t().dot(&centred) / rows;
    let d = x.ncols();
    let mut comps = Array2::zeros((d, n));
    let mut explained = Vec::with_capacity(n);
    for c in 0..n {
        let mut v = Array1::from_iter((0..d).map(|i| 1.0 + i as f64 * 0.01));
        let mut lambda = 0.0;
        for _ in 0..500 {
            let w = cov.dot(&v);
            let norm = w.dot(&w).sqrt();
            if norm < 1e-12 {
                break;
            }
            let next = w / norm;
            let diff = (&next - &v).mapv(f64::abs).sum();
            v = next;
            lambda = norm;
            if diff < 1e-10 {
                break;
            }
        }
        // Deflate and store.
        let outer = v
            .view()
            .insert_axis(Axis(1))
            .dot(&v.view().insert_axis(Axis(0)));
        cov = cov - outer * lambda;
        comps.column_mut(c).assign(&v);
        explained.push(lambda);
    }
    (centred.dot(&comps), explained)
}

/// Draws the figure of `analysis` of `corpus` into `path` (PNG).
pub fn draw_figure(path: &Path, corpus: &Corpus, analysis: &Analysis) -> Result<(), PlotError> {
    crate::font::ensure().map_err(|e| PlotError::new(path, e))?;
    draw(path, corpus, analysis)
}

fn draw(path: &Path, corpus: &Corpus, analysis: &Analysis) -> Result<(), PlotError> {
    let e = |err: &dyn std::fmt::Display| PlotError::new(path, err);
    let k = analysis.model.gmm.k();
    let (scores, explained) = pca(&analysis.z_selected, 2);
    let total_var: f64 = analysis.z_selected.var_axis(Axis(0), 0.0).sum().max(1e-12);
    let root = BitMapBackend::new(path, (1600, 800)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let (left, right) = root.split_horizontally(800);

    let range = |col: usize| {
        let c = scores.column(col);
        let lo = c.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = c.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let pad = ((hi - lo) * 0.05).max(1e-3);
        (lo - pad)..(hi + pad)
    };
    let mut chart = ChartBuilder::on(&left)
        .caption(
            format!(
                "{} windows, k = {k} (PCA of {} selected features)",
                scores.nrows(),
                analysis.selected.len()
            ),
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(range(0), range(1))
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc(format!(
            "PC1 ({:.0}% of variance)",
            100.0 * explained[0] / total_var
        ))
        .y_desc(format!(
            "PC2 ({:.0}% of variance)",
            100.0 * explained[1] / total_var
        ))
        .draw()
        .map_err(|x| e(&x))?;
    let members = analysis.members();
    for (c, idx) in members.iter().enumerate() {
        let color = Palette99::pick(c).to_rgba();
        chart
            .draw_series(
                idx.iter()
                    .map(|&i| Circle::new((scores[[i, 0]], scores[[i, 1]]), 4, color.filled())),
            )
            .map_err(|x| e(&x))?
            .label(format!("cluster {c} ({} windows)", idx.len()))
            .legend(move |(x, y)| Circle::new((x + 5, y), 4, color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|x| e(&x))?;

    let cols = if k > 8 { 3 } else { 2 };
    let rows = k.div_ceil(cols).max(1);
    let panels = right.split_evenly((rows, cols));
    let examples = analysis.examples();
    for (c, panel) in panels.iter().enumerate().take(k) {
        let color = Palette99::pick(c).to_rgba();
        let Some(w) = examples[c].or_else(|| members[c].first().copied()) else {
            continue;
        };
        let window = &corpus.windows[w];
        let bin_s = window.bin_ms as f64 / 1000.0;
        let hi = window.capacity_mbps.iter().copied().fold(1.0, f64::max) * 1.05;
        let label = corpus.window_source(w);
        let mut chart = ChartBuilder::on(panel)
            .caption(
                format!(
                    "c{c}: {} @{}s",
                    label.trim_end_matches(".down"),
                    window.start_ms / 1000
                ),
                ("sans-serif", 13),
            )
            .margin(5)
            .x_label_area_size(18)
            .y_label_area_size(30)
            .build_cartesian_2d(0.0..(window.capacity_mbps.len() as f64 * bin_s), 0.0..hi)
            .map_err(|x| e(&x))?;
        chart
            .configure_mesh()
            .x_labels(4)
            .y_labels(4)
            .label_style(("sans-serif", 10))
            .draw()
            .map_err(|x| e(&x))?;
        chart
            .draw_series(LineSeries::new(
                window
                    .capacity_mbps
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (i as f64 * bin_s, *v)),
                color.stroke_width(1),
            ))
            .map_err(|x| e(&x))?;
    }
    root.present().map_err(|x| e(&x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pca_finds_the_dominant_direction() {
        // Points along (1, 1) with small noise in (1, -1).
        let x = Array2::from_shape_fn((50, 2), |(i, j)| {
            let t = i as f64 - 25.0;
            let noise = if i % 2 == 0 { 0.1 } else { -0.1 };
            if j == 0 {
                t + noise
            } else {
                t - noise
            }
        });
        let (scores, explained) = pca(&x, 2);
        assert!(explained[0] > 100.0 * explained[1]);
        assert!((scores.column(0).var(0.0) - explained[0]).abs() < 1e-6 * explained[0]);
    }
}
