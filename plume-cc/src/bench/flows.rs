//! Per-flow accounting of a multi-flow run, from the emulator's own link log:
//! which bytes and delays belong to which flow (by the port the log records),
//! throughput time series in 500 ms bins (as Pantheon and mm-graph bin them),
//! Jain's fairness index, the scheme's share and convergence time.
//!
//! Pure functions over [`LogEvent`]s and numbers; nothing here runs a flow or
//! reads a clock, so every metric is unit-tested from known inputs.

use crate::emu::log::LogEvent;

/// Time-series bin, milliseconds (Pantheon's and mm-graph's 500 ms).
pub const BIN_MS: u64 = 500;
/// A flow has converged when it is within this fraction of its fair share.
pub const CONVERGENCE_TOLERANCE: f64 = 0.2;
/// ... averaged over this many bins (1 s), so one lucky bin does not count.
pub const CONVERGENCE_BINS: usize = 2;

/// One departure of a flow's packet from the bottleneck.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Departure {
    t_ms: u64,
    size: u32,
    delay_ms: u64,
}

/// The uplink log's events of one flow (one outer port), in time order.
#[derive(Debug, Clone, Default)]
pub struct FlowLog {
    /// The flow's outer (server) port.
    pub port: u16,
    departures: Vec<Departure>,
    drops: Vec<u64>,
}

/// Splits a link log by port: one [`FlowLog`] per entry of `ports`, in that
/// order. Packets of other ports, and lines without a port, belong to none.
pub fn split_by_port(events: &[LogEvent], ports: &[u16]) -> Vec<FlowLog> {
    let mut flows: Vec<FlowLog> = ports
        .iter()
        .map(|&port| FlowLog {
            port,
            ..FlowLog::default()
        })
        .collect();
    let index = |p: Option<u16>| p.and_then(|p| ports.iter().position(|&q| q == p));
    for e in events {
        match *e {
            LogEvent::Departure {
                t_ms,
                size,
                delay_ms,
                port,
            } => {
                if let Some(i) = index(port) {
                    flows[i].departures.push(Departure {
                        t_ms,
                        size,
                        delay_ms,
                    });
                }
            }
            LogEvent::Drop { t_ms, port, .. } => {
                if let Some(i) = index(port) {
                    flows[i].drops.push(t_ms);
                }
            }
            _ => {}
        }
    }
    // Departures are logged in time order already; sort anyway so that the
    // window sums below can bisect whatever log they are given.
    for f in &mut flows {
        f.departures.sort_by_key(|d| d.t_ms);
        f.drops.sort_unstable();
    }
    flows
}

impl FlowLog {
    /// Bytes that left the link in `(from_ms, to_ms]`.
    pub fn bytes(&self, from_ms: u64, to_ms: u64) -> u64 {
        let a = self.departures.partition_point(|d| d.t_ms <= from_ms);
        let b = self.departures.partition_point(|d| d.t_ms <= to_ms);
        self.departures[a..b.max(a)]
            .iter()
            .map(|d| u64::from(d.size))
            .sum()
    }

    /// Mean rate over `(from_ms, to_ms]`, Mbit/s (0 for an empty window).
    pub fn mbps(&self, from_ms: u64, to_ms: u64) -> f64 {
        if to_ms <= from_ms {
            return 0.0;
        }
        self.bytes(from_ms, to_ms) as f64 * 8.0 / ((to_ms - from_ms) as f64 * 1000.0)
    }

    /// Sorted times in the link of the packets that *arrived* in
    /// `[from_ms, to_ms]`, wherever they departed (a deep queue drains after
    /// the test), ms.
    pub fn link_delays(&self, from_ms: u64, to_ms: u64) -> Vec<f64> {
        let mut v: Vec<f64> = self
            .departures
            .iter()
            .filter(|d| {
                let arrived = d.t_ms.saturating_sub(d.delay_ms);
                arrived >= from_ms && arrived <= to_ms
            })
            .map(|d| d.delay_ms as f64)
            .collect();
        v.sort_by(f64::total_cmp);
        v
    }

