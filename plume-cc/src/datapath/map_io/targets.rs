//! The flows' targets: written many at once into the mmapped target slots
//! (the control loop's write) or one at a time, read back, and cleared
//! when their flow is gone. Its own file because this is the only path
//! that changes what the program applies to a flow.

use super::*;

impl Datapath {
    /// Writes many targets straight into the mmapped target slots, all
    /// stamped now, then tells the program once ([`DatapathConfig::generation`]).
    /// Cookies of the last [`Datapath::read_flows_for_control`], in its
    /// order, need no lookup; any other costs one (a flow gone by then is
    /// skipped). A flow that closed after the read gets a target in the
    /// slot it left, which its next owner ignores (the slot's cookie is not
    /// its own) and [`Datapath::collect_orphan_targets`] clears.
    pub fn write_targets(
        &mut self,
        cookies: &[u64],
        targets: &mut [FlowTarget],
    ) -> Result<(), DatapathError> {
        let now = monotonic_ns();
        for (i, (&cookie, t)) in cookies.iter().zip(targets.iter_mut()).enumerate() {
            t.written_ns = now;
            let slot = match self.last_read.get(i) {
                Some(&(c, slot)) if c == cookie => slot,
                _ => match self.slot_of(cookie)? {
                    Some(slot) if (slot as usize) < self.target_slots.len() => slot,
                    _ => continue,
                },
            };
            let target = *t;
            // SAFETY: this process is the target slots' only writer (the
            // program only reads them; one daemon holds a datapath).
            unsafe {
                self.target_slots.write(slot as usize, |ts| {
                    ts.cookie = cookie;
                    ts.target = target;
                })
            };
        }
        self.bump_generation()
    }

    /// Calls `visit(slot, target slot)` for every target slot that holds a
    /// target for the flow that owns the slot now, and returns the slots
    /// whose target is for no live flow (orphans).
    fn scan_targets(&self, mut visit: impl FnMut(usize, &TargetSlot)) -> Vec<usize> {
        let mut orphans = Vec::new();
        self.target_slots.scan(|i, read| {
            let SlotRead::Value(ts) = read else {
                return;
            };
            if ts.cookie == 0 {
                return;
            }
            match self.stats_slots.read(i) {
                SlotRead::Value(s) if s.cookie == ts.cookie => visit(i, &ts),
                // Mid-write: decide next time.
                SlotRead::Torn => {}
                _ => orphans.push(i),
            }
        });
        orphans
    }

    /// Clears target slots whose flow is gone (closed between a read and a
    /// write of targets): the program already ignores them (their cookie
    /// is not the slot's owner), so this only keeps `status` and the
    /// "no entries left" checks exact. `live` is not needed with slots
    /// (each slot names its flow). Returns how many were cleared.
    pub fn collect_orphan_targets(&mut self, _live: &[u64]) -> Result<usize, DatapathError> {
        let orphans = self.scan_targets(|_, _| {});
        for &i in &orphans {
            self.clear_target_slot(i, None);
        }
        Ok(orphans.len())
    }

    /// Empties target slot `i` (if it holds `only_for`'s target, when given).
    pub(super) fn clear_target_slot(&mut self, i: usize, only_for: Option<u64>) {
        if let SlotRead::Value(ts) = self.target_slots.read(i) {
            if ts.cookie == 0 || only_for.is_some_and(|c| c != ts.cookie) {
                return;
            }
        }
        // SAFETY: this process is the target slots' only writer.
        unsafe {
            self.target_slots.write(i, |ts| {
                ts.cookie = 0;
                ts.target = FlowTarget::default();
            })
        };
    }

    /// Cookies of live flows that have a target.
    pub fn target_cookies(&self) -> Result<Vec<u64>, DatapathError> {
        let mut out = Vec::new();
        self.scan_targets(|_, ts| out.push(ts.cookie));
        Ok(out)
    }

    /// The target of one flow, if any.
    pub fn target(&self, cookie: u64) -> Result<Option<FlowTarget>, DatapathError> {
        let Some(slot) = self.slot_of(cookie)? else {
            return Ok(None);
        };
        if slot as usize >= self.target_slots.len() {
            return Ok(None);
        }
        Ok(match self.target_slots.read(slot as usize) {
            SlotRead::Value(ts) if ts.cookie == cookie => Some(ts.target),
            _ => None,
        })
    }

    /// Writes a target for a registered flow, stamped with the current time.
    /// The program applies it on the flow's next callback, and lifts it once
    /// it is older than the configured staleness timeout. Returns false
    /// (and leaves nothing behind) for a flow that is not registered.
    pub fn set_target(
        &mut self,
        cookie: u64,
        cwnd_clamp: u32,
        max_pacing_bytes_per_sec: u32,
    ) -> Result<bool, DatapathError> {
        let Some(slot) = self.slot_of(cookie)? else {
            return Ok(false);
        };
        let target = FlowTarget {
            written_ns: monotonic_ns(),
            cwnd_clamp,
            max_pacing_bytes_per_sec,
            // The flow's base controller: a competitive one comes only
            // through the control loop's `write_targets`.
            ..FlowTarget::default()
        };
        // SAFETY: this process is the target slots' only writer.
        unsafe {
            self.target_slots.write(slot as usize, |ts| {
                ts.cookie = cookie;
                ts.target = target;
            })
        };
        // The flow may have closed in between; then the slot's target is
        // an orphan (ignored by the program): clear it ourselves.
        if self.flow(cookie)?.is_none() {
            self.clear_target_slot(slot as usize, Some(cookie));
            return Ok(false);
        }
        self.bump_generation()?;
        Ok(true)
    }
}
