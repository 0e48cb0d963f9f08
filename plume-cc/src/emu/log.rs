//! The per-packet link log, in mm-link's `--uplink-log` format, and a reader
//! for it.
//!
//! Lines (times are integer milliseconds since the link's start):
//! `T # 1500` a delivery opportunity, `T + SIZE` an arrival at the queue,
//! `T - SIZE DELAY` a departure after `DELAY` ms in the link, `T d SIZE` a
//! droptail drop; `#` lines at the top are a header. The writer must stay
//! cheap (buffered, no per-line allocation); it never decides anything.
//!
//! One extension, so that a benchmark can tell its flows apart from the link
//! itself: a TCP or UDP packet's line ends with one more field, the port of
//! the flow's *outer* end (the destination port on the uplink, the source
//! port on the downlink: the server's port, one per iperf3 flow). mm-graph
//! and other readers of mm-link's format split on whitespace and ignore a
//! trailing field.

use std::{
    fs::File,
    io::{self, BufRead as _, BufWriter, Write as _},
    path::{Path, PathBuf},
};

use super::EmuError;

/// Buffered writer of one direction's log.
#[derive(Debug)]
pub struct LinkLog {
    path: PathBuf,
    w: BufWriter<File>,
    error: Option<io::Error>,
    side: PortSide,
}

/// Which port of a packet names its flow in the log: the outer end's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PortSide {
    /// The destination port (uplink: inner → outer).
    #[default]
    Destination,
    /// The source port (downlink: outer → inner).
    Source,
}

/// The TCP or UDP port on `side` of the IPv4 datagram `ip`; None for other
/// protocols, non-first fragments and truncated headers.
pub fn flow_port(ip: &[u8], side: PortSide) -> Option<u16> {
    // RFC 791: version/IHL in byte 0, fragment offset in bytes 6-7,
    // protocol in byte 9; the transport header starts at IHL * 4.
    if ip.len() < 20 || ip[0] >> 4 != 4 || !matches!(ip[9], 6 | 17) {
        return None;
    }
    if u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff != 0 {
        return None;
    }
    // RFC 793 / RFC 768: source port, then destination port.
    let at = usize::from(ip[0] & 0x0f) * 4
        + match side {
            PortSide::Source => 0,
            PortSide::Destination => 2,
        };
    ip.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]))
}

impl LinkLog {
    /// Creates `path` and writes the header; `side` picks the port that
    /// names a packet's flow.
    pub fn create(path: &Path, header: &[String], side: PortSide) -> Result<Self, EmuError> {
        let io_err = |source| EmuError::Io {
            op: "create log",
            path: path.to_owned(),
            source,
        };
        let f = File::create(path).map_err(io_err)?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        for h in header {
            writeln!(w, "# {h}").map_err(io_err)?;
        }
        Ok(Self {
            path: path.to_owned(),
            w,
            error: None,
            side,
        })
    }

    fn line(&mut self, args: std::fmt::Arguments<'_>) {
        if self.error.is_none() {
            if let Err(e) = self.w.write_fmt(args) {
                self.error = Some(e);
            }
        }
    }

    /// A delivery opportunity at `t_ms`.
    pub fn opportunity(&mut self, t_ms: u64) {
        self.line(format_args!("{t_ms} # 1500\n"));
    }

    fn port_field(&self, ip: &[u8]) -> PortField {
        PortField(flow_port(ip, self.side))
    }

    /// An arrival of the datagram `ip` at `t_us`.
    pub fn arrival(&mut self, t_us: u64, ip: &[u8]) {
        let port = self.port_field(ip);
        self.line(format_args!("{} + {}{port}\n", t_us / 1000, ip.len()));
    }

    /// A departure at `t_us` of the datagram `ip` that arrived at `arrival_us`.
    pub fn departure(&mut self, t_us: u64, arrival_us: u64, ip: &[u8]) {
        let (t, a) = (t_us / 1000, arrival_us / 1000);
        let port = self.port_field(ip);
        self.line(format_args!("{t} - {} {}{port}\n", ip.len(), t - a));
    }

    /// A drop of the datagram `ip` at `t_us`.
    pub fn drop(&mut self, t_us: u64, ip: &[u8]) {
        let port = self.port_field(ip);
        self.line(format_args!("{} d {}{port}\n", t_us / 1000, ip.len()));
    }

    /// Flushes the file; reports the first write error, naming the file.
    pub fn finish(mut self) -> Result<PathBuf, EmuError> {
        let r = match self.error.take() {
            Some(e) => Err(e),
            None => self.w.flush(),
        };
        r.map_err(|source| EmuError::Io {
            op: "write log",
            path: self.path.clone(),
            source,
        })?;
        Ok(self.path)
    }
}

/// The optional trailing port field (nothing for a packet without one).
struct PortField(Option<u16>);

impl std::fmt::Display for PortField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(p) => write!(f, " {p}"),
            None => Ok(()),
        }
    }
}

