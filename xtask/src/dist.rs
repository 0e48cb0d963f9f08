//! `cargo xtask dist`: the release binaries as a relocatable tarball and a
//! .deb.
//!
//! Two binaries ship side by side in `bin/`: `plume-cc`, the front users
//! run, which links no libtorch (help, usage errors, `status`, `service`,
//! `traces` start in milliseconds), and `plume-cc-engine`, which it execs
//! for every other command and which loads libtorch.
//!
//! Relocation. A dev build finds libtorch through an absolute RUNPATH into
//! the torch virtualenv (plume-cc/build.rs), which is what lets `cargo test`
//! and `cargo run` work from target/ without LD_LIBRARY_PATH. The shipped
//! copies must not name the builder's home, so dist rewrites the engine's
//! RUNPATH to `$ORIGIN/../lib` and removes the front's (which loads nothing
//! from there) with patchelf (Debian's package, installed by `cargo xtask
//! setup`). Why patchelf rather than a second link with
//! `-C link-arg=-Wl,-rpath,$ORIGIN/../lib`: a different linker argument
//! changes RUSTFLAGS or the build script's output, so cargo would rebuild
//! the plume-cc crate (minutes here) for every dist and again for the next
//! test run, and the shipped binary would no longer be the one the tests
//! ran; patchelf edits only the dynamic section of a copy, and dist checks
//! the result with `ldd`.
//!
//! The libraries: `ldd` on the release engine gives the loader's full,
//! recursive resolution of DT_NEEDED; every library that resolves outside
//! the system's own (the paths `ldconfig -p` lists) goes into `lib/`:
//! libtorch_cpu, libc10, torch's libgomp and the two CUDA runtime libraries
//! libtorch_cpu links against. They carry `$ORIGIN` in their own RPATH, so
//! they find each other in one flat folder without edits. The system ones
//! (glibc, libgcc, libstdc++) become the .deb's Depends.
//!
//! The licences of the bundled libraries come from the Python distributions
//! that installed them (the `RECORD` of each `*.dist-info` names its files).

use std::{
    collections::BTreeSet,
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, ensure, Context as _};

use crate::{cmd, paths};

/// The relocatable RUNPATH of the shipped engine: its libraries sit in
/// `lib/` beside `bin/`.
pub const SHIPPED_RUNPATH: &str = "$ORIGIN/../lib";
/// The front, the binary users run (no libtorch).
const FRONT: &str = "plume-cc";
/// The binary the front execs for the commands that need libtorch; it
/// looks for it beside itself.
const ENGINE: &str = "plume-cc-engine";
/// Where the .deb puts the binary and its libraries (Debian's place for a
/// package's private files); `/usr/bin/plume-cc` links to the binary.
const DEB_PREFIX: &str = "usr/lib/plume-cc";
/// Where the tarball's own unit files expect it to be unpacked.
const TARBALL_PREFIX: &str = "/opt";

/// `cargo xtask dist` flags.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Output folder (default target/dist).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Skip the .deb (the tarball only).
    #[arg(long)]
    pub no_deb: bool,
    /// Use the existing target/release/plume-cc and plume-cc-engine instead
    /// of building them.
    #[arg(long)]
    pub no_build: bool,
}

/// A library the binary loads, as the loader resolved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needed {
    /// The name it is asked for (DT_NEEDED), e.g. `libtorch_cpu.so`.
    pub soname: String,
    /// Where the loader found it.
    pub path: PathBuf,
}

/// Parses `ldd` output: one [`Needed`] per resolved library, the vDSO and
/// the bare interpreter line skipped; a library that was not found is an
/// error (a binary shipped with it would not start).
pub fn parse_ldd(text: &str) -> anyhow::Result<Vec<Needed>> {
    let mut v = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let Some((name, rest)) = line.split_once(" => ") else {
            continue; // linux-vdso.so.1 (0x...), /lib64/ld-linux-x86-64.so.2 (0x...)
        };
        let path = rest.split(" (").next().unwrap_or("").trim();
        if path == "not found" {
            bail!("{name} is not found by the loader: {line}");
        }
        if path.is_empty() {
            continue;
        }
        v.push(Needed {
            soname: name.trim().to_string(),
            path: PathBuf::from(path),
        });
    }
    Ok(v)
}

/// Every library path in the system's loader cache (`ldconfig -p`),
/// canonical.
fn system_libraries() -> anyhow::Result<BTreeSet<PathBuf>> {
    let text = cmd::output(Command::new("ldconfig").arg("-p"))
        .context("`ldconfig -p` failed (is this a glibc system?)")?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(" => "))
        .map(|(_, p)| {
            let p = PathBuf::from(p.trim());
            p.canonicalize().unwrap_or(p)
        })
        .collect())
}

