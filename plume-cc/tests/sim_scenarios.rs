//! Named simulator scenarios checked against theory (issue 4, "Must show").
//!
//! Tests that replay the public Mahimahi traces read them from
//! `../shared/traces/mahimahi`; without it they are skipped loudly (and fail
//! in CI, which has it).

mod common;

use std::sync::Arc;

use plume_cc::congestion::{CcModel, Controller, ControllerKind};
use plume_cc::policy::Target;
use plume_cc::rl::{Env, EnvConfig, MonitorInterval};
use plume_cc::sim::{
    load_mahimahi, FlowConfig, Network, NetworkConfig, QueueLimit, Schedule, OPPORTUNITY_BYTES,
};
use plume_cc_common::PACING_UNLIMITED;

/// The shared trace `name` for `test` (None: skipped loudly).
fn trace(test: &str, name: &str) -> Option<Arc<Schedule>> {
    let path = common::shared_trace(test, name)?;
    match load_mahimahi(&path) {
        Ok(t) => Some(Arc::new(t)),
        Err(e) => panic!("public Mahimahi trace {name} is malformed: {e}"),
    }
}

fn constant(packets_per_ms: u32) -> Arc<Schedule> {
    Arc::new(Schedule::constant(packets_per_ms).expect("valid constant trace"))
}

/// A network of one Reno flow held at a fixed window by the datapath clamp.
fn fixed_window(trace: Arc<Schedule>, window: u32, delay_us: u64, limit: QueueLimit) -> Network {
    let config = NetworkConfig {
        one_way_delay_us: delay_us,
        queue_limit: limit,
        flows: vec![FlowConfig::new(ControllerKind::Reno)],
        ..NetworkConfig::default()
    };
    let mut net = Network::new(config, trace, None, 1).expect("valid network");
    net.sender_mut(0)
        .expect("flow 0")
        .controller_mut()
        .set_limits(window, PACING_UNLIMITED);
    net
}

fn delivered(net: &Network, flow: usize) -> u64 {
    net.sender(flow)
        .expect("flow")
        .counters()
        .delivered_segments
}

/// Delivered wire bytes in (t1, t2] at the sender against the capacity the
/// link offered one path delay earlier (ACKs reach the sender 2 delays after
/// the packet leaves the link).
fn check_saturated_capacity(trace: Arc<Schedule>, window: u32, t1_us: u64, t2_us: u64) {
    let delay = 10_000;
    let mut net = fixed_window(Arc::clone(&trace), window, delay, QueueLimit::unlimited());
    net.run_until(t1_us);
    let d1 = delivered(&net, 0);
    net.run_until(t2_us);
    let d2 = delivered(&net, 0);
    let got = (d2 - d1) * OPPORTUNITY_BYTES;
    let capacity = trace.capacity_bytes_between_us(t1_us - 2 * delay, t2_us - 2 * delay);
    let err = (got as f64 - capacity as f64).abs() / capacity as f64;
    assert!(
        err < 0.005,
        "delivered {got} B vs capacity {capacity} B: {:.3}% off",
        err * 100.0
    );
    assert_eq!(net.data_link().dropped_packets, 0);
}

#[test]
fn saturating_sender_delivers_constant_capacity() {
    // 12 Mbit/s for 15 s in steady state.
    check_saturated_capacity(constant(1), 200, 5_000_000, 20_000_000);
    // 48 Mbit/s: several opportunities per millisecond.
    check_saturated_capacity(constant(4), 400, 5_000_000, 20_000_000);
}

#[test]
fn saturating_sender_delivers_mahimahi_capacity() {
    // A cellular trace with outages: a deep standing queue keeps the link busy.
    let Some(t) = trace(
        "saturating_sender_delivers_mahimahi_capacity",
        "ATT-LTE-driving.down",
    ) else {
        return;
    };
    check_saturated_capacity(t, 3000, 30_000_000, 120_000_000);
}

#[test]
fn standing_queue_delay_equals_queued_bytes_over_capacity() {
    // 1500 B/ms, 10 ms each way: the pipe holds ~21 packets, a 60-packet
    // window keeps ~39 queued, i.e. 39 ms of queueing.
    let mut net = fixed_window(constant(1), 60, 10_000, QueueLimit::unlimited());
    net.run_until(10_000_000);
    let now = net.now_us();
    let (packets, bytes) = net.data_link_mut().queued(now);
    let s = net.sender(0).expect("flow");
    let queue_delay_ms = (s.srtt_us() - s.min_rtt_us()) as f64 / 1000.0;
    let expected_ms = bytes as f64 / OPPORTUNITY_BYTES as f64; // 1500 B per ms
    assert!(packets > 30, "a standing queue formed: {packets}");
    assert!(
        (queue_delay_ms - expected_ms).abs() <= 1.5,
        "queueing delay {queue_delay_ms} ms vs queued/capacity {expected_ms} ms"
    );
    assert!(
        (s.min_rtt_us() as i64 - 21_000).abs() <= 1_000,
        "min RTT {}",
        s.min_rtt_us()
    );
}

