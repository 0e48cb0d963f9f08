//! The sock_ops program and its maps (see the crate docs for the contract).

use aya_ebpf::{
    bindings::{bpf_sock, bpf_sock_ops, BPF_SK_STORAGE_GET_F_CREATE},
    btf_maps::{Array, HashMap, PerCpuArray, RingBuf, SkStorage, Stack},
    helpers::{
        bpf_get_socket_cookie, bpf_ktime_get_coarse_ns, bpf_ktime_get_ns, bpf_setsockopt,
        bpf_sk_storage_delete, bpf_sk_storage_get, bpf_tcp_sock,
    },
    macros::{btf_map, sock_ops},
    programs::SockOpsContext,
};
use aya_log_ebpf::warn;
use core::{
    ffi::c_void,
    ptr::{addr_of, addr_of_mut, null_mut, read_volatile, write_volatile},
    sync::atomic::{compiler_fence, Ordering},
};
use plume_cc_common::{
    counters, event_kind, recovery_tail, DatapathConfig, FlowEvent, FlowStats, FlowTarget,
    SocketSlot, StatsSlot, TargetSlot, BASE_CC_LEN, BPF_F_MMAPABLE, CWND_UNCLAMPED, MAX_FLOWS,
    MIN_CWND_CLAMP, MIN_PACING_BYTES_PER_SEC, PACING_UNLIMITED, RECOVERY_NONE,
    RECOVERY_RETRANSMITTED,
};

// Callback ops, callback flags and TCP states come from aya's bindings of
// include/uapi/linux/bpf.h, not from hand-copied numbers.
use aya_ebpf::bindings::{
    BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB, BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB,
    BPF_SOCK_OPS_RETRANS_CB, BPF_SOCK_OPS_RETRANS_CB_FLAG, BPF_SOCK_OPS_RTO_CB,
    BPF_SOCK_OPS_RTO_CB_FLAG, BPF_SOCK_OPS_RTT_CB, BPF_SOCK_OPS_RTT_CB_FLAG, BPF_SOCK_OPS_STATE_CB,
    BPF_SOCK_OPS_STATE_CB_FLAG, BPF_TCP_CLOSE,
};
const CB_FLAGS: i32 = (BPF_SOCK_OPS_RTO_CB_FLAG
    | BPF_SOCK_OPS_RETRANS_CB_FLAG
    | BPF_SOCK_OPS_STATE_CB_FLAG
    | BPF_SOCK_OPS_RTT_CB_FLAG) as i32;
const TCP_CLOSE: u32 = BPF_TCP_CLOSE;
const SOL_SOCKET: i32 = aya_ebpf::bindings::SOL_SOCKET as i32;
const SO_MAX_PACING_RATE: i32 = aya_ebpf::bindings::SO_MAX_PACING_RATE as i32;
// Not in aya's bindings (they are socket-level constants of other headers):
// SOL_TCP is IPPROTO_TCP (include/uapi/linux/in.h), TCP_CONGESTION is
// include/uapi/linux/tcp.h's option 13, TCP_BPF_SNDCWND_CLAMP is
// include/uapi/linux/bpf.h's 1002 (a #define bindgen does not export).
const SOL_TCP: i32 = 6;
const TCP_CONGESTION: i32 = 13;
const TCP_BPF_SNDCWND_CLAMP: i32 = 1002;

// The maps are BTF map definitions (the `.maps` section): the object's BTF
// then names each map's key and value types, the loader hands those type
// ids to the kernel with the map, and `bpftool map dump pinned
// /sys/fs/bpf/plume-cc/NAME/PLUME_SLOTS` prints every field by name instead
// of hex bytes. The legacy `maps` section carries sizes only. Sizes, flags
// and helpers are the same either way; `MAX_FLOWS` here is only the
// default, the loader sets the flow maps' capacity.
const FLOWS_CAP: usize = MAX_FLOWS as usize;
const MMAPABLE: usize = BPF_F_MMAPABLE as usize;

/// Cookie -> slot index; an entry exists exactly while the flow owns its
/// slot. The callbacks find their slot through [`SOCKET_SLOTS`]; this map
/// is the record of ownership (whoever deletes an entry frees the slot),
/// what the daemon lists and reaps, and the callbacks' fallback.
#[btf_map(name = "PLUME_FLOWS")]
static FLOWS: HashMap<u64, u32, FLOWS_CAP> = HashMap::new();

/// Each registered socket's cookie and slot, in the socket's own storage
/// (`BPF_MAP_TYPE_SK_STORAGE`, created with `BPF_F_NO_PREALLOC` as the
/// kernel requires): a callback reaches it from `bpf_sock_ops.sk` with one
/// helper call, instead of asking for the socket's cookie and hashing it
/// into [`FLOWS`]. See [`SocketSlot`] for why a stale entry is harmless.
#[btf_map(name = "PLUME_SKSLOT")]
static SOCKET_SLOTS: SkStorage<SocketSlot> = SkStorage::new();

/// Per-flow statistics; the daemon mmaps this array and reads it without
/// system calls (hence BPF_F_MMAPABLE).
#[btf_map(name = "PLUME_SLOTS")]
static SLOTS: Array<StatsSlot, FLOWS_CAP, MMAPABLE> = Array::new();

/// Per-flow targets, written by the daemon through its mmap.
#[btf_map(name = "PLUME_TSLOTS")]
static TSLOTS: Array<TargetSlot, FLOWS_CAP, MMAPABLE> = Array::new();

