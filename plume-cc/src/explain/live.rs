//! The live explanations: per flow, what the predictors expect over the
//! next ~1 s under the clamp in force and under its contrasts, as one line
//! for `plume-cc status --explain`.

use super::Predictions;

/// The line for one flow with clamp `clamp` (None: the kernel's own
/// window) and predictions `p` under [`super::ACTIONS_LOG2`], e.g.
/// `clamp 42: next ~1 s predicted 4.1 Mbit/s and +35 ms queueing; at 2x
/// clamp 4.6 Mbit/s and +120 ms; at 1/2 clamp 2.3 Mbit/s and +8 ms`.
pub fn explain_line(clamp: Option<u32>, p: &[Predictions; 3]) -> String {
    let what = clamp.map_or_else(|| "no clamp".to_string(), |c| format!("clamp {c}"));
    let loss = |q: &Predictions| {
        if q.physical[2] >= 0.0005 {
            format!(", {:.1}% loss", 100.0 * q.physical[2])
        } else {
            String::new()
        }
    };
    format!(
        "{what}: next ~1 s predicted {:.1} Mbit/s and +{:.0} ms queueing{}; at 2x clamp {:.1} Mbit/s and +{:.0} ms{}; at 1/2 clamp {:.1} Mbit/s and +{:.0} ms{}",
        p[0].physical[0],
        p[0].physical[1],
        loss(&p[0]),
        p[2].physical[0],
        p[2].physical[1],
        loss(&p[2]),
        p[1].physical[0],
        p[1].physical[1],
        loss(&p[1]),
    )
}

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::past::FlowPast;
use super::predictor::Predictors;
use super::{io_err, ExplainError, ACTION_NAMES};
use crate::policy::observation::OBSERVATION_LEN;

/// Flows the Prometheus gauges carry: the first this many of the daemon's
/// flow order get a `slot` label `0..16`, so a metric has at most
/// 16 slots x 3 actions series however many flows come and go (the
/// slot-to-flow mapping is in the state file and `status --explain`).
pub const METRIC_SLOTS: usize = 16;

/// Flows the state file carries at most.
pub const STATE_FLOWS: usize = 4096;

/// Where daemons publish their explanations for `status --explain`: one
/// JSON file per datapath, named after its pin folder. bpffs holds only
/// BPF objects, so the file lives under /run beside it.
pub const STATE_DIR: &str = "/run/plume-cc/explain";

/// The state file of the datapath pinned at `pin_dir` under `root`
/// ([`STATE_DIR`] in production).
pub fn state_path(root: &Path, pin_dir: &Path) -> PathBuf {
    let name = pin_dir.file_name().map_or_else(
        || "datapath".to_string(),
        |n| n.to_string_lossy().to_string(),
    );
    root.join(format!("{name}.json"))
}

/// One flow's explanation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FlowExplanation {
    /// Socket cookie.
    pub cookie: u64,
    /// The cwnd clamp the daemon set (None: the kernel's own window).
    pub clamp: Option<u32>,
    /// Predictions under each action of [`ACTION_NAMES`].
    pub predicted: [Predictions; 3],
    /// Why the flow lies outside what the predictors were fit on
    /// ([`super::predictor::InputRanges::outside`]); absent when it lies
    /// within, or when the predictors carry no ranges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extrapolated: Option<String>,
}

/// What a daemon publishes (the state file).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LiveState {
    /// Wall-clock time of the write, Unix milliseconds (a reader ignores a
    /// stale file: the daemon stopped).
    pub written_unix_ms: u64,
    /// The policy explained.
    pub policy_weights_sha256: String,
    /// The horizon of the predictions, seconds.
    pub horizon_s: f64,
    /// The actions' names ([`ACTION_NAMES`]).
    pub actions: Vec<String>,
    /// Every flow explained.
    pub flows: Vec<FlowExplanation>,
}

