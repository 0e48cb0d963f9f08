//! Kernel tests of the sock_ops datapath: real BPF, a real child cgroup, real
//! loopback TCP. They need root; CI runs as root. Without root they fail in CI
//! (CI=true) and print a loud SKIPPED line elsewhere.

mod common;

use std::{
    thread,
    time::{Duration, Instant},
};

use common::Sender;
use plume_cc::datapath::{cgroup::OwnedCgroup, probe::ProbeReport, probe::Sink, Datapath};
use plume_cc_common::{DatapathConfig, SocketSlot, CWND_UNCLAMPED, PACING_UNLIMITED};

/// What the datapath tests need.
const DATAPATH_CAPS: &str = "CAP_BPF, CAP_NET_ADMIN";

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
#[ignore = "needs root (CAP_BPF, CAP_NET_ADMIN); `cargo xtask test` runs it as root"]
fn stats_appear_clamp_is_obeyed_entries_removed_and_outsiders_untouched() {
    if !common::have_root("datapath test", DATAPATH_CAPS) {
        return;
    }
    const CLAMP: u32 = 4;
    let cgroup = OwnedCgroup::create_unique("plume-cc-test").expect("create child cgroup");
    let mut dp = Datapath::attach(cgroup.path(), DatapathConfig::default()).expect("attach");
    let sink = Sink::start("127.0.0.1:0".parse().unwrap()).unwrap();

    let inside = Sender::spawn(&sink, Some(cgroup.path()), 2500);
    let outside = Sender::spawn(&sink, None, 2500);
    let cookie = inside.first().cookie;
    let outside_cookie = outside.first().cookie;
    assert_ne!(cookie, outside_cookie);

    // Per-flow statistics keyed by the socket cookie, with plausible values.
    let stats = wait_for("the flow's stats", Duration::from_secs(3), || {
        dp.flow(cookie)
            .unwrap()
            .filter(|s| s.rtt_samples >= 5 && s.bytes_acked > 100_000)
    });
    assert!(
        stats.srtt_us > 0 && stats.srtt_us < 1_000_000,
        "srtt {} us",
        stats.srtt_us
    );
    assert!(
        stats.min_rtt_us > 0 && stats.min_rtt_us <= stats.srtt_us.max(1) * 8,
        "{stats:?}"
    );
    assert!(stats.snd_cwnd >= 1 && stats.snd_cwnd < 100_000, "{stats:?}");
    assert!(stats.mss >= 536 && stats.mss <= 65_535, "mss {}", stats.mss);
    assert!(stats.delivered > 0, "{stats:?}");
    // delivered segments and acked bytes agree to within a segment size factor.
    let per_seg = stats.bytes_acked as f64 / stats.delivered as f64;
    assert!(
        per_seg > 100.0 && per_seg <= stats.mss as f64 * 1.01,
        "{per_seg} bytes per delivered segment"
    );
    // The local port is the sender's end of a live connection to the sink
    // (the kernel's own socket table, /proc/net/tcp, ports in hex).
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let pair = format!(
        ":{:04X} 0100007F:{:04X}",
        stats.local_port,
        sink.addr().port()
    );
    assert!(
        table.contains(&pair),
        "no connection from port {} to the sink in /proc/net/tcp",
        stats.local_port
    );
    assert_eq!(stats.remote_port, u32::from(sink.addr().port()));
    assert!(stats.updated_ns >= stats.start_ns);
    assert_eq!(stats.applied_cwnd_clamp, CWND_UNCLAMPED);

    // Flows outside the cgroup are untouched: not in the maps at all.
    let flows = dp.flows().unwrap();
    assert!(flows.iter().any(|(c, _)| *c == cookie));
    assert!(
        !flows.iter().any(|(c, _)| *c == outside_cookie),
        "outside flow registered"
    );
    for c in sink.accepted_cookies() {
        assert!(
            !flows.iter().any(|(k, _)| *k == c),
            "receiver-side socket registered"
        );
    }

    // A clamp written by user space is obeyed by the sender (its own TCP_INFO).
    let deadline = Instant::now() + Duration::from_millis(800);
    let mut clamped = Vec::new();
    let mut outside_reports = Vec::new();
    while Instant::now() < deadline {
        dp.set_target(cookie, CLAMP, PACING_UNLIMITED).unwrap();
        clamped.extend(inside.collect(Duration::from_millis(40)));
        outside_reports.extend(outside.drain());
    }
    let effective: Vec<_> = clamped.iter().skip_while(|r| r.snd_cwnd > CLAMP).collect();
    assert!(
        effective.len() >= 10,
        "clamp took effect too late: {clamped:?}"
    );
    assert!(
        effective.iter().all(|r| r.snd_cwnd <= CLAMP),
        "cwnd above clamp: {effective:?}"
    );
    assert_eq!(dp.flow(cookie).unwrap().unwrap().applied_cwnd_clamp, CLAMP);
    // Meanwhile the outside flow kept its own cwnd (initial window is 10 > 4).
    let outside_max = outside_reports
        .iter()
        .map(|r| r.snd_cwnd)
        .max()
        .unwrap_or(0);
    assert!(
        outside_max > CLAMP,
        "outside flow looks clamped: max cwnd {outside_max}"
    );

    // Releasing hands the flow back to the kernel.
    assert!(dp.release_all(Duration::from_secs(2)).unwrap().is_empty());
    let after = inside.collect(Duration::from_millis(300));
    assert!(
        after.iter().any(|r| r.snd_cwnd > CLAMP),
        "cwnd never rose after release: {after:?}"
    );

    // After close, the flow's entries are gone (stats and target).
    inside.finish();
    outside.finish();
    wait_for(
        "removal of the flow's entries",
        Duration::from_secs(3),
        || {
            let gone = dp.flow(cookie).unwrap().is_none()
                && !dp.target_cookies().unwrap().contains(&cookie);
            gone.then_some(())
        },
    );
    let counters = dp.counters().unwrap();
    assert!(
        counters.flows_opened >= 1 && counters.flows_closed >= 1,
        "{counters:?}"
    );
    assert!(counters.targets_applied >= 2, "{counters:?}");
    assert_eq!(counters.setsockopt_errors, 0, "{counters:?}");
    drop(dp);
    cgroup.remove().expect("remove child cgroup");
}

