//! Many real connections held open at once, most idle and a few active:
//! the datapath at host scale with real sockets (issue 14, "Real flows at
//! scale"), for the kernel test and `plume-cc bench-datapath --only
//! real-flows`.
//!
//! Two sides, two processes. The senders must be in the controlled cgroup
//! (a socket belongs to the cgroup of the task that creates it), and the
//! process that holds the receiving ends must not be (or every accepted
//! socket would be a flow too): so `plume-cc probe --held N` ([`run_held`])
//! joins the cgroup, opens the connections and obeys line commands on
//! stdin, and the caller ([`HeldFlows`]) holds the receivers
//! ([`HoldSink`] for the idle flows, [`super::probe::Sink`] for the active
//! ones).
//!
//! Why commands rather than a schedule: an idle flow has no callback, so
//! the program can neither apply a new target to it nor lift a stale one
//! until it sends again. A test decides when that happens (`poke`: one byte
//! on every idle connection, which draws an ACK, hence an RTT callback) and
//! reads each socket's own TCP_INFO (`report`), the kernel's view and not
//! our maps'.

use std::{
    io::{self, BufRead, BufReader, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc, Arc, Mutex,
    },
    thread,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

use super::{cgroup, tcpinfo};

/// Errors of the held-flows harness.
#[derive(Debug, thiserror::Error)]
pub enum HeldError {
    /// A socket, pipe or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was attempted.
        what: String,
        /// The system error.
        source: io::Error,
    },
    /// The sender process answered something unexpected (or exited).
    #[error("held-flows sender: {0}")]
    Protocol(String),
    /// Joining the cgroup failed.
    #[error(transparent)]
    Cgroup(#[from] cgroup::CgroupError),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> HeldError {
    let what = what.into();
    move |source| HeldError::Io { what, source }
}

/// Raises this process's RLIMIT_NOFILE soft limit to at least `want`
/// descriptors (and the hard limit too, where allowed: root), since each
/// held connection is one descriptor on each side. Returns the soft limit
/// now in force, which may be lower than `want` without privilege.
pub fn raise_fd_limit(want: u64) -> io::Result<u64> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid out pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if r.rlim_cur >= want {
        return Ok(r.rlim_cur);
    }
    // First try to raise both (needs CAP_SYS_RESOURCE when above the hard
    // limit); else the soft one up to the hard one.
    let both = libc::rlimit {
        rlim_cur: want,
        rlim_max: r.rlim_max.max(want),
    };
    // SAFETY: a valid rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &both) } == 0 {
        return Ok(want);
    }
    let soft = libc::rlimit {
        rlim_cur: r.rlim_max.min(want),
        rlim_max: r.rlim_max,
    };
    // SAFETY: a valid rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &soft) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(soft.rlim_cur)
}

/// Descriptors a side needs beyond its connections (binaries, pipes, maps).
const FD_SLACK: u64 = 256;

/// `listen(2)` backlog for the receivers: the kernel's default
/// `net.core.somaxconn` (4096) rather than the standard library's 128, so
/// a burst of thousands of connects is not slowed by SYN retries
/// (the kernel caps it at somaxconn anyway).
const BACKLOG: libc::c_int = 4096;

fn listener(bind: SocketAddr) -> io::Result<TcpListener> {
    let l = TcpListener::bind(bind)?;
    // SAFETY: listen(2) on our own listening socket only changes its backlog.
    if unsafe { libc::listen(l.as_raw_fd(), BACKLOG) } != 0 {
        return Err(io::Error::last_os_error());
    }
    l.set_nonblocking(true)?;
    Ok(l)
}

/// A loopback receiver that accepts connections and holds them without
/// reading (the idle flows send a byte now and then, which the receive
/// buffer absorbs). Closes them all when dropped.
#[derive(Debug)]
pub struct HoldSink {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    held: Arc<Mutex<Vec<TcpStream>>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl HoldSink {
    /// Listens on `bind` (e.g. `127.0.0.1:0`).
    pub fn start(bind: SocketAddr) -> io::Result<Self> {
        let l = listener(bind)?;
        let addr = l.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let held = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, held) = (Arc::clone(&stop), Arc::clone(&held));
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match l.accept() {
                        Ok((s, _)) => {
                            if let Ok(mut v) = held.lock() {
                                v.push(s);
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(1));
                        }
                        // EMFILE and the like: wait; the caller sees the
                        // shortfall in `held()`.
                        Err(_) => thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        Ok(Self {
            addr,
            stop,
            held,
            thread: Some(thread),
        })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted and held.
    pub fn held(&self) -> usize {
        self.held.lock().map(|v| v.len()).unwrap_or(0)
    }
}

impl Drop for HoldSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().ok();
        }
    }
}