/// The daemon's explainer: every `every`-th interval, one batched forward
/// of the predictors over the observations and raw actions the policy's own
/// batched forward just used.
#[derive(Debug)]
pub struct LiveExplainer {
    predictors: Predictors,
    every: u64,
    calls: u64,
    last: Vec<FlowExplanation>,
    /// Flows already reported as extrapolated (so the log says it once per
    /// flow); flows that left the batch are forgotten.
    reported: std::collections::HashSet<u64>,
    /// Flows found extrapolated for the first time by the last
    /// [`LiveExplainer::explain`], with the reason.
    newly_extrapolated: Vec<(u64, String)>,
    /// Every flow's past ([`super::past`]), fed by
    /// [`LiveExplainer::observe`] at every control step (kept only when
    /// the predictors read it).
    past: std::collections::HashMap<u64, FlowPast>,
}

impl LiveExplainer {
    /// Explains every `every`-th interval (at least 1).
    pub fn new(predictors: Predictors, every: u64) -> Self {
        Self {
            predictors,
            every: every.max(1),
            calls: 0,
            last: Vec::new(),
            reported: Default::default(),
            newly_extrapolated: Vec::new(),
            past: Default::default(),
        }
    }

    /// Takes the observations of one control step (flows `cookies`,
    /// observations `obs` row-major), every flow the policy just observed
    /// ([`crate::policy::LastBatch::observed`]: a per-copy policy forwards
    /// only the due ones, yet every flow's past moves on), into each flow's
    /// past; flows absent from the step are
    /// forgotten. Called at every step, explained or not, as the fit's
    /// rollouts feed every interval. A no-op for predictors that do not
    /// read the past.
    pub fn observe(&mut self, cookies: &[u64], obs: &[f32]) {
        if !self.reads_past() {
            return;
        }
        let interval_us = self.predictors.metadata().monitor_interval_us;
        let current: std::collections::HashSet<u64> = cookies.iter().copied().collect();
        self.past.retain(|c, _| current.contains(c));
        for (&cookie, o) in cookies.iter().zip(obs.chunks_exact(OBSERVATION_LEN)) {
            self.past
                .entry(cookie)
                .or_insert_with(|| FlowPast::new(interval_us))
                .update(o);
        }
    }

    /// Whether [`Self::observe`] uses what it is given: the predictors
    /// read the flows' past, so the policy must keep every flow's
    /// observation ([`crate::policy::FlowPolicy::keep_observed`]).
    pub fn reads_past(&self) -> bool {
        self.predictors.metadata().past
    }

    /// The predictors.
    pub fn predictors(&self) -> &Predictors {
        &self.predictors
    }

    /// Counts an interval; true when this one is explained.
    pub fn due(&mut self) -> bool {
        self.calls += 1;
        (self.calls - 1).is_multiple_of(self.every)
    }

    /// Predictions for flows `cookies` with observations `obs` (row-major),
    /// raw actions `raw` (two per flow) and clamps in force `clamps`.
    pub fn explain(
        &mut self,
        cookies: &[u64],
        obs: &[f32],
        raw: &[f32],
        clamps: &[Option<u32>],
    ) -> Result<&[FlowExplanation], ExplainError> {
        let n = cookies
            .len()
            .min(clamps.len())
            .min(raw.len() / 2)
            .min(obs.len() / OBSERVATION_LEN)
            .min(STATE_FLOWS);
        let raw2: Vec<[f32; 2]> = raw.chunks_exact(2).take(n).map(|a| [a[0], a[1]]).collect();
        let interval_us = self.predictors.metadata().monitor_interval_us;
        let past: Vec<f32> = if self.predictors.metadata().past {
            cookies[..n]
                .iter()
                .flat_map(|c| {
                    self.past
                        .get(c)
                        .copied()
                        .unwrap_or_else(|| FlowPast::new(interval_us))
                        .features()
                })
                .collect()
        } else {
            Vec::new()
        };
        let p = self
            .predictors
            .predict_actions(&obs[..n * OBSERVATION_LEN], &past, &raw2)?;
        let ranges = self.predictors.metadata().ranges;
        self.last = cookies
            .iter()
            .zip(clamps)
            .zip(p)
            .zip(obs.chunks_exact(OBSERVATION_LEN))
            .map(|(((&cookie, &clamp), predicted), o)| FlowExplanation {
                cookie,
                clamp,
                predicted,
                extrapolated: ranges.and_then(|r| r.outside(o)),
            })
            .collect();
        let current: std::collections::HashSet<u64> = self.last.iter().map(|f| f.cookie).collect();
        self.reported.retain(|c| current.contains(c));
        self.newly_extrapolated.clear();
        for f in &self.last {
            if let Some(why) = &f.extrapolated {
                if self.reported.insert(f.cookie) {
                    self.newly_extrapolated.push((f.cookie, why.clone()));
                }
            }
        }
        Ok(&self.last)
    }

