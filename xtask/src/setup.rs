//! `cargo xtask setup`: installs everything plume-cc needs, idempotently.
//!
//! Heavy artefacts (the LLVM SDK, bpf-linker, the torch virtualenv) go to a
//! version-keyed cache outside the clone (see [`crate::paths::cache_root`]),
//! so later clones and CI reuse them; the clone only gets links in `.plume/`.
//! A second run checks and returns in seconds.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{bail, Context as _};

use crate::{cmd, paths};

/// A setup step: checks, acts if needed, says what it found or did.
type Step = fn() -> anyhow::Result<String>;

/// Runs every step in order; each step first checks whether it is needed.
pub fn setup() -> anyhow::Result<()> {
    let start = Instant::now();
    preflight()?;
    let steps: [(&str, Step); 7] = [
        ("Debian packages", debian_packages),
        ("eBPF nightly toolchain", nightly_toolchain),
        ("LLVM SDK for bpf-linker", llvm_sdk),
        ("bpf-linker", bpf_linker),
        ("libtorch (torch virtualenv)", torch_venv),
        ("links in .plume/", links),
        ("bpffs and cgroup2", kernel_mounts),
    ];
    let n = steps.len();
    for (i, (name, step)) in steps.into_iter().enumerate() {
        let t = Instant::now();
        let what = step().with_context(|| format!("setup step '{name}' failed"))?;
        println!("[{}/{n}] {name}: {what} ({:.1?})", i + 1, t.elapsed());
    }
    println!(
        "setup complete in {:.1?} (cache: {})",
        start.elapsed(),
        paths::cache_root().display()
    );
    Ok(())
}

fn preflight() -> anyhow::Result<()> {
    if !cfg!(target_os = "linux") {
        bail!(
            "plume-cc needs Linux (eBPF sock_ops, cgroup v2, network namespaces); this is {}",
            std::env::consts::OS
        );
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "setup installs Debian packages, mounts bpffs and loads BPF programs, so it needs root.\n\
             Run it as root, or with `sudo -E env PATH=$PATH cargo xtask setup`."
        );
    }
    if cmd::output(Command::new("rustup").arg("--version")).is_none() {
        bail!("rustup is missing: install it from https://rustup.rs (plume-cc pins a nightly for its eBPF object)");
    }
    if cmd::output(Command::new("python3").arg("--version")).is_none() {
        bail!("python3 is missing: `apt-get install python3 python3-venv` (it hosts the libtorch virtualenv)");
    }
    Ok(())
}

fn dpkg_installed(pkg: &str) -> bool {
    cmd::output(Command::new("dpkg-query").args(["-W", "-f=${Status}", pkg]))
        .is_some_and(|s| s.ends_with("installed") && !s.contains("not-installed"))
}

fn debian_packages() -> anyhow::Result<String> {
    if cmd::output(Command::new("dpkg-query").arg("--version")).is_none() {
        bail!(
            "this is not a Debian-like system (no dpkg); install by hand: {}",
            paths::DEBIAN_PACKAGES.join(" ")
        );
    }
    let missing: Vec<&str> = paths::DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(p))
        .collect();
    if missing.is_empty() {
        return Ok("all present".into());
    }
    let apt = |args: &[&str]| {
        let mut c = Command::new("apt-get");
        c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    cmd::run("apt-get update", &mut apt(&["update", "-q"]))
        .context("the Debian package registry is unreachable; check the network or apt sources")?;
    let mut install = apt(&["install", "-y", "-q", "--no-install-recommends"]);
    install.args(&missing);
    cmd::run(
        &format!("apt-get install {}", missing.join(" ")),
        &mut install,
    )?;
    Ok(format!("installed {}", missing.join(" ")))
}

