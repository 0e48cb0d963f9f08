//! `plume-cc bench` (driven by `cargo xtask bench`): the benchmark's command
//! line.
//!
//! Parsing and printing only; the work is [`plume_cc::bench::run_bench`].

use std::{path::PathBuf, time::Duration};

use anyhow::Context as _;

use super::args::{whole, DurationArg};
use plume_cc::args::BareUnit;

use plume_cc::bench::{
    cancel, run_bench, BenchConfig, BenchError, BenchOutput, Competing, Downlink, Progress,
    QueueSpec, Scheme,
};

/// `--queue`'s list of queues (one flag value, comma separated; `packets=N`
/// pairs would be ambiguous with clap's own delimiter).
#[derive(Debug, Clone)]
pub struct Queues(pub Vec<QueueSpec>);

/// Run iperf3 benchmarks across the emulated link (root).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Mahimahi trace files or folders of them (comma separated or
    /// repeated); each trace is the uplink (the data direction) of its runs.
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
    /// Run length (30s, 500ms): the first flow's iperf3 test; later flows
    /// end with it.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = DurationArg::legacy(BareUnit::S))]
    pub duration: Duration,
    /// One-way delays each way, swept (20ms or 10ms,40ms,100ms).
    #[arg(long, value_name = "DURATION", default_value = "20ms", value_delimiter = ',', value_parser = DurationArg::legacy(BareUnit::Ms))]
    pub delay: Vec<Duration>,
    /// Bottleneck queues (droptail, both directions), swept:
    /// unlimited, packets=N, bytes=N, or bdp=X (X times the trace's mean
    /// capacity times the RTT), e.g. packets=20,packets=100,bdp=1,bdp=4.
    #[arg(long, default_value = "unlimited", value_parser = |s: &str| QueueSpec::parse_list(s).map(Queues))]
    pub queue: Queues,
    /// Flows of each scheme per run (each its own iperf3 client and port;
    /// plume flows share one daemon and one cgroup).
    #[arg(long, allow_negative_numbers = true, default_value_t = 1, value_parser = whole::<usize>())]
    pub flows: usize,
    /// Start flow i this long after flow i-1 (10s: Pantheon's 3-flow test).
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = DurationArg::legacy(BareUnit::S))]
    pub stagger: Duration,
    /// Kernel flows on the same bottleneck: cubic, bbr, reno, or NAME:N for N
    /// of them; they start with the first flow.
    #[arg(long, value_parser = |s: &str| Competing::parse(s))]
    pub competing: Option<Competing>,
    /// Jain's index and the scheme's share are measured over this tail of
    /// the run.
    #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = DurationArg::legacy(BareUnit::S))]
    pub fair_window: Duration,
    /// Print only the results table (no progress, no file list).
    #[arg(long, short)]
    pub quiet: bool,
    /// Repetitions per trace, setting and scheme.
    #[arg(long, allow_negative_numbers = true, default_value_t = 3, value_parser = whole::<usize>())]
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
    /// Record every plume scheme's daemon (`plume-cc run --record`) into
    /// its run's folder as `daemon-record.jsonl`: each interval's flow
    /// statistics and targets.
    #[arg(long)]
    pub record: bool,
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
            traces: plume_cc::trace::trace_files(&self.traces)?,
            downlink: self.downlink.clone(),
            schemes,
            duration: self.duration,
            delays: self.delay.clone(),
            queues: self.queue.0.clone(),
            flows: self.flows,
            stagger: self.stagger,
            competing: self.competing.clone(),
            fair_window: self.fair_window,
            runs: self.runs,
            out: self.out.clone(),
            iperf3: self.iperf3.clone(),
            plume_exe: std::env::current_exe().context("locating plume-cc itself")?,
            record: self.record,
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
        Some(r) => {
            match &r.error {
                Some(e) => eprintln!("[{}/{}] {}: {e}", p.done, p.total, p.label),
                None => eprintln!(
                "[{}/{}] {}: {:.2} Mbps ({:.0}% of {:.2}), p95 delay {:.0} ms, {} retransmits{}",
                p.done,
                p.total,
                p.label,
                r.throughput_mbps,
                r.utilization * 100.0,
                r.capacity_mbps,
                r.p95_delay_ms,
                r.retransmits,
                r.jain.map(|j| format!(", Jain {j:.2}")).unwrap_or_default()
                    + &r.share.map(|s| format!(", share {s:.2}")).unwrap_or_default()
            ),
            }
        }
    }
}

fn print_output(out: &BenchOutput) {
    println!("{}", out.table);
    for f in &out.files {
        println!("wrote {}", f.display());
    }
}

/// SIGINT and SIGTERM ask the benchmark to stop
/// ([`plume_cc::bench::cancel`]): the run in progress winds down, nothing
/// is left behind, and the report covers the runs that finished. The
/// handler is reset by the first signal, so a second one ends the process
/// at once (its children still die with it). `eval sim-to-real`, whose
/// kernel side is benchmark runs, stops the same way.
pub(crate) fn stop_on_signals() {
    extern "C" fn on_signal(_: libc::c_int) {
        cancel::request();
        let msg = b"plume-cc: stopping after cleaning up (a second signal kills)\n";
        // SAFETY: write(2) is async-signal-safe; the buffer is static.
        unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
    }
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction with a handler that only makes an
        // atomic store and a write(2).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESETHAND | libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Runs `plume-cc bench`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    if let Some(dir) = &args.replot {
        for f in plume_cc::bench::report::replot(dir)? {
            println!("wrote {}", f.display());
        }
        return Ok(());
    }
    let cfg = args.config()?;
    let json = args.progress_json;
    let quiet = args.quiet;
    stop_on_signals();
    let mut total = 0;
    let out = run_bench(&cfg, &mut |p| {
        total = p.total;
        if !quiet {
            print_progress(p, json);
        }
    })?;
    if quiet {
        println!("{}", out.table);
    } else if json {
        println!(
            "{}",
            serde_json::json!({ "table": out.table, "files": out.files })
        );
    } else {
        print_output(&out);
    }
    if cancel::requested() {
        let done = out.results.iter().filter(|r| r.error.is_none()).count();
        return Err(BenchError::Cancelled {
            run: format!(
                "the benchmark ({done} of {total} runs finished; their report is in {})",
                cfg.out.display()
            ),
        }
        .into());
    }
    Ok(())
}