    /// Drops in `(from_ms, to_ms]`.
    pub fn drops(&self, from_ms: u64, to_ms: u64) -> u64 {
        self.drops
            .iter()
            .filter(|&&t| t > from_ms && t <= to_ms)
            .count() as u64
    }

    /// Mbit/s in consecutive [`BIN_MS`] bins from `start_ms` up to `end_ms`
    /// (a last partial bin is dropped).
    pub fn series(&self, start_ms: u64, end_ms: u64) -> Vec<f64> {
        let n = end_ms.saturating_sub(start_ms) / BIN_MS;
        (0..n)
            .map(|k| self.mbps(start_ms + k * BIN_MS, start_ms + (k + 1) * BIN_MS))
            .collect()
    }
}

/// The p-th percentile (0..=100) of sorted values, by the project's one
/// quantile convention ([`crate::stats::quantile`]; NaN when empty).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    crate::stats::quantile(sorted, p / 100.0)
}

pub use crate::stats::jain;

/// The share of the total that the flows marked `mine` got (NaN when the
/// total is 0).
pub fn share(rates: &[f64], mine: &[bool]) -> f64 {
    let total: f64 = rates.iter().sum();
    let own: f64 = rates
        .iter()
        .zip(mine)
        .filter(|(_, &m)| m)
        .map(|(r, _)| r)
        .sum();
    if total > 0.0 {
        own / total
    } else {
        f64::NAN
    }
}

