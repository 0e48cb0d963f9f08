//! Helpers shared by the kernel tests (datapath, daemon, emulator): the root
//! check that fails in CI and skips loudly elsewhere, temp folders, and a
//! `plume-cc probe` sender whose JSON reports arrive on a channel.
//!
//! Each test file uses a subset, hence the allow.
#![allow(dead_code)]

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use plume_cc::datapath::probe::{ProbeReport, Sink};

/// The plume-cc binary under test.
pub const EXE: &str = env!("CARGO_BIN_EXE_plume-cc");

/// The one JSON document a successful `plume-cc ARGS --json` printed on
/// stdout (`o` its output); panics naming `args` on a failure or on
/// anything else on stdout.
pub fn json_document(args: &[&str], o: &std::process::Output) -> serde_json::Value {
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: stdout is not one JSON document ({e}): {}",
            String::from_utf8_lossy(&o.stdout)
        )
    })
}

/// True if the test may run. Without root it panics in CI (CI=true or 1),
/// where these tests must run, and prints a loud SKIPPED line elsewhere;
/// `needs` names the capabilities.
pub fn have_root(test: &str, needs: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!("{test}: needs root, and CI must run it as root");
        }
        eprintln!(
            "\n*** SKIPPED {test}: needs root ({needs}); run `sudo -E cargo xtask test` ***\n"
        );
    }
    root
}

/// The shared public Mahimahi traces (beside the repository, not in it).
pub const MAHIMAHI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/traces/mahimahi");

/// The shared trace `name`, if present. Without the folder a test is skipped
/// loudly (a clone without `../shared` still passes `cargo test`); in CI,
/// which always has it, its absence fails the test.
pub fn shared_trace(test: &str, name: &str) -> Option<PathBuf> {
    let path = Path::new(MAHIMAHI).join(name);
    if path.is_file() {
        return Some(path);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!(
            "{test}: {} is missing, and CI has the shared traces",
            path.display()
        );
    }
    eprintln!(
        "\n*** SKIPPED {test}: {} is absent (the shared Mahimahi traces) ***\n",
        path.display()
    );
    None
}

/// A fresh folder under the temp dir, unique to this process and `tag`,
/// removed when the returned guard drops.
pub fn tmpdir(tag: &str) -> TestDir {
    let path = std::env::temp_dir().join(format!("plume-cc-test-{tag}-{}", std::process::id()));
    // A folder of the same name left by a crashed run of this pid.
    let _ = std::fs::remove_dir_all(&path);
    std::fs::create_dir_all(&path).unwrap();
    TestDir { path }
}

/// A test's temp folder: removed when it drops, unless the test is
/// failing (a panic is unwinding), when it is kept and its path printed so
/// that its logs and records can be read.
///
/// Why not `tempfile::TempDir`: it deletes on every drop, the failing
/// test's evidence (daemon logs, bench records) included. Why at all: each
/// `cargo xtask test` left about 35 folders, 43 MB, in /tmp.
pub struct TestDir {
    path: PathBuf,
}

impl std::ops::Deref for TestDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for TestDir {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<std::ffi::OsStr> for TestDir {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.path.as_os_str()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "kept {} for inspection (the test failed)",
                self.path.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A `plume-cc probe` sender to `sink`, optionally in `cgroup`, reporting
/// every 10 ms.
pub struct Sender {
    child: Child,
    rx: mpsc::Receiver<ProbeReport>,
}

impl Sender {
    /// Starts a sender that runs for `duration_ms`.
    pub fn spawn(sink: &Sink, cgroup: Option<&Path>, duration_ms: u64) -> Self {
        Self::spawn_with(sink, cgroup, duration_ms, |_| {})
    }

