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

pub mod bench;
pub mod conditions;
pub mod control;
pub mod metrics;
pub mod record;
pub mod status;

use std::{
    ops::RangeInclusive,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};
use plume_cc_common::DatapathConfig;
use serde::Serialize;

use crate::datapath::{self, cgroup, Datapath, Shutdown};
pub use crate::explain::live::LiveExplainer;
use crate::policy::{FlowPolicy, GuardCounts, PolicyContract};
pub use control::{ControlLoop, FlowMaps, LoopCounts, StepError, StepTiming};

/// Settings of one daemon.
#[derive(Clone, Debug)]
pub struct DaemonConfig {
    /// The cgroup v2 folder whose flows are controlled.
    pub cgroup: PathBuf,
    /// Create the cgroup folder if it does not exist.
    pub create_cgroup: bool,
    /// Monitor interval ([`DaemonConfig::INTERVAL`]).
    pub interval: Duration,
    /// Targets older than this are lifted by the datapath
    /// ([`DaemonConfig::STALE`], and more than two intervals).
    pub stale_after: Duration,
    /// bpffs folder for the pins (default: [`datapath::default_pin_dir`]).
    pub pin_dir: Option<PathBuf>,
    /// Serve Prometheus metrics on this address (see [`metrics::serve`]).
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Accept a `metrics_addr` other hosts can reach (`--metrics-listen`).
    pub metrics_off_host: bool,
    /// Stop after this long (tests, benchmarks; [`DaemonConfig::RUN_FOR`]);
    /// None = until a signal.
    pub run_for: Option<Duration>,
    /// Kernel congestion control pinned on every new flow of the cgroup
    /// (`TCP_CONGESTION` at establishment); None keeps the host's default.
    pub base_cc: Option<String>,
    /// Append every interval's flow statistics and targets here, as JSON
    /// lines (see [`record`]).
    pub record: Option<PathBuf>,
    /// Accept the cgroup2 root (every process of the host) as the cgroup.
    pub allow_root_cgroup: bool,
}

/// Errors in a daemon configuration, found before anything is attached.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    /// A duration outside the range the daemon accepts.
    #[error("{flag} {value:?} is out of range: it must be {}", accepted(*min, *max))]
    OutOfRange {
        /// The command-line flag that sets it.
        flag: &'static str,
        /// The value given.
        value: Duration,
        /// Smallest accepted value.
        min: Duration,
        /// Largest accepted value (None: no bound).
        max: Option<Duration>,
    },
    /// `--stale` too short for the interval.
    #[error("--stale ({stale_ms} ms) must exceed two intervals ({interval_ms} ms), or targets expire between writes")]
    StaleTooShort {
        /// Staleness timeout, milliseconds.
        stale_ms: u64,
        /// Monitor interval, milliseconds.
        interval_ms: u64,
    },
    /// The base controller is not one the kernel offers.
    #[error("--base {name}: not in this kernel's net.ipv4.tcp_available_congestion_control ({available})")]
    UnknownBase {
        /// Requested name.
        name: String,
        /// What the kernel offers.
        available: String,
    },
    /// The cgroup is the root of the cgroup2 hierarchy.
    #[error("{path} is the cgroup2 root, which holds every process of the host: the policy would steer every TCP flow on it. Give a child cgroup (e.g. --cgroup {path}/plume --create-cgroup, then move the senders there), or pass --allow-root-cgroup if that is really meant")]
    RootCgroup {
        /// The folder given.
        path: String,
    },
    /// The policy was trained with another monitor interval.
    #[error("the policy was trained with a {policy_ms} ms monitor interval, not --interval {interval_ms} ms: its observations would mean something else (pass --force-interval to run it anyway)")]
    IntervalMismatch {
        /// The policy's interval, milliseconds.
        policy_ms: f64,
        /// The requested interval, milliseconds.
        interval_ms: u64,
    },
}

