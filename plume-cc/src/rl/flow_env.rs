//! The reinforcement-learning environment: one controlled flow (plus optional
//! competing flows) on a trace-driven bottleneck, stepped one monitor
//! interval at a time.
//!
//! - [`Env::reset`] takes a capacity window (a [`Schedule`], e.g. a
//!   window cut from the trace library) and a seed.
//! - [`Env::step`] applies a [`Target`] the way the sock_ops datapath applies
//!   a `FlowTarget` (a cwnd clamp and a pacing cap on top of the kernel-like
//!   base controller, see [`crate::congestion::Clamped`]), runs one monitor
//!   interval and returns the observation built by the shared
//!   [`ObservationBuilder`] from datapath-visible statistics only, and a
//!   reward's named components (throughput, queueing delay, loss), kept
//!   separate; the one reward training optimises is built from them in
//!   [`crate::rl::env`].
//! - [`Env::metrics`] gives Pantheon-style episode metrics.

use std::sync::Arc;

use crate::congestion::{CcModel, ClampHold, ClampModel, ControllerKind};
use crate::flow::FlowSample;
use crate::policy::observation::{Observation, ObservationBuilder};
use crate::policy::{Cadence, DecisionClock, Objective, Target};

use crate::policy::observation::ObservationError;
pub use crate::sim::metrics::EpisodeMetrics;
use crate::sim::metrics::{flow_metrics, FlowCounters};
use crate::sim::network::{FlowConfig, Network, NetworkConfig};
use crate::sim::{DatapathModel, MinRttSample, QueueLimit, Schedule, SimError, TimeoutModel};

/// Errors of an environment: the simulator's, the observation builder's,
/// and misuse of reset/step.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// The simulator refused a configuration or a window.
    #[error(transparent)]
    Sim(#[from] SimError),
    /// The observation builder refused a sample.
    #[error(transparent)]
    Observation(#[from] ObservationError),
    /// `step` before `reset`.
    #[error("environment stepped before reset")]
    NotReset,
    /// `step` after the episode ended.
    #[error("environment stepped after its episode ended at {end_us} us; call reset")]
    EpisodeDone {
        /// End of the episode, simulated microseconds.
        end_us: u64,
    },
    /// Parallel calls given slices of different lengths.
    #[error("expected {expected} entries (one per environment), got {got}")]
    BatchSize {
        /// Number of environments.
        expected: usize,
        /// Entries given.
        got: usize,
    },
}

/// How long a monitor interval lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MonitorInterval {
    /// A fixed duration, microseconds.
    FixedUs(u64),
    /// One smoothed RTT of the controlled flow, within bounds (microseconds).
    Srtt {
        /// Shortest interval.
        min_us: u64,
        /// Longest interval (also used before the first RTT sample).
        max_us: u64,
    },
}

/// The reward's components over one interval, in physical units.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RewardComponents {
    /// Goodput of the controlled flow, Mbit/s.
    pub throughput_mbps: f32,
    /// Mean RTT of the interval's samples minus min RTT, milliseconds.
    pub queueing_delay_ms: f32,
    /// Segments marked lost / segments sent in the interval.
    pub loss_rate: f32,
    /// The controlled flow's part of everything the bottleneck delivered in
    /// the interval (1 alone, or when nothing was delivered). In a FIFO
    /// queue a flow's bytes in the queue are in proportion to its arrivals,
    /// so `queueing_delay_ms * bottleneck_share` is the part of the queue
    /// that is the flow's own. Simulator-only knowledge: it may shape the
    /// reward, never the observation.
    pub bottleneck_share: f32,
}

/// The outcome of one [`Env::step`].
#[derive(Clone, Debug, PartialEq)]
pub struct StepResult {
    /// Observation at the end of the interval.
    pub observation: Observation,
    /// The reward's components, unweighted.
    pub components: RewardComponents,
    /// True when the episode ended with this step.
    pub done: bool,
    /// Simulated time at the end of the step, microseconds.
    pub now_us: u64,
    /// Length of the span just simulated, microseconds.
    pub interval_us: u64,
    /// Monitor intervals in the span (1 unless the cadence held the
    /// action over several).
    pub intervals: u32,
}

