//! The link as a pure state machine: a droptail queue drained by a trace's
//! delivery opportunities (Mahimahi semantics), and a fixed-delay line.
//!
//! Time is passed in (microseconds since the emulator's epoch); nothing here
//! reads a clock or touches a device, so every behaviour is unit-testable.
//! It must not allocate per packet on the hot path beyond the packet buffers
//! the caller hands in (buffers are recycled by the caller).

use std::{collections::VecDeque, sync::Arc};

use serde::{Deserialize, Serialize};

use super::log::LinkLog;
use crate::trace::{Schedule, OPPORTUNITY_BYTES};

/// Bytes mm-link counts on top of every IP datagram. Mahimahi opens its TUN
/// devices with `IFF_TUN` alone, without `IFF_NO_PI` (`TunDevice` in its
/// `src/util/netdevice.cc`), so each datagram it reads carries the 4-byte
/// packet-information header, and its delivery opportunity is
/// `PACKET_SIZE` = 1504 bytes (`link_queue.hh`). Our TUN devices have no
/// header; the link adds the 4 bytes in its accounting, so that a full-size
/// packet still takes exactly one opportunity and small packets share one
/// exactly as in mm-link (26 ACKs of 52 IP bytes, not 28), and a `bytes=`
/// droptail limit counts what mm-link counts. Statistics and logs stay in
/// IP bytes.
pub const TUN_PI_BYTES: usize = 4;

/// The bytes of `p` as mm-link accounts them (see [`TUN_PI_BYTES`]).
fn wire_bytes(p: &Packet) -> usize {
    p.data.len() + TUN_PI_BYTES
}

/// One packet in flight through the emulator: the raw IP datagram.
#[derive(Debug)]
pub struct Packet {
    /// The IP datagram (its length is the packet size in bytes).
    pub data: Vec<u8>,
    /// When it entered the current stage, microseconds since the epoch.
    pub arrival_us: u64,
}

/// Queue discipline of a link's bottleneck queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DropTail {
    /// Most packets the queue holds (None: unlimited).
    pub packets: Option<usize>,
    /// Most bytes the queue holds (None: unlimited).
    pub bytes: Option<usize>,
}

/// Why mm-link queue arguments were refused; each names the argument.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueArgError {
    /// Not `KEY=VALUE`.
    #[error("queue argument {part:?} is not KEY=VALUE")]
    NotKeyValue {
        /// The argument as given.
        part: String,
    },
    /// The value is not a count.
    #[error("queue argument {part:?}: {reason}")]
    NotACount {
        /// The argument as given.
        part: String,
        /// The integer parser's complaint.
        reason: String,
    },
    /// A key other than `packets` and `bytes`.
    #[error("unknown queue argument {key:?} (packets or bytes)")]
    UnknownKey {
        /// The key given.
        key: String,
    },
}

impl DropTail {
    /// Parses mm-link's `--uplink-queue-args` form: `packets=N`, `bytes=N`,
    /// or both separated by a comma; an empty string is unlimited.
    pub fn parse_args(s: &str) -> Result<Self, QueueArgError> {
        let mut q = DropTail::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| QueueArgError::NotKeyValue {
                    part: part.to_string(),
                })?;
            let n: usize =
                v.parse()
                    .map_err(|e: std::num::ParseIntError| QueueArgError::NotACount {
                        part: part.to_string(),
                        reason: e.to_string(),
                    })?;
            match k {
                "packets" => q.packets = Some(n),
                "bytes" => q.bytes = Some(n),
                _ => {
                    return Err(QueueArgError::UnknownKey { key: k.to_string() });
                }
            }
        }
        Ok(q)
    }

    /// Whether a packet of `size` bytes fits behind `len` packets / `bytes` bytes.
    fn admits(&self, len: usize, bytes: usize, size: usize) -> bool {
        self.packets.is_none_or(|p| len < p) && self.bytes.is_none_or(|b| bytes + size <= b)
    }

    /// mm-link style description (`droptail [packets=100]`).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(p) = self.packets {
            parts.push(format!("packets={p}"));
        }
        if let Some(b) = self.bytes {
            parts.push(format!("bytes={b}"));
        }
        if parts.is_empty() {
            "droptail [unlimited]".into()
        } else {
            format!("droptail [{}]", parts.join(", "))
        }
    }
}

