//! `plume-cc traces ...`: write synthetic traces and analyse a trace folder
//! with the Plume pipeline. The only place in `trace`/`plume` that touches
//! the terminal, the clock (for timings) and `anyhow`.
use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::args::{number, positive_f64, usage_bail, whole, DurationArg};
use plume_cc::args::BareUnit;
use plume_cc::plume::{
    analysis::{analyze_with_paths, AnalysisParams, PathStats, Stage},
    features::path_features,
    plot::draw_figure,
};
use plume_cc::trace::{
    scenario_corpus,
    synth::{write_preset_set, SynthKind, SynthSpec},
    Corpus, WindowSpec,
};

/// The `traces` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum TracesCommand {
    /// Write a seeded synthetic trace (Mahimahi format), or the repository's
    /// preset set with `--preset-set DIR`.
    Synth {
        /// Generator.
        #[arg(long, value_enum, default_value = "lte")]
        kind: SynthKind,
        /// Nominal rate in Mbps (positive).
        #[arg(long, default_value = "6", allow_negative_numbers = true, value_parser = positive_f64("--mbps 6"))]
        mbps: f64,
        /// Length (period) of the trace, e.g. 60s, 1500ms, 2m.
        #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = DurationArg::legacy(BareUnit::Ms))]
        duration: Duration,
        /// RNG seed.
        #[arg(long, allow_negative_numbers = true, default_value_t = 0, value_parser = whole::<u64>())]
        seed: u64,
        /// Output folder (required unless --preset-set): the trace is
        /// written there as `KIND-MBPSmbps-DURATION-seedSEED.trace`. A path
        /// with an extension that is not a folder (`--out up.trace`) is
        /// still taken as the file to write, for one release.
        #[arg(long, short, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Write the fixed preset set (as in traces/synthetic/) into this folder.
        #[arg(long, conflicts_with = "out")]
        preset_set: Option<PathBuf>,
    },
    /// Write a skewed scenario corpus: windows of the public traces (and of
    /// a constant-rate generator), each with its path (min RTT, buffer,
    /// loss, competing flows, ACK path), drawn from a mix of common and rare
    /// kinds (docs/TRAINING.md, "The scenario corpus").
    Scenarios {
        /// Folder of public Mahimahi traces the windows are cut from.
        #[arg(long)]
        sources: PathBuf,
        /// The mix: `default` (85% common, 3% each rare kind) or a JSON file.
        #[arg(long, default_value = "default")]
        mix: String,
        /// Windows to write.
        #[arg(long, allow_negative_numbers = true, default_value_t = 1000, value_parser = whole::<usize>())]
        windows: usize,
        /// Seed of every draw.
        #[arg(long, allow_negative_numbers = true, default_value_t = 0, value_parser = whole::<u64>())]
        seed: u64,
        /// Output folder (must not exist, or be empty).
        #[arg(long)]
        out: PathBuf,
    },
    /// Cut a folder of traces into windows, select critical features, cluster
    /// them and write report.json, model.json and clusters.png. A scenario
    /// corpus (`traces scenarios`) is analysed with its path features, one
    /// window per file.
    Analyze {
        /// Folder of Mahimahi trace files, one trace file, or a scenario
        /// corpus.
        dir: PathBuf,
        /// Window (episode) length, e.g. 30s.
        #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = DurationArg::legacy(BareUnit::Ms))]
        window: Duration,
        /// Distance between window starts (default: the window length).
        #[arg(long, value_name = "DURATION", value_parser = DurationArg::legacy(BareUnit::Ms))]
        stride: Option<Duration>,
        /// Capacity bin width.
        #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = DurationArg::legacy(BareUnit::Ms))]
        bin: Duration,
        /// Offset of the first window (a duration); `random` draws one from the seed.
        #[arg(long, default_value = "0ms")]
        offset: String,
        /// Seed of every random choice.
        #[arg(long, allow_negative_numbers = true, default_value_t = 0, value_parser = whole::<u64>())]
        seed: u64,
        /// Random starts per Gaussian mixture.
        #[arg(long, allow_negative_numbers = true, default_value_t = 75, value_parser = whole::<usize>())]
        starts: usize,
        /// Smallest number of clusters tried.
        #[arg(long, allow_negative_numbers = true, default_value_t = 6, value_parser = whole::<usize>())]
        k_min: usize,
        /// Largest number of clusters tried.
        #[arg(long, allow_negative_numbers = true, default_value_t = 15, value_parser = whole::<usize>())]
        k_max: usize,
        /// Reject a k whose smallest cluster holds less than this share.
        #[arg(long, allow_negative_numbers = true, default_value_t = 0.02, value_parser = number::<f64>())]
        min_cluster_fraction: f64,
        /// Fit the mixtures, trees and silhouettes on at most this many
        /// windows (a seeded random sample); every window gets its
        /// memberships.
        #[arg(long, allow_negative_numbers = true, default_value_t = plume_cc::plume::analysis::DEFAULT_FIT_SAMPLE, value_parser = whole::<usize>())]
        fit_sample: usize,
        /// Folder to write report.json, model.json and clusters.png into
        /// (`--out-dir` is the old spelling).
        #[arg(
            long = "out",
            visible_alias = "out-dir",
            value_name = "DIR",
            default_value = "plume-analysis"
        )]
        out_dir: PathBuf,
    },
}

