//! `plume-cc bench` (driven by `cargo xtask bench`): the benchmark's command
//! line, and [`short_bench`] for the demo.
//!
//! Parsing and printing only; the work is [`super::run_bench`].

use std::{path::PathBuf, time::Duration};

use anyhow::Context as _;

use super::{run_bench, BenchConfig, BenchOutput, Downlink, Progress, Scheme};
use crate::emu::DropTail;

/// Parses `30s`, `500ms`, `2m` or a bare number in `bare_unit` seconds.
pub fn parse_duration(s: &str, bare_unit: f64) -> Result<Duration, String> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, bare_unit)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 30s, 20ms)"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!("{s:?} must be a non-negative duration"));
    }
    Ok(Duration::from_secs_f64(v * mult))
}

/// Parses `--queue`: `unlimited`, `droptail`, `packets=N`, `bytes=N`, or
/// `droptail:packets=N`.
pub fn parse_queue(s: &str) -> Result<DropTail, String> {
    let s = s.trim();
    match s {
        "unlimited" | "infinite" | "droptail" | "" => Ok(DropTail::default()),
        _ => DropTail::parse_args(s.strip_prefix("droptail:").unwrap_or(s)),
    }
}

/// Run iperf3 benchmarks across the emulated link (root).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Mahimahi traces (comma separated or repeated); each is the uplink
    /// (the data direction) of its runs.
    #[arg(long, value_delimiter = ',', required_unless_present = "replot")]
    pub traces: Vec<PathBuf>,
    /// The downlink (ACK direction): `same` (each run's own trace, as
    /// `mm-link T T`), `unlimited`, or one trace file for every run.
    #[arg(long, default_value = "same", value_parser = |s: &str| Ok::<_, String>(Downlink::parse(s)))]
    pub downlink: Downlink,
    /// Only redraw the plots of a finished benchmark in this folder.
    #[arg(long, value_name = "DIR")]
    pub replot: Option<PathBuf>,
    /// Schemes: cubic, bbr, reno, plume.
    #[arg(long, value_delimiter = ',', default_value = "cubic,bbr,plume")]
    pub schemes: Vec<String>,
    /// iperf3 test length (30s, 500ms; bare numbers are seconds).
    #[arg(long, default_value = "30s", value_parser = |s: &str| parse_duration(s, 1.0))]
    pub duration: Duration,
    /// One-way delay each way (20ms; bare numbers are milliseconds).
    #[arg(long, default_value = "20ms", value_parser = |s: &str| parse_duration(s, 1e-3))]
    pub delay: Duration,
    /// Bottleneck queue: unlimited, packets=N, bytes=N (droptail).
    #[arg(long, default_value = "unlimited", value_parser = parse_queue)]
    pub queue: DropTail,
    /// Repetitions per trace and scheme.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Output folder.
    #[arg(long, default_value = "runs/bench")]
    pub out: PathBuf,
    /// The iperf3 program.
    #[arg(long, default_value = "iperf3")]
    pub iperf3: PathBuf,
    /// Policy file for the plume scheme's daemon.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Print progress as JSON lines on stdout (for `cargo xtask bench`)
    /// instead of plain lines on stderr.
    #[arg(long, hide = true)]
    pub progress_json: bool,
}

impl Args {
    /// The benchmark configuration these flags describe.
    pub fn config(&self) -> anyhow::Result<BenchConfig> {
        let schemes = self
            .schemes
            .iter()
            .map(|s| Scheme::parse(s, self.policy.as_deref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(BenchConfig {
            traces: self.traces.clone(),
            downlink: self.downlink.clone(),
            schemes,
            duration: self.duration,
            delay: self.delay,
            queue: self.queue,
            runs: self.runs,
            out: self.out.clone(),
            iperf3: self.iperf3.clone(),
            plume_exe: std::env::current_exe().context("locating plume-cc itself")?,
        })
    }
}

fn print_progress(p: &Progress, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::json!({ "progress": p })
                .to_string()
                .replace('\n', " ")
        );
        return;
    }
    match &p.result {
        None => eprintln!("[{}/{}] {} ...", p.done + 1, p.total, p.label),
        Some(r) => match &r.error {
            Some(e) => eprintln!("[{}/{}] {}: {e}", p.done, p.total, p.label),
            None => eprintln!(
                "[{}/{}] {}: {:.2} Mbps ({:.0}% of {:.2}), p95 delay {:.0} ms, {} retransmits",
                p.done,
                p.total,
                p.label,
                r.throughput_mbps,
                r.utilization * 100.0,
                r.capacity_mbps,
                r.p95_delay_ms,
                r.retransmits
            ),
        },
    }
}

fn print_output(out: &BenchOutput) {
    println!("{}", out.table);
    for f in &out.files {
        println!("wrote {}", f.display());
    }
}

/// Runs `plume-cc bench`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    if let Some(dir) = &args.replot {
        for f in super::report::replot(dir)? {
            println!("wrote {}", f.display());
        }
        return Ok(());
    }
    let cfg = args.config()?;
    let json = args.progress_json;
    let out = run_bench(&cfg, &mut |p| print_progress(p, json))?;
    if json {
        println!(
            "{}",
            serde_json::json!({ "table": out.table, "files": out.files })
        );
    } else {
        print_output(&out);
    }
    Ok(())
}

/// A short benchmark for the demo: `schemes` on `traces` (10 s runs, 20 ms
/// delay, unlimited queue, one repetition) into `out`; prints the table and
/// the plots' paths.
pub fn short_bench(
    traces: &[PathBuf],
    schemes: &[&str],
    out: &std::path::Path,
) -> anyhow::Result<BenchOutput> {
    let cfg = BenchConfig {
        traces: traces.to_vec(),
        downlink: Downlink::SameAsUplink,
        schemes: schemes
            .iter()
            .map(|s| Scheme::parse(s, None))
            .collect::<Result<_, _>>()?,
        duration: Duration::from_secs(10),
        delay: Duration::from_millis(20),
        queue: DropTail::default(),
        runs: 1,
        out: out.to_path_buf(),
        iperf3: "iperf3".into(),
        plume_exe: std::env::current_exe().context("locating plume-cc itself")?,
    };
    let out = run_bench(&cfg, &mut |p| print_progress(p, false))?;
    print_output(&out);
    Ok(out)
}
