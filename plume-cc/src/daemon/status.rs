//! `plume-cc status`: the live flows of every running datapath, like `ss -ti`.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
};

use plume_cc_common::{DatapathConfig, FlowStats, FlowTarget, CWND_UNCLAMPED, PACING_UNLIMITED};
use serde::Serialize;

use crate::datapath::{self, Datapath, Shutdown};

/// One flow as `status` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct FlowRow {
    /// Socket cookie.
    pub cookie: u64,
    /// The datapath's statistics.
    #[serde(skip)]
    pub stats: FlowStats,
    /// The daemon's target, if any.
    #[serde(skip)]
    pub target: Option<FlowTarget>,
    /// Local address (None when unknown: an IPv6 flow in another network
    /// namespace, whose address the flow map does not keep).
    pub local_addr: Option<IpAddr>,
    /// Local port.
    pub local_port: u32,
    /// Remote address (None when unknown, as for `local_addr`).
    pub remote_addr: Option<IpAddr>,
    /// Remote port.
    pub remote_port: u32,
    /// Smoothed RTT, microseconds.
    pub srtt_us: u32,
    /// Minimum RTT, microseconds.
    pub min_rtt_us: u32,
    /// cwnd, segments.
    pub cwnd: u32,
    /// Bytes acknowledged.
    pub bytes_acked: u64,
    /// Retransmitted segments.
    pub total_retrans: u32,
    /// cwnd clamp in force (None = kernel's own).
    pub cwnd_clamp: Option<u32>,
    /// Pacing cap in force, bytes/s (None = none).
    pub pacing_cap: Option<u32>,
    /// Age of the daemon's target, milliseconds.
    pub target_age_ms: Option<u64>,
    /// Whether the daemon's target is in force (see [`TargetState`]).
    pub target_state: TargetState,
}

/// Where a flow's target stands. `cwnd_clamp` and `pacing_cap` of a row are
/// what the program last applied to the socket, which is what is in force;
/// this says whether the daemon still stands behind it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetState {
    /// No target: the kernel's own control (or a limit left from before).
    None,
    /// A fresh target, applied on the flow's callbacks.
    Active,
    /// Older than the datapath's staleness limit: the program lifts the
    /// limits at the flow's next callback (an idle flow keeps them until then).
    Expired,
    /// The datapath is in observe-only mode (its daemon stopped): targets
    /// are ignored and limits lifted at each flow's next callback.
    Ignored,
}

impl TargetState {
    /// The state of a target of age `age_ns` under `config`.
    pub fn of(age_ns: Option<u64>, config: &DatapathConfig) -> Self {
        let stale = config.stale_after_or_default_ns();
        match age_ns {
            None => Self::None,
            Some(_) if config.enforce == 0 => Self::Ignored,
            Some(a) if a > stale => Self::Expired,
            Some(_) => Self::Active,
        }
    }
}

/// One running (or left-over) datapath as `status` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct DatapathStatus {
    /// Its pin folder.
    pub pins: PathBuf,
    /// The cgroup it serves, read back from the pin folder's name
    /// ([`datapath::cgroup_of_pin_name`]) when that folder exists; None
    /// for a folder named otherwise by `--pin-dir`.
    pub cgroup: Option<PathBuf>,
    /// `enforcing` (a daemon's targets apply) or `observe-only`.
    pub mode: &'static str,
    /// Targets older than this are lifted by the program, milliseconds.
    pub stale_after_ms: u64,
    /// The program's counters (flows opened/closed, map full, targets
    /// applied/expired, setsockopt errors, events dropped, ...).
    pub counters: datapath::Counters,
    /// The flows.
    pub flows: Vec<FlowRow>,
}

/// The pin folders of running datapaths under `/sys/fs/bpf/plume-cc`.
pub fn pinned_datapaths() -> Vec<PathBuf> {
    datapaths_under(Path::new(datapath::PIN_ROOT))
}