#[test]
#[ignore = "needs root (CAP_BPF, CAP_NET_ADMIN); `cargo xtask test` runs it as root"]
fn stale_targets_are_lifted_by_the_datapath_itself() {
    if !common::have_root("datapath staleness test", DATAPATH_CAPS) {
        return;
    }
    const CLAMP: u32 = 3;
    let cgroup = OwnedCgroup::create_unique("plume-cc-test").expect("create child cgroup");
    let config = DatapathConfig {
        stale_after_ns: 200_000_000,
        ..DatapathConfig::default()
    };
    let mut dp = Datapath::attach(cgroup.path(), config).expect("attach");
    let sink = Sink::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let inside = Sender::spawn(&sink, Some(cgroup.path()), 2000);
    let cookie = inside.first().cookie;
    wait_for("the flow", Duration::from_secs(3), || {
        dp.flow(cookie).unwrap()
    });
    // Written once and never refreshed, as by a daemon that died.
    dp.set_target(cookie, CLAMP, PACING_UNLIMITED).unwrap();
    let reports = inside.collect(Duration::from_millis(700));
    let clamped_at = reports
        .iter()
        .position(|r| r.snd_cwnd <= CLAMP)
        .expect("the clamp never took effect");
    let lifted = reports[clamped_at..].iter().any(|r| r.snd_cwnd > CLAMP);
    assert!(
        lifted,
        "cwnd stayed clamped after the target went stale: {reports:?}"
    );
    let s = dp.flow(cookie).unwrap().unwrap();
    assert_eq!(s.applied_cwnd_clamp, CWND_UNCLAMPED);
    assert!(dp.counters().unwrap().targets_expired >= 1);
    inside.finish();
    drop(dp);
    cgroup.remove().unwrap();
}

/// A target's `competitive_cc` switches the flow's kernel controller
/// (`TCP_CONGESTION`) from the pinned base to the configured competitive
/// one at its next callback, and back when a target stops asking, or goes
/// stale (a dead daemon leaves no flow on a controller it chose).
#[test]
#[ignore = "needs root (CAP_BPF, CAP_NET_ADMIN); `cargo xtask test` runs it as root"]
fn targets_switch_the_flows_controller_and_a_stale_one_switches_it_back() {
    if !common::have_root("datapath competitive-controller test", DATAPATH_CAPS) {
        return;
    }
    let cgroup = OwnedCgroup::create_unique("plume-cc-test").expect("create child cgroup");
    let config = DatapathConfig {
        stale_after_ns: 300_000_000,
        base_cc: DatapathConfig::base_cc_from_name("cubic").unwrap(),
        competitive_cc: DatapathConfig::base_cc_from_name("bbr").unwrap(),
        ..DatapathConfig::default()
    };
    let mut dp = Datapath::attach(cgroup.path(), config).expect("attach");
    let sink = Sink::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let inside = Sender::spawn(&sink, Some(cgroup.path()), 4000);
    let cookie = inside.first().cookie;
    wait_for("the flow", Duration::from_secs(3), || {
        dp.flow(cookie).unwrap()
    });
    let port = sink.addr().port();
    let ccs = || common::congestion_controls_to(port);
    assert_eq!(ccs(), ["cubic"], "the pinned base");
    let write = |dp: &mut Datapath, competitive: u32| {
        let mut t = [plume_cc_common::FlowTarget {
            cwnd_clamp: CWND_UNCLAMPED,
            max_pacing_bytes_per_sec: PACING_UNLIMITED,
            competitive_cc: competitive,
            ..Default::default()
        }];
        dp.write_targets(&[cookie], &mut t).unwrap();
    };
    // Refreshed as a daemon would, every 50 ms, until `want` shows.
    let hold = |dp: &mut Datapath, competitive: u32, want: &str| {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            write(dp, competitive);
            if ccs() == [want] {
                return;
            }
            assert!(Instant::now() < deadline, "still {:?}, want {want}", ccs());
            thread::sleep(Duration::from_millis(50));
        }
    };
    hold(&mut dp, 1, "bbr");
    assert_eq!(dp.flow(cookie).unwrap().unwrap().applied_competitive_cc, 1);
    hold(&mut dp, 0, "cubic");
    assert_eq!(dp.flow(cookie).unwrap().unwrap().applied_competitive_cc, 0);
    hold(&mut dp, 1, "bbr");
    // No more writes: the target goes stale and the base returns.
    wait_for(
        "the base after the target went stale",
        Duration::from_secs(2),
        || (ccs() == ["cubic"]).then_some(()),
    );
    let s = dp.flow(cookie).unwrap().unwrap();
    assert_eq!(s.applied_competitive_cc, 0, "{s:?}");
    let counters = dp.counters().unwrap();
    assert!(counters.targets_expired >= 1, "{counters:?}");
    assert_eq!(counters.setsockopt_errors, 0, "{counters:?}");
    inside.finish();
    drop(dp);
    cgroup.remove().unwrap();
}

