//! The plots of a benchmark, drawn from its runs and summaries: live, at
//! the end of a run, or again from a finished `results.json` (`replot`).
//! Its own file because it is where the results meet the plotting
//! backend (`bench::plot`), apart from the text outputs.

use std::{fmt::Write as _, path::PathBuf};

use super::{summarize, Summary};
use crate::bench::{first_seen, io_err, plot, BenchError, Competing, RunResult};

/// `3 flows 10 s apart + 1 cubic`, or empty for one flow.
pub(super) fn flow_note(flows: usize, stagger_s: f64, competing: Option<&Competing>) -> String {
    let mut s = String::new();
    if flows > 1 {
        let _ = write!(s, "{flows} flows {stagger_s} s apart");
    }
    if let Some(c) = competing {
        let _ = write!(
            s,
            "{}vs {} {}",
            if s.is_empty() { "" } else { " " },
            c.flows,
            c.cc
        );
    }
    s
}

/// Redraws the plots of a finished benchmark from its `results.json` in
/// `out` (to restyle them without running again); returns the files.
pub fn replot(out: &std::path::Path) -> Result<Vec<PathBuf>, BenchError> {
    let path = out.join("results.json");
    let text = std::fs::read_to_string(&path).map_err(io_err("read", &path))?;
    let bad = |msg: String| BenchError::Config(format!("{}: {msg}", path.display()));
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let mut results: Vec<RunResult> =
        serde_json::from_value(v["runs"].clone()).map_err(|e| bad(e.to_string()))?;
    let c = &v["config"];
    // Results of a single-setting benchmark from before the sweeps.
    for r in &mut results {
        if r.setting.is_empty() {
            r.setting = format!(
                "{} ms, {}",
                c["delay_ms"].as_f64().unwrap_or(f64::NAN),
                c["queue"].as_str().unwrap_or("?")
            );
        }
    }
    // The same note as the live run's, from the config it recorded.
    let note = flow_note(
        c["flows"].as_u64().unwrap_or(1) as usize,
        c["stagger_s"].as_f64().unwrap_or(0.0),
        c["competing"]
            .as_str()
            .and_then(|l| Competing::parse(l).ok())
            .as_ref(),
    );
    let title = title(
        c["duration_s"].as_f64().unwrap_or(f64::NAN),
        c["downlink"].as_str().unwrap_or("same"),
        &note,
    );
    let summaries = summarize(&results);
    plot_all(out, &results, &summaries, &title)
}

/// What every plot's title adds to its trace and setting.
pub(super) fn title(duration_s: f64, downlink: &str, flows: &str) -> String {
    let mut t = format!("{duration_s} s, downlink {downlink}");
    if !flows.is_empty() {
        let _ = write!(t, ", {flows}");
    }
    t
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '=' {
                c
            } else {
                '-'
            }
        })
        .collect::<String>()
        .replace("--", "-")
}

/// Every plot: per trace × setting the throughput/delay plot (PNG and SVG);
/// per successful run its flows' throughput over time; with several
/// settings, per trace a heat map of throughput and of p95 delay; with
/// several flows, the fairness figure. Returns the files.
pub(super) fn plot_all(
    out: &std::path::Path,
    results: &[RunResult],
    summaries: &[Summary],
    title: &str,
) -> Result<Vec<PathBuf>, BenchError> {
    let mut files = Vec::new();
    let groups = first_seen(
        results
            .iter()
            .map(|r| (r.trace.as_str(), r.setting.as_str())),
    );
    let settings = first_seen(groups.iter().map(|(_, s)| *s));
    for (t, setting) in &groups {
        let runs: Vec<&RunResult> = results
            .iter()
            .filter(|r| r.trace == *t && r.setting == *setting && r.error.is_none())
            .collect();
        if runs.is_empty() {
            continue;
        }
        let stem = if settings.len() > 1 {
            format!("plot-{t}-{}", slug(setting))
        } else {
            format!("plot-{t}")
        };
        let caption = format!("{t}: {setting}, {title}");
        for ext in ["png", "svg"] {
            let path = out.join(format!("{stem}.{ext}"));
            plot::throughput_delay(&path, &caption, &runs)?;
            files.push(path);
        }
    }
    for r in results
        .iter()
        .filter(|r| r.error.is_none() && !r.flows.is_empty() && !r.dir.is_empty())
    {
        let path = out.join(&r.dir).join("throughput.png");
        if path.parent().is_some_and(std::path::Path::is_dir) {
            plot::flow_series(
                &path,
                &format!("{} [{}] {} run {}", r.trace, r.setting, r.scheme, r.run),
                r,
            )?;
            files.push(path);
        }
    }
    if settings.len() > 1 {
        for t in first_seen(groups.iter().map(|(t, _)| *t)) {
            let mine: Vec<&Summary> = summaries.iter().filter(|m| m.trace == t).collect();
            let path = out.join(format!("heat-{t}.png"));
            plot::heat_maps(&path, &format!("{t}: {title}"), &mine)?;
            files.push(path);
        }
    }
    if summaries.iter().any(|m| m.jain.is_some()) {
        let path = out.join("fairness.png");
        plot::fairness(&path, &format!("Fairness: {title}"), results)?;
        files.push(path);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::fixtures::setting;
    use crate::emu::DropTail;

    #[test]
    fn replot_reads_results_from_before_the_sweeps() {
        // results.json as a single-setting benchmark wrote it before runs
        // carried their setting: the setting comes from the config.
        let dir = std::env::temp_dir().join(format!("plume-replot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = RunResult::failed("t.trace", &setting("unlimited"), "cubic", 1, String::new());
        r.error = None;
        r.throughput_mbps = 5.0;
        r.p95_delay_ms = 80.0;
        let mut v = serde_json::to_value(&r).unwrap();
        v.as_object_mut().unwrap().remove("setting");
        let json = serde_json::json!({
            "config": {"delay_ms": 20.0, "queue": DropTail::default().describe(), "duration_s": 30.0},
            "runs": [v],
        });
        std::fs::write(dir.join("results.json"), json.to_string()).unwrap();
        let files = replot(&dir).unwrap();
        assert!(
            files.iter().any(|f| f.ends_with("plot-t.trace.png")),
            "{files:?}"
        );
        assert!(
            files.iter().any(|f| f.ends_with("plot-t.trace.svg")),
            "{files:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
