//! The control loop over real loopback connections (`bench-datapath
//! --only real-flows`): registering, controlling and closing thousands of
//! flows, and a check that each one carries the limits last written for
//! it. Its own file because it alone holds real sockets and compares the
//! program's record with what each socket shows.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use plume_cc_common::{DatapathConfig, FlowStats, FlowTarget, CWND_UNCLAMPED, PACING_UNLIMITED};
use serde::Serialize;

use super::{median, DaemonBenchError, StepSamples};
use crate::daemon::{ControlLoop, LoadPolicyError};
use crate::datapath::{cgroup::OwnedCgroup, Datapath};
use crate::policy::FlowPolicy;

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
    /// 99th percentile of the decide time, microseconds.
    pub decide_p99_us: f64,
    /// Slowest decide, microseconds: a per-copy policy's steps where many
    /// flows' decisions fall due at once (the forced re-decisions of idle
    /// flows, see [`crate::policy::DecisionClock`]) show here first.
    pub decide_max_us: f64,
    /// Slowest whole step, microseconds.
    pub total_max_us: f64,
    /// Inside decide, for a learned policy (medians, microseconds; see
    /// [`crate::policy::DecideTiming`]): observing the flows.
    pub observe_us: Option<f64>,
    /// The forward: the input tensor, the layers and the readback.
    pub forward_us: Option<f64>,
    /// Actions to targets.
    pub mapping_us: Option<f64>,
    /// Rows through the forward per step (median): every flow, or a
    /// per-copy policy's due flows (padded).
    pub forwarded_rows: Option<f64>,
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

/// A learned policy's decide step, in parts, one sample per step.
#[derive(Default)]
struct DecideParts {
    observe: Vec<f64>,
    forward: Vec<f64>,
    mapping: Vec<f64>,
    rows: Vec<f64>,
}

impl DecideParts {
    fn push(&mut self, d: &crate::policy::DecideTiming) {
        let us = |d: std::time::Duration| d.as_secs_f64() * 1e6;
        self.observe.push(us(d.observe));
        self.forward.push(us(d.tensor + d.forward + d.readback));
        self.mapping.push(us(d.mapping));
        self.rows.push(d.forwarded as f64);
    }

    /// The median of one part; None when no step gave one (a policy
    /// without a breakdown).
    fn median(&mut self, part: impl Fn(&mut Self) -> &mut Vec<f64>) -> Option<f64> {
        let v = part(self);
        (!v.is_empty()).then(|| median(v))
    }
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
    let mut parts = DecideParts::default();
    control.step(&mut dp, policy.as_mut(), crate::datapath::monotonic_ns())?;
    for _ in 0..iterations {
        let start = Instant::now();
        let s = control.step(&mut dp, policy.as_mut(), crate::datapath::monotonic_ns())?;
        t.push(&s, flows)?;
        if let Some(d) = policy.last_timing() {
            parts.push(&d);
        }
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
        decide_p99_us: crate::stats::quantile_of(&mut t.decide, 0.99),
        decide_max_us: t.decide.iter().copied().fold(0.0, f64::max),
        total_max_us: t.total.iter().copied().fold(0.0, f64::max),
        total_us: median(&mut t.total),
        observe_us: parts.median(|p| &mut p.observe),
        forward_us: parts.median(|p| &mut p.forward),
        mapping_us: parts.median(|p| &mut p.mapping),
        forwarded_rows: parts.median(|p| &mut p.rows),
        applied,
        kernel_agrees,
        limited,
        close_ms,
        flows_left,
        targets_left,
    })
}