/// Parameters of an [`Env`].
#[derive(Clone, Debug, PartialEq)]
pub struct EnvConfig {
    /// Kernel-like controller under the policy's limits.
    pub base: ControllerKind,
    /// Uncontrolled flows sharing the bottleneck.
    pub competing: Vec<ControllerKind>,
    /// Start of each competing flow, microseconds (missing entries: 0).
    pub competing_start_us: Vec<u64>,
    /// Start of each *peer*, microseconds: a flow over the same base
    /// controller whose limits come from the same policy, each with its own
    /// observation (as the daemon runs every flow of its cgroup). Peers are
    /// acted on through [`Env::set_peer_actions`]; the trainer does not
    /// learn from their transitions, only from the controlled flow's.
    pub peer_start_us: Vec<u64>,
    /// One-way propagation delay each way, microseconds.
    pub one_way_delay_us: u64,
    /// Droptail limits of the bottleneck.
    pub queue_limit: QueueLimit,
    /// Random loss probability at the link's ingress.
    pub random_loss: f64,
    /// Receivers delay ACKs as Linux does (see [`crate::sim::network`]).
    pub delayed_ack: bool,
    /// How the controlled flows' cwnd clamps act (kernel-faithful by default).
    pub clamp_model: ClampModel,
    /// How closely every sender's controller (the policy's base and the
    /// kernel-like competitors) follows Linux's ([`CcModel`]); training's
    /// default is [`CcModel::Classic`], so that its commands reproduce.
    pub cc_model: CcModel,
    /// How the datapath sees the controlled flows and applies their limits
    /// (kernel-faithful by default: at callbacks, once per round trip).
    pub datapath_model: DatapathModel,
    /// Whether the senders undo a spurious retransmission timeout
    /// ([`TimeoutModel`]); training's default is
    /// [`TimeoutModel::Plain`], so that its commands reproduce.
    pub timeout_model: TimeoutModel,
    /// Which RTT of an ACK the senders' min RTT takes ([`MinRttSample`]);
    /// training's default is [`MinRttSample::Echoed`], so that its
    /// commands reproduce.
    pub min_rtt_sample: MinRttSample,
    /// The operating point the observations carry.
    pub objective: Objective,
    /// The observation version built (the policy's own;
    /// [`crate::policy::observation::SUPPORTED_OBSERVATION_VERSIONS`]).
    pub observation_version: u32,
    /// Monitor interval.
    pub interval: MonitorInterval,
    /// When the controlled flow gets a new decision ([`Cadence`]): with
    /// [`Cadence::PerCopy`] one [`Env::step`] runs monitor intervals, the
    /// action held, until the flow's statistics are copied again, as the
    /// daemon holds a policy of that cadence; peers hold theirs over the
    /// same span.
    pub cadence: Cadence,
    /// Episode length, microseconds; `None` plays the window once.
    pub episode_us: Option<u64>,
    /// The rate anchor's window is at least this long, microseconds: the
    /// policy's own (`ActionScaling::anchor_floor_us`), as its daemon
    /// builds its flows' observations, so that evaluating a policy whose
    /// file sets another floor simulates what the daemon does.
    pub anchor_floor_us: u64,
    /// A probe of the competition rule sends at this share of the flow's
    /// rate: the policy's own (`ActionScaling::drain_gain`), so that the
    /// detector's deadlines are the daemon's.
    pub drain_gain: f64,
    /// The policy flows of the bottleneck (the controlled flow and its
    /// peers) share the smallest min RTT among them, as the daemon's flows
    /// to one address do under the policy's `ActionScaling::path_min_rtt`:
    /// a flow that starts behind the others' queue does not take that
    /// queue for its path. Off in training from scratch; kernel-like
    /// competitors, outside the daemon's cgroup, never take part.
    pub path_min_rtt: bool,
    /// The policy flows hold a new clamp after a loss, as the daemon's
    /// datapath does under the policy's
    /// `ActionScaling::hold_clamp_after_loss` and `hold_clamp_max_srtts`
    /// (`Clamped::set_clamp_hold`). Off in training from scratch, so that
    /// its commands reproduce.
    pub clamp_hold: ClampHold,
    /// The controller the policy flows switch to in the competition
    /// rule's competitive mode (`CompetitionRule::competitive_cc`, the
    /// policy's own): a target that asks for it runs it, every other one
    /// `base`, as the daemon's datapath switches `TCP_CONGESTION`. None:
    /// always `base`.
    pub competitive_cc: Option<ControllerKind>,
}

impl Default for EnvConfig {
    fn default() -> Self {
        Self {
            base: ControllerKind::Cubic,
            competing: Vec::new(),
            competing_start_us: Vec::new(),
            peer_start_us: Vec::new(),
            one_way_delay_us: 20_000,
            queue_limit: QueueLimit::packets(1000),
            random_loss: 0.0,
            delayed_ack: false,
            clamp_model: ClampModel::default(),
            cc_model: CcModel::default(),
            datapath_model: DatapathModel::default(),
            timeout_model: TimeoutModel::default(),
            min_rtt_sample: MinRttSample::default(),
            objective: Objective::default(),
            observation_version: crate::policy::observation::OBSERVATION_VERSION,
            interval: MonitorInterval::FixedUs(20_000),
            cadence: Cadence::EveryInterval,
            episode_us: None,
            anchor_floor_us: crate::policy::observation::ANCHOR_WINDOW_MIN_US,
            drain_gain: crate::policy::competition::DRAIN_GAIN,
            path_min_rtt: false,
            clamp_hold: ClampHold::default(),
            competitive_cc: None,
        }
    }
}