/// The kernel's available congestion controls
/// (`/proc/sys/net/ipv4/tcp_available_congestion_control`), or an empty list
/// where it cannot be read.
pub fn available_congestion_controls() -> Vec<String> {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_congestion_control")
        .map(|s| s.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// The accepted range of a duration, in words.
fn accepted(min: Duration, max: Option<Duration>) -> String {
    match max {
        Some(max) => format!("within {min:?} to {max:?}"),
        None => format!("at least {min:?}"),
    }
}

impl DaemonConfig {
    /// Accepted monitor intervals (`--interval`). Why: a zero interval would
    /// spin (tokio refuses it outright), and past 10 s the policy no longer
    /// reacts within any flow's lifetime worth steering.
    pub const INTERVAL: RangeInclusive<Duration> =
        RangeInclusive::new(Duration::from_millis(1), Duration::from_secs(10));
    /// Accepted staleness timeouts (`--stale`), which must also exceed two
    /// intervals. Why the ceiling: it is how long a daemon killed without
    /// cleanup (SIGKILL, OOM) leaves its last limits on the flows; a minute
    /// bounds that harm.
    pub const STALE: RangeInclusive<Duration> =
        RangeInclusive::new(Duration::from_millis(1), Duration::from_secs(60));
    /// The staleness timeout when `--stale` is not given.
    pub const DEFAULT_STALE: Duration = Duration::from_millis(500);
    /// Accepted run times (`--run-for`): a run of zero would attach the
    /// datapath only to detach it again; no upper bound is needed.
    pub const RUN_FOR: RangeInclusive<Duration> =
        RangeInclusive::new(Duration::from_millis(1), Duration::MAX);

    /// Checks the settings that need no policy and no kernel: the interval,
    /// the staleness timeout against its range and against two intervals,
    /// and the run time. [`run`] and [`DaemonConfig::resolve`] call it; the
    /// binary calls it first, to refuse bad flags before loading anything.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let within = |flag, value: Duration, range: &RangeInclusive<Duration>| {
            if range.contains(&value) {
                Ok(())
            } else {
                Err(ConfigError::OutOfRange {
                    flag,
                    value,
                    min: *range.start(),
                    max: Some(*range.end()).filter(|&m| m != Duration::MAX),
                })
            }
        };
        within("--interval", self.interval, &Self::INTERVAL)?;
        within("--stale", self.stale_after, &Self::STALE)?;
        if let Some(d) = self.run_for {
            within("--run-for", d, &Self::RUN_FOR)?;
        }
        if self.stale_after <= self.interval * 2 {
            return Err(ConfigError::StaleTooShort {
                stale_ms: self.stale_after.as_millis() as u64,
                interval_ms: self.interval.as_millis() as u64,
            });
        }
        Ok(())
    }

    /// Resolves the base controller and checks the configuration against the
    /// policy's contract: `requested_base` is `--base` (None: the policy's
    /// own base; `default`: the host's default), `available` the kernel's
    /// list.
    pub fn resolve(
        &mut self,
        contract: Option<&PolicyContract>,
        requested_base: Option<&str>,
        force_interval: bool,
        available: &[String],
    ) -> Result<(), ConfigError> {
        self.validate()?;
        if let Some(c) = contract {
            if !force_interval && c.monitor_interval_us != self.interval.as_micros() as u64 {
                return Err(ConfigError::IntervalMismatch {
                    policy_ms: c.monitor_interval_us as f64 / 1000.0,
                    interval_ms: self.interval.as_millis() as u64,
                });
            }
        }
        let base = match requested_base {
            Some("default") => None,
            Some(name) => Some(name.to_string()),
            None => contract.map(|c| c.base_cc.clone()),
        };
        if let Some(name) = &base {
            if DatapathConfig::base_cc_from_name(name).is_none()
                || (!available.is_empty() && !available.iter().any(|a| a == name))
            {
                return Err(ConfigError::UnknownBase {
                    name: name.clone(),
                    available: available.join(" "),
                });
            }
        }
        self.base_cc = base;
        Ok(())
    }
}

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

/// SIGINT and SIGTERM, caught from the moment [`StopSignals::install`]
/// runs (the binary installs them before it loads the policy), so that a
/// stop during start-up is a clean stop too: before the datapath is
/// attached the daemon just exits; after, it releases every flow and
/// detaches as on any other stop. Without this, the default action killed
/// the process between attaching and the control loop and left its pins.
#[derive(Debug)]
pub struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Catches both signals from now on. Must run inside a tokio runtime
    /// (or with one entered) that has its I/O driver enabled.
    pub fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// The signal that arrived since the last call, if any, waiting at
    /// most a millisecond. Why wait at all: a signal is only seen once the
    /// runtime's driver has read it from its pipe, which a start-up busy in
    /// synchronous work (loading libtorch and the policy) has not let it
    /// do; a short timed wait parks the runtime on its driver, a plain
    /// `yield_now` did not (measured: the stop came three intervals late).
    pub async fn pending(&mut self) -> Option<&'static str> {
        tokio::time::timeout(Duration::from_millis(1), self.recv())
            .await
            .ok()
    }

    /// Waits for either signal.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
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

