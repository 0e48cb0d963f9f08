//! A scenario corpus: episode windows, each with its capacity series and
//! its path (min RTT, buffer, loss, competing flows, ACK path), skewed on
//! purpose.
//!
//! Why: Plume's claim is about skewed corpora, where most windows are alike
//! and a few rare kinds are hard. The ten public traces are skewed only in
//! capacity, and every training episode draws its path from one
//! distribution, so a sampler over capacity windows cannot prioritise a
//! rare *path* (a long RTT over a shallow buffer, a CUBIC flow in a deep
//! buffer). A scenario corpus fixes each window's path, so path and
//! capacity together define what is common and what is rare, and a
//! sampler's choice of window is also a choice of path.
//!
//! [`generate`] writes a folder:
//! - `traces/NNNNN-KIND.trace`: each window as a Mahimahi trace of exactly
//!   the window's length (every existing tool reads these);
//! - `paths.jsonl`: one [`WindowRecord`] per trace file, in file order;
//! - `corpus.json`: the [`Manifest`] (mix, seed, counts per kind).
//!
//! The mix ([`Mix`]) weighs built-in kinds ([`Kind`]). The capacity of every
//! kind but `step-down` comes from the public traces (a window cut at a
//! random source window, possibly transformed); `step-down` comes from the
//! project's constant-rate generator. Every fifth window (index 4, 9, ...)
//! is held out, and held-out windows draw their source only from every fifth
//! source window, so no held-out window shares its capacity with a training
//! window.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::corpus::CorpusTrace;
use super::mahimahi::{MahimahiTrace, TraceError, MBPS_PER_PACKET_PER_MS};

/// File of the per-window records.
pub const PATHS_FILE: &str = "paths.jsonl";
/// File of the manifest.
pub const MANIFEST_FILE: &str = "corpus.json";
/// Folder of the window traces.
pub const TRACES_DIR: &str = "traces";
/// Every this many windows one is held out (the trainer's default split).
pub const HOLDOUT_EVERY: usize = 5;
/// Competitor controllers a record may name.
pub const COMPETITOR_KINDS: [&str; 3] = ["cubic", "bbr", "reno"];

/// Errors of a scenario corpus: a bad mix, a bad folder, or trace errors.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioCorpusError {
    /// The mix does not describe a distribution over known kinds.
    #[error("corpus mix: {0}")]
    Mix(String),
    /// The folder is not a usable scenario corpus.
    #[error("{path}: {what}")]
    Folder {
        /// The folder or file concerned.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// Reading or writing a trace failed.
    #[error(transparent)]
    Trace(#[from] TraceError),
}

/// Why a window's path record is outside the ranges the simulator accepts;
/// each names the field and the value found.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PathRecordError {
    /// A number outside its range.
    #[error("{field} must be in {allowed}, got {value}")]
    OutOfRange {
        /// The field (`min_rtt_ms`, `buffer_bdp`, `loss_rate`).
        field: &'static str,
        /// Its range, as written in the message.
        allowed: &'static str,
        /// The value found.
        value: f64,
    },
    /// More competitors than a record may hold.
    #[error("at most {MAX_COMPETITORS} competitors, got {0}")]
    TooManyCompetitors(usize),
    /// A competitor's controller outside [`COMPETITOR_KINDS`].
    #[error("competitor cc {0:?} is not one of {COMPETITOR_KINDS:?}")]
    UnknownCompetitor(String),
}

/// The most competitors one record may hold.
pub const MAX_COMPETITORS: usize = 8;

