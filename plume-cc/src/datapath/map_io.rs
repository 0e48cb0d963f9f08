//! Reading and writing the datapath's maps: flows, targets, configuration,
//! counters, events and the program's own statistics.

use super::loader::{load_error, PINNED_MAPS};
use super::*;

impl Datapath {
    /// The cgroup folder the program is attached to.
    pub fn cgroup(&self) -> &Path {
        &self.cgroup
    }

    /// True if this handle re-adopted a datapath left by an earlier process.
    pub fn adopted(&self) -> bool {
        self.adopted
    }

    /// The bpffs folder of the pins, if pinned.
    pub fn pin_dir(&self) -> Option<&Path> {
        self.pin_dir.as_deref()
    }

    /// Writes the datapath knobs. `config.generation` is ignored: the one in
    /// force is bumped, so every flow re-checks its target under the new
    /// knobs on its next callback.
    pub fn set_config(&mut self, config: DatapathConfig) -> Result<(), DatapathError> {
        let generation = match self.config() {
            Ok(c) => c.generation.wrapping_add(1),
            Err(_) => config.generation,
        };
        self.config
            .set(
                0,
                DatapathConfig {
                    generation,
                    ..config
                },
                0,
            )
            .map_err(map_err(maps::CONFIG))
    }

    /// Tells the program that targets changed: bumps
    /// [`DatapathConfig::generation`], the one thing a flow's callback
    /// compares before it looks its target up (see the eBPF crate). Every
    /// write or removal of targets ends with this.
    fn bump_generation(&mut self) -> Result<(), DatapathError> {
        let config = self.config()?;
        self.config
            .set(
                0,
                DatapathConfig {
                    generation: config.generation.wrapping_add(1),
                    ..config
                },
                0,
            )
            .map_err(map_err(maps::CONFIG))
    }

    /// The datapath knobs in force.
    pub fn config(&self) -> Result<DatapathConfig, DatapathError> {
        self.config.get(&0, 0).map_err(map_err(maps::CONFIG))
    }

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

