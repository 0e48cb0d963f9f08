//! Plain-old-data types that cross the kernel/user boundary.
//!
//! Every struct that lives in a BPF map of plume-cc is declared here, once, with
//! `#[repr(C)]` and explicit padding, so the eBPF program (`plume-cc-ebpf`) and
//! user space (`plume-cc`) cannot drift apart. This crate is `no_std` and holds
//! no logic beyond constants and tiny helpers: it must compile for
//! `bpfel-unknown-none`.
#![no_std]

/// Names of the maps declared by the eBPF program (user space looks them up by name).
pub mod maps {
    /// `HashMap<u64 socket cookie, u32 slot>`: which slot of
    /// [`STATS_SLOTS`] and [`TARGET_SLOTS`] a registered flow owns. An
    /// entry exists exactly while the flow owns its slot; whoever deletes it
    /// (the program at TCP_CLOSE, or the daemon's reaper) frees the slot.
    pub const FLOW_STATS: &str = "PLUME_FLOWS";
    /// `Array<StatsSlot>` created with `BPF_F_MMAPABLE`: each flow's latest
    /// statistics, written by the program under the slot's sequence counter
    /// and read by the daemon straight from memory.
    pub const STATS_SLOTS: &str = "PLUME_SLOTS";
    /// `Array<TargetSlot>` created with `BPF_F_MMAPABLE`: each flow's target,
    /// written by the daemon straight into memory under the slot's sequence
    /// counter and read by the program.
    pub const TARGET_SLOTS: &str = "PLUME_TSLOTS";
    /// `Stack<u32>` of free slot indices, filled by the loader (see
    /// [`crate::free_slot_fill_order`]).
    pub const FREE_SLOTS: &str = "PLUME_FREE";
    /// `Array<DatapathConfig>` with one element: knobs of the datapath.
    pub const CONFIG: &str = "PLUME_CONFIG";
    /// `PerCpuArray<u64>` of [`crate::counters`]: datapath counters (user space sums the CPUs).
    pub const COUNTERS: &str = "PLUME_COUNTERS";
    /// `RingBuf` of [`crate::FlowEvent`]: new and closed flows.
    pub const EVENTS: &str = "PLUME_EVENTS";
    /// `SkStorage<SocketSlot>` (`BPF_MAP_TYPE_SK_STORAGE`): each
    /// registered socket's own copy of its cookie and slot, so that its
    /// callbacks find the slot without the socket-cookie helper and the
    /// hash lookup in [`FLOW_STATS`]. Not pinned: only the program uses it
    /// (user space reaches an entry only through a descriptor of its
    /// socket), the program keeps it alive, and each entry dies with its
    /// socket.
    pub const SOCKET_SLOTS: &str = "PLUME_SKSLOT";
}

/// Name of the sock_ops program in the object file.
pub const PROGRAM_NAME: &str = "plume_sockops";

/// Name of the object's second sock_ops program, the benchmark's floor: it
/// only enables the callbacks (see `plume_floor` in plume-cc-ebpf). Only
/// `plume-cc bench-datapath` loads it, into a cgroup of its own; the
/// daemon's loader never asks for it.
pub const FLOOR_PROGRAM_NAME: &str = "plume_floor";

/// Capacity of the flow maps. A flow that does not fit stays under the kernel's
/// own control (it is never clamped) and is counted in
/// [`counters::FLOW_MAP_FULL`].
pub const MAX_FLOWS: u32 = 65_536;

/// `BPF_F_MMAPABLE` (include/uapi/linux/bpf.h, kernel 5.5+): an array map
/// whose values user space can mmap(2). Not in aya's bindings as a named
/// constant of the map-flag enum on every version, so spelled here once.
pub const BPF_F_MMAPABLE: u32 = 1 << 10;

/// The order in which the loader pushes slot indices onto the free-slot
/// stack: from the highest to 0, so the first pop hands out slot 0. The stack is last in,
/// first out, so a freed slot is the next one handed out, and a fresh index
/// `k` is popped only when `k` slots are in use: the slots ever used are
/// always the prefix `0..peak` (peak: most flows ever registered at once).
/// The daemon's reader relies on that to stop its scan at the first long
/// run of never-used slots instead of walking all [`MAX_FLOWS`].
pub fn free_slot_fill_order(capacity: u32) -> core::iter::Rev<core::ops::Range<u32>> {
    (0..capacity).rev()
}

/// A sequence counter guards each slot (a seqlock): the one writer of a
/// slot makes it odd before it writes and even after; a reader that sees
/// an odd value, or a different value after its copy, saw a torn write and
/// retries or skips the slot. A counter that was never written (0) marks a
/// slot that was never used.
///
/// The statistics of one flow, in its slot of [`maps::STATS_SLOTS`]. The
/// program is the only writer while the flow lives (a socket's callbacks
/// are serialised by the socket lock); the daemon writes a slot only after
/// it deleted the flow's entry from [`maps::FLOW_STATS`] itself (a flow
/// whose socket is gone), which makes it the slot's owner.
///
/// Laid out for the callback that does not copy the statistics (most ACKs
/// with a snapshot quantum): everything it reads or writes (the counter,
/// the cookie, and [`FlowStats`]' first fields, up to
/// `applied_competitive_cc`) is in
/// the slot's first 64 bytes, and the slot is [`STATS_SLOT_SIZE`] bytes, a
/// multiple of 64, so that with the array's values starting on a page (as
/// the kernel places those of a `BPF_F_MMAPABLE` array) those 64 bytes are
/// one cache line: one line per callback instead of three or four.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSlot {
    /// Sequence counter (see above): odd while being written.
    pub seq: u32,
    /// Explicit padding.
    pub _pad: u32,
    /// Socket cookie of the flow that owns the slot; 0 when free.
    pub cookie: u64,
    /// The flow's statistics ([`STATS_SLOT_SIZE`] with the header above:
    /// no padding).
    pub stats: FlowStats,
}

