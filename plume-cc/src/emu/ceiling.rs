//! The emulator's own ceiling: how many packets per second it forwards before
//! it becomes the bottleneck, measured with a saturating UDP flow of small
//! datagrams from the inner to the outer namespace.
//!
//! A measurement helper only; it must not be used to judge link fidelity.

use std::{
    net::{SocketAddr, UdpSocket},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

use super::{EmuError, Emulator, INNER_ADDR, OUTER_ADDR};

/// Result of one ceiling measurement.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Ceiling {
    /// Datagrams the sender handed to the kernel per second.
    pub sent_pps: f64,
    /// Datagrams that crossed the emulator per second (the ceiling).
    pub received_pps: f64,
    /// IP datagram size, bytes.
    pub ip_bytes: usize,
    /// Measurement window, seconds.
    pub seconds: f64,
}

fn io(op: &'static str) -> impl Fn(std::io::Error) -> EmuError {
    move |source| EmuError::Io {
        op,
        path: "udp socket".into(),
        source,
    }
}

/// Sends `payload`-byte UDP datagrams inner → outer for `duration`, as fast
/// as possible (`rate_pps` None) or paced at `rate_pps`, and counts what
/// arrives (after a 0.5 s warm-up).
pub fn measure(
    emu: &Emulator,
    duration: Duration,
    payload: usize,
    rate_pps: Option<u64>,
) -> Result<Ceiling, EmuError> {
    let rx = emu
        .outer()
        .run(|| UdpSocket::bind((OUTER_ADDR, 9000)))?
        .map_err(io("bind"))?;
    rx.set_read_timeout(Some(Duration::from_millis(50)))
        .map_err(io("timeout"))?;
    // A deep receive buffer, so the receiving socket is not what drops.
    let size: libc::c_int = 64 << 20;
    // SAFETY: setsockopt with a valid int option on an open socket.
    unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&rx),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    let tx = emu
        .inner()
        .run(|| UdpSocket::bind((INNER_ADDR, 0)))?
        .map_err(io("bind"))?;
    tx.connect(SocketAddr::from((OUTER_ADDR, 9000)))
        .map_err(io("connect"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let counting = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let sender = {
        let (stop, counting, sent) = (stop.clone(), counting.clone(), sent.clone());
        std::thread::spawn(move || {
            let buf = vec![0u8; payload];
            let start = Instant::now();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if let Some(rate) = rate_pps {
                    let due = start.elapsed().as_micros() as u64 * rate / 1_000_000;
                    if n >= due {
                        std::thread::sleep(Duration::from_micros(100));
                        continue;
                    }
                }
                n += 1;
                if tx.send(&buf).is_ok() && counting.load(Ordering::Relaxed) {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let receiver = {
        let (stop, counting, received) = (stop.clone(), counting.clone(), received.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                if rx.recv(&mut buf).is_ok() && counting.load(Ordering::Relaxed) {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    counting.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    std::thread::sleep(duration);
    counting.store(false, Ordering::Relaxed);
    let secs = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    sender.join().expect("sender thread");
    receiver.join().expect("receiver thread");
    Ok(Ceiling {
        sent_pps: sent.load(Ordering::Relaxed) as f64 / secs,
        received_pps: received.load(Ordering::Relaxed) as f64 / secs,
        ip_bytes: payload + 28,
        seconds: secs,
    })
}
