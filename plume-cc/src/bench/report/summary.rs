//! The summaries across repetitions: per trace × setting × scheme (with
//! the fairness figures of several flows) and per flow position. Its own
//! file because the tables, the heat maps and `results.json` all read
//! these, and none of them computes its own.

use serde::{Deserialize, Serialize};

use crate::bench::{first_seen, FlowResult, RunResult};

/// Mean, minimum and maximum of one metric across repetitions.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Spread {
    /// Mean.
    pub mean: f64,
    /// Minimum.
    pub min: f64,
    /// Maximum.
    pub max: f64,
}

impl Spread {
    /// The spread of `values` (NaN mean when empty).
    pub fn of(values: impl IntoIterator<Item = f64>) -> Self {
        let v: Vec<f64> = values.into_iter().collect();
        if v.is_empty() {
            return Self {
                mean: f64::NAN,
                min: f64::NAN,
                max: f64::NAN,
            };
        }
        Self {
            mean: v.iter().sum::<f64>() / v.len() as f64,
            min: v.iter().copied().fold(f64::INFINITY, f64::min),
            max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }
}

/// One trace × setting × scheme across its repetitions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Trace name.
    pub trace: String,
    /// Setting label (`20 ms, packets=100`).
    #[serde(default)]
    pub setting: String,
    /// Scheme name.
    pub scheme: String,
    /// Successful runs.
    pub runs: usize,
    /// Failed or pending runs, with the first error.
    pub failed: usize,
    /// First error text, if any.
    pub error: Option<String>,
    /// Throughput, Mbps.
    pub throughput_mbps: Spread,
    /// Utilisation of the trace capacity.
    pub utilization: Spread,
    /// Median one-way delay, ms.
    pub p50_delay_ms: Spread,
    /// 95th-percentile one-way delay, ms.
    pub p95_delay_ms: Spread,
    /// Retransmissions.
    pub retransmits: Spread,
    /// Congestion controls that ran under the sender (iperf3's
    /// `sender_tcp_congestion`), distinct values joined by `/`.
    #[serde(default)]
    pub sender_cc: String,
    /// Flows per run (the scheme's and the competing ones).
    #[serde(default)]
    pub flows: usize,
    /// Jain's index (runs with several flows).
    #[serde(default)]
    pub jain: Option<Spread>,
    /// The scheme's share (runs with competitors).
    #[serde(default)]
    pub share: Option<Spread>,
    /// Convergence, s, over the runs where every flow converged.
    #[serde(default)]
    pub convergence_s: Option<Spread>,
    /// Runs in which some flow never converged.
    #[serde(default)]
    pub never_converged: usize,
}

/// One flow position (index) of a trace × setting × scheme across runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlowSummary {
    /// Trace name.
    pub trace: String,
    /// Setting label.
    pub setting: String,
    /// Scheme under test.
    pub scheme: String,
    /// Flow index in the run.
    pub index: usize,
    /// The flow's scheme or competing congestion control.
    pub label: String,
    /// Whether it is one of the scheme's flows.
    pub is_scheme: bool,
    /// Its start, s.
    pub start_s: Spread,
    /// Throughput from its start, Mbps.
    pub throughput_mbps: Spread,
    /// Throughput in the fairness window, Mbps.
    pub tail_mbps: Spread,
    /// p95 one-way delay, ms.
    pub p95_delay_ms: Spread,
    /// Retransmissions.
    pub retransmits: Spread,
    /// Congestion controls that ran under it.
    pub sender_cc: String,
}

/// The distinct values of `it`, in first-seen order, joined by `/`.
pub(crate) fn distinct<'a>(it: impl IntoIterator<Item = &'a str>) -> String {
    first_seen(it).join("/")
}

fn optional_spread(values: Vec<f64>) -> Option<Spread> {
    (!values.is_empty()).then(|| Spread::of(values))
}

