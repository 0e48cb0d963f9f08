//! Seeded synthetic trace generators.
//!
//! They give the repository small, reproducible traces of known shape
//! (constant, steps, periodic fades, Markov-modulated levels, outage bursts,
//! LTE-like fading) for tests, examples and `traces/synthetic/`, without
//! shipping recorded traces. Every generator is a pure function of its
//! parameters and the RNG passed in.
use rand::Rng;
use rand_distr::{Distribution, Exp, Normal};
use serde::{Deserialize, Serialize};

use super::mahimahi::{MahimahiTrace, TraceError, MBPS_PER_PACKET_PER_MS};

/// The shape of a synthetic trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum SynthKind {
    /// A fixed rate.
    Constant,
    /// Alternates between the rate and a quarter of it every 5 s.
    Step,
    /// Smooth periodic fades (4 s period) between 10% and 100% of the rate.
    Fade,
    /// Markov-modulated levels (0.25x, 0.5x, 1x, 1.5x the rate), switching
    /// with probability 5% every 100 ms: a random walk between regimes.
    Markov,
    /// The rate with outage bursts (0 Mbps for 0.5-3 s, every ~8 s on average).
    Outage,
    /// LTE-like: a slowly mean-reverting log-rate with fast fading and rare
    /// one-second deep fades.
    Lte,
}

/// Everything that determines a synthetic trace (with the RNG seed).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SynthSpec {
    /// The generator.
    pub kind: SynthKind,
    /// The generator's nominal rate in Mbps (its meaning per kind is in [`SynthKind`]).
    pub mbps: f64,
    /// Length of the trace (its period) in ms.
    pub duration_ms: u64,
}

/// Rate updates happen on this grid (ms); packets are placed per ms.
const TICK_MS: u64 = 10;

impl SynthSpec {
    /// Generates the trace. The last timestamp is always `duration_ms`, so the
    /// trace repeats with exactly that period (one extra opportunity there).
    pub fn generate(&self, rng: &mut impl Rng) -> Result<MahimahiTrace, TraceError> {
        let origin = format!("synth:{:?}", self.kind).to_lowercase();
        if !(self.mbps.is_finite() && self.mbps > 0.0 && self.mbps <= 100_000.0)
            || self.duration_ms == 0
            || self.duration_ms > 24 * 3600 * 1000
        {
            return Err(TraceError::BadRequest {
                path: origin.into(),
                what: format!(
                    "need 0 < --mbps <= 100000 and 0 < duration <= 1 day (got {} Mbps, {} ms)",
                    self.mbps, self.duration_ms
                ),
            });
        }
        let rates = self.rates(rng);
        let mut timestamps = Vec::new();
        let mut credit = 0.0_f64;
        for t in 1..=self.duration_ms {
            let rate = rates[((t - 1) / TICK_MS) as usize];
            credit += rate / MBPS_PER_PACKET_PER_MS;
            while credit >= 1.0 {
                timestamps.push(t);
                credit -= 1.0;
            }
        }
        if timestamps.last() != Some(&self.duration_ms) {
            timestamps.push(self.duration_ms);
        }
        MahimahiTrace::from_timestamps(origin, timestamps)
    }

    /// The rate in Mbps on each tick of [`TICK_MS`].
    fn rates(&self, rng: &mut impl Rng) -> Vec<f64> {
        let ticks = self.duration_ms.div_ceil(TICK_MS) as usize;
        let m = self.mbps;
        let time_s = |i: usize| i as f64 * TICK_MS as f64 / 1000.0;
        match self.kind {
            SynthKind::Constant => vec![m; ticks],
            SynthKind::Step => (0..ticks)
                .map(|i| {
                    if ((time_s(i) / 5.0) as u64).is_multiple_of(2) {
                        m
                    } else {
                        m / 4.0
                    }
                })
                .collect(),
            SynthKind::Fade => (0..ticks)
                .map(|i| {
                    let phase = 2.0 * std::f64::consts::PI * time_s(i) / 4.0;
                    m * (0.55 + 0.45 * phase.cos())
                })
                .collect(),
            SynthKind::Markov => {
                const LEVELS: [f64; 4] = [0.25, 0.5, 1.0, 1.5];
                let mut state = 2;
                (0..ticks)
                    .map(|i| {
                        if i % 10 == 0 && rng.gen_bool(0.05) {
                            state = rng.gen_range(0..LEVELS.len());
                        }
                        m * LEVELS[state]
                    })
                    .collect()
            }
            SynthKind::Outage => {
                let gap = Exp::new(1.0 / 8.0).unwrap_or_else(|_| unreachable!());
                let mut out = vec![m; ticks];
                let mut s = gap.sample(rng);
                loop {
                    let len = rng.gen_range(0.5..3.0);
                    let first = (s * 1000.0 / TICK_MS as f64) as usize;
                    let last = ((s + len) * 1000.0 / TICK_MS as f64) as usize;
                    if first >= ticks {
                        break;
                    }
                    out[first..last.min(ticks)]
                        .iter_mut()
                        .for_each(|r| *r = 0.0);
                    s += len + gap.sample(rng);
                }
                out
            }
            SynthKind::Lte => {
                // Ornstein-Uhlenbeck log-rate (time constant 2 s, stationary
                // sd 0.5), lognormal fast fading (sd 0.3) per tick, and a 2%
                // chance per second of a 1 s deep fade to 5%.
                let slow = Normal::new(0.0, 1.0).unwrap_or_else(|_| unreachable!());
                let dt = TICK_MS as f64 / 1000.0;
                let theta: f64 = 1.0 / 2.0;
                let sigma = 0.5 * (2.0 * theta).sqrt();
                let mut x = 0.0_f64;
                let mut fade_left = 0usize;
                (0..ticks)
                    .map(|i| {
                        x += -theta * x * dt + sigma * dt.sqrt() * slow.sample(rng);
                        if fade_left == 0 && i % 100 == 0 && rng.gen_bool(0.02) {
                            fade_left = 100;
                        }
                        let fast = (0.3 * slow.sample(rng) - 0.045).exp();
                        let deep = if fade_left > 0 {
                            fade_left -= 1;
                            0.05
                        } else {
                            1.0
                        };
                        m * (x - 0.125).exp() * fast * deep
                    })
                    .collect()
            }
        }
    }
}