/// What `plume-cc probe --held` opens.
#[derive(Clone, Debug)]
pub struct HeldSpec {
    /// Receiver of the idle connections.
    pub idle_to: SocketAddr,
    /// Receiver of the active connections.
    pub active_to: SocketAddr,
    /// Join this cgroup v2 folder first.
    pub cgroup: Option<PathBuf>,
    /// Connections in all.
    pub flows: usize,
    /// How many of them send all the time.
    pub active: usize,
    /// Bytes each active connection writes per tick.
    pub active_bytes: usize,
    /// The active connections' write period.
    pub tick: Duration,
}

/// The sender's first line: every connection is open.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HeldOpened {
    /// Socket cookies, the idle connections first, then the active ones.
    pub cookies: Vec<u64>,
    /// How many of `cookies` (at the end) are active.
    pub active: usize,
    /// Time to open them all, milliseconds.
    pub open_ms: u64,
}

/// One connection's state as its own socket reports it (TCP_INFO).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HeldFlow {
    /// Socket cookie.
    pub cookie: u64,
    /// Congestion window, segments.
    pub snd_cwnd: u32,
    /// SO_MAX_PACING_RATE in force, bytes/s (`u64::MAX`: none).
    pub max_pacing_rate: u64,
    /// Bytes acknowledged.
    pub bytes_acked: u64,
}

/// The answer to a command.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeldAnswer {
    /// `poke`: this many idle connections sent one byte.
    Poked(usize),
    /// `report`: every connection, in the order of [`HeldOpened::cookies`].
    Report(Vec<HeldFlow>),
    /// `close`: every connection was shut down and closed.
    Closed(usize),
}