impl EnvConfig {
    /// This configuration with what a policy's file decides about how its
    /// daemon runs it: the observation version it was trained on, its
    /// decision cadence, its rate anchor's window, whether its flows share
    /// a path's min RTT, and whether its datapath holds a clamp after a
    /// loss. The evaluations of a deployed policy (the matrix, sim-to-real,
    /// the examples) take these fields from here, so that a new field of
    /// the mapping cannot be forgotten at one of them (the explanations'
    /// rollouts, which set theirs one by one, once missed the hold).
    pub fn deploying(self, meta: &crate::policy::PolicyMetadata) -> Self {
        self.mapped(meta.observation.version, &meta.action_scaling)
    }

    /// [`EnvConfig::deploying`] from the observation version and the action
    /// mapping themselves: what training, which has no policy file yet,
    /// takes from its own configuration.
    pub fn mapped(
        mut self,
        observation_version: u32,
        scaling: &crate::policy::model::ActionScaling,
    ) -> Self {
        self.observation_version = observation_version;
        self.cadence = scaling.decide;
        self.anchor_floor_us = scaling.anchor_floor_us();
        self.drain_gain = scaling.drain_gain();
        self.path_min_rtt = scaling.path_min_rtt;
        self.clamp_hold = scaling.clamp_hold();
        self.competitive_cc = scaling.competition.and_then(|c| c.competitive_cc);
        self
    }
}

/// The RL environment (see the module docs).
#[derive(Debug)]
pub struct Env {
    config: EnvConfig,
    net: Option<Network>,
    builder: ObservationBuilder,
    last_counters: FlowCounters,
    /// Segments delivered by every flow on the bottleneck, at the last step.
    last_total_delivered: u64,
    end_us: u64,
    peers: Vec<Peer>,
    /// The controlled flow's decision clock ([`EnvConfig::cadence`]).
    clock: DecisionClock,
}

/// The smallest min RTT among the policy flows that have one at `now_us`
/// (the controlled flow and the peers that have started), as the daemon
/// shares it among the flows to one address (`policy::learned`'s
/// `path_key`: a flow without a min RTT yet takes no part).
fn shared_min_rtt(net: &Network, peers: &[Peer], now_us: u64) -> Option<u32> {
    let started = peers.iter().filter(|p| p.start_us < now_us).map(|p| p.flow);
    std::iter::once(0)
        .chain(started)
        .filter_map(|i| net.sender(i))
        .map(|s| s.datapath_sample(now_us).min_rtt_us)
        .filter(|&m| m > 0)
        .min()
}

/// `sample` with its min RTT lowered to `shared` where that is smaller (a
/// flow without a min RTT of its own keeps 0), as the daemon's `sample_of`.
fn with_min_rtt(mut sample: FlowSample, shared: Option<u32>) -> FlowSample {
    if let Some(m) = shared {
        sample.min_rtt_us = sample.min_rtt_us.min(m);
    }
    sample
}

/// One peer flow's state (see [`EnvConfig::peer_start_us`]).
#[derive(Clone, Debug)]
struct Peer {
    /// Its index among the network's flows.
    flow: usize,
    start_us: u64,
    builder: ObservationBuilder,
    /// Its latest observation (zeros before it starts).
    obs: Observation,
    /// The limits to apply at the next step.
    next: Target,
}

