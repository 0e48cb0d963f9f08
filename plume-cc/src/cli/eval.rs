//! `plume-cc eval ...`: argument parsing and printing for the evaluations.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};

use super::args::{number, whole, DurationArg};
use plume_cc::args::BareUnit;

use plume_cc::eval::sim_to_real::{self, SimToRealConfig};

/// `plume-cc eval` subcommands.
#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// The same trace windows and path in the simulator and across the
    /// emulated link with the real kernel (root): compares utilisation, p95
    /// bottleneck delay and the observation series, and fails when a window
    /// is off by more than the tolerance.
    SimToReal(SimToRealArgs),
    /// The policy against the fixed rule (action 0), CUBIC and BBR-like in
    /// the simulator, over held-out windows x min RTT {10, 40, 100, 200} ms x
    /// buffer {0.5, 2, 8} BDP x {alone, + CUBIC, + BBR-like, + a second flow
    /// of the same scheme}: Markdown, JSON
    /// and a heat map.
    Matrix(MatrixArgs),
    /// The sampler study: uniform, plume-static and plume-dynamic trained at
    /// equal budgets with several seeds, evaluated on held-out windows
    /// balanced across clusters (per-cluster means with 95% intervals,
    /// learning curves, plume-dynamic's weights). Resumes an interrupted
    /// study in the same folder.
    Study(StudyArgs),
}

/// Arguments of `plume-cc eval study`.
#[derive(Debug, Args)]
pub struct StudyArgs {
    /// A scenario corpus (`plume-cc traces scenarios`) or a folder of traces.
    #[arg(long)]
    pub corpus: PathBuf,
    /// Seeds per sampler and budget.
    #[arg(long, allow_negative_numbers = true, default_value_t = 5, value_parser = whole::<u64>())]
    pub seeds: u64,
    /// Step budgets, comma-separated (`300k`, `3M` or plain numbers).
    #[arg(long, value_delimiter = ',', default_value = "300k,3M", value_parser = parse_steps)]
    pub budgets: Vec<u64>,
    /// Held-out evaluation windows per cluster, at most.
    #[arg(long, allow_negative_numbers = true, default_value_t = 8, value_parser = whole::<usize>())]
    pub per_cluster: usize,
    /// Output folder (study.md, study.json, figures, runs/).
    #[arg(long, default_value = "runs/study")]
    pub out: PathBuf,
    /// Samplers compared, comma-separated; the first is the reference the
    /// gains are taken against.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "uniform,plume-static,plume-dynamic"
    )]
    pub samplers: Vec<plume_cc::rl::config::SamplerChoice>,
    /// Train and evaluate every run, and the fixed rule, with the
    /// competition rule (`train --competition-rule`).
    #[arg(long)]
    pub competition_rule: bool,
}

/// Why a step count was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StepsError {
    /// Not a number, with or without `k`/`M`.
    #[error("{text:?} is not a step count (e.g. 300000, 300k, 3M)")]
    NotANumber {
        /// The text given.
        text: String,
    },
    /// Fractional, below 1 or above 1e12.
    #[error("{text:?} must be a whole number of steps in [1, 1e12]")]
    OutOfRange {
        /// The text given.
        text: String,
    },
}

/// Parses a step count: `300000`, `300k` or `3M`.
pub fn parse_steps(s: &str) -> Result<u64, StepsError> {
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1_000.0),
        Some('m' | 'M') => (&t[..t.len() - 1], 1_000_000.0),
        _ => (t, 1.0),
    };
    let v: f64 = num.parse().map_err(|_| StepsError::NotANumber {
        text: s.to_string(),
    })?;
    let steps = v * mult;
    if !(steps.is_finite() && (1.0..=1e12).contains(&steps) && steps.fract() == 0.0) {
        return Err(StepsError::OutOfRange {
            text: s.to_string(),
        });
    }
    Ok(steps as u64)
}

struct StudyBar {
    bar: indicatif::ProgressBar,
    runs: indicatif::ProgressBar,
}

impl plume_cc::rl::log::Progress for StudyBar {
    fn iteration(&mut self, row: &plume_cc::rl::log::LogRow, total: usize) {
        self.bar.set_length(total as u64);
        self.bar.set_position(row.iteration as u64);
    }
    fn message(&mut self, _text: &str) {}
}

