//! The round-trip-time estimator of a TCP sender: smoothed RTT, RTT
//! variation and retransmission timeout per RFC 6298 ("Computing TCP's
//! Retransmission Timer"), with Linux's bounds, plus the flow's minimum and
//! latest RTT, the two other RTTs the kernel reports per flow (`tcp_info`,
//! the datapath's `FlowStats`).
//!
//! The simulator's sender samples it on every ACK that delivers data. It
//! sits in `flow`, at the bottom of the layers, because it is part of what
//! the kernel shows of a flow; nothing in it knows the simulator.
//!
//! Integer microseconds throughout, with the RFC's gains as the exact
//! fractions 1/8 and 1/4 (the kernel's fixed-point `tcp_rtt_estimator` does
//! the same with shifts), so that a run reproduces bit for bit.

/// Minimum retransmission timeout, microseconds (Linux `TCP_RTO_MIN`).
/// RFC 6298 (2.4) says 1 s; Linux, and so this estimator, use 200 ms.
pub const RTO_MIN_US: u64 = 200_000;
/// Maximum retransmission timeout, microseconds (Linux `TCP_RTO_MAX`).
/// RFC 6298 (2.5): "A maximum value MAY be placed on RTO provided it is at
/// least 60 seconds."
pub const RTO_MAX_US: u64 = 120_000_000;
/// Initial retransmission timeout, microseconds. RFC 6298 (2.1): "Until a
/// round-trip time (RTT) measurement has been made ..., the sender SHOULD
/// set RTO <- 1 second".
pub const RTO_INITIAL_US: u64 = 1_000_000;
/// Doublings of the RTO at most ([`RttEstimator::backed_off_rto_us`]); the
/// result is capped at [`RTO_MAX_US`] anyway, this only keeps the shift
/// defined.
const MAX_BACKOFF_SHIFT: u32 = 16;

/// RFC 6298's SRTT, RTTVAR and RTO, and the flow's minimum and latest RTT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RttEstimator {
    srtt_us: u64,
    rttvar_us: u64,
    min_rtt_us: u64,
    last_rtt_us: u64,
    rto_us: u64,
}

impl Default for RttEstimator {
    fn default() -> Self {
        Self::new()
    }
}

impl RttEstimator {
    /// No sample yet: SRTT, RTTVAR and the RTTs 0, the RTO
    /// [`RTO_INITIAL_US`] (RFC 6298 (2.1)).
    pub const fn new() -> Self {
        Self {
            srtt_us: 0,
            rttvar_us: 0,
            min_rtt_us: 0,
            last_rtt_us: 0,
            rto_us: RTO_INITIAL_US,
        }
    }

    /// Folds in one RTT measurement, microseconds (a zero is taken as 1, so
    /// that a smoothed RTT of 0 keeps meaning "no sample yet"); returns the
    /// value folded in.
    ///
    /// Which segments may be measured is the caller's business (RFC 6298
    /// section 3, Karn's algorithm); the simulator echoes each
    /// transmission's own send time, like the timestamp option, so that
    /// retransmissions can be measured too.
    pub fn sample(&mut self, rtt_us: u64) -> u64 {
        let r = rtt_us.max(1);
        if self.srtt_us == 0 {
            // RFC 6298 (2.2): "When the first RTT measurement R is made, the
            // host MUST set SRTT <- R, RTTVAR <- R/2".
            self.srtt_us = r;
            self.rttvar_us = r / 2;
            self.min_rtt_us = r;
        } else {
            // RFC 6298 (2.3): "RTTVAR <- (1 - beta) * RTTVAR + beta *
            // |SRTT - R'|" then "SRTT <- (1 - alpha) * SRTT + alpha * R'",
            // with alpha = 1/8 and beta = 1/4. RTTVAR is updated first: "the
            // value of SRTT used in the update to RTTVAR is its value before
            // updating SRTT itself".
            let err = self.srtt_us.abs_diff(r);
            self.rttvar_us = (3 * self.rttvar_us + err) / 4;
            self.srtt_us = (7 * self.srtt_us + r) / 8;
            self.min_rtt_us = self.min_rtt_us.min(r);
        }
        self.last_rtt_us = r;
        // RFC 6298 (2.2)/(2.3): "RTO <- SRTT + max (G, K*RTTVAR)" with K = 4.
        // Linux puts its 200 ms minimum in place of the clock granularity G
        // (rather than RFC 6298 (2.4)'s 1 s floor on the sum), and caps the
        // RTO at TCP_RTO_MAX (2.5).
        self.rto_us = (self.srtt_us + (4 * self.rttvar_us).max(RTO_MIN_US)).min(RTO_MAX_US);
        r
    }

    /// An RTT sample for the min RTT alone (Linux's `ca_rtt_us` feeding
    /// `tcp_update_rtt_min()` while srtt takes another sample of the same
    /// ACK); ignored before the first [`Self::sample`].
    pub fn sample_min(&mut self, rtt_us: u64) {
        if self.srtt_us > 0 {
            self.min_rtt_us = self.min_rtt_us.min(rtt_us.max(1));
        }
    }

    /// Smoothed RTT, microseconds (0 before the first sample).
    pub fn srtt_us(&self) -> u64 {
        self.srtt_us
    }