#[test]
#[ignore = "needs root (CAP_BPF, CAP_NET_ADMIN); `cargo xtask test` runs it as root"]
fn a_full_flow_map_leaves_new_flows_to_the_kernel() {
    if !common::have_root("datapath map-full test", DATAPATH_CAPS) {
        return;
    }
    let cgroup = OwnedCgroup::create_unique("plume-cc-test").expect("create child cgroup");
    let mut dp = Datapath::attach_with_capacity(cgroup.path(), DatapathConfig::default(), 2)
        .expect("attach");
    let sink = Sink::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let senders: Vec<Sender> = (0..5)
        .map(|_| Sender::spawn(&sink, Some(cgroup.path()), 6000))
        .collect();
    let cookies: Vec<u64> = senders.iter().map(|s| s.first().cookie).collect();
    let registered = wait_for("two registered flows", Duration::from_secs(3), || {
        let f = dp.flows().unwrap();
        (f.len() == 2).then_some(f)
    });
    // Clamp everything we know about, for a while, watching every sender.
    let mut seen: Vec<Vec<ProbeReport>> = vec![Vec::new(); senders.len()];
    let deadline = Instant::now() + Duration::from_millis(800);
    while Instant::now() < deadline {
        for (c, _) in &registered {
            dp.set_target(*c, 3, PACING_UNLIMITED).unwrap();
        }
        thread::sleep(Duration::from_millis(20));
        for (s, v) in senders.iter().zip(seen.iter_mut()) {
            v.extend(s.drain());
        }
    }
    let counters = dp.counters().unwrap();
    assert!(counters.flow_map_full >= 3, "{counters:?}");
    for (reports, c) in seen.iter().zip(&cookies) {
        if registered.iter().any(|(k, _)| k == c) {
            let clamped: Vec<_> = reports.iter().skip_while(|r| r.snd_cwnd > 3).collect();
            assert!(
                clamped.len() >= 5,
                "registered flow never clamped: {reports:?}"
            );
            assert!(clamped.iter().all(|r| r.snd_cwnd <= 3), "{clamped:?}");
        } else {
            let max = reports.iter().map(|r| r.snd_cwnd).max().unwrap_or(0);
            assert!(max > 3, "an unregistered flow was limited: cwnd {max}");
        }
    }
    for s in senders {
        s.finish();
    }
    // The two slots come back at TCP_CLOSE and serve new flows.
    wait_for("the closes", Duration::from_secs(3), || {
        dp.flows().unwrap().is_empty().then_some(())
    });
    assert_eq!(dp.slots_in_use(), 0);
    assert_eq!(dp.count_free_slots().unwrap(), 2);
    let again = Sender::spawn(&sink, Some(cgroup.path()), 500);
    let cookie = again.first().cookie;
    wait_for("a new flow in a freed slot", Duration::from_secs(3), || {
        dp.flow(cookie).unwrap()
    });
    again.finish();
    drop(dp);
    cgroup.remove().unwrap();
}

/// Issue 14, item 3: a flow's callbacks find its slot through the socket's
/// own storage (`PLUME_SKSLOT`), not the cookie hash. A fresh flow's entry
/// names its cookie and slot and no callback falls back to the hash; an
/// entry that is missing (as for a flow registered before the storage
/// existed) or stale (another slot, a free slot, another cookie) sends
/// exactly one callback to the hash, which writes the right entry back, so
/// a stale entry never has a socket write a slot that is not its own; and
/// TCP_CLOSE deletes the entry while the socket itself still lives.
#[test]
#[ignore = "needs root (CAP_BPF, CAP_NET_ADMIN); `cargo xtask test` runs it as root"]
fn callbacks_find_their_slot_through_the_socket_storage() {
    if !common::have_root("datapath socket-storage test", DATAPATH_CAPS) {
        return;
    }
    let cgroup = OwnedCgroup::create_unique("plume-cc-test").expect("create child cgroup");
    let mut dp = Datapath::attach(cgroup.path(), DatapathConfig::default()).expect("attach");
    let sink = Sink::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let sender = Sender::spawn(&sink, Some(cgroup.path()), 4000);
    let other = Sender::spawn(&sink, Some(cgroup.path()), 4000);
    let cookie = sender.first().cookie;
    let other_cookie = other.first().cookie;
    let samples = |dp: &Datapath| dp.flow(cookie).unwrap().map_or(0, |s| s.rtt_samples);
    wait_for("the flow's callbacks", Duration::from_secs(3), || {
        (samples(&dp) >= 5).then_some(())
    });
    let sock = sender.socket(cookie);
    let slot = dp.slot_of(cookie).unwrap().expect("the flow's slot");
    let other_slot = dp
        .slot_of(other_cookie)
        .unwrap()
        .expect("the other flow's slot");
    assert_ne!(slot, other_slot);
    let own = SocketSlot {
        cookie,
        slot,
        _pad: 0,
    };
    assert_eq!(dp.socket_slot(&sock).unwrap(), Some(own));
    // More callbacks, every one through the storage.
    let before = samples(&dp);
    wait_for("more callbacks", Duration::from_secs(3), || {
        (samples(&dp) >= before + 20).then_some(())
    });
    assert_eq!(dp.counters().unwrap().slot_hash_lookups, 0);

    // No entry: one callback finds the flow through the hash and writes it.
    assert!(dp.forget_socket_slot(&sock).unwrap());
    assert_eq!(dp.socket_slot(&sock).unwrap(), None);
    let mut lookups = 0;
    for stale in [
        None,
        // Another flow's slot, a slot never handed out, another cookie.
        Some(SocketSlot {
            slot: other_slot,
            ..own
        }),
        Some(SocketSlot {
            slot: plume_cc_common::MAX_FLOWS - 1,
            ..own
        }),
        Some(SocketSlot {
            cookie: other_cookie,
            ..own
        }),
    ] {
        if let Some(entry) = stale {
            dp.set_socket_slot(&sock, entry).unwrap();
            assert_eq!(dp.socket_slot(&sock).unwrap(), Some(entry));
        }
        wait_for("the entry written back", Duration::from_secs(3), || {
            (dp.socket_slot(&sock).unwrap() == Some(own)).then_some(())
        });
        lookups += 1;
        // Exactly one fallback each: the callbacks after it use the entry.
        let before = samples(&dp);
        wait_for(
            "callbacks after the fallback",
            Duration::from_secs(3),
            || (samples(&dp) >= before + 20).then_some(()),
        );
        assert_eq!(
            dp.counters().unwrap().slot_hash_lookups,
            lookups,
            "after {stale:?}"
        );
    }
    // The other flow's slot still holds the other flow (its cookie and port).
    let theirs = dp.flow(other_cookie).unwrap().expect("the other flow");
    assert_eq!(dp.slot_of(other_cookie).unwrap(), Some(other_slot));
    assert_ne!(
        theirs.local_port,
        dp.flow(cookie).unwrap().unwrap().local_port
    );

    // TCP_CLOSE (the probe shuts the connection down) deletes the entry,
    // though our descriptor keeps the socket itself.
    sender.finish();
    other.finish();
    wait_for("the closes", Duration::from_secs(3), || {
        dp.flows().unwrap().is_empty().then_some(())
    });
    assert_eq!(dp.socket_slot(&sock).unwrap(), None);
    assert_eq!(dp.slots_in_use(), 0);
    assert_eq!(
        dp.count_free_slots().unwrap(),
        plume_cc_common::MAX_FLOWS as usize
    );
    drop(sock);
    drop(dp);
    cgroup.remove().unwrap();
}

