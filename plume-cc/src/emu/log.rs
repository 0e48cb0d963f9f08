//! The per-packet link log, in mm-link's `--uplink-log` format, and a reader
//! for it.
//!
//! Lines (times are integer milliseconds since the link's start):
//! `T # 1500` a delivery opportunity, `T + SIZE` an arrival at the queue,
//! `T - SIZE DELAY` a departure after `DELAY` ms in the link, `T d SIZE` a
//! droptail drop; `#` lines at the top are a header. The writer must stay
//! cheap (buffered, no per-line allocation); it never decides anything.

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
}

impl LinkLog {
    /// Creates `path` and writes the header.
    pub fn create(path: &Path, header: &[String]) -> Result<Self, EmuError> {
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

    /// An arrival of `size` bytes at `t_us`.
    pub fn arrival(&mut self, t_us: u64, size: usize) {
        self.line(format_args!("{} + {size}\n", t_us / 1000));
    }

    /// A departure at `t_us` of a packet that arrived at `arrival_us`.
    pub fn departure(&mut self, t_us: u64, arrival_us: u64, size: usize) {
        let (t, a) = (t_us / 1000, arrival_us / 1000);
        self.line(format_args!("{t} - {size} {}\n", t - a));
    }

    /// A drop of `size` bytes at `t_us`.
    pub fn drop(&mut self, t_us: u64, size: usize) {
        self.line(format_args!("{} d {size}\n", t_us / 1000));
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
    },
    /// A departure.
    Departure {
        /// When, ms.
        t_ms: u64,
        /// Packet size, bytes.
        size: u32,
        /// Time spent in the link (queueing and transmission), ms.
        delay_ms: u64,
    },
    /// A drop.
    Drop {
        /// When, ms.
        t_ms: u64,
        /// Packet size, bytes.
        size: u32,
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
        let mut num =
            || -> Result<u64, EmuError> { it.next().and_then(|s| s.parse().ok()).ok_or_else(bad) };
        let ev = match kind {
            "#" => LogEvent::Opportunity { t_ms },
            "+" => LogEvent::Arrival {
                t_ms,
                size: num()? as u32,
            },
            "-" => LogEvent::Departure {
                t_ms,
                size: num()? as u32,
                delay_ms: num()?,
            },
            "d" => LogEvent::Drop {
                t_ms,
                size: num()? as u32,
            },
            _ => return Err(bad()),
        };
        out.push(ev);
    }
    Ok(out)
}