fn folder_err(path: &Path, what: impl Into<String>) -> ScenarioCorpusError {
    ScenarioCorpusError::Folder {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

/// A competing kernel flow of a window's path.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Competitor {
    /// Its controller, one of [`COMPETITOR_KINDS`].
    pub cc: String,
    /// Its start after the controlled flow's, milliseconds.
    pub start_ms: u64,
}

/// The path of one window (what the simulator needs beyond capacity).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathRecord {
    /// Min RTT (twice the one-way propagation delay), milliseconds.
    pub min_rtt_ms: f64,
    /// Bottleneck buffer in BDPs of the window's mean capacity at
    /// `min_rtt_ms`; `None`: unlimited.
    pub buffer_bdp: Option<f64>,
    /// Random loss rate at the bottleneck's ingress.
    pub loss_rate: f64,
    /// Competing kernel flows.
    pub competitors: Vec<Competitor>,
    /// The ACKs cross the same trace (bursty, as on cellular links).
    pub ack_trace: bool,
    /// The receiver delays its ACKs as Linux's does.
    pub delayed_ack: bool,
}

impl PathRecord {
    /// Checks the ranges the simulator accepts; the error names the field.
    pub fn validate(&self) -> Result<(), PathRecordError> {
        let out = |field, allowed, value| PathRecordError::OutOfRange {
            field,
            allowed,
            value,
        };
        if !(self.min_rtt_ms.is_finite() && (1.0..=2000.0).contains(&self.min_rtt_ms)) {
            return Err(out("min_rtt_ms", "[1, 2000]", self.min_rtt_ms));
        }
        if let Some(b) = self.buffer_bdp {
            if !(b.is_finite() && (0.01..=100.0).contains(&b)) {
                return Err(out("buffer_bdp", "[0.01, 100] or null (unlimited)", b));
            }
        }
        if !(self.loss_rate.is_finite() && (0.0..0.5).contains(&self.loss_rate)) {
            return Err(out("loss_rate", "[0, 0.5)", self.loss_rate));
        }
        if self.competitors.len() > MAX_COMPETITORS {
            return Err(PathRecordError::TooManyCompetitors(self.competitors.len()));
        }
        if let Some(c) = self
            .competitors
            .iter()
            .find(|c| !COMPETITOR_KINDS.contains(&c.cc.as_str()))
        {
            return Err(PathRecordError::UnknownCompetitor(c.cc.clone()));
        }
        Ok(())
    }
}

/// One window of a scenario corpus (one line of `paths.jsonl`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowRecord {
    /// Its trace file, in `traces/`.
    pub file: String,
    /// The kind it was generated as ([`Kind::name`]).
    pub kind: String,
    /// Held out from training.
    pub heldout: bool,
    /// Where its capacity came from (`TRACE@START_MS` or `synth:...`).
    pub source: String,
    /// Mean capacity, Mbit/s.
    pub mean_mbps: f64,
    /// Its path.
    pub path: PathRecord,
}

/// The built-in kinds a mix weighs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A public window as it is, a moderate RTT (20-100 ms), a 1-4 BDP
    /// buffer, one flow.
    Common,
    /// A public window with one or two outages (no opportunity for 1-3 s)
    /// or deep fades (5% of the capacity for 1-3 s).
    Outage,
    /// A public window thinned to a mean of 0.2-0.9 Mbit/s.
    LowRate,
    /// A long RTT (200-400 ms) over a shallow buffer (0.25-0.5 BDP).
    LongRttShallow,
    /// A CUBIC flow in a deep buffer (4-8 BDP), starting within 2 s.
    CubicDeep,
    /// A constant 6-24 Mbit/s link that steps down 10x at 3-7 s.
    StepDown,
}

impl Kind {
    /// Every kind, in the order of the default mix.
    pub const ALL: [Kind; 6] = [
        Kind::Common,
        Kind::Outage,
        Kind::LowRate,
        Kind::LongRttShallow,
        Kind::CubicDeep,
        Kind::StepDown,
    ];

    /// The name used in mixes, records and file names.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Common => "common",
            Kind::Outage => "outage",
            Kind::LowRate => "low-rate",
            Kind::LongRttShallow => "long-rtt-shallow",
            Kind::CubicDeep => "cubic-deep",
            Kind::StepDown => "step-down",
        }
    }

    /// The kind called `name`.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// A corpus mix: window length and the weight of each kind (a JSON file,
/// or [`Mix::default_mix`]). Unknown fields are errors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    /// Window (episode) length, milliseconds.
    pub window_ms: u64,
    /// Weight of each kind, by name; the weights sum to 1.
    pub mix: BTreeMap<String, f64>,
}