/// Pins of another map layout (an older plume-cc's, before the per-flow
/// slots) are refused with a clear error, not misread: here a pin folder
/// whose slot array is missing, then one whose slots have the 168 bytes of
/// the builds before the slot was padded to whole cache lines.
#[test]
#[ignore = "needs root (CAP_BPF, CAP_NET_ADMIN); `cargo xtask test` runs it as root"]
fn pins_of_another_layout_are_refused() {
    if !common::have_root("datapath layout test", DATAPATH_CAPS) {
        return;
    }
    let cgroup = OwnedCgroup::create_unique("plume-cc-test").expect("create child cgroup");
    let pins = std::path::PathBuf::from(format!(
        "/sys/fs/bpf/plume-cc/test-layout-{}",
        std::process::id()
    ));
    let dp =
        Datapath::attach_pinned(cgroup.path(), DatapathConfig::default(), &pins).expect("attach");
    assert!(Datapath::adopt(&pins, &pins).is_ok());
    std::fs::remove_file(pins.join(plume_cc_common::maps::STATS_SLOTS)).unwrap();
    let e = Datapath::adopt(&pins, &pins).unwrap_err().to_string();
    assert!(
        e.contains("another map layout") && e.contains("PLUME_SLOTS") && e.contains("rm -r"),
        "{e}"
    );
    // BPF_MAP_TYPE_ARRAY (2) of 168-byte values: the earlier StatsSlot.
    assert_eq!(plume_cc_common::STATS_SLOT_SIZE, 192);
    pin_raw_map(
        &pins.join(plume_cc_common::maps::STATS_SLOTS),
        2,
        4,
        168,
        16,
    );
    let e = Datapath::adopt(&pins, &pins).unwrap_err().to_string();
    assert!(
        e.contains("another map layout")
            && e.contains("PLUME_SLOTS has 168-byte values, this build 192"),
        "{e}"
    );
    dp.shutdown(Duration::from_secs(1)).unwrap();
    assert!(!pins.exists());
    cgroup.remove().unwrap();
}