/// The sender side (`plume-cc probe --held`): opens the connections,
/// prints [`HeldOpened`], then answers `poke`, `report` and `close`
/// commands, one per line of `commands`, with one [`HeldAnswer`] line each.
/// End of input closes everything, as `close` does.
pub fn run_held(
    spec: &HeldSpec,
    commands: impl BufRead,
    out: &mut dyn Write,
) -> Result<(), HeldError> {
    if let Some(path) = &spec.cgroup {
        cgroup::move_pid(path, 0)?;
    }
    raise_fd_limit(spec.flows as u64 + FD_SLACK).map_err(io_err("raising RLIMIT_NOFILE"))?;
    if spec.active > spec.flows {
        return Err(HeldError::Protocol(format!(
            "{} active of {} flows",
            spec.active, spec.flows
        )));
    }
    let t0 = Instant::now();
    let idle_n = spec.flows - spec.active;
    let mut streams = Vec::with_capacity(spec.flows);
    let mut cookies = Vec::with_capacity(spec.flows);
    for i in 0..spec.flows {
        let to = if i < idle_n {
            spec.idle_to
        } else {
            spec.active_to
        };
        let s = TcpStream::connect(to).map_err(io_err(format!("connection {i} to {to}")))?;
        s.set_nodelay(true).map_err(io_err("TCP_NODELAY"))?;
        cookies.push(tcpinfo::socket_cookie(&s).map_err(io_err("SO_COOKIE"))?);
        streams.push(s);
    }
    let open_ms = t0.elapsed().as_millis() as u64;
    // The active connections write from one thread, non-blocking, so a
    // limited one (clamped, paced) never holds up the others.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let mut active: Vec<TcpStream> = streams[idle_n..]
            .iter()
            .map(|s| s.try_clone())
            .collect::<io::Result<_>>()
            .map_err(io_err("cloning an active connection"))?;
        for s in &active {
            s.set_nonblocking(true)
                .map_err(io_err("non-blocking active connection"))?;
        }
        let (stop, chunk, tick) = (
            Arc::clone(&stop),
            vec![0x5au8; spec.active_bytes],
            spec.tick,
        );
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for s in &mut active {
                    // WouldBlock (a full send buffer) and errors alike: the
                    // next tick tries again; `report` shows what got through.
                    let _ = s.write(&chunk);
                }
                thread::sleep(tick);
            }
        })
    };
    line(
        out,
        &HeldOpened {
            cookies: cookies.clone(),
            active: spec.active,
            open_ms,
        },
    )?;
    let mut closed = false;
    for cmd in commands.lines() {
        let cmd = cmd.map_err(io_err("reading a command"))?;
        match cmd.trim() {
            "poke" => {
                for s in &mut streams[..idle_n] {
                    s.write_all(b"p")
                        .map_err(io_err("poking an idle connection"))?;
                }
                line(out, &HeldAnswer::Poked(idle_n))?;
            }
            "report" => {
                let mut flows = Vec::with_capacity(streams.len());
                for (s, &cookie) in streams.iter().zip(&cookies) {
                    let info = tcpinfo::tcp_info(s).map_err(io_err("TCP_INFO"))?;
                    flows.push(HeldFlow {
                        cookie,
                        snd_cwnd: info.snd_cwnd,
                        max_pacing_rate: info.max_pacing_rate,
                        bytes_acked: info.bytes_acked,
                    });
                }
                line(out, &HeldAnswer::Report(flows))?;
            }
            "close" => {
                closed = true;
                break;
            }
            other => return Err(HeldError::Protocol(format!("unknown command {other:?}"))),
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer
        .join()
        .map_err(|_| HeldError::Protocol("the writer thread panicked".into()))?;
    let n = streams.len();
    for s in &streams {
        s.shutdown(std::net::Shutdown::Both).ok();
    }
    drop(streams);
    if closed {
        line(out, &HeldAnswer::Closed(n))?;
    }
    Ok(())
}

/// Writes one JSON line and flushes it (the caller waits for it).
fn line(out: &mut dyn Write, v: &impl Serialize) -> Result<(), HeldError> {
    let text = serde_json::to_string(v).map_err(|e| HeldError::Protocol(e.to_string()))?;
    writeln!(out, "{text}").map_err(io_err("writing an answer"))?;
    out.flush().map_err(io_err("writing an answer"))
}

/// The caller's side: the receivers, and `plume-cc probe --held` running
/// in the cgroup, driven by commands.
pub struct HeldFlows {
    child: Child,
    stdin: Option<ChildStdin>,
    // The sender's lines, read by a thread so that every wait has a deadline.
    lines: mpsc::Receiver<String>,
    opened: HeldOpened,
    // Declared last: dropped after the sender is gone.
    _idle: HoldSink,
    _active: super::probe::Sink,
}

impl std::fmt::Debug for HeldFlows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldFlows")
            .field("pid", &self.child.id())
            .field("flows", &self.opened.cookies.len())
            .field("active", &self.opened.active)
            .finish()
    }
}

