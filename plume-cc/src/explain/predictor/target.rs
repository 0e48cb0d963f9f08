//! What a predictor network reads and predicts: its inputs and outputs,
//! the delay component's target transform, and the monotone heads that
//! order the actions as the clamp does.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::explain::past::PAST_LEN;
use crate::policy::observation::OBSERVATION_LEN;

/// Inputs: the observation, the policy's two raw actions, the multiplier.
pub const INPUTS: usize = OBSERVATION_LEN + 3;

/// Inputs per row of predictors with or without the flow's past
/// ([`crate::explain::past`]): the observation, the past's features if any, the
/// raw action, the log2 multiplier (always last).
pub fn input_len(past: bool) -> usize {
    INPUTS + if past { PAST_LEN } else { 0 }
}
/// Outputs of every component's predictor: return (reward units), mean
/// (physical units).
pub const OUTPUTS: usize = 2;

/// Outputs of a component's network: [`OUTPUTS`], or with monotone heads a
/// base and two slopes of each.
pub fn outputs(monotone: bool) -> usize {
    if monotone {
        3 * OUTPUTS
    } else {
        OUTPUTS
    }
}

/// How a larger clamp moves each output with the monotone heads
/// ([`ExplainMetadata::monotone`]): throughput up (both units); the delay
/// and loss parts are penalties, so their reward-unit returns go down while
/// milliseconds and loss rates go up.
pub const DIRECTIONS: [[f32; 2]; 3] = [[1.0, 1.0], [-1.0, 1.0], [-1.0, 1.0]];

/// The directions of component `c`'s network outputs under `target`
/// ([`DIRECTIONS`] in the units the network predicts): a scaled delay
/// target counts queue, which a larger clamp makes longer, so both its
/// outputs rise with the clamp.
pub fn directions(c: usize, target: DelayTarget) -> [f32; 2] {
    if c == 1 && target != DelayTarget::Direct {
        [1.0, 1.0]
    } else {
        DIRECTIONS[c]
    }
}

/// What the delay component's network predicts.
///
/// The delay part of the reward is `-w * queueing delay / min RTT` per
/// interval (`w` the operating point's delay weight), so its return is
/// `-w` times the discounted sum of the queue *in min RTTs*, and its
/// physical mean is the min RTT times the discount-weighted mean of that
/// same ratio. `w` (0.02-2) and the min RTT (10-400 ms) are both in the
/// observation (`objective`, `min_rtt_log`), and a ReLU network on
/// standardised inputs fits a product of a scale spanning two decades and
/// a queue only roughly. [`DelayTarget::Scaled`] divides the known scales
/// out of the targets and multiplies them back into the predictions,
/// exactly ([`DelayTarget::encode`], [`DelayTarget::decode`]); the network
/// then predicts the queue in min RTTs, the unit of the observation's own
/// `srtt_excess`. Measured on the same samples (docs/TRAINING.md, "Why
/// delay is hard"), it gained 0.03-0.05 of R² in reward units and lost up
/// to 0.13 in ms: not the cause of the poor delay fit (the reward's clip
/// was, [`super::ComponentReturns::explained`]), so it stays opt-in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum DelayTarget {
    /// The return (reward units) and the mean (ms) as they are: the
    /// format of predictors written before the option existed.
    #[default]
    Direct,
    /// Both divided by their known scale: the return by `-w`, the mean by
    /// the observed min RTT.
    Scaled,
    /// As [`DelayTarget::Scaled`], then `ln(1 + x)`: the heavy tail of deep
    /// queues compressed.
    ScaledLog,
}

/// The min RTT a scaled delay target divides by when the observation has
/// none yet (a flow's first interval, before an RTT sample: the feature is
/// 0), ms. Any constant keeps the transform exact; this one is the lower
/// end of the fitted paths, so such rows' targets stay on the scale of the
/// others.
pub const UNKNOWN_MIN_RTT_MS: f64 = 10.0;

impl DelayTarget {
    /// The delay weight and the min RTT (ms) the observation of input row
    /// `x` (at least the global features) shows: the inverses of
    /// [`crate::policy::Objective::feature`] and of the `min_rtt_log`
    /// encoding ([`crate::policy::flow_context_from_observation`]).
    pub fn scales(x: &[f32]) -> (f64, f64) {
        use crate::policy::objective::{MAX_DELAY_WEIGHT, MIN_DELAY_WEIGHT};
        let f = f64::from(x.get(3).copied().unwrap_or(0.0)).clamp(0.0, 1.0);
        let (lo, hi) = (f64::from(MIN_DELAY_WEIGHT), f64::from(MAX_DELAY_WEIGHT));
        let w = lo * (hi / lo).powf(f);
        let rtt = crate::policy::flow_context_from_observation(x, 1).min_rtt_us as f64 / 1000.0;
        (w, if rtt > 0.0 { rtt } else { UNKNOWN_MIN_RTT_MS })
    }

    /// The network's targets for a delay return `reward` (reward units)
    /// and mean `ms` realised after input row `x`.
    pub fn encode(self, x: &[f32], reward: f64, ms: f64) -> (f64, f64) {
        let (w, rtt) = Self::scales(x);
        match self {
            Self::Direct => (reward, ms),
            Self::Scaled => (-reward / w, ms / rtt),
            Self::ScaledLog => ((-reward / w).max(0.0).ln_1p(), (ms / rtt).max(0.0).ln_1p()),
        }
    }

    /// The inverse of [`DelayTarget::encode`]: the return and the mean
    /// from the network's outputs `(t0, t1)` for input row `x`.
    pub fn decode(self, x: &[f32], t0: f64, t1: f64) -> (f64, f64) {
        let (w, rtt) = Self::scales(x);
        match self {
            Self::Direct => (t0, t1),
            Self::Scaled => (-w * t0, rtt * t1),
            Self::ScaledLog => (-w * t0.exp_m1(), rtt * t1.exp_m1()),
        }
    }
}

/// Network outputs of component `c`'s net on standardised inputs `z`
/// (rows x [`INPUTS`]) with raw log2 multipliers `log2m` (rows x 1), as
/// standardised (return, mean). Plain heads read the multiplier as an
/// input. Monotone heads do not: the net gives a base and two slopes
/// (softplus, so never negative) and the multiplier moves the base along
/// `dir` ([`directions`]), up and down the clamp separately.
pub(crate) fn head(
    net: &dyn Fn(&Tensor) -> Tensor,
    z: &Tensor,
    log2m: &Tensor,
    dir: [f32; 2],
    monotone: bool,
) -> Tensor {
    if !monotone {
        return net(z);
    }
    let rows = z.size()[0];
    let blind = Tensor::cat(
        &[
            z.narrow(1, 0, z.size()[1] - 1),
            Tensor::zeros([rows, 1], (Kind::Float, tch::Device::Cpu)),
        ],
        1,
    );
    let out = net(&blind);
    let base = out.narrow(1, 0, 2);
    let up = out.narrow(1, 2, 2).softplus();
    let down = out.narrow(1, 4, 2).softplus();
    let dir = Tensor::from_slice(&dir).view([1, 2]);
    base + (log2m.clamp_min(0.0) * up + log2m.clamp_max(0.0) * down) * dir
}
