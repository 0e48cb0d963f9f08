//! The training corpus: a folder of traces cut into episode windows.
//!
//! Real corpora are skewed (many LTE windows, few EVDO or outage windows);
//! the corpus keeps that skew as it is and leaves re-balancing to the Plume
//! samplers. Window order is deterministic: files sorted by name, windows by
//! start time.
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{
    mahimahi::{MahimahiTrace, TraceError},
    window::{TraceWindow, WindowSpec},
};

/// One trace file of a corpus.
#[derive(Debug, Clone)]
pub struct CorpusTrace {
    /// The file name (without folder), used as the trace's label in reports.
    pub name: String,
    /// The full path it was read from.
    pub path: PathBuf,
    /// The parsed trace.
    pub trace: MahimahiTrace,
}

/// Traces plus the windows cut from them: what the analysis and the trainer
/// index into (a sampler returns an index into [`Corpus::windows`]).
#[derive(Debug, Clone)]
pub struct Corpus {
    /// The traces, sorted by file name.
    pub traces: Vec<CorpusTrace>,
    /// The windows, grouped by trace in the order of `traces`, then by start.
    pub windows: Vec<TraceWindow>,
    /// How the windows were cut.
    pub spec: WindowSpec,
}

/// Whether a directory entry is a trace file: hidden files, `README*` and
/// documentation or report files (`.md`, `.json`, `.png`, `.txt`) are skipped;
/// everything else must parse, so a broken trace fails loudly.
pub fn is_trace_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    if name.starts_with('.') || name.to_ascii_lowercase().starts_with("readme") {
        return false;
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    !matches!(ext.as_str(), "md" | "json" | "png" | "txt") && path.is_file()
}

/// The trace files that `--traces` paths name, in the order given: a file
/// is itself, a folder is its trace files (see [`is_trace_file`]) sorted by
/// name. The one resolver behind every command's `--traces`, so that each
/// takes files and folders alike and refuses the same way: a path that is
/// neither ([`TraceError::NotFound`]) or a folder without traces
/// ([`TraceError::NoTraces`]), naming the path. A named file is taken as it
/// is (even `x.txt`): only a folder's entries are filtered.
pub fn trace_files<P: AsRef<Path>>(paths: &[P]) -> Result<Vec<PathBuf>, TraceError> {
    let mut out = Vec::new();
    for p in paths {
        let p = p.as_ref();
        if p.is_file() {
            out.push(p.to_path_buf());
        } else if p.is_dir() {
            let io = |source| TraceError::Io {
                path: p.to_path_buf(),
                action: "list",
                source,
            };
            let mut files = Vec::new();
            for entry in std::fs::read_dir(p).map_err(io)? {
                let path = entry.map_err(io)?.path();
                if is_trace_file(&path) {
                    files.push(path);
                }
            }
            if files.is_empty() {
                return Err(TraceError::NoTraces {
                    path: p.to_path_buf(),
                });
            }
            files.sort();
            out.extend(files);
        } else {
            return Err(TraceError::NotFound {
                path: p.to_path_buf(),
            });
        }
    }
    Ok(out)
}

impl Corpus {
    /// Reads the traces at `path` (a trace file, or a folder of them; see
    /// [`trace_files`]) in parallel.
    pub fn read_dir(path: &Path) -> Result<Vec<CorpusTrace>, TraceError> {
        let paths = trace_files(&[path])?;
        paths
            .into_par_iter()
            .map(|path| {
                let trace = MahimahiTrace::read(&path)?;
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                Ok(CorpusTrace { name, path, trace })
            })
            .collect()
    }

    /// Cuts `traces` into windows starting at `offset_ms` (see
    /// [`WindowSpec::starts`]). Traces shorter than one window contribute none.
    pub fn from_traces(
        traces: Vec<CorpusTrace>,
        spec: WindowSpec,
        offset_ms: u64,
    ) -> Result<Self, TraceError> {
        let per_trace: Result<Vec<Vec<TraceWindow>>, TraceError> = traces
            .par_iter()
            .enumerate()
            .map(|(i, t)| {
                spec.starts(&t.trace, offset_ms)?
                    .into_iter()
                    .map(|start| TraceWindow::cut(&t.trace, i, start, &spec))
                    .collect()
            })
            .collect();
        let windows: Vec<TraceWindow> = per_trace?.into_iter().flatten().collect();
        Ok(Self {
            traces,
            windows,
            spec,
        })
    }

