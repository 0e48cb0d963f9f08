//! The sender's scoreboard: the state of every segment between `snd_una`
//! and `snd_nxt` (when each was last sent, whether it was SACKed, declared
//! lost or retransmitted), the counts the kernel's in-flight formula needs
//! (`sacked_out`, `lost_out`, `retrans_out`), and SACK-like loss detection
//! by dupthresh in send order.
//!
//! Why its own file: these counts must stay consistent with the per-segment
//! flags through every send, ACK, loss and timeout, and every such update
//! is here, next to the flags; the sender's state machine only says when
//! each happens. The sequence window (`snd_una`, `snd_nxt`) stays the
//! sender's and is passed in.

use std::collections::VecDeque;

use crate::flow::SendStamp;

/// Transmissions a later-sent delivered transmission must be ahead of for an
/// earlier one to be declared lost (the kernel's dupthresh).
pub const DUPTHRESH: u64 = 3;

/// The segment was delivered (SACKed, or cumulatively acknowledged).
pub(super) const SACKED: u8 = 1;
/// The segment was declared lost and is not yet retransmitted.
pub(super) const LOST: u8 = 2;
/// The segment's latest transmission is a retransmission still in flight.
pub(super) const RETRANS: u8 = 4;

/// One segment's latest transmission.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Seg {
    /// Its transmission index.
    pub(super) tx: u64,
    /// When it was sent, microseconds.
    pub(super) sent_us: u64,
    /// The delivery-rate state when it was sent.
    pub(super) stamp: SendStamp,
    /// [`SACKED`], [`LOST`], [`RETRANS`].
    pub(super) flags: u8,
}

/// The scoreboard (see the module docs). Its per-packet methods are
/// `#[inline]`: they are called once or more per packet from the sender,
/// which sits in another module (and so, without LTO, possibly another
/// codegen unit), and the simulator's speed depends on them being inlined.
pub(super) struct Scoreboard {
    /// Segments by sequence number, a ring of a power-of-two size.
    ring: Vec<Seg>,
    mask: u64,
    /// The next transmission's index (the first is 1).
    next_tx: u64,
    /// Sequence numbers in transmission order, from transmission
    /// `tx_fifo_base` on (loss detection walks it).
    tx_fifo: VecDeque<u64>,
    tx_fifo_base: u64,
    /// The newest transmission known delivered.
    max_delivered_tx: u64,
    /// Segments declared lost, to retransmit in this order.
    retx_queue: VecDeque<u64>,
    sacked_out: u32,
    lost_out: u32,
    retrans_out: u32,
    /// Send time of the newest segment delivered since the last
    /// [`Self::take_newest_ackt`] that was not a retransmission (Linux's
    /// `last_ackt` in `tcp_clean_rtx_queue()`).
    newest_ackt: Option<u64>,
}

impl Scoreboard {
    /// An empty scoreboard with room for `cap` segments (a power of two);
    /// it grows as the window does.
    pub(super) fn new(cap: usize) -> Self {
        Self {
            ring: vec![Seg::default(); cap],
            mask: cap as u64 - 1,
            next_tx: 1,
            tx_fifo: VecDeque::with_capacity(cap),
            tx_fifo_base: 1,
            max_delivered_tx: 0,
            retx_queue: VecDeque::with_capacity(cap),
            sacked_out: 0,
            lost_out: 0,
            retrans_out: 0,
            newest_ackt: None,
        }
    }

    /// Segments delivered above `snd_una` (`sacked_out`).
    #[inline]
    pub(super) fn sacked_out(&self) -> u32 {
        self.sacked_out
    }

    /// Segments declared lost and not retransmitted (`lost_out`).
    #[inline]
    pub(super) fn lost_out(&self) -> u32 {
        self.lost_out
    }

    /// Retransmissions in flight (`retrans_out`).
    #[inline]
    pub(super) fn retrans_out(&self) -> u32 {
        self.retrans_out
    }

    #[inline]
    fn seg(&mut self, seq: u64) -> &mut Seg {
        &mut self.ring[(seq & self.mask) as usize]
    }

    /// Doubles the ring when the segments `una..nxt` fill it, so that one
    /// more fits.
    #[inline]
    pub(super) fn make_room(&mut self, una: u64, nxt: u64) {
        if nxt - una < self.ring.len() as u64 {
            return;
        }
        let old_cap = self.ring.len() as u64;
        let new_cap = old_cap * 2;
        let mut ring = vec![Seg::default(); new_cap as usize];
        for seq in una..nxt {
            ring[(seq & (new_cap - 1)) as usize] = self.ring[(seq & (old_cap - 1)) as usize];
        }
        self.ring = ring;
        self.mask = new_cap - 1;
    }

