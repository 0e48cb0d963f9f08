//! What `bench-overhead` runs: the compared modes and the settings, with
//! the ranges they are checked against. Its own file because the command
//! line fills it and checks it before anything is attached.

use std::{path::PathBuf, time::Duration};

use serde::Serialize;

use crate::bench::BenchError;

/// One of the compared modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// No program attached.
    None,
    /// The sock_ops program in observe-only mode, no daemon.
    Observe,
    /// The daemon with its policy.
    Daemon,
}

impl Mode {
    /// All modes, in their first round's order.
    pub const ALL: [Mode; 3] = [Mode::None, Mode::Observe, Mode::Daemon];

    /// The mode's name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Mode::None => "none",
            Mode::Observe => "observe",
            Mode::Daemon => "daemon",
        }
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct OverheadConfig {
    /// Length of each transfer (iperf3 `-t`, whole seconds, at least 1).
    pub duration: Duration,
    /// Parallel flows of the client (iperf3 `-P`), 1..=128.
    pub flows: usize,
    /// Rounds; each runs every mode once. 1..=100.
    pub rounds: usize,
    /// The iperf3 program.
    pub iperf3: PathBuf,
    /// The `plume-cc` binary that has the `run` command (the daemon mode).
    pub plume_exe: PathBuf,
    /// The daemon's policy (None: its embedded default).
    pub policy: Option<PathBuf>,
    /// First TCP port for the iperf3 server (one port per run).
    pub port: u16,
    /// The client's MSS (iperf3 `-M`), bytes, in [536, 9000]; None keeps
    /// loopback's own (about 64 KB, which makes few ACKs per byte). A
    /// 1448-byte MSS, as on an Ethernet path, makes the ACK rate (and so
    /// the program's callbacks) per byte that of a real link.
    pub mss: Option<u32>,
    /// Turn the kernel's BPF statistics on during `observe` runs and report
    /// the program's mean cost per callback. They cost two clock reads per
    /// callback themselves, so they are off unless asked for.
    pub bpf_stats: bool,
}

impl OverheadConfig {
    /// Checks the ranges; the error names the field and its allowed range.
    pub fn validate(&self) -> Result<(), BenchError> {
        let secs = self.duration.as_secs_f64();
        if !(1.0..=3600.0).contains(&secs) || self.duration.subsec_nanos() != 0 {
            return Err(BenchError::Config(format!(
                "--duration {}: must be whole seconds in [1s, 3600s] (iperf3 -t)",
                humantime::format_duration(self.duration)
            )));
        }
        if !(1..=128).contains(&self.flows) {
            return Err(BenchError::Config(format!(
                "--flows {}: must be in [1, 128] (iperf3 -P)",
                self.flows
            )));
        }
        if !(1..=100).contains(&self.rounds) {
            return Err(BenchError::Config(format!(
                "--rounds {}: must be in [1, 100]",
                self.rounds
            )));
        }
        if let Some(m) = self.mss.filter(|m| !(536..=9000).contains(m)) {
            return Err(BenchError::Config(format!(
                "--mss {m}: must be in [536, 9000] bytes"
            )));
        }
        if self.port < 1024 {
            return Err(BenchError::Config(format!(
                "--port {}: must be in [1024, 65535]",
                self.port
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_name_the_field_and_range() {
        let cfg = OverheadConfig {
            duration: Duration::from_secs(5),
            flows: 1,
            rounds: 3,
            iperf3: "iperf3".into(),
            plume_exe: "plume-cc".into(),
            policy: None,
            port: 5400,
            mss: None,
            bpf_stats: false,
        };
        assert!(cfg.validate().is_ok());
        let e = OverheadConfig {
            flows: 0,
            ..cfg.clone()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("--flows") && e.contains("[1, 128]"), "{e}");
        let e = OverheadConfig {
            duration: Duration::from_millis(1500),
            ..cfg.clone()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("--duration") && e.contains("whole seconds"),
            "{e}"
        );
        let e = OverheadConfig {
            rounds: 0,
            ..cfg.clone()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("--rounds") && e.contains("[1, 100]"), "{e}");
        let e = OverheadConfig {
            mss: Some(100),
            ..cfg.clone()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("--mss") && e.contains("[536, 9000]"), "{e}");
    }
}
