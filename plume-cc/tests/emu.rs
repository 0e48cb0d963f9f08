//! Fidelity tests of the link emulator: real namespaces, real TUN devices,
//! real UDP traffic. They need root (CI runs them as root); the one that
//! replays a shared Mahimahi trace (../shared/traces/mahimahi) is skipped
//! loudly without it (and fails in CI, which has it).
//! Tests run one at a time (a lock), so they do not disturb each other.

mod common;

use std::{
    net::{SocketAddr, UdpSocket},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use common::tmpdir;
use plume_cc::bench::flows::split_by_port;
use plume_cc::emu::{
    log::{read_log, LogEvent},
    DropTail, EmuConfig, Emulator, LinkConfig, INNER_ADDR, OUTER_ADDR,
};

static SERIAL: Mutex<()> = Mutex::new(());

fn sockets(emu: &Emulator, port: u16) -> (UdpSocket, UdpSocket) {
    let rx = emu
        .outer()
        .run(|| UdpSocket::bind((OUTER_ADDR, port)))
        .unwrap()
        .unwrap();
    let tx = emu
        .inner()
        .run(|| UdpSocket::bind((INNER_ADDR, 0)))
        .unwrap()
        .unwrap();
    tx.connect(SocketAddr::from((OUTER_ADDR, port))).unwrap();
    (tx, rx)
}

/// Sends `payload`-byte datagrams at about `pps` until `stop`.
fn paced_sender(tx: UdpSocket, payload: usize, pps: u64, stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let buf = vec![7u8; payload];
        let start = Instant::now();
        let mut sent = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let due = start.elapsed().as_micros() as u64 * pps / 1_000_000;
            while sent < due {
                let _ = tx.send(&buf);
                sent += 1;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    });
}

#[test]
#[ignore = "needs root (CAP_BPF, CAP_NET_ADMIN); `cargo xtask test` runs it as root"]
fn saturating_flow_gets_constant_trace_capacity() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !common::have_root(
        "saturating_flow_gets_constant_trace_capacity",
        "CAP_NET_ADMIN",
    ) {
        return;
    }
    let dir = tmpdir("capacity");
    let trace = dir.join("12mbps.trace");
    std::fs::write(&trace, "1\n").unwrap();
    let emu = Emulator::start(&EmuConfig {
        uplink: LinkConfig {
            trace: Some(trace),
            queue: DropTail::parse_args("packets=100").unwrap(),
            log: None,
        },
        ..EmuConfig::default()
    })
    .unwrap();
    let (tx, rx) = sockets(&emu, 9101);
    rx.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    // 1472-byte payloads are 1500-byte datagrams: 1,500/s offered vs 1,000/s capacity.
    paced_sender(tx, 1472, 1500, stop.clone());
    let mut buf = [0u8; 2048];
    // Warm up until the queue is full and the link busy.
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_millis(500) {
        let _ = rx.recv(&mut buf);
    }
    let mut bytes = 0u64;
    let mut first = None;
    let mut last = Instant::now();
    let window = Instant::now();
    while window.elapsed() < Duration::from_secs(4) {
        if let Ok(n) = rx.recv(&mut buf) {
            let now = Instant::now();
            if first.is_none() {
                first = Some(now);
            } else {
                bytes += n as u64 + 28;
            }
            last = now;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let secs = (last - first.unwrap()).as_secs_f64();
    let mbps = bytes as f64 * 8.0 / secs / 1e6;
    let report = emu.stop().unwrap();
    eprintln!("constant 12 Mbps trace: received {mbps:.3} Mbps over {secs:.2} s; {report:?}");
    assert!(
        (mbps - 12.0).abs() <= 0.12,
        "a saturating flow got {mbps:.3} Mbps on a 12 Mbps trace (more than 1% off)"
    );
    assert!(
        report.uplink.drops > 0,
        "the flow did not saturate the link"
    );
}

#[test]
#[ignore = "needs root (CAP_BPF, CAP_NET_ADMIN); `cargo xtask test` runs it as root"]
fn added_delay_equals_configured_delay() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !common::have_root("added_delay_equals_configured_delay", "CAP_NET_ADMIN") {
        return;
    }
    let mut medians = Vec::new();
    for delay_ms in [0u64, 20] {
        let emu = Emulator::start(&EmuConfig {
            delay: Duration::from_millis(delay_ms),
            ..EmuConfig::default()
        })
        .unwrap();
        let (tx, rx) = sockets(&emu, 9102);
        let stop = Arc::new(AtomicBool::new(false));
        let echo = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                rx.set_read_timeout(Some(Duration::from_millis(50)))
                    .unwrap();
                let mut buf = [0u8; 64];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = rx.recv_from(&mut buf) {
                        let _ = rx.send_to(&buf[..n], from);
                    }
                }
            })
        };
        tx.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let mut rtts = Vec::new();
        let mut buf = [0u8; 64];
        for i in 0u32..40 {
            let t = Instant::now();
            tx.send(&i.to_be_bytes()).unwrap();
            loop {
                let n = tx.recv(&mut buf).expect("echo reply");
                if n == 4 && buf[..4] == i.to_be_bytes() {
                    break;
                }
            }
            rtts.push(t.elapsed().as_secs_f64() * 1000.0);
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, Ordering::Relaxed);
        echo.join().unwrap();
        emu.stop().unwrap();
        rtts.sort_by(f64::total_cmp);
        let median_one_way = rtts[rtts.len() / 2] / 2.0;
        eprintln!(
            "delay {delay_ms} ms: one-way (RTT/2) min {:.3} median {median_one_way:.3} max {:.3} ms",
            rtts[0] / 2.0,
            rtts[rtts.len() - 1] / 2.0
        );
        medians.push(median_one_way);
    }
    let added = medians[1] - medians[0];
    assert!(
        (added - 20.0).abs() <= 1.0,
        "configured 20 ms one-way, measured {added:.3} ms added"
    );
    assert!(
        (medians[1] - 20.0).abs() <= 1.0,
        "configured 20 ms one-way, measured {:.3} ms in total",
        medians[1]
    );
}

