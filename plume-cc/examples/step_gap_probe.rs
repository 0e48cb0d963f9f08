//! Why the 10,000-flow decide step is slower in `bench-datapath --only
//! real-flows` (one step every 20 ms, sleeping in between) than in the
//! synthetic control loop (steps back to back): the same decide call, the
//! same flows, timed after different gaps (issue 14; docs/BENCHMARKS.md,
//! "Control step at 10,000 flows: why real flows were slower").
//!
//! Modes, interleaved in rounds so that the machine's load hits them alike:
//! - `b2b`: calls back to back (the synthetic loop's rhythm);
//! - `sleep`: `thread::sleep` until 20 ms after the last call began (the
//!   real-flows bench's and the daemon's rhythm);
//! - `spin`: the same 20 ms, busy-waiting (the CPU never idles);
//! - `spin+evict`: busy-waiting while streaming over a 64 MiB buffer (the
//!   caches lose our data, the CPU never idles);
//! - `spin 2 ms`, `spin 5 ms`: shorter busy gaps;
//! - `b2b+evict`: one pass over the 64 MiB buffer right before each call;
//! - `idle-stats` / `idle-stats+sleep`: flows that deliver nothing (as the
//!   9,900 idle loopback connections), back to back and with sleeps.
//!
//! Each call is timed by the wall clock and by the thread's CPU clock
//! (`CLOCK_THREAD_CPUTIME_ID`), and the involuntary context switches during
//! it are counted (`getrusage(RUSAGE_THREAD)`): preemption shows as wall
//! time without CPU time.
//!
//! Run (no root): `cargo run --release -p plume-cc --example step_gap_probe [FLOWS] [CALLS_PER_ROUND] [ROUNDS]`
//! (default 10000 flows, 40 calls, 3 rounds).

use std::time::{Duration, Instant};

use plume_cc::daemon::bench::{advance_synthetic_flows, synthetic_stats};
use plume_cc::policy::file::default_policy;
use plume_cc::policy::{FlowPolicy, LearnedPolicy, Target};
use plume_cc_common::FlowStats;

#[derive(Clone, Copy, PartialEq)]
enum Gap {
    None,
    Sleep,
    Spin,
    SpinEvict,
}

struct Mode {
    name: &'static str,
    gap: Gap,
    idle: bool,
    /// From the start of one call to the start of the next (`b2b`: none).
    every_ms: u64,
}

const MODES: [Mode; 9] = [
    Mode {
        name: "b2b",
        gap: Gap::None,
        idle: false,
        every_ms: 20,
    },
    Mode {
        name: "sleep",
        gap: Gap::Sleep,
        idle: false,
        every_ms: 20,
    },
    Mode {
        name: "spin",
        gap: Gap::Spin,
        idle: false,
        every_ms: 20,
    },
    Mode {
        name: "spin+evict",
        gap: Gap::SpinEvict,
        idle: false,
        every_ms: 20,
    },
    Mode {
        name: "spin 2 ms",
        gap: Gap::Spin,
        idle: false,
        every_ms: 2,
    },
    Mode {
        name: "spin 5 ms",
        gap: Gap::Spin,
        idle: false,
        every_ms: 5,
    },
    Mode {
        name: "b2b+evict",
        gap: Gap::SpinEvict,
        idle: false,
        every_ms: 0,
    },
    Mode {
        name: "idle-stats",
        gap: Gap::None,
        idle: true,
        every_ms: 20,
    },
    Mode {
        name: "idle-stats+sleep",
        gap: Gap::Sleep,
        idle: true,
        every_ms: 20,
    },
];

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec out-pointer and a clock id the kernel knows.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn involuntary_switches() -> i64 {
    // SAFETY: an all-zero rusage is valid; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out-pointer.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    ru.ru_nivcsw
}

#[derive(Default)]
struct Samples {
    wall: Vec<f64>,
    cpu: Vec<f64>,
    observe: Vec<f64>,
    tensor: Vec<f64>,
    forward: Vec<f64>,
    mapping: Vec<f64>,
    preempted: usize,
}