impl plume_cc::eval::study::StudyProgress for StudyBar {
    fn run(&mut self, index: usize, total: usize, name: &str, cached: bool) {
        self.runs.set_length(total as u64);
        self.runs.set_position(index as u64 - 1);
        self.runs.set_message(format!(
            "{name}{}",
            if cached { " (done before)" } else { "" }
        ));
        self.bar.set_position(0);
    }
    fn training(&mut self) -> &mut dyn plume_cc::rl::log::Progress {
        self
    }
}

/// Arguments of `plume-cc eval matrix`.
#[derive(Debug, Args)]
pub struct MatrixArgs {
    /// The training corpus: a folder of traces, one trace file, or a
    /// scenario corpus (its held-out windows are used).
    #[arg(long)]
    pub traces: PathBuf,
    /// Policy file, or `default`.
    #[arg(long, default_value = "default")]
    pub policy: PathBuf,
    /// Held-out windows per cell (spread evenly).
    #[arg(long, allow_negative_numbers = true, default_value_t = 8, value_parser = whole::<usize>())]
    pub windows: usize,
    /// Draw the windows from the validation picks instead (held-out
    /// windows that no test pick uses, what `train --select-every` scores
    /// snapshots on), to tune on without touching the test windows.
    #[arg(long)]
    pub validation: bool,
    /// Output folder (matrix.md, matrix.json, matrix.png).
    #[arg(long, default_value = "runs/eval-matrix")]
    pub out: PathBuf,
    /// The policy's operating point (`latency`, `balanced`, `throughput` or
    /// a delay weight); default: the policy file's.
    #[arg(long)]
    pub objective: Option<plume_cc::policy::Objective>,
    /// Window (episode) length [default: 10s]. The held-out split is that
    /// of a training run with the same `--window`; windows longer than the
    /// rate anchor's 10 s show what a 10 s episode cannot (an anchor that
    /// decays while a competitor holds the link).
    #[arg(long, value_name = "DURATION", value_parser = DurationArg::new())]
    pub window: Option<Duration>,
    /// Old spelling of `--window`, in milliseconds (one more release).
    #[arg(long = "window-ms", hide = true, conflicts_with = "window", value_parser = DurationArg::renamed("--window", BareUnit::Ms))]
    pub window_ms_old: Option<Duration>,
    /// How the simulator applies the cwnd clamp: `kernel` (as Linux, the
    /// default) or `immediate` (the simulator before 2026-12-02).
    #[arg(long, value_enum, default_value_t = plume_cc::congestion::ClampModel::Kernel)]
    pub sim_clamp: plume_cc::congestion::ClampModel,
    /// How the simulated datapath sees a flow and applies its limits:
    /// `callbacks` (as the kernel: at the sock_ops callbacks, the RTT one
    /// once per round trip; the default) or `interval` (every poll sees the
    /// flow as it is, limits apply at once: the simulator before 2026-12-03).
    #[arg(long, value_enum, default_value_t = plume_cc::sim::DatapathModel::Callbacks)]
    pub sim_datapath: plume_cc::sim::DatapathModel,
    /// Whether the simulated senders undo a spurious retransmission
    /// timeout: `plain` (a timeout stands, as in training; the default, so
    /// that matrix scores stay comparable with the policies' own
    /// validation scores) or `undo` (as Linux: an ACK for a delayed original
    /// takes the timeout back).
    #[arg(long, value_enum, default_value_t = plume_cc::sim::TimeoutModel::Plain)]
    pub sim_rto: plume_cc::sim::TimeoutModel,
    /// How closely the simulated CUBIC and BBR follow Linux's: `classic`
    /// (CUBIC slow-starts until a loss, BBR has no ACK-aggregation
    /// allowance, as in training; the default, for the same reason as
    /// `--sim-rto`) or `linux` (CUBIC's HyStart, BBR's aggregation
    /// allowance).
    #[arg(long, value_enum, default_value_t = plume_cc::congestion::CcModel::Classic)]
    pub sim_cc: plume_cc::congestion::CcModel,
    /// Which RTT of an ACK the simulated senders' min RTT takes: `echoed`
    /// (the one srtt takes, as in training; the default, for the same
    /// reason as `--sim-rto`) or `newest` (as Linux: the newest segment the
    /// ACK delivers).
    #[arg(long, value_enum, default_value_t = plume_cc::sim::MinRttSample::Echoed)]
    pub sim_min_rtt: plume_cc::sim::MinRttSample,
}