/// One event read back from a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogEvent {
    /// A delivery opportunity (time ms).
    Opportunity {
        /// When, ms.
        t_ms: u64,
    },
    /// An arrival.
    Arrival {
        /// When, ms.
        t_ms: u64,
        /// Packet size, bytes.
        size: u32,
        /// The flow's outer port (None: not TCP/UDP, or an mm-link log).
        port: Option<u16>,
    },
    /// A departure.
    Departure {
        /// When, ms.
        t_ms: u64,
        /// Packet size, bytes.
        size: u32,
        /// Time spent in the link (queueing and transmission), ms.
        delay_ms: u64,
        /// The flow's outer port (None: not TCP/UDP, or an mm-link log).
        port: Option<u16>,
    },
    /// A drop.
    Drop {
        /// When, ms.
        t_ms: u64,
        /// Packet size, bytes.
        size: u32,
        /// The flow's outer port (None: not TCP/UDP, or an mm-link log).
        port: Option<u16>,
    },
}

/// Reads every event of the log at `path`; errors name the file and line.
pub fn read_log(path: &Path) -> Result<Vec<LogEvent>, EmuError> {
    let f = File::open(path).map_err(|source| EmuError::Io {
        op: "open log",
        path: path.to_owned(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, line) in io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|source| EmuError::Io {
            op: "read log",
            path: path.to_owned(),
            source,
        })?;
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let bad = || EmuError::Trace {
            path: path.to_owned(),
            line: i + 1,
            msg: format!("not a link log line: {line:?}"),
        };
        let mut it = line.split_ascii_whitespace();
        let t_ms: u64 = it.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let kind = it.next().ok_or_else(bad)?;
        // At most three numbers follow the kind (departure: size, delay,
        // port); the port is the optional last one.
        let mut nums = [0u64; 3];
        let mut n = 0;
        for tok in it {
            let slot = nums.get_mut(n).ok_or_else(bad)?;
            *slot = tok.parse().map_err(|_| bad())?;
            n += 1;
        }
        let port = |v: u64| u16::try_from(v).map(Some).map_err(|_| bad());
        let size = nums[0] as u32;
        let ev = match (kind, n) {
            // The opportunity's size, always 1500, and never a port.
            ("#", 1) => LogEvent::Opportunity { t_ms },
            ("+", 1 | 2) => LogEvent::Arrival {
                t_ms,
                size,
                port: if n == 2 { port(nums[1])? } else { None },
            },
            ("-", 2 | 3) => LogEvent::Departure {
                t_ms,
                size,
                delay_ms: nums[1],
                port: if n == 3 { port(nums[2])? } else { None },
            },
            ("d", 1 | 2) => LogEvent::Drop {
                t_ms,
                size,
                port: if n == 2 { port(nums[1])? } else { None },
            },
            _ => return Err(bad()),
        };
        out.push(ev);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal IPv4 header (IHL 5) and the first 4 bytes of a transport
    /// header with ports `src` → `dst`.
    fn datagram(proto: u8, src: u16, dst: u16, len: usize) -> Vec<u8> {
        let mut d = vec![0u8; len];
        d[0] = 0x45;
        d[9] = proto;
        d[20..22].copy_from_slice(&src.to_be_bytes());
        d[22..24].copy_from_slice(&dst.to_be_bytes());
        d
    }

    #[test]
    fn ports_of_tcp_and_udp_only() {
        let tcp = datagram(6, 40000, 5202, 60);
        assert_eq!(flow_port(&tcp, PortSide::Destination), Some(5202));
        assert_eq!(flow_port(&tcp, PortSide::Source), Some(40000));
        assert_eq!(
            flow_port(&datagram(17, 1, 9, 28), PortSide::Destination),
            Some(9)
        );
        assert_eq!(
            flow_port(&datagram(1, 1, 9, 28), PortSide::Destination),
            None
        );
        let mut frag = datagram(17, 1, 9, 28);
        frag[7] = 1; // a non-first fragment has no transport header
        assert_eq!(flow_port(&frag, PortSide::Destination), None);
        assert_eq!(flow_port(&tcp[..21], PortSide::Destination), None);
    }

    #[test]
    fn port_field_round_trips_and_plain_lines_still_read() {
        let dir = std::env::temp_dir().join(format!("plume-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("up.log");
        let mut log = LinkLog::create(&path, &["test".into()], PortSide::Destination).unwrap();
        let tcp = datagram(6, 40000, 5202, 1500);
        log.opportunity(1);
        log.arrival(1_500, &tcp);
        log.departure(3_000, 1_500, &tcp);
        log.drop(4_000, &datagram(1, 0, 0, 100));
        log.finish().unwrap();
        let mut text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("\n1 + 1500 5202\n3 - 1500 2 5202\n4 d 100\n"),
            "{text}"
        );
        text.push_str("5 + 1500\n");
        std::fs::write(&path, text).unwrap();
        let ev = read_log(&path).unwrap();
        assert_eq!(
            ev,
            vec![
                LogEvent::Opportunity { t_ms: 1 },
                LogEvent::Arrival {
                    t_ms: 1,
                    size: 1500,
                    port: Some(5202)
                },
                LogEvent::Departure {
                    t_ms: 3,
                    size: 1500,
                    delay_ms: 2,
                    port: Some(5202)
                },
                LogEvent::Drop {
                    t_ms: 4,
                    size: 100,
                    port: None
                },
                LogEvent::Arrival {
                    t_ms: 5,
                    size: 1500,
                    port: None
                },
            ]
        );
        std::fs::write(&path, "1 + 1500 5202 7\n").unwrap();
        assert!(read_log(&path).is_err(), "a fifth field is refused");
    }
}
