//! `plume-cc record` end to end: a bulk TCP flow in a cgroup the test
//! creates crosses the emulated constant-rate link, `record` samples it
//! from the live datapath, and the corpus it writes must reproduce the
//! link's capacity. The kernel test needs root (CI runs it as root); the
//! bad-input tests do not.

mod common;

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Command, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

use common::{tmpdir, EXE};
use plume_cc::datapath::{cgroup::OwnedCgroup, probe::Sink};
use plume_cc::emu::{DropTail, EmuConfig, Emulator, LinkConfig, OUTER_ADDR};
use plume_cc::trace::scenario_corpus;

/// The emulated link: 12 Mbit/s (one 1500-byte opportunity per ms).
const LINK_MBPS: f64 = 12.0;

/// The kernel tests run one at a time: two emulators and two bulk flows on
/// two cores would measure each other.
static SERIAL: Mutex<()> = Mutex::new(());

/// What the recording ran beside.
enum Beside {
    /// Nothing: `record --observe` attaches its own observe-only datapath.
    Nothing,
    /// `plume-cc run` with a scripted policy that clamps the cwnd at 10,000
    /// segments (in force, but never binding on this link).
    Daemon,
}

/// Runs an 11 s bulk flow in a fresh cgroup across a 12 Mbit/s emulated
/// link (10 ms each way, 100-packet droptail) while `record` runs for
/// 14 s; returns record's JSON summary, the data flow's `flows.jsonl`
/// line and the corpus folder.
fn record_constant_link(
    tag: &str,
    beside: Beside,
) -> (
    serde_json::Value,
    serde_json::Value,
    PathBuf,
    common::TestDir,
) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tmpdir(tag);
    let trace = dir.join("12mbps.trace");
    std::fs::write(&trace, "1\n").unwrap();
    let emu = Emulator::start(&EmuConfig {
        uplink: LinkConfig {
            trace: Some(trace),
            queue: DropTail::parse_args("packets=100").unwrap(),
            log: None,
        },
        delay: Duration::from_millis(10),
        ..EmuConfig::default()
    })
    .unwrap();
    let cgroup = OwnedCgroup::create_unique("plume-cc-test").unwrap();
    let sink = emu
        .outer()
        .run(|| Sink::start(SocketAddr::from((OUTER_ADDR, 0))))
        .unwrap()
        .unwrap();
    let out = dir.join("corpus");
    let pins = PathBuf::from(format!(
        "/sys/fs/bpf/plume-cc/test-record-{}",
        std::process::id()
    ));
    let mut daemon = match beside {
        Beside::Nothing => None,
        Beside::Daemon => {
            let policy = dir.join("wide.json");
            std::fs::write(
                &policy,
                r#"{"scripted":{"steps":[{"cwnd":10000,"hold_ms":60000}]}}"#,
            )
            .unwrap();
            let child = Command::new(EXE)
                .args(["run", "--run-for", "18s", "--policy"])
                .arg(&policy)
                .arg("--cgroup")
                .arg(cgroup.path())
                .arg("--pin-dir")
                .arg(&pins)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let t = Instant::now();
            while !plume_cc::datapath::attached_at(&pins) {
                assert!(
                    t.elapsed() < Duration::from_secs(15),
                    "the daemon did not attach"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            Some(child)
        }
    };
    let mut cmd = Command::new(EXE);
    cmd.args(["record", "--json", "--cgroup"])
        .arg(cgroup.path())
        .arg("--out")
        .arg(&out)
        .args([
            "--duration",
            "14s",
            "--window",
            "2s",
            "--min-duration",
            "4s",
        ]);
    match beside {
        Beside::Nothing => cmd.arg("--observe"),
        Beside::Daemon => cmd.arg("--pin-dir").arg(&pins),
    };
    let rec = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The datapath must be read before the flow starts.
    std::thread::sleep(Duration::from_millis(1500));
    let sent = emu
        .inner_command(EXE)
        .args(["probe", "--connect", &sink.addr().to_string(), "--cgroup"])
        .arg(cgroup.path())
        .args(["--duration", "11s"])
        // CUBIC, not the host's default: BBR keeps about one BDP in flight
        // under a 2-BDP cwnd, right at the cwnd-limited test's half-window
        // line, so anywhere from 20% to 50% of its time counted as
        // app-limited (CI on 2026-12-04: 5.5 of 11.3 s kept, 2 windows).
        // CUBIC fills its window, so the windows counted are the test's
        // and not BBR's phase.
        .args(["--congestion", "cubic"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    let o = rec.wait_with_output().unwrap();
    if let Some(mut d) = daemon.take() {
        let status = d.wait().unwrap();
        assert!(status.success(), "the daemon failed: {status:?}");
    }
    drop(sink);
    let report = emu.stop().unwrap();
    cgroup.remove().unwrap();
    assert!(sent.success(), "the sender failed");
    assert!(
        o.status.success(),
        "record failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    eprintln!("record: {v}\nemulator: {report:?}");
    // A standing queue: the flow kept the link busy.
    assert!(
        report.uplink.max_queue_packets >= 10,
        "the flow did not saturate the link: {report:?}"
    );
    let flows = std::fs::read_to_string(out.join("flows.jsonl")).unwrap();
    let data = flows
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|f| f["windows"].as_u64() > Some(0))
        .expect("a flow with windows");
    eprintln!("flow: {data}");
    (v, data, out, dir)
}

#[test]
#[ignore = "needs root (CAP_BPF, CAP_NET_ADMIN); `cargo xtask test` runs it as root"]
fn record_reproduces_a_constant_rate_traces_capacity() {
    if !common::have_root(
        "record_reproduces_a_constant_rate_traces_capacity",
        "CAP_BPF, CAP_NET_ADMIN",
    ) {
        return;
    }
    let (v, f, out, _dir) = record_constant_link("record-constant", Beside::Nothing);
    assert_eq!(v["datapath"], "observe-only");
    assert_eq!(v["flows_used"], 1, "{v}");
    let mean = v["mean_mbps"].as_f64().unwrap();
    assert!(
        (mean - LINK_MBPS).abs() <= 0.1 * LINK_MBPS,
        "recorded mean capacity {mean:.3} Mbit/s is more than 10% off the link's {LINK_MBPS}"
    );
    // The folder is a scenario corpus: windows with the flow's path.
    let (manifest, records) = scenario_corpus::open(&out).unwrap();
    assert_eq!(manifest.mix.window_ms, 2_000);
    assert_eq!(records.len() as u64, v["windows"].as_u64().unwrap());
    assert!(
        records.len() >= 3,
        "{} windows from ~11 s of a cwnd-limited CUBIC flow",
        records.len()
    );
    let min_rtt = f["min_rtt_ms"].as_f64().unwrap();
    assert!(
        (19.0..=30.0).contains(&min_rtt),
        "min RTT {min_rtt} ms on a 2 x 10 ms path"
    );
    // The loss summary counts what the flow sent (the link may or may not
    // have dropped: a receive-window-limited flow never fills the queue).
    assert!(f["loss"]["data_segs_out"].as_u64().unwrap() > 5_000, "{f}");
    assert!(f["loss"]["retrans_fraction"].as_f64().is_some(), "{f}");
    assert_eq!(f["daemon_limited_s"].as_f64(), Some(0.0), "{f}");
    for r in &records {
        assert!((r.path.min_rtt_ms - min_rtt).abs() < 1e-9);
        assert!(r.source.contains("lower bound"), "{}", r.source);
    }
}

#[test]
#[ignore = "needs root (CAP_BPF, CAP_NET_ADMIN); `cargo xtask test` runs it as root"]
fn record_beside_a_running_daemon_reads_its_pinned_datapath() {
    if !common::have_root(
        "record_beside_a_running_daemon_reads_its_pinned_datapath",
        "CAP_BPF, CAP_NET_ADMIN",
    ) {
        return;
    }
    let (v, f, _, _dir) = record_constant_link("record-daemon", Beside::Daemon);
    assert_eq!(v["datapath"], "daemon");
    assert_eq!(v["flows_used"], 1, "{v}");
    // Delivery is a lower bound of the capacity (the report says so). Beside
    // the daemon the policy's clamp holds the queue near empty, so the flow
    // may leave a few opportunities unused: on this host one CI run saw 10.6
    // of 12 Mbit/s. The bound that must hold is one-sided: never above the
    // link, and not far below it.
    let mean = v["mean_mbps"].as_f64().unwrap();
    assert!(
        (0.8 * LINK_MBPS..=1.05 * LINK_MBPS).contains(&mean),
        "recorded mean capacity {mean:.3} Mbit/s beside the daemon: a lower bound of {LINK_MBPS} must lie in [0.8, 1.05] x the link"
    );
    // The daemon's clamp was in force the whole time: the summary says so.
    let limited = f["daemon_limited_s"].as_f64().unwrap();
    let nl = f["network_limited_s"].as_f64().unwrap();
    assert!(limited > 0.9 * nl, "{f}");
}

fn plume(args: &[&str]) -> std::process::Output {
    Command::new(EXE)
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

#[test]
fn record_on_a_cgroup_with_no_datapath_says_so_and_writes_nothing() {
    let tmp = tmpdir("record-none");
    let out = tmp.join("c");
    // The cgroup2 root is a cgroup folder on every host; no daemon runs on
    // it (the daemon refuses the root without --allow-root-cgroup).
    let root = plume_cc::datapath::cgroup::cgroup2_mount().unwrap();
    let o = plume(&[
        "record",
        "--cgroup",
        root.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--duration",
        "10s",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains(&format!(
            "no plume-cc datapath is attached to {}",
            root.display()
        )) && err.contains("--observe"),
        "{err}"
    );
    assert!(!out.exists(), "nothing written");
}

#[test]
fn record_flags_out_of_range_are_refused_naming_the_range() {
    let tmp = tmpdir("record-flags");
    let out = tmp.join("c");
    let o = plume(&[
        "record",
        "--cgroup",
        "/sys/fs/cgroup",
        "--out",
        out.to_str().unwrap(),
        "--window",
        "500ms",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("--window must be in [1s, 60s]"), "{err}");
    assert!(!out.exists());
}

#[test]
fn a_folder_with_no_usable_flows_is_no_corpus() {
    // What `record` refuses to write, `train` and `traces analyze` refuse
    // to read: a recording folder whose records are empty.
    let dir = tmpdir("record-empty");
    std::fs::create_dir_all(dir.join("traces")).unwrap();
    std::fs::write(
        dir.join("corpus.json"),
        r#"{"mix":{"window_ms":10000,"mix":{"common":1.0}},"seed":0,"windows":0,"counts":{},"heldout_counts":{},"sources":"recorded"}"#,
    )
    .unwrap();
    std::fs::write(dir.join("paths.jsonl"), "").unwrap();
    let o = plume(&["traces", "analyze", dir.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("no usable windows"), "{err}");
}

#[test]
fn fine_tuning_a_policy_of_another_contract_is_refused_before_anything_is_written() {
    let dir = tmpdir("resume-from");
    let out = dir.join("run");
    let policy = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies/default");
    let o = plume(&[
        "train",
        "--traces",
        dir.to_str().unwrap(),
        "--resume-from",
        policy,
        "--base",
        "reno",
        "--steps",
        "1000",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("its base controller (--base) is cubic, but this run's is reno"),
        "{err}"
    );
    assert!(!out.exists(), "nothing written");
}
