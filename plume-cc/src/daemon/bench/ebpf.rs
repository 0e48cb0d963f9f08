//! The sock_ops program's cost per callback, from the kernel's own BPF run
//! statistics over a loopback transfer. Its own file because it alone
//! turns `kernel.bpf_stats_enabled` on and off (and `bench-overhead` calls
//! that switch too).

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use plume_cc_common::{DatapathConfig, PACING_UNLIMITED};
use serde::Serialize;

use super::{io_err, loopback, DaemonBenchError};
use crate::datapath::{cgroup::OwnedCgroup, floor::FloorProgram, probe::Sink, Datapath};

/// The sock_ops program's cost per callback, from the kernel's statistics,
/// beside the floor's measured in the same run.
#[derive(Clone, Debug, Serialize)]
pub struct EbpfCost {
    /// Callbacks run.
    pub run_count: u64,
    /// Mean nanoseconds per callback.
    pub mean_ns: f64,
    /// Callbacks per second of transfer.
    pub callbacks_per_sec: f64,
    /// Of the callbacks that checked a target (RTT, retransmission, RTO),
    /// the share that also copied the flow's statistics (the rest were
    /// spared by the snapshot quantum).
    pub snapshot_share: f64,
    /// Callbacks that found their slot through the cookie hash instead of
    /// the socket's storage (`counters::SLOT_HASH_LOOKUPS`): 0 when every
    /// callback took the storage path.
    pub slot_hash_lookups: u64,
    /// Mean nanoseconds per callback of the floor program (it only enables
    /// the same callbacks; `plume_floor` in plume-cc-ebpf), on the same
    /// kind of transfer, its phases interleaved with the program's: the
    /// hook and the statistics' clock reads, which no program removes.
    pub floor_ns: f64,
    /// Callbacks the floor program ran.
    pub floor_run_count: u64,
    /// The floor's callbacks per second of transfer.
    pub floor_callbacks_per_sec: f64,
}

/// Which program a phase of [`ebpf_cost`]'s transfer runs under.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Floor,
    Program,
}

/// The phases of [`ebpf_cost`]: floor, program, floor, program, so that
/// what the machine does meanwhile falls on both alike.
const PHASES: [Phase; 4] = [Phase::Floor, Phase::Program, Phase::Floor, Phase::Program];

/// Turns `kernel.bpf_stats_enabled` on or off; returns whether it was on.
/// (The statistics cost two clock reads per program run, so they are only
/// on while measured.)
pub fn set_bpf_stats(on: bool) -> Result<bool, DaemonBenchError> {
    let p = "/proc/sys/kernel/bpf_stats_enabled";
    let before = std::fs::read_to_string(p).map_err(io_err("reading kernel.bpf_stats_enabled"))?;
    std::fs::write(p, if on { "1" } else { "0" })
        .map_err(io_err("writing kernel.bpf_stats_enabled"))?;
    Ok(before.trim() == "1")
}

/// Runs a loopback transfer under the datapath (with a target refreshed every
/// 10 ms, so the apply path runs too) and reads the program's run statistics;
/// the same under the floor program ([`EbpfCost::floor_ns`]), each in its
/// own cgroup, in interleaved phases of `duration / 2` (so each program
/// sees `duration` of transfer).
pub fn ebpf_cost(probe_exe: &Path, duration: Duration) -> Result<EbpfCost, DaemonBenchError> {
    let was_on = set_bpf_stats(true)?;
    let result = (|| -> Result<EbpfCost, DaemonBenchError> {
        let cgroup = OwnedCgroup::create_unique("plume-cc-bench")?;
        let floor_cgroup = OwnedCgroup::create_unique("plume-cc-bench-floor")?;
        // Configured as the daemon runs it at its default 20 ms interval.
        let config = DatapathConfig {
            snapshot_every_ns: 5_000_000,
            ..DatapathConfig::default()
        };
        let mut dp = Datapath::attach(cgroup.path(), config)?;
        let floor = FloorProgram::attach(floor_cgroup.path())?;
        let sink = Sink::start(loopback()).map_err(io_err("starting the loopback sink"))?;
        let phase_len = duration / 2;
        let (mut wall, mut floor_wall) = (Duration::ZERO, Duration::ZERO);
        for phase in PHASES {
            let group = match phase {
                Phase::Floor => floor_cgroup.path(),
                Phase::Program => cgroup.path(),
            };
            let mut child = Command::new(probe_exe)
                .args(["probe", "--connect", &sink.addr().to_string()])
                .args([
                    "--duration",
                    &format!("{}ms", phase_len.as_millis()),
                    "--report",
                    "100ms",
                ])
                .arg("--cgroup")
                .arg(group)
                .stdout(Stdio::null())
                .spawn()
                .map_err(io_err(format!("starting {}", probe_exe.display())))?;
            let start = Instant::now();
            while child
                .try_wait()
                .map_err(io_err("waiting for the sender"))?
                .is_none()
            {
                if phase == Phase::Program {
                    for (cookie, _) in dp.flows()? {
                        dp.set_target(cookie, 64, PACING_UNLIMITED)?;
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            match phase {
                Phase::Floor => floor_wall += start.elapsed(),
                Phase::Program => wall += start.elapsed(),
            }
        }
        let (count, ns) = dp.program_run_stats()?;
        let (floor_count, floor_ns) = floor.run_stats()?;
        let c = dp.counters()?;
        drop(dp);
        drop(floor);
        cgroup.remove()?;
        floor_cgroup.remove()?;
        if count == 0 || floor_count == 0 {
            return Err(DaemonBenchError::NeverRan);
        }
        Ok(EbpfCost {
            run_count: count,
            mean_ns: ns as f64 / count as f64,
            callbacks_per_sec: count as f64 / wall.as_secs_f64(),
            // Flows flush their target checks and snapshots in bulk (at
            // the next write of targets, which comes every 10 ms here, and
            // at close), so the share is over nearly every callback.
            snapshot_share: c.snapshots as f64 / c.target_checks.max(1) as f64,
            slot_hash_lookups: c.slot_hash_lookups,
            floor_ns: floor_ns as f64 / floor_count as f64,
            floor_run_count: floor_count,
            floor_callbacks_per_sec: floor_count as f64 / floor_wall.as_secs_f64(),
        })
    })();
    set_bpf_stats(was_on)?;
    result
}
