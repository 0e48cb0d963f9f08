//! The daemon's batched forward at batch cost
//! ([`LoadedPolicy::act_batch_into`]): tensors kept from call to call
//! ([`BatchScratch`]), the observations normalised straight into the input
//! tensor in one pass that also checks finiteness (8 lanes wide where the
//! CPU has AVX2), and where the time went ([`ForwardTiming`]). Apart from
//! the file format and loading in `file.rs` because it is the hot path of
//! every control step, with its own bit-for-bit contract against
//! [`LoadedPolicy::act_batch`].

use tch::{Kind, Tensor};

use super::file::{non_finite, LoadedPolicy, Net};
use super::format::torch_err;
use super::metadata::PolicyError;

/// Where the time of one [`LoadedPolicy::act_batch_into`] went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ForwardTiming {
    /// Normalising (native) or copying (TorchScript) the observations into
    /// the input tensor, with the finiteness check.
    pub prepare: std::time::Duration,
    /// The network's layers.
    pub forward: std::time::Duration,
    /// Copying the `[n, 2]` actions out and clamping them.
    pub readback: std::time::Duration,
}

/// The tensors [`LoadedPolicy::act_batch_into`] reuses from call to call:
/// the input and every layer's output, reallocated only when the number of
/// flows changes, plus the normalisation statistics as plain floats. One
/// scratch belongs to one policy (it keeps that policy's statistics):
/// [`crate::policy::LearnedPolicy`] owns one beside its policy.
#[derive(Default)]
pub struct BatchScratch {
    rows: usize,
    input: Option<Tensor>,
    layers: Vec<Tensor>,
    mean: Vec<f32>,
    std: Vec<f32>,
    clip: f32,
}

impl std::fmt::Debug for BatchScratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchScratch")
            .field("rows", &self.rows)
            .finish()
    }
}

impl BatchScratch {
    /// Makes the tensors fit `rows` flows of `len` features for `net`.
    fn fit(&mut self, net: &Net, rows: usize, len: usize) -> Result<(), tch::TchError> {
        if self.rows == rows && self.input.is_some() {
            return Ok(());
        }
        let opts = (Kind::Float, tch::Device::Cpu);
        let r = rows as i64;
        self.input = Some(Tensor::f_empty([r, len as i64], opts)?);
        self.layers.clear();
        if let Net::Native(n) = net {
            for l in &n.actor {
                self.layers
                    .push(Tensor::f_empty([r, l.weight.size()[0]], opts)?);
            }
            // The values InferenceNet::forward divides by, read back from
            // its own tensors (so the two paths cannot disagree).
            let read = |t: &Tensor| -> Result<Vec<f32>, tch::TchError> {
                let t = t.f_to_kind(Kind::Float)?.f_contiguous()?;
                let mut v = vec![0.0f32; len];
                t.f_copy_data(&mut v, len)?;
                Ok(v)
            };
            self.mean = read(&n.obs_mean)?;
            self.std = read(&n.obs_std)?;
            self.clip = n.obs_clip as f32;
        }
        self.rows = rows;
        Ok(())
    }
}

/// Whether every value is finite. Branch-free over the whole slice (an
/// exponent of all ones marks infinities and NaNs), so it vectorises; the
/// caller looks for the first bad value only when there is one.
#[inline(always)]
fn all_finite(v: &[f32]) -> bool {
    v.iter().fold(0u32, |bad, x| {
        bad | u32::from(x.to_bits() & 0x7f80_0000 == 0x7f80_0000)
    }) == 0
}

/// Writes each row of `obs` normalised into `out` (the same f32
/// operations, in the same order, as [`crate::policy::model::InferenceNet::forward`]'s
/// `((obs - mean) / std).clamp(-clip, clip)`, so the result is bit for bit
/// the same) and says whether every value of `obs` was finite, in one pass.
/// Where the CPU has AVX2 the loop runs 8 lanes wide: IEEE division,
/// subtraction and comparison give the same bits at any width, so only the
/// speed changes (the binary is built for baseline x86-64, SSE2).
fn normalise_rows(obs: &[f32], out: &mut [f32], mean: &[f32], std: &[f32], clip: f32) -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU was just checked for AVX2.
        return unsafe { normalise_rows_avx2(obs, out, mean, std, clip) };
    }
    normalise_rows_generic(obs, out, mean, std, clip)
}

/// [`normalise_rows`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn normalise_rows_avx2(
    obs: &[f32],
    out: &mut [f32],
    mean: &[f32],
    std: &[f32],
    clip: f32,
) -> bool {
    normalise_rows_generic(obs, out, mean, std, clip)
}

