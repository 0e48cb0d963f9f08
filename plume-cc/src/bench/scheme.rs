//! The schemes a benchmark compares, and how each one sets up a run's sender.
//!
//! A scheme only decides how the iperf3 client (the sender) is started: a
//! kernel congestion control is `iperf3 -C NAME`; `plume` starts the daemon
//! (`plume-cc run [--policy FILE] --cgroup PATH`) on a fresh cgroup and puts
//! the iperf3 client into that cgroup before it execs. It must not measure
//! anything (that is the bench runner's job).

use std::{
    ffi::CString,
    os::unix::{ffi::OsStrExt as _, process::CommandExt as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::datapath::{self, cgroup::OwnedCgroup};

use super::BenchError;

/// A congestion-control scheme under test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    /// A congestion control built into the kernel (`cubic`, `bbr`, `reno`),
    /// chosen with `iperf3 -C`.
    Kernel(String),
    /// plume-cc: the daemon controls the sender's cgroup.
    Plume {
        /// Policy file for the daemon (None: its built-in default).
        policy: Option<PathBuf>,
        /// Extra arguments for `plume-cc run` (`--base bbr`, `--record F`).
        daemon_args: Vec<String>,
        /// The name in tables: `plume`, or `plume:OBJECTIVE`.
        label: String,
    },
}

impl Scheme {
    /// Parses `cubic`, `bbr`, `reno`, `plume`, or `plume:OBJECTIVE` (the
    /// daemon at operating point `latency`, `balanced`, `throughput` or a
    /// delay weight); a `plume` scheme may end in `+rule` (the daemon with
    /// `--competition-rule`), e.g. `plume+rule`, `plume:latency+rule`.
    /// `fixed` is the policy's fixed rule, action 0 on every flow (the
    /// daemon with `--fixed-rule`), the baseline a learned result is
    /// measured against; it takes `+rule` and `@POLICY` too.
    ///
    /// A `plume` scheme may also end in `@POLICY`, a policy file or folder
    /// for that scheme alone (instead of `--policy`), so that two policies
    /// are compared interleaved in one run, e.g.
    /// `plume,plume@runs/sel-s0/policy`. Its name in tables is
    /// `plume@NAME`, NAME the policy's folder (or file stem) with anything
    /// but letters, digits, `-` and `_` replaced by `-`.
    pub fn parse(s: &str, policy: Option<&Path>) -> Result<Self, BenchError> {
        if let Some((base, path)) = s.split_once('@') {
            if path.is_empty() {
                return Err(BenchError::Config(format!(
                    "scheme {s:?}: `@` must be followed by a policy file or folder"
                )));
            }
            let path = PathBuf::from(path);
            if !path.exists() {
                return Err(BenchError::Config(format!(
                    "scheme {s:?}: no policy file or folder at {}",
                    path.display()
                )));
            }
            return match Self::parse(base, Some(&path))? {
                Self::Plume {
                    policy,
                    daemon_args,
                    label,
                } => Ok(Self::Plume {
                    policy,
                    daemon_args,
                    label: format!("{label}@{}", policy_name(&path)),
                }),
                Self::Kernel(_) => Err(BenchError::Config(format!(
                    "scheme {s:?}: `@POLICY` applies to plume schemes only"
                ))),
            };
        }
        if let Some(base) = s.strip_suffix("+rule") {
            return match Self::parse(base, policy)? {
                Self::Plume {
                    policy,
                    mut daemon_args,
                    ..
                } => {
                    daemon_args.push("--competition-rule".into());
                    Ok(Self::Plume {
                        policy,
                        daemon_args,
                        label: s.to_string(),
                    })
                }
                Self::Kernel(_) => Err(BenchError::Config(format!(
                    "scheme {s:?}: `+rule` applies to plume schemes only"
                ))),
            };
        }
        match s {
            "cubic" | "bbr" | "reno" => Ok(Self::Kernel(s.into())),
            "plume" => Ok(Self::Plume {
                policy: policy.map(Path::to_path_buf),
                daemon_args: Vec::new(),
                label: "plume".into(),
            }),
            // The policy's fixed rule (action 0) on the real datapath.
            "fixed" => Ok(Self::Plume {
                policy: policy.map(Path::to_path_buf),
                daemon_args: vec!["--fixed-rule".into()],
                label: "fixed".into(),
            }),
            other => match other.strip_prefix("plume:") {
                Some(o) => {
                    let objective = crate::policy::Objective::parse(o)
                        .map_err(|e| BenchError::Config(format!("scheme {other:?}: {e}")))?;
                    Ok(Self::Plume {
                        policy: policy.map(Path::to_path_buf),
                        daemon_args: vec![
                            "--objective".into(),
                            objective.delay_weight().to_string(),
                        ],
                        label: other.to_string(),
                    })
                }
                None => Err(BenchError::Config(format!(
                    "unknown scheme {other:?} (cubic, bbr, reno, plume, plume:OBJECTIVE, plume[:OBJECTIVE]+rule, fixed, any plume or fixed scheme @POLICY)"
                ))),
            },
        }
    }

    /// The same scheme with its daemon recording to `path` (`plume-cc run
    /// --record`); a kernel scheme has no daemon and is returned as it is.
    pub fn recording_to(&self, path: &Path) -> Self {
        match self {
            Self::Kernel(_) => self.clone(),
            Self::Plume {
                policy,
                daemon_args,
                label,
            } => {
                let mut daemon_args = daemon_args.clone();
                daemon_args.push("--record".into());
                daemon_args.push(path.display().to_string());
                Self::Plume {
                    policy: policy.clone(),
                    daemon_args,
                    label: label.clone(),
                }
            }
        }
    }

    /// The scheme's name in tables and file names.
    pub fn name(&self) -> &str {
        match self {
            Self::Kernel(n) => n,
            Self::Plume { label, .. } => label,
        }
    }

    /// Prepares one run: for `plume`, a fresh cgroup and the daemon on it,
    /// its log going to `daemon_log`. `plume_exe` is the `plume-cc` binary
    /// that has the `run` command.
    pub fn start(&self, plume_exe: &Path, daemon_log: &Path) -> Result<SenderSetup, BenchError> {
        match self {
            Self::Kernel(cc) => Ok(SenderSetup {
                congestion: Some(cc.clone()),
                cgroup: None,
                daemon: None,
                pins: None,
            }),
            Self::Plume {
                policy,
                daemon_args,
                ..
            } => start_plume(plume_exe, policy.as_deref(), daemon_args, daemon_log),
        }
    }
}

/// A policy's short name for scheme labels: its folder's name (the parent's
/// when the path is a `policy` folder or a `policy.json`/`.safetensors`
/// file inside one), reduced to letters, digits, `-` and `_`.
fn policy_name(path: &Path) -> String {
    let comps: Vec<String> = path
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let mut name = comps.last().cloned().unwrap_or_default();
    for stem in ["policy.json", "policy.safetensors", "policy"] {
        if name == stem && comps.len() >= 2 {
            name = comps[comps.len() - 2].clone();
            break;
        }
    }
    let name = name.strip_suffix(".json").unwrap_or(&name).to_string();
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// How long the daemon may take to load its policy and attach (libtorch's
/// start-up alone is about 0.4 s).
const DAEMON_READY_TIMEOUT: Duration = Duration::from_secs(20);

fn start_plume(
    exe: &Path,
    policy: Option<&Path>,
    daemon_args: &[String],
    log: &Path,
) -> Result<SenderSetup, BenchError> {
    let cg = OwnedCgroup::create_unique("plume-bench")
        .map_err(|e| BenchError::Scheme(format!("plume: {e}")))?;
    let log_file = std::fs::File::create(log)
        .map_err(|e| BenchError::Scheme(format!("plume: daemon log {}: {e}", log.display())))?;
    // The daemon's closing statistics (one JSON line on stdout: intervals,
    // the datapath's counters) go to the log too, so a run's folder says
    // what the datapath did (e.g. lifts held in recovery).
    let stdout_file = log_file
        .try_clone()
        .map_err(|e| BenchError::Scheme(format!("plume: daemon log {}: {e}", log.display())))?;
    let mut cmd = Command::new(exe);
    cmd.arg("run");
    if let Some(p) = policy {
        cmd.arg("--policy").arg(p);
    }
    cmd.args(daemon_args);
    cmd.arg("--cgroup")
        .arg(cg.path())
        .stdin(Stdio::null())
        .stdout(stdout_file)
        .stderr(log_file);
    // If the benchmark dies without its drop running, the daemon still
    // gets SIGTERM and hands its flows back (super::cancel).
    super::cancel::die_with_parent(&mut cmd, libc::SIGTERM);
    let mut child = cmd
        .spawn()
        .map_err(|e| BenchError::Scheme(format!("plume: starting {} run: {e}", exe.display())))?;
    // Wait until the daemon has attached the datapath to the cgroup (its
    // link pin appears); it must not have exited.
    let pins = datapath::default_pin_dir(cg.path());
    let deadline = Instant::now() + DAEMON_READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let tail = std::fs::read_to_string(log).unwrap_or_default();
            let last = tail.lines().last().unwrap_or("").trim().to_string();
            return Err(BenchError::Scheme(format!(
                "plume: the daemon exited early ({status}) for cgroup {}: {last} (log: {})",
                cg.path().display(),
                log.display()
            )));
        }
        if datapath::attached_at(&pins) {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(BenchError::Scheme(format!(
                "plume: the daemon did not attach to cgroup {} within {} s (no pin at {})",
                cg.path().display(),
                DAEMON_READY_TIMEOUT.as_secs(),
                pins.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(SenderSetup {
        congestion: None,
        cgroup: Some(cg),
        daemon: Some(child),
        pins: Some(pins),
    })
}

/// What a scheme needs from the sender of one run; dropping it stops the
/// daemon (if any) and removes the cgroup.
#[derive(Debug)]
pub struct SenderSetup {
    /// `iperf3 -C` value, if any.
    pub congestion: Option<String>,
    cgroup: Option<OwnedCgroup>,
    daemon: Option<Child>,
    /// The daemon's pin folder, cleaned up after it stops.
    pins: Option<PathBuf>,
}

impl SenderSetup {
    /// A sender that joins `cgroup` and nothing else (no daemon, the
    /// kernel's default congestion control): what `bench-overhead` compares
    /// the datapath against.
    pub fn cgroup_only(cgroup: OwnedCgroup) -> Self {
        Self {
            congestion: None,
            cgroup: Some(cgroup),
            daemon: None,
            pins: None,
        }
    }

    /// Process id of the daemon, if the scheme runs one.
    pub fn daemon_pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(Child::id)
    }

    /// The cgroup the sender joins, if any.
    pub fn cgroup(&self) -> Option<&Path> {
        self.cgroup.as_ref().map(OwnedCgroup::path)
    }

    /// Adds `-C` and, for a cgroup, makes the child join it before exec.
    pub fn configure_sender(&self, cmd: &mut Command) -> Result<(), BenchError> {
        if let Some(cc) = &self.congestion {
            cmd.args(["-C", cc]);
        }
        if let Some(cg) = self.cgroup() {
            let procs = CString::new(cg.join("cgroup.procs").as_os_str().as_bytes())
                .map_err(|e| BenchError::Scheme(format!("cgroup path: {e}")))?;
            // SAFETY: open/write/close of a preallocated path; async-signal-safe.
            unsafe {
                cmd.pre_exec(move || {
                    let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    // "0" moves the writing process itself.
                    let w = libc::write(fd, b"0".as_ptr().cast(), 1);
                    libc::close(fd);
                    if w != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        Ok(())
    }
}

/// Tries of the cleanup after a run while a live flow keeps the program
/// observing, [`CLEANUP_RETRY`] apart.
const CLEANUP_ATTEMPTS: u32 = 10;
/// The wait between those tries.
const CLEANUP_RETRY: Duration = Duration::from_millis(300);

impl Drop for SenderSetup {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            // SAFETY: signalling our own child by its pid.
            unsafe { libc::kill(d.id() as i32, libc::SIGTERM) };
            for _ in 0..100 {
                if matches!(d.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = d.kill();
            let _ = d.wait();
        }
        // A daemon that could not hand every flow back in time (killed
        // after its 2 s, or one that left an observe-only program waiting
        // for flows whose sockets went with the run's namespace) leaves its
        // datapath pinned. The run's sockets are closed by now, so
        // `plume-cc cleanup`'s work reaps them and detaches: a benchmark
        // leaves no pins behind (seen after 3 of 36 runs, 2026-12-03).
        //
        // A flow that is still live when the run ends (iperf3's idle
        // control connection, closing) leaves the program observing for
        // it; it goes within a second or two, so the cleanup is tried
        // again for up to 3 s before the pins are left to `plume-cc
        // cleanup` (six pin folders were left by about 30 invocations on
        // 2026-12-05, all removable by hand minutes later).
        if let Some(pins) = self.pins.take() {
            match detach_pins(&pins) {
                Ok(Some(outcome)) => tracing::info!("{}: {outcome}", pins.display()),
                Ok(None) => {}
                Err(e) => tracing::warn!("{}: cleanup after the run: {e}", pins.display()),
            }
        }
    }
}

/// `plume-cc cleanup`'s work on the datapath pinned at `pins`, tried
/// [`CLEANUP_ATTEMPTS`] times [`CLEANUP_RETRY`] apart while a live flow
/// keeps the program observing; the last outcome, `None` if nothing is
/// attached there. After a run (its drop) and for the pins of a benchmark
/// that died ([`super::cancel::remove_leftovers`]).
pub(super) fn detach_pins(
    pins: &Path,
) -> Result<Option<crate::daemon::status::CleanupOutcome>, crate::daemon::status::CleanupError> {
    use crate::daemon::status::{cleanup, CleanupOutcome};
    for attempt in 0..CLEANUP_ATTEMPTS {
        if !datapath::attached_at(pins) {
            return Ok(None);
        }
        match cleanup(pins)? {
            CleanupOutcome::LeftObserving { .. } if attempt + 1 < CLEANUP_ATTEMPTS => {
                std::thread::sleep(CLEANUP_RETRY);
            }
            outcome => return Ok(Some(outcome)),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        match Scheme::parse(s, None).unwrap() {
            Scheme::Plume { daemon_args, .. } => daemon_args,
            k => panic!("{s}: {k:?}"),
        }
    }

    #[test]
    fn plume_schemes_take_an_objective_and_the_competition_rule() {
        assert_eq!(
            Scheme::parse("bbr", None).unwrap(),
            Scheme::Kernel("bbr".into())
        );
        assert!(args("plume").is_empty());
        assert_eq!(args("plume+rule"), ["--competition-rule"]);
        assert_eq!(
            args("plume:latency+rule"),
            ["--objective", "1.5", "--competition-rule"]
        );
        assert_eq!(
            Scheme::parse("plume:latency+rule", None).unwrap().name(),
            "plume:latency+rule"
        );
        for bad in ["cubic+rule", "plume:fast+rule", "plume+rules", "copa"] {
            assert!(Scheme::parse(bad, None).is_err(), "{bad}");
        }
        // The fixed rule is the daemon acting with action 0.
        assert_eq!(args("fixed"), ["--fixed-rule"]);
        assert_eq!(args("fixed+rule"), ["--fixed-rule", "--competition-rule"]);
        assert_eq!(Scheme::parse("fixed", None).unwrap().name(), "fixed");
        assert!(Scheme::parse("fixed:latency", None).is_err());
    }

    #[test]
    fn a_plume_scheme_may_name_its_own_policy() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/default");
        let spec = format!("plume:throughput+rule@{}", root.display());
        let Scheme::Plume {
            policy,
            daemon_args,
            label,
        } = Scheme::parse(&spec, Some(Path::new("other"))).unwrap()
        else {
            panic!("{spec}")
        };
        assert_eq!(policy.as_deref(), Some(root.as_path()));
        assert_eq!(daemon_args, ["--objective", "0.05", "--competition-rule"]);
        assert_eq!(label, "plume:throughput+rule@default");
        assert_eq!(policy_name(Path::new("runs/sel s0/policy")), "sel-s0");
        assert_eq!(policy_name(Path::new("/x/mine.json")), "mine");
        for bad in ["plume@", "plume@/no/such/policy", "cubic@."] {
            let e = Scheme::parse(bad, None).unwrap_err().to_string();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn a_recording_run_adds_the_record_flag_to_plume_schemes_only() {
        let out = Path::new("/tmp/run/daemon-record.jsonl");
        let fixed = Scheme::parse("fixed+rule", None).unwrap();
        let Scheme::Plume {
            daemon_args, label, ..
        } = fixed.recording_to(out)
        else {
            panic!("fixed is a plume scheme")
        };
        assert_eq!(
            daemon_args,
            [
                "--fixed-rule",
                "--competition-rule",
                "--record",
                "/tmp/run/daemon-record.jsonl"
            ]
        );
        // The name in tables does not change: recorded and unrecorded runs
        // of one scheme are the same scheme.
        assert_eq!(label, "fixed+rule");
        let cubic = Scheme::parse("cubic", None).unwrap();
        assert_eq!(cubic.recording_to(out), cubic);
    }
}
