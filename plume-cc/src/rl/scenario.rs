//! Training scenarios: what each episode's network looks like beyond its
//! capacity window. A [`ScenarioSpec`] is a small JSON file a user can write
//! (`plume-cc train --scenarios FILE`); every episode draws one [`Scenario`]
//! from it:
//!
//! - the min RTT, log-uniform (`min_rtt_ms`);
//! - the bottleneck buffer in BDPs of the window's mean capacity at that RTT,
//!   log-uniform (`buffer_bdp`), or unlimited with `unlimited_buffer_prob`;
//! - random loss in some episodes (`loss_prob`, rate uniform in `loss_rate`);
//! - the ACK path: with `ack_trace_prob` the ACKs cross the same trace (they
//!   arrive in bursts, as on cellular links and across the emulator's
//!   `--downlink same`), otherwise an unlimited ACK path; with
//!   `delayed_ack_prob` the receiver delays its ACKs as Linux's does;
//! - kernel-like competitors on the bottleneck: a count (`competitors`), each
//!   of a kind drawn from `competitor_kinds`, starting after a delay drawn
//!   from `competitor_start_ms`.
//!
//! A file may also mix in other distributions (`mixture`): each episode first
//! picks one by weight, then draws from it, so a run can weight one kind of
//! path (say the single-flow cellular path the kernel benchmark measures)
//! without giving up the rest. `comment` says what a file is for (JSON has
//! no comments); nothing reads it.
//!
//! `policies/scenarios/default.json` is the committed default distribution.
//! Not yet drawn (see docs/TRAINING.md): several policy flows on one
//! bottleneck, application-limited flows.

use std::path::Path;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::congestion::ControllerKind;
use crate::sim::QueueLimit;

/// A scenario distribution (see module docs). Unknown fields are errors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioSpec {
    /// Min RTT (twice the one-way propagation delay), milliseconds,
    /// log-uniform over `[low, high]`.
    pub min_rtt_ms: [f64; 2],
    /// Bottleneck buffer in BDPs (window mean capacity x min RTT),
    /// log-uniform over `[low, high]`; at least 4 packets.
    pub buffer_bdp: [f64; 2],
    /// Probability of an unlimited buffer instead.
    #[serde(default)]
    pub unlimited_buffer_prob: f64,
    /// Probability that an episode has random loss.
    #[serde(default)]
    pub loss_prob: f64,
    /// Random loss rate when there is some, uniform over `[low, high]`.
    #[serde(default)]
    pub loss_rate: [f64; 2],
    /// Probability that the ACKs cross the same trace.
    #[serde(default)]
    pub ack_trace_prob: f64,
    /// Probability that the receiver delays its ACKs as Linux's does (every
    /// second segment, 40 ms timer); otherwise an ACK per segment.
    #[serde(default)]
    pub delayed_ack_prob: f64,
    /// Number of competing kernel-like flows, uniform over `[low, high]`.
    #[serde(default)]
    pub competitors: [u32; 2],
    /// Kinds competitors are drawn from (`cubic`, `bbr`, `reno`).
    #[serde(default = "default_kinds")]
    pub competitor_kinds: Vec<ControllerKind>,
    /// Start of each competitor after the policy's flow, milliseconds,
    /// uniform over `[low, high]`.
    #[serde(default)]
    pub competitor_start_ms: [u64; 2],
    /// Number of *peers*, uniform over `[low, high]` (at most 3): more flows
    /// of the same policy on the bottleneck, each with its own observation
    /// and all acted on in one batched forward with the trained flow, as
    /// the daemon runs every flow of its cgroup. Each starts after a delay
    /// drawn from `competitor_start_ms`.
    #[serde(default)]
    pub peers: [u32; 2],
    /// The operating point (the reward's delay weight, also an input of the
    /// policy), log-uniform over `[low, high]` within [0.02, 2]; absent: the
    /// run's fixed objective.
    #[serde(default)]
    pub delay_weight: Option<[f64; 2]>,
    /// What the file is for. Free text that nothing reads: JSON has no
    /// comments, and unknown fields are errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Other distributions mixed in: an episode draws from component `i`
    /// with probability `weight_i` and from this file's own fields with the
    /// rest (`1 - sum`). Components cannot nest. Absent: the file's own
    /// fields only, with the random stream of a file written before the
    /// field existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mixture: Vec<MixtureComponent>,
}

