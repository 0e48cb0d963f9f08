//! A flow's own past beyond the observation's 8 intervals, as inputs of
//! the explanation predictors (`explain fit --past`).
//!
//! The next second's queueing delay depends on what the observation does
//! not show: how deep the buffer is, how long the queue has stood. The
//! flow's past carries part of it (the deepest queue it has built is a
//! lower bound of the buffer). Computed from the observations as here, it
//! raised the held-out R² of the delay return from 0.75 to 0.78 on seed 0
//! (with four times the decisions and 128 x 128 networks; the same from the
//! simulator's own records: 0.81), short of the 0.8
//! (docs/TRAINING.md, "The flow's past"), so it is opt-in. The policy does
//! not see these features: they are the explainer's alone.
//!
//! [`FlowPast`] is fed every observation of a flow, in order, once per
//! monitor interval: by the simulator rollouts in [`super::rollout`] and by
//! the daemon for every flow of every control step
//! ([`super::live::LiveExplainer::observe`]), so that the features a
//! predictor was fit on and those it is run on are computed alike. It reads
//! only the observation (the newest interval's block and the scales), never
//! clocks or the simulator.

use crate::policy::observation::{GLOBAL_FEATURES, OBSERVATION_LEN};

/// Names of the features, in input order.
pub const PAST_FEATURES: [&str; 8] = [
    "past_queue_ms_mean_1s_log",
    "past_queue_ms_peak_1s_log",
    "past_queue_ms_peak_flow_log",
    "past_queue_ms_mean_200ms_log",
    "past_delivery_mbps_mean_1s_log",
    "past_retrans_rate_mean_1s",
    "past_srtt_excess_mean_1s",
    "past_age_s",
];

/// Number of past features.
pub const PAST_LEN: usize = PAST_FEATURES.len();

/// Discount per interval of the "1 s" features (the horizon's, 0.98 at 20 ms).
const SLOW: f64 = 0.98;
/// Discount per interval of the "200 ms" feature.
const FAST: f64 = 0.9;
/// The age saturates there (seconds).
const MAX_AGE_S: f64 = 60.0;

/// Running summaries of one flow's observations (module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FlowPast {
    intervals: u64,
    weight_slow: f64,
    weight_fast: f64,
    queue_slow: f64,
    queue_fast: f64,
    peak_decaying: f64,
    peak: f64,
    rate: f64,
    retrans: f64,
    excess: f64,
    interval_s: f64,
}

impl FlowPast {
    /// A flow with no past; `interval_us` is the monitor interval (for the age).
    pub fn new(interval_us: u64) -> Self {
        Self {
            interval_s: interval_us as f64 / 1e6,
            ..Self::default()
        }
    }

    /// Takes the flow's next observation. An observation with no interval
    /// yet (a flow's first: every block is zero and the min RTT unknown)
    /// counts as nothing.
    pub fn update(&mut self, obs: &[f32]) {
        if obs.len() < OBSERVATION_LEN || obs[0] <= 0.0 {
            return;
        }
        let g = GLOBAL_FEATURES.len();
        let ctx = crate::policy::flow_context_from_observation(obs, 1);
        let min_rtt_ms = f64::from(ctx.min_rtt_us) / 1000.0;
        let max_rate_mbps = ctx.max_rate_bytes_per_sec * 8.0 / 1e6;
        let excess = f64::from(obs[g + 2]).max(0.0);
        let queue_ms = excess * min_rtt_ms;
        let rate_mbps = f64::from(obs[g]).max(0.0) * max_rate_mbps;
        let retrans = f64::from(obs[g + 5]).clamp(0.0, 1.0);
        // Discounted means: m += (x - m) / W with W = gamma * W + 1 is
        // sum(gamma^j x_(t-j)) / sum(gamma^j).
        self.weight_slow = SLOW * self.weight_slow + 1.0;
        self.weight_fast = FAST * self.weight_fast + 1.0;
        let (ws, wf) = (self.weight_slow, self.weight_fast);
        self.queue_slow += (queue_ms - self.queue_slow) / ws;
        self.queue_fast += (queue_ms - self.queue_fast) / wf;
        self.rate += (rate_mbps - self.rate) / ws;
        self.retrans += (retrans - self.retrans) / ws;
        self.excess += (excess - self.excess) / ws;
        self.peak_decaying = queue_ms.max(SLOW * self.peak_decaying);
        self.peak = self.peak.max(queue_ms);
        self.intervals += 1;
    }

