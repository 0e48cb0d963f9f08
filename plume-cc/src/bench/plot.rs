//! The benchmark's figures:
//! - throughput against p95 one-way delay as Pantheon draws it: one small dot
//!   per run, one large labelled dot per scheme (the arithmetic mean), delay
//!   on a log axis *reversed* so that better is up and to the right, ticks
//!   on the 1-2-5 sequence; PNG or SVG by the file's extension;
//! - each flow's throughput over time (500 ms bins) in one run;
//! - heat maps of throughput and p95 delay, scheme × setting;
//! - fairness: Jain's index (and the scheme's share) per setting and scheme.
//!
//! Drawing only; the font is the system's DejaVu Sans ([`crate::font`]).

use std::path::Path;

use plotters::{coord::Shift, prelude::*};

use super::{first_seen, report::Summary, BenchError, RunResult};
use crate::font::PlotError;

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn plot_err(path: &Path) -> impl Fn(String) -> BenchError + '_ {
    move |msg| BenchError::Plot(PlotError::new(path, msg))
}

/// Tick values on the 1-2-5 sequence within `[lo, hi]` (both > 0), or on a
/// finer sequence of round values when that gives fewer than four.
fn ticks_125(lo: f64, hi: f64) -> Vec<f64> {
    let v = ticks_of(lo, hi, &[1.0, 2.0, 5.0]);
    if v.len() >= 4 {
        return v;
    }
    ticks_of(
        lo,
        hi,
        &[1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
    )
}

fn ticks_of(lo: f64, hi: f64, mantissas: &[f64]) -> Vec<f64> {
    let mut v = Vec::new();
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi {
        for &m in mantissas {
            let t = (m * decade * 1e6).round() / 1e6; // 1.2 x 100 is 120, not 120.00000000000001
            if t >= lo && t <= hi {
                v.push(t);
            }
        }
        decade *= 10.0;
    }
    v
}

/// A linear f64 axis whose labels sit at given points (plotters'
/// `WithKeyPoints` drops the default formatting that a custom label
/// formatter needs).
struct TickedAxis {
    inner: plotters::coord::types::RangedCoordf64,
    ticks: Vec<f64>,
}

impl Ranged for TickedAxis {
    type FormatOption = plotters::coord::ranged1d::DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<Hint: plotters::coord::ranged1d::KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        self.ticks.clone()
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.inner.range()
    }
}

fn tick_label(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// Draws `runs` (all of one trace and setting) into `path` (`.png` or
/// `.svg`), titled `title`. The x axis is p95 one-way delay on a log scale,
/// reversed (low delay on the right); the y axis is throughput.
pub fn throughput_delay(path: &Path, title: &str, runs: &[&RunResult]) -> Result<(), BenchError> {
    let err = plot_err(path);
    crate::font::ensure().map_err(|e| err(e.to_string()))?;
    let svg = path.extension().is_some_and(|e| e == "svg");
    let r = if svg {
        let root = SVGBackend::new(path, (900, 650)).into_drawing_area();
        draw_throughput_delay(&root, title, runs)
    } else {
        let root = BitMapBackend::new(path, (900, 650)).into_drawing_area();
        draw_throughput_delay(&root, title, runs)
    };
    r.map_err(|e| err(e.to_string()))
}

fn draw_throughput_delay<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    runs: &[&RunResult],
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    // x = -log10(delay): a log axis that grows to the left.
    let lx = |r: &RunResult| -r.p95_delay_ms.max(1.0).log10();
    let (dmin, dmax) = runs
        .iter()
        .map(|r| r.p95_delay_ms.max(1.0))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), d| {
            (a.min(d), b.max(d))
        });
    let (lo, hi) = (dmin / 1.5, dmax * 1.5);
    let ticks: Vec<f64> = ticks_125(lo, hi).iter().map(|t| -t.log10()).collect();
    let tmax = runs
        .iter()
        .map(|r| r.throughput_mbps.max(r.capacity_mbps))
        .fold(0f64, f64::max);
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 18))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(
            TickedAxis {
                inner: (-hi.log10()..-lo.log10()).into(),
                ticks,
            },
            0f64..(tmax * 1.15).max(0.1),
        )?;
    chart
        .configure_mesh()
        .x_desc("95th percentile one-way delay (ms, log scale; lower is to the right)")
        .y_desc("Average throughput (Mbps)")
        .x_label_formatter(&|v| tick_label(10f64.powf(-*v)))
        .label_style(("sans-serif", 14))
        .draw()?;
    let schemes = first_seen(runs.iter().map(|r| r.scheme.as_str()));
    for (i, s) in schemes.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mine: Vec<&&RunResult> = runs.iter().filter(|r| r.scheme == *s).collect();
        chart.draw_series(
            mine.iter()
                .map(|r| Circle::new((lx(r), r.throughput_mbps), 4, color.mix(0.5).filled())),
        )?;
        let n = mine.len() as f64;
        // The mean in delay (not in log delay), placed on the log axis.
        let mean_delay = mine.iter().map(|r| r.p95_delay_ms.max(1.0)).sum::<f64>() / n;
        let mean = (
            -mean_delay.log10(),
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
    legend(&mut chart, SeriesLabelPosition::LowerLeft, 14)?;
    root.present()?;
    Ok(())
}