/// Size of [`StatsSlot`]: a multiple of the 64-byte cache line, so every
/// slot starts on a line. Changing it changes the value size of
/// [`maps::STATS_SLOTS`], which makes pins of another build be refused as
/// another layout (the loader compares value sizes).
pub const STATS_SLOT_SIZE: usize = 192;

/// The bytes of [`StatsSlot`] a callback that does not copy the statistics
/// touches: the slot's header and [`FlowStats`] up to and including
/// `applied_competitive_cc` (checked by the tests below).
pub const STATS_SLOT_HOT_BYTES: usize = 64;

/// A flow's target, in the slot of [`maps::TARGET_SLOTS`] with the index of
/// its statistics slot. The daemon is the only writer; the program reads it
/// under the sequence counter and applies it only when `cookie` is its own
/// (a slot handed to a new flow may still hold the previous flow's target).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TargetSlot {
    /// Sequence counter (see [`StatsSlot`]): odd while being written.
    pub seq: u32,
    /// Explicit padding.
    pub _pad: u32,
    /// Socket cookie of the flow the target is for; 0 for none.
    pub cookie: u64,
    /// The target.
    pub target: FlowTarget,
}

/// A registered socket's cookie and slot, in its entry of
/// [`maps::SOCKET_SLOTS`] (the socket's own BPF storage). The program
/// writes it at registration and trusts it only while the slot's
/// [`StatsSlot::cookie`] is still `cookie`: a freed slot (cookie 0) or one
/// handed to another flow (another cookie; cookies are never reused while
/// the host runs) sends the callback back to the cookie hash, so a stale
/// entry never writes a slot that is not its socket's. That test suffices
/// because the program is the only writer of entries and always writes the
/// socket's own cookie (from `bpf_get_socket_cookie`): a slot carrying that
/// cookie is this socket's. (User space can write an entry through a
/// descriptor of the socket, as the tests do, but the daemon never does.)
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketSlot {
    /// Socket cookie of the flow.
    pub cookie: u64,
    /// Index of the flow's slot in [`maps::STATS_SLOTS`] and [`maps::TARGET_SLOTS`].
    pub slot: u32,
    /// Explicit padding.
    pub _pad: u32,
}

/// Indices into the `PLUME_COUNTERS` array.
pub mod counters {
    /// Flows registered (active or passive establishment in the cgroup).
    pub const FLOWS_OPENED: u32 = 0;
    /// Flows whose entries were removed on TCP_CLOSE.
    pub const FLOWS_CLOSED: u32 = 1;
    /// Flows that could not be registered because the stats map was full.
    pub const FLOW_MAP_FULL: u32 = 2;
    /// Limit changes applied with bpf_setsockopt (one per changed limit: a
    /// target that moves both the clamp and the pacing cap counts twice; a
    /// target equal to the limits in force counts nothing).
    pub const TARGETS_APPLIED: u32 = 3;
    /// Stale targets lifted by the datapath itself (daemon silent too long).
    pub const TARGETS_EXPIRED: u32 = 4;
    /// bpf_setsockopt calls that failed.
    pub const SETSOCKOPT_ERRORS: u32 = 5;
    /// Ring buffer events dropped because user space was not reading.
    pub const EVENTS_DROPPED: u32 = 6;
    /// Flows whose kernel congestion control was set to
    /// [`crate::DatapathConfig::base_cc`] at establishment.
    pub const BASE_PINNED: u32 = 7;
    /// Callbacks that checked the flow's target (RTT, RETRANS and RTO
    /// callbacks of full sockets). [`TARGETS_APPLIED`] counts only the
    /// checks that changed a limit, so `TARGETS_APPLIED / TARGET_CHECKS`
    /// tells how often a fresh target differed from the one in force.
    /// Each flow adds its checks here in bulk, whenever it next looks its
    /// target up (after a write of targets) and when it closes, so the sum
    /// may trail the callbacks by those since the last write.
    pub const TARGET_CHECKS: u32 = 8;
    /// Statistics snapshots taken on callbacks of registered flows (see
    /// [`crate::DatapathConfig::snapshot_every_ns`]); against
    /// [`TARGET_CHECKS`] (one per RTT, retransmission and RTO callback) it
    /// tells how many copies the quantum spared. Counted in the flow's
    /// slot and added here in bulk together with [`TARGET_CHECKS`] (so it
    /// may trail by the snapshots since the flow's last full check).
    pub const SNAPSHOTS: u32 = 9;
    /// Flows the daemon's reads left out because their statistics slot was
    /// being written on every try (a torn read; see [`StatsSlot`]).
    /// Written by the daemon, not the program (it adds its new ones when
    /// the count moves), so `plume-cc status` shows what the metrics
    /// endpoint's `plume_torn_reads_total` counts, summed over daemon
    /// restarts since the datapath was loaded.
    pub const TORN_READS: u32 = 10;
    /// Callbacks of registered flows that found their slot through the
    /// cookie hash ([`crate::maps::FLOW_STATS`]) because the socket's own
    /// storage ([`crate::maps::SOCKET_SLOTS`]) had no valid entry (none
    /// created, or one a restart or a failed allocation left out); each
    /// such callback writes the entry (but TCP_CLOSE's, which deletes it),
    /// so a flow's next callbacks find it there. 0 while every flow was
    /// registered by this program.
    pub const SLOT_HASH_LOOKUPS: u32 = 11;
    /// Callbacks on which a lift waited for the tail of loss recovery
    /// alone: nothing lost or retransmitted in flight, but
    /// [`crate::recovery_tail`] says the flow may still be in recovery (up
    /// to the ACK that ends it; see [`crate::lift_waits`]): the case the
    /// loss counters alone let through.
    pub const RECOVERY_TAIL_WAITS: u32 = 12;
    /// Number of counter slots (a few spare).
    pub const LEN: u32 = 16;
}