    /// Like [`Sender::spawn`], with `prepare` applied to the command first
    /// (e.g. to start it in a network namespace).
    pub fn spawn_with(
        sink: &Sink,
        cgroup: Option<&Path>,
        duration_ms: u64,
        prepare: impl FnOnce(&mut Command),
    ) -> Self {
        let mut cmd = Command::new(EXE);
        prepare(&mut cmd);
        cmd.args(["probe", "--connect", &sink.addr().to_string()])
            .args([
                "--duration",
                &format!("{duration_ms}ms"),
                "--report",
                "10ms",
            ]);
        if let Some(c) = cgroup {
            cmd.arg("--cgroup").arg(c);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn plume-cc probe");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let r: ProbeReport = serde_json::from_str(&line).expect("probe JSON line");
                if tx.send(r).is_err() {
                    break;
                }
            }
        });
        Self { child, rx }
    }

    /// The first report (within 10 s).
    pub fn first(&self) -> ProbeReport {
        self.rx
            .recv_timeout(Duration::from_secs(10))
            .expect("probe printed nothing within 10 s")
    }

    /// The reports already received, without waiting.
    pub fn drain(&self) -> Vec<ProbeReport> {
        self.rx.try_iter().collect()
    }

    /// Every report during the next `d`.
    pub fn collect(&self, d: Duration) -> Vec<ProbeReport> {
        let deadline = Instant::now() + d;
        let mut v = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(r) => v.push(r),
                Err(_) => break,
            }
        }
        v
    }

    /// Reports until `pred` holds on one (returned with everything seen), or panics.
    pub fn until(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&ProbeReport) -> bool,
    ) -> Vec<ProbeReport> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| {
                    panic!(
                        "{what}: not seen in {timeout:?}; last reports {:?}",
                        seen.iter().rev().take(3).collect::<Vec<_>>()
                    )
                });
            let r = self
                .rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("{what}: sender stopped"));
            seen.push(r);
            if pred(&r) {
                return seen;
            }
        }
    }

    /// A descriptor of the sender's socket whose cookie is `cookie`, taken
    /// from the child with pidfd_getfd(2) (Linux 5.6; root may take any
    /// process's descriptors): a test can then name the socket to a
    /// socket-keyed BPF map. The socket lives while the descriptor does,
    /// though the probe's shutdown still ends the connection.
    pub fn socket(&self, cookie: u64) -> std::os::fd::OwnedFd {
        use std::os::fd::{FromRawFd as _, OwnedFd};
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: plain system calls; each descriptor returned is new and
        // owned by the OwnedFd made from it.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        assert!(
            pidfd >= 0,
            "pidfd_open: {}",
            std::io::Error::last_os_error()
        );
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).expect("the probe's descriptors");
        for entry in fds.flatten() {
            let Some(n) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            let link = std::fs::read_link(entry.path()).unwrap_or_default();
            if !link.to_string_lossy().starts_with("socket:") {
                continue;
            }
            use std::os::fd::AsRawFd as _;
            let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), n, 0) };
            if fd < 0 {
                continue;
            }
            let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
            if plume_cc::datapath::tcpinfo::socket_cookie(&fd).ok() == Some(cookie) {
                return fd;
            }
        }
        panic!("the probe (pid {pid}) holds no socket with cookie {cookie:#x}");
    }

    /// Kills the sender with SIGKILL (its socket is closed by the kernel).
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Waits for the sender to exit successfully; returns the reports not yet read.
    pub fn finish(mut self) -> Vec<ProbeReport> {
        let status = self.child.wait().unwrap();
        assert!(status.success(), "probe exited with {status}");
        self.rx.try_iter().collect()
    }
}

/// The congestion controls of the established sockets to `port` (`ss -tin`).
pub fn congestion_controls_to(port: u16) -> Vec<String> {
    let out = std::process::Command::new("ss")
        .args(["-tinH", "state", "established", "dst"])
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .expect("ss (iproute2, installed by cargo xtask setup)");
    let text = String::from_utf8_lossy(&out.stdout);
    // `ss -i` names the algorithm as one word of each socket's info line
    // ("ts sack cubic wscale:7,7 rto:...").
    text.lines()
        .filter_map(|l| {
            l.split_whitespace()
                .find(|w| ["reno", "cubic", "bbr"].contains(w))
                .map(str::to_string)
        })
        .collect()
}
