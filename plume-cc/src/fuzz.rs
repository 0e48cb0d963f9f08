//! One entry point per parser of outside input, for fuzzing.
//!
//! Each target takes arbitrary bytes and must return without panicking,
//! whatever they hold: an error is a correct answer, a panic, an overflow
//! or a hang is a bug. The same functions serve two callers:
//! - the cargo-fuzz crate in `fuzz/` (`cargo xtask fuzz`), which explores
//!   new inputs on the pinned nightly;
//! - the corpus replay test (`tests/fuzz_corpora.rs`), which runs every
//!   committed input on stable in CI, so a crash found once stays fixed.
//!
//! The metrics endpoint has no target: it reads and discards the request
//! (`daemon::metrics::serve` answers every connection with the same page),
//! so no request byte reaches a parser.

use std::path::Path;

/// A fuzz target's entry point.
pub type Target = fn(&[u8]);

/// Every target: its name (the fuzz crate's binary and the corpus folder
/// `fuzz/corpus/NAME`) and its entry point.
pub const TARGETS: &[(&str, Target)] = &[
    ("mahimahi_trace", mahimahi_trace),
    ("policy_file", policy_file),
    ("scripted_policy", scripted_policy),
    ("scenario_spec", scenario_spec),
    ("scenario_mix", scenario_mix),
    ("duration", duration),
];

/// A Mahimahi trace file (`traces`, `emulate`, `bench`, `train`).
pub fn mahimahi_trace(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(t) = crate::trace::MahimahiTrace::parse("fuzz", &text) {
        // What every consumer asks of a parsed trace next.
        let s = t.schedule();
        let _ = s.period_ms();
        let _ = s.mean_mbps();
    }
}

/// A native policy file: the JSON metadata, a NUL byte, then the
/// safetensors weights. When the metadata parses, its `weights_sha256` is
/// set to the weights' digest so the fuzzer reaches the safetensors and
/// architecture checks instead of stopping at the hash every time.
pub fn policy_file(data: &[u8]) {
    let (json, weights) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(json) = std::str::from_utf8(json) else {
        return;
    };
    let name = Path::new("fuzz-policy.json");
    let _ = crate::policy::LoadedPolicy::from_bytes(weights, json, name);
    if let Ok(mut v) = serde_json::from_str::<serde_json::Value>(json) {
        if let Some(obj) = v.as_object_mut() {
            obj.insert(
                "weights_sha256".into(),
                crate::policy::sha256_hex(weights).into(),
            );
            let patched = v.to_string();
            let _ = crate::policy::LoadedPolicy::from_bytes(weights, &patched, name);
        }
    }
    let _ = crate::policy::format::tensors_from_safetensors(weights, name);
}

/// A scripted policy file (`run --policy script.json`), then a few
/// decisions along its schedule.
pub fn scripted_policy(data: &[u8]) {
    use crate::policy::FlowPolicy as _;
    let Ok(mut p) = crate::policy::ScriptedPolicy::from_json(data) else {
        return;
    };
    let flows = [(1u64, plume_cc_common::FlowStats::default())];
    let mut out = Vec::new();
    for now_ns in [0, 1_000_000, u64::MAX / 2, u64::MAX] {
        let _ = p.decide(now_ns, &flows, &mut out);
    }
    let _ = p.step_at(u64::MAX);
}

/// A scenario distribution file (`train --scenarios FILE`), then draws
/// from it.
pub fn scenario_spec(data: &[u8]) {
    use rand::SeedableRng as _;
    let text = String::from_utf8_lossy(data);
    let Ok(spec) = crate::rl::scenario::ScenarioSpec::parse(Path::new("fuzz.json"), &text) else {
        return;
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    for _ in 0..4 {
        let _ = spec.draw(&mut rng, 10.0);
    }
}

/// A scenario corpus mix file (`traces scenarios --mix FILE`).
pub fn scenario_mix(data: &[u8]) {
    if let Ok(mix) = serde_json::from_slice::<crate::trace::scenario_corpus::Mix>(data) {
        let _ = mix.validate();
    }
}

/// The duration grammar of every `--window`, `--delay`, `--interval`.
pub fn duration(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = crate::args::parse_duration(&text);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_survives_empty_and_junk_input() {
        for (name, target) in TARGETS {
            for input in [&b""[..], b"\0", b"{}", b"\xff\xfe", b"1\n2\n\n3"] {
                target(input);
            }
            assert!(!name.is_empty());
        }
    }

    #[test]
    fn a_schedule_too_long_for_a_u64_is_refused() {
        let long = br#"{"scripted":{"steps":[{"hold_ms":18446744073709551615},{"hold_ms":1}]}}"#;
        assert!(matches!(
            crate::policy::ScriptedPolicy::from_json(long),
            Err(crate::policy::ScriptError::TooLong)
        ));
        scripted_policy(long);
    }
}