/// `snd_cwnd_clamp` value meaning "no clamp" (largest value bpf_setsockopt accepts).
pub const CWND_UNCLAMPED: u32 = i32::MAX as u32;
/// `SO_MAX_PACING_RATE` value meaning "no pacing cap" (`~0U` in the kernel).
pub const PACING_UNLIMITED: u32 = u32::MAX;
/// Smallest cwnd clamp the datapath applies, whatever the daemon asks: below
/// this TCP cannot keep an ACK clock.
pub const MIN_CWND_CLAMP: u32 = 2;
/// Smallest pacing cap the datapath applies, in bytes per second (about 100 kbit/s).
pub const MIN_PACING_BYTES_PER_SEC: u32 = 12_500;

/// Per-flow statistics, refreshed by the eBPF program on every callback of the
/// flow (RTT sample, retransmission, state change).
///
/// Counters (`delivered`, `bytes_acked`, `total_retrans`, ...) are cumulative
/// since the flow started, as the kernel keeps them; user space takes deltas.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(serde::Serialize, serde::Deserialize))]
pub struct FlowStats {
    // The first 48 bytes (with the slot's 16-byte header: the slot's
    // first cache line) are what a callback that does not copy the
    // statistics reads and writes; see `StatsSlot`.
    /// `bpf_ktime_get_ns()` of the latest snapshot: the instant every
    /// kernel-copied field below was read, together. With
    /// [`DatapathConfig::snapshot_every_ns`] 0 that is the latest callback;
    /// otherwise RTT callbacks copy only when that long has passed since
    /// the last snapshot or when the ACK leaves nothing in flight (so a
    /// flow that goes quiet is always recorded as it ended).
    pub updated_ns: u64,
    /// The datapath's own bookkeeping: CLOCK_MONOTONIC nanoseconds after
    /// which the limits in force turn stale (`written_ns + stale_after_ns`
    /// of the target they came from; `u64::MAX` when none is in force).
    #[cfg_attr(feature = "user", serde(skip))]
    pub target_deadline_ns: u64,
    /// Latest RTT sample handed to the RTT callback, microseconds (0 if none yet).
    pub last_rtt_us: u32,
    /// RTT callbacks seen (cumulative).
    pub rtt_samples: u32,
    /// cwnd clamp in force from this datapath ([`CWND_UNCLAMPED`] when none).
    pub applied_cwnd_clamp: u32,
    /// Pacing cap in force from this datapath, bytes/s ([`PACING_UNLIMITED`] when none).
    pub applied_pacing: u32,
    /// The datapath's own bookkeeping, not a statistic: the
    /// [`DatapathConfig::generation`] its last full target check saw. While
    /// the configuration still carries it, nothing was written since, and
    /// the program skips the target lookup on the flow's callbacks.
    #[cfg_attr(feature = "user", serde(skip))]
    pub target_generation: u32,
    /// The datapath's own bookkeeping: target checks of this flow not yet
    /// added to [`counters::TARGET_CHECKS`]. Counting in the flow's entry
    /// (already in cache on its callback) and flushing on each full check
    /// and at close spares every callback a write to the shared counters.
    #[cfg_attr(feature = "user", serde(skip))]
    pub unflushed_checks: u32,
    /// The datapath's own bookkeeping: statistics snapshots of this flow
    /// not yet added to [`counters::SNAPSHOTS`], flushed with
    /// `unflushed_checks` (and for the same reason).
    #[cfg_attr(feature = "user", serde(skip))]
    pub unflushed_snapshots: u32,
    /// Nonzero while the flow runs the configuration's competitive
    /// controller ([`DatapathConfig::competitive_cc`]) instead of its base,
    /// as the last full target check applied (it ends the slot's first
    /// cache line: the per-ACK test of whether anything is in force reads
    /// it beside the applied limits).
    #[cfg_attr(feature = "user", serde(default))]
    pub applied_competitive_cc: u32,
    // The rest is written by a statistics copy (`fill`), at registration,
    // and on retransmission and RTO callbacks (which always copy).
    /// Retransmission callbacks seen (cumulative).
    pub retrans_events: u32,
    /// RTO callbacks seen (cumulative).
    pub rto_events: u32,
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) when the flow was registered.
    pub start_ns: u64,
    /// Bytes acknowledged by the peer (cumulative).
    pub bytes_acked: u64,
    /// Bytes received from the peer (cumulative).
    pub bytes_received: u64,
    /// Smoothed RTT in microseconds (the kernel's `srtt_us >> 3`).
    pub srtt_us: u32,
    /// Minimum RTT seen by the kernel's windowed filter, microseconds.
    pub min_rtt_us: u32,
    /// Congestion window, segments.
    pub snd_cwnd: u32,
    /// Slow-start threshold, segments.
    pub snd_ssthresh: u32,
    /// Sender MSS, bytes.
    pub mss: u32,
    /// Segments in flight.
    pub packets_out: u32,
    /// Retransmitted segments in flight.
    pub retrans_out: u32,
    /// Segments presumed lost now.
    pub lost_out: u32,
    /// Segments SACKed now.
    pub sacked_out: u32,
    /// Total retransmitted segments (cumulative).
    pub total_retrans: u32,
    /// Segments delivered (cumulative, the kernel's `tp->delivered`).
    pub delivered: u32,
    /// Segments delivered with a CE mark (cumulative).
    pub delivered_ce: u32,
    /// Delivery-rate sample: segments delivered over `rate_interval_us`.
    pub rate_delivered: u32,
    /// Delivery-rate sample interval, microseconds.
    pub rate_interval_us: u32,
    /// Data segments sent (cumulative).
    pub data_segs_out: u32,
    /// Local port, host byte order.
    pub local_port: u32,
    /// Remote port, host byte order.
    pub remote_port: u32,
    /// Address family (2 = AF_INET, 10 = AF_INET6).
    pub family: u32,
    /// IPv4 addresses in network byte order (0 for IPv6 flows).
    pub local_ip4: u32,
    /// IPv4 remote address in network byte order.
    pub remote_ip4: u32,
    /// The datapath's own bookkeeping: CLOCK_MONOTONIC nanoseconds of the
    /// first callback since the last clamp write on which a write waited
    /// (the hold, [`clamp_write_waits`], or a lift in loss recovery,
    /// [`lift_waits`]); 0 while nothing waits. A bounded hold
    /// ([`DatapathConfig::clamp_hold_max_srtts`]) and a lift's wait
    /// measure their time from here. Outside the first cache line: only a flow whose
    /// clamp write waits reads it.
    #[cfg_attr(feature = "user", serde(skip))]
    pub hold_since_ns: u64,
    /// The datapath's own bookkeeping: the sequence number `snd_una` must
    /// pass before the flow is surely out of loss recovery
    /// ([`recovery_tail`]); meaningful only while `recovery_pending` is
    /// not [`RECOVERY_NONE`].
    #[cfg_attr(feature = "user", serde(skip))]
    pub recovery_seq: u32,
    /// The datapath's own bookkeeping: [`RECOVERY_NONE`],
    /// [`RECOVERY_RETRANSMITTED`] or [`RECOVERY_ENDING`] ([`recovery_tail`]).
    #[cfg_attr(feature = "user", serde(skip))]
    pub recovery_pending: u32,
}

