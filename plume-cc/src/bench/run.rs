//! Running the benchmark: one run ([`run_one`]: the emulator, one iperf3
//! server per flow, the clients on schedule, the daemon for plume, and the
//! per-flow accounting from the link log) and the whole sweep
//! ([`run_bench`]).

use std::{
    fs::File,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use super::flows::{convergence_bins, jain, percentile, share, split_by_port, BIN_MS};
use super::{
    cancel, io_err, report, trace_name, BenchConfig, BenchError, BenchOutput, FlowResult,
    PlannedFlow, Progress, RunResult, Scheme, Setting,
};
use crate::emu::{
    log::{read_log, LogEvent},
    EmuConfig, EmuError, Emulator, LinkConfig, OUTER_ADDR,
};
use crate::trace::MahimahiTrace;

/// The daemon's recording in a run's folder under `bench --record`.
pub const RECORD_FILE: &str = "daemon-record.jsonl";

/// Starts an iperf3 command (`program` names it in errors) with its JSON
/// output going to `out` and nothing on stdin or stderr.
fn spawn_iperf3(cmd: &mut Command, program: &Path, out: &Path) -> Result<Child, BenchError> {
    let file = File::create(out).map_err(io_err("create", out))?;
    cancel::die_with_parent(cmd, libc::SIGKILL);
    Ok(cmd
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| EmuError::Spawn {
            program: program.display().to_string(),
            source,
        })?)
}

