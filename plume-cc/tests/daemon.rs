//! Kernel tests of the control daemon (`plume-cc run`): real BPF, a child
//! cgroup the test creates, real loopback TCP, the real binary as a process
//! (so it can be killed with SIGKILL). Root only; CI runs them as root.

mod common;

use std::{
    io::{BufRead as _, BufReader, Read as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use common::{tmpdir, Sender, EXE};
use plume_cc::datapath::{
    cgroup::OwnedCgroup,
    probe::{ManyFlows, ProbeReport, Sink},
};

/// A scripted policy file in a temp folder.
fn script(dir: &Path, name: &str, json: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, json).unwrap();
    p
}

struct Daemon {
    child: Child,
    log: mpsc::Receiver<String>,
    pins: PathBuf,
}

impl Daemon {
    fn start(policy: &Path, cgroup: &Path, pin_dir: &Path, stale_ms: u64) -> Self {
        Self::start_with(policy, cgroup, pin_dir, stale_ms, &["--interval", "10ms"])
    }

    /// Like [`Daemon::start`], with `extra` arguments for `plume-cc run`.
    fn start_with(
        policy: &Path,
        cgroup: &Path,
        pin_dir: &Path,
        stale_ms: u64,
        extra: &[&str],
    ) -> Self {
        let mut child = Command::new(EXE)
            .args(["run", "--stale", &format!("{stale_ms}ms")])
            .args(extra)
            .arg("--policy")
            .arg(policy)
            .arg("--cgroup")
            .arg(cgroup)
            .arg("--pin-dir")
            .arg(pin_dir)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start plume-cc run");
        let stderr = child.stderr.take().unwrap();
        let (tx, log) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[daemon] {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let d = Self {
            child,
            log,
            pins: pin_dir.to_owned(),
        };
        d.wait_log("controlling", Duration::from_secs(15));
        d
    }

    fn wait_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("daemon never logged {needle:?}"));
            match self.log.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(_) => panic!("daemon never logged {needle:?}"),
            }
        }
    }

    fn kill9(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }

    fn terminate(mut self) {
        // SAFETY: plain kill(2) on our child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "daemon exited with {status} after SIGTERM"
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
        if std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.pins);
        }
    }
}

/// Removes a test's pins if the test fails: removing the pinned objects drops
/// the last references (the link detaches), so no datapath outlives a failure.
struct PinGuard(PathBuf);

impl Drop for PinGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Throughput between two reports, bytes/s.
fn rate(a: &ProbeReport, b: &ProbeReport) -> f64 {
    (b.bytes_acked - a.bytes_acked) as f64 / ((b.t_ms - a.t_ms).max(1) as f64 / 1e3)
}

#[test]
#[ignore = "needs root (CAP_BPF, CAP_NET_ADMIN); `cargo xtask test` runs it as root"]
fn cwnd_follows_scripted_targets_and_pacing_caps_the_rate() {
    if !common::have_root("daemon target-following test", "CAP_BPF, CAP_NET_ADMIN") {
        return;
    }
    let dir = tmpdir("follow");
    let cgroup = OwnedCgroup::create_unique("plume-cc-test").unwrap();
    let pins = PathBuf::from(format!(
        "/sys/fs/bpf/plume-cc/test-follow-{}",
        std::process::id()
    ));
    let _guard = PinGuard(pins.clone());
    // Steps: cwnd 4, then cwnd 12, then pacing 2 MB/s with no cwnd limit, held.
    let policy = script(
        &dir,
        "steps.json",
        r#"{"scripted":{"steps":[{"cwnd":4,"hold_ms":1200},{"cwnd":12,"hold_ms":1200},{"pacing_bytes_per_sec":2000000,"hold_ms":1000}]}}"#,
    );
    let sink = Sink::start("127.0.0.1:0".parse().unwrap()).unwrap();
    // The daemon first: flows established before the program is attached are
    // not seen by sock_ops (documented limitation).
    let daemon = Daemon::start(&policy, cgroup.path(), &pins, 500);
    let sender = Sender::spawn(&sink, Some(cgroup.path()), 6000);

    // Step 1: cwnd <= 4 once applied.
    sender.until("cwnd at the first target", Duration::from_secs(3), |r| {
        r.snd_cwnd <= 4
    });
    let step1 = sender.collect(Duration::from_millis(300));
    assert!(step1.iter().all(|r| r.snd_cwnd <= 4), "above 4: {step1:?}");
    // Step 2: cwnd rises above 4 and stays <= 12.
    let seen = sender.until(
        "cwnd above 4 in the second step",
        Duration::from_secs(3),
        |r| r.snd_cwnd > 4,
    );
    assert!(seen.last().unwrap().snd_cwnd <= 12);
    let step2 = sender.collect(Duration::from_millis(300));
    assert!(
        step2.iter().all(|r| r.snd_cwnd <= 12),
        "above 12: {step2:?}"
    );
    // Step 3: the pacing cap is in force and holds the rate.
    sender.until("pacing cap applied", Duration::from_secs(3), |r| {
        r.max_pacing_rate == 2_000_000
    });
    let step3 = sender.collect(Duration::from_millis(600));
    assert!(
        step3.iter().all(|r| r.max_pacing_rate == 2_000_000),
        "{step3:?}"
    );
    let r = rate(step3.first().unwrap(), step3.last().unwrap());
    assert!(
        r < 2_000_000.0 * 1.15,
        "paced flow ran at {r:.0} B/s over a 2 MB/s cap"
    );
    assert!(r > 2_000_000.0 * 0.5, "paced flow ran at only {r:.0} B/s");

    daemon.terminate();
    // After SIGTERM every limit is gone and the pins are removed.
    sender.until(
        "pacing cap lifted after SIGTERM",
        Duration::from_secs(2),
        |r| r.max_pacing_rate == u64::MAX,
    );
    assert!(!pins.exists(), "pins left at {}", pins.display());
    sender.finish();
    cgroup.remove().unwrap();
}