impl Mix {
    /// The committed default: 85% common windows, 3% of each rare kind
    /// (inside the 1-5% band), 10 s windows.
    pub fn default_mix() -> Self {
        let mut mix = BTreeMap::new();
        mix.insert(Kind::Common.name().to_string(), 0.85);
        for k in &Kind::ALL[1..] {
            mix.insert(k.name().to_string(), 0.03);
        }
        Self {
            window_ms: 10_000,
            mix,
        }
    }

    /// Reads and validates a mix file.
    pub fn load(path: &Path) -> Result<Self, ScenarioCorpusError> {
        let text = std::fs::read_to_string(path).map_err(|e| TraceError::Io {
            path: path.to_path_buf(),
            action: "read",
            source: e,
        })?;
        let mix: Mix = serde_json::from_str(&text)
            .map_err(|e| ScenarioCorpusError::Mix(format!("{}: {e}", path.display())))?;
        mix.validate()?;
        Ok(mix)
    }

    /// The kinds and their weights, checked: every name known, every weight
    /// in [0, 1], the sum 1 (within 1e-6), the window 1-60 s.
    pub fn validate(&self) -> Result<Vec<(Kind, f64)>, ScenarioCorpusError> {
        if !(1_000..=60_000).contains(&self.window_ms) {
            return Err(ScenarioCorpusError::Mix(format!(
                "window_ms must be in [1000, 60000], got {}",
                self.window_ms
            )));
        }
        let mut out = Vec::new();
        for (name, &w) in &self.mix {
            let kind = Kind::from_name(name).ok_or_else(|| {
                let known: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
                ScenarioCorpusError::Mix(format!(
                    "unknown kind {name:?}; known kinds: {}",
                    known.join(", ")
                ))
            })?;
            if !(w.is_finite() && (0.0..=1.0).contains(&w)) {
                return Err(ScenarioCorpusError::Mix(format!(
                    "weight of {name:?} must be in [0, 1], got {w}"
                )));
            }
            out.push((kind, w));
        }
        let sum: f64 = out.iter().map(|k| k.1).sum();
        if (sum - 1.0).abs() > 1e-6 {
            return Err(ScenarioCorpusError::Mix(format!(
                "the weights sum to {sum}, not 1"
            )));
        }
        out.sort_by_key(|k| k.0);
        Ok(out)
    }
}

/// What a generated corpus holds (`corpus.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The mix it was drawn from.
    pub mix: Mix,
    /// The generator's seed.
    pub seed: u64,
    /// Windows in the corpus.
    pub windows: usize,
    /// Windows per kind.
    pub counts: BTreeMap<String, usize>,
    /// Held-out windows per kind.
    pub heldout_counts: BTreeMap<String, usize>,
    /// The public traces' folder.
    pub sources: String,
}

fn log_uniform(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    (lo.ln() + rng.gen::<f64>() * (hi.ln() - lo.ln())).exp()
}

/// A moderate path: 20-100 ms, 1-4 BDP, no loss, one flow.
fn common_path(rng: &mut ChaCha8Rng) -> PathRecord {
    PathRecord {
        min_rtt_ms: log_uniform(rng, 20.0, 100.0),
        buffer_bdp: Some(log_uniform(rng, 1.0, 4.0)),
        loss_rate: 0.0,
        competitors: Vec::new(),
        ack_trace: rng.gen::<f64>() < 0.3,
        delayed_ack: rng.gen::<f64>() < 0.5,
    }
}

/// Keeps each opportunity of `ts` with probability `p`.
fn thin(ts: &[u64], p: f64, rng: &mut ChaCha8Rng) -> Vec<u64> {
    ts.iter()
        .copied()
        .filter(|_| rng.gen::<f64>() < p)
        .collect()
}

