//! The eBPF datapath: the embedded sock_ops object and its user-space handle.
//!
//! The kernel side (`plume-cc-ebpf`) collects per-flow statistics and applies
//! per-flow targets. This module loads that object, attaches it to a cgroup v2
//! folder and reads and writes its maps. It makes no decisions: the daemon
//! decides, the datapath only carries statistics up and targets down.

mod batch;
pub mod cgroup;
pub mod probe;
pub mod selftest;
pub mod tcpinfo;

use std::{
    os::fd::{AsFd as _, OwnedFd},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use aya::{
    maps::{Array, HashMap, Map, MapData, PerCpuArray, RingBuf},
    programs::{
        links::{FdLink, PinnedLink},
        CgroupAttachMode, SockOps,
    },
    Ebpf, EbpfLoader,
};
use plume_cc_common::{
    counters, maps, DatapathConfig, FlowEvent, FlowStats, FlowTarget, CWND_UNCLAMPED,
    PACING_UNLIMITED, PROGRAM_NAME,
};

/// The sock_ops object built from `plume-cc-ebpf` by the build script.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/plume-cc"));

/// Errors of the datapath; each says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum DatapathError {
    /// The binary was built with AYA_BUILD_SKIP=1.
    #[error("this binary carries no eBPF object (it was built with AYA_BUILD_SKIP=1); rebuild without it")]
    NoObject,
    /// Not enough privileges to load BPF programs.
    #[error("loading BPF programs needs root (CAP_BPF and CAP_NET_ADMIN): run with sudo ({0})")]
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
    /// Callbacks that checked a flow's target (see `counters::TARGET_CHECKS`).
    pub target_checks: u64,
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
    flows: HashMap<MapData, u64, FlowStats>,
    targets: HashMap<MapData, u64, FlowTarget>,
    flows_fd: OwnedFd,
    targets_fd: OwnedFd,
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

/// Names of the pinned objects inside a pin folder.
const LINK_PIN: &str = "link";
const PINNED_MAPS: [&str; 5] = [
    maps::FLOW_STATS,
    maps::FLOW_TARGETS,
    maps::CONFIG,
    maps::COUNTERS,
    maps::EVENTS,
];

/// The default bpffs folder for a cgroup: `/sys/fs/bpf/plume-cc/<cgroup path with _>`.
pub fn default_pin_dir(cgroup: &Path) -> PathBuf {
    let name: String = cgroup
        .to_string_lossy()
        .trim_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    PathBuf::from("/sys/fs/bpf/plume-cc").join(name)
}

/// Whether a datapath is attached and pinned at `pin_dir` (its link pin is
/// the last thing [`Datapath::attach_pinned`] creates, so a daemon started on
/// a cgroup is controlling it once this holds).
pub fn attached_at(pin_dir: &Path) -> bool {
    pin_dir.join(LINK_PIN).exists()
}

fn load_error(e: impl std::fmt::Display) -> DatapathError {
    let text = format!("{e:#}");
    if is_permission_error(&text) {
        DatapathError::Permission(text)
    } else {
        DatapathError::Load(text)
    }
}

/// A duplicate of a hash map's file descriptor, for batched access.
fn dup_fd(map: &Map, name: &'static str) -> Result<OwnedFd, DatapathError> {
    match map {
        Map::HashMap(data) => {
            data.fd()
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| DatapathError::Map {
                    map: name,
                    reason: e.to_string(),
                })
        }
        _ => Err(DatapathError::Map {
            map: name,
            reason: "not a hash map".into(),
        }),
    }
}

/// Takes a map out of the loaded object, pinning it first if asked.
fn take_map(
    ebpf: &mut Ebpf,
    name: &'static str,
    pin_dir: Option<&Path>,
) -> Result<Map, DatapathError> {
    let map = ebpf
        .take_map(name)
        .ok_or_else(|| DatapathError::Load(format!("no map {name} in the object")))?;
    if let Some(dir) = pin_dir {
        map.pin(dir.join(name)).map_err(|e| DatapathError::Attach {
            path: dir.to_owned(),
            reason: format!("pinning map {name}: {e}"),
        })?;
    }
    Ok(map)
}

/// Takes a hash map out of the loaded object (pinning it first if asked),
/// with a duplicate of its descriptor for batched access.
fn take_hash<V: aya::Pod>(
    ebpf: &mut Ebpf,
    name: &'static str,
    pin_dir: Option<&Path>,
) -> Result<(HashMap<MapData, u64, V>, OwnedFd), DatapathError> {
    let map = take_map(ebpf, name, pin_dir)?;
    let fd = dup_fd(&map, name)?;
    Ok((HashMap::try_from(map).map_err(map_err(name))?, fd))
}

