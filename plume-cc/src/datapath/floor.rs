//! The benchmark's floor: the object's second sock_ops program
//! (`plume_floor` in plume-cc-ebpf), which only enables the callbacks that
//! the datapath's program enables and does nothing on them. Measured with
//! `kernel.bpf_stats_enabled` on the same kind of transfer as the real
//! program, its mean cost per callback is the hook and the statistics'
//! own clock reads: what no program can go below on this host.
//!
//! Crate-private, and kept apart from [`Datapath`]: nothing but
//! `bench-datapath` can attach it, and it never holds maps the daemon reads.

use super::*;

/// The floor program, attached to one cgroup (detached when dropped).
pub(crate) struct FloorProgram {
    ebpf: Ebpf,
    _link: FdLink,
}

impl FloorProgram {
    /// Loads the embedded object's floor program and attaches it to the
    /// cgroup v2 folder `cgroup`. Loading the object creates its maps
    /// too (aya creates every map of an object); the flow maps are given
    /// one entry, since the floor uses none of them.
    pub(crate) fn attach(cgroup: &Path) -> Result<Self, DatapathError> {
        if EBPF_OBJECT.is_empty() {
            return Err(DatapathError::NoObject);
        }
        check_capabilities()?;
        cgroup::check_cgroup2(cgroup)?;
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(maps::FLOW_STATS, 1)
            .map_max_entries(maps::STATS_SLOTS, 1)
            .map_max_entries(maps::TARGET_SLOTS, 1)
            .map_max_entries(maps::FREE_SLOTS, 1)
            .load(EBPF_OBJECT)
            .map_err(loader::load_error)?;
        let link = loader::attach_sock_ops(&mut ebpf, FLOOR_PROGRAM_NAME, cgroup)?;
        Ok(Self { ebpf, _link: link })
    }

    /// The floor program's (run count, total run time in ns) from the
    /// kernel's statistics, as [`Datapath::program_run_stats`].
    pub(crate) fn run_stats(&self) -> Result<(u64, u64), DatapathError> {
        loader::run_stats(&self.ebpf, FLOOR_PROGRAM_NAME)
    }
}
