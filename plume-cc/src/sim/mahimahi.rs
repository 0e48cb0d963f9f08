//! Mahimahi trace files as simulator capacity schedules. Reading and
//! validation are the `trace` module's [`MahimahiTrace`] (the same files and
//! errors as the emulator and the Plume pipeline); this only converts.

use std::path::Path;

use super::{Schedule, SimError};
use crate::trace::MahimahiTrace;

/// Reads a Mahimahi trace file into its [`Schedule`]; errors name the file
/// and the 1-based line.
pub fn load_mahimahi(path: &Path) -> Result<Schedule, SimError> {
    Ok(MahimahiTrace::read(path)?.schedule().clone())
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
        std::fs::write(&f, "1\n2\n\n").unwrap();
        assert_eq!(load_mahimahi(&f).unwrap().len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
