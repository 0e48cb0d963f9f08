//! `cargo xtask bench`: build the release `plume-cc`, run its hidden `bench`
//! command with JSON progress, and show a progress bar across runs. The
//! benchmark's logic lives in the library (`plume_cc::bench`), not here.

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
};

use anyhow::{bail, Context as _};
use indicatif::{ProgressBar, ProgressStyle};

use crate::{cargo, cmd, paths};

/// Prints above the bar, or plainly when the bar is hidden (CI, no terminal).
fn say(pb: &ProgressBar, line: String) {
    if pb.is_hidden() {
        println!("{line}");
    } else {
        pb.println(line);
    }
}

/// Runs the benchmark with `args` (the flags of `plume-cc bench`).
pub fn bench(args: &[String]) -> anyhow::Result<()> {
    if crate::wants_help(args) {
        return crate::pass_through_help(&["bench"]);
    }
    crate::setup::setup()?;
    cmd::run(
        "cargo build --release -p plume-cc",
        cargo().args(["build", "--release", "-p", "plume-cc"]),
    )?;
    let exe = paths::repo_root().join("target/release/plume-cc");
    let mut child = Command::new(&exe)
        .arg("bench")
        .args(args)
        .arg("--progress-json")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {} bench", exe.display()))?;
    let pb = if std::env::var_os("CI").is_some() {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    pb.set_style(
        ProgressStyle::with_template("[{elapsed_precise}] {bar:30} {pos}/{len} runs  {wide_msg}")
            .expect("valid template"),
    );
    let mut table = None;
    let stdout = child.stdout.take().context("bench stdout")?;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            say(&pb, line);
            continue;
        };
        if let Some(p) = v.get("progress") {
            pb.set_length(p["total"].as_u64().unwrap_or(0));
            pb.set_position(p["done"].as_u64().unwrap_or(0));
            let label = p["label"].as_str().unwrap_or("");
            match p.get("result").filter(|r| !r.is_null()) {
                None => pb.set_message(format!("running {label}")),
                Some(r) => {
                    let text = match r["error"].as_str() {
                        Some(e) => format!("{label}: {e}"),
                        None => format!(
                            "{label}: {:.2} Mbps ({:.0}% of capacity), p95 delay {:.0} ms, {} retransmits{}{}",
                            r["throughput_mbps"].as_f64().unwrap_or(0.0),
                            r["utilization"].as_f64().unwrap_or(0.0) * 100.0,
                            r["p95_delay_ms"].as_f64().unwrap_or(0.0),
                            r["retransmits"].as_u64().unwrap_or(0),
                            r["jain"]
                                .as_f64()
                                .map(|j| format!(", Jain {j:.2}"))
                                .unwrap_or_default(),
                            r["share"]
                                .as_f64()
                                .map(|s| format!(", share {s:.2}"))
                                .unwrap_or_default()
                        ),
                    };
                    say(&pb, format!("[{}/{}] {text}", p["done"], p["total"]));
                }
            }
        } else if v.get("table").is_some() {
            table = Some(v);
        }
    }
    let status = child.wait()?;
    pb.finish_and_clear();
    if !status.success() {
        bail!("plume-cc bench failed ({status})");
    }
    if let Some(t) = table {
        println!("{}", t["table"].as_str().unwrap_or(""));
        for f in t["files"].as_array().into_iter().flatten() {
            println!("wrote {}", f.as_str().unwrap_or(""));
        }
    }
    Ok(())
}
