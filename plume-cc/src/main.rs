//! The `plume-cc` command line. Thin: parsing and printing only; the work is
//! in the library modules.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
mod cli;
use cli::args::DurationArg;

use plume_cc::{
    args::BareUnit,
    daemon,
    datapath::{probe, selftest},
};

/// plume-cc: a learned TCP congestion controller for the Linux datapath.
#[derive(Debug, Parser)]
#[command(name = "plume-cc", version, about, long_about = None)]
struct Cli {
    /// Log format on stderr: `auto` (the systemd journal with its fields
    /// when stderr is the journal, as under a unit; else `text`), `text`
    /// (colour only at a terminal; no timestamps under systemd, which adds
    /// its own), `json` (one object per line) or `journald`.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// A part of `bench-datapath`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum BenchPart {
    /// Control-step time for 1..10000 synthetic flows.
    ControlLoop,
    /// The sock_ops program's cost per callback (kernel BPF statistics).
    Ebpf,
    /// The daemon's CPU at 100 flows and a 20 ms interval.
    DaemonCpu,
    /// The control loop over real loopback connections (`--real-flows`,
    /// `--active`); only when named.
    RealFlows,
}

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Auto,
    Text,
    Json,
    Journald,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the control daemon (needs root): attach the datapath to a cgroup
    /// and steer every flow in it with a policy, one batched decision per
    /// monitor interval. SIGINT/SIGTERM hand all flows back to the kernel.
    Run {
        /// Policy: `default` (the embedded policy trained by `cargo xtask
        /// train`), a learned policy (folder, or NAME.json beside
        /// NAME.safetensors / NAME.pt), or a scripted schedule
        /// (a `.json` file holding `{"scripted":{"steps":[{"cwnd":4,"hold_ms":500},...]}}`).
        #[arg(long, default_value = "default")]
        policy: PathBuf,
        /// cgroup v2 folder whose flows are controlled.
        #[arg(long)]
        cgroup: PathBuf,
        /// Create the cgroup folder if missing.
        #[arg(long)]
        create_cgroup: bool,
        /// Monitor interval (e.g. 20ms; 1ms to 10s).
        #[arg(long, value_name = "DURATION", default_value = "20ms", value_parser = DurationArg::legacy(BareUnit::Ms))]
        interval: Duration,
        /// Targets older than this are lifted by the datapath itself
        /// (1ms to 60s, and more than two intervals) [default: 500ms].
        #[arg(long, value_name = "DURATION", value_parser = DurationArg::new())]
        stale: Option<Duration>,
        /// Old spelling of `--stale`, in milliseconds (one more release).
        #[arg(long, hide = true, conflicts_with = "stale", value_parser = DurationArg::renamed("--stale", BareUnit::Ms))]
        stale_ms: Option<Duration>,
        /// bpffs folder for the pins (default /sys/fs/bpf/plume-cc/NAME,
        /// NAME the cgroup's path with `/` as `_` and other characters
        /// `%XX`, which `status` reads back).
        #[arg(long)]
        pin_dir: Option<PathBuf>,
        /// Serve Prometheus metrics on this loopback address (e.g. 127.0.0.1:9901).
        #[arg(long, value_name = "ADDR")]
        metrics: Option<SocketAddr>,
        /// Serve Prometheus metrics on any address, other hosts' included
        /// (e.g. 0.0.0.0:9901). Opt-in and logged as a warning: the metrics
        /// name the policy and this host's flow counts.
        #[arg(long, value_name = "ADDR", conflicts_with = "metrics")]
        metrics_listen: Option<SocketAddr>,
        /// Stop by itself after this long (e.g. 30s).
        #[arg(long, value_name = "DURATION", value_parser = DurationArg::new())]
        run_for: Option<Duration>,
        /// Old spelling of `--run-for`, in milliseconds (one more release).
        #[arg(long, hide = true, conflicts_with = "run_for", value_parser = DurationArg::renamed("--run-for", BareUnit::Ms))]
        run_for_ms: Option<Duration>,
        /// Kernel congestion control under the limits, pinned on every new
        /// flow of the cgroup: `cubic`, `bbr`, `reno` (any the kernel
        /// offers), or `default` for the host's own default. Without it: the
        /// base the policy was trained over (its file's `base_cc`); a
        /// scripted schedule keeps the host's default.
        #[arg(long)]
        base: Option<String>,
        /// Run a policy even though it was trained with another monitor
        /// interval than `--interval`.
        #[arg(long)]
        force_interval: bool,
        /// Write every interval's flow statistics and targets to this file
        /// (JSON lines).
        #[arg(long)]
        record: Option<PathBuf>,
        /// Operating point of a learned policy: `latency`, `balanced`,
        /// `throughput`, or a delay weight in [0.02, 2] (default: the
        /// policy file's `default_objective`).
        #[arg(long)]
        objective: Option<plume_cc::policy::Objective>,
        /// Turn the competition rule on for a learned policy whose file does
        /// not have it: drain probes every 2 s, and no limits while two
        /// probes in a row find a queue that someone else holds (a
        /// buffer-filling CUBIC flow), so the kernel's base controller holds
        /// the flow's share (docs/TRAINING.md, "A competition rule").
        #[arg(long)]
        competition_rule: bool,
        /// Accept the cgroup2 root (e.g. /sys/fs/cgroup) as --cgroup: every
        /// TCP flow of the host is then steered by the policy.
        #[arg(long)]
        allow_root_cgroup: bool,
        /// Explain every flow live: predict each flow's throughput and
        /// queueing delay over the next ~1 s under its clamp and under half
        /// and double it (predictors from `plume-cc explain fit`, in this
        /// folder or else beside the policy), export them on the metrics
        /// endpoint and for `plume-cc status --explain`.
        #[arg(long, value_name = "DIR", num_args = 0..=1)]
        explain: Option<Option<PathBuf>>,
        /// Explain every this many intervals (one batched forward of the
        /// predictors over all flows).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        explain_every: u64,
    },
    /// Remove datapaths that no daemon runs any more (needs root): a
    /// datapath a stopped daemon left attached in observe-only mode for
    /// idle flows that still carried limits, or one a killed daemon left
    /// pinned. Flows whose socket is gone are reaped, the others released;
    /// the program is detached once no live flow carries a limit.
    Cleanup {
        /// Only this pin folder (default: every datapath under /sys/fs/bpf/plume-cc).
        #[arg(long)]
        pin_dir: Option<PathBuf>,
    },
    /// Measure the datapath (root): control-step time for 1..10000 flows,
    /// the eBPF program's cost per callback, the daemon's CPU at 100 flows.
    BenchDatapath {
        /// Policy for the control loop and the daemon (default: the embedded learned policy).
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Iterations per flow count.
        #[arg(long, default_value_t = 200)]
        iterations: usize,
        /// Only these parts (comma-separated): `control-loop`, `ebpf`,
        /// `daemon-cpu` [default: all three].
        #[arg(long, value_enum, value_delimiter = ',')]
        only: Vec<BenchPart>,
        /// Repeat the eBPF cost measurement this many times (one line each;
        /// the spread matters on a shared machine).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=50))]
        ebpf_runs: u32,
        /// `real-flows`: connections held open in the cgroup.
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
        real_flows: u64,
        /// `real-flows`: how many of them send all the time.
        #[arg(long, default_value_t = 100)]
        active: usize,
        /// Print the results as one JSON document on stdout (the table
        /// goes to stderr). `--json FILE` (write them to FILE) still works
        /// for one release.
        #[arg(long, value_name = "FILE", num_args = 0..=1)]
        json: Option<Option<PathBuf>>,
    },
    /// What the datapath costs a saturating transfer (root): a loopback
    /// iperf3 transfer with no program, with the sock_ops program in
    /// observe-only mode, and under the daemon, interleaved over rounds;
    /// throughput and CPU per byte side by side.
    BenchOverhead {
        /// Length of each transfer, whole seconds (e.g. 10s).
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = DurationArg::new())]
        duration: Duration,
        /// Parallel flows of the transfer (iperf3 -P).
        #[arg(long, default_value_t = 1)]
        flows: usize,
        /// Rounds; each runs the three modes once, in a rotating order.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Policy of the daemon mode (default: the embedded learned policy).
        #[arg(long)]
        policy: Option<PathBuf>,
        /// The iperf3 program.
        #[arg(long, default_value = "iperf3")]
        iperf3: PathBuf,
        /// First loopback port of the iperf3 server (one more per run).
        #[arg(long, default_value_t = 5400)]
        port: u16,
        /// The client's MSS in bytes (iperf3 -M), e.g. 1448 for an
        /// Ethernet path's ACK rate [default: loopback's, about 64 KB].
        #[arg(long)]
        mss: Option<u32>,
        /// Turn the kernel's BPF statistics on during the observe-only runs
        /// and report the program's cost per callback (the statistics add
        /// their own cost to those runs).
        #[arg(long)]
        bpf_stats: bool,
        /// Print the results as one JSON document on stdout (the table
        /// and progress go to stderr).
        #[arg(long)]
        json: bool,
    },
    /// Time the learned policy's decide step alone for 1..10000 synthetic
    /// flows (no root, one libtorch thread), split into observation
    /// building, input tensor, forward, action readback and action mapping.
    BenchDecide {
        /// Learned policy (default: the embedded one).
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Flow counts.
        #[arg(long, value_delimiter = ',', default_value = "1,100,1000,10000")]
        flows: Vec<usize>,
        /// Calls per flow count.
        #[arg(long, default_value_t = 200)]
        iterations: usize,
        /// Print the results as one JSON document on stdout (the table
        /// goes to stderr). `--json FILE` (write them to FILE) still works
        /// for one release.
        #[arg(long, value_name = "FILE", num_args = 0..=1)]
        json: Option<Option<PathBuf>>,
    },
    /// List the flows of every running datapath with their statistics and
    /// targets (like `ss -ti`).
    Status {
        /// Print JSON instead of a table: one array, one entry per
        /// datapath (`[]` when none runs).
        #[arg(long)]
        json: bool,
        /// Only the datapath pinned in this bpffs folder (as given to
        /// `run --pin-dir`; default: every one under /sys/fs/bpf/plume-cc).
        #[arg(long)]
        pin_dir: Option<PathBuf>,
        /// Under each flow, the daemon's live explanation (`run --explain`):
        /// predicted throughput and queueing delay over the next ~1 s under
        /// its clamp and under double and half of it.
        #[arg(long)]
        explain: bool,
    },
    /// Record this host's own link conditions from the live datapath (needs
    /// root): every flow of the cgroup that was network-limited long enough
    /// becomes Mahimahi windows of its delivery (lower bounds of capacity)
    /// with its min RTT and a loss summary, written as a scenario corpus
    /// that `traces analyze` and `train --traces` read. Runs beside
    /// `plume-cc run --cgroup G` (reading its pinned maps), or with
    /// --observe on a cgroup no daemon controls. Stops at --duration or
    /// SIGINT/SIGTERM.
    Record {
        /// cgroup v2 folder whose flows are recorded.
        #[arg(long)]
        cgroup: PathBuf,
        /// Output folder (must not exist, or be empty).
        #[arg(long)]
        out: PathBuf,
        /// Network-limited time a flow needs to be kept (at least --window).
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = DurationArg::new())]
        min_duration: Duration,
        /// Window length of the corpus, 1s..60s (train with the same --window).
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = DurationArg::new())]
        window: Duration,
        /// How often the flows are read, 1ms..1s.
        #[arg(long, value_name = "DURATION", default_value = "10ms", value_parser = DurationArg::new())]
        sample: Duration,
        /// Stop after this long (e.g. 1h) [default: at SIGINT/SIGTERM].
        #[arg(long, value_name = "DURATION", value_parser = DurationArg::new())]
        duration: Option<Duration>,
        /// When no daemon runs on the cgroup, attach an observe-only
        /// datapath for the recording (it never limits a flow and is
        /// detached when record exits).
        #[arg(long)]
        observe: bool,
        /// The daemon's pin folder, if it was started with --pin-dir.
        #[arg(long)]
        pin_dir: Option<PathBuf>,
        /// Print only the recording's summary as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Check the datapath end to end on this host (needs root): attach the
    /// sock_ops program to a fresh cgroup, run a loopback transfer in it, clamp
    /// its cwnd, verify the sender obeys, release it, clean up.
    Selftest {
        /// cwnd clamp to apply, segments.
        #[arg(long, default_value_t = 4)]
        clamp: u32,
        /// How long the test transfer runs [default: 2s].
        #[arg(long, value_name = "DURATION", value_parser = DurationArg::new())]
        duration: Option<Duration>,
        /// Old spelling of `--duration`, in milliseconds (one more release).
        #[arg(long, hide = true, conflicts_with = "duration", value_parser = DurationArg::renamed("--duration", BareUnit::Ms))]
        duration_ms: Option<Duration>,
        /// Print the report as JSON: stdout then holds only that document,
        /// the progress goes to stderr.
        #[arg(long)]
        json: bool,
    },
    /// Send TCP data as fast as allowed and print the socket's TCP_INFO as
    /// JSON lines (used by tests and the self-test).
    #[command(hide = true)]
    Probe {
        /// Address to connect to.
        #[arg(long)]
        connect: SocketAddr,
        /// Join this cgroup v2 folder first, so the flow is under the datapath.
        #[arg(long)]
        cgroup: Option<PathBuf>,
        /// How long to send.
        #[arg(long, alias = "duration-ms", default_value = "1s", value_parser = DurationArg::legacy(BareUnit::Ms))]
        duration: Duration,
        /// Report interval.
        #[arg(long, alias = "report-ms", default_value = "20ms", value_parser = DurationArg::legacy(BareUnit::Ms))]
        report: Duration,
        /// Instead of one long transfer: open this many connections at once,
        /// send `--bytes` on each, hold them `--hold-ms`, close them all.
        #[arg(long)]
        flows: Option<usize>,
        /// Bytes per connection with `--flows`.
        #[arg(long, default_value_t = 100_000)]
        bytes: usize,
        /// How long `--flows` connections stay open after sending.
        #[arg(long, alias = "hold-ms", default_value = "300ms", value_parser = DurationArg::legacy(BareUnit::Ms))]
        hold: Duration,
        /// Instead: hold this many connections open (to `--connect`, the
        /// idle ones, and `--active-connect`, the active ones), print their
        /// cookies as one JSON line, then answer `poke`, `report` and
        /// `close` commands read from stdin (the scale test and
        /// `bench-datapath --only real-flows` drive it).
        #[arg(long, conflicts_with = "flows")]
        held: Option<usize>,
        /// With `--held`: how many of the connections send all the time.
        #[arg(long, default_value_t = 0, requires = "held")]
        active: usize,
        /// With `--held`: where the active connections go (default: `--connect`).
        #[arg(long, requires = "held")]
        active_connect: Option<SocketAddr>,
        /// With `--held`: bytes each active connection writes per tick.
        #[arg(long, default_value_t = 16_384, requires = "held")]
        active_bytes: usize,
        /// With `--held`: the active connections' write period.
        #[arg(long, default_value = "20ms", value_parser = DurationArg::new(), requires = "held")]
        tick: Duration,
    },
    /// Train a policy with PPO in the simulator (what `cargo xtask train` runs).
    Train(cli::train::TrainArgs),
    /// Time one batched policy forward for several flow counts.
    #[command(hide = true)]
    BenchInference(cli::train::BenchArgs),
    /// Summarise the held-out scores of several training runs.
    #[command(hide = true)]
    EvalTable(cli::train::EvalTableArgs),
    /// Link traces: write synthetic ones, analyse a folder with the Plume
    /// pipeline (features, critical-feature selection, clustering).
    #[command(subcommand)]
    Traces(cli::trace::TracesCommand),
    /// Run a command behind an emulated link (Mahimahi's mm-delay + mm-link
    /// in user space; needs root).
    Emulate(cli::emu::Args),
    /// Evaluate a policy: `eval sim-to-real` runs the same windows in the
    /// simulator and across the emulated link with the real kernel.
    #[command(subcommand)]
    Eval(cli::eval::EvalCommand),
    /// Explain the policy's decisions: `explain fit` fits predictors of each
    /// reward component's future (throughput, queueing delay, loss) under
    /// the policy's action and contrasting ones; `explain run` explains
    /// every decision of a replayed trace window (CSV + PNG).
    #[command(subcommand)]
    Explain(cli::explain::ExplainCommand),
    /// Benchmark congestion controls with iperf3 across the emulated link
    /// (what `cargo xtask bench` runs; needs root).
    Bench(cli::bench::Args),
    /// Run the daemon as a systemd service: `service install` writes
    /// plume-cc.service and plume-cc.slice and starts it; applications put
    /// in the slice (`systemd-run --slice=plume-cc.slice CMD`) are controlled.
    #[command(subcommand)]
    Service(cli::service::ServiceCommand),
}