    /// Intervals taken so far.
    pub fn intervals(&self) -> u64 {
        self.intervals
    }

    /// The features ([`PAST_FEATURES`]); queues and rates as `ln(1 + x)`,
    /// their tails being long.
    pub fn features(&self) -> [f32; PAST_LEN] {
        let log = |x: f64| x.max(0.0).ln_1p() as f32;
        [
            log(self.queue_slow),
            log(self.peak_decaying),
            log(self.peak),
            log(self.queue_fast),
            log(self.rate),
            self.retrans as f32,
            self.excess as f32,
            (self.intervals as f64 * self.interval_s).min(MAX_AGE_S) as f32,
        ]
    }
}

/// Names of the unclipped-queue features ([`QueuePast`]), in input order.
pub const QUEUE_FEATURES: [&str; 5] = [
    "queue_ratio_log",
    "queue_ratio_log_mean_1s",
    "queue_ratio_log_peak_1s",
    "queue_ratio_log_peak_flow",
    "queue_ms_log",
];

/// Number of unclipped-queue features.
pub const QUEUE_LEN: usize = QUEUE_FEATURES.len();

/// The flow's queue as the datapath measures it, unclipped: the
/// observation's `srtt_excess` stops at 10 min RTTs, which is where the
/// deep-queue tail that decides the delay return's R² begins
/// (docs/TRAINING.md, "The flow's past"). Fed the smoothed and the minimum
/// RTT of every interval (the flow sample the observation was built
/// from: the simulator's in the rollouts, the kernel's in the daemon),
/// it keeps `ln(srtt / min RTT)` now, its discounted mean and decaying
/// peak over about a second, its peak over the flow, and the queue in ms
/// on a log scale. Screened against the delay return's held-out R² in
/// docs/TRAINING.md ("The unclipped queue, a heavy-tail target,
/// ensembles"): +0.02 over the observation alone, +0.00 beside
/// [`FlowPast`] (three seeds), so it is recorded by the rollouts for
/// screens ([`super::rollout::Kept::queue`]) but is not an input of
/// `explain fit` nor computed by the daemon. The explainer's alone; the
/// policy does not see it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QueuePast {
    intervals: u64,
    weight: f64,
    now: f64,
    now_ms: f64,
    mean: f64,
    peak_decaying: f64,
    peak: f64,
}

impl QueuePast {
    /// Takes one interval's smoothed and minimum RTT (microseconds); an
    /// interval with either unknown (0) counts as nothing.
    pub fn update(&mut self, srtt_us: u32, min_rtt_us: u32) {
        if srtt_us == 0 || min_rtt_us == 0 {
            return;
        }
        let ratio = (f64::from(srtt_us) / f64::from(min_rtt_us)).max(1.0).ln();
        self.weight = SLOW * self.weight + 1.0;
        self.mean += (ratio - self.mean) / self.weight;
        self.peak_decaying = ratio.max(SLOW * self.peak_decaying);
        self.peak = self.peak.max(ratio);
        self.now = ratio;
        self.now_ms = f64::from(srtt_us.saturating_sub(min_rtt_us)) / 1000.0;
        self.intervals += 1;
    }

    /// Intervals taken so far.
    pub fn intervals(&self) -> u64 {
        self.intervals
    }