/// Convergence of every flow, in bins after its start bin: the first bin
/// `b >= start` where the flow's mean rate over bins `[b, b + CONVERGENCE_BINS)`
/// is within [`CONVERGENCE_TOLERANCE`] of its fair share over the same bins.
/// The fair share of a bin is the total rate of the flows active in it (those
/// whose start bin is at or before it) divided by their number, so it is
/// measured against what the flows got together, not against the link's
/// capacity. None: the flow never got there.
///
/// `series[i]` is flow i's rate per bin; `start_bin[i]` the bin it started in.
pub fn convergence_bins(series: &[Vec<f64>], start_bin: &[usize]) -> Vec<Option<usize>> {
    let bins = series.iter().map(Vec::len).min().unwrap_or(0);
    let fair: Vec<f64> = (0..bins)
        .map(|k| {
            let active: Vec<usize> = (0..series.len()).filter(|&i| start_bin[i] <= k).collect();
            if active.is_empty() {
                0.0
            } else {
                active.iter().map(|&i| series[i][k]).sum::<f64>() / active.len() as f64
            }
        })
        .collect();
    (0..series.len())
        .map(|i| {
            (start_bin[i]..bins.saturating_sub(CONVERGENCE_BINS - 1)).find_map(|b| {
                let r = b..b + CONVERGENCE_BINS;
                let x = series[i][r.clone()].iter().sum::<f64>() / CONVERGENCE_BINS as f64;
                let f = fair[r].iter().sum::<f64>() / CONVERGENCE_BINS as f64;
                (f > 0.0 && (x - f).abs() <= CONVERGENCE_TOLERANCE * f).then_some(b - start_bin[i])
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(t_ms: u64, delay_ms: u64, port: Option<u16>) -> LogEvent {
        LogEvent::Departure {
            t_ms,
            size: 1500,
            delay_ms,
            port,
        }
    }

    /// A synthetic log: port 5201 sends one packet per ms for 2 s; port 5202
    /// joins at 1 s with one packet every 2 ms; a portless packet and one of
    /// an unknown port belong to neither.
    fn two_flows() -> Vec<LogEvent> {
        let mut ev = Vec::new();
        for t in 1..=2000u64 {
            ev.push(LogEvent::Arrival {
                t_ms: t,
                size: 1500,
                port: Some(5201),
            });
            ev.push(dep(t, if t > 1000 { 30 } else { 10 }, Some(5201)));
            if t > 1000 && t % 2 == 0 {
                ev.push(dep(t, 50, Some(5202)));
            }
        }
        ev.push(dep(500, 1, None));
        ev.push(dep(600, 1, Some(9)));
        ev.push(LogEvent::Drop {
            t_ms: 1500,
            size: 1500,
            port: Some(5202),
        });
        ev
    }

    #[test]
    fn per_flow_bytes_delays_and_series_from_a_synthetic_log() {
        let flows = split_by_port(&two_flows(), &[5201, 5202]);
        let (a, b) = (&flows[0], &flows[1]);
        assert_eq!((a.port, b.port), (5201, 5202));
        // (0, 2000]: 2000 packets of flow a, 500 of flow b.
        assert_eq!(a.bytes(0, 2000), 2000 * 1500);
        assert_eq!(b.bytes(0, 2000), 500 * 1500);
        assert_eq!(b.bytes(0, 1000), 0);
        // One 1500-byte packet per ms is 12 Mbit/s; one per 2 ms is 6.
        assert!((a.mbps(0, 2000) - 12.0).abs() < 1e-9);
        assert!((b.mbps(1000, 2000) - 6.0).abs() < 1e-9);
        assert_eq!(
            (a.drops(0, 2000), b.drops(0, 2000), b.drops(1500, 2000)),
            (0, 1, 0)
        );
        // Delays count by arrival time (departure - delay): the packets that
        // arrived by 900 ms left by 910 ms.
        let d = a.link_delays(0, 900);
        assert_eq!((d.len(), d[0], d[d.len() - 1]), (910, 10.0, 10.0));
        let d = a.link_delays(1200, 2000);
        assert!(d.iter().all(|&x| x == 30.0) && !d.is_empty());
        assert_eq!(b.link_delays(0, 2000).len(), 500);
        let s = a.series(0, 2000);
        assert_eq!(s.len(), 4);
        assert!(s.iter().all(|&x| (x - 12.0).abs() < 1e-9), "{s:?}");
        let s = b.series(0, 2000);
        assert_eq!(s, vec![0.0, 0.0, 6.0, 6.0]);
        assert_eq!(a.series(0, 1999).len(), 3, "a partial last bin is dropped");
    }

    #[test]
    fn percentiles_follow_the_one_quantile_convention() {
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 50.0), 2.5);
        assert!((percentile(&[1.0, 2.0, 3.0, 4.0], 95.0) - 3.85).abs() < 1e-12);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[test]
    fn jain_and_share_of_known_inputs() {
        assert!((jain(&[1.0, 1.0]) - 1.0).abs() < 1e-12);
        assert!((jain(&[1.0, 0.0]) - 0.5).abs() < 1e-12);
        assert!((jain(&[3.0, 1.0]) - 0.8).abs() < 1e-12);
        assert!((jain(&[2.0, 1.0, 1.0]) - 16.0 / 18.0).abs() < 1e-12);
        assert_eq!(jain(&[]), 1.0);
        assert!((share(&[3.0, 1.0], &[true, false]) - 0.75).abs() < 1e-12);
        assert!((share(&[3.0, 1.0, 4.0], &[true, true, false]) - 0.5).abs() < 1e-12);
        assert!(share(&[0.0, 0.0], &[true, false]).is_nan());
    }

    #[test]
    fn convergence_is_measured_against_the_active_flows_fair_share() {
        // Flow 0 alone at 12, then flow 1 joins in bin 2 and ramps 1, 3, 5, 6
        // while flow 0 yields: fair share 6.
        let s0 = vec![12.0, 12.0, 11.0, 9.0, 7.0, 6.0, 6.0, 6.0];
        let s1 = vec![0.0, 0.0, 1.0, 3.0, 5.0, 6.0, 6.0, 6.0];
        let c = convergence_bins(&[s0, s1], &[0, 2]);
        // Flow 0: bins 0-1 at 12 against a fair share of 12.
        assert_eq!(c[0], Some(0));
        // Flow 1: bins 4-5 average 5.5 against 6 (within 20%); bins 3-4
        // average 4 against 6 (not).
        assert_eq!(c[1], Some(2));
        // A starved flow never converges.
        let c = convergence_bins(&[vec![10.0; 6], vec![0.5; 6]], &[0, 0]);
        assert_eq!(c[1], None);
        assert_eq!(c[0], None, "10 is not within 20% of the fair 5.25");
    }
}
