//! `plume-cc` command line. For now only `plume-cc traces synth|analyze`;
//! the daemon and training subcommands join here.
use clap::Parser;

/// A learned TCP congestion controller for the Linux datapath.
#[derive(Debug, Parser)]
#[command(name = "plume-cc", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Link traces: synthesize, analyse with the Plume pipeline.
    #[command(subcommand)]
    Traces(plume_cc::trace::cli::TracesCommand),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Traces(cmd) => plume_cc::trace::cli::run(cmd),
    }
}