/// Usage errors exit with 2 (clap), runtime errors with 1. The error is
/// printed once, each cause once, on one line (`errors::one_line`), and
/// never with a backtrace: anyhow's `Debug` would print one when
/// RUST_BACKTRACE is set, which is noise for a wrong path or a missing
/// privilege.
fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with 0, usage errors to stderr
            // with 2, as clap's own `exit` would.
            let _ = e.print();
            quick_exit(e.exit_code())
        }
    };
    init_logging(cli.log_format);
    let code = match run(cli.command) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!(
                "plume-cc: error: {}",
                plume_cc::errors::one_line(e.as_ref())
            );
            1
        }
    };
    quick_exit(code)
}

/// Ends the process without running the C++ static destructors that
/// `exit(3)` would: libtorch's (its operator registry, freed entry by
/// entry) take about 100 ms, a third of `plume-cc --help` (measured in
/// docs/BENCHMARKS.md, "Process start-up"). Everything of ours was dropped
/// when `run` returned; only stdout and stderr are flushed here.
fn quick_exit(code: i32) -> ! {
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: _exit(2) ends the process at once; nothing after it runs.
    unsafe { libc::_exit(code) }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Service(cmd) => cli::service::run(cmd)?,
        Command::Traces(cmd) => cli::trace::run(cmd)?,
        Command::Eval(cmd) => cli::eval::run(cmd)?,
        Command::Explain(cmd) => cli::explain::run(cmd)?,
        Command::Selftest {
            clamp,
            duration,
            duration_ms,
            json,
        } => {
            let opts = selftest::SelfTestOptions {
                probe_exe: std::env::current_exe().context("locating plume-cc itself")?,
                clamp,
                duration: duration.or(duration_ms).unwrap_or(Duration::from_secs(2)),
            };
            // With --json, stdout holds the report alone; the progress
            // lines go to stderr so that a pipe into a JSON reader works.
            let say = |line: &str| {
                if json {
                    eprintln!("{line}");
                } else {
                    println!("{line}");
                }
            };
            say(&format!("plume-cc selftest: {}", libtorch_check()?));
            let report = selftest::run(&opts, &mut |line| say(&format!("  {line}")))?;
            say("selftest passed");
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
        }
        Command::Run {
            policy,
            cgroup,
            create_cgroup,
            interval,
            stale,
            stale_ms,
            pin_dir,
            metrics,
            metrics_listen,
            run_for,
            run_for_ms,
            base,
            force_interval,
            record,
            objective,
            competition_rule,
            allow_root_cgroup,
            explain,
            explain_every,
        } => {
            // SIGINT/SIGTERM are caught from here on, before the policy is
            // loaded and the datapath attached, so a stop during start-up
            // is a clean one (daemon::StopSignals).
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let stop = {
                let _entered = rt.enter();
                daemon::StopSignals::install().context("catching SIGINT/SIGTERM")?
            };
            tracing::info!(policy = %policy.display(), "starting (SIGINT/SIGTERM stop cleanly from here on)");
            let mut config = daemon::DaemonConfig {
                cgroup,
                create_cgroup,
                interval,
                stale_after: stale
                    .or(stale_ms)
                    .unwrap_or(daemon::DaemonConfig::DEFAULT_STALE),
                pin_dir,
                metrics_addr: metrics.or(metrics_listen),
                metrics_off_host: metrics_listen.is_some(),
                run_for: run_for.or(run_for_ms),
                base_cc: None,
                record,
                allow_root_cgroup,
            };
            // Refuse bad timing flags before the policy is loaded.
            config.validate()?;
            let explainer = match &explain {
                None => None,
                Some(dir) => {
                    let learned = plume_cc::policy::LoadedPolicy::load_or_default(&policy)
                        .context("--explain needs a learned policy")?;
                    let p = plume_cc::explain::predictor::load_predictors(
                        &learned,
                        &policy,
                        dir.as_deref(),
                    )?;
                    if p.metadata().ranges.is_none() {
                        tracing::warn!(
                            "{}: the predictors record no training ranges (fit before they were kept); flows outside them are not flagged: refit with `plume-cc explain fit`",
                            p.source().display()
                        );
                    }
                    Some(daemon::LiveExplainer::new(p, explain_every))
                }
            };
            let mut policy = daemon::load_policy(&policy)?;
            if let Some(o) = objective {
                policy.set_objective(o);
            }
            if competition_rule
                && !policy.set_competition_rule(Some(plume_cc::policy::CompetitionRule::default()))
            {
                anyhow::bail!("--competition-rule needs a learned policy (a scripted schedule has no action mapping)");
            }
            config.resolve(
                policy.contract().as_ref(),
                base.as_deref(),
                force_interval,
                &daemon::available_congestion_controls(),
            )?;
            let stats = rt.block_on(daemon::run(config, policy, stop, explainer))?;
            println!("{}", serde_json::to_string(&stats)?);
        }
        Command::BenchDatapath {
            policy,
            iterations,
            only,
            ebpf_runs,
            json,
            real_flows,
            active,
        } => bench_datapath(
            policy,
            iterations,
            &only,
            ebpf_runs,
            (real_flows as usize, active),
            json,
        )?,
        Command::BenchOverhead {
            duration,
            flows,
            rounds,
            policy,
            iperf3,
            port,
            mss,
            bpf_stats,
            json,
        } => bench_overhead(
            plume_cc::bench::overhead::OverheadConfig {
                duration,
                flows,
                rounds,
                iperf3,
                plume_exe: std::env::current_exe()?,
                policy,
                port,
                mss,
                bpf_stats,
            },
            json,
        )?,
        Command::BenchDecide {
            policy,
            flows,
            iterations,
            json,
        } => {
            let path = policy.unwrap_or_else(|| PathBuf::from("default"));
            let mut load = || Ok(plume_cc::policy::LoadedPolicy::load_or_default(&path)?);
            let rows = daemon::bench::decide(&flows, iterations.max(1), &mut load)?;
            let out = Output::new(json.as_ref().is_some_and(Option::is_none));
            out.line(&format!(
                "decide step, policy {}, 1 libtorch thread, medians of {} calls (us):",
                path.display(),
                iterations.max(1)
            ));
            out.line(&format!(
                "{:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                "flows", "observe", "tensor", "forward", "readback", "mapping", "total", "p99"
            ));
            for r in &rows {
                out.line(&format!(
                    "{:>7} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                    r.flows,
                    r.observe_us,
                    r.tensor_us,
                    r.forward_us,
                    r.readback_us,
                    r.mapping_us,
                    r.total_us,
                    r.total_p99_us
                ));
            }
            json_out(json, "bench-decide", &serde_json::to_value(&rows)?)?;
        }
        Command::Record {
            cgroup,
            out,
            min_duration,
            window,
            sample,
            duration,
            observe,
            pin_dir,
            json,
        } => {
            use daemon::conditions::{record, RecordOptions};
            let opts = RecordOptions {
                cgroup,
                pin_dir,
                observe,
                out,
                sample,
                window,
                min_duration,
                duration,
            };
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            eprintln!(
                "recording the flows of {} into {} (Ctrl-C stops and writes)",
                opts.cgroup.display(),
                opts.out.display()
            );
            let outcome = record(&opts, &mut |p| {
                bar.set_message(format!(
                    "{} flows open, {} seen, {:.1} s network-limited",
                    p.open,
                    p.seen,
                    p.network_limited.as_secs_f64()
                ));
                bar.tick();
            });
            bar.finish_and_clear();
            let o = outcome?;
            if json {
                println!("{}", serde_json::to_string_pretty(&o)?);
            } else {
                println!(
                    "recorded {:.1} s ({} datapath, stopped by {}): {} of {} flows usable, {} windows of {} ms ({} held out), mean delivery {:.2} Mbit/s over network-limited time (a lower bound of capacity); corpus in {}",
                    o.recorded_s,
                    o.datapath,
                    o.stopped_by,
                    o.flows_used,
                    o.flows_seen,
                    o.windows,
                    o.window_ms,
                    o.heldout,
                    o.mean_mbps,
                    opts.out.display()
                );
            }
        }
        Command::Status {
            json,
            pin_dir,
            explain,
        } => {
            // `--pin-dir` naming one datapath's folder (not a folder of them):
            // its error is the answer rather than a warning.
            let single = pin_dir
                .as_deref()
                .is_some_and(plume_cc::datapath::attached_at);
            let dirs = match pin_dir {
                Some(d) => daemon::status::datapaths_at(&d).ok_or_else(|| {
                    anyhow::anyhow!(
                        "--pin-dir {}: no plume-cc datapath is pinned there (neither a pin folder nor a folder of them)",
                        d.display()
                    )
                })?,
                None => daemon::status::pinned_datapaths(),
            };
            if dirs.is_empty() && !json {
                println!(
                    "no running plume-cc datapath (nothing pinned under /sys/fs/bpf/plume-cc)"
                );
            }
            // With --json, stdout holds exactly one JSON document: an array
            // with one entry per datapath (`[]` when none runs).
            let mut docs = Vec::new();
            for dir in dirs {
                let st = match daemon::status::read(&dir) {
                    Ok(st) => st,
                    // A daemon that just stopped removes its pins while we list them.
                    Err(_) if !plume_cc::datapath::attached_at(&dir) => continue,
                    // The one datapath asked for: its error is the answer.
                    Err(e) if single => {
                        return Err(anyhow::Error::new(e)
                            .context(format!("reading the datapath pinned at {}", dir.display())))
                    }
                    // One unreadable datapath (e.g. pinned by another build
                    // whose map layouts differ) must not hide the others:
                    // warn on stderr, so that --json's stdout stays one document.
                    Err(e) => {
                        eprintln!(
                            "plume-cc: warning: skipping the datapath pinned at {}: {}",
                            dir.display(),
                            plume_cc::errors::one_line(&e)
                        );
                        continue;
                    }
                };
                let explained = if explain {
                    plume_cc::explain::live::read_state(
                        &plume_cc::explain::live::state_path(
                            std::path::Path::new(plume_cc::explain::live::STATE_DIR),
                            &dir,
                        ),
                        plume_cc::explain::live::unix_ms(),
                        5_000,
                    )?
                } else {
                    None
                };
                if json {
                    let mut v = serde_json::to_value(&st)?;
                    if explain {
                        v["explain"] = serde_json::to_value(&explained)?;
                    }
                    docs.push(v);
                } else {
                    let c = &st.counters;
                    let cgroup = st
                        .cgroup
                        .as_ref()
                        .map(|c| format!("cgroup {}, ", c.display()))
                        .unwrap_or_default();
                    println!(
                        "{} ({cgroup}{} flows, {}, stale after {} ms)",
                        dir.display(),
                        st.flows.len(),
                        st.mode,
                        st.stale_after_ms
                    );
                    println!(
                        "  counters: opened {} closed {} map-full {} applied {} expired {} setsockopt-errors {} events-dropped {}",
                        c.flows_opened,
                        c.flows_closed,
                        c.flow_map_full,
                        c.targets_applied,
                        c.targets_expired,
                        c.setsockopt_errors,
                        c.events_dropped
                    );
                    print!("{}", daemon::status::table(&st.flows));
                    if explain {
                        match &explained {
                            None => println!(
                                "  no live explanation (is the daemon running with --explain?)"
                            ),
                            Some(x) => print!("{}", plume_cc::explain::live::explain_table(x)),
                        }
                    }
                }
            }
            if json {
                println!("{}", serde_json::to_string(&docs)?);
            }
        }
        Command::Cleanup { pin_dir } => {
            let dirs = match pin_dir {
                Some(d) => vec![d],
                None => daemon::status::pinned_datapaths(),
            };
            if dirs.is_empty() {
                println!("nothing to clean up (nothing pinned under /sys/fs/bpf/plume-cc)");
            }
            for dir in dirs {
                let outcome = daemon::status::cleanup(&dir).with_context(|| {
                    format!("cleaning up the datapath pinned at {}", dir.display())
                })?;
                println!("{}: {outcome}", dir.display());
            }
        }
        Command::Probe {
            connect,
            cgroup,
            held: Some(n),
            active,
            active_connect,
            active_bytes,
            tick,
            ..
        } => {
            let spec = plume_cc::datapath::held::HeldSpec {
                idle_to: connect,
                active_to: active_connect.unwrap_or(connect),
                cgroup,
                flows: n,
                active,
                active_bytes,
                tick,
            };
            plume_cc::datapath::held::run_held(
                &spec,
                std::io::stdin().lock(),
                &mut std::io::stdout().lock(),
            )
            .with_context(|| format!("{n} held flows to {connect}"))?;
        }
        Command::Probe {
            connect,
            cgroup,
            flows: Some(n),
            bytes,
            hold,
            ..
        } => {
            let done = probe::run_many(connect, cgroup.as_deref(), n, bytes, hold)
                .with_context(|| format!("{n} flows to {connect}"))?;
            println!("{}", serde_json::to_string(&done)?);
        }
        Command::Probe {
            connect,
            cgroup,
            duration,
            report,
            flows: None,
            ..
        } => {
            let config = probe::SenderConfig {
                connect,
                cgroup,
                duration,
                report_every: report,
            };
            probe::run_sender(&config, &mut std::io::stdout().lock())
                .with_context(|| format!("probe to {connect}"))?;
        }
        Command::Train(args) => cli::train::run(args)?,
        Command::BenchInference(args) => cli::train::bench(args)?,
        Command::EvalTable(args) => cli::train::eval_table(args)?,
        Command::Emulate(args) => cli::emu::run(&args)?,
        Command::Bench(args) => cli::bench::run(&args)?,
    }
    Ok(())
}

