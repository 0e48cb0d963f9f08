//! What a benchmark runs: traces and the ACK path ([`Downlink`]), the sweep
//! of one-way delays and queues ([`Setting`], [`QueueSpec`]), the flows of a
//! run ([`BenchConfig::flow_plan`]: the scheme's, staggered, and the
//! competing kernel flows), and every check that can fail before the first
//! run ([`BenchConfig::validate`]).

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

use super::{io_err, trace_name, BenchError, Scheme};
use crate::emu::{DropTail, QueueArgError};
use crate::trace::MahimahiTrace;

/// What carries the ACKs: the reverse direction of the emulated link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Downlink {
    /// The run's own trace (mm-link with the same file twice).
    #[default]
    SameAsUplink,
    /// No bottleneck: only the fixed delay.
    Unlimited,
    /// This trace for every run.
    Trace(PathBuf),
}

impl Downlink {
    /// Parses `--downlink`: `same`, `unlimited` or a trace file.
    pub fn parse(s: &str) -> Self {
        match s.trim() {
            "" | "same" => Self::SameAsUplink,
            "unlimited" | "infinite" => Self::Unlimited,
            path => Self::Trace(path.into()),
        }
    }

    /// The downlink trace of a run on uplink `uplink` (None: unlimited).
    pub fn trace_for(&self, uplink: &Path) -> Option<PathBuf> {
        match self {
            Self::SameAsUplink => Some(uplink.to_owned()),
            Self::Unlimited => None,
            Self::Trace(p) => Some(p.clone()),
        }
    }

    /// For reports: `same`, `unlimited` or the trace's file name.
    pub fn describe(&self) -> String {
        match self {
            Self::SameAsUplink => "same".into(),
            Self::Unlimited => "unlimited".into(),
            Self::Trace(p) => trace_name(p),
        }
    }
}

/// A bottleneck queue as the benchmark is given it: fixed, or in multiples
/// of the path's bandwidth-delay product.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum QueueSpec {
    /// A droptail queue of fixed size (or unlimited).
    Fixed(DropTail),
    /// `bdp=X`: X times the trace's mean capacity times the round trip
    /// (twice the one-way delay), in 1500-byte packets, at least 1.
    Bdp(f64),
}

/// Why a `--queue` value was refused; each names the queue as given.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueueSpecError {
    /// `bdp=X` with X not a number.
    #[error("queue {spec:?}: {value:?} is not a number of BDPs")]
    NotBdps {
        /// The queue as given.
        spec: String,
        /// The multiple as given.
        value: String,
    },
    /// `bdp=X` with X not positive.
    #[error("queue {spec:?}: the BDP multiple must be positive")]
    NonPositiveBdps {
        /// The queue as given.
        spec: String,
    },
    /// A droptail queue's arguments.
    #[error(transparent)]
    Droptail(#[from] QueueArgError),
    /// An empty list.
    #[error("--queue needs at least one queue")]
    Empty,
}

/// Why a `--competing` value was refused; each names the value as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompetingError {
    /// `CC:N` with N not a number.
    #[error("--competing {spec:?}: {flows:?} is not a number of flows")]
    NotAFlowCount {
        /// The value as given.
        spec: String,
        /// The count as given.
        flows: String,
    },
    /// No controller, or zero flows.
    #[error(
        "--competing {spec:?}: give a congestion control and at least one flow (cubic, bbr:2)"
    )]
    Incomplete {
        /// The value as given.
        spec: String,
    },
}

impl QueueSpec {
    /// Parses one queue: `unlimited`, `packets=N`, `bytes=N`, `bdp=X`, or
    /// mm-link's `droptail:packets=N`.
    pub fn parse(s: &str) -> Result<Self, QueueSpecError> {
        let s = s.trim();
        if let Some(x) = s.strip_prefix("bdp=") {
            let v: f64 = x.parse().map_err(|_| QueueSpecError::NotBdps {
                spec: s.to_string(),
                value: x.to_string(),
            })?;
            if !(v.is_finite() && v > 0.0) {
                return Err(QueueSpecError::NonPositiveBdps {
                    spec: s.to_string(),
                });
            }
            return Ok(Self::Bdp(v));
        }
        match s {
            "unlimited" | "infinite" | "droptail" | "" => Ok(Self::Fixed(DropTail::default())),
            _ => Ok(Self::Fixed(DropTail::parse_args(
                s.strip_prefix("droptail:").unwrap_or(s),
            )?)),
        }
    }