/// One component of [`ScenarioSpec::mixture`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixtureComponent {
    /// Probability that an episode draws from this component.
    pub weight: f64,
    /// The component's distribution (no `mixture` of its own).
    pub scenario: ScenarioSpec,
}

fn default_kinds() -> Vec<ControllerKind> {
    vec![ControllerKind::Cubic, ControllerKind::Bbr]
}

/// A scenario file that cannot be used: which field, what is allowed, what
/// was found.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("scenario file {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Not valid JSON for a [`ScenarioSpec`] (unknown field, unknown
    /// controller, wrong type).
    #[error("scenario file {path}: {source}")]
    Parse {
        /// The file.
        path: std::path::PathBuf,
        /// The cause (serde names the field and what it expected).
        source: serde_json::Error,
    },
    /// A value outside its range.
    #[error("scenario field `{field}`: {found} is outside the allowed range {allowed}")]
    Range {
        /// Field name.
        field: &'static str,
        /// What is allowed.
        allowed: &'static str,
        /// What the file says.
        found: String,
    },
}

fn range_err(
    field: &'static str,
    allowed: &'static str,
    found: impl std::fmt::Debug,
) -> ScenarioError {
    ScenarioError::Range {
        field,
        allowed,
        found: format!("{found:?}"),
    }
}

fn check_pair(
    field: &'static str,
    allowed: &'static str,
    v: [f64; 2],
    lo: f64,
    hi: f64,
    open_low: bool,
) -> Result<(), ScenarioError> {
    let ok = |x: f64| x.is_finite() && x <= hi && if open_low { x > lo } else { x >= lo };
    if !(ok(v[0]) && ok(v[1]) && v[0] <= v[1]) {
        return Err(range_err(field, allowed, v));
    }
    Ok(())
}

fn check_prob(field: &'static str, p: f64) -> Result<(), ScenarioError> {
    if !(0.0..=1.0).contains(&p) {
        return Err(range_err(field, "[0, 1]", p));
    }
    Ok(())
}