impl HeldFlows {
    /// Starts the receivers on loopback and `exe probe --held` in
    /// `cgroup`, and waits (up to `timeout`) until it has opened every
    /// connection. `active_bytes` per `tick` is what each active
    /// connection writes.
    pub fn open(
        exe: &Path,
        cgroup: &Path,
        flows: usize,
        active: usize,
        active_bytes: usize,
        tick: Duration,
        timeout: Duration,
    ) -> Result<Self, HeldError> {
        raise_fd_limit(flows as u64 + FD_SLACK).map_err(io_err("raising RLIMIT_NOFILE"))?;
        let lo: SocketAddr = ([127, 0, 0, 1], 0).into();
        let idle = HoldSink::start(lo).map_err(io_err("idle receiver"))?;
        let active_sink = super::probe::Sink::start(lo).map_err(io_err("active receiver"))?;
        let mut child = Command::new(exe)
            .arg("probe")
            .arg("--connect")
            .arg(idle.addr().to_string())
            .arg("--held")
            .arg(flows.to_string())
            .arg("--active")
            .arg(active.to_string())
            .arg("--active-connect")
            .arg(active_sink.addr().to_string())
            .arg("--active-bytes")
            .arg(active_bytes.to_string())
            .arg("--tick")
            .arg(format!("{}ms", tick.as_millis().max(1)))
            .arg("--cgroup")
            .arg(cgroup)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(io_err(format!("starting {} probe --held", exe.display())))?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| HeldError::Protocol("no stdout pipe".into()))?;
        let lines = read_lines(stdout);
        let mut me = Self {
            child,
            stdin,
            lines,
            opened: HeldOpened {
                cookies: Vec::new(),
                active: 0,
                open_ms: 0,
            },
            _idle: idle,
            _active: active_sink,
        };
        me.opened = me.read_line(timeout)?;
        if me.opened.cookies.len() != flows {
            return Err(HeldError::Protocol(format!(
                "{} connections opened of {flows}",
                me.opened.cookies.len()
            )));
        }
        // Every receiving end is accepted, so each connection is complete
        // on both sides before anyone counts it.
        let deadline = Instant::now() + timeout;
        while me._idle.held() < flows - active {
            if Instant::now() >= deadline {
                return Err(HeldError::Protocol(format!(
                    "the idle receiver accepted {} of {} connections",
                    me._idle.held(),
                    flows - active
                )));
            }
            thread::sleep(Duration::from_millis(5));
        }
        Ok(me)
    }

    /// What was opened.
    pub fn opened(&self) -> &HeldOpened {
        &self.opened
    }

    /// The cookies of the idle connections.
    pub fn idle_cookies(&self) -> &[u64] {
        let n = self.opened.cookies.len() - self.opened.active;
        &self.opened.cookies[..n]
    }

    /// The cookies of the active connections.
    pub fn active_cookies(&self) -> &[u64] {
        let n = self.opened.cookies.len() - self.opened.active;
        &self.opened.cookies[n..]
    }

    fn read_line<T: serde::de::DeserializeOwned>(
        &mut self,
        timeout: Duration,
    ) -> Result<T, HeldError> {
        let s = match self.lines.recv_timeout(timeout) {
            Ok(s) => s,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(HeldError::Protocol(format!("no answer within {timeout:?}")))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = self.child.try_wait().ok().flatten();
                return Err(HeldError::Protocol(format!(
                    "the sender exited ({status:?}) without answering"
                )));
            }
        };
        serde_json::from_str(s.trim())
            .map_err(|e| HeldError::Protocol(format!("bad answer {:?}: {e}", s.trim())))
    }

    /// Sends one command and waits for its answer (a report of 10,000
    /// sockets takes tens of milliseconds; a minute means a stuck sender).
    fn command(&mut self, cmd: &str) -> Result<HeldAnswer, HeldError> {
        let timeout = Duration::from_secs(60);
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| HeldError::Protocol("already closed".into()))?;
        writeln!(stdin, "{cmd}")
            .and_then(|()| stdin.flush())
            .map_err(io_err(format!("sending {cmd}")))?;
        self.read_line(timeout)
    }

    /// Every idle connection sends one byte (so each has a callback soon:
    /// the ACK's RTT callback). Returns how many were poked.
    pub fn poke(&mut self) -> Result<usize, HeldError> {
        match self.command("poke")? {
            HeldAnswer::Poked(n) => Ok(n),
            other => Err(HeldError::Protocol(format!("poke answered {other:?}"))),
        }
    }

    /// Every connection's TCP_INFO, in the order of the cookies.
    pub fn report(&mut self) -> Result<Vec<HeldFlow>, HeldError> {
        match self.command("report")? {
            HeldAnswer::Report(v) => Ok(v),
            other => Err(HeldError::Protocol(format!("report answered {other:?}"))),
        }
    }

    /// Closes every connection and waits for the sender to exit. Returns
    /// how many it closed.
    pub fn close(mut self) -> Result<usize, HeldError> {
        let n = match self.command("close")? {
            HeldAnswer::Closed(n) => n,
            other => return Err(HeldError::Protocol(format!("close answered {other:?}"))),
        };
        drop(self.stdin.take());
        let status = self
            .child
            .wait()
            .map_err(io_err("waiting for the sender"))?;
        if !status.success() {
            return Err(HeldError::Protocol(format!(
                "the sender exited with {status}"
            )));
        }
        Ok(n)
    }
}