/// The sub-folders of `root`, sorted: each one datapath's pins, as `run`
/// makes them under [`datapath::PIN_ROOT`] (none when `root` cannot be read).
pub fn datapaths_under(root: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Which datapaths `status --pin-dir DIR` shows: DIR itself when it holds a
/// pinned link (one datapath's folder, as given to `run --pin-dir`), else
/// every datapath folder under it (a root like [`datapath::PIN_ROOT`]),
/// which is none when nothing runs there (`status --json` then prints
/// `[]`, as it does for the default root); None when DIR is not a folder
/// (a mistyped path is an error, not an empty answer).
pub fn datapaths_at(dir: &Path) -> Option<Vec<PathBuf>> {
    if datapath::attached_at(dir) {
        return Some(vec![dir.to_owned()]);
    }
    if !dir.is_dir() {
        return None;
    }
    Some(
        datapaths_under(dir)
            .into_iter()
            .filter(|d| datapath::attached_at(d))
            .collect(),
    )
}

/// Reads the datapath pinned at `pin_dir`: its mode, counters and flows.
///
/// A datapath pinned by another build of plume-cc whose map layouts differ
/// is refused with [`datapath::DatapathError::Layout`] rather than misread;
/// `status` skips it with a warning and shows the others.
pub fn read(pin_dir: &Path) -> Result<DatapathStatus, datapath::DatapathError> {
    let dp = Datapath::adopt(pin_dir, pin_dir)?;
    let config = dp.config()?;
    let now = datapath::monotonic_ns();
    let flows = dp.flows()?;
    // The flow map keeps IPv4 addresses only; the rest come from a socket
    // listing of this network namespace, when there are any to find (a
    // failed listing leaves them unknown rather than failing `status`).
    let listed = if flows.iter().any(|(_, s)| s.family != AF_INET) {
        datapath::sockdiag::tcp_endpoints_here().unwrap_or_default()
    } else {
        Default::default()
    };
    let mut rows = Vec::new();
    for (cookie, s) in flows {
        let (local_addr, remote_addr) = match listed.get(&cookie) {
            Some(e) => (Some(e.local.ip()), Some(e.remote.ip())),
            None if s.family == AF_INET => (
                // bpf_sock_ops keeps them in network byte order.
                Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(s.local_ip4)))),
                Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(s.remote_ip4)))),
            ),
            None => (None, None),
        };
        let target = dp.target(cookie)?;
        let age_ns = target.map(|t| now.saturating_sub(t.written_ns));
        rows.push(FlowRow {
            cookie,
            stats: s,
            target,
            local_addr,
            local_port: s.local_port,
            remote_addr,
            remote_port: s.remote_port,
            srtt_us: s.srtt_us,
            min_rtt_us: s.min_rtt_us,
            cwnd: s.snd_cwnd,
            bytes_acked: s.bytes_acked,
            total_retrans: s.total_retrans,
            cwnd_clamp: (s.applied_cwnd_clamp != CWND_UNCLAMPED).then_some(s.applied_cwnd_clamp),
            pacing_cap: (s.applied_pacing != PACING_UNLIMITED).then_some(s.applied_pacing),
            target_age_ms: age_ns.map(|a| a / 1_000_000),
            target_state: TargetState::of(age_ns, &config),
        });
    }
    rows.sort_by_key(|r| r.cookie);
    Ok(DatapathStatus {
        pins: pin_dir.to_owned(),
        cgroup: pin_dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(datapath::cgroup_of_pin_name)
            // A folder named by `--pin-dir` may decode to a path that is
            // no cgroup at all; only an existing folder is shown.
            .filter(|c| c.is_dir()),
        mode: if config.enforce != 0 {
            "enforcing"
        } else {
            "observe-only"
        },
        stale_after_ms: config.stale_after_ns / 1_000_000,
        counters: dp.counters()?,
        flows: rows,
    })
}

/// What `plume-cc cleanup` did with one datapath.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CleanupOutcome {
    /// A running process (its daemon) holds it: left alone.
    InUse(Vec<u32>),
    /// Every flow was released or reaped; detached and unpinned.
    Detached {
        /// Flows removed because their socket was gone.
        reaped: usize,
    },
    /// Idle live flows still carry limits: left attached in observe-only
    /// mode, which lifts them at their next callback.
    LeftObserving {
        /// Flows removed because their socket was gone.
        reaped: usize,
        /// Live flows still limited.
        limited: usize,
    },
}

impl std::fmt::Display for CleanupOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InUse(pids) => write!(f, "in use by process {pids:?} (a running daemon): left alone"),
            Self::Detached { reaped } => write!(
                f,
                "detached and unpinned ({reaped} flows whose socket was gone reaped)"
            ),
            Self::LeftObserving { reaped, limited } => write!(
                f,
                "{limited} idle live flows still carry limits: left attached in observe-only mode, which lifts them at their next packet; run cleanup again later ({reaped} flows whose socket was gone reaped)"
            ),
        }
    }
}

/// Why [`cleanup`] could not run.
#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    /// The folder holds no pinned link.
    #[error("no pinned link in {} (not an attached datapath); if no daemon is starting on it, remove the folder with `rm -r`", pin_dir.display())]
    NotAttached {
        /// The folder given.
        pin_dir: std::path::PathBuf,
    },
    /// Adopting, releasing or detaching the datapath failed.
    #[error(transparent)]
    Datapath(#[from] datapath::DatapathError),
}

