//! The scenario corpus on disk: `traces/NNNNN-KIND.trace`, `paths.jsonl`
//! and `corpus.json` (the [`Manifest`]); writing it ([`CorpusWriter`], and
//! [`write_windows`] for windows made elsewhere) and reading it back
//! ([`open`]).
//!
//! Why its own file: two writers (the generator and `plume-cc record`) must
//! lay a corpus out alike (file names, the window's period, counts, the
//! index), and every reader goes through [`open`]; one place for the layout
//! is what makes a recorded corpus read like a generated one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{
    folder_err, io_err, Kind, Mix, PathRecord, ScenarioCorpusError, WindowRecord, HOLDOUT_EVERY,
    MANIFEST_FILE, PATHS_FILE, TRACES_DIR,
};
use crate::trace::mahimahi::MahimahiTrace;

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

/// A corpus being written: its folder, and the records and counts of the
/// windows written so far.
pub(super) struct CorpusWriter {
    out: PathBuf,
    traces_dir: PathBuf,
    window_ms: u64,
    records: Vec<WindowRecord>,
    counts: BTreeMap<String, usize>,
    heldout_counts: BTreeMap<String, usize>,
}

impl CorpusWriter {
    /// Starts a corpus of `window_ms` windows in `out`, which must not
    /// exist or be an empty folder, and creates its `traces/`.
    pub(super) fn create(
        out: &Path,
        window_ms: u64,
        windows: usize,
    ) -> Result<Self, ScenarioCorpusError> {
        check_out_is_new(out)?;
        let traces_dir = out.join(TRACES_DIR);
        std::fs::create_dir_all(&traces_dir).map_err(|e| io_err(&traces_dir, "create", e))?;
        Ok(Self {
            out: out.to_path_buf(),
            traces_dir,
            window_ms,
            records: Vec::with_capacity(windows),
            counts: BTreeMap::new(),
            heldout_counts: BTreeMap::new(),
        })
    }

    /// Writes window `index` as `traces/NNNNN-KIND.trace` and records it.
    /// The trace's period is exactly the window's length (one extra
    /// opportunity at the end when needed, as the synthetic generators do).
    pub(super) fn push(
        &mut self,
        index: usize,
        heldout: bool,
        window: WindowInput,
    ) -> Result<(), ScenarioCorpusError> {
        let WindowInput {
            timestamps_ms: mut ts,
            kind,
            source,
            path,
        } = window;
        if ts.last() != Some(&self.window_ms) {
            ts.push(self.window_ms);
        }
        let file = format!("{index:05}-{kind}.trace");
        let fpath = self.traces_dir.join(&file);
        let trace = MahimahiTrace::from_timestamps(&fpath, ts)?;
        trace.write(&fpath)?;
        *self.counts.entry(kind.clone()).or_default() += 1;
        if heldout {
            *self.heldout_counts.entry(kind.clone()).or_default() += 1;
        }
        self.records.push(WindowRecord {
            file,
            kind,
            heldout,
            source,
            mean_mbps: trace.mean_mbps(),
            path,
        });
        Ok(())
    }

    /// Writes `paths.jsonl` (one record per window, in order) and
    /// `corpus.json`; returns the manifest.
    pub(super) fn finish(
        self,
        mix: Mix,
        seed: u64,
        sources: String,
    ) -> Result<Manifest, ScenarioCorpusError> {
        let out = &self.out;
        let manifest = Manifest {
            mix,
            seed,
            windows: self.records.len(),
            counts: self.counts,
            heldout_counts: self.heldout_counts,
            sources,
        };
        let mut lines = String::new();
        for r in &self.records {
            lines.push_str(&serde_json::to_string(r).map_err(|e| folder_err(out, e.to_string()))?);
            lines.push('\n');
        }
        let p = out.join(PATHS_FILE);
        std::fs::write(&p, lines).map_err(|e| io_err(&p, "write", e))?;
        let p = out.join(MANIFEST_FILE);
        let text =
            serde_json::to_string_pretty(&manifest).map_err(|e| folder_err(out, e.to_string()))?;
        std::fs::write(&p, text).map_err(|e| io_err(&p, "write", e))?;
        Ok(manifest)
    }
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

/// One window given to [`write_windows`] (or, by the generator, to
/// `CorpusWriter::push`): its delivery opportunities
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

/// Writes windows made elsewhere than [`generate`](super::generate) (`plume-cc record`
/// turns a host's flows into them) as a scenario corpus that [`open`],
/// `traces analyze` and `train` read like a generated one. The manifest's
/// mix is all `common` (the mix only tells the window length and what the
/// generator drew; these windows were not drawn), `sources` says where
/// they came from. Every fifth window is held out as in [`generate`](super::generate), and
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
    let n = windows.len();
    let mut writer = CorpusWriter::create(out, window_ms, n)?;
    let none_held = n < HOLDOUT_EVERY;
    for (i, w) in windows.into_iter().enumerate() {
        let heldout = i % HOLDOUT_EVERY == HOLDOUT_EVERY - 1 || (none_held && n >= 2 && i == n - 1);
        writer.push(i, heldout, w)?;
    }
    writer.finish(mix, 0, sources.to_string())
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
        std::fs::read_to_string(&p).map_err(|e| io_err(&p, "read", e))
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
