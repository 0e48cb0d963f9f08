//! `plume-cc service`: running the daemon on a server under systemd.
//!
//! Two unit files: `plume-cc.service` runs `plume-cc run` on the cgroup of
//! a slice (`plume-cc.slice` by default), and the slice unit gives operators a
//! name to put applications under control with (`systemd-run
//! --slice=plume-cc.slice CMD`, or `Slice=plume-cc.slice` in a unit). The
//! service is `Type=notify`: the daemon says READY=1 once the datapath is
//! attached (see [`crate::daemon::run`]), so `systemctl start` returns only
//! when new flows of the slice are under the policy.
//!
//! This module renders the files ([`unit`]) and writes or removes them; it
//! runs `systemctl` only through [`Systemctl`], so every step is testable
//! without a service manager. It must not start the daemon itself.

pub mod unit;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

pub use unit::{SliceName, UnitSpec};

/// Name of the service unit.
pub const SERVICE_UNIT: &str = "plume-cc.service";
/// Where an administrator's unit files go (they override packaged ones in
/// `/lib/systemd/system`).
pub const ADMIN_UNIT_DIR: &str = "/etc/systemd/system";
/// Where a package's unit files go.
pub const PACKAGE_UNIT_DIR: &str = "/lib/systemd/system";

/// Errors of `plume-cc service`; each names what to do.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A slice name systemd would refuse, or one that is not a slice.
    #[error("--slice {name:?}: {why} (a slice is NAME.slice with letters, digits, `_` and single `-` that nest it, e.g. plume-cc.slice)")]
    BadSlice {
        /// The name given.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A policy path that does not exist.
    #[error("--policy {0}: no such file or folder (give `default`, a policy folder, NAME.json beside NAME.safetensors or NAME.pt, or a scripted schedule's .json file)")]
    NoPolicy(PathBuf),
    /// Writing or removing a file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was attempted.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Installing needs root (unit folders, systemctl).
    #[error("writing unit files into {0} and running systemctl needs root: run with sudo (or pass --dry-run to see the files)")]
    NeedsRoot(PathBuf),
    /// The host does not run systemd.
    #[error("this host does not run systemd (/run/systemd/system is missing): start the daemon by hand with `plume-cc run --cgroup DIR`, or pass --dry-run to see the unit files")]
    NoSystemd,
    /// A systemctl call failed.
    #[error("`systemctl {args}` failed ({status}): {stderr}")]
    Systemctl {
        /// Its arguments.
        args: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
}

/// A file to write: its absolute path on the target system and contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitFile {
    /// Absolute path (under `/`, before any `--root`).
    pub path: PathBuf,
    /// File contents.
    pub contents: String,
}

/// The two unit files for `spec`, in `unit_dir`: the service, then the slice.
pub fn unit_files(spec: &UnitSpec, unit_dir: &Path) -> Vec<UnitFile> {
    vec![
        UnitFile {
            path: unit_dir.join(SERVICE_UNIT),
            contents: unit::service_unit(spec),
        },
        UnitFile {
            path: unit_dir.join(spec.slice.as_str()),
            contents: unit::slice_unit(spec),
        },
    ]
}

/// How systemd is driven: the real `systemctl`, or nothing (packaging, where
/// `--root` points into a staging tree and the service manager is not ours).
pub trait Systemctl {
    /// Runs `systemctl ARGS`.
    fn run(&mut self, args: &[&str]) -> Result<(), ServiceError>;
}

/// The host's `systemctl`.
pub struct HostSystemctl;

impl Systemctl for HostSystemctl {
    fn run(&mut self, args: &[&str]) -> Result<(), ServiceError> {
        let out = Command::new("systemctl")
            .args(args)
            .output()
            .map_err(|e| ServiceError::Io {
                action: "running",
                path: PathBuf::from("systemctl"),
                source: e,
            })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(ServiceError::Systemctl {
                args: args.join(" "),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }
}

/// `path` under `root` (`/` leaves it as it is).
fn rooted(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// The systemctl calls that install `files` and start the service.
pub fn install_commands() -> Vec<Vec<&'static str>> {
    vec![vec!["daemon-reload"], vec!["enable", "--now", SERVICE_UNIT]]
}

/// The systemctl calls that stop and disable the service before its files go.
/// The slice is not stopped: that would kill the applications in it, which
/// keep running and are simply no longer controlled.
pub fn uninstall_commands() -> Vec<Vec<&'static str>> {
    vec![vec!["disable", "--now", SERVICE_UNIT]]
}

/// Writes `files` under `root` (creating folders), then runs
/// [`install_commands`] through `systemctl` (None: none, for packaging).
pub fn install(
    files: &[UnitFile],
    root: &Path,
    systemctl: Option<&mut dyn Systemctl>,
) -> Result<(), ServiceError> {
    for f in files {
        let path = rooted(root, &f.path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io_error("creating", dir, e))?;
        }
        std::fs::write(&path, &f.contents).map_err(|e| io_error("writing", &path, e))?;
    }
    if let Some(s) = systemctl {
        for args in install_commands() {
            s.run(&args)?;
        }
    }
    Ok(())
}

