//! The shipped tarball, as a server would get it: built by `cargo xtask
//! dist`, unpacked into a folder far from the build tree, run as `nobody`
//! (who cannot read the builder's home, where the dev build's libtorch is).
//! Root only: switching to another user needs it; `cargo xtask test` runs it
//! as root, as CI must.

use std::{
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    process::{Command, Output},
};

const NOBODY: u32 = 65534;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `bin ARGS` as nobody, with no library path from the environment.
fn as_nobody(bin: &Path, args: &[&str]) -> Output {
    Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
        ])
        .arg(bin)
        .args(args)
        .env_remove("LD_LIBRARY_PATH")
        .env("RUST_BACKTRACE", "0")
        .current_dir("/")
        .output()
        .expect("setpriv runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The cgroup2 mount point (`/sys/fs/cgroup` or `/sys/fs/cgroup/unified`).
fn cgroup2_mount() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    mounts
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[2] == "cgroup2")
        .map(|f| PathBuf::from(f[1]))
        .expect("cgroup2 is mounted (cargo xtask setup mounts it)")
}

struct TmpDir(PathBuf);

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
#[ignore = "needs root (runs the unpacked tarball as nobody with setpriv); `cargo xtask test` runs it as root"]
fn the_unpacked_tarball_runs_anywhere_as_an_unprivileged_user() {
    if !is_root() {
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!("needs root, and CI must run it as root");
        }
        eprintln!("\n*** SKIPPED: needs root; run `sudo -E cargo xtask test` ***\n");
        return;
    }
    let tmp =
        TmpDir(std::env::temp_dir().join(format!("plume-cc-dist-test-{}", std::process::id())));
    let out = tmp.0.join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["dist", "--no-deb", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "cargo xtask dist failed:\n{}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let name = format!("plume-cc-{}-x86_64-linux", env!("CARGO_PKG_VERSION"));
    let tarball = out.join(format!("{name}.tar.gz"));
    assert!(tarball.is_file(), "no {}", tarball.display());

    // Unpacked elsewhere: the build tree and the staging folder are not on
    // the way, and nobody can read the builder's cache anyway.
    let unpacked = tmp.0.join("srv");
    std::fs::create_dir_all(&unpacked).unwrap();
    let o = Command::new("tar")
        .arg("-C")
        .arg(&unpacked)
        .arg("-xzf")
        .arg(&tarball)
        .output()
        .unwrap();
    assert!(o.status.success(), "tar: {}", text(&o.stderr));
    std::fs::remove_dir_all(&out).unwrap();
    let top = unpacked.join(&name);
    let bin = top.join("bin/plume-cc");
    let engine = top.join("bin/plume-cc-engine");
    assert!(engine.is_file(), "the engine is missing from the tarball");

    // What the tarball holds: libtorch's libraries and nothing else in lib/,
    // the licences, a README, the units.
    let libs: Vec<String> = std::fs::read_dir(top.join("lib"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(libs.iter().any(|l| l == "libtorch_cpu.so"), "{libs:?}");
    assert!(libs.iter().all(|l| l.contains(".so")), "{libs:?}");
    assert!(
        !libs
            .iter()
            .any(|l| l.starts_with("libc.so") || l.starts_with("libstdc++")),
        "system libraries are not bundled: {libs:?}"
    );
    for f in [
        "README.md",
        "LICENSE-MIT",
        "LICENSE-APACHE",
        "systemd/plume-cc.slice",
    ] {
        assert!(top.join(f).is_file(), "{f} missing from the tarball");
    }
    assert!(
        std::fs::read_dir(top.join("licenses")).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("torch-")),
        "libtorch's licence is missing"
    );
    let unit = std::fs::read_to_string(top.join("systemd/plume-cc.service")).unwrap();
    assert!(unit.contains("\nType=notify\n"), "{unit}");

    // Neither binary names a folder of the build machine.
    for b in [&bin, &engine] {
        let bytes = std::fs::read(b).unwrap();
        for needle in ["/.cache/plume-cc", "site-packages"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "the shipped {} still contains {needle:?}",
                b.display()
            );
        }
    }

    // The front loads no libtorch: copied alone (no lib/, no engine), it
    // still helps and reads the datapaths as nobody; a command for the
    // engine names what is missing.
    let ldd = Command::new("ldd").arg(&bin).output().unwrap();
    assert!(
        !text(&ldd.stdout).contains("torch") && !text(&ldd.stdout).contains("libc10"),
        "the shipped front loads libtorch:\n{}",
        text(&ldd.stdout)
    );
    let alone = tmp.0.join("alone");
    std::fs::create_dir(&alone).unwrap();
    std::fs::copy(&bin, alone.join("plume-cc")).unwrap();
    let o = as_nobody(&alone.join("plume-cc"), &["--help"]);
    assert!(o.status.success(), "the front alone: {}", text(&o.stderr));
    assert!(text(&o.stdout).contains("Usage: plume-cc"));
    let o = as_nobody(&alone.join("plume-cc"), &["status", "--json"]);
    assert!(
        o.status.success(),
        "status, the front alone: {}",
        text(&o.stderr)
    );
    let o = as_nobody(&alone.join("plume-cc"), &["bench-decide"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("plume-cc-engine"),
        "{}",
        text(&o.stderr)
    );

    let o = as_nobody(&bin, &["--help"]);
    assert!(o.status.success(), "--help as nobody: {}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("Usage: plume-cc"),
        "{}",
        text(&o.stdout)
    );

    // A folder only nobody can write, as the service's data would be.
    let traces = tmp.0.join("traces");
    std::fs::create_dir(&traces).unwrap();
    std::os::unix::fs::chown(&traces, Some(NOBODY), Some(NOBODY)).unwrap();
    let trace = traces.join("c.trace");
    let o = as_nobody(
        &bin,
        &[
            "traces",
            "synth",
            "--kind",
            "constant",
            "--mbps",
            "12",
            "--duration",
            "2s",
            "--out",
            trace.to_str().unwrap(),
        ],
    );
    assert!(
        o.status.success(),
        "traces synth as nobody: {}",
        text(&o.stderr)
    );
    let meta = std::fs::metadata(&trace).expect("the trace was written");
    assert_eq!(meta.uid(), NOBODY);
    // 12 Mbit/s of 1500-byte opportunities for 2 s: 2000 lines.
    let lines = std::fs::read_to_string(&trace).unwrap().lines().count();
    assert_eq!(lines, 2000, "a 12 Mbit/s, 2 s trace");

    // The daemon refuses clearly, and before it creates anything in bpffs.
    let cgroup = cgroup2_mount();
    let pins = Path::new("/sys/fs/bpf/plume-cc")
        .join(cgroup.to_string_lossy().trim_matches('/').replace('/', "_"));
    let pinned_before = pins.exists();
    let o = as_nobody(
        &bin,
        &[
            "run",
            "--cgroup",
            cgroup.to_str().unwrap(),
            "--run-for",
            "200ms",
            // The cgroup2 root is refused before anything else unless
            // allowed; allowed, the missing capabilities must stop it.
            "--allow-root-cgroup",
        ],
    );
    let err = text(&o.stderr);
    assert!(!o.status.success(), "run as nobody succeeded: {err}");
    assert!(
        err.contains("CAP_BPF") && err.contains("CAP_NET_ADMIN"),
        "the error names the capabilities: {err}"
    );
    assert!(!err.contains("stack backtrace"), "{err}");
    assert_eq!(
        pins.exists(),
        pinned_before,
        "run as nobody touched {}",
        pins.display()
    );
}