/// Arguments of `plume-cc eval sim-to-real`.
#[derive(Debug, Args)]
pub struct SimToRealArgs {
    /// Mahimahi trace files, or folders of them.
    #[arg(long, num_args = 1.., required = true)]
    pub traces: Vec<PathBuf>,
    /// Number of windows, round-robin over the traces.
    #[arg(long, allow_negative_numbers = true, default_value_t = 5, value_parser = whole::<usize>())]
    pub windows: usize,
    /// Window length [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = DurationArg::new())]
    pub window: Option<Duration>,
    /// Old spelling of `--window`, in milliseconds (one more release).
    #[arg(long = "window-ms", hide = true, conflicts_with = "window", value_parser = DurationArg::renamed("--window", BareUnit::Ms))]
    pub window_ms_old: Option<Duration>,
    /// One-way propagation delay [default: 20ms].
    #[arg(long, value_name = "DURATION", value_parser = DurationArg::new())]
    pub delay: Option<Duration>,
    /// Old spelling of `--delay`, in milliseconds (one more release).
    #[arg(long = "delay-ms", hide = true, conflicts_with = "delay", value_parser = DurationArg::renamed("--delay", BareUnit::Ms))]
    pub delay_ms_old: Option<Duration>,
    /// Droptail limit of both link directions, packets.
    #[arg(long, allow_negative_numbers = true, default_value_t = 200, value_parser = whole::<u32>())]
    pub queue_packets: u32,
    /// Policy file, `default` (the embedded one), or a kernel controller's
    /// name (`cubic`, `bbr`, `reno`) to check that controller alone.
    #[arg(long, default_value = "default")]
    pub policy: PathBuf,
    /// Relative tolerance on utilisation and p95 bottleneck delay.
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.15, value_parser = number::<f64>())]
    pub tolerance: f64,
    /// Output folder (report.md, results.json, series.png, per-window runs).
    #[arg(long, default_value = "runs/sim-to-real")]
    pub out: PathBuf,
    /// The iperf3 program.
    #[arg(long, default_value = "iperf3")]
    pub iperf3: PathBuf,
    /// Only the simulator side (no root needed; nothing is compared).
    #[arg(long)]
    pub sim_only: bool,
    /// The simulated receiver delays ACKs as Linux's does (every second
    /// segment, 40 ms timer) instead of ACKing every segment; with the
    /// kernel clamp model the measured agreement is better with it
    /// (docs/TRAINING.md, "The clamp as Linux applies it").
    #[arg(long)]
    pub sim_delayed_ack: bool,
    /// How the simulator applies the cwnd clamp: `kernel` (as Linux, the
    /// default) or `immediate` (the simulator before 2026-12-02).
    #[arg(long, value_enum, default_value_t = plume_cc::congestion::ClampModel::Kernel)]
    pub sim_clamp: plume_cc::congestion::ClampModel,
    /// How the simulated datapath sees a flow and applies its limits:
    /// `callbacks` (as the kernel: at the sock_ops callbacks, the RTT one
    /// once per round trip; the default) or `interval` (every poll sees the
    /// flow as it is, limits apply at once: the simulator before 2026-12-03).
    #[arg(long, value_enum, default_value_t = plume_cc::sim::DatapathModel::Callbacks)]
    pub sim_datapath: plume_cc::sim::DatapathModel,
    /// Whether the simulated senders undo a spurious retransmission
    /// timeout: `undo` (as Linux with timestamps: an ACK for an original
    /// sent before the timeout's retransmission takes the timeout back; the
    /// default, since this check compares with that kernel) or `plain` (a
    /// timeout stands: the simulator before 2026-12-04, and training's).
    #[arg(long, value_enum, default_value_t = plume_cc::sim::TimeoutModel::Undo)]
    pub sim_rto: plume_cc::sim::TimeoutModel,
    /// How closely the simulated CUBIC and BBR follow Linux's: `linux`
    /// (CUBIC's HyStart may end slow start on an ACK train or a rise of
    /// the round's RTT; BBR's window allows for ACK aggregation; the
    /// default, since this check compares with that kernel) or `classic`
    /// (the simulator before 2026-12-05, and training's).
    #[arg(long, value_enum, default_value_t = plume_cc::congestion::CcModel::Linux)]
    pub sim_cc: plume_cc::congestion::CcModel,
    /// Which RTT of an ACK the simulated senders' min RTT takes: `newest`
    /// (as Linux, `tcp_update_rtt_min(sk, ca_rtt_us)`: the newest segment
    /// the ACK delivers; the default, since this check compares with that
    /// kernel) or `echoed` (the one srtt takes, the older segment of a
    /// delayed ACK: the simulator before 2026-12-04, and training's).
    #[arg(long, value_enum, default_value_t = plume_cc::sim::MinRttSample::Newest)]
    pub sim_min_rtt: plume_cc::sim::MinRttSample,
    /// Emulator runs per window; the simulator is compared with their mean
    /// (the kernel side varies by 5-25% from run to run on these machines).
    #[arg(long, allow_negative_numbers = true, default_value_t = 1, value_parser = whole::<u64>().range(1..=20))]
    pub repeats: u64,
    /// The policy's operating point (`latency`, `balanced`, `throughput` or
    /// a delay weight); default: the policy file's.
    #[arg(long)]
    pub objective: Option<plume_cc::policy::Objective>,
}

