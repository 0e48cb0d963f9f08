//! Stopping a benchmark half-way without leaving anything behind.
//!
//! **Why.** A benchmark takes minutes to hours, and people stop them: with
//! Ctrl-C, with `kill`, with a timeout. A `plume-cc bench` that died by a
//! signal used to leave everything it had started: its iperf3 clients and
//! servers (spinning on a link whose forwarding threads were gone, and
//! holding every descriptor they inherited, such as the lock a wrapper
//! script held around the benchmark: 17 minutes of a session were lost to
//! that on 2026-12-05), its network namespaces, its cgroups, and a daemon
//! still limiting the flows of a cgroup nobody measured. Now:
//!
//! - **SIGINT or SIGTERM** ([`request`], called by the binary's handler)
//!   ends the run in progress at its next check (at most
//!   [`POLL`] later): its children are killed and reaped, the daemon is
//!   stopped with SIGTERM (so it hands every flow back to the kernel), the
//!   emulator and its namespaces and the cgroups are removed, and the
//!   report is written for the runs that finished. Nothing finished is
//!   lost.
//! - **SIGKILL** (or any death the handlers cannot see) kills the
//!   children too: each is started with a parent-death signal
//!   ([`die_with_parent`]): SIGKILL for iperf3, SIGTERM for the daemon, so
//!   that it still releases its flows. What only the dead process could
//!   have removed (namespaces under `/run/netns`, cgroup folders) is named
//!   after its pid, and the next benchmark removes those of dead pids
//!   before it starts ([`remove_leftovers`]).

use std::{
    os::unix::process::CommandExt as _,
    path::PathBuf,
    process::Command,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use crate::datapath::cgroup;

/// Set once a stop was asked for; never cleared (a process stops once).
static CANCEL: AtomicBool = AtomicBool::new(false);

/// How often a waiting run checks for a stop.
pub const POLL: Duration = Duration::from_millis(20);

/// The prefix of the cgroups a benchmark's `plume` schemes run in:
/// `plume-bench-PID-N` under the cgroup v2 root.
pub const CGROUP_PREFIX: &str = "plume-bench";

/// Asks the benchmark in progress to stop. Async-signal-safe (one atomic
/// store), so a signal handler may call it.
pub fn request() {
    CANCEL.store(true, Ordering::SeqCst);
}

/// Whether a stop was asked for.
pub fn requested() -> bool {
    CANCEL.load(Ordering::SeqCst)
}

/// Sleeps until `deadline` or a stop, whichever comes first; true if it
/// was a stop.
pub fn sleep_until(deadline: Instant) -> bool {
    loop {
        if requested() {
            return true;
        }
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return false;
        };
        std::thread::sleep(left.min(POLL));
    }
}

/// Makes the child that `cmd` starts get `signal` when the thread that
/// starts it dies (`PR_SET_PDEATHSIG`), and not start at all if this
/// process is already gone by the time it runs.
///
/// The signal follows the *thread* that forks: every benchmark child is
/// started and waited for by the same thread, which outlives it.
pub fn die_with_parent(cmd: &mut Command, signal: libc::c_int) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: prctl and getppid are async-signal-safe and touch no memory
    // of the parent.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent died between fork and prctl: nothing will signal.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// What [`remove_leftovers`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Leftovers {
    /// Network namespaces (`plume-emu-PID-N-in/out`).
    pub namespaces: Vec<String>,
    /// Datapaths pinned for benchmark cgroups, detached
    /// (`/sys/fs/bpf/plume-cc/..._plume-bench-PID-N`).
    pub pins: Vec<PathBuf>,
    /// Cgroup folders (`plume-bench-PID-N`).
    pub cgroups: Vec<PathBuf>,
}

/// Removes what benchmarks that died without cleaning up left, in this
/// order: the emulator's namespaces (which closes the sockets the dead
/// run's flows had in them), the datapaths their daemons left pinned (now
/// with no live flow, so they detach: `plume-cc cleanup`'s work), and the
/// benchmark's cgroups. Only what a process that is gone created; a
/// benchmark running now keeps its own.
pub fn remove_leftovers() -> Leftovers {
    let namespaces = crate::emu::netns::cleanup_leftovers(false).unwrap_or_else(|e| {
        tracing::warn!("removing leftover emulator namespaces: {e}");
        Vec::new()
    });
    let pins = orphan_pins()
        .into_iter()
        .filter(|pins| detach(pins))
        .collect();
    let cgroups = cgroup::remove_orphans(CGROUP_PREFIX).unwrap_or_else(|e| {
        tracing::warn!("removing leftover benchmark cgroups: {e}");
        Vec::new()
    });
    Leftovers {
        namespaces,
        pins,
        cgroups,
    }
}

/// The pin folders of datapaths attached to a benchmark cgroup whose
/// benchmark is gone.
fn orphan_pins() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(crate::datapath::PIN_ROOT) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            crate::datapath::cgroup_of_pin_name(&name)
                .and_then(|cg| {
                    let leaf = cg.file_name()?.to_string_lossy().into_owned();
                    cgroup::creator_pid(&leaf, CGROUP_PREFIX)
                })
                .is_some_and(|pid| !cgroup::process_alive(pid))
        })
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

/// Detaches the datapath pinned at `pins` once its flows are gone (as a
/// run's own cleanup does, retrying while sockets of a deleted namespace
/// go); true if it did.
fn detach(pins: &std::path::Path) -> bool {
    use crate::daemon::status::CleanupOutcome;
    match super::scheme::detach_pins(pins) {
        Ok(Some(CleanupOutcome::Detached { .. })) => true,
        Ok(Some(other)) => {
            tracing::warn!("{}: {other}", pins.display());
            false
        }
        Ok(None) => false,
        Err(e) => {
            tracing::warn!("{}: {e}", pins.display());
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child started with the parent-death signal dies with the thread
    /// that started it, not with the process: the benchmark starts and
    /// waits for its children on one thread, and this is the guarantee it
    /// relies on. (Root not needed.)
    #[test]
    fn a_child_dies_with_the_thread_that_started_it() {
        let child = std::thread::spawn(|| {
            let mut cmd = Command::new("sleep");
            cmd.arg("30");
            die_with_parent(&mut cmd, libc::SIGKILL);
            cmd.spawn().expect("sleep starts")
        })
        .join()
        .unwrap();
        let mut child = child;
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break Some(s);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        use std::os::unix::process::ExitStatusExt as _;
        let status = status.expect("the child outlived the thread that started it");
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn a_sleep_ends_at_its_deadline_without_a_stop() {
        let t = Instant::now();
        assert!(!sleep_until(t + Duration::from_millis(50)));
        assert!(t.elapsed() >= Duration::from_millis(50));
    }
}
