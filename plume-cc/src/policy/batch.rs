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

/// Transparent huge pages are this large on x86-64.
const HUGE_PAGE: usize = 2 << 20;

/// Makes room for `total` elements in `v` and, when that took a new
/// allocation, asks the kernel to back it with transparent huge pages
/// (`madvise(MADV_HUGEPAGE)` on the whole 2 MiB pages inside it, before
/// they are first written).
///
/// Why: the per-flow arrays of a 10,000-flow step (the builders, 5.8 MB;
/// the observation matrix, 3 MB; the flows read, 1.8 MB) are cold again
/// at every 20 ms step, and on 4 KiB pages walking them costs a TLB miss,
/// whose page-table walk is itself cold, every few flows. With huge pages
/// alone the cold step's observe part went from 1.26-1.40 to 1.08-1.18 ms
/// (docs/BENCHMARKS.md, "Control step at 10,000 flows: why real flows
/// were slower"). This host's THP mode is `madvise`, so nothing is huge
/// unless asked.
///
/// Advice only: a kernel without THP, or one that refuses, leaves
/// ordinary pages, and nothing else changes (the result is ignored).
pub(crate) fn reserve_huge<T>(v: &mut Vec<T>, total: usize) {
    if v.capacity() >= total {
        return;
    }
    let size = std::mem::size_of::<T>().max(1);
    // Room for one more huge page, so that the 2 MiB pages inside the
    // allocation (which need not start on one) cover all but its first
    // partial page of what is used.
    let slack = if total * size >= HUGE_PAGE {
        HUGE_PAGE / size
    } else {
        0
    };
    v.reserve_exact(total + slack - v.len());
    let bytes = v.capacity() * std::mem::size_of::<T>();
    let start = v.as_ptr() as usize;
    let (lo, hi) = (
        start.next_multiple_of(HUGE_PAGE),
        (start + bytes) / HUGE_PAGE * HUGE_PAGE,
    );
    if hi > lo {
        // SAFETY: [lo, hi) lies inside `v`'s own allocation, page aligned;
        // MADV_HUGEPAGE changes how its pages are backed, never their
        // contents.
        unsafe { libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE) };
    }
}

/// Rows per block of the native forward in [`LoadedPolicy::act_batch_into`].
///
/// Why blocks: the daemon steps every 20 ms, and by then the caches have
/// lost the step's data (measured: a 10,000-flow decide 2.3 ms back to back,
/// 3.6-3.7 ms 20 ms apart even with the CPU kept busy in between, 3.2-3.5 ms
/// right after streaming 64 MiB; docs/BENCHMARKS.md "Control step at 10,000
/// flows: why real flows were slower"). Over the whole batch the input
/// tensor (304 bytes a row) and the two hidden layers (128 bytes each) are
/// 5.6 MB written from cold memory every step; in blocks of at most this
/// many rows they are about 0.6 MB, allocated once and kept in the core's
/// 2 MB L2 from block to block and from step to step.
///
/// Why the bits stay: MKL's `sgemm` gives every row the same bits whatever
/// the batch it is in, from 16 rows up (`examples/tile_probe.rs`, on this
/// Intel machine); the blocks are cut nearly equal ([`row_blocks`]), so each
/// has at least half this many rows, and a batch of fewer rows than this is
/// one block, as before. `act_batch_into_matches_act_batch_bit_for_bit`
/// compares batches cut into blocks with the whole-batch [`LoadedPolicy::act_batch`].
pub const FORWARD_BLOCK_ROWS: usize = 1024;

/// The fewest rows a forward may be given for each row's actions to carry
/// the bits any larger batch would give it: under this many rows MKL's
/// `sgemm` takes another kernel, whose last bits differ
/// (`examples/tile_probe.rs`, on this Intel machine). A per-copy
/// [`crate::policy::LearnedPolicy`] forwards only the flows whose decision is
/// due, and pads that batch up to this many rows (or to every flow, when
/// there are fewer) so that its decisions stay those of the whole batch.
pub const SAME_BITS_ROWS: usize = 16;

/// The least rows per block allowed: blocks of at most this many rows are
/// cut nearly equal, so none has fewer than 16 rows, MKL's small-batch
/// threshold (`examples/tile_probe.rs`), unless the whole batch has.
pub const MIN_BLOCK_ROWS: usize = 32;

/// `n` rows cut into the fewest blocks of at most `max` rows, of nearly
/// equal size (they differ by at most one row, so none is under `max / 2`
/// when there is more than one): `(first row, rows)` each.
pub fn row_blocks(n: usize, max: usize) -> impl Iterator<Item = (usize, usize)> {
    let blocks = n.div_ceil(max.max(1));
    let (base, extra) = (n / blocks.max(1), n % blocks.max(1));
    (0..blocks).scan(0usize, move |first, b| {
        let rows = base + usize::from(b < extra);
        let at = *first;
        *first += rows;
        Some((at, rows))
    })
}

