//! Handing every flow back to the kernel ("no limit" targets, then a wait
//! for each flow's next callback) and shutting the datapath down: detach
//! and unpin, or stay attached observe-only for idle flows still limited.
//! Its own file because it is the datapath's end of life, which the daemon
//! runs once.

use super::super::loader::{remove_pin_folder, PINNED_MAPS, PIN_ROOT};
use super::*;

impl Datapath {
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
                .filter(|(_, s)| s.controlled())
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
            remove_pin_folder(&dir, Path::new(PIN_ROOT));
        }
        Ok(Shutdown::Detached)
    }
}
