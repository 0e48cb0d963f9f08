//! Library target of the eBPF crate: lets host tools (`cargo clippy --workspace`)
//! check it; the program itself is the `plume-cc` binary in `main.rs`.
#![no_std]