/// Runs the daemon until SIGINT/SIGTERM (caught by `stop`, installed as
/// early as the caller could) or `run_for`. Once the datapath is attached,
/// every way out (a signal, the deadline, a failing policy, a recorder or
/// metrics error) goes through [`Datapath::shutdown`]: every flow is handed
/// back to the kernel and the program detached. With `explainer`, every
/// few intervals the flows' explanations are predicted from the policy's
/// last batch and published (see [`publish_explanations`]).
pub async fn run(
    config: DaemonConfig,
    mut policy: Box<dyn FlowPolicy>,
    mut stop: StopSignals,
    mut explainer: Option<LiveExplainer>,
) -> anyhow::Result<DaemonStats> {
    config.validate()?;
    if let Some(sig) = stop.pending().await {
        tracing::info!("{sig} during start-up: stopping before attaching anything");
        return Ok(DaemonStats::default());
    }
    if !config.cgroup.exists() {
        if config.create_cgroup {
            std::fs::create_dir_all(&config.cgroup)
                .with_context(|| format!("creating cgroup {}", config.cgroup.display()))?;
            tracing::info!(cgroup = %config.cgroup.display(), "created cgroup");
        } else {
            bail!(
                "cgroup {} does not exist (pass --create-cgroup to create it)",
                config.cgroup.display()
            );
        }
    }
    cgroup::check_cgroup2(&config.cgroup)?;
    if !config.allow_root_cgroup && cgroup::is_cgroup2_root(&config.cgroup)? {
        return Err(ConfigError::RootCgroup {
            path: config.cgroup.display().to_string(),
        }
        .into());
    }
    // One libtorch thread: a batched forward of a small MLP does not gain
    // from more, and idle OpenMP workers spin and burn a core.
    tch::set_num_threads(1);
    tch::set_num_interop_threads(1);
    let pin_dir = config
        .pin_dir
        .clone()
        .unwrap_or_else(|| datapath::default_pin_dir(&config.cgroup));
    let dp_config = DatapathConfig {
        stale_after_ns: config.stale_after.as_nanos() as u64,
        enforce: 1,
        generation: 0,
        base_cc: config
            .base_cc
            .as_deref()
            .and_then(DatapathConfig::base_cc_from_name)
            .unwrap_or([0; plume_cc_common::BASE_CC_LEN]),
        // A snapshot on every callback, as before the quantum existed. Why
        // not interval/4: measured interleaved against copying every time it
        // saved nothing (444 against 415 ns median per callback, paired
        // difference +1 ns; docs/BENCHMARKS.md), while it makes the
        // daemon's samples up to a quarter interval old, which the
        // simulator does not model. The quantum stays available in the
        // program for paths where it pays (many packets in flight).
        snapshot_every_ns: 0,
    };
    if let Some(sig) = stop.pending().await {
        tracing::info!("{sig} during start-up: stopping before attaching anything");
        return Ok(DaemonStats::default());
    }
    let mut dp = Datapath::attach_pinned(&config.cgroup, dp_config, &pin_dir)?;
    let mut stats = DaemonStats::default();
    let state_file = dp
        .pin_dir()
        .map(|d| crate::explain::live::state_path(Path::new(crate::explain::live::STATE_DIR), d));
    let result = control(
        &config,
        &mut dp,
        policy.as_mut(),
        &mut stop,
        &mut stats,
        explainer.as_mut().zip(state_file.as_deref()),
    )
    .await;
    // `status --explain` must not show predictions for flows no daemon steers.
    if let (Some(_), Some(f)) = (&explainer, &state_file) {
        let _ = std::fs::remove_file(f);
    }
    // The cause itself is printed once, by the caller, with its chain.
    if result.is_err() {
        tracing::error!("the control loop failed: handing every flow back to the kernel");
    }
    match dp.counters() {
        Ok(c) => stats.datapath = c,
        Err(e) => tracing::warn!("reading the datapath counters: {e}"),
    }
    let shutdown = dp.shutdown(Duration::from_secs(2));
    match &shutdown {
        Ok(Shutdown::Detached) => {
            tracing::info!("every flow is back under kernel control; detached")
        }
        Ok(Shutdown::LeftObserving(c)) => tracing::warn!(
            "{} idle flows still carried limits; the datapath stays pinned in observe-only mode and lifts them on their next packet (`plume-cc cleanup` removes it once they are gone)",
            c.len()
        ),
        Err(e) => tracing::error!(
            "could not hand every flow back: {e}; the datapath lifts stale limits by itself after --stale"
        ),
    }
    result?;
    shutdown?;
    Ok(stats)
}