    /// The slot of a registered flow (one map lookup).
    fn slot_of(&self, cookie: u64) -> Result<Option<u32>, DatapathError> {
        match self.flows.get(&cookie, 0) {
            Ok(s) => Ok(Some(s)),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(map_err(maps::FLOW_STATS)(e)),
        }
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
    fn clear_target_slot(&mut self, i: usize, only_for: Option<u64>) {
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

    /// Of `candidates`, the cookies whose socket exists in no network
    /// namespace of the host any more ([`super::sockdiag`]). An error (a
    /// namespace that could not be read) means "unknown": remove nothing.
    pub fn gone_sockets(&self, candidates: &[u64]) -> Result<Vec<u64>, DatapathError> {
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let live = super::sockdiag::live_tcp_cookies()?;
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

    /// Removes every flow idle for [`super::REAP_IDLE_NS`] whose socket is
    /// gone; returns their cookies.
    pub fn reap_gone(&mut self) -> Result<Vec<u64>, DatapathError> {
        self.reap_gone_as_of(monotonic_ns())
    }

    /// [`Datapath::reap_gone`] with the idle ages taken at monotonic time
    /// `now_ns` (a test looks from the future, where every flow is idle
    /// long enough, to check that the socket listing alone keeps the live
    /// ones).
    pub fn reap_gone_as_of(&mut self, now_ns: u64) -> Result<Vec<u64>, DatapathError> {
        let candidates = super::reap_candidates(&self.flows()?, now_ns);
        let gone = self.gone_sockets(&candidates)?;
        for &c in &gone {
            self.remove_flow(c)?;
        }
        Ok(gone)
    }

    /// Process ids (other than ours) that hold this datapath's flow map
    /// open: a running daemon (`/proc/PID/fdinfo` names the map id of each
    /// BPF map descriptor). `plume-cc cleanup` leaves such a datapath alone.
    pub fn holders(&self) -> Result<Vec<u32>, DatapathError> {
        let info = self.flows_info().map_err(map_err(maps::FLOW_STATS))?;
        let needle = format!("map_id:\t{}\n", info);
        let own = std::process::id();
        let mut pids = Vec::new();
        for proc_dir in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = proc_dir
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if pid == own {
                continue;
            }
            let fdinfo = proc_dir.path().join("fdinfo");
            let holds = std::fs::read_dir(&fdinfo)
                .into_iter()
                .flatten()
                .flatten()
                .any(|fd| std::fs::read_to_string(fd.path()).is_ok_and(|t| t.contains(&needle)));
            if holds {
                pids.push(pid);
            }
        }
        Ok(pids)
    }

    fn flows_info(&self) -> Result<u32, aya::maps::MapError> {
        use aya::maps::IterableMap as _;
        Ok(self.flows.map().info()?.id())
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

    /// Hands every flow back to the kernel: writes "no limit" targets and
    /// waits (up to `timeout`) until each flow's next callback has lifted its
    /// limits. Returns the cookies of flows still limited at the deadline
    /// (idle flows, which have no callback to run on).
    pub fn release_all(&mut self, timeout: Duration) -> Result<Vec<u64>, DatapathError> {
        let deadline = Instant::now() + timeout;
        loop {
            let limited: Vec<u64> = self
                .flows()?
                .into_iter()
                .filter(|(_, s)| {
                    s.applied_cwnd_clamp != CWND_UNCLAMPED || s.applied_pacing != PACING_UNLIMITED
                })
                .map(|(c, _)| c)
                .collect();
            for &cookie in &limited {
                self.set_target(cookie, CWND_UNCLAMPED, PACING_UNLIMITED)?;
            }
            if limited.is_empty() || Instant::now() >= deadline {
                return Ok(limited);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops controlling: releases every flow, then detaches and removes the
    /// pins, unless some idle flows could not be released, in which case the
    /// program stays attached in observe-only mode (it lifts their limits on
    /// their next callback) and stays pinned for the next daemon.
    pub fn shutdown(mut self, timeout: Duration) -> Result<Shutdown, DatapathError> {
        let mut still = self.release_all(timeout)?;
        if !still.is_empty() {
            // Flows whose socket is gone (a deleted network namespace) will
            // never have a callback to lift their limits on: reap them
            // rather than keep the program attached for them. Best effort:
            // when the sockets cannot be listed, they stay.
            match self.reap_gone() {
                Ok(gone) => still.retain(|c| !gone.contains(c)),
                Err(e) => tracing::warn!("could not check for flows whose socket is gone: {e}"),
            }
        }
        if !still.is_empty() {
            let mut config = self.config()?;
            config.enforce = 0;
            // New flows keep the host's own controller once we are gone.
            config.base_cc = [0; plume_cc_common::BASE_CC_LEN];
            self.set_config(config)?;
            // Drop our handles; pins keep program, link and maps alive.
            return Ok(Shutdown::LeftObserving(still));
        }
        // Remove our targets so nothing is left behind in the maps.
        let mut held = Vec::new();
        self.target_slots.scan(|i, read| {
            if matches!(read, SlotRead::Value(ts) if ts.cookie != 0) {
                held.push(i);
            }
        });
        for i in held {
            self.clear_target_slot(i, None);
        }
        self.bump_generation()?;
        if let Some(LinkHold::Pinned(link)) = self.link.take() {
            let link = link.unpin().map_err(|e| DatapathError::Attach {
                path: self.cgroup.clone(),
                reason: format!("unpinning the link: {e}"),
            })?;
            drop(link); // the last reference: detaches the program
        }
        if let Some(dir) = self.pin_dir.take() {
            for name in PINNED_MAPS {
                let _ = std::fs::remove_file(dir.join(name));
            }
            let _ = std::fs::remove_dir(&dir);
        }
        Ok(Shutdown::Detached)
    }

    /// The datapath counters, summed over CPUs.
    pub fn counters(&self) -> Result<Counters, DatapathError> {
        let get = |i: u32| -> Result<u64, DatapathError> {
            Ok(self
                .counters
                .get(&i, 0)
                .map_err(map_err(maps::COUNTERS))?
                .iter()
                .sum())
        };
        Ok(Counters {
            flows_opened: get(counters::FLOWS_OPENED)?,
            flows_closed: get(counters::FLOWS_CLOSED)?,
            flow_map_full: get(counters::FLOW_MAP_FULL)?,
            targets_applied: get(counters::TARGETS_APPLIED)?,
            targets_expired: get(counters::TARGETS_EXPIRED)?,
            setsockopt_errors: get(counters::SETSOCKOPT_ERRORS)?,
            events_dropped: get(counters::EVENTS_DROPPED)?,
            base_pinned: get(counters::BASE_PINNED)?,
            target_checks: get(counters::TARGET_CHECKS)?,
            snapshots: get(counters::SNAPSHOTS)?,
            torn_reads: get(counters::TORN_READS)?,
        })
    }

    /// The kernel's run-time statistics of the sock_ops program
    /// (`kernel.bpf_stats_enabled` must be 1): (run count, total run time ns).
    pub fn program_run_stats(&self) -> Result<(u64, u64), DatapathError> {
        let ebpf = self._ebpf.as_ref().ok_or_else(|| {
            DatapathError::Load("program statistics need a freshly loaded datapath".into())
        })?;
        let program = ebpf
            .program(PROGRAM_NAME)
            .ok_or_else(|| DatapathError::Load(format!("no program {PROGRAM_NAME}")))?;
        let info = program.info().map_err(load_error)?;
        Ok((info.run_count(), info.run_time().as_nanos() as u64))
    }

    /// Drains the new/closed flow events reported by the program.
    pub fn drain_events(&mut self) -> Vec<FlowEvent> {
        let mut out = Vec::new();
        if let Some(rb) = self.events.as_mut() {
            while let Some(item) = rb.next() {
                if item.len() >= std::mem::size_of::<FlowEvent>() {
                    // SAFETY: the program writes whole FlowEvent records; read unaligned.
                    out.push(unsafe {
                        std::ptr::read_unaligned(item.as_ptr().cast::<FlowEvent>())
                    });
                }
            }
        }
        out
    }

    /// Forwards the program's aya-log records to the `log` facade.
    pub fn flush_logs(&mut self) {
        if let Some(logger) = self.logger.as_mut() {
            logger.flush();
        }
    }
}