impl ScenarioSpec {
    /// Checks every field against its range.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        check_pair(
            "min_rtt_ms",
            "0 < low <= high <= 1000",
            self.min_rtt_ms,
            0.0,
            1000.0,
            true,
        )?;
        check_pair(
            "buffer_bdp",
            "0 < low <= high <= 100",
            self.buffer_bdp,
            0.0,
            100.0,
            true,
        )?;
        check_prob("unlimited_buffer_prob", self.unlimited_buffer_prob)?;
        check_prob("loss_prob", self.loss_prob)?;
        check_pair(
            "loss_rate",
            "0 <= low <= high <= 0.1",
            self.loss_rate,
            0.0,
            0.1,
            false,
        )?;
        check_prob("ack_trace_prob", self.ack_trace_prob)?;
        check_prob("delayed_ack_prob", self.delayed_ack_prob)?;
        let [c0, c1] = self.competitors;
        if c0 > c1 || c1 > 4 {
            return Err(range_err(
                "competitors",
                "0 <= low <= high <= 4",
                self.competitors,
            ));
        }
        if c1 > 0 && self.competitor_kinds.is_empty() {
            return Err(range_err(
                "competitor_kinds",
                "at least one of cubic, bbr, reno",
                &self.competitor_kinds,
            ));
        }
        if let Some(w) = self.delay_weight {
            check_pair(
                "delay_weight",
                "0.02 <= low <= high <= 2",
                w,
                f64::from(crate::policy::objective::MIN_DELAY_WEIGHT) - 1e-9,
                f64::from(crate::policy::objective::MAX_DELAY_WEIGHT),
                true,
            )?;
        }
        let [p0, p1] = self.peers;
        if p0 > p1 || p1 > 3 {
            return Err(range_err("peers", "0 <= low <= high <= 3", self.peers));
        }
        let [s0, s1] = self.competitor_start_ms;
        if s0 > s1 || s1 > 600_000 {
            return Err(range_err(
                "competitor_start_ms",
                "0 <= low <= high <= 600000",
                self.competitor_start_ms,
            ));
        }
        let mut total = 0.0;
        for c in &self.mixture {
            check_prob("mixture.weight", c.weight)?;
            total += c.weight;
            if !c.scenario.mixture.is_empty() {
                return Err(range_err(
                    "mixture.scenario.mixture",
                    "absent (components do not nest)",
                    c.scenario.mixture.len(),
                ));
            }
            c.scenario.validate()?;
        }
        if total > 1.0 + 1e-9 {
            return Err(range_err("mixture.weight", "a sum of at most 1", total));
        }
        Ok(())
    }

    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses and validates scenario JSON; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ScenarioError> {
        let spec: Self = serde_json::from_str(text).map_err(|source| ScenarioError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        spec.validate()?;
        Ok(spec)
    }

    /// The committed default distribution (`policies/scenarios/default.json`).
    pub fn default_distribution() -> Self {
        Self::parse(
            Path::new("policies/scenarios/default.json"),
            include_str!("../../../policies/scenarios/default.json"),
        )
        .expect("the committed default scenario file is valid")
    }

    /// Draws one scenario for a window of `window_mean_mbps`: picks a
    /// mixture component by weight (only when the file has any, so files
    /// without keep their random stream), then draws from it.
    pub fn draw(&self, rng: &mut impl Rng, window_mean_mbps: f64) -> Scenario {
        if !self.mixture.is_empty() {
            let mut u = rng.gen::<f64>();
            for c in &self.mixture {
                if u < c.weight {
                    return c.scenario.draw_own(rng, window_mean_mbps);
                }
                u -= c.weight;
            }
        }
        self.draw_own(rng, window_mean_mbps)
    }

    /// Draws one scenario from this spec's own fields (its mixture aside).
    fn draw_own(&self, rng: &mut impl Rng, window_mean_mbps: f64) -> Scenario {
        let log_uniform = |rng: &mut dyn rand::RngCore, [lo, hi]: [f64; 2]| -> f64 {
            if hi > lo {
                (lo.ln() + rng.gen::<f64>() * (hi.ln() - lo.ln())).exp()
            } else {
                lo
            }
        };
        let min_rtt_ms = log_uniform(rng, self.min_rtt_ms);
        let one_way_delay_us = ((min_rtt_ms * 1000.0 / 2.0).round() as u64).max(1);
        let bdp_packets = window_mean_mbps * 1e6 / 8.0 * (min_rtt_ms / 1000.0) / 1500.0;
        let queue =
            if self.unlimited_buffer_prob > 0.0 && rng.gen::<f64>() < self.unlimited_buffer_prob {
                QueueLimit::unlimited()
            } else {
                let bdps = log_uniform(rng, self.buffer_bdp);
                QueueLimit::packets(((bdps * bdp_packets).round() as u32).max(4))
            };
        let random_loss = if self.loss_prob > 0.0 && rng.gen::<f64>() < self.loss_prob {
            let [lo, hi] = self.loss_rate;
            if hi > lo {
                rng.gen_range(lo..=hi)
            } else {
                lo
            }
        } else {
            0.0
        };
        let ack_trace = self.ack_trace_prob > 0.0 && rng.gen::<f64>() < self.ack_trace_prob;
        let delayed_ack = self.delayed_ack_prob > 0.0 && rng.gen::<f64>() < self.delayed_ack_prob;
        let [c0, c1] = self.competitors;
        let n = if c1 > c0 { rng.gen_range(c0..=c1) } else { c0 };
        let competitors = (0..n)
            .map(|_| {
                let kind = self.competitor_kinds[rng.gen_range(0..self.competitor_kinds.len())];
                let [s0, s1] = self.competitor_start_ms;
                let start_ms = if s1 > s0 { rng.gen_range(s0..=s1) } else { s0 };
                (kind, start_ms * 1000)
            })
            .collect();
        let objective = self.delay_weight.map(|w| {
            let x = log_uniform(rng, w) as f32;
            crate::policy::Objective::new(x.clamp(
                crate::policy::objective::MIN_DELAY_WEIGHT,
                crate::policy::objective::MAX_DELAY_WEIGHT,
            ))
            .unwrap_or_default()
        });
        // Drawn last, and only when there can be peers, so distributions
        // without them keep their random stream (and earlier runs reproduce).
        let [p0, p1] = self.peers;
        let peers = if p1 == 0 {
            Vec::new()
        } else {
            let n = if p1 > p0 { rng.gen_range(p0..=p1) } else { p0 };
            (0..n)
                .map(|_| {
                    let [s0, s1] = self.competitor_start_ms;
                    (if s1 > s0 { rng.gen_range(s0..=s1) } else { s0 }) * 1000
                })
                .collect()
        };
        Scenario {
            objective,
            one_way_delay_us,
            queue,
            random_loss,
            ack_trace,
            delayed_ack,
            competitors,
            peers,
        }
    }
}

