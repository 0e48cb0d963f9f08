//! The per-flow slots shared with the eBPF program: BPF arrays created with
//! `BPF_F_MMAPABLE` and mapped into this process, so that the daemon reads
//! every flow's statistics and writes every flow's target with plain memory
//! operations, without a system call per flow (issue 14, item 1).
//!
//! aya 0.14 can create such a map (the flag is part of the map's definition
//! in the object) but has no way to mmap(2) one, so [`SlotTable::map`] calls
//! mmap on the map's descriptor itself, as `bpf_map_mmap` in the kernel
//! (kernel/bpf/syscall.c) expects: a shared mapping at offset 0 whose pages
//! are the array's values, element `i` at `i * value_size` (the value size
//! is a multiple of 8 for our slot types, so no rounding applies).
//!
//! Each slot starts with a sequence counter, a seqlock: its one writer makes
//! it odd before writing and even after, and a reader accepts a copy only if
//! the counter was even and unchanged around it (see
//! `plume_cc_common::StatsSlot`). A counter still at 0 marks a slot never
//! used; with the free list's order (`plume_cc_common::free_slot_fill_order`)
//! the used slots are a prefix of the table, so a scan stops after
//! [`SCAN_SLACK`] never-used slots in a row.

use std::{
    io,
    mem::size_of,
    os::fd::{AsRawFd, BorrowedFd},
    ptr::NonNull,
    sync::atomic::{fence, AtomicU32, Ordering},
};

use plume_cc_common::{StatsSlot, TargetSlot};

/// How many times a reader retries a slot caught mid-write before it gives
/// up on it for this read. A writer's window is a few hundred nanoseconds
/// (one callback), so a few dozen tries of a few nanoseconds each cover
/// all but a writer preempted in its window, which BPF programs are not.
pub const READ_TRIES: usize = 64;

/// Never-used slots in a row after which a scan stops. More than one
/// covers registrations in flight on other CPUs: a slot popped from the
/// free list but not yet written while a later one already is.
pub const SCAN_SLACK: usize = 64;

/// How many slots ahead of the one being read a scan prefetches
/// ([`SlotTable::prefetch`]).
pub const SCAN_PREFETCH_AHEAD: usize = 4;

/// A slot type: plain old data whose first field is its `u32` sequence
/// counter.
pub trait Sequenced: Copy {
    /// The sequence counter.
    fn seq_mut(&mut self) -> &mut u32;
}

impl Sequenced for StatsSlot {
    fn seq_mut(&mut self) -> &mut u32 {
        &mut self.seq
    }
}

impl Sequenced for TargetSlot {
    fn seq_mut(&mut self) -> &mut u32 {
        &mut self.seq
    }
}

/// What a seqlocked read of one slot found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotRead<T> {
    /// The counter is 0: nobody ever wrote the slot.
    Unused,
    /// Every try caught a write in progress (or a write between the two
    /// loads of the counter): no consistent copy this time.
    Torn,
    /// A consistent copy.
    Value(T),
}

enum Backing {
    /// A shared mapping of a BPF array of this many bytes.
    Mmap(usize),
    /// Heap memory (unit tests of the protocol); freed as a Vec of this
    /// many elements and this capacity.
    Heap(usize, usize),
}

/// A table of `len` slots of `T`, in an mmapped BPF array or (for tests)
/// on the heap.
pub struct SlotTable<T: Sequenced> {
    base: NonNull<T>,
    len: usize,
    backing: Backing,
}

// SAFETY: the table is memory shared with the kernel; every access goes
// through the seqlock protocol (reads are copies checked by the counter,
// writes need the caller to be the slot's only writer, an `unsafe`
// contract of `write`), so sharing or moving the handle between threads
// adds no race the protocol does not already handle.
unsafe impl<T: Sequenced + Send> Send for SlotTable<T> {}
// SAFETY: as above.
unsafe impl<T: Sequenced + Sync> Sync for SlotTable<T> {}