fn bench_datapath(
    policy: Option<PathBuf>,
    iterations: usize,
    only: &[BenchPart],
    ebpf_runs: u32,
    (real_flows, active): (usize, usize),
    json: Option<Option<PathBuf>>,
) -> anyhow::Result<()> {
    use daemon::bench;
    let exe = std::env::current_exe()?;
    let out = Output::new(json.as_ref().is_some_and(Option::is_none));
    // The real-flows part takes a minute and 2 x --real-flows descriptors:
    // only when asked for.
    let wants = |p: BenchPart| only.contains(&p) || (only.is_empty() && p != BenchPart::RealFlows);
    // Default: the embedded learned policy, so `decide` includes the forward.
    let policy_path = policy.unwrap_or_else(|| PathBuf::from("default"));
    let mut make = || daemon::load_policy(&policy_path);
    let mut v = serde_json::Map::new();
    if wants(BenchPart::ControlLoop) {
        out.line(&format!(
            "control step (read + decide + write), policy {}:",
            policy_path.display()
        ));
        out.line(&format!(
            "{:>7} {:>10} {:>10} {:>10} {:>10}",
            "flows", "read_us", "decide_us", "write_us", "total_us"
        ));
        let rows = bench::control_loop(&[1, 100, 1000, 10_000], iterations, &mut make)?;
        for r in &rows {
            out.line(&format!(
                "{:>7} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
                r.flows, r.read_us, r.decide_us, r.write_us, r.total_us
            ));
        }
        v.insert("control_loop".into(), serde_json::to_value(&rows)?);
    }
    if wants(BenchPart::Ebpf) {
        let mut costs = Vec::new();
        for _ in 0..ebpf_runs {
            let cost = bench::ebpf_cost(&exe, Duration::from_secs(3))?;
            out.line(&format!(
                "eBPF sock_ops program: {:.0} ns mean per callback over {} callbacks ({:.0} callbacks/s of a saturating loopback flow; {:.1} % of them copied the statistics)",
                cost.mean_ns, cost.run_count, cost.callbacks_per_sec, cost.snapshot_share * 100.0
            ));
            costs.push(cost);
        }
        // One run: the object as before; several: an array.
        v.insert(
            "ebpf".into(),
            if costs.len() == 1 {
                serde_json::to_value(&costs[0])?
            } else {
                serde_json::to_value(&costs)?
            },
        );
    }
    if wants(BenchPart::DaemonCpu) {
        let cpu = bench::daemon_cpu(&exe, &policy_path, 100, 20, Duration::from_secs(5))?;
        out.line(&format!(
            "daemon CPU with {} flows at a {} ms interval: {:.2}% of one core over {:.1} s",
            cpu.flows, cpu.interval_ms, cpu.cpu_percent, cpu.window_s
        ));
        v.insert("daemon_cpu".into(), serde_json::to_value(&cpu)?);
    }
    if wants(BenchPart::RealFlows) {
        anyhow::ensure!(
            active <= real_flows,
            "--active {active} exceeds --real-flows {real_flows}"
        );
        let rf = bench::real_flows(
            &exe,
            real_flows,
            active,
            iterations,
            Duration::from_millis(20),
            &mut make,
        )?;
        out.line(&format!(
            "real flows: {} connections ({} active) opened in {} ms, all registered after {} ms",
            rf.flows, rf.active, rf.open_ms, rf.register_ms
        ));
        out.line(&format!(
            "control step over {} steps at {} ms, policy {}: read {:.1} us, decide {:.1} us, write {:.1} us, total {:.1} us median, {:.1} us p99",
            rf.iterations,
            rf.interval_ms,
            policy_path.display(),
            rf.read_us,
            rf.decide_us,
            rf.write_us,
            rf.total_us,
            rf.total_p99_us
        ));
        out.line(&format!(
            "limits in force as last written: {} of {} flows ({} confirmed by the socket's own pacing cap, {} carrying a limit); after close: {} flow and {} target entries left after {} ms",
            rf.applied,
            rf.flows,
            rf.kernel_agrees,
            rf.limited,
            rf.flows_left,
            rf.targets_left,
            rf.close_ms
        ));
        v.insert("real_flows".into(), serde_json::to_value(&rf)?);
    }
    json_out(json, "bench-datapath", &serde_json::Value::Object(v))
}