    /// Parses a comma-separated list of queues (each one `KEY=VALUE`).
    pub fn parse_list(s: &str) -> Result<Vec<Self>, QueueSpecError> {
        let v = s
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(Self::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if v.is_empty() {
            return Err(QueueSpecError::Empty);
        }
        Ok(v)
    }

    /// How the queue is named in tables and folder names.
    pub fn label(&self) -> String {
        match self {
            Self::Bdp(x) => format!("bdp={x}"),
            Self::Fixed(q) => match (q.packets, q.bytes) {
                (None, None) => "unlimited".into(),
                (Some(p), None) => format!("packets={p}"),
                (None, Some(b)) => format!("bytes={b}"),
                (Some(p), Some(b)) => format!("packets={p}+bytes={b}"),
            },
        }
    }

    /// The droptail queue on `trace` with one-way `delay`.
    pub fn resolve(&self, trace: &MahimahiTrace, delay: Duration) -> DropTail {
        match *self {
            Self::Fixed(q) => q,
            Self::Bdp(x) => {
                let bdp_bytes = trace.mean_mbps() * 1e6 / 8.0 * 2.0 * delay.as_secs_f64();
                DropTail {
                    packets: Some(((x * bdp_bytes / 1500.0).round() as usize).max(1)),
                    bytes: None,
                }
            }
        }
    }
}

/// One point of a sweep: a one-way delay and a queue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Setting {
    /// One-way delay each way.
    pub delay: Duration,
    /// The bottleneck queue, both directions.
    pub queue: QueueSpec,
}

impl Setting {
    /// `20 ms, packets=100`.
    pub fn label(&self) -> String {
        format!(
            "{} ms, {}",
            self.delay.as_secs_f64() * 1000.0,
            self.queue.label()
        )
    }

    /// `20ms-packets=100`, for folder names.
    pub fn slug(&self) -> String {
        format!(
            "{}ms-{}",
            self.delay.as_secs_f64() * 1000.0,
            self.queue.label().replace('+', "-")
        )
    }
}

/// Kernel flows that share the bottleneck with the scheme under test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Competing {
    /// The kernel congestion control (`cubic`, `bbr`, `reno`).
    pub cc: String,
    /// How many such flows.
    pub flows: usize,
}

impl Competing {
    /// Parses `--competing`: `cubic`, `bbr:2`.
    pub fn parse(s: &str) -> Result<Self, CompetingError> {
        let (cc, n) = match s.trim().split_once(':') {
            Some((cc, n)) => (
                cc,
                n.parse::<usize>()
                    .map_err(|_| CompetingError::NotAFlowCount {
                        spec: s.to_string(),
                        flows: n.to_string(),
                    })?,
            ),
            None => (s.trim(), 1),
        };
        if cc.is_empty() || n == 0 {
            return Err(CompetingError::Incomplete {
                spec: s.to_string(),
            });
        }
        Ok(Self {
            cc: cc.to_string(),
            flows: n,
        })
    }

    /// `cubic` or `cubic:2`.
    pub fn label(&self) -> String {
        if self.flows == 1 {
            self.cc.clone()
        } else {
            format!("{}:{}", self.cc, self.flows)
        }
    }
}

/// The first iperf3 server port; flow i listens on `FIRST_PORT + i`.
pub const FIRST_PORT: u16 = 5201;

/// The kernel's available congestion controls
/// (`/proc/sys/net/ipv4/tcp_available_congestion_control`).
pub fn available_congestion_controls() -> Result<Vec<String>, BenchError> {
    let path = Path::new("/proc/sys/net/ipv4/tcp_available_congestion_control");
    let text = std::fs::read_to_string(path).map_err(io_err("read", path))?;
    Ok(text.split_whitespace().map(String::from).collect())
}