/// A binary's libraries, split into those to bundle and the system's.
fn resolve(exe: &Path) -> anyhow::Result<(Vec<Needed>, Vec<Needed>)> {
    let text = cmd::output(Command::new("ldd").arg(exe))
        .with_context(|| format!("`ldd {}` failed", exe.display()))?;
    let system = system_libraries()?;
    let (mut bundle, mut sys) = (Vec::new(), Vec::new());
    for n in parse_ldd(&text)? {
        let canon = n.path.canonicalize().unwrap_or_else(|_| n.path.clone());
        if system.contains(&canon) {
            sys.push(n);
        } else {
            bundle.push(n);
        }
    }
    // Depends names what the binary and the bundled libraries ask for
    // themselves (DT_NEEDED), not what those libraries pull in in turn.
    let mut direct = needed_sonames(exe)?;
    for n in &bundle {
        direct.extend(needed_sonames(&n.path)?);
    }
    sys.retain(|n| direct.contains(&n.soname));
    Ok((bundle, sys))
}

/// Whether a library is one of libtorch's own (libtorch*, libc10*).
fn is_torch(soname: &str) -> bool {
    soname.starts_with("libtorch") || soname.starts_with("libc10")
}

/// The DT_NEEDED entries of one ELF file.
fn needed_sonames(elf: &Path) -> anyhow::Result<BTreeSet<String>> {
    let text = cmd::output(Command::new("patchelf").arg("--print-needed").arg(elf))
        .with_context(|| format!("patchelf --print-needed {}", elf.display()))?;
    Ok(text.lines().map(|l| l.trim().to_string()).collect())
}

fn tool(name: &str, args: &[&str]) -> anyhow::Result<()> {
    ensure!(
        cmd::output(Command::new(name).args(args)).is_some(),
        "`{name}` is missing: run `cargo xtask setup` (it installs patchelf; dpkg-deb, tar and ldd come with Debian)"
    );
    Ok(())
}

fn copy_file(from: &Path, to: &Path) -> anyhow::Result<()> {
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", path.display()))
}

fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    for e in fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_tree(&e.path(), &target)?;
        } else if e.file_type()?.is_file() {
            copy_file(&e.path(), &target)?;
        }
    }
    Ok(())
}

/// The `*.dist-info` folder whose RECORD lists `lib` (a file under a
/// `site-packages` folder), if any.
fn owning_distribution(lib: &Path) -> Option<PathBuf> {
    let lib = lib.canonicalize().ok()?;
    let site = lib.ancestors().find(|a| a.ends_with("site-packages"))?;
    let rel = lib.strip_prefix(site).ok()?.to_string_lossy().into_owned();
    fs::read_dir(site)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "dist-info"))
        .find(|d| {
            fs::read_to_string(d.join("RECORD"))
                .is_ok_and(|r| r.lines().any(|l| l.split(',').next() == Some(rel.as_str())))
        })
}

/// Copies the licence files of every distribution that owns a bundled
/// library into `dest/NAME-VERSION/`; returns their names.
fn bundle_licences(bundle: &[Needed], dest: &Path) -> anyhow::Result<Vec<String>> {
    let mut done = BTreeSet::new();
    for n in bundle {
        let dist = owning_distribution(&n.path).with_context(|| {
            format!(
                "no Python distribution lists {} in its RECORD: where does its licence come from?",
                n.path.display()
            )
        })?;
        let name = dist
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if !done.insert(name.clone()) {
            continue;
        }
        let licences = dist.join("licenses");
        if licences.is_dir() {
            copy_tree(&licences, &dest.join(&name))?;
        } else {
            let mut any = false;
            for e in fs::read_dir(&dist)? {
                let p = e?.path();
                let f = p
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .to_uppercase();
                if f.starts_with("LICEN") || f.starts_with("COPYING") {
                    copy_file(
                        &p,
                        &dest.join(&name).join(p.file_name().unwrap_or_default()),
                    )?;
                    any = true;
                }
            }
            ensure!(any, "{} has no licence file", dist.display());
        }
    }
    Ok(done.into_iter().collect())
}

