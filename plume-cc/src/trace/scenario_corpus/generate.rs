//! The generator: draws each window's kind from the mix, its capacity from
//! a public source window (or the constant-rate generator), transforms it
//! as the kind says, and draws its path.
//!
//! Why its own file: what makes each kind rare (outages, thinned rates, a
//! long RTT over a shallow buffer, a CUBIC competitor, a step down) and the
//! held-out split of the source windows are the generator's decisions; the
//! mix and the folder it writes do not depend on them. The random stream is
//! drawn in a fixed order, so a seed gives the same corpus byte for byte.

use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::folder::CorpusWriter;
use super::{
    folder_err, Competitor, Kind, Manifest, Mix, PathRecord, ScenarioCorpusError, WindowInput,
    HOLDOUT_EVERY,
};
use crate::trace::corpus::CorpusTrace;
use crate::trace::mahimahi::MBPS_PER_PACKET_PER_MS;

fn log_uniform(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    (lo.ln() + rng.gen::<f64>() * (hi.ln() - lo.ln())).exp()
}

/// A moderate path: 20-100 ms, 1-4 BDP, no loss, one flow.
fn common_path(rng: &mut ChaCha8Rng) -> PathRecord {
    PathRecord {
        min_rtt_ms: log_uniform(rng, 20.0, 100.0),
        buffer_bdp: Some(log_uniform(rng, 1.0, 4.0)),
        loss_rate: 0.0,
        competitors: Vec::new(),
        ack_trace: rng.gen::<f64>() < 0.3,
        delayed_ack: rng.gen::<f64>() < 0.5,
    }
}

/// Keeps each opportunity of `ts` with probability `p`.
fn thin(ts: &[u64], p: f64, rng: &mut ChaCha8Rng) -> Vec<u64> {
    ts.iter()
        .copied()
        .filter(|_| rng.gen::<f64>() < p)
        .collect()
}

/// One window's capacity (timestamps in `(0, window_ms]`; the writer ends
/// its period at `window_ms`), source and path.
fn draw_window(
    kind: Kind,
    window_ms: u64,
    source: Option<(&str, u64, &[u64])>,
    rng: &mut ChaCha8Rng,
) -> (Vec<u64>, String, PathRecord) {
    let mut path = common_path(rng);
    let (mut ts, src) = match (kind, source) {
        (Kind::StepDown, _) | (_, None) => {
            let mbps = log_uniform(rng, 6.0, 24.0);
            let per_ms = (mbps / MBPS_PER_PACKET_PER_MS).max(1.0 / 8.0);
            // Opportunities every 1/per_ms ms, as the constant generator
            // places them.
            let n = (per_ms * window_ms as f64) as u64;
            let ts: Vec<u64> = (1..=n)
                .map(|i| ((i as f64 / per_ms).ceil() as u64).clamp(1, window_ms))
                .collect();
            (ts, format!("synth:constant@{mbps:.1}mbps"))
        }
        (_, Some((name, start, ts))) => (ts.to_vec(), format!("{name}@{start}")),
    };
    match kind {
        Kind::Common => {}
        Kind::Outage => {
            for _ in 0..rng.gen_range(1..=2u32) {
                let len = rng.gen_range(1_000..=3_000u64).min(window_ms / 2);
                let start = rng.gen_range(0..window_ms - len);
                let fade = rng.gen::<f64>() < 0.5;
                let mut keep = Vec::with_capacity(ts.len());
                for &t in &ts {
                    let inside = t > start && t <= start + len;
                    if !inside || (fade && rng.gen::<f64>() < 0.05) {
                        keep.push(t);
                    }
                }
                ts = keep;
            }
        }
        Kind::LowRate => {
            let mean = ts.len() as f64 * MBPS_PER_PACKET_PER_MS / window_ms as f64;
            let target = rng.gen_range(0.2..0.9);
            if mean > target {
                ts = thin(&ts, target / mean, rng);
            }
        }
        Kind::LongRttShallow => {
            path.min_rtt_ms = log_uniform(rng, 200.0, 400.0);
            path.buffer_bdp = Some(log_uniform(rng, 0.25, 0.5));
        }
        Kind::CubicDeep => {
            path.buffer_bdp = Some(log_uniform(rng, 4.0, 8.0));
            path.competitors = vec![Competitor {
                cc: "cubic".into(),
                start_ms: rng.gen_range(0..=2_000),
            }];
        }
        Kind::StepDown => {
            let at = rng.gen_range(3_000..=7_000u64).min(window_ms * 7 / 10);
            let mut i = 0u64;
            ts.retain(|&t| {
                i += 1;
                t <= at || i.is_multiple_of(10)
            });
        }
    }
    (ts, src, path)
}

