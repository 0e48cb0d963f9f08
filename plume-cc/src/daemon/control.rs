//! The control loop's one step, written against a small trait over the flow
//! maps ([`FlowMaps`]) so that it runs, and is tested, without root: the
//! daemon and `bench-datapath` drive the datapath's pinned BPF maps, the
//! unit tests below an in-memory map that can lose a flow between the read
//! and the write, refuse a write, or hold flows whose socket is gone.
//!
//! A step: drain the datapath's open/close events (a closed flow's policy
//! state is forgotten), read every flow, ask the policy ONCE for all of them,
//! count the NaNs among its raw outputs and pass each target through the
//! [`Guard`], write the targets, every 50
//! steps (or when a flow closed) sweep targets whose flow is gone, and every
//! [`REAP_EVERY_NS`] reap flows whose socket is gone without a close.
//!
//! Failures are typed ([`StepError`]) and counted. A failed map operation is
//! transient: the step writes what it can, the daemon logs it and tries
//! again next interval (a flow whose target is not refreshed falls back to
//! the kernel by itself once the target is stale).

use std::time::{Duration, Instant};

use plume_cc_common::{event_kind, FlowEvent, FlowStats, FlowTarget};
use serde::Serialize;

use crate::datapath::{self, Datapath, DatapathError};
use crate::policy::{FlowPolicy, Guard, Target};

/// Sweep orphan targets at least this often (in steps).
pub const SWEEP_EVERY: u64 = 50;

/// Look for flows whose socket is gone at most this often (monotonic ns):
/// listing every socket of every namespace costs milliseconds, and such
/// flows only waste map space until then.
pub const REAP_EVERY_NS: u64 = 10_000_000_000;

/// The flow maps as the control loop uses them.
pub trait FlowMaps {
    /// Open/close events since the last call.
    fn drain_events(&mut self) -> Vec<FlowEvent>;
    /// Every flow's statistics into `out` (cleared first).
    fn read_flows(&mut self, out: &mut Vec<(u64, FlowStats)>) -> Result<(), DatapathError>;
    /// Writes `targets[i]` for `cookies[i]` (stamping `written_ns`).
    fn write_targets(
        &mut self,
        cookies: &[u64],
        targets: &mut [FlowTarget],
    ) -> Result<(), DatapathError>;
    /// Removes targets of flows not in `live` (sorted); returns how many.
    fn collect_orphan_targets(&mut self, live: &[u64]) -> Result<usize, DatapathError>;
    /// Of `candidates`, the cookies whose socket no longer exists.
    fn gone_sockets(&mut self, candidates: &[u64]) -> Result<Vec<u64>, DatapathError>;
    /// Deletes a flow's statistics and target.
    fn remove_flow(&mut self, cookie: u64) -> Result<(), DatapathError>;
    /// Flows left out of reads so far because their slot was being written
    /// on every try (see `datapath::slots`); 0 for maps without slots.
    fn torn_reads(&self) -> u64 {
        0
    }
    /// Makes the torn reads counted so far visible to other processes
    /// (`plume-cc status`); nothing for maps without slots.
    fn publish_torn_reads(&mut self) -> Result<(), DatapathError> {
        Ok(())
    }
}

impl FlowMaps for Datapath {
    fn drain_events(&mut self) -> Vec<FlowEvent> {
        Datapath::drain_events(self)
    }

    fn read_flows(&mut self, out: &mut Vec<(u64, FlowStats)>) -> Result<(), DatapathError> {
        Datapath::read_flows_for_control(self, out)
    }

    fn write_targets(
        &mut self,
        cookies: &[u64],
        targets: &mut [FlowTarget],
    ) -> Result<(), DatapathError> {
        Datapath::write_targets(self, cookies, targets)
    }

    fn collect_orphan_targets(&mut self, live: &[u64]) -> Result<usize, DatapathError> {
        Datapath::collect_orphan_targets(self, live)
    }

    fn gone_sockets(&mut self, candidates: &[u64]) -> Result<Vec<u64>, DatapathError> {
        Datapath::gone_sockets(self, candidates)
    }

    fn remove_flow(&mut self, cookie: u64) -> Result<(), DatapathError> {
        Datapath::remove_flow(self, cookie)
    }

