//! cgroup v2 folders: where the sock_ops program is attached.
//!
//! A socket belongs to the cgroup of the process that created it, so putting
//! a sending process into a folder puts its flows under plume-cc's control
//! and leaves every other flow of the host untouched.

use std::{
    fs, io,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

/// Errors about cgroup folders; each names the path involved.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// No cgroup2 file system is mounted.
    #[error("no cgroup2 file system is mounted (looked in /proc/self/mountinfo); mount one with `mount -t cgroup2 none /sys/fs/cgroup/unified`")]
    NoCgroup2,
    /// The path is not inside a cgroup2 mount.
    #[error("{0} is not a cgroup v2 folder (no cgroup.procs inside a cgroup2 mount)")]
    NotCgroup2(PathBuf),
    /// A file system operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// Finds the mount point of the cgroup2 hierarchy (`/sys/fs/cgroup` on
/// unified hosts, `/sys/fs/cgroup/unified` on hybrid ones).
pub fn cgroup2_mount() -> Result<PathBuf, CgroupError> {
    cgroup2_mounts()?
        .into_iter()
        .next()
        .ok_or(CgroupError::NoCgroup2)
}

/// Every mount point of a cgroup2 file system, in mount order.
pub fn cgroup2_mounts() -> Result<Vec<PathBuf>, CgroupError> {
    let path = Path::new("/proc/self/mountinfo");
    let text = fs::read_to_string(path).map_err(io_err("read", path))?;
    Ok(cgroup2_mounts_in(&text))
}

/// The cgroup2 mount points listed in a mountinfo text.
fn cgroup2_mounts_in(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| {
            // mountinfo: ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS ... - FSTYPE SOURCE SUPER_OPTIONS
            let (left, right) = line.split_once(" - ")?;
            if right.split_whitespace().next() != Some("cgroup2") {
                return None;
            }
            let mount_point = left.split_whitespace().nth(4)?;
            Some(PathBuf::from(unescape_mount_path(mount_point)))
        })
        .collect()
}

