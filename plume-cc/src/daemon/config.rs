//! The daemon's settings ([`DaemonConfig`]) and their checks
//! ([`ConfigError`]): the ranges of the timing flags, the staleness timeout
//! against the interval, the base controller and the policy's contract. Kept
//! apart from the control loop so that the binary can refuse bad flags
//! before it loads a policy or touches the kernel, and so that the checks
//! are tested without root.

use std::{ops::RangeInclusive, path::PathBuf, time::Duration};

use plume_cc_common::DatapathConfig;

use crate::policy::PolicyContract;

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
    /// bpffs folder for the pins (default: [`crate::datapath::default_pin_dir`]).
    pub pin_dir: Option<PathBuf>,
    /// Serve Prometheus metrics on this address (see [`super::metrics::serve`]).
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
    /// lines (see [`super::record`]).
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
    /// and the run time. [`super::run`] and [`DaemonConfig::resolve`] call it; the
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::congestion::ClampHold;

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
            clamp_hold: ClampHold::default(),
            competitive_cc: None,
        }
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