/// Free slot indices, pushed by the loader (last in, first out: see
/// `plume_cc_common::free_slot_fill_order`).
#[btf_map(name = "PLUME_FREE")]
static FREE: Stack<u32, FLOWS_CAP> = Stack::new();

#[btf_map(name = "PLUME_CONFIG")]
static CONFIG: Array<DatapathConfig, 1> = Array::new();

#[btf_map(name = "PLUME_COUNTERS")]
static COUNTERS: PerCpuArray<u64, { counters::LEN as usize }> = PerCpuArray::new();

/// New and closed flows; the size is in bytes.
#[btf_map(name = "PLUME_EVENTS")]
static EVENTS: RingBuf<FlowEvent, { 256 * 1024 }> = RingBuf::new();

#[sock_ops]
pub fn plume_sockops(ctx: SockOpsContext) -> u32 {
    handle(&ctx);
    // The return value of a sock_ops program is only consulted by a few ops
    // (none of ours); 1 means "no objection".
    1
}

/// The floor of what a sock_ops program costs here: it enables the same
/// callbacks as [`plume_sockops`] at establishment and does nothing else.
/// It exists only so that `plume-cc bench-datapath --only ebpf` can
/// measure, in the same run and on the same transfer, how much of the
/// program's mean cost per callback is the hook itself and the clock reads
/// `kernel.bpf_stats_enabled` adds around every run, which no program can
/// remove. It touches no map. The daemon never loads it: the loader asks
/// for [`plume_cc_common::PROGRAM_NAME`] only, and only the benchmark asks
/// for `plume_cc_common::FLOOR_PROGRAM_NAME`, into its own cgroup.
#[sock_ops]
pub fn plume_floor(ctx: SockOpsContext) -> u32 {
    match ctx.op() {
        BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB | BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB => {
            let _ = ctx.set_cb_flags(CB_FLAGS);
        }
        _ => {}
    }
    1
}

fn bump(index: u32) {
    if let Some(slot) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: a per-CPU slot: no other CPU writes it, and sock_ops
        // programs are not preempted on one CPU.
        unsafe { *slot += 1 };
    }
}

fn handle(ctx: &SockOpsContext) {
    let op = ctx.op();
    match op {
        BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB | BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB => {
            register(ctx);
        }
        BPF_SOCK_OPS_STATE_CB => {
            if ctx.arg(1) == TCP_CLOSE {
                unregister(ctx);
            } else {
                update(ctx, op);
            }
        }
        BPF_SOCK_OPS_RTT_CB | BPF_SOCK_OPS_RETRANS_CB | BPF_SOCK_OPS_RTO_CB => {
            update(ctx, op);
        }
        _ => {}
    }
}

fn cookie(ctx: &SockOpsContext) -> u64 {
    // SAFETY: ctx.ops is the program's context pointer.
    unsafe { bpf_get_socket_cookie(ctx.ops.cast()) }
}

fn now_ns() -> u64 {
    // SAFETY: no arguments, no side effects.
    unsafe { bpf_ktime_get_ns() }
}

/// CLOCK_MONOTONIC_COARSE (`bpf_ktime_get_coarse_ns`, kernel 5.11+): the
/// timekeeper's value at its last update, without reading the clock
/// source. It never runs ahead of [`now_ns`] and trails it by at most one
/// scheduler tick (1-10 ms with HZ 1000-100), which is all a test against
/// a quantum or a deadline needs: the test passes at most a tick late.
fn coarse_now_ns() -> u64 {
    // SAFETY: no arguments, no side effects.
    unsafe { bpf_ktime_get_coarse_ns() }
}

/// Opens the slot's write window: the sequence counter turns odd. The
/// counter and the fields are written with plain stores in program order
/// (the compiler fences keep LLVM from moving field stores across the
/// counter); on x86-64, whose stores become visible in program order, that
/// is all a seqlock writer needs. Weakly ordered CPUs would need release
/// stores (BPF's store-release is kernel 6.15+ and not emitted by our
/// toolchain), so there a reader could accept a torn copy: the project
/// targets x86-64 (README, "Kernel").
///
/// # Safety
/// `seq` points into a slot of a BPF array and this program is the slot's
/// only writer (see `plume_cc_common::StatsSlot`).
unsafe fn write_begin(seq: *mut u32) -> u32 {
    let s = read_volatile(seq);
    write_volatile(seq, s.wrapping_add(1) | 1);
    compiler_fence(Ordering::SeqCst);
    s
}

/// Closes the write window opened by [`write_begin`] (the counter turns even).
///
/// # Safety
/// As for [`write_begin`], with the value it returned.
unsafe fn write_end(seq: *mut u32, begun: u32) {
    compiler_fence(Ordering::SeqCst);
    // +2 from an even value; from an odd one (a writer that died in its
    // window cannot happen in BPF, but never leave it odd) the next even.
    write_volatile(seq, (begun | 1).wrapping_add(1));
}

/// Marks a slot free (cookie 0) and hands it back to the free list. Only
/// the caller that deleted the flow's FLOWS entry (or never inserted one)
/// may call this, so a slot is freed once.
fn free_slot(slot: u32, p: *mut StatsSlot) {
    // SAFETY: p comes from SLOTS; we own the slot (see above).
    unsafe {
        let seq = addr_of_mut!((*p).seq);
        let begun = write_begin(seq);
        write_volatile(addr_of_mut!((*p).cookie), 0);
        write_end(seq, begun);
    }
    // Cannot fail: at most MAX_FLOWS indices exist, and this one was popped.
    let _ = FREE.push(slot, 0);
}

