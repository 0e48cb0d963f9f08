//! `plume-cc policy derive`: argument parsing and printing.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};

use super::args::{number, whole};
use plume_cc::policy::derive::{derive, Derivation};
use plume_cc::policy::Objective;

/// `plume-cc policy` subcommands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Write a policy with the same weights as another and a changed action
    /// mapping: the spans (how far the policy may move the clamp and the
    /// pacing cap from the fixed rule), the default operating point, the
    /// competition rule, and how flows share a link (the additive term, a
    /// min RTT shared per address, the rate anchor window's floor). The
    /// change is recorded in the new policy.json
    /// (`training.derived`), so the training command and this one rebuild
    /// the file.
    Derive(DeriveArgs),
}

/// On or off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    /// Turned on.
    On,
    /// Turned off.
    Off,
}

/// How the competition rule's probes drain the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Drain {
    /// A clamp of half a BDP (also sets ssthresh).
    Clamp,
    /// A pacing cap of half the rate (cwnd and ssthresh untouched).
    Pacing,
}

/// Arguments of `plume-cc policy derive`.
#[derive(Debug, Args)]
pub struct DeriveArgs {
    /// The source policy (a folder or NAME.json).
    #[arg(long)]
    pub from: PathBuf,
    /// A new folder for the derived policy (refused if it holds one).
    #[arg(long)]
    pub out: PathBuf,
    /// Both spans, octaves either side of action 0 (0.05-4; trained: 2).
    #[arg(long, allow_negative_numbers = true, value_name = "OCTAVES", value_parser = number::<f32>())]
    pub spans: Option<f32>,
    /// The default operating point (`latency`, `balanced`, `throughput` or
    /// a delay weight).
    #[arg(long, value_parser = |s: &str| Objective::parse(s).map_err(|e| e.to_string()))]
    pub objective: Option<Objective>,
    /// The competition rule (drain probes and a competitive mode).
    #[arg(long, value_enum)]
    pub competition_rule: Option<Switch>,
    /// How the rule's probes drain the queue: `clamp` (a low clamp, which
    /// also sets ssthresh) or `pacing` (a low pacing cap; cwnd and ssthresh
    /// stay the base's). Needs the rule.
    #[arg(long, value_enum)]
    pub competition_drain: Option<Drain>,
    /// In the rule's competitive mode, a clamp of this many BDPs over the
    /// min RTT (the anchor's rate rounded up to a power of two) instead of
    /// no limits, so that a false detection on an unlimited buffer cannot
    /// grow a queue of seconds (1-64; 0: none). Needs the rule.
    #[arg(long, allow_negative_numbers = true, value_name = "BDPS", value_parser = number::<f32>())]
    pub competitive_ceiling: Option<f32>,
    /// A probe of the rule sends at this share of the flow's rate (0.25-0.9;
    /// files without it: 0.5). Higher loses less throughput per probe when
    /// the flow is alone, and the probe lasts longer. Needs the rule.
    #[arg(long, allow_negative_numbers = true, value_name = "SHARE", value_parser = number::<f32>())]
    pub competition_drain_gain: Option<f32>,
    /// In the rule's competitive mode, once the flow loses at least 1% of
    /// what it delivers (a competitor that does not back off on loss, such
    /// as BBR), the flow runs this kernel controller instead of the
    /// policy's base, until a probe drains. Needs the rule.
    #[arg(long, value_enum, value_name = "CC")]
    pub competitive_controller: Option<plume_cc::congestion::ControllerKind>,
    /// Segments added to every clamp, and as many per min RTT to the pacing
    /// cap (0-64; 0: none): an additive increase, so that flows whose
    /// clamps bind converge to equal shares.
    #[arg(long, allow_negative_numbers = true, value_name = "SEGMENTS", value_parser = number::<f32>())]
    pub additive_segments: Option<f32>,
    /// The daemon takes each IPv4 flow's min RTT as the smallest of the
    /// flows to the same address, so that a flow that started behind a
    /// queue does not count the queue as its path.
    #[arg(long, value_enum)]
    pub path_min_rtt: Option<Switch>,
    /// The rate anchor's window is at least this many ms on the daemon
    /// (0: the built-in 10 s; at most 60000).
    #[arg(long, allow_negative_numbers = true, value_name = "MS", value_parser = whole::<u32>())]
    pub anchor_floor_ms: Option<u32>,
    /// After a loss the datapath holds the clamp in force instead of
    /// writing one that would restart slow start (TCP_BPF_SNDCWND_CLAMP
    /// also sets ssthresh), until the window reaches the new clamp.
    #[arg(long, value_enum)]
    pub hold_clamp_after_loss: Option<Switch>,
    /// With the hold on: the longest a held clamp waits, in the flow's
    /// smoothed RTTs, before it is written anyway (0: no bound; at most
    /// 1000).
    #[arg(long, value_name = "SRTTS", value_parser = whole::<u32>())]
    pub hold_clamp_max_srtts: Option<u32>,
}

/// Runs a `plume-cc policy` subcommand.
pub fn run(cmd: PolicyCommand) -> anyhow::Result<()> {
    match cmd {
        PolicyCommand::Derive(a) => {
            let d = Derivation {
                spans: a.spans,
                default_objective: a.objective,
                competition_rule: a.competition_rule.map(|s| s == Switch::On),
                additive_segments: a.additive_segments,
                path_min_rtt: a.path_min_rtt.map(|s| s == Switch::On),
                anchor_window_floor_ms: a.anchor_floor_ms,
                hold_clamp_after_loss: a.hold_clamp_after_loss.map(|s| s == Switch::On),
                hold_clamp_max_srtts: a.hold_clamp_max_srtts,
                competition_drain_by_pacing: a.competition_drain.map(|d| d == Drain::Pacing),
                competitive_ceiling: a.competitive_ceiling,
                competition_drain_gain: a.competition_drain_gain,
                competitive_cc: a.competitive_controller,
            };
            let meta = derive(&a.from, &a.out, &d).with_context(|| {
                format!(
                    "deriving a policy from {} into {}",
                    a.from.display(),
                    a.out.display()
                )
            })?;
            println!(
                "wrote {} (weights {}, unchanged): {}",
                a.out.display(),
                &meta.weights_sha256[..meta.weights_sha256.len().min(8)],
                d.describe()
            );
            Ok(())
        }
    }
}
