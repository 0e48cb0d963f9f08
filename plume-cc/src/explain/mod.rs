//! Future-based explanations of a policy's decisions (CrystalBox, Patel et
//! al.): "why did it throttle this flow?" answered with what each part of
//! the reward is predicted to do over the next second under the decision
//! taken, next to the same prediction for contrasting decisions.
//!
//! The reward training optimises ([`crate::rl::env::normalized_reward`]) is a
//! sum of named components; [`returns`] splits every step's reward into
//! them so that the parts add up to the reward exactly, and sums them over
//! a discounted horizon of about one second. [`rollout`] replays the
//! policy in the simulator, branching at sampled decisions into the
//! contrasting actions (the policy's cwnd clamp times 1/2 or 2, held for a
//! few intervals, then the policy again). [`predictor`] holds one small
//! network per component, fit on those rollouts ([`fit`], with the
//! held-out fidelity), stored beside the policy and refused for any other
//! policy. [`offline`] explains every decision of one replayed window
//! (`plume-cc explain run`, CSV + PNG); [`live`] formats and publishes the
//! daemon's per-flow predictions (`plume-cc status --explain`, Prometheus).
//!
//! Layer: above [`crate::rl`] (the simulator environment and the reward)
//! and [`crate::policy`], below the daemon, which runs the predictors live.

pub mod fit;
pub mod live;
pub mod offline;
pub mod past;
pub mod predictor;
pub mod returns;
pub mod rollout;

use std::path::PathBuf;

pub use predictor::{ExplainMetadata, Predictions, Predictors};
pub use returns::{ComponentReturns, StepParts};

/// The reward components explained, in file and column order.
pub const COMPONENTS: [&str; 3] = ["throughput", "delay", "loss"];

/// The decisions compared, as log2 multipliers of the policy's cwnd clamp:
/// the policy itself, half the clamp, double the clamp.
pub const ACTIONS_LOG2: [f32; 3] = [0.0, -1.0, 1.0];

/// The branches a fit simulates: [`ACTIONS_LOG2`], then a null contrast
/// (the clamp times 2^0.05, 3.5% more) that only measures how far apart a
/// negligible change of the clamp drives the returns: the simulated link
/// and the CUBIC underneath are chaotic enough that any perturbation moves
/// loss events around, and ranking alternatives closer than that floor
/// would score noise.
pub const BRANCH_LOG2: [f32; 4] = [0.0, -1.0, 1.0, 0.05];

/// Index of the null contrast in [`BRANCH_LOG2`].
pub const NULL_BRANCH: usize = 3;

/// The name of each entry of [`ACTIONS_LOG2`] in files and labels.
pub const ACTION_NAMES: [&str; 3] = ["policy", "half", "double"];

/// The horizon and the contrasts of the explanations.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Horizon {
    /// Discount per monitor interval. 0.98 at 20 ms: an effective horizon
    /// of 1 / (1 - 0.98) = 50 intervals, the "next ~1 s" of the explanation.
    pub gamma: f64,
    /// Intervals summed (the return is truncated there: 50 x 20 ms = 1 s,
    /// where the discount has fallen to 0.36).
    pub steps: usize,
    /// Intervals a contrasting clamp is held before the policy decides
    /// again. The default holds it over the whole horizon ("at 2x clamp
    /// for the next second"): a contrast held for 10 intervals (200 ms) and
    /// then handed back to the policy moved the 1 s returns in no
    /// consistent direction (the rule "a larger clamp gives more
    /// throughput" ordered 58% of the realised pairs, against 77% when
    /// held; docs/TRAINING.md, Explanations). One interval would show
    /// nothing at all: the datapath moves a limit at most `max_log2_step`
    /// octaves per interval, so 2x takes two, and a clamp acts over RTTs.
    pub hold: usize,
}

impl Default for Horizon {
    fn default() -> Self {
        Self {
            gamma: 0.98,
            steps: 50,
            hold: 50,
        }
    }
}

/// Held while libtorch's global generator is seeded and drawn from (a
/// fit's network initialisation, the tests' random predictors): two
/// threads doing it at once (tests run in parallel) would interleave their
/// draws, and a fit would no longer be deterministic for its seed.
pub(crate) static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Errors of fitting, loading and running explanations.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// A setting is out of range.
    #[error("{field} must be {allowed}, got {found}")]
    Range {
        /// The flag or field.
        field: &'static str,
        /// What is allowed.
        allowed: &'static str,
        /// What was given.
        found: String,
    },
    /// The predictors were fit for another policy or observation layout.
    #[error("{path}: the explanation predictors were fit for a policy with {what} {predictors}, but this policy has {policy}; refit them with `plume-cc explain fit`")]
    Mismatch {
        /// The predictors' metadata file.
        path: PathBuf,
        /// Which hash disagrees (`weights SHA-256`, `observation layout hash`).
        what: &'static str,
        /// What the predictors were fit for.
        predictors: String,
        /// What the policy has.
        policy: String,
    },
    /// The predictor files are not valid.
    #[error("{path}: {what}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The embedded default policy has no folder to keep predictors beside.
    #[error("the embedded default policy has no folder to keep predictors in: give one (--out for fit, --predictors otherwise)")]
    NoFolder,
    /// No predictors where they were looked for.
    #[error("no explanation predictors at {path} (fit them with `plume-cc explain fit --policy POLICY --traces DIR`)")]
    Missing {
        /// The metadata file looked for.
        path: PathBuf,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// libtorch failed.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// The policy could not be loaded or run.
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    /// The simulator environment failed.
    #[error(transparent)]
    Env(#[from] crate::rl::EnvError),
    /// The corpus could not be prepared.
    #[error(transparent)]
    Train(#[from] crate::rl::config::TrainError),
    /// A trace could not be read.
    #[error(transparent)]
    Trace(#[from] crate::trace::TraceError),
    /// A plot could not be drawn.
    #[error(transparent)]
    Plot(#[from] crate::font::PlotError),
}

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> ExplainError + '_ {
    move |source| ExplainError::Io {
        path: path.to_path_buf(),
        source,
    }
}