/// Removes the datapath pinned at `pin_dir` if no process holds it: reaps
/// flows whose socket is gone, releases the others, and detaches once no
/// live flow carries a limit (see [`CleanupOutcome`]).
pub fn cleanup(pin_dir: &Path) -> Result<CleanupOutcome, CleanupError> {
    if !datapath::attached_at(pin_dir) {
        return Err(CleanupError::NotAttached {
            pin_dir: pin_dir.to_path_buf(),
        });
    }
    let mut dp = Datapath::adopt(pin_dir, pin_dir)?;
    let holders = dp.holders()?;
    if !holders.is_empty() {
        return Ok(CleanupOutcome::InUse(holders));
    }
    let reaped = match dp.reap_gone() {
        Ok(gone) => gone.len(),
        Err(e) => {
            tracing::warn!("could not list the host's sockets, nothing reaped: {e}");
            0
        }
    };
    Ok(match dp.shutdown(std::time::Duration::from_secs(1))? {
        Shutdown::Detached => CleanupOutcome::Detached { reaped },
        Shutdown::LeftObserving(c) => CleanupOutcome::LeftObserving {
            reaped,
            limited: c.len(),
        },
    })
}

/// `AF_INET` as the flow map's `family` holds it.
const AF_INET: u32 = libc::AF_INET as u32;

/// An address and port as `ss -ti` writes them: `10.0.0.1:5201`,
/// `[::1]:5201`, and `*:5201` when the address is unknown (ss's wildcard).
pub fn endpoint(addr: Option<IpAddr>, port: u32) -> String {
    match (addr, u16::try_from(port)) {
        (Some(ip), Ok(p)) => SocketAddr::new(ip, p).to_string(),
        (Some(IpAddr::V6(ip)), Err(_)) => format!("[{ip}]:{port}"),
        (Some(ip), Err(_)) => format!("{ip}:{port}"),
        (None, _) => format!("*:{port}"),
    }
}

