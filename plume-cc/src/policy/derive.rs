//! A policy derived from another: the same weights under a changed action
//! mapping (`plume-cc policy derive`).
//!
//! Why: the mapping from the network's output to a flow's limits sits after
//! the network (`policy/scaling.rs`), so some of its settings can be chosen
//! after training, on validation windows, without touching the weights:
//! - the spans (`cwnd_log2_span`, `pacing_log2_span`): with span `s`
//!   instead of the trained one the clamp is the fixed rule's times the
//!   learned deviation to the power `s / trained`, a geometric
//!   interpolation between the fixed rule and the policy as trained
//!   (docs/TRAINING.md, "Shrinking the action toward the fixed rule");
//! - the default operating point (the delay weight the daemon feeds the
//!   policy when `run` has no `--objective`);
//! - the competition rule (drain probes and a competitive mode,
//!   `policy/competition.rs`), which needs no training;
//! - how flows share a link (`additive_segments`, `path_min_rtt`,
//!   `anchor_window_floor_ms`: `policy/scaling.rs` says why each), which
//!   act after the network or only on the daemon's side.
//!
//! Until now such policies were made by editing `policy.json` by hand, so
//! the committed candidates could not be rebuilt from commands alone. The
//! derivation is recorded in the file (`training.derived`, one line per
//! derivation, in order) beside the training command, so the two commands
//! rebuild the file byte for byte.

use std::path::{Path, PathBuf};

use super::format::resolve;
use super::metadata::{PolicyError, PolicyMetadata};
use super::scaling::MAX_ANCHOR_WINDOW_FLOOR_MS;
use super::scaling::{
    ceiling_in_range, drain_gain_in_range, COMPETITIVE_CEILING_RANGE, DRAIN_GAIN_RANGE,
};
use super::{CompetitionRule, Objective};

/// Largest additive term a derivation accepts, segments (the mapping's own
/// bound, `ActionScaling::is_valid`).
pub const ADDITIVE_MAX: f32 = 64.0;

/// Smallest and largest span a derivation accepts, in octaves either side
/// of action 0. Zero would be the fixed rule itself (`run --fixed-rule`
/// says that more plainly); past 4 octaves a clamp moves by 16x per unit
/// of action, far outside anything trained here (2).
pub const SPAN_RANGE: (f32, f32) = (0.05, 4.0);

/// What a derived policy changes in its source's mapping; `None` keeps the
/// source's setting.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Derivation {
    /// Both spans, octaves either side of action 0 ([`SPAN_RANGE`]).
    pub spans: Option<f32>,
    /// The default operating point.
    pub default_objective: Option<Objective>,
    /// The competition rule on (with its defaults) or off.
    pub competition_rule: Option<bool>,
    /// Segments added to every clamp (`ActionScaling::additive_segments`).
    pub additive_segments: Option<f32>,
    /// The min RTT shared by the flows to one address
    /// (`ActionScaling::path_min_rtt`), on or off.
    pub path_min_rtt: Option<bool>,
    /// The rate anchor window's floor, ms
    /// (`ActionScaling::anchor_window_floor_ms`; 0: the built-in 10 s).
    pub anchor_window_floor_ms: Option<u32>,
    /// The datapath holds the clamp after a loss
    /// (`ActionScaling::hold_clamp_after_loss`), on or off.
    pub hold_clamp_after_loss: Option<bool>,
    /// That hold's bound in smoothed RTTs
    /// (`ActionScaling::hold_clamp_max_srtts`; 0: none).
    pub hold_clamp_max_srtts: Option<u32>,
    /// The competition rule's probes drain through the pacing cap (true) or
    /// the clamp (`CompetitionRule::drain_by_pacing`); needs the rule.
    pub competition_drain_by_pacing: Option<bool>,
    /// The competition rule's ceiling in competitive mode, BDPs
    /// (`CompetitionRule::competitive_ceiling`; 0: none, no limits); needs
    /// the rule.
    pub competitive_ceiling: Option<f32>,
    /// The share of its rate a probe of the competition rule sends at
    /// (`CompetitionRule::drain_gain`); needs the rule.
    pub competition_drain_gain: Option<f32>,
    /// The kernel controller of competitive mode beside a competitor that
    /// does not back off on loss (`CompetitionRule::competitive_cc`); needs
    /// the rule, and must not be the policy's base.
    pub competitive_cc: Option<crate::congestion::ControllerKind>,
}