/// `reap_gone` removes an entry idle past REAP_IDLE_NS whose socket no
/// namespace lists (as a flow of a deleted namespace leaves), and keeps an
/// idle flow whose socket lives, however old its statistics.
#[test]
#[ignore = "needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN); `cargo xtask test` runs it as root"]
fn flows_whose_socket_is_gone_are_reaped_and_live_idle_ones_kept() {
    if !common::have_root("datapath reaping test", DATAPATH_CAPS) {
        return;
    }
    let cgroup = OwnedCgroup::create_unique("plume-cc-test").expect("create child cgroup");
    let pins = std::path::PathBuf::from(format!(
        "/sys/fs/bpf/plume-cc/test-reap-{}",
        std::process::id()
    ));
    let mut dp =
        Datapath::attach_pinned(cgroup.path(), DatapathConfig::default(), &pins).expect("attach");
    let sink = Sink::start("127.0.0.1:0".parse().unwrap()).unwrap();
    // One connection that sends a little and then idles, in the cgroup.
    let mut idle = std::process::Command::new(common::EXE)
        .args(["probe", "--connect", &sink.addr().to_string()])
        .args(["--flows", "1", "--bytes", "1000", "--hold", "4s"])
        .arg("--cgroup")
        .arg(cgroup.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (live, stats) = wait_for("the idle flow", Duration::from_secs(3), || {
        dp.flows().unwrap().into_iter().next()
    });
    // A flow whose socket is gone, registered as the program would (a
    // slot, its statistics, its cookie's entry).
    let gone = 0xdead_beef_u64;
    assert!(plume_cc::datapath::synthetic::insert_synthetic_flow(&mut dp, gone, stats).unwrap());
    // The socket listing alone tells them apart (whatever callbacks the
    // idle flow still gets)...
    assert_eq!(dp.gone_sockets(&[live, gone]).unwrap(), vec![gone]);
    // ...and the reaper, at a time when both look idle for longer than
    // REAP_IDLE_NS, removes only the one whose socket is gone.
    let later = plume_cc::datapath::monotonic_ns() + plume_cc::datapath::REAP_IDLE_NS;
    let reaped = dp.reap_gone_as_of(later).expect("reap");
    assert_eq!(reaped, vec![gone]);
    assert!(dp.flow(gone).unwrap().is_none());
    assert!(
        dp.flow(live).unwrap().is_some(),
        "a live idle flow was reaped"
    );
    idle.wait().unwrap();
    wait_for("the idle flow's close", Duration::from_secs(3), || {
        dp.flows().unwrap().is_empty().then_some(())
    });
    dp.shutdown(Duration::from_secs(1)).unwrap();
    assert!(!pins.exists());
    cgroup.remove().unwrap();
}

/// `selftest --json`: stdout holds the report alone (the progress lines
/// go to stderr), so it pipes into a JSON reader.
#[test]
#[ignore = "needs root (CAP_BPF, CAP_NET_ADMIN); `cargo xtask test` runs it as root"]
fn selftest_json_is_one_json_document_on_stdout() {
    if !common::have_root("selftest --json", "CAP_BPF, CAP_NET_ADMIN") {
        return;
    }
    let o = std::process::Command::new(common::EXE)
        .args(["selftest", "--json", "--duration", "1500ms"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}): {}",
            String::from_utf8_lossy(&o.stdout)
        )
    });
    assert!(v["max_cwnd_clamped"].as_u64().unwrap() <= 4, "{v}");
    assert!(err.contains("selftest passed"), "{err}");
}

/// With a snapshot quantum far longer than the test
/// (`DatapathConfig::snapshot_every_ns`), a flow that goes quiet is still
/// recorded exactly as it ended: every poke of an idle connection is one
/// byte whose ACK leaves nothing in flight, which always snapshots. So the
/// map's counters equal the socket's own after each poke, and every RTT
/// callback is still counted.
#[test]
#[ignore = "needs root (CAP_BPF, CAP_NET_ADMIN); `cargo xtask test` runs it as root"]
fn a_long_snapshot_quantum_still_records_how_each_burst_ended() {
    use plume_cc::datapath::held::HeldFlows;
    if !common::have_root("datapath snapshot test", DATAPATH_CAPS) {
        return;
    }
    let cgroup = OwnedCgroup::create_unique("plume-cc-test").expect("create child cgroup");
    let config = DatapathConfig {
        snapshot_every_ns: 3_600_000_000_000,
        ..DatapathConfig::default()
    };
    let dp = Datapath::attach(cgroup.path(), config).expect("attach");
    let mut held = HeldFlows::open(
        std::path::Path::new(common::EXE),
        cgroup.path(),
        20,
        0,
        1,
        Duration::from_millis(20),
        Duration::from_secs(10),
    )
    .unwrap();
    let cookies = held.opened().cookies.clone();
    let mut samples_before = vec![0; cookies.len()];
    for round in 1..=3u64 {
        held.poke().unwrap();
        // Each socket's own count: the SYN and one byte per poke.
        let want = 1 + round;
        let reports = wait_for("the pokes' ACKs", Duration::from_secs(3), || {
            let r = held.report().unwrap();
            r.iter().all(|f| f.bytes_acked == want).then_some(r)
        });
        let stats = wait_for("the map to follow", Duration::from_secs(3), || {
            let s: Vec<_> = cookies
                .iter()
                .map(|c| dp.flow(*c).unwrap().expect("registered"))
                .collect();
            s.iter().all(|s| s.bytes_acked == want).then_some(s)
        });
        for ((s, r), before) in stats.iter().zip(&reports).zip(&mut samples_before) {
            assert_eq!(s.bytes_acked, r.bytes_acked, "{s:?} vs {r:?}");
            assert_eq!(s.packets_out, 0, "{s:?}");
            assert!(s.rtt_samples > *before, "round {round}: {s:?}");
            *before = s.rtt_samples;
        }
    }
    held.close().unwrap();
    drop(dp);
    cgroup.remove().unwrap();
}

