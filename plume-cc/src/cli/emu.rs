//! `plume-cc emulate`: the emulator's command line, with flags after
//! mm-link/mm-delay (`--uplink`, `--downlink`, `--delay`, `--uplink-queue`,
//! `--uplink-queue-args`, `--uplink-log`, ...; the downlink ones alike).
//!
//! Parsing and printing only; the link is [`plume_cc::emu::Emulator`].

use super::args::{whole, DurationArg};
use plume_cc::args::BareUnit;
use std::{
    path::PathBuf,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use anyhow::{bail, Context as _};

use plume_cc::emu::{link::DropTail, netns, EmuConfig, Emulator, LinkConfig, OUTER_ADDR};

/// Run a command behind an emulated link (Mahimahi's mm-delay + mm-link).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The command runs in the inner namespace (address 100.64.0.2); its peer \
    namespace is $PLUME_EMU_OUTER_NS at $PLUME_EMU_OUTER_ADDR (100.64.0.1), e.g.\n  \
    plume-cc emulate --uplink up.trace --downlink down.trace --delay 20ms -- \
    sh -c 'ip netns exec $PLUME_EMU_OUTER_NS iperf3 -s -1 -D; sleep 0.3; iperf3 -c $PLUME_EMU_OUTER_ADDR'"
)]
pub struct Args {
    /// Uplink trace (inner → outer), Mahimahi format; none: unlimited.
    #[arg(long, value_name = "TRACE")]
    pub uplink: Option<PathBuf>,
    /// Downlink trace (outer → inner), Mahimahi format; none: unlimited.
    #[arg(long, value_name = "TRACE")]
    pub downlink: Option<PathBuf>,
    /// Fixed one-way delay each way (e.g. 20ms; mm-delay's argument).
    #[arg(long, value_name = "DURATION", default_value = "0ms", value_parser = DurationArg::legacy(BareUnit::Ms))]
    pub delay: Duration,
    /// Uplink queue type (only `droptail`; `infinite` means no limit).
    #[arg(long, default_value = "droptail")]
    pub uplink_queue: String,
    /// Uplink queue limits: `packets=N`, `bytes=N` or both, comma separated.
    #[arg(long, value_name = "ARGS", default_value = "")]
    pub uplink_queue_args: String,
    /// Downlink queue type (only `droptail`; `infinite` means no limit).
    #[arg(long, default_value = "droptail")]
    pub downlink_queue: String,
    /// Downlink queue limits: `packets=N`, `bytes=N` or both.
    #[arg(long, value_name = "ARGS", default_value = "")]
    pub downlink_queue_args: String,
    /// Per-packet log of the uplink (mm-link format).
    #[arg(long, value_name = "FILE")]
    pub uplink_log: Option<PathBuf>,
    /// Per-packet log of the downlink.
    #[arg(long, value_name = "FILE")]
    pub downlink_log: Option<PathBuf>,
    /// Remove namespaces left behind by emulators that died, then exit
    /// (unless a command is given).
    #[arg(long)]
    pub cleanup: bool,
    /// With --cleanup: remove every emulator namespace, also live ones.
    #[arg(long, requires = "cleanup")]
    pub all: bool,
    /// Measure the emulator's own ceiling instead of running a command: a
    /// saturating UDP flow of small datagrams for this long (e.g. 5s) over
    /// the link (use no traces for an unlimited link); prints packets/s.
    #[arg(long, value_name = "DURATION", value_parser = DurationArg::legacy(BareUnit::S))]
    pub measure_ceiling: Option<Duration>,
    /// Pace --measure-ceiling's sender at this many datagrams per second
    /// (default: as fast as it can).
    #[arg(long, allow_negative_numbers = true, value_name = "PPS", value_parser = whole::<u64>())]
    pub ceiling_rate: Option<u64>,
    /// UDP payload size for --measure-ceiling, bytes.
    #[arg(long, allow_negative_numbers = true, default_value_t = 18, value_parser = whole::<usize>())]
    pub ceiling_payload: usize,
    /// The command to run in the inner namespace (default: $SHELL).
    #[arg(last = true)]
    pub command: Vec<String>,
}

