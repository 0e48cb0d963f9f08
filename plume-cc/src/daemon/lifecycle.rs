//! One daemon's life: checks, attach (or re-adopt) the datapath, the
//! control loop every interval with its metrics, recording and live
//! explanations, then the hand-back of every flow on any way out.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use plume_cc_common::DatapathConfig;

use super::record::RecordError;
use super::{
    metrics, record, ConfigError, ControlLoop, DaemonConfig, DaemonStats, LiveExplainer, StepError,
    StopSignals,
};
use crate::datapath::{self, cgroup, cgroup::CgroupError, Datapath, DatapathError, Shutdown};
use crate::policy::FlowPolicy;

/// Why the daemon could not start or stopped on an error. Once the
/// datapath is attached, every one of them comes after the hand-back of
/// every flow (see [`run`]).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A setting is out of range or against the policy (found before
    /// anything is attached).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `--create-cgroup` could not create the folder.
    #[error("creating cgroup {}: {source}", path.display())]
    CreateCgroup {
        /// The cgroup folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The cgroup folder does not exist and was not to be created.
    #[error("cgroup {} does not exist (pass --create-cgroup to create it)", path.display())]
    NoCgroup {
        /// The cgroup folder.
        path: PathBuf,
    },
    /// The folder is no cgroup v2, or its mounts could not be read.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// Attaching, reading, writing or detaching the datapath failed.
    #[error(transparent)]
    Datapath(#[from] DatapathError),
    /// The metrics endpoint could not start.
    #[error(transparent)]
    Metrics(#[from] metrics::MetricsError),
    /// `--record` could not create or write its file.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The policy failed or misbehaved in a control step.
    #[error(transparent)]
    Step(#[from] StepError),
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
) -> Result<DaemonStats, DaemonError> {
    config.validate()?;
    // Every flow's observation, decided or not, only for predictors that
    // read the flows' past (`LiveExplainer::observe`): without them a
    // per-copy policy writes the due flows' rows only.
    policy.keep_observed(explainer.as_ref().is_some_and(LiveExplainer::reads_past));
    if let Some(sig) = stop.pending().await {
        tracing::info!("{sig} during start-up: stopping before attaching anything");
        return Ok(DaemonStats::default());
    }
    if !config.cgroup.exists() {
        if config.create_cgroup {
            std::fs::create_dir_all(&config.cgroup).map_err(|source| {
                DaemonError::CreateCgroup {
                    path: config.cgroup.clone(),
                    source,
                }
            })?;
            tracing::info!(cgroup = %config.cgroup.display(), "created cgroup");
        } else {
            return Err(DaemonError::NoCgroup {
                path: config.cgroup.clone(),
            });
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
    let contract = policy.contract();
    let hold = contract.as_ref().map(|c| c.clamp_hold).unwrap_or_default();
    let base_cc = config
        .base_cc
        .as_deref()
        .and_then(DatapathConfig::base_cc_from_name);
    // The competitive controller needs a base to come back to: without a
    // pinned base the flow would stay on it (the program switches nothing
    // then, and the targets that ask for it change nothing).
    let competitive_cc = match (
        contract.as_ref().and_then(|c| c.competitive_cc.as_deref()),
        base_cc,
    ) {
        (Some(name), Some(_)) => {
            tracing::info!(
                "competitive mode runs {name} beside a competitor that does not back off on loss"
            );
            DatapathConfig::base_cc_from_name(name)
        }
        (Some(name), None) => {
            tracing::warn!(
                "the policy's competitive controller ({name}) is off: it needs a pinned base to return to"
            );
            None
        }
        (None, _) => None,
    };
    let dp_config = DatapathConfig {
        stale_after_ns: config.stale_after.as_nanos() as u64,
        enforce: 1,
        generation: 0,
        base_cc: base_cc.unwrap_or([0; plume_cc_common::BASE_CC_LEN]),
        competitive_cc: competitive_cc.unwrap_or([0; plume_cc_common::BASE_CC_LEN]),
        // A snapshot on every callback, as before the quantum existed. Why
        // not interval/4: measured interleaved against copying every time it
        // saved nothing (444 against 415 ns median per callback, paired
        // difference +1 ns; docs/BENCHMARKS.md), while it makes the
        // daemon's samples up to a quarter interval old, which the
        // simulator does not model. The quantum stays available in the
        // program for paths where it pays (many packets in flight).
        snapshot_every_ns: 0,
        // The policy's mapping says whether clamps wait after a loss
        // (`ActionScaling::hold_clamp_after_loss`).
        clamp_hold: u32::from(hold.on),
        // Its bound in smoothed RTTs (`ActionScaling::hold_clamp_max_srtts`).
        clamp_hold_max_srtts: hold.max_srtts,
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
) -> Result<(), DaemonError> {
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
                // it were fit on every interval's), explained or not, and
                // every flow's, decided at this step or holding its target.
                if let Some(b) = policy.last_batch() {
                    x.observe(b.observed_cookies, b.observed);
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

    /// The errors found before anything is attached come back typed, and
    /// the binary prints the same words as before.
    #[test]
    fn start_up_errors_before_attaching_are_typed() {
        let (_one, rt) = super::super::signals::signal_test();
        let dir = tempfile::tempdir().unwrap();
        let config = |interval_ms: u64| DaemonConfig {
            cgroup: dir.path().join("no-such-cgroup"),
            create_cgroup: false,
            interval: Duration::from_millis(interval_ms),
            stale_after: Duration::from_millis(500),
            pin_dir: None,
            metrics_addr: None,
            metrics_off_host: false,
            run_for: Some(Duration::from_millis(1)),
            base_cc: None,
            record: None,
            allow_root_cgroup: false,
        };
        let attempt = |c: DaemonConfig| {
            rt.block_on(async {
                let policy = crate::policy::ScriptedPolicy::from_json(
                    br#"{"scripted":{"steps":[{"cwnd":8,"hold_ms":1000}]}}"#,
                )
                .unwrap();
                run(c, Box::new(policy), StopSignals::install().unwrap(), None)
                    .await
                    .unwrap_err()
            })
        };
        let e = attempt(config(0));
        assert!(
            matches!(e, DaemonError::Config(ConfigError::OutOfRange { .. })),
            "{e}"
        );
        let e = attempt(config(20));
        assert!(matches!(e, DaemonError::NoCgroup { .. }), "{e}");
        assert!(
            e.to_string()
                .ends_with("does not exist (pass --create-cgroup to create it)"),
            "{e}"
        );
        // Created, but a plain folder is no cgroup v2.
        let e = attempt(DaemonConfig {
            create_cgroup: true,
            ..config(20)
        });
        assert!(matches!(e, DaemonError::Cgroup(_)), "{e}");
        assert!(dir.path().join("no-such-cgroup").is_dir());
    }
}
