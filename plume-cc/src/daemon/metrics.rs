//! The optional Prometheus endpoint of the daemon (`--metrics ADDR` on
//! loopback, `--metrics-listen ADDR` anywhere).
//!
//! The exposition is written by the `prometheus-client` crate (OpenMetrics
//! text, which Prometheus scrapes natively) rather than by hand, so that
//! names, types, escaping and histogram buckets follow the format. Most
//! numbers are cumulative counts the control loop and the datapath already
//! keep ([`DaemonStats`]); [`Metrics::absorb`] copies them in after each
//! step. The step histogram and the overrun counter are fed per step by
//! [`Metrics::observe_step`], since a snapshot cannot rebuild a distribution.

use std::{
    net::SocketAddr,
    sync::{atomic::AtomicU64, Arc},
    time::Duration,
};

use prometheus_client::{
    encoding::text::encode,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{exponential_buckets, Histogram},
        info::Info,
    },
    registry::Registry,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::explain::live::{FlowExplanation, METRIC_SLOTS};
use crate::explain::ACTION_NAMES;

use super::DaemonStats;

/// Why the metrics endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// `--metrics` was given an address other hosts can reach.
    #[error("--metrics {addr}: not a loopback address; to expose the metrics off-host on purpose, use --metrics-listen {addr}")]
    NotLoopback {
        /// The address given.
        addr: SocketAddr,
    },
    /// The address could not be bound.
    #[error("binding the metrics endpoint {addr}")]
    Bind {
        /// The address given.
        addr: SocketAddr,
        /// What the kernel said.
        #[source]
        source: std::io::Error,
    },
}

/// Reads one count out of a [`DaemonStats`] snapshot.
type Field = fn(&DaemonStats) -> u64;

/// A cumulative count copied from a [`DaemonStats`] snapshot: the name
/// without `_total` (the encoder appends it), the help text and the field.
type CounterSpec = (&'static str, &'static str, Field);

/// Every counter that mirrors a [`DaemonStats`] field. The names are the
/// ones the hand-written exposition used, so dashboards keep working.
const COUNTERS: &[CounterSpec] = &[
    ("plume_intervals", "Monitor intervals run", |s| s.intervals),
    (
        "plume_targets_written",
        "Targets written to the datapath",
        |s| s.targets_written,
    ),
    (
        "plume_policy_nan",
        "Policy outputs that were NaN (also in plume_policy_guarded_total)",
        |s| s.guard.nan,
    ),
    (
        "plume_policy_clamped",
        "Policy outputs clamped into range (also in plume_policy_guarded_total)",
        |s| s.guard.below_min + s.guard.above_max,
    ),
    (
        "plume_write_failures",
        "Control steps whose batched target write failed (retried next interval)",
        |s| s.write_failures,
    ),
    (
        "plume_read_failures",
        "Control steps whose read of the flows failed",
        |s| s.read_failures,
    ),
    (
        "plume_map_failures",
        "Other failed map operations (orphan sweep, reaping)",
        |s| s.map_failures,
    ),
    (
        "plume_flows_reaped",
        "Flows removed because their socket was gone without a close",
        |s| s.flows_reaped,
    ),
    (
        "plume_torn_reads",
        "Flow reads skipped because the datapath was rewriting the flow's slot on every try (the flow is read again next interval)",
        |s| s.torn_reads,
    ),
    (
        "plume_flows_opened",
        "Flows registered by the datapath",
        |s| s.datapath.flows_opened,
    ),
    ("plume_flows_closed", "Flows removed by the datapath", |s| {
        s.datapath.flows_closed
    }),
    (
        "plume_flow_map_full",
        "Flows left to the kernel: flow map full",
        |s| s.datapath.flow_map_full,
    ),
    (
        "plume_targets_expired",
        "Stale targets lifted by the datapath",
        |s| s.datapath.targets_expired,
    ),
    (
        "plume_targets_applied",
        "Limit changes the datapath applied (a check that moved a limit)",
        |s| s.datapath.targets_applied,
    ),
    (
        "plume_target_checks",
        "Datapath callbacks that checked a flow's target",
        |s| s.datapath.target_checks,
    ),
    (
        "plume_base_pinned",
        "Flows whose kernel congestion control the datapath pinned",
        |s| s.datapath.base_pinned,
    ),
    (
        "plume_setsockopt_errors",
        "Failed bpf_setsockopt calls",
        |s| s.datapath.setsockopt_errors,
    ),
    (
        "plume_recovery_tail_waits",
        "Datapath callbacks on which a lift waited for the tail of loss recovery alone (nothing lost or retransmitted in flight)",
        |s| s.datapath.recovery_tail_waits,
    ),
];