/// Creates a BPF map (`BPF_MAP_CREATE`) and pins it at `path`
/// (`BPF_OBJ_PIN`), as another build of plume-cc would have: the test's
/// stand-in for a datapath left by a build whose structures differ.
fn pin_raw_map(path: &std::path::Path, map_type: u32, key: u32, value: u32, entries: u32) {
    use std::os::unix::ffi::OsStrExt as _;
    const BPF_MAP_CREATE: libc::c_long = 0;
    const BPF_OBJ_PIN: libc::c_long = 6;
    // union bpf_attr, zeroed past the fields set (the kernel checks that).
    let mut attr = [0u32; 32];
    attr[..4].copy_from_slice(&[map_type, key, value, entries]);
    // SAFETY: bpf(2) reads `attr` (128 bytes, alive for the call).
    let fd = unsafe { libc::syscall(libc::SYS_bpf, BPF_MAP_CREATE, attr.as_ptr(), 128u32) };
    assert!(
        fd >= 0,
        "BPF_MAP_CREATE: {}",
        std::io::Error::last_os_error()
    );
    let name = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let mut pin = [0u64; 16];
    pin[0] = name.as_ptr() as u64;
    pin[1] = fd as u64; // bpf_fd (u32), file_flags 0
                        // SAFETY: as above; `name` outlives the call.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, BPF_OBJ_PIN, pin.as_ptr(), 128u32) };
    assert_eq!(
        rc,
        0,
        "BPF_OBJ_PIN {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    // SAFETY: fd is ours; the pin keeps the map.
    unsafe { libc::close(fd as i32) };
}

/// `status` beside a datapath pinned by an older build (before the per-flow
/// slots): the live datapath is listed, the old one skipped with a warning
/// naming its folder and what differs, and `--json` stdout stays one
/// document.
#[test]
#[ignore = "needs root (CAP_BPF, CAP_NET_ADMIN); `cargo xtask test` runs it as root"]
fn status_skips_a_datapath_of_another_layout_and_lists_the_others() {
    use plume_cc_common::maps;
    if !common::have_root("status beside an old build's pins", DATAPATH_CAPS) {
        return;
    }
    let root = std::path::PathBuf::from(format!(
        "/sys/fs/bpf/plume-cc-test-status-{}",
        std::process::id()
    ));
    // The pins of a plume-cc from before the per-flow slots: cookie ->
    // 152-byte statistics and cookie -> target hash maps, no slot arrays.
    let old = root.join("old-build");
    std::fs::create_dir_all(&old).unwrap();
    let config = u32::try_from(std::mem::size_of::<DatapathConfig>()).unwrap();
    // BPF_MAP_TYPE_HASH 1, ARRAY 2, PERCPU_ARRAY 6.
    pin_raw_map(&old.join(maps::FLOW_STATS), 1, 8, 152, 16);
    pin_raw_map(&old.join("PLUME_TARGETS"), 1, 8, 32, 16);
    pin_raw_map(&old.join(maps::CONFIG), 2, 4, config, 1);
    pin_raw_map(&old.join(maps::COUNTERS), 6, 4, 8, 16);
    // Any BPF object opens as the "link" pin; only the maps are read.
    pin_raw_map(&old.join("link"), 2, 4, 4, 1);
    let cgroup = OwnedCgroup::create_unique("plume-cc-test").expect("create child cgroup");
    let good = root.join("live");
    let dp =
        Datapath::attach_pinned(cgroup.path(), DatapathConfig::default(), &good).expect("attach");
    let o = std::process::Command::new(common::EXE)
        .args(["status", "--json", "--pin-dir"])
        .arg(&root)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    dp.shutdown(Duration::from_secs(1)).unwrap();
    std::fs::remove_dir_all(&root).unwrap();
    cgroup.remove().unwrap();
    assert!(o.status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON document");
    let runs = v.as_array().unwrap();
    assert_eq!(runs.len(), 1, "{v}");
    assert_eq!(runs[0]["pins"], good.to_str().unwrap());
    let needle = format!(
        "skipping the datapath pinned at {}: the datapath pinned at {} has another map layout ({} has 152-byte values",
        old.display(),
        old.display(),
        maps::FLOW_STATS
    );
    assert!(err.contains(&needle), "{needle:?} not in {err}");
}

/// A flow left out of the daemon's read because its statistics slot was
/// being written on every try (a torn read) is counted where `plume-cc
/// status --json` sees it (`counters.torn_reads`), published once, and
/// added to (not overwritten) by a daemon restarted on the same pins.
#[test]
#[ignore = "needs root (CAP_BPF, CAP_NET_ADMIN); `cargo xtask test` runs it as root"]
fn torn_reads_reach_status_json_and_survive_a_restart() {
    if !common::have_root("torn reads in status", DATAPATH_CAPS) {
        return;
    }
    let cgroup = OwnedCgroup::create_unique("plume-cc-test").expect("create child cgroup");
    let pins = std::path::PathBuf::from(format!(
        "/sys/fs/bpf/plume-cc/test-torn-{}",
        std::process::id()
    ));
    let mut dp =
        Datapath::attach_pinned(cgroup.path(), DatapathConfig::default(), &pins).expect("attach");
    let stats = plume_cc_common::FlowStats {
        updated_ns: plume_cc::datapath::monotonic_ns(),
        ..Default::default()
    };
    assert!(plume_cc::datapath::synthetic::insert_synthetic_flow(&mut dp, 1, stats).unwrap());
    assert!(plume_cc::datapath::synthetic::insert_synthetic_flow(&mut dp, 2, stats).unwrap());
    let status_torn_reads = || -> u64 {
        let o = std::process::Command::new(common::EXE)
            .args(["status", "--json", "--pin-dir"])
            .arg(&pins)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON document");
        let runs = v.as_array().expect("a list of datapaths");
        assert_eq!(runs.len(), 1, "{v}");
        runs[0]["counters"]["torn_reads"]
            .as_u64()
            .unwrap_or_else(|| panic!("no counters.torn_reads in {v}"))
    };
    assert_eq!(status_torn_reads(), 0);
    // Flow 1's slot is caught inside a write on every try.
    assert!(dp.begin_stats_write(1).unwrap());
    let mut flows = Vec::new();
    dp.read_flows_for_control(&mut flows).unwrap();
    let read: Vec<u64> = flows.iter().map(|(c, _)| *c).collect();
    assert_eq!(read, vec![2]);
    assert_eq!(dp.torn_reads(), 1);
    assert_eq!(
        dp.counters().unwrap().torn_reads,
        0,
        "published only on request"
    );
    dp.publish_torn_reads().unwrap();
    dp.publish_torn_reads().unwrap();
    assert_eq!(status_torn_reads(), 1, "published once");
    // A daemon restarted on the pins adds its own torn reads.
    let mut restarted = Datapath::adopt(cgroup.path(), &pins).expect("adopt");
    restarted.read_flows_for_control(&mut flows).unwrap();
    restarted.publish_torn_reads().unwrap();
    drop(restarted);
    assert_eq!(status_torn_reads(), 2);
    // The write ends: the flow is read again and nothing more is torn.
    assert!(dp.end_stats_write(1).unwrap());
    dp.read_flows_for_control(&mut flows).unwrap();
    assert_eq!(flows.len(), 2);
    dp.publish_torn_reads().unwrap();
    assert_eq!(dp.counters().unwrap().torn_reads, 2);
    dp.remove_flow(1).unwrap();
    dp.remove_flow(2).unwrap();
    dp.shutdown(Duration::from_secs(1)).unwrap();
    assert!(!pins.exists());
    cgroup.remove().unwrap();
}

/// A pinned map's BTF as the kernel holds it: the names of its key and value
/// types (typedefs and qualifiers skipped) and, for a struct value, its
/// members in order. `None` for a side the map has no BTF for.
#[derive(Debug, PartialEq)]
struct MapBtf {
    key: Option<String>,
    value: Option<String>,
    value_members: Vec<String>,
}

/// Reads `MapBtf` of the map pinned at `path` with bpf(2) alone, as
/// `bpftool map dump` does: BPF_OBJ_GET, BPF_OBJ_GET_INFO_BY_FD for the
/// map's BTF ids, BPF_BTF_GET_FD_BY_ID and BPF_OBJ_GET_INFO_BY_FD again for
/// the BTF blob, which is parsed here (include/uapi/linux/btf.h). Why not
/// bpftool: it is not among the packages `cargo xtask setup` installs.
fn pinned_map_btf(path: &std::path::Path) -> MapBtf {
    use std::os::unix::ffi::OsStrExt as _;
    const BPF_OBJ_GET: libc::c_long = 7;
    const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    const BPF_BTF_GET_FD_BY_ID: libc::c_long = 19;
    let bpf = |cmd: libc::c_long, attr: &mut [u64; 16]| -> i64 {
        // SAFETY: bpf(2) reads and writes `attr` (128 bytes, alive for the
        // call) and the buffers it points to, which outlive the call.
        unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), 128u32) }
    };
    let name = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let mut attr = [0u64; 16];
    attr[0] = name.as_ptr() as u64;
    let map_fd = bpf(BPF_OBJ_GET, &mut attr);
    assert!(
        map_fd >= 0,
        "BPF_OBJ_GET {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    // struct bpf_map_info: btf_id, btf_key_type_id and btf_value_type_id are
    // the u32s at bytes 64, 68 and 72.
    let mut info = [0u32; 24];
    let mut attr = [0u64; 16];
    attr[0] = map_fd as u64 | ((std::mem::size_of_val(&info) as u64) << 32);
    attr[1] = info.as_mut_ptr() as u64;
    assert_eq!(
        bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr),
        0,
        "map info: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: the fd is ours.
    unsafe { libc::close(map_fd as i32) };
    let (btf_id, key_id, value_id) = (info[16], info[17], info[18]);
    if btf_id == 0 {
        return MapBtf {
            key: None,
            value: None,
            value_members: Vec::new(),
        };
    }
    let mut attr = [0u64; 16];
    attr[0] = u64::from(btf_id);
    let btf_fd = bpf(BPF_BTF_GET_FD_BY_ID, &mut attr);
    assert!(
        btf_fd >= 0,
        "BPF_BTF_GET_FD_BY_ID: {}",
        std::io::Error::last_os_error()
    );
    // struct bpf_btf_info: u64 btf (buffer), u32 btf_size, u32 id, ...; the
    // first call learns the size.
    let btf_info = |buf: &mut Vec<u8>| -> u32 {
        let mut bi = [0u64; 4];
        bi[0] = if buf.is_empty() {
            0
        } else {
            buf.as_mut_ptr() as u64
        };
        bi[1] = buf.len() as u64;
        let mut attr = [0u64; 16];
        attr[0] = btf_fd as u64 | ((std::mem::size_of_val(&bi) as u64) << 32);
        attr[1] = bi.as_mut_ptr() as u64;
        assert_eq!(
            bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr),
            0,
            "btf info: {}",
            std::io::Error::last_os_error()
        );
        bi[1] as u32
    };
    let mut blob = Vec::new();
    let size = btf_info(&mut blob);
    blob.resize(size as usize, 0);
    btf_info(&mut blob);
    // SAFETY: the fd is ours.
    unsafe { libc::close(btf_fd as i32) };

    // The BTF blob: a header, then the types (ids from 1), then the strings.
    let u16_at = |o: usize| u16::from_le_bytes(blob[o..o + 2].try_into().unwrap());
    let u32_at = |o: usize| u32::from_le_bytes(blob[o..o + 4].try_into().unwrap());
    assert_eq!(u16_at(0), 0xeb9f, "BTF magic");
    let hdr_len = u32_at(4) as usize;
    let (type_off, type_len) = (u32_at(8) as usize, u32_at(12) as usize);
    let str_off = hdr_len + u32_at(16) as usize;
    let string = |off: u32| -> String {
        let s = &blob[str_off + off as usize..];
        String::from_utf8_lossy(&s[..s.iter().position(|&b| b == 0).unwrap()]).into_owned()
    };
    // Each type: name_off, info (vlen in the low 16 bits, kind in bits
    // 24-28), size or type; then kind-specific data.
    let mut types = vec![0usize]; // id 0 is void
    let (mut at, end) = (hdr_len + type_off, hdr_len + type_off + type_len);
    while at < end {
        types.push(at);
        let info = u32_at(at + 4);
        let vlen = (info & 0xffff) as usize;
        at += 12
            + match (info >> 24) & 0x1f {
                1 | 14 | 17 => 4,             // INT, VAR, DECL_TAG
                3 => 12,                      // ARRAY
                4 | 5 | 15 | 19 => 12 * vlen, // STRUCT, UNION, DATASEC, ENUM64
                6 | 13 => 8 * vlen,           // ENUM, FUNC_PROTO
                _ => 0,
            };
    }
    let resolve = |mut id: u32| -> usize {
        loop {
            let at = types[id as usize];
            match (u32_at(at + 4) >> 24) & 0x1f {
                8..=11 | 18 => id = u32_at(at + 8), // TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG
                _ => return at,
            }
        }
    };
    let named = |id: u32| (id != 0).then(|| string(u32_at(resolve(id))));
    let value_members = if value_id == 0 {
        Vec::new()
    } else {
        let at = resolve(value_id);
        let info = u32_at(at + 4);
        if (info >> 24) & 0x1f == 4 {
            (0..(info & 0xffff) as usize)
                .map(|i| string(u32_at(at + 12 + 12 * i)))
                .collect()
        } else {
            Vec::new()
        }
    };
    MapBtf {
        key: named(key_id),
        value: named(value_id),
        value_members,
    }
}