impl FlowStats {
    /// Whether a clamp or a pacing cap of this datapath is in force.
    pub const fn limited(&self) -> bool {
        self.applied_cwnd_clamp != CWND_UNCLAMPED || self.applied_pacing != PACING_UNLIMITED
    }

    /// Whether anything this datapath set is in force: a limit or the
    /// competitive controller. What a stale target, the daemon's release
    /// and its staleness deadline have to undo: the program's target
    /// check and the daemon's release test this one condition.
    pub const fn controlled(&self) -> bool {
        self.limited() || self.applied_competitive_cc != 0
    }
}

/// [`FlowStats::recovery_pending`]: no retransmission since the flow
/// last left recovery.
pub const RECOVERY_NONE: u32 = 0;
/// [`FlowStats::recovery_pending`]: retransmitted; `recovery_seq` is
/// `snd_nxt` at the latest retransmission callback, at or past the
/// kernel's recovery point (`tp->high_seq`, `snd_nxt` when recovery
/// began: every retransmission of that recovery comes after it).
pub const RECOVERY_RETRANSMITTED: u32 = 1;
/// [`FlowStats::recovery_pending`]: a callback saw `snd_una` reach the
/// retransmission's `snd_nxt`; `recovery_seq` is that `snd_una` + 1, so
/// the state ends on the first callback after `snd_una` moved on again.
pub const RECOVERY_ENDING: u32 = 2;

/// Whether a flow may still be in loss recovery with nothing lost or
/// retransmitted left in flight (its tail, which `lost_out` and
/// `retrans_out` miss), advancing its state (`pending`, `seq`:
/// [`FlowStats::recovery_pending`], [`FlowStats::recovery_seq`]) with
/// `snd_una` as a callback reads it. A retransmission callback sets
/// [`RECOVERY_RETRANSMITTED`] and `seq` to `snd_nxt` itself.
///
/// Why two steps: the RTT callback runs while the kernel cleans the
/// retransmission queue (`tcp_clean_rtx_queue` -> `tcp_ack_update_rtt`
/// -> `tcp_bpf_rtt`), before `tcp_fastretrans_alert` sees `snd_una` at
/// or past `high_seq` and ends recovery on the same ACK
/// (`tcp_end_cwnd_reduction` sets cwnd to ssthresh). So the callback
/// that first sees `snd_una` reach the point is still in recovery: a
/// lift written there sets ssthresh far above the window and the end of
/// recovery copies it into cwnd (seen on the kernel: cwnd 1,048,576 after
/// a lift on such an ACK; docs/BENCHMARKS.md, "The recovery point and the
/// ACK that ends recovery"). The tail therefore ends one advance of
/// `snd_una` later, on an ACK the kernel handles out of recovery.
///
/// Cleared once over, so that a sequence number 2^31 bytes later is never
/// read as the same recovery; every statistics copy advances it too.
pub fn recovery_tail(pending: &mut u32, seq: &mut u32, snd_una: u32) -> bool {
    match *pending {
        RECOVERY_RETRANSMITTED if !seq_before(snd_una, *seq) => {
            *pending = RECOVERY_ENDING;
            *seq = snd_una.wrapping_add(1);
            true
        }
        RECOVERY_ENDING if !seq_before(snd_una, *seq) => {
            *pending = RECOVERY_NONE;
            false
        }
        RECOVERY_NONE => false,
        _ => true,
    }
}

/// Whether TCP sequence number `a` comes before `b`, modulo 2^32 (the
/// kernel's `before()` in include/net/tcp.h: `(s32)(seq1 - seq2) < 0`).
pub const fn seq_before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// A flow's target, written by the daemon and applied by the eBPF program on
/// the flow's next callback.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowTarget {
    /// CLOCK_MONOTONIC nanoseconds when the daemon wrote this target. The
    /// datapath lifts the limits once `now - written_ns` exceeds
    /// [`DatapathConfig::stale_after_ns`], so a dead daemon never leaves a flow throttled.
    pub written_ns: u64,
    /// Ceiling on snd_cwnd in segments ([`CWND_UNCLAMPED`] for none).
    pub cwnd_clamp: u32,
    /// Ceiling on the pacing rate in bytes per second ([`PACING_UNLIMITED`] for none).
    pub max_pacing_bytes_per_sec: u32,
    /// Nonzero: the flow runs [`DatapathConfig::competitive_cc`] instead of
    /// its base (`TCP_CONGESTION`, switched on its next callback); zero: its
    /// base ([`DatapathConfig::base_cc`]). A stale target switches it back,
    /// as it lifts the limits.
    pub competitive_cc: u32,
    /// Explicit padding.
    pub _pad: u32,
}