/// The daemon between attach and shutdown: start-up that needs the
/// datapath, then the control loop.
async fn control(
    config: &DaemonConfig,
    dp: &mut Datapath,
    policy: &mut dyn FlowPolicy,
    stop: &mut StopSignals,
    stats: &mut DaemonStats,
    mut explainer: Option<(&mut LiveExplainer, &Path)>,
) -> anyhow::Result<()> {
    let pin_dir = dp.pin_dir().map(Path::to_path_buf).unwrap_or_default();
    let live = dp.flows()?.len();
    if dp.adopted() {
        tracing::info!(flows = live, pins = %pin_dir.display(), "re-adopted a running datapath with {live} live flows");
    } else {
        tracing::info!(pins = %pin_dir.display(), "attached the datapath");
    }
    tracing::info!(
        policy = policy.describe(),
        base = config.base_cc.as_deref().unwrap_or("host default"),
        interval_ms = config.interval.as_millis() as u64,
        stale_ms = config.stale_after.as_millis() as u64,
        "controlling {}",
        config.cgroup.display()
    );

    let metrics = match config.metrics_addr {
        Some(addr) => {
            let sha = policy.sha256().unwrap_or_else(|| "unknown".into());
            let m = Arc::new(metrics::Metrics::new(&sha));
            metrics::serve(addr, config.metrics_off_host, Arc::clone(&m)).await?;
            Some(m)
        }
        None => None,
    };

    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline = config.run_for.map(|d| tokio::time::Instant::now() + d);
    let mut recorder = match &config.record {
        Some(p) => Some(record::Recorder::create(p)?),
        None => None,
    };
    let mut control = ControlLoop::default();
    let mut total_step = Duration::ZERO;
    // Under systemd (`Type=notify`, see crate::service) `systemctl start`
    // returns now: new flows of the cgroup are under the policy from here on.
    // Without NOTIFY_SOCKET this does nothing.
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&format!("controlling {}", config.cgroup.display())),
    ]);
    loop {
        tokio::select! {
            // A signal that came during start-up wins over the first tick.
            biased;
            sig = stop.recv() => { tracing::info!("{sig}"); break; }
            _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => break,
            _ = ticker.tick() => {}
        }
        let t0 = Instant::now();
        let now_ns = datapath::monotonic_ns();
        let outcome = control.step(dp, policy, now_ns);
        let step = t0.elapsed();
        stats.absorb(&control);
        // An interval whose targets were not written is not recorded.
        let wrote = matches!(
            outcome,
            Ok(_) | Err(StepError::Sweep(_) | StepError::Reap(_))
        );
        if let Err(e) = outcome {
            if !e.is_transient() {
                return Err(e.into());
            }
            // Logged on the first failure and then every 50th, so that a map
            // that keeps failing does not flood the log.
            let failures = control.counts.read_failures
                + control.counts.write_failures
                + control.counts.map_failures;
            if failures % 50 == 1 {
                tracing::warn!(failures, "{e} (retrying next interval)");
            }
        }
        if let (Some(r), true) = (recorder.as_mut(), wrote) {
            // The time the policy decided at: a replay through the policy
            // then reproduces every target (tests/daemon.rs).
            r.write(now_ns, control.flows(), control.targets())?;
        }
        total_step += step;
        stats.intervals += 1;
        if step > config.interval {
            stats.step_overruns += 1;
        }
        stats.last_step_us = step.as_micros() as u64;
        stats.mean_step_us = total_step.as_secs_f64() * 1e6 / stats.intervals as f64;
        if control.guard.counts != stats.guard {
            tracing::warn!(?control.guard.counts, "policy outputs were NaN or out of range");
        }
        stats.guard = control.guard.counts;
        if stats.intervals % 50 == 1 {
            match dp.counters() {
                Ok(c) => stats.datapath = c,
                Err(e) => tracing::warn!("reading the datapath counters: {e}"),
            }
            dp.flush_logs();
        }
        if let Some(m) = &metrics {
            m.observe_step(step, config.interval);
            m.absorb(stats);
        }
        if let Some((x, state_file)) = explainer.as_mut() {
            if wrote {
                // Every step feeds the flows' past (predictors that read
                // it were fit on every interval's), explained or not.
                if let Some(b) = policy.last_batch() {
                    x.observe(b.cookies, b.observations);
                }
                if x.due() {
                    publish_explanations(x, &*policy, &control, metrics.as_deref(), state_file);
                }
            }
        }
    }
    notify(&[
        sd_notify::NotifyState::Stopping,
        sd_notify::NotifyState::Status("handing every flow back to the kernel"),
    ]);
    if let Some(r) = recorder.as_mut() {
        r.flush()?;
    }
    Ok(())
}

