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

    /// Reads every flow into `out` with batched lookups (a few system calls
    /// for thousands of flows), reusing `out`'s allocation.
    pub fn read_flows(&self, out: &mut Vec<(u64, FlowStats)>) -> Result<(), DatapathError> {
        batch::lookup_all(&self.flows_fd, 4096, out).map_err(|e| DatapathError::Map {
            map: maps::FLOW_STATS,
            reason: format!("batched lookup: {e}"),
        })
    }

    /// Writes many targets in one batched update, all stamped now. The caller
    /// must have read the flows just before; a flow that closed in between
    /// leaves an orphan entry, which [`Datapath::collect_orphan_targets`] removes.
    pub fn write_targets(
        &mut self,
        cookies: &[u64],
        targets: &mut [FlowTarget],
    ) -> Result<(), DatapathError> {
        let now = monotonic_ns();
        for t in targets.iter_mut() {
            t.written_ns = now;
        }
        batch::update_all(&self.targets_fd, cookies, targets).map_err(|e| DatapathError::Map {
            map: maps::FLOW_TARGETS,
            reason: format!("batched update: {e}"),
        })?;
        self.bump_generation()
    }

    /// Removes target entries whose flow is gone (closed between a read and
    /// a batched write). `live` must be sorted. Returns how many were removed.
    pub fn collect_orphan_targets(&mut self, live: &[u64]) -> Result<usize, DatapathError> {
        let mut orphans = 0;
        for cookie in self.target_cookies()? {
            if live.binary_search(&cookie).is_err() && self.flow(cookie)?.is_none() {
                let _ = self.targets.remove(&cookie);
                orphans += 1;
            }
        }
        if orphans > 0 {
            self.bump_generation()?;
        }
        Ok(orphans)
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
    /// the program would have done it on TCP_CLOSE).
    pub fn remove_flow(&mut self, cookie: u64) -> Result<(), DatapathError> {
        if self.targets.remove(&cookie).is_ok() {
            self.bump_generation()?;
        }
        match self.flows.remove(&cookie) {
            Ok(()) => Ok(()),
            // Already gone (the program's own TCP_CLOSE path raced us).
            Err(aya::maps::MapError::SyscallError(e))
                if e.io_error.raw_os_error() == Some(libc::ENOENT) =>
            {
                Ok(())
            }
            Err(e) => Err(map_err(maps::FLOW_STATS)(e)),
        }
    }

    /// Removes every flow idle for [`super::REAP_IDLE_NS`] whose socket is
    /// gone; returns their cookies.
    pub fn reap_gone(&mut self) -> Result<Vec<u64>, DatapathError> {
        let candidates = super::reap_candidates(&self.flows()?, monotonic_ns());
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
        match self.flows.get(&cookie, 0) {
            Ok(s) => Ok(Some(s)),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(map_err(maps::FLOW_STATS)(e)),
        }
    }

    /// Cookies that have a target entry.
    pub fn target_cookies(&self) -> Result<Vec<u64>, DatapathError> {
        let mut targets: Vec<(u64, FlowTarget)> = Vec::new();
        batch::lookup_all(&self.targets_fd, 4096, &mut targets).map_err(|e| {
            DatapathError::Map {
                map: maps::FLOW_TARGETS,
                reason: format!("batched lookup: {e}"),
            }
        })?;
        Ok(targets.into_iter().map(|(c, _)| c).collect())
    }

    /// The target of one flow, if any.
    pub fn target(&self, cookie: u64) -> Result<Option<FlowTarget>, DatapathError> {
        match self.targets.get(&cookie, 0) {
            Ok(t) => Ok(Some(t)),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(map_err(maps::FLOW_TARGETS)(e)),
        }
    }

    /// Writes a target for a registered flow, stamped with the current time.
    /// The program applies it on the flow's next callback, and lifts it once
    /// it is older than the configured staleness timeout.
    ///
    /// Only flows present in the stats map get a target (`BPF_EXIST` on the
    /// stats side is checked first), so a target can never outlive its flow.
    pub fn set_target(
        &mut self,
        cookie: u64,
        cwnd_clamp: u32,
        max_pacing_bytes_per_sec: u32,
    ) -> Result<bool, DatapathError> {
        if self.flow(cookie)?.is_none() {
            return Ok(false);
        }
        let target = FlowTarget {
            written_ns: monotonic_ns(),
            cwnd_clamp,
            max_pacing_bytes_per_sec,
        };
        self.targets
            .insert(cookie, target, 0)
            .map_err(map_err(maps::FLOW_TARGETS))?;
        // The flow may have closed in between; its close callback then ran
        // before our insert, so remove the orphan ourselves.
        if self.flow(cookie)?.is_none() {
            let _ = self.targets.remove(&cookie);
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
        for cookie in self.target_cookies()? {
            let _ = self.targets.remove(&cookie);
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
