//! `plume-cc-engine`: every command of `plume-cc`, with libtorch. Users run
//! `plume-cc` (the front, `src/main.rs`), which parses the command line,
//! runs the commands that need no tensor itself and `exec`s this binary
//! with the same argv for the others (`run`, `train`, `eval`, `explain`,
//! `selftest`, the benches, ...). Loading libtorch costs about 0.2 s of
//! static initialisers before `main` (docs/BENCHMARKS.md, "Start-up time"),
//! which only these commands pay. Thin: parsing and printing only; the
//! work is in the library modules.

use std::{path::PathBuf, time::Duration};

use anyhow::Context as _;

#[path = "../cli/mod.rs"]
mod cli;
use cli::command::{BenchPart, Cli, Command};

use plume_cc::{
    daemon,
    datapath::{probe, selftest},
};

/// Usage errors exit with 2 (clap), runtime errors with 1. The error is
/// printed once, each cause once, on one line (`errors::one_line`), and
/// never with a backtrace: anyhow's `Debug` would print one when
/// RUST_BACKTRACE is set, which is noise for a wrong path or a missing
/// privilege.
fn main() {
    let cli = Cli::parse_or_exit();
    // Logging first: under --log-format json the warnings are JSON too.
    cli::logging::init_logging(cli.log_format);
    cli::args::print_parse_warnings();
    cli::logging::finish(run(cli.command))
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Service(cmd) => cli::service::run(cmd)?,
        Command::Traces(cmd) => cli::trace::run(cmd)?,
        Command::Eval(cmd) => cli::eval::run(cmd)?,
        Command::Explain(cmd) => cli::explain::run(cmd)?,
        Command::Policy(cmd) => cli::policy::run(cmd)?,
        Command::Selftest {
            clamp,
            duration,
            duration_ms,
            json,
        } => {
            let opts = selftest::SelfTestOptions {
                probe_exe: std::env::current_exe().context("locating plume-cc itself")?,
                clamp,
                duration: duration.or(duration_ms).unwrap_or(Duration::from_secs(2)),
            };
            // With --json, stdout holds the report alone; the progress
            // lines go to stderr so that a pipe into a JSON reader works.
            let say = |line: &str| {
                if json {
                    eprintln!("{line}");
                } else {
                    println!("{line}");
                }
            };
            say(&format!("plume-cc selftest: {}", libtorch_check()?));
            let report = selftest::run(&opts, &mut |line| say(&format!("  {line}")))?;
            say("selftest passed");
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
        }
        Command::Run {
            policy,
            cgroup,
            create_cgroup,
            interval,
            stale,
            stale_ms,
            pin_dir,
            metrics,
            metrics_listen,
            run_for,
            run_for_ms,
            base,
            force_interval,
            record,
            objective,
            competition_rule,
            fixed_rule,
            additive_segments,
            allow_root_cgroup,
            explain,
            explain_every,
        } => {
            // SIGINT/SIGTERM are caught from here on, before the policy is
            // loaded and the datapath attached, so a stop during start-up
            // is a clean one (daemon::StopSignals).
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let stop = {
                let _entered = rt.enter();
                daemon::StopSignals::install().context("catching SIGINT/SIGTERM")?
            };
            tracing::info!(policy = %policy.display(), "starting (SIGINT/SIGTERM stop cleanly from here on)");
            let mut config = daemon::DaemonConfig {
                cgroup,
                create_cgroup,
                interval,
                stale_after: stale
                    .or(stale_ms)
                    .unwrap_or(daemon::DaemonConfig::DEFAULT_STALE),
                pin_dir,
                metrics_addr: metrics.or(metrics_listen),
                metrics_off_host: metrics_listen.is_some(),
                run_for: run_for.or(run_for_ms),
                base_cc: None,
                record,
                allow_root_cgroup,
            };
            // Refuse bad timing flags before the policy is loaded.
            config.validate()?;
            let explainer = match &explain {
                None => None,
                Some(dir) => {
                    let learned = plume_cc::policy::LoadedPolicy::load_or_default(&policy)
                        .context("--explain needs a learned policy")?;
                    let p = plume_cc::explain::predictor::load_predictors(
                        &learned,
                        &policy,
                        dir.as_deref(),
                    )?;
                    if p.metadata().ranges.is_none() {
                        tracing::warn!(
                            "{}: the predictors record no training ranges (fit before they were kept); flows outside them are not flagged: refit with `plume-cc explain fit`",
                            p.source().display()
                        );
                    }
                    Some(daemon::LiveExplainer::new(p, explain_every))
                }
            };
            let mut policy = daemon::load_policy(&policy)?;
            if let Some(o) = objective {
                policy.set_objective(o);
            }
            if competition_rule
                && !policy.change_action_scaling(&mut |s| {
                    s.competition = Some(plume_cc::policy::CompetitionRule::default())
                })
            {
                anyhow::bail!("--competition-rule needs a learned policy (a scripted schedule has no action mapping)");
            }
            if fixed_rule && !policy.set_fixed_rule(true) {
                anyhow::bail!("--fixed-rule needs a learned policy (a scripted schedule has no action mapping)");
            }
            if let Some(c) = additive_segments {
                if !policy.change_action_scaling(&mut |s| s.additive_segments = c) {
                    anyhow::bail!("--additive-segments {c}: needs a learned policy (a scripted schedule has no action mapping) and a value within [0, 64]");
                }
            }
            config.resolve(
                policy.contract().as_ref(),
                base.as_deref(),
                force_interval,
                &daemon::available_congestion_controls(),
            )?;
            let stats = rt.block_on(daemon::run(config, policy, stop, explainer))?;
            println!("{}", serde_json::to_string(&stats)?);
        }
        Command::BenchDatapath {
            policy,
            iterations,
            only,
            ebpf_runs,
            json,
            real_flows,
            active,
            keep_observed,
        } => bench_datapath(
            policy,
            iterations,
            &only,
            ebpf_runs,
            (real_flows as usize, active, keep_observed),
            json,
        )?,
        Command::BenchOverhead {
            duration,
            flows,
            rounds,
            policy,
            iperf3,
            port,
            mss,
            bpf_stats,
            json,
        } => bench_overhead(
            plume_cc::bench::overhead::OverheadConfig {
                duration,
                flows,
                rounds,
                iperf3,
                plume_exe: std::env::current_exe()?,
                policy,
                port,
                mss,
                bpf_stats,
            },
            json,
        )?,
        Command::BenchDecide {
            policy,
            flows,
            iterations,
            json,
        } => {
            let path = policy.unwrap_or_else(|| PathBuf::from("default"));
            let mut load = || plume_cc::policy::LoadedPolicy::load_or_default(&path);
            let rows = daemon::bench::decide(&flows, iterations.max(1), &mut load)?;
            let out = Output::new(json.as_ref().is_some_and(Option::is_none));
            out.line(&format!(
                "decide step, policy {}, 1 libtorch thread, medians of {} calls (us):",
                path.display(),
                iterations.max(1)
            ));
            out.line(&format!(
                "{:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                "flows", "observe", "tensor", "forward", "readback", "mapping", "total", "p99"
            ));
            for r in &rows {
                out.line(&format!(
                    "{:>7} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                    r.flows,
                    r.observe_us,
                    r.tensor_us,
                    r.forward_us,
                    r.readback_us,
                    r.mapping_us,
                    r.total_us,
                    r.total_p99_us
                ));
            }
            json_out(json, "bench-decide", &serde_json::to_value(&rows)?)?;
        }
        Command::Record {
            cgroup,
            out,
            min_duration,
            window,
            sample,
            duration,
            observe,
            pin_dir,
            json,
        } => {
            use daemon::conditions::{record, RecordOptions};
            let opts = RecordOptions {
                cgroup,
                pin_dir,
                observe,
                out,
                sample,
                window,
                min_duration,
                duration,
            };
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            eprintln!(
                "recording the flows of {} into {} (Ctrl-C stops and writes)",
                opts.cgroup.display(),
                opts.out.display()
            );
            let outcome = record(&opts, &mut |p| {
                bar.set_message(format!(
                    "{} flows open, {} seen, {:.1} s network-limited",
                    p.open,
                    p.seen,
                    p.network_limited.as_secs_f64()
                ));
                bar.tick();
            });
            bar.finish_and_clear();
            let o = outcome?;
            if json {
                println!("{}", serde_json::to_string_pretty(&o)?);
            } else {
                println!(
                    "recorded {:.1} s ({} datapath, stopped by {}): {} of {} flows usable, {} windows of {} ms ({} held out), mean delivery {:.2} Mbit/s over network-limited time (a lower bound of capacity); corpus in {}",
                    o.recorded_s,
                    o.datapath,
                    o.stopped_by,
                    o.flows_used,
                    o.flows_seen,
                    o.windows,
                    o.window_ms,
                    o.heldout,
                    o.mean_mbps,
                    opts.out.display()
                );
            }
        }
        Command::Status {
            json,
            pin_dir,
            explain,
        } => cli::status::status(json, pin_dir, explain)?,
        Command::Cleanup { pin_dir } => cli::status::cleanup(pin_dir)?,
        Command::Probe {
            connect,
            cgroup,
            held: Some(n),
            active,
            active_connect,
            active_bytes,
            tick,
            ..
        } => {
            let spec = plume_cc::datapath::held::HeldSpec {
                idle_to: connect,
                active_to: active_connect.unwrap_or(connect),
                cgroup,
                flows: n,
                active,
                active_bytes,
                tick,
            };
            plume_cc::datapath::held::run_held(
                &spec,
                std::io::stdin().lock(),
                &mut std::io::stdout().lock(),
            )
            .with_context(|| format!("{n} held flows to {connect}"))?;
        }
        Command::Probe {
            connect,
            cgroup,
            flows: Some(n),
            bytes,
            hold,
            ..
        } => {
            let done = probe::run_many(connect, cgroup.as_deref(), n, bytes, hold)
                .with_context(|| format!("{n} flows to {connect}"))?;
            println!("{}", serde_json::to_string(&done)?);
        }
        Command::Probe {
            connect,
            cgroup,
            duration,
            report,
            congestion,
            flows: None,
            ..
        } => {
            let config = probe::SenderConfig {
                connect,
                cgroup,
                duration,
                report_every: report,
                congestion,
            };
            probe::run_sender(&config, &mut std::io::stdout().lock())
                .with_context(|| format!("probe to {connect}"))?;
        }
        Command::Train(args) => cli::train::run(args)?,
        Command::BenchInference(args) => cli::train::bench(args)?,
        Command::EvalTable(args) => cli::train::eval_table(args)?,
        Command::Emulate(args) => cli::emu::run(&args)?,
        Command::Bench(args) => cli::bench::run(&args)?,
    }
    Ok(())
}