/// Formats rows as a table.
pub fn table(rows: &[FlowRow]) -> String {
    // Wide enough for an IPv4 address and port; IPv6 ones push the line.
    let mut out = format!(
        "{:>10} {:<21} {:<21} {:>9} {:>9} {:>6} {:>12} {:>7} {:>7} {:>12} {:>16}\n",
        "cookie",
        "local",
        "peer",
        "srtt_us",
        "minrtt_us",
        "cwnd",
        "acked_bytes",
        "retrans",
        "clamp",
        "pacing_Bps",
        "target"
    );
    for r in rows {
        let opt = |v: Option<u32>| v.map_or("-".to_string(), |x| x.to_string());
        let target = match (r.target_state, r.target_age_ms) {
            (TargetState::None, _) | (_, None) => "-".to_string(),
            (TargetState::Active, Some(a)) => format!("active {a}ms"),
            (TargetState::Expired, Some(a)) => format!("expired {a}ms"),
            (TargetState::Ignored, Some(a)) => format!("ignored {a}ms"),
        };
        out.push_str(&format!(
            "{:>10} {:<21} {:<21} {:>9} {:>9} {:>6} {:>12} {:>7} {:>7} {:>12} {:>16}\n",
            r.cookie,
            endpoint(r.local_addr, r.local_port),
            endpoint(r.remote_addr, r.remote_port),
            r.srtt_us,
            r.min_rtt_us,
            r.cwnd,
            r.bytes_acked,
            r.total_retrans,
            opt(r.cwnd_clamp),
            opt(r.pacing_cap),
            target,
        ));
    }
    if rows.iter().any(|r| {
        matches!(r.target_state, TargetState::Expired | TargetState::Ignored)
            && (r.cwnd_clamp.is_some() || r.pacing_cap.is_some())
    }) {
        out.push_str(
            "(clamp and pacing are the limits in force; an expired or ignored target's limits are lifted at the flow's next packet)\n",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use plume_cc_common::DEFAULT_STALE_AFTER_NS;

    fn config(enforce: u32) -> DatapathConfig {
        DatapathConfig {
            stale_after_ns: 500_000_000,
            enforce,
            ..DatapathConfig::default()
        }
    }

    #[test]
    fn a_target_past_the_staleness_limit_is_expired_not_active() {
        let c = config(1);
        assert_eq!(TargetState::of(None, &c), TargetState::None);
        assert_eq!(TargetState::of(Some(20_000_000), &c), TargetState::Active);
        assert_eq!(TargetState::of(Some(500_000_000), &c), TargetState::Active);
        assert_eq!(TargetState::of(Some(500_000_001), &c), TargetState::Expired);
        assert_eq!(
            TargetState::of(Some(3_000_000_000), &c),
            TargetState::Expired
        );
        // Observe-only: no target is in force, however fresh.
        assert_eq!(TargetState::of(Some(1), &config(0)), TargetState::Ignored);
        // stale_after_ns 0 means the program's default.
        let d = DatapathConfig {
            stale_after_ns: 0,
            ..config(1)
        };
        assert_eq!(
            TargetState::of(Some(DEFAULT_STALE_AFTER_NS + 1), &d),
            TargetState::Expired
        );
    }

    #[test]
    fn the_table_marks_expired_targets() {
        let row = |state, clamp| FlowRow {
            cookie: 7,
            stats: FlowStats::default(),
            target: None,
            local_addr: Some(IpAddr::from([10, 0, 0, 1])),
            local_port: 1,
            remote_addr: None,
            remote_port: 2,
            srtt_us: 0,
            min_rtt_us: 0,
            cwnd: 10,
            bytes_acked: 0,
            total_retrans: 0,
            cwnd_clamp: clamp,
            pacing_cap: None,
            target_age_ms: Some(3012),
            target_state: state,
        };
        let t = table(&[row(TargetState::Expired, Some(40))]);
        assert!(t.contains("expired 3012ms"), "{t}");
        assert!(!t.contains("active"), "{t}");
        assert!(t.contains("lifted at the flow's next packet"), "{t}");
        let t = table(&[row(TargetState::Active, Some(40))]);
        assert!(t.contains("active 3012ms") && !t.contains("lifted"), "{t}");
        let json = serde_json::to_value(row(TargetState::Expired, None)).unwrap();
        assert_eq!(json["target_state"], "expired");
    }

    #[test]
    fn a_pin_folder_with_nothing_running_lists_none_and_a_missing_one_is_refused() {
        let root = std::env::temp_dir().join(format!("plume-cc-pins-{}", std::process::id()));
        std::fs::create_dir_all(root.join("stopped")).unwrap();
        assert_eq!(datapaths_at(&root), Some(Vec::new()));
        std::fs::write(root.join("stopped").join("link"), b"").unwrap();
        assert_eq!(datapaths_at(&root), Some(vec![root.join("stopped")]));
        assert_eq!(
            datapaths_at(&root.join("stopped")),
            Some(vec![root.join("stopped")])
        );
        assert_eq!(datapaths_at(&root.join("missing")), None);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn addresses_are_written_as_ss_writes_them() {
        let v4 = Some(IpAddr::from([10, 0, 0, 1]));
        let v6 = Some(IpAddr::from(std::net::Ipv6Addr::LOCALHOST));
        assert_eq!(endpoint(v4, 5201), "10.0.0.1:5201");
        assert_eq!(endpoint(v6, 5201), "[::1]:5201");
        let mapped = "::ffff:10.0.0.1".parse::<IpAddr>().ok();
        assert_eq!(endpoint(mapped, 443), "[::ffff:10.0.0.1]:443");
        assert_eq!(endpoint(None, 5201), "*:5201");
        // A port the kernel never hands out is shown, not hidden.
        assert_eq!(endpoint(v4, 70_000), "10.0.0.1:70000");
        assert_eq!(endpoint(v6, 70_000), "[::1]:70000");
        let row = FlowRow {
            cookie: 3,
            stats: FlowStats::default(),
            target: None,
            local_addr: v6,
            local_port: 5201,
            remote_addr: v6,
            remote_port: 40_000,
            srtt_us: 0,
            min_rtt_us: 0,
            cwnd: 10,
            bytes_acked: 0,
            total_retrans: 0,
            cwnd_clamp: None,
            pacing_cap: None,
            target_age_ms: None,
            target_state: TargetState::None,
        };
        let t = table(std::slice::from_ref(&row));
        assert!(
            t.contains(" [::1]:5201 ") && t.contains(" [::1]:40000 "),
            "{t}"
        );
        // JSON keeps the structured fields.
        let json = serde_json::to_value(&row).unwrap();
        assert_eq!(json["local_addr"], "::1");
        assert_eq!(json["local_port"], 5201);
        assert_eq!(json["remote_port"], 40_000);
        let json = serde_json::to_value(FlowRow {
            remote_addr: None,
            ..row
        })
        .unwrap();
        assert!(json["remote_addr"].is_null());
    }

    /// A folder without a pinned link is refused, typed, before anything
    /// is adopted (no root needed to see it).
    #[test]
    fn cleanup_refuses_a_folder_with_no_pinned_link() {
        let dir = tempfile::tempdir().unwrap();
        let e = cleanup(dir.path()).unwrap_err();
        assert!(matches!(e, CleanupError::NotAttached { .. }), "{e}");
        assert!(e.to_string().contains("no pinned link"), "{e}");
    }
}