    fn torn_reads(&self) -> u64 {
        Datapath::torn_reads(self)
    }

    fn publish_torn_reads(&mut self) -> Result<(), DatapathError> {
        Datapath::publish_torn_reads(self)
    }
}

/// Why a step did not complete.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Reading the flows failed; nothing was decided or written.
    #[error("reading the flows: {0}")]
    Read(#[source] DatapathError),
    /// The policy failed; nothing was written.
    #[error("the policy failed: {0}")]
    Policy(#[source] crate::policy::PolicyError),
    /// The policy answered for the wrong number of flows; nothing was written.
    #[error("the policy returned {decisions} decisions for {flows} flows")]
    DecisionCount {
        /// Decisions returned.
        decisions: usize,
        /// Flows asked about.
        flows: usize,
    },
    /// The batched write of the targets failed.
    #[error("writing {flows} targets: {source}")]
    Write {
        /// Targets that were to be written.
        flows: usize,
        /// Why.
        source: DatapathError,
    },
    /// Sweeping orphan targets failed (the targets were written).
    #[error("sweeping orphan targets: {0}")]
    Sweep(#[source] DatapathError),
    /// Reaping flows whose socket is gone failed (the targets were written).
    #[error("reaping flows whose socket is gone: {0}")]
    Reap(#[source] DatapathError),
}

impl StepError {
    /// True for failed map operations, which the daemon retries next
    /// interval; false for a policy that fails or misbehaves, which ends it
    /// (after it has handed every flow back to the kernel).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Read(_) | Self::Write { .. } | Self::Sweep(_) | Self::Reap(_)
        )
    }
}

/// Time spent in each part of one control step.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct StepTiming {
    /// Flows handled.
    pub flows: usize,
    /// Reading events and all flows' statistics.
    pub read: Duration,
    /// The policy's decision for all flows (one batched call).
    pub decide: Duration,
    /// Guarding and writing the targets.
    pub write: Duration,
}

/// What the loop has counted so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LoopCounts {
    /// Steps run.
    pub steps: u64,
    /// Targets written in total.
    pub targets_written: u64,
    /// Flows opened / closed, from the event ring.
    pub events_opened: u64,
    /// Flows closed (events).
    pub events_closed: u64,
    /// Orphan targets swept.
    pub orphans_swept: u64,
    /// Steps whose read of the flows failed.
    pub read_failures: u64,
    /// Steps whose batched write failed.
    pub write_failures: u64,
    /// Other failed map operations (sweep, reap).
    pub map_failures: u64,
    /// Flows removed because their socket was gone without a close.
    pub flows_reaped: u64,
    /// Flows left out of a read because their slot was being written on
    /// every try (each is back in the next read).
    pub torn_reads: u64,
}

/// The control loop's state: the guard and the buffers reused across steps
/// (no allocation in steady state).
#[derive(Debug, Default)]
pub struct ControlLoop {
    /// The output guard (its counts are the daemon's).
    pub guard: Guard,
    /// Counters.
    pub counts: LoopCounts,
    flows: Vec<(u64, FlowStats)>,
    decisions: Vec<Target>,
    cookies: Vec<u64>,
    targets: Vec<FlowTarget>,
    last_reap_ns: Option<u64>,
    /// Capacity of `flows` when it was last moved onto huge pages.
    flows_huge_cap: usize,
}

impl ControlLoop {
    /// The flows read in the last step.
    pub fn flows(&self) -> &[(u64, FlowStats)] {
        &self.flows
    }

    /// The targets written in the last step, in the order of [`Self::flows`].
    pub fn targets(&self) -> &[FlowTarget] {
        &self.targets
    }