/// One explanation round: the predictors on the policy's last batch, the
/// clamps the control loop just wrote, the Prometheus gauges and the state
/// file `status --explain` reads. A failure costs the explanation, never
/// the control loop: it is logged (once per 50 rounds at most) and skipped.
pub fn publish_explanations(
    x: &mut LiveExplainer,
    policy: &dyn FlowPolicy,
    control: &ControlLoop,
    metrics: Option<&metrics::Metrics>,
    state_file: &Path,
) {
    let Some(batch) = policy.last_batch() else {
        return;
    };
    let clamps: std::collections::HashMap<u64, Option<u32>> = control
        .flows()
        .iter()
        .zip(control.targets())
        .map(|((cookie, _), t)| {
            (
                *cookie,
                (t.cwnd_clamp != plume_cc_common::CWND_UNCLAMPED).then_some(t.cwnd_clamp),
            )
        })
        .collect();
    let clamp_of: Vec<Option<u32>> = batch
        .cookies
        .iter()
        .map(|c| clamps.get(c).copied().flatten())
        .collect();
    let outcome = x
        .explain(
            batch.cookies,
            batch.observations,
            batch.raw_actions,
            &clamp_of,
        )
        .map(|_| ())
        .and_then(|()| {
            for (cookie, why) in x.newly_extrapolated() {
                tracing::warn!(
                    "explanation of flow {cookie} is an extrapolation: {why}; its predictions say nothing about it (fit predictors on such paths)"
                );
            }
            if let Some(m) = metrics {
                m.set_explanations(x.last());
            }
            crate::explain::live::write_state(state_file, &x.state(crate::explain::live::unix_ms()))
        });
    if let Err(e) = outcome {
        static FAILURES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        if FAILURES
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .is_multiple_of(50)
        {
            tracing::warn!("explanations skipped: {e}");
        }
    }
}

