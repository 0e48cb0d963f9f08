//! The benchmark end to end: bad settings are refused before anything starts
//! (no root needed), and a real two-flow run across the emulated link, with
//! iperf3 and the daemon, yields one row per flow (root; CI runs it as root).

mod common;

use std::process::Command;

use common::{tmpdir, EXE};

/// A fresh folder holding `12mbps.trace`, one packet per millisecond
/// (12 Mbit/s, constant).
fn constant_trace(tag: &str) -> (common::TestDir, std::path::PathBuf) {
    let dir = tmpdir(tag);
    let trace = dir.join("12mbps.trace");
    std::fs::write(&trace, "1\n").unwrap();
    (dir, trace)
}

/// `plume-cc bench ARGS` on a 12 Mbit/s constant trace, into a fresh folder.
fn bench(tag: &str, args: &[&str]) -> (std::process::Output, std::path::PathBuf, common::TestDir) {
    let (dir, trace) = constant_trace(tag);
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
    (o, out, dir)
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
        let (o, out, _dir) = bench("bad-input", args);
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
    let (o, out, _dir) = bench(
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
    let (o, out, _dir) = bench(
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

/// The fail-safety path in loss recovery: a daemon stopped for longer than
/// `--stale` (500 ms) over and over (SIGSTOP 0.7 s every 1.2 s) has its
/// targets lifted by the datapath at any phase of the flow, loss recovery
/// included; beside BBR on a 1-BDP buffer the flow is in recovery often.
/// A lift there used to blow the window up (ssthresh from the lift, then
/// cwnd set to it at the end of recovery: cwnd 1,048,576 and thousands of
/// retransmissions in 3 of 5 such runs); the lift now waits for the end
/// of recovery (`plume_cc_common::lift_waits`, `recovery_tail`), and no
/// record interval may show a window above a few BDPs (docs/BENCHMARKS.md,
/// "The recovery point and the ACK that ends recovery"). A blow-up is a
/// matter of chance, so this catches a regression only in some runs: with
/// the wait removed for the default (no hold) it failed 1 run of 3 here
/// (cwnd 929).
#[test]
#[ignore = "needs root (CAP_BPF, CAP_NET_ADMIN); `cargo xtask test` runs it as root"]
fn a_stopped_daemons_lifts_never_blow_the_window_up() {
    if !common::have_root(
        "a_stopped_daemons_lifts_never_blow_the_window_up",
        "CAP_NET_ADMIN, CAP_BPF",
    ) {
        return;
    }
    let (dir, trace) = constant_trace("lift-storm");
    let out = dir.join("out");
    let mut bench = Command::new(EXE)
        .args(["bench", "--traces"])
        .arg(&trace)
        .arg("--out")
        .arg(&out)
        .args([
            "--schemes",
            "plume",
            "--competing",
            "bbr",
            "--queue",
            "bdp=1",
            "--duration",
            "30s",
            "--fair-window",
            "20s",
            "--runs",
            "1",
            "--record",
            "--quiet",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run plume-cc bench");
    let bench_pid = bench.id();
    let mut stops = 0;
    let status = loop {
        if let Some(status) = bench.try_wait().unwrap() {
            break status;
        }
        match daemon_of(bench_pid) {
            Some(pid) => {
                // SAFETY: signals to the bench's own child daemon.
                unsafe { libc::kill(pid, libc::SIGSTOP) };
                std::thread::sleep(std::time::Duration::from_millis(700));
                unsafe { libc::kill(pid, libc::SIGCONT) };
                stops += 1;
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
            None => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut bench.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "bench failed: {err}");
    assert!(stops >= 10, "the daemon was stopped only {stops} times");
    let run = find_file(&out, "daemon-record.jsonl").expect("a daemon record");
    let run = run.parent().unwrap();
    // The datapath lifted stale targets over and over (the storm worked).
    let log = std::fs::read_to_string(run.join("daemon.log")).unwrap();
    let closing: serde_json::Value = log
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .expect("the daemon's closing statistics in its log");
    let expired = closing["datapath"]["targets_expired"].as_u64().unwrap();
    let tail_waits = closing["datapath"]["recovery_tail_waits"].as_u64().unwrap();
    assert!(expired >= 8, "only {expired} stale lifts in {stops} stops");
    // 12 Mbit/s x 40 ms is 40 segments, the buffer as much again: no
    // window of the plume flow beyond 500 segments.
    let record = std::fs::read_to_string(run.join("daemon-record.jsonl")).unwrap();
    let mut max_cwnd = 0;
    for line in record.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for f in v["flows"].as_array().unwrap() {
            max_cwnd = max_cwnd.max(f["snd_cwnd"].as_u64().unwrap());
        }
    }
    assert!(
        max_cwnd <= 500,
        "a lift blew the window up: cwnd {max_cwnd} ({expired} stale lifts, {tail_waits} waits for recovery's tail)"
    );
}

/// A lone flow under the competition rule stays out of competitive mode:
/// its drain probes drain its own queue, and the drained RTT sample comes
/// within the probe's deadline although on a host the program applies the
/// probe's clamp, and the kernel reports an RTT sample, only once per
/// round trip (`policy::competition::SAMPLING_RTTS`). With the deadline
/// before that term, the lone flow of this candidate went competitive
/// (CUBIC alone, a full buffer) at 4.6-5.2 s in 3 runs of 3
/// (docs/BENCHMARKS.md, "The drain probe's deadline on a host").
#[test]
#[ignore = "needs root (CAP_BPF, CAP_NET_ADMIN); `cargo xtask test` runs it as root"]
fn a_lone_flows_drain_probes_keep_it_out_of_competitive_mode() {
    if !common::have_root(
        "a_lone_flows_drain_probes_keep_it_out_of_competitive_mode",
        "CAP_NET_ADMIN, CAP_BPF",
    ) {
        return;
    }
    let candidate = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../policies/candidates/rulehold-prtt-a8-w0"
    );
    let (o, out, _dir) = bench(
        "lone-rule",
        &[
            "--schemes",
            &format!("plume@{candidate}"),
            "--queue",
            "packets=100",
            "--duration",
            "10s",
            "--runs",
            "1",
            "--record",
            "--quiet",
        ],
    );
    assert!(
        o.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let record = find_file(&out, "daemon-record.jsonl").expect("a daemon record");
    let record = std::fs::read_to_string(record).unwrap();
    // The data flow's targets from 1 s to 9.5 s (its first decision is
    // unlimited, and the run's end lifts everything); iperf3's idle
    // control connection (10 segments, nothing in flight) is left out.
    let mut t0 = None;
    let mut clamps = Vec::new();
    for line in record.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let t = v["t_ns"].as_u64().unwrap();
        let t = (t - *t0.get_or_insert(t)) as f64 / 1e9;
        for f in v["flows"].as_array().unwrap() {
            let idle = f["packets_out"].as_u64() == Some(0) && f["snd_cwnd"].as_u64() <= Some(10);
            if !idle && (1.0..9.5).contains(&t) {
                clamps.push((t, f["target_cwnd_clamp"].as_u64().unwrap()));
            }
        }
    }
    assert!(
        clamps.len() > 200,
        "{} intervals of the data flow",
        clamps.len()
    );
    let unclamped = u64::from(plume_cc_common::CWND_UNCLAMPED);
    let competitive: Vec<f64> = clamps
        .iter()
        .filter(|(_, c)| *c == unclamped)
        .map(|(t, _)| *t)
        .collect();
    assert!(
        competitive.is_empty(),
        "the lone flow went competitive ({} intervals, from {:.2} s)",
        competitive.len(),
        competitive[0]
    );
    // The probes ran: the clamp fell below 40% of its median at least
    // twice (every 2 s on the monitor's clock, every 4 s once they drain).
    let mut sorted: Vec<u64> = clamps.iter().map(|(_, c)| *c).collect();
    sorted.sort_unstable();
    let median = sorted[sorted.len() / 2];
    let probes = clamps
        .windows(2)
        .filter(|w| w[1].1 * 10 < median * 4 && w[0].1 * 10 >= median * 4)
        .count();
    assert!(probes >= 2, "{probes} probes (median clamp {median})");
}

/// A benchmark stopped half-way leaves nothing behind: SIGINT winds the
/// run down (its children killed, the daemon stopped, namespaces, cgroups
/// and pins removed) and writes the report of what finished, exit 130;
/// SIGKILL takes its children with it (parent-death signals) and the next
/// benchmark removes what only the dead process could have
/// (`bench::cancel`). Before, a killed benchmark left its iperf3 processes
/// spinning, holding the descriptors they inherited.
#[test]
#[ignore = "needs root (CAP_BPF, CAP_NET_ADMIN); `cargo xtask test` runs it as root"]
fn a_stopped_benchmark_leaves_nothing_behind() {
    if !common::have_root(
        "a_stopped_benchmark_leaves_nothing_behind",
        "CAP_NET_ADMIN, CAP_BPF",
    ) {
        return;
    }
    let (dir, trace) = constant_trace("bench-stop");
    let start = |tag: &str| {
        let out = dir.join(tag);
        let child = Command::new(EXE)
            .args(["bench", "--traces"])
            .arg(&trace)
            .arg("--out")
            .arg(&out)
            .args([
                "--schemes",
                "plume",
                "--duration",
                "20s",
                "--runs",
                "2",
                "--quiet",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run plume-cc bench");
        (child, out)
    };
    // Its daemon and both iperf3 processes, once the run's flow is going.
    let children_once_running = |pid: u32| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let kids = children_of(pid);
            let iperf = kids.iter().filter(|(_, c)| c == "iperf3").count();
            if daemon_of(pid).is_some() && iperf == 2 {
                std::thread::sleep(std::time::Duration::from_secs(2));
                return children_of(pid);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no run started: {kids:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    let leftovers = |pid: u32| -> Vec<String> {
        let tag = format!("plume-bench-{pid}-");
        let mut v: Vec<String> = std::fs::read_dir("/run/netns")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&format!("plume-emu-{pid}-")))
            .collect();
        for root in [
            "/sys/fs/bpf/plume-cc",
            "/sys/fs/cgroup/unified",
            "/sys/fs/cgroup",
        ] {
            v.extend(
                std::fs::read_dir(root)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path().display().to_string())
                    .filter(|n| n.contains(&tag)),
            );
        }
        v
    };
    let gone = |kids: &[(i32, String)]| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let alive: Vec<_> = kids.iter().filter(|(p, _)| running(*p)).collect();
            if alive.is_empty() {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "still running: {alive:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };

    // SIGINT: a clean stop, the report of what finished, exit 130.
    let (mut bench, out) = start("int");
    let pid = bench.id();
    let kids = children_once_running(pid);
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let t = std::time::Instant::now();
    let status = bench.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut bench.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(15),
        "{:?} to stop",
        t.elapsed()
    );
    assert!(err.contains("0 of 2 runs finished"), "{err}");
    assert!(out.join("results.json").exists(), "no report: {err}");
    gone(&kids);
    assert_eq!(leftovers(pid), Vec::<String>::new(), "SIGINT left these");

    // SIGKILL: the children die with it (the daemon by SIGTERM, so it
    // hands its flows back); the next benchmark removes the rest.
    let (mut bench, _) = start("kill");
    let pid = bench.id();
    let kids = children_once_running(pid);
    bench.kill().unwrap();
    bench.wait().unwrap();
    gone(&kids);
    assert!(
        !leftovers(pid).is_empty(),
        "nothing to clean up: the check is moot"
    );
    let o = Command::new(EXE)
        .args(["bench", "--traces"])
        .arg(&trace)
        .arg("--out")
        .arg(dir.join("next"))
        .args([
            "--schemes",
            "cubic",
            "--duration",
            "2s",
            "--runs",
            "1",
            "--quiet",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains(&format!("plume-emu-{pid}-0-in")), "{err}");
    assert_eq!(
        leftovers(pid),
        Vec::<String>::new(),
        "the next benchmark left these"
    );
}

/// The children of `parent`, with their command names.
fn children_of(parent: u32) -> Vec<(i32, String)> {
    let mut v = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map_or("", |(_, c)| c).to_string();
        if rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok())
            == Some(parent)
        {
            v.push((pid, comm));
        }
    }
    v
}

/// Whether `pid` exists and is not a zombie (an exited process its new
/// parent has not reaped yet).
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .is_some_and(|zombie| !zombie)
}

/// The pid of the `plume-cc run` daemon whose parent is `parent`.
fn daemon_of(parent: u32) -> Option<i32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Field 4, after the parenthesised command name.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid != Some(parent) {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        if args.get(1) == Some(&&b"run"[..]) {
            return Some(pid);
        }
    }
    None
}

/// The first file named `name` under `dir`, depth first.
fn find_file(dir: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find_file(&path, name) {
                return Some(found);
            }
        } else if entry.file_name() == name {
            return Some(path);
        }
    }
    None
}
