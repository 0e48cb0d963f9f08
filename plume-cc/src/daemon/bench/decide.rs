//! The learned policy's decide step alone (`plume-cc bench-decide`): no
//! maps, no root, so where a step's time goes inside the policy can be
//! measured anywhere. Its own file because it needs neither the datapath
//! nor a cgroup, unlike every other measurement here.

use std::time::Instant;

use plume_cc_common::FlowStats;
use serde::Serialize;

use super::{advance_synthetic_flows, median, synthetic_stats, DaemonBenchError};
use crate::policy::{FlowPolicy, PolicyError};

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

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
}