    /// The flows the last [`LiveExplainer::explain`] found outside the
    /// predictors' ranges for the first time (socket cookie, reason): the
    /// daemon logs each once. A flow that leaves and comes back is
    /// reported again.
    pub fn newly_extrapolated(&self) -> &[(u64, String)] {
        &self.newly_extrapolated
    }

    /// The last explanations.
    pub fn last(&self) -> &[FlowExplanation] {
        &self.last
    }

    /// The state to publish, written at `unix_ms`.
    pub fn state(&self, unix_ms: u64) -> LiveState {
        let m = self.predictors.metadata();
        LiveState {
            written_unix_ms: unix_ms,
            policy_weights_sha256: m.policy_weights_sha256.clone(),
            horizon_s: m.horizon.steps as f64 * m.monitor_interval_us as f64 / 1e6,
            actions: ACTION_NAMES.iter().map(|s| s.to_string()).collect(),
            flows: self.last.clone(),
        }
    }
}

/// Writes `state` to `path` atomically (a temporary file renamed over it),
/// so a reader never sees half a file.
pub fn write_state(path: &Path, state: &LiveState) -> Result<(), ExplainError> {
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).map_err(io_err(d))?;
    }
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_vec(state).map_err(|e| ExplainError::Invalid {
        path: path.to_path_buf(),
        what: e.to_string(),
    })?;
    std::fs::write(&tmp, text).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

/// Reads the state at `path`: None when there is none, or when it was
/// written more than `max_age_ms` before `now_unix_ms` (its daemon stopped
/// or hangs).
pub fn read_state(
    path: &Path,
    now_unix_ms: u64,
    max_age_ms: u64,
) -> Result<Option<LiveState>, ExplainError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    let s: LiveState = serde_json::from_slice(&bytes).map_err(|e| ExplainError::Invalid {
        path: path.to_path_buf(),
        what: format!("invalid explanation state: {e}"),
    })?;
    Ok((now_unix_ms.saturating_sub(s.written_unix_ms) <= max_age_ms).then_some(s))
}