/// The `reason` label values of `plume_policy_guarded_total`, with the
/// [`crate::policy::GuardCounts`] field each counts.
const GUARD_REASONS: &[(&str, Field)] = &[
    ("nan", |s| s.guard.nan),
    ("below_min", |s| s.guard.below_min),
    ("above_max", |s| s.guard.above_max),
];

/// The daemon's metrics: a registry and handles to everything in it.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    counters: Vec<(Counter, Field)>,
    guarded: Vec<(Counter, Field)>,
    flows: Gauge,
    last_step: Gauge<f64, AtomicU64>,
    mean_step: Gauge<f64, AtomicU64>,
    step: Histogram,
    overruns: Counter,
    explained: Gauge,
    predicted_mbps: ExplainFamily,
    predicted_queueing: ExplainFamily,
    extrapolated: Family<[(&'static str, String); 1], Gauge>,
}

/// Per-flow explanation gauges, labelled by `slot` (the flow's place among
/// the first [`METRIC_SLOTS`] of the daemon's flow order) and `action`
/// (`policy`, `half`, `double`): at most 16 x 3 series each.
type ExplainFamily = Family<[(&'static str, String); 2], Gauge<f64, AtomicU64>>;

impl Metrics {
    /// A registry with every metric at zero; `policy_sha256` identifies the
    /// policy in `plume_cc_build_info`.
    pub fn new(policy_sha256: &str) -> Self {
        let mut registry = Registry::default();
        registry.register(
            "plume_cc_build",
            "The plume-cc version and the SHA-256 of the policy it runs",
            Info::new([
                ("version", env!("CARGO_PKG_VERSION").to_string()),
                ("policy_sha256", policy_sha256.to_string()),
            ]),
        );
        let flows = Gauge::default();
        registry.register(
            "plume_flows",
            "Flows controlled in the last interval",
            flows.clone(),
        );
        let last_step = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "plume_step_seconds",
            "Last control step (read + decide + write)",
            last_step.clone(),
        );
        let mean_step = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "plume_step_mean_seconds",
            "Mean control step",
            mean_step.clone(),
        );
        // 25 us to about 0.8 s: a step of one flow takes tens of
        // microseconds, ten thousand flows a few milliseconds, and anything
        // near the interval (20 ms by default) is an overrun.
        let step = Histogram::new(exponential_buckets(25e-6, 2.0, 16));
        registry.register(
            "plume_step_duration_seconds",
            "Control step (read + decide + write) durations",
            step.clone(),
        );
        let overruns = Counter::default();
        registry.register(
            "plume_step_overruns",
            "Control steps that took longer than the monitor interval",
            overruns.clone(),
        );
        let family = Family::<[(&'static str, &'static str); 1], Counter>::default();
        registry.register(
            "plume_policy_guarded",
            "Policy outputs the guard counted, by reason (nan: a NaN raw output of a learned policy, which its action mapping reads as 0, the fixed rule; below_min: a limit raised to the floor; above_max: a limit lifted to no limit)",
            family.clone(),
        );
        let guarded = GUARD_REASONS
            .iter()
            .map(|&(reason, field)| (family.get_or_create(&[("reason", reason)]).clone(), field))
            .collect();
        let counters = COUNTERS
            .iter()
            .map(|&(name, help, field)| {
                let c = Counter::default();
                registry.register(name, help, c.clone());
                (c, field)
            })
            .collect();
        let explained = Gauge::default();
        registry.register(
            "plume_explain_flows",
            "Flows with a live explanation (plume-cc run --explain); the per-flow gauges carry the first 16",
            explained.clone(),
        );
        let predicted_mbps = ExplainFamily::default();
        registry.register(
            "plume_explain_predicted_throughput_mbps",
            "Predicted mean throughput of the flow over the next ~1 s, Mbit/s, under the policy's clamp (action=policy) and under half and double it; slot = the flow's place among the first 16 flows (status --explain maps it to the socket)",
            predicted_mbps.clone(),
        );
        let predicted_queueing = ExplainFamily::default();
        registry.register(
            "plume_explain_predicted_queueing_delay_ms",
            "Predicted mean queueing delay (RTT above the min RTT) of the flow over the next ~1 s, ms, by action and slot as plume_explain_predicted_throughput_mbps",
            predicted_queueing.clone(),
        );
        let extrapolated = Family::<[(&'static str, String); 1], Gauge>::default();
        registry.register(
            "plume_explain_extrapolated",
            "1 when the flow's min RTT or rate lies outside what the explanation predictors were fit on (their predictions for it are extrapolations), else 0; by slot as plume_explain_predicted_throughput_mbps",
            extrapolated.clone(),
        );
        Self {
            registry,
            counters,
            guarded,
            flows,
            last_step,
            mean_step,
            step,
            overruns,
            explained,
            predicted_mbps,
            predicted_queueing,
            extrapolated,
        }
    }

    /// Publishes the daemon's latest explanations: the first
    /// [`METRIC_SLOTS`] flows, every action; slots no flow holds any more
    /// are removed, so the series stay bounded.
    pub fn set_explanations(&self, flows: &[FlowExplanation]) {
        self.explained.set(flows.len() as i64);
        self.predicted_mbps.clear();
        self.predicted_queueing.clear();
        self.extrapolated.clear();
        for (slot, f) in flows.iter().take(METRIC_SLOTS).enumerate() {
            self.extrapolated
                .get_or_create(&[("slot", slot.to_string())])
                .set(i64::from(f.extrapolated.is_some()));
            for (a, name) in ACTION_NAMES.iter().enumerate() {
                let labels = [("slot", slot.to_string()), ("action", name.to_string())];
                self.predicted_mbps
                    .get_or_create(&labels)
                    .set(f.predicted[a].physical[0]);
                self.predicted_queueing
                    .get_or_create(&labels)
                    .set(f.predicted[a].physical[1]);
            }
        }
    }

    /// Records one control step that took `took` with monitor interval `interval`.
    pub fn observe_step(&self, took: Duration, interval: Duration) {
        self.step.observe(took.as_secs_f64());
        if took > interval {
            self.overruns.inc();
        }
    }

    /// Copies the cumulative counts and gauges of a snapshot in. Counts
    /// only move forward: a count below the exported one is ignored.
    pub fn absorb(&self, s: &DaemonStats) {
        for (c, field) in self.counters.iter().chain(&self.guarded) {
            c.inc_by(field(s).saturating_sub(c.get()));
        }
        self.flows.set(s.flows as i64);
        self.last_step.set(s.last_step_us as f64 / 1e6);
        self.mean_step.set(s.mean_step_us / 1e6);
    }

    /// The OpenMetrics text of everything, ending in `# EOF`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing into a String does not fail");
        out
    }
}

/// Serves [`Metrics::render`] on `addr` in the background. Without
/// `off_host` only a loopback address is accepted: the metrics name the
/// policy and the load of the host, which is not for every network the
/// host is on. With it, any address is bound, and the log says so loudly.
pub async fn serve(
    addr: SocketAddr,
    off_host: bool,
    metrics: Arc<Metrics>,
) -> Result<(), MetricsError> {
    if !addr.ip().is_loopback() {
        if !off_host {
            return Err(MetricsError::NotLoopback { addr });
        }
        tracing::warn!(
            %addr,
            "SERVING METRICS OFF-HOST on {addr} (--metrics-listen): anyone who can reach this address reads the policy's hash and this host's flow counts; firewall it"
        );
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind { addr, source })?;
    tracing::info!(%addr, "metrics endpoint");
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                continue;
            };
            let body = metrics.render();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.0 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(resp.as_bytes()).await;
            });
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::Predictions;
    use crate::policy::GuardCounts;

    /// The README's metric table lists exactly the metrics the daemon
    /// exports, under the names a scrape shows (a counter `X` is sampled
    /// as `X_total`, an info as `X_info`): an operator's dashboard is built
    /// from that table, so a metric added, renamed or dropped without it
    /// fails here.
    #[test]
    fn the_readme_lists_every_exported_metric_and_no_other() {
        let readme = include_str!("../../../README.md");
        let section = readme
            .split("\n## Metrics\n")
            .nth(1)
            .expect("README has a Metrics section");
        let section = section.split("\n## ").next().unwrap();
        let mut documented = std::collections::BTreeSet::new();
        for row in section.lines().filter(|l| l.starts_with("| `plume")) {
            let first = row.split('|').nth(1).unwrap();
            for name in first.split('`').skip(1).step_by(2) {
                documented.insert(name.split('{').next().unwrap().to_string());
            }
        }
        // Labelled families show only once they have a series: one
        // explained flow gives every family one.
        let m = Metrics::new("abc");
        m.set_explanations(&[FlowExplanation {
            cookie: 1,
            clamp: Some(42),
            predicted: [0.0; 3].map(|_| crate::explain::Predictions {
                reward_units: [0.0; 3],
                physical: [4.0, 35.0, 0.0],
            }),
            extrapolated: None,
        }]);
        let text = m.render();
        let exported: std::collections::BTreeSet<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| {
                let (name, kind) = l.split_once(' ').unwrap();
                match kind {
                    "counter" => format!("{name}_total"),
                    "info" => format!("{name}_info"),
                    _ => name.to_string(),
                }
            })
            .collect();
        assert!(exported.len() > 20, "{text}");
        assert_eq!(
            documented, exported,
            "README Metrics table vs the exposition"
        );
    }

    #[test]
    fn explanations_are_exported_per_slot_and_action_within_bounds() {
        let m = Metrics::new("abc123");
        let flow = |cookie: u64| FlowExplanation {
            cookie,
            clamp: Some(42),
            predicted: [0.0, -1.0, 1.0].map(|x| Predictions {
                reward_units: [0.0; 3],
                physical: [4.0 + x, 35.0 + 10.0 * x, 0.0],
            }),
            extrapolated: (cookie == 1)
                .then(|| "min RTT 0.005 ms outside the fitted 10-400 ms".into()),
        };
        let series = |text: &str, name: &str| {
            text.lines()
                .filter(|l| l.starts_with(&format!("{name}{{")))
                .count()
        };
        let flows: Vec<FlowExplanation> = (0..20).map(flow).collect();
        m.set_explanations(&flows);
        let text = m.render();
        assert!(text.contains("plume_explain_flows 20\n"), "{text}");
        // 20 flows, but only 16 slots x 3 actions.
        assert_eq!(series(&text, "plume_explain_predicted_throughput_mbps"), 48);
        assert_eq!(
            series(&text, "plume_explain_predicted_queueing_delay_ms"),
            48
        );
        assert!(
            text.contains(
                "plume_explain_predicted_throughput_mbps{slot=\"15\",action=\"double\"} 5.0"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "plume_explain_predicted_queueing_delay_ms{slot=\"0\",action=\"half\"} 25.0"
            ),
            "{text}"
        );
        // Cookie 1 (slot 1) is extrapolated, the others are not.
        assert_eq!(series(&text, "plume_explain_extrapolated"), 16);
        assert!(
            text.contains("plume_explain_extrapolated{slot=\"1\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("plume_explain_extrapolated{slot=\"0\"} 0\n"),
            "{text}"
        );
        // Flows leave: their slots go with them.
        m.set_explanations(&flows[..2]);
        let text = m.render();
        assert_eq!(series(&text, "plume_explain_predicted_throughput_mbps"), 6);
        assert_eq!(series(&text, "plume_explain_extrapolated"), 2);
        assert!(!text.contains("slot=\"2\""), "{text}");
    }

    #[test]
    fn every_metric_is_exported_once_with_its_value() {
        let m = Metrics::new("abc123");
        let s = DaemonStats {
            flows: 3,
            intervals: 10,
            write_failures: 4,
            read_failures: 2,
            map_failures: 1,
            flows_reaped: 3,
            torn_reads: 7,
            guard: GuardCounts {
                nan: 2,
                below_min: 5,
                above_max: 1,
            },
            ..Default::default()
        };
        m.absorb(&s);
        m.observe_step(Duration::from_micros(100), Duration::from_millis(20));
        m.observe_step(Duration::from_millis(30), Duration::from_millis(20));
        let text = m.render();
        for line in [
            "plume_flows 3\n",
            "plume_intervals_total 10\n",
            "plume_write_failures_total 4\n",
            "plume_read_failures_total 2\n",
            "plume_map_failures_total 1\n",
            "plume_flows_reaped_total 3\n",
            "plume_torn_reads_total 7\n",
            "# HELP plume_torn_reads Flow reads skipped because the datapath was rewriting",
            "plume_policy_nan_total 2\n",
            "plume_policy_clamped_total 6\n",
            "plume_policy_guarded_total{reason=\"nan\"} 2\n",
            "plume_policy_guarded_total{reason=\"below_min\"} 5\n",
            "plume_policy_guarded_total{reason=\"above_max\"} 1\n",
            "plume_step_overruns_total 1\n",
            "plume_step_duration_seconds_count 2\n",
            &format!(
                "plume_cc_build_info{{version=\"{}\",policy_sha256=\"abc123\"}} 1\n",
                env!("CARGO_PKG_VERSION")
            ),
        ] {
            assert!(text.contains(line), "{line:?} missing from:\n{text}");
        }
        assert_eq!(text.matches("# TYPE plume_flows ").count(), 1);
        assert!(text.ends_with("# EOF\n"), "{text}");
        for (name, ..) in COUNTERS {
            assert!(text.contains(&format!("# TYPE {name} counter\n")), "{name}");
        }
    }

    #[test]
    fn counters_follow_snapshots_and_never_go_back() {
        let m = Metrics::new("x");
        m.absorb(&DaemonStats {
            intervals: 7,
            ..Default::default()
        });
        m.absorb(&DaemonStats {
            intervals: 9,
            ..Default::default()
        });
        assert!(m.render().contains("plume_intervals_total 9\n"));
        m.absorb(&DaemonStats::default());
        assert!(m.render().contains("plume_intervals_total 9\n"));
    }

    #[test]
    fn an_off_host_address_needs_the_explicit_flag() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let m = Arc::new(Metrics::new("x"));
        let addr: SocketAddr = "0.0.0.0:0".parse().unwrap();
        let e = rt.block_on(serve(addr, false, Arc::clone(&m))).unwrap_err();
        assert!(e.to_string().contains("--metrics-listen"), "{e}");
        rt.block_on(serve(addr, true, m)).unwrap();
    }
}
