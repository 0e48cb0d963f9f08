//! The daemon's CPU share with open flows: a `plume-cc run` process timed
//! from /proc while a sender holds connections in its cgroup. Its own file
//! because it measures another process, not this one's steps.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde::Serialize;

use super::{io_err, loopback, DaemonBenchError};
use crate::datapath::{cgroup::OwnedCgroup, probe::Sink};

/// The daemon's CPU share with `flows` open flows.
#[derive(Clone, Debug, Serialize)]
pub struct DaemonCpu {
    /// Flows open during the measurement.
    pub flows: usize,
    /// Monitor interval, milliseconds.
    pub interval_ms: u64,
    /// CPU time of the daemon process / wall time, percent of one core.
    pub cpu_percent: f64,
    /// Measurement window, seconds.
    pub window_s: f64,
}

fn cpu_ticks(pid: u32) -> Result<u64, DaemonBenchError> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(io_err(format!("reading {path}")))?;
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let after = stat.rsplit_once(')').map(|(_, a)| a).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    Ok(f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0))
}

/// Starts `plume-cc run` with `policy` on a fresh cgroup, opens `flows`
/// connections in it, and measures the daemon's CPU over `window`.
pub fn daemon_cpu(
    exe: &Path,
    policy: &Path,
    flows: usize,
    interval_ms: u64,
    window: Duration,
) -> Result<DaemonCpu, DaemonBenchError> {
    let cgroup = OwnedCgroup::create_unique("plume-cc-bench")?;
    let pin_dir = format!("/sys/fs/bpf/plume-cc/bench-cpu-{}", std::process::id());
    let mut daemon = Command::new(exe)
        .args([
            "run",
            "--interval",
            &format!("{interval_ms}ms"),
            "--pin-dir",
            &pin_dir,
        ])
        .arg("--policy")
        .arg(policy)
        .arg("--cgroup")
        .arg(cgroup.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(io_err(format!("starting the daemon {}", exe.display())))?;
    std::thread::sleep(Duration::from_secs(2));
    let sink = Sink::start(loopback()).map_err(io_err("starting the loopback sink"))?;
    let hold = window + Duration::from_secs(2);
    let mut senders = Command::new(exe)
        .args([
            "probe",
            "--connect",
            &sink.addr().to_string(),
            "--flows",
            &flows.to_string(),
        ])
        .args([
            "--bytes",
            "100000",
            "--hold",
            &format!("{}ms", hold.as_millis()),
        ])
        .arg("--cgroup")
        .arg(cgroup.path())
        .stdout(Stdio::null())
        .spawn()
        .map_err(io_err(format!("starting the senders {}", exe.display())))?;
    std::thread::sleep(Duration::from_secs(1));
    let hz = 100.0; // USER_HZ on Linux
    let t0 = cpu_ticks(daemon.id())?;
    let w0 = Instant::now();
    std::thread::sleep(window);
    let t1 = cpu_ticks(daemon.id())?;
    let wall = w0.elapsed().as_secs_f64();
    senders.wait().map_err(io_err("waiting for the senders"))?;
    // SAFETY: SIGTERM to our own child: the daemon releases and detaches.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    daemon.wait().map_err(io_err("waiting for the daemon"))?;
    cgroup.remove()?;
    Ok(DaemonCpu {
        flows,
        interval_ms,
        cpu_percent: (t1 - t0) as f64 / hz / wall * 100.0,
        window_s: wall,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_read_names_its_file() {
        let e = cpu_ticks(u32::MAX).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("reading /proc/{}/stat: ", u32::MAX)),
            "{e}"
        );
    }
}