/// One window's capacity (timestamps in `(0, window_ms]`), source and path.
fn draw_window(
    kind: Kind,
    window_ms: u64,
    source: Option<(&str, u64, &[u64])>,
    rng: &mut ChaCha8Rng,
) -> (Vec<u64>, String, PathRecord) {
    let mut path = common_path(rng);
    let (mut ts, src) = match (kind, source) {
        (Kind::StepDown, _) | (_, None) => {
            let mbps = log_uniform(rng, 6.0, 24.0);
            let per_ms = (mbps / MBPS_PER_PACKET_PER_MS).max(1.0 / 8.0);
            // Opportunities every 1/per_ms ms, as the constant generator
            // places them.
            let n = (per_ms * window_ms as f64) as u64;
            let ts: Vec<u64> = (1..=n)
                .map(|i| ((i as f64 / per_ms).ceil() as u64).clamp(1, window_ms))
                .collect();
            (ts, format!("synth:constant@{mbps:.1}mbps"))
        }
        (_, Some((name, start, ts))) => (ts.to_vec(), format!("{name}@{start}")),
    };
    match kind {
        Kind::Common => {}
        Kind::Outage => {
            for _ in 0..rng.gen_range(1..=2u32) {
                let len = rng.gen_range(1_000..=3_000u64).min(window_ms / 2);
                let start = rng.gen_range(0..window_ms - len);
                let fade = rng.gen::<f64>() < 0.5;
                let mut keep = Vec::with_capacity(ts.len());
                for &t in &ts {
                    let inside = t > start && t <= start + len;
                    if !inside || (fade && rng.gen::<f64>() < 0.05) {
                        keep.push(t);
                    }
                }
                ts = keep;
            }
        }
        Kind::LowRate => {
            let mean = ts.len() as f64 * MBPS_PER_PACKET_PER_MS / window_ms as f64;
            let target = rng.gen_range(0.2..0.9);
            if mean > target {
                ts = thin(&ts, target / mean, rng);
            }
        }
        Kind::LongRttShallow => {
            path.min_rtt_ms = log_uniform(rng, 200.0, 400.0);
            path.buffer_bdp = Some(log_uniform(rng, 0.25, 0.5));
        }
        Kind::CubicDeep => {
            path.buffer_bdp = Some(log_uniform(rng, 4.0, 8.0));
            path.competitors = vec![Competitor {
                cc: "cubic".into(),
                start_ms: rng.gen_range(0..=2_000),
            }];
        }
        Kind::StepDown => {
            let at = rng.gen_range(3_000..=7_000u64).min(window_ms * 7 / 10);
            let mut i = 0u64;
            ts.retain(|&t| {
                i += 1;
                t <= at || i.is_multiple_of(10)
            });
        }
    }
    // The window's period is exactly its length (one extra opportunity at
    // the end when needed, as the synthetic generators do).
    if ts.last() != Some(&window_ms) {
        ts.push(window_ms);
    }
    (ts, src, path)
}

/// The source windows of the public traces: (trace index, start) of every
/// non-overlapping window of `window_ms` with at least 0.1 Mbit/s.
fn source_windows(sources: &[CorpusTrace], window_ms: u64) -> Vec<(usize, u64, Vec<u64>)> {
    let mut out = Vec::new();
    for (i, t) in sources.iter().enumerate() {
        let ts = t.trace.timestamps_ms();
        let mut start = 0;
        while start + window_ms <= t.trace.period_ms() {
            let w: Vec<u64> = ts
                .iter()
                .filter(|&&x| x > start && x <= start + window_ms)
                .map(|&x| x - start)
                .collect();
            let mbps = w.len() as f64 * MBPS_PER_PACKET_PER_MS / window_ms as f64;
            if mbps >= 0.1 {
                out.push((i, start, w));
            }
            start += window_ms;
        }
    }
    out
}

