//! The runs of a measurement, their summary per mode (each run against
//! the same round's `none` run: median and range over rounds) and the
//! side-by-side table. Its own file because it only computes and formats:
//! it runs nothing.

use serde::Serialize;

use super::Mode;

/// One transfer.
#[derive(Clone, Debug, Serialize)]
pub struct OverheadRun {
    /// Round number, from 0.
    pub round: usize,
    /// Mode of the run.
    pub mode: Mode,
    /// Bytes the server received.
    pub bytes: u64,
    /// Test time iperf3 reports, seconds.
    pub seconds: f64,
    /// Throughput, Gbit/s.
    pub gbps: f64,
    /// CPU seconds of iperf3 client and server, softirq threads and daemon.
    pub cpu_s: f64,
    /// Of which the daemon (0 in other modes).
    pub daemon_cpu_s: f64,
    /// `cpu_s` per byte received, nanoseconds per kB (1,000 bytes).
    pub cpu_ns_per_kb: f64,
    /// Busy CPU time of the whole machine (all CPUs, /proc/stat) over the
    /// transfer, seconds: context for the load of other work.
    pub machine_busy_s: f64,
    /// Load average (1 min) at the start of the run.
    pub loadavg: f64,
    /// Program callbacks that checked a target (observe mode: one per RTT,
    /// retransmission or RTO callback), from the datapath's counters.
    pub callbacks: Option<u64>,
    /// Mean nanoseconds per program run (observe mode with `bpf_stats`).
    pub ns_per_callback: Option<f64>,
    /// Program runs per second of transfer (observe mode with `bpf_stats`).
    pub runs_per_sec: Option<f64>,
}

/// A mode's figures over all rounds (median and range).
#[derive(Clone, Debug, Serialize)]
pub struct ModeSummary {
    /// The mode.
    pub mode: Mode,
    /// Runs.
    pub runs: usize,
    /// Throughput, Gbit/s: median, min, max.
    pub gbps: [f64; 3],
    /// CPU per kB, ns: median, min, max.
    pub cpu_ns_per_kb: [f64; 3],
    /// Throughput against the same round's `none` run, percent
    /// (negative: slower): median, min, max.
    pub gbps_vs_none_pct: [f64; 3],
    /// CPU per byte against the same round's `none` run, percent
    /// (positive: dearer): median, min, max.
    pub cpu_per_byte_vs_none_pct: [f64; 3],
}

/// The whole measurement.
#[derive(Clone, Debug, Serialize)]
pub struct OverheadReport {
    /// Seconds per transfer.
    pub duration_s: u64,
    /// The client's MSS, if set.
    pub mss: Option<u32>,
    /// Parallel flows.
    pub flows: usize,
    /// Rounds.
    pub rounds: usize,
    /// Logical CPUs of the machine.
    pub cpus: usize,
    /// Every run, in the order they ran.
    pub runs: Vec<OverheadRun>,
    /// Per mode, in [`Mode::ALL`] order.
    pub summary: Vec<ModeSummary>,
}

/// Median, min and max of `v` (NaNs for an empty slice).
fn spread(v: &[f64]) -> [f64; 3] {
    if v.is_empty() {
        return [f64::NAN; 3];
    }
    let mut s = v.to_vec();
    let median = crate::stats::quantile_of(&mut s, 0.5);
    let min = s.iter().copied().fold(f64::INFINITY, f64::min);
    let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    [median, min, max]
}