fn bench_overhead(
    cfg: plume_cc::bench::overhead::OverheadConfig,
    json: bool,
) -> anyhow::Result<()> {
    use plume_cc::bench::overhead;
    cfg.validate()?;
    overhead::preflight()?;
    let out = Output::new(json);
    let total = (cfg.rounds * overhead::Mode::ALL.len()) as u64;
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(indicatif::ProgressStyle::with_template(
        "{bar:30} {pos}/{len} runs, {elapsed} elapsed, ~{eta} left  {msg}",
    )?);
    let report = overhead::run(&cfg, &mut |r| {
        bar.set_message(format!(
            "round {} {}: {:.2} Gbit/s, {:.0} CPU ns/kB",
            r.round,
            r.mode.name(),
            r.gbps,
            r.cpu_ns_per_kb
        ));
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    for line in overhead::table(&report).lines() {
        out.line(line);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

/// Where a command's human-readable lines go: stdout, or stderr when
/// stdout is reserved for one JSON document (`--json`).
struct Output {
    json: bool,
}

impl Output {
    fn new(json: bool) -> Self {
        Self { json }
    }

    fn line(&self, text: &str) {
        if self.json {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    }
}

/// The end of a command with `--json [FILE]`: `--json` prints `doc` on
/// stdout; the old `--json FILE` writes it to FILE, with a deprecation
/// warning.
fn json_out(
    json: Option<Option<PathBuf>>,
    command: &str,
    doc: &serde_json::Value,
) -> anyhow::Result<()> {
    match json {
        None => {}
        Some(None) => println!("{}", serde_json::to_string_pretty(doc)?),
        Some(Some(path)) => {
            cli::args::deprecated(
                &format!("{command} --json {}", path.display()),
                &format!("{command} --json > {}", path.display()),
            );
            std::fs::write(&path, serde_json::to_string_pretty(doc)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(())
}

/// Whether stderr is the systemd journal: systemd sets JOURNAL_STREAM to
/// the `DEVICE:INODE` of the stream it connects to stdout/stderr
/// (systemd.exec(5)); an inherited variable with another stderr is ignored.
fn stderr_is_journal() -> bool {
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    // SAFETY: fstat on fd 2 into a zeroed stat buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(2, &mut st) } != 0 {
        return false;
    }
    dev.parse() == Ok(st.st_dev) && ino.parse() == Ok(st.st_ino)
}

/// Sets up `tracing` on stderr in `format` (see `--log-format`); `RUST_LOG`
/// filters (default `info`).
fn init_logging(format: LogFormat) {
    use tracing_subscriber::{layer::SubscriberExt as _, util::SubscriberInitExt as _, Layer as _};
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let journal = stderr_is_journal();
    let format = match format {
        LogFormat::Auto if journal => LogFormat::Journald,
        LogFormat::Auto => LogFormat::Text,
        f => f,
    };
    let mut fallback = None;
    let layer = match format {
        LogFormat::Journald => match tracing_journald::layer() {
            Ok(l) => Some(l.boxed()),
            Err(e) => {
                fallback = Some(e);
                None
            }
        },
        LogFormat::Json => Some(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(std::io::stderr)
                .boxed(),
        ),
        _ => None,
    };
    let layer = layer.unwrap_or_else(|| {
        let text = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            // Colour codes only for a person at a terminal, never in logs.
            .with_ansi(!journal && std::io::IsTerminal::is_terminal(&std::io::stderr()));
        // The journal stamps every line itself.
        if journal {
            text.without_time().boxed()
        } else {
            text.boxed()
        }
    });
    tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .init();
    if let Some(e) = fallback {
        tracing::warn!("no journald socket ({e}): logging text on stderr");
    }
}

/// One batched forward through libtorch, to show the policy runtime is there.
fn libtorch_check() -> anyhow::Result<String> {
    let x = tch::Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]).reshape([2, 2]);
    let y = x.matmul(&x).sum(tch::Kind::Float).double_value(&[]);
    anyhow::ensure!(
        (y - 54.0).abs() < 1e-6,
        "libtorch returned {y} for a known product"
    );
    Ok("libtorch loaded (batched forward OK)".to_string())
}