fn nightly_toolchain() -> anyhow::Result<String> {
    let n = paths::ebpf_nightly();
    let installed = cmd::output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        n,
    ]))
    .unwrap_or_default();
    let has = |c: &str| installed.lines().any(|l| l.starts_with(c));
    if has("rust-src") && has("clippy") {
        return Ok(format!("{n} with rust-src and clippy present"));
    }
    cmd::run(
        &format!("rustup toolchain install {n}"),
        Command::new("rustup").args([
            "toolchain",
            "install",
            n,
            "--profile",
            "minimal",
            "--component",
            "rust-src",
            "--component",
            "clippy",
        ]),
    )
    .context("could not install the nightly toolchain (is static.rust-lang.org reachable?)")?;
    Ok(format!("installed {n} with rust-src and clippy"))
}

fn llvm_sdk() -> anyhow::Result<String> {
    let prefix = paths::llvm_prefix();
    if prefix.join("bin/llvm-config").is_file() && prefix.join("lib").is_dir() {
        return Ok(format!("cached at {}", prefix.display()));
    }
    let v = paths::LLVM_SDK_VERSION;
    let root = prefix
        .parent()
        .and_then(Path::parent)
        .context("bad prefix")?
        .to_path_buf();
    let download = paths::cache_root().join(format!("llvm-{v}-wheels"));
    fs::create_dir_all(&download)?;
    cmd::run(
        &format!("pip download mlc-llvm-static=={v} (+extra targets)"),
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--progress-bar",
                "off",
                "-d",
            ])
            .arg(&download)
            .arg(format!("mlc-llvm-static=={v}"))
            .arg(format!("mlc-llvm-static-extra-targets=={v}")),
    )
    .context("PyPI is unreachable or the LLVM SDK wheels are gone")?;
    let tmp = root.with_extension("partial");
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp)?;
    for wheel in fs::read_dir(&download)? {
        let wheel = wheel?.path();
        if wheel.extension().is_some_and(|e| e == "whl") {
            cmd::run(
                &format!(
                    "unpack {}",
                    wheel.file_name().unwrap_or_default().to_string_lossy()
                ),
                Command::new("python3")
                    .args(["-m", "zipfile", "-e"])
                    .arg(&wheel)
                    .arg(&tmp),
            )?;
        }
    }
    // zipfile does not keep the executable bits.
    for dir in ["bin"] {
        let d = tmp.join("mlc_llvm_static/static").join(dir);
        for e in fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            set_executable(&e?.path())?;
        }
    }
    let _ = fs::remove_dir_all(&root);
    fs::rename(&tmp, &root)?;
    fs::remove_dir_all(&download).ok();
    Ok(format!("unpacked to {}", prefix.display()))
}

fn set_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut perm = fs::metadata(path)?.permissions();
    perm.set_mode(perm.mode() | 0o755);
    fs::set_permissions(path, perm)?;
    Ok(())
}

fn bpf_linker() -> anyhow::Result<String> {
    let root = paths::bpf_linker_root();
    let bin = root.join("bin/bpf-linker");
    if bin.is_file() {
        return Ok(format!("cached at {}", bin.display()));
    }
    let prefix = paths::llvm_prefix();
    let path = format!(
        "{}:{}",
        prefix.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    cmd::run(
        &format!(
            "cargo install bpf-linker@{} against LLVM 23 (about 2 minutes)",
            paths::BPF_LINKER_VERSION
        ),
        Command::new("cargo")
            .args(["install", "--locked", "--root"])
            .arg(&root)
            .arg(format!("bpf-linker@{}", paths::BPF_LINKER_VERSION))
            .args([
                "--no-default-features",
                "--features",
                "llvm-23,llvm-link-static",
            ])
            .env("LLVM_PREFIX", &prefix)
            .env("PATH", path)
            // Not the workspace's target dir: keep the clone clean.
            .env(
                "CARGO_TARGET_DIR",
                paths::cache_root().join("bpf-linker-build"),
            )
            .current_dir(paths::cache_root()),
    )?;
    fs::remove_dir_all(paths::cache_root().join("bpf-linker-build")).ok();
    Ok(format!("built {}", bin.display()))
}

/// The torch package folder inside the virtualenv, if torch is installed.
pub fn torch_dir() -> Option<PathBuf> {
    let lib = paths::torch_venv().join("lib");
    let site = fs::read_dir(&lib)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path().join("site-packages"))
        .find(|p| p.is_dir())?;
    let dist = site.join(format!("torch-{}.dist-info", paths::TORCH_VERSION));
    let torch = site.join("torch");
    (dist.is_dir() && torch.join("lib/libtorch_cpu.so").is_file()).then_some(torch)
}