    /// RTT variation, microseconds (0 before the first sample).
    pub fn rttvar_us(&self) -> u64 {
        self.rttvar_us
    }

    /// Minimum RTT over the flow, microseconds (0 before the first sample;
    /// the kernel's windowed filter keeps 300 s, far beyond any simulated
    /// flow).
    pub fn min_rtt_us(&self) -> u64 {
        self.min_rtt_us
    }

    /// The latest sample, microseconds (0 before the first).
    pub fn last_rtt_us(&self) -> u64 {
        self.last_rtt_us
    }

    /// The retransmission timeout before any backoff, microseconds.
    pub fn rto_us(&self) -> u64 {
        self.rto_us
    }

    /// The RTO after `backoff` expirations of the timer, microseconds. RFC
    /// 6298 (5.5): "The host MUST set RTO <- RTO * 2 ("back off the timer")",
    /// capped at [`RTO_MAX_US`] (2.5).
    pub fn backed_off_rto_us(&self, backoff: u32) -> u64 {
        (self.rto_us << backoff.min(MAX_BACKOFF_SHIFT)).min(RTO_MAX_US)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn before_any_sample_the_rto_is_one_second() {
        let e = RttEstimator::new();
        assert_eq!((e.srtt_us(), e.rttvar_us(), e.min_rtt_us()), (0, 0, 0));
        assert_eq!(e.rto_us(), 1_000_000);
        assert_eq!(e.backed_off_rto_us(1), 2_000_000);
    }

    /// RFC 6298 (2.2): SRTT = R, RTTVAR = R/2, RTO = SRTT + max(G, 4 RTTVAR).
    #[test]
    fn the_first_sample_sets_srtt_and_half_of_it_as_rttvar() {
        let mut e = RttEstimator::new();
        assert_eq!(e.sample(100_000), 100_000);
        assert_eq!((e.srtt_us(), e.rttvar_us()), (100_000, 50_000));
        assert_eq!((e.min_rtt_us(), e.last_rtt_us()), (100_000, 100_000));
        assert_eq!(e.rto_us(), 100_000 + 200_000);
        // A short RTT: 4 RTTVAR is below the 200 ms minimum, which applies.
        let mut e = RttEstimator::new();
        e.sample(10_000);
        assert_eq!(e.rto_us(), 10_000 + RTO_MIN_US);
    }

    /// RFC 6298 (2.3), worked by hand: RTTVAR takes |SRTT - R'| against the
    /// old SRTT, then SRTT moves an eighth of the way.
    #[test]
    fn later_samples_follow_rfc_6298_with_rttvar_first() {
        let mut e = RttEstimator::new();
        e.sample(80_000); // SRTT 80 000, RTTVAR 40 000
        e.sample(160_000);
        // RTTVAR = 3/4 * 40 000 + 1/4 * |80 000 - 160 000| = 50 000;
        // SRTT = 7/8 * 80 000 + 1/8 * 160 000 = 90 000.
        assert_eq!((e.srtt_us(), e.rttvar_us()), (90_000, 50_000));
        assert_eq!(e.rto_us(), 90_000 + 4 * 50_000);
        assert_eq!((e.min_rtt_us(), e.last_rtt_us()), (80_000, 160_000));
        e.sample(40_000);
        // RTTVAR = 3/4 * 50 000 + 1/4 * 50 000 = 50 000;
        // SRTT = 7/8 * 90 000 + 1/8 * 40 000 = 83 750.
        assert_eq!((e.srtt_us(), e.rttvar_us()), (83_750, 50_000));
        assert_eq!(e.min_rtt_us(), 40_000);
        // Integer division truncates, as the kernel's shifts do.
        let mut e = RttEstimator::new();
        e.sample(7);
        e.sample(8);
        assert_eq!((e.srtt_us(), e.rttvar_us()), (7, 2));
    }

    #[test]
    fn a_steady_rtt_converges_and_the_rto_floor_holds() {
        let mut e = RttEstimator::new();
        e.sample(1_000_000);
        for _ in 0..200 {
            e.sample(30_000);
        }
        assert!((e.srtt_us() as i64 - 30_000).abs() <= 8, "{e:?}");
        assert!(e.rttvar_us() <= 4, "{e:?}");
        assert_eq!(e.rto_us(), e.srtt_us() + RTO_MIN_US);
    }

    #[test]
    fn a_zero_sample_counts_as_one_microsecond() {
        let mut e = RttEstimator::new();
        assert_eq!(e.sample(0), 1);
        assert_eq!(e.srtt_us(), 1, "a sample was taken");
        e.sample(0);
        assert_eq!(e.srtt_us(), 1);
    }

    /// RFC 6298 (5.5) doubles the RTO per expiry; (2.5) allows a cap of at
    /// least 60 s, Linux's is 120 s.
    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let mut e = RttEstimator::new();
        e.sample(100_000); // RTO 300 ms
        assert_eq!(e.backed_off_rto_us(0), 300_000);
        assert_eq!(e.backed_off_rto_us(3), 2_400_000);
        assert_eq!(e.backed_off_rto_us(9), RTO_MAX_US);
        assert_eq!(e.backed_off_rto_us(1000), RTO_MAX_US);
        // A huge sample is capped too.
        e.sample(500_000_000);
        assert_eq!(e.rto_us(), RTO_MAX_US);
    }
}