    /// One monitor interval at monotonic time `now_ns` (see module docs).
    /// A failed read, a failing policy or one that answers for the wrong
    /// number of flows write nothing; every failure is counted.
    pub fn step(
        &mut self,
        maps: &mut dyn FlowMaps,
        policy: &mut dyn FlowPolicy,
        now_ns: u64,
    ) -> Result<StepTiming, StepError> {
        let t0 = Instant::now();
        let mut closed_now = false;
        for ev in maps.drain_events() {
            match ev.kind {
                event_kind::OPENED => self.counts.events_opened += 1,
                event_kind::CLOSED => {
                    self.counts.events_closed += 1;
                    closed_now = true;
                    policy.forget(ev.cookie);
                }
                _ => {}
            }
        }
        if let Err(e) = maps.read_flows(&mut self.flows) {
            self.counts.read_failures += 1;
            self.flows.clear();
            self.targets.clear();
            return Err(StepError::Read(e));
        }
        if self.flows.len() > self.flows_huge_cap {
            // The flows read are the next largest per-flow array after the
            // policy's (1.8 MB at 10,000 flows) and cold at every step: on
            // huge pages, as the policy's are (`reserve_huge`). Once per
            // growth, with a quarter to spare.
            let mut huge = Vec::new();
            crate::policy::batch::reserve_huge(&mut huge, self.flows.len() + self.flows.len() / 4);
            huge.append(&mut self.flows);
            self.flows = huge;
            self.flows_huge_cap = self.flows.capacity();
        }
        let torn = maps.torn_reads();
        if torn != self.counts.torn_reads {
            // Rare (a slot rewritten through 64 tries), and two system
            // calls: only when the count moved. A failure is counted and
            // the next move publishes what this one did not.
            self.counts.torn_reads = torn;
            if maps.publish_torn_reads().is_err() {
                self.counts.map_failures += 1;
            }
        }
        let t1 = Instant::now();
        self.decisions.clear();
        self.targets.clear();
        policy
            .decide(now_ns, &self.flows, &mut self.decisions)
            .map_err(StepError::Policy)?;
        if self.decisions.len() != self.flows.len() {
            return Err(StepError::DecisionCount {
                decisions: self.decisions.len(),
                flows: self.flows.len(),
            });
        }
        let t2 = Instant::now();
        if let Some(batch) = policy.last_batch() {
            self.guard.check_raw(batch.raw_actions);
        }
        self.cookies.clear();
        for ((cookie, _), t) in self.flows.iter().zip(&self.decisions) {
            self.cookies.push(*cookie);
            self.targets.push(self.guard.apply(*t).into());
        }
        self.counts.steps += 1;
        if let Err(source) = maps.write_targets(&self.cookies, &mut self.targets) {
            self.counts.write_failures += 1;
            self.targets.clear();
            return Err(StepError::Write {
                flows: self.cookies.len(),
                source,
            });
        }
        self.counts.targets_written += self.cookies.len() as u64;
        // A flow that closed between our read and our write leaves an orphan
        // target; sweep them every SWEEP_EVERY steps and whenever a flow
        // closed.
        if closed_now || self.counts.steps.is_multiple_of(SWEEP_EVERY) {
            self.cookies.sort_unstable();
            match maps.collect_orphan_targets(&self.cookies) {
                Ok(n) => self.counts.orphans_swept += n as u64,
                Err(e) => {
                    self.counts.map_failures += 1;
                    return Err(StepError::Sweep(e));
                }
            }
        }
        if self
            .last_reap_ns
            .is_none_or(|t| now_ns.saturating_sub(t) >= REAP_EVERY_NS)
        {
            self.last_reap_ns = Some(now_ns);
            self.reap(maps, policy, now_ns)?;
        }
        let t3 = Instant::now();
        Ok(StepTiming {
            flows: self.flows.len(),
            read: t1 - t0,
            decide: t2 - t1,
            write: t3 - t2,
        })
    }

