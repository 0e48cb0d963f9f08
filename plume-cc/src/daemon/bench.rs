//! Measurements of the datapath and the control loop
//! (`plume-cc bench-datapath`, root): control-step time by flow count, the
//! eBPF program's mean cost per callback from the kernel's BPF statistics,
//! and the daemon's CPU share at 100 flows. Printed and returned; the
//! figures in docs/BENCHMARKS.md come from this.

use std::{
    io,
    net::{Ipv4Addr, SocketAddr},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use plume_cc_common::{DatapathConfig, FlowStats, FlowTarget, CWND_UNCLAMPED, PACING_UNLIMITED};
use serde::Serialize;

use super::control::StepError;
use super::{ControlLoop, LoadPolicyError};
use crate::datapath::{
    cgroup::{CgroupError, OwnedCgroup},
    held::HeldError,
    probe::Sink,
    Datapath, DatapathError,
};
use crate::policy::{FlowPolicy, PolicyError};

/// Why a measurement of `bench-datapath` or `bench-decide` failed: the
/// harness could not run (cgroup, datapath, policy, processes), or it ran
/// and saw something that makes its figures meaningless (the rest).
#[derive(Debug, thiserror::Error)]
pub enum DaemonBenchError {
    /// Creating or removing the benchmark's cgroup failed.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// Loading, attaching, reading or writing the datapath failed.
    #[error(transparent)]
    Datapath(#[from] DatapathError),
    /// The daemon's policy could not be loaded.
    #[error(transparent)]
    LoadPolicy(#[from] LoadPolicyError),
    /// Loading a policy file, or a policy's decide step, failed.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// A control step failed.
    #[error(transparent)]
    Step(#[from] StepError),
    /// The held real connections failed.
    #[error(transparent)]
    Held(#[from] HeldError),
    /// A file, socket or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was attempted.
        what: String,
        /// The system error.
        source: io::Error,
    },
    /// A control step read another number of flows than the map holds.
    #[error("expected {expected} flows, read {read}")]
    FlowCount {
        /// Flows in the map.
        expected: usize,
        /// Flows the step read.
        read: usize,
    },
    /// The flow map had no slot for a synthetic flow.
    #[error("no slot for synthetic flow {0}")]
    NoSlot(usize),
    /// The policy decided for another number of flows than it was given.
    #[error("{decisions} decisions for {flows} flows")]
    Decisions {
        /// Targets returned.
        decisions: usize,
        /// Flows given.
        flows: usize,
    },
    /// The kernel's run statistics counted no run of the program.
    #[error("the program never ran (is bpf_stats_enabled honoured?)")]
    NeverRan,
    /// Not every real connection was registered in the flow map.
    #[error("{registered} of {flows} connections registered")]
    Unregistered {
        /// Connections found in the map.
        registered: usize,
        /// Connections opened.
        flows: usize,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> DaemonBenchError {
    let what = what.into();
    move |source| DaemonBenchError::Io { what, source }
}

/// The loopback sink's address: any free port.
fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

/// Control-step timing at one flow count (medians over the iterations).
#[derive(Clone, Debug, Serialize)]
pub struct LoopRow {
    /// Flows in the map.
    pub flows: usize,
    /// Iterations measured.
    pub iterations: usize,
    /// Median read time, microseconds.
    pub read_us: f64,
    /// Median decide time (one batched policy call), microseconds.
    pub decide_us: f64,
    /// Median write time, microseconds.
    pub write_us: f64,
    /// Median total step, microseconds.
    pub total_us: f64,
    /// 99th percentile of the total step, microseconds (issue 14's target
    /// is on both; in `--json` only).
    pub total_p99_us: f64,
}

fn median(v: &mut [f64]) -> f64 {
    crate::stats::quantile_of(v, 0.5)
}

/// The timed control steps of one benchmark, microseconds per part (the
/// synthetic loop and the real-flows bench time steps alike).
#[derive(Default)]
struct StepSamples {
    read: Vec<f64>,
    decide: Vec<f64>,
    write: Vec<f64>,
    total: Vec<f64>,
}

impl StepSamples {
    /// Records `s` after checking it read `flows` flows.
    fn push(
        &mut self,
        s: &super::control::StepTiming,
        flows: usize,
    ) -> Result<(), DaemonBenchError> {
        if s.flows != flows {
            return Err(DaemonBenchError::FlowCount {
                expected: flows,
                read: s.flows,
            });
        }
        self.read.push(s.read.as_secs_f64() * 1e6);
        self.decide.push(s.decide.as_secs_f64() * 1e6);
        self.write.push(s.write.as_secs_f64() * 1e6);
        self.total
            .push((s.read + s.decide + s.write).as_secs_f64() * 1e6);
        Ok(())
    }
}

/// Plausible statistics for synthetic flow `i` (also the forward probe's,
/// `examples/forward_probe.rs`).
pub fn synthetic_stats(i: usize) -> FlowStats {
    FlowStats {
        srtt_us: 20_000 + (i % 50) as u32 * 100,
        min_rtt_us: 20_000,
        last_rtt_us: 21_000,
        snd_cwnd: 10 + (i % 40) as u32,
        snd_ssthresh: 64,
        mss: 1448,
        delivered: 1000 + i as u32,
        bytes_acked: 1_448_000 + i as u64,
        rtt_samples: 100,
        applied_cwnd_clamp: CWND_UNCLAMPED,
        applied_pacing: PACING_UNLIMITED,
        ..FlowStats::default()
    }
}

/// One interval of the synthetic flows' traffic: flow `i` delivers
/// `20 + i % 30` segments, with a kernel rate sample over 40 ms (what
/// `bench-decide` feeds the policy between calls, and
/// `examples/step_gap_probe.rs` too).
pub fn advance_synthetic_flows(flows: &mut [(u64, FlowStats)]) {
    for (i, (_, s)) in flows.iter_mut().enumerate() {
        let segs = 20 + (i % 30) as u32;
        s.delivered = s.delivered.wrapping_add(segs);
        s.bytes_acked += u64::from(segs) * u64::from(s.mss);
        s.rate_delivered = segs * 2;
        s.rate_interval_us = 40_000;
    }
}

/// Times [`ControlLoop::step`] with `n` synthetic flows in the map, for each `n`.
pub fn control_loop(
    counts: &[usize],
    iterations: usize,
    make_policy: &mut dyn FnMut() -> Result<Box<dyn FlowPolicy>, LoadPolicyError>,
) -> Result<Vec<LoopRow>, DaemonBenchError> {
    tch::set_num_threads(1); // as the daemon runs it
    let cgroup = OwnedCgroup::create_unique("plume-cc-bench")?;
    let pins = crate::datapath::default_pin_dir(cgroup.path());
    let mut dp = Datapath::attach_pinned(cgroup.path(), DatapathConfig::default(), &pins)?;
    // The synthetic flows take slots as the program would register them
    // (it never sees a callback for entries without a socket).
    let mut rows = Vec::new();
    for &n in counts {
        // Fresh statistics: entries idle past REAP_IDLE_NS whose socket
        // does not exist (which these synthetic ones are) would be reaped
        // by the loop's first step.
        let now = crate::datapath::monotonic_ns();
        for i in 0..n {
            let stats = FlowStats {
                updated_ns: now,
                ..synthetic_stats(i)
            };
            if !crate::datapath::synthetic::insert_synthetic_flow(
                &mut dp,
                1_000_000 + i as u64,
                stats,
            )? {
                return Err(DaemonBenchError::NoSlot(i));
            }
        }
        let mut policy = make_policy()?;
        let mut control = ControlLoop::default();
        let mut t = StepSamples::default();
        // One warm-up step (allocations, first forward).
        control.step(&mut dp, policy.as_mut(), crate::datapath::monotonic_ns())?;
        for _ in 0..iterations {
            let s = control.step(&mut dp, policy.as_mut(), crate::datapath::monotonic_ns())?;
            t.push(&s, n)?;
        }
        rows.push(LoopRow {
            flows: n,
            iterations,
            read_us: median(&mut t.read),
            decide_us: median(&mut t.decide),
            write_us: median(&mut t.write),
            total_us: median(&mut t.total),
            total_p99_us: crate::stats::quantile_of(&mut t.total, 0.99),
        });
        for i in 0..n {
            dp.remove_flow(1_000_000 + i as u64)?;
        }
    }
    dp.shutdown(Duration::from_secs(1))?;
    cgroup.remove()?;
    Ok(rows)
}

/// Where the decide step's time goes at one flow count (medians over the
/// iterations, microseconds; see [`crate::policy::DecideTiming`]).
#[derive(Clone, Debug, Serialize)]
pub struct DecideRow {
    /// Flows decided per call.
    pub flows: usize,
    /// Calls measured.
    pub iterations: usize,
    /// Builders and observations into the matrix.
    pub observe_us: f64,
    /// Check and normalise the matrix into the input tensor.
    pub tensor_us: f64,
    /// The network's layers.
    pub forward_us: f64,
    /// Actions out of the output tensor.
    pub readback_us: f64,
    /// Actions to targets.
    pub mapping_us: f64,
    /// The whole call (wall clock around `decide`).
    pub total_us: f64,
    /// 99th percentile of the whole call.
    pub total_p99_us: f64,
}

/// Times the learned policy's decide step alone (no maps, no root) for
/// each flow count: synthetic flows that deliver every interval, with the
/// limits fed back as the datapath would apply them, one libtorch thread.
pub fn decide(
    counts: &[usize],
    iterations: usize,
    load: &mut dyn FnMut() -> Result<crate::policy::LoadedPolicy, PolicyError>,
) -> Result<Vec<DecideRow>, DaemonBenchError> {
    use crate::policy::{LearnedPolicy, Target};
    tch::set_num_threads(1); // as the daemon runs it
    let mut rows = Vec::new();
    for &n in counts {
        let mut p = LearnedPolicy::new(load()?);
        let mut flows: Vec<(u64, FlowStats)> = (0..n)
            .map(|i| (1_000_000 + i as u64, synthetic_stats(i)))
            .collect();
        let mut out: Vec<Target> = Vec::new();
        let mut parts: [Vec<f64>; 6] = Default::default();
        let interval_ns = 20_000_000u64;
        // Warm-up calls: first observations, tensor allocation.
        for k in 0..(iterations + 3) as u64 {
            advance_synthetic_flows(&mut flows);
            let t = Instant::now();
            p.decide(k * interval_ns + 1, &flows, &mut out)?;
            let total = t.elapsed();
            if out.len() != n {
                return Err(DaemonBenchError::Decisions {
                    decisions: out.len(),
                    flows: n,
                });
            }
            // The datapath applies what the daemon wrote.
            for ((_, s), t) in flows.iter_mut().zip(&out) {
                s.applied_cwnd_clamp = t.cwnd_clamp_segments;
                s.applied_pacing = t.max_pacing_bytes_per_sec;
            }
            if k < 3 {
                continue;
            }
            let d = p.last_timing();
            for (v, x) in parts
                .iter_mut()
                .zip([d.observe, d.tensor, d.forward, d.readback, d.mapping, total])
            {
                v.push(x.as_secs_f64() * 1e6);
            }
        }
        let [mut o, mut te, mut f, mut r, mut m, mut t] = parts;
        rows.push(DecideRow {
            flows: n,
            iterations,
            observe_us: median(&mut o),
            tensor_us: median(&mut te),
            forward_us: median(&mut f),
            readback_us: median(&mut r),
            mapping_us: median(&mut m),
            total_p99_us: crate::stats::quantile_of(&mut t, 0.99),
            total_us: median(&mut t),
        });
    }
    Ok(rows)
}

/// The sock_ops program's cost per callback, from the kernel's statistics.
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
}

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
/// 10 ms, so the apply path runs too) and reads the program's run statistics.
pub fn ebpf_cost(probe_exe: &Path, duration: Duration) -> Result<EbpfCost, DaemonBenchError> {
    let was_on = set_bpf_stats(true)?;
    let result = (|| -> Result<EbpfCost, DaemonBenchError> {
        let cgroup = OwnedCgroup::create_unique("plume-cc-bench")?;
        // Configured as the daemon runs it at its default 20 ms interval.
        let config = DatapathConfig {
            snapshot_every_ns: 5_000_000,
            ..DatapathConfig::default()
        };
        let mut dp = Datapath::attach(cgroup.path(), config)?;
        let sink = Sink::start(loopback()).map_err(io_err("starting the loopback sink"))?;
        let mut child = Command::new(probe_exe)
            .args(["probe", "--connect", &sink.addr().to_string()])
            .args([
                "--duration",
                &format!("{}ms", duration.as_millis()),
                "--report",
                "100ms",
            ])
            .arg("--cgroup")
            .arg(cgroup.path())
            .stdout(Stdio::null())
            .spawn()
            .map_err(io_err(format!("starting {}", probe_exe.display())))?;
        let start = Instant::now();
        while child
            .try_wait()
            .map_err(io_err("waiting for the sender"))?
            .is_none()
        {
            for (cookie, _) in dp.flows()? {
                dp.set_target(cookie, 64, PACING_UNLIMITED)?;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let wall = start.elapsed();
        let (count, ns) = dp.program_run_stats()?;
        let c = dp.counters()?;
        drop(dp);
        cgroup.remove()?;
        if count == 0 {
            return Err(DaemonBenchError::NeverRan);
        }
        Ok(EbpfCost {
            run_count: count,
            mean_ns: ns as f64 / count as f64,
            callbacks_per_sec: count as f64 / wall.as_secs_f64(),
            // Flows flush their target checks in bulk (at the next write
            // of targets, which comes every 10 ms here, and at close), so
            // the share is over nearly every callback.
            snapshot_share: c.snapshots as f64 / c.target_checks.max(1) as f64,
        })
    })();
    set_bpf_stats(was_on)?;
    result
}

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

/// The control loop over real connections (`bench-datapath --only
/// real-flows`): what registering, controlling and closing thousands of
/// real loopback flows costs, and whether every one of them was handled.
#[derive(Clone, Debug, Serialize)]
pub struct RealFlows {
    /// Connections held open in the controlled cgroup.
    pub flows: usize,
    /// Of which sending all the time.
    pub active: usize,
    /// Time for the sender to open them all, milliseconds.
    pub open_ms: u64,
    /// From the start of the sender until the flow map held every
    /// connection, milliseconds.
    pub register_ms: u64,
    /// Of the connections, how many the flow map holds (by cookie).
    pub registered: usize,
    /// Control steps measured (one per interval).
    pub iterations: usize,
    /// Monitor interval, milliseconds.
    pub interval_ms: u64,
    /// Median read time, microseconds.
    pub read_us: f64,
    /// Median decide time, microseconds.
    pub decide_us: f64,
    /// Median write time, microseconds.
    pub write_us: f64,
    /// Median whole step, microseconds.
    pub total_us: f64,
    /// 99th percentile of the whole step, microseconds.
    pub total_p99_us: f64,
    /// After the last step and a poke of the idle flows: flows whose limits
    /// in force (the program's record) are the ones last written for them.
    pub applied: usize,
    /// Of those, flows whose own socket (TCP_INFO) shows the pacing cap
    /// the program recorded.
    pub kernel_agrees: usize,
    /// Of those, flows that carry a limit (a cwnd clamp or a pacing cap):
    /// how much of `applied` is more than "no limit, as before".
    pub limited: usize,
    /// From closing every connection until no entry was left, milliseconds.
    pub close_ms: u64,
    /// Flow entries left after the close.
    pub flows_left: usize,
    /// Target entries left after the close.
    pub targets_left: usize,
}

fn wait_until(
    timeout: Duration,
    mut f: impl FnMut() -> Result<bool, DaemonBenchError>,
) -> Result<bool, DaemonBenchError> {
    let deadline = Instant::now() + timeout;
    loop {
        if f()? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The pacing cap a socket shows for the program's recorded cap: the
/// kernel widens `~0U` to "unlimited" (`~0UL`, sock_setsockopt's
/// SO_MAX_PACING_RATE).
fn kernel_pacing(applied: u32) -> u64 {
    if applied == PACING_UNLIMITED {
        u64::MAX
    } else {
        u64::from(applied)
    }
}

/// Holds `flows` real loopback connections (`active` of them sending
/// 16 KB every 20 ms, the rest idle) in a fresh cgroup under the
/// datapath, runs `iterations` control steps one `interval` apart with the
/// policy, checks that every flow was registered and carries the limits
/// last written for it, then closes them all and times the maps' emptying.
pub fn real_flows(
    exe: &Path,
    flows: usize,
    active: usize,
    iterations: usize,
    interval: Duration,
    make_policy: &mut dyn FnMut() -> Result<Box<dyn FlowPolicy>, LoadPolicyError>,
) -> Result<RealFlows, DaemonBenchError> {
    use crate::datapath::held::HeldFlows;
    tch::set_num_threads(1); // as the daemon runs it
    let cgroup = OwnedCgroup::create_unique("plume-cc-bench")?;
    let mut dp = Datapath::attach(cgroup.path(), DatapathConfig::default())?;
    let t0 = Instant::now();
    let mut held = HeldFlows::open(
        exe,
        cgroup.path(),
        flows,
        active,
        16 * 1024,
        Duration::from_millis(20),
        Duration::from_secs(120),
    )?;
    let open_ms = held.opened().open_ms;
    let all = wait_until(Duration::from_secs(60), || Ok(dp.flows()?.len() >= flows))?;
    let register_ms = t0.elapsed().as_millis() as u64;
    let in_map: std::collections::HashSet<u64> = dp.flows()?.into_iter().map(|(c, _)| c).collect();
    let registered = held
        .opened()
        .cookies
        .iter()
        .filter(|c| in_map.contains(c))
        .count();
    if !(all && registered == flows) {
        return Err(DaemonBenchError::Unregistered { registered, flows });
    }
    let mut policy = make_policy()?;
    let mut control = ControlLoop::default();
    let mut t = StepSamples::default();
    control.step(&mut dp, policy.as_mut(), crate::datapath::monotonic_ns())?;
    for _ in 0..iterations {
        let start = Instant::now();
        let s = control.step(&mut dp, policy.as_mut(), crate::datapath::monotonic_ns())?;
        t.push(&s, flows)?;
        std::thread::sleep(interval.saturating_sub(start.elapsed()));
    }
    // The idle flows apply their last targets on their next callback:
    // give them one, well inside the staleness timeout.
    held.poke()?;
    std::thread::sleep(Duration::from_millis(150));
    let targets: std::collections::HashMap<u64, FlowTarget> = control
        .flows()
        .iter()
        .map(|(c, _)| *c)
        .zip(control.targets().iter().copied())
        .collect();
    let stats: std::collections::HashMap<u64, FlowStats> = dp.flows()?.into_iter().collect();
    let report = held.report()?;
    let (mut applied, mut kernel_agrees, mut limited) = (0, 0, 0);
    for f in &report {
        let (Some(s), Some(tg)) = (stats.get(&f.cookie), targets.get(&f.cookie)) else {
            continue;
        };
        let want_cwnd = tg
            .cwnd_clamp
            .clamp(plume_cc_common::MIN_CWND_CLAMP, CWND_UNCLAMPED);
        let want_pacing = tg
            .max_pacing_bytes_per_sec
            .max(plume_cc_common::MIN_PACING_BYTES_PER_SEC);
        if s.applied_cwnd_clamp == want_cwnd && s.applied_pacing == want_pacing {
            applied += 1;
            if want_cwnd != CWND_UNCLAMPED || want_pacing != PACING_UNLIMITED {
                limited += 1;
            }
            if f.max_pacing_rate == kernel_pacing(s.applied_pacing) {
                kernel_agrees += 1;
            }
        }
    }
    let t_close = Instant::now();
    held.close()?;
    wait_until(Duration::from_secs(60), || {
        Ok(dp.flows()?.is_empty() && dp.target_cookies()?.is_empty())
    })?;
    let close_ms = t_close.elapsed().as_millis() as u64;
    let flows_left = dp.flows()?.len();
    let targets_left = dp.target_cookies()?.len();
    drop(dp);
    cgroup.remove()?;
    Ok(RealFlows {
        flows,
        active,
        open_ms,
        register_ms,
        registered,
        iterations,
        interval_ms: interval.as_millis() as u64,
        read_us: median(&mut t.read),
        decide_us: median(&mut t.decide),
        write_us: median(&mut t.write),
        total_p99_us: crate::stats::quantile_of(&mut t.total, 0.99),
        total_us: median(&mut t.total),
        applied,
        kernel_agrees,
        limited,
        close_ms,
        flows_left,
        targets_left,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_that_read_another_flow_count_is_refused() {
        let mut t = StepSamples::default();
        let step = |flows| super::super::control::StepTiming {
            flows,
            read: Duration::from_micros(1),
            decide: Duration::from_micros(2),
            write: Duration::from_micros(3),
        };
        t.push(&step(3), 3).unwrap();
        let e = t.push(&step(2), 3).unwrap_err();
        assert!(
            matches!(
                e,
                DaemonBenchError::FlowCount {
                    expected: 3,
                    read: 2
                }
            ),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "expected 3 flows, read 2");
        assert_eq!(t.total, vec![6.0], "the refused step is not recorded");
    }

    #[test]
    fn decide_runs_without_root_and_passes_a_policy_error_through() {
        let rows = decide(&[3], 2, &mut crate::policy::default_policy).unwrap();
        assert_eq!((rows[0].flows, rows[0].iterations), (3, 2));
        assert!(rows[0].total_us > 0.0, "{rows:?}");
        let missing = Path::new("/nonexistent/policy");
        let e = decide(&[3], 2, &mut || {
            crate::policy::LoadedPolicy::load_or_default(missing)
        })
        .unwrap_err();
        assert!(matches!(e, DaemonBenchError::Policy(_)), "{e:?}");
        assert!(e.to_string().contains("/nonexistent/policy"), "{e}");
    }

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