    /// The next lost segment to retransmit, if any is still in `una..nxt`,
    /// not delivered and not already retransmitted.
    #[inline]
    pub(super) fn next_retransmit(&mut self, una: u64, nxt: u64) -> Option<u64> {
        while let Some(s) = self.retx_queue.pop_front() {
            if s < una || s >= nxt {
                continue;
            }
            let f = self.seg(s).flags;
            if f & LOST != 0 && f & (SACKED | RETRANS) == 0 {
                return Some(s);
            }
        }
        None
    }

    /// Records a transmission of `seq` at `now_us` (a retransmission when
    /// `retransmit`); returns its transmission index.
    #[inline]
    pub(super) fn on_send(
        &mut self,
        seq: u64,
        now_us: u64,
        stamp: SendStamp,
        retransmit: bool,
    ) -> u64 {
        let tx = self.next_tx;
        self.next_tx += 1;
        let seg = self.seg(seq);
        if retransmit {
            seg.flags |= RETRANS;
        } else {
            seg.flags = 0;
        }
        seg.tx = tx;
        seg.sent_us = now_us;
        seg.stamp = stamp;
        if retransmit {
            self.retrans_out += 1;
        }
        self.tx_fifo.push_back(seq);
        tx
    }

    /// Marks `seq` delivered; keeps it in `best` if it is newer than `best`
    /// (the kernel takes the most recently sent delivered skb for its rate
    /// sample).
    #[inline]
    fn deliver(&mut self, seq: u64, best: &mut Option<Seg>) {
        let seg = *self.seg(seq);
        if seg.flags & LOST != 0 {
            self.lost_out -= 1;
        }
        if seg.flags & RETRANS != 0 {
            self.retrans_out -= 1;
        } else if self.newest_ackt.is_none_or(|t| seg.sent_us >= t) {
            self.newest_ackt = Some(seg.sent_us);
        }
        self.seg(seq).flags = SACKED;
        if best.is_none_or(|b| seg.stamp.delivered >= b.stamp.delivered) {
            *best = Some(seg);
        }
    }

    /// The send time of the newest segment delivered since the last call
    /// that was not a retransmission (`last_ackt`), and a fresh start.
    #[inline]
    pub(super) fn take_newest_ackt(&mut self) -> Option<u64> {
        self.newest_ackt.take()
    }

    /// The segment an ACK reports (its SACK block, or the in-order one):
    /// delivered now if it is in `una..nxt` and was not before; true if so.
    #[inline]
    pub(super) fn sack(&mut self, seq: u64, una: u64, nxt: u64, best: &mut Option<Seg>) -> bool {
        if seq >= una && seq < nxt && self.seg(seq).flags & SACKED == 0 {
            self.deliver(seq, best);
            self.sacked_out += 1;
            true
        } else {
            false
        }
    }

    /// The cumulative ACK moves `snd_una` from `una` to `cum`: the segments
    /// not yet delivered are delivered now, the SACKed ones leave
    /// `sacked_out`; returns how many were newly delivered.
    #[inline]
    pub(super) fn cumulative_ack(&mut self, una: u64, cum: u64, best: &mut Option<Seg>) -> u64 {
        let mut newly = 0;
        for s in una..cum {
            if self.seg(s).flags & SACKED == 0 {
                self.deliver(s, best);
                newly += 1;
            } else {
                self.sacked_out -= 1;
            }
        }
        newly
    }

    /// Transmission `acked_tx` was delivered: declares lost every
    /// transmission [`DUPTHRESH`] or more behind the newest delivered one
    /// (a lost retransmission too) and queues its segment for
    /// retransmission; returns how many segments became lost.
    #[inline]
    pub(super) fn detect_losses(&mut self, acked_tx: u64, una: u64, nxt: u64) -> u64 {
        if acked_tx > self.max_delivered_tx {
            self.max_delivered_tx = acked_tx;
        }
        let mut lost = 0;
        while self.tx_fifo_base + DUPTHRESH <= self.max_delivered_tx {
            let Some(s) = self.tx_fifo.pop_front() else {
                break;
            };
            let tx = self.tx_fifo_base;
            self.tx_fifo_base += 1;
            if s < una || s >= nxt {
                continue;
            }
            let seg = self.seg(s);
            if seg.tx != tx || seg.flags & SACKED != 0 {
                continue;
            }
            if seg.flags & RETRANS != 0 {
                seg.flags &= !RETRANS;
                self.retrans_out -= 1;
            } else if seg.flags & LOST == 0 {
                seg.flags |= LOST;
                self.lost_out += 1;
            } else {
                continue;
            }
            self.retx_queue.push_back(s);
            lost += 1;
        }
        lost
    }