    /// Removes the flows idle for [`datapath::REAP_IDLE_NS`] whose socket is
    /// gone (see [`datapath::REAP_IDLE_NS`] for why both).
    fn reap(
        &mut self,
        maps: &mut dyn FlowMaps,
        policy: &mut dyn FlowPolicy,
        now_ns: u64,
    ) -> Result<(), StepError> {
        let candidates = datapath::reap_candidates(&self.flows, now_ns);
        if candidates.is_empty() {
            return Ok(());
        }
        let fail = |counts: &mut LoopCounts, e| {
            counts.map_failures += 1;
            StepError::Reap(e)
        };
        let gone = maps
            .gone_sockets(&candidates)
            .map_err(|e| fail(&mut self.counts, e))?;
        for cookie in gone {
            maps.remove_flow(cookie)
                .map_err(|e| fail(&mut self.counts, e))?;
            policy.forget(cookie);
            self.counts.flows_reaped += 1;
            tracing::info!(cookie, "reaped a flow whose socket is gone");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use plume_cc_common::{CWND_UNCLAMPED, MIN_CWND_CLAMP, PACING_UNLIMITED};

    use super::*;

    /// The flow maps in memory, with the two races and failures a real
    /// datapath can produce.
    #[derive(Default)]
    struct MemoryMaps {
        flows: BTreeMap<u64, FlowStats>,
        targets: BTreeMap<u64, FlowTarget>,
        events: Vec<FlowEvent>,
        /// This flow closes right after the next read (before the write).
        close_after_read: Option<u64>,
        /// The next write fails.
        fail_write: bool,
        /// The next read fails.
        fail_read: bool,
        /// Flows whose socket no longer exists (a deleted namespace).
        gone: std::collections::BTreeSet<u64>,
        /// The socket listing fails.
        fail_listing: bool,
        /// Times the sockets were listed.
        listings: usize,
        /// Torn reads reported, and how many of them were published.
        torn: u64,
        torn_published: u64,
        /// Calls of `publish_torn_reads`.
        publishes: usize,
        /// The next publication fails.
        fail_publish: bool,
    }

    impl MemoryMaps {
        fn open(&mut self, cookie: u64) {
            self.flows.insert(cookie, FlowStats::default());
            self.events.push(event(cookie, event_kind::OPENED));
        }
    }

    fn event(cookie: u64, kind: u32) -> FlowEvent {
        FlowEvent {
            cookie,
            at_ns: 0,
            kind,
            local_port: 0,
            remote_port: 0,
            _pad: 0,
        }
    }

    impl FlowMaps for MemoryMaps {
        fn drain_events(&mut self) -> Vec<FlowEvent> {
            std::mem::take(&mut self.events)
        }

        fn read_flows(&mut self, out: &mut Vec<(u64, FlowStats)>) -> Result<(), DatapathError> {
            out.clear();
            if std::mem::take(&mut self.fail_read) {
                return Err(DatapathError::Map {
                    map: "PLUME_FLOWS",
                    reason: "batched lookup: injected failure".into(),
                });
            }
            out.extend(self.flows.iter().map(|(c, s)| (*c, *s)));
            if let Some(c) = self.close_after_read.take() {
                // The program deletes both entries on TCP_CLOSE.
                self.flows.remove(&c);
                self.targets.remove(&c);
                self.events.push(event(c, event_kind::CLOSED));
            }
            Ok(())
        }

        fn write_targets(
            &mut self,
            cookies: &[u64],
            targets: &mut [FlowTarget],
        ) -> Result<(), DatapathError> {
            if std::mem::take(&mut self.fail_write) {
                return Err(DatapathError::Map {
                    map: "PLUME_TARGETS",
                    reason: "batched update: injected failure".into(),
                });
            }
            for (c, t) in cookies.iter().zip(targets.iter()) {
                self.targets.insert(*c, *t);
            }
            Ok(())
        }

        fn collect_orphan_targets(&mut self, live: &[u64]) -> Result<usize, DatapathError> {
            let before = self.targets.len();
            self.targets.retain(|c, _| live.binary_search(c).is_ok());
            Ok(before - self.targets.len())
        }

        fn gone_sockets(&mut self, candidates: &[u64]) -> Result<Vec<u64>, DatapathError> {
            self.listings += 1;
            if self.fail_listing {
                return Err(DatapathError::Map {
                    map: "sock_diag",
                    reason: "injected failure".into(),
                });
            }
            Ok(candidates
                .iter()
                .copied()
                .filter(|c| self.gone.contains(c))
                .collect())
        }

        fn remove_flow(&mut self, cookie: u64) -> Result<(), DatapathError> {
            self.flows.remove(&cookie);
            self.targets.remove(&cookie);
            Ok(())
        }

        fn torn_reads(&self) -> u64 {
            self.torn
        }

        fn publish_torn_reads(&mut self) -> Result<(), DatapathError> {
            self.publishes += 1;
            if std::mem::take(&mut self.fail_publish) {
                return Err(DatapathError::Map {
                    map: "PLUME_COUNTERS",
                    reason: "update: injected failure".into(),
                });
            }
            self.torn_published = self.torn;
            Ok(())
        }
    }

    /// Clamps every flow at `clamp`, and remembers what it forgot; with
    /// `raw`, reports those raw outputs (a learned policy's actions) for
    /// every flow.
    struct Fixed {
        clamp: u32,
        forgotten: Vec<u64>,
        answers: Option<usize>,
        raw: Option<[f32; 2]>,
        cookies: Vec<u64>,
        raw_actions: Vec<f32>,
    }

    impl Fixed {
        fn new(clamp: u32) -> Self {
            Self {
                clamp,
                forgotten: Vec::new(),
                answers: None,
                raw: None,
                cookies: Vec::new(),
                raw_actions: Vec::new(),
            }
        }
    }

    impl FlowPolicy for Fixed {
        fn describe(&self) -> String {
            "fixed".into()
        }

        fn decide(
            &mut self,
            _now_ns: u64,
            flows: &[(u64, FlowStats)],
            out: &mut Vec<Target>,
        ) -> Result<(), crate::policy::PolicyError> {
            let n = self.answers.unwrap_or(flows.len());
            out.extend((0..n).map(|_| Target {
                cwnd_clamp_segments: self.clamp,
                max_pacing_bytes_per_sec: PACING_UNLIMITED,
                competitive_cc: false,
            }));
            self.cookies = flows.iter().map(|(c, _)| *c).collect();
            self.raw_actions = self.raw.map_or(Vec::new(), |r| r.repeat(flows.len()));
            Ok(())
        }

        fn forget(&mut self, cookie: u64) {
            self.forgotten.push(cookie);
        }

        fn last_batch(&self) -> Option<crate::policy::LastBatch<'_>> {
            self.raw.map(|_| crate::policy::LastBatch {
                cookies: &self.cookies,
                observations: &[],
                raw_actions: &self.raw_actions,
                observed_cookies: &self.cookies,
                observed: &[],
            })
        }
    }

    #[test]
    fn every_flow_gets_its_guarded_target() {
        let mut maps = MemoryMaps::default();
        maps.open(1);
        maps.open(2);
        let mut l = ControlLoop::default();
        let mut p = Fixed::new(30);
        let t = l.step(&mut maps, &mut p, 0).unwrap();
        assert_eq!(t.flows, 2);
        assert_eq!(l.counts.events_opened, 2);
        assert_eq!(maps.targets.len(), 2);
        assert!(maps.targets.values().all(|t| t.cwnd_clamp == 30));
        assert!(maps
            .targets
            .values()
            .all(|t| t.max_pacing_bytes_per_sec == PACING_UNLIMITED));
        assert_eq!(l.flows().len(), l.targets().len());
    }

    #[test]
    fn a_flow_that_closes_between_read_and_write_is_swept_and_forgotten() {
        let mut maps = MemoryMaps::default();
        maps.open(1);
        maps.open(2);
        let mut l = ControlLoop::default();
        let mut p = Fixed::new(20);
        maps.close_after_read = Some(2);
        l.step(&mut maps, &mut p, 0).unwrap();
        // The batched write recreated flow 2's target after it closed: an
        // orphan the kernel will never delete.
        assert!(maps.targets.contains_key(&2) && !maps.flows.contains_key(&2));
        // The next step sees the close event, forgets the flow and sweeps.
        l.step(&mut maps, &mut p, 1).unwrap();
        assert_eq!(p.forgotten, vec![2]);
        assert_eq!(maps.targets.keys().copied().collect::<Vec<_>>(), vec![1]);
        assert_eq!((l.counts.events_closed, l.counts.orphans_swept), (1, 1));
    }

    #[test]
    fn orphans_without_an_event_are_swept_every_fifty_steps() {
        let mut maps = MemoryMaps::default();
        maps.open(1);
        // A stale target whose close event was lost (ring buffer full).
        maps.targets.insert(
            99,
            FlowTarget {
                written_ns: 0,
                cwnd_clamp: 10,
                max_pacing_bytes_per_sec: PACING_UNLIMITED,
                ..FlowTarget::default()
            },
        );
        let mut l = ControlLoop::default();
        let mut p = Fixed::new(20);
        for k in 1..SWEEP_EVERY {
            l.step(&mut maps, &mut p, k).unwrap();
        }
        assert!(
            maps.targets.contains_key(&99),
            "swept before step {SWEEP_EVERY}"
        );
        l.step(&mut maps, &mut p, SWEEP_EVERY).unwrap();
        assert!(!maps.targets.contains_key(&99));
        assert_eq!(l.counts.orphans_swept, 1);
    }

    /// NaNs among a policy's raw outputs are counted (once per value, per
    /// flow), limits below the floor are raised to it and counted, and
    /// those above what the datapath represents are lifted and counted.
    #[test]
    fn nan_raw_outputs_and_out_of_range_limits_are_counted() {
        let mut maps = MemoryMaps::default();
        maps.open(1);
        maps.open(2);
        let mut l = ControlLoop::default();
        let mut p = Fixed::new(20);
        p.raw = Some([f32::NAN, 0.5]);
        l.step(&mut maps, &mut p, 0).unwrap();
        assert_eq!(l.guard.counts.nan, 2, "one NaN for each of two flows");
        assert_eq!(maps.targets[&1].cwnd_clamp, 20, "the target is written");
        p.raw = Some([0.0, 1.0]);
        l.step(&mut maps, &mut p, 1).unwrap();
        assert_eq!(l.guard.counts.nan, 2, "finite outputs are not counted");
        // Below the floor is raised to it, and counted.
        l.step(&mut maps, &mut Fixed::new(1), 2).unwrap();
        assert_eq!(maps.targets[&1].cwnd_clamp, MIN_CWND_CLAMP);
        assert_eq!(l.guard.counts.below_min, 2);
        // Above what the datapath represents: no limit.
        l.step(&mut maps, &mut Fixed::new(CWND_UNCLAMPED + 1), 3)
            .unwrap();
        assert_eq!(maps.targets[&2].cwnd_clamp, CWND_UNCLAMPED);
        assert_eq!(l.guard.counts.above_max, 2);
    }

    /// A failed batched write is a counted, transient error: nothing is
    /// written, the loop's state stays consistent (no targets reported as
    /// written), and the next interval writes again.
    #[test]
    fn a_failed_write_is_counted_and_retried_next_interval() {
        let mut maps = MemoryMaps::default();
        maps.open(1);
        maps.fail_write = true;
        let mut l = ControlLoop::default();
        let e = l.step(&mut maps, &mut Fixed::new(20), 0).unwrap_err();
        assert!(matches!(e, StepError::Write { flows: 1, .. }), "{e}");
        assert!(e.is_transient());
        assert!(e.to_string().contains("injected failure"), "{e}");
        assert!(maps.targets.is_empty());
        assert!(l.targets().is_empty(), "no target reported as written");
        assert_eq!((l.counts.targets_written, l.counts.write_failures), (0, 1));
        // The loop recovers on the next interval.
        l.step(&mut maps, &mut Fixed::new(20), 1).unwrap();
        assert_eq!(maps.targets[&1].cwnd_clamp, 20);
        assert_eq!((l.counts.targets_written, l.counts.write_failures), (1, 1));
    }

    /// Torn reads are published when their count moves, not on every
    /// step (two system calls each); a failed publication is counted, the
    /// step still completes, and the next move publishes the rest.
    #[test]
    fn torn_reads_are_published_when_their_count_moves() {
        let mut maps = MemoryMaps::default();
        maps.open(1);
        let mut l = ControlLoop::default();
        l.step(&mut maps, &mut Fixed::new(20), 0).unwrap();
        assert_eq!(maps.publishes, 0, "nothing torn, nothing published");
        maps.torn = 2;
        l.step(&mut maps, &mut Fixed::new(20), 1).unwrap();
        l.step(&mut maps, &mut Fixed::new(20), 2).unwrap();
        assert_eq!((maps.publishes, maps.torn_published), (1, 2));
        assert_eq!(l.counts.torn_reads, 2);
        maps.torn = 3;
        maps.fail_publish = true;
        l.step(&mut maps, &mut Fixed::new(20), 3).unwrap();
        assert_eq!(maps.targets[&1].cwnd_clamp, 20);
        assert_eq!((maps.publishes, maps.torn_published), (2, 2));
        assert_eq!(l.counts.map_failures, 1);
        maps.torn = 4;
        l.step(&mut maps, &mut Fixed::new(20), 4).unwrap();
        assert_eq!((maps.publishes, maps.torn_published), (3, 4));
    }

    #[test]
    fn a_failed_read_is_counted_and_decides_nothing() {
        let mut maps = MemoryMaps::default();
        maps.open(1);
        maps.fail_read = true;
        let mut l = ControlLoop::default();
        let e = l.step(&mut maps, &mut Fixed::new(20), 0).unwrap_err();
        assert!(matches!(e, StepError::Read(_)) && e.is_transient(), "{e}");
        assert!(maps.targets.is_empty() && l.flows().is_empty());
        assert_eq!(l.counts.read_failures, 1);
        l.step(&mut maps, &mut Fixed::new(20), 1).unwrap();
        assert_eq!(maps.targets[&1].cwnd_clamp, 20);
    }

    /// A flow whose socket is gone without a close (deleted namespace) is
    /// reaped once idle for REAP_IDLE_NS; an idle flow whose socket lives,
    /// and a gone one that is not idle yet, are kept.
    #[test]
    fn flows_whose_socket_is_gone_are_reaped_once_idle() {
        let idle = datapath::REAP_IDLE_NS;
        let mut maps = MemoryMaps::default();
        for c in [1, 2, 3] {
            maps.open(c);
        }
        // 1: gone, idle since 0; 2: alive, idle since 0; 3: gone but its
        // statistics moved at `idle` (a close may still come).
        maps.gone.extend([1, 3]);
        maps.flows.get_mut(&3).unwrap().updated_ns = idle;
        let mut l = ControlLoop::default();
        let mut p = Fixed::new(20);
        l.step(&mut maps, &mut p, 1).unwrap();
        assert_eq!(maps.listings, 0, "nothing idle yet: no listing");
        assert_eq!(maps.flows.len(), 3);
        l.step(&mut maps, &mut p, idle + REAP_EVERY_NS).unwrap();
        assert_eq!(maps.flows.keys().copied().collect::<Vec<_>>(), vec![2, 3]);
        assert!(!maps.targets.contains_key(&1), "its target went too");
        assert_eq!(p.forgotten, vec![1]);
        assert_eq!(l.counts.flows_reaped, 1);
        // Not before REAP_EVERY_NS has passed again.
        let t = idle + REAP_EVERY_NS + 1;
        l.step(&mut maps, &mut p, t + idle).unwrap();
        l.step(&mut maps, &mut p, t + idle + 1).unwrap();
        assert_eq!(maps.listings, 2);
        assert_eq!(maps.flows.keys().copied().collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn a_failed_socket_listing_reaps_nothing() {
        let mut maps = MemoryMaps::default();
        maps.open(1);
        maps.gone.insert(1);
        maps.fail_listing = true;
        let mut l = ControlLoop::default();
        let e = l
            .step(&mut maps, &mut Fixed::new(20), datapath::REAP_IDLE_NS)
            .unwrap_err();
        assert!(matches!(e, StepError::Reap(_)) && e.is_transient(), "{e}");
        assert!(maps.flows.contains_key(&1));
        assert_eq!(
            maps.targets[&1].cwnd_clamp, 20,
            "the targets were written first"
        );
        assert_eq!((l.counts.map_failures, l.counts.flows_reaped), (1, 0));
    }

    #[test]
    fn a_policy_that_answers_for_the_wrong_number_of_flows_is_refused() {
        let mut maps = MemoryMaps::default();
        maps.open(1);
        maps.open(2);
        let mut p = Fixed::new(20);
        p.answers = Some(1);
        let e = ControlLoop::default()
            .step(&mut maps, &mut p, 0)
            .unwrap_err();
        assert!(e.to_string().contains("1 decisions for 2 flows"), "{e}");
        assert!(!e.is_transient());
        assert!(maps.targets.is_empty());
    }
}
