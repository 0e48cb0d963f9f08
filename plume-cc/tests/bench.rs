//! The benchmark end to end: bad settings are refused before anything starts
//! (no root needed), and a real two-flow run across the emulated link, with
//! iperf3 and the daemon, yields one row per flow (root; CI runs it as root).

mod common;

use std::process::Command;

use common::{tmpdir, EXE};

/// `plume-cc bench ARGS` on a 12 Mbit/s constant trace, into a fresh folder.
fn bench(tag: &str, args: &[&str]) -> (std::process::Output, std::path::PathBuf) {
    let dir = tmpdir(tag);
    let trace = dir.join("12mbps.trace");
    std::fs::write(&trace, "1\n").unwrap();
    let out = dir.join("out");
    let o = Command::new(EXE)
        .arg("bench")
        .arg("--traces")
        .arg(&trace)
        .arg("--out")
        .arg(&out)
        .args(args)
        .output()
        .expect("run plume-cc bench");
    (o, out)
}

#[test]
fn bad_settings_fail_with_one_clear_error_before_any_run() {
    for (args, expect) in [
        (&["--flows", "0"][..], "--flows must be at least 1"),
        (
            &["--flows", "3", "--stagger", "20s", "--duration", "30s"][..],
            "--stagger",
        ),
        (
            &["--competing", "vegas-not-here"][..],
            "no congestion control",
        ),
        (&["--schemes", "cubic", "--flows", "70000"][..], "ports"),
        (&["--competing", "cubic:0"][..], "at least one flow"),
        (&["--queue", "bdp=-1"][..], "BDP multiple must be positive"),
    ] {
        let (o, out) = bench("bad-input", args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} was accepted");
        assert!(
            err.contains(expect),
            "{args:?}: expected {expect:?} in: {err}"
        );
        assert!(
            !out.join("runs").exists(),
            "{args:?}: a run started before the error"
        );
    }
    // A BDP queue needs the trace's capacity: a missing trace is refused.
    let o = Command::new(EXE)
        .args([
            "bench",
            "--traces",
            "/nonexistent/x.trace",
            "--queue",
            "bdp=1",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/x.trace"));
}

#[test]
#[ignore = "needs root (CAP_BPF, CAP_NET_ADMIN); `cargo xtask test` runs it as root"]
fn two_flows_give_two_per_flow_rows_from_the_link_log() {
    if !common::have_root(
        "two_flows_give_two_per_flow_rows_from_the_link_log",
        "CAP_NET_ADMIN, CAP_BPF",
    ) {
        return;
    }
    let (o, out) = bench(
        "two-flows",
        &[
            "--schemes",
            "cubic,plume",
            "--flows",
            "2",
            "--duration",
            "3s",
            "--fair-window",
            "2s",
            "--queue",
            "packets=100",
            "--runs",
            "1",
            "--quiet",
        ],
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "bench failed: {stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        !stdout.contains("wrote "),
        "--quiet printed more than the table"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for r in runs {
        assert!(r["error"].is_null(), "run failed: {}", r["error"]);
        let flows = r["flows"].as_array().unwrap();
        assert_eq!(flows.len(), 2, "{}: {flows:?}", r["scheme"]);
        let mut sum = 0.0;
        for (i, f) in flows.iter().enumerate() {
            assert_eq!(f["port"].as_u64(), Some(5201 + i as u64));
            let mbps = f["throughput_mbps"].as_f64().unwrap();
            assert!(mbps > 0.5, "flow {i} of {} got {mbps} Mbps", r["scheme"]);
            // Every flow ran over CUBIC: `-C cubic`, or plume's pinned base
            // (both plume flows are in the daemon's cgroup).
            assert_eq!(f["sender_cc"], "cubic", "flow {i} of {}", r["scheme"]);
            sum += f["throughput_mbps"].as_f64().unwrap() * (3.0 - f["start_s"].as_f64().unwrap())
                / 3.0;
        }
        // The per-flow bytes come from the link itself: together they can
        // not exceed the 12 Mbit/s link (nor differ from the run's total).
        let link = r["link_mbps"].as_f64().unwrap();
        assert!(link <= 12.0 * 1.01, "link carried {link} Mbps");
        assert!(
            (sum - link).abs() < 0.05 * link,
            "flows {sum} vs link {link}"
        );
        let jain = r["jain"].as_f64().unwrap();
        assert!((0.5..=1.0).contains(&jain), "Jain {jain}");
    }
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    let flow_rows = summary
        .lines()
        .filter(|l| l.starts_with("| 12mbps.trace | 20 ms, packets=100 |"))
        .count();
    assert_eq!(flow_rows, 4, "two per-flow rows per scheme:\n{summary}");
    assert!(out.join("fairness.png").is_file() && out.join("plot-12mbps.trace.svg").is_file());
}