fn register(ctx: &SockOpsContext) {
    let cookie = cookie(ctx);
    let now = now_ns();
    let mut stats = FlowStats {
        start_ns: now,
        applied_cwnd_clamp: CWND_UNCLAMPED,
        applied_pacing: PACING_UNLIMITED,
        local_port: ctx.local_port(),
        remote_port: u32::from_be(ctx.remote_port()),
        family: ctx.family(),
        local_ip4: ctx.local_ip4(),
        remote_ip4: ctx.remote_ip4(),
        // Not the generation in force, so the first callback runs the full
        // target check, as every callback once did.
        target_generation: CONFIG.get(0).map_or(0, |c| c.generation.wrapping_sub(1)),
        target_deadline_ns: u64::MAX,
        ..FlowStats::default()
    };
    fill(ctx, &mut stats, now);
    // A free slot: none left (or the stack's lock contended) means the
    // table is full, and the flow stays entirely under the kernel's
    // control; we never enable its callbacks.
    let (slot, p) = match FREE.pop() {
        Ok(Some(slot)) => match SLOTS.get_ptr_mut(slot) {
            Some(p) => (slot, p),
            None => {
                let _ = FREE.push(slot, 0);
                return full(ctx, cookie);
            }
        },
        _ => return full(ctx, cookie),
    };
    // The slot is written before the cookie's entry exists, so a reader
    // that finds the entry finds the slot filled; and every popped slot's
    // counter moves off 0, which the reader's scan relies on.
    // SAFETY: p comes from SLOTS; the slot was just popped, so it is ours.
    unsafe {
        let seq = addr_of_mut!((*p).seq);
        let begun = write_begin(seq);
        write_volatile(addr_of_mut!((*p).cookie), cookie);
        store_stats(addr_of_mut!((*p).stats), &stats);
        write_end(seq, begun);
    }
    // BPF_NOEXIST: a cookie is never reused while the socket lives.
    if FLOWS.insert(cookie, slot, 1).is_err() {
        free_slot(slot, p);
        return full(ctx, cookie);
    }
    match ctx.set_cb_flags(CB_FLAGS) {
        Ok(()) => {}
        // A negative value: no flag was set (bpf_sock_ops_cb_flags_set
        // refuses a socket that is not a full one). Without the STATE
        // callback the flow's TCP_CLOSE would never reach us and its entry
        // would stay for ever; without the RTT callback no limit could be
        // applied or lifted. Leave it to the kernel entirely, as a flow that
        // does not fit the map.
        Err(e) if e < 0 => {
            if FLOWS.remove(cookie).is_ok() {
                free_slot(slot, p);
            }
            bump(counters::SETSOCKOPT_ERRORS);
            return;
        }
        // A positive value names flags this kernel lacks; the others,
        // STATE among them (4.16), are set, so the entry is still removed
        // at TCP_CLOSE.
        Err(_) => bump(counters::SETSOCKOPT_ERRORS),
    }
    remember(ctx, cookie, slot);
    pin_base(ctx);
    bump(counters::FLOWS_OPENED);
    emit(cookie, now, event_kind::OPENED, &stats);
}

/// Writes `s` into a slot's statistics, field by field. A whole-struct
/// assignment lets LLVM turn runs of zero fields into a call to `memset`,
/// whose loop adds a variable to a map-value pointer, which the verifier
/// refuses without CAP_PERFMON ("pointer arithmetic with it prohibited for
/// !root"): the daemon under the service unit's CAP_BPF + CAP_NET_ADMIN
/// would fail to load (it did, once the slot's zero-initialised
/// bookkeeping fields became contiguous). Volatile stores are never merged.
/// The pattern names every field, so a new field fails to compile here
/// until it is written.
///
/// # Safety
/// `dst` points into a slot of [`SLOTS`] that the caller owns.
unsafe fn store_stats(dst: *mut FlowStats, s: &FlowStats) {
    // One list of the fields: the exhaustive pattern, then one volatile
    // store per field.
    macro_rules! store_each {
        ($($field:ident),* $(,)?) => {
            let FlowStats { $($field),* } = *s;
            $( write_volatile(addr_of_mut!((*dst).$field), $field); )*
        };
    }
    store_each!(
        updated_ns,
        target_deadline_ns,
        last_rtt_us,
        rtt_samples,
        applied_cwnd_clamp,
        applied_pacing,
        target_generation,
        unflushed_checks,
        unflushed_snapshots,
        applied_competitive_cc,
        retrans_events,
        rto_events,
        start_ns,
        bytes_acked,
        bytes_received,
        srtt_us,
        min_rtt_us,
        snd_cwnd,
        snd_ssthresh,
        mss,
        packets_out,
        retrans_out,
        lost_out,
        sacked_out,
        total_retrans,
        delivered,
        delivered_ce,
        rate_delivered,
        rate_interval_us,
        data_segs_out,
        local_port,
        remote_port,
        family,
        local_ip4,
        remote_ip4,
        hold_since_ns,
        recovery_seq,
        recovery_pending,
    );
}

/// A flow that found no slot (or a duplicate establishment): counted and
/// left to the kernel.
fn full(ctx: &SockOpsContext, cookie: u64) {
    bump(counters::FLOW_MAP_FULL);
    warn!(
        ctx,
        "plume: flow table full, cookie {} left to the kernel", cookie
    );
}