/// Sends `n` datagrams of `payload` bytes in a burst into a link whose first
/// opportunity is a second away; returns the log's events of that size.
fn burst(queue: &str, n: usize, payload: usize) -> (Vec<LogEvent>, plume_cc::emu::EmuReport) {
    let dir = tmpdir(&format!("droptail-{}", queue.replace('=', "-")));
    let trace = dir.join("slow.trace");
    std::fs::write(&trace, "1000\n").unwrap();
    let log = dir.join("uplink.log");
    let emu = Emulator::start(&EmuConfig {
        uplink: LinkConfig {
            trace: Some(trace),
            queue: DropTail::parse_args(queue).unwrap(),
            log: Some(log.clone()),
        },
        ..EmuConfig::default()
    })
    .unwrap();
    let (tx, _rx) = sockets(&emu, 9103);
    let buf = vec![1u8; payload];
    for _ in 0..n {
        tx.send(&buf).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let report = emu.stop().unwrap();
    let size = (payload + 28) as u32;
    let events = read_log(&log)
        .unwrap()
        .into_iter()
        .filter(|e| match e {
            LogEvent::Arrival { size: s, .. } | LogEvent::Drop { size: s, .. } => *s == size,
            _ => false,
        })
        .collect();
    (events, report)
}

/// Checks that the first `accepted` arrivals were queued and every later one
/// dropped, i.e. drops start exactly at the limit.
fn check_drops_at(events: &[LogEvent], n: usize, accepted: usize) {
    let mut arrivals = 0;
    let mut dropped_after = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if let LogEvent::Arrival { .. } = e {
            arrivals += 1;
            let dropped = matches!(events.get(i + 1), Some(LogEvent::Drop { .. }));
            dropped_after.push(dropped);
        }
    }
    assert_eq!(arrivals, n, "every datagram reached the queue");
    let expect: Vec<bool> = (0..n).map(|i| i >= accepted).collect();
    assert_eq!(
        dropped_after,
        expect,
        "drops must start exactly at arrival {} (the limit)",
        accepted + 1
    );
}

#[test]
#[ignore = "needs root (CAP_BPF, CAP_NET_ADMIN); `cargo xtask test` runs it as root"]
fn drops_happen_exactly_at_the_queue_limit() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !common::have_root("drops_happen_exactly_at_the_queue_limit", "CAP_NET_ADMIN") {
        return;
    }
    let (events, report) = burst("packets=20", 50, 100);
    check_drops_at(&events, 50, 20);
    assert_eq!(report.uplink.drops, 30);
    assert_eq!(report.uplink.max_queue_packets, 20);
    // 128-byte datagrams are 132 bytes as mm-link counts them (its TUN's
    // 4-byte packet-information header): 9 fit in 1,300 (1,188), the 10th
    // would not.
    let (events, report) = burst("bytes=1300", 50, 100);
    check_drops_at(&events, 50, 9);
    assert_eq!(report.uplink.drops, 41);
}

