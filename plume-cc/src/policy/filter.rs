//! A windowed running maximum over time, the filter BBR keeps its bottleneck
//! bandwidth in (draft-ietf-ccwg-bbr, "BBR.max_bw ... a windowed max filter
//! over the last 10 round trips"), after Kathleen Nichols' three-sample
//! algorithm as in the kernel's `lib/win_minmax.c`.
//!
//! Why by hand: no maintained crate offers this fixed-size, allocation-free
//! estimator, and the daemon keeps one per flow for 10k+ flows, so a deque
//! per flow is not an option. It keeps the best, second-best and third-best
//! samples of successive sub-windows; it is exact for a monotone input and
//! within one sub-window of the true windowed maximum otherwise.

/// One timestamped sample.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Sample {
    t_us: u64,
    v: f64,
}

/// Running maximum of the samples of the last `window_us` (see module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WindowedMax {
    s: [Sample; 3],
    started: bool,
}

impl WindowedMax {
    /// An empty filter (its maximum is 0).
    pub fn new() -> Self {
        Self::default()
    }

    /// The current windowed maximum (0 before the first sample).
    pub fn get(&self) -> f64 {
        self.s[0].v
    }

    fn reset(&mut self, t_us: u64, v: f64) -> f64 {
        let s = Sample { t_us, v };
        self.s = [s; 3];
        self.started = true;
        v
    }

    /// Adds sample `v` taken at `t_us` and returns the maximum over
    /// `[t_us - window_us, t_us]`. Non-finite or negative samples are ignored.
    pub fn update(&mut self, t_us: u64, window_us: u64, v: f64) -> f64 {
        if !v.is_finite() || v < 0.0 {
            return self.get();
        }
        let window_us = window_us.max(1);
        // A new maximum, or nothing left in the window: start over (win_minmax.c,
        // minmax_running_max: "found new max?" / "nothing left in window?").
        if !self.started || v >= self.s[0].v || t_us.saturating_sub(self.s[2].t_us) > window_us {
            return self.reset(t_us, v);
        }
        let new = Sample { t_us, v };
        if v >= self.s[1].v {
            self.s[1] = new;
            self.s[2] = new;
        } else if v >= self.s[2].v {
            self.s[2] = new;
        }
        self.subwin_update(window_us, new)
    }

    /// Ages the best samples as the window slides (win_minmax.c,
    /// minmax_subwin_update).
    fn subwin_update(&mut self, window_us: u64, new: Sample) -> f64 {
        let dt = new.t_us.saturating_sub(self.s[0].t_us);
        if dt > window_us {
            // The best sample left the window: promote the second and third,
            // and the new sample becomes the third.
            self.s[0] = self.s[1];
            self.s[1] = self.s[2];
            self.s[2] = new;
            if new.t_us.saturating_sub(self.s[0].t_us) > window_us {
                self.s[0] = self.s[1];
                self.s[1] = self.s[2];
                self.s[2] = new;
            }
        } else if self.s[1].t_us == self.s[0].t_us && dt > window_us / 4 {
            // A quarter of the window has passed without a second choice:
            // take one from the second quarter.
            self.s[1] = new;
            self.s[2] = new;
        } else if self.s[2].t_us == self.s[1].t_us && dt > window_us / 2 {
            // Half the window has passed without a third choice.
            self.s[2] = new;
        }
        self.s[0].v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_a_step_down_within_the_window() {
        let mut f = WindowedMax::new();
        // 10 Mbit/s-ish for a second, sampled every 20 ms.
        for i in 0..50u64 {
            f.update(i * 20_000, 400_000, 1_250_000.0);
        }
        assert_eq!(f.get(), 1_250_000.0);
        // The capacity drops to a fifth at t = 1 s.
        let mut forgot_at = None;
        for i in 50..100u64 {
            let m = f.update(i * 20_000, 400_000, 250_000.0);
            if m == 250_000.0 && forgot_at.is_none() {
                forgot_at = Some(i * 20_000);
            }
        }
        let t = forgot_at.expect("the old maximum must leave the filter");
        // Gone after one window (400 ms), not before it.
        assert!(t > 1_000_000 + 380_000 && t <= 1_000_000 + 420_000, "{t}");
        assert_eq!(f.get(), 250_000.0);
    }

    #[test]
    fn keeps_the_max_inside_the_window_and_rises_at_once() {
        let mut f = WindowedMax::new();
        f.update(0, 100, 5.0);
        assert_eq!(f.update(10, 100, 3.0), 5.0);
        assert_eq!(f.update(50, 100, 4.0), 5.0);
        assert_eq!(f.update(60, 100, 9.0), 9.0);
        assert_eq!(f.update(70, 100, f64::NAN), 9.0);
        assert_eq!(f.update(80, 100, -1.0), 9.0);
        // 9 taken at 60 expires after 160; the best later sample is 2.
        f.update(120, 100, 2.0);
        assert_eq!(f.update(170, 100, 1.0), 2.0);
    }

    #[test]
    fn never_reports_more_than_the_true_windowed_max() {
        // A sawtooth: the estimate is always one of the window's own samples
        // or, right after expiry, a later one: never above the true maximum.
        let mut f = WindowedMax::new();
        let w = 200;
        let mut hist: Vec<(u64, f64)> = Vec::new();
        for i in 0..500u64 {
            let t = i * 10;
            let v = ((i * 37) % 23) as f64;
            hist.push((t, v));
            let m = f.update(t, w, v);
            let truth = hist
                .iter()
                .filter(|(ts, _)| t - ts <= w)
                .map(|p| p.1)
                .fold(0.0, f64::max);
            assert!(m <= truth + 1e-12, "t={t}: {m} > {truth}");
            assert!(m >= v);
        }
    }
}
