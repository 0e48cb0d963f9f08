//! The eBPF datapath: the embedded sock_ops object and its user-space handle.
//!
//! The kernel side (`plume-cc-ebpf`) collects per-flow statistics and applies
//! per-flow targets. This module loads that object, attaches it to a cgroup v2
//! folder and reads and writes its maps. It makes no decisions: the daemon
//! decides, the datapath only carries statistics up and targets down.

pub mod cgroup;
pub(crate) mod floor;
pub mod held;
mod loader;
mod map_io;
pub mod probe;
pub mod selftest;
pub mod slots;
pub mod sockdiag;
pub mod synthetic;
pub mod tcpinfo;

pub use loader::{attached_at, cgroup_of_pin_name, default_pin_dir, pin_name, PIN_ROOT};

use std::{
    os::fd::{AsFd as _, AsRawFd},
    path::{Path, PathBuf},
    sync::atomic::AtomicU64,
    time::{Duration, Instant},
};

use aya::{
    maps::{Array, HashMap, Map, MapData, PerCpuArray, RingBuf, SkStorage, Stack},
    programs::{
        links::{FdLink, PinnedLink},
        CgroupAttachMode, SockOps,
    },
    Ebpf, EbpfLoader,
};
use plume_cc_common::{
    counters, maps, DatapathConfig, FlowEvent, FlowStats, FlowTarget, SocketSlot, StatsSlot,
    TargetSlot, CWND_UNCLAMPED, FLOOR_PROGRAM_NAME, PACING_UNLIMITED, PROGRAM_NAME,
};
use slots::{SlotRead, SlotTable};

/// The sock_ops object built from `plume-cc-ebpf` by the build script.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/plume-cc"));

/// Errors of the datapath; each says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum DatapathError {
    /// The binary was built with AYA_BUILD_SKIP=1.
    #[error("this binary carries no eBPF object (it was built with AYA_BUILD_SKIP=1); rebuild without it")]
    NoObject,
    /// Not enough privileges to load BPF programs.
    #[error("loading and attaching the BPF datapath needs CAP_BPF and CAP_NET_ADMIN (CAP_SYS_ADMIN instead of CAP_BPF before Linux 5.8): run as root, or as the systemd service (`plume-cc service install`), which keeps just these ({0})")]
    Permission(String),
    /// Loading the object or the program failed.
    #[error("loading the sock_ops program failed: {0}")]
    Load(String),
    /// A cgroup problem.
    #[error(transparent)]
    Cgroup(#[from] cgroup::CgroupError),
    /// Attaching failed.
    #[error("attaching to cgroup {path} failed: {reason}")]
    Attach {
        /// The cgroup folder.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// No bpffs where the pins should go.
    #[error("{0} is not on a mounted bpf file system: run `mount -t bpf bpf /sys/fs/bpf` (or `cargo xtask setup`)")]
    NoBpffs(PathBuf),
    /// Listing the host's sockets failed (so no entry was reaped).
    #[error(transparent)]
    SockDiag(#[from] sockdiag::SockDiagError),
    /// Pins made by a plume-cc with another map layout (before the
    /// per-flow slots, or with other slot sizes): reading them with this
    /// layout would misread every field, so they are refused.
    #[error("the datapath pinned at {dir} has another map layout ({what}): another plume-cc version made it. Stop its daemon, then run `plume-cc cleanup` with that version, or remove the folder (`rm -r {dir}`), which detaches its program")]
    Layout {
        /// The pin folder.
        dir: PathBuf,
        /// What differs.
        what: String,
    },
    /// A map operation failed.
    #[error("map {map}: {reason}")]
    Map {
        /// The map's name.
        map: &'static str,
        /// Why.
        reason: String,
    },
}

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> DatapathError {
    move |e| DatapathError::Map {
        map,
        reason: e.to_string(),
    }
}

fn is_permission_error(text: &str) -> bool {
    text.contains("Operation not permitted") || text.contains("Permission denied")
}

/// capability(7) numbers.
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;

/// The capabilities that loading and attaching lack, given the effective
/// set (`CapEff:` of /proc/self/status, hexadecimal). CAP_SYS_ADMIN stands
/// in for CAP_BPF (kernels before 5.8 know only it).
fn missing_capabilities(cap_eff_hex: &str) -> Vec<&'static str> {
    let eff = u64::from_str_radix(cap_eff_hex.trim(), 16).unwrap_or(0);
    let has = |c: u32| eff & (1u64 << c) != 0;
    let mut missing = Vec::new();
    if !has(CAP_BPF) && !has(CAP_SYS_ADMIN) {
        missing.push("CAP_BPF");
    }
    if !has(CAP_NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    missing
}

/// Fails with [`DatapathError::Permission`] before anything is created
/// when this process cannot load and attach the program, so an unprivileged
/// `plume-cc run` says what it needs instead of leaving a pin folder
/// behind or failing deep in a syscall. Where /proc cannot be read the
/// syscalls decide.
fn check_capabilities() -> Result<(), DatapathError> {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return Ok(());
    };
    let Some(eff) = status.lines().find_map(|l| l.strip_prefix("CapEff:")) else {
        return Ok(());
    };
    let missing = missing_capabilities(eff);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(DatapathError::Permission(format!(
            "this process lacks {}",
            missing.join(" and ")
        )))
    }
}

