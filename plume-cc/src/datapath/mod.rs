//! The eBPF datapath: the embedded sock_ops object and its user-space handle.
//!
//! The kernel side (`plume-cc-ebpf`) collects per-flow statistics and applies
//! per-flow targets. This module loads that object, attaches it to a cgroup v2
//! folder and reads and writes its maps. It makes no decisions: the daemon
//! decides, the datapath only carries statistics up and targets down.

pub mod cgroup;
pub mod probe;
pub mod selftest;
pub mod tcpinfo;

use std::{
    os::fd::AsFd as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use aya::{
    maps::{Array, HashMap, MapData, PerCpuArray},
    programs::{links::FdLink, CgroupAttachMode, SockOps},
    Ebpf, EbpfLoader,
};
use plume_cc_common::{
    counters, maps, DatapathConfig, FlowStats, FlowTarget, CWND_UNCLAMPED, PACING_UNLIMITED,
    PROGRAM_NAME,
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
}

/// A loaded sock_ops program attached to one cgroup v2 folder.
///
/// Dropping it detaches the program. Limits already applied to a socket stay
/// until the socket's next callback with the program attached, so callers
/// that applied targets should call [`Datapath::release_all`] first.
pub struct Datapath {
    ebpf: Ebpf,
    cgroup: PathBuf,
    _link: Option<FdLink>,
    // Keeps the log ring buffer open (dropping it makes the program unusable).
    logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
}

impl std::fmt::Debug for Datapath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Datapath")
            .field("cgroup", &self.cgroup)
            .finish()
    }
}

impl Datapath {
    /// Loads the embedded object and attaches its program to the cgroup v2
    /// folder `cgroup` (which must exist).
    pub fn attach(cgroup: &Path, config: DatapathConfig) -> Result<Self, DatapathError> {
        if EBPF_OBJECT.is_empty() {
            return Err(DatapathError::NoObject);
        }
        cgroup::check_cgroup2(cgroup)?;
        raise_memlock_limit();
        let mut ebpf = EbpfLoader::new().load(EBPF_OBJECT).map_err(|e| {
            let text = format!("{e:#}");
            if is_permission_error(&text) {
                DatapathError::Permission(text)
            } else {
                DatapathError::Load(text)
            }
        })?;
        let logger = aya_log::EbpfLogger::init(&mut ebpf).ok();
        let program: &mut SockOps = ebpf
            .program_mut(PROGRAM_NAME)
            .ok_or_else(|| DatapathError::Load(format!("no program {PROGRAM_NAME} in the object")))?
            .try_into()
            .map_err(|e| DatapathError::Load(format!("{e}")))?;
        program.load().map_err(|e| {
            let text = format!("{e:#}");
            if is_permission_error(&text) {
                DatapathError::Permission(text)
            } else {
                DatapathError::Load(text)
            }
        })?;
        let file = std::fs::File::open(cgroup).map_err(|e| DatapathError::Attach {
            path: cgroup.to_owned(),
            reason: e.to_string(),
        })?;
        let link_id = program
            .attach(file.as_fd(), CgroupAttachMode::Single)
            .map_err(|e| DatapathError::Attach {
                path: cgroup.to_owned(),
                reason: format!("{e:#}"),
            })?;
        let link = program
            .take_link(link_id)
            .ok()
            .and_then(|l| FdLink::try_from(l).ok());
        let mut datapath = Self {
            ebpf,
            cgroup: cgroup.to_owned(),
            _link: link,
            logger,
        };
        datapath.set_config(config)?;
        Ok(datapath)
    }

    /// The cgroup folder the program is attached to.
    pub fn cgroup(&self) -> &Path {
        &self.cgroup
    }

    /// Writes the datapath knobs.
    pub fn set_config(&mut self, config: DatapathConfig) -> Result<(), DatapathError> {
        let map = self
            .ebpf
            .map_mut(maps::CONFIG)
            .ok_or_else(|| DatapathError::Load(format!("no map {}", maps::CONFIG)))?;
        let mut array: Array<&mut MapData, DatapathConfig> =
            Array::try_from(map).map_err(map_err(maps::CONFIG))?;
        array.set(0, config, 0).map_err(map_err(maps::CONFIG))
    }

    /// Statistics of every flow currently registered, keyed by socket cookie.
    pub fn flows(&self) -> Result<Vec<(u64, FlowStats)>, DatapathError> {
        let map = self
            .ebpf
            .map(maps::FLOW_STATS)
            .ok_or_else(|| DatapathError::Load(format!("no map {}", maps::FLOW_STATS)))?;
        let flows: HashMap<&MapData, u64, FlowStats> =
            HashMap::try_from(map).map_err(map_err(maps::FLOW_STATS))?;
        // A flow may close between listing a key and reading it: skip those.
        Ok(flows.iter().filter_map(Result::ok).collect())
    }

    /// Statistics of one flow, if registered.
    pub fn flow(&self, cookie: u64) -> Result<Option<FlowStats>, DatapathError> {
        let map = self
            .ebpf
            .map(maps::FLOW_STATS)
            .ok_or_else(|| DatapathError::Load(format!("no map {}", maps::FLOW_STATS)))?;
        let flows: HashMap<&MapData, u64, FlowStats> =
            HashMap::try_from(map).map_err(map_err(maps::FLOW_STATS))?;
        match flows.get(&cookie, 0) {
            Ok(s) => Ok(Some(s)),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(map_err(maps::FLOW_STATS)(e)),
        }
    }

    /// Cookies that have a target entry.
    pub fn target_cookies(&self) -> Result<Vec<u64>, DatapathError> {
        let map = self
            .ebpf
            .map(maps::FLOW_TARGETS)
            .ok_or_else(|| DatapathError::Load(format!("no map {}", maps::FLOW_TARGETS)))?;
        let targets: HashMap<&MapData, u64, FlowTarget> =
            HashMap::try_from(map).map_err(map_err(maps::FLOW_TARGETS))?;
        Ok(targets.keys().filter_map(Result::ok).collect())
    }

    /// Writes a target for a registered flow, stamped with the current time.
    /// The program applies it on the flow's next callback, and lifts it once
    /// it is older than the configured staleness timeout.
    pub fn set_target(
        &mut self,
        cookie: u64,
        cwnd_clamp: u32,
        max_pacing_bytes_per_sec: u32,
    ) -> Result<(), DatapathError> {
        let target = FlowTarget {
            written_ns: monotonic_ns(),
            cwnd_clamp,
            max_pacing_bytes_per_sec,
        };
        let map = self
            .ebpf
            .map_mut(maps::FLOW_TARGETS)
            .ok_or_else(|| DatapathError::Load(format!("no map {}", maps::FLOW_TARGETS)))?;
        let mut targets: HashMap<&mut MapData, u64, FlowTarget> =
            HashMap::try_from(map).map_err(map_err(maps::FLOW_TARGETS))?;
        targets
            .insert(cookie, target, 0)
            .map_err(map_err(maps::FLOW_TARGETS))
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

    /// The datapath counters, summed over CPUs.
    pub fn counters(&self) -> Result<Counters, DatapathError> {
        let map = self
            .ebpf
            .map(maps::COUNTERS)
            .ok_or_else(|| DatapathError::Load(format!("no map {}", maps::COUNTERS)))?;
        let array: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(map).map_err(map_err(maps::COUNTERS))?;
        let get = |i: u32| -> Result<u64, DatapathError> {
            Ok(array
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
        })
    }

    /// Forwards the program's aya-log records to the `log` facade.
    pub fn flush_logs(&mut self) {
        if let Some(logger) = self.logger.as_mut() {
            logger.flush();
        }
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