#[test]
#[ignore = "needs root (CAP_BPF, CAP_NET_ADMIN); `cargo xtask test` runs it as root"]
fn cellular_trace_never_delivers_more_than_its_opportunities() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !common::have_root(
        "cellular_trace_never_delivers_more_than_its_opportunities",
        "CAP_NET_ADMIN",
    ) {
        return;
    }
    let Some(path) = common::shared_trace(
        "cellular_trace_never_delivers_more_than_its_opportunities",
        "ATT-LTE-driving.down",
    ) else {
        return;
    };
    let trace = plume_cc::trace::MahimahiTrace::read(&path).unwrap();
    let dir = tmpdir("cellular");
    let log = dir.join("uplink.log");
    let emu = Emulator::start(&EmuConfig {
        uplink: LinkConfig {
            trace: Some(path.clone()),
            queue: DropTail::parse_args("packets=200").unwrap(),
            log: Some(log.clone()),
        },
        ..EmuConfig::default()
    })
    .unwrap();
    let (tx, rx) = sockets(&emu, 9104);
    rx.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    // About 12 Mbps offered (the trace's first seconds average ~4.5 Mbps),
    // with mixed sizes so that opportunities are shared by several datagrams.
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let sizes = [1472usize, 700, 200, 1000];
            let start = Instant::now();
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let due = start.elapsed().as_micros() as u64 / 1000;
                while sent < due {
                    let _ = tx.send(&vec![3u8; sizes[sent as usize % sizes.len()]]);
                    sent += 1;
                }
                std::thread::sleep(Duration::from_micros(500));
            }
        });
    }
    let mut buf = [0u8; 2048];
    let mut received = 0u64;
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(4) {
        if let Ok(n) = rx.recv(&mut buf) {
            received += n as u64 + 28;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let report = emu.stop().unwrap();
    let events = read_log(&log).unwrap();
    let mut delivered = 0u64;
    let mut last_ms = 0;
    let mut opportunities_logged = 0u64;
    for e in &events {
        match *e {
            LogEvent::Departure { t_ms, size, .. } => {
                delivered += u64::from(size);
                let cap = trace.schedule().count_at_or_before_ms(t_ms) * 1500;
                assert!(
                    delivered <= cap,
                    "by {t_ms} ms the link delivered {delivered} bytes, above the trace's {cap}"
                );
                last_ms = t_ms;
            }
            LogEvent::Opportunity { t_ms } => {
                opportunities_logged += 1;
                let before = if t_ms == 0 {
                    0
                } else {
                    trace.schedule().count_at_or_before_ms(t_ms - 1)
                };
                assert!(
                    opportunities_logged > before
                        && opportunities_logged <= trace.schedule().count_at_or_before_ms(t_ms),
                    "opportunity #{opportunities_logged} at {t_ms} ms is not where the trace puts it"
                );
            }
            _ => {}
        }
    }
    let cap = trace.schedule().count_at_or_before_ms(last_ms) * 1500;
    eprintln!(
        "cellular: delivered {delivered} of {cap} opportunity bytes by {last_ms} ms ({:.1}%), receiver got {received}; {report:?}",
        delivered as f64 * 100.0 / cap as f64
    );
    assert!(
        received <= delivered,
        "the receiver got more than the link delivered"
    );
    assert!(
        delivered as f64 >= 0.9 * cap as f64,
        "a saturating flow used only {delivered} of {cap} bytes"
    );
}

#[test]
#[ignore = "needs root (CAP_BPF, CAP_NET_ADMIN); `cargo xtask test` runs it as root"]
fn the_link_log_tells_two_udp_flows_apart_by_port() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !common::have_root(
        "the_link_log_tells_two_udp_flows_apart_by_port",
        "CAP_NET_ADMIN",
    ) {
        return;
    }
    let dir = tmpdir("two-flows");
    let trace = dir.join("12mbps.trace");
    std::fs::write(&trace, "1\n").unwrap();
    let log = dir.join("uplink.log");
    let emu = Emulator::start(&EmuConfig {
        uplink: LinkConfig {
            trace: Some(trace),
            queue: DropTail::default(),
            log: Some(log.clone()),
        },
        ..EmuConfig::default()
    })
    .unwrap();
    let (tx_a, rx_a) = sockets(&emu, 9201);
    let (tx_b, rx_b) = sockets(&emu, 9202);
    // Count at both receivers while sending, so that no socket buffer
    // overflows: only the link's accounting is under test.
    let count = |rx: UdpSocket| {
        std::thread::spawn(move || {
            rx.set_read_timeout(Some(Duration::from_millis(1500)))
                .unwrap();
            let mut b = [0u8; 2048];
            let mut n = 0;
            while rx.recv(&mut b).is_ok() {
                n += 1;
            }
            n
        })
    };
    let (count_a, count_b) = (count(rx_a), count(rx_b));
    // 300 + 200 datagrams of 1500 bytes, interleaved: 0.5 s of a 12 Mbit/s
    // link; the unlimited queue delivers every one.
    let buf = vec![3u8; 1472];
    for i in 0..300 {
        tx_a.send(&buf).unwrap();
        if i % 3 != 2 {
            tx_b.send(&buf).unwrap();
        }
        if i % 30 == 29 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let (got_a, got_b) = (count_a.join().unwrap(), count_b.join().unwrap());
    let report = emu.stop().unwrap();
    let events = read_log(&log).unwrap();
    let flows = split_by_port(&events, &[9201, 9202]);
    let departed = |i: usize| flows[i].bytes(0, u64::MAX / 2) / 1500;
    let arrivals = |p: u16| {
        events
            .iter()
            .filter(|e| matches!(e, LogEvent::Arrival { port: Some(q), .. } if *q == p))
            .count()
    };
    eprintln!("received {got_a}/{got_b}; {report:?}");
    assert_eq!((arrivals(9201), arrivals(9202)), (300, 200));
    assert_eq!((departed(0), departed(1)), (300, 200));
    assert_eq!(
        (got_a, got_b),
        (300, 200),
        "every datagram reached its socket"
    );
    assert_eq!(report.uplink.drops, 0);
}