/// The socket of a callback; null when the callback runs on something
/// that is not a full socket (the kernel's context rewrite yields NULL then).
fn socket(ctx: &SockOpsContext) -> *mut bpf_sock {
    // SAFETY: a context field load (include/uapi/linux/bpf.h, `struct
    // bpf_sock_ops`, `sk`); the verifier types it PTR_TO_SOCKET_OR_NULL.
    unsafe { (*ctx.ops).__bindgen_anon_2.sk }
}

/// The map argument of the socket-storage helpers: the map definition's
/// own address, which the loader relocates to the map (aya-ebpf's
/// `SkStorage` methods take a cgroup/sock_addr context only).
fn socket_slots() -> *mut c_void {
    addr_of!(SOCKET_SLOTS).cast_mut().cast()
}

/// The slot of `slot` if it still belongs to `cookie`.
fn owned_slot(cookie: u64, slot: u32) -> Option<*mut StatsSlot> {
    let p = SLOTS.get_ptr_mut(slot)?;
    // SAFETY: p comes from SLOTS; a plain load of a field the socket's own
    // callbacks wrote (it shares the cache line of the sequence counter
    // the caller writes next).
    (unsafe { read_volatile(addr_of!((*p).cookie)) } == cookie).then_some(p)
}

/// The flow's cookie, slot index and a pointer to its statistics slot, if
/// it is registered (and the slot is still its own).
///
/// First from the socket's storage: one helper call, no cookie helper, no
/// hash. The entry is trusted only if the slot still carries its cookie
/// (see [`SocketSlot`]). Otherwise (no entry: a failed allocation, a socket
/// that was not a full one at registration; or a stale one) the cookie
/// hash decides, as every callback did before, and a flow found there gets
/// its entry written, counted in `SLOT_HASH_LOOKUPS`.
fn slot_of(ctx: &SockOpsContext) -> Option<(u64, u32, *mut StatsSlot)> {
    find_slot(ctx, true)
}

/// [`slot_of`], writing the socket's storage entry for a flow found
/// through the cookie hash only if `write_entry`: not at TCP_CLOSE, which
/// deletes the entry right after (a create and a delete for nothing).
fn find_slot(ctx: &SockOpsContext, write_entry: bool) -> Option<(u64, u32, *mut StatsSlot)> {
    let sk = socket(ctx);
    if !sk.is_null() {
        // SAFETY: sk is the context's full socket (checked non-null); no
        // value and no flags: a lookup that never allocates.
        let entry: *mut SocketSlot =
            unsafe { bpf_sk_storage_get(socket_slots(), sk.cast(), null_mut(), 0) }.cast();
        if !entry.is_null() {
            // SAFETY: a non-null storage pointer stays valid for this
            // program run; the socket's callbacks (serialised by its lock)
            // are its only writers. Field by field, as in `remember`.
            let (cookie, slot) = unsafe {
                (
                    read_volatile(addr_of!((*entry).cookie)),
                    read_volatile(addr_of!((*entry).slot)),
                )
            };
            if let Some(p) = owned_slot(cookie, slot) {
                return Some((cookie, slot, p));
            }
        }
    }
    let cookie = cookie(ctx);
    let (slot, p) = slot_by_cookie(cookie)?;
    bump(counters::SLOT_HASH_LOOKUPS);
    if write_entry {
        remember(ctx, cookie, slot);
    }
    Some((cookie, slot, p))
}

/// The flow's slot through the cookie hash.
fn slot_by_cookie(cookie: u64) -> Option<(u32, *mut StatsSlot)> {
    // SAFETY: copied out at once.
    let slot = unsafe { FLOWS.get(cookie) }.copied()?;
    Some((slot, owned_slot(cookie, slot)?))
}

/// Writes the socket's storage entry (created if missing). Best effort:
/// without it (no full socket, no memory) the callbacks fall back to the
/// cookie hash.
fn remember(ctx: &SockOpsContext, cookie: u64, slot: u32) {
    let sk = socket(ctx);
    if sk.is_null() {
        return;
    }
    let mut value = SocketSlot {
        cookie,
        slot,
        _pad: 0,
    };
    // SAFETY: sk is the context's full socket; `value` is the initial
    // value of a new entry, copied by the helper
    // (BPF_SK_STORAGE_GET_F_CREATE, include/uapi/linux/bpf.h).
    let entry: *mut SocketSlot = unsafe {
        bpf_sk_storage_get(
            socket_slots(),
            sk.cast(),
            (&mut value as *mut SocketSlot).cast(),
            u64::from(BPF_SK_STORAGE_GET_F_CREATE),
        )
    }
    .cast();
    if !entry.is_null() {
        // An entry that existed (a stale one) keeps its old value: write
        // it, field by field: a whole-struct copy compiles to a memmove
        // whose overlap test subtracts pointers, which the verifier refuses
        // without CAP_PERFMON (the service unit has CAP_BPF and
        // CAP_NET_ADMIN only).
        // SAFETY: as in `slot_of`.
        unsafe {
            write_volatile(addr_of_mut!((*entry).cookie), cookie);
            write_volatile(addr_of_mut!((*entry).slot), slot);
        }
    }
}

