//! The control daemon (`plume-cc run`): every monitor interval it reads all
//! flows of its cgroup from the datapath, asks the policy for targets for all
//! of them in one call, guards the outputs and writes them back.
//!
//! Fail-safe by construction: targets carry a timestamp and the datapath lifts
//! stale ones by itself, so a daemon that dies (even by SIGKILL) leaves no flow
//! throttled for longer than the staleness timeout. Program, link and maps are
//! pinned in bpffs so that the fallback keeps running and a restarted daemon
//! re-adopts the live flows. SIGINT/SIGTERM hand every flow back to the kernel
//! and detach.
//!
//! - `config.rs`: [`DaemonConfig`] and its checks ([`ConfigError`]), which
//!   need no policy, no kernel and no root;
//! - `signals.rs`: [`StopSignals`], caught from start-up on;
//! - `lifecycle.rs`: [`run`], one daemon from attach to hand-back, with the
//!   loop's metrics, recording and live explanations;
//! - [`control`]: one control step over any [`FlowMaps`], tested in memory;
//! - this file: [`DaemonStats`] (what the metrics endpoint shows) and
//!   [`load_policy`] (the policy argument of `run` and `bench`).

pub mod bench;
pub mod conditions;
pub mod control;
pub mod metrics;
pub mod record;
pub mod status;

mod config;
mod lifecycle;
mod signals;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::datapath;
pub use crate::explain::live::LiveExplainer;
use crate::policy::{FlowPolicy, GuardCounts, PolicyError, ScriptError};
pub use config::{available_congestion_controls, ConfigError, DaemonConfig};
pub use control::{ControlLoop, FlowMaps, LoopCounts, StepError, StepTiming};
pub use lifecycle::{publish_explanations, run, DaemonError};
pub use signals::StopSignals;

/// Live numbers of the daemon, shared with the metrics endpoint.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DaemonStats {
    /// Intervals run.
    pub intervals: u64,
    /// Flows seen in the last interval.
    pub flows: usize,
    /// Duration of the last control step (read + decide + write), microseconds.
    pub last_step_us: u64,
    /// Mean control step, microseconds.
    pub mean_step_us: f64,
    /// Control steps that took longer than the monitor interval.
    pub step_overruns: u64,
    /// Targets written in total.
    pub targets_written: u64,
    /// Policy outputs fixed by the guard.
    pub guard: GuardCounts,
    /// Flows opened / closed, from the datapath's event ring.
    pub events_opened: u64,
    /// Flows closed (events).
    pub events_closed: u64,
    /// Steps whose batched write of the targets failed (retried next interval).
    pub write_failures: u64,
    /// Steps whose read of the flows failed.
    pub read_failures: u64,
    /// Other failed map operations (orphan sweep, reaping).
    pub map_failures: u64,
    /// Flows removed because their socket was gone without a close.
    pub flows_reaped: u64,
    /// Flows left out of a read because their slot was being written on
    /// every try (each is back in the next read).
    pub torn_reads: u64,
    /// Datapath counters.
    pub datapath: datapath::Counters,
}

impl DaemonStats {
    /// Takes the control loop's counters after a step.
    pub fn absorb(&mut self, control: &ControlLoop) {
        self.flows = control.flows().len();
        self.targets_written = control.counts.targets_written;
        self.events_opened = control.counts.events_opened;
        self.events_closed = control.counts.events_closed;
        self.write_failures = control.counts.write_failures;
        self.read_failures = control.counts.read_failures;
        self.map_failures = control.counts.map_failures;
        self.flows_reaped = control.counts.flows_reaped;
        self.torn_reads = control.counts.torn_reads;
    }
}

