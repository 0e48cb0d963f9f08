//! Removing flows whose socket is gone (the reaper: an entry idle long
//! enough whose socket no namespace shows) and checking the free-slot list
//! that removal feeds. Its own file because it is the one place besides
//! the program's TCP_CLOSE path that frees a slot.

use super::*;

impl Datapath {
    /// Of `candidates`, the cookies whose socket exists in no network
    /// namespace of the host any more ([`crate::datapath::sockdiag`]). An error (a
    /// namespace that could not be read) means "unknown": remove nothing.
    pub fn gone_sockets(&self, candidates: &[u64]) -> Result<Vec<u64>, DatapathError> {
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let live = crate::datapath::sockdiag::live_tcp_cookies()?;
        Ok(candidates
            .iter()
            .copied()
            .filter(|c| !live.contains(c))
            .collect())
    }

    /// Deletes a flow's statistics and target (a flow whose socket is gone;
    /// the program would have done it on TCP_CLOSE) and frees its slot.
    /// Whoever deletes the cookie's entry owns the slot from then on, so
    /// when the program's own TCP_CLOSE path wins the race, it frees the
    /// slot and this does nothing.
    pub fn remove_flow(&mut self, cookie: u64) -> Result<(), DatapathError> {
        let Some(slot) = self.slot_of(cookie)? else {
            return Ok(());
        };
        match self.flows.remove(&cookie) {
            Ok(()) => {}
            // Already gone (the program's own TCP_CLOSE path raced us).
            Err(aya::maps::MapError::SyscallError(e))
                if e.io_error.raw_os_error() == Some(libc::ENOENT) =>
            {
                return Ok(());
            }
            Err(e) => return Err(map_err(maps::FLOW_STATS)(e)),
        }
        let i = slot as usize;
        self.clear_target_slot(i, Some(cookie));
        // SAFETY: we deleted the entry, so the slot is ours (the program
        // writes a slot only through its cookie's entry).
        unsafe {
            self.stats_slots.write(i, |s| {
                if s.cookie == cookie {
                    s.cookie = 0;
                }
            })
        };
        self.free.push(slot, 0).map_err(map_err(maps::FREE_SLOTS))
    }

    /// Removes every flow idle for [`crate::datapath::REAP_IDLE_NS`] whose socket is
    /// gone; returns their cookies.
    pub fn reap_gone(&mut self) -> Result<Vec<u64>, DatapathError> {
        self.reap_gone_as_of(monotonic_ns())
    }

    /// [`Datapath::reap_gone`] with the idle ages taken at monotonic time
    /// `now_ns` (a test looks from the future, where every flow is idle
    /// long enough, to check that the socket listing alone keeps the live
    /// ones).
    pub fn reap_gone_as_of(&mut self, now_ns: u64) -> Result<Vec<u64>, DatapathError> {
        let candidates = crate::datapath::reap_candidates(&self.flows()?, now_ns);
        let gone = self.gone_sockets(&candidates)?;
        for &c in &gone {
            self.remove_flow(c)?;
        }
        Ok(gone)
    }

    /// Counts the free list: pops every index, checks that each is a slot
    /// of the table and none is there twice, and pushes them back in the
    /// order they were (so the list is as before). Returns the number of
    /// free slots; with no flow registered it must be the table's size, or
    /// slots leaked. While it runs, new flows find no slot (they are left
    /// to the kernel and counted as a full table): only for checks with no
    /// flow opening (tests, `plume-cc cleanup`-like tools).
    pub fn count_free_slots(&mut self) -> Result<usize, DatapathError> {
        let mut popped = Vec::with_capacity(self.stats_slots.len());
        loop {
            match self.free.pop(0) {
                Ok(s) => popped.push(s),
                Err(aya::maps::MapError::ElementNotFound) => break,
                Err(e) => {
                    self.push_back(&popped)?;
                    return Err(map_err(maps::FREE_SLOTS)(e));
                }
            }
        }
        self.push_back(&popped)?;
        let mut seen = vec![false; self.stats_slots.len()];
        for &s in &popped {
            let Some(was) = seen.get_mut(s as usize) else {
                return Err(DatapathError::Map {
                    map: maps::FREE_SLOTS,
                    reason: format!("slot {s} past the table's {}", self.stats_slots.len()),
                });
            };
            if std::mem::replace(was, true) {
                return Err(DatapathError::Map {
                    map: maps::FREE_SLOTS,
                    reason: format!("slot {s} is on the free list twice"),
                });
            }
        }
        Ok(popped.len())
    }

    /// Pushes popped free slots back, bottom first.
    fn push_back(&mut self, popped: &[u32]) -> Result<(), DatapathError> {
        for &s in popped.iter().rev() {
            self.free.push(s, 0).map_err(map_err(maps::FREE_SLOTS))?;
        }
        Ok(())
    }
}
