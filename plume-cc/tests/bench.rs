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

/// The mapping's `hold_clamp_after_loss` on the real datapath: beside one
/// CUBIC flow in a one-BDP buffer the default's clamp writes undo the
/// base's multiplicative decrease (`TCP_BPF_SNDCWND_CLAMP` also sets
/// ssthresh), so the flow keeps losing and takes most of the link; with the
/// hold the base's decrease stands (docs/BENCHMARKS.md, "Holding the clamp
/// after a loss": 36x fewer retransmissions, share 0.97 -> 0.51 over 30 s).
/// Both schemes run in one invocation, one after the other, on the same link.
#[test]
#[ignore = "needs root (CAP_BPF, CAP_NET_ADMIN); `cargo xtask test` runs it as root"]
fn holding_the_clamp_after_a_loss_lets_the_base_back_off_beside_cubic() {
    if !common::have_root(
        "holding_the_clamp_after_a_loss_lets_the_base_back_off_beside_cubic",
        "CAP_NET_ADMIN, CAP_BPF",
    ) {
        return;
    }
    let hold = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../policies/candidates/hold-prtt-a8-w0"
    );
    let schemes = format!("plume,plume@{hold}");
    let (o, out) = bench(
        "hold",
        &[
            "--schemes",
            &schemes,
            "--competing",
            "cubic",
            "--queue",
            "bdp=1",
            "--duration",
            "10s",
            "--fair-window",
            "6s",
            "--runs",
            "1",
            "--quiet",
        ],
    );
    assert!(
        o.status.success(),
        "bench failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    // (retransmissions of the plume flow, its share) per scheme, in order.
    let measured: Vec<(u64, f64)> = runs
        .iter()
        .map(|r| {
            assert!(r["error"].is_null(), "run failed: {}", r["error"]);
            let plume: Vec<_> = r["flows"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f["is_scheme"] == true)
                .collect();
            assert_eq!(plume.len(), 1, "{}: {plume:?}", r["scheme"]);
            assert_eq!(plume[0]["sender_cc"], "cubic", "{}", r["scheme"]);
            (
                plume[0]["retransmits"].as_u64().unwrap(),
                r["share"].as_f64().unwrap(),
            )
        })
        .collect();
    // The default is the run whose scheme is plain `plume`.
    let first_is_default = runs[0]["scheme"] == "plume";
    assert!(
        first_is_default != (runs[1]["scheme"] == "plume"),
        "schemes {} and {}",
        runs[0]["scheme"],
        runs[1]["scheme"]
    );
    let (default, held) = if first_is_default {
        (measured[0], measured[1])
    } else {
        (measured[1], measured[0])
    };
    // The link does lose beside CUBIC (not a vacuous comparison).
    assert!(
        default.0 >= 30,
        "the default retransmitted only {} segments",
        default.0
    );
    assert!(
        held.0 * 4 < default.0,
        "with the hold {} retransmissions, without {}: the base's decrease was undone",
        held.0,
        default.0
    );
    assert!(
        held.1 < default.1,
        "share with the hold {:.2} not below the default's {:.2}",
        held.1,
        default.1
    );
}
