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

#[cfg(test)]
mod tests {
    use super::*;

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