/// Why [`load_policy`] could not load a policy; each names the path.
#[derive(Debug, thiserror::Error)]
pub enum LoadPolicyError {
    /// The embedded default policy did not load (a broken build).
    #[error("loading the embedded default policy: {0}")]
    Default(#[source] PolicyError),
    /// Nothing at the path.
    #[error(
        "policy {}: no such file or folder (give `default`, a policy folder, \
         NAME.json beside NAME.safetensors or NAME.pt, or a scripted schedule's .json file)",
        path.display()
    )]
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    /// A `.json` file could not be read.
    #[error("reading policy {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A `.json` file that is not UTF-8.
    #[error("policy {} is not UTF-8 JSON: {source}", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// Where the bytes stop being UTF-8.
        source: std::str::Utf8Error,
    },
    /// A scripted schedule that does not parse or check.
    #[error("policy {}: {source}", path.display())]
    Script {
        /// The file.
        path: PathBuf,
        /// Why.
        source: ScriptError,
    },
    /// Neither a scripted schedule nor a learned policy that loads.
    #[error("policy {}: not a scripted schedule nor a learned policy: {source}", path.display())]
    Learned {
        /// The path given.
        path: PathBuf,
        /// Why the learned policy did not load.
        source: PolicyError,
    },
}

/// Loads a policy file: a scripted schedule (`{"scripted": ...}` JSON), a
/// learned policy ([`crate::policy::LoadedPolicy::load`]: a folder, or a
/// `NAME.json` with `NAME.safetensors` or `NAME.pt`), or `default` for the
/// embedded default policy.
pub fn load_policy(path: &Path) -> Result<Box<dyn FlowPolicy>, LoadPolicyError> {
    if path.as_os_str() == "default" {
        let p = crate::policy::default_policy().map_err(LoadPolicyError::Default)?;
        return Ok(Box::new(crate::policy::LearnedPolicy::new(p)));
    }
    let at = || path.to_path_buf();
    if !path.exists() {
        return Err(LoadPolicyError::NotFound { path: at() });
    }
    if path.extension().is_some_and(|e| e == "json") {
        let bytes =
            std::fs::read(path).map_err(|source| LoadPolicyError::Read { path: at(), source })?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|source| LoadPolicyError::NotUtf8 { path: at(), source })?;
        if text.contains("\"scripted\"") {
            let script = crate::policy::ScriptedPolicy::from_json(&bytes)
                .map_err(|source| LoadPolicyError::Script { path: at(), source })?;
            return Ok(Box::new(script));
        }
    }
    let p = crate::policy::LoadedPolicy::load(path)
        .map_err(|source| LoadPolicyError::Learned { path: at(), source })?;
    Ok(Box::new(crate::policy::LearnedPolicy::new(p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each way a policy argument can be wrong is its own error, naming
    /// the path; `default` and a scripted schedule load.
    #[test]
    fn a_bad_policy_argument_says_which_way_it_is_wrong() {
        tch::set_num_threads(1);
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, bytes: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        };
        assert!(load_policy(Path::new("default")).is_ok());
        let script = file(
            "s.json",
            br#"{"scripted":{"steps":[{"cwnd":8,"hold_ms":1000}]}}"#,
        );
        assert_eq!(
            load_policy(&script).unwrap().describe(),
            "scripted (1 steps)"
        );
        let gone = dir.path().join("gone");
        let e = load_policy(&gone).err().unwrap();
        assert!(matches!(e, LoadPolicyError::NotFound { .. }), "{e}");
        assert!(e.to_string().contains(&gone.display().to_string()), "{e}");
        let e = load_policy(&file("b.json", b"\xff\xfe")).err().unwrap();
        assert!(matches!(e, LoadPolicyError::NotUtf8 { .. }), "{e}");
        let e = load_policy(&file("x.json", br#"{"scripted":{"steps":[]}}"#))
            .err()
            .unwrap();
        assert!(matches!(e, LoadPolicyError::Script { .. }), "{e}");
        let e = load_policy(&file("l.json", b"{}")).err().unwrap();
        assert!(matches!(e, LoadPolicyError::Learned { .. }), "{e}");
        assert!(e.to_string().contains("l.json"), "{e}");
    }
}