/// A duration flag's value as whole milliseconds, which traces and windows
/// are cut in: a fraction of a millisecond is refused, naming the flag.
pub fn whole_ms(flag: &str, d: Duration) -> anyhow::Result<u64> {
    if !d.subsec_nanos().is_multiple_of(1_000_000) || d.as_millis() > 1_000_000_000_000 {
        usage_bail!("{flag} {d:?}: must be a whole number of milliseconds up to 1e12 ms");
    }
    Ok(d.as_millis() as u64)
}

/// Where `traces synth --out PATH` writes: into PATH when it is a folder
/// (or has no extension), else (the old spelling) to the file PATH itself,
/// with a deprecation warning.
fn synth_target(out: &Path, file_name: &str) -> anyhow::Result<PathBuf> {
    if out.is_dir() || out.extension().is_none() {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        return Ok(out.join(file_name));
    }
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty());
    super::args::deprecated(
        &format!("traces synth --out {}", out.display()),
        &format!(
            "traces synth --out {} (a folder; the file is named {file_name})",
            parent.map_or(".".into(), |p| p.display().to_string())
        ),
    );
    Ok(out.to_path_buf())
}

/// Runs a `traces` subcommand.
pub fn run(cmd: TracesCommand) -> anyhow::Result<()> {
    match cmd {
        TracesCommand::Scenarios {
            sources,
            mix,
            windows,
            seed,
            out,
        } => {
            let mix = if mix == "default" {
                scenario_corpus::Mix::default_mix()
            } else {
                scenario_corpus::Mix::load(Path::new(&mix))?
            };
            mix.validate()?;
            let traces = Corpus::read_dir(&sources)?;
            let bar = ProgressBar::new(windows as u64);
            bar.set_style(
                ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} windows")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            let m = scenario_corpus::generate(
                &mix,
                &traces,
                &sources,
                windows,
                seed,
                &out,
                &mut |i| bar.set_position(i as u64),
            )?;
            bar.finish_and_clear();
            println!(
                "wrote {} windows of {} ms to {}",
                m.windows,
                m.mix.window_ms,
                out.display()
            );
            for (kind, n) in &m.counts {
                println!(
                    "  {kind:<18} {n:>6} ({:>5.1}%), {} held out",
                    100.0 * *n as f64 / m.windows as f64,
                    m.heldout_counts.get(kind).copied().unwrap_or(0)
                );
            }
            Ok(())
        }
        TracesCommand::Synth {
            kind,
            mbps,
            duration,
            seed,
            out,
            preset_set: preset,
        } => {
            if let Some(dir) = preset {
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                for path in write_preset_set(&dir)? {
                    println!("wrote {}", path.display());
                }
                return Ok(());
            }
            let Some(out) = out else {
                usage_bail!("traces synth: give --out DIR or --preset-set DIR");
            };
            let duration_ms = whole_ms("--duration", duration)?;
            let spec = SynthSpec {
                kind,
                mbps,
                duration_ms,
            };
            let kind_name = clap::ValueEnum::to_possible_value(&kind)
                .map_or_else(|| format!("{kind:?}"), |v| v.get_name().to_string());
            let out = synth_target(
                &out,
                &format!("{kind_name}-{mbps}mbps-{duration_ms}ms-seed{seed}.trace"),
            )?;
            let trace = spec.generate(&mut ChaCha8Rng::seed_from_u64(seed))?;
            trace.write(&out)?;
            println!(
                "wrote {} ({:.2} Mbps mean over {} ms)",
                out.display(),
                trace.mean_mbps(),
                trace.period_ms()
            );
            Ok(())
        }
        TracesCommand::Analyze {
            dir,
            window,
            stride,
            bin,
            offset,
            seed,
            starts,
            k_min,
            k_max,
            min_cluster_fraction,
            fit_sample,
            out_dir,
        } => {
            let length_ms = whole_ms("--window", window)?;
            let spec = WindowSpec {
                length_ms,
                stride_ms: stride
                    .map(|d| whole_ms("--stride", d))
                    .transpose()?
                    .unwrap_or(length_ms),
                bin_ms: whole_ms("--bin", bin)?,
            };
            spec.validate(&dir)?;
            let offset_ms = if offset == "random" {
                spec.random_offset(&mut ChaCha8Rng::seed_from_u64(seed))
            } else {
                let (d, new) = plume_cc::args::parse_legacy(&offset, plume_cc::args::BareUnit::Ms)
                    .map_err(|e| anyhow::anyhow!("--offset: {e}"))?;
                if let Some(new) = new {
                    super::args::deprecated(
                        &format!("--offset {offset}"),
                        &format!("--offset {new}"),
                    );
                }
                whole_ms("--offset", d)?
            };
            let mut params = AnalysisParams::with_starts(seed, starts.max(1));
            params.cluster.k_min = k_min;
            params.cluster.k_max = k_max;
            params.cluster.min_cluster_fraction = min_cluster_fraction;
            if fit_sample < 20 {
                usage_bail!("--fit-sample must be at least 20, got {fit_sample}");
            }
            params.fit_sample = fit_sample;
            analyze_dir(&dir, spec, offset_ms, &params, &out_dir)
        }
    }
}