/// What to benchmark.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Mahimahi traces, the uplink (data direction) of their runs.
    pub traces: Vec<PathBuf>,
    /// The downlink (ACK direction) of every run.
    pub downlink: Downlink,
    /// Schemes to compare.
    pub schemes: Vec<Scheme>,
    /// Length of a run (the first flow's iperf3 test); later flows end with it.
    pub duration: Duration,
    /// One-way delays to sweep.
    pub delays: Vec<Duration>,
    /// Bottleneck queues to sweep (both directions).
    pub queues: Vec<QueueSpec>,
    /// Flows of the scheme under test per run.
    pub flows: usize,
    /// Start of flow i: i × stagger after the first.
    pub stagger: Duration,
    /// Kernel flows competing with the scheme's (they start with the first).
    pub competing: Option<Competing>,
    /// Tail of the run over which fairness and share are measured.
    pub fair_window: Duration,
    /// Repetitions per trace, setting and scheme.
    pub runs: usize,
    /// Output folder (created).
    pub out: PathBuf,
    /// The iperf3 program.
    pub iperf3: PathBuf,
    /// The plume-cc binary (for the `plume` scheme's daemon).
    pub plume_exe: PathBuf,
    /// Have every plume scheme's daemon record its flows' statistics and
    /// targets (`plume-cc run --record`) into its run's folder as
    /// `daemon-record.jsonl`. Why: a run's per-flow rates from the link say
    /// how the link was shared, not why; the recording has each flow's
    /// clamp, cwnd and rate samples, from which its anchor is replayed.
    pub record: bool,
}

/// One flow of a run, planned before it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedFlow {
    /// Index in the run (its port is `FIRST_PORT + index`).
    pub index: usize,
    /// Its server's port.
    pub port: u16,
    /// A flow of the scheme under test (false: a competing kernel flow).
    pub is_scheme: bool,
    /// The scheme's name, or the competing congestion control.
    pub label: String,
    /// When it starts, after the first flow.
    pub start: Duration,
    /// Its iperf3 test length (it ends with the run).
    pub duration: Duration,
}

impl BenchConfig {
    /// A single-setting, single-flow configuration (the common case).
    pub fn single(
        traces: Vec<PathBuf>,
        schemes: Vec<Scheme>,
        duration: Duration,
        delay: Duration,
        queue: DropTail,
        out: PathBuf,
        plume_exe: PathBuf,
    ) -> Self {
        Self {
            traces,
            downlink: Downlink::SameAsUplink,
            schemes,
            duration,
            delays: vec![delay],
            queues: vec![QueueSpec::Fixed(queue)],
            flows: 1,
            stagger: Duration::ZERO,
            competing: None,
            fair_window: Duration::from_secs(20),
            runs: 1,
            out,
            iperf3: "iperf3".into(),
            plume_exe,
            record: false,
        }
    }

    /// Every setting of the sweep: delays × queues.
    pub fn settings(&self) -> Vec<Setting> {
        self.delays
            .iter()
            .flat_map(|&delay| {
                self.queues
                    .iter()
                    .map(move |&queue| Setting { delay, queue })
            })
            .collect()
    }

    /// Flows per run, the scheme's and the competing ones.
    pub fn total_flows(&self) -> usize {
        self.flows + self.competing.as_ref().map_or(0, |c| c.flows)
    }

    /// The flows of one run of `scheme`: the scheme's first, `stagger`
    /// apart, then the competing ones, all starting with the first.
    pub fn flow_plan(&self, scheme: &Scheme) -> Vec<PlannedFlow> {
        let mut plan = Vec::with_capacity(self.total_flows());
        for i in 0..self.flows {
            let start = self.stagger * i as u32;
            plan.push(PlannedFlow {
                index: i,
                port: FIRST_PORT + i as u16,
                is_scheme: true,
                label: scheme.name().to_string(),
                start,
                duration: self.duration.saturating_sub(start),
            });
        }
        if let Some(c) = &self.competing {
            for _ in 0..c.flows {
                let i = plan.len();
                plan.push(PlannedFlow {
                    index: i,
                    port: FIRST_PORT + i as u16,
                    is_scheme: false,
                    label: c.cc.clone(),
                    start: Duration::ZERO,
                    duration: self.duration,
                });
            }
        }
        plan
    }