fn bench_datapath(
    policy: Option<PathBuf>,
    iterations: usize,
    only: &[BenchPart],
    ebpf_runs: u32,
    (real_flows, active, keep_observed): (usize, usize, bool),
    json: Option<Option<PathBuf>>,
) -> anyhow::Result<()> {
    use daemon::bench;
    let exe = std::env::current_exe()?;
    let out = Output::new(json.as_ref().is_some_and(Option::is_none));
    // The real-flows part takes a minute and 2 x --real-flows descriptors:
    // only when asked for.
    let wants = |p: BenchPart| only.contains(&p) || (only.is_empty() && p != BenchPart::RealFlows);
    // Default: the embedded learned policy, so `decide` includes the forward.
    let policy_path = policy.unwrap_or_else(|| PathBuf::from("default"));
    let mut make = || {
        let mut p = daemon::load_policy(&policy_path)?;
        p.keep_observed(keep_observed);
        Ok(p)
    };
    let mut v = serde_json::Map::new();
    if wants(BenchPart::ControlLoop) {
        out.line(&format!(
            "control step (read + decide + write), policy {}:",
            policy_path.display()
        ));
        out.line(&format!(
            "{:>7} {:>10} {:>10} {:>10} {:>10}",
            "flows", "read_us", "decide_us", "write_us", "total_us"
        ));
        let rows = bench::control_loop(&[1, 100, 1000, 10_000], iterations, &mut make)?;
        for r in &rows {
            out.line(&format!(
                "{:>7} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
                r.flows, r.read_us, r.decide_us, r.write_us, r.total_us
            ));
        }
        v.insert("control_loop".into(), serde_json::to_value(&rows)?);
    }
    if wants(BenchPart::Ebpf) {
        let mut costs = Vec::new();
        for _ in 0..ebpf_runs {
            let cost = bench::ebpf_cost(&exe, Duration::from_secs(3))?;
            out.line(&format!(
                "eBPF sock_ops program: {:.0} ns mean per callback over {} callbacks ({:.0} callbacks/s of a saturating loopback flow; {:.1} % of them copied the statistics; {} found their slot through the cookie hash); floor (a program that only enables the callbacks), same run: {:.0} ns over {} callbacks ({:.0}/s)",
                cost.mean_ns, cost.run_count, cost.callbacks_per_sec, cost.snapshot_share * 100.0, cost.slot_hash_lookups, cost.floor_ns, cost.floor_run_count, cost.floor_callbacks_per_sec
            ));
            costs.push(cost);
        }
        // One run: the object as before; several: an array.
        v.insert(
            "ebpf".into(),
            if costs.len() == 1 {
                serde_json::to_value(&costs[0])?
            } else {
                serde_json::to_value(&costs)?
            },
        );
    }
    if wants(BenchPart::DaemonCpu) {
        let cpu = bench::daemon_cpu(&exe, &policy_path, 100, 20, Duration::from_secs(5))?;
        out.line(&format!(
            "daemon CPU with {} flows at a {} ms interval: {:.2}% of one core over {:.1} s",
            cpu.flows, cpu.interval_ms, cpu.cpu_percent, cpu.window_s
        ));
        v.insert("daemon_cpu".into(), serde_json::to_value(&cpu)?);
    }
    if wants(BenchPart::RealFlows) {
        anyhow::ensure!(
            active <= real_flows,
            "--active {active} exceeds --real-flows {real_flows}"
        );
        let rf = bench::real_flows(
            &exe,
            real_flows,
            active,
            iterations,
            Duration::from_millis(20),
            &mut make,
        )?;
        out.line(&format!(
            "real flows: {} connections ({} active) opened in {} ms, all registered after {} ms",
            rf.flows, rf.active, rf.open_ms, rf.register_ms
        ));
        out.line(&format!(
            "control step over {} steps at {} ms, policy {}: read {:.1} us, decide {:.1} us, write {:.1} us, total {:.1} us median, {:.1} us p99, {:.1} us max; decide {:.1} us p99, {:.1} us max",
            rf.iterations,
            rf.interval_ms,
            policy_path.display(),
            rf.read_us,
            rf.decide_us,
            rf.write_us,
            rf.total_us,
            rf.total_p99_us,
            rf.total_max_us,
            rf.decide_p99_us,
            rf.decide_max_us
        ));
        if let (Some(o), Some(f), Some(m), Some(r)) = (
            rf.observe_us,
            rf.forward_us,
            rf.mapping_us,
            rf.forwarded_rows,
        ) {
            out.line(&format!(
                "inside decide (medians): observe {o:.1} us, forward {f:.1} us ({r:.0} rows), mapping {m:.1} us"
            ));
        }
        out.line(&format!(
            "limits in force as last written: {} of {} flows ({} confirmed by the socket's own pacing cap, {} carrying a limit); after close: {} flow and {} target entries left after {} ms",
            rf.applied,
            rf.flows,
            rf.kernel_agrees,
            rf.limited,
            rf.flows_left,
            rf.targets_left,
            rf.close_ms
        ));
        v.insert("real_flows".into(), serde_json::to_value(&rf)?);
    }
    json_out(json, "bench-datapath", &serde_json::Value::Object(v))
}