/// A thread forwarding `stdout`'s lines; the channel closes at end of file.
fn read_lines(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

impl Drop for HeldFlows {
    fn drop(&mut self) {
        // A caller that did not `close` (a failed test): end the sender,
        // which closes its sockets.
        drop(self.stdin.take());
        if self.child.try_wait().ok().flatten().is_none() {
            self.child.kill().ok();
        }
        self.child.wait().ok();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sender side over loopback without a cgroup: every connection
    /// opens and reports its own socket, pokes reach the idle receiver,
    /// the active connections move data, close closes them all.
    #[test]
    fn held_flows_open_report_poke_and_close() {
        let lo: SocketAddr = ([127, 0, 0, 1], 0).into();
        let idle = HoldSink::start(lo).unwrap();
        let active = super::super::probe::Sink::start(lo).unwrap();
        let spec = HeldSpec {
            idle_to: idle.addr(),
            active_to: active.addr(),
            cgroup: None,
            flows: 20,
            active: 2,
            active_bytes: 4096,
            tick: Duration::from_millis(5),
        };
        let (cmd_tx, cmd_rx) = std::sync::mpsc::channel::<String>();
        struct Lines(std::sync::mpsc::Receiver<String>, Vec<u8>);
        impl io::Read for Lines {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.1.is_empty() {
                    match self.0.recv() {
                        Ok(l) => self.1 = format!("{l}\n").into_bytes(),
                        Err(_) => return Ok(0),
                    }
                }
                let n = buf.len().min(self.1.len());
                buf[..n].copy_from_slice(&self.1[..n]);
                self.1.drain(..n);
                Ok(n)
            }
        }
        let (out_tx, out_rx) = std::sync::mpsc::channel::<String>();
        struct Out(std::sync::mpsc::Sender<String>, Vec<u8>);
        impl Write for Out {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.1.extend_from_slice(b);
                while let Some(i) = self.1.iter().position(|&c| c == b'\n') {
                    let l: Vec<u8> = self.1.drain(..=i).collect();
                    let _ = self.0.send(String::from_utf8_lossy(&l).trim().to_owned());
                }
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let sender = thread::spawn(move || {
            run_held(
                &spec,
                BufReader::new(Lines(cmd_rx, Vec::new())),
                &mut Out(out_tx, Vec::new()),
            )
        });
        let recv = || out_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let opened: HeldOpened = serde_json::from_str(&recv()).unwrap();
        assert_eq!(opened.cookies.len(), 20);
        assert_eq!(opened.active, 2);
        let mut unique = opened.cookies.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 20, "cookies repeat: {:?}", opened.cookies);
        let deadline = Instant::now() + Duration::from_secs(5);
        while idle.held() < 18 {
            assert!(Instant::now() < deadline, "{} held", idle.held());
            thread::sleep(Duration::from_millis(5));
        }
        cmd_tx.send("poke".into()).unwrap();
        assert!(matches!(
            serde_json::from_str(&recv()).unwrap(),
            HeldAnswer::Poked(18)
        ));
        thread::sleep(Duration::from_millis(100));
        cmd_tx.send("report".into()).unwrap();
        let HeldAnswer::Report(flows) = serde_json::from_str(&recv()).unwrap() else {
            panic!("not a report");
        };
        assert_eq!(
            flows.iter().map(|f| f.cookie).collect::<Vec<_>>(),
            opened.cookies
        );
        // Idle: the SYN's byte and the poke's (tcpi_bytes_acked counts the SYN).
        for f in &flows[..18] {
            assert_eq!(f.bytes_acked, 2, "{f:?}");
            assert_eq!(f.max_pacing_rate, u64::MAX, "{f:?}");
        }
        for f in &flows[18..] {
            assert!(f.bytes_acked > 4096, "active flow moved nothing: {f:?}");
        }
        assert!(active.received() > 8192);
        cmd_tx.send("close".into()).unwrap();
        assert!(matches!(
            serde_json::from_str(&recv()).unwrap(),
            HeldAnswer::Closed(20)
        ));
        sender.join().unwrap().unwrap();
        // An unknown command is refused.
        let err = run_held(
            &HeldSpec {
                flows: 1,
                active: 0,
                ..HeldSpec {
                    idle_to: idle.addr(),
                    active_to: active.addr(),
                    cgroup: None,
                    flows: 0,
                    active: 0,
                    active_bytes: 1,
                    tick: Duration::from_millis(5),
                }
            },
            io::Cursor::new("jump\n"),
            &mut io::sink(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown command"), "{err}");
    }

    #[test]
    fn the_fd_limit_is_raised_to_what_is_asked_or_the_hard_limit() {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: a valid out pointer.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) }, 0);
        let want = r.rlim_cur + 10;
        let got = raise_fd_limit(want).unwrap();
        assert!(got >= want.min(r.rlim_max), "{got} of {want}");
        // Asking for less than is in force changes nothing.
        assert_eq!(raise_fd_limit(8).unwrap(), got);
    }
}
