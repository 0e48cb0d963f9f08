//! Reading the flows' statistics straight from the mmapped slots (no
//! system call per flow), with the seqlock's torn reads counted and
//! published. Its own file because this is the control loop's read path,
//! apart from the writes of targets.

use super::*;

impl Datapath {
    /// Statistics of every flow currently registered, keyed by socket cookie.
    pub fn flows(&self) -> Result<Vec<(u64, FlowStats)>, DatapathError> {
        let mut out = Vec::new();
        self.read_flows(&mut out)?;
        Ok(out)
    }

    /// Reads every flow into `out` straight from the mmapped statistics
    /// slots (no system call), reusing `out`'s allocation. A slot caught
    /// mid-write on every try is left out of this read and counted
    /// ([`Datapath::torn_reads`]); its flow is back in the next one.
    pub fn read_flows(&self, out: &mut Vec<(u64, FlowStats)>) -> Result<(), DatapathError> {
        out.clear();
        self.scan_stats(|cookie, _, stats| out.push((cookie, *stats)));
        Ok(())
    }

    /// [`Datapath::read_flows`] that also remembers each flow's slot, so the
    /// targets written next ([`Datapath::write_targets`]) find their slots
    /// without a lookup (the control loop's read).
    pub fn read_flows_for_control(
        &mut self,
        out: &mut Vec<(u64, FlowStats)>,
    ) -> Result<(), DatapathError> {
        out.clear();
        let mut last = std::mem::take(&mut self.last_read);
        last.clear();
        self.scan_stats(|cookie, slot, stats| {
            out.push((cookie, *stats));
            last.push((cookie, slot));
        });
        self.last_read = last;
        Ok(())
    }

    /// Calls `visit(cookie, slot, stats)` for every live slot.
    fn scan_stats(&self, mut visit: impl FnMut(u64, u32, &FlowStats)) {
        let mut torn = 0;
        self.stats_slots.scan(|i, read| match read {
            SlotRead::Value(s) if s.cookie != 0 => visit(s.cookie, i as u32, &s.stats),
            SlotRead::Torn => torn += 1,
            _ => {}
        });
        if torn > 0 {
            self.torn_reads
                .fetch_add(torn, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Slot reads, since this handle was made, that caught a write in
    /// progress on every try (the flow was left out of that read).
    pub fn torn_reads(&self) -> u64 {
        self.torn_reads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Adds the torn reads of this handle not yet published to the
    /// counters map's `TORN_READS` slot, where `plume-cc status` (any
    /// process) reads them with the program's counters. One lookup and one
    /// update (two system calls), and none while the count stands still,
    /// so the control loop calls it after every read.
    ///
    /// The slot is per CPU like the program's counters; the daemon, its
    /// only writer, keeps the sum in CPU 0's value and zeros the others.
    /// It adds to what it finds, so the count survives a daemon restart
    /// that adopts the pinned maps.
    pub fn publish_torn_reads(&mut self) -> Result<(), DatapathError> {
        let new = self.torn_reads().saturating_sub(self.torn_published);
        if new == 0 {
            return Ok(());
        }
        let values = self
            .counters
            .get(&counters::TORN_READS, 0)
            .map_err(map_err(maps::COUNTERS))?;
        let total = values.iter().sum::<u64>() + new;
        let per_cpu: Vec<u64> = (0..values.len())
            .map(|cpu| if cpu == 0 { total } else { 0 })
            .collect();
        let per_cpu = aya::maps::PerCpuValues::try_from(per_cpu)
            .map_err(|e| DatapathError::Load(format!("torn reads counter: {e}")))?;
        self.counters
            .set(counters::TORN_READS, per_cpu, 0)
            .map_err(map_err(maps::COUNTERS))?;
        self.torn_published += new;
        Ok(())
    }

    /// Makes the statistics slot of `cookie` look as if the program were
    /// inside its write (an odd sequence counter) until
    /// [`Datapath::end_stats_write`]: every read then leaves the flow out
    /// and counts a torn read. For tests of that path (`tests/datapath.rs`);
    /// false if the flow has no slot.
    #[doc(hidden)]
    pub fn begin_stats_write(&self, cookie: u64) -> Result<bool, DatapathError> {
        self.set_stats_seq_parity(cookie, true)
    }

    /// Ends what [`Datapath::begin_stats_write`] began (the counter even
    /// again, one step on).
    #[doc(hidden)]
    pub fn end_stats_write(&self, cookie: u64) -> Result<bool, DatapathError> {
        self.set_stats_seq_parity(cookie, false)
    }

    /// Sets the sequence counter of `cookie`'s statistics slot odd (inside
    /// a write) or, from odd, one step on to even (the write done).
    fn set_stats_seq_parity(&self, cookie: u64, odd: bool) -> Result<bool, DatapathError> {
        let Some(slot) = self.slot_of(cookie)? else {
            return Ok(false);
        };
        let seq = self.stats_slots.seq(slot as usize);
        let s = seq.load(std::sync::atomic::Ordering::Relaxed) | 1;
        let s = if odd { s } else { s.wrapping_add(1) };
        seq.store(s, std::sync::atomic::Ordering::Release);
        Ok(true)
    }

    /// Statistics of one flow, if registered.
    pub fn flow(&self, cookie: u64) -> Result<Option<FlowStats>, DatapathError> {
        let Some(slot) = self.slot_of(cookie)? else {
            return Ok(None);
        };
        if slot as usize >= self.stats_slots.len() {
            return Ok(None);
        }
        match self.stats_slots.read(slot as usize) {
            SlotRead::Value(s) if s.cookie == cookie => Ok(Some(s.stats)),
            SlotRead::Torn => Err(DatapathError::Map {
                map: maps::STATS_SLOTS,
                reason: format!("slot {slot} was being written on every try"),
            }),
            _ => Ok(None),
        }
    }

    /// Statistics slots owned by a flow now (a scan of the mapped slots).
    pub fn slots_in_use(&self) -> usize {
        let mut n = 0;
        self.stats_slots.scan(|_, read| {
            if matches!(read, SlotRead::Value(s) if s.cookie != 0) {
                n += 1;
            }
        });
        n
    }
}
