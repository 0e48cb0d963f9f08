//! The sim-to-real figure: per window, the policy's rate anchor and the
//! cwnd/clamp over time, simulator against the real kernel.

use std::path::Path;

use plotters::prelude::*;

use super::sim_to_real::{SeriesPoint, WindowResult};
use super::EvalError;
use crate::font::PlotError;

/// One panel: its label, the value it draws, and whether the clamp is drawn too.
type Panel<'a> = (&'a str, &'a dyn Fn(&SeriesPoint) -> f64, bool);

const SIM: RGBColor = RGBColor(31, 119, 180);
const REAL: RGBColor = RGBColor(214, 39, 40);

/// Draws every window's series into one PNG at `path`.
pub fn series(path: &Path, results: &[WindowResult]) -> Result<(), EvalError> {
    let err = |msg: String| EvalError::Plot(PlotError::new(path, msg));
    crate::font::ensure().map_err(|e| err(e.to_string()))?;
    let rows = results.len().max(1);
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(path, (1400, 300 * rows as u32)).into_drawing_area();
        root.fill(&WHITE)?;
        let cells = root.split_evenly((rows, 2));
        for (i, r) in results.iter().enumerate() {
            let empty = Vec::new();
            let real = r.emu.as_ref().map_or(&empty, |e| &e.series);
            let tmax = r
                .sim
                .series
                .iter()
                .chain(real.iter())
                .map(|p| p.t_s)
                .fold(1.0, f64::max);
            let panels: [Panel; 2] = [
                ("rate anchor (Mbit/s)", &|p| p.anchor_mbps, false),
                ("cwnd, clamp dashed (segments)", &|p| p.cwnd, true),
            ];
            for (j, (label, f, with_clamp)) in panels.iter().enumerate() {
                let mut ymax = r
                    .sim
                    .series
                    .iter()
                    .chain(real.iter())
                    .map(f)
                    .filter(|v| v.is_finite())
                    .fold(1.0, f64::max);
                if *with_clamp {
                    // Clamps can be far above the cwnd; show them up to 3x the cwnd's range.
                    ymax *= 1.5;
                }
                let mut chart = ChartBuilder::on(&cells[i * 2 + j])
                    .caption(format!("{}: {label}", r.name), ("sans-serif", 15))
                    .margin(8)
                    .x_label_area_size(30)
                    .y_label_area_size(50)
                    .build_cartesian_2d(0f64..tmax, 0f64..ymax * 1.1)?;
                chart
                    .configure_mesh()
                    .x_desc("s")
                    .label_style(("sans-serif", 12))
                    .draw()?;
                for (name, pts, color) in
                    [("simulator", &r.sim.series, SIM), ("kernel", real, REAL)]
                {
                    chart
                        .draw_series(LineSeries::new(
                            pts.iter()
                                .filter(|p| f(p).is_finite())
                                .map(|p| (p.t_s, f(p).min(ymax * 1.1))),
                            color.stroke_width(2),
                        ))?
                        .label(name)
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 15, y)], color.stroke_width(2))
                        });
                    if *with_clamp {
                        chart.draw_series(DashedLineSeries::new(
                            pts.iter()
                                .filter(|p| p.clamp.is_finite())
                                .map(|p| (p.t_s, p.clamp.min(ymax * 1.1))),
                            4,
                            3,
                            color.stroke_width(1),
                        ))?;
                    }
                }
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .label_font(("sans-serif", 12))
                    .draw()?;
            }
        }
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| err(e.to_string()))
}

/// The evaluation matrix as a heat map: one row per cell, one column per
/// scheme, coloured by score (darker green is better), the score written in.
pub fn matrix_heatmap(path: &Path, cells: &[super::matrix::Cell]) -> Result<(), EvalError> {
    let err = |msg: String| EvalError::Plot(PlotError::new(path, msg));
    crate::font::ensure().map_err(|e| err(e.to_string()))?;
    let names: Vec<String> = cells
        .first()
        .map(|c| c.schemes.iter().map(|s| s.scheme.clone()).collect())
        .unwrap_or_default();
    let max = cells
        .iter()
        .flat_map(|c| c.schemes.iter().map(|s| s.score))
        .fold(1e-9, f64::max);
    let rows = cells.len();
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(
            path,
            (260 + 150 * names.len() as u32, 60 + 22 * rows as u32),
        )
        .into_drawing_area();
        root.fill(&WHITE)?;
        let label = ("sans-serif", 13).into_font();
        for (j, n) in names.iter().enumerate() {
            root.draw(&Text::new(
                n.clone(),
                (270 + 150 * j as i32, 20),
                label.clone(),
            ))?;
        }
        for (i, c) in cells.iter().enumerate() {
            let y = 45 + 22 * i as i32;
            root.draw(&Text::new(
                format!(
                    "RTT {} ms, {} BDP, vs {}",
                    c.rtt_ms, c.buffer_bdp, c.competitor
                ),
                (8, y + 4),
                label.clone(),
            ))?;
            for (j, s) in c.schemes.iter().enumerate() {
                let x = 260 + 150 * j as i32;
                let v = (s.score / max).clamp(0.0, 1.0);
                let color = RGBColor(
                    (255.0 * (1.0 - v)) as u8,
                    (120.0 + 100.0 * v) as u8,
                    (255.0 * (1.0 - v) * 0.6) as u8,
                );
                root.draw(&Rectangle::new([(x, y), (x + 146, y + 20)], color.filled()))?;
                root.draw(&Text::new(
                    format!("{:.3}", s.score),
                    (x + 50, y + 4),
                    label.clone(),
                ))?;
            }
        }
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| err(e.to_string()))
}