fn torch_venv() -> anyhow::Result<String> {
    if let Some(dir) = torch_dir() {
        return Ok(format!(
            "torch {} cached at {}",
            paths::TORCH_VERSION,
            dir.display()
        ));
    }
    let venv = paths::torch_venv();
    if !venv.join("bin/python").is_file() {
        cmd::run(
            "create the torch virtualenv",
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
        )
        .context("`python3 -m venv` failed: install python3-venv")?;
    }
    cmd::run(
        &format!(
            "pip install torch=={} (about 5 GB, a few minutes)",
            paths::TORCH_VERSION
        ),
        Command::new(venv.join("bin/python"))
            .args([
                "-m",
                "pip",
                "install",
                "--progress-bar",
                "off",
                "--no-input",
            ])
            .arg(format!("torch=={}", paths::TORCH_VERSION)),
    )
    .context("installing torch from PyPI failed")?;
    let dir = torch_dir().context("torch installed but libtorch_cpu.so not found")?;
    Ok(format!(
        "installed torch {} at {}",
        paths::TORCH_VERSION,
        dir.display()
    ))
}

fn links() -> anyhow::Result<String> {
    let dir = paths::links_dir();
    fs::create_dir_all(dir.join("bin"))?;
    let torch = torch_dir().context("torch missing")?;
    relink(&torch, &dir.join("libtorch"))?;
    relink(
        &paths::bpf_linker_root().join("bin/bpf-linker"),
        &dir.join("bin/bpf-linker"),
    )?;
    Ok(format!("{} -> caches", dir.display()))
}

fn relink(target: &Path, link: &Path) -> anyhow::Result<()> {
    if fs::read_link(link).is_ok_and(|t| t == target) {
        return Ok(());
    }
    let _ = fs::remove_file(link);
    std::os::unix::fs::symlink(target, link)
        .with_context(|| format!("linking {} -> {}", link.display(), target.display()))
}

fn mounted(fstype: &str, at: &str) -> bool {
    fs::read_to_string("/proc/self/mounts").is_ok_and(|m| {
        m.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 2 && f[1] == at && f[2] == fstype
        })
    })
}

fn kernel_mounts() -> anyhow::Result<String> {
    let mut did = Vec::new();
    if !mounted("bpf", "/sys/fs/bpf") {
        fs::create_dir_all("/sys/fs/bpf").ok();
        cmd::run(
            "mount bpffs at /sys/fs/bpf",
            Command::new("mount").args(["-t", "bpf", "bpf", "/sys/fs/bpf"]),
        )
        .context("could not mount bpffs (is this a container without CAP_SYS_ADMIN?)")?;
        did.push("mounted bpffs");
    }
    let has_cgroup2 = fs::read_to_string("/proc/self/mounts").is_ok_and(|m| {
        m.lines()
            .any(|l| l.split_whitespace().nth(2) == Some("cgroup2"))
    });
    if !has_cgroup2 {
        fs::create_dir_all("/sys/fs/cgroup/unified").ok();
        cmd::run(
            "mount cgroup2 at /sys/fs/cgroup/unified",
            Command::new("mount").args(["-t", "cgroup2", "none", "/sys/fs/cgroup/unified"]),
        )?;
        did.push("mounted cgroup2");
    }
    Ok(if did.is_empty() {
        "bpffs and cgroup2 mounted".into()
    } else {
        did.join(", ")
    })
}
