//! `plume-cc status`: the live flows of every running datapath, like `ss -ti`.

use std::path::{Path, PathBuf};

use plume_cc_common::{FlowStats, FlowTarget, CWND_UNCLAMPED, PACING_UNLIMITED};
use serde::Serialize;

use crate::datapath::{self, Datapath};

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
    /// Local port.
    pub local_port: u32,
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
}

/// The pin folders of running datapaths under `/sys/fs/bpf/plume-cc`.
pub fn pinned_datapaths() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("/sys/fs/bpf/plume-cc")
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

/// Reads the flows of the datapath pinned at `pin_dir`.
pub fn read(pin_dir: &Path) -> anyhow::Result<Vec<FlowRow>> {
    let dp = Datapath::adopt(pin_dir, pin_dir)?;
    let now = datapath::monotonic_ns();
    let mut rows = Vec::new();
    for (cookie, s) in dp.flows()? {
        let target = dp.target(cookie)?;
        rows.push(FlowRow {
            cookie,
            stats: s,
            target,
            local_port: s.local_port,
            remote_port: s.remote_port,
            srtt_us: s.srtt_us,
            min_rtt_us: s.min_rtt_us,
            cwnd: s.snd_cwnd,
            bytes_acked: s.bytes_acked,
            total_retrans: s.total_retrans,
            cwnd_clamp: (s.applied_cwnd_clamp != CWND_UNCLAMPED).then_some(s.applied_cwnd_clamp),
            pacing_cap: (s.applied_pacing != PACING_UNLIMITED).then_some(s.applied_pacing),
            target_age_ms: target.map(|t| now.saturating_sub(t.written_ns) / 1_000_000),
        });
    }
    rows.sort_by_key(|r| r.cookie);
    Ok(rows)
}

/// Formats rows as a table.
pub fn table(rows: &[FlowRow]) -> String {
    let mut out = format!(
        "{:>10} {:>6} {:>6} {:>9} {:>9} {:>6} {:>12} {:>7} {:>7} {:>12} {:>8}\n",
        "cookie",
        "lport",
        "rport",
        "srtt_us",
        "minrtt_us",
        "cwnd",
        "acked_bytes",
        "retrans",
        "clamp",
        "pacing_Bps",
        "age_ms"
    );
    for r in rows {
        let opt = |v: Option<u32>| v.map_or("-".to_string(), |x| x.to_string());
        out.push_str(&format!(
            "{:>10} {:>6} {:>6} {:>9} {:>9} {:>6} {:>12} {:>7} {:>7} {:>12} {:>8}\n",
            r.cookie,
            r.local_port,
            r.remote_port,
            r.srtt_us,
            r.min_rtt_us,
            r.cwnd,
            r.bytes_acked,
            r.total_retrans,
            opt(r.cwnd_clamp),
            opt(r.pacing_cap),
            r.target_age_ms.map_or("-".to_string(), |a| a.to_string()),
        ));
    }
    out
}
