//! Delivery-rate sampling as Linux's `net/ipv4/tcp_rate.c` does it: every
//! segment carries, from the moment it is sent, how much had been delivered
//! then and when; an ACK's sample is the data delivered since the newest
//! acknowledged segment was sent, over the longer of that segment's send
//! phase and its ACK phase.
//!
//! Why a type of its own: the simulator's sender feeds it, and the kernel's
//! `tcpi_delivery_rate` (which the policy observes on a real host) is this
//! same computation, so it is kept apart from the sender's loss and window
//! bookkeeping and tested against the kernel's rules on its own.
//!
//! What it leaves out of `tcp_rate.c`: application-limited marking (the
//! simulator's senders always have data) and SACK reneging.

/// What a segment remembers of the connection when it is sent
/// (`tcp_skb_cb::tx` in the kernel).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendStamp {
    /// Segments delivered when it was sent (`tx.delivered`).
    pub delivered: u64,
    /// When the last of those was delivered, microseconds
    /// (`tx.delivered_mstamp`).
    pub delivered_us: u64,
    /// Send time of the newest segment acknowledged when it was sent:
    /// the start of its send phase (`tx.first_tx_mstamp`).
    pub first_tx_us: u64,
}

/// The connection-wide state of the sampler (`tcp_sock::delivered`,
/// `delivered_mstamp`, `first_tx_mstamp`, `rate_delivered`,
/// `rate_interval_us`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RateSampler {
    delivered: u64,
    delivered_us: u64,
    first_tx_us: u64,
    rate_delivered: u64,
    rate_interval_us: u64,
}

impl RateSampler {
    /// No data sent or delivered yet, no sample.
    pub fn new() -> Self {
        Self::default()
    }

    /// A segment leaves at `now_us`; `nothing_in_flight` when no data was
    /// outstanding before it. Returns the stamp it carries.
    pub fn on_send(&mut self, now_us: u64, nothing_in_flight: bool) -> SendStamp {
        // tcp_rate_skb_sent(): "In general we need to start delivery rate
        // samples from the time we received the most recent ACK, to ensure
        // we include the full time the network needs to deliver all in-flight
        // packets. If there are no packets in flight yet, then we know that
        // any ACKs after now indicate that the network was able to deliver
        // those packets completely in the sampling interval between now and
        // the next ACK."
        if nothing_in_flight {
            self.first_tx_us = now_us;
            self.delivered_us = now_us;
        }
        SendStamp {
            delivered: self.delivered,
            delivered_us: self.delivered_us,
            first_tx_us: self.first_tx_us,
        }
    }

    /// An ACK at `now_us` newly delivered `newly` segments; `newest` is the
    /// send time and stamp of the most recently sent of them (the one
    /// `tcp_rate_skb_delivered()` keeps). `min_rtt_us` is the flow's min RTT
    /// after this ACK's RTT sample.
    pub fn on_ack(
        &mut self,
        now_us: u64,
        newly: u64,
        newest: Option<(u64, SendStamp)>,
        min_rtt_us: u64,
    ) {
        if newly == 0 {
            return;
        }
        self.delivered += newly;
        self.delivered_us = now_us;
        let Some((sent_us, stamp)) = newest else {
            return;
        };
        // tcp_rate_skb_delivered(): "Record send time of most recently ACKed
        // packet" and "Find the duration of the 'send phase' of this window".
        self.first_tx_us = sent_us;
        let send_us = sent_us.saturating_sub(stamp.first_tx_us);
        // tcp_rate_gen(): "Model sending data and receiving ACKs as separate
        // pipeline phases for a window. Usually the ACK phase is longer, but
        // with ACK compression the send phase can be longer. To be careful
        // we use the longer phase."
        let ack_us = now_us.saturating_sub(stamp.delivered_us);
        let interval = send_us.max(ack_us);
        // tcp_rate_gen(): "Normally we expect interval_us >= min-rtt. Note
        // that rate may still be over-estimated when a spuriously
        // retransmitted skb was first (s)acked because interval_us may be
        // underestimated." Shorter intervals give no sample.
        if interval >= min_rtt_us && interval > 0 {
            self.rate_delivered = self.delivered - stamp.delivered;
            self.rate_interval_us = interval;
        }
    }