/// The body of [`normalise_rows`], inlined into each instruction-set
/// version.
#[inline(always)]
fn normalise_rows_generic(
    obs: &[f32],
    out: &mut [f32],
    mean: &[f32],
    std: &[f32],
    clip: f32,
) -> bool {
    let len = mean.len();
    let mut bad = 0u32;
    for (row_in, row_out) in obs.chunks_exact(len).zip(out.chunks_exact_mut(len)) {
        for (((o, &v), &m), &s) in row_out.iter_mut().zip(row_in).zip(mean).zip(std) {
            bad |= u32::from(v.to_bits() & 0x7f80_0000 == 0x7f80_0000);
            // `f32::clamp(-clip, clip)` as the standard library defines
            // it (NaN passes through), without its assertion on the bounds.
            let y = (v - m) / s;
            let y = if y < -clip { -clip } else { y };
            *o = if y > clip { clip } else { y };
        }
    }
    bad == 0
}

impl LoadedPolicy {
    /// [`Self::act_batch`] at batch cost, for the daemon's every interval:
    /// the raw actions of `n_flows` observations (row-major in `obs`) go into
    /// `actions` as `[cwnd lever, pacing lever]` pairs, each clamped to
    /// `[-1, 1]`. Nothing is allocated per flow or per call once `scratch`
    /// has seen this flow count: a native policy normalises the observations
    /// straight into a libtorch tensor kept in `scratch`, runs every layer
    /// into tensors kept there too (`linear_out`, `tanh_` in place), and
    /// copies the `[n, 2]` result into `actions`. A TorchScript module keeps
    /// its own intermediate tensors; only its input is reused.
    ///
    /// Why in place rather than a hand-written MLP: the layers stay
    /// libtorch's own kernels, so the actions are bit-for-bit those of
    /// [`Self::act_batch`] (and of training's evaluation), and only the
    /// tensor churn around them goes (docs/BENCHMARKS.md, "Decide step").
    pub fn act_batch_into(
        &self,
        scratch: &mut BatchScratch,
        obs: &[f32],
        n_flows: usize,
        actions: &mut Vec<f32>,
    ) -> Result<ForwardTiming, PolicyError> {
        actions.clear();
        let len = self.check_len(obs, n_flows)?;
        let mut timing = ForwardTiming::default();
        if n_flows == 0 {
            return Ok(timing);
        }
        // The finiteness check is part of `prepare`: a native policy's runs
        // in the same pass as the normalisation (one read of the matrix
        // instead of two; the separate scan cost as much as the
        // normalisation, docs/BENCHMARKS.md "Decide step").
        let t0 = std::time::Instant::now();
        let torch = |source| torch_err(self.source.clone(), source);
        scratch.fit(&self.net, n_flows, len).map_err(torch)?;
        let input = scratch
            .input
            .as_mut()
            .ok_or_else(|| PolicyError::BadInput("no input tensor for a non-empty batch".into()))?;
        // SAFETY: `input` is a contiguous float tensor of exactly
        // n_flows * len elements that `scratch` allocated and alone holds;
        // no libtorch operation runs on it while this slice lives.
        let x = unsafe {
            std::slice::from_raw_parts_mut(input.data_ptr().cast::<f32>(), n_flows * len)
        };
        let finite = match &self.net {
            Net::Native(_) => normalise_rows(obs, x, &scratch.mean, &scratch.std, scratch.clip),
            Net::Script(_) => {
                x.copy_from_slice(obs);
                all_finite(obs)
            }
        };
        if !finite {
            return Err(non_finite(obs, len));
        }
        let t1 = std::time::Instant::now();
        let y = tch::no_grad(|| -> Result<Tensor, tch::TchError> {
            match &self.net {
                Net::Native(n) => {
                    let mut h = input.shallow_clone();
                    for (i, (l, out)) in n.actor.iter().zip(&scratch.layers).enumerate() {
                        let mut o = h.f_linear_out(out, &l.weight, Some(&l.bias))?;
                        if i + 1 < n.actor.len() {
                            let _ = o.f_tanh_()?;
                        }
                        h = o;
                    }
                    Ok(h)
                }
                Net::Script(m) => m.forward_ts(&[input.shallow_clone()]),
            }
        })
        .map_err(torch)?;
        let t2 = std::time::Instant::now();
        self.check_output(&y, n_flows)?;
        let y = if y.kind() == Kind::Float && y.is_contiguous() {
            y
        } else {
            y.f_to_kind(Kind::Float)
                .and_then(|t| t.f_contiguous())
                .map_err(torch)?
        };
        actions.resize(2 * n_flows, 0.0);
        y.f_copy_data(actions, 2 * n_flows).map_err(torch)?;
        for a in actions.iter_mut() {
            *a = a.clamp(-1.0, 1.0);
        }
        timing.prepare = t1 - t0;
        timing.forward = t2 - t1;
        timing.readback = t2.elapsed();
        Ok(timing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::file::tests::native_and_script;
    use crate::policy::observation::OBSERVATION_LEN;

    /// Random observations in a wide range (beyond the normaliser's clip,
    /// negative and tiny values), as f32 bits from a seeded generator.
    fn random_obs(n: usize, seed: u64) -> Vec<f32> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n * OBSERVATION_LEN)
            .map(|_| match rng.gen_range(0..10) {
                0 => 0.0,
                1 => rng.gen_range(-1e3f32..1e3),
                _ => rng.gen_range(-2.0f32..12.0),
            })
            .collect()
    }