/// The legend every figure here draws: a framed box at `at`.
fn legend<'a, DB: DrawingBackend + 'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    at: SeriesLabelPosition,
    size: u32,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .position(at)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .label_font(("sans-serif", size))
        .draw()?;
    Ok(())
}

/// The label of category `k` at the middle of its unit cell (`k + 0.5`),
/// nothing elsewhere: categorical axes on a numeric range.
fn category_label(names: &[&str], v: f64) -> String {
    let k = v.floor() as usize;
    if (v - k as f64 - 0.5).abs() < 0.01 && k < names.len() {
        names[k].to_string()
    } else {
        String::new()
    }
}

/// Each flow's throughput over time (500 ms bins) in run `r`, as a PNG.
pub fn flow_series(path: &Path, title: &str, r: &RunResult) -> Result<(), BenchError> {
    let err = plot_err(path);
    crate::font::ensure().map_err(|e| err(e.to_string()))?;
    let bin_s = super::flows::BIN_MS as f64 / 1000.0;
    let n = r
        .flows
        .iter()
        .map(|f| f.series_mbps.len())
        .max()
        .unwrap_or(0);
    let ymax = r
        .flows
        .iter()
        .flat_map(|f| f.series_mbps.iter().copied())
        .fold(r.capacity_mbps, f64::max);
    let draw = || -> DrawResult {
        let root = BitMapBackend::new(path, (900, 450)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(
                0f64..(n as f64 * bin_s).max(bin_s),
                0f64..(ymax * 1.1).max(0.1),
            )?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc("throughput (Mbps, 500 ms bins)")
            .label_style(("sans-serif", 13))
            .draw()?;
        for (i, f) in r.flows.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let from = (f.start_s / bin_s).floor() as usize;
            chart
                .draw_series(LineSeries::new(
                    f.series_mbps
                        .iter()
                        .enumerate()
                        .skip(from)
                        .map(|(k, &v)| ((k as f64 + 0.5) * bin_s, v)),
                    color.stroke_width(2),
                ))?
                .label(format!(
                    "flow {} {}{} ({})",
                    f.index,
                    f.label,
                    if f.is_scheme { "" } else { ", competing" },
                    f.sender_cc
                ))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight, 13)?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| err(e.to_string()))
}

/// Two heat maps side by side, scheme (rows) × setting (columns): mean
/// throughput and mean p95 one-way delay, each cell labelled with its value.
pub fn heat_maps(path: &Path, title: &str, summaries: &[&Summary]) -> Result<(), BenchError> {
    let err = plot_err(path);
    crate::font::ensure().map_err(|e| err(e.to_string()))?;
    let schemes = first_seen(summaries.iter().map(|m| m.scheme.as_str()));
    let settings = first_seen(summaries.iter().map(|m| m.setting.as_str()));
    let value = |sch: &str, set: &str, f: fn(&Summary) -> f64| {
        summaries
            .iter()
            .find(|m| m.scheme == sch && m.setting == set && m.runs > 0)
            .map(|m| f(m))
    };
    // Rows from the top: the first scheme is drawn highest.
    let rows: Vec<&str> = schemes.iter().rev().copied().collect();
    let width = 260 + 130 * settings.len() as u32;
    let height = 140 + 44 * schemes.len() as u32;
    let draw = || -> DrawResult {
        let root = BitMapBackend::new(path, (width, height * 2)).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(title, ("sans-serif", 16))?;
        let panels = root.split_evenly((2, 1));
        type Metric<'a> = (&'a str, fn(&Summary) -> f64, bool);
        let metrics: [Metric; 2] = [
            (
                "throughput, Mbps (darker is more)",
                |m| m.throughput_mbps.mean,
                true,
            ),
            (
                "p95 one-way delay, ms (darker is less)",
                |m| m.p95_delay_ms.mean,
                false,
            ),
        ];
        for (panel, (name, f, more_is_better)) in panels.iter().zip(metrics) {
            let vals: Vec<f64> = schemes
                .iter()
                .flat_map(|sch| settings.iter().filter_map(move |set| value(sch, set, f)))
                .collect();
            let (lo, hi) = vals
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                    (a.min(v), b.max(v))
                });
            let mut chart = ChartBuilder::on(panel)
                .caption(name, ("sans-serif", 14))
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(110)
                .build_cartesian_2d(0f64..settings.len() as f64, 0f64..schemes.len() as f64)?;
            chart
                .configure_mesh()
                .disable_mesh()
                .x_labels(settings.len() * 2 + 1)
                .y_labels(schemes.len() * 2 + 1)
                .x_label_formatter(&|v| category_label(&settings, *v))
                .y_label_formatter(&|v| category_label(&rows, *v))
                .label_style(("sans-serif", 12))
                .draw()?;
            for (row, sch) in schemes.iter().enumerate() {
                let y = (schemes.len() - 1 - row) as f64;
                for (col, set) in settings.iter().enumerate() {
                    let x = col as f64;
                    let Some(v) = value(sch, set, f) else {
                        continue;
                    };
                    let mut t = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
                    if !more_is_better {
                        t = 1.0 - t;
                    }
                    let shade = (235.0 - 190.0 * t) as u8;
                    let fill = RGBColor(shade, shade, 255);
                    chart.draw_series(std::iter::once(Rectangle::new(
                        [(x, y), (x + 1.0, y + 1.0)],
                        fill.filled(),
                    )))?;
                    let text_color = if t > 0.6 { WHITE } else { BLACK };
                    chart.draw_series(std::iter::once(Text::new(
                        format!("{v:.1}"),
                        (x + 0.4, y + 0.6),
                        ("sans-serif", 13).into_font().color(&text_color),
                    )))?;
                }
            }
        }
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| err(e.to_string()))
}

