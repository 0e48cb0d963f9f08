//! A Mahimahi-compatible link emulator in user space.
//!
//! The kernel here has no netem, so, like Mahimahi, the link is emulated by a
//! process: two network namespaces created by the project (`inner`, where the
//! command under test runs, and `outer`, its peer), a TUN device in each
//! (inner `100.64.0.2` ⇄ outer `100.64.0.1`), and one forwarding thread per
//! direction that replays a Mahimahi trace (1500-byte delivery opportunities
//! with byte accounting, wasted opportunities, repetition at the trace's end),
//! a droptail queue limited in packets or bytes, and a fixed one-way delay,
//! logging every packet like mm-link's `--uplink-log`.
//!
//! Uplink is inner → outer (the link, then the delay, as with
//! `mm-delay D mm-link UP DOWN -- cmd`), downlink outer → inner.
//!
//! This module must not touch the host's own network namespace or any
//! namespace it did not create; everything it creates is torn down when the
//! [`Emulator`] is dropped, and [`netns::cleanup_leftovers`] removes what a
//! crashed run left behind.

pub mod ceiling;
pub mod forward;
pub mod link;
pub mod log;
pub mod netns;
pub mod tun;

use std::{
    net::Ipv4Addr,
    os::fd::OwnedFd,
    path::PathBuf,
    process::Command,
    sync::{atomic::AtomicBool, Arc},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

pub use forward::ForwardStats;
pub use link::{DropTail, LinkStats, QueueArgError};
pub use netns::NetNs;

use link::{DelayLine, Link, Order, Pipeline};

/// Address of the inner namespace's end of the link.
pub const INNER_ADDR: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 2);
/// Address of the outer namespace's end of the link.
pub const OUTER_ADDR: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 1);