/// The competition rule of `meta`, which `flag` changes; a policy without
/// one is refused, naming the flag.
fn rule_for<'a>(
    meta: &'a mut PolicyMetadata,
    flag: &'static str,
) -> Result<&'a mut CompetitionRule, DeriveError> {
    meta.action_scaling
        .competition
        .as_mut()
        .ok_or(DeriveError::NoRule(flag))
}

/// The largest `--hold-clamp-max-srtts`: a hold longer than a thousand
/// round trips is no bound.
pub const MAX_HOLD_CLAMP_SRTTS: u32 = 1000;

/// Why a derivation was refused. Nothing is written in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum DeriveError {
    /// The source is not a loadable policy.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// A setting is outside its range.
    #[error("{field} is {found}; allowed: {allowed}")]
    Range {
        /// The option.
        field: &'static str,
        /// What is allowed.
        allowed: String,
        /// What was given.
        found: String,
    },
    /// The derivation changes nothing.
    #[error("nothing to derive: give --spans, --objective, --competition-rule on|off, --competition-drain clamp|pacing, --competitive-ceiling, --additive-segments, --path-min-rtt on|off, --anchor-floor-ms or --hold-clamp-after-loss on|off")]
    Empty,
    /// A setting of the competition rule for a policy without the rule.
    #[error(
        "{0} sets the competition rule, but the policy has no rule: add --competition-rule on"
    )]
    NoRule(&'static str),
    /// The output would overwrite a policy (the source or another).
    #[error("{0} already holds a policy (policy.json); choose a new folder")]
    Exists(PathBuf),
    /// Writing the output failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl Derivation {
    /// The line recorded in `training.derived`: the command's own flags, so
    /// the line can be run again.
    pub fn describe(&self) -> String {
        let mut v = vec!["plume-cc policy derive".to_string()];
        if let Some(s) = self.spans {
            v.push(format!("--spans {s}"));
        }
        if let Some(o) = self.default_objective {
            v.push(format!("--objective {}", o.delay_weight()));
        }
        if let Some(r) = self.competition_rule {
            v.push(format!(
                "--competition-rule {}",
                if r { "on" } else { "off" }
            ));
        }
        if let Some(c) = self.additive_segments {
            v.push(format!("--additive-segments {c}"));
        }
        if let Some(p) = self.path_min_rtt {
            v.push(format!("--path-min-rtt {}", if p { "on" } else { "off" }));
        }
        if let Some(w) = self.anchor_window_floor_ms {
            v.push(format!("--anchor-floor-ms {w}"));
        }
        if let Some(h) = self.hold_clamp_after_loss {
            v.push(format!(
                "--hold-clamp-after-loss {}",
                if h { "on" } else { "off" }
            ));
        }
        if let Some(n) = self.hold_clamp_max_srtts {
            v.push(format!("--hold-clamp-max-srtts {n}"));
        }
        if let Some(p) = self.competition_drain_by_pacing {
            v.push(format!(
                "--competition-drain {}",
                if p { "pacing" } else { "clamp" }
            ));
        }
        if let Some(k) = self.competitive_ceiling {
            v.push(format!("--competitive-ceiling {k}"));
        }
        if let Some(g) = self.competition_drain_gain {
            v.push(format!("--competition-drain-gain {g}"));
        }
        if let Some(k) = self.competitive_cc {
            v.push(format!("--competitive-controller {}", k.name()));
        }
        v.join(" ")
    }

    /// The metadata of the derived policy: `source`'s with this
    /// derivation's changes, recorded in `training.derived`.
    pub fn apply(&self, source: &PolicyMetadata) -> Result<PolicyMetadata, DeriveError> {
        if *self == Self::default() {
            return Err(DeriveError::Empty);
        }
        let mut meta = source.clone();
        if let Some(s) = self.spans {
            if !(SPAN_RANGE.0..=SPAN_RANGE.1).contains(&s) {
                return Err(DeriveError::Range {
                    field: "--spans",
                    allowed: format!("{} to {} octaves", SPAN_RANGE.0, SPAN_RANGE.1),
                    found: s.to_string(),
                });
            }
            meta.action_scaling.cwnd_log2_span = s;
            meta.action_scaling.pacing_log2_span = s;
        }
        if let Some(o) = self.default_objective {
            meta.default_objective = o;
        }
        match self.competition_rule {
            Some(true) if meta.action_scaling.competition.is_none() => {
                meta.action_scaling.competition = Some(CompetitionRule::default());
            }
            Some(false) => meta.action_scaling.competition = None,
            _ => {}
        }
        if let Some(p) = self.competition_drain_by_pacing {
            rule_for(&mut meta, "--competition-drain")?.drain_by_pacing = p;
        }
        if let Some(k) = self.competitive_ceiling {
            let (lo, hi) = COMPETITIVE_CEILING_RANGE;
            if !(k == 0.0 || ceiling_in_range(k)) {
                return Err(DeriveError::Range {
                    field: "--competitive-ceiling",
                    allowed: format!("0 (none) or {lo} to {hi} BDPs"),
                    found: k.to_string(),
                });
            }
            let rule = rule_for(&mut meta, "--competitive-ceiling")?;
            if let Some(e) = rule.competitive_exponent.filter(|_| k > 0.0) {
                return Err(DeriveError::Range {
                    field: "--competitive-ceiling",
                    allowed: format!(
                        "0 (none) for this policy: its rule follows the srtt in competitive mode (exponent {e}), and the two do not combine"
                    ),
                    found: k.to_string(),
                });
            }
            rule.competitive_ceiling = (k > 0.0).then_some(k);
        }
        if let Some(g) = self.competition_drain_gain {
            if !drain_gain_in_range(g) {
                let (lo, hi) = DRAIN_GAIN_RANGE;
                return Err(DeriveError::Range {
                    field: "--competition-drain-gain",
                    allowed: format!("{lo} to {hi} of the flow's rate"),
                    found: g.to_string(),
                });
            }
            rule_for(&mut meta, "--competition-drain-gain")?.drain_gain = Some(g);
        }
        if let Some(k) = self.competitive_cc {
            if k.name() == meta.base_cc {
                return Err(DeriveError::Range {
                    field: "--competitive-controller",
                    allowed: format!(
                        "a controller other than the policy's base ({})",
                        meta.base_cc
                    ),
                    found: k.name().to_string(),
                });
            }
            rule_for(&mut meta, "--competitive-controller")?.competitive_cc = Some(k);
        }
        if let Some(c) = self.additive_segments {
            if !(c.is_finite() && (0.0..=ADDITIVE_MAX).contains(&c)) {
                return Err(DeriveError::Range {
                    field: "--additive-segments",
                    allowed: format!("0 to {ADDITIVE_MAX} segments"),
                    found: c.to_string(),
                });
            }
            meta.action_scaling.additive_segments = c;
        }
        if let Some(p) = self.path_min_rtt {
            meta.action_scaling.path_min_rtt = p;
        }
        if let Some(w) = self.anchor_window_floor_ms {
            if w > MAX_ANCHOR_WINDOW_FLOOR_MS {
                return Err(DeriveError::Range {
                    field: "--anchor-floor-ms",
                    allowed: format!("0 (the built-in 10 s) to {MAX_ANCHOR_WINDOW_FLOOR_MS} ms"),
                    found: w.to_string(),
                });
            }
            meta.action_scaling.anchor_window_floor_ms = w;
        }
        if let Some(h) = self.hold_clamp_after_loss {
            meta.action_scaling.hold_clamp_after_loss = h;
        }
        if let Some(n) = self.hold_clamp_max_srtts {
            if n > MAX_HOLD_CLAMP_SRTTS {
                return Err(DeriveError::Range {
                    field: "--hold-clamp-max-srtts",
                    allowed: format!("0 (no bound) to {MAX_HOLD_CLAMP_SRTTS} smoothed RTTs"),
                    found: n.to_string(),
                });
            }
            meta.action_scaling.hold_clamp_max_srtts = n;
        }
        meta.training.derived.push(self.describe());
        Ok(meta)
    }
}

