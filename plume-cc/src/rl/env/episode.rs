//! What one training episode runs on: its trace window ([`SimWindow`]) and
//! its path, either drawn from [`PathRanges`] (domain randomisation) or
//! given by a [`Scenario`] that [`apply_scenario`] sets up on the
//! environment.
//!
//! Why its own file: evaluation, explanations and the sampler study set up
//! episodes exactly as training does, without a batch or a sampler; they
//! share these pieces so that a held-out score runs on the path training
//! would have drawn.

use std::sync::Arc;

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::super::scenario::Scenario;
use super::super::Env;
use crate::sim::Schedule;

/// One trace window ready for the simulator.
#[derive(Clone, Debug)]
pub struct SimWindow {
    /// The capacity schedule, starting at 0.
    pub trace: Arc<Schedule>,
    /// Mean capacity over the window, Mbit/s.
    pub mean_mbps: f64,
    /// Length, milliseconds.
    pub length_ms: u64,
    /// The window's own path, in a scenario corpus (None: the run's
    /// scenario distribution or fixed path applies).
    pub scenario: Option<Scenario>,
}

impl SimWindow {
    /// The window `[start_ms, start_ms + length_ms)` of Mahimahi timestamps
    /// `timestamps_ms`, or `None` when it holds no delivery opportunity.
    pub fn cut(timestamps_ms: &[u64], start_ms: u64, length_ms: u64) -> Option<Self> {
        let end = start_ms + length_ms;
        let ops: Vec<u64> = timestamps_ms
            .iter()
            .filter(|&&t| t > start_ms && t <= end)
            .map(|&t| t - start_ms)
            .collect();
        let n = ops.len();
        let trace = Schedule::from_ms(ops).ok()?;
        Some(Self {
            trace: Arc::new(trace),
            mean_mbps: n as f64 * 1500.0 * 8.0 / (length_ms as f64 * 1000.0),
            length_ms,
            scenario: None,
        })
    }
}

/// Per-episode randomisation of the path (domain randomisation, as in
/// Aurora and Orca): every reset draws the one-way delay and the droptail
/// limit uniformly from these inclusive ranges, so one policy learns many
/// RTTs and buffer depths. A degenerate range is a fixed value and draws
/// nothing from the random stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathRanges {
    /// One-way propagation delay, microseconds (low, high).
    pub one_way_delay_us: (u64, u64),
    /// Droptail limit, packets (low, high).
    pub queue_packets: (u32, u32),
}

impl PathRanges {
    /// The path of the next episode: (one-way delay in us, queue limit in packets).
    pub fn draw(&self, rng: &mut impl Rng) -> (u64, u32) {
        let (d0, d1) = self.one_way_delay_us;
        let (q0, q1) = self.queue_packets;
        let delay = if d1 > d0 { rng.gen_range(d0..=d1) } else { d0 };
        let queue = if q1 > q0 { rng.gen_range(q0..=q1) } else { q0 };
        (delay, queue.max(1))
    }
}

/// Sets `env` up for `sc` from its next reset on (path, competitors, loss,
/// ACK path, operating point `objective`); returns the ACK path's trace
/// (`trace` itself when the ACKs cross the same link).
pub fn apply_scenario(
    env: &mut Env,
    sc: &Scenario,
    objective: crate::policy::Objective,
    trace: &Arc<Schedule>,
) -> Option<Arc<Schedule>> {
    env.set_path(sc.one_way_delay_us, sc.queue);
    env.set_competition(&sc.competitors, sc.random_loss);
    env.set_peers(&sc.peers);
    env.set_delayed_ack(sc.delayed_ack);
    env.set_objective(objective);
    sc.ack_trace.then(|| Arc::clone(trace))
}
