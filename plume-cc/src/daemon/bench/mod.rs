//! Measurements of the datapath and the control loop
//! (`plume-cc bench-datapath`, root): control-step time by flow count, the
//! eBPF program's mean cost per callback from the kernel's BPF statistics,
//! and the daemon's CPU share at 100 flows. Printed and returned; the
//! figures in docs/BENCHMARKS.md come from this.
//!
//! One file per measurement, since each sets up its own harness (synthetic
//! map entries, a loopback transfer, a daemon process, thousands of held
//! connections) and shares only what is kept here: the error type, and the
//! timed control steps of the synthetic and the real-flows loop.
//! - `synthetic`: the synthetic flows, and the control step timed over
//!   them in the map (`control_loop`);
//! - `decide`: the learned policy's decide step alone (`bench-decide`, no
//!   maps, no root);
//! - `ebpf`: the sock_ops program's cost per callback;
//! - `cpu`: the daemon's CPU share with open flows;
//! - `real_flows`: the control loop over real loopback connections.

mod cpu;
mod decide;
mod ebpf;
mod real_flows;
mod synthetic;

pub use cpu::{daemon_cpu, DaemonCpu};
pub use decide::{decide, DecideRow};
pub use ebpf::{ebpf_cost, set_bpf_stats, EbpfCost};
pub use real_flows::{real_flows, RealFlows};
pub use synthetic::{advance_synthetic_flows, control_loop, synthetic_stats, LoopRow};

use std::{
    io,
    net::{Ipv4Addr, SocketAddr},
};

use super::control::StepError;
use super::LoadPolicyError;
use crate::datapath::{cgroup::CgroupError, held::HeldError, DatapathError};
use crate::policy::PolicyError;

/// Why a measurement of `bench-datapath` or `bench-decide` failed: the
/// harness could not run (cgroup, datapath, policy, processes), or it ran
/// and saw something that makes its figures meaningless (the rest).
#[derive(Debug, thiserror::Error)]
pub enum DaemonBenchError {
    /// Creating or removing the benchmark's cgroup failed.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// Loading, attaching, reading or writing the datapath failed.
    #[error(transparent)]
    Datapath(#[from] DatapathError),
    /// The daemon's policy could not be loaded.
    #[error(transparent)]
    LoadPolicy(#[from] LoadPolicyError),
    /// Loading a policy file, or a policy's decide step, failed.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// A control step failed.
    #[error(transparent)]
    Step(#[from] StepError),
    /// The held real connections failed.
    #[error(transparent)]
    Held(#[from] HeldError),
    /// A file, socket or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was attempted.
        what: String,
        /// The system error.
        source: io::Error,
    },
    /// A control step read another number of flows than the map holds.
    #[error("expected {expected} flows, read {read}")]
    FlowCount {
        /// Flows in the map.
        expected: usize,
        /// Flows the step read.
        read: usize,
    },
    /// The flow map had no slot for a synthetic flow.
    #[error("no slot for synthetic flow {0}")]
    NoSlot(usize),
    /// The policy decided for another number of flows than it was given.
    #[error("{decisions} decisions for {flows} flows")]
    Decisions {
        /// Targets returned.
        decisions: usize,
        /// Flows given.
        flows: usize,
    },
    /// The kernel's run statistics counted no run of the program.
    #[error("the program never ran (is bpf_stats_enabled honoured?)")]
    NeverRan,
    /// Not every real connection was registered in the flow map.
    #[error("{registered} of {flows} connections registered")]
    Unregistered {
        /// Connections found in the map.
        registered: usize,
        /// Connections opened.
        flows: usize,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> DaemonBenchError {
    let what = what.into();
    move |source| DaemonBenchError::Io { what, source }
}

/// The loopback sink's address: any free port.
fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

fn median(v: &mut [f64]) -> f64 {
    crate::stats::quantile_of(v, 0.5)
}

/// The timed control steps of one benchmark, microseconds per part (the
/// synthetic loop and the real-flows bench time steps alike).
#[derive(Default)]
struct StepSamples {
    read: Vec<f64>,
    decide: Vec<f64>,
    write: Vec<f64>,
    total: Vec<f64>,
}

impl StepSamples {
    /// Records `s` after checking it read `flows` flows.
    fn push(
        &mut self,
        s: &super::control::StepTiming,
        flows: usize,
    ) -> Result<(), DaemonBenchError> {
        if s.flows != flows {
            return Err(DaemonBenchError::FlowCount {
                expected: flows,
                read: s.flows,
            });
        }
        self.read.push(s.read.as_secs_f64() * 1e6);
        self.decide.push(s.decide.as_secs_f64() * 1e6);
        self.write.push(s.write.as_secs_f64() * 1e6);
        self.total
            .push((s.read + s.decide + s.write).as_secs_f64() * 1e6);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_step_that_read_another_flow_count_is_refused() {
        let mut t = StepSamples::default();
        let step = |flows| super::super::control::StepTiming {
            flows,
            read: Duration::from_micros(1),
            decide: Duration::from_micros(2),
            write: Duration::from_micros(3),
        };
        t.push(&step(3), 3).unwrap();
        let e = t.push(&step(2), 3).unwrap_err();
        assert!(
            matches!(
                e,
                DaemonBenchError::FlowCount {
                    expected: 3,
                    read: 2
                }
            ),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "expected 3 flows, read 2");
        assert_eq!(t.total, vec![6.0], "the refused step is not recorded");
    }
}