    /// Reads a folder (or one trace file) and cuts it into windows: the
    /// usual way to build a corpus.
    pub fn from_dir(dir: &Path, spec: WindowSpec, offset_ms: u64) -> Result<Self, TraceError> {
        let corpus = Self::from_traces(Self::read_dir(dir)?, spec, offset_ms)?;
        if corpus.windows.is_empty() {
            return Err(TraceError::BadRequest {
                path: dir.to_path_buf(),
                what: format!("no trace is longer than one window ({} ms)", spec.length_ms),
            });
        }
        Ok(corpus)
    }

    /// The file name of the trace a window came from.
    pub fn window_source(&self, window: usize) -> &str {
        self.windows
            .get(window)
            .and_then(|w| self.traces.get(w.trace))
            .map(|t| t.name.as_str())
            .unwrap_or("")
    }

    /// The capacity series of every window, in window order.
    pub fn series(&self) -> Vec<&[f64]> {
        self.windows
            .iter()
            .map(|w| w.capacity_mbps.as_slice())
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The shared public Mahimahi traces (beside the repository, not in it).
    pub(crate) const MAHIMAHI_DIR: &str =
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/traces/mahimahi");

    /// Whether the shared traces are there. Without them a test is skipped
    /// loudly (a clone without `../shared` still passes `cargo test`), but
    /// in CI, which always has them, their absence fails the test.
    pub(crate) fn have_shared_traces(test: &str) -> bool {
        if Path::new(MAHIMAHI_DIR).is_dir() {
            return true;
        }
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!("{test}: the shared traces are missing at {MAHIMAHI_DIR}, and CI has them");
        }
        eprintln!("\n*** SKIPPED {test}: no shared traces at {MAHIMAHI_DIR} ***\n");
        false
    }

    /// The shared traces cut into non-overlapping 30 s windows at 100 ms
    /// bins (the benchmark corpus); None (skipped loudly) if absent.
    pub(crate) fn shared_corpus_30s(test: &str) -> Option<Corpus> {
        have_shared_traces(test).then(|| {
            Corpus::from_dir(
                Path::new(MAHIMAHI_DIR),
                WindowSpec::non_overlapping(30_000, 100),
                0,
            )
            .unwrap()
        })
    }

    #[test]
    fn shared_mahimahi_corpus_has_206_windows_of_30s() {
        let Some(corpus) = shared_corpus_30s("shared_mahimahi_corpus_has_206_windows_of_30s")
        else {
            return;
        };
        assert_eq!(corpus.traces.len(), 10);
        assert_eq!(corpus.windows.len(), 206);
        assert!(corpus.windows.iter().all(|w| w.capacity_mbps.len() == 300));
    }

    #[test]
    fn broken_file_in_folder_fails_loudly() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.trace"), "1\n2\n").unwrap();
        std::fs::write(dir.path().join("README.md"), "hello").unwrap();
        std::fs::write(dir.path().join("b.trace"), "1\nzz\n").unwrap();
        let err = Corpus::read_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("b.trace:2:"), "{err}");
        let empty = tempfile::tempdir().unwrap();
        assert!(Corpus::read_dir(empty.path()).is_err());
    }

    #[test]
    fn traces_paths_are_files_or_folders_and_refusals_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for name in ["b.trace", "a.trace", "notes.md", ".hidden"] {
            std::fs::write(d.join(name), "1\n2\n").unwrap();
        }
        let other = d.join("sub");
        std::fs::create_dir(&other).unwrap();
        std::fs::write(other.join("c.up"), "5\n").unwrap();
        // A file is itself (a named file is never filtered), a folder its
        // trace files sorted, in the order given.
        let got = trace_files(&[d.join("notes.md"), d.to_path_buf(), other.clone()]).unwrap();
        assert_eq!(
            got,
            vec![
                d.join("notes.md"),
                d.join("a.trace"),
                d.join("b.trace"),
                other.join("c.up")
            ]
        );
        // One trace file reads as a corpus of one trace.
        let one = Corpus::read_dir(&d.join("b.trace")).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].name, "b.trace");
        // Neither a file nor a folder.
        let missing = d.join("nope");
        match trace_files(&[&d.join("a.trace"), &missing]) {
            Err(e @ TraceError::NotFound { .. }) => {
                assert!(
                    e.to_string().contains(&missing.display().to_string()),
                    "{e}"
                )
            }
            other => panic!("{other:?}"),
        }
        // A folder without a trace file (only documentation).
        let empty = d.join("empty");
        std::fs::create_dir(&empty).unwrap();
        std::fs::write(empty.join("README"), "x").unwrap();
        match Corpus::read_dir(&empty) {
            Err(e @ TraceError::NoTraces { .. }) => {
                assert!(e.to_string().contains("empty: no trace files"), "{e}")
            }
            other => panic!("{other:?}"),
        }
    }
}
