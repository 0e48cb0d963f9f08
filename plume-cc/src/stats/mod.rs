//! Small statistics shared across layers.
//!
//! The project's one quantile convention: linear interpolation between the
//! closest ranks (numpy's and R's default, "type 7"), used by the Plume
//! features, the benchmark's delay percentiles and the daemon benchmark's
//! medians. (The simulator's RTT histogram reports the upper edge of the
//! bucket that holds the quantile; it keeps no samples to interpolate.)

/// The `q`-quantile (`q` in [0, 1], clamped) of `sorted` (ascending), by
/// linear interpolation; NaN when `sorted` is empty.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Sorts `values` (NaNs last) and returns their `q`-quantile.
pub fn quantile_of(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    quantile(values, q)
}

/// A sample mean with its two-sided 95% confidence interval.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MeanCi {
    /// The sample mean.
    pub mean: f64,
    /// Half the interval's width (mean +- half_width); NaN below 2 samples.
    pub half_width: f64,
    /// Number of samples.
    pub n: usize,
}

impl MeanCi {
    /// Lower end of the interval.
    pub fn low(&self) -> f64 {
        self.mean - self.half_width
    }
    /// Upper end of the interval.
    pub fn high(&self) -> f64 {
        self.mean + self.half_width
    }
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom (statrs).
fn t975(df: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, StudentsT};
    StudentsT::new(0.0, 1.0, df).map_or(f64::NAN, |t| t.inverse_cdf(0.975))
}

fn mean_var(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    let v = x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, v)
}

/// Mean of `x` with the t-based 95% interval (seeds as independent samples).
pub fn mean_ci95(x: &[f64]) -> MeanCi {
    let n = x.len();
    if n == 0 {
        return MeanCi {
            mean: f64::NAN,
            half_width: f64::NAN,
            n,
        };
    }
    if n == 1 {
        return MeanCi {
            mean: x[0],
            half_width: f64::NAN,
            n,
        };
    }
    let (m, v) = mean_var(x);
    MeanCi {
        mean: m,
        half_width: t975((n - 1) as f64) * (v / n as f64).sqrt(),
        n,
    }
}

/// Difference of means `mean(a) - mean(b)` with Welch's 95% interval
/// (unequal variances, Welch-Satterthwaite degrees of freedom); `n` is the
/// smaller sample.
pub fn diff_ci95(a: &[f64], b: &[f64]) -> MeanCi {
    if a.len() < 2 || b.len() < 2 {
        return MeanCi {
            mean: f64::NAN,
            half_width: f64::NAN,
            n: a.len().min(b.len()),
        };
    }
    let (ma, va) = mean_var(a);
    let (mb, vb) = mean_var(b);
    let (sa, sb) = (va / a.len() as f64, vb / b.len() as f64);
    let se2 = sa + sb;
    let df = if se2 > 0.0 {
        se2 * se2 / (sa * sa / (a.len() - 1) as f64 + sb * sb / (b.len() - 1) as f64)
    } else {
        (a.len() + b.len() - 2) as f64
    };
    MeanCi {
        mean: ma - mb,
        half_width: t975(df) * se2.sqrt(),
        n: a.len().min(b.len()),
    }
}

/// Jain's fairness index (Σx)² / (n Σx²): 1 when all are equal, 1/n when
/// one takes everything (Jain, Chiu and Hawe, DEC-TR-301, 1984). 1 for no
/// data or all zeros.
pub fn jain(x: &[f64]) -> f64 {
    let s: f64 = x.iter().sum();
    let s2: f64 = x.iter().map(|v| v * v).sum();
    if s2 <= 0.0 {
        1.0
    } else {
        s * s / (x.len() as f64 * s2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confidence_intervals_from_known_samples() {
        // x = 1..5: mean 3, sd sqrt(2.5), t(0.975, 4) = 2.776445;
        // half width = 2.776445 * sqrt(2.5 / 5) = 1.963243 (R: t.test(1:5)).
        let c = mean_ci95(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(c.mean, 3.0);
        assert!((c.half_width - 1.963243).abs() < 1e-5, "{}", c.half_width);
        assert!((c.low() - 1.036757).abs() < 1e-5);
        assert!(mean_ci95(&[2.0]).half_width.is_nan());
        // Welch: a = 1..5, b = 2,4,6,8,10: means 3 and 6, variances 2.5 and
        // 10, standard error sqrt(0.5 + 2) = 1.581139, df = 6.25 / 1.0625 =
        // 5.882353, t(0.975, 5.882) = 2.4588 (between t(5) = 2.5706 and
        // t(6) = 2.4469): -3 +- 3.8877.
        let d = diff_ci95(&[1.0, 2.0, 3.0, 4.0, 5.0], &[2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(d.mean, -3.0);
        assert!(
            (d.half_width / 1.581139 - 2.4588).abs() < 1e-3,
            "{}",
            d.half_width
        );
        assert!(d.half_width / 1.581139 < 2.5706 && d.half_width / 1.581139 > 2.4469);
        assert!((d.low() + 6.8877).abs() < 1e-3, "{}", d.low());
        // Identical constant samples: a zero-width interval at the difference.
        let z = diff_ci95(&[1.0, 1.0], &[0.5, 0.5]);
        assert_eq!((z.mean, z.half_width), (0.5, 0.0));
    }

    #[test]
    fn linear_between_closest_ranks_as_numpy() {
        // numpy.quantile([1, 2, 3, 4], [0, .5, .95, 1]) = 1, 2.5, 3.85, 4
        let x = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&x, 0.0), 1.0);
        assert_eq!(quantile(&x, 0.5), 2.5);
        assert!((quantile(&x, 0.95) - 3.85).abs() < 1e-12);
        assert_eq!(quantile(&x, 1.0), 4.0);
        assert_eq!(quantile(&[7.0], 0.3), 7.0);
        assert!(quantile(&[], 0.5).is_nan());
        assert_eq!(quantile_of(&mut [3.0, 1.0, 2.0], 0.5), 2.0);
    }
}