/// Jain's index (top) and, when runs had competitors, the scheme's share
/// (bottom) per setting: one dot per run, a bar at each scheme's mean.
pub fn fairness(path: &Path, title: &str, results: &[RunResult]) -> Result<(), BenchError> {
    let err = plot_err(path);
    crate::font::ensure().map_err(|e| err(e.to_string()))?;
    let ok: Vec<&RunResult> = results.iter().filter(|r| r.error.is_none()).collect();
    let schemes = first_seen(ok.iter().map(|r| r.scheme.as_str()));
    let settings = first_seen(ok.iter().map(|r| r.setting.as_str()));
    let has_share = ok.iter().any(|r| r.share.is_some());
    let panels_n = if has_share { 2 } else { 1 };
    let width = (300 + 160 * settings.len() as u32).max(700);
    let draw = || -> DrawResult {
        let root = BitMapBackend::new(path, (width, 380 * panels_n)).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(title, ("sans-serif", 16))?;
        let panels = root.split_evenly((panels_n as usize, 1));
        type Metric<'a> = (&'a str, fn(&RunResult) -> Option<f64>);
        let metrics: [Metric; 2] = [
            ("Jain's fairness index over the fairness window", |r| r.jain),
            (
                "the scheme's share of the link (fair: its flows / all flows)",
                |r| r.share,
            ),
        ];
        for (panel, (name, f)) in panels.iter().zip(metrics) {
            let mut chart = ChartBuilder::on(panel)
                .caption(name, ("sans-serif", 14))
                .margin(12)
                .x_label_area_size(30)
                .y_label_area_size(50)
                .build_cartesian_2d(0f64..settings.len() as f64, 0f64..1.05f64)?;
            chart
                .configure_mesh()
                .x_labels(settings.len() * 2 + 1)
                .x_label_formatter(&|v| category_label(&settings, *v))
                .label_style(("sans-serif", 12))
                .draw()?;
            let w = 0.8 / schemes.len() as f64;
            for (i, sch) in schemes.iter().enumerate() {
                let color = COLORS[i % COLORS.len()];
                let mut labelled = false;
                for (col, set) in settings.iter().enumerate() {
                    let vals: Vec<f64> = ok
                        .iter()
                        .filter(|r| r.scheme == *sch && r.setting == *set)
                        .filter_map(|r| f(r))
                        .collect();
                    if vals.is_empty() {
                        continue;
                    }
                    let x = col as f64 + 0.1 + w * (i as f64 + 0.5);
                    let mean = vals.iter().sum::<f64>() / vals.len() as f64;
                    let bar = chart.draw_series(std::iter::once(Rectangle::new(
                        [(x - w * 0.4, 0.0), (x + w * 0.4, mean)],
                        color.mix(0.35).filled(),
                    )))?;
                    if !labelled {
                        bar.label(*sch).legend(move |(x, y)| {
                            Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                        });
                        labelled = true;
                    }
                    chart.draw_series(
                        vals.iter().map(|&v| Circle::new((x, v), 4, color.filled())),
                    )?;
                }
            }
            legend(&mut chart, SeriesLabelPosition::LowerRight, 12)?;
        }
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_ticks_follow_the_1_2_5_sequence() {
        assert_eq!(
            ticks_125(15.0, 900.0),
            vec![20.0, 50.0, 100.0, 200.0, 500.0]
        );
        assert_eq!(
            ticks_125(80.0, 180.0),
            vec![80.0, 90.0, 100.0, 120.0, 150.0]
        );
        assert_eq!(ticks_125(1.0, 30.0), vec![1.0, 2.0, 5.0, 10.0, 20.0]);
        assert_eq!(tick_label(20.0), "20");
        assert_eq!(tick_label(0.5), "0.5");
    }
}