/// Counters of one link direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkStats {
    /// Packets that arrived at the queue.
    pub arrivals: u64,
    /// Bytes that arrived at the queue.
    pub arrival_bytes: u64,
    /// Packets dropped by the droptail queue.
    pub drops: u64,
    /// Bytes dropped.
    pub drop_bytes: u64,
    /// Packets that left the link.
    pub departures: u64,
    /// Bytes that left the link.
    pub departure_bytes: u64,
    /// Delivery opportunities that occurred.
    pub opportunities: u64,
    /// Bytes of opportunities that found nothing to carry.
    pub wasted_bytes: u64,
    /// Largest queue length seen, packets.
    pub max_queue_packets: u64,
}

/// The bottleneck: a droptail queue drained by trace opportunities, or
/// unlimited (every packet departs when it arrives) without a trace.
#[derive(Debug)]
pub struct Link {
    trace: Option<Arc<Schedule>>,
    next_idx: usize,
    base_ms: u64,
    queue: VecDeque<Packet>,
    queue_bytes: usize,
    in_transit: Option<(Packet, usize)>,
    limit: DropTail,
    stats: LinkStats,
    log: Option<LinkLog>,
    departed: VecDeque<(u64, Packet)>,
}

impl Link {
    /// A link replaying `trace` (None: unlimited) with the queue `limit`,
    /// starting at time 0, optionally logging every event to `log`.
    pub fn new(trace: Option<Arc<Schedule>>, limit: DropTail, log: Option<LinkLog>) -> Self {
        Self {
            trace,
            next_idx: 0,
            base_ms: 0,
            queue: VecDeque::with_capacity(4096),
            queue_bytes: 0,
            in_transit: None,
            limit,
            stats: LinkStats::default(),
            log,
            departed: VecDeque::with_capacity(4096),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// Packets waiting (not counting one partly transmitted).
    pub fn queue_len(&self) -> usize {
        self.queue.len()
    }

    /// Flushes and returns the log, if any.
    pub fn take_log(&mut self) -> Option<LinkLog> {
        self.log.take()
    }

    fn next_opportunity_ms(&self) -> Option<u64> {
        self.trace
            .as_ref()
            .map(|t| self.base_ms + t.opportunities_ms()[self.next_idx])
    }

    /// When the link next needs attention (an opportunity with something to
    /// carry), microseconds; None if idle.
    pub fn next_event_us(&self) -> Option<u64> {
        if self.queue.is_empty() && self.in_transit.is_none() {
            return None;
        }
        self.next_opportunity_ms().map(|ms| ms * 1000)
    }

    /// Uses every opportunity at or before `now_us`. Departures are queued for
    /// [`Link::pop_departed`].
    pub fn advance(&mut self, now_us: u64) {
        let Some(trace) = self.trace.clone() else {
            return;
        };
        let ts = trace.opportunities_ms();
        loop {
            let t_ms = self.base_ms + ts[self.next_idx];
            if t_ms * 1000 > now_us {
                break;
            }
            self.use_opportunity(t_ms);
            self.next_idx += 1;
            if self.next_idx == ts.len() {
                self.next_idx = 0;
                self.base_ms += trace.period_ms();
            }
        }
    }

    fn use_opportunity(&mut self, t_ms: u64) {
        self.stats.opportunities += 1;
        if let Some(log) = &mut self.log {
            log.opportunity(t_ms);
        }
        let mut left = OPPORTUNITY_BYTES as usize + TUN_PI_BYTES;
        while left > 0 {
            if self.in_transit.is_none() {
                let Some(p) = self.queue.pop_front() else {
                    break;
                };
                let n = wire_bytes(&p);
                self.queue_bytes -= n;
                self.in_transit = Some((p, n));
            }
            let (_, remaining) = self.in_transit.as_mut().expect("set above");
            let amount = left.min(*remaining);
            *remaining -= amount;
            left -= amount;
            if *remaining == 0 {
                let (p, _) = self.in_transit.take().expect("set above");
                self.depart(t_ms * 1000, p);
            }
        }
        self.stats.wasted_bytes += left as u64;
    }

    fn depart(&mut self, t_us: u64, p: Packet) {
        self.stats.departures += 1;
        self.stats.departure_bytes += p.data.len() as u64;
        if let Some(log) = &mut self.log {
            log.departure(t_us, p.arrival_us, &p.data);
        }
        self.departed.push_back((t_us, p));
    }

    /// A packet arrives at `now_us` (call [`Link::advance`] to `now_us` first).
    /// Returns the packet back if the droptail queue dropped it.
    pub fn enqueue(&mut self, now_us: u64, mut p: Packet) -> Option<Packet> {
        let size = p.data.len();
        p.arrival_us = now_us;
        self.stats.arrivals += 1;
        self.stats.arrival_bytes += size as u64;
        if let Some(log) = &mut self.log {
            log.arrival(now_us, &p.data);
        }
        if self.trace.is_none() {
            self.depart(now_us, p);
            return None;
        }
        if !self
            .limit
            .admits(self.queue.len(), self.queue_bytes, wire_bytes(&p))
        {
            self.stats.drops += 1;
            self.stats.drop_bytes += size as u64;
            if let Some(log) = &mut self.log {
                log.drop(now_us, &p.data);
            }
            return Some(p);
        }
        self.queue_bytes += wire_bytes(&p);
        self.queue.push_back(p);
        self.stats.max_queue_packets = self.stats.max_queue_packets.max(self.queue.len() as u64);
        None
    }

    /// The next departed packet and its departure time, microseconds.
    pub fn pop_departed(&mut self) -> Option<(u64, Packet)> {
        self.departed.pop_front()
    }
}

/// A fixed one-way delay: packets leave exactly `delay_us` after they enter.
#[derive(Debug)]
pub struct DelayLine {
    delay_us: u64,
    q: VecDeque<(u64, Packet)>,
}

impl DelayLine {
    /// A delay line of `delay_us` microseconds.
    pub fn new(delay_us: u64) -> Self {
        Self {
            delay_us,
            q: VecDeque::with_capacity(4096),
        }
    }

    /// A packet enters at `t_us` (times must be non-decreasing).
    pub fn push(&mut self, t_us: u64, p: Packet) {
        self.q.push_back((t_us + self.delay_us, p));
    }

    /// When the next packet is due, microseconds.
    pub fn next_event_us(&self) -> Option<u64> {
        self.q.front().map(|(t, _)| *t)
    }

    /// The next packet due at or before `now_us`, with its due time.
    pub fn pop_due(&mut self, now_us: u64) -> Option<(u64, Packet)> {
        if self.q.front().is_some_and(|(t, _)| *t <= now_us) {
            self.q.pop_front()
        } else {
            None
        }
    }
}

/// Stage order of one direction: mm-delay wraps mm-link, so packets from the
/// inner namespace cross the link first (uplink), packets from the outer
/// namespace the delay first (downlink).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Link, then delay (uplink).
    LinkThenDelay,
    /// Delay, then link (downlink).
    DelayThenLink,
}

/// One direction: a link and a delay line in `Order`.
#[derive(Debug)]
pub struct Pipeline {
    /// The bottleneck.
    pub link: Link,
    /// The propagation delay.
    pub delay: DelayLine,
    /// Which comes first.
    pub order: Order,
}

impl Pipeline {
    /// A packet enters the direction at `now_us`; a dropped packet is returned
    /// so its buffer can be reused.
    pub fn arrive(&mut self, now_us: u64, p: Packet) -> Option<Packet> {
        match self.order {
            Order::LinkThenDelay => {
                self.link.advance(now_us);
                let dropped = self.link.enqueue(now_us, p);
                while let Some((t, p)) = self.link.pop_departed() {
                    self.delay.push(t, p);
                }
                dropped
            }
            Order::DelayThenLink => {
                self.delay.push(now_us, p);
                None
            }
        }
    }