/// Deletes the socket's storage entry at TCP_CLOSE (a socket may connect
/// again, and its storage otherwise lives until the socket is freed).
fn forget(ctx: &SockOpsContext) {
    let sk = socket(ctx);
    if !sk.is_null() {
        // SAFETY: sk is the context's full socket. -ENOENT (no entry) is fine.
        let _ = unsafe { bpf_sk_storage_delete(socket_slots(), sk.cast()) };
    }
}

/// Sets the flow's kernel congestion control to the configured base (as
/// Antelope does from sock_ops), so the limits sit on the controller the
/// policy was trained over, whatever the host's default is. An empty name
/// keeps the default. Done once, at establishment, before any limit.
fn pin_base(ctx: &SockOpsContext) {
    let Some(config) = CONFIG.get(0) else {
        return;
    };
    if config.base_cc[0] == 0 {
        return;
    }
    if set_cc(ctx, config.base_cc) {
        bump(counters::BASE_PINNED);
    } else {
        bump(counters::SETSOCKOPT_ERRORS);
    }
}

/// Switches the flow to the configuration's competitive controller
/// (`want` nonzero) or back to its base. A name the configuration leaves
/// empty switches nothing (and counts as done): without a base to return
/// to the daemon sets no competitive controller. Setting the controller a
/// flow already runs re-initialises nothing (`tcp_set_congestion_control`
/// returns early for the same `icsk_ca_ops`).
///
/// Why from a callback, mid-connection: Antelope switches controllers per
/// flow the same way, and `bpf_setsockopt(TCP_CONGESTION)` is allowed in
/// the RTT, retransmission and RTO callbacks, which run with the socket
/// locked. The new controller keeps `snd_cwnd` and `snd_ssthresh`
/// (`tcp_reinit_congestion_control` calls only its `init`).
fn switch_cc(ctx: &SockOpsContext, config: &DatapathConfig, want: u32) -> bool {
    // Both names are read, then one is chosen by value: a choice between
    // the two fields' addresses compiles to a variable offset into the map
    // value, which the verifier refuses without CAP_PERFMON ("pointer
    // arithmetic with it prohibited for !root"; the service unit has
    // CAP_BPF and CAP_NET_ADMIN only).
    let (base, competitive) = (cc_words(&config.base_cc), cc_words(&config.competitive_cc));
    let words = if want != 0 { competitive } else { base };
    if words[0] & 0xff == 0 {
        return true;
    }
    // SAFETY: two u64 words are the 16 bytes of a name, in memory order.
    set_cc(ctx, unsafe {
        core::mem::transmute::<[u64; 2], [u8; BASE_CC_LEN]>(words)
    })
}

/// A controller name of the configuration as two words, by volatile
/// loads, so that LLVM keeps them loads of this field.
fn cc_words(name: &[u8; BASE_CC_LEN]) -> [u64; 2] {
    let p = name.as_ptr().cast::<u64>();
    // SAFETY: the names sit at 8-byte offsets of the 8-aligned
    // configuration value (checked by plume-cc-common's layout test), and
    // are 16 bytes long.
    unsafe { [read_volatile(p), read_volatile(p.add(1))] }
}

/// `bpf_setsockopt(TCP_CONGESTION, name)`; true on success.
fn set_cc(ctx: &SockOpsContext, name: [u8; BASE_CC_LEN]) -> bool {
    let mut name = name;
    // SAFETY: a NUL-padded name buffer on the stack; the kernel reads at
    // most optlen bytes and stops at the NUL (do_tcp_setsockopt,
    // TCP_CONGESTION, strncpy_from_sockptr).
    let ret = unsafe {
        bpf_setsockopt(
            ctx.ops.cast(),
            SOL_TCP,
            TCP_CONGESTION,
            name.as_mut_ptr().cast(),
            BASE_CC_LEN as i32,
        )
    };
    ret == 0
}

fn unregister(ctx: &SockOpsContext) {
    let found = find_slot(ctx, false);
    forget(ctx);
    let Some((cookie, slot, p)) = found else {
        return;
    };
    // SAFETY: as in `update`; copied out before the slot is freed.
    let stats = unsafe {
        let seq = addr_of_mut!((*p).seq);
        let begun = write_begin(seq);
        flush_checks(&mut (*p).stats);
        write_end(seq, begun);
        (*p).stats
    };
    // Whoever deletes the entry frees the slot: the daemon's reaper may
    // race us for a flow it believes gone.
    if FLOWS.remove(cookie).is_ok() {
        free_slot(slot, p);
    }
    bump(counters::FLOWS_CLOSED);
    emit(cookie, now_ns(), event_kind::CLOSED, &stats);
}

fn emit(cookie: u64, at_ns: u64, kind: u32, stats: &FlowStats) {
    let event = FlowEvent {
        cookie,
        at_ns,
        kind,
        local_port: stats.local_port,
        remote_port: stats.remote_port,
        _pad: 0,
    };
    if EVENTS.output(event, 0).is_err() {
        bump(counters::EVENTS_DROPPED);
    }
}

