//! The bottleneck link, with Mahimahi's `mm-link` semantics:
//!
//! - each trace timestamp is one delivery opportunity of
//!   [`OPPORTUNITY_BYTES`] bytes at that millisecond;
//! - bytes, not packets, are accounted: a packet may be served by parts of
//!   several opportunities, and bytes left in an opportunity after a packet
//!   finishes serve the next queued packet;
//! - an opportunity that finds the queue empty is wasted (not banked);
//! - the schedule repeats at its end, offset by the last timestamp;
//! - time has Mahimahi's millisecond resolution: a packet arriving during
//!   millisecond `m` is queued after the opportunities of `m` were used;
//! - the droptail queue holds packets not yet being served (the packet in
//!   transit does not count) and is limited in packets and/or bytes.
//!
//! Because the queue is FIFO and arrivals only join its tail, the departure
//! time of a packet is fully determined when it is enqueued. The link
//! therefore computes it at once and needs no per-opportunity events: idle
//! periods cost nothing and each packet costs O(1) amortized.

use std::collections::VecDeque;
use std::sync::Arc;

use super::{Schedule, SimError, OPPORTUNITY_BYTES};

/// Droptail queue limits, as `mm-link --uplink-queue=droptail
/// --uplink-queue-args=packets=N,bytes=B`. `None` means unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueLimit {
    /// Most packets waiting (excluding the one in transit).
    pub packets: Option<u32>,
    /// Most bytes waiting (excluding the one in transit).
    pub bytes: Option<u64>,
}

impl QueueLimit {
    /// No limit (Mahimahi's default infinite queue).
    pub fn unlimited() -> Self {
        Self::default()
    }

    /// A limit of `packets` packets.
    pub fn packets(packets: u32) -> Self {
        Self {
            packets: Some(packets),
            bytes: None,
        }
    }

    /// A limit of `bytes` bytes.
    pub fn bytes(bytes: u64) -> Self {
        Self {
            packets: None,
            bytes: Some(bytes),
        }
    }
}

/// A queued packet: the millisecond its service starts and its size.
#[derive(Clone, Copy, Debug)]
struct Waiting {
    start_ms: u64,
    bytes: u32,
}

/// One direction of a Mahimahi link (see the module docs).
#[derive(Debug)]
pub struct Link {
    trace: Arc<Schedule>,
    limit: QueueLimit,
    /// Index within one repetition of the opportunity last used.
    cursor_j: usize,
    /// Start of the cursor's repetition, ms.
    cursor_base_ms: u64,
    /// Time of the cursor opportunity, ms; `None` before the first packet.
    cursor_ms: Option<u64>,
    /// Bytes left in the cursor opportunity.
    cursor_left: u64,
    waiting: VecDeque<Waiting>,
    waiting_bytes: u64,
    /// Packets accepted.
    pub accepted_packets: u64,
    /// Packets dropped by the droptail queue.
    pub dropped_packets: u64,
}

impl Link {
    /// A link replaying `trace` with a droptail queue of `limit`.
    pub fn new(trace: Arc<Schedule>, limit: QueueLimit) -> Result<Self, SimError> {
        if limit.packets == Some(0) || limit.bytes == Some(0) {
            return Err(SimError::InvalidConfig(
                "a queue limit of 0 would drop every packet".into(),
            ));
        }
        Ok(Self {
            trace,
            limit,
            cursor_j: 0,
            cursor_base_ms: 0,
            cursor_ms: None,
            cursor_left: 0,
            waiting: VecDeque::with_capacity(1024),
            waiting_bytes: 0,
            accepted_packets: 0,
            dropped_packets: 0,
        })
    }

    /// The delivery schedule.
    pub fn trace(&self) -> &Arc<Schedule> {
        &self.trace
    }

    fn advance_cursor(&mut self) {
        let ops = self.trace.opportunities_ms();
        self.cursor_j += 1;
        if self.cursor_j == ops.len() {
            self.cursor_j = 0;
            self.cursor_base_ms += self.trace.period_ms();
        }
        self.cursor_ms = Some(self.cursor_base_ms + ops[self.cursor_j]);
        self.cursor_left = OPPORTUNITY_BYTES;
    }

    fn seek_after(&mut self, now_ms: u64) {
        let ops = self.trace.opportunities_ms();
        let period = self.trace.period_ms();
        let mut base = now_ms / period * period;
        let mut j = ops.partition_point(|&t| t <= now_ms - base);
        if j == ops.len() {
            j = 0;
            base += period;
        }
        self.cursor_j = j;
        self.cursor_base_ms = base;
        self.cursor_ms = Some(base + ops[j]);
        self.cursor_left = OPPORTUNITY_BYTES;
    }

