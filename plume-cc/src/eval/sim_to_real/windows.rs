//! Which windows a sim-to-real check runs on: the same windows for the
//! simulator and the emulator, picked from the traces in a fixed order so
//! that a rerun compares like with like.

use std::path::PathBuf;

use crate::trace::MahimahiTrace;

use super::super::EvalError;

/// Picks `n` windows of `window_ms`, round-robin over `traces` (sorted),
/// skipping each trace's first window (the trace's own start-up) and windows
/// under 0.5 Mbit/s. Returns (name, trace window).
pub fn pick_windows(
    traces: &[PathBuf],
    n: usize,
    window_ms: u64,
) -> Result<Vec<(String, MahimahiTrace)>, EvalError> {
    let mut loaded = Vec::new();
    let mut sorted = traces.to_vec();
    sorted.sort();
    for p in &sorted {
        loaded.push(MahimahiTrace::read(p)?);
    }
    let mut next = vec![1u64; loaded.len()];
    let mut out = Vec::new();
    let mut stalled = 0;
    let mut i = 0;
    while out.len() < n && stalled < loaded.len() {
        let t = &loaded[i % loaded.len()];
        let k = &mut next[i % loaded.len()];
        i += 1;
        let mut found = false;
        while (*k + 1) * window_ms <= t.period_ms() {
            let start = *k * window_ms;
            *k += 1;
            let ops: Vec<u64> = t
                .timestamps_ms()
                .iter()
                .filter(|&&x| x > start && x <= start + window_ms)
                .map(|&x| x - start)
                .collect();
            let mbps = ops.len() as f64 * crate::trace::OPPORTUNITY_BYTES as f64 * 8.0
                / (window_ms as f64 * 1000.0);
            if mbps < 0.5 {
                continue;
            }
            let name = format!(
                "{}@{}s",
                t.origin()
                    .file_name()
                    .map_or_else(|| "trace".into(), |s| s.to_string_lossy()),
                start / 1000
            );
            out.push((name.clone(), MahimahiTrace::from_timestamps(name, ops)?));
            found = true;
            break;
        }
        stalled = if found { 0 } else { stalled + 1 };
    }
    if out.len() < n {
        return Err(EvalError::Config(format!(
            "only {} windows of {} ms with at least 0.5 Mbit/s in the traces, {n} asked",
            out.len(),
            window_ms
        )));
    }
    Ok(out)
}