impl Env {
    /// An environment that needs [`Env::reset`] before stepping.
    pub fn new(config: EnvConfig) -> Result<Self, EnvError> {
        if let MonitorInterval::FixedUs(0) = config.interval {
            return Err(EnvError::Sim(SimError::InvalidConfig(
                "monitor interval must be positive".into(),
            )));
        }
        if let MonitorInterval::Srtt { min_us, max_us } = config.interval {
            if min_us == 0 || max_us < min_us {
                return Err(EnvError::Sim(SimError::InvalidConfig(format!(
                    "srtt interval bounds must satisfy 0 < min_us <= max_us, got {min_us}..{max_us}"
                ))));
            }
        }
        let builder =
            ObservationBuilder::with_version(config.objective, config.observation_version)?
                .with_anchor_floor_us(config.anchor_floor_us)
                .with_drain_gain(config.drain_gain);
        Ok(Self {
            config,
            net: None,
            builder,
            last_counters: FlowCounters::default(),
            last_total_delivered: 0,
            end_us: 0,
            peers: Vec::new(),
            clock: DecisionClock::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &EnvConfig {
        &self.config
    }

    /// A new flow's observation builder: the run's objective, version and
    /// anchor window floor.
    fn new_builder(&self) -> Result<ObservationBuilder, ObservationError> {
        Ok(ObservationBuilder::with_version(
            self.config.objective,
            self.config.observation_version,
        )?
        .with_anchor_floor_us(self.config.anchor_floor_us)
        .with_drain_gain(self.config.drain_gain))
    }

    /// Changes the path (one-way delay and droptail limit) from the next
    /// reset on; the episode in progress keeps its own. For training across
    /// many paths (domain randomisation).
    pub fn set_path(&mut self, one_way_delay_us: u64, queue_limit: QueueLimit) {
        self.config.one_way_delay_us = one_way_delay_us;
        self.config.queue_limit = queue_limit;
    }

    /// Changes the competing flows (kind, start in microseconds) and the
    /// random loss from the next reset on (scenario randomisation).
    pub fn set_competition(&mut self, competitors: &[(ControllerKind, u64)], random_loss: f64) {
        self.config.competing = competitors.iter().map(|c| c.0).collect();
        self.config.competing_start_us = competitors.iter().map(|c| c.1).collect();
        self.config.random_loss = random_loss;
    }

    /// Sets the peers' starts (microseconds after the controlled flow's)
    /// from the next reset on.
    pub fn set_peers(&mut self, starts_us: &[u64]) {
        self.config.peer_start_us = starts_us.to_vec();
    }

    /// Number of peers in the current episode.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Every peer's latest observation (zeros before it starts).
    pub fn peer_observations(&self) -> Vec<Observation> {
        self.peers.iter().map(|p| p.obs).collect()
    }

    /// The limits each peer gets at the next step (one per peer; extra
    /// entries are ignored, missing ones keep the peer's current limits).
    pub fn set_peer_actions(&mut self, targets: &[Target]) {
        for (p, t) in self.peers.iter_mut().zip(targets) {
            p.next = *t;
        }
    }

    /// The limits in force on flow `index` of the network and its MSS (for
    /// the action mapping); no limits and 1448 bytes before a reset.
    pub fn flow_limits_and_mss(&self, index: usize) -> (Target, u32) {
        self.net
            .as_ref()
            .and_then(|n| n.sender(index))
            .map_or((Target::unlimited(), 1448), |s| {
                (
                    Target {
                        cwnd_clamp_segments: s.controller().cwnd_clamp_segments(),
                        max_pacing_bytes_per_sec: s.controller().max_pacing_bytes_per_sec(),
                        // As the datapath reports it: the flow runs its
                        // competitive controller, not its base.
                        competitive_cc: self.config.competitive_cc.is_some()
                            && s.controller().base().name() != self.config.base.name(),
                    },
                    s.mss_bytes(),
                )
            })
    }

    /// The controlled flow's competition mode (its observation builder's).
    pub fn controlled_mode(&self) -> crate::policy::Mode {
        self.builder.mode()
    }

    /// Peer `i`'s competition mode (default for an unknown peer).
    pub fn peer_mode(&self, i: usize) -> crate::policy::Mode {
        self.peers
            .get(i)
            .map(|p| p.builder.mode())
            .unwrap_or_default()
    }

    /// The network's flow index of peer `i`.
    pub fn peer_flow(&self, i: usize) -> Option<usize> {
        self.peers.get(i).map(|p| p.flow)
    }

    /// Sets the operating point the observations carry from the next reset on.
    pub fn set_objective(&mut self, objective: Objective) {
        self.config.objective = objective;
    }

    /// Turns delayed ACKs on or off from the next reset on.
    pub fn set_delayed_ack(&mut self, on: bool) {
        self.config.delayed_ack = on;
    }

    /// Starts an episode on `window` (unlimited ACK path) with `seed`; the
    /// first interval runs without limits. Returns the observation after it.
    pub fn reset(&mut self, window: Arc<Schedule>, seed: u64) -> Result<Observation, EnvError> {
        self.reset_with_ack_trace(window, None, seed)
    }

    /// Like [`Env::reset`], with the ACK path limited by `ack_window`.
    pub fn reset_with_ack_trace(
        &mut self,
        window: Arc<Schedule>,
        ack_window: Option<Arc<Schedule>>,
        seed: u64,
    ) -> Result<Observation, EnvError> {
        let mut flows = vec![FlowConfig::new(self.config.base)];
        flows.extend(
            self.config
                .competing
                .iter()
                .enumerate()
                .map(|(i, &k)| FlowConfig {
                    start_us: self.config.competing_start_us.get(i).copied().unwrap_or(0),
                    ..FlowConfig::new(k)
                }),
        );
        // Peers come after the competitors, so competitor indices stay as
        // they were.
        let first_peer = flows.len();
        flows.extend(
            self.config
                .peer_start_us
                .iter()
                .map(|&start_us| FlowConfig {
                    start_us,
                    ..FlowConfig::new(self.config.base)
                }),
        );
        let builder = self.new_builder()?;
        self.peers = self
            .config
            .peer_start_us
            .iter()
            .enumerate()
            .map(|(i, &start_us)| Peer {
                flow: first_peer + i,
                start_us,
                builder: builder.clone(),
                obs: [0.0; crate::policy::observation::OBSERVATION_LEN],
                next: Target::unlimited(),
            })
            .collect();
        let net_config = NetworkConfig {
            one_way_delay_us: self.config.one_way_delay_us,
            queue_limit: self.config.queue_limit,
            random_loss: self.config.random_loss,
            delayed_ack: self.config.delayed_ack,
            clamp_model: self.config.clamp_model,
            cc_model: self.config.cc_model,
            clamp_hold: self.config.clamp_hold,
            datapath_model: self.config.datapath_model,
            timeout_model: self.config.timeout_model,
            min_rtt_sample: self.config.min_rtt_sample,
            flows,
            ..NetworkConfig::default()
        };
        self.end_us = self
            .config
            .episode_us
            .unwrap_or(window.period_ms().saturating_mul(1000));
        self.net = Some(Network::new(net_config, window, ack_window, seed)?);
        self.builder = self.new_builder()?;
        self.last_counters = FlowCounters::default();
        self.last_total_delivered = 0;
        self.clock = DecisionClock::default();
        // The first interval runs without limits, like a new kernel flow.
        let first = self.step(Target::unlimited())?;
        Ok(first.observation)
    }

    fn interval_us(&self, net: &Network) -> u64 {
        match self.config.interval {
            MonitorInterval::FixedUs(us) => us,
            MonitorInterval::Srtt { min_us, max_us } => {
                let srtt = net.sender(0).map_or(0, |s| s.srtt_us());
                if srtt == 0 {
                    max_us
                } else {
                    srtt.clamp(min_us, max_us)
                }
            }
        }
    }

    /// Applies `action`, simulates one monitor interval (under
    /// [`Cadence::PerCopy`], intervals until the controlled flow's next copy
    /// of statistics) and reports it, the reward's components over the
    /// whole span.
    pub fn step(&mut self, action: Target) -> Result<StepResult, EnvError> {
        let end_us = self.end_us;
        let Some(net) = self.net.as_ref() else {
            return Err(EnvError::NotReset);
        };
        if net.now_us() >= end_us {
            return Err(EnvError::EpisodeDone { end_us });
        }
        let start = net.now_us();
        let mut intervals = 0;
        let (until, observation) = loop {
            let Some(net) = self.net.as_ref() else {
                return Err(EnvError::NotReset);
            };
            let interval = self.interval_us(net).max(1);
            let Some(net) = self.net.as_mut() else {
                return Err(EnvError::NotReset);
            };
            let from = net.now_us();
            let until = (from + interval).min(end_us);
            // Written at every interval, held or not, as the daemon re-writes
            // a held target (the datapath applies it at its next callback).
            let (base, competitive) = (self.config.base, self.config.competitive_cc);
            let write = |s: &mut crate::sim::flow::Sender, t: &Target| {
                if let Some(cc) = competitive {
                    s.write_controller(if t.competitive_cc { cc } else { base });
                }
                s.write_limits(t.cwnd_clamp_segments, t.max_pacing_bytes_per_sec);
            };
            if let Some(s) = net.sender_mut(0) {
                write(s, &action);
            }
            for p in &self.peers {
                if p.start_us <= from {
                    if let Some(s) = net.sender_mut(p.flow) {
                        write(s, &p.next);
                    }
                }
            }
            net.run_until(until);
            intervals += 1;
            let shared = if self.config.path_min_rtt {
                shared_min_rtt(net, &self.peers, until)
            } else {
                None
            };
            for p in &mut self.peers {
                // A peer's first sample is taken once it has run for a while,
                // as a new kernel flow appears in the daemon's maps.
                if p.start_us < until {
                    if let Some(s) = net.sender(p.flow) {
                        let sample = with_min_rtt(s.datapath_sample(until), shared);
                        p.obs = p.builder.observe(&sample)?;
                    }
                }
            }
            // The builder sees every poll, decided on or not, as the
            // daemon's does.
            let sample = net
                .sender(0)
                .ok_or(EnvError::NotReset)?
                .datapath_sample(until);
            let sample = with_min_rtt(sample, shared);
            let observation = self.builder.observe(&sample)?;
            if self.clock.due(self.config.cadence, sample.stats_us) || until >= end_us {
                break (until, observation);
            }
        };
        let Some(net) = self.net.as_ref() else {
            return Err(EnvError::NotReset);
        };
        let total_delivered: u64 = (0..net.flow_count())
            .filter_map(|i| net.sender(i))
            .map(|s| s.counters().delivered_segments)
            .sum();
        let d_total = total_delivered.saturating_sub(self.last_total_delivered);
        self.last_total_delivered = total_delivered;
        let sender = net.sender(0).ok_or(EnvError::NotReset)?;
        let c = *sender.counters();
        let min_rtt_us = sender.min_rtt_us();
        let mss = u64::from(sender.mss_bytes());
        let prev = self.last_counters;
        self.last_counters = c;
        let dt = (until - start).max(1);
        let d_delivered = c.delivered_segments - prev.delivered_segments;
        let d_rtt_n = c.rtt_samples - prev.rtt_samples;
        let d_rtt_sum = c.rtt_sum_us - prev.rtt_sum_us;
        let d_sent = c.sent_segments - prev.sent_segments;
        let d_lost = c.lost_segments - prev.lost_segments;
        let components = RewardComponents {
            throughput_mbps: (d_delivered * mss * 8) as f32 / dt as f32,
            queueing_delay_ms: d_rtt_sum
                .checked_div(d_rtt_n)
                .map_or(0.0, |mean| mean.saturating_sub(min_rtt_us) as f32 / 1000.0),
            loss_rate: if d_sent > 0 {
                (d_lost as f32 / d_sent as f32).min(1.0)
            } else {
                0.0
            },
            bottleneck_share: if d_total > 0 {
                (d_delivered as f32 / d_total as f32).min(1.0)
            } else {
                1.0
            },
        };
        Ok(StepResult {
            observation,
            components,
            done: until >= end_us,
            now_us: until,
            interval_us: until - start,
            intervals,
        })
    }

    /// Metrics of the controlled flow since the reset.
    pub fn metrics(&self) -> EpisodeMetrics {
        let Some(net) = self.net.as_ref() else {
            return EpisodeMetrics::default();
        };
        flow_metrics(net, 0).unwrap_or_default()
    }

    /// The simulation, for inspection (e.g. competing flows' senders).
    pub fn network(&self) -> Option<&Network> {
        self.net.as_ref()
    }

    /// Suggested next interval length, microseconds (what `step` will use).
    pub fn next_interval_us(&self) -> Option<u64> {
        self.net.as_ref().map(|n| self.interval_us(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::congestion::Controller;

    fn constant(k: u32) -> Arc<Schedule> {
        Arc::new(Schedule::constant(k).expect("trace"))
    }

    /// The rule's drain gain reaches the environment's builders, so that
    /// the simulator's probes have the daemon's deadlines.
    #[test]
    fn a_mappings_drain_gain_reaches_the_flows_detector() {
        use crate::policy::{ActionScaling, CompetitionRule};
        let scaling = ActionScaling {
            competition: Some(CompetitionRule {
                drain_gain: Some(0.75),
                ..CompetitionRule::default()
            }),
            ..ActionScaling::default()
        };
        let config =
            EnvConfig::default().mapped(crate::policy::observation::OBSERVATION_VERSION, &scaling);
        assert_eq!(config.drain_gain, 0.75);
        let env = Env::new(config).unwrap();
        assert_eq!(env.builder.drain_gain(), 0.75);
        assert_eq!(env.new_builder().unwrap().drain_gain(), 0.75);
        assert_eq!(
            EnvConfig::default().drain_gain,
            crate::policy::competition::DRAIN_GAIN
        );
    }

    /// `path_min_rtt`: a peer that starts 3 s after the controlled flow,
    /// behind the queue that flow keeps (both clamped at 80 segments, two
    /// BDPs of a 40 ms path at 12 Mbit/s, CUBIC, a 1000 packet buffer, so
    /// no loss), measures a min RTT of the path plus that queue; with the field its observation takes the
    /// controlled flow's min RTT (`min_rtt_log`, feature 0), as the
    /// daemon's flows to one address do; without it, its own.
    #[test]
    fn with_path_min_rtt_a_late_peer_takes_the_smallest_min_rtt_of_the_policy_flows() {
        let min_rtt_logs = |shared: bool| {
            let mut env = Env::new(EnvConfig {
                peer_start_us: vec![3_000_000],
                path_min_rtt: shared,
                episode_us: Some(6_000_000),
                ..EnvConfig::default()
            })
            .expect("env");
            env.reset(constant(1), 5).expect("reset");
            let clamp = Target {
                cwnd_clamp_segments: 80,
                ..Target::unlimited()
            };
            loop {
                env.set_peer_actions(&[clamp]);
                let r = env.step(clamp).expect("step");
                if r.done {
                    // Both flows' latest observations, 3 s after the peer's start.
                    break (r.observation[0], env.peer_observations()[0][0]);
                }
            }
        };
        let (own_alone, peer_alone) = min_rtt_logs(false);
        let (own_shared, peer_shared) = min_rtt_logs(true);
        let ms = |log: f32| (log * 1001f32.ln()).exp() - 1.0;
        assert!(
            ms(own_alone) < 50.0,
            "the first flow sees the path: {} ms",
            ms(own_alone)
        );
        assert!(
            ms(peer_alone) > ms(own_alone) + 20.0,
            "the late peer's own min RTT holds the queue: {} against {} ms",
            ms(peer_alone),
            ms(own_alone)
        );
        assert_eq!(
            own_shared, own_alone,
            "the first flow's own is the smallest"
        );
        assert_eq!(peer_shared, own_shared, "the peer takes it");
    }

    /// The environment builds its flow's observations with its config's
    /// anchor window floor, as the daemon does with a policy's
    /// (`ActionScaling::anchor_floor_us`): after the link drops from 8 to
    /// 1 packet per ms at 4 s, the rate anchor (`max_rate_log`) comes down
    /// within about a second with a 1 s floor and stays up with the
    /// built-in 10 s.
    #[test]
    fn the_anchor_window_floor_of_the_config_reaches_the_observation() {
        let mut ms: Vec<u64> = Vec::new();
        for t in 0..10_000u64 {
            let per_ms = if t < 4_000 { 8 } else { 1 };
            ms.extend(std::iter::repeat_n(t, per_ms));
        }
        let trace = Arc::new(Schedule::from_ms(ms).expect("trace"));
        let anchor_at = |floor_us: u64| {
            let mut env = Env::new(EnvConfig {
                anchor_floor_us: floor_us,
                episode_us: Some(9_000_000),
                ..EnvConfig::default()
            })
            .expect("env");
            env.reset(Arc::clone(&trace), 3).expect("reset");
            let (mut before, mut after) = (0.0, 0.0);
            loop {
                let r = env.step(Target::unlimited()).expect("step");
                if r.now_us <= 3_900_000 {
                    before = r.observation[1];
                }
                if r.now_us <= 7_000_000 {
                    after = r.observation[1];
                }
                if r.done {
                    break;
                }
            }
            (before, after)
        };
        let (before_10s, after_10s) = anchor_at(EnvConfig::default().anchor_floor_us);
        let (before_1s, after_1s) = anchor_at(1_000_000);
        assert!(before_10s > 0.0 && before_1s > 0.0);
        assert!(
            after_10s >= 0.99 * before_10s,
            "10 s floor: {before_10s} -> {after_10s}"
        );
        assert!(
            after_1s < 0.9 * before_1s,
            "1 s floor: {before_1s} -> {after_1s}"
        );
    }

    #[test]
    fn srtt_interval_and_competing_flows() {
        let config = EnvConfig {
            base: ControllerKind::Reno,
            competing: vec![ControllerKind::Cubic],
            one_way_delay_us: 15_000,
            interval: MonitorInterval::Srtt {
                min_us: 10_000,
                max_us: 100_000,
            },
            episode_us: Some(5_000_000),
            ..EnvConfig::default()
        };
        let mut env = Env::new(config).expect("env");
        env.reset(constant(2), 1).expect("reset");
        assert_eq!(env.network().map(Network::flow_count), Some(2));
        let r = env.step(Target::unlimited()).expect("step");
        // One srtt: at least the 30 ms propagation RTT.
        assert!(
            r.interval_us >= 30_000 && r.interval_us <= 100_000,
            "{}",
            r.interval_us
        );
        assert!(r.observation.iter().all(|v| v.is_finite()));
    }

    /// Under the kernel's datapath model (statistics copied once per round
    /// trip), version 4's `delivery_rate_norm[t-0]` is a rate over a copy's
    /// span, near the anchor for a flow that fills a steady link, where
    /// version 3's is 0 or a whole round trip over one interval; and some
    /// polls read an old copy (`copy_age_rtts` above 0).
    #[test]
    fn v4_rates_survive_once_per_round_trip_statistics() {
        let run = |version: u32| {
            let mut env = Env::new(EnvConfig {
                observation_version: version,
                episode_us: Some(4_000_000),
                ..EnvConfig::default()
            })
            .expect("env");
            assert_eq!(env.config().datapath_model, DatapathModel::Callbacks);
            env.reset(constant(12), 1).expect("reset");
            let mut obs = Vec::new();
            loop {
                let r = env.step(Target::unlimited()).expect("step");
                obs.push(r.observation);
                if r.done {
                    break;
                }
            }
            let late = &obs[obs.len() / 2..];
            let steady = late.iter().filter(|o| (0.5..=1.5).contains(&o[4])).count() as f64
                / late.len() as f64;
            let aged = late.iter().filter(|o| o[2] > 0.0).count();
            (steady, aged)
        };
        let (v3, _) = run(3);
        let (v4, aged) = run(4);
        assert!(v4 > 0.9, "v4: {v4} of intervals near the anchor");
        assert!(v3 < 0.5, "v3: {v3} of intervals near the anchor");
        assert!(aged > 0, "no poll read an old copy");
    }

    /// Under [`Cadence::PerCopy`] one step lasts until the controlled
    /// flow's statistics are copied again: on a 100 ms path, most steps
    /// span five intervals or more, none more than
    /// [`crate::policy::cadence::MAX_HELD_INTERVALS`]. With the same action
    /// throughout, the network runs exactly as under every-interval steps,
    /// and the reward's throughput covers each whole span.
    #[test]
    fn a_per_copy_step_lasts_until_the_next_copy() {
        let run = |cadence: Cadence| {
            let mut env = Env::new(EnvConfig {
                one_way_delay_us: 50_000,
                cadence,
                episode_us: Some(4_000_000),
                ..EnvConfig::default()
            })
            .expect("env");
            env.reset(constant(12), 1).expect("reset");
            let mut spans = Vec::new();
            let mut delivered_bits = 0.0;
            loop {
                let r = env.step(Target::unlimited()).expect("step");
                spans.push(r.intervals);
                delivered_bits += f64::from(r.components.throughput_mbps) * r.interval_us as f64;
                if r.done {
                    break;
                }
            }
            (spans, delivered_bits, env.metrics().utilization)
        };
        let (every, bits_every, util_every) = run(Cadence::EveryInterval);
        assert!(every.iter().all(|&k| k == 1), "{every:?}");
        let (per, bits_per, util_per) = run(Cadence::PerCopy);
        let late = &per[per.len() / 2..];
        let mean = f64::from(late.iter().sum::<u32>()) / late.len() as f64;
        assert!(mean >= 4.5, "mean span {mean} intervals: {per:?}");
        assert!(per
            .iter()
            .all(|&k| k <= crate::policy::cadence::MAX_HELD_INTERVALS));
        assert_eq!(every.iter().sum::<u32>(), per.iter().sum::<u32>());
        assert_eq!(util_every, util_per);
        assert!(
            (bits_every - bits_per).abs() <= 1e-6 * bits_every,
            "{bits_every} vs {bits_per}"
        );
    }

    #[test]
    fn actions_reach_the_flow_like_the_datapath() {
        let mut env = Env::new(EnvConfig {
            episode_us: Some(2_000_000),
            ..EnvConfig::default()
        })
        .expect("env");
        env.reset(constant(1), 1).expect("reset");
        for _ in 0..20 {
            env.step(Target {
                cwnd_clamp_segments: 0,
                max_pacing_bytes_per_sec: 5,
                competitive_cc: false,
            })
            .expect("step");
        }
        let c = env
            .network()
            .and_then(|n| n.sender(0))
            .map(|s| {
                (
                    s.controller().cwnd_clamp_segments(),
                    s.controller().max_pacing_bytes_per_sec(),
                )
            })
            .expect("flow");
        // Bounded like the datapath: clamp 2 segments, 12 500 B/s.
        assert_eq!(c, (2, 12_500));
        let s = env.network().and_then(|n| n.sender(0)).expect("flow");
        assert!(s.controller().window_segments() <= 2);
    }

    /// A target that asks for the policy's competitive controller switches
    /// the flow to it at the datapath's next callback, reported as applied
    /// as the datapath reports it, and one that does not switches it back
    /// to the base; without a competitive controller the ask changes
    /// nothing.
    #[test]
    fn a_target_switches_the_flow_to_the_competitive_controller_and_back() {
        let runs = |competitive_cc: Option<ControllerKind>, ask: &[bool]| {
            let mut env = Env::new(EnvConfig {
                episode_us: Some(10_000_000),
                competitive_cc,
                ..EnvConfig::default()
            })
            .expect("env");
            env.reset(constant(1), 1).expect("reset");
            ask.iter()
                .map(|&on| {
                    // A second: several round trips of a queue BBR's
                    // Startup fills, so several callbacks.
                    for _ in 0..50 {
                        env.step(Target {
                            competitive_cc: on,
                            ..Target::unlimited()
                        })
                        .expect("step");
                    }
                    let s = env.network().and_then(|n| n.sender(0)).expect("flow");
                    (
                        s.controller().name(),
                        env.flow_limits_and_mss(0).0.competitive_cc,
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            runs(Some(ControllerKind::Bbr), &[false, true, false]),
            [("cubic", false), ("bbr", true), ("cubic", false)]
        );
        assert_eq!(
            runs(None, &[true, true]),
            [("cubic", false), ("cubic", false)]
        );
    }

    #[test]
    fn bad_configs_are_errors() {
        assert!(Env::new(EnvConfig {
            interval: MonitorInterval::FixedUs(0),
            ..EnvConfig::default()
        })
        .is_err());
        let mut env = Env::new(EnvConfig {
            random_loss: 1.5,
            ..EnvConfig::default()
        })
        .expect("env");
        assert!(matches!(
            env.reset(constant(1), 0),
            Err(EnvError::Sim(SimError::InvalidConfig(_)))
        ));
    }
}