/// Draws `windows` windows from `mix` over the public `sources` with `seed`
/// and writes the corpus to `out` (which must not exist or be empty).
/// Nothing is written when the mix or the sources are unusable.
/// `progress(done)` hears every written window.
pub fn generate(
    mix: &Mix,
    sources: &[CorpusTrace],
    sources_dir: &Path,
    windows: usize,
    seed: u64,
    out: &Path,
    progress: &mut dyn FnMut(usize),
) -> Result<Manifest, ScenarioCorpusError> {
    let kinds = mix.validate()?;
    if windows < HOLDOUT_EVERY {
        return Err(ScenarioCorpusError::Mix(format!(
            "need at least {HOLDOUT_EVERY} windows, got {windows}"
        )));
    }
    let src = source_windows(sources, mix.window_ms);
    let needs_public = kinds.iter().any(|(k, w)| *k != Kind::StepDown && *w > 0.0);
    let (train_src, held_src): (Vec<usize>, Vec<usize>) =
        (0..src.len()).partition(|j| j % HOLDOUT_EVERY != HOLDOUT_EVERY - 1);
    if needs_public && (train_src.is_empty() || held_src.is_empty()) {
        return Err(folder_err(
            sources_dir,
            format!(
                "need at least {HOLDOUT_EVERY} source windows of {} ms with >= 0.1 Mbit/s, found {}",
                mix.window_ms,
                src.len()
            ),
        ));
    }
    check_out_is_new(out)?;
    let io = |path: &Path, action: &'static str, e: std::io::Error| {
        ScenarioCorpusError::Trace(TraceError::Io {
            path: path.to_path_buf(),
            action,
            source: e,
        })
    };
    let traces_dir = out.join(TRACES_DIR);
    std::fs::create_dir_all(&traces_dir).map_err(|e| io(&traces_dir, "create", e))?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut records = Vec::with_capacity(windows);
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut heldout_counts: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..windows {
        let u: f64 = rng.gen();
        let mut acc = 0.0;
        let mut kind = kinds.last().map_or(Kind::Common, |k| k.0);
        for &(k, w) in &kinds {
            acc += w;
            if u < acc {
                kind = k;
                break;
            }
        }
        let heldout = i % HOLDOUT_EVERY == HOLDOUT_EVERY - 1;
        let pool = if heldout { &held_src } else { &train_src };
        let source = (!pool.is_empty()).then(|| {
            let (t, start, ts) = &src[pool[rng.gen_range(0..pool.len())]];
            (sources[*t].name.as_str(), *start, ts.as_slice())
        });
        let (ts, source, path) = draw_window(kind, mix.window_ms, source, &mut rng);
        let file = format!("{i:05}-{}.trace", kind.name());
        let fpath = traces_dir.join(&file);
        let trace = MahimahiTrace::from_timestamps(&fpath, ts)?;
        trace.write(&fpath)?;
        let mean_mbps = trace.mean_mbps();
        *counts.entry(kind.name().to_string()).or_default() += 1;
        if heldout {
            *heldout_counts.entry(kind.name().to_string()).or_default() += 1;
        }
        records.push(WindowRecord {
            file,
            kind: kind.name().to_string(),
            heldout,
            source,
            mean_mbps,
            path,
        });
        progress(i + 1);
    }
    let manifest = Manifest {
        mix: mix.clone(),
        seed,
        windows,
        counts,
        heldout_counts,
        sources: sources_dir.display().to_string(),
    };
    write_index(out, &records, &manifest)?;
    Ok(manifest)
}

/// Writes `paths.jsonl` (one record per window, in order) and
/// `corpus.json` into `out`, whose traces are already written.
fn write_index(
    out: &Path,
    records: &[WindowRecord],
    manifest: &Manifest,
) -> Result<(), ScenarioCorpusError> {
    let io = |path: &Path, e: std::io::Error| {
        ScenarioCorpusError::Trace(TraceError::Io {
            path: path.to_path_buf(),
            action: "write",
            source: e,
        })
    };
    let mut lines = String::new();
    for r in records {
        lines.push_str(&serde_json::to_string(r).map_err(|e| folder_err(out, e.to_string()))?);
        lines.push('\n');
    }
    let p = out.join(PATHS_FILE);
    std::fs::write(&p, lines).map_err(|e| io(&p, e))?;
    let p = out.join(MANIFEST_FILE);
    let text =
        serde_json::to_string_pretty(manifest).map_err(|e| folder_err(out, e.to_string()))?;
    std::fs::write(&p, text).map_err(|e| io(&p, e))
}

