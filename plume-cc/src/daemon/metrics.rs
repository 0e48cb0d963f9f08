//! An optional Prometheus text endpoint on localhost (`--metrics ADDR`).

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use anyhow::{bail, Context as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::DaemonStats;

/// Renders the stats in the Prometheus text exposition format.
pub fn render(s: &DaemonStats) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, kind: &str, v: f64| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
        ));
    };
    gauge(
        "plume_flows",
        "Flows controlled in the last interval.",
        "gauge",
        s.flows as f64,
    );
    gauge(
        "plume_intervals_total",
        "Monitor intervals run.",
        "counter",
        s.intervals as f64,
    );
    gauge(
        "plume_step_seconds",
        "Last control step (read + decide + write).",
        "gauge",
        s.last_step_us as f64 / 1e6,
    );
    gauge(
        "plume_step_mean_seconds",
        "Mean control step.",
        "gauge",
        s.mean_step_us / 1e6,
    );
    gauge(
        "plume_targets_written_total",
        "Targets written to the datapath.",
        "counter",
        s.targets_written as f64,
    );
    gauge(
        "plume_policy_nan_total",
        "Policy outputs that were NaN.",
        "counter",
        s.guard.nan as f64,
    );
    gauge(
        "plume_policy_clamped_total",
        "Policy outputs clamped into range.",
        "counter",
        (s.guard.below_min + s.guard.above_max) as f64,
    );
    gauge(
        "plume_write_failures_total",
        "Control steps whose batched target write failed (retried next interval).",
        "counter",
        s.write_failures as f64,
    );
    gauge(
        "plume_read_failures_total",
        "Control steps whose read of the flows failed.",
        "counter",
        s.read_failures as f64,
    );
    gauge(
        "plume_map_failures_total",
        "Other failed map operations (orphan sweep, reaping).",
        "counter",
        s.map_failures as f64,
    );
    gauge(
        "plume_flows_reaped_total",
        "Flows removed because their socket was gone without a close.",
        "counter",
        s.flows_reaped as f64,
    );
    gauge(
        "plume_flows_opened_total",
        "Flows registered by the datapath.",
        "counter",
        s.datapath.flows_opened as f64,
    );
    gauge(
        "plume_flows_closed_total",
        "Flows removed by the datapath.",
        "counter",
        s.datapath.flows_closed as f64,
    );
    gauge(
        "plume_flow_map_full_total",
        "Flows left to the kernel: flow map full.",
        "counter",
        s.datapath.flow_map_full as f64,
    );
    gauge(
        "plume_targets_expired_total",
        "Stale targets lifted by the datapath.",
        "counter",
        s.datapath.targets_expired as f64,
    );
    gauge(
        "plume_targets_applied_total",
        "Limit changes the datapath applied (a check that moved a limit).",
        "counter",
        s.datapath.targets_applied as f64,
    );
    gauge(
        "plume_target_checks_total",
        "Datapath callbacks that checked a flow's target.",
        "counter",
        s.datapath.target_checks as f64,
    );
    gauge(
        "plume_base_pinned_total",
        "Flows whose kernel congestion control the datapath pinned.",
        "counter",
        s.datapath.base_pinned as f64,
    );
    gauge(
        "plume_setsockopt_errors_total",
        "Failed bpf_setsockopt calls.",
        "counter",
        s.datapath.setsockopt_errors as f64,
    );
    out
}

/// Serves [`render`] on `addr` (must be a loopback address) in the background.
pub async fn serve(addr: SocketAddr, stats: Arc<Mutex<DaemonStats>>) -> anyhow::Result<()> {
    if !addr.ip().is_loopback() {
        bail!("--metrics must be a loopback address (got {addr}): plume-cc does not expose metrics off-host");
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics endpoint {addr}"))?;
    tracing::info!(%addr, "metrics endpoint");
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                continue;
            };
            let body = stats.lock().map(|s| render(&s)).unwrap_or_default();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
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

    #[test]
    fn renders_every_metric_once() {
        let s = DaemonStats {
            flows: 3,
            intervals: 10,
            ..Default::default()
        };
        let text = render(&s);
        assert!(text.contains("plume_flows 3\n"));
        assert!(text.contains("plume_intervals_total 10\n"));
        assert_eq!(text.matches("# TYPE plume_flows ").count(), 1);
    }

    #[test]
    fn failed_map_operations_are_exported() {
        let s = DaemonStats {
            write_failures: 4,
            read_failures: 2,
            map_failures: 1,
            flows_reaped: 3,
            ..Default::default()
        };
        let text = render(&s);
        for line in [
            "plume_write_failures_total 4\n",
            "plume_read_failures_total 2\n",
            "plume_map_failures_total 1\n",
            "plume_flows_reaped_total 3\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from:\n{text}");
        }
    }
}
