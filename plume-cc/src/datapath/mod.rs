//! The eBPF datapath (sock_ops) and its user-space handle.