#[test]
#[ignore = "needs root (CAP_BPF, CAP_NET_ADMIN); `cargo xtask test` runs it as root"]
fn killed_daemon_leaves_no_flow_throttled_and_a_restart_readopts() {
    if !common::have_root("daemon kill -9 test", "CAP_BPF, CAP_NET_ADMIN") {
        return;
    }
    let dir = tmpdir("kill");
    let cgroup = OwnedCgroup::create_unique("plume-cc-test").unwrap();
    let pins = PathBuf::from(format!(
        "/sys/fs/bpf/plume-cc/test-kill-{}",
        std::process::id()
    ));
    let _guard = PinGuard(pins.clone());
    let policy = script(
        &dir,
        "throttle.json",
        r#"{"scripted":{"steps":[{"cwnd":4,"pacing_bytes_per_sec":2000000,"hold_ms":1000}]}}"#,
    );
    let sink = Sink::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let daemon = Daemon::start(&policy, cgroup.path(), &pins, 300);
    let sender = Sender::spawn(&sink, Some(cgroup.path()), 7000);
    let seen = sender.until("throttled", Duration::from_secs(3), |r| {
        r.snd_cwnd <= 4 && r.max_pacing_rate == 2_000_000
    });
    let throttled = sender.collect(Duration::from_millis(600));
    let slow = rate(throttled.first().unwrap(), throttled.last().unwrap());
    assert!(
        slow < 2.0e6 * 1.3,
        "throttled flow ran at {slow:.0} B/s over a 2 MB/s cap"
    );
    drop(seen);

    daemon.kill9();
    let killed_at = Instant::now();
    // The datapath lifts the stale target by itself: both limits gone.
    sender.until("limits lifted after SIGKILL", Duration::from_secs(2), |r| {
        r.max_pacing_rate == u64::MAX && r.snd_cwnd > 4
    });
    let lifted_after = killed_at.elapsed();
    assert!(
        lifted_after < Duration::from_millis(300 + 400),
        "lifted only after {lifted_after:?}"
    );
    let free = sender.collect(Duration::from_millis(400));
    let fast = rate(free.first().unwrap(), free.last().unwrap());
    assert!(
        fast > 25.0 * slow,
        "after the kill the flow ran at {fast:.0} B/s, throttled it ran at {slow:.0}"
    );
    assert!(
        pins.join("link").exists(),
        "the datapath must stay pinned after a crash"
    );

    // A restarted daemon re-adopts the pinned datapath and the live flow.
    let daemon = Daemon::start(&policy, cgroup.path(), &pins, 300);
    // "re-adopted ... with N live flows" is logged before "controlling".
    sender.until(
        "throttled again by the restarted daemon",
        Duration::from_secs(3),
        |r| r.snd_cwnd <= 4 && r.max_pacing_rate == 2_000_000,
    );
    let out = Command::new(EXE)
        .args(["status", "--json"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(&format!("test-kill-{}", std::process::id())),
        "{text}"
    );
    daemon.terminate();
    sender.until("released after SIGTERM", Duration::from_secs(2), |r| {
        r.max_pacing_rate == u64::MAX
    });
    sender.finish();
    cgroup.remove().unwrap();
}

/// SIGTERM at any moment of start-up (policy loading, attaching, the first
/// intervals) is a clean stop: exit status 0, and no pins (so no attached
/// program) left behind. The delays count from the daemon's first log line,
/// written once its handlers are in place; a signal before that (while the
/// binary and libtorch are still being loaded) can only kill a process that
/// has attached nothing, which the first round checks.
#[test]
#[ignore = "needs root (CAP_BPF, CAP_NET_ADMIN); `cargo xtask test` runs it as root"]
fn a_signal_during_start_up_leaves_no_pins() {
    if !common::have_root("daemon start-up signal test", "CAP_BPF, CAP_NET_ADMIN") {
        return;
    }
    let cgroup = OwnedCgroup::create_unique("plume-cc-test").unwrap();
    for (i, delay_ms) in [
        None,
        Some(0u64),
        Some(20),
        Some(60),
        Some(150),
        Some(400),
        Some(1000),
    ]
    .into_iter()
    .enumerate()
    {
        let pins = PathBuf::from(format!(
            "/sys/fs/bpf/plume-cc/test-early-{}-{i}",
            std::process::id()
        ));
        let _guard = PinGuard(pins.clone());
        let mut child = Command::new(EXE)
            .args(["run", "--policy", "default", "--cgroup"])
            .arg(cgroup.path())
            .arg("--pin-dir")
            .arg(&pins)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line.clone());
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        if let Some(d) = delay_ms {
            let deadline = Instant::now() + Duration::from_secs(15);
            while !rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("the daemon never logged its start")
                .contains("starting")
            {}
            thread::sleep(Duration::from_millis(d));
        }
        // SAFETY: plain kill(2) on our child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = child.wait().unwrap();
        let log = reader.join().unwrap();
        if delay_ms.is_some() {
            assert!(
                status.success(),
                "SIGTERM {delay_ms:?} ms after start: exit {status}\n{log}"
            );
        }
        assert!(
            !pins.exists(),
            "SIGTERM {delay_ms:?} ms after start left pins in {}\n{log}",
            pins.display()
        );
    }
    cgroup.remove().unwrap();
}

