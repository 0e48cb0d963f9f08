//! The kernel's side of the check: the policy across the emulated link
//! with the real kernel, the daemon and iperf3, and the daemon's own
//! recording read back into the series and the observations the policy saw.

use std::{path::Path, time::Duration};

use crate::bench::{self, scheme::Scheme, BenchConfig};
use crate::congestion::ControllerKind;
use crate::daemon::record;
use crate::emu::link::DropTail;
use crate::policy::{
    builder_for,
    observation::{FlowSample, Observation},
    LoadedPolicy, ObservationBuilder,
};

use super::super::EvalError;
use super::{clamp_value, second_half_mean, SeriesPoint, SideResult, SimToRealConfig};

/// The busiest flow of a daemon recording (the iperf3 data connection; its
/// control connection carries a few hundred bytes): each interval's read of
/// it, with its statistics as the daemon builds them, timed at the poll.
fn busiest_flow(
    rec: &[record::RecordedInterval],
) -> impl Iterator<Item = (u64, &record::RecordedFlow, FlowSample)> {
    let busiest = rec
        .iter()
        .flat_map(|i| i.flows.iter())
        .max_by_key(|f| f.stats.delivered)
        .map(|f| f.cookie);
    rec.iter().filter_map(move |i| {
        let f = i.flows.iter().find(|f| Some(f.cookie) == busiest)?;
        let mut s = FlowSample::from(&f.stats);
        s.timestamp_us = i.t_ns / 1000;
        Some((i.t_ns, f, s))
    })
}

/// The series of the busiest flow of a daemon recording, through `b`:
/// the daemon's own observation builder for the policy it ran
/// ([`crate::policy::builder_for`]). It must be that one: a builder with
/// another anchor window floor reports another anchor (with the built-in
/// 10 s floor instead of a policy's 1 ms, the anchor of a window held the
/// maximum of the last 10 s, 1.3-2x what the daemon acted on).
pub fn series_from_recording(
    rec: &[record::RecordedInterval],
    mut b: ObservationBuilder,
) -> Vec<SeriesPoint> {
    let mut t0 = None;
    let mut out = Vec::new();
    for (t_ns, f, s) in busiest_flow(rec) {
        if b.observe(&s).is_err() {
            continue;
        }
        let t0 = *t0.get_or_insert(t_ns);
        out.push(SeriesPoint {
            t_s: (t_ns - t0) as f64 / 1e9,
            anchor_mbps: b.max_rate_bytes_per_sec() * 8.0 / 1e6,
            cwnd: f64::from(f.stats.snd_cwnd),
            clamp: clamp_value(f.target_cwnd_clamp),
        });
    }
    out
}

/// The observations of the busiest flow of a daemon recording, as the
/// daemon's builder made them (what [`series_from_recording`] summarises),
/// through `b`: a new builder at the daemon's objective and the policy's
/// observation version.
pub fn observations_from_recording(
    rec: &[record::RecordedInterval],
    mut b: ObservationBuilder,
) -> Vec<Observation> {
    busiest_flow(rec)
        .filter_map(|(_, _, s)| b.observe(&s).ok())
        .collect()
}

/// Runs the policy across the emulated link on `trace_file`, with the daemon
/// recording.
pub(super) fn run_emu(
    cfg: &SimToRealConfig,
    policy: Option<&LoadedPolicy>,
    trace_file: &Path,
    dir: &Path,
) -> Result<SideResult, EvalError> {
    let rec_path = dir.join("daemon-record.jsonl");
    let scheme = match cfg.policy.to_str().and_then(ControllerKind::from_name) {
        Some(kind) => Scheme::Kernel(kind.name().to_string()),
        None => Scheme::Plume {
            policy: (cfg.policy.as_os_str() != "default").then(|| cfg.policy.clone()),
            daemon_args: {
                let mut a = vec!["--record".into(), rec_path.display().to_string()];
                if let Some(o) = cfg.objective {
                    a.extend(["--objective".into(), o.delay_weight().to_string()]);
                }
                a
            },
            label: "plume".into(),
        },
    };
    let queue = DropTail {
        packets: Some(cfg.queue_packets as usize),
        bytes: None,
    };
    let bench_cfg = BenchConfig {
        iperf3: cfg.iperf3.clone(),
        ..BenchConfig::single(
            vec![trace_file.to_path_buf()],
            vec![scheme.clone()],
            Duration::from_millis(cfg.window_ms),
            Duration::from_millis(cfg.delay_ms),
            queue,
            dir.to_path_buf(),
            cfg.plume_exe.clone(),
        )
    };
    let setting = bench::Setting {
        delay: Duration::from_millis(cfg.delay_ms),
        queue: bench::QueueSpec::Fixed(queue),
    };
    let r = bench::run_one(&bench_cfg, trace_file, &setting, &scheme, 1, dir)?;
    let series = match (scheme, policy) {
        (Scheme::Plume { .. }, Some(p)) => {
            // The daemon's builder: the policy's observation version and
            // anchor floor, at the operating point the daemon ran.
            let objective = cfg.objective.unwrap_or(p.metadata().default_objective);
            series_from_recording(&record::read(&rec_path)?, builder_for(p, objective))
        }
        _ => Vec::new(),
    };
    Ok(SideResult {
        utilization: r.utilization,
        p95_link_ms: r.p95_queueing_ms,
        mean_anchor_mbps: second_half_mean(&series, |p| p.anchor_mbps),
        mean_cwnd: second_half_mean(&series, |p| p.cwnd),
        mean_clamp: second_half_mean(&series, |p| p.clamp),
        base_cc: r.sender_cc,
        series,
    })
}