/// Whether `path` is the root of a cgroup2 hierarchy (a cgroup2 mount
/// point): the folder that holds every process of the host (or of the
/// container), so a program attached there steers every TCP flow.
/// `path` is resolved first (symbolic links, `..`, a trailing `/`).
pub fn is_cgroup2_root(path: &Path) -> Result<bool, CgroupError> {
    let resolved = fs::canonicalize(path).map_err(io_err("resolve", path))?;
    Ok(cgroup2_mounts()?
        .iter()
        .any(|m| m == &resolved || fs::canonicalize(m).is_ok_and(|m| m == resolved)))
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo` octal.
fn unescape_mount_path(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let digits = &bytes[i + 1..i + 4];
            let v = digits
                .iter()
                .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
            out.push(v as u8);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Checks that `path` is a cgroup v2 folder.
pub fn check_cgroup2(path: &Path) -> Result<(), CgroupError> {
    if path.join("cgroup.procs").is_file() && path.join("cgroup.controllers").is_file() {
        Ok(())
    } else {
        Err(CgroupError::NotCgroup2(path.to_owned()))
    }
}

/// Moves process `pid` (0 = the caller) into the cgroup folder `path`.
pub fn move_pid(path: &Path, pid: u32) -> Result<(), CgroupError> {
    let procs = path.join("cgroup.procs");
    fs::write(&procs, format!("{pid}\n")).map_err(io_err("write", &procs))
}

/// Process ids currently in the folder `path`.
pub fn pids(path: &Path) -> Result<Vec<u32>, CgroupError> {
    let procs = path.join("cgroup.procs");
    let text = fs::read_to_string(&procs).map_err(io_err("read", &procs))?;
    Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

/// A child cgroup created by plume-cc and removed when dropped.
///
/// Removal first moves any process still inside back to the parent folder,
/// so a test that fails half-way never leaves a folder behind.
#[derive(Debug)]
pub struct OwnedCgroup {
    path: PathBuf,
}

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

impl OwnedCgroup {
    /// Creates `<cgroup2 mount>/<prefix>-<pid>-<n>`, a fresh folder.
    pub fn create_unique(prefix: &str) -> Result<Self, CgroupError> {
        let root = cgroup2_mount()?;
        let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let path = root.join(format!("{prefix}-{}-{n}", std::process::id()));
        Self::create(path)
    }

    /// Creates the folder `path` (its parent must be a cgroup v2 folder).
    pub fn create(path: PathBuf) -> Result<Self, CgroupError> {
        if let Some(parent) = path.parent() {
            check_cgroup2(parent)?;
        }
        fs::create_dir(&path).map_err(io_err("create cgroup", &path))?;
        Ok(Self { path })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Moves every process out, then removes the folder.
    pub fn remove(mut self) -> Result<(), CgroupError> {
        let path = std::mem::take(&mut self.path);
        remove_folder(&path)
    }
}

/// The pid in the name `<prefix>-<pid>-<n>` of a folder
/// [`OwnedCgroup::create_unique`] made with `prefix`; `None` for any other
/// name (another prefix, or one that merely starts with this one).
pub fn creator_pid(name: &str, prefix: &str) -> Option<u32> {
    let rest = name.strip_prefix(prefix)?.strip_prefix('-')?;
    let (pid, n) = rest.split_once('-')?;
    n.parse::<u32>().ok()?;
    pid.parse().ok()
}

/// Removes the folders that [`OwnedCgroup::create_unique`] made with
/// `prefix` under the cgroup v2 root for a process that is gone (it died
/// before its drop ran); returns them. Those of live processes stay.
pub fn remove_orphans(prefix: &str) -> Result<Vec<PathBuf>, CgroupError> {
    let root = cgroup2_mount()?;
    let mut removed = Vec::new();
    for entry in fs::read_dir(&root)
        .map_err(io_err("list", &root))?
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = creator_pid(&name, prefix) else {
            continue;
        };
        if !process_alive(pid) {
            let path = entry.path();
            remove_folder(&path)?;
            removed.push(path);
        }
    }
    removed.sort();
    Ok(removed)
}

/// Whether process `pid` exists (a zombie counts; one we may not signal
/// does too).
pub fn process_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let ok = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
    ok || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

fn remove_folder(path: &Path) -> Result<(), CgroupError> {
    if path.as_os_str().is_empty() || !path.exists() {
        return Ok(());
    }
    let parent = path.parent().unwrap_or(Path::new("/"));
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        for pid in pids(path).unwrap_or_default() {
            let _ = move_pid(parent, pid);
        }
        match fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            // EBUSY while exiting processes are still being reaped.
            Err(e) if Instant::now() < deadline && e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(io_err("remove cgroup", path)(e)),
        }
    }
}

impl Drop for OwnedCgroup {
    fn drop(&mut self) {
        if let Err(e) = remove_folder(&self.path) {
            tracing::warn!("could not remove cgroup: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup2_mounts_are_found_among_the_others() {
        let text = "\
24 30 0:22 / /sys rw,nosuid shared:7 - sysfs sysfs rw
30 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
33 24 0:28 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate
41 33 0:29 / /sys/fs/cgroup/my\\040box rw - cgroup2 none rw
42 24 0:30 / /sys/fs/bpf rw - bpf bpf rw";
        assert_eq!(
            cgroup2_mounts_in(text),
            vec![
                PathBuf::from("/sys/fs/cgroup"),
                PathBuf::from("/sys/fs/cgroup/my box")
            ]
        );
        assert!(cgroup2_mounts_in("garbage\n").is_empty());
    }

    #[test]
    fn only_names_made_with_the_prefix_give_a_creator() {
        assert_eq!(creator_pid("plume-bench-1234-0", "plume-bench"), Some(1234));
        assert_eq!(
            creator_pid("plume-bench-1234-17", "plume-bench"),
            Some(1234)
        );
        // Another tool's folder that starts alike, or a name without `-N`.
        assert_eq!(creator_pid("plume-bench-floor-1234-0", "plume-bench"), None);
        assert_eq!(creator_pid("plume-benchmark-1-0", "plume-bench"), None);
        assert_eq!(creator_pid("plume-bench-1234", "plume-bench"), None);
        assert_eq!(creator_pid("plume-cc-bench-1234-0", "plume-bench"), None);
        assert_eq!(creator_pid("system.slice", "plume-bench"), None);
    }

    /// The host's own cgroup2 root is one, a folder below it is not (where
    /// the test host has cgroup2 at all).
    #[test]
    fn the_root_is_recognised_and_a_child_is_not() {
        let Ok(root) = cgroup2_mount() else {
            eprintln!("no cgroup2 mounted here: skipped");
            return;
        };
        assert!(is_cgroup2_root(&root).unwrap());
        // The same folder spelled another way.
        assert!(is_cgroup2_root(&root.join(".")).unwrap());
        let child = fs::read_dir(&root)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.is_dir());
        if let Some(child) = child {
            assert!(!is_cgroup2_root(&child).unwrap(), "{}", child.display());
        }
        assert!(is_cgroup2_root(Path::new("/no/such/folder")).is_err());
    }

    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(unescape_mount_path("/a\\040b"), "/a b");
        assert_eq!(unescape_mount_path("/sys/fs/cgroup"), "/sys/fs/cgroup");
        assert_eq!(unescape_mount_path("/x\\"), "/x\\");
    }
}