/// Copies the kernel's view of the flow into `stats`.
fn fill(ctx: &SockOpsContext, stats: &mut FlowStats, now: u64) {
    let ops: *const bpf_sock_ops = ctx.ops;
    // SAFETY: context field loads; the verifier rewrites them (and yields 0
    // for fields of a socket that is not a full socket).
    unsafe {
        stats.updated_ns = now;
        stats.bytes_acked = (*ops).bytes_acked;
        stats.bytes_received = (*ops).bytes_received;
        stats.srtt_us = (*ops).srtt_us >> 3;
        stats.min_rtt_us = (*ops).rtt_min;
        stats.snd_cwnd = (*ops).snd_cwnd;
        stats.snd_ssthresh = (*ops).snd_ssthresh;
        stats.mss = (*ops).mss_cache;
        stats.packets_out = (*ops).packets_out;
        stats.retrans_out = (*ops).retrans_out;
        stats.lost_out = (*ops).lost_out;
        stats.sacked_out = (*ops).sacked_out;
        stats.total_retrans = (*ops).total_retrans;
        stats.rate_delivered = (*ops).rate_delivered;
        stats.rate_interval_us = (*ops).rate_interval_us;
        stats.data_segs_out = (*ops).data_segs_out;
        // Recovery's tail advanced on every snapshot too, so that it is
        // forgotten long before the sequence space wraps (2^31 bytes) and
        // an old point reads as ahead again.
        if stats.recovery_pending != RECOVERY_NONE {
            recovery_tail(
                &mut stats.recovery_pending,
                &mut stats.recovery_seq,
                (*ops).snd_una,
            );
        }
        // `delivered` lives in struct tcp_sock, reachable through bpf_tcp_sock.
        let sk = (*ops).__bindgen_anon_2.sk;
        if !sk.is_null() {
            let tp = bpf_tcp_sock(sk);
            if !tp.is_null() {
                stats.delivered = (*tp).delivered;
                stats.delivered_ce = (*tp).delivered_ce;
            }
        }
    }
}

fn update(ctx: &SockOpsContext, op: u32) {
    let Some((cookie, slot, p)) = slot_of(ctx) else {
        return;
    };
    // SAFETY: the pointer comes from the map and stays valid for this call;
    // concurrent callbacks of one socket are serialised by the socket lock,
    // so this is the slot's only writer. The window spans the whole update
    // (a bpf_setsockopt included: well under a microsecond), so the daemon
    // never copies half of it.
    let seq = unsafe { addr_of_mut!((*p).seq) };
    let begun = unsafe { write_begin(seq) };
    let stats = unsafe { &mut (*p).stats };
    let config = CONFIG.get(0);
    // The precise clock only for a statistics copy (`updated_ns` dates the
    // copy, and the daemon divides by differences of it); otherwise the
    // coarse one, which only the deadline test below reads.
    let now = match snapshot_due(ctx, op, config, stats) {
        Some(coarse) => coarse,
        None => {
            let now = now_ns();
            fill(ctx, stats, now);
            stats.unflushed_snapshots = stats.unflushed_snapshots.wrapping_add(1);
            now
        }
    };
    match op {
        BPF_SOCK_OPS_RTT_CB => {
            stats.rtt_samples = stats.rtt_samples.wrapping_add(1);
            // args[0] of the RTT callback is the RTT sample in microseconds
            // (tcp_bpf_rtt(sk, mrtt_us, srtt)). The callback itself dates
            // from 5.3, where it had no arguments; the sample argument came
            // later (see README, "Kernel"), and there args[0] reads 0. Then
            // the smoothed RTT stands in, so the field is never a fake 0 ms
            // (read from the socket: this callback may not have copied it).
            let sample = ctx.arg(0);
            stats.last_rtt_us = if sample == 0 {
                // SAFETY: a context field load, as in `fill`.
                unsafe { (*ctx.ops).srtt_us >> 3 }
            } else {
                sample
            };
        }
        BPF_SOCK_OPS_RETRANS_CB => {
            stats.retrans_events = stats.retrans_events.wrapping_add(1);
            // The recovery point's upper bound (`FlowStats::recovery_seq`):
            // the kernel's `high_seq` is `snd_nxt` when recovery began, and
            // every retransmission of that recovery comes at or after it.
            // SAFETY: a context field load, as in `fill`.
            stats.recovery_seq = unsafe { (*ctx.ops).snd_nxt };
            stats.recovery_pending = RECOVERY_RETRANSMITTED;
        }
        BPF_SOCK_OPS_RTO_CB => stats.rto_events = stats.rto_events.wrapping_add(1),
        _ => {}
    }
    // Only full sockets accept bpf_setsockopt (the RTT/RETRANS/RTO callbacks
    // run on them; STATE_CB may not).
    if op != BPF_SOCK_OPS_STATE_CB {
        if let Some(config) = config {
            check_target(ctx, cookie, slot, config, stats, now);
        }
    }
    // SAFETY: closes the window opened above.
    unsafe { write_end(seq, begun) };
}

/// Whether this callback copies the flow's statistics
/// ([`DatapathConfig::snapshot_every_ns`]): always, except on an RTT
/// callback (an ACK) that comes within the quantum of the last snapshot
/// and leaves data in flight. The exception is most ACKs of a busy flow;
/// the last ACK of a burst (nothing in flight after it) always copies, so
/// a flow that goes quiet keeps its final counters, as before.
///
/// `None`: copy (the caller reads the precise clock for it). `Some(t)`: no
/// copy, `t` the coarse clock read for the quantum's test. The coarse
/// clock trails the precise `updated_ns` by up to a tick, so a copy may
/// come up to a tick after the quantum: the quantum is a least time
/// between copies, and stays one.
fn snapshot_due(
    ctx: &SockOpsContext,
    op: u32,
    config: Option<&DatapathConfig>,
    stats: &FlowStats,
) -> Option<u64> {
    let quantum = config.map_or(0, |c| c.snapshot_every_ns);
    if op != BPF_SOCK_OPS_RTT_CB
        || quantum == 0
        // SAFETY: a context field load, as in `fill`.
        || unsafe { (*ctx.ops).packets_out } == 0
    {
        return None;
    }
    let coarse = coarse_now_ns();
    (coarse.saturating_sub(stats.updated_ns) < quantum).then_some(coarse)
}

