//! `plume-cc explain fit|run`: argument parsing and printing.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use super::args::{number, whole, DurationArg};
use plume_cc::explain::fit::{fidelity_table, FitOptions, FitProgress};
use plume_cc::explain::offline::{explain_window, plot, write_csv, OfflinePath};
use plume_cc::explain::predictor::{load_predictors, predictor_paths, DelayTarget};
use plume_cc::explain::Horizon;
use plume_cc::policy::LoadedPolicy;

/// `plume-cc explain` subcommands.
#[derive(Debug, Subcommand)]
pub enum ExplainCommand {
    /// Fit the explanation predictors of a policy (one small network per
    /// reward component: throughput, queueing delay, loss) on simulator
    /// rollouts branched into contrasting actions, report their held-out
    /// fidelity, and store them beside the policy (or in --out).
    Fit(FitArgs),
    /// Explain every decision of one trace window replayed in the
    /// simulator: explain.csv and explain.png in --out.
    Run(RunArgs),
}

/// Arguments of `plume-cc explain fit`.
#[derive(Debug, Args)]
pub struct FitArgs {
    /// The policy (folder, NAME.json, or `default`, which needs --out).
    #[arg(long, default_value = "default")]
    pub policy: PathBuf,
    /// The training corpus (the held-out split of `plume-cc train` is kept
    /// for the fidelity).
    #[arg(long)]
    pub traces: PathBuf,
    /// Folder to write explain.json + explain.safetensors into [default:
    /// beside the policy].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Training decisions (episodes), each branched into 3 actions.
    #[arg(long, allow_negative_numbers = true, default_value_t = FitOptions::default().decisions, value_parser = whole::<usize>())]
    pub decisions: usize,
    /// Held-out decisions for the fidelity.
    #[arg(long, allow_negative_numbers = true, default_value_t = FitOptions::default().heldout_decisions, value_parser = whole::<usize>())]
    pub heldout_decisions: usize,
    /// Epochs over the training samples.
    #[arg(long, allow_negative_numbers = true, default_value_t = FitOptions::default().epochs, value_parser = whole::<usize>())]
    pub epochs: usize,
    /// Hidden layer widths of every component's network, e.g. 128,128.
    #[arg(long, allow_negative_numbers = true, value_delimiter = ',', default_values_t = FitOptions::default().hidden, value_parser = whole::<usize>())]
    pub hidden: Vec<usize>,
    /// The networks also read the flow's own past beyond the observation
    /// (discounted means and peaks of its queue, delivery and
    /// retransmissions, its age), which the daemon tracks per flow; `false`
    /// fits on the observation alone, as predictors fit before the option.
    #[arg(long, default_value_t = FitOptions::default().past, action = clap::ArgAction::Set)]
    pub past: bool,
    /// Seed of the episodes and the networks.
    #[arg(long, allow_negative_numbers = true, default_value_t = 0, value_parser = whole::<u64>())]
    pub seed: u64,
    /// Weight of the contrast loss (the error of the predicted differences
    /// between a decision's alternatives).
    #[arg(long, allow_negative_numbers = true, default_value_t = FitOptions::default().difference_weight, value_parser = number::<f32>())]
    pub difference_weight: f32,
    /// Monotone heads: the predicted effect of a larger clamp always has
    /// the expected sign (more throughput, more queueing, more loss), only
    /// its size is learned.
    #[arg(long)]
    pub monotone: bool,
    /// What the delay network predicts: the return and the mean as they
    /// are (direct), divided by their known scales, the delay weight and
    /// the min RTT (scaled), or that and ln(1 + x) (scaled-log).
    #[arg(long, value_enum, default_value_t = FitOptions::default().delay_target)]
    pub delay_target: DelayTarget,
    /// Count the reward's clip in the delay component (it binds only on
    /// deep queues, and cuts only delay penalty); `false` explains the
    /// unclipped delay penalty, as predictors fit before the option did.
    #[arg(long, default_value_t = FitOptions::default().delay_counts_clip, action = clap::ArgAction::Set)]
    pub delay_clip: bool,
    /// Intervals a contrasting clamp is held before the policy decides
    /// again (at most the horizon).
    #[arg(long, allow_negative_numbers = true, default_value_t = Horizon::default().hold, value_parser = whole::<usize>())]
    pub hold: usize,
    /// Intervals of the returns (the horizon).
    #[arg(long, allow_negative_numbers = true, default_value_t = Horizon::default().steps, value_parser = whole::<usize>())]
    pub horizon: usize,
    /// Window (episode) length [default: 10s]; the split is that of a
    /// training run with the same window.
    #[arg(long, value_name = "DURATION", value_parser = DurationArg::new())]
    pub window: Option<Duration>,
    /// Print only the fit's metadata (with the fidelity) as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `plume-cc explain run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The policy (folder, NAME.json, or `default`, which needs --predictors).
    #[arg(long, default_value = "default")]
    pub policy: PathBuf,
    /// Folder of the predictors [default: beside the policy].
    #[arg(long)]
    pub predictors: Option<PathBuf>,
    /// A Mahimahi trace file.
    #[arg(long)]
    pub trace: PathBuf,
    /// Start of the window in the trace [default: 0s].
    #[arg(long, value_name = "DURATION", value_parser = DurationArg::new())]
    pub start: Option<Duration>,
    /// Window length [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = DurationArg::new())]
    pub window: Option<Duration>,
    /// Min RTT of the path [default: 40ms].
    #[arg(long, value_name = "DURATION", value_parser = DurationArg::new())]
    pub rtt: Option<Duration>,
    /// Droptail buffer in BDPs of the window's mean capacity.
    #[arg(long, allow_negative_numbers = true, default_value_t = 2.0, value_parser = number::<f64>())]
    pub buffer_bdp: f64,
    /// The operating point; default: the policy file's.
    #[arg(long)]
    pub objective: Option<plume_cc::policy::Objective>,
    /// Seed of the simulator.
    #[arg(long, allow_negative_numbers = true, default_value_t = 0, value_parser = whole::<u64>())]
    pub seed: u64,
    /// Output folder (explain.csv, explain.png).
    #[arg(long, default_value = "runs/explain")]
    pub out: PathBuf,
    /// Print only the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

struct Bar(ProgressBar);

impl FitProgress for Bar {
    fn stage(&mut self, name: &str, total: u64) {
        self.0.set_position(0);
        self.0.set_length(total);
        self.0.set_message(name.to_string());
    }
    fn advance(&mut self, n: u64) {
        self.0.inc(n);
    }
}

/// Runs `plume-cc explain ...`.
pub fn run(cmd: ExplainCommand) -> anyhow::Result<()> {
    match cmd {
        ExplainCommand::Fit(a) => {
            let (json, weights) = predictor_paths(&a.policy, a.out.as_deref())?;
            let window_ms = a.window.map_or(10_000, |d| d.as_millis() as u64);
            if !(1_000..=600_000).contains(&window_ms) {
                super::args::usage_bail!("--window must be in [1s, 10min], got {window_ms}ms");
            }
            let opts = FitOptions {
                decisions: a.decisions,
                heldout_decisions: a.heldout_decisions,
                epochs: a.epochs,
                hidden: a.hidden.clone(),
                past: a.past,
                seed: a.seed,
                difference_weight: a.difference_weight,
                monotone: a.monotone,
                delay_target: a.delay_target,
                delay_counts_clip: a.delay_clip,
                horizon: Horizon {
                    hold: a.hold,
                    steps: a.horizon,
                    ..Horizon::default()
                },
                command: std::env::args().collect::<Vec<_>>().join(" "),
                ..FitOptions::default()
            };
            opts.validate()?;
            tch::set_num_threads(1);
            let policy = LoadedPolicy::load_or_default(&a.policy)?;
            let corpus = plume_cc::rl::corpus::prepare_corpus(&a.traces, window_ms, 5)
                .with_context(|| format!("preparing the corpus {}", a.traces.display()))?;
            let bar = ProgressBar::new(1);
            bar.set_style(
                ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            let mut progress = Bar(bar);
            let mut p = plume_cc::explain::fit::fit(&policy, &corpus, &opts, &mut progress)?;
            progress.0.finish_and_clear();
            p.save(&json, &weights)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(p.metadata())?);
            } else {
                let m = p.metadata();
                println!(
                    "fit {} decisions ({} samples) in {:.0} s; predictors in {}",
                    m.fit.decisions,
                    m.fit.samples,
                    m.fit.seconds,
                    json.display()
                );
                print!("{}", fidelity_table(&m.fidelity));
            }
        }
        ExplainCommand::Run(a) => {
            let policy = LoadedPolicy::load_or_default(&a.policy)?;
            let predictors = load_predictors(&policy, &a.policy, a.predictors.as_deref())?;
            let start_ms = a.start.map_or(0, |d| d.as_millis() as u64);
            let window_ms = a.window.map_or(10_000, |d| d.as_millis() as u64);
            if !(1_000..=600_000).contains(&window_ms) {
                super::args::usage_bail!("--window must be in [1s, 10min], got {window_ms}ms");
            }
            let rtt_ms = a.rtt.map_or(40.0, |d| d.as_secs_f64() * 1000.0);
            if !(1.0..=1000.0).contains(&rtt_ms) {
                super::args::usage_bail!("--rtt must be in [1ms, 1s], got {rtt_ms}ms");
            }
            if !(a.buffer_bdp.is_finite() && (0.05..=100.0).contains(&a.buffer_bdp)) {
                super::args::usage_bail!(
                    "--buffer-bdp must be in [0.05, 100], got {}",
                    a.buffer_bdp
                );
            }
            let trace = plume_cc::trace::mahimahi::MahimahiTrace::read(&a.trace)?;
            let window =
                plume_cc::rl::env::SimWindow::cut(trace.timestamps_ms(), start_ms, window_ms)
                    .with_context(|| {
                        format!(
                            "{}: no delivery opportunity in [{start_ms}, {}) ms",
                            a.trace.display(),
                            start_ms + window_ms
                        )
                    })?;
            tch::set_num_threads(1);
            let path = OfflinePath {
                rtt_ms,
                buffer_bdp: a.buffer_bdp,
                objective: a.objective.unwrap_or(policy.metadata().default_objective),
            };
            let (rows, summary) = explain_window(&policy, &predictors, &window, &path, a.seed)?;
            std::fs::create_dir_all(&a.out)
                .with_context(|| format!("creating {}", a.out.display()))?;
            let csv = a.out.join("explain.csv");
            write_csv(&csv, &rows)?;
            let png = a.out.join("explain.png");
            let name = a
                .trace
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().to_string());
            plot(&png, &rows, &format!("{name} @ {start_ms} ms"))?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                println!(
                    "{} decisions explained; {} and {}",
                    summary.decisions,
                    csv.display(),
                    png.display()
                );
                println!(
                    "R² of the policy-action predictions over the {} decisions with a whole horizon: throughput {:.3} ({:.3} in Mbit/s), delay {:.3} ({:.3} in ms), loss {:.3}",
                    summary.whole_horizon,
                    summary.r2_reward[0],
                    summary.r2_physical[0],
                    summary.r2_reward[1],
                    summary.r2_physical[1],
                    summary.r2_reward[2]
                );
            }
        }
    }
    Ok(())
}