/// `plume-cc cleanup` leaves a running daemon's datapath alone, and removes
/// the one a killed daemon left pinned once its flows are free.
#[test]
#[ignore = "needs root (CAP_BPF, CAP_NET_ADMIN); `cargo xtask test` runs it as root"]
fn cleanup_spares_a_running_daemon_and_removes_a_killed_ones_datapath() {
    if !common::have_root("cleanup test", "CAP_BPF, CAP_NET_ADMIN") {
        return;
    }
    let dir = tmpdir("cleanup");
    let cgroup = OwnedCgroup::create_unique("plume-cc-test").unwrap();
    let pins = PathBuf::from(format!(
        "/sys/fs/bpf/plume-cc/test-cleanup-{}",
        std::process::id()
    ));
    let _guard = PinGuard(pins.clone());
    let policy = script(
        &dir,
        "clamp.json",
        r#"{"scripted":{"steps":[{"cwnd":8,"hold_ms":1000}]}}"#,
    );
    let sink = Sink::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let daemon = Daemon::start(&policy, cgroup.path(), &pins, 300);
    let sender = Sender::spawn(&sink, Some(cgroup.path()), 4000);
    sender.until("clamped", Duration::from_secs(3), |r| r.snd_cwnd <= 8);
    let cleanup = || {
        let out = Command::new(EXE)
            .arg("cleanup")
            .arg("--pin-dir")
            .arg(&pins)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let text = cleanup();
    assert!(text.contains("in use by process"), "{text}");
    assert!(pins.join("link").exists());
    daemon.kill9();
    // The stale target is lifted by the program itself; then cleanup can
    // release the (active) flow and detach.
    sender.until("free after the kill", Duration::from_secs(2), |r| {
        r.snd_cwnd > 8
    });
    let text = cleanup();
    assert!(text.contains("detached and unpinned"), "{text}");
    assert!(!pins.exists(), "cleanup left {}", pins.display());
    sender.finish();
    cgroup.remove().unwrap();
}

#[test]
#[ignore = "needs root (CAP_BPF, CAP_NET_ADMIN); `cargo xtask test` runs it as root"]
fn a_thousand_short_flows_leave_no_map_entries() {
    if !common::have_root("daemon 1000-flow test", "CAP_BPF, CAP_NET_ADMIN") {
        return;
    }
    let dir = tmpdir("many");
    let cgroup = OwnedCgroup::create_unique("plume-cc-test").unwrap();
    let pins = PathBuf::from(format!(
        "/sys/fs/bpf/plume-cc/test-many-{}",
        std::process::id()
    ));
    let _guard = PinGuard(pins.clone());
    let policy = script(
        &dir,
        "c.json",
        r#"{"scripted":{"steps":[{"cwnd":8,"hold_ms":1000}]}}"#,
    );
    let daemon = Daemon::start(&policy, cgroup.path(), &pins, 500);
    let sink = Sink::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut child = Command::new(EXE)
        .args([
            "probe",
            "--connect",
            &sink.addr().to_string(),
            "--flows",
            "1000",
            "--bytes",
            "20000",
            "--hold",
            "600ms",
        ])
        .arg("--cgroup")
        .arg(cgroup.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // While they are all open, the datapath holds about 1000 flows.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut peak = 0;
    while Instant::now() < deadline {
        let n = count_flows(&pins);
        peak = peak.max(n);
        if child.try_wait().unwrap().is_some() {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(child.wait().unwrap().success());
    let many: ManyFlows = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(many.opened, 1000);
    assert!(
        peak >= 990,
        "peak of {peak} flows in the map with 1000 open"
    );
    // After close: no stats entry and no target entry left.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (flows, targets) = entries(&pins);
        if flows == 0 && targets == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{flows} flow and {targets} target entries left after close"
        );
        thread::sleep(Duration::from_millis(50));
    }
    // And no slot leaked: none owned, every one back on the free list
    // (nothing opens in the cgroup now, so counting it is safe).
    let mut dp = plume_cc::datapath::Datapath::adopt(&pins, &pins).expect("open pins");
    assert_eq!(dp.slots_in_use(), 0);
    assert_eq!(
        dp.count_free_slots().unwrap(),
        plume_cc_common::MAX_FLOWS as usize
    );
    drop(dp);
    daemon.terminate();
    cgroup.remove().unwrap();
}

fn count_flows(pins: &Path) -> usize {
    entries(pins).0
}

fn entries(pins: &Path) -> (usize, usize) {
    let dp = plume_cc::datapath::Datapath::adopt(pins, pins).expect("open pins");
    (
        dp.flows().unwrap().len(),
        dp.target_cookies().unwrap().len(),
    )
}

/// Runs `plume-cc run` with bad input; it must fail at once with a message naming the problem.
fn run_fails(args: &[&str], needle: &str) {
    let out = Command::new(EXE)
        .arg("run")
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "succeeded with {args:?}");
    assert!(
        err.contains(needle),
        "{args:?}: expected {needle:?} in: {err}"
    );
}

#[test]
fn bad_input_gets_a_clear_error() {
    let dir = tmpdir("bad");
    let malformed = script(
        &dir,
        "bad.json",
        r#"{"scripted":{"steps":[{"cwnd":"four"}]}}"#,
    );
    let empty = script(&dir, "empty.json", r#"{"scripted":{"steps":[]}}"#);
    let good = script(
        &dir,
        "good.json",
        r#"{"scripted":{"steps":[{"cwnd":4,"hold_ms":10}]}}"#,
    );
    run_fails(
        &["--policy", "/nonexistent/p.json", "--cgroup", "/tmp"],
        "/nonexistent/p.json: no such file or folder",
    );
    run_fails(
        &["--policy", "/nonexistent/folder", "--cgroup", "/tmp"],
        "/nonexistent/folder: no such file or folder",
    );
    run_fails(
        &["--policy", malformed.to_str().unwrap(), "--cgroup", "/tmp"],
        "malformed scripted schedule",
    );
    run_fails(
        &["--policy", empty.to_str().unwrap(), "--cgroup", "/tmp"],
        "no steps",
    );
    run_fails(
        &[
            "--policy",
            good.to_str().unwrap(),
            "--cgroup",
            "/sys/fs/cgroup/unified/plume-cc-no-such-cgroup",
        ],
        "does not exist (pass --create-cgroup",
    );
    run_fails(
        &["--policy", good.to_str().unwrap(), "--cgroup", "/tmp"],
        "not a cgroup v2 folder",
    );
    // The cgroup2 root holds every process of the host: refused before
    // anything is attached (no root needed to see it).
    if let Ok(root) = plume_cc::datapath::cgroup::cgroup2_mount() {
        run_fails(
            &[
                "--policy",
                good.to_str().unwrap(),
                "--cgroup",
                root.to_str().unwrap(),
            ],
            "is the cgroup2 root",
        );
        let spelled = format!("{}/.", root.display());
        run_fails(
            &["--policy", good.to_str().unwrap(), "--cgroup", &spelled],
            "--allow-root-cgroup",
        );
    }
    run_fails(
        &[
            "--policy",
            good.to_str().unwrap(),
            "--cgroup",
            "/tmp",
            "--interval",
            "100",
            "--stale-ms",
            "150",
        ],
        "must exceed two intervals",
    );
    // Out of range, named with the flag and the range (daemon::DaemonConfig).
    for (flag, value, needle) in [
        (
            "--interval",
            "0ms",
            "--interval 0ns is out of range: it must be within 1ms to 10s",
        ),
        (
            "--stale",
            "2min",
            "--stale 120s is out of range: it must be within 1ms to 60s",
        ),
    ] {
        let good = good.to_str().unwrap();
        run_fails(&["--policy", good, "--cgroup", "/tmp", flag, value], needle);
    }
    // The default policy was trained at 20 ms: another interval is refused.
    run_fails(
        &[
            "--policy",
            "default",
            "--cgroup",
            "/tmp",
            "--interval",
            "10",
        ],
        "monitor interval",
    );
    run_fails(
        &[
            "--policy",
            "default",
            "--cgroup",
            "/tmp",
            "--base",
            "no-such-cc",
        ],
        "tcp_available_congestion_control",
    );
}

#[test]
#[ignore = "needs root (CAP_BPF, CAP_NET_ADMIN); `cargo xtask test` runs it as root"]
fn the_daemon_controls_two_flows_of_one_cgroup_over_a_pinned_base() {
    if !common::have_root("daemon two-flow test", "CAP_BPF, CAP_NET_ADMIN") {
        return;
    }
    let cgroup = OwnedCgroup::create_unique("plume-cc-test").unwrap();
    let pins = PathBuf::from(format!(
        "/sys/fs/bpf/plume-cc/test-two-flows-{}",
        std::process::id()
    ));
    let _guard = PinGuard(pins.clone());
    let dir = tmpdir("two-flows");
    let rec = dir.join("record.jsonl");
    // Reno is never a host's default, so finding it proves the pin.
    let daemon = Daemon::start_with(
        Path::new("default"),
        cgroup.path(),
        &pins,
        500,
        &[
            "--interval",
            "20",
            "--base",
            "reno",
            "--record",
            rec.to_str().unwrap(),
        ],
    );
    let sink = Sink::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let a = Sender::spawn(&sink, Some(cgroup.path()), 3000);
    let b = Sender::spawn(&sink, Some(cgroup.path()), 3000);
    for (name, s) in [("first", &a), ("second", &b)] {
        s.until(
            &format!("a learned pacing cap on the {name} flow"),
            Duration::from_secs(5),
            |r| r.max_pacing_rate != u64::MAX,
        );
    }
    let ccs = common::congestion_controls_to(sink.addr().port());
    assert_eq!(ccs, ["reno", "reno"], "both flows run the pinned base");
    let dp = plume_cc::datapath::Datapath::adopt(&pins, &pins).unwrap();
    let flows = dp.flows().unwrap();
    assert_eq!(flows.len(), 2);
    for (cookie, _) in &flows {
        let t = dp.target(*cookie).unwrap().expect("a target per flow");
        assert!(t.cwnd_clamp >= 4 && t.cwnd_clamp < i32::MAX as u32, "{t:?}");
    }
    let counters = dp.counters().unwrap();
    assert_eq!(counters.base_pinned, 2, "{counters:?}");
    assert!(
        counters.target_checks >= counters.targets_applied / 2,
        "{counters:?}"
    );
    drop(dp);
    daemon.terminate();
    for s in [&a, &b] {
        s.until("released after SIGTERM", Duration::from_secs(2), |r| {
            r.max_pacing_rate == u64::MAX
        });
    }
    a.finish();
    b.finish();
    // The recording saw both flows in one interval, each with its target.
    let intervals = plume_cc::daemon::record::read(&rec).unwrap();
    assert!(
        intervals
            .iter()
            .any(|i| i.flows.len() == 2 && i.flows.iter().all(|f| f.target_cwnd_clamp >= 4)),
        "no interval with both flows in {} lines",
        intervals.len()
    );
    cgroup.remove().unwrap();
}

/// The default learned policy steers a loopback flow by the flow's own
/// statistics, and what it decides is what the kernel enforces:
///
/// - replaying the daemon's recording (`--record`: the statistics it read
///   each interval, at the time it decided) through the same policy gives
///   every target it wrote, exactly: the limits come from this flow's
///   statistics, with no rounding or mix-up on the way to the map;
/// - over the flow's last second, the limits in force lie within the
///   policy's action envelope around the BDP and rate anchor it computes
///   from those statistics (for the default scaling, cwnd clamp 0.5 to 8
///   BDPs and pacing cap 0.31 to 5 anchors), widened by one smoothing step
///   (`max_log2_step`), in at least 90% of the intervals (the smoothing may
///   lag a jump of the anchor for a few intervals);
/// - the pacing cap is in force: the flow's goodput over its last second
///   stays under the mean cap applied then (plus 10%: the cap changes every
///   interval and the reports sample it every 10 ms), and it was a real
///   limit, not "none". Measured on loopback (2026-12-02, 4 runs): goodput
///   306-458 MB/s under mean caps of 428-473 MB/s (ratio 0.66-0.97).
///
/// On loopback the envelope is loose: the min RTT is 4-5 us and the rate
/// anchor saturates at the observation's 10 Gbit/s clip, so the BDP is a
/// fraction of one 64 kB segment (the clamp sits at its 4-segment floor)
/// and the pacing cap's envelope starts at 0.31 x 10 Gbit/s. The exact
/// replay is the strict part: a daemon that wrote the pacing cap in the
/// wrong unit (a cap divided by 8, tried on 2026-12-02) fails it.
#[test]
#[ignore = "needs root (CAP_BPF, CAP_NET_ADMIN); `cargo xtask test` runs it as root"]
fn the_default_learned_policy_steers_a_flow() {
    use plume_cc::policy::{
        default_policy, flow_context_from_observation, FlowPolicy, Guard, LearnedPolicy, Target,
        OBSERVATION_LEN,
    };
    if !common::have_root("daemon learned-policy test", "CAP_BPF, CAP_NET_ADMIN") {
        return;
    }
    let dir = tmpdir("learned");
    let rec = dir.join("record.jsonl");
    let cgroup = OwnedCgroup::create_unique("plume-cc-test").unwrap();
    let pins = PathBuf::from(format!(
        "/sys/fs/bpf/plume-cc/test-learned-{}",
        std::process::id()
    ));
    let _guard = PinGuard(pins.clone());
    // The default policy runs at its own 20 ms interval.
    let daemon = Daemon::start_with(
        Path::new("default"),
        cgroup.path(),
        &pins,
        500,
        &["--interval", "20ms", "--record", rec.to_str().unwrap()],
    );
    let sink = Sink::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let sender = Sender::spawn(&sink, Some(cgroup.path()), 3000);
    // Once the flow has an RTT and a rate estimate, the policy's limits are in force.
    let seen = sender.until(
        "a learned pacing cap or cwnd clamp",
        Duration::from_secs(5),
        |r| r.max_pacing_rate != u64::MAX,
    );
    let start_ms = seen.last().unwrap().t_ms;
    let mut reports = sender.finish();
    reports.retain(|r| !r.done && r.t_ms >= start_ms);
    daemon.terminate();
    // The cap is in force over the last second.
    let last_ms = reports.last().expect("reports after the limits").t_ms;
    let tail: Vec<&ProbeReport> = reports
        .iter()
        .filter(|r| r.t_ms + 1000 >= last_ms)
        .collect();
    assert!(
        tail.len() >= 20,
        "{} reports in the last second",
        tail.len()
    );
    let goodput = rate(tail[0], tail[tail.len() - 1]);
    let max_cap = tail.iter().map(|r| r.max_pacing_rate).max().unwrap();
    assert!(max_cap < u64::from(u32::MAX), "no cap in force: {tail:?}");
    // The reports come every 10 ms, so their mean is the time-weighted cap.
    let mean_cap = tail.iter().map(|r| r.max_pacing_rate as f64).sum::<f64>() / tail.len() as f64;
    assert!(
        goodput <= 1.1 * mean_cap,
        "goodput {goodput:.0} B/s above the mean cap in force, {mean_cap:.0} B/s"
    );

    // Replay the recording through the same policy, as the daemon ran it.
    tch::set_num_threads(1);
    let intervals = plume_cc::daemon::record::read(&rec).unwrap();
    let loaded = default_policy().unwrap();
    let scaling = loaded.metadata().action_scaling;
    let mut policy = LearnedPolicy::new(loaded);
    let mut guard = Guard::default();
    let mut out = Vec::new();
    let last_ns = intervals.last().expect("a recording").t_ns;
    let step = f64::from(scaling.max_log2_step).exp2();
    let (mut limited, mut within) = (0, 0);
    for i in &intervals {
        let flows: Vec<_> = i.flows.iter().map(|f| (f.cookie, f.stats)).collect();
        policy.decide(i.t_ns, &flows, &mut out).unwrap();
        for (k, f) in i.flows.iter().enumerate() {
            let written = Target {
                cwnd_clamp_segments: f.target_cwnd_clamp,
                max_pacing_bytes_per_sec: f.target_pacing,
                competitive_cc: false,
            };
            assert_eq!(
                guard.apply(out[k]),
                written,
                "at {} ns the daemon wrote other limits than the policy decides for {:?}",
                i.t_ns,
                f.stats
            );
            if i.t_ns + 1_000_000_000 < last_ns {
                continue;
            }
            let batch = policy.last_batch().unwrap();
            let obs = &batch.observations[k * OBSERVATION_LEN..(k + 1) * OBSERVATION_LEN];
            let ctx = flow_context_from_observation(obs, f.stats.mss);
            let (lo, hi) = (
                scaling.to_target([-1.0, -1.0], &ctx),
                scaling.to_target([1.0, 1.0], &ctx),
            );
            assert_ne!(lo, Target::UNLIMITED, "no BDP estimate at the end: {ctx:?}");
            let inside = |v: u32, lo: u32, hi: u32| {
                let v = f64::from(v);
                v >= f64::from(lo) / step && v <= f64::from(hi) * step
            };
            limited += 1;
            if inside(
                f.stats.applied_cwnd_clamp,
                lo.cwnd_clamp_segments,
                hi.cwnd_clamp_segments,
            ) && inside(
                f.stats.applied_pacing,
                lo.max_pacing_bytes_per_sec,
                hi.max_pacing_bytes_per_sec,
            ) {
                within += 1;
            } else {
                eprintln!(
                    "outside the envelope: applied ({}, {}), envelope {lo:?} to {hi:?}, {ctx:?}",
                    f.stats.applied_cwnd_clamp, f.stats.applied_pacing
                );
            }
            if limited == 1 {
                eprintln!(
                    "first interval of the last second: applied ({}, {}), envelope {lo:?} to {hi:?}, {ctx:?}",
                    f.stats.applied_cwnd_clamp, f.stats.applied_pacing
                );
            }
        }
    }
    eprintln!(
        "learned policy on loopback: {} intervals replayed exactly; last second: goodput {goodput:.0} B/s, mean cap {mean_cap:.0} B/s, largest {max_cap} B/s, {within} of {limited} intervals within the envelope",
        intervals.len()
    );
    assert!(limited >= 25, "{limited} intervals in the last second");
    assert!(
        10 * within >= 9 * limited,
        "{within} of {limited} intervals within the envelope"
    );
    drop(sink);
    cgroup.remove().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The daemon as `plume-cc.service` runs it: uid 0 with only the unit's
/// capabilities (plume_cc::service::unit::CAPABILITIES, applied with
/// setpriv), and NOTIFY_SOCKET pointing at a socket of ours. READY=1 must
/// come once the datapath is attached, STOPPING=1 on SIGTERM, and the
/// daemon must then detach cleanly.
#[test]
#[ignore = "needs root (CAP_BPF, CAP_NET_ADMIN); `cargo xtask test` runs it as root"]
fn systemd_is_notified_and_the_units_capabilities_suffice() {
    use std::os::unix::net::UnixDatagram;
    if !common::have_root("daemon sd_notify test", "CAP_BPF, CAP_NET_ADMIN") {
        return;
    }
    let dir = tmpdir("notify");
    let cgroup = OwnedCgroup::create_unique("plume-cc-test").unwrap();
    let pins = PathBuf::from(format!(
        "/sys/fs/bpf/plume-cc/test-notify-{}",
        std::process::id()
    ));
    let _guard = PinGuard(pins.clone());
    let socket_path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let recv = || {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).expect("a notification within 20 s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let caps: Vec<String> = plume_cc::service::unit::CAPABILITIES
        .iter()
        .map(|(c, _)| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    let mut child = Command::new("setpriv")
        .arg(format!("--bounding-set=-all,{}", caps.join(",")))
        .arg("--inh-caps=-all")
        .arg(EXE)
        .args(["run", "--policy", "default", "--cgroup"])
        .arg(cgroup.path())
        .arg("--pin-dir")
        .arg(&pins)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start plume-cc run under setpriv");
    let ready = recv();
    let attached = plume_cc::datapath::attached_at(&pins);
    if !ready.contains("READY=1") {
        child.kill().ok();
        let mut err = String::new();
        child.stderr.take().unwrap().read_to_string(&mut err).ok();
        panic!("first notification {ready:?}, not READY=1; daemon stderr:\n{err}");
    }
    assert!(attached, "READY=1 came before the datapath was pinned");
    assert!(
        ready.contains(&format!("STATUS=controlling {}", cgroup.path().display())),
        "{ready:?}"
    );
    // SAFETY: plain kill(2) on our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let stopping = recv();
    assert!(stopping.contains("STOPPING=1"), "{stopping:?}");
    let status = child.wait().unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).ok();
    assert!(status.success(), "daemon exited with {status}:\n{err}");
    assert!(!pins.exists(), "pins left at {}", pins.display());
    cgroup.remove().unwrap();
    std::fs::remove_dir_all(&dir).ok();
}

/// One HTTP GET of `path` on `addr`; the body.
fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use std::io::Write as _;
    // One I/O error is retried: a helper session once saw BrokenPipe on the
    // request's write (not reproduced in 4 reruns); the assertions below
    // are on the response, which a retry does not weaken.
    let fetch = || -> std::io::Result<String> {
        let mut conn = std::net::TcpStream::connect(addr)?;
        conn.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(conn, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
        let mut resp = String::new();
        conn.read_to_string(&mut resp)?;
        Ok(resp)
    };
    let resp = fetch().or_else(|e| {
        eprintln!("metrics GET {path}: {e}; retrying once");
        std::thread::sleep(Duration::from_millis(300));
        fetch()
    });
    let resp = resp.expect("GET from the metrics endpoint");
    let (head, body) = resp.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    assert!(
        head.contains("Content-Type: application/openmetrics-text"),
        "{head}"
    );
    body.to_string()
}

/// The metrics endpoint during a run, read as Prometheus reads it: the
/// text parses, the step histogram has every step, the guard's counter
/// says why it replaced outputs (a scripted cwnd of 1 is under the floor
/// of 2), and the build info names the policy file's SHA-256.
#[test]
#[ignore = "needs root (CAP_BPF, CAP_NET_ADMIN); `cargo xtask test` runs it as root"]
fn the_metrics_endpoint_parses_as_prometheus_text() {
    use prometheus_parse::{Scrape, Value};
    use sha2::Digest as _;
    if !common::have_root("daemon metrics test", "CAP_BPF, CAP_NET_ADMIN") {
        return;
    }
    let dir = tmpdir("metrics");
    let cgroup = OwnedCgroup::create_unique("plume-cc-test").unwrap();
    // The folder the daemon picks by default, so that status can name the cgroup.
    let pins = plume_cc::datapath::default_pin_dir(cgroup.path());
    let _guard = PinGuard(pins.clone());
    let json = r#"{"scripted":{"steps":[{"cwnd":1,"hold_ms":100000}]}}"#;
    let policy = script(&dir, "under-floor.json", json);
    let sha: String = sha2::Sha256::digest(json.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // A free loopback port: bound by us, released, then bound by the daemon.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let daemon = Daemon::start_with(
        &policy,
        cgroup.path(),
        &pins,
        500,
        &["--interval", "10ms", "--metrics", &addr.to_string()],
    );
    daemon.wait_log("metrics endpoint", Duration::from_secs(5));
    let sink = Sink::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let sender = Sender::spawn(&sink, Some(cgroup.path()), 3000);
    sender.until("cwnd at the floor", Duration::from_secs(3), |r| {
        r.snd_cwnd <= 2
    });
    let body = http_get(addr, "/metrics");
    let scrape = Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap();
    let find = |name: &str, label: Option<(&str, &str)>| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .unwrap_or_else(|| panic!("{name} {label:?} missing from:\n{body}"))
    };
    let number = |v: &Value| match v {
        Value::Counter(x) | Value::Gauge(x) | Value::Untyped(x) => *x,
        other => panic!("not a number: {other:?}"),
    };
    let intervals = number(&find("plume_intervals_total", None).value);
    assert!(intervals >= 1.0, "{body}");
    assert!(number(&find("plume_flows", None).value) >= 1.0, "{body}");
    let below = number(&find("plume_policy_guarded_total", Some(("reason", "below_min"))).value);
    assert!(below >= 1.0, "no guarded output counted:\n{body}");
    assert_eq!(
        number(&find("plume_policy_guarded_total", Some(("reason", "nan"))).value),
        0.0
    );
    find("plume_step_overruns_total", None);
    // Counted by the daemon's slot reader; exported (as a counter) even
    // when nothing tore. (The parser reads OpenMetrics `_total` samples as
    // untyped, hence the TYPE line.)
    assert!(number(&find("plume_torn_reads_total", None).value) >= 0.0);
    assert!(body.contains("# TYPE plume_torn_reads counter\n"), "{body}");
    let info = find("plume_cc_build_info", None);
    assert_eq!(
        info.labels.get("policy_sha256"),
        Some(sha.as_str()),
        "{body}"
    );
    assert_eq!(info.labels.get("version"), Some(env!("CARGO_PKG_VERSION")));
    let Value::Histogram(buckets) = &find("plume_step_duration_seconds", None).value else {
        panic!("plume_step_duration_seconds is not a histogram:\n{body}");
    };
    let all = buckets.last().expect("buckets");
    assert!(
        all.less_than.is_infinite() && all.count >= 1.0,
        "{buckets:?}"
    );
    // Every metric is documented.
    for name in [
        "plume_flows",
        "plume_intervals",
        "plume_step_duration_seconds",
    ] {
        assert!(
            scrape.docs.contains_key(name),
            "no HELP for {name}:\n{body}"
        );
    }
    // `status --pin-dir` shows this datapath alone, with its cgroup read
    // back from the folder's name.
    let o = Command::new(EXE)
        .args(["status", "--json", "--pin-dir"])
        .arg(&pins)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let runs = v.as_array().unwrap();
    assert_eq!(runs.len(), 1, "{v}");
    assert_eq!(runs[0]["pins"], pins.to_str().unwrap());
    assert_eq!(runs[0]["cgroup"], cgroup.path().to_str().unwrap(), "{v}");
    let flows = runs[0]["flows"].as_array().unwrap();
    assert!(!flows.is_empty(), "{v}");
    // The sender's flow, its addresses as fields in JSON and as `ss -ti`
    // writes them in the table.
    let sink_port = sink.addr().port();
    let flow = flows
        .iter()
        .find(|f| f["remote_port"] == sink_port)
        .unwrap_or_else(|| panic!("no flow to port {sink_port}: {v}"));
    assert_eq!(flow["local_addr"], "127.0.0.1", "{flow}");
    assert_eq!(flow["remote_addr"], "127.0.0.1", "{flow}");
    let o = Command::new(EXE)
        .args(["status", "--pin-dir"])
        .arg(&pins)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains(&format!(" 127.0.0.1:{sink_port} ")), "{text}");
    assert!(
        text.contains(&format!(" 127.0.0.1:{} ", flow["local_port"])),
        "{text}"
    );
    daemon.terminate();
    sender.finish();
    assert!(!pins.exists(), "pins left at {}", pins.display());
    cgroup.remove().unwrap();
}

/// Issue 14, "Real flows at scale": 10,000 real loopback connections in
/// the controlled cgroup, 100 of them sending all the time and the rest
/// idle, under `plume-cc run`. Every connection is registered (by cookie)
/// and carries the daemon's limits, in the program's record and in its own
/// socket (TCP_INFO: pacing cap and cwnd); after kill -9 of the daemon the
/// staleness fallback lifts every limit (an idle flow's on its next
/// callback: it sends a byte); after they all close, no map entry is left,
/// and `cleanup` detaches the program. About 5 s on the 2-core VM.
#[test]
#[ignore = "needs root (CAP_BPF, CAP_NET_ADMIN); `cargo xtask test` runs it as root"]
fn ten_thousand_real_flows_are_limited_released_after_kill9_and_leave_no_entries() {
    use plume_cc::datapath::held::{HeldFlow, HeldFlows};
    use plume_cc_common::{CWND_UNCLAMPED, PACING_UNLIMITED};
    use std::collections::HashSet;
    if !common::have_root("daemon 10,000-flow test", "CAP_BPF, CAP_NET_ADMIN") {
        return;
    }
    const FLOWS: usize = 10_000;
    const ACTIVE: usize = 100;
    const CWND: u32 = 8;
    const PACING: u32 = 5_000_000;
    let dir = tmpdir("scale");
    let cgroup = OwnedCgroup::create_unique("plume-cc-test").unwrap();
    let pins = PathBuf::from(format!(
        "/sys/fs/bpf/plume-cc/test-scale-{}",
        std::process::id()
    ));
    let _guard = PinGuard(pins.clone());
    let policy = script(
        &dir,
        "cap.json",
        &format!(
            r#"{{"scripted":{{"steps":[{{"cwnd":{CWND},"pacing_bytes_per_sec":{PACING},"hold_ms":3600000}}]}}}}"#
        ),
    );
    let t0 = Instant::now();
    let daemon = Daemon::start_with(
        &policy,
        cgroup.path(),
        &pins,
        1000,
        // BBR sets the cwnd on every ACK, capped by the clamp, so even an
        // idle flow's socket shows the clamp after one poke (cubic lowers
        // it only while cwnd-limited).
        &["--interval", "20ms", "--base", "bbr"],
    );
    let mut held = HeldFlows::open(
        Path::new(EXE),
        cgroup.path(),
        FLOWS,
        ACTIVE,
        16 * 1024,
        Duration::from_millis(20),
        Duration::from_secs(60),
    )
    .expect("open 10,000 connections");
    let opened = held.opened().clone();
    eprintln!("{FLOWS} connections opened in {} ms", opened.open_ms);
    let cookies: HashSet<u64> = opened.cookies.iter().copied().collect();
    assert_eq!(cookies.len(), FLOWS, "socket cookies repeat");
    let mut dp = plume_cc::datapath::Datapath::adopt(&pins, &pins).expect("open pins");

    // Every connection is registered and gets a target.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let flows: HashSet<u64> = dp.flows().unwrap().into_iter().map(|(c, _)| c).collect();
        let targets: HashSet<u64> = dp.target_cookies().unwrap().into_iter().collect();
        let missing = cookies.difference(&flows).count();
        let untargeted = cookies.difference(&targets).count();
        if missing == 0 && untargeted == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} connections unregistered, {untargeted} without a target"
        );
        thread::sleep(Duration::from_millis(100));
    }
    eprintln!("all registered and targeted after {:?}", t0.elapsed());

    // The idle ones apply their target on their next callback: poke them
    // until every flow's record shows the limits (a poke can land just
    // before the daemon's first write for a flow).
    let all_have = |want: (u32, u32)| {
        let stats = dp.flows().unwrap();
        let n = stats
            .iter()
            .filter(|(c, s)| {
                cookies.contains(c) && (s.applied_cwnd_clamp, s.applied_pacing) == want
            })
            .count();
        (n == FLOWS, n)
    };
    let poke_until = |held: &mut HeldFlows, want: (u32, u32), what: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            held.poke().unwrap();
            thread::sleep(Duration::from_millis(300));
            let (done, n) = all_have(want);
            if done {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: {n} of {FLOWS} flows");
        }
    };
    poke_until(&mut held, (CWND, PACING), "limits applied");
    eprintln!("all limited after {:?}", t0.elapsed());
    // The kernel's own view, socket by socket.
    let report: Vec<HeldFlow> = held.report().unwrap();
    assert_eq!(report.len(), FLOWS);
    let bad: Vec<&HeldFlow> = report
        .iter()
        .filter(|f| f.max_pacing_rate != u64::from(PACING) || f.snd_cwnd > CWND)
        .collect();
    assert!(
        bad.is_empty(),
        "{} sockets not limited, e.g. {:?}",
        bad.len(),
        &bad[..bad.len().min(3)]
    );
    let active_acked: Vec<u64> = report[FLOWS - ACTIVE..]
        .iter()
        .map(|f| f.bytes_acked)
        .collect();
    assert!(
        active_acked.iter().all(|&b| b > 100_000),
        "an active flow moved little: {active_acked:?}"
    );

    // kill -9: nobody refreshes the targets; after the 1 s staleness
    // timeout the program lifts every limit on the flow's next callback.
    let expired_before = dp.counters().unwrap().targets_expired;
    daemon.kill9();
    let killed = Instant::now();
    thread::sleep(Duration::from_millis(1100));
    poke_until(
        &mut held,
        (CWND_UNCLAMPED, PACING_UNLIMITED),
        "limits lifted after kill -9",
    );
    eprintln!("all released {:?} after the kill", killed.elapsed());
    let report = held.report().unwrap();
    let still: Vec<&HeldFlow> = report
        .iter()
        .filter(|f| f.max_pacing_rate != u64::MAX)
        .collect();
    assert!(
        still.is_empty(),
        "{} sockets still paced after the staleness timeout, e.g. {:?}",
        still.len(),
        &still[..still.len().min(3)]
    );
    let expired = dp.counters().unwrap().targets_expired - expired_before;
    assert!(
        expired >= FLOWS as u64,
        "{expired} expiries counted for {FLOWS} flows"
    );

    // All close: no entry is left (the program, still attached through
    // the dead daemon's pins, removes each at TCP_CLOSE).
    let closing = Instant::now();
    assert_eq!(held.close().unwrap(), FLOWS);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (f, t) = (
            dp.flows().unwrap().len(),
            dp.target_cookies().unwrap().len(),
        );
        if f == 0 && t == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{f} flow and {t} target entries left after close"
        );
        thread::sleep(Duration::from_millis(100));
    }
    eprintln!("no entry left {:?} after the close", closing.elapsed());
    // Every slot is back on the free list (issue 14: 0 slots leaked).
    assert_eq!(dp.slots_in_use(), 0, "slots still owned after the close");
    assert_eq!(
        dp.count_free_slots().unwrap(),
        plume_cc_common::MAX_FLOWS as usize,
        "slots missing from the free list after the close"
    );
    drop(dp);
    let out = Command::new(EXE)
        .arg("cleanup")
        .arg("--pin-dir")
        .arg(&pins)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("detached and unpinned"),
        "{text}"
    );
    assert!(!pins.exists(), "cleanup left {}", pins.display());
    cgroup.remove().unwrap();
    eprintln!("whole test {:?}", t0.elapsed());
}

