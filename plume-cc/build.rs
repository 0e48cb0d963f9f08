//! Build script of the `plume-cc` crate.
//!
//! 1. Builds the eBPF object from `plume-cc-ebpf` with aya-build (nightly,
//!    bpfel-unknown-none, bpf-linker) into `OUT_DIR/plume-cc`, which
//!    `datapath` embeds with `include_bytes_aligned!`. No manual step.
//! 2. Gives every binary of this crate an rpath to the libtorch folder that
//!    torch-sys linked against, so `plume-cc-engine` and the tests run
//!    without LD_LIBRARY_PATH (the front, `plume-cc`, gets it too, unused:
//!    cargo has no way to leave one binary out but keep the library's unit
//!    tests in; `cargo xtask dist` removes it from the shipped front).
//! 3. Links the front, `plume-cc`, with `--exclude-libs ALL`, which keeps
//!    libtorch out of its DT_NEEDED (see `front_without_libtorch`).
use std::{env, path::PathBuf};

use anyhow::{anyhow, Context as _};
use aya_build::{Package, Toolchain};

/// The dated nightly that builds the eBPF object: the `channel` of
/// `plume-cc-ebpf/rust-toolchain.toml`, the one place it is written (xtask
/// reads it from there too).
fn ebpf_nightly() -> &'static str {
    const TOML: &str = include_str!("../plume-cc-ebpf/rust-toolchain.toml");
    TOML.lines()
        .find_map(|l| l.trim().strip_prefix("channel"))
        .and_then(|rest| rest.split('"').nth(1))
        .expect("plume-cc-ebpf/rust-toolchain.toml names a quoted channel")
}
/// Cache of the toolchain pieces installed by `cargo xtask setup`.
const BPF_LINKER_CACHE: &str = ".cache/plume-cc/bpf-linker-0.13.0-llvm23/bin";

fn main() -> anyhow::Result<()> {
    rpath_to_libtorch();
    front_without_libtorch();
    build_ebpf()
}

/// The front links the library's rlib, which holds tch, so the linker pulls
/// in torch-sys's C++ wrapper objects (a whole object file comes with any
/// symbol of it that a pulled codegen unit names, used or not). Their
/// inline functions and vtables are also defined by libtorch_cpu.so, so
/// rust-lld exports them from the executable (a shared library may
/// interpose them), which makes them roots of `--gc-sections`: they stay,
/// and their references to libtorch put libtorch_cpu.so and libc10.so in
/// DT_NEEDED, and its 0.2 s of static initialisers into every `--help`.
/// `--exclude-libs ALL` makes every symbol from a static archive local to
/// the executable: nothing is exported, the unused C++ is collected, and
/// only code the front really runs decides what it needs (the front
/// exports nothing anyway). The engine keeps the default: it uses libtorch.
fn front_without_libtorch() {
    println!("cargo:rustc-link-arg-bin=plume-cc=-Wl,--exclude-libs,ALL");
}

fn rpath_to_libtorch() {
    // torch-sys has `links = "tch"` and prints `cargo:libtorch_lib=DIR`.
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Some(dir) = env::var_os("DEP_TCH_LIBTORCH_LIB") {
        let dir = PathBuf::from(dir);
        let dir = dir.canonicalize().unwrap_or(dir);
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
    }
}

fn build_ebpf() -> anyhow::Result<()> {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR not set")?);
    let object = out_dir.join("plume-cc");
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    if env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true")) {
        // Host-only work (docs, quick checks): embed an empty object; the
        // datapath then refuses to load with a message saying why.
        if !object.exists() {
            std::fs::write(&object, [])?;
        }
        return Ok(());
    }
    add_tools_to_path()?;
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").context("no manifest dir")?);
    let ebpf_dir = manifest_dir
        .parent()
        .ok_or_else(|| anyhow!("plume-cc has no parent folder"))?
        .join("plume-cc-ebpf");
    let root_dir = ebpf_dir
        .to_str()
        .ok_or_else(|| anyhow!("non-UTF-8 path {}", ebpf_dir.display()))?;
    println!("cargo:rerun-if-changed={}", ebpf_dir.join("src").display());
    println!(
        "cargo:rerun-if-changed={}",
        manifest_dir
            .parent()
            .unwrap()
            .join("plume-cc-common/src")
            .display()
    );
    aya_build::build_ebpf(
        [Package {
            name: "plume-cc-ebpf",
            root_dir,
            ..Default::default()
        }],
        Toolchain::Custom(ebpf_nightly()),
    )
    .context(
        "building the eBPF object failed; run `cargo xtask setup` (it installs the \
         nightly toolchain with rust-src and bpf-linker), or set AYA_BUILD_SKIP=1 for \
         host-only checks",
    )
}

/// Makes the cached bpf-linker visible to the nested cargo that aya-build runs.
fn add_tools_to_path() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=PLUME_TOOLS_BIN");
    println!("cargo:rerun-if-env-changed=PATH");
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(bin) = env::var_os("PLUME_TOOLS_BIN") {
        dirs.push(PathBuf::from(bin));
    }
    if let Some(home) = env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(BPF_LINKER_CACHE));
    }
    let path = env::var_os("PATH").unwrap_or_default();
    dirs.extend(env::split_paths(&path));
    let joined = env::join_paths(dirs)?;
    // SAFETY (edition 2021: safe fn): build scripts are single-threaded here.
    env::set_var("PATH", joined);
    Ok(())
}