/// A duration flag's value in whole milliseconds, `default_ms` if absent.
fn ms_of(d: Option<Duration>, default_ms: u64) -> u64 {
    d.map_or(default_ms, |d| d.as_millis() as u64)
}

/// Writes the Markdown `md`, `data` as JSON and the figure drawn by `plot`
/// into `out` under `names` (Markdown, JSON, PNG), and prints the Markdown
/// and the files written.
fn write_report(
    out: &Path,
    names: [&str; 3],
    md: &str,
    data: &impl serde::Serialize,
    plot: impl FnOnce(&Path) -> Result<(), plume_cc::eval::EvalError>,
) -> anyhow::Result<()> {
    let [md_name, json_name, png_name] = names;
    let md_path = out.join(md_name);
    std::fs::write(&md_path, md).with_context(|| format!("writing {}", md_path.display()))?;
    let json = out.join(json_name);
    std::fs::write(&json, serde_json::to_string_pretty(data)?)
        .with_context(|| format!("writing {}", json.display()))?;
    let png = out.join(png_name);
    plot(&png)?;
    println!("{md}");
    println!(
        "wrote {}, {}, {}",
        md_path.display(),
        json.display(),
        png.display()
    );
    Ok(())
}

/// Runs `plume-cc eval ...`.
pub fn run(cmd: EvalCommand) -> anyhow::Result<()> {
    match cmd {
        EvalCommand::Study(a) => {
            tch::set_num_threads(1);
            let config = plume_cc::eval::study::StudyConfig {
                corpus: a.corpus,
                out: a.out,
                seeds: (0..a.seeds).collect(),
                budgets: a.budgets,
                samplers: a.samplers,
                per_cluster: a.per_cluster,
                competition: a
                    .competition_rule
                    .then(plume_cc::policy::CompetitionRule::default),
            };
            let multi = indicatif::MultiProgress::new();
            let style = |t: &str| {
                indicatif::ProgressStyle::with_template(t)
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> ")
            };
            let runs = multi.add(indicatif::ProgressBar::new(1));
            runs.set_style(style(
                "{elapsed_precise} [{bar:30}] {pos}/{len} runs  {msg}",
            ));
            let bar = multi.add(indicatif::ProgressBar::new(1));
            bar.set_style(style("           [{bar:30}] {pos}/{len} PPO iterations"));
            let mut progress = StudyBar { bar, runs };
            let result = plume_cc::eval::study::run(&config, &mut progress)?;
            progress.runs.finish_and_clear();
            progress.bar.finish_and_clear();
            println!("{}", plume_cc::eval::study::markdown(&result));
            println!(
                "wrote {}/study.md, study.json, study-clusters.png, curves-*.png, weights-*.png",
                config.out.display()
            );
            Ok(())
        }
        EvalCommand::Matrix(a) => {
            if a.windows == 0 {
                super::args::usage_bail!("--windows must be at least 1");
            }
            let window_ms = ms_of(a.window.or(a.window_ms_old), 10_000);
            if window_ms < 1_000 {
                super::args::usage_bail!("--window must be at least 1s, got {window_ms}ms");
            }
            tch::set_num_threads(1);
            let policy = plume_cc::policy::LoadedPolicy::load_or_default(&a.policy)?;
            let objective = a.objective.unwrap_or(policy.metadata().default_objective);
            let windows = if a.validation {
                plume_cc::eval::matrix::validation_windows(&a.traces, window_ms, a.windows)?
            } else {
                plume_cc::eval::matrix::heldout_windows(&a.traces, window_ms, a.windows)?
            };
            let refs: Vec<&plume_cc::rl::env::SimWindow> = windows.iter().collect();
            let total = plume_cc::eval::matrix::RTTS_MS.len()
                * plume_cc::eval::matrix::BUFFERS_BDP.len()
                * plume_cc::eval::matrix::COMPETITION.len();
            let bar = indicatif::ProgressBar::new(total as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30}] {pos}/{len} cells  {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            let cells = plume_cc::eval::matrix::run(
                &policy,
                objective,
                plume_cc::eval::matrix::SimModels {
                    clamp: a.sim_clamp,
                    datapath: a.sim_datapath,
                    timeout: a.sim_rto,
                    min_rtt: a.sim_min_rtt,
                    cc_model: a.sim_cc,
                },
                &refs,
                &mut |c| {
                    bar.set_message(format!(
                        "RTT {} ms, {} BDP, vs {}",
                        c.rtt_ms, c.buffer_bdp, c.competitor
                    ));
                    bar.inc(1);
                },
            )?;
            bar.finish();
            std::fs::create_dir_all(&a.out)
                .with_context(|| format!("creating {}", a.out.display()))?;
            let md = plume_cc::eval::matrix::markdown(
                &cells,
                &a.policy.display().to_string(),
                objective,
                refs.len(),
            );
            write_report(
                &a.out,
                ["matrix.md", "matrix.json", "matrix.png"],
                &md,
                &cells,
                |png| plume_cc::eval::plot::matrix_heatmap(png, &cells),
            )
        }
        EvalCommand::SimToReal(a) => {
            if !(a.tolerance > 0.0 && a.tolerance < 10.0) {
                super::args::usage_bail!("--tolerance {} must be in (0, 10)", a.tolerance);
            }
            // SAFETY: geteuid has no preconditions.
            if !a.sim_only && unsafe { libc::geteuid() } != 0 {
                bail!("the emulator side needs root (network namespaces, TUN, BPF); pass --sim-only for the simulator alone");
            }
            let cfg = SimToRealConfig {
                traces: plume_cc::trace::trace_files(&a.traces)?,
                windows: a.windows,
                window_ms: ms_of(a.window.or(a.window_ms_old), 30_000),
                delay_ms: ms_of(a.delay.or(a.delay_ms_old), 20),
                queue_packets: a.queue_packets,
                policy: a.policy,
                tolerance: a.tolerance,
                out: a.out,
                iperf3: a.iperf3,
                plume_exe: std::env::current_exe().context("locating plume-cc itself")?,
                sim_only: a.sim_only,
                delayed_ack: a.sim_delayed_ack,
                clamp_model: a.sim_clamp,
                datapath_model: a.sim_datapath,
                timeout_model: a.sim_rto,
                min_rtt_sample: a.sim_min_rtt,
                cc_model: a.sim_cc,
                objective: a.objective,
                repeats: a.repeats as usize,
            };
            std::fs::create_dir_all(&cfg.out)
                .with_context(|| format!("creating {}", cfg.out.display()))?;
            if !cfg.sim_only {
                super::bench::stop_on_signals();
            }
            let results = sim_to_real::run(&cfg, &mut |line| eprintln!("{line}"))?;
            let md = sim_to_real::markdown(&cfg, &results);
            write_report(
                &cfg.out,
                ["report.md", "results.json", "series.png"],
                &md,
                &results,
                |png| plume_cc::eval::plot::series(png, &results),
            )?;
            if plume_cc::bench::cancel::requested() {
                let measured = results.iter().filter(|r| r.error.is_none()).count();
                return Err(plume_cc::bench::BenchError::Cancelled {
                    run: format!(
                        "sim-to-real ({measured} of {} windows measured; their report is in {})",
                        cfg.windows,
                        cfg.out.display()
                    ),
                }
                .into());
            }
            if !cfg.sim_only {
                let failed = results.iter().filter(|r| !r.passes(cfg.tolerance)).count();
                if failed > 0 {
                    bail!(
                        "{failed} of {} windows differ by more than {:.0}% between the simulator and the kernel",
                        results.len(),
                        cfg.tolerance * 100.0
                    );
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_steps, StepsError};

    #[test]
    fn step_counts_take_k_and_m_and_refuse_fractions() {
        assert_eq!(parse_steps("300000"), Ok(300_000));
        assert_eq!(parse_steps("300k"), Ok(300_000));
        assert_eq!(parse_steps("3M"), Ok(3_000_000));
        assert_eq!(parse_steps("1.5k"), Ok(1_500));
        assert_eq!(
            parse_steps("1.5"),
            Err(StepsError::OutOfRange { text: "1.5".into() })
        );
        assert_eq!(
            parse_steps("0"),
            Err(StepsError::OutOfRange { text: "0".into() })
        );
        assert_eq!(
            parse_steps("lots"),
            Err(StepsError::NotANumber {
                text: "lots".into()
            })
        );
    }
}
