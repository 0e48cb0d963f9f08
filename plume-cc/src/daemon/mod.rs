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

use std::path::Path;

use anyhow::{bail, Context as _};
use serde::Serialize;

use crate::datapath;
pub use crate::explain::live::LiveExplainer;
use crate::policy::{FlowPolicy, GuardCounts};
pub use config::{available_congestion_controls, ConfigError, DaemonConfig};
pub use control::{ControlLoop, FlowMaps, LoopCounts, StepError, StepTiming};
pub use lifecycle::{publish_explanations, run};
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

/// Loads a policy file: a scripted schedule (`{"scripted": ...}` JSON), a
/// learned policy ([`crate::policy::LoadedPolicy::load`]: a folder, or a
/// `NAME.json` with `NAME.safetensors` or `NAME.pt`), or `default` for the
/// embedded default policy.
pub fn load_policy(path: &Path) -> anyhow::Result<Box<dyn FlowPolicy>> {
    if path.as_os_str() == "default" {
        let p = crate::policy::default_policy().context("loading the embedded default policy")?;
        return Ok(Box::new(crate::policy::LearnedPolicy::new(p)));
    }
    if !path.exists() {
        bail!(
            "policy {}: no such file or folder (give `default`, a policy folder, \
             NAME.json beside NAME.safetensors or NAME.pt, or a scripted schedule's .json file)",
            path.display()
        );
    }
    if path.extension().is_some_and(|e| e == "json") {
        let bytes =
            std::fs::read(path).with_context(|| format!("reading policy {}", path.display()))?;
        let text = std::str::from_utf8(&bytes)
            .with_context(|| format!("policy {} is not UTF-8 JSON", path.display()))?;
        if text.contains("\"scripted\"") {
            let script = crate::policy::ScriptedPolicy::from_json(&bytes)
                .with_context(|| format!("policy {}", path.display()))?;
            return Ok(Box::new(script));
        }
    }
    let p = crate::policy::LoadedPolicy::load(path).with_context(|| {
        format!(
            "policy {}: not a scripted schedule nor a learned policy",
            path.display()
        )
    })?;
    Ok(Box::new(crate::policy::LearnedPolicy::new(p)))
}
