//! A minimal private reader for Mahimahi trace files (one millisecond
//! timestamp per line), so the simulator's tests and benchmarks can run
//! before the shared `trace` module exists. It is meant to be replaced by
//! that module; it does no windowing or statistics.

use std::path::Path;

use super::{CapacityTrace, SimError};

/// Reads a Mahimahi trace file into a validated [`CapacityTrace`].
///
/// Blank lines are skipped; anything else that is not an unsigned integer is
/// an error naming the file and the 1-based line.
pub fn load_mahimahi(path: &Path) -> Result<CapacityTrace, SimError> {
    let text = std::fs::read_to_string(path).map_err(|source| SimError::TraceIo {
        path: path.display().to_string(),
        source,
    })?;
    let mut out = Vec::with_capacity(text.len() / 6);
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let value = line.parse::<u64>().map_err(|_| SimError::TraceParse {
            path: path.display().to_string(),
            line: i + 1,
            text: line.chars().take(40).collect(),
        })?;
        out.push(value);
    }
    CapacityTrace::from_ms(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_name_file_and_line() {
        let dir = std::env::temp_dir().join(format!("plume-sim-mm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("bad.trace");
        std::fs::write(&f, "1\n2\nx3\n").unwrap();
        let err = load_mahimahi(&f).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("bad.trace") && msg.contains(":3"), "{msg}");
        std::fs::write(&f, "1\n\n2\n").unwrap();
        assert_eq!(load_mahimahi(&f).unwrap().len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
