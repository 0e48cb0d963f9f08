//! The throughput-vs-p95-delay plot of one trace, Pantheon style: one small
//! dot per run, one large labelled dot per scheme (the mean), delay on a log
//! axis, ideal at the top left.
//!
//! Drawing only; fonts come from the system's DejaVu Sans (Debian package
//! fonts-dejavu-core, installed by `cargo xtask setup`), never from the network.

use std::{path::Path, sync::OnceLock};

use plotters::{prelude::*, style::FontStyle};

use super::{BenchError, RunResult};

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

pub(crate) fn ensure_font() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let bytes = std::fs::read(FONT).map_err(|e| {
            format!("font {FONT}: {e} (install the Debian package fonts-dejavu-core)")
        })?;
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("font {FONT} is not a usable TrueType font"))
    })
    .clone()
}

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Draws `runs` (all of one trace) into the PNG at `path`, titled `title`.
/// The delay axis is logarithmic (points are placed at log10 of the delay).
pub fn throughput_delay(path: &Path, title: &str, runs: &[&RunResult]) -> Result<(), BenchError> {
    let err = |msg: String| BenchError::Plot {
        path: path.to_owned(),
        msg,
    };
    ensure_font().map_err(err)?;
    let lx = |r: &RunResult| r.p95_delay_ms.max(1.0).log10();
    let (dmin, dmax) = runs
        .iter()
        .map(|r| lx(r))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), d| {
            (a.min(d), b.max(d))
        });
    let (xlo, xhi) = ((dmin - 0.25).floor().max(0.0), (dmax + 0.25).ceil());
    let tmax = runs
        .iter()
        .map(|r| r.throughput_mbps.max(r.capacity_mbps))
        .fold(0f64, f64::max);
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(path, (900, 650)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(xlo..xhi, 0f64..(tmax * 1.15).max(0.1))?;
        chart
            .configure_mesh()
            .x_desc("95th percentile one-way delay (ms, log scale)")
            .y_desc("Average throughput (Mbps)")
            .x_labels(((xhi - xlo) * 4.0) as usize + 1)
            .x_label_formatter(&|v| format!("{:.0}", 10f64.powf(*v)))
            .label_style(("sans-serif", 14))
            .draw()?;
        let mut schemes: Vec<&str> = Vec::new();
        for r in runs {
            if !schemes.contains(&r.scheme.as_str()) {
                schemes.push(&r.scheme);
            }
        }
        for (i, s) in schemes.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let mine: Vec<&&RunResult> = runs.iter().filter(|r| r.scheme == *s).collect();
            chart
                .draw_series(mine.iter().map(|r| {
                    Circle::new((lx(r), r.throughput_mbps), 4, color.mix(0.5).filled())
                }))?;
            let n = mine.len() as f64;
            let mean = (
                mine.iter().map(|r| lx(r)).sum::<f64>() / n,
                mine.iter().map(|r| r.throughput_mbps).sum::<f64>() / n,
            );
            chart
                .draw_series(std::iter::once(
                    EmptyElement::at(mean)
                        + Circle::new((0, 0), 8, color.filled())
                        + Text::new(
                            s.to_string(),
                            (10, -22),
                            ("sans-serif", 16).into_font().color(&color),
                        ),
                ))?
                .label(*s)
                .legend(move |(x, y)| Circle::new((x, y), 6, color.filled()));
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .label_font(("sans-serif", 14))
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| err(e.to_string()))
}