/// Monotonic nanoseconds on the same clock as the eBPF program's `bpf_ktime_get_ns`.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: CLOCK_MONOTONIC always exists; ts is a valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A flow whose statistics have not changed for this long (no callback at
/// all: no ACK, no retransmission, no state change) is a candidate for
/// reaping; it is removed only if its socket is also gone
/// ([`Datapath::gone_sockets`]).
///
/// Why both: age alone would remove live idle flows (an idle keep-alive
/// connection has no callbacks for hours), whose limits would then never be
/// lifted; the socket listing alone could race a flow registered while it
/// runs, or miss a namespace no process holds. A flow idle this long whose
/// socket no process namespace shows is gone for good.
pub const REAP_IDLE_NS: u64 = 30_000_000_000;

/// The cookies of `flows` whose statistics are older than [`REAP_IDLE_NS`]
/// at monotonic time `now_ns`.
pub fn reap_candidates(flows: &[(u64, FlowStats)], now_ns: u64) -> Vec<u64> {
    flows
        .iter()
        .filter(|(_, s)| now_ns.saturating_sub(s.updated_ns) >= REAP_IDLE_NS)
        .map(|(c, _)| *c)
        .collect()
}

/// Datapath counters, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    /// Flows registered.
    pub flows_opened: u64,
    /// Flows removed on close.
    pub flows_closed: u64,
    /// Flows left to the kernel because the map was full.
    pub flow_map_full: u64,
    /// Limits applied with bpf_setsockopt.
    pub targets_applied: u64,
    /// Stale targets lifted by the datapath.
    pub targets_expired: u64,
    /// Failed bpf_setsockopt calls.
    pub setsockopt_errors: u64,
    /// Events dropped on a full ring buffer.
    pub events_dropped: u64,
    /// Flows whose kernel congestion control was pinned at establishment.
    pub base_pinned: u64,
    /// Callbacks that checked a flow's target (see `counters::TARGET_CHECKS`;
    /// added per flow in bulk, so it may trail by the checks since the
    /// last write of targets).
    pub target_checks: u64,
    /// Statistics snapshots taken on callbacks (see
    /// `counters::SNAPSHOTS`).
    pub snapshots: u64,
    /// Flows the daemon's reads left out because their slot was being
    /// written on every try (see `counters::TORN_READS`; published by the
    /// daemon).
    pub torn_reads: u64,
    /// Callbacks that found their flow's slot through the cookie hash
    /// because the socket's storage had no valid entry (see
    /// `counters::SLOT_HASH_LOOKUPS`); 0 while every flow was registered
    /// by this program with its storage entry.
    pub slot_hash_lookups: u64,
    /// Callbacks on which a lift waited for the tail of loss recovery
    /// alone (see `counters::RECOVERY_TAIL_WAITS`).
    pub recovery_tail_waits: u64,
}

