//! The command line's machine-readable output and input checks (no root).

mod common;

use std::process::Command;

use common::EXE;

#[test]
fn status_json_is_one_json_array_even_when_nothing_runs() {
    let o = Command::new(EXE)
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}): {}",
            String::from_utf8_lossy(&o.stdout)
        )
    });
    let runs = v.as_array().expect("an array of datapaths");
    assert!(runs
        .iter()
        .all(|d| d["flows"].is_array() && d["pins"].is_string()));
}

#[test]
fn a_zero_rate_synthetic_trace_is_refused() {
    let out = common::tmpdir("synth-zero").join("z.trace");
    let o = Command::new(EXE)
        .args(["traces", "synth", "--mbps", "0", "--out"])
        .arg(&out)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--mbps"));
    assert!(!out.exists(), "nothing is written");
}