/// `out` must not exist, or be an empty folder.
fn check_out_is_new(out: &Path) -> Result<(), ScenarioCorpusError> {
    if out.exists()
        && std::fs::read_dir(out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(folder_err(
            out,
            "exists and is not empty; choose a new folder",
        ));
    }
    Ok(())
}

/// One window given to [`write_windows`]: its delivery opportunities
/// (milliseconds in `(0, window_ms]`), and what its record says.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowInput {
    /// Delivery opportunities, non-decreasing, each in `(0, window_ms]`.
    pub timestamps_ms: Vec<u64>,
    /// Its kind (the file name's suffix and the record's `kind`).
    pub kind: String,
    /// Where its capacity came from.
    pub source: String,
    /// Its path.
    pub path: PathRecord,
}

/// Writes windows made elsewhere than [`generate`] (`plume-cc record`
/// turns a host's flows into them) as a scenario corpus that [`open`],
/// `traces analyze` and `train` read like a generated one. The manifest's
/// mix is all `common` (the mix only tells the window length and what the
/// generator drew; these windows were not drawn), `sources` says where
/// they came from. Every fifth window is held out as in [`generate`], and
/// the last one when that leaves none out of two or more, so a training
/// run always has a held-out window to score. Checks everything before
/// writing: no windows, a bad window length, a bad path or a non-empty
/// `out` write nothing.
pub fn write_windows(
    out: &Path,
    window_ms: u64,
    sources: &str,
    windows: Vec<WindowInput>,
) -> Result<Manifest, ScenarioCorpusError> {
    let mut mix = BTreeMap::new();
    mix.insert(Kind::Common.name().to_string(), 1.0);
    let mix = Mix { window_ms, mix };
    mix.validate()?;
    if windows.is_empty() {
        return Err(folder_err(out, "no usable windows to write"));
    }
    for (i, w) in windows.iter().enumerate() {
        w.path
            .validate()
            .map_err(|e| folder_err(out, format!("window {i}: {e}")))?;
        if let Some(t) = w.timestamps_ms.iter().find(|&&t| t == 0 || t > window_ms) {
            return Err(folder_err(
                out,
                format!("window {i}: opportunity at {t} ms is outside (0, {window_ms}]"),
            ));
        }
    }
    check_out_is_new(out)?;
    let traces_dir = out.join(TRACES_DIR);
    std::fs::create_dir_all(&traces_dir).map_err(|e| {
        ScenarioCorpusError::Trace(TraceError::Io {
            path: traces_dir.clone(),
            action: "create",
            source: e,
        })
    })?;
    let n = windows.len();
    let none_held = n < HOLDOUT_EVERY;
    let mut records = Vec::with_capacity(n);
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut heldout_counts: BTreeMap<String, usize> = BTreeMap::new();
    for (i, w) in windows.into_iter().enumerate() {
        let heldout = i % HOLDOUT_EVERY == HOLDOUT_EVERY - 1 || (none_held && n >= 2 && i == n - 1);
        let mut ts = w.timestamps_ms;
        // The window's period is exactly its length, as in `generate`.
        if ts.last() != Some(&window_ms) {
            ts.push(window_ms);
        }
        let file = format!("{i:05}-{}.trace", w.kind);
        let fpath = traces_dir.join(&file);
        let trace = MahimahiTrace::from_timestamps(&fpath, ts)?;
        trace.write(&fpath)?;
        *counts.entry(w.kind.clone()).or_default() += 1;
        if heldout {
            *heldout_counts.entry(w.kind.clone()).or_default() += 1;
        }
        records.push(WindowRecord {
            file,
            kind: w.kind,
            heldout,
            source: w.source,
            mean_mbps: trace.mean_mbps(),
            path: w.path,
        });
    }
    let manifest = Manifest {
        mix,
        seed: 0,
        windows: n,
        counts,
        heldout_counts,
        sources: sources.to_string(),
    };
    write_index(out, &records, &manifest)?;
    Ok(manifest)
}

