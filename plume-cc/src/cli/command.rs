//! The whole command line of `plume-cc`: the clap tree that both binaries
//! parse. The front (`src/main.rs`) parses it first, so `--help`, `CMD
//! --help` and usage errors (exit 2) come from it without libtorch; the
//! engine (`src/bin/plume-cc-engine.rs`) parses the same argv again when
//! the front hands a command over. One definition keeps the two in step.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Parser, Subcommand};

use plume_cc::args::BareUnit;

use super::args::{number, whole, DurationArg};

/// plume-cc: a learned TCP congestion controller for the Linux datapath.
#[derive(Debug, Parser)]
#[command(name = "plume-cc", bin_name = "plume-cc", version, about, long_about = None)]
pub struct Cli {
    /// Log format on stderr: `auto` (the systemd journal with its fields
    /// when stderr is the journal, as under a unit; else `text`), `text`
    /// (colour only at a terminal; no timestamps under systemd, which adds
    /// its own), `json` (one object per line) or `journald`.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// A part of `bench-datapath`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchPart {
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
pub enum LogFormat {
    Auto,
    Text,
    Json,
    Journald,
}

#[derive(Debug, Subcommand)]
pub enum Command {
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
        /// Act with action 0 on every flow (the policy's fixed rule: a clamp
        /// of `cwnd_gain` BDPs and a pacing cap of `pacing_gain` times the
        /// rate anchor, through the same observation, mapping and step
        /// limit) instead of the network's actions: the baseline a learned
        /// policy must beat, on the real datapath (bench scheme `fixed`).
        #[arg(long)]
        fixed_rule: bool,
        /// Segments added to every clamp of a learned policy (and as many per
        /// min RTT to its pacing cap), overriding its file: an additive
        /// increase that lets the flows of one bottleneck converge to equal
        /// shares (docs/TRAINING.md, "An additive term"); 0 turns it off.
        #[arg(long, allow_negative_numbers = true, value_name = "SEGMENTS", value_parser = number::<f32>())]
        additive_segments: Option<f32>,
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
        #[arg(long, allow_negative_numbers = true, default_value_t = 10, value_parser = whole::<u64>().range(1..=100_000))]
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
        #[arg(long, allow_negative_numbers = true, default_value_t = 200, value_parser = whole::<usize>())]
        iterations: usize,
        /// Only these parts (comma-separated): `control-loop`, `ebpf`,
        /// `daemon-cpu` [default: all three].
        #[arg(long, value_enum, value_delimiter = ',')]
        only: Vec<BenchPart>,
        /// Repeat the eBPF cost measurement this many times (one line each;
        /// the spread matters on a shared machine).
        #[arg(long, allow_negative_numbers = true, default_value_t = 1, value_parser = whole::<u32>().range(1..=50))]
        ebpf_runs: u32,
        /// `real-flows`: connections held open in the cgroup.
        #[arg(long, allow_negative_numbers = true, default_value_t = 10_000, value_parser = whole::<u64>().range(1..=60_000))]
        real_flows: u64,
        /// `real-flows`: how many of them send all the time.
        #[arg(long, allow_negative_numbers = true, default_value_t = 100, value_parser = whole::<usize>())]
        active: usize,
        /// Keep every flow's observation at every step, as the daemon does
        /// under `run --explain` with predictors that read a flow's past
        /// (else a per-copy policy writes the due flows' only).
        #[arg(long)]
        keep_observed: bool,
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
        #[arg(long, allow_negative_numbers = true, default_value_t = 1, value_parser = whole::<usize>())]
        flows: usize,
        /// Rounds; each runs the three modes once, in a rotating order.
        #[arg(long, allow_negative_numbers = true, default_value_t = 5, value_parser = whole::<usize>())]
        rounds: usize,
        /// Policy of the daemon mode (default: the embedded learned policy).
        #[arg(long)]
        policy: Option<PathBuf>,
        /// The iperf3 program.
        #[arg(long, default_value = "iperf3")]
        iperf3: PathBuf,
        /// First loopback port of the iperf3 server (one more per run).
        #[arg(long, allow_negative_numbers = true, default_value_t = 5400, value_parser = whole::<u16>())]
        port: u16,
        /// The client's MSS in bytes (iperf3 -M), e.g. 1448 for an
        /// Ethernet path's ACK rate [default: loopback's, about 64 KB].
        #[arg(long, allow_negative_numbers = true, value_parser = whole::<u32>())]
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
        #[arg(long, allow_negative_numbers = true, value_delimiter = ',', default_value = "1,100,1000,10000", value_parser = whole::<usize>())]
        flows: Vec<usize>,
        /// Calls per flow count.
        #[arg(long, allow_negative_numbers = true, default_value_t = 200, value_parser = whole::<usize>())]
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
        #[arg(long, allow_negative_numbers = true, default_value_t = 4, value_parser = whole::<u32>())]
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
        /// The sender's congestion control (`TCP_CONGESTION`, e.g. `cubic`);
        /// the namespace's default when absent.
        #[arg(long)]
        congestion: Option<String>,
        /// Instead of one long transfer: open this many connections at once,
        /// send `--bytes` on each, hold them `--hold-ms`, close them all.
        #[arg(long, allow_negative_numbers = true, value_parser = whole::<usize>())]
        flows: Option<usize>,
        /// Bytes per connection with `--flows`.
        #[arg(long, allow_negative_numbers = true, default_value_t = 100_000, value_parser = whole::<usize>())]
        bytes: usize,
        /// How long `--flows` connections stay open after sending.
        #[arg(long, alias = "hold-ms", default_value = "300ms", value_parser = DurationArg::legacy(BareUnit::Ms))]
        hold: Duration,
        /// Instead: hold this many connections open (to `--connect`, the
        /// idle ones, and `--active-connect`, the active ones), print their
        /// cookies as one JSON line, then answer `poke`, `report` and
        /// `close` commands read from stdin (the scale test and
        /// `bench-datapath --only real-flows` drive it).
        #[arg(long, allow_negative_numbers = true, conflicts_with = "flows", value_parser = whole::<usize>())]
        held: Option<usize>,
        /// With `--held`: how many of the connections send all the time.
        #[arg(long, allow_negative_numbers = true, default_value_t = 0, requires = "held", value_parser = whole::<usize>())]
        active: usize,
        /// With `--held`: where the active connections go (default: `--connect`).
        #[arg(long, requires = "held")]
        active_connect: Option<SocketAddr>,
        /// With `--held`: bytes each active connection writes per tick.
        #[arg(long, allow_negative_numbers = true, default_value_t = 16_384, requires = "held", value_parser = whole::<usize>())]
        active_bytes: usize,
        /// With `--held`: the active connections' write period.
        #[arg(long, default_value = "20ms", value_parser = DurationArg::new(), requires = "held")]
        tick: Duration,
    },
    /// Train a policy with PPO in the simulator (what `cargo xtask train` runs).
    Train(super::train::TrainArgs),
    /// Time one batched policy forward for several flow counts.
    #[command(hide = true)]
    BenchInference(super::train::BenchArgs),
    /// Summarise the held-out scores of several training runs.
    #[command(hide = true)]
    EvalTable(super::train::EvalTableArgs),
    /// Link traces: write synthetic ones, analyse a folder with the Plume
    /// pipeline (features, critical-feature selection, clustering).
    #[command(subcommand)]
    Traces(super::trace::TracesCommand),
    /// Run a command behind an emulated link (Mahimahi's mm-delay + mm-link
    /// in user space; needs root).
    Emulate(super::emu::Args),
    /// Evaluate a policy: `eval sim-to-real` runs the same windows in the
    /// simulator and across the emulated link with the real kernel.
    #[command(subcommand)]
    Eval(super::eval::EvalCommand),
    /// Explain the policy's decisions: `explain fit` fits predictors of each
    /// reward component's future (throughput, queueing delay, loss) under
    /// the policy's action and contrasting ones; `explain run` explains
    /// every decision of a replayed trace window (CSV + PNG).
    #[command(subcommand)]
    Explain(super::explain::ExplainCommand),
    /// Policy files: `policy derive` writes one with the same weights and a
    /// changed action mapping (spans, default operating point, competition
    /// rule), recorded in its policy.json.
    #[command(subcommand)]
    Policy(super::policy::PolicyCommand),
    /// Benchmark congestion controls with iperf3 across the emulated link
    /// (what `cargo xtask bench` runs; needs root).
    Bench(super::bench::Args),
    /// Run the daemon as a systemd service: `service install` writes
    /// plume-cc.service and plume-cc.slice and starts it; applications put
    /// in the slice (`systemd-run --slice=plume-cc.slice CMD`) are controlled.
    #[command(subcommand)]
    Service(super::service::ServiceCommand),
}