/// Wall-clock now, Unix milliseconds.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(mbps: f64, ms: f64) -> Predictions {
        Predictions {
            reward_units: [0.0; 3],
            physical: [mbps, ms, 0.0],
        }
    }

    #[test]
    fn the_line_names_the_clamp_and_each_contrast() {
        let l = explain_line(Some(42), &[p(4.1, 35.2), p(2.3, 8.0), p(4.6, 120.0)]);
        assert_eq!(
            l,
            "clamp 42: next ~1 s predicted 4.1 Mbit/s and +35 ms queueing; at 2x clamp 4.6 Mbit/s and +120 ms; at 1/2 clamp 2.3 Mbit/s and +8 ms"
        );
        assert!(explain_line(None, &[p(1.0, 1.0); 3]).starts_with("no clamp: "));
    }

    #[test]
    fn every_step_feeds_each_flows_past_and_departed_flows_are_forgotten() {
        use super::super::predictor::random_predictors_with_past;
        let policy = crate::policy::default_policy().unwrap();
        let p = random_predictors_with_past(policy.metadata(), 5);
        // A 40 ms, 10 Mbit/s path; `excess` min RTTs of queue in the newest interval.
        let obs_of = |excess: f32| {
            let mut o = vec![0.0f32; OBSERVATION_LEN];
            o[0] = ((1.0f64 + 40.0).ln() / 1001f64.ln()) as f32;
            o[1] = ((1.0f64 + 10.0).ln() / 10001f64.ln()) as f32;
            o[crate::policy::observation::GLOBAL_FEATURES.len() + 2] = excess;
            o
        };
        let mut x = LiveExplainer::new(p, 1);
        // Two flows with the same observation now; flow 1 has had a deep queue.
        for k in 0..50 {
            let mut obs = obs_of(if k < 25 { 5.0 } else { 0.5 });
            obs.extend(obs_of(0.5));
            x.observe(&[1, 2], &obs);
        }
        let mut obs = obs_of(0.5);
        obs.extend(obs_of(0.5));
        let raw = [0.1, 0.0, 0.1, 0.0];
        let e = x
            .explain(&[1, 2], &obs, &raw, &[Some(10), Some(10)])
            .unwrap()
            .to_vec();
        assert_ne!(
            e[0].predicted, e[1].predicted,
            "the same observation, another past"
        );
        let mut fresh = super::super::past::FlowPast::new(20_000);
        for _ in 0..50 {
            fresh.update(&obs_of(0.5));
        }
        assert_eq!(x.past[&2].features(), fresh.features());
        // Flow 1 leaves; when a flow of that cookie comes back it starts afresh.
        x.observe(&[2], &obs_of(0.5));
        assert!(!x.past.contains_key(&1));
        x.observe(&[1, 2], &obs);
        assert_eq!(x.past[&1].intervals(), 1);
    }

    #[test]
    fn flows_outside_the_fitted_ranges_are_flagged_and_reported_once() {
        use super::super::predictor::{random_predictors, InputRanges};
        let policy = crate::policy::default_policy().unwrap();
        let mut p = random_predictors(policy.metadata(), 21);
        p.metadata_mut().ranges = Some(InputRanges {
            min_rtt_ms: [10.0, 400.0],
            max_rate_mbps: [0.5, 60.0],
        });
        // Flow 1 on a 40 ms, 10 Mbit/s path; flow 2 on loopback (5 us, 3 Gbit/s).
        let obs_of = |ms: f64, mbps: f64| {
            let mut o = vec![0.0f32; OBSERVATION_LEN];
            o[0] = ((1.0 + ms).ln() / 1001f64.ln()) as f32;
            o[1] = ((1.0 + mbps).ln() / 10001f64.ln()) as f32;
            o
        };
        let mut obs = obs_of(40.0, 10.0);
        obs.extend(obs_of(0.005, 3000.0));
        let raw = [0.1, 0.0, 0.1, 0.0];
        let mut x = LiveExplainer::new(p, 1);
        let e = x.explain(&[1, 2], &obs, &raw, &[Some(10), None]).unwrap();
        assert_eq!(e[0].extrapolated, None);
        let why = e[1].extrapolated.clone().unwrap();
        assert!(
            why.contains("min RTT 0.00500 ms") && why.contains("rate 3000 Mbit/s"),
            "{why}"
        );
        assert_eq!(x.newly_extrapolated(), &[(2, why.clone())]);
        // Reported once while the flow stays...
        x.explain(&[1, 2], &obs, &raw, &[Some(10), None]).unwrap();
        assert!(x.newly_extrapolated().is_empty());
        // ...and again after it left and came back.
        x.explain(&[1], &obs[..OBSERVATION_LEN], &raw[..2], &[Some(10)])
            .unwrap();
        x.explain(&[1, 2], &obs, &raw, &[Some(10), None]).unwrap();
        assert_eq!(x.newly_extrapolated().len(), 1);
        let table = explain_table(&x.state(unix_ms()));
        let lines: Vec<&str> = table.lines().collect();
        assert!(!lines[0].contains("extrapolated"), "{table}");
        assert!(
            lines[1].ends_with(&format!(
                "[extrapolated: {why}; the predictors were not fit on such flows]"
            )),
            "{table}"
        );
        // Predictors without ranges (fit before they were kept) flag nothing.
        let mut x = LiveExplainer::new(random_predictors(policy.metadata(), 21), 1);
        let e = x.explain(&[1, 2], &obs, &raw, &[Some(10), None]).unwrap();
        assert!(e.iter().all(|f| f.extrapolated.is_none()));
    }

    #[test]
    fn state_files_round_trip_and_go_stale() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(dir.path(), Path::new("/sys/fs/bpf/plume-cc/test-cg"));
        assert!(path.ends_with("test-cg.json"));
        assert_eq!(read_state(&path, 1_000, 5_000).unwrap(), None);
        let s = LiveState {
            written_unix_ms: 10_000,
            policy_weights_sha256: "ab".into(),
            horizon_s: 1.0,
            actions: ACTION_NAMES.iter().map(|s| s.to_string()).collect(),
            flows: vec![FlowExplanation {
                cookie: 7,
                clamp: Some(42),
                predicted: [p(4.1, 35.0), p(2.0, 5.0), p(4.6, 120.0)],
                extrapolated: None,
            }],
        };
        write_state(&path, &s).unwrap();
        assert_eq!(read_state(&path, 12_000, 5_000).unwrap(), Some(s));
        assert_eq!(read_state(&path, 20_000, 5_000).unwrap(), None, "stale");
        std::fs::write(&path, "{").unwrap();
        assert!(read_state(&path, 12_000, 5_000).is_err());
    }
}