/// One episode's network (see module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// The episode's operating point (None: the run's fixed one).
    pub objective: Option<crate::policy::Objective>,
    /// One-way propagation delay, microseconds.
    pub one_way_delay_us: u64,
    /// Droptail limit of the bottleneck.
    pub queue: QueueLimit,
    /// Random loss probability.
    pub random_loss: f64,
    /// ACKs cross the same trace.
    pub ack_trace: bool,
    /// The receiver delays ACKs.
    pub delayed_ack: bool,
    /// Competing flows: kind and start, microseconds.
    pub competitors: Vec<(ControllerKind, u64)>,
    /// Peers (flows of the same policy): start, microseconds.
    pub peers: Vec<u64>,
}

impl Scenario {
    /// The scenario of a scenario corpus' window (its fixed path, no
    /// operating point of its own), for a window of `window_mean_mbps`.
    pub fn from_record(
        path: &crate::trace::scenario_corpus::PathRecord,
        window_mean_mbps: f64,
    ) -> Result<Self, ScenarioError> {
        path.validate().map_err(|e| ScenarioError::Range {
            field: "path",
            allowed: "the ranges of a scenario corpus record",
            found: e.to_string(),
        })?;
        let bdp_packets = window_mean_mbps * 1e6 / 8.0 * (path.min_rtt_ms / 1000.0) / 1500.0;
        let competitors = path
            .competitors
            .iter()
            .map(|c| {
                ControllerKind::from_name(&c.cc)
                    .map(|k| (k, c.start_ms * 1000))
                    .ok_or_else(|| range_err("competitors.cc", "cubic, bbr or reno", &c.cc))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            objective: None,
            one_way_delay_us: ((path.min_rtt_ms * 500.0).round() as u64).max(1),
            queue: match path.buffer_bdp {
                Some(b) => QueueLimit::packets(((b * bdp_packets).round() as u32).max(4)),
                None => QueueLimit::unlimited(),
            },
            random_loss: path.loss_rate,
            ack_trace: path.ack_trace,
            delayed_ack: path.delayed_ack,
            competitors,
            peers: Vec::new(),
        })
    }

