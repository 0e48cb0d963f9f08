//! The event queue: a binary min-heap of small `Copy` events ordered by time
//! and then by insertion order, so runs are deterministic.
//!
//! It holds only timers and one entry per flow for the head of its ACK queue,
//! so it stays a few entries deep whatever the window.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// What happens when an event fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The head of the flow's ACK queue reaches the sender.
    Ack,
    /// The flow's pacing timer (or its start) fires: try to send.
    Send,
    /// The flow's retransmission timer may fire.
    Rto,
    /// The receiver's delayed-ACK timer of the flow may fire.
    DelAck,
}

/// One scheduled event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// Simulated time, microseconds.
    pub at_us: u64,
    /// Insertion counter, the tie-breaker.
    order: u64,
    /// What to do.
    pub kind: EventKind,
    /// Index of the flow concerned.
    pub flow: u32,
}

impl Ord for Event {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap and we want the earliest first.
        (other.at_us, other.order).cmp(&(self.at_us, self.order))
    }
}

impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Deterministic time-ordered event queue.
#[derive(Debug, Default)]
pub struct EventQueue {
    heap: BinaryHeap<Event>,
    next_order: u64,
}

impl EventQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Schedules `kind` for `flow` at `at_us`.
    #[inline]
    pub fn push(&mut self, at_us: u64, kind: EventKind, flow: u32) {
        let order = self.next_order;
        self.next_order += 1;
        self.heap.push(Event {
            at_us,
            order,
            kind,
            flow,
        });
    }

    /// Time of the earliest event, if any.
    #[inline]
    pub fn peek_time_us(&self) -> Option<u64> {
        self.heap.peek().map(|e| e.at_us)
    }

    /// Removes and returns the earliest event if it is due at or before `until_us`.
    #[inline]
    pub fn pop_due(&mut self, until_us: u64) -> Option<Event> {
        if self.heap.peek()?.at_us <= until_us {
            self.heap.pop()
        } else {
            None
        }
    }

    /// Number of pending events.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_first_then_insertion_order() {
        let mut q = EventQueue::new();
        q.push(5, EventKind::Rto, 0);
        q.push(3, EventKind::Ack, 1);
        q.push(5, EventKind::Send, 2);
        assert_eq!(q.pop_due(2), None);
        let order: Vec<u32> = std::iter::from_fn(|| q.pop_due(10))
            .map(|e| e.flow)
            .collect();
        assert_eq!(order, vec![1, 0, 2]);
    }
}
