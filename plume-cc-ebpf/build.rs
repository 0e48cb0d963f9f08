//! Rebuild the eBPF object when the bpf-linker binary changes (cargo cannot
//! express a dependency on a tool).
fn main() {
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
}