/// Datapath knobs, element 0 of the `PLUME_CONFIG` array.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DatapathConfig {
    /// A target older than this is ignored and its limits are lifted.
    /// 0 is treated as [`DEFAULT_STALE_AFTER_NS`].
    pub stale_after_ns: u64,
    /// Non-zero: apply targets. Zero: observe only.
    pub enforce: u32,
    /// Bumped (wrapping) by user space after every write of targets or of
    /// this configuration. The program runs its full target check (a
    /// lookup in the target map) on a flow's callback only when this
    /// differs from the flow's [`FlowStats::target_generation`] or when
    /// the limits in force are past their staleness deadline; otherwise
    /// nothing can have changed for the flow. A writer that forgets to bump
    /// it delays a new target until the next bump, and never delays the
    /// lifting of a stale one (the deadline is checked on every callback).
    pub generation: u32,
    /// The kernel congestion control every new flow runs underneath the
    /// limits (`TCP_CONGESTION`, set at establishment), NUL-padded ASCII such
    /// as `b"cubic\0..."`; all zeros keeps the host's default
    /// (`net.ipv4.tcp_congestion_control`). 16 bytes is the kernel's
    /// `TCP_CA_NAME_MAX`.
    pub base_cc: [u8; BASE_CC_LEN],
    /// Least time between two statistics snapshots of a flow on its RTT
    /// callbacks (every ACK), nanoseconds; 0: a snapshot on every
    /// callback. The daemon sets a quarter of its interval: it reads each
    /// flow once per interval, so copying its ~20 fields (and calling
    /// `bpf_tcp_sock`) on every one of thousands of ACKs in between buys
    /// nothing but cost. What a snapshot holds keeps its meaning: all of
    /// its fields are of one instant, `updated_ns`, and the cumulative
    /// counters are the kernel's own, so nothing is lost between
    /// snapshots, only read later. Per-callback counts (`rtt_samples`,
    /// `retrans_events`, `rto_events`) and the latest RTT sample are kept
    /// on every callback; retransmission, RTO and state callbacks always
    /// snapshot, and so does an ACK that leaves nothing in flight.
    pub snapshot_every_ns: u64,
    /// Non-zero: after a loss, hold the clamp in force instead of writing
    /// a new one that would restart slow start ([`clamp_write_waits`]);
    /// zero: write every new target at once (as before this field). The
    /// daemon sets it from its policy's mapping
    /// (`ActionScaling::hold_clamp_after_loss`).
    pub clamp_hold: u32,
    /// With [`Self::clamp_hold`] on: the longest a held clamp waits, in the
    /// flow's smoothed RTTs from the first callback that held it
    /// ([`clamp_hold_limit_ns`]); then the wanted clamp is written even if
    /// it undoes the loss. 0: no bound (the hold as first built). The
    /// daemon sets it from `ActionScaling::hold_clamp_max_srtts`.
    pub clamp_hold_max_srtts: u32,
    /// The kernel congestion control a flow runs while its target asks
    /// for it ([`FlowTarget::competitive_cc`]), NUL-padded as
    /// [`Self::base_cc`]; all zeros: none (such targets change nothing).
    /// The flow returns to `base_cc` when its target stops asking or turns
    /// stale, so the daemon sets it only with a `base_cc`.
    pub competitive_cc: [u8; BASE_CC_LEN],
}

/// Size of [`DatapathConfig::base_cc`] (the kernel's `TCP_CA_NAME_MAX`).
pub const BASE_CC_LEN: usize = 16;

impl DatapathConfig {
    /// The staleness limit in force: `stale_after_ns`, or
    /// [`DEFAULT_STALE_AFTER_NS`] where it is 0 (the program's target check
    /// and `status`' target state read it alike).
    pub const fn stale_after_or_default_ns(&self) -> u64 {
        if self.stale_after_ns == 0 {
            DEFAULT_STALE_AFTER_NS
        } else {
            self.stale_after_ns
        }
    }

    /// `base_cc` for a congestion-control name, or `None` if it does not fit
    /// (longer than 15 bytes, empty, or not ASCII alphanumeric/underscore).
    pub fn base_cc_from_name(name: &str) -> Option<[u8; BASE_CC_LEN]> {
        let b = name.as_bytes();
        if b.is_empty()
            || b.len() >= BASE_CC_LEN
            || !b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
        {
            return None;
        }
        let mut out = [0u8; BASE_CC_LEN];
        out[..b.len()].copy_from_slice(b);
        Some(out)
    }
}