/// Generates every trace of [`preset_set`] into `dir` (which must exist);
/// returns the files written, in the set's order.
pub fn write_preset_set(dir: &std::path::Path) -> Result<Vec<std::path::PathBuf>, TraceError> {
    use rand::SeedableRng;
    preset_set()
        .into_iter()
        .map(|(name, spec, seed)| {
            let path = dir.join(name);
            spec.generate(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed))?
                .write(&path)?;
            Ok(path)
        })
        .collect()
}

/// The small, fixed set of synthetic traces kept in the repository's
/// `traces/synthetic/` (file name, spec, seed); see `traces/README.md`.
pub fn preset_set() -> Vec<(&'static str, SynthSpec, u64)> {
    let spec = |kind, mbps, secs: u64| SynthSpec {
        kind,
        mbps,
        duration_ms: secs * 1000,
    };
    vec![
        (
            "constant-2mbps.trace",
            spec(SynthKind::Constant, 2.0, 60),
            0,
        ),
        (
            "constant-8mbps.trace",
            spec(SynthKind::Constant, 8.0, 30),
            0,
        ),
        ("step-6mbps.trace", spec(SynthKind::Step, 6.0, 60), 0),
        ("fade-6mbps.trace", spec(SynthKind::Fade, 6.0, 60), 0),
        ("markov-4mbps-s1.trace", spec(SynthKind::Markov, 4.0, 60), 1),
        ("markov-4mbps-s2.trace", spec(SynthKind::Markov, 4.0, 60), 2),
        ("outage-5mbps-s1.trace", spec(SynthKind::Outage, 5.0, 60), 1),
        ("outage-5mbps-s2.trace", spec(SynthKind::Outage, 5.0, 60), 2),
        ("lte-4mbps-s1.trace", spec(SynthKind::Lte, 4.0, 60), 1),
        ("lte-4mbps-s2.trace", spec(SynthKind::Lte, 4.0, 60), 2),
        ("lte-4mbps-s3.trace", spec(SynthKind::Lte, 4.0, 60), 3),
        ("lte-4mbps-s4.trace", spec(SynthKind::Lte, 4.0, 60), 4),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn gen(kind: SynthKind, mbps: f64, seed: u64) -> MahimahiTrace {
        let spec = SynthSpec {
            kind,
            mbps,
            duration_ms: 60_000,
        };
        spec.generate(&mut ChaCha8Rng::seed_from_u64(seed)).unwrap()
    }

    #[test]
    fn constant_rate_is_exact() {
        let t = gen(SynthKind::Constant, 6.0, 0);
        assert_eq!(t.period_ms(), 60_000);
        assert!((t.mean_mbps() - 6.0).abs() < 0.01, "{}", t.mean_mbps());
        let c = t.capacity_mbps(0, 100, 600).unwrap();
        assert!(c.iter().all(|&x| (x - 6.0).abs() < 0.2));
    }

    #[test]
    fn seeded_and_shaped() {
        for kind in [SynthKind::Markov, SynthKind::Outage, SynthKind::Lte] {
            assert_eq!(gen(kind, 4.0, 5), gen(kind, 4.0, 5), "{kind:?}");
            assert_ne!(gen(kind, 4.0, 5), gen(kind, 4.0, 6), "{kind:?}");
        }
        let outage = gen(SynthKind::Outage, 5.0, 1)
            .capacity_mbps(0, 100, 600)
            .unwrap();
        assert!(outage.iter().filter(|&&c| c == 0.0).count() > 20);
        let step = gen(SynthKind::Step, 8.0, 0)
            .capacity_mbps(0, 1000, 10)
            .unwrap();
        assert!(
            (step[0] - 8.0).abs() < 0.1 && (step[6] - 2.0).abs() < 0.1,
            "{step:?}"
        );
        let lte = gen(SynthKind::Lte, 4.0, 1);
        assert!(
            lte.mean_mbps() > 1.0 && lte.mean_mbps() < 12.0,
            "{}",
            lte.mean_mbps()
        );
    }

    #[test]
    fn repository_presets_match_the_generator() {
        let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../traces/synthetic"));
        let mut total = 0;
        for (name, spec, seed) in preset_set() {
            let path = dir.join(name);
            let on_disk = MahimahiTrace::read(&path).unwrap();
            let fresh = spec.generate(&mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
            assert_eq!(
                on_disk.timestamps_ms(),
                fresh.timestamps_ms(),
                "{}",
                path.display()
            );
            let size = std::fs::metadata(&path).unwrap().len();
            assert!(size < 200_000, "{name} is {size} bytes");
            total += size;
        }
        assert!(total < 2_000_000);
    }

    #[test]
    fn bad_specs_are_errors() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for (mbps, ms) in [(-1.0, 1000), (0.0, 1000), (f64::NAN, 1000), (1.0, 0)] {
            let spec = SynthSpec {
                kind: SynthKind::Constant,
                mbps,
                duration_ms: ms,
            };
            assert!(spec.generate(&mut rng).is_err());
        }
    }
}