/// Issue 14, "Bad input and faults": flows in a network namespace that is
/// deleted mid-transfer (sender killed, receiver closed, `ip netns del`)
/// leave no map entry behind, and the daemon, once stopped, no attached
/// program (its pins, which hold the link, are gone). Whether the entries
/// go at TCP_CLOSE or by the daemon's reaping (sock_diag, after
/// REAP_IDLE_NS) is the kernel's business; the test waits long enough for
/// either and prints which it was.
#[test]
#[ignore = "needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN); `cargo xtask test` runs it as root"]
fn flows_of_a_namespace_deleted_mid_transfer_leave_no_entries_and_no_program() {
    use plume_cc::emu::netns::NetNs;
    if !common::have_root(
        "deleted-namespace test",
        "CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN",
    ) {
        return;
    }
    let dir = tmpdir("netns-gone");
    let cgroup = OwnedCgroup::create_unique("plume-cc-test").unwrap();
    let pins = PathBuf::from(format!(
        "/sys/fs/bpf/plume-cc/test-netns-gone-{}",
        std::process::id()
    ));
    let _guard = PinGuard(pins.clone());
    let policy = script(
        &dir,
        "clamp.json",
        r#"{"scripted":{"steps":[{"cwnd":6,"hold_ms":3600000}]}}"#,
    );
    let daemon = Daemon::start(&policy, cgroup.path(), &pins, 300);
    let ns = NetNs::create(&format!("plume-gone-{}", std::process::id())).expect("netns");
    // The receiver lives in the namespace (a listener made by a thread
    // that joined it), outside the cgroup; the senders too, inside it.
    let sink = ns
        .run(|| Sink::start("127.0.0.1:0".parse().unwrap()))
        .unwrap()
        .unwrap();
    let senders: Vec<Sender> = (0..3)
        .map(|_| {
            Sender::spawn_with(&sink, Some(cgroup.path()), 30_000, |cmd| {
                ns.configure_command(cmd)
            })
        })
        .collect();
    let cookies: Vec<u64> = senders.iter().map(|s| s.first().cookie).collect();
    for s in &senders {
        s.until("clamped", Duration::from_secs(5), |r| r.snd_cwnd <= 6);
    }
    let dp = plume_cc::datapath::Datapath::adopt(&pins, &pins).expect("open pins");
    for c in &cookies {
        let s = dp
            .flow(*c)
            .unwrap()
            .expect("a namespace flow is registered");
        assert_eq!(s.applied_cwnd_clamp, 6, "{s:?}");
    }
    // Mid-transfer: the senders die, the receiver goes, the namespace is
    // deleted.
    for s in senders {
        s.kill9();
    }
    drop(sink);
    drop(ns);
    let gone = Instant::now();
    let deadline =
        gone + Duration::from_nanos(plume_cc::datapath::REAP_IDLE_NS) + Duration::from_secs(15);
    loop {
        let left: Vec<u64> = cookies
            .iter()
            .copied()
            .filter(|c| dp.flow(*c).unwrap().is_some())
            .collect();
        let targets = dp.target_cookies().unwrap();
        if left.is_empty() && !cookies.iter().any(|c| targets.contains(c)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "entries of the deleted namespace's flows left: {left:?}"
        );
        thread::sleep(Duration::from_millis(100));
    }
    let counters = dp.counters().unwrap();
    eprintln!(
        "entries gone {:?} after the namespace was deleted ({} flows closed by the program)",
        gone.elapsed(),
        counters.flows_closed
    );
    assert_eq!(dp.flows().unwrap().len(), 0, "the cgroup has no other flow");
    drop(dp);
    daemon.terminate();
    assert!(
        !pins.exists(),
        "the stopped daemon left its datapath attached ({})",
        pins.display()
    );
    cgroup.remove().unwrap();
}