/// The maps carry BTF, so `bpftool map dump pinned .../PLUME_SLOTS` prints
/// field names: the kernel holds each map's key and value types by name,
/// and a struct value's members in the order of `plume_cc_common`'s struct.
#[test]
#[ignore = "needs root (CAP_BPF, CAP_NET_ADMIN); `cargo xtask test` runs it as root"]
fn pinned_maps_carry_btf_with_field_names() {
    use plume_cc_common::maps;
    if !common::have_root("map BTF", DATAPATH_CAPS) {
        return;
    }
    let cgroup = OwnedCgroup::create_unique("plume-cc-test").expect("create child cgroup");
    let pins = std::path::PathBuf::from(format!(
        "/sys/fs/bpf/plume-cc/test-btf-{}",
        std::process::id()
    ));
    let dp =
        Datapath::attach_pinned(cgroup.path(), DatapathConfig::default(), &pins).expect("attach");
    let got: Vec<(&str, MapBtf)> = [
        maps::FLOW_STATS,
        maps::STATS_SLOTS,
        maps::TARGET_SLOTS,
        maps::CONFIG,
        maps::COUNTERS,
    ]
    .into_iter()
    .map(|m| (m, pinned_map_btf(&pins.join(m))))
    .collect();
    dp.shutdown(Duration::from_secs(1)).unwrap();
    let _ = std::fs::remove_dir_all(&pins);
    cgroup.remove().unwrap();

    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let want = |key: &str, value: &str, members: &[&str]| MapBtf {
        key: Some(key.into()),
        value: Some(value.into()),
        value_members: strings(members),
    };
    assert_eq!(got[0], (maps::FLOW_STATS, want("u64", "u32", &[])));
    assert_eq!(
        got[1],
        (
            maps::STATS_SLOTS,
            want("u32", "StatsSlot", &["seq", "_pad", "cookie", "stats"])
        )
    );
    assert_eq!(
        got[2],
        (
            maps::TARGET_SLOTS,
            want("u32", "TargetSlot", &["seq", "_pad", "cookie", "target"])
        )
    );
    assert_eq!(
        got[3],
        (
            maps::CONFIG,
            want(
                "u32",
                "DatapathConfig",
                &[
                    "stale_after_ns",
                    "enforce",
                    "generation",
                    "base_cc",
                    "snapshot_every_ns",
                    "clamp_hold",
                    "clamp_hold_max_srtts",
                    "competitive_cc"
                ]
            )
        )
    );
    assert_eq!(got[4], (maps::COUNTERS, want("u32", "u64", &[])));
}

