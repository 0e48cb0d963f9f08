//! A TCP sender that reports its own kernel state, and a sink to receive it.
//!
//! `plume-cc probe` runs [`run_sender`]: it optionally joins a cgroup first
//! (so its flow is under the datapath), sends as fast as TCP lets it for a
//! while and prints one JSON [`ProbeReport`] line per interval with the
//! socket's TCP_INFO. Tests and the self-test use it to check the datapath
//! against the kernel's own view, not against our maps.

use std::{
    io::{self, Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

use super::{cgroup, tcpinfo};

/// What the sender does.
#[derive(Clone, Debug)]
pub struct SenderConfig {
    /// Where to connect.
    pub connect: SocketAddr,
    /// Join this cgroup v2 folder before opening the socket.
    pub cgroup: Option<PathBuf>,
    /// How long to send.
    pub duration: Duration,
    /// Interval between reports.
    pub report_every: Duration,
    /// The socket's congestion control (`TCP_CONGESTION`); None keeps the
    /// namespace's default.
    pub congestion: Option<String>,
}

/// One line of the sender's output.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ProbeReport {
    /// Milliseconds since the connection was established.
    pub t_ms: u64,
    /// Socket cookie (the datapath's key for this flow).
    pub cookie: u64,
    /// Congestion window, segments.
    pub snd_cwnd: u32,
    /// Slow-start threshold, segments.
    pub snd_ssthresh: u32,
    /// Smoothed RTT, microseconds.
    pub rtt_us: u32,
    /// Current pacing rate, bytes/s.
    pub pacing_rate: u64,
    /// SO_MAX_PACING_RATE in force, bytes/s.
    pub max_pacing_rate: u64,
    /// Bytes acknowledged so far.
    pub bytes_acked: u64,
    /// Bytes written by the application so far.
    pub bytes_written: u64,
    /// Total retransmitted segments.
    pub total_retrans: u32,
    /// True on the last line (the socket is about to close).
    pub done: bool,
}

/// Runs the sender, writing reports to `out`. Returns the last report.
pub fn run_sender(config: &SenderConfig, out: &mut dyn io::Write) -> io::Result<ProbeReport> {
    if let Some(path) = &config.cgroup {
        cgroup::move_pid(path, 0).map_err(io::Error::other)?;
    }
    let stream = TcpStream::connect(config.connect)?;
    stream.set_nodelay(true)?;
    if let Some(cc) = &config.congestion {
        tcpinfo::set_congestion(&stream, cc)
            .map_err(|e| io::Error::new(e.kind(), format!("TCP_CONGESTION {cc}: {e}")))?;
    }
    let cookie = tcpinfo::socket_cookie(&stream)?;
    let start = Instant::now();
    let written = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let mut stream = stream.try_clone()?;
        let written = Arc::clone(&written);
        let stop = Arc::clone(&stop);
        thread::spawn(move || -> io::Result<()> {
            let chunk = vec![0x5au8; 64 * 1024];
            stream.set_write_timeout(Some(Duration::from_millis(50)))?;
            while !stop.load(Ordering::Relaxed) {
                match stream.write(&chunk) {
                    Ok(n) => {
                        written.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e)
                        if e.kind() == io::ErrorKind::WouldBlock
                            || e.kind() == io::ErrorKind::TimedOut => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
    };
    let report = |done: bool| -> io::Result<ProbeReport> {
        let info = tcpinfo::tcp_info(&stream)?;
        Ok(ProbeReport {
            t_ms: start.elapsed().as_millis() as u64,
            cookie,
            snd_cwnd: info.snd_cwnd,
            snd_ssthresh: info.snd_ssthresh,
            rtt_us: info.rtt_us,
            pacing_rate: info.pacing_rate,
            max_pacing_rate: info.max_pacing_rate,
            bytes_acked: info.bytes_acked,
            bytes_written: written.load(Ordering::Relaxed),
            total_retrans: info.total_retrans,
            done,
        })
    };
    // One JSON line per report, flushed: the reader follows the run live.
    let emit = |out: &mut dyn io::Write, r: &ProbeReport| -> io::Result<()> {
        writeln!(
            out,
            "{}",
            serde_json::to_string(r).map_err(io::Error::other)?
        )?;
        out.flush()
    };
    let mut last;
    loop {
        last = report(false)?;
        emit(out, &last)?;
        if start.elapsed() >= config.duration {
            break;
        }
        thread::sleep(
            config
                .report_every
                .min(config.duration.saturating_sub(start.elapsed())),
        );
    }
    stop.store(true, Ordering::Relaxed);
    writer
        .join()
        .map_err(|_| io::Error::other("writer thread panicked"))??;
    last = report(true)?;
    emit(out, &last)?;
    stream.shutdown(std::net::Shutdown::Both).ok();
    Ok(last)
}

/// Outcome of [`run_many`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ManyFlows {
    /// Connections opened (all open at the same time).
    pub opened: usize,
    /// Socket cookies of the connections.
    pub cookies: Vec<u64>,
    /// Bytes sent in total.
    pub bytes: u64,
}

/// Opens `n` connections at once, sends `bytes` on each, keeps them all
/// open for `hold`, then closes them all: many concurrent short flows.
pub fn run_many(
    connect: SocketAddr,
    cgroup: Option<&std::path::Path>,
    n: usize,
    bytes: usize,
    hold: Duration,
) -> io::Result<ManyFlows> {
    if let Some(path) = cgroup {
        cgroup::move_pid(path, 0).map_err(io::Error::other)?;
    }
    let mut streams = Vec::with_capacity(n);
    let mut cookies = Vec::with_capacity(n);
    for _ in 0..n {
        let s = TcpStream::connect(connect)?;
        cookies.push(tcpinfo::socket_cookie(&s)?);
        streams.push(s);
    }
    let chunk = vec![0xa5u8; bytes];
    for s in &mut streams {
        s.write_all(&chunk)?;
    }
    thread::sleep(hold);
    for s in &streams {
        s.shutdown(std::net::Shutdown::Both).ok();
    }
    drop(streams);
    Ok(ManyFlows {
        opened: n,
        cookies,
        bytes: (n * bytes) as u64,
    })
}

/// A loopback receiver that accepts any number of connections and discards
/// what they send. It stops when dropped.
#[derive(Debug)]
pub struct Sink {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
    cookies: Arc<std::sync::Mutex<Vec<u64>>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Sink {
    /// Listens on `bind` (e.g. `127.0.0.1:0`).
    pub fn start(bind: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(bind)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicU64::new(0));
        let cookies = Arc::new(std::sync::Mutex::new(Vec::new()));
        let thread = {
            let stop = Arc::clone(&stop);
            let received = Arc::clone(&received);
            let cookies = Arc::clone(&cookies);
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((mut conn, _)) => {
                            if let Ok(c) = tcpinfo::socket_cookie(&conn) {
                                cookies.lock().map(|mut v| v.push(c)).ok();
                            }
                            let received = Arc::clone(&received);
                            let stop = Arc::clone(&stop);
                            thread::spawn(move || {
                                let mut buf = vec![0u8; 64 * 1024];
                                conn.set_read_timeout(Some(Duration::from_millis(100))).ok();
                                while !stop.load(Ordering::Relaxed) {
                                    match conn.read(&mut buf) {
                                        Ok(0) => break,
                                        Ok(n) => {
                                            received.fetch_add(n as u64, Ordering::Relaxed);
                                        }
                                        Err(e)
                                            if e.kind() == io::ErrorKind::WouldBlock
                                                || e.kind() == io::ErrorKind::TimedOut => {}
                                        Err(_) => break,
                                    }
                                }
                            });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(2));
                        }
                        Err(_) => break,
                    }
                }
            })
        };
        Ok(Self {
            addr,
            stop,
            received,
            cookies,
            thread: Some(thread),
        })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Bytes received over all connections.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Socket cookies of the accepted (receiver-side) sockets.
    pub fn accepted_cookies(&self) -> Vec<u64> {
        self.cookies.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_reports_its_own_socket() {
        let sink = Sink::start("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut out = Vec::new();
        let last = run_sender(
            &SenderConfig {
                connect: sink.addr(),
                cgroup: None,
                duration: Duration::from_millis(150),
                report_every: Duration::from_millis(50),
                // Reno is built in and allowed to unprivileged sockets.
                congestion: Some("reno".into()),
            },
            &mut out,
        )
        .unwrap();
        let lines: Vec<ProbeReport> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(lines.len() >= 3, "{} report lines", lines.len());
        assert!(last.done && last.bytes_acked > 0 && last.cookie != 0);
        assert!(lines.iter().all(|r| r.cookie == last.cookie));
        // tcpi_bytes_acked counts the SYN as one byte.
        assert!(last.bytes_written + 1 >= last.bytes_acked);
    }
}