/// Summaries per mode: each run against the `none` run of its round.
pub fn summarize(runs: &[OverheadRun]) -> Vec<ModeSummary> {
    Mode::ALL
        .iter()
        .map(|&mode| {
            let mine: Vec<&OverheadRun> = runs.iter().filter(|r| r.mode == mode).collect();
            let base = |round: usize| {
                runs.iter()
                    .find(|r| r.mode == Mode::None && r.round == round)
            };
            let (mut dg, mut dc) = (Vec::new(), Vec::new());
            for r in &mine {
                if let Some(b) = base(r.round) {
                    dg.push((r.gbps / b.gbps - 1.0) * 100.0);
                    dc.push((r.cpu_ns_per_kb / b.cpu_ns_per_kb - 1.0) * 100.0);
                }
            }
            ModeSummary {
                mode,
                runs: mine.len(),
                gbps: spread(&mine.iter().map(|r| r.gbps).collect::<Vec<_>>()),
                cpu_ns_per_kb: spread(&mine.iter().map(|r| r.cpu_ns_per_kb).collect::<Vec<_>>()),
                gbps_vs_none_pct: spread(&dg),
                cpu_per_byte_vs_none_pct: spread(&dc),
            }
        })
        .collect()
}

/// The side-by-side table of a report.
pub fn table(report: &OverheadReport) -> String {
    let mut s = format!(
        "{} rounds x {} s, {} flow(s), MSS {}, {} CPUs; median [min, max] over rounds\n",
        report.rounds,
        report.duration_s,
        report.flows,
        report
            .mss
            .map_or("loopback's".to_string(), |m| m.to_string()),
        report.cpus
    );
    s += &format!(
        "{:<8} {:>26} {:>17} {:>29} {:>25}\n",
        "mode", "Gbit/s", "vs none %", "CPU ns/kB", "vs none %"
    );
    let f = |v: [f64; 3], p: usize| format!("{:.p$} [{:.p$}, {:.p$}]", v[0], v[1], v[2], p = p);
    for m in &report.summary {
        let (dg, dc) = if m.mode == Mode::None {
            ("-".to_string(), "-".to_string())
        } else {
            (f(m.gbps_vs_none_pct, 1), f(m.cpu_per_byte_vs_none_pct, 1))
        };
        s += &format!(
            "{:<8} {:>26} {:>17} {:>29} {:>25}\n",
            m.mode.name(),
            f(m.gbps, 2),
            dg,
            f(m.cpu_ns_per_kb, 1),
            dc
        );
    }
    let ns: Vec<f64> = report
        .runs
        .iter()
        .filter_map(|r| r.ns_per_callback)
        .collect();
    let rate: Vec<f64> = report.runs.iter().filter_map(|r| r.runs_per_sec).collect();
    if !ns.is_empty() {
        s += &format!(
            "observe: program {} ns per callback at {} callbacks/s (kernel BPF statistics)\n",
            f(spread(&ns), 0),
            f(spread(&rate), 0)
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(round: usize, mode: Mode, gbps: f64, cpu: f64) -> OverheadRun {
        OverheadRun {
            round,
            mode,
            bytes: 1,
            seconds: 1.0,
            gbps,
            cpu_s: 0.0,
            daemon_cpu_s: 0.0,
            cpu_ns_per_kb: cpu,
            machine_busy_s: 0.0,
            loadavg: 0.0,
            callbacks: None,
            ns_per_callback: None,
            runs_per_sec: None,
        }
    }

    #[test]
    fn overhead_is_taken_against_the_same_rounds_baseline() {
        let runs = vec![
            run(0, Mode::None, 10.0, 100.0),
            run(0, Mode::Observe, 9.0, 110.0),
            run(1, Mode::Observe, 20.0, 200.0),
            run(1, Mode::None, 20.0, 100.0),
        ];
        let s = summarize(&runs);
        let obs = &s[1];
        assert_eq!(obs.mode, Mode::Observe);
        assert_eq!(obs.runs, 2);
        // Round 0: -10 % throughput, +10 % CPU; round 1: 0 % and +100 %.
        assert!((obs.gbps_vs_none_pct[1] + 10.0).abs() < 1e-9);
        assert!((obs.gbps_vs_none_pct[2] - 0.0).abs() < 1e-9);
        assert!((obs.cpu_per_byte_vs_none_pct[1] - 10.0).abs() < 1e-9);
        assert!((obs.cpu_per_byte_vs_none_pct[2] - 100.0).abs() < 1e-9);
        // No daemon runs: NaN, not a made-up 0.
        assert_eq!(s[2].runs, 0);
        assert!(s[2].gbps[0].is_nan());
    }
}