/// This process's anonymous memory on transparent huge pages, KiB.
fn anon_huge_kb() -> u64 {
    std::fs::read_to_string("/proc/self/smaps_rollup")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("AnonHugePages"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn p90(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[(v.len() * 9) / 10]
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("a number"))
        .collect();
    let n = args.first().copied().unwrap_or(10_000);
    let calls = args.get(1).copied().unwrap_or(40);
    let rounds = args.get(2).copied().unwrap_or(3);
    tch::set_num_threads(1);
    let mut evict = vec![0u64; 8 << 20];
    let mut sink = 0u64;
    let mut huge_kb = 0;
    let mut all: Vec<Samples> = MODES.iter().map(|_| Samples::default()).collect();
    for round in 0..rounds {
        for (m, mode) in MODES.iter().enumerate() {
            // `PROBE_MODES=sleep,b2b` runs only those modes.
            if let Ok(only) = std::env::var("PROBE_MODES") {
                if !only.split(',').any(|o| o == mode.name) {
                    continue;
                }
            }
            // A fresh policy and fresh flows per mode and round, so every
            // mode starts alike.
            let mut p = LearnedPolicy::new(default_policy().expect("the default policy"));
            let mut flows: Vec<(u64, FlowStats)> = (0..n)
                .map(|i| (1_000_000 + i as u64, synthetic_stats(i)))
                .collect();
            let mut out: Vec<Target> = Vec::new();
            let mut next = Instant::now();
            for k in 0..(calls + 3) as u64 {
                if !mode.idle {
                    advance_synthetic_flows(&mut flows);
                }
                match mode.gap {
                    Gap::None => {}
                    Gap::Sleep => {
                        std::thread::sleep(next.saturating_duration_since(Instant::now()))
                    }
                    Gap::Spin => while Instant::now() < next {},
                    Gap::SpinEvict => {
                        let mut once = true;
                        while std::mem::take(&mut once) || Instant::now() < next {
                            for c in evict.chunks_mut(4096) {
                                c[0] = c[0].wrapping_add(1);
                                sink = sink.wrapping_add(c[7]);
                                for x in c.iter_mut().step_by(8) {
                                    *x = x.wrapping_add(1);
                                }
                            }
                        }
                    }
                }
                let start = Instant::now();
                next = start + Duration::from_millis(mode.every_ms);
                let (c0, s0) = (thread_cpu(), involuntary_switches());
                p.decide(k * 20_000_000 + 1, &flows, &mut out)
                    .expect("decide");
                let wall = start.elapsed();
                let (c1, s1) = (thread_cpu(), involuntary_switches());
                assert_eq!(out.len(), n);
                for ((_, s), t) in flows.iter_mut().zip(&out) {
                    s.applied_cwnd_clamp = t.cwnd_clamp_segments;
                    s.applied_pacing = t.max_pacing_bytes_per_sec;
                }
                if k < 3 {
                    continue;
                }
                if k == 3 {
                    huge_kb = huge_kb.max(anon_huge_kb());
                }
                let d = p.last_timing();
                let a = &mut all[m];
                a.wall.push(wall.as_secs_f64() * 1e6);
                a.cpu.push((c1 - c0).as_secs_f64() * 1e6);
                a.observe.push(d.observe.as_secs_f64() * 1e6);
                a.tensor.push(d.tensor.as_secs_f64() * 1e6);
                a.forward.push(d.forward.as_secs_f64() * 1e6);
                a.mapping.push(d.mapping.as_secs_f64() * 1e6);
                a.preempted += usize::from(s1 != s0);
            }
            let a = &all[m];
            let from = a.wall.len() - calls;
            eprintln!(
                "round {round} {:>16}: wall {:8.1} cpu {:8.1} (medians of this round, µs)",
                mode.name,
                median(&a.wall[from..]),
                median(&a.cpu[from..])
            );
        }
    }
    println!("transparent huge pages in use during the calls: up to {huge_kb} kB");
    println!(
        "{n} flows, {rounds} rounds x {calls} calls per mode; medians (p90) in µs; (sink {})",
        sink % 2
    );
    println!(
        "{:>16} | {:>17} | {:>17} | {:>8} | {:>8} | {:>8} | {:>8} | preempted calls",
        "mode", "wall", "thread cpu", "observe", "tensor", "forward", "mapping"
    );
    for (mode, a) in MODES.iter().zip(&all).filter(|(_, a)| !a.wall.is_empty()) {
        println!(
            "{:>16} | {:7.1} ({:7.1}) | {:7.1} ({:7.1}) | {:8.1} | {:8.1} | {:8.1} | {:8.1} | {} of {}",
            mode.name,
            median(&a.wall),
            p90(&a.wall),
            median(&a.cpu),
            p90(&a.cpu),
            median(&a.observe),
            median(&a.tensor),
            median(&a.forward),
            median(&a.mapping),
            a.preempted,
            a.wall.len()
        );
    }
}
