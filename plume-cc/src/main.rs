//! The `plume-cc` command line. Thin: parsing and printing only; the work is
//! in the library modules.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use plume_cc::datapath::{probe, selftest};

/// plume-cc: a learned TCP congestion controller for the Linux datapath.
#[derive(Debug, Parser)]
#[command(name = "plume-cc", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check the datapath end to end on this host (needs root): attach the
    /// sock_ops program to a fresh cgroup, run a loopback transfer in it, clamp
    /// its cwnd, verify the sender obeys, release it, clean up.
    Selftest {
        /// cwnd clamp to apply, segments.
        #[arg(long, default_value_t = 4)]
        clamp: u32,
        /// How long the test transfer runs, milliseconds.
        #[arg(long, default_value_t = 2000)]
        duration_ms: u64,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send TCP data as fast as allowed and print the socket's TCP_INFO as
    /// JSON lines (used by tests and the self-test).
    Probe {
        /// Address to connect to.
        #[arg(long)]
        connect: SocketAddr,
        /// Join this cgroup v2 folder first, so the flow is under the datapath.
        #[arg(long)]
        cgroup: Option<PathBuf>,
        /// How long to send, milliseconds.
        #[arg(long, default_value_t = 1000)]
        duration_ms: u64,
        /// Report interval, milliseconds.
        #[arg(long, default_value_t = 20)]
        report_ms: u64,
    },
    /// Train a policy with PPO in the simulator (used by `cargo xtask train`).
    #[command(hide = true)]
    Train(plume_cc::rl::cli::TrainArgs),
    /// Time one batched policy forward for several flow counts.
    #[command(hide = true)]
    BenchInference(plume_cc::rl::cli::BenchArgs),
    /// Summarise the held-out scores of several training runs.
    #[command(hide = true)]
    EvalTable(plume_cc::rl::cli::EvalTableArgs),
    /// Link traces: synthesize, analyse with the Plume pipeline.
    #[command(subcommand)]
    Traces(plume_cc::trace::cli::TracesCommand),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Selftest {
            clamp,
            duration_ms,
            json,
        } => {
            let opts = selftest::SelfTestOptions {
                probe_exe: std::env::current_exe().context("locating plume-cc itself")?,
                clamp,
                duration: Duration::from_millis(duration_ms),
            };
            println!("plume-cc selftest: {}", libtorch_check()?);
            let report = selftest::run(&opts, &mut |line| println!("  {line}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
            println!("selftest passed");
        }
        Command::Probe {
            connect,
            cgroup,
            duration_ms,
            report_ms,
        } => {
            let config = probe::SenderConfig {
                connect,
                cgroup,
                duration: Duration::from_millis(duration_ms),
                report_every: Duration::from_millis(report_ms),
            };
            probe::run_sender(&config, &mut std::io::stdout().lock())
                .with_context(|| format!("probe to {connect}"))?;
        }
        Command::Train(args) => plume_cc::rl::cli::run(args)?,
        Command::BenchInference(args) => plume_cc::rl::cli::bench(args)?,
        Command::EvalTable(args) => plume_cc::rl::cli::eval_table(args)?,
        Command::Traces(cmd) => plume_cc::trace::cli::run(cmd)?,
    }
    Ok(())
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