/// Errors of the emulator; each names the file, device, namespace or command.
#[derive(Debug, thiserror::Error)]
pub enum EmuError {
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A trace file is unreadable or malformed.
    #[error(transparent)]
    TraceFile(#[from] crate::trace::TraceError),
    /// A log file is malformed.
    #[error("{path}:{line}: {msg}")]
    Trace {
        /// The file.
        path: PathBuf,
        /// 1-based line (0: the file as a whole).
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// A program could not be started.
    #[error("could not start {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A command failed.
    #[error("`{cmd}` failed: {stderr}")]
    Command {
        /// The command line.
        cmd: String,
        /// Its standard error.
        stderr: String,
    },
    /// A namespace operation failed.
    #[error("network namespace {name}: {op}: {source}")]
    Netns {
        /// The namespace.
        name: String,
        /// What was attempted.
        op: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// A TUN device could not be created.
    #[error("TUN device {dev} in namespace {ns}: {source}")]
    Tun {
        /// The device.
        dev: String,
        /// The namespace.
        ns: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A forwarding thread failed.
    #[error("{direction} forwarding thread: {source}")]
    Forward {
        /// `uplink` or `downlink`.
        direction: &'static str,
        /// The cause.
        source: std::io::Error,
    },
}

/// One direction's link settings.
#[derive(Debug, Clone, Default)]
pub struct LinkConfig {
    /// The Mahimahi trace (None: unlimited, like mm-delay alone).
    pub trace: Option<PathBuf>,
    /// The bottleneck queue.
    pub queue: DropTail,
    /// Where to write the per-packet log, if anywhere.
    pub log: Option<PathBuf>,
}

/// What to emulate.
#[derive(Debug, Clone, Default)]
pub struct EmuConfig {
    /// inner → outer.
    pub uplink: LinkConfig,
    /// outer → inner.
    pub downlink: LinkConfig,
    /// Fixed one-way delay, each way.
    pub delay: Duration,
    /// Command line recorded in the logs' headers.
    pub command_line: String,
}

/// Counters of a finished emulation.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct EmuReport {
    /// inner → outer link counters.
    pub uplink: LinkStats,
    /// outer → inner link counters.
    pub downlink: LinkStats,
    /// inner → outer forwarding counters.
    pub uplink_forward: ForwardStats,
    /// outer → inner forwarding counters.
    pub downlink_forward: ForwardStats,
    /// How long the link ran, milliseconds.
    pub elapsed_ms: u64,
}

type Worker = JoinHandle<std::io::Result<(Pipeline, ForwardStats)>>;

/// A running emulated link between two fresh namespaces. Dropping it stops
/// the link and removes the namespaces; [`Emulator::stop`] does the same and
/// also reports counters and flushes the logs.
#[derive(Debug)]
pub struct Emulator {
    stem: String,
    epoch: Instant,
    stop: Arc<AtomicBool>,
    workers: Vec<(&'static str, Worker)>,
    // Declared after the workers: fds close before the namespaces go.
    inner: NetNs,
    outer: NetNs,
}

fn make_pipeline(
    cfg: &LinkConfig,
    delay: Duration,
    order: Order,
    direction: &str,
    command_line: &str,
) -> Result<Pipeline, EmuError> {
    let trace = cfg
        .trace
        .as_deref()
        .map(crate::trace::MahimahiTrace::read)
        .transpose()?
        .map(|t| Arc::new(t.schedule().clone()));
    let log = match &cfg.log {
        Some(path) => {
            let unix_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0);
            let header = vec![
                format!(
                    "plume-cc emulate ({direction}) [{}] > [{}]",
                    cfg.trace
                        .as_deref()
                        .map_or("unlimited".into(), |p| p.display().to_string()),
                    path.display()
                ),
                format!("command line: {command_line}"),
                format!("queue: {}", cfg.queue.describe()),
                format!("delay: {} ms", delay.as_secs_f64() * 1000.0),
                format!("init timestamp: {unix_ms}"),
                "flow: a TCP/UDP line ends with the outer end's port".into(),
                "base timestamp: 0".into(),
            ];
            let side = match order {
                Order::LinkThenDelay => log::PortSide::Destination,
                Order::DelayThenLink => log::PortSide::Source,
            };
            Some(log::LinkLog::create(path, &header, side)?)
        }
        None => None,
    };
    Ok(Pipeline {
        link: Link::new(trace, cfg.queue, log),
        delay: DelayLine::new(delay.as_micros() as u64),
        order,
    })
}

impl Emulator {
    /// Creates the namespaces and devices and starts forwarding.
    pub fn start(cfg: &EmuConfig) -> Result<Self, EmuError> {
        let up = make_pipeline(
            &cfg.uplink,
            cfg.delay,
            Order::LinkThenDelay,
            "uplink",
            &cfg.command_line,
        )?;
        let down = make_pipeline(
            &cfg.downlink,
            cfg.delay,
            Order::DelayThenLink,
            "downlink",
            &cfg.command_line,
        )?;
        let stem = netns::unique_stem();
        let inner = NetNs::create(&format!("{stem}-in"))?;
        let outer = NetNs::create(&format!("{stem}-out"))?;
        // Device names are unique per process and short enough for IFNAMSIZ.
        let tag = stem.trim_start_matches(netns::NS_PREFIX).replace('-', "_");
        let (in_dev, out_dev) = (format!("pi{tag}"), format!("po{tag}"));
        let in_fd: Arc<OwnedFd> = Arc::new(tun::open_tun(&inner, &in_dev)?);
        let out_fd: Arc<OwnedFd> = Arc::new(tun::open_tun(&outer, &out_dev)?);
        for (ns, dev, me, peer) in [
            (&inner, &in_dev, INNER_ADDR, OUTER_ADDR),
            (&outer, &out_dev, OUTER_ADDR, INNER_ADDR),
        ] {
            // No IPv6 link-local address: no router solicitations or MLD
            // reports on the link, only the traffic under test.
            ns.ip(&["link", "set", "dev", dev, "addrgenmode", "none"])?;
            ns.ip(&[
                "link",
                "set",
                dev,
                "mtu",
                "1500",
                "txqueuelen",
                "10000",
                "up",
            ])?;
            ns.ip(&[
                "addr",
                "add",
                &me.to_string(),
                "peer",
                &peer.to_string(),
                "dev",
                dev,
            ])?;
            ns.ip(&["route", "add", "default", "dev", dev])?;
        }
        let epoch = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let spawn = |name: &'static str, src: &Arc<OwnedFd>, dst: &Arc<OwnedFd>, p: Pipeline| {
            let (src, dst, stop) = (Arc::clone(src), Arc::clone(dst), Arc::clone(&stop));
            std::thread::Builder::new()
                .name(format!("emu-{name}"))
                .spawn(move || forward::forward(src, dst, p, epoch, stop))
                .map(|h| (name, h))
                .map_err(|source| EmuError::Forward {
                    direction: name,
                    source,
                })
        };
        let workers = vec![
            spawn("uplink", &in_fd, &out_fd, up)?,
            spawn("downlink", &out_fd, &in_fd, down)?,
        ];
        Ok(Self {
            stem,
            epoch,
            stop,
            workers,
            inner,
            outer,
        })
    }

    /// `plume-emu-PID-N`: the namespaces are `STEM-in` and `STEM-out`.
    pub fn stem(&self) -> &str {
        &self.stem
    }

    /// The namespace where the command under test runs.
    pub fn inner(&self) -> &NetNs {
        &self.inner
    }

    /// The peer namespace (the "Internet" side).
    pub fn outer(&self) -> &NetNs {
        &self.outer
    }

    /// When the link started (time 0 of the traces and the logs).
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// A command that will run inside the inner namespace, with
    /// `PLUME_EMU_*` variables describing the link set.
    pub fn inner_command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        self.inner.configure_command(&mut c);
        self.set_env(&mut c);
        c
    }

    /// A command that will run inside the outer namespace.
    pub fn outer_command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        self.outer.configure_command(&mut c);
        self.set_env(&mut c);
        c
    }

    fn set_env(&self, c: &mut Command) {
        c.env("PLUME_EMU_INNER_NS", self.inner.name())
            .env("PLUME_EMU_OUTER_NS", self.outer.name())
            .env("PLUME_EMU_INNER_ADDR", INNER_ADDR.to_string())
            .env("PLUME_EMU_OUTER_ADDR", OUTER_ADDR.to_string());
    }

    /// Stops forwarding, flushes the logs, removes the namespaces and
    /// returns the counters.
    pub fn stop(mut self) -> Result<EmuReport, EmuError> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut report = EmuReport {
            elapsed_ms: self.epoch.elapsed().as_millis() as u64,
            ..EmuReport::default()
        };
        let mut first_err = None;
        for (name, h) in self.workers.drain(..) {
            match h.join().expect("forwarding thread panicked") {
                Ok((mut p, fwd)) => {
                    let stats = p.link.stats();
                    if let Some(log) = p.link.take_log() {
                        if let Err(e) = log.finish() {
                            first_err.get_or_insert(e);
                        }
                    }
                    if name == "uplink" {
                        (report.uplink, report.uplink_forward) = (stats, fwd);
                    } else {
                        (report.downlink, report.downlink_forward) = (stats, fwd);
                    }
                }
                Err(source) => {
                    first_err.get_or_insert(EmuError::Forward {
                        direction: name,
                        source,
                    });
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for (_, h) in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}
