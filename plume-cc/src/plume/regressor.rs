//! The return regressor of Plume-dynamic: a small MLP (2 hidden layers of
//! 32, ReLU) from a window's features to the episode return, trained with
//! Huber loss and Adam on libtorch (tch), CPU only.
//!
//! Its per-cluster loss tells the sampler where returns are still
//! unpredictable. Weights are initialised from a seeded Rust RNG (not
//! libtorch's global generator), so runs are reproducible. Returns are
//! standardized with running statistics before training, so the Huber
//! threshold means the same for any reward scale.
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{nn, nn::OptimizerConfig, Device, Kind, Reduction, TchError, Tensor};

/// Width of the two hidden layers.
pub const HIDDEN: usize = 32;
/// Huber loss threshold (on standardized returns).
pub const HUBER_DELTA: f64 = 1.0;

/// The regressor plus its optimizer and return statistics.
pub struct ReturnRegressor {
    _vs: nn::VarStore,
    layers: Vec<(Tensor, Tensor)>,
    opt: nn::Optimizer,
    count: f64,
    mean: f64,
    m2: f64,
}

impl ReturnRegressor {
    /// A fresh regressor for `inputs` features, Adam at `learning_rate`,
    /// weights drawn (uniform, fan-in scaled) from `seed`.
    pub fn new(inputs: usize, learning_rate: f64, seed: u64) -> Result<Self, TchError> {
        let vs = nn::VarStore::new(Device::Cpu);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let root = vs.root();
        let mut layers = Vec::new();
        for (i, (fan_in, fan_out)) in [(inputs, HIDDEN), (HIDDEN, HIDDEN), (HIDDEN, 1)]
            .into_iter()
            .enumerate()
        {
            let bound = (1.0 / fan_in.max(1) as f64).sqrt();
            let mut init = |len: usize| -> Vec<f32> {
                (0..len)
                    .map(|_| rng.gen_range(-bound..bound) as f32)
                    .collect()
            };
            let w = Tensor::f_from_slice(&init(fan_in * fan_out))?
                .f_reshape([fan_out as i64, fan_in as i64])?;
            let b = Tensor::f_from_slice(&init(fan_out))?;
            layers.push((
                root.f_var_copy(&format!("w{i}"), &w)?,
                root.f_var_copy(&format!("b{i}"), &b)?,
            ));
        }
        let opt = nn::Adam::default().build(&vs, learning_rate)?;
        Ok(Self {
            _vs: vs,
            layers,
            opt,
            count: 0.0,
            mean: 0.0,
            m2: 0.0,
        })
    }

    /// Feeds one observed return into the running standardization.
    pub fn observe_return(&mut self, r: f64) {
        self.count += 1.0;
        let delta = r - self.mean;
        self.mean += delta / self.count;
        self.m2 += delta * (r - self.mean);
    }

    fn scale(&self) -> (f64, f64) {
        let sd = if self.count > 1.0 {
            (self.m2 / (self.count - 1.0)).sqrt()
        } else {
            1.0
        };
        (self.mean, if sd > 1e-9 { sd } else { 1.0 })
    }

    fn tensors(&self, x: &Array2<f64>, y: &[f64]) -> Result<(Tensor, Tensor), TchError> {
        let (mean, sd) = self.scale();
        let xs: Vec<f32> = x.iter().map(|v| *v as f32).collect();
        let ys: Vec<f32> = y.iter().map(|v| ((v - mean) / sd) as f32).collect();
        let xt = Tensor::f_from_slice(&xs)?.f_reshape([x.nrows() as i64, x.ncols() as i64])?;
        let yt = Tensor::f_from_slice(&ys)?.f_reshape([y.len() as i64, 1])?;
        Ok((xt, yt))
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor, TchError> {
        let mut h = x.shallow_clone();
        for (i, (w, b)) in self.layers.iter().enumerate() {
            h = h.f_matmul(&w.f_tr()?)?.f_add(b)?;
            if i + 1 < self.layers.len() {
                h = h.f_relu()?;
            }
        }
        Ok(h)
    }

    /// One Adam step on a minibatch (rows of features, returns). Errors are
    /// swallowed (the step is skipped): a failed step must not stop training.
    pub fn train_step(&mut self, x: &Array2<f64>, y: &[f64]) {
        let step = || -> Result<Tensor, TchError> {
            let (xt, yt) = self.tensors(x, y)?;
            self.forward(&xt)?
                .f_huber_loss(&yt, Reduction::Mean, HUBER_DELTA)
        };
        if let Ok(loss) = step() {
            self.opt.zero_grad();
            if loss.f_backward().is_ok() {
                self.opt.step();
            }
        }
    }

    /// Mean Huber loss on (features, returns), or None if libtorch fails.
    pub fn loss(&self, x: &Array2<f64>, y: &[f64]) -> Option<f64> {
        tch::no_grad(|| {
            let (xt, yt) = self.tensors(x, y).ok()?;
            let l = self
                .forward(&xt)
                .ok()?
                .f_huber_loss(&yt, Reduction::Mean, HUBER_DELTA)
                .ok()?;
            l.f_to_kind(Kind::Double).ok()?.f_double_value(&[]).ok()
        })
    }

    /// Predicted returns (in the caller's units) for rows of features.
    pub fn predict(&self, x: &Array2<f64>) -> Option<Vec<f64>> {
        let (mean, sd) = self.scale();
        tch::no_grad(|| {
            let (xt, _) = self.tensors(x, &vec![0.0; x.nrows()]).ok()?;
            let out = self.forward(&xt).ok()?.f_to_kind(Kind::Double).ok()?;
            let v: Vec<f64> = Vec::try_from(out.f_flatten(0, -1).ok()?).ok()?;
            Some(v.into_iter().map(|p| p * sd + mean).collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_simple_function_deterministically() {
        let x = Array2::from_shape_fn((64, 2), |(i, j)| {
            if j == 0 {
                (i % 8) as f64 / 4.0 - 1.0
            } else {
                0.5
            }
        });
        let y: Vec<f64> = x.column(0).iter().map(|v| 100.0 + 20.0 * v).collect();
        let run = || {
            let mut r = ReturnRegressor::new(2, 1e-2, 3).unwrap();
            y.iter().for_each(|v| r.observe_return(*v));
            let before = r.loss(&x, &y).unwrap();
            for _ in 0..200 {
                r.train_step(&x, &y);
            }
            (before, r.loss(&x, &y).unwrap(), r.predict(&x).unwrap())
        };
        let (before, after, pred) = run();
        assert!(after < before * 0.1, "{before} -> {after}");
        assert!((pred[7] - y[7]).abs() < 5.0, "{} vs {}", pred[7], y[7]);
        assert_eq!(run().1, after);
    }
}