fn bench_overhead(
    cfg: plume_cc::bench::overhead::OverheadConfig,
    json: bool,
) -> anyhow::Result<()> {
    use plume_cc::bench::overhead;
    cfg.validate()?;
    overhead::preflight()?;
    let out = Output::new(json);
    let total = (cfg.rounds * overhead::Mode::ALL.len()) as u64;
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(indicatif::ProgressStyle::with_template(
        "{bar:30} {pos}/{len} runs, {elapsed} elapsed, ~{eta} left  {msg}",
    )?);
    let report = overhead::run(&cfg, &mut |r| {
        bar.set_message(format!(
            "round {} {}: {:.2} Gbit/s, {:.0} CPU ns/kB",
            r.round,
            r.mode.name(),
            r.gbps,
            r.cpu_ns_per_kb
        ));
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    for line in overhead::table(&report).lines() {
        out.line(line);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

/// Where a command's human-readable lines go: stdout, or stderr when
/// stdout is reserved for one JSON document (`--json`).
struct Output {
    json: bool,
}

impl Output {
    fn new(json: bool) -> Self {
        Self { json }
    }

    fn line(&self, text: &str) {
        if self.json {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    }
}

/// The end of a command with `--json [FILE]`: `--json` prints `doc` on
/// stdout; the old `--json FILE` writes it to FILE, with a deprecation
/// warning.
fn json_out(
    json: Option<Option<PathBuf>>,
    command: &str,
    doc: &serde_json::Value,
) -> anyhow::Result<()> {
    match json {
        None => {}
        Some(None) => println!("{}", serde_json::to_string_pretty(doc)?),
        Some(Some(path)) => {
            cli::args::deprecated(
                &format!("{command} --json {}", path.display()),
                &format!("{command} --json > {}", path.display()),
            );
            std::fs::write(&path, serde_json::to_string_pretty(doc)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(())
}

/// One batched forward through libtorch, to show the policy runtime is there.
fn libtorch_check() -> anyhow::Result<String> {
    let x = tch::Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]).reshape([2, 2]);
    let y = x.matmul(&x).sum(tch::Kind::Float).double_value(&[]);
    anyhow::ensure!(
        (y - 54.0).abs() < 1e-6,
        "libtorch returned {y} for a known product"
    );
    Ok("libtorch loaded (batched forward OK)".to_string())
}