fn ms_since(t: Instant) -> f64 {
    (t.elapsed().as_secs_f64() * 1e5).round() / 100.0
}

fn analyze_dir(
    dir: &Path,
    spec: WindowSpec,
    offset_ms: u64,
    params: &AnalysisParams,
    out_dir: &Path,
) -> anyhow::Result<()> {
    let t0 = Instant::now();
    // A scenario corpus: one window per file, each with its path.
    let (corpus, records) = if scenario_corpus::is_scenario_corpus(dir) {
        let (manifest, records) = scenario_corpus::open(dir)?;
        if spec.length_ms != manifest.mix.window_ms || spec.stride_ms != spec.length_ms {
            eprintln!(
                "note: {} is a scenario corpus of {} ms windows; analysing one window per file",
                dir.display(),
                manifest.mix.window_ms
            );
        }
        let spec = WindowSpec {
            length_ms: manifest.mix.window_ms,
            stride_ms: manifest.mix.window_ms,
            bin_ms: spec.bin_ms,
        };
        let corpus = Corpus::from_dir(&dir.join(scenario_corpus::TRACES_DIR), spec, 0)?;
        if corpus.windows.len() != records.len() {
            bail!(
                "{}: {} trace windows but {} path records",
                dir.display(),
                corpus.windows.len(),
                records.len()
            );
        }
        (corpus, Some(records))
    } else {
        (Corpus::from_dir(dir, spec, offset_ms)?, None)
    };
    let spec = corpus.spec;
    let paths = records.as_ref().map(|r| {
        let p: Vec<&scenario_corpus::PathRecord> = r.iter().map(|w| &w.path).collect();
        path_features(&p)
    });
    let load_ms = ms_since(t0);
    let n_k = params.cluster.k_max.saturating_sub(params.cluster.k_min) + 1;
    let bar = ProgressBar::new((1 + params.selection.rounds + n_k) as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {msg:<28} [{bar:30}] {pos}/{len} {elapsed_precise}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(format!("{} windows", corpus.windows.len()));
    let t1 = Instant::now();
    let analysis = analyze_with_paths(&corpus, paths.as_ref(), params, &|stage| {
        bar.inc(1);
        match stage {
            Stage::Features => bar.set_message("features"),
            Stage::SelectionRound(r) => bar.set_message(format!("feature selection {}", r + 1)),
            Stage::KFitted(k) => bar.set_message(format!("mixture k={k}")),
        }
    })?;
    let analysis_ms = ms_since(t1);
    bar.finish_and_clear();

    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let t2 = Instant::now();
    let figure = out_dir.join("clusters.png");
    draw_figure(&figure, &corpus, &analysis)?;
    let figure_ms = ms_since(t2);
    let mut report = analysis.report(&corpus, &dir.display().to_string(), params);
    if let Some(records) = &records {
        for (c, members) in report.clusters.iter_mut().zip(analysis.members()) {
            let rs: Vec<&scenario_corpus::WindowRecord> =
                members.iter().map(|&i| &records[i]).collect();
            c.paths = PathStats::of(&rs);
        }
    }
    report.timing_ms.insert("load_and_window".into(), load_ms);
    report
        .timing_ms
        .insert("features_selection_clustering".into(), analysis_ms);
    report
        .timing_ms
        .insert("load_to_clusters_total".into(), load_ms + analysis_ms);
    report.timing_ms.insert("figure".into(), figure_ms);
    let report_path = out_dir.join("report.json");
    std::fs::write(&report_path, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", report_path.display()))?;
    let model_path = out_dir.join("model.json");
    analysis.model.save(&model_path)?;

    println!(
        "{} traces, {} windows of {} ms at {} ms bins; {} random starts per mixture",
        corpus.traces.len(),
        corpus.windows.len(),
        spec.length_ms,
        spec.bin_ms,
        params.cluster.gmm.n_init
    );
    if corpus.windows.len() > params.fit_sample {
        println!(
            "fitted on a seeded random sample of {} of the {} windows (--fit-sample); silhouettes on that sample; memberships for every window",
            params.fit_sample,
            corpus.windows.len()
        );
    }
    println!("selected features: {}", report.selected_features.join(", "));
    let sil: Vec<String> = report
        .k_scores
        .iter()
        .map(|s| {
            format!(
                "k={}: {}{}",
                s.k,
                s.silhouette.map_or("-".into(), |v| format!("{v:.3}")),
                if s.valid { "" } else { " (small cluster)" }
            )
        })
        .collect();
    println!("silhouette: {}", sil.join(", "));
    println!("chosen k = {}", report.chosen_k);
    for c in &report.clusters {
        let sources: Vec<String> = c.sources.iter().map(|(s, n)| format!("{s}:{n}")).collect();
        let mean = c.capacity.as_ref().map_or(0.0, |s| s.mean_mbps);
        let outage = c.capacity.as_ref().map_or(0.0, |s| s.outage_fraction);
        let detail = match &c.paths {
            Some(p) => {
                let kinds: Vec<String> = p.kinds.iter().map(|(k, n)| format!("{k}:{n}")).collect();
                format!(
                    "RTT {:.0} ms, buffer {:.2} BDP, competitors {:.0}% | {}",
                    p.mean_min_rtt_ms,
                    p.median_buffer_bdp,
                    100.0 * p.with_competitors,
                    kinds.join(" ")
                )
            }
            None => sources.join(" "),
        };
        println!(
            "  cluster {:>2}: {:>3} windows, mean {:>6.2} Mbps, outage {:>5.1}% | {}",
            c.id,
            c.size,
            mean,
            100.0 * outage,
            detail
        );
    }
    println!(
        "timing: load+window {load_ms:.1} ms, features+selection+clustering {analysis_ms:.1} ms, total {:.1} ms (figure {figure_ms:.1} ms, {} threads)",
        load_ms + analysis_ms,
        rayon::current_num_threads()
    );
    println!(
        "wrote {}, {}, {}",
        report_path.display(),
        model_path.display(),
        figure.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_whole_milliseconds() {
        let ms = Duration::from_millis;
        assert_eq!(whole_ms("--window", ms(30_000)).unwrap(), 30_000);
        assert_eq!(whole_ms("--window", Duration::ZERO).unwrap(), 0);
        let e = whole_ms("--bin", Duration::from_micros(500)).unwrap_err();
        assert!(e.to_string().contains("--bin"), "{e}");
        assert!(whole_ms("--window", Duration::from_secs(u64::MAX / 2)).is_err());
    }

    #[test]
    fn synth_out_is_a_folder_and_an_old_file_spelling_still_works() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("traces");
        assert_eq!(
            synth_target(&folder, "a.trace").unwrap(),
            folder.join("a.trace")
        );
        assert!(folder.is_dir());
        let file = dir.path().join("up.trace");
        assert_eq!(synth_target(&file, "a.trace").unwrap(), file);
        assert!(!file.exists());
    }
}
