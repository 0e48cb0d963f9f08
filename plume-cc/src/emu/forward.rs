//! The forwarding loop of one direction: read datagrams from one TUN fd in
//! batches, run them through the [`Pipeline`], write what leaves to the other
//! TUN fd, and sleep (ppoll with a microsecond timeout) until the next
//! packet or link event.
//!
//! One thread per direction; buffers are recycled through a pool, so the
//! steady state allocates nothing. It must not block on anything but the
//! ppoll and must not decide link behaviour (that is [`super::link`]).

use std::{
    os::fd::{AsRawFd as _, OwnedFd},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Instant,
};

use serde::{Deserialize, Serialize};

use super::link::{Packet, Pipeline};

/// Room for one datagram (the TUN MTU is 1500).
pub const BUF_BYTES: usize = 2048;
/// Most datagrams read before the pipeline is advanced.
const BATCH: usize = 64;
/// Longest sleep, so that a stop request is seen quickly, microseconds.
const MAX_SLEEP_US: u64 = 20_000;

/// What one direction's thread counted besides the link's own statistics.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct ForwardStats {
    /// Datagrams read from the source device.
    pub read: u64,
    /// Datagrams written to the destination device.
    pub written: u64,
    /// Writes the kernel refused (the datagram is lost, as on a real wire).
    pub write_errors: u64,
    /// CPU time the thread used (user and system, including the kernel's
    /// receive processing of written datagrams), microseconds.
    pub cpu_us: u64,
}

fn thread_cpu_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

/// Microseconds since `epoch`.
pub fn now_us(epoch: Instant) -> u64 {
    epoch.elapsed().as_micros() as u64
}

/// Runs until `stop` is set; returns the pipeline (with its statistics and
/// log) and the forwarding counters.
pub fn forward(
    src: Arc<OwnedFd>,
    dst: Arc<OwnedFd>,
    mut pipeline: Pipeline,
    epoch: Instant,
    stop: Arc<AtomicBool>,
) -> std::io::Result<(Pipeline, ForwardStats)> {
    // SAFETY: prctl(PR_SET_TIMERSLACK) only changes this thread's timer slack;
    // 1 ns makes ppoll wake at the requested microsecond.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
    }
    let (sfd, dfd) = (src.as_raw_fd(), dst.as_raw_fd());
    let mut pool: Vec<Vec<u8>> = (0..1024).map(|_| vec![0u8; BUF_BYTES]).collect();
    let mut out: Vec<Packet> = Vec::with_capacity(4096);
    let mut st = ForwardStats::default();
    while !stop.load(Ordering::Relaxed) {
        let mut n = 0;
        while n < BATCH {
            let mut buf = pool.pop().unwrap_or_else(|| vec![0u8; BUF_BYTES]);
            debug_assert!(buf.capacity() >= BUF_BYTES);
            // SAFETY: every pooled buffer was created as BUF_BYTES zeroed bytes
            // and only ever truncated, so its first BUF_BYTES bytes are
            // initialised; this avoids re-zeroing 2 KiB per datagram.
            unsafe { buf.set_len(BUF_BYTES) };
            // SAFETY: buf has BUF_BYTES initialised bytes; read writes at most that many.
            let r = unsafe { libc::read(sfd, buf.as_mut_ptr().cast(), BUF_BYTES) };
            if r < 0 {
                pool.push(buf);
                let e = std::io::Error::last_os_error();
                match e.kind() {
                    std::io::ErrorKind::WouldBlock => break,
                    std::io::ErrorKind::Interrupted => continue,
                    _ => return Err(e),
                }
            }
            buf.truncate(r as usize);
            st.read += 1;
            n += 1;
            let t = now_us(epoch);
            if let Some(d) = pipeline.arrive(
                t,
                Packet {
                    data: buf,
                    arrival_us: t,
                },
            ) {
                pool.push(d.data);
            }
        }
        let t = now_us(epoch);
        pipeline.advance(t, &mut out, &mut pool);
        for p in out.drain(..) {
            // SAFETY: writes p.data.len() initialised bytes from a live buffer.
            let w = unsafe { libc::write(dfd, p.data.as_ptr().cast(), p.data.len()) };
            if w < 0 {
                st.write_errors += 1;
            } else {
                st.written += 1;
            }
            pool.push(p.data);
        }
        if n == BATCH {
            continue; // more is probably waiting
        }
        let wait_us = match pipeline.next_event_us() {
            Some(e) => e.saturating_sub(now_us(epoch)).min(MAX_SLEEP_US),
            None => MAX_SLEEP_US,
        };
        if wait_us == 0 {
            continue;
        }
        let mut pfd = libc::pollfd {
            fd: sfd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ts = libc::timespec {
            tv_sec: (wait_us / 1_000_000) as libc::time_t,
            tv_nsec: ((wait_us % 1_000_000) * 1000) as libc::c_long,
        };
        // SAFETY: one valid pollfd, a valid timespec, no signal mask change.
        unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
    }
    st.cpu_us = thread_cpu_us();
    Ok((pipeline, st))
}