#[test]
fn queue_limit_drops_only_once_exceeded() {
    // ~21 packets in the pipe; a 20-packet queue holds a 38-packet window...
    let mut fits = fixed_window(constant(1), 38, 10_000, QueueLimit::packets(20));
    fits.run_until(10_000_000);
    assert_eq!(fits.data_link().dropped_packets, 0);
    // ...but not a 60-packet one.
    let mut over = fixed_window(constant(1), 60, 10_000, QueueLimit::packets(20));
    over.run_until(10_000_000);
    assert!(over.data_link().dropped_packets > 0);
    // The same in bytes.
    let mut bytes = fixed_window(constant(1), 60, 10_000, QueueLimit::bytes(20 * 1500));
    bytes.run_until(10_000_000);
    assert!(bytes.data_link().dropped_packets > 0);
    let s = over.sender(0).expect("flow");
    assert!(
        s.counters().retransmitted_segments > 0,
        "losses are repaired"
    );
}

#[test]
fn cubic_fills_the_buffer_in_a_sawtooth() {
    // 12 Mbit/s, 10 ms each way, 100-packet droptail: BDP ~21, so the window
    // should peak near 121 and fall by beta = 0.7 at each congestion event.
    let config = NetworkConfig {
        one_way_delay_us: 10_000,
        queue_limit: QueueLimit::packets(100),
        flows: vec![FlowConfig::new(ControllerKind::Cubic)],
        ..NetworkConfig::default()
    };
    let mut net = Network::new(config, constant(1), None, 7).expect("network");
    let mut cwnd = Vec::new();
    let mut t = 0;
    while t < 60_000_000 {
        t += 5_000;
        net.run_until(t);
        cwnd.push(net.sender(0).expect("flow").controller().window_segments());
    }
    // Skip slow start; find drops (congestion events) and the peaks before them.
    let steady = &cwnd[cwnd.len() / 6..];
    let mut events = Vec::new();
    for w in steady.windows(2) {
        if f64::from(w[1]) < 0.85 * f64::from(w[0]) {
            events.push((w[0], w[1]));
        }
    }
    assert!(events.len() >= 3, "sawtooth has several teeth: {events:?}");
    for &(peak, trough) in &events {
        let r = f64::from(trough) / f64::from(peak);
        assert!((0.6..=0.8).contains(&r), "decrease {peak}->{trough}");
        assert!(
            (100..=140).contains(&peak),
            "peak {peak} near BDP + buffer (121)"
        );
    }
    let s = net.sender(0).expect("flow");
    // The buffer filled: RTTs reached ~min RTT + 100 ms.
    let p99 = s.rtt_histogram().quantile_us(0.99);
    assert!(p99 > s.min_rtt_us() + 80_000, "p99 RTT {p99}");
    assert!(net.data_link().dropped_packets > 0);
}

#[test]
fn two_identical_flows_share_fairly() {
    // 48 Mbit/s, 50 ms RTT (BDP ~200 packets), one BDP of droptail buffer,
    // ten simulated minutes after a 20 s warm-up. (CUBIC's shares oscillate
    // by up to ~10 points from minute to minute in this deterministic setting;
    // the long run evens them out.)
    for kind in [
        ControllerKind::Cubic,
        ControllerKind::Reno,
        ControllerKind::Bbr,
    ] {
        let config = NetworkConfig {
            one_way_delay_us: 25_000,
            queue_limit: QueueLimit::packets(200),
            flows: vec![FlowConfig::new(kind), FlowConfig::new(kind)],
            ..NetworkConfig::default()
        };
        let mut net = Network::new(config, constant(4), None, 3).expect("network");
        net.run_until(20_000_000);
        let (a0, b0) = (delivered(&net, 0), delivered(&net, 1));
        net.run_until(620_000_000);
        let a = (delivered(&net, 0) - a0) as f64;
        let b = (delivered(&net, 1) - b0) as f64;
        let share = a / (a + b);
        assert!(
            (0.45..=0.55).contains(&share),
            "{kind:?}: flow 0 got {:.1}% of {a}+{b}",
            share * 100.0
        );
        // Together they keep the link busy.
        let capacity = 600.0 * 4000.0;
        assert!(
            (a + b) / capacity > 0.95,
            "{kind:?}: utilization {}",
            (a + b) / capacity
        );
    }
}

