//! plume-cc's sock_ops datapath.
//!
//! Attached to a cgroup v2 folder, this program sees every TCP socket created
//! by a process in that folder. It
//! - registers each established flow under its socket cookie, writes the
//!   cookie and the flow's slot into the socket's own storage, and turns on
//!   the RTT, STATE and RETRANS callbacks;
//! - refreshes the flow's statistics on every callback, finding its slot
//!   through that storage (the cookie hash only when the entry is missing
//!   or stale);
//! - applies the flow's target (cwnd clamp, max pacing rate) written by the
//!   daemon, within safe bounds, and lifts it by itself when the target is
//!   stale, so that a dead daemon never leaves a flow throttled. The target
//!   map is read only when user space wrote something since the flow's last
//!   check or the limits in force are due to turn stale
//!   (`DatapathConfig::generation`), so a callback costs one socket-storage
//!   lookup;
//! - removes the flow's entries when the socket reaches TCP_CLOSE.
//!
//! It must never fail a socket operation: every error is counted and the flow
//! is left to the kernel's own congestion control.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod program;

#[cfg(not(target_arch = "bpf"))]
fn main() {
    // Built for the host only by workspace-wide checks; the real object is
    // built for bpfel-unknown-none by plume-cc's build script (aya-build).
}