/// Waits until TCP sockets listen on every port in `ports` in the outer
/// namespace; returns the first port that did not.
fn wait_listening(
    emu: &Emulator,
    ports: &[u16],
    timeout: Duration,
) -> Result<Option<u16>, EmuError> {
    let deadline = Instant::now() + timeout;
    loop {
        let text = emu
            .outer()
            .run(|| std::fs::read_to_string("/proc/thread-self/net/tcp").unwrap_or_default())?;
        let missing = ports
            .iter()
            .find(|p| !text.contains(&format!(":{p:04X} 00000000:0000 0A")));
        match missing {
            None => return Ok(None),
            Some(&p) if Instant::now() >= deadline => return Ok(Some(p)),
            Some(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Waits for `child` until `deadline` or a stop ([`cancel::requested`]);
/// then kills it. `None` if it had to be killed.
fn wait_child(child: &mut Child, deadline: Instant) -> Option<std::process::ExitStatus> {
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() >= deadline || cancel::requested() {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(cancel::POLL);
    }
}

/// Kills and reaps children left running when a run ends early.
struct Reaper(Vec<Child>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for c in &mut self.0 {
            if matches!(c.try_wait(), Ok(None)) {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
}

/// Runs one trace × setting × scheme × repetition and writes its files into
/// `dir`.
pub fn run_one(
    cfg: &BenchConfig,
    trace_path: &Path,
    setting: &Setting,
    scheme: &Scheme,
    run: usize,
    dir: &Path,
) -> Result<RunResult, BenchError> {
    let wall = Instant::now();
    let label = format!(
        "{}/{}/{}/{run}",
        trace_name(trace_path),
        setting.label(),
        scheme.name()
    );
    std::fs::create_dir_all(dir).map_err(io_err("create", dir))?;
    let trace = MahimahiTrace::read(trace_path)?;
    let queue = setting.queue.resolve(&trace, setting.delay);
    let plan = cfg.flow_plan(scheme);
    // Set the schemes up first: a pending scheme costs no emulator run.
    let daemon_log = dir.join("daemon.log");
    let setup = if cfg.record {
        scheme.recording_to(&dir.join(RECORD_FILE))
    } else {
        scheme.clone()
    }
    .start(&cfg.plume_exe, &daemon_log)?;
    let competing_setup = cfg
        .competing
        .as_ref()
        .map(|c| Scheme::Kernel(c.cc.clone()).start(&cfg.plume_exe, &daemon_log))
        .transpose()?;
    let up_log = dir.join("uplink.log");
    let emu = Emulator::start(&EmuConfig {
        uplink: LinkConfig {
            trace: Some(trace_path.into()),
            queue,
            log: Some(up_log.clone()),
        },
        downlink: LinkConfig {
            trace: cfg.downlink.trace_for(trace_path),
            queue,
            log: None,
        },
        delay: setting.delay,
        command_line: format!("plume-cc bench ({label})"),
    })?;
    let mut servers = Reaper(Vec::new());
    for f in &plan {
        servers.0.push(spawn_iperf3(
            emu.outer_command(&cfg.iperf3).args([
                "-s",
                "-1",
                "-B",
                &OUTER_ADDR.to_string(),
                "-p",
                &f.port.to_string(),
                "--json",
            ]),
            &cfg.iperf3,
            &dir.join(format!("iperf3-server-{}.json", f.index)),
        )?);
    }
    let ports: Vec<u16> = plan.iter().map(|f| f.port).collect();
    if let Some(p) = wait_listening(&emu, &ports, Duration::from_secs(5))? {
        return Err(BenchError::Iperf {
            run: label,
            msg: format!("the server did not listen on port {p} within 5 s"),
        });
    }
    // Start the clients on schedule; each flow's start is taken when it is
    // spawned, on the link's clock.
    let mut order: Vec<&PlannedFlow> = plan.iter().collect();
    order.sort_by_key(|f| f.start);
    let t0 = Instant::now();
    let mut clients = Reaper(Vec::new());
    let mut client_index = Vec::new();
    let mut started_ms = vec![0u64; plan.len()];
    for f in order {
        if cancel::sleep_until(t0 + f.start) {
            break;
        }
        let mut cmd = emu.inner_command(&cfg.iperf3);
        cmd.args([
            "-c",
            &OUTER_ADDR.to_string(),
            "-p",
            &f.port.to_string(),
            "-t",
            &format!("{:.3}", f.duration.as_secs_f64()),
            "--json",
        ]);
        let who = if f.is_scheme {
            &setup
        } else {
            competing_setup
                .as_ref()
                .expect("a competing flow has its setup")
        };
        who.configure_sender(&mut cmd)?;
        started_ms[f.index] = emu.epoch().elapsed().as_millis() as u64;
        clients.0.push(spawn_iperf3(
            &mut cmd,
            &cfg.iperf3,
            &dir.join(format!("iperf3-client-{}.json", f.index)),
        )?);
        client_index.push(f.index);
    }
    // A deep queue (seconds of data) delays iperf3's end-of-test exchange.
    let deadline = t0 + cfg.duration + Duration::from_secs(120);
    let statuses: Vec<_> = clients
        .0
        .iter_mut()
        .map(|c| wait_child(c, deadline))
        .collect();
    let server_deadline = Instant::now() + Duration::from_secs(10);
    for s in &mut servers.0 {
        let _ = wait_child(s, server_deadline);
    }
    // The daemon stops (its flows back under kernel control) and the
    // cgroups go before the link does, stopped or not.
    drop((clients, servers, setup, competing_setup));
    let report = emu.stop()?;
    if cancel::requested() {
        return Err(BenchError::Cancelled { run: label });
    }
    let mut json = vec![serde_json::Value::Null; plan.len()];
    for (k, &i) in client_index.iter().enumerate() {
        let path = dir.join(format!("iperf3-client-{i}.json"));
        json[i] = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        if !statuses[k].is_some_and(|s| s.success()) {
            let msg = json[i].get("error").and_then(|e| e.as_str()).map_or_else(
                || format!("client failed ({:?})", statuses[k]),
                String::from,
            );
            return Err(BenchError::Iperf {
                run: label,
                msg: format!("flow {i} (port {}): {msg}", plan[i].port),
            });
        }
    }
    let events = read_log(&up_log)?;
    let window_ms = cfg.duration.as_millis() as u64;
    let start_ms = events
        .iter()
        .find_map(|e| match e {
            LogEvent::Arrival { t_ms, .. } => Some(*t_ms),
            _ => None,
        })
        .unwrap_or(0);
    let end_ms = start_ms + window_ms;
    let tail_from = end_ms
        .saturating_sub(cfg.fair_window.as_millis() as u64)
        .max(start_ms);
    let logs = split_by_port(&events, &ports);
    let delay_ms = setting.delay.as_secs_f64() * 1000.0;
    let flow_start: Vec<u64> = started_ms.iter().map(|&s| s.max(start_ms)).collect();
    let series: Vec<Vec<f64>> = logs.iter().map(|l| l.series(start_ms, end_ms)).collect();
    let start_bin: Vec<usize> = flow_start
        .iter()
        .map(|&s| ((s - start_ms) / BIN_MS) as usize)
        .collect();
    let many = plan.len() > 1;
    let conv = convergence_bins(&series, &start_bin);
    let mut flows = Vec::with_capacity(plan.len());
    for (f, l) in plan.iter().zip(&logs) {
        let end = &json[f.index]["end"];
        let d = l.link_delays(flow_start[f.index], end_ms);
        flows.push(FlowResult {
            index: f.index,
            port: f.port,
            is_scheme: f.is_scheme,
            label: f.label.clone(),
            start_s: (flow_start[f.index] - start_ms) as f64 / 1000.0,
            throughput_mbps: l.mbps(flow_start[f.index], end_ms),
            tail_mbps: l.mbps(flow_start[f.index].max(tail_from), end_ms),
            p50_delay_ms: percentile(&d, 50.0) + delay_ms,
            p95_delay_ms: percentile(&d, 95.0) + delay_ms,
            drops: l.drops(start_ms, end_ms),
            retransmits: end["sum_sent"]["retransmits"].as_u64().unwrap_or(0),
            sender_cc: end["sender_tcp_congestion"].as_str().unwrap_or("?").into(),
            convergence_s: if many {
                conv[f.index].map(|b| b as f64 * BIN_MS as f64 / 1000.0)
            } else {
                None
            },
            series_mbps: series[f.index].clone(),
        });
    }
    let mine: Vec<bool> = plan.iter().map(|f| f.is_scheme).collect();
    let secs = window_ms as f64 / 1000.0;
    let scheme_bytes: u64 = logs
        .iter()
        .zip(&mine)
        .filter(|(_, &m)| m)
        .map(|(l, _)| l.bytes(start_ms, end_ms))
        .sum();
    let all_bytes: u64 = logs.iter().map(|l| l.bytes(start_ms, end_ms)).sum();
    let mut scheme_delays: Vec<f64> = logs
        .iter()
        .zip(&mine)
        .filter(|(_, &m)| m)
        .flat_map(|(l, _)| l.link_delays(start_ms, end_ms))
        .collect();
    scheme_delays.sort_by(f64::total_cmp);
    let throughput_mbps = scheme_bytes as f64 * 8.0 / secs / 1e6;
    let capacity_mbps = trace.capacity_bytes(start_ms, end_ms) as f64 * 8.0 / secs / 1e6;
    let tail: Vec<f64> = flows.iter().map(|f| f.tail_mbps).collect();
    let all_converged = flows.iter().all(|f| f.convergence_s.is_some());
    let scheme_json = plan
        .iter()
        .filter(|f| f.is_scheme)
        .map(|f| &json[f.index]["end"]);
    Ok(RunResult {
        trace: trace_name(trace_path),
        scheme: scheme.name().into(),
        setting: setting.label(),
        delay_ms,
        queue: setting.queue.label(),
        queue_resolved: queue.describe(),
        run,
        error: None,
        throughput_mbps,
        link_mbps: all_bytes as f64 * 8.0 / secs / 1e6,
        capacity_mbps,
        utilization: if capacity_mbps > 0.0 {
            throughput_mbps / capacity_mbps
        } else {
            0.0
        },
        p50_delay_ms: percentile(&scheme_delays, 50.0) + delay_ms,
        p95_delay_ms: percentile(&scheme_delays, 95.0) + delay_ms,
        p95_queueing_ms: percentile(&scheme_delays, 95.0),
        iperf_receiver_mbps: scheme_json
            .clone()
            .map(|e| e["sum_received"]["bits_per_second"].as_f64().unwrap_or(0.0))
            .sum::<f64>()
            / 1e6,
        retransmits: flows
            .iter()
            .filter(|f| f.is_scheme)
            .map(|f| f.retransmits)
            .sum(),
        sender_cc: report::distinct(
            flows
                .iter()
                .filter(|f| f.is_scheme)
                .map(|f| f.sender_cc.as_str()),
        ),
        drops: report.uplink.drops,
        jain: many.then(|| jain(&tail)),
        share: cfg.competing.is_some().then(|| share(&tail, &mine)),
        convergence_s: if many && all_converged {
            flows
                .iter()
                .filter_map(|f| f.convergence_s)
                .reduce(f64::max)
        } else {
            None
        },
        converged: many.then_some(all_converged),
        flows,
        window_start_ms: start_ms,
        window_ms,
        wall_s: wall.elapsed().as_secs_f64(),
        emulator_cpu_s: (report.uplink_forward.cpu_us + report.downlink_forward.cpu_us) as f64
            / 1e6,
        dir: dir
            .strip_prefix(&cfg.out)
            .unwrap_or(dir)
            .display()
            .to_string(),
    })
}

/// Runs every trace × setting × repetition × scheme (schemes innermost, so
/// they interleave), writes the results into `cfg.out`, and reports progress
/// through `progress`. A failed or pending run is recorded with its error and
/// the benchmark goes on.
pub fn run_bench(
    cfg: &BenchConfig,
    progress: &mut dyn FnMut(&Progress),
) -> Result<BenchOutput, BenchError> {
    cfg.validate()?;
    std::fs::create_dir_all(&cfg.out).map_err(io_err("create", &cfg.out))?;
    let left = cancel::remove_leftovers();
    if left != cancel::Leftovers::default() {
        tracing::warn!(
            namespaces = ?left.namespaces,
            pins = ?left.pins,
            cgroups = ?left.cgroups,
            "removed what an earlier benchmark that died left behind"
        );
    }
    let settings = cfg.settings();
    let total = cfg.traces.len() * settings.len() * cfg.schemes.len() * cfg.runs;
    let mut results = Vec::with_capacity(total);
    'runs: for trace in &cfg.traces {
        for setting in &settings {
            for run in 1..=cfg.runs {
                for scheme in &cfg.schemes {
                    if cancel::requested() {
                        break 'runs;
                    }
                    let label = format!(
                        "{} [{}] {} run {run}",
                        trace_name(trace),
                        setting.label(),
                        scheme.name()
                    );
                    progress(&Progress {
                        done: results.len(),
                        total,
                        label: label.clone(),
                        result: None,
                    });
                    let dir = cfg
                        .out
                        .join("runs")
                        .join(trace_name(trace))
                        .join(setting.slug())
                        .join(scheme.name())
                        .join(run.to_string());
                    let r = run_one(cfg, trace, setting, scheme, run, &dir).unwrap_or_else(|e| {
                        RunResult::failed(
                            &trace_name(trace),
                            setting,
                            scheme.name(),
                            run,
                            e.to_string(),
                        )
                    });
                    results.push(r.clone());
                    progress(&Progress {
                        done: results.len(),
                        total,
                        label,
                        result: Some(r),
                    });
                }
            }
        }
    }
    report::write_all(cfg, results)
}