/// Stops and disables the service through `systemctl` (None: none), then
/// removes `files` under `root` (absent ones are fine) and reloads systemd.
/// Returns the files that were removed.
pub fn uninstall(
    files: &[UnitFile],
    root: &Path,
    mut systemctl: Option<&mut dyn Systemctl>,
) -> Result<Vec<PathBuf>, ServiceError> {
    if let Some(s) = systemctl.as_deref_mut() {
        for args in uninstall_commands() {
            s.run(&args)?;
        }
    }
    let mut removed = Vec::new();
    for f in files {
        let path = rooted(root, &f.path);
        match std::fs::remove_file(&path) {
            Ok(()) => removed.push(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("removing", &path, e)),
        }
    }
    if let Some(s) = systemctl {
        s.run(&["daemon-reload"])?;
    }
    Ok(removed)
}

/// Checks what a real install or uninstall on this host needs: root, and
/// systemd as the service manager.
pub fn check_host(unit_dir: &Path) -> Result<(), ServiceError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(ServiceError::NeedsRoot(unit_dir.to_owned()));
    }
    if !Path::new("/run/systemd/system").is_dir() {
        return Err(ServiceError::NoSystemd);
    }
    Ok(())
}

/// The files and commands of an install, as `--dry-run` prints them: each
/// file after a `# FILE` header, then the systemctl calls.
pub fn dry_run_text(files: &[UnitFile], commands: &[Vec<&str>]) -> String {
    let mut s = String::new();
    for f in files {
        s.push_str(&format!("# {}\n", f.path.display()));
        s.push_str(&f.contents);
        s.push('\n');
    }
    for c in commands {
        s.push_str(&format!("$ systemctl {}\n", c.join(" ")));
    }
    s
}

fn io_error(action: &'static str, path: &Path, source: std::io::Error) -> ServiceError {
    ServiceError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the calls instead of running systemctl.
    #[derive(Default)]
    struct Recorder(Vec<String>);

    impl Systemctl for Recorder {
        fn run(&mut self, args: &[&str]) -> Result<(), ServiceError> {
            self.0.push(args.join(" "));
            Ok(())
        }
    }

    fn spec() -> UnitSpec {
        UnitSpec {
            exe: PathBuf::from("/opt/plume-cc/bin/plume-cc"),
            slice: SliceName::parse("plume-cc").unwrap(),
            policy: "default".into(),
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
        }
    }

    #[test]
    fn install_writes_both_files_under_the_root_then_enables() {
        let root = tempfile::tempdir().unwrap();
        let files = unit_files(&spec(), Path::new(ADMIN_UNIT_DIR));
        let mut s = Recorder::default();
        install(&files, root.path(), Some(&mut s)).unwrap();
        for f in &files {
            let on_disk = root.path().join(f.path.strip_prefix("/").unwrap());
            assert_eq!(std::fs::read_to_string(&on_disk).unwrap(), f.contents);
        }
        assert!(root
            .path()
            .join("etc/systemd/system/plume-cc.slice")
            .is_file());
        assert_eq!(s.0, ["daemon-reload", "enable --now plume-cc.service"]);
    }

    #[test]
    fn uninstall_stops_first_removes_both_and_tolerates_absent_files() {
        let root = tempfile::tempdir().unwrap();
        let files = unit_files(&spec(), Path::new(ADMIN_UNIT_DIR));
        install(&files, root.path(), None).unwrap();
        let mut s = Recorder::default();
        let removed = uninstall(&files, root.path(), Some(&mut s)).unwrap();
        assert_eq!(removed.len(), 2);
        assert!(!root
            .path()
            .join("etc/systemd/system/plume-cc.service")
            .exists());
        assert_eq!(s.0, ["disable --now plume-cc.service", "daemon-reload"]);
        // A second uninstall finds nothing and still succeeds.
        assert!(uninstall(&files, root.path(), None).unwrap().is_empty());
    }

    #[test]
    fn dry_run_lists_every_file_and_command() {
        let files = unit_files(&spec(), Path::new(ADMIN_UNIT_DIR));
        let text = dry_run_text(&files, &install_commands());
        assert!(text.starts_with("# /etc/systemd/system/plume-cc.service\n"));
        assert!(text.contains("# /etc/systemd/system/plume-cc.slice\n"));
        assert!(text.ends_with("$ systemctl enable --now plume-cc.service\n"));
    }
}