    /// Flows on the bottleneck at `now_us`: the policy's and every
    /// competitor that has started.
    pub fn active_flows(&self, now_us: u64) -> usize {
        1 + self.competitors.iter().filter(|c| c.1 <= now_us).count()
            + self.peers.iter().filter(|&&p| p <= now_us).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn draws_stay_inside_their_ranges() {
        let spec = ScenarioSpec::default_distribution();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut saw = (false, false, false, false);
        for _ in 0..2000 {
            let s = spec.draw(&mut rng, 6.0);
            let rtt_ms = 2.0 * s.one_way_delay_us as f64 / 1000.0;
            assert!(
                rtt_ms >= spec.min_rtt_ms[0] - 0.01 && rtt_ms <= spec.min_rtt_ms[1] + 0.01,
                "{rtt_ms}"
            );
            let bdp = 6e6 / 8.0 * rtt_ms / 1000.0 / 1500.0;
            match s.queue.packets {
                Some(p) => {
                    let b = f64::from(p) / bdp;
                    assert!(
                        p == 4 || (b >= spec.buffer_bdp[0] * 0.9 && b <= spec.buffer_bdp[1] * 1.1),
                        "{p} packets = {b} BDP"
                    );
                }
                None => saw.0 = true,
            }
            assert!(s.random_loss >= 0.0 && s.random_loss <= spec.loss_rate[1]);
            saw.1 |= s.random_loss > 0.0;
            saw.2 |= s.ack_trace && s.delayed_ack;
            let n = s.competitors.len() as u32;
            assert!(n >= spec.competitors[0] && n <= spec.competitors[1]);
            for (k, start) in &s.competitors {
                assert!(spec.competitor_kinds.contains(k));
                assert!(*start >= spec.competitor_start_ms[0] * 1000);
                assert!(*start <= spec.competitor_start_ms[1] * 1000);
            }
            saw.3 |= n > 0;
            let w = s
                .objective
                .expect("the default draws an objective")
                .delay_weight();
            assert!(f64::from(w) >= spec.delay_weight.unwrap()[0] - 1e-6);
            assert!(f64::from(w) <= spec.delay_weight.unwrap()[1] + 1e-6);
            assert_eq!(s.active_flows(u64::MAX), 1 + s.competitors.len());
            assert_eq!(
                s.active_flows(0),
                1 + s.competitors.iter().filter(|c| c.1 == 0).count()
            );
        }
        assert_eq!(saw, (true, true, true, true), "every kind of draw happens");
    }

    #[test]
    fn a_mixture_draws_each_component_by_its_weight() {
        // The component is told apart from the file's own fields by its RTT
        // range, which does not overlap theirs.
        let spec = ScenarioSpec::parse(
            Path::new("m.json"),
            r#"{"min_rtt_ms": [200, 400], "buffer_bdp": [1, 4], "competitors": [1, 1],
                "comment": "a test",
                "mixture": [{"weight": 0.7, "scenario": {"min_rtt_ms": [20, 100],
                    "buffer_bdp": [2, 8], "unlimited_buffer_prob": 0.5}}]}"#,
        )
        .unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let n = 4000;
        let (mut focus, mut unlimited) = (0usize, 0usize);
        for _ in 0..n {
            let s = spec.draw(&mut rng, 6.0);
            let rtt_ms = 2.0 * s.one_way_delay_us as f64 / 1000.0;
            if rtt_ms <= 100.01 {
                assert!(rtt_ms >= 19.99, "{rtt_ms}");
                assert!(s.competitors.is_empty(), "the component has none");
                focus += 1;
                unlimited += usize::from(s.queue.packets.is_none());
            } else {
                assert!((199.99..=400.01).contains(&rtt_ms), "{rtt_ms}");
                assert_eq!(s.competitors.len(), 1);
                assert!(
                    s.queue.packets.is_some(),
                    "the file's own fields never draw unlimited"
                );
            }
        }
        let f = focus as f64 / f64::from(n);
        assert!((f - 0.7).abs() < 0.03, "component drawn in {f} of episodes");
        let u = unlimited as f64 / focus as f64;
        assert!(
            (u - 0.5).abs() < 0.05,
            "unlimited in {u} of the component's"
        );
    }

