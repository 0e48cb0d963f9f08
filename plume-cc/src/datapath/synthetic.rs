//! Flows without a socket, for the control-loop benchmark and the root
//! tests: registered in the maps as the program would register a real
//! flow, so the daemon's read, decide and write run over them unchanged.

use super::*;

/// Registers a flow without a socket, as the program would at
/// establishment (a slot from the free list, its statistics, its
/// cookie's entry): the synthetic flows of `bench-datapath`, which
/// measures the control loop at flow counts a test machine cannot hold
/// as real connections. The program never sees a callback for it;
/// [`Datapath::remove_flow`] removes it. A free function, not a method, so that the
/// bench hook is no part of `Datapath`'s own API. Returns false when the table
/// is full or the cookie is registered.
pub fn insert_synthetic_flow(
    dp: &mut Datapath,
    cookie: u64,
    stats: FlowStats,
) -> Result<bool, DatapathError> {
    let slot = match dp.free.pop(0) {
        Ok(s) => s,
        Err(aya::maps::MapError::ElementNotFound) => return Ok(false),
        Err(e) => return Err(map_err(maps::FREE_SLOTS)(e)),
    };
    let i = slot as usize;
    // SAFETY: popped from the free list: nobody else owns it.
    unsafe {
        dp.stats_slots.write(i, |s| {
            s.cookie = cookie;
            s.stats = stats;
        })
    };
    if dp.flows.insert(cookie, slot, 1).is_err() {
        // SAFETY: still ours (no entry names it).
        unsafe { dp.stats_slots.write(i, |s| s.cookie = 0) };
        dp.free.push(slot, 0).map_err(map_err(maps::FREE_SLOTS))?;
        return Ok(false);
    }
    Ok(true)
}
