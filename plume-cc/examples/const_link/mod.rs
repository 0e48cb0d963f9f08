//! What the shared-link simulations (`sim_stagger`, `sim_cubic_share`)
//! share: the bench's 12 Mbit/s constant link as one simulator window. One
//! copy, so that both run on the same link. Not an example itself (no
//! `main.rs`): each includes it with `#[path]`.

use plume_cc::rl::env::SimWindow;
use plume_cc::trace::MahimahiTrace;

/// `traces/synthetic/const-12mbps.trace`, repeated (Mahimahi's loop) to
/// `length_ms`, as one window.
pub fn window(length_ms: u64) -> Result<SimWindow, Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let trace = MahimahiTrace::read(root.join("traces/synthetic/const-12mbps.trace"))?;
    let period = trace.timestamps_ms().last().copied().unwrap_or(1).max(1);
    let mut stamps = Vec::new();
    let mut k = 0;
    while k * period < length_ms + period {
        stamps.extend(trace.timestamps_ms().iter().map(|t| t + k * period));
        k += 1;
    }
    Ok(SimWindow::cut(&stamps, 0, length_ms).ok_or("empty window")?)
}