fn queue(kind: &str, args: &str, which: &str) -> anyhow::Result<DropTail> {
    match kind {
        "droptail" => DropTail::parse_args(args).map_err(|e| {
            super::args::UsageError(format!("--{which}-queue-args {args:?}: {e}")).into()
        }),
        "infinite" => Ok(DropTail::default()),
        other => super::args::usage_bail!(
            "--{which}-queue {other:?}: only droptail and infinite are supported"
        ),
    }
}

impl Args {
    /// The emulator configuration these flags describe.
    pub fn config(&self) -> anyhow::Result<EmuConfig> {
        Ok(EmuConfig {
            uplink: LinkConfig {
                trace: self.uplink.clone(),
                queue: queue(&self.uplink_queue, &self.uplink_queue_args, "uplink")?,
                log: self.uplink_log.clone(),
            },
            downlink: LinkConfig {
                trace: self.downlink.clone(),
                queue: queue(&self.downlink_queue, &self.downlink_queue_args, "downlink")?,
                log: self.downlink_log.clone(),
            },
            delay: self.delay,
            command_line: std::env::args().collect::<Vec<_>>().join(" "),
        })
    }
}

static SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    SIGNALLED.store(true, Ordering::Relaxed);
}

/// Runs `plume-cc emulate`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    if args.cleanup {
        let removed = netns::cleanup_leftovers(args.all)?;
        eprintln!(
            "plume-cc emulate --cleanup: removed {} namespace(s){}",
            removed.len(),
            if removed.is_empty() {
                String::new()
            } else {
                format!(": {}", removed.join(", "))
            }
        );
        if args.command.is_empty() && args.measure_ceiling.is_none() {
            return Ok(());
        }
    }
    let cfg = args.config()?;
    if let Some(length) = args.measure_ceiling {
        let emu = Emulator::start(&cfg)?;
        let r = plume_cc::emu::ceiling::measure(
            &emu,
            length,
            args.ceiling_payload,
            args.ceiling_rate.filter(|&r| r > 0),
        )?;
        let report = emu.stop()?;
        println!("{}", serde_json::to_string(&r)?);
        eprintln!(
            "emulator ceiling: {:.0} packets/s forwarded ({:.0} sent/s, {}-byte datagrams); uplink thread: {} read, {} written, {:.2} µs CPU per datagram ({:.0} datagrams per CPU-second)",
            r.received_pps,
            r.sent_pps,
            r.ip_bytes,
            report.uplink_forward.read,
            report.uplink_forward.written,
            report.uplink_forward.cpu_us as f64 / report.uplink_forward.written.max(1) as f64,
            report.uplink_forward.written as f64 * 1e6 / report.uplink_forward.cpu_us.max(1) as f64
        );
        return Ok(());
    }
    let emu = Emulator::start(&cfg)?;
    let command = if args.command.is_empty() {
        vec![std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into())]
    } else {
        args.command.clone()
    };
    eprintln!(
        "plume-cc emulate: inner namespace {} (100.64.0.2), outer {} ({OUTER_ADDR}); running {:?}",
        emu.inner().name(),
        emu.outer().name(),
        command
    );
    let mut child = emu
        .inner_command(&command[0])
        .args(&command[1..])
        .spawn()
        .with_context(|| format!("starting {:?}", command[0]))?;
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let mut forwarded = false;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if SIGNALLED.load(Ordering::Relaxed) && !forwarded {
            // SAFETY: signalling our own child by its pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            forwarded = true;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let report = emu.stop()?;
    eprintln!(
        "plume-cc emulate: uplink {} packets delivered, {} dropped; downlink {} delivered, {} dropped",
        report.uplink.departures, report.uplink.drops, report.downlink.departures, report.downlink.drops
    );
    if !status.success() {
        bail!("{:?} exited with {status}", command[0]);
    }
    Ok(())
}