    /// Segments delivered in all (`tcp_sock::delivered`).
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Segments of the latest valid sample (`tcpi_delivery_rate`'s
    /// numerator, in segments).
    pub fn rate_delivered(&self) -> u64 {
        self.rate_delivered
    }

    /// Interval of the latest valid sample, microseconds (0: none yet).
    pub fn rate_interval_us(&self) -> u64 {
        self.rate_interval_us
    }

    /// The latest sample in bytes per second for `mss_bytes` segments, 0
    /// before the first (`tcpi_delivery_rate`).
    pub fn bytes_per_sec(&self, mss_bytes: u32) -> u64 {
        (self.rate_delivered * u64::from(mss_bytes) * 1_000_000)
            .checked_div(self.rate_interval_us)
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ten segments sent back to back at t = 0 over a 50 ms path, ACKed
    /// together at 50 ms: 10 segments over the 50 ms ACK phase.
    #[test]
    fn a_window_sent_at_once_is_measured_over_its_ack_phase() {
        let mut r = RateSampler::new();
        let stamps: Vec<SendStamp> = (0..10).map(|i| r.on_send(0, i == 0)).collect();
        assert!(stamps.iter().all(|s| *s == SendStamp::default()));
        r.on_ack(50_000, 10, Some((0, stamps[9])), 50_000);
        assert_eq!(r.delivered(), 10);
        assert_eq!((r.rate_delivered(), r.rate_interval_us()), (10, 50_000));
        assert_eq!(r.bytes_per_sec(1000), 200_000);
    }

    /// With ACK compression the send phase is the longer one and sets the
    /// interval. One segment sent at 0 and ACKed at 40 ms; four more sent at
    /// 10, 20, 30 and 50 ms, all ACKed at once at 60 ms: the newest (sent
    /// at 50 ms, when 1 was delivered at 40 ms) has a 50 ms send phase (from
    /// the send time of the segment ACKed last before it, 0) and a 20 ms
    /// ACK phase, so 4 segments over 50 ms.
    #[test]
    fn the_longer_phase_is_taken_when_acks_are_compressed() {
        let mut r = RateSampler::new();
        let first = r.on_send(0, true);
        let early: Vec<SendStamp> = [10_000u64, 20_000, 30_000]
            .into_iter()
            .map(|t| r.on_send(t, false))
            .collect();
        r.on_ack(40_000, 1, Some((0, first)), 40_000);
        assert_eq!((r.rate_delivered(), r.rate_interval_us()), (1, 40_000));
        let newest = r.on_send(50_000, false);
        assert_eq!(
            newest,
            SendStamp {
                delivered: 1,
                delivered_us: 40_000,
                first_tx_us: 0
            }
        );
        assert!(early.iter().all(|s| s.delivered == 0));
        r.on_ack(60_000, 4, Some((50_000, newest)), 40_000);
        assert_eq!(r.delivered(), 5);
        assert_eq!((r.rate_delivered(), r.rate_interval_us()), (4, 50_000));
        // The next window starts from the pipe being empty: both phases
        // are measured from the send at 100 ms.
        let a = r.on_send(100_000, true);
        assert_eq!((a.first_tx_us, a.delivered_us), (100_000, 100_000));
        let b = r.on_send(190_000, false);
        r.on_ack(200_000, 2, Some((190_000, b)), 40_000);
        // send phase 90 ms, ACK phase 100 ms.
        assert_eq!((r.rate_delivered(), r.rate_interval_us()), (2, 100_000));
    }

    /// tcp_rate_gen() drops samples whose interval is under the min RTT:
    /// the previous sample stays.
    #[test]
    fn samples_shorter_than_the_min_rtt_are_not_taken() {
        let mut r = RateSampler::new();
        let s = r.on_send(0, true);
        r.on_ack(50_000, 1, Some((0, s)), 50_000);
        assert_eq!((r.rate_delivered(), r.rate_interval_us()), (1, 50_000));
        let s = r.on_send(50_000, true);
        // A 10 ms interval on a 50 ms min RTT: no sample.
        r.on_ack(60_000, 1, Some((50_000, s)), 50_000);
        assert_eq!(r.delivered(), 2);
        assert_eq!((r.rate_delivered(), r.rate_interval_us()), (1, 50_000));
        // An ACK that delivers nothing changes nothing.
        let before = r.clone();
        r.on_ack(70_000, 0, Some((50_000, s)), 50_000);
        assert_eq!(r, before);
        assert_eq!(RateSampler::new().bytes_per_sec(1448), 0);
    }
}