/// BBR-like beside CUBIC in a 4-BDP buffer (12 Mbit/s, 40 ms, delayed
/// ACKs, 30 s, the last 20 s): under `CcModel::Linux` (CUBIC's HyStart,
/// BBR's ACK-aggregation allowance) the BBR-like flow keeps a share, where
/// under `Classic` CUBIC's slow start fills the buffer and starves it (the
/// kernel's BBR takes 0.37-0.46 there; docs/BENCHMARKS.md, "BBR beside
/// CUBIC in the simulator"). And `Classic` is what it was: the two models
/// differ only where they should.
#[test]
fn linux_controllers_let_bbr_hold_a_share_beside_cubic_in_a_deep_buffer() {
    let share = |model: CcModel| {
        let config = NetworkConfig {
            queue_limit: QueueLimit::packets(160),
            ack_queue_limit: QueueLimit::packets(160),
            delayed_ack: true,
            cc_model: model,
            flows: vec![
                FlowConfig::new(ControllerKind::Bbr),
                FlowConfig::new(ControllerKind::Cubic),
            ],
            ..NetworkConfig::default()
        };
        let mut net = Network::new(config, constant(1), Some(constant(1)), 0).expect("network");
        net.run_until(10_000_000);
        let (a0, b0) = (delivered(&net, 0), delivered(&net, 1));
        net.run_until(30_000_000);
        let (a, b) = (delivered(&net, 0) - a0, delivered(&net, 1) - b0);
        a as f64 / (a + b) as f64
    };
    let (classic, linux) = (share(CcModel::Classic), share(CcModel::Linux));
    assert!(classic < 0.12, "classic: BBR-like share {classic:.3}");
    assert!(
        linux > 0.18,
        "linux: BBR-like share {linux:.3} (classic {classic:.3})"
    );
}

#[test]
fn ack_path_trace_limits_the_ack_clock() {
    // 48 Mbit/s data link, but an ACK link of one 1500-byte opportunity per
    // 10 ms carries at most 28 ACKs of 52 bytes per 10 ms.
    let config = NetworkConfig {
        one_way_delay_us: 10_000,
        flows: vec![FlowConfig::new(ControllerKind::Reno)],
        ..NetworkConfig::default()
    };
    let ack = Arc::new(Schedule::from_ms(vec![10]).expect("trace"));
    let mut net = Network::new(config, constant(4), Some(ack), 1).expect("network");
    net.sender_mut(0)
        .expect("flow")
        .controller_mut()
        .set_limits(300, PACING_UNLIMITED);
    net.run_until(10_000_000);
    let rate = delivered(&net, 0) as f64 / 10.0;
    assert!(
        rate <= 2_900.0 && rate > 2_000.0,
        "ACK-clocked rate {rate} segments/s"
    );
}

#[test]
fn random_loss_rate_is_honoured() {
    let config = NetworkConfig {
        one_way_delay_us: 10_000,
        random_loss: 0.02,
        flows: vec![FlowConfig::new(ControllerKind::Reno)],
        ..NetworkConfig::default()
    };
    let mut net = Network::new(config, constant(1), None, 9).expect("network");
    net.sender_mut(0)
        .expect("flow")
        .controller_mut()
        .set_limits(30, PACING_UNLIMITED);
    net.run_until(60_000_000);
    let c = net.sender(0).expect("flow").counters();
    let rate = c.lost_segments as f64 / c.sent_segments as f64;
    assert!((0.015..0.025).contains(&rate), "loss rate {rate}");
}

#[test]
fn timeouts_back_off_and_recover() {
    // 30% loss: retransmission timeouts happen; the run must neither hang
    // nor stall for good.
    let config = NetworkConfig {
        one_way_delay_us: 10_000,
        random_loss: 0.3,
        flows: vec![FlowConfig::new(ControllerKind::Cubic)],
        ..NetworkConfig::default()
    };
    let mut net = Network::new(config, constant(1), None, 11).expect("network");
    net.run_until(30_000_000);
    let half = delivered(&net, 0);
    net.run_until(60_000_000);
    let c = *net.sender(0).expect("flow").counters();
    assert!(c.timeouts > 0, "{c:?}");
    assert!(
        half > 500 && c.delivered_segments > half + 500,
        "{half} then {c:?}"
    );
    // After 30% loss and timeouts the window is still CUBIC's, not stuck at
    // the loss window: it has grown past the RTO's 1 segment.
    let w = net.sender(0).expect("flow").controller().window_segments();
    assert!(w >= 2, "window {w} after recovery");
}