    /// Removes from the queue the packets whose service started by `now_ms`.
    #[inline]
    fn drain_started(&mut self, now_ms: u64) {
        while let Some(w) = self.waiting.front() {
            if w.start_ms > now_ms {
                break;
            }
            self.waiting_bytes -= u64::from(w.bytes);
            self.waiting.pop_front();
        }
    }

    /// Offers a packet of `bytes` bytes at `now_us` (non-decreasing across
    /// calls). Returns the time in microseconds it leaves the link, or `None`
    /// when the droptail queue drops it.
    #[inline]
    pub fn enqueue(&mut self, now_us: u64, bytes: u32) -> Option<u64> {
        let now_ms = now_us / 1000;
        self.drain_started(now_ms);
        let fits_packets = self
            .limit
            .packets
            .is_none_or(|p| self.waiting.len() < p as usize);
        let fits_bytes = self
            .limit
            .bytes
            .is_none_or(|b| self.waiting_bytes + u64::from(bytes) <= b);
        if !(fits_packets && fits_bytes) {
            self.dropped_packets += 1;
            return None;
        }
        // Leftover bytes of the last used opportunity serve this packet only
        // if that opportunity is still in the future.
        match self.cursor_ms {
            Some(t) if t > now_ms => {
                if self.cursor_left == 0 {
                    self.advance_cursor();
                }
            }
            _ => self.seek_after(now_ms),
        }
        let start_ms = self.cursor_ms.unwrap_or(0);
        let mut need = u64::from(bytes.max(1));
        while need > self.cursor_left {
            need -= self.cursor_left;
            self.advance_cursor();
        }
        self.cursor_left -= need;
        self.waiting.push_back(Waiting { start_ms, bytes });
        self.waiting_bytes += u64::from(bytes);
        self.accepted_packets += 1;
        Some(self.cursor_ms.unwrap_or(0) * 1000)
    }

    /// Packets and bytes waiting (excluding the one in transit) at `now_us`.
    pub fn queued(&mut self, now_us: u64) -> (usize, u64) {
        self.drain_started(now_us / 1000);
        (self.waiting.len(), self.waiting_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(ms: Vec<u64>, limit: QueueLimit) -> Link {
        Link::new(Arc::new(Schedule::from_ms(ms).unwrap()), limit).unwrap()
    }

    #[test]
    fn one_packet_per_opportunity_and_wasted_when_idle() {
        let mut l = link(vec![1], QueueLimit::unlimited());
        // Three packets at t=0.5 ms leave at 1, 2, 3 ms.
        assert_eq!(l.enqueue(500, 1500), Some(1000));
        assert_eq!(l.enqueue(500, 1500), Some(2000));
        assert_eq!(l.enqueue(500, 1500), Some(3000));
        // Idle until 10.2 ms: the opportunities between were wasted.
        assert_eq!(l.enqueue(10_200, 1500), Some(11_000));
        // Arrival exactly at a millisecond: that opportunity is already used.
        assert_eq!(l.enqueue(20_000, 1500), Some(21_000));
    }

    #[test]
    fn bytes_are_accounted_across_opportunities() {
        let mut l = link(vec![1], QueueLimit::unlimited());
        // Small packets share one opportunity; a big one spills over.
        assert_eq!(l.enqueue(0, 500), Some(1000));
        assert_eq!(l.enqueue(0, 500), Some(1000));
        assert_eq!(l.enqueue(0, 1000), Some(2000)); // 500 at 1 ms + 500 at 2 ms
        assert_eq!(l.enqueue(0, 1000), Some(2000)); // 1000 of the rest of 2 ms
        assert_eq!(l.enqueue(0, 1), Some(3000));
    }

    #[test]
    fn repeats_offset_by_last_timestamp() {
        let mut l = link(vec![2, 2, 5], QueueLimit::unlimited());
        let d: Vec<u64> = (0..6).map(|_| l.enqueue(0, 1500).unwrap() / 1000).collect();
        assert_eq!(d, vec![2, 2, 5, 7, 7, 10]);
    }

    #[test]
    fn droptail_counts_waiting_packets_not_the_one_in_transit() {
        let mut l = link(vec![1], QueueLimit::packets(2));
        assert!(l.enqueue(0, 1500).is_some());
        assert!(l.enqueue(0, 1500).is_some());
        assert!(l.enqueue(0, 1500).is_none());
        // At 1 ms the first is served, one slot frees.
        assert!(l.enqueue(1000, 1500).is_some());
        assert!(l.enqueue(1000, 1500).is_none());
        assert_eq!(l.dropped_packets, 2);
        let mut b = link(vec![1], QueueLimit::bytes(3000));
        assert!(b.enqueue(0, 1500).is_some());
        assert!(b.enqueue(0, 1500).is_some());
        assert!(b.enqueue(0, 100).is_none());
    }
}
