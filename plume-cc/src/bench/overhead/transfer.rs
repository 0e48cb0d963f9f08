//! One transfer in one mode: the mode's setup (nothing, the program
//! observing, or the daemon), a one-off iperf3 server and its client, and
//! the CPU of everything that worked for the transfer. Its own file
//! because it alone starts processes and attaches the datapath.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use super::cpu::{
    children_cpu_s, loadavg, machine_busy_ticks, proc_ticks, softirq_threads, user_hz,
};
use super::iperf3::{parse_iperf3, seconds_of};
use super::{Mode, OverheadConfig, OverheadRun};
use crate::bench::scheme::{Scheme, SenderSetup};
use crate::bench::BenchError;
use crate::datapath::{cgroup::OwnedCgroup, Datapath};

/// Waits until a TCP socket listens on 127.0.0.1:`port`.
fn wait_listening(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let needle = format!("0100007F:{port:04X} 00000000:0000 0A");
    while Instant::now() < deadline {
        let text = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        if text.contains(&needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Kills and reaps a child left running when a run ends early.
struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            if matches!(c.try_wait(), Ok(None)) {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
}

/// One transfer in one mode.
pub(super) fn run_one(
    cfg: &OverheadConfig,
    round: usize,
    mode: Mode,
    port: u16,
) -> Result<OverheadRun, BenchError> {
    let label = format!("round {round} {}", mode.name());
    // kernel.bpf_stats_enabled as found, restored after an observe run.
    let mut stats_were_on = false;
    let (setup, observer) = match mode {
        Mode::Daemon => {
            let scheme = Scheme::Plume {
                policy: cfg.policy.clone(),
                daemon_args: Vec::new(),
                label: "plume".into(),
            };
            let log = std::env::temp_dir().join(format!(
                "plume-cc-bench-overhead-{}-daemon.log",
                std::process::id()
            ));
            (scheme.start(&cfg.plume_exe, &log)?, None)
        }
        Mode::None | Mode::Observe => {
            let cg = OwnedCgroup::create_unique("plume-overhead")
                .map_err(|e| BenchError::Scheme(format!("{label}: {e}")))?;
            let observer = if mode == Mode::Observe {
                if cfg.bpf_stats {
                    stats_were_on = crate::daemon::bench::set_bpf_stats(true)
                        .map_err(|e| BenchError::Scheme(format!("{label}: {e:#}")))?;
                }
                let config = plume_cc_common::DatapathConfig {
                    enforce: 0,
                    ..Default::default()
                };
                Some(
                    Datapath::attach(cg.path(), config)
                        .map_err(|e| BenchError::Scheme(format!("{label}: {e}")))?,
                )
            } else {
                None
            };
            (SenderSetup::cgroup_only(cg), observer)
        }
    };
    let mut server = Command::new(&cfg.iperf3);
    // Killed with this process, however it ends (bench::cancel).
    crate::bench::cancel::die_with_parent(&mut server, libc::SIGKILL);
    let server = server
        .args(["-s", "-1", "-B", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            BenchError::Scheme(format!("{label}: starting {}: {e}", cfg.iperf3.display()))
        })?;
    let mut server = KillOnDrop(Some(server));
    if !wait_listening(port, Duration::from_secs(5)) {
        return Err(BenchError::Iperf {
            run: label,
            msg: format!("the server did not listen on 127.0.0.1:{port} within 5 s"),
        });
    }
    let mut client = Command::new(&cfg.iperf3);
    client
        .args(["-c", "127.0.0.1", "-p", &port.to_string(), "-J"])
        .args(["-t", &cfg.duration.as_secs().to_string()])
        .args(["-P", &cfg.flows.to_string()])
        .args(
            cfg.mss
                .map(|m| ["-M".to_string(), m.to_string()])
                .into_iter()
                .flatten(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    crate::bench::cancel::die_with_parent(&mut client, libc::SIGKILL);
    setup.configure_sender(&mut client)?;
    let daemon_pid = setup.daemon_pid();
    let softirqd = softirq_threads();
    let soft_ticks = |ids: &[u32]| ids.iter().map(|&p| proc_ticks(p)).sum::<u64>();
    let hz = user_hz();
    let (cpu0, soft0, busy0) = (
        children_cpu_s(),
        soft_ticks(&softirqd),
        machine_busy_ticks(),
    );
    let daemon0 = daemon_pid.map_or(0, proc_ticks);
    let load = loadavg();
    let out = client
        .spawn()
        .and_then(|c| c.wait_with_output())
        .map_err(|e| BenchError::Iperf {
            run: label.clone(),
            msg: format!("client: {e}"),
        })?;
    let daemon1 = daemon_pid.map_or(0, proc_ticks);
    let (soft1, busy1) = (soft_ticks(&softirqd), machine_busy_ticks());
    // The one-off server exits right after its client; wait for it so its
    // CPU time lands in RUSAGE_CHILDREN.
    if let Some(mut s) = server.0.take() {
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(s.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = s.kill();
        let _ = s.wait();
    }
    let cpu1 = children_cpu_s();
    let run_stats = match &observer {
        Some(dp) if cfg.bpf_stats => {
            let (count, ns) = dp
                .program_run_stats()
                .map_err(|e| BenchError::Scheme(format!("{label}: {e}")))?;
            (count > 0).then(|| (ns as f64 / count as f64, count as f64 / seconds_of(&out)))
        }
        _ => None,
    };
    let callbacks = match &observer {
        Some(dp) => Some(
            dp.counters()
                .map_err(|e| BenchError::Scheme(format!("{label}: {e}")))?
                .target_checks,
        ),
        None => None,
    };
    if observer.is_some() && cfg.bpf_stats {
        crate::daemon::bench::set_bpf_stats(stats_were_on)
            .map_err(|e| BenchError::Scheme(format!("{label}: {e:#}")))?;
    }
    if let Some(dp) = observer {
        dp.shutdown(Duration::from_secs(1))
            .map_err(|e| BenchError::Scheme(format!("{label}: {e}")))?;
    }
    drop(setup); // stops the daemon, removes the cgroup
    let (bytes, seconds) =
        parse_iperf3(&String::from_utf8_lossy(&out.stdout)).map_err(|msg| BenchError::Iperf {
            run: label.clone(),
            msg: format!("{msg} (exit {})", out.status),
        })?;
    let daemon_cpu_s = daemon1.saturating_sub(daemon0) as f64 / hz;
    let cpu_s = (cpu1 - cpu0) + soft1.saturating_sub(soft0) as f64 / hz + daemon_cpu_s;
    Ok(OverheadRun {
        round,
        mode,
        bytes,
        seconds,
        gbps: bytes as f64 * 8.0 / seconds / 1e9,
        cpu_s,
        daemon_cpu_s,
        cpu_ns_per_kb: cpu_s * 1e9 / (bytes as f64 / 1e3),
        machine_busy_s: busy1.saturating_sub(busy0) as f64 / hz,
        loadavg: load,
        callbacks,
        ns_per_callback: run_stats.map(|r| r.0),
        runs_per_sec: run_stats.map(|r| r.1),
    })
}