/// Writes the policy at `source` (a folder or a `NAME.json`), derived by
/// `d`, into the folder `out` (created): `policy.json` and the source's
/// weights file, copied unchanged. The result is loaded back before this
/// returns, so a file that the daemon would refuse is not left behind.
pub fn derive(source: &Path, out: &Path, d: &Derivation) -> Result<PolicyMetadata, DeriveError> {
    // Loading checks the source whole (format, observation, weights hash).
    let loaded = super::LoadedPolicy::load(source)?;
    let meta = d.apply(loaded.metadata())?;
    let out_json = out.join("policy.json");
    if out_json.exists() {
        return Err(DeriveError::Exists(out.to_path_buf()));
    }
    let (_, weights_path) = resolve(source)?;
    let weights_name = match meta.kind {
        super::metadata::ModelKind::Safetensors => "policy.safetensors",
        super::metadata::ModelKind::Torchscript => "policy.pt",
    };
    let json = serde_json::to_string_pretty(&meta).map_err(|e| DeriveError::Io {
        path: out_json.clone(),
        source: std::io::Error::other(e),
    })?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DeriveError::Io { path, source }
    };
    std::fs::create_dir_all(out).map_err(io(out))?;
    let out_weights = out.join(weights_name);
    std::fs::copy(&weights_path, &out_weights).map_err(io(&out_weights))?;
    std::fs::write(&out_json, json + "\n").map_err(io(&out_json))?;
    if let Err(e) = super::LoadedPolicy::load(out) {
        let _ = std::fs::remove_file(&out_json);
        let _ = std::fs::remove_file(&out_weights);
        return Err(e.into());
    }
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::congestion::ControllerKind;

    fn default_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/default")
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("plume-derive-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_derived_policy_keeps_the_weights_and_records_the_derivation() {
        let out = tmp("ok");
        let d = Derivation {
            spans: Some(0.5),
            default_objective: Some(Objective::parse("0.05").unwrap()),
            competition_rule: Some(true),
            ..Derivation::default()
        };
        let meta = derive(&default_dir(), &out, &d).unwrap();
        let src = super::super::LoadedPolicy::load(&default_dir()).unwrap();
        let got = super::super::LoadedPolicy::load(&out).unwrap();
        assert_eq!(got.metadata(), &meta);
        assert_eq!(meta.weights_sha256, src.metadata().weights_sha256);
        assert_eq!(meta.action_scaling.cwnd_log2_span, 0.5);
        assert_eq!(meta.action_scaling.pacing_log2_span, 0.5);
        assert!(meta.action_scaling.competition.is_some());
        assert!((meta.default_objective.delay_weight() - 0.05).abs() < 1e-9);
        assert_eq!(
            meta.training.derived.last().map(String::as_str),
            Some("plume-cc policy derive --spans 0.5 --objective 0.05 --competition-rule on")
        );
        // Everything else is the source's.
        let mut back = meta.clone();
        back.action_scaling = src.metadata().action_scaling;
        back.default_objective = src.metadata().default_objective;
        back.training.derived.pop();
        assert_eq!(&back, src.metadata());
        // A second derivation onto the same folder is refused.
        let e = derive(&default_dir(), &out, &d).unwrap_err();
        assert!(matches!(e, DeriveError::Exists(_)), "{e}");
        let _ = std::fs::remove_dir_all(&out);
    }

    #[test]
    fn bad_derivations_are_refused_and_write_nothing() {
        let out = tmp("bad");
        let e = derive(&default_dir(), &out, &Derivation::default()).unwrap_err();
        assert!(matches!(e, DeriveError::Empty), "{e}");
        for s in [0.0, -1.0, 5.0, f32::NAN] {
            let d = Derivation {
                spans: Some(s),
                ..Derivation::default()
            };
            let e = derive(&default_dir(), &out, &d).unwrap_err().to_string();
            assert!(
                e.contains("--spans") && e.contains("0.05 to 4 octaves"),
                "{e}"
            );
        }
        let e = derive(
            &out.join("missing"),
            &out,
            &Derivation {
                spans: Some(1.0),
                ..Derivation::default()
            },
        )
        .unwrap_err();
        assert!(matches!(e, DeriveError::Policy(_)), "{e}");
        for (d, field) in [
            (
                Derivation {
                    additive_segments: Some(-1.0),
                    ..Derivation::default()
                },
                "--additive-segments",
            ),
            (
                Derivation {
                    additive_segments: Some(65.0),
                    ..Derivation::default()
                },
                "--additive-segments",
            ),
            (
                Derivation {
                    anchor_window_floor_ms: Some(60_001),
                    ..Derivation::default()
                },
                "--anchor-floor-ms",
            ),
        ] {
            let e = derive(&default_dir(), &out, &d).unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
        assert!(!out.exists(), "nothing is written");
    }

    #[test]
    fn a_sharing_derivation_sets_the_three_fields_and_records_its_command() {
        let out = tmp("share");
        let d = Derivation {
            additive_segments: Some(8.0),
            path_min_rtt: Some(true),
            anchor_window_floor_ms: Some(1000),
            ..Derivation::default()
        };
        let meta = derive(&default_dir(), &out, &d).unwrap();
        let s = meta.action_scaling;
        assert_eq!(s.additive_segments, 8.0);
        assert!(s.path_min_rtt);
        assert_eq!(s.anchor_window_floor_ms, 1000);
        assert_eq!(s.anchor_floor_us(), 1_000_000);
        assert_eq!(
            meta.training.derived.last().map(String::as_str),
            Some("plume-cc policy derive --additive-segments 8 --path-min-rtt on --anchor-floor-ms 1000")
        );
        // The file round-trips: what the daemon loads is what was derived.
        let got = super::super::LoadedPolicy::load(&out).unwrap();
        assert_eq!(got.metadata(), &meta);
        let _ = std::fs::remove_dir_all(&out);
    }

    #[test]
    fn a_hold_derivation_sets_the_field_and_the_daemon_contract_carries_it() {
        use super::super::FlowPolicy as _;
        let out = tmp("hold");
        let d = Derivation {
            hold_clamp_after_loss: Some(true),
            ..Derivation::default()
        };
        let meta = derive(&default_dir(), &out, &d).unwrap();
        assert!(meta.action_scaling.hold_clamp_after_loss);
        assert_eq!(
            meta.training.derived.last().map(String::as_str),
            Some("plume-cc policy derive --hold-clamp-after-loss on")
        );
        let got = super::super::LoadedPolicy::load(&out).unwrap();
        assert_eq!(got.metadata(), &meta);
        let text = std::fs::read_to_string(out.join("policy.json")).unwrap();
        assert!(text.contains("\"hold_clamp_after_loss\": true"), "{text}");
        // The daemon sets DatapathConfig::clamp_hold from the contract.
        let learned = super::super::learned::LearnedPolicy::new(got);
        assert!(learned.contract().is_some_and(|c| c.clamp_hold.on));
        let source = super::super::LoadedPolicy::load(&default_dir()).unwrap();
        let plain = super::super::learned::LearnedPolicy::new(source);
        assert!(plain.contract().is_some_and(|c| !c.clamp_hold.on));
        let _ = std::fs::remove_dir_all(&out);
    }

    #[test]
    fn the_drain_by_pacing_needs_the_rule_and_is_written_with_it() {
        // Without the rule: refused, nothing written.
        let out = tmp("drain-norule");
        let d = Derivation {
            competition_drain_by_pacing: Some(true),
            ..Derivation::default()
        };
        let e = derive(&default_dir(), &out, &d).unwrap_err();
        assert!(
            matches!(e, DeriveError::NoRule("--competition-drain")),
            "{e}"
        );
        assert!(e.to_string().contains("--competition-rule on"), "{e}");
        assert!(!out.exists());
        // With it, in one derivation: the field set and the command recorded.
        let d = Derivation {
            competition_rule: Some(true),
            competition_drain_by_pacing: Some(true),
            ..Derivation::default()
        };
        let meta = derive(&default_dir(), &out, &d).unwrap();
        assert!(meta
            .action_scaling
            .competition
            .is_some_and(|c| c.drain_by_pacing));
        assert_eq!(
            meta.training.derived.last().map(String::as_str),
            Some("plume-cc policy derive --competition-rule on --competition-drain pacing")
        );
        let got = super::super::LoadedPolicy::load(&out).unwrap();
        assert_eq!(got.metadata(), &meta);
        let _ = std::fs::remove_dir_all(&out);
    }

    #[test]
    fn a_competitive_controller_needs_the_rule_and_another_controller_than_the_base() {
        let out = tmp("competitive-cc");
        let with = |k, rule: bool| Derivation {
            competition_rule: rule.then_some(true),
            competitive_cc: Some(k),
            ..Derivation::default()
        };
        let e = derive(&default_dir(), &out, &with(ControllerKind::Bbr, false)).unwrap_err();
        assert!(
            matches!(e, DeriveError::NoRule("--competitive-controller")),
            "{e}"
        );
        // The default's base is CUBIC: switching to it is no switch.
        let e = derive(&default_dir(), &out, &with(ControllerKind::Cubic, true))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--competitive-controller") && e.contains("base (cubic)"),
            "{e}"
        );
        assert!(!out.exists());
        let meta = derive(&default_dir(), &out, &with(ControllerKind::Bbr, true)).unwrap();
        assert_eq!(
            meta.action_scaling
                .competition
                .and_then(|c| c.competitive_cc),
            Some(ControllerKind::Bbr)
        );
        assert_eq!(
            meta.training.derived.last().map(String::as_str),
            Some("plume-cc policy derive --competition-rule on --competitive-controller bbr")
        );
        // The daemon's datapath configuration takes it from the file.
        let got = super::super::LoadedPolicy::load(&out).unwrap();
        let policy = super::super::learned::LearnedPolicy::new(got);
        use super::super::FlowPolicy as _;
        assert_eq!(
            policy.contract().and_then(|c| c.competitive_cc).as_deref(),
            Some("bbr")
        );
        let _ = std::fs::remove_dir_all(&out);
    }

    #[test]
    fn a_drain_gain_needs_the_rule_and_its_range_and_reaches_the_detector() {
        let out = tmp("drain-gain");
        let gain = |g: f32, rule: bool| Derivation {
            competition_rule: rule.then_some(true),
            competition_drain_gain: Some(g),
            ..Derivation::default()
        };
        // Without the rule, or out of range: refused, nothing written.
        let e = derive(&default_dir(), &out, &gain(0.75, false)).unwrap_err();
        assert!(
            matches!(e, DeriveError::NoRule("--competition-drain-gain")),
            "{e}"
        );
        for g in [0.1, 0.95, f32::NAN] {
            let e = derive(&default_dir(), &out, &gain(g, true))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("--competition-drain-gain") && e.contains("0.25 to 0.9"),
                "{e}"
            );
        }
        assert!(!out.exists());
        let meta = derive(&default_dir(), &out, &gain(0.75, true)).unwrap();
        assert_eq!(
            meta.action_scaling.competition.and_then(|c| c.drain_gain),
            Some(0.75)
        );
        assert_eq!(
            meta.training.derived.last().map(String::as_str),
            Some("plume-cc policy derive --competition-rule on --competition-drain-gain 0.75")
        );
        // The daemon's builders take it from the file (the simulator's:
        // `rl::flow_env`'s tests).
        let got = super::super::LoadedPolicy::load(&out).unwrap();
        assert_eq!(got.metadata(), &meta);
        assert_eq!(
            super::super::builder_for(&got, Objective::BALANCED).drain_gain(),
            0.75
        );
        let _ = std::fs::remove_dir_all(&out);
    }

    #[test]
    fn a_competitive_ceiling_needs_the_rule_and_its_range() {
        let out = tmp("ceiling");
        let ceiling = |k: f32, rule: bool| Derivation {
            competition_rule: rule.then_some(true),
            competitive_ceiling: Some(k),
            ..Derivation::default()
        };
        // Without the rule, out of range, or not finite: refused, nothing
        // written, the flag named.
        let e = derive(&default_dir(), &out, &ceiling(4.0, false)).unwrap_err();
        assert!(
            matches!(e, DeriveError::NoRule("--competitive-ceiling")),
            "{e}"
        );
        for k in [0.5, 65.0, -1.0, f32::NAN] {
            let e = derive(&default_dir(), &out, &ceiling(k, true)).unwrap_err();
            assert!(
                matches!(
                    e,
                    DeriveError::Range {
                        field: "--competitive-ceiling",
                        ..
                    }
                ),
                "{k}: {e}"
            );
            assert!(e.to_string().contains("1 to 64 BDPs"), "{e}");
        }
        assert!(!out.exists());
        let meta = derive(&default_dir(), &out, &ceiling(4.0, true)).unwrap();
        let rule = meta.action_scaling.competition.unwrap();
        assert_eq!(rule.competitive_ceiling, Some(4.0));
        assert_eq!(
            meta.training.derived.last().map(String::as_str),
            Some("plume-cc policy derive --competition-rule on --competitive-ceiling 4")
        );
        assert_eq!(
            super::super::LoadedPolicy::load(&out).unwrap().metadata(),
            &meta
        );
        // 0 takes it off again; with an srtt-following rule it is refused.
        let mut with = meta.clone();
        assert_eq!(
            ceiling(0.0, false)
                .apply(&with)
                .unwrap()
                .action_scaling
                .competition,
            Some(CompetitionRule {
                competitive_ceiling: None,
                ..rule
            })
        );
        with.action_scaling.competition = Some(CompetitionRule {
            competitive_exponent: Some(0.5),
            ..CompetitionRule::default()
        });
        let e = ceiling(4.0, false).apply(&with).unwrap_err();
        assert!(e.to_string().contains("exponent 0.5"), "{e}");
        let _ = std::fs::remove_dir_all(&out);
    }

    #[test]
    fn a_bounded_hold_derivation_sets_the_bound_and_refuses_a_huge_one() {
        use super::super::FlowPolicy as _;
        let out = tmp("hold-bounded");
        let d = Derivation {
            hold_clamp_after_loss: Some(true),
            hold_clamp_max_srtts: Some(8),
            ..Derivation::default()
        };
        let meta = derive(&default_dir(), &out, &d).unwrap();
        assert_eq!(meta.action_scaling.hold_clamp_max_srtts, 8);
        assert_eq!(
            meta.training.derived.last().map(String::as_str),
            Some("plume-cc policy derive --hold-clamp-after-loss on --hold-clamp-max-srtts 8")
        );
        let got = super::super::LoadedPolicy::load(&out).unwrap();
        let learned = super::super::learned::LearnedPolicy::new(got);
        assert_eq!(learned.contract().map(|c| c.clamp_hold.max_srtts), Some(8));
        // The default's file has no bound, and writes none.
        let source = super::super::LoadedPolicy::load(&default_dir()).unwrap();
        assert_eq!(source.metadata().action_scaling.hold_clamp_max_srtts, 0);
        let text = std::fs::read_to_string(default_dir().join("policy.json")).unwrap();
        assert!(!text.contains("hold_clamp_max_srtts"));
        let _ = std::fs::remove_dir_all(&out);
        let bad = Derivation {
            hold_clamp_max_srtts: Some(MAX_HOLD_CLAMP_SRTTS + 1),
            ..Derivation::default()
        };
        let out = tmp("hold-huge");
        assert!(matches!(
            derive(&default_dir(), &out, &bad),
            Err(DeriveError::Range { .. })
        ));
        assert!(!out.join("policy.json").exists());
    }
}
