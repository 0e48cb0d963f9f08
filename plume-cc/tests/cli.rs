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

#[test]
fn a_bad_corpus_mix_names_its_cause_and_writes_nothing() {
    let dir = common::tmpdir("bad-mix");
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let ts: String = (1..=30_000u64).map(|t| format!("{t}\n")).collect();
    std::fs::write(src.join("a.trace"), ts).unwrap();
    for (mix, cause) in [
        (
            r#"{"window_ms": 10000, "mix": {"common": 0.5, "outage": 0.2}}"#,
            "sum to 0.7",
        ),
        (
            r#"{"window_ms": 10000, "mix": {"common": 0.9, "wifi": 0.1}}"#,
            "unknown kind \"wifi\"",
        ),
    ] {
        let f = dir.join("mix.json");
        std::fs::write(&f, mix).unwrap();
        let out = dir.join("corpus");
        let o = Command::new(EXE)
            .args(["traces", "scenarios", "--windows", "10", "--sources"])
            .arg(&src)
            .arg("--mix")
            .arg(&f)
            .arg("--out")
            .arg(&out)
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success());
        assert!(err.contains(cause), "{cause}: {err}");
        assert!(!out.exists(), "nothing is written");
    }
    // A corpus folder whose records hold no window.
    let empty = dir.join("empty");
    std::fs::create_dir_all(empty.join("traces")).unwrap();
    std::fs::write(
        empty.join("corpus.json"),
        r#"{"mix": {"window_ms": 10000, "mix": {"common": 1.0}}, "seed": 0, "windows": 0, "counts": {}, "heldout_counts": {}, "sources": ""}"#,
    )
    .unwrap();
    std::fs::write(empty.join("paths.jsonl"), "").unwrap();
    let o = Command::new(EXE)
        .args(["traces", "analyze"])
        .arg(&empty)
        .arg("--out-dir")
        .arg(dir.join("an"))
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no usable windows"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
