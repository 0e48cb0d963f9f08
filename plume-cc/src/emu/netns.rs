//! Network namespaces the emulator creates (named `plume-emu-PID-N-in/out`),
//! entering them from a thread or a child process, and removing leftovers.
//!
//! Only namespaces this project created are ever touched: every name carries
//! the [`NS_PREFIX`], and cleanup only removes namespaces whose creating
//! process is gone (unless told to remove all). It must not change the host's
//! own network namespace.

use std::{
    fs::File,
    os::fd::{AsRawFd as _, OwnedFd},
    path::Path,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

use super::EmuError;

/// Prefix of every namespace the emulator creates.
pub const NS_PREFIX: &str = "plume-emu-";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A unique stem for this process's next emulator: `plume-emu-PID-N`.
pub fn unique_stem() -> String {
    format!(
        "{NS_PREFIX}{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `ip ARGS`, naming the command in the error.
pub fn ip(args: &[&str]) -> Result<(), EmuError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|source| EmuError::Spawn {
            program: "ip".into(),
            source,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(EmuError::Command {
            cmd: format!("ip {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// A named network namespace (`ip netns add`), deleted on drop.
#[derive(Debug)]
pub struct NetNs {
    name: String,
    fd: OwnedFd,
}

impl NetNs {
    /// Creates the namespace `name` and brings its loopback up.
    pub fn create(name: &str) -> Result<Self, EmuError> {
        ip(&["netns", "add", name])?;
        let path = Path::new("/run/netns").join(name);
        let fd = match File::open(&path) {
            Ok(f) => OwnedFd::from(f),
            Err(source) => {
                let _ = ip(&["netns", "del", name]);
                return Err(EmuError::Netns {
                    name: name.into(),
                    op: "open",
                    source,
                });
            }
        };
        let ns = Self {
            name: name.into(),
            fd,
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name (as `ip netns` shows it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) -> Result<(), EmuError> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Moves the calling thread into this namespace.
    fn enter_current_thread(&self) -> Result<(), EmuError> {
        // SAFETY: setns on a valid namespace fd only changes this thread's netns.
        if unsafe { libc::setns(self.fd.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(EmuError::Netns {
                name: self.name.clone(),
                op: "setns",
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    /// Runs `f` on a fresh thread inside this namespace and returns its
    /// result. Sockets and devices it creates belong to the namespace and may
    /// be used from any thread afterwards.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, EmuError> {
        std::thread::scope(|s| {
            s.spawn(|| {
                self.enter_current_thread()?;
                Ok(f())
            })
            .join()
            .expect("a closure run inside a namespace panicked")
        })
    }

    /// Makes `cmd` start inside this namespace (setns before exec). The
    /// namespace must outlive the spawn.
    pub fn configure_command(&self, cmd: &mut Command) {
        use std::os::unix::process::CommandExt as _;
        let fd = self.fd.as_raw_fd();
        // SAFETY: the closure only makes one async-signal-safe syscall.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            tracing::warn!("removing network namespace {}: {e}", self.name);
        }
    }
}

/// Removes leftover emulator namespaces: those whose creating process is gone
/// (or every one with `all`). Returns the names removed.
pub fn cleanup_leftovers(all: bool) -> Result<Vec<String>, EmuError> {
    let dir = Path::new("/run/netns");
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(EmuError::Io {
                op: "list",
                path: dir.into(),
                source,
            })
        }
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(NS_PREFIX) else {
            continue;
        };
        let pid: Option<u32> = rest.split('-').next().and_then(|p| p.parse().ok());
        let alive = pid.is_some_and(crate::datapath::cgroup::process_alive);
        if all || !alive {
            ip(&["netns", "del", &name])?;
            removed.push(name);
        }
    }
    removed.sort();
    Ok(removed)
}