impl LoadedPolicy {
    /// [`Self::act_batch`] at batch cost, for the daemon's every interval:
    /// the raw actions of `n_flows` observations (row-major in `obs`) go into
    /// `actions` as `[cwnd lever, pacing lever]` pairs, each clamped to
    /// `[-1, 1]`. Nothing is allocated per flow or per call once `scratch`
    /// has seen this flow count: a native policy normalises the observations
    /// straight into a libtorch tensor kept in `scratch`, runs every layer
    /// into tensors kept there too (`linear_out`, `tanh_` in place), and
    /// copies the `[n, 2]` result into `actions`, one block of at most
    /// [`FORWARD_BLOCK_ROWS`] rows at a time (why: see there). A TorchScript
    /// module keeps its own intermediate tensors; only its input is reused,
    /// and it runs on the whole batch at once.
    ///
    /// Why in place rather than a hand-written MLP: the layers stay
    /// libtorch's own kernels, so the actions are bit-for-bit those of
    /// [`Self::act_batch`] (and of training's evaluation), and only the
    /// tensor churn around them goes (docs/BENCHMARKS.md, "Decide step").
    ///
    /// On an error `actions` is left empty.
    pub fn act_batch_into(
        &self,
        scratch: &mut BatchScratch,
        obs: &[f32],
        n_flows: usize,
        actions: &mut Vec<f32>,
    ) -> Result<ForwardTiming, PolicyError> {
        self.act_batch_into_blocks(scratch, obs, n_flows, actions, FORWARD_BLOCK_ROWS)
    }

    /// [`Self::act_batch_into`] with blocks of at most `block_rows` rows (the
    /// tests cut small batches into blocks too), never fewer than
    /// [`MIN_BLOCK_ROWS`]: below 16 rows MKL takes another kernel, whose
    /// last bits differ.
    pub(crate) fn act_batch_into_blocks(
        &self,
        scratch: &mut BatchScratch,
        obs: &[f32],
        n_flows: usize,
        actions: &mut Vec<f32>,
        block_rows: usize,
    ) -> Result<ForwardTiming, PolicyError> {
        actions.clear();
        let len = self.check_len(obs, n_flows)?;
        if n_flows == 0 {
            return Ok(ForwardTiming::default());
        }
        let block_rows = block_rows.max(MIN_BLOCK_ROWS);
        let r = match &self.net {
            Net::Native(n) => {
                self.native_blocks(n, scratch, obs, n_flows, len, actions, block_rows)
            }
            Net::Script(m) => self.script_batch(m, scratch, obs, n_flows, len, actions),
        };
        if r.is_err() {
            actions.clear();
        }
        r
    }

    /// The native network, block by block: each block's rows are
    /// normalised into the first rows of the kept input tensor (the
    /// finiteness check in the same pass), run through every layer into the
    /// first rows of the kept layer tensors, and their actions copied out.
    #[allow(clippy::too_many_arguments)]
    fn native_blocks(
        &self,
        net: &crate::policy::model::InferenceNet,
        scratch: &mut BatchScratch,
        obs: &[f32],
        n_flows: usize,
        len: usize,
        actions: &mut Vec<f32>,
        block_rows: usize,
    ) -> Result<ForwardTiming, PolicyError> {
        let torch = |source| torch_err(self.source.clone(), source);
        let mut timing = ForwardTiming::default();
        let t0 = std::time::Instant::now();
        scratch
            .fit(&self.net, n_flows.min(block_rows.max(1)), len)
            .map_err(torch)?;
        let input = scratch
            .input
            .as_ref()
            .ok_or_else(|| PolicyError::BadInput("no input tensor for a non-empty batch".into()))?;
        actions.resize(2 * n_flows, 0.0);
        let mut t_prev = t0;
        for (first, rows) in row_blocks(n_flows, block_rows) {
            // SAFETY: `input` is a contiguous float tensor of at least
            // rows * len elements (`fit` made it `min(n_flows, block_rows)`
            // rows, and no block is longer) that `scratch` allocated and
            // alone holds; no libtorch operation runs on it while this
            // slice lives.
            let x = unsafe {
                std::slice::from_raw_parts_mut(input.data_ptr().cast::<f32>(), rows * len)
            };
            let block = &obs[first * len..(first + rows) * len];
            if !normalise_rows(block, x, &scratch.mean, &scratch.std, scratch.clip) {
                return Err(non_finite(obs, len));
            }
            let t1 = std::time::Instant::now();
            // The first `rows` rows of contiguous tensors: contiguous views
            // of exactly the output's shape, so `linear_out` writes them in
            // place (no resize).
            let y = tch::no_grad(|| -> Result<Tensor, tch::TchError> {
                let mut h = input.f_narrow(0, 0, rows as i64)?;
                for (i, (l, out)) in net.actor.iter().zip(&scratch.layers).enumerate() {
                    let out = out.f_narrow(0, 0, rows as i64)?;
                    let mut o = h.f_linear_out(&out, &l.weight, Some(&l.bias))?;
                    if i + 1 < net.actor.len() {
                        let _ = o.f_tanh_()?;
                    }
                    h = o;
                }
                Ok(h)
            })
            .map_err(torch)?;
            let t2 = std::time::Instant::now();
            self.check_output(&y, rows)?;
            let dst = &mut actions[2 * first..2 * (first + rows)];
            y.f_copy_data(dst, 2 * rows).map_err(torch)?;
            for a in dst.iter_mut() {
                *a = a.clamp(-1.0, 1.0);
            }
            let t3 = std::time::Instant::now();
            timing.prepare += t1 - t_prev;
            timing.forward += t2 - t1;
            timing.readback += t3 - t2;
            t_prev = t3;
        }
        Ok(timing)
    }