    #[test]
    fn a_file_without_a_mixture_keeps_its_random_stream() {
        // The mixture's pick is drawn only when there is a mixture, so the
        // default's episodes (and the committed hashes) do not move.
        let spec = ScenarioSpec::default_distribution();
        assert!(spec.mixture.is_empty());
        let (mut a, mut b) = (ChaCha8Rng::seed_from_u64(9), ChaCha8Rng::seed_from_u64(9));
        for _ in 0..200 {
            assert_eq!(spec.draw(&mut a, 6.0), spec.draw_own(&mut b, 6.0));
        }
    }

    #[test]
    fn the_committed_scenario_files_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/scenarios");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let spec = ScenarioSpec::load(&path).unwrap_or_else(|e| panic!("{e}"));
                let mut rng = ChaCha8Rng::seed_from_u64(1);
                for _ in 0..100 {
                    let s = spec.draw(&mut rng, 6.0);
                    assert!(s.one_way_delay_us >= 5_000 && s.one_way_delay_us <= 200_000);
                }
                n += 1;
            }
        }
        assert!(n >= 3, "default.json and the weighted files: {n}");
    }

    #[test]
    fn bad_files_name_the_field_and_the_range() {
        let p = Path::new("s.json");
        let base = r#""min_rtt_ms": [10, 100], "buffer_bdp": [1, 4]"#;
        assert!(ScenarioSpec::parse(p, &format!("{{{base}}}")).is_ok());
        let cases = [
            (
                r#""min_rtt_ms": [-5, 100], "buffer_bdp": [1, 4]"#,
                "min_rtt_ms",
            ),
            (
                r#""min_rtt_ms": [10, 100], "buffer_bdp": [0, 4]"#,
                "buffer_bdp",
            ),
            (&format!(r#"{base}, "loss_prob": 1.5"#), "loss_prob"),
            (&format!(r#"{base}, "competitors": [0, 9]"#), "competitors"),
            (
                &format!(r#"{base}, "competitors": [1, 1], "competitor_kinds": []"#),
                "competitor_kinds",
            ),
            (
                &format!(r#"{base}, "competitor_kinds": ["vegas"]"#),
                "vegas",
            ),
            (&format!(r#"{base}, "rtt": 3"#), "rtt"),
            (
                &format!(r#"{base}, "delay_weight": [0.01, 1]"#),
                "delay_weight",
            ),
            (
                r#""min_rtt_ms": [100, 10], "buffer_bdp": [1, 4]"#,
                "min_rtt_ms",
            ),
            (
                &format!(r#"{base}, "mixture": [{{"weight": 1.5, "scenario": {{{base}}}}}]"#),
                "mixture.weight",
            ),
            (
                &format!(
                    r#"{base}, "mixture": [{{"weight": 0.6, "scenario": {{{base}}}}},
                        {{"weight": 0.6, "scenario": {{{base}}}}}]"#
                ),
                "a sum of at most 1",
            ),
            (
                &format!(
                    r#"{base}, "mixture": [{{"weight": 0.5, "scenario": {{{base},
                        "mixture": [{{"weight": 0.5, "scenario": {{{base}}}}}]}}}}]"#
                ),
                "do not nest",
            ),
            (
                &format!(
                    r#"{base}, "mixture": [{{"weight": 0.5, "scenario": {{{base}, "loss_prob": 2}}}}]"#
                ),
                "loss_prob",
            ),
            (
                &format!(
                    r#"{base}, "mixture": [{{"weight": 0.5, "extra": 1, "scenario": {{{base}}}}}]"#
                ),
                "extra",
            ),
        ];
        for (body, needle) in cases {
            let e = ScenarioSpec::parse(p, &format!("{{{body}}}")).unwrap_err();
            assert!(e.to_string().contains(needle), "{body}: {e}");
        }
    }
}