/// True when `dir` holds a scenario corpus (its `paths.jsonl`).
pub fn is_scenario_corpus(dir: &Path) -> bool {
    dir.join(PATHS_FILE).is_file()
}

/// Reads a scenario corpus: its manifest and its records in file order,
/// each validated. A corpus with no usable window is an error.
pub fn open(dir: &Path) -> Result<(Manifest, Vec<WindowRecord>), ScenarioCorpusError> {
    let read = |name: &str| {
        let p = dir.join(name);
        std::fs::read_to_string(&p).map_err(|e| {
            ScenarioCorpusError::Trace(TraceError::Io {
                path: p,
                action: "read",
                source: e,
            })
        })
    };
    let manifest: Manifest = serde_json::from_str(&read(MANIFEST_FILE)?)
        .map_err(|e| folder_err(&dir.join(MANIFEST_FILE), e.to_string()))?;
    manifest.mix.validate()?;
    let mut records = Vec::new();
    for (n, line) in read(PATHS_FILE)?.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at =
            |what: String| folder_err(&dir.join(PATHS_FILE), format!("line {}: {what}", n + 1));
        let r: WindowRecord = serde_json::from_str(line).map_err(|e| at(e.to_string()))?;
        r.path.validate().map_err(|e| at(e.to_string()))?;
        if !dir.join(TRACES_DIR).join(&r.file).is_file() {
            return Err(at(format!("trace file {} is missing", r.file)));
        }
        records.push(r);
    }
    if records.is_empty() {
        return Err(folder_err(dir, "the corpus has no usable windows"));
    }
    records.sort_by(|a, b| a.file.cmp(&b.file));
    Ok((manifest, records))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(n: usize) -> Vec<CorpusTrace> {
        (0..n)
            .map(|i| {
                // 60 s at 4 opportunities per ms (48 Mbit/s) in bursts.
                let ts: Vec<u64> = (1..=60_000u64).flat_map(|t| [t; 4]).collect();
                CorpusTrace {
                    name: format!("t{i}"),
                    path: PathBuf::from(format!("t{i}")),
                    trace: MahimahiTrace::from_timestamps(format!("t{i}"), ts).unwrap(),
                }
            })
            .collect()
    }

    #[test]
    fn the_mix_proportions_hold_within_sampling_error() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("c");
        let mix = Mix::default_mix();
        let n = 2000;
        let m = generate(&mix, &sources(2), Path::new("src"), n, 7, &out, &mut |_| {}).unwrap();
        assert_eq!(m.counts.values().sum::<usize>(), n);
        for (name, &w) in &mix.mix {
            let got = *m.counts.get(name).unwrap_or(&0) as f64 / n as f64;
            let sd = (w * (1.0 - w) / n as f64).sqrt();
            assert!((got - w).abs() < 4.0 * sd, "{name}: {got} vs {w} (sd {sd})");
        }
        let (m2, recs) = open(&out).unwrap();
        assert_eq!(m2, m);
        assert_eq!(recs.len(), n);
        assert_eq!(recs.iter().filter(|r| r.heldout).count(), n / HOLDOUT_EVERY);
        // Each kind's defining trait holds.
        for r in &recs {
            match Kind::from_name(&r.kind).unwrap() {
                Kind::LowRate => assert!(r.mean_mbps < 1.0, "{}", r.mean_mbps),
                Kind::LongRttShallow => {
                    assert!(r.path.min_rtt_ms >= 200.0 && r.path.buffer_bdp.unwrap() <= 0.5)
                }
                Kind::CubicDeep => {
                    assert_eq!(r.path.competitors.len(), 1);
                    assert!(r.path.buffer_bdp.unwrap() >= 4.0);
                }
                Kind::Common => {
                    assert!(r.path.competitors.is_empty());
                    assert!((20.0..=100.0).contains(&r.path.min_rtt_ms));
                }
                Kind::StepDown => assert!(r.source.starts_with("synth:")),
                Kind::Outage => assert!(r.mean_mbps < 48.0),
            }
            let t = MahimahiTrace::read(out.join(TRACES_DIR).join(&r.file)).unwrap();
            assert_eq!(t.period_ms(), 10_000);
        }
        // Same seed, same corpus.
        let out2 = dir.path().join("d");
        generate(
            &mix,
            &sources(2),
            Path::new("src"),
            n,
            7,
            &out2,
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(
            std::fs::read(out.join(PATHS_FILE)).unwrap(),
            std::fs::read(out2.join(PATHS_FILE)).unwrap()
        );
    }

    #[test]
    fn bad_mixes_and_folders_name_the_cause_and_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("c");
        let mut m = Mix::default_mix();
        m.mix.insert("common".into(), 0.5);
        let e = generate(&m, &sources(1), Path::new("s"), 10, 1, &out, &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("sum to 0.65"), "{e}");
        assert!(!out.exists());
        let mut m = Mix::default_mix();
        m.mix.insert("wifi".into(), 0.0);
        let e = m.validate().unwrap_err().to_string();
        assert!(
            e.contains("unknown kind \"wifi\"") && e.contains("step-down"),
            "{e}"
        );
        let e = generate(
            &Mix::default_mix(),
            &[],
            Path::new("s"),
            10,
            1,
            &out,
            &mut |_| {},
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("source windows"), "{e}");
        assert!(!out.exists());
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("x"), "").unwrap();
        let e = generate(
            &Mix::default_mix(),
            &sources(1),
            Path::new("s"),
            10,
            1,
            &out,
            &mut |_| {},
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("not empty"), "{e}");
        // A folder with an empty record file is no corpus.
        let empty = dir.path().join("e");
        std::fs::create_dir_all(&empty).unwrap();
        std::fs::write(
            empty.join(MANIFEST_FILE),
            serde_json::to_string(&Manifest {
                mix: Mix::default_mix(),
                seed: 0,
                windows: 0,
                counts: BTreeMap::new(),
                heldout_counts: BTreeMap::new(),
                sources: String::new(),
            })
            .unwrap(),
        )
        .unwrap();
        std::fs::write(empty.join(PATHS_FILE), "\n").unwrap();
        let e = open(&empty).unwrap_err().to_string();
        assert!(e.contains("no usable windows"), "{e}");
    }

    #[test]
    fn a_path_record_out_of_range_names_its_field_and_value() {
        let ok = PathRecord {
            min_rtt_ms: 40.0,
            buffer_bdp: Some(2.0),
            loss_rate: 0.0,
            competitors: Vec::new(),
            ack_trace: false,
            delayed_ack: false,
        };
        assert_eq!(ok.validate(), Ok(()));
        let e = PathRecord {
            min_rtt_ms: 0.5,
            ..ok.clone()
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.to_string(), "min_rtt_ms must be in [1, 2000], got 0.5");
        assert!(matches!(
            PathRecord {
                buffer_bdp: Some(f64::NAN),
                ..ok.clone()
            }
            .validate(),
            Err(PathRecordError::OutOfRange {
                field: "buffer_bdp",
                ..
            })
        ));
        assert!(matches!(
            PathRecord {
                loss_rate: 0.5,
                ..ok.clone()
            }
            .validate(),
            Err(PathRecordError::OutOfRange {
                field: "loss_rate",
                ..
            })
        ));
        let competitor = |cc: &str| Competitor {
            cc: cc.into(),
            start_ms: 0,
        };
        assert_eq!(
            PathRecord {
                competitors: vec![competitor("cubic"); MAX_COMPETITORS + 1],
                ..ok.clone()
            }
            .validate(),
            Err(PathRecordError::TooManyCompetitors(MAX_COMPETITORS + 1))
        );
        assert_eq!(
            PathRecord {
                competitors: vec![competitor("vegas")],
                ..ok
            }
            .validate(),
            Err(PathRecordError::UnknownCompetitor("vegas".into()))
        );
    }
}
