//! Synthetic flows (plausible statistics, and their traffic per interval)
//! and the control step timed over them in the flow map: the control
//! loop's cost by flow count without a single real connection. Its own
//! file because the synthetic flows are also what `decide` and the
//! examples feed a policy.

use std::time::Duration;

use plume_cc_common::{DatapathConfig, FlowStats, CWND_UNCLAMPED, PACING_UNLIMITED};
use serde::Serialize;

use super::{median, DaemonBenchError, StepSamples};
use crate::daemon::{ControlLoop, LoadPolicyError};
use crate::datapath::{cgroup::OwnedCgroup, Datapath};
use crate::policy::FlowPolicy;

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
