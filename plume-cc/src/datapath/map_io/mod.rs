//! Reading and writing the datapath's maps: flows, targets, configuration,
//! counters, events and the program's own statistics.
//!
//! All of it is `impl Datapath`, one file per concern:
//! - here: the handle itself (its cgroup, pins, holders), the knobs in
//!   force, what the program reports (counters, run statistics, events,
//!   logs) and the slot lookup the other files share;
//! - `stats`: reading the flows' statistics from their mmapped slots (and
//!   the torn reads of the seqlock);
//! - `targets`: writing, reading and clearing the flows' targets;
//! - `reap`: removing flows whose socket is gone, and the free-slot list;
//! - `release`: handing every flow back to the kernel, and shutting down.

mod reap;
mod release;
mod stats;
mod targets;

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

    /// The slot of a registered flow (one map lookup).
    pub fn slot_of(&self, cookie: u64) -> Result<Option<u32>, DatapathError> {
        match self.flows.get(&cookie, 0) {
            Ok(s) => Ok(Some(s)),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(map_err(maps::FLOW_STATS)(e)),
        }
    }

    /// The storage entry of a socket (any descriptor of it): the cookie and
    /// slot its callbacks use, or None if it has none (not registered, or
    /// closed). Fails on a handle that did not load the program (the map
    /// is not pinned).
    pub fn socket_slot(&self, socket: &impl AsRawFd) -> Result<Option<SocketSlot>, DatapathError> {
        match self.socket_slots()?.get(socket, 0) {
            Ok(s) => Ok(Some(s)),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(map_err(maps::SOCKET_SLOTS)(e)),
        }
    }

    /// Overwrites (or creates) a socket's storage entry: tests use it to
    /// play a stale entry, which the program must not trust.
    pub fn set_socket_slot(
        &mut self,
        socket: &impl AsRawFd,
        value: SocketSlot,
    ) -> Result<(), DatapathError> {
        self.socket_slots_mut()?
            .insert(socket, value, 0)
            .map_err(map_err(maps::SOCKET_SLOTS))
    }

    /// Deletes a socket's storage entry, as a flow registered before the
    /// storage existed has none (tests of the fallback to the cookie hash).
    /// Returns whether there was one.
    pub fn forget_socket_slot(&mut self, socket: &impl AsRawFd) -> Result<bool, DatapathError> {
        match self.socket_slots_mut()?.remove(socket) {
            Ok(()) => Ok(true),
            Err(aya::maps::MapError::SyscallError(e))
                if e.io_error.raw_os_error() == Some(libc::ENOENT) =>
            {
                Ok(false)
            }
            Err(e) => Err(map_err(maps::SOCKET_SLOTS)(e)),
        }
    }

    fn socket_slots(&self) -> Result<&SkStorage<MapData, SocketSlot>, DatapathError> {
        self.socket_slots.as_ref().ok_or_else(no_socket_slots)
    }

    fn socket_slots_mut(&mut self) -> Result<&mut SkStorage<MapData, SocketSlot>, DatapathError> {
        self.socket_slots.as_mut().ok_or_else(no_socket_slots)
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
            slot_hash_lookups: get(counters::SLOT_HASH_LOOKUPS)?,
            recovery_tail_waits: get(counters::RECOVERY_TAIL_WAITS)?,
        })
    }

    /// The kernel's run-time statistics of the sock_ops program
    /// (`kernel.bpf_stats_enabled` must be 1): (run count, total run time ns).
    pub fn program_run_stats(&self) -> Result<(u64, u64), DatapathError> {
        let ebpf = self._ebpf.as_ref().ok_or_else(|| {
            DatapathError::Load("program statistics need a freshly loaded datapath".into())
        })?;
        super::loader::run_stats(ebpf, PROGRAM_NAME)
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

/// A re-adopted handle has no socket-storage map: it is not pinned.
fn no_socket_slots() -> DatapathError {
    DatapathError::Map {
        map: maps::SOCKET_SLOTS,
        reason: "not pinned: only the handle that loaded the program has it".into(),
    }
}