impl<T: Sequenced> SlotTable<T> {
    /// Maps the `len` values of the BPF array behind `fd` (created with
    /// `BPF_F_MMAPABLE`, values of exactly `size_of::<T>()` bytes).
    pub fn map(fd: BorrowedFd<'_>, len: usize) -> io::Result<Self> {
        assert!(
            size_of::<T>().is_multiple_of(8),
            "the kernel rounds array values up to 8 bytes"
        );
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
            .ok()
            .filter(|p| *p > 0)
            .unwrap_or(4096);
        let bytes = (len * size_of::<T>()).div_ceil(page) * page;
        if bytes == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty array"));
        }
        // SAFETY: a fresh shared mapping of the map's pages; the kernel
        // checks the length against the array's size and refuses a map
        // without BPF_F_MMAPABLE.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            // SAFETY: mmap succeeded, so p is not null.
            base: unsafe { NonNull::new_unchecked(p.cast()) },
            len,
            backing: Backing::Mmap(bytes),
        })
    }

    /// `len` zeroed slots on the heap (every slot unused).
    pub fn heap(len: usize) -> Self
    where
        T: Default,
    {
        let mut v = std::mem::ManuallyDrop::new(vec![T::default(); len]);
        Self {
            // SAFETY: a Vec's pointer is never null.
            base: unsafe { NonNull::new_unchecked(v.as_mut_ptr()) },
            len,
            backing: Backing::Heap(v.len(), v.capacity()),
        }
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for a table of no slot (never made by [`SlotTable::map`]).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn slot(&self, i: usize) -> *mut T {
        assert!(i < self.len, "slot {i} of {}", self.len);
        // SAFETY: in bounds (checked above).
        unsafe { self.base.as_ptr().add(i) }
    }

    pub(crate) fn seq(&self, i: usize) -> &AtomicU32 {
        // SAFETY: the counter is the slot's first field (checked by the
        // layout tests of plume-cc-common), 4-byte aligned, and lives as
        // long as the table.
        unsafe { AtomicU32::from_ptr(self.slot(i).cast::<u32>()) }
    }

    /// Asks the CPU to fetch slot `i`'s cache lines (nothing for a slot
    /// out of range). Why: the control loop walks 10,000 slots that nothing
    /// it did since the last interval has touched, so each is a cache
    /// miss; asking a few slots ahead overlaps the misses ([`Self::scan`]:
    /// the 10,000-flow read went from 0.41-0.42 to 0.33-0.34 ms in
    /// `bench-datapath --only real-flows`, docs/BENCHMARKS.md; the same in
    /// the targets' write changed nothing measurable, so it is not there).
    #[inline(always)]
    pub fn prefetch(&self, i: usize) {
        #[cfg(target_arch = "x86_64")]
        if i < self.len {
            // SAFETY: in bounds; a prefetch reads nothing and never faults.
            let p = unsafe { self.base.as_ptr().add(i) }.cast::<i8>();
            let size = std::mem::size_of::<T>();
            let mut off = 0;
            while off < size {
                // SAFETY: as above, inside slot `i`.
                unsafe {
                    std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                        p.add(off),
                    )
                };
                off += 64;
            }
            // SAFETY: as above: the slot's last byte, whose line the loop
            // misses when the slot does not start on a line.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    p.add(size.max(1) - 1),
                )
            };
        }
    }

    /// A consistent copy of slot `i` (the reader's side of the seqlock).
    pub fn read(&self, i: usize) -> SlotRead<T> {
        let seq = self.seq(i);
        for _ in 0..READ_TRIES {
            let before = seq.load(Ordering::Acquire);
            if before == 0 {
                return SlotRead::Unused;
            }
            if before & 1 != 0 {
                std::hint::spin_loop();
                continue;
            }
            // SAFETY: in bounds; a volatile copy of plain old data that a
            // writer may be changing: the counter check below rejects it
            // then.
            let copy = unsafe { std::ptr::read_volatile(self.slot(i)) };
            // The copy's loads happen before the second load of the counter.
            fence(Ordering::Acquire);
            if seq.load(Ordering::Relaxed) == before {
                return SlotRead::Value(copy);
            }
        }
        SlotRead::Torn
    }

    /// Changes slot `i` with `f` (the writer's side of the seqlock): the
    /// counter turns odd, the slot is rewritten, the counter turns even.
    ///
    /// # Safety
    /// The caller must be slot `i`'s only writer for the call (see
    /// `plume_cc_common::StatsSlot` and `TargetSlot` for who owns which
    /// slot when).
    pub unsafe fn write(&self, i: usize, f: impl FnOnce(&mut T)) {
        let seq = self.seq(i);
        let begun = seq.load(Ordering::Relaxed);
        let odd = begun | 1;
        seq.store(odd, Ordering::Relaxed);
        // The odd counter is visible before any of the new contents.
        fence(Ordering::Release);
        // SAFETY: in bounds; we are the only writer (the caller's contract).
        let mut value = unsafe { std::ptr::read_volatile(self.slot(i)) };
        f(&mut value);
        *value.seq_mut() = odd;
        // SAFETY: as above.
        unsafe { std::ptr::write_volatile(self.slot(i), value) };
        // The contents are visible before the even counter.
        seq.store(odd.wrapping_add(1), Ordering::Release);
    }

    /// Reads every slot up to the end of the used prefix (see the module
    /// docs): `visit(i, read)` for each slot that is not [`SlotRead::Unused`].
    pub fn scan(&self, mut visit: impl FnMut(usize, SlotRead<T>)) {
        let mut unused_run = 0;
        for i in 0..self.len {
            self.prefetch(i + SCAN_PREFETCH_AHEAD);
            match self.read(i) {
                SlotRead::Unused => {
                    unused_run += 1;
                    if unused_run >= SCAN_SLACK {
                        return;
                    }
                }
                read => {
                    unused_run = 0;
                    visit(i, read);
                }
            }
        }
    }
}