/// `run --explain` on a real loopback flow: the daemon runs the committed
/// predictors of the default policy beside it, `status --explain --json`
/// shows a prediction for the flow under each action, flagged as an
/// extrapolation (a loopback flow's microseconds of min RTT and Gbit/s lie
/// far outside the simulated paths the predictors were fit on) and logged
/// once as such, the Prometheus endpoint exports the predicted gauges, and
/// SIGTERM releases the flow and removes the state file.
#[test]
#[ignore = "needs root (CAP_BPF, CAP_NET_ADMIN); `cargo xtask test` runs it as root"]
fn run_explain_publishes_live_predictions_and_flags_extrapolation() {
    use prometheus_parse::{Scrape, Value};
    if !common::have_root("daemon explain test", "CAP_BPF, CAP_NET_ADMIN") {
        return;
    }
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/default");
    assert!(
        policy.join("explain.json").exists(),
        "the default policy ships its predictors"
    );
    let cgroup = OwnedCgroup::create_unique("plume-cc-test").unwrap();
    let pins = plume_cc::datapath::default_pin_dir(cgroup.path());
    let _guard = PinGuard(pins.clone());
    let state =
        plume_cc::explain::live::state_path(Path::new(plume_cc::explain::live::STATE_DIR), &pins);
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let daemon = Daemon::start_with(
        &policy,
        cgroup.path(),
        &pins,
        500,
        &[
            "--interval",
            "20ms",
            "--explain",
            "--explain-every",
            "5",
            "--metrics",
            &addr.to_string(),
        ],
    );
    daemon.wait_log("metrics endpoint", Duration::from_secs(5));
    let sink = Sink::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let sender = Sender::spawn(&sink, Some(cgroup.path()), 4000);
    let cookie = sender
        .until("a learned limit", Duration::from_secs(5), |r| {
            r.max_pacing_rate != u64::MAX
        })
        .last()
        .unwrap()
        .cookie;
    // The explanation of the flow, as `status --explain --json` shows it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let flow = loop {
        let o = Command::new(EXE)
            .args(["status", "--json", "--explain", "--pin-dir"])
            .arg(&pins)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let found = v[0]["explain"]["flows"]
            .as_array()
            .and_then(|f| f.iter().find(|f| f["cookie"] == cookie).cloned());
        if let Some(f) = found {
            break f;
        }
        assert!(
            Instant::now() < deadline,
            "no explanation of flow {cookie} within 5 s: {v}"
        );
        thread::sleep(Duration::from_millis(100));
    };
    let predicted = flow["predicted"].as_array().unwrap();
    assert_eq!(predicted.len(), 3, "{flow}");
    for p in predicted {
        let mbps = p["physical"][0].as_f64().unwrap();
        let ms = p["physical"][1].as_f64().unwrap();
        assert!(mbps.is_finite() && mbps >= 0.0, "{flow}");
        assert!(ms.is_finite() && ms >= 0.0, "{flow}");
    }
    let why = flow["extrapolated"].as_str().unwrap_or_else(|| {
        panic!("a loopback flow is outside the fitted paths, but not flagged: {flow}")
    });
    assert!(why.contains("min RTT"), "{why}");
    daemon.wait_log(
        &format!("explanation of flow {cookie} is an extrapolation"),
        Duration::from_secs(2),
    );
    // The text form: the flow's line, flagged.
    let o = Command::new(EXE)
        .args(["status", "--explain", "--pin-dir"])
        .arg(&pins)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains(&format!("{cookie}  clamp "))
            || text.contains(&format!("{cookie}  no clamp")),
        "{text}"
    );
    assert!(text.contains("next ~1 s predicted"), "{text}");
    assert!(text.contains("[extrapolated: min RTT"), "{text}");
    // The Prometheus endpoint: every predicted gauge of slot 0.
    // One retry: in 2 of 8 runs on the shared VM the endpoint's connection
    // was reset before the request was written (EPIPE, the daemon alive and
    // serving the next one); a second failure fails the test.
    let body = std::panic::catch_unwind(|| http_get(addr, "/metrics")).unwrap_or_else(|_| {
        thread::sleep(Duration::from_millis(200));
        http_get(addr, "/metrics")
    });
    let scrape = Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap();
    let value = |name: &str, labels: &[(&str, &str)]| {
        let s = scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .unwrap_or_else(|| panic!("{name} {labels:?} missing from:\n{body}"));
        match s.value {
            Value::Gauge(x) | Value::Untyped(x) => x,
            ref other => panic!("{name}: not a gauge: {other:?}"),
        }
    };
    assert!(value("plume_explain_flows", &[]) >= 1.0, "{body}");
    for action in ["policy", "half", "double"] {
        let labels = [("slot", "0"), ("action", action)];
        let mbps = value("plume_explain_predicted_throughput_mbps", &labels);
        let ms = value("plume_explain_predicted_queueing_delay_ms", &labels);
        assert!(mbps.is_finite() && mbps >= 0.0, "{body}");
        assert!(ms.is_finite() && ms >= 0.0, "{body}");
    }
    assert_eq!(
        value("plume_explain_extrapolated", &[("slot", "0")]),
        1.0,
        "{body}"
    );
    assert!(state.exists(), "no state file at {}", state.display());
    daemon.terminate();
    sender.until("released after SIGTERM", Duration::from_secs(2), |r| {
        r.max_pacing_rate == u64::MAX
    });
    sender.finish();
    assert!(!state.exists(), "state file left at {}", state.display());
    assert!(!pins.exists(), "pins left at {}", pins.display());
    cgroup.remove().unwrap();
}