/// Debian packages that own `libs` (`dpkg -S`), for the .deb's Depends.
fn debian_depends(libs: &[Needed]) -> anyhow::Result<Vec<String>> {
    let mut pkgs = BTreeSet::new();
    for n in libs {
        let canon = n.path.canonicalize().unwrap_or_else(|_| n.path.clone());
        // merged /usr: dpkg may know the file under /lib or /usr/lib.
        let mut candidates = vec![n.path.clone(), canon.clone()];
        for p in [&n.path, &canon] {
            let s = p.to_string_lossy();
            if let Some(rest) = s.strip_prefix("/usr") {
                candidates.push(PathBuf::from(rest));
            } else {
                candidates.push(PathBuf::from(format!("/usr{s}")));
            }
        }
        let owner = candidates.iter().find_map(|c| {
            cmd::output(Command::new("dpkg-query").arg("-S").arg(c)).and_then(|out| {
                out.lines()
                    .next()
                    .and_then(|l| l.split_once(": "))
                    .map(|(pkgs, _)| pkgs.split(", ").next().unwrap_or("").to_string())
            })
        });
        let owner = owner
            .with_context(|| format!("no Debian package owns {} (dpkg -S)", n.path.display()))?;
        // `libc6:amd64` -> `libc6`: the .deb is amd64 itself.
        pkgs.insert(owner.split(':').next().unwrap_or(&owner).to_string());
    }
    // The binary was linked against the builder's versions, so they are a
    // safe lower bound (dpkg-shlibdeps would find tighter ones from symbol
    // versions, but needs a debian/ source tree); the upstream part only,
    // so a newer Debian revision of an older upstream is not refused.
    Ok(pkgs
        .into_iter()
        .map(|p| {
            let v = cmd::output(Command::new("dpkg-query").args(["-W", "-f=${Version}", &p]))
                .unwrap_or_default();
            let upstream = v.split_once(':').map_or(v.as_str(), |(_, r)| r);
            let upstream = upstream.rsplit_once('-').map_or(upstream, |(u, _)| u);
            if upstream.is_empty() {
                p
            } else {
                format!("{p} (>= {upstream})")
            }
        })
        .collect())
}

/// Runs `plume-cc service install` of the staged binary to write the unit
/// files under `root` (no systemctl), for a binary installed at `bin`.
fn write_units(exe: &Path, root: &Path, unit_dir: &str, bin: &str) -> anyhow::Result<()> {
    cmd::run(
        &format!("plume-cc service install --root {}", root.display()),
        Command::new(exe)
            .args(["service", "install", "--root"])
            .arg(root)
            .args(["--unit-dir", unit_dir, "--bin", bin])
            // The shipped units name the cgroup2 mount of a current systemd
            // host, whatever the build machine has (a hybrid host runs
            // `plume-cc service install`, which looks).
            .args(["--cgroup-root", "/sys/fs/cgroup"]),
    )
}

/// Checks that the staged front names no RUNPATH and asks for no library
/// of libtorch: it must start where `lib/` is not (as nobody, or copied
/// alone), which the tarball test checks too.
fn check_front(exe: &Path) -> anyhow::Result<()> {
    let rpath = cmd::output(Command::new("patchelf").arg("--print-rpath").arg(exe))
        .context("patchelf --print-rpath failed")?;
    ensure!(
        rpath.trim().is_empty(),
        "the shipped front still has a RUNPATH: {rpath:?}"
    );
    let needed = needed_sonames(exe)?;
    ensure!(
        !needed.iter().any(|n| is_torch(n)),
        "the front lists libtorch in DT_NEEDED ({needed:?}): it would load libtorch for every --help; see plume-cc/build.rs, front_without_libtorch"
    );
    Ok(())
}

/// Checks that the staged engine resolves every library inside its own
/// `lib/` or the system's, and names no absolute RUNPATH.
fn check_relocated(exe: &Path, lib_dir: &Path, bundle: &[Needed]) -> anyhow::Result<()> {
    let rpath = cmd::output(Command::new("patchelf").arg("--print-rpath").arg(exe))
        .context("patchelf --print-rpath failed")?;
    ensure!(
        rpath == SHIPPED_RUNPATH,
        "the shipped engine's RUNPATH is {rpath:?}, not {SHIPPED_RUNPATH:?}"
    );
    let text = cmd::output(Command::new("ldd").arg(exe)).context("ldd on the staged binary")?;
    let lib_dir = lib_dir.canonicalize()?;
    let resolved = parse_ldd(&text)?;
    for b in bundle {
        let r = resolved
            .iter()
            .find(|n| n.soname == b.soname)
            .with_context(|| format!("the staged engine no longer loads {}", b.soname))?;
        let dir = r.path.canonicalize()?.parent().map(Path::to_path_buf);
        ensure!(
            dir.as_deref() == Some(lib_dir.as_path()),
            "the staged engine loads {} from {}, not from its lib/",
            b.soname,
            r.path.display()
        );
    }
    Ok(())
}