/// Tells the service manager about a state change. A failure only costs the
/// notification (systemd then times the start out and says so), never the
/// control loop, so it is logged and not returned.
fn notify(state: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!("could not notify systemd (NOTIFY_SOCKET): {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> DaemonConfig {
        DaemonConfig {
            cgroup: PathBuf::from("/sys/fs/cgroup/x"),
            create_cgroup: false,
            interval: Duration::from_millis(20),
            stale_after: Duration::from_millis(500),
            pin_dir: None,
            metrics_addr: None,
            metrics_off_host: false,
            run_for: None,
            base_cc: None,
            record: None,
            allow_root_cgroup: false,
        }
    }

    fn contract(base: &str, us: u64) -> PolicyContract {
        PolicyContract {
            base_cc: base.into(),
            monitor_interval_us: us,
        }
    }

    /// A signal that arrives while start-up is busy in synchronous work is
    /// seen by the next check, without waiting; each is seen once.
    #[test]
    fn a_signal_during_start_up_is_seen_at_the_next_check() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut stop = StopSignals::install().unwrap();
            // SAFETY: raise(3) on ourselves; the handler is installed.
            assert_eq!(unsafe { libc::raise(libc::SIGINT) }, 0);
            // Busy, as while loading the policy: no await in between.
            std::thread::sleep(Duration::from_millis(20));
            assert_eq!(stop.pending().await, Some("SIGINT"));
            assert_eq!(stop.pending().await, None);
        });
    }

    #[test]
    fn base_comes_from_the_policy_unless_overridden() {
        let avail: Vec<String> = ["reno", "cubic", "bbr"].map(String::from).into();
        let mut c = config();
        c.resolve(Some(&contract("cubic", 20_000)), None, false, &avail)
            .unwrap();
        assert_eq!(c.base_cc.as_deref(), Some("cubic"));
        c.resolve(Some(&contract("cubic", 20_000)), Some("bbr"), false, &avail)
            .unwrap();
        assert_eq!(c.base_cc.as_deref(), Some("bbr"));
        c.resolve(
            Some(&contract("cubic", 20_000)),
            Some("default"),
            false,
            &avail,
        )
        .unwrap();
        assert_eq!(c.base_cc, None);
        // A scripted schedule has no contract: the host's default.
        c.resolve(None, None, false, &avail).unwrap();
        assert_eq!(c.base_cc, None);
    }

    #[test]
    fn bad_settings_are_named() {
        let avail: Vec<String> = ["reno", "cubic"].map(String::from).into();
        let mut c = config();
        assert!(matches!(
            c.resolve(None, Some("bbr"), false, &avail),
            Err(ConfigError::UnknownBase { .. })
        ));
        assert!(matches!(
            c.resolve(None, Some("cubic;x"), false, &[]),
            Err(ConfigError::UnknownBase { .. })
        ));
        let e = c
            .resolve(Some(&contract("cubic", 10_000)), None, false, &avail)
            .unwrap_err();
        assert!(e.to_string().contains("10 ms"), "{e}");
        c.resolve(Some(&contract("cubic", 10_000)), None, true, &avail)
            .unwrap();
        c.stale_after = Duration::from_millis(40);
        assert!(matches!(
            c.resolve(None, None, false, &avail),
            Err(ConfigError::StaleTooShort { .. })
        ));
    }

    /// Each timing flag is refused outside its range, by a message naming
    /// the flag and the range; the bounds themselves are accepted.
    #[test]
    fn out_of_range_timings_are_refused_naming_the_flag() {
        let ms = Duration::from_millis;
        let refused = |c: DaemonConfig, flag: &str, range: &str| {
            let e = c.validate().unwrap_err();
            assert!(
                matches!(e, ConfigError::OutOfRange { flag: f, .. } if f == flag),
                "{e:?}"
            );
            let text = e.to_string();
            assert!(text.starts_with(flag) && text.contains(range), "{text}");
        };
        config().validate().unwrap();
        refused(
            DaemonConfig {
                interval: Duration::ZERO,
                ..config()
            },
            "--interval",
            "1ms to 10s",
        );
        refused(
            DaemonConfig {
                interval: Duration::from_secs(11),
                stale_after: Duration::from_secs(30),
                ..config()
            },
            "--interval",
            "1ms to 10s",
        );
        refused(
            DaemonConfig {
                stale_after: Duration::ZERO,
                ..config()
            },
            "--stale",
            "1ms to 60s",
        );
        refused(
            DaemonConfig {
                stale_after: Duration::from_secs(61),
                ..config()
            },
            "--stale",
            "1ms to 60s",
        );
        refused(
            DaemonConfig {
                run_for: Some(Duration::ZERO),
                ..config()
            },
            "--run-for",
            "must be at least 1ms",
        );
        // The bounds are in range.
        for (interval, stale) in [(ms(1), ms(3)), (ms(10_000), ms(60_000))] {
            DaemonConfig {
                interval,
                stale_after: stale,
                run_for: Some(ms(1)),
                ..config()
            }
            .validate()
            .unwrap();
        }
        // In range, but not above two intervals.
        assert!(matches!(
            DaemonConfig {
                interval: ms(100),
                stale_after: ms(200),
                ..config()
            }
            .validate(),
            Err(ConfigError::StaleTooShort {
                stale_ms: 200,
                interval_ms: 100
            })
        ));
    }
}