/// The per-ACK target check, cheap when nothing can have changed.
///
/// `now` may be the coarse clock ([`coarse_now_ns`]), which trails the
/// daemon's CLOCK_MONOTONIC `written_ns` by at most a tick: the deadline
/// test then passes up to one tick late, so a stale limit is lifted up to
/// a tick after `stale_after_ns` (500 ms by default), never early. The
/// full check reads the precise clock itself.
///
/// The flow's entry caches what the last full check ([`apply_target`])
/// concluded: the configuration generation it saw and the instant its
/// limits turn stale. User space bumps [`DatapathConfig::generation`] after
/// every write of targets or configuration, so while the generation is the
/// one cached and the limits in force are not past their deadline, the
/// target map holds nothing new for this flow and a lookup would change
/// nothing: the flow's limits stay as they are. Any other case runs the
/// full check, exactly as every callback did before.
fn check_target(
    ctx: &SockOpsContext,
    cookie: u64,
    slot: u32,
    config: &DatapathConfig,
    stats: &mut FlowStats,
    now: u64,
) {
    stats.unflushed_checks = stats.unflushed_checks.wrapping_add(1);
    if config.generation == stats.target_generation
        && (!stats.controlled() || now <= stats.target_deadline_ns)
    {
        return;
    }
    flush_checks(stats);
    let settled = apply_target(ctx, cookie, slot, config, stats, now_ns());
    // A failed bpf_setsockopt leaves the generation unseen, so the next
    // callback tries again (as every callback did before the cache).
    stats.target_generation = if settled {
        config.generation
    } else {
        config.generation.wrapping_sub(1)
    };
}

/// Adds the flow's pending target checks and snapshots to the shared
/// counters.
fn flush_checks(stats: &mut FlowStats) {
    if stats.unflushed_checks != 0 {
        if let Some(slot) = COUNTERS.get_ptr_mut(counters::TARGET_CHECKS) {
            // SAFETY: as in `bump`.
            unsafe { *slot += u64::from(stats.unflushed_checks) };
        }
        stats.unflushed_checks = 0;
    }
    if stats.unflushed_snapshots != 0 {
        if let Some(slot) = COUNTERS.get_ptr_mut(counters::SNAPSHOTS) {
            // SAFETY: as in `bump`.
            unsafe { *slot += u64::from(stats.unflushed_snapshots) };
        }
        stats.unflushed_snapshots = 0;
    }
}

/// The flow's target from its slot: `Some(None)` when the slot holds no
/// target for this cookie (none written yet, or the previous owner's),
/// `None` when the daemon was writing the slot (a torn copy, rejected by
/// the sequence counter).
fn read_target(cookie: u64, slot: u32) -> Option<Option<FlowTarget>> {
    let Some(t) = TSLOTS.get_ptr(slot) else {
        return Some(None);
    };
    // SAFETY: t comes from TSLOTS; plain loads of a slot the daemon may be
    // writing, checked by the sequence counter (the reader's side of the
    // seqlock; loads are not reordered with loads on x86-64, and the
    // compiler fences keep LLVM from doing so).
    unsafe {
        let before = read_volatile(addr_of!((*t).seq));
        if before & 1 != 0 {
            return None;
        }
        compiler_fence(Ordering::SeqCst);
        let owner = read_volatile(addr_of!((*t).cookie));
        let target = read_volatile(addr_of!((*t).target));
        compiler_fence(Ordering::SeqCst);
        if read_volatile(addr_of!((*t).seq)) != before {
            return None;
        }
        Some((owner == cookie && target.written_ns != 0).then_some(target))
    }
}