/// What dist produced.
pub struct Artifacts {
    /// The .tar.gz.
    pub tarball: PathBuf,
    /// The .deb, unless `--no-deb`.
    pub deb: Option<PathBuf>,
}

/// `cargo xtask dist`.
pub fn dist(opts: &Options) -> anyhow::Result<Artifacts> {
    let root = paths::repo_root();
    for (t, a) in [
        ("patchelf", "--version"),
        ("ldd", "--version"),
        ("tar", "--version"),
    ] {
        tool(t, &[a])?;
    }
    if !opts.no_build {
        cmd::run(
            "cargo build --release -p plume-cc",
            crate::cargo().args(["build", "--release", "-p", "plume-cc"]),
        )?;
    }
    let front_exe = root.join("target/release").join(FRONT);
    let engine_exe = root.join("target/release").join(ENGINE);
    for exe in [&front_exe, &engine_exe] {
        ensure!(
            exe.is_file(),
            "{} is missing: build it (cargo build --release -p plume-cc)",
            exe.display()
        );
    }
    let version = env!("CARGO_PKG_VERSION");
    let name = format!("plume-cc-{version}-x86_64-linux");
    let out = opts.out.clone().unwrap_or_else(|| root.join("target/dist"));
    fs::create_dir_all(&out)?;
    let out = out.canonicalize()?;
    let stage = out.join(&name);
    let _ = fs::remove_dir_all(&stage);

    println!("==> staging {}", stage.display());
    let (bundle, mut system) = resolve(&engine_exe)?;
    ensure!(
        bundle.iter().any(|n| n.soname.starts_with("libtorch_cpu")),
        "ldd found libtorch_cpu among the system libraries or not at all; dist bundles it from the torch virtualenv"
    );
    // The front's libraries are the system's alone (checked below); the
    // .deb depends on them too.
    let (front_bundle, front_system) = resolve(&front_exe)?;
    ensure!(
        front_bundle.is_empty(),
        "the front loads libraries from outside the system's: {front_bundle:?}"
    );
    for n in front_system {
        if !system.iter().any(|s| s.soname == n.soname) {
            system.push(n);
        }
    }
    let engine = stage.join("bin").join(ENGINE);
    copy_file(&engine_exe, &engine)?;
    set_mode(&engine, 0o755)?;
    cmd::run(
        "patchelf --set-rpath '$ORIGIN/../lib'",
        Command::new("patchelf")
            .args(["--set-rpath", SHIPPED_RUNPATH])
            .arg(&engine),
    )?;
    let lib = stage.join("lib");
    for n in &bundle {
        let to = lib.join(&n.soname);
        copy_file(&n.path, &to)?;
        set_mode(&to, 0o644)?;
    }
    check_relocated(&engine, &lib, &bundle)?;
    let bin = stage.join("bin").join(FRONT);
    copy_file(&front_exe, &bin)?;
    set_mode(&bin, 0o755)?;
    // The dev front carries the engine's RUNPATH unused (plume-cc/build.rs).
    // Emptied first, so patchelf overwrites the builder's path in the
    // string table, then removed.
    for args in [&["--set-rpath", ""][..], &["--remove-rpath"][..]] {
        cmd::run(
            &format!("patchelf {} (the front)", args.join(" ")),
            Command::new("patchelf").args(args).arg(&bin),
        )?;
    }
    check_front(&bin)?;
    let licences = bundle_licences(&bundle, &stage.join("licenses"))?;
    for f in ["LICENSE-MIT", "LICENSE-APACHE"] {
        copy_file(&root.join(f), &stage.join(f))?;
    }
    let readme = fs::read_to_string(root.join("packaging/README.md"))?
        .replace("{VERSION}", version)
        .replace("{NAME}", &name)
        .replace("{TORCH}", paths::TORCH_VERSION);
    fs::write(stage.join("README.md"), readme)?;
    write_units(
        &bin,
        &stage,
        "/systemd",
        &format!("{TARBALL_PREFIX}/{name}/bin/plume-cc"),
    )?;
    println!(
        "    bundled {} libraries: {}",
        bundle.len(),
        bundle
            .iter()
            .map(|n| n.soname.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("    licences of: {}", licences.join(" "));

    let tarball = out.join(format!("{name}.tar.gz"));
    cmd::run(
        &format!("tar czf {}", tarball.display()),
        Command::new("tar")
            .args(["--owner=0", "--group=0", "--numeric-owner", "-C"])
            .arg(&out)
            .arg("-czf")
            .arg(&tarball)
            .arg(&name),
    )?;

    let deb = if opts.no_deb {
        None
    } else {
        Some(build_deb(&root, &out, &stage, &system, version)?)
    };
    Ok(Artifacts { tarball, deb })
}

/// The .deb: the staged tree under /usr/lib/plume-cc, a /usr/bin link, the
/// units in /lib/systemd/system, docs and licences in /usr/share/doc.
fn build_deb(
    root: &Path,
    out: &Path,
    stage: &Path,
    system: &[Needed],
    version: &str,
) -> anyhow::Result<PathBuf> {
    tool("dpkg-deb", &["--version"])?;
    let tree = out.join("deb-root");
    let _ = fs::remove_dir_all(&tree);
    let prefix = tree.join(DEB_PREFIX);
    copy_tree(&stage.join("bin"), &prefix.join("bin"))?;
    copy_tree(&stage.join("lib"), &prefix.join("lib"))?;
    // /usr/bin/plume-cc links to the front, which finds the engine beside
    // its real path (/proc/self/exe resolves the link).
    for b in [FRONT, ENGINE] {
        set_mode(&prefix.join("bin").join(b), 0o755)?;
    }
    fs::create_dir_all(tree.join("usr/bin"))?;
    std::os::unix::fs::symlink(
        "../lib/plume-cc/bin/plume-cc",
        tree.join("usr/bin/plume-cc"),
    )?;
    write_units(
        &prefix.join("bin/plume-cc"),
        &tree,
        "/lib/systemd/system",
        "/usr/bin/plume-cc",
    )?;
    let doc = tree.join("usr/share/doc/plume-cc");
    copy_tree(&stage.join("licenses"), &doc.join("licenses"))?;
    for f in ["README.md", "LICENSE-MIT", "LICENSE-APACHE"] {
        copy_file(&stage.join(f), &doc.join(f))?;
    }
    let depends = debian_depends(system)?;
    let size_kib = dir_size(&tree)? / 1024;
    let debian = tree.join("DEBIAN");
    fs::create_dir_all(&debian)?;
    fs::write(
        debian.join("control"),
        format!(
            "Package: plume-cc\n\
             Version: {version}\n\
             Architecture: amd64\n\
             Maintainer: The plume-cc authors <plume-cc@users.noreply.github.com>\n\
             Installed-Size: {size_kib}\n\
             Depends: {}\n\
             Section: net\n\
             Priority: optional\n\
             Homepage: https://github.com/plume-cc/plume-cc\n\
             Description: learned TCP congestion controller (eBPF sock_ops + libtorch)\n \
             plume-cc steers the TCP flows of a cgroup with a learned policy: an eBPF\n \
             sock_ops program collects per-flow statistics and enforces cwnd and pacing\n \
             limits that a daemon computes every monitor interval. The service\n \
             (plume-cc.service) controls the applications in plume-cc.slice.\n",
            depends.join(", ")
        ),
    )?;
    for script in ["postinst", "prerm", "postrm"] {
        let to = debian.join(script);
        copy_file(&root.join("packaging/deb").join(script), &to)?;
        set_mode(&to, 0o755)?;
    }
    let deb = out.join(format!("plume-cc_{version}_amd64.deb"));
    cmd::run(
        &format!("dpkg-deb --build {}", deb.display()),
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zgzip", "--build"])
            .arg(&tree)
            .arg(&deb),
    )?;
    fs::remove_dir_all(&tree).ok();
    println!("    Depends: {}", depends.join(", "));
    Ok(deb)
}

fn dir_size(dir: &Path) -> anyhow::Result<u64> {
    let mut n = 0;
    for e in fs::read_dir(dir)? {
        let e = e?;
        let t = e.file_type()?;
        if t.is_dir() {
            n += dir_size(&e.path())?;
        } else if t.is_file() {
            n += e.metadata()?.len();
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_is_parsed_and_a_missing_library_fails() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibtorch_cpu.so => /x/torch/lib/libtorch_cpu.so (0x00007f06)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f06)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f06)\n";
        let v = parse_ldd(text).unwrap();
        assert_eq!(
            v,
            [
                Needed {
                    soname: "libtorch_cpu.so".into(),
                    path: "/x/torch/lib/libtorch_cpu.so".into()
                },
                Needed {
                    soname: "libc.so.6".into(),
                    path: "/lib/x86_64-linux-gnu/libc.so.6".into()
                },
            ]
        );
        let e = parse_ldd("\tlibc10.so => not found\n").unwrap_err();
        assert!(e.to_string().contains("libc10.so"), "{e}");
    }
}
