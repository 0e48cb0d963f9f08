//! `plume-cc bench-overhead`: what the datapath costs a saturating transfer.
//!
//! Issue 14 asks what an operator pays at line rate, not in a synthetic
//! loop: a loopback iperf3 transfer (one or several parallel flows, the
//! client in a cgroup this module creates, the server outside it) runs for
//! the same time in three modes:
//! - `none`: no program attached to the cgroup (the kernel alone);
//! - `observe`: the sock_ops program attached in observe-only mode (it
//!   records every flow's statistics on every callback, applies nothing);
//! - `daemon`: `plume-cc run` on the cgroup with its policy (by default the
//!   embedded learned one), reading and steering every flow each interval.
//!
//! The modes are interleaved within each round, in an order that rotates
//! from round to round, so that a machine whose load drifts (other builds
//! on a shared VM) disturbs them alike. Per run: throughput (iperf3's
//! received bytes over the test time) and CPU per byte, the CPU being that
//! of the iperf3 client and server (their rusage, user + system), of the
//! kernel's softirq threads (where loopback receive work lands when it is
//! deferred) and, in `daemon` mode, of the daemon. The machine-wide busy
//! time from /proc/stat is kept beside it, as context: other work on the
//! machine counts there too. Each mode's overhead is the median over rounds
//! of its ratio to the same round's `none` run, with the range.
//!
//! Here: the rounds (every mode once per round, in a rotating order) and
//! the check that the datapath can be attached at all. One file per
//! concern besides:
//! - `config`: the modes and the settings, with their ranges;
//! - `transfer`: one iperf3 transfer in one mode, with its CPU accounted;
//! - `cpu`: what /proc says of CPU time (children, threads, the machine);
//! - `iperf3`: reading iperf3's `-J` report;
//! - `report`: the runs, their summary per mode against `none`, and the
//!   side-by-side table.

mod config;
mod cpu;
mod iperf3;
mod report;
mod transfer;

pub use config::{Mode, OverheadConfig};
pub use iperf3::{parse_iperf3, Iperf3ReportError};
pub use report::{summarize, table, ModeSummary, OverheadReport, OverheadRun};

use transfer::run_one;

use crate::datapath;

use super::BenchError;

/// The modes of round `round`: [`Mode::ALL`] rotated by the round number.
pub fn round_order(round: usize) -> [Mode; 3] {
    let mut m = Mode::ALL;
    m.rotate_left(round % 3);
    m
}

/// Runs every round and mode; `progress` is called after each run.
pub fn run(
    cfg: &OverheadConfig,
    progress: &mut dyn FnMut(&OverheadRun),
) -> Result<OverheadReport, BenchError> {
    cfg.validate()?;
    let mut runs = Vec::new();
    let mut port = cfg.port;
    for round in 0..cfg.rounds {
        for mode in round_order(round) {
            let r = run_one(cfg, round, mode, port)?;
            progress(&r);
            runs.push(r);
            // A fresh port per run: no TIME_WAIT or lingering listener of
            // the previous run can be in the way.
            port = if port == u16::MAX { cfg.port } else { port + 1 };
        }
    }
    Ok(OverheadReport {
        duration_s: cfg.duration.as_secs(),
        mss: cfg.mss,
        flows: cfg.flows,
        rounds: cfg.rounds,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        summary: summarize(&runs),
        runs,
    })
}

/// Whether the datapath can be attached here at all (root, cgroup v2,
/// bpffs): checked before the first run so the error comes at once.
pub fn preflight() -> Result<(), BenchError> {
    datapath::cgroup::cgroup2_mount()
        .map(|_| ())
        .map_err(|e| BenchError::Scheme(format!("cgroup v2: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_rotate_the_mode_order() {
        assert_eq!(round_order(0), [Mode::None, Mode::Observe, Mode::Daemon]);
        assert_eq!(round_order(1), [Mode::Observe, Mode::Daemon, Mode::None]);
        assert_eq!(round_order(2), [Mode::Daemon, Mode::None, Mode::Observe]);
        assert_eq!(round_order(3), round_order(0));
    }
}