/// Applies the flow's target, or lifts our limits if the target is missing
/// or stale. Returns true if the limits in force are now the wanted ones,
/// and records in `stats.target_deadline_ns` when they turn stale.
fn apply_target(
    ctx: &SockOpsContext,
    cookie: u64,
    slot: u32,
    config: &DatapathConfig,
    stats: &mut FlowStats,
    now: u64,
) -> bool {
    let stale_after = config.stale_after_or_default_ns();
    let Some(target) = read_target(cookie, slot) else {
        // The daemon is writing this slot right now: try again on the
        // next callback (the caller leaves the generation unseen).
        return false;
    };
    let mut expired = false;
    let (want_cwnd, want_pacing, want_cc, deadline) = match target {
        Some(t) if config.enforce != 0 && now.saturating_sub(t.written_ns) <= stale_after => (
            bound_cwnd(t.cwnd_clamp),
            bound_pacing(t.max_pacing_bytes_per_sec),
            u32::from(t.competitive_cc != 0),
            // Fresh while now - written_ns <= stale_after, as tested above.
            t.written_ns.saturating_add(stale_after),
        ),
        Some(_) => {
            // Counted below, once the limits are lifted (with the hold a
            // lift may wait, and the next callbacks come here again).
            expired = stats.controlled();
            (CWND_UNCLAMPED, PACING_UNLIMITED, 0, u64::MAX)
        }
        None => (CWND_UNCLAMPED, PACING_UNLIMITED, 0, u64::MAX),
    };
    stats.target_deadline_ns = deadline;
    let mut settled = true;
    // The controller first: a switch re-initialises the new one
    // (`tcp_reinit_congestion_control`), which then meets the limits below.
    if want_cc != stats.applied_competitive_cc {
        if switch_cc(ctx, config, want_cc) {
            stats.applied_competitive_cc = want_cc;
            bump(counters::TARGETS_APPLIED);
        } else {
            bump(counters::SETSOCKOPT_ERRORS);
            settled = false;
        }
    }
    if want_cwnd == stats.applied_cwnd_clamp {
        // Nothing to write, so nothing held.
        stats.hold_since_ns = 0;
    } else if clamp_held(ctx, config, stats, want_cwnd, now) {
        // The clamp in force stays for now; unsettled, so the next
        // callback looks again (the window grows or the target changes).
        settled = false;
    } else if setsockopt_u32(ctx, SOL_TCP, TCP_BPF_SNDCWND_CLAMP, want_cwnd) {
        stats.applied_cwnd_clamp = want_cwnd;
        bump(counters::TARGETS_APPLIED);
    } else {
        bump(counters::SETSOCKOPT_ERRORS);
        settled = false;
    }
    if want_pacing != stats.applied_pacing {
        if setsockopt_u32(ctx, SOL_SOCKET, SO_MAX_PACING_RATE, want_pacing) {
            stats.applied_pacing = want_pacing;
            bump(counters::TARGETS_APPLIED);
        } else {
            bump(counters::SETSOCKOPT_ERRORS);
            settled = false;
        }
    }
    if expired && !stats.controlled() {
        bump(counters::TARGETS_EXPIRED);
    }
    settled
}

/// Whether writing `want` now waits: a lift while the flow is in loss
/// recovery, always (`plume_cc_common::lift_waits`), and a new clamp that
/// would undo the base's loss response, with the configuration's hold on
/// ([`DatapathConfig::clamp_hold`]; `plume_cc_common::clamp_write_waits`
/// has the rules and why). Keeps `stats.hold_since_ns`: set on the first
/// callback that holds, cleared on one that does not, so a bounded hold
/// ([`DatapathConfig::clamp_hold_max_srtts`]) counts from there.
fn clamp_held(
    ctx: &SockOpsContext,
    config: &DatapathConfig,
    stats: &mut FlowStats,
    want: u32,
    now: u64,
) -> bool {
    let lift = want == CWND_UNCLAMPED;
    if config.clamp_hold == 0 && !lift {
        return false;
    }
    // Context fields are read now, not taken from the last snapshot, which
    // may be a quantum old. Recovery's tail: everything retransmitted
    // acknowledged, up to the ACK that ends recovery
    // (`plume_cc_common::recovery_tail`); its state advances on every
    // pending write, a lift or a clamp, as on every copy.
    // SAFETY: a context field load, as in `fill`.
    let snd_una = unsafe { (*ctx.ops).snd_una };
    let tail = recovery_tail(
        &mut stats.recovery_pending,
        &mut stats.recovery_seq,
        snd_una,
    );
    let held_ns = if stats.hold_since_ns == 0 {
        0
    } else {
        now.saturating_sub(stats.hold_since_ns)
    };
    let waits = if lift {
        // In loss recovery: segments marked lost or retransmitted in
        // flight, or its tail (the context has no `icsk_ca_state`).
        // SAFETY: context field loads, as in `fill`.
        let counted = unsafe { (*ctx.ops).lost_out != 0 || (*ctx.ops).retrans_out != 0 };
        let waits = plume_cc_common::lift_waits(
            stats.applied_cwnd_clamp,
            counted || tail,
            held_ns,
            // At most the staleness limit again (see `lift_waits`).
            config.stale_after_or_default_ns(),
        );
        if waits && tail && !counted {
            bump(counters::RECOVERY_TAIL_WAITS);
        }
        waits
    } else {
        // SAFETY: context field loads, as in `fill`.
        let (cwnd, ssthresh) = unsafe { ((*ctx.ops).snd_cwnd, (*ctx.ops).snd_ssthresh) };
        plume_cc_common::clamp_write_waits(
            want,
            stats.applied_cwnd_clamp,
            cwnd,
            ssthresh,
            held_ns,
            plume_cc_common::clamp_hold_limit_ns(stats.srtt_us, config.clamp_hold_max_srtts),
        )
    };
    stats.hold_since_ns = match (waits, stats.hold_since_ns) {
        (false, _) => 0,
        (true, 0) => now.max(1),
        (true, since) => since,
    };
    waits
}

fn bound_cwnd(clamp: u32) -> u32 {
    clamp.clamp(MIN_CWND_CLAMP, CWND_UNCLAMPED)
}

fn bound_pacing(rate: u32) -> u32 {
    rate.max(MIN_PACING_BYTES_PER_SEC)
}

fn setsockopt_u32(ctx: &SockOpsContext, level: i32, name: i32, value: u32) -> bool {
    let mut value = value;
    // SAFETY: a 4-byte option value on the stack, as the kernel expects for
    // both options (an 8-byte SO_MAX_PACING_RATE returns -EINVAL from BPF).
    let ret = unsafe {
        bpf_setsockopt(
            ctx.ops.cast(),
            level,
            name,
            (&mut value as *mut u32).cast(),
            core::mem::size_of::<u32>() as i32,
        )
    };
    ret == 0
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