/// Groups results by trace, setting and scheme (first-seen order).
pub fn summarize(results: &[RunResult]) -> Vec<Summary> {
    first_seen(
        results
            .iter()
            .map(|r| (r.trace.clone(), r.setting.clone(), r.scheme.clone())),
    )
    .into_iter()
    .map(|(trace, setting, scheme)| {
        let all: Vec<&RunResult> = results
            .iter()
            .filter(|r| r.trace == trace && r.setting == setting && r.scheme == scheme)
            .collect();
        let ok: Vec<&&RunResult> = all.iter().filter(|r| r.error.is_none()).collect();
        let sp = |f: fn(&RunResult) -> f64| Spread::of(ok.iter().map(|r| f(r)));
        Summary {
            runs: ok.len(),
            failed: all.len() - ok.len(),
            error: all.iter().find_map(|r| r.error.clone()),
            throughput_mbps: sp(|r| r.throughput_mbps),
            utilization: sp(|r| r.utilization),
            p50_delay_ms: sp(|r| r.p50_delay_ms),
            p95_delay_ms: sp(|r| r.p95_delay_ms),
            retransmits: sp(|r| r.retransmits as f64),
            sender_cc: distinct(ok.iter().map(|r| r.sender_cc.as_str())),
            flows: ok.iter().map(|r| r.flows.len()).max().unwrap_or(0),
            jain: optional_spread(ok.iter().filter_map(|r| r.jain).collect()),
            share: optional_spread(ok.iter().filter_map(|r| r.share).collect()),
            convergence_s: optional_spread(ok.iter().filter_map(|r| r.convergence_s).collect()),
            never_converged: ok.iter().filter(|r| r.converged == Some(false)).count(),
            trace,
            setting,
            scheme,
        }
    })
    .collect()
}

/// Groups the flows of successful runs by trace, setting, scheme and flow
/// index (first-seen order).
pub fn summarize_flows(results: &[RunResult]) -> Vec<FlowSummary> {
    let keys = first_seen(results.iter().filter(|r| r.error.is_none()).flat_map(|r| {
        r.flows.iter().map(|f| {
            (
                r.trace.clone(),
                r.setting.clone(),
                r.scheme.clone(),
                f.index,
            )
        })
    }));
    keys.into_iter()
        .map(|(trace, setting, scheme, index)| {
            let flows: Vec<&FlowResult> = results
                .iter()
                .filter(|r| {
                    r.error.is_none()
                        && r.trace == trace
                        && r.setting == setting
                        && r.scheme == scheme
                })
                .flat_map(|r| r.flows.iter().filter(|f| f.index == index))
                .collect();
            let sp = |f: fn(&FlowResult) -> f64| Spread::of(flows.iter().map(|x| f(x)));
            FlowSummary {
                label: flows[0].label.clone(),
                is_scheme: flows[0].is_scheme,
                start_s: sp(|f| f.start_s),
                throughput_mbps: sp(|f| f.throughput_mbps),
                tail_mbps: sp(|f| f.tail_mbps),
                p95_delay_ms: sp(|f| f.p95_delay_ms),
                retransmits: sp(|f| f.retransmits as f64),
                sender_cc: distinct(flows.iter().map(|f| f.sender_cc.as_str())),
                trace,
                setting,
                scheme,
                index,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::fixtures::{run, setting};
    use super::super::markdown;

    #[test]
    fn summaries_group_by_setting_and_count_what_failed_or_never_converged() {
        let mut failed = RunResult::failed(
            "t.trace",
            &setting("packets=100"),
            "plume",
            3,
            "iperf3: flow 1 (port 5202): refused".into(),
        );
        failed.error = Some("iperf3: flow 1 (port 5202): refused".into());
        let results = vec![
            run("plume", "packets=100", 1, 0.2, Some(4.0)),
            run("plume", "packets=100", 2, 0.4, None),
            failed,
            run("plume", "bdp=1", 1, 0.5, Some(1.0)),
        ];
        let s = summarize(&results);
        assert_eq!(s.len(), 2, "one summary per setting");
        let a = &s[0];
        assert_eq!(
            (a.setting.as_str(), a.runs, a.failed),
            ("20 ms, packets=100", 2, 1)
        );
        assert!(a.error.as_deref().unwrap().contains("port 5202"));
        let share = a.share.unwrap();
        assert!((share.mean - 0.3).abs() < 1e-12 && share.min == 0.2 && share.max == 0.4);
        // One run converged at 4 s, one never: the spread is over the one
        // that did, and the other is counted.
        assert_eq!(a.convergence_s.unwrap().mean, 4.0);
        assert_eq!(a.never_converged, 1);
        assert_eq!(a.flows, 2);
        let f = summarize_flows(&results);
        assert_eq!(f.len(), 4, "two flow positions in each of two settings");
        assert!(f.iter().any(|x| !x.is_scheme && x.label == "cubic"));
        let md = markdown(&s, &f);
        assert!(md.contains("### 20 ms, packets=100") && md.contains("### 20 ms, bdp=1"));
        assert!(md.contains("| 2 (+1 failed) |"), "{md}");
        assert!(md.contains("4.0 (4.0–4.0) (+1 never)"), "{md}");
        assert!(
            md.contains("### Flows") && md.contains("cubic, competing (cubic)"),
            "{md}"
        );
    }
}