    /// The features ([`QUEUE_FEATURES`]).
    pub fn features(&self) -> [f32; QUEUE_LEN] {
        [
            self.now as f32,
            self.mean as f32,
            self.peak_decaying as f32,
            self.peak as f32,
            self.now_ms.ln_1p() as f32,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An observation of a path of `min_rtt_ms` and anchor `rate_mbps` whose
    /// newest interval shows `excess` min RTTs of queue, `norm` of the anchor
    /// delivered and `retrans` retransmitted.
    fn obs(min_rtt_ms: f64, rate_mbps: f64, excess: f32, norm: f32, retrans: f32) -> Vec<f32> {
        let mut o = vec![0.0f32; OBSERVATION_LEN];
        o[0] = ((1.0 + min_rtt_ms).ln() / 1001f64.ln()) as f32;
        o[1] = ((1.0 + rate_mbps).ln() / 10001f64.ln()) as f32;
        let g = GLOBAL_FEATURES.len();
        o[g] = norm;
        o[g + 2] = excess;
        o[g + 5] = retrans;
        o
    }

    #[test]
    fn a_standing_queue_is_its_own_mean_and_a_passing_one_leaves_its_peak() {
        let mut p = FlowPast::new(20_000);
        // No interval yet: nothing counts.
        p.update(&vec![0.0; OBSERVATION_LEN]);
        assert_eq!(p.features(), FlowPast::new(20_000).features());
        for _ in 0..100 {
            p.update(&obs(50.0, 10.0, 2.0, 0.5, 0.01));
        }
        let f = p.features();
        let ms = |v: f32| f64::from(v).exp_m1();
        // 2 min RTTs of 50 ms: 100 ms, every mean and peak alike.
        for v in &f[..4] {
            assert!((ms(*v) - 100.0).abs() < 1.5, "{f:?}");
        }
        assert!((ms(f[4]) - 5.0).abs() < 0.1, "{f:?}");
        assert!(
            (f[5] - 0.01).abs() < 1e-4 && (f[6] - 2.0).abs() < 1e-3,
            "{f:?}"
        );
        assert!((f[7] - 2.0).abs() < 1e-4, "100 intervals of 20 ms: {f:?}");
        // The queue drains: the 200 ms mean follows within 200 ms, the 1 s
        // mean and the decaying peak more slowly, the flow's peak stays.
        for _ in 0..10 {
            p.update(&obs(50.0, 10.0, 0.0, 0.5, 0.0));
        }
        let g = p.features();
        assert!(ms(g[3]) < 0.5 * ms(g[0]), "{g:?}");
        assert!(ms(g[0]) < 100.0 && ms(g[0]) > 40.0, "{g:?}");
        assert!((ms(g[1]) - 100.0 * 0.98f64.powi(10)).abs() < 1.5, "{g:?}");
        assert!((ms(g[2]) - 100.0).abs() < 1.5, "{g:?}");
    }

    #[test]
    fn the_unclipped_queue_goes_past_the_observations_ten_min_rtts() {
        let mut q = QueuePast::default();
        // Unknown RTTs count as nothing.
        q.update(0, 40_000);
        q.update(50_000, 0);
        assert_eq!(q, QueuePast::default());
        // A 40 ms path with 30 min RTTs of queue (the observation says 10).
        for _ in 0..100 {
            q.update(31 * 40_000, 40_000);
        }
        let f = q.features();
        assert!((f64::from(f[0]) - 31f64.ln()).abs() < 1e-5, "{f:?}");
        for v in &f[1..4] {
            assert!((f64::from(*v) - 31f64.ln()).abs() < 1e-3, "{f:?}");
        }
        assert!((f64::from(f[4]) - 1201f64.ln()).abs() < 1e-5, "{f:?}");
        assert_eq!(q.intervals(), 100);
        // The queue drains: now and the mean fall, the 1 s peak decays,
        // the flow's peak stays.
        for _ in 0..10 {
            q.update(40_000, 40_000);
        }
        let g = q.features();
        assert_eq!(g[0], 0.0);
        assert_eq!(g[4], 0.0);
        assert!(g[1] < f[1] && g[1] > 0.5 * f[1], "{g:?}");
        assert!(
            (f64::from(g[2]) - 31f64.ln() * 0.98f64.powi(10)).abs() < 1e-3,
            "{g:?}"
        );
        assert_eq!(g[3], f[3]);
    }
}