    /// Checks everything that can be checked before the first run, with one
    /// clear error each: counts, stagger, ports, kernel congestion controls,
    /// traces, and that a BDP queue has a capacity to multiply.
    pub fn validate(&self) -> Result<(), BenchError> {
        let bad = |m: String| Err(BenchError::Config(m));
        if self.traces.is_empty() || self.schemes.is_empty() || self.runs == 0 {
            return bad("need at least one trace, one scheme and one run".into());
        }
        if self.flows == 0 {
            return bad("--flows must be at least 1".into());
        }
        if self.duration.is_zero() {
            return bad("--duration must be positive".into());
        }
        if self.delays.is_empty() || self.queues.is_empty() {
            return bad("need at least one --delay and one --queue".into());
        }
        if self.fair_window.is_zero() {
            return bad("--fair-window must be positive".into());
        }
        let last_start = self.stagger * (self.flows as u32 - 1);
        if self.flows > 1 && last_start >= self.duration {
            return bad(format!(
                "--stagger {:?} × {} later flows starts the last flow at {:?}, \
                 not before the end of the {:?} run; shorten the stagger or lengthen --duration",
                self.stagger,
                self.flows - 1,
                last_start,
                self.duration
            ));
        }
        let free_ports = usize::from(u16::MAX - FIRST_PORT) + 1;
        if self.total_flows() > free_ports {
            return bad(format!(
                "{} flows need {} server ports, but only {free_ports} are free from port {FIRST_PORT}",
                self.total_flows(),
                self.total_flows()
            ));
        }
        let mut kernel: Vec<&str> = self
            .schemes
            .iter()
            .filter_map(|s| match s {
                Scheme::Kernel(cc) => Some(cc.as_str()),
                Scheme::Plume { .. } => None,
            })
            .collect();
        if let Some(c) = &self.competing {
            kernel.push(&c.cc);
        }
        if !kernel.is_empty() {
            let have = available_congestion_controls()?;
            if let Some(missing) = kernel.iter().find(|cc| !have.iter().any(|h| h == *cc)) {
                return bad(format!(
                    "this kernel has no congestion control {missing:?} \
                     (tcp_available_congestion_control: {})",
                    have.join(" ")
                ));
            }
        }
        if let Downlink::Trace(t) = &self.downlink {
            MahimahiTrace::read(t)?;
        }
        let has_bdp = self.queues.iter().any(|q| matches!(q, QueueSpec::Bdp(_)));
        for t in &self.traces {
            let trace = MahimahiTrace::read(t)?; // fail before any run on a bad trace
            if has_bdp && trace.mean_mbps().partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
                return bad(format!(
                    "a bdp= queue needs a trace with capacity; {} has none",
                    t.display()
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downlink_choices() {
        let up = Path::new("traces/a.trace");
        assert_eq!(Downlink::parse("same"), Downlink::SameAsUplink);
        assert_eq!(Downlink::parse("same").trace_for(up), Some(up.to_owned()));
        assert_eq!(Downlink::parse("unlimited").trace_for(up), None);
        let fixed = Downlink::parse("/tmp/b.trace");
        assert_eq!(fixed.trace_for(up), Some(PathBuf::from("/tmp/b.trace")));
        assert_eq!(fixed.describe(), "b.trace");
    }

    fn planned(cfg: &BenchConfig) -> Vec<(u16, bool, u64, u64)> {
        cfg.flow_plan(&Scheme::Kernel("cubic".into()))
            .iter()
            .map(|f| (f.port, f.is_scheme, f.start.as_secs(), f.duration.as_secs()))
            .collect()
    }

    fn config() -> BenchConfig {
        BenchConfig::single(
            vec![PathBuf::from("/nonexistent.trace")],
            vec![Scheme::Kernel("cubic".into())],
            Duration::from_secs(30),
            Duration::from_millis(20),
            DropTail::default(),
            PathBuf::from("/tmp/x"),
            PathBuf::from("plume-cc"),
        )
    }

    #[test]
    fn flows_are_staggered_and_competitors_start_first() {
        let mut cfg = config();
        cfg.flows = 3;
        cfg.stagger = Duration::from_secs(10);
        cfg.competing = Some(Competing::parse("bbr:2").unwrap());
        assert_eq!(
            planned(&cfg),
            vec![
                (5201, true, 0, 30),
                (5202, true, 10, 20),
                (5203, true, 20, 10),
                (5204, false, 0, 30),
                (5205, false, 0, 30),
            ]
        );
    }

    #[test]
    fn bad_settings_are_refused_before_any_run() {
        let msg = |cfg: &BenchConfig| cfg.validate().unwrap_err().to_string();
        let mut cfg = config();
        cfg.flows = 0;
        assert!(msg(&cfg).contains("--flows"), "{}", msg(&cfg));
        let mut cfg = config();
        cfg.flows = 3;
        cfg.stagger = Duration::from_secs(15);
        assert!(msg(&cfg).contains("--stagger"), "{}", msg(&cfg));
        let mut cfg = config();
        cfg.flows = 70_000;
        assert!(msg(&cfg).contains("ports"), "{}", msg(&cfg));
        let mut cfg = config();
        cfg.competing = Some(Competing::parse("nosuchcc").unwrap());
        assert!(msg(&cfg).contains("nosuchcc"), "{}", msg(&cfg));
        assert_eq!(
            Competing::parse("cubic:0"),
            Err(CompetingError::Incomplete {
                spec: "cubic:0".into()
            })
        );
        assert_eq!(
            Competing::parse("cubic:x"),
            Err(CompetingError::NotAFlowCount {
                spec: "cubic:x".into(),
                flows: "x".into()
            })
        );
        // A BDP queue on a trace without capacity (every line the same
        // instant would be refused by the trace parser; an unreadable trace
        // is refused too).
        let mut cfg = config();
        cfg.queues = vec![QueueSpec::parse("bdp=1").unwrap()];
        assert!(msg(&cfg).contains("nonexistent"), "{}", msg(&cfg));
    }

    #[test]
    fn queues_parse_and_bdp_resolves_from_the_trace_capacity() {
        let q = QueueSpec::parse_list("packets=20,packets=100,bdp=1,bdp=4,unlimited").unwrap();
        let labels: Vec<String> = q.iter().map(QueueSpec::label).collect();
        assert_eq!(
            labels,
            ["packets=20", "packets=100", "bdp=1", "bdp=4", "unlimited"]
        );
        assert_eq!(
            QueueSpec::parse("bdp=0"),
            Err(QueueSpecError::NonPositiveBdps {
                spec: "bdp=0".into()
            })
        );
        assert!(matches!(
            QueueSpec::parse("bdp=x"),
            Err(QueueSpecError::NotBdps { value, .. }) if value == "x"
        ));
        assert!(matches!(
            QueueSpec::parse("frames=3"),
            Err(QueueSpecError::Droptail(QueueArgError::UnknownKey { key })) if key == "frames"
        ));
        assert_eq!(QueueSpec::parse_list(" , "), Err(QueueSpecError::Empty));
        // 12 Mbit/s, 20 ms each way: a 40 ms RTT holds 60,000 bytes, 40 packets.
        let t = MahimahiTrace::parse(Path::new("t"), "1\n").unwrap();
        let d = Duration::from_millis(20);
        assert_eq!(q[2].resolve(&t, d).packets, Some(40));
        assert_eq!(q[3].resolve(&t, d).packets, Some(160));
        assert_eq!(q[0].resolve(&t, d).packets, Some(20));
        let s = Setting {
            delay: d,
            queue: q[2],
        };
        assert_eq!(
            (s.label().as_str(), s.slug().as_str()),
            ("20 ms, bdp=1", "20ms-bdp=1")
        );
    }
}