    /// The batch-cost path gives bit-for-bit the actions of the plain one,
    /// for both kinds of policy, as the flow count grows, shrinks and stays
    /// (tensors reused or reallocated), and the same errors.
    #[test]
    fn act_batch_into_matches_act_batch_bit_for_bit() {
        tch::set_num_threads(1);
        let dir = tempfile::tempdir().unwrap();
        let (native, script) = native_and_script(dir.path(), 11);
        for p in [&native, &script] {
            let mut scratch = BatchScratch::default();
            let mut got = Vec::new();
            for (k, n) in [1usize, 1, 300, 300, 7, 2048, 0, 5].into_iter().enumerate() {
                let o = random_obs(n, k as u64);
                p.act_batch_into(&mut scratch, &o, n, &mut got).unwrap();
                let want: Vec<f32> = p.act_batch(&o, n).unwrap().into_iter().flatten().collect();
                assert_eq!(got.len(), 2 * n);
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert_eq!(
                        g.to_bits(),
                        w.to_bits(),
                        "{:?} n={n} value {i}",
                        p.metadata().kind
                    );
                }
            }
            let mut bad = random_obs(3, 99);
            bad[5] = f32::INFINITY;
            assert!(matches!(
                p.act_batch_into(&mut scratch, &bad, 3, &mut got),
                Err(PolicyError::BadInput(_))
            ));
            assert!(p.act_batch_into(&mut scratch, &bad, 2, &mut got).is_err());
            // The check runs in the normalising pass now: it still finds
            // every non-finite value and names the first.
            for (at, v) in [
                (5, f32::INFINITY),
                (OBSERVATION_LEN + 7, f32::NAN),
                (2 * OBSERVATION_LEN + 75, f32::NEG_INFINITY),
            ] {
                let mut bad = random_obs(3, 98);
                bad[at] = v;
                bad[3 * OBSERVATION_LEN - 1] = f32::NAN;
                let e = p
                    .act_batch_into(&mut scratch, &bad, 3, &mut got)
                    .unwrap_err()
                    .to_string();
                let want = format!(
                    "flow {}, feature {}",
                    at / OBSERVATION_LEN,
                    at % OBSERVATION_LEN
                );
                assert!(e.contains(&want), "{e}: {want}");
            }
        }
    }

    #[test]
    fn every_build_of_the_normalisation_gives_the_same_bits() {
        let len = OBSERVATION_LEN;
        let mean: Vec<f32> = (0..len).map(|j| (j as f32 - 30.0) * 0.37).collect();
        let std: Vec<f32> = (0..len).map(|j| 1e-4 + (j % 9) as f32 * 0.83).collect();
        let obs = random_obs(257, 3);
        let obs: Vec<f32> = obs
            .iter()
            .enumerate()
            .map(|(i, v)| v * (1 + i % 50) as f32)
            .collect();
        let mut plain = vec![0f32; obs.len()];
        let mut fast = vec![1f32; obs.len()];
        assert!(normalise_rows_generic(&obs, &mut plain, &mean, &std, 5.0));
        assert!(normalise_rows(&obs, &mut fast, &mean, &std, 5.0));
        for (i, ((p, f), v)) in plain.iter().zip(&fast).zip(&obs).enumerate() {
            let (m, s) = (mean[i % len], std[i % len]);
            let want = ((v - m) / s).clamp(-5.0, 5.0);
            assert_eq!(
                (p.to_bits(), f.to_bits()),
                (want.to_bits(), want.to_bits()),
                "value {i}"
            );
        }
        assert!(plain.iter().any(|v| v.abs() == 5.0) && plain.iter().any(|v| v.abs() < 5.0));
        for v in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut bad = obs.clone();
            bad[200 * len + 3] = v;
            assert!(!normalise_rows(&bad, &mut fast, &mean, &std, 5.0));
            assert!(!all_finite(&bad));
        }
        assert!(all_finite(&obs));
    }
}
