//! Running external commands with a progress line and a useful error.

use std::{
    collections::VecDeque,
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};
use indicatif::{ProgressBar, ProgressStyle};

/// A spinner that shows the latest output line of a long command.
pub fn spinner(msg: &str) -> ProgressBar {
    let pb = if std::env::var_os("CI").is_some() {
        // CI logs are files: print plain lines, no redraws.
        ProgressBar::hidden()
    } else {
        ProgressBar::new_spinner()
    };
    pb.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed:>4}] {prefix}: {wide_msg}")
            .expect("valid template"),
    );
    pb.set_prefix(msg.to_string());
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// Runs `cmd`, streaming its output into a spinner (or plain lines on CI),
/// and fails with the last lines of output if it fails.
pub fn run(what: &str, cmd: &mut Command) -> anyhow::Result<()> {
    let start = Instant::now();
    println!("==> {what}");
    let pb = spinner(what);
    let ci = std::env::var_os("CI").is_some();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("could not start {cmd:?}"))?;
    let tail = Arc::new(Mutex::new(VecDeque::<String>::new()));
    let mut readers = Vec::new();
    let out: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().context("stdout")?);
    let err: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().context("stderr")?);
    for stream in [out, err] {
        let tail = Arc::clone(&tail);
        let pb = pb.clone();
        readers.push(thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if ci {
                    println!("    {line}");
                } else {
                    pb.set_message(line.clone());
                }
                let mut t = tail.lock().expect("tail lock");
                t.push_back(line);
                if t.len() > 40 {
                    t.pop_front();
                }
            }
        }));
    }
    let status = child.wait()?;
    for r in readers {
        r.join().ok();
    }
    pb.finish_and_clear();
    if !status.success() {
        let tail = tail.lock().expect("tail lock");
        let lines: Vec<&str> = tail.iter().map(String::as_str).collect();
        bail!(
            "{what} failed ({status}) after {:.0?}; last output:\n{}",
            start.elapsed(),
            lines.join("\n")
        );
    }
    println!("    done in {:.1?}", start.elapsed());
    Ok(())
}

/// Runs `cmd` with inherited output (for tests and the demo, whose output
/// the user wants to read as it comes).
pub fn run_inherit(what: &str, cmd: &mut Command) -> anyhow::Result<Duration> {
    let start = Instant::now();
    println!("==> {what}");
    let status = cmd
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("could not start {cmd:?}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(start.elapsed())
}

/// Output of a quick query command, trimmed; None if it failed to run or failed.
pub fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