/// Whether a datapath that holds clamps after a loss
/// ([`DatapathConfig::clamp_hold`]) leaves the clamp in force (`applied`)
/// for now instead of writing `want`, given the flow's `snd_cwnd` and
/// `snd_ssthresh`. The eBPF program asks this on every callback while it
/// waits, and the simulator's `Clamped` asks it on every ACK, so the two
/// cannot disagree.
///
/// Why: `bpf_setsockopt(TCP_BPF_SNDCWND_CLAMP, v)` sets `snd_ssthresh` to
/// `v` as well as `snd_cwnd_clamp` (net/core/filter.c,
/// `bpf_sol_tcp_setsockopt`), and there is no other way to move the clamp.
/// A write above the window after a loss therefore undoes the base's
/// multiplicative decrease: the base slow-starts back to the clamp within
/// a round trip (and at the end of recovery `tcp_end_cwnd_reduction` sets
/// cwnd to that ssthresh at once). A flow whose clamp changes every
/// interval is then blind to loss, and takes the link from a CUBIC flow
/// (docs/BENCHMARKS.md, "Holding the clamp after a loss").
///
/// A new clamp (`want` below [`CWND_UNCLAMPED`]) waits while all of these
/// hold:
/// - `ssthresh < applied`: the base lowered ssthresh since the last write
///   (each write sets it to the clamp; only a congestion event, or
///   HyStart leaving slow start, lowers it);
/// - `ssthresh < want`: the write would raise ssthresh;
/// - `cwnd < want`: the write would leave the window below ssthresh, so
///   slow start would resume (a `want` at or below the window caps it at
///   once, which keeps the ceiling and needs no slow start: it is written);
/// - `cwnd < applied`: the base has not grown back to the clamp in force
///   on its own schedule (once it has, the clamp binds again and the
///   policy's new one is written, as without a loss).
///
/// So the policy's clamp stays a ceiling and ssthresh stays the base's:
/// a wanted clamp is written as soon as the window reaches it.
///
/// A lift (`want` is [`CWND_UNCLAMPED`]) is not this rule's: false here;
/// [`lift_waits`] says when a lift waits, with the hold or without it.
///
/// A bounded hold (`max_hold_ns` non-zero, [`clamp_hold_limit_ns`]) also
/// ends once the write has waited that long (`held_ns`, since the first
/// callback that held it): the loss is then undone after all, late. Why
/// an opt-in bound: beside a BBR flow on a shallow buffer losses come
/// every round trip, and an unbounded hold left the plume flow a share of
/// 0.13-0.16; a bound of 8 srtts with the competition rule did not change
/// that (the flow was in competitive mode, unclamped; docs/BENCHMARKS.md,
/// "The rule and the hold together"). 0 keeps the hold unbounded.
pub fn clamp_write_waits(
    want: u32,
    applied: u32,
    cwnd: u32,
    ssthresh: u32,
    held_ns: u64,
    max_hold_ns: u64,
) -> bool {
    want != CWND_UNCLAMPED
        && ssthresh < applied
        && ssthresh < want
        && cwnd < want
        && cwnd < applied
        && (max_hold_ns == 0 || held_ns < max_hold_ns)
}

/// Whether a lift of the clamp in force (`applied`; writing
/// [`CWND_UNCLAMPED`]: a stale target, a daemon that stopped, or the
/// competition rule's competitive mode) waits: while the flow is in loss
/// recovery (`in_recovery`: segments lost or retransmitted in flight,
/// `lost_out` or `retrans_out` above 0, or [`recovery_tail`]: the tail
/// of recovery after the last retransmission was acknowledged, up to the
/// ACK that ends it).
///
/// Why: a lift sets ssthresh far above any window (the kernel recorded
/// 1,048,576 after writing [`CWND_UNCLAMPED`]), and in recovery that lets
/// proportional rate reduction grow the window instead of cutting it, and
/// `tcp_end_cwnd_reduction` then sets cwnd to that ssthresh: a daemon
/// record showed cwnd 1,048,576 and thousands of retransmissions after a
/// lift in recovery (docs/BENCHMARKS.md, "The rule and the hold
/// together"). Recovery ends by itself, so the lift comes a few round
/// trips late at most; after it the base slow-starts as after any lift.
/// The two counters alone miss recovery's tail (everything retransmitted
/// acknowledged, the ACK that ends recovery included), and a lift there
/// still blew the window up ("Holding the lift in loss recovery", same
/// file); the kernel's own recovery state is not in the sock_ops
/// context, so [`recovery_tail`] follows it from the latest
/// retransmission's `snd_nxt` (it holds up to a round trip longer than
/// the kernel's recovery). (Also holding lifts while the window is below
/// the clamp after a loss, as for a new clamp, was measured and not kept:
/// it cut the share beside CUBIC at 4 BDP; "Holding the lift in loss
/// recovery", same file.)
///
/// With or without the hold: a daemon stopped for longer than its
/// staleness limit over and over (SIGSTOP, so that the datapath lifts its
/// targets at any phase of the flow) blew the default's window up the
/// same way, where it has no hold (docs/BENCHMARKS.md, "The recovery
/// point and the ACK that ends recovery").
///
/// Bounded: once the lift has waited `max_wait_ns` (`held_ns`, since the
/// first callback that held it; the datapath passes its staleness limit,
/// `--stale`), it is written, in recovery or not. Recovery ends within a
/// few round trips, but a path that loses in every round trip can chain
/// recoveries, and a stopped daemon's limits must outlive it by a known
/// time (at most twice `--stale`), never indefinitely. 0 is no bound.
pub const fn lift_waits(applied: u32, in_recovery: bool, held_ns: u64, max_wait_ns: u64) -> bool {
    applied < CWND_UNCLAMPED && in_recovery && (max_wait_ns == 0 || held_ns < max_wait_ns)
}

/// The longest a clamp waits under a hold bounded to `max_srtts` smoothed
/// RTTs of `srtt_us` ([`DatapathConfig::clamp_hold_max_srtts`]), in
/// nanoseconds for [`clamp_write_waits`]: 0 (no bound) when `max_srtts` is
/// 0, and at least 1 otherwise (a flow without an RTT sample yet waits for
/// nothing rather than forever).
pub fn clamp_hold_limit_ns(srtt_us: u32, max_srtts: u32) -> u64 {
    if max_srtts == 0 {
        return 0;
    }
    (u64::from(max_srtts) * u64::from(srtt_us) * 1_000).max(1)
}

/// Staleness timeout used when the config leaves it at 0: 500 ms.
pub const DEFAULT_STALE_AFTER_NS: u64 = 500_000_000;

impl Default for DatapathConfig {
    fn default() -> Self {
        Self {
            stale_after_ns: DEFAULT_STALE_AFTER_NS,
            enforce: 1,
            generation: 0,
            base_cc: [0; BASE_CC_LEN],
            snapshot_every_ns: 0,
            clamp_hold: 0,
            clamp_hold_max_srtts: 0,
            competitive_cc: [0; BASE_CC_LEN],
        }
    }
}