impl<T: Sequenced> Drop for SlotTable<T> {
    fn drop(&mut self) {
        match self.backing {
            Backing::Mmap(bytes) => {
                // SAFETY: the mapping made in `map`, unmapped once.
                unsafe { libc::munmap(self.base.as_ptr().cast(), bytes) };
            }
            Backing::Heap(len, cap) => {
                // SAFETY: the Vec leaked in `heap`, rebuilt once.
                drop(unsafe { Vec::from_raw_parts(self.base.as_ptr(), len, cap) });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plume_cc_common::{free_slot_fill_order, FlowStats};
    use std::sync::{
        atomic::{AtomicBool, AtomicU64},
        Arc,
    };

    /// A slot whose every field carries the same value when consistent.
    fn uniform(v: u64) -> StatsSlot {
        let w = v as u32;
        StatsSlot {
            seq: 0,
            _pad: 0,
            cookie: v,
            stats: FlowStats {
                start_ns: v,
                updated_ns: v,
                bytes_acked: v,
                bytes_received: v,
                srtt_us: w,
                min_rtt_us: w,
                snd_cwnd: w,
                delivered: w,
                remote_ip4: w,
                target_deadline_ns: v,
                rto_events: w,
                ..FlowStats::default()
            },
        }
    }

    fn is_uniform(s: &StatsSlot) -> bool {
        let v = s.cookie;
        let w = v as u32;
        s.stats.start_ns == v
            && s.stats.updated_ns == v
            && s.stats.bytes_acked == v
            && s.stats.bytes_received == v
            && s.stats.srtt_us == w
            && s.stats.min_rtt_us == w
            && s.stats.snd_cwnd == w
            && s.stats.delivered == w
            && s.stats.remote_ip4 == w
            && s.stats.target_deadline_ns == v
            && s.stats.rto_events == w
    }

    #[test]
    fn an_unwritten_slot_reads_unused_and_a_written_one_its_value() {
        let t = SlotTable::<StatsSlot>::heap(4);
        assert_eq!(t.read(2), SlotRead::Unused);
        // SAFETY: the only writer.
        unsafe { t.write(2, |s| *s = uniform(7)) };
        match t.read(2) {
            SlotRead::Value(s) => {
                assert_eq!(s.seq, 2);
                assert!(is_uniform(&s) && s.cookie == 7);
            }
            r => panic!("{r:?}"),
        }
        assert_eq!(t.read(1), SlotRead::Unused);
    }

    #[test]
    fn a_slot_caught_mid_write_reads_torn() {
        let t = SlotTable::<StatsSlot>::heap(2);
        // SAFETY: the only writer.
        unsafe { t.write(0, |s| *s = uniform(3)) };
        // A writer inside its window: the counter is odd.
        t.seq(0).store(3, Ordering::Relaxed);
        assert_eq!(t.read(0), SlotRead::Torn);
        // The window closes: readable again.
        t.seq(0).store(4, Ordering::Relaxed);
        assert!(matches!(t.read(0), SlotRead::Value(s) if s.cookie == 3));
    }

    /// A writer thread rewrites one slot as fast as it can, each time with
    /// all fields equal to a new value; a reader copies it concurrently.
    /// Every copy the counter accepts must be uniform (never half of one
    /// write and half of another), and reads that overlapped a write must
    /// have been noticed (retried) rather than accepted.
    #[test]
    fn a_racing_writer_never_yields_a_torn_copy() {
        let t = Arc::new(SlotTable::<StatsSlot>::heap(1));
        // SAFETY: the only writer (the thread below starts after).
        unsafe { t.write(0, |s| *s = uniform(1)) };
        let stop = Arc::new(AtomicBool::new(false));
        let writes = Arc::new(AtomicU64::new(0));
        let writer = {
            let (t, stop, writes) = (t.clone(), stop.clone(), writes.clone());
            std::thread::spawn(move || {
                let mut v = 2u64;
                while !stop.load(Ordering::Relaxed) {
                    // SAFETY: the only writer of slot 0.
                    unsafe { t.write(0, |s| *s = uniform(v)) };
                    v += 1;
                    writes.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let (mut values, mut torn, mut last) = (0u64, 0u64, 0u64);
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(300);
        while std::time::Instant::now() < deadline {
            match t.read(0) {
                SlotRead::Value(s) => {
                    assert!(is_uniform(&s), "a torn copy was accepted: {s:?}");
                    assert!(s.cookie >= last, "values go forward");
                    last = s.cookie;
                    values += 1;
                }
                SlotRead::Torn => torn += 1,
                SlotRead::Unused => panic!("the slot was written"),
            }
        }
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        assert!(values > 1000, "{values} consistent reads");
        assert!(
            writes.load(Ordering::Relaxed) > 1000,
            "the writer ran: {} writes",
            writes.load(Ordering::Relaxed)
        );
        // How many reads found the writer mid-copy depends on how the two
        // threads share the cores (on a loaded 2-core host the writer can be
        // mid-copy at most reads: `torn < values` failed 2 of 11 runs
        // there), so the count is reported, not bounded; what must hold is
        // above: no torn copy accepted, values in order, and many
        // consistent reads.
        eprintln!("{values} consistent reads, {torn} torn");
    }

    /// The free list as the program and the loader use it: a stack filled
    /// in `free_slot_fill_order`, a pop per new flow, a push per closed
    /// one. Under churn (1,000 short flows, up to 40 at once) every slot
    /// comes back, no slot is handed out twice, and the slots ever used
    /// are the prefix `0..peak`, which is what lets a scan stop early.
    #[test]
    fn the_free_list_reuses_slots_keeps_them_a_prefix_and_leaks_none() {
        let cap = 1024u32;
        let mut free: Vec<u32> = free_slot_fill_order(cap).collect();
        assert_eq!(free.last(), Some(&0), "slot 0 pops first");
        let mut open: Vec<u32> = Vec::new();
        let mut in_use = vec![false; cap as usize];
        let (mut ever_max, mut peak) = (0u32, 0usize);
        // A deterministic pseudo-random walk (xorshift).
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut opened = 0;
        while opened < 1000 || !open.is_empty() {
            let grow = opened < 1000 && (open.is_empty() || open.len() < 40 && next() % 3 != 0);
            if grow {
                let slot = free.pop().expect("a free slot");
                assert!(!in_use[slot as usize], "slot {slot} handed out twice");
                in_use[slot as usize] = true;
                open.push(slot);
                opened += 1;
                peak = peak.max(open.len());
                ever_max = ever_max.max(slot);
            } else {
                let k = (next() % open.len() as u64) as usize;
                let slot = open.swap_remove(k);
                in_use[slot as usize] = false;
                free.push(slot);
            }
        }
        assert_eq!(free.len(), cap as usize, "every slot is back");
        assert!(in_use.iter().all(|u| !u));
        assert!(peak >= 30, "the churn reached {peak} flows at once");
        assert_eq!(ever_max as usize + 1, peak, "the slots used are 0..peak");
    }

    /// The scan stops after SCAN_SLACK never-used slots, and sees a used
    /// slot behind a shorter gap (a registration in flight).
    #[test]
    fn the_scan_covers_the_used_prefix_and_short_gaps() {
        let t = SlotTable::<StatsSlot>::heap(1000);
        for i in [0usize, 1, 2, 5, 2 + SCAN_SLACK] {
            // SAFETY: the only writer.
            unsafe { t.write(i, |s| *s = uniform(i as u64 + 1)) };
        }
        // Past a full run of never-used slots: not reached.
        // SAFETY: the only writer.
        unsafe { t.write(500, |s| *s = uniform(501)) };
        let mut seen = Vec::new();
        t.scan(|i, r| {
            assert!(matches!(r, SlotRead::Value(_)));
            seen.push(i);
        });
        assert_eq!(seen, [0, 1, 2, 5, 2 + SCAN_SLACK]);
    }
}
