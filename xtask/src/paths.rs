//! Where things live: the repository and the version-keyed caches.

use std::path::{Path, PathBuf};

/// The dated nightly that builds the eBPF object (with rust-src): the
/// `channel` of plume-cc-ebpf/rust-toolchain.toml, the one place it is
/// written (plume-cc/build.rs reads it from there too).
pub fn ebpf_nightly() -> &'static str {
    const TOML: &str = include_str!("../../plume-cc-ebpf/rust-toolchain.toml");
    TOML.lines()
        .find_map(|l| l.trim().strip_prefix("channel"))
        .and_then(|rest| rest.split('"').nth(1))
        .expect("plume-cc-ebpf/rust-toolchain.toml names a quoted channel")
}
/// PyTorch version that tch 0.26 requires exactly.
pub const TORCH_VERSION: &str = "2.13.0";
/// The PyPI static LLVM SDK bpf-linker is built against.
pub const LLVM_SDK_VERSION: &str = "23.1.1.post0";
/// bpf-linker release.
pub const BPF_LINKER_VERSION: &str = "0.13.0";
/// Debian packages the project needs.
pub const DEBIAN_PACKAGES: &[&str] = &[
    "iperf3",
    "libzstd-dev",
    "zlib1g-dev",
    "iproute2",
    "procps",
    "fonts-dejavu-core",
    // `cargo xtask dist` rewrites the shipped binary's RUNPATH (dist.rs).
    "patchelf",
];

/// The workspace root (the folder holding xtask/).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_path_buf()
}

/// Cache of heavy, version-keyed artefacts shared by every clone on the
/// machine: `$PLUME_CC_CACHE`, else `$XDG_CACHE_HOME/plume-cc`, else `~/.cache/plume-cc`.
pub fn cache_root() -> PathBuf {
    if let Some(p) = std::env::var_os("PLUME_CC_CACHE") {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(p).join("plume-cc");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/plume-cc")
}

/// The virtualenv that owns libtorch.
pub fn torch_venv() -> PathBuf {
    cache_root().join(format!("torch-{TORCH_VERSION}"))
}

/// The unpacked LLVM SDK prefix.
pub fn llvm_prefix() -> PathBuf {
    cache_root()
        .join(format!("llvm-{LLVM_SDK_VERSION}"))
        .join("mlc_llvm_static/static")
}

/// The folder holding the cached bpf-linker binary.
pub fn bpf_linker_root() -> PathBuf {
    cache_root().join(format!("bpf-linker-{BPF_LINKER_VERSION}-llvm23"))
}

/// The repository's links to the caches (`.plume/`, git-ignored), read by
/// `.cargo/config.toml` ([env] LIBTORCH, PLUME_TOOLS_BIN).
pub fn links_dir() -> PathBuf {
    repo_root().join(".plume")
}