fn episode(seed: u64, loss: f64) -> (Vec<(u64, u32, u32)>, String) {
    let config = EnvConfig {
        base: ControllerKind::Cubic,
        random_loss: loss,
        interval: MonitorInterval::FixedUs(20_000),
        episode_us: Some(10_000_000),
        ..EnvConfig::default()
    };
    let mut env = Env::new(config).expect("env");
    // A trace the repository generates, so this test never skips.
    let t = load_mahimahi(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../traces/synthetic/lte-4mbps-s1.trace"
    )))
    .expect("repository trace");
    env.reset(Arc::new(t), seed).expect("reset");
    let mut out = Vec::new();
    let mut i = 0u32;
    loop {
        let clamp = 10 + (i * 7) % 90;
        let r = env
            .step(Target {
                cwnd_clamp_segments: clamp,
                max_pacing_bytes_per_sec: if i.is_multiple_of(3) {
                    2_000_000
                } else {
                    PACING_UNLIMITED
                },
                competitive_cc: false,
            })
            .expect("step");
        out.push((
            r.now_us,
            r.components.throughput_mbps.to_bits() ^ r.components.queueing_delay_ms.to_bits(),
            r.observation
                .iter()
                .fold(0u32, |h, v| h.rotate_left(5) ^ v.to_bits()),
        ));
        i += 1;
        if r.done {
            break;
        }
    }
    (out, format!("{:?}", env.metrics()))
}

#[test]
fn determinism_for_a_seed() {
    let a = episode(42, 0.01);
    let b = episode(42, 0.01);
    assert_eq!(a, b);
    let c = episode(43, 0.01);
    assert_ne!(a.1, c.1, "another seed draws other random losses");
}

#[test]
fn env_reports_episode_metrics_and_reward_components() {
    let config = EnvConfig {
        base: ControllerKind::Cubic,
        queue_limit: QueueLimit::packets(200),
        episode_us: Some(30_000_000),
        ..EnvConfig::default()
    };
    let mut env = Env::new(config).expect("env");
    assert!(env.step(Target::unlimited()).is_err(), "step before reset");
    let Some(t) = trace(
        "env_reports_episode_metrics_and_reward_components",
        "ATT-LTE-driving.down",
    ) else {
        return;
    };
    let obs = env.reset(t, 5).expect("reset");
    assert!(obs.iter().all(|v| v.is_finite()));
    let mut steps = 1;
    loop {
        let r = env.step(Target::unlimited()).expect("step");
        steps += 1;
        assert!(r.components.throughput_mbps >= 0.0 && r.components.loss_rate <= 1.0);
        if r.done {
            break;
        }
    }
    assert_eq!(steps, 1500);
    assert!(env.step(Target::unlimited()).is_err(), "step after the end");
    let m = env.metrics();
    assert_eq!(m.elapsed_us, 30_000_000);
    assert!(m.utilization > 0.5 && m.utilization <= 1.01, "{m:?}");
    assert!(
        m.p95_rtt_us >= m.p95_queueing_delay_us && m.p95_rtt_us > 40_000,
        "{m:?}"
    );
    assert!(m.capacity_bytes > 0 && m.delivered_bytes > 0);
}

#[test]
fn delayed_acks_halve_the_acks() {
    // 12 Mbit/s, 40 ms RTT, a CUBIC flow for 5 s: every ACK that acknowledges
    // new data gives one RTT sample, so samples per delivered segment count
    // the ACKs.
    let run = |delayed_ack: bool| {
        let config = NetworkConfig {
            one_way_delay_us: 20_000,
            queue_limit: QueueLimit::packets(100),
            delayed_ack,
            ..NetworkConfig::default()
        };
        let mut net = Network::new(config, constant(1), None, 5).expect("network");
        net.run_until(5_000_000);
        let c = *net.sender(0).expect("flow").counters();
        c.rtt_samples as f64 / c.delivered_segments as f64
    };
    let every = run(false);
    let delayed = run(true);
    assert!(every > 0.95, "an ACK per segment: {every}");
    assert!(
        (0.45..=0.6).contains(&delayed),
        "one ACK per two: {delayed}"
    );
}