/// Opens a pinned hash map with a duplicate of its descriptor.
fn hash_from_pin<V: aya::Pod>(
    dir: &Path,
    name: &'static str,
) -> Result<(HashMap<MapData, u64, V>, OwnedFd), DatapathError> {
    let map = Map::HashMap(MapData::from_pin(dir.join(name)).map_err(map_err(name))?);
    let fd = dup_fd(&map, name)?;
    Ok((HashMap::try_from(map).map_err(map_err(name))?, fd))
}

/// Takes a typed map out of the loaded object, pinning it first if asked.
fn take<T>(ebpf: &mut Ebpf, name: &'static str, pin_dir: Option<&Path>) -> Result<T, DatapathError>
where
    T: TryFrom<Map, Error = aya::maps::MapError>,
{
    let map = take_map(ebpf, name, pin_dir)?;
    T::try_from(map).map_err(map_err(name))
}

fn from_pin<T>(dir: &Path, name: &'static str, wrap: fn(MapData) -> Map) -> Result<T, DatapathError>
where
    T: TryFrom<Map, Error = aya::maps::MapError>,
{
    let data = MapData::from_pin(dir.join(name)).map_err(map_err(name))?;
    T::try_from(wrap(data)).map_err(map_err(name))
}

impl Datapath {
    /// Loads the embedded object and attaches its program to the cgroup v2
    /// folder `cgroup` (which must exist). Detached when dropped.
    pub fn attach(cgroup: &Path, config: DatapathConfig) -> Result<Self, DatapathError> {
        Self::attach_with_capacity(cgroup, config, plume_cc_common::MAX_FLOWS)
    }

    /// Like [`Datapath::attach`] with flow maps of `max_flows` entries
    /// (tests of the map-full path use a tiny one).
    pub fn attach_with_capacity(
        cgroup: &Path,
        config: DatapathConfig,
        max_flows: u32,
    ) -> Result<Self, DatapathError> {
        let (mut dp, link) = Self::load_and_attach(cgroup, None, max_flows)?;
        dp.link = Some(LinkHold::Owned(link));
        dp.set_config(config)?;
        Ok(dp)
    }

    /// Attaches to `cgroup` with program, link and maps pinned under
    /// `pin_dir` (on bpffs). If a live pinned link is already there (a
    /// previous daemon that stopped or crashed), re-adopts it and its flows
    /// instead of loading a second program.
    pub fn attach_pinned(
        cgroup: &Path,
        config: DatapathConfig,
        pin_dir: &Path,
    ) -> Result<Self, DatapathError> {
        cgroup::check_cgroup2(cgroup)?;
        check_bpffs(pin_dir)?;
        if attached_at(pin_dir) {
            let mut dp = Self::adopt(cgroup, pin_dir)?;
            dp.set_config(config)?;
            return Ok(dp);
        }
        let pin_err = |what: &str, e: &dyn std::fmt::Display| DatapathError::Attach {
            path: pin_dir.to_owned(),
            reason: format!("pinning {what}: {e}"),
        };
        std::fs::create_dir_all(pin_dir).map_err(|e| pin_err("folder", &e))?;
        let (mut dp, link) =
            Self::load_and_attach(cgroup, Some(pin_dir), plume_cc_common::MAX_FLOWS)?;
        let pinned = link
            .pin(pin_dir.join(LINK_PIN))
            .map_err(|e| pin_err("link", &e))?;
        dp.link = Some(LinkHold::Pinned(pinned));
        dp.pin_dir = Some(pin_dir.to_owned());
        dp.set_config(config)?;
        Ok(dp)
    }

    /// Opens the pinned link and maps of a running datapath (read-only use
    /// such as `plume-cc status`, or re-adoption by a restarted daemon).
    pub fn adopt(cgroup: &Path, pin_dir: &Path) -> Result<Self, DatapathError> {
        let link =
            PinnedLink::from_pin(pin_dir.join(LINK_PIN)).map_err(|e| DatapathError::Attach {
                path: pin_dir.to_owned(),
                reason: format!("opening the pinned link: {e}"),
            })?;
        let (flows, flows_fd) = hash_from_pin(pin_dir, maps::FLOW_STATS)?;
        let (targets, targets_fd) = hash_from_pin(pin_dir, maps::FLOW_TARGETS)?;
        Ok(Self {
            flows,
            targets,
            flows_fd,
            targets_fd,
            config: from_pin(pin_dir, maps::CONFIG, Map::Array)?,
            counters: from_pin(pin_dir, maps::COUNTERS, Map::PerCpuArray)?,
            events: from_pin(pin_dir, maps::EVENTS, Map::RingBuf).ok(),
            link: Some(LinkHold::Pinned(link)),
            cgroup: cgroup.to_owned(),
            pin_dir: Some(pin_dir.to_owned()),
            adopted: true,
            logger: None,
            _ebpf: None,
        })
    }

    fn load_and_attach(
        cgroup: &Path,
        pin_dir: Option<&Path>,
        max_flows: u32,
    ) -> Result<(Self, FdLink), DatapathError> {
        if EBPF_OBJECT.is_empty() {
            return Err(DatapathError::NoObject);
        }
        cgroup::check_cgroup2(cgroup)?;
        raise_memlock_limit();
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(maps::FLOW_STATS, max_flows.max(1))
            .map_max_entries(maps::FLOW_TARGETS, max_flows.max(1))
            .load(EBPF_OBJECT)
            .map_err(load_error)?;
        let logger = aya_log::EbpfLogger::init(&mut ebpf).ok();
        let program: &mut SockOps = ebpf
            .program_mut(PROGRAM_NAME)
            .ok_or_else(|| DatapathError::Load(format!("no program {PROGRAM_NAME} in the object")))?
            .try_into()
            .map_err(load_error)?;
        program.load().map_err(load_error)?;
        let file = std::fs::File::open(cgroup).map_err(|e| DatapathError::Attach {
            path: cgroup.to_owned(),
            reason: e.to_string(),
        })?;
        let attach_err = |e: &dyn std::fmt::Display| DatapathError::Attach {
            path: cgroup.to_owned(),
            reason: format!("{e:#}"),
        };
        let link_id = program
            .attach(file.as_fd(), CgroupAttachMode::Single)
            .map_err(|e| attach_err(&e))?;
        let link = program.take_link(link_id).map_err(|e| attach_err(&e))?;
        let link = FdLink::try_from(link).map_err(|e| attach_err(&e))?;
        let (flows, flows_fd) = take_hash(&mut ebpf, maps::FLOW_STATS, pin_dir)?;
        let (targets, targets_fd) = take_hash(&mut ebpf, maps::FLOW_TARGETS, pin_dir)?;
        let dp = Self {
            flows,
            targets,
            flows_fd,
            targets_fd,
            config: take(&mut ebpf, maps::CONFIG, pin_dir)?,
            counters: take(&mut ebpf, maps::COUNTERS, pin_dir)?,
            events: take(&mut ebpf, maps::EVENTS, pin_dir).ok(),
            link: None,
            cgroup: cgroup.to_owned(),
            pin_dir: None,
            adopted: false,
            logger,
            _ebpf: Some(ebpf),
        };
        Ok((dp, link))
    }

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

    /// Writes the datapath knobs.
    pub fn set_config(&mut self, config: DatapathConfig) -> Result<(), DatapathError> {
        self.config.set(0, config, 0).map_err(map_err(maps::CONFIG))
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
        Ok(())
    }

    /// Removes target entries whose flow is gone (closed between a read and
    /// a batched write). `live` must be sorted. Returns how many were removed.
    pub fn collect_orphan_targets(&mut self, live: &[u64]) -> Result<usize, DatapathError> {
        let mut orphans = 0;
        let mut targets: Vec<(u64, FlowTarget)> = Vec::new();
        batch::lookup_all(&self.targets_fd, 4096, &mut targets).map_err(|e| {
            DatapathError::Map {
                map: maps::FLOW_TARGETS,
                reason: format!("batched lookup: {e}"),
            }
        })?;
        for (cookie, _) in targets {
            if live.binary_search(&cookie).is_err() && self.flow(cookie)?.is_none() {
                let _ = self.targets.remove(&cookie);
                orphans += 1;
            }
        }
        Ok(orphans)
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
        let still = self.release_all(timeout)?;
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
        })
    }

    /// Inserts a flow entry from user space, as if the program had
    /// registered it. Only for benchmarks of the control loop at flow counts
    /// a test machine cannot open for real; the program ignores entries
    /// without a socket.
    pub fn insert_synthetic_flow(
        &mut self,
        cookie: u64,
        stats: FlowStats,
    ) -> Result<(), DatapathError> {
        self.flows
            .insert(cookie, stats, 0)
            .map_err(map_err(maps::FLOW_STATS))
    }

    /// Removes a flow entry from user space (see [`Datapath::insert_synthetic_flow`]).
    pub fn remove_synthetic_flow(&mut self, cookie: u64) {
        let _ = self.flows.remove(&cookie);
        let _ = self.targets.remove(&cookie);
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

/// Checks that the folder for pins is on a mounted bpffs.
fn check_bpffs(pin_dir: &Path) -> Result<(), DatapathError> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let on_bpffs = mounts.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 2 && f[2] == "bpf" && pin_dir.starts_with(f[1])
    });
    if on_bpffs {
        Ok(())
    } else {
        Err(DatapathError::NoBpffs(pin_dir.to_owned()))
    }
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK; lift it so loading
/// works there too (a no-op on newer kernels).
fn raise_memlock_limit() {
    let rlim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain syscall with a valid struct.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) };
    if rc != 0 {
        tracing::debug!("could not raise RLIMIT_MEMLOCK");
    }
}