/// How the program stays attached.
enum LinkHold {
    /// Detached when dropped (tests, selftest).
    Owned(#[allow(dead_code)] FdLink),
    /// Pinned in bpffs: survives the process (the daemon).
    Pinned(PinnedLink),
}

/// What [`Datapath::shutdown`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// Every flow was back under kernel control; the program was detached
    /// and the pins removed.
    Detached,
    /// Some idle flows still carried our limits (they had no callback to lift
    /// them on); the program stays attached in observe-only mode, which lifts
    /// them on their next callback. The cookies are listed.
    LeftObserving(Vec<u64>),
}

/// A sock_ops program attached to one cgroup v2 folder, and its maps.
///
/// Created unpinned ([`Datapath::attach`]: detached when dropped) or pinned
/// in bpffs ([`Datapath::attach_pinned`]: program, link and maps outlive the
/// process, so a crashed daemon's flows keep the staleness fallback and a
/// restarted daemon re-adopts them).
pub struct Datapath {
    /// Cookie -> slot index of every registered flow.
    flows: HashMap<MapData, u64, u32>,
    /// Statistics slots, mmapped (read without system calls).
    stats_slots: SlotTable<StatsSlot>,
    /// Target slots, mmapped (written without system calls).
    target_slots: SlotTable<TargetSlot>,
    /// Free slot indices (the reaper pushes the slots it frees).
    free: Stack<MapData, u32>,
    /// Each socket's own (cookie, slot) entry, reached through a
    /// descriptor of the socket. Only a handle that loaded the program has
    /// it: the map is not pinned (only the program needs it).
    socket_slots: Option<SkStorage<MapData, SocketSlot>>,
    /// (cookie, slot) of each flow of the last [`Datapath::read_flows`]
    /// through the control loop, in read order, so the targets that follow
    /// find their slots without a lookup.
    last_read: Vec<(u64, u32)>,
    /// Slot reads that caught a write in progress on every try (the flow
    /// was left out of that read).
    torn_reads: AtomicU64,
    /// How many of `torn_reads` were added to the counters map's
    /// `TORN_READS` slot ([`Datapath::publish_torn_reads`]).
    torn_published: u64,
    config: Array<MapData, DatapathConfig>,
    counters: PerCpuArray<MapData, u64>,
    events: Option<RingBuf<MapData>>,
    link: Option<LinkHold>,
    cgroup: PathBuf,
    pin_dir: Option<PathBuf>,
    adopted: bool,
    // Keeps the log ring buffer open (dropping it makes the program unusable).
    logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
    _ebpf: Option<Ebpf>,
}

impl std::fmt::Debug for Datapath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Datapath")
            .field("cgroup", &self.cgroup)
            .field("pin_dir", &self.pin_dir)
            .field("adopted", &self.adopted)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_are_read_from_the_effective_set() {
        // root: every bit.
        assert!(missing_capabilities("000001ffffffffff").is_empty());
        // An unprivileged user: none.
        assert_eq!(
            missing_capabilities("0000000000000000"),
            ["CAP_BPF", "CAP_NET_ADMIN"]
        );
        // CAP_BPF + CAP_NET_ADMIN, what the systemd unit keeps.
        assert!(missing_capabilities(&format!("{:016x}", (1u64 << 39) | (1 << 12))).is_empty());
        // CAP_SYS_ADMIN stands in for CAP_BPF on old kernels.
        assert!(missing_capabilities(&format!("{:016x}", (1u64 << 21) | (1 << 12))).is_empty());
        assert_eq!(
            missing_capabilities(&format!("{:016x}", 1u64 << 39)),
            ["CAP_NET_ADMIN"]
        );
    }

    #[test]
    fn the_permission_error_names_the_capabilities() {
        let e = DatapathError::Permission("x".into()).to_string();
        assert!(e.contains("CAP_BPF") && e.contains("CAP_NET_ADMIN"), "{e}");
    }
}