    /// The retransmission timer fired: every segment of `una..nxt` not
    /// delivered is lost and queued for retransmission in sequence order;
    /// returns how many were not lost before.
    pub(super) fn mark_all_lost(&mut self, una: u64, nxt: u64) -> u64 {
        let mut newly_lost = 0u64;
        self.retx_queue.clear();
        for s in una..nxt {
            let seg = self.seg(s);
            if seg.flags & SACKED != 0 {
                continue;
            }
            let was_lost = seg.flags & LOST != 0;
            let was_retrans = seg.flags & RETRANS != 0;
            seg.flags = LOST;
            if was_retrans {
                self.retrans_out -= 1;
            }
            if !was_lost {
                self.lost_out += 1;
                newly_lost += 1;
            }
            self.retx_queue.push_back(s);
        }
        newly_lost
    }

    /// A spurious timeout was undone: no segment of `una..nxt` is lost any
    /// more, and none is queued for retransmission
    /// (`tcp_undo_cwnd_reduction()` with `unmark_loss`: every `TCPCB_LOST`
    /// cleared, `lost_out = 0`). Retransmissions already sent stay in
    /// flight as such.
    pub(super) fn unmark_lost(&mut self, una: u64, nxt: u64) {
        self.retx_queue.clear();
        for s in una..nxt {
            let seg = self.seg(s);
            if seg.flags & LOST != 0 {
                seg.flags &= !LOST;
                self.lost_out -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends `n` new segments from `nxt` at `now_us`; returns the new `nxt`.
    fn send_new(b: &mut Scoreboard, una: u64, mut nxt: u64, n: u64, now_us: u64) -> u64 {
        for _ in 0..n {
            b.make_room(una, nxt);
            b.on_send(nxt, now_us, SendStamp::default(), false);
            nxt += 1;
        }
        nxt
    }

    /// A full ring doubles and keeps every segment's state at its sequence
    /// number: a SACK before the growth is still known after it.
    #[test]
    fn the_ring_grows_without_losing_a_segments_state() {
        let mut b = Scoreboard::new(4);
        let nxt = send_new(&mut b, 0, 0, 4, 10);
        let mut best = None;
        assert!(b.sack(2, 0, nxt, &mut best));
        let nxt = send_new(&mut b, 0, nxt, 3, 20);
        assert_eq!(b.ring.len(), 8);
        assert!(!b.sack(2, 0, nxt, &mut best), "already delivered");
        assert_eq!(b.sacked_out(), 1);
        // The cumulative ACK of 0..3 delivers 0 and 1; 2 was SACKed.
        assert_eq!(b.cumulative_ack(0, 3, &mut best), 2);
        assert_eq!(b.sacked_out(), 0);
        assert_eq!(best.map(|s| s.sent_us), Some(10));
    }

    /// Loss by dupthresh in send order, then a timeout: the counts follow
    /// the flags, and a segment is queued for retransmission once.
    #[test]
    fn losses_and_a_timeout_keep_the_counts_consistent() {
        let mut b = Scoreboard::new(16);
        let nxt = send_new(&mut b, 0, 0, 6, 0);
        let mut best = None;
        // Transmissions 5 and 6 (segments 4, 5) delivered: 1, 2 and 3 are
        // three or more behind the newest.
        for seq in [4, 5] {
            assert!(b.sack(seq, 0, nxt, &mut best));
        }
        assert_eq!(b.detect_losses(6, 0, nxt), 3);
        assert_eq!((b.lost_out(), b.sacked_out()), (3, 2));
        assert_eq!(b.next_retransmit(0, nxt), Some(0));
        b.on_send(0, 100, SendStamp::default(), true);
        assert_eq!((b.lost_out(), b.retrans_out()), (3, 1));
        // The timeout: every segment not delivered is lost, the
        // retransmitted 0 again, 1 and 2 still, and 3 newly.
        assert_eq!(b.mark_all_lost(0, nxt), 1);
        assert_eq!((b.lost_out(), b.retrans_out()), (4, 0));
        let queued: Vec<u64> = std::iter::from_fn(|| b.next_retransmit(0, nxt)).collect();
        assert_eq!(queued, vec![0, 1, 2, 3]);
    }
}