/// Kinds of [`FlowEvent`].
pub mod event_kind {
    /// A flow was registered.
    pub const OPENED: u32 = 1;
    /// A flow closed and its entries were removed.
    pub const CLOSED: u32 = 2;
}

/// A new or closed flow, reported through the `PLUME_EVENTS` ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowEvent {
    /// Socket cookie of the flow.
    pub cookie: u64,
    /// CLOCK_MONOTONIC nanoseconds of the event.
    pub at_ns: u64,
    /// One of [`event_kind`].
    pub kind: u32,
    /// Local port, host byte order.
    pub local_port: u32,
    /// Remote port, host byte order.
    pub remote_port: u32,
    /// Reserved.
    pub _pad: u32,
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all fields are integers, the structs are repr(C) with explicit
    // padding fields, so every bit pattern is valid and there are no holes.
    unsafe impl aya::Pod for super::FlowStats {}
    unsafe impl aya::Pod for super::FlowTarget {}
    unsafe impl aya::Pod for super::DatapathConfig {}
    unsafe impl aya::Pod for super::FlowEvent {}
    unsafe impl aya::Pod for super::StatsSlot {}
    unsafe impl aya::Pod for super::TargetSlot {}
    unsafe impl aya::Pod for super::SocketSlot {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{align_of, size_of};

    #[test]
    fn layouts_have_no_implicit_padding() {
        // 6 u64 + 32 u32 = 176 bytes: no tail padding, so every byte is a
        // field and aya::Pod is sound.
        assert_eq!(align_of::<FlowStats>(), 8);
        assert_eq!(size_of::<FlowStats>(), 176);
        // 16 + 176: no padding.
        assert_eq!(size_of::<StatsSlot>(), STATS_SLOT_SIZE);
        assert_eq!(size_of::<FlowTarget>(), 24);
        assert_eq!(size_of::<DatapathConfig>(), 64);
        assert_eq!(size_of::<FlowEvent>(), 32);
        // Multiples of 8: the kernel rounds an array's element size up to
        // 8, and the daemon indexes the mmapped area by these sizes.
        assert_eq!(size_of::<StatsSlot>(), 192);
        assert_eq!(size_of::<TargetSlot>(), 40);
        assert_eq!(size_of::<SocketSlot>(), 16);
        assert_eq!(core::mem::offset_of!(StatsSlot, seq), 0);
        assert_eq!(core::mem::offset_of!(TargetSlot, seq), 0);
        // The program reads the controller names as two u64 words.
        assert_eq!(core::mem::offset_of!(DatapathConfig, base_cc) % 8, 0);
        assert_eq!(core::mem::offset_of!(DatapathConfig, competitive_cc) % 8, 0);
    }

    /// What a callback that does not copy the statistics touches (see
    /// `update` in plume-cc-ebpf) lies in the slot's first cache line, and
    /// slots are whole lines.
    #[test]
    fn the_per_ack_fields_share_the_slots_first_cache_line() {
        use core::mem::offset_of;
        assert_eq!(STATS_SLOT_SIZE % 64, 0);
        let stats = offset_of!(StatsSlot, stats);
        let hot = [
            (offset_of!(StatsSlot, seq), 4),
            (offset_of!(StatsSlot, cookie), 8),
            (stats + offset_of!(FlowStats, updated_ns), 8),
            (stats + offset_of!(FlowStats, target_deadline_ns), 8),
            (stats + offset_of!(FlowStats, last_rtt_us), 4),
            (stats + offset_of!(FlowStats, rtt_samples), 4),
            (stats + offset_of!(FlowStats, applied_cwnd_clamp), 4),
            (stats + offset_of!(FlowStats, applied_pacing), 4),
            (stats + offset_of!(FlowStats, target_generation), 4),
            (stats + offset_of!(FlowStats, unflushed_checks), 4),
            (stats + offset_of!(FlowStats, unflushed_snapshots), 4),
            (stats + offset_of!(FlowStats, applied_competitive_cc), 4),
        ];
        for (offset, len) in hot {
            assert!(offset + len <= STATS_SLOT_HOT_BYTES, "{offset}");
        }
        // The line holds these and one padding word (60 + 4), and the
        // statistics copy's fields all lie past it.
        assert_eq!(hot.iter().map(|(_, len)| len).sum::<usize>(), 60);
        assert_eq!(
            stats + offset_of!(FlowStats, applied_competitive_cc) + 4,
            STATS_SLOT_HOT_BYTES
        );
    }

    #[test]
    fn sequence_numbers_compare_modulo_two_to_the_32() {
        assert!(seq_before(1, 2));
        assert!(!seq_before(2, 2));
        assert!(!seq_before(3, 2));
        // Across the wrap: u32::MAX comes just before 5.
        assert!(seq_before(u32::MAX, 5));
        assert!(!seq_before(5, u32::MAX));
        // Up to 2^31 ahead is after; further ahead is behind, wrapped.
        assert!(seq_before(0, (1 << 31) - 1));
        assert!(seq_before(0, 1 << 31));
        assert!(!seq_before(0, (1 << 31) + 1));
    }

    #[test]
    fn recovery_tail_ends_one_advance_after_the_retransmissions_snd_nxt() {
        let (mut pending, mut seq) = (RECOVERY_NONE, 0);
        assert!(!recovery_tail(&mut pending, &mut seq, 100));
        // A retransmission at snd_nxt 5000.
        (pending, seq) = (RECOVERY_RETRANSMITTED, 5000);
        assert!(recovery_tail(&mut pending, &mut seq, 3000));
        assert!(recovery_tail(&mut pending, &mut seq, 4999));
        // The ACK that reaches it may be the one the kernel ends recovery
        // on, after this callback: still the tail, asked twice or not.
        assert!(recovery_tail(&mut pending, &mut seq, 5200));
        assert_eq!((pending, seq), (RECOVERY_ENDING, 5201));
        assert!(recovery_tail(&mut pending, &mut seq, 5200));
        // The next advance is out of recovery.
        assert!(!recovery_tail(&mut pending, &mut seq, 6648));
        assert_eq!(pending, RECOVERY_NONE);
        assert!(!recovery_tail(&mut pending, &mut seq, 5200));
        // Across the sequence wrap.
        (pending, seq) = (RECOVERY_RETRANSMITTED, 10);
        assert!(recovery_tail(&mut pending, &mut seq, u32::MAX - 5));
        assert!(recovery_tail(&mut pending, &mut seq, 10));
        assert!(!recovery_tail(&mut pending, &mut seq, 11));
    }

    #[test]
    fn a_clamp_write_waits_only_where_it_would_undo_a_loss() {
        // No loss since the last write (ssthresh is the clamp): written.
        assert!(!clamp_write_waits(60, 40, 30, 40, 0, 0));
        // A loss (ssthresh 28 < 40), window 28: raising to 60 would
        // restart slow start, and so would 35 (above the window).
        assert!(clamp_write_waits(60, 40, 28, 28, 0, 0));
        assert!(clamp_write_waits(35, 40, 28, 28, 0, 0));
        // At or below the window: the ceiling binds at once, written.
        assert!(!clamp_write_waits(28, 40, 28, 28, 0, 0));
        assert!(!clamp_write_waits(20, 40, 28, 28, 0, 0));
        // At or below ssthresh (in slow start after a timeout): written.
        assert!(!clamp_write_waits(28, 40, 1, 28, 0, 0));
        // The base grew back to the clamp in force: written.
        assert!(!clamp_write_waits(60, 40, 40, 28, 0, 0));
        // Lifting it out of recovery: written, even after a loss.
        assert!(!clamp_write_waits(CWND_UNCLAMPED, 40, 28, 28, 0, 0));
        assert!(!clamp_write_waits(CWND_UNCLAMPED, 40, 30, 40, 0, 0));
        // A lift is not this rule's (`lift_waits`), nor is a clamp at or
        // below the window.
        assert!(!clamp_write_waits(CWND_UNCLAMPED, 14, 14, 14, 0, 0));
        assert!(!clamp_write_waits(10, 14, 14, 14, 0, 0));
        // Nothing to lift: written (no-op for the caller).
        assert!(!clamp_write_waits(
            CWND_UNCLAMPED,
            CWND_UNCLAMPED,
            14,
            10,
            0,
            0
        ));
        // No clamp yet and ssthresh unset (TCP_INFINITE_SSTHRESH is
        // i32::MAX too): written; after a loss without a clamp: waits.
        assert!(!clamp_write_waits(
            60,
            CWND_UNCLAMPED,
            30,
            CWND_UNCLAMPED,
            0,
            0
        ));
        assert!(clamp_write_waits(60, CWND_UNCLAMPED, 30, 30, 0, 0));
    }

    #[test]
    fn a_lift_waits_for_loss_recovery_up_to_its_bound() {
        // In recovery a lift waits, even where the clamp was written
        // during it (ssthresh = clamp = window, as the kernel recorded).
        assert!(lift_waits(14, true, 0, 0));
        assert!(!lift_waits(14, false, 0, 0));
        // Nothing to lift.
        assert!(!lift_waits(CWND_UNCLAMPED, true, 0, 0));
        // The bound (the staleness limit): waits until then, not after.
        let max = DEFAULT_STALE_AFTER_NS;
        assert!(lift_waits(14, true, max - 1, max));
        assert!(!lift_waits(14, true, max, max));
        assert!(lift_waits(14, true, u64::MAX, 0));
    }

    #[test]
    fn a_bounded_hold_writes_after_its_smoothed_rtts() {
        // 4 srtts of 50 ms: 200 ms.
        let limit = clamp_hold_limit_ns(50_000, 4);
        assert_eq!(limit, 200_000_000);
        // A held write (a loss, window 28) waits until then, not after.
        assert!(clamp_write_waits(60, 40, 28, 28, 0, limit));
        assert!(clamp_write_waits(60, 40, 28, 28, 199_999_999, limit));
        assert!(!clamp_write_waits(60, 40, 28, 28, 200_000_000, limit));
        // Unbounded (0 srtts): waits however long.
        assert_eq!(clamp_hold_limit_ns(50_000, 0), 0);
        assert!(clamp_write_waits(60, 40, 28, 28, u64::MAX, 0));
        // No RTT sample yet: a bound of 1 ns, not none.
        assert_eq!(clamp_hold_limit_ns(0, 4), 1);
        assert!(!clamp_write_waits(
            60,
            40,
            28,
            28,
            1,
            clamp_hold_limit_ns(0, 4)
        ));
        // The bound never makes a write wait that would not otherwise.
        assert!(!clamp_write_waits(28, 40, 28, 28, 0, limit));
        assert!(!clamp_write_waits(60, 40, 30, 40, 0, limit));
    }

    #[test]
    fn a_zero_staleness_limit_is_the_default() {
        let at = |stale_after_ns| DatapathConfig {
            stale_after_ns,
            ..DatapathConfig::default()
        };
        assert_eq!(at(0).stale_after_or_default_ns(), DEFAULT_STALE_AFTER_NS);
        assert_eq!(at(7).stale_after_or_default_ns(), 7);
    }

    #[test]
    fn base_cc_names() {
        let c = DatapathConfig::base_cc_from_name("cubic").unwrap();
        assert_eq!(&c[..6], b"cubic\0");
        assert!(DatapathConfig::base_cc_from_name("").is_none());
        assert!(DatapathConfig::base_cc_from_name("a_very_long_name").is_none());
        assert!(DatapathConfig::base_cc_from_name("bbr;rm").is_none());
    }
}