/// The `status --explain` lines of `state`: one per flow, by cookie.
pub fn explain_table(state: &LiveState) -> String {
    let mut s = String::new();
    for f in &state.flows {
        let warn = f.extrapolated.as_ref().map_or_else(String::new, |why| {
            format!(" [extrapolated: {why}; the predictors were not fit on such flows]")
        });
        s.push_str(&format!(
            "  {:>10}  {}{warn}\n",
            f.cookie,
            explain_line(f.clamp, &f.predicted)
        ));
    }
    s
}

#[cfg(test)]
mod daemon_side {
    use super::*;
    use crate::policy::learned::test_flow_stats;
    use crate::policy::{FlowPolicy, LearnedPolicy};

    /// What the daemon does every few intervals: the learned policy
    /// decides, the explainer runs on its last batch, the state file is
    /// written and `status --explain` prints a line per flow.
    #[test]
    fn the_daemons_last_batch_is_explained_and_published() {
        let loaded = crate::policy::default_policy().unwrap();
        let predictors = super::super::predictor::random_predictors(loaded.metadata(), 8);
        let mut policy = LearnedPolicy::new(loaded);
        assert!(policy.last_batch().is_some_and(|b| b.cookies.is_empty()));
        let stats = test_flow_stats;
        let mut out = Vec::new();
        for (k, t) in [0u64, 20, 40, 60].iter().enumerate() {
            let d = 100 * k as u32;
            policy
                .decide(
                    t * 1_000_000,
                    &[(11, stats(d)), (12, stats(d / 2))],
                    &mut out,
                )
                .unwrap();
        }
        let b = policy.last_batch().unwrap();
        assert_eq!(b.cookies, &[11, 12]);
        assert_eq!(b.observations.len(), 2 * OBSERVATION_LEN);
        assert_eq!(b.raw_actions.len(), 4);
        // After a flow is forgotten the batch still describes the last decision.
        policy.forget(12);
        let b = policy.last_batch().unwrap();
        assert_eq!(b.cookies, &[11, 12]);
        let mut x = LiveExplainer::new(predictors, 3);
        assert!(x.due() && !x.due() && !x.due() && x.due());
        let clamps = [Some(42), None];
        let e = x
            .explain(b.cookies, b.observations, b.raw_actions, &clamps)
            .unwrap()
            .to_vec();
        assert_eq!(e.len(), 2);
        let direct = x
            .predictors()
            .predict_actions(
                &b.observations[..OBSERVATION_LEN],
                &[],
                &[[b.raw_actions[0], b.raw_actions[1]]],
            )
            .unwrap();
        // The same prediction; batches of another size may round the last
        // bits differently (libtorch picks its kernels by shape and CPU).
        let close = |a: &[f64; 3], b: &[f64; 3]| {
            a.iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() <= 1e-5 * (1.0 + y.abs()))
        };
        assert!(
            e[0].predicted.iter().zip(&direct[0]).all(|(a, b)| {
                close(&a.reward_units, &b.reward_units) && close(&a.physical, &b.physical)
            }),
            "{:?} {:?}",
            e[0].predicted,
            direct[0]
        );
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(dir.path(), Path::new("/sys/fs/bpf/plume-cc/cg"));
        write_state(&path, &x.state(unix_ms())).unwrap();
        let st = read_state(&path, unix_ms(), 5_000).unwrap().unwrap();
        let table = explain_table(&st);
        assert_eq!(table.lines().count(), 2);
        assert!(
            table.contains("11  clamp 42: next ~1 s predicted"),
            "{table}"
        );
        assert!(table.contains("12  no clamp: "), "{table}");
    }
}