/// The source windows of the public traces: (trace index, start) of every
/// non-overlapping window of `window_ms` with at least 0.1 Mbit/s.
fn source_windows(sources: &[CorpusTrace], window_ms: u64) -> Vec<(usize, u64, Vec<u64>)> {
    let mut out = Vec::new();
    for (i, t) in sources.iter().enumerate() {
        let ts = t.trace.timestamps_ms();
        let mut start = 0;
        while start + window_ms <= t.trace.period_ms() {
            let w: Vec<u64> = ts
                .iter()
                .filter(|&&x| x > start && x <= start + window_ms)
                .map(|&x| x - start)
                .collect();
            let mbps = w.len() as f64 * MBPS_PER_PACKET_PER_MS / window_ms as f64;
            if mbps >= 0.1 {
                out.push((i, start, w));
            }
            start += window_ms;
        }
    }
    out
}

/// Draws `windows` windows from `mix` over the public `sources` with `seed`
/// and writes the corpus to `out` (which must not exist or be empty).
/// Nothing is written when the mix or the sources are unusable.
/// `progress(done)` hears every written window.
pub fn generate(
    mix: &Mix,
    sources: &[CorpusTrace],
    sources_dir: &Path,
    windows: usize,
    seed: u64,
    out: &Path,
    progress: &mut dyn FnMut(usize),
) -> Result<Manifest, ScenarioCorpusError> {
    let kinds = mix.validate()?;
    if windows < HOLDOUT_EVERY {
        return Err(ScenarioCorpusError::Mix(format!(
            "need at least {HOLDOUT_EVERY} windows, got {windows}"
        )));
    }
    let src = source_windows(sources, mix.window_ms);
    let needs_public = kinds.iter().any(|(k, w)| *k != Kind::StepDown && *w > 0.0);
    let (train_src, held_src): (Vec<usize>, Vec<usize>) =
        (0..src.len()).partition(|j| j % HOLDOUT_EVERY != HOLDOUT_EVERY - 1);
    if needs_public && (train_src.is_empty() || held_src.is_empty()) {
        return Err(folder_err(
            sources_dir,
            format!(
                "need at least {HOLDOUT_EVERY} source windows of {} ms with >= 0.1 Mbit/s, found {}",
                mix.window_ms,
                src.len()
            ),
        ));
    }
    let mut writer = CorpusWriter::create(out, mix.window_ms, windows)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for i in 0..windows {
        let u: f64 = rng.gen();
        let mut acc = 0.0;
        let mut kind = kinds.last().map_or(Kind::Common, |k| k.0);
        for &(k, w) in &kinds {
            acc += w;
            if u < acc {
                kind = k;
                break;
            }
        }
        let heldout = i % HOLDOUT_EVERY == HOLDOUT_EVERY - 1;
        let pool = if heldout { &held_src } else { &train_src };
        let source = (!pool.is_empty()).then(|| {
            let (t, start, ts) = &src[pool[rng.gen_range(0..pool.len())]];
            (sources[*t].name.as_str(), *start, ts.as_slice())
        });
        let (ts, source, path) = draw_window(kind, mix.window_ms, source, &mut rng);
        let window = WindowInput {
            timestamps_ms: ts,
            kind: kind.name().to_string(),
            source,
            path,
        };
        writer.push(i, heldout, window)?;
        progress(i + 1);
    }
    writer.finish(mix.clone(), seed, sources_dir.display().to_string())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use super::super::{open, MANIFEST_FILE, PATHS_FILE, TRACES_DIR};
    use super::*;
    use crate::trace::mahimahi::MahimahiTrace;

    fn sources(n: usize) -> Vec<CorpusTrace> {
        (0..n)
            .map(|i| {
                // 60 s at 4 opportunities per ms (48 Mbit/s) in bursts.
                let ts: Vec<u64> = (1..=60_000u64).flat_map(|t| [t; 4]).collect();
                CorpusTrace {
                    name: format!("t{i}"),
                    path: PathBuf::from(format!("t{i}")),
                    trace: MahimahiTrace::from_timestamps(format!("t{i}"), ts).unwrap(),
                }
            })
            .collect()
    }

    #[test]
    fn the_mix_proportions_hold_within_sampling_error() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("c");
        let mix = Mix::default_mix();
        let n = 2000;
        let m = generate(&mix, &sources(2), Path::new("src"), n, 7, &out, &mut |_| {}).unwrap();
        assert_eq!(m.counts.values().sum::<usize>(), n);
        for (name, &w) in &mix.mix {
            let got = *m.counts.get(name).unwrap_or(&0) as f64 / n as f64;
            let sd = (w * (1.0 - w) / n as f64).sqrt();
            assert!((got - w).abs() < 4.0 * sd, "{name}: {got} vs {w} (sd {sd})");
        }
        let (m2, recs) = open(&out).unwrap();
        assert_eq!(m2, m);
        assert_eq!(recs.len(), n);
        assert_eq!(recs.iter().filter(|r| r.heldout).count(), n / HOLDOUT_EVERY);
        // Each kind's defining trait holds.
        for r in &recs {
            match Kind::from_name(&r.kind).unwrap() {
                Kind::LowRate => assert!(r.mean_mbps < 1.0, "{}", r.mean_mbps),
                Kind::LongRttShallow => {
                    assert!(r.path.min_rtt_ms >= 200.0 && r.path.buffer_bdp.unwrap() <= 0.5)
                }
                Kind::CubicDeep => {
                    assert_eq!(r.path.competitors.len(), 1);
                    assert!(r.path.buffer_bdp.unwrap() >= 4.0);
                }
                Kind::Common => {
                    assert!(r.path.competitors.is_empty());
                    assert!((20.0..=100.0).contains(&r.path.min_rtt_ms));
                }
                Kind::StepDown => assert!(r.source.starts_with("synth:")),
                Kind::Outage => assert!(r.mean_mbps < 48.0),
            }
            let t = MahimahiTrace::read(out.join(TRACES_DIR).join(&r.file)).unwrap();
            assert_eq!(t.period_ms(), 10_000);
        }
        // Same seed, same corpus.
        let out2 = dir.path().join("d");
        generate(
            &mix,
            &sources(2),
            Path::new("src"),
            n,
            7,
            &out2,
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(
            std::fs::read(out.join(PATHS_FILE)).unwrap(),
            std::fs::read(out2.join(PATHS_FILE)).unwrap()
        );
    }

    #[test]
    fn bad_mixes_and_folders_name_the_cause_and_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("c");
        let mut m = Mix::default_mix();
        m.mix.insert("common".into(), 0.5);
        let e = generate(&m, &sources(1), Path::new("s"), 10, 1, &out, &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("sum to 0.65"), "{e}");
        assert!(!out.exists());
        let mut m = Mix::default_mix();
        m.mix.insert("wifi".into(), 0.0);
        let e = m.validate().unwrap_err().to_string();
        assert!(
            e.contains("unknown kind \"wifi\"") && e.contains("step-down"),
            "{e}"
        );
        // The default mix over `sources` into `out`: the error's message.
        let default_mix_err = |sources: &[CorpusTrace]| {
            generate(
                &Mix::default_mix(),
                sources,
                Path::new("s"),
                10,
                1,
                &out,
                &mut |_| {},
            )
            .unwrap_err()
            .to_string()
        };
        let e = default_mix_err(&[]);
        assert!(e.contains("source windows"), "{e}");
        assert!(!out.exists());
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("x"), "").unwrap();
        let e = default_mix_err(&sources(1));
        assert!(e.contains("not empty"), "{e}");
        // A folder with an empty record file is no corpus.
        let empty = dir.path().join("e");
        std::fs::create_dir_all(&empty).unwrap();
        std::fs::write(
            empty.join(MANIFEST_FILE),
            serde_json::to_string(&Manifest {
                mix: Mix::default_mix(),
                seed: 0,
                windows: 0,
                counts: BTreeMap::new(),
                heldout_counts: BTreeMap::new(),
                sources: String::new(),
            })
            .unwrap(),
        )
        .unwrap();
        std::fs::write(empty.join(PATHS_FILE), "\n").unwrap();
        let e = open(&empty).unwrap_err().to_string();
        assert!(e.contains("no usable windows"), "{e}");
    }
}