    /// Moves time to `now_us`; every packet that leaves the direction is
    /// pushed to `out` (in order), the buffer of every dropped one to `recycle`.
    pub fn advance(&mut self, now_us: u64, out: &mut Vec<Packet>, recycle: &mut Vec<Vec<u8>>) {
        match self.order {
            Order::LinkThenDelay => {
                self.link.advance(now_us);
                while let Some((t, p)) = self.link.pop_departed() {
                    self.delay.push(t, p);
                }
                while let Some((_, p)) = self.delay.pop_due(now_us) {
                    out.push(p);
                }
            }
            Order::DelayThenLink => {
                while let Some((t, p)) = self.delay.pop_due(now_us) {
                    self.link.advance(t);
                    if let Some(d) = self.link.enqueue(t, p) {
                        recycle.push(d.data);
                    }
                }
                self.link.advance(now_us);
                while let Some((_, p)) = self.link.pop_departed() {
                    out.push(p);
                }
            }
        }
    }

    /// When this direction next needs attention, microseconds.
    pub fn next_event_us(&self) -> Option<u64> {
        match (self.link.next_event_us(), self.delay.next_event_us()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn pkt(n: usize) -> Packet {
        Packet {
            data: vec![0; n],
            arrival_us: 0,
        }
    }

    fn trace(s: &str) -> Option<Arc<Schedule>> {
        Some(Arc::new(
            crate::trace::MahimahiTrace::parse(Path::new("t"), s)
                .unwrap()
                .schedule()
                .clone(),
        ))
    }

    #[test]
    fn one_packet_per_opportunity_and_waste() {
        let mut l = Link::new(trace("1\n"), DropTail::default(), None);
        for _ in 0..3 {
            assert!(l.enqueue(0, pkt(1500)).is_none());
        }
        l.advance(2_500);
        let d: Vec<u64> = std::iter::from_fn(|| l.pop_departed().map(|(t, _)| t)).collect();
        assert_eq!(d, vec![1000, 2000]);
        l.advance(10_000);
        assert_eq!(l.pop_departed().unwrap().0, 3000);
        let s = l.stats();
        assert_eq!(s.opportunities, 10);
        assert_eq!(s.wasted_bytes, 7 * 1504);
    }

    #[test]
    fn small_packets_share_an_opportunity_bytes_accounted() {
        let mut l = Link::new(trace("1\n"), DropTail::default(), None);
        for _ in 0..4 {
            l.enqueue(0, pkt(600));
        }
        l.advance(1000);
        // As mm-link counts them, 604 bytes each: 604 + 604 fit in 1504, the
        // third gets 296 and finishes with 308 at the next one, then the fourth.
        assert_eq!(std::iter::from_fn(|| l.pop_departed()).count(), 2);
        l.advance(2000);
        assert_eq!(std::iter::from_fn(|| l.pop_departed()).count(), 2);
        assert_eq!(l.stats().wasted_bytes, 1504 - 308 - 604);
        // 52-byte ACKs: 26 per opportunity, as in mm-link (56 bytes each).
        let mut l = Link::new(trace("1\n"), DropTail::default(), None);
        for _ in 0..30 {
            l.enqueue(0, pkt(52));
        }
        l.advance(1000);
        assert_eq!(std::iter::from_fn(|| l.pop_departed()).count(), 26);
    }

    #[test]
    fn opportunities_are_not_banked_and_trace_repeats() {
        let mut l = Link::new(trace("0\n0\n10\n"), DropTail::default(), None);
        l.advance(25_000);
        // 0,0,10 | 10,10,20 | 20,20 -> 8 opportunities up to 25 ms, all wasted
        assert_eq!(l.stats().opportunities, 8);
        for _ in 0..4 {
            l.enqueue(25_000, pkt(1500));
        }
        l.advance(40_000);
        let d: Vec<u64> = std::iter::from_fn(|| l.pop_departed().map(|(t, _)| t)).collect();
        assert_eq!(d, vec![30_000, 30_000, 30_000, 40_000]);
    }

    #[test]
    fn droptail_packets_and_bytes() {
        let mut l = Link::new(
            trace("1000\n"),
            DropTail::parse_args("packets=3").unwrap(),
            None,
        );
        let drops = (0..10).filter(|_| l.enqueue(1, pkt(100)).is_some()).count();
        assert_eq!((drops, l.queue_len()), (7, 3));
        let mut l = Link::new(
            trace("1000\n"),
            DropTail::parse_args("bytes=1000").unwrap(),
            None,
        );
        // 304 bytes each as mm-link counts them: 3 fit (912), a 4th would not.
        let drops = (0..10).filter(|_| l.enqueue(1, pkt(300)).is_some()).count();
        assert_eq!((drops, l.queue_len()), (7, 3));
        let mut l = Link::new(
            trace("1000\n"),
            DropTail::parse_args("bytes=1216").unwrap(),
            None,
        );
        let drops = (0..10).filter(|_| l.enqueue(1, pkt(300)).is_some()).count();
        assert_eq!(
            l.queue_len(),
            4,
            "4 x 304 = 1216 fits exactly ({drops} drops)"
        );
        assert_eq!(
            DropTail::parse_args("pakets=3"),
            Err(QueueArgError::UnknownKey {
                key: "pakets".into()
            })
        );
        assert!(matches!(
            DropTail::parse_args("packets=x"),
            Err(QueueArgError::NotACount { part, .. }) if part == "packets=x"
        ));
        assert_eq!(
            DropTail::parse_args("packets"),
            Err(QueueArgError::NotKeyValue {
                part: "packets".into()
            })
        );
    }

    #[test]
    fn pipelines_add_the_delay() {
        for order in [Order::LinkThenDelay, Order::DelayThenLink] {
            let mut p = Pipeline {
                link: Link::new(None, DropTail::default(), None),
                delay: DelayLine::new(20_000),
                order,
            };
            p.arrive(5, pkt(100));
            let mut got = Vec::new();
            p.advance(20_004, &mut got, &mut Vec::new());
            assert!(got.is_empty());
            assert_eq!(p.next_event_us(), Some(20_005));
            p.advance(20_005, &mut got, &mut Vec::new());
            assert_eq!(got.len(), 1);
        }
    }
}