    /// A TorchScript module on the whole batch: the observations copied into
    /// the kept input tensor, the module's own forward, the actions copied
    /// out.
    fn script_batch(
        &self,
        module: &tch::CModule,
        scratch: &mut BatchScratch,
        obs: &[f32],
        n_flows: usize,
        len: usize,
        actions: &mut Vec<f32>,
    ) -> Result<ForwardTiming, PolicyError> {
        let torch = |source| torch_err(self.source.clone(), source);
        let t0 = std::time::Instant::now();
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
        x.copy_from_slice(obs);
        if !all_finite(obs) {
            return Err(non_finite(obs, len));
        }
        let t1 = std::time::Instant::now();
        let y = tch::no_grad(|| module.forward_ts(&[input.shallow_clone()])).map_err(torch)?;
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
        Ok(ForwardTiming {
            prepare: t1 - t0,
            forward: t2 - t1,
            readback: t2.elapsed(),
        })
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
            // (flows, rows per block): the daemon's blocks (FORWARD_BLOCK_ROWS:
            // one block up to 1,024 flows, then nearly equal blocks, as for
            // 2,048, 3,001 and 10,000 flows) and smaller ones, down to
            // blocks of 16 rows (300 flows in blocks of 64 are 5 of 60; 33 in
            // blocks of 16 are 11 + 11 + 11).
            let d = FORWARD_BLOCK_ROWS;
            let cases = [
                (1usize, d),
                (1, d),
                (300, d),
                (300, d),
                (7, d),
                (2048, d),
                (0, d),
                (5, d),
                (3001, d),
                (10_000, d),
                (300, 64),
                (300, 100),
                (33, 32),
                (1000, 32),
            ];
            for (k, (n, block)) in cases.into_iter().enumerate() {
                let o = random_obs(n, k as u64);
                p.act_batch_into_blocks(&mut scratch, &o, n, &mut got, block)
                    .unwrap();
                let want: Vec<f32> = p.act_batch(&o, n).unwrap().into_iter().flatten().collect();
                assert_eq!(got.len(), 2 * n);
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert_eq!(
                        g.to_bits(),
                        w.to_bits(),
                        "{:?} n={n} blocks of {block}: value {i}",
                        p.metadata().kind
                    );
                }
            }
            // A bad value in a later block: the error names it and no
            // actions are left from the blocks before it.
            let mut bad = random_obs(2500, 97);
            bad[2100 * OBSERVATION_LEN + 4] = f32::NAN;
            let e = p
                .act_batch_into(&mut scratch, &bad, 2500, &mut got)
                .unwrap_err()
                .to_string();
            assert!(e.contains("flow 2100, feature 4"), "{e}");
            assert!(got.is_empty());
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
    fn row_blocks_cover_every_row_once_in_nearly_equal_blocks() {
        assert_eq!(row_blocks(0, 1024).count(), 0);
        assert_eq!(row_blocks(5, 1024).collect::<Vec<_>>(), [(0, 5)]);
        assert_eq!(row_blocks(1024, 1024).collect::<Vec<_>>(), [(0, 1024)]);
        assert_eq!(
            row_blocks(1025, 1024).collect::<Vec<_>>(),
            [(0, 513), (513, 512)]
        );
        for (n, max) in [
            (10_000usize, 1024usize),
            (2048, 1024),
            (3001, 1024),
            (33, 32),
            (1000, 17),
        ] {
            let b: Vec<_> = row_blocks(n, max).collect();
            assert_eq!(b.len(), n.div_ceil(max));
            let mut next = 0;
            for &(first, rows) in &b {
                assert_eq!(first, next);
                assert!(rows <= max && rows >= max / 2, "{n} in {max}: {rows}");
                next += rows;
            }
            assert_eq!(next, n);
            let (lo, hi) = (b.iter().map(|x| x.1).min(), b.iter().map(|x| x.1).max());
            assert!(hi.unwrap() - lo.unwrap() <= 1);
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