/// The two root benchmarks with `--json`: stdout is one JSON document and
/// nothing else (their tables and progress go to stderr). Kept small: two
/// control-step iterations, one eBPF cost run (3 s of transfer under the
/// program and 3 s under the floor), one 1 s round of the overhead
/// transfer.
#[test]
#[ignore = "needs root (CAP_BPF, CAP_NET_ADMIN) and iperf3; `cargo xtask test` runs it as root"]
fn root_benchmarks_print_one_json_document_with_json() {
    if !common::have_root("benchmarks' --json", DATAPATH_CAPS) {
        return;
    }
    let json = |args: &[&str]| -> serde_json::Value {
        let o = std::process::Command::new(common::EXE)
            .args(args)
            .output()
            .unwrap();
        common::json_document(args, &o)
    };
    let v = json(&[
        "bench-datapath",
        "--only",
        "control-loop",
        "--iterations",
        "2",
        "--json",
    ]);
    let rows = v["control_loop"]
        .as_array()
        .unwrap_or_else(|| panic!("no control_loop rows: {v}"));
    assert!(!rows.is_empty(), "{v}");
    // The program's cost and the floor's, measured in the same run.
    let v = json(&["bench-datapath", "--only", "ebpf", "--json"]);
    for key in ["run_count", "floor_run_count"] {
        assert!(v["ebpf"][key].as_u64().is_some_and(|n| n > 0), "{key}: {v}");
    }
    for key in ["mean_ns", "floor_ns"] {
        assert!(
            v["ebpf"][key].as_f64().is_some_and(|ns| ns > 0.0),
            "{key}: {v}"
        );
    }
    let v = json(&[
        "bench-overhead",
        "--duration",
        "1s",
        "--rounds",
        "1",
        "--json",
    ]);
    assert_eq!(v["duration_s"], 1, "{v}");
    assert_eq!(
        v["runs"].as_array().map(Vec::len),
        Some(3),
        "one run per mode: {v}"
    );
}
