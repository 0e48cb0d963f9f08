//! The receiver of one flow: the cumulative ACK point and a bitmap of the
//! segments received out of order.
//!
//! Why its own file: the receiver shares no state with the sender; it only
//! turns arrivals into cumulative ACKs, and its ring grows on its own when
//! a segment arrives far ahead (a long outage followed by a burst).

/// The receiver: the cumulative ACK point and a bitmap of out-of-order
/// segments, as a ring indexed by sequence number.
#[derive(Debug)]
pub struct Receiver {
    rcv_nxt: u64,
    bits: Vec<u64>,
}

impl Default for Receiver {
    fn default() -> Self {
        Self::new()
    }
}

impl Receiver {
    /// A receiver expecting segment 0.
    pub fn new() -> Self {
        Self {
            rcv_nxt: 0,
            bits: vec![0; 64],
        }
    }

    fn cap(&self) -> u64 {
        self.bits.len() as u64 * 64
    }

    fn bit(&self, seq: u64) -> bool {
        let i = seq % self.cap();
        self.bits[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    fn set(&mut self, seq: u64, on: bool) {
        let i = seq % self.cap();
        let w = &mut self.bits[(i / 64) as usize];
        if on {
            *w |= 1 << (i % 64);
        } else {
            *w &= !(1 << (i % 64));
        }
    }

    fn grow(&mut self, need: u64) {
        let mut cap = self.cap();
        while cap <= need {
            cap *= 2;
        }
        let old = std::mem::replace(&mut self.bits, vec![0; (cap / 64) as usize]);
        let old_cap = old.len() as u64 * 64;
        for seq in self.rcv_nxt..self.rcv_nxt + old_cap {
            let i = seq % old_cap;
            if old[(i / 64) as usize] & (1 << (i % 64)) != 0 {
                self.set(seq, true);
            }
        }
    }

    /// Records the arrival of segment `seq`; returns the cumulative ACK.
    pub fn receive(&mut self, seq: u64) -> u64 {
        if seq == self.rcv_nxt {
            self.rcv_nxt += 1;
            while self.bit(self.rcv_nxt) {
                let n = self.rcv_nxt;
                self.set(n, false);
                self.rcv_nxt += 1;
            }
        } else if seq > self.rcv_nxt {
            if seq - self.rcv_nxt >= self.cap() {
                self.grow(seq - self.rcv_nxt);
            }
            self.set(seq, true);
        }
        self.rcv_nxt
    }

    /// Next expected segment.
    pub fn rcv_nxt(&self) -> u64 {
        self.rcv_nxt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receiver_cumulates_and_buffers_out_of_order() {
        let mut r = Receiver::new();
        assert_eq!(r.receive(0), 1);
        assert_eq!(r.receive(2), 1);
        assert_eq!(r.receive(3), 1);
        assert_eq!(r.receive(1), 4);
        assert_eq!(r.receive(1), 4);
        // Far ahead: the bitmap grows.
        assert_eq!(r.receive(5000), 4);
        for s in 4..5000 {
            r.receive(s);
        }
        assert_eq!(r.rcv_nxt(), 5001);
    }
}