impl Cli {
    /// Parses the process's argv, or prints help, the version or a usage
    /// error the way clap's own `exit` would (help and version on stdout
    /// with 0, usage errors on stderr with 2) and ends the process. The
    /// flags' deprecation warnings gathered so far come first, as they did
    /// when parsing printed them.
    pub fn parse_or_exit() -> Self {
        match Self::try_parse() {
            Ok(cli) => cli,
            Err(e) => {
                super::args::print_parse_warnings();
                let _ = e.print();
                super::logging::quick_exit(e.exit_code())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::any::TypeId;

    use clap::{CommandFactory as _, Parser as _};

    use super::Cli;

    /// Every numeric flag of every command, found by walking the clap
    /// tree: a word for its value is refused with the accepted form
    /// (`args::whole`, `args::number`, `--mbps`'s `positive_f64`, or
    /// `eval`'s step counts), never with Rust's bare "invalid digit found in
    /// string". A flag added later with clap's default parser fails here.
    #[test]
    fn every_numeric_flag_names_its_accepted_form() {
        let numeric = [
            TypeId::of::<u8>(),
            TypeId::of::<u16>(),
            TypeId::of::<u32>(),
            TypeId::of::<u64>(),
            TypeId::of::<usize>(),
            TypeId::of::<i32>(),
            TypeId::of::<i64>(),
            TypeId::of::<f32>(),
            TypeId::of::<f64>(),
        ];
        fn walk(cmd: &clap::Command, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, String)>) {
            for sub in cmd.get_subcommands() {
                path.push(sub.get_name().to_string());
                walk(sub, path, out);
                path.pop();
            }
            for arg in cmd.get_arguments() {
                if let Some(long) = arg.get_long() {
                    out.push((path.clone(), long.to_string()));
                }
            }
        }
        let cli = Cli::command();
        let mut flags = Vec::new();
        walk(&cli, &mut Vec::new(), &mut flags);
        let mut checked = 0;
        for (path, long) in flags {
            let mut cmd = &cli;
            for p in &path {
                cmd = cmd.find_subcommand(p).unwrap();
            }
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_long() == Some(long.as_str()))
                .unwrap();
            let id = arg.get_value_parser().type_id();
            if !numeric.iter().any(|t| id == *t) {
                continue;
            }
            let argv = std::iter::once("plume-cc".to_string())
                .chain(path.iter().cloned())
                .chain([format!("--{long}"), "abc".into()]);
            let e = match Cli::try_parse_from(argv) {
                Ok(cli) => panic!("{path:?} --{long} abc accepted: {cli:?}"),
                Err(e) => e.to_string(),
            };
            // `expected a ...` (whole, number); `e.g.` (`--mbps`, step counts).
            assert!(
                e.contains("expected a") || e.contains("e.g."),
                "{path:?} --{long}: {e}"
            );
            assert!(!e.contains("invalid digit"), "{path:?} --{long}: {e}");
            checked += 1;
        }
        assert!(checked > 50, "only {checked} numeric flags found");
    }
}
