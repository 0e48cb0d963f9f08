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
    let tmp = common::tmpdir("synth-zero");
    let out = tmp.join("z.trace");
    let o = Command::new(EXE)
        .args(["traces", "synth", "--mbps", "0", "--out"])
        .arg(&out)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    // A value --mbps never takes: a usage error (2) naming the flag and
    // the accepted form, as is a negative one.
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--mbps") && err.contains("positive"), "{err}");
    assert!(!out.exists(), "nothing is written");
    let o = plume(&[
        "traces",
        "synth",
        "--mbps",
        "-1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("'-1' for '--mbps") && err.contains("positive"),
        "{err}"
    );
}

/// A value refused after parsing (a range, a combination of flags) is a
/// usage error like clap's own: exit 2, one line naming the flag, no
/// backtrace. Each is refused before anything runs, so no root is needed.
#[test]
fn refused_values_exit_with_2_and_name_their_flag() {
    let dir = common::tmpdir("usage-errors");
    let out = dir.join("t");
    let trace = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../traces/synthetic/fade-6mbps.trace"
    );
    for (args, needle) in [
        (
            &[
                "traces",
                "synth",
                "--duration",
                "1.5ms",
                "--out",
                out.to_str().unwrap(),
            ][..],
            "--duration 1.5ms",
        ),
        (
            &["run", "--cgroup", "/tmp", "--interval", "0ms"][..],
            "--interval",
        ),
        (
            &[
                "run",
                "--cgroup",
                "/tmp",
                "--interval",
                "20ms",
                "--stale",
                "30ms",
            ][..],
            "--stale",
        ),
        (&["bench-overhead", "--rounds", "0"][..], "--rounds 0"),
        (
            &["service", "install", "--slice", "a--b", "--dry-run"][..],
            "--slice",
        ),
        (
            &[
                "eval",
                "sim-to-real",
                "--sim-only",
                "--traces",
                trace,
                "--windows",
                "0",
            ][..],
            "--windows",
        ),
        (
            &[
                "eval",
                "matrix",
                "--traces",
                trace,
                "--windows",
                "0",
                "--out",
                out.to_str().unwrap(),
            ][..],
            "--windows",
        ),
        (&["emulate", "--uplink-queue", "red"][..], "--uplink-queue"),
    ] {
        let o = plume(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        let line = err
            .lines()
            .find(|l| l.starts_with("plume-cc: error: "))
            .unwrap_or_else(|| panic!("{args:?}: no error line in {err}"));
        assert!(line.contains(needle), "{args:?}: {needle:?} not in {line}");
        assert!(!err.contains("backtrace"), "{args:?}: {err}");
    }
    assert!(!out.exists(), "nothing is written");
}

/// `status --pin-dir DIR` with nothing running there answers like the
/// default root does (`[]`, exit 0); only a folder that does not exist is
/// an error.
#[test]
fn status_of_a_pin_folder_with_nothing_running_is_an_empty_list() {
    let dir = common::tmpdir("status-empty");
    std::fs::create_dir_all(&dir).unwrap();
    let v = json_stdout(&["status", "--json", "--pin-dir", dir.to_str().unwrap()]);
    assert_eq!(v, serde_json::json!([]));
    let o = plume(&["status", "--pin-dir", dir.to_str().unwrap()]);
    assert!(o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains(&format!("nothing pinned under {}", dir.display())),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

/// Under `--log-format json` every line on stderr is a JSON object, the
/// deprecation warning and the final error included.
#[test]
fn json_logs_keep_every_stderr_line_json() {
    let o = plume(&[
        "--log-format",
        "json",
        "run",
        "--cgroup",
        "/tmp",
        "--interval",
        "20",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 2, "{err}");
    let message = |v: &serde_json::Value| v["fields"]["message"].as_str().unwrap_or("").to_string();
    assert!(
        lines
            .iter()
            .any(|v| v["level"] == "WARN" && message(v).contains("use `--interval 20ms`")),
        "{err}"
    );
    let last = lines.last().unwrap();
    assert_eq!(last["level"], "ERROR", "{err}");
    assert!(message(last).contains("not a cgroup v2 folder"), "{err}");
}

#[test]
fn bench_overhead_refuses_bad_settings_before_touching_the_kernel() {
    // Checked before any cgroup, program or iperf3 (so no root is needed
    // to see the error), each naming the flag and its range.
    for (args, needle) in [
        (&["--flows", "0"][..], "[1, 128]"),
        (&["--rounds", "0"][..], "[1, 100]"),
        (&["--duration", "1500ms"][..], "whole seconds"),
        (&["--mss", "100"][..], "[536, 9000]"),
    ] {
        let o = Command::new(EXE)
            .arg("bench-overhead")
            .args(args)
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap();
        assert!(!o.status.success(), "{args:?} was accepted");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(args[0]) && err.contains(needle),
            "{args:?}: {err}"
        );
        assert!(o.stdout.is_empty(), "{args:?}: nothing on stdout");
    }
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

/// Runs plume-cc with `args` (RUST_BACKTRACE set, as a developer's shell
/// may have it); the output.
fn plume(args: &[&str]) -> std::process::Output {
    Command::new(EXE)
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap()
}

fn json_stdout(args: &[&str]) -> serde_json::Value {
    common::json_document(args, &plume(args))
}

/// Every command with `--json` that needs no root: stdout is one JSON
/// document and nothing else. (`selftest --json` needs root; the kernel
/// tests run it.)
#[test]
fn json_output_parses_for_every_command_that_has_it() {
    let v = json_stdout(&["status", "--json"]);
    assert!(v.is_array(), "{v}");
    let v = json_stdout(&[
        "bench-decide",
        "--flows",
        "1,3",
        "--iterations",
        "2",
        "--json",
    ]);
    let rows = v.as_array().expect("one row per flow count");
    assert_eq!(rows.len(), 2, "{v}");
    assert_eq!(rows[1]["flows"], 3);
    assert!(rows[0]["total_us"].as_f64().unwrap() > 0.0, "{v}");
    // explain fit, as small as it goes: the predictors' metadata. (explain
    // run --json is checked in explain_refuses_bad_input_and_foreign_predictors.)
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let tmp = common::tmpdir("json-fit");
    let out = tmp.join("fit");
    let v = json_stdout(&[
        "explain",
        "fit",
        "--policy",
        &format!("{root}/policies/default"),
        "--traces",
        &format!("{root}/traces/synthetic/fade-6mbps.trace"),
        "--decisions",
        "10",
        "--heldout-decisions",
        "10",
        "--epochs",
        "1",
        "--window",
        "2s",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(v["format"], "plume-cc-explain", "{v}");
    assert!(out.join("explain.json").is_file());
}

/// The old `--json FILE` still writes the file, with a warning naming the
/// new spelling, and stdout keeps the table.
#[test]
fn an_old_json_file_spelling_still_works_with_a_warning() {
    let tmp = common::tmpdir("json-file");
    let f = tmp.join("rows.json");
    let o = Command::new(EXE)
        .args([
            "bench-decide",
            "--flows",
            "1",
            "--iterations",
            "2",
            "--json",
        ])
        .arg(&f)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("deprecated") && err.contains("--json >"),
        "{err}"
    );
    let rows: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert!(String::from_utf8_lossy(&o.stdout).contains("decide step"));
}

/// Durations: a unit is taken everywhere; an old bare number still works
/// where a flag took one, with a warning that spells the new form; a new
/// flag refuses it with a hint; a refused value is a usage error (exit 2).
#[test]
fn durations_take_units_and_old_bare_numbers_warn() {
    let dir = common::tmpdir("durations");
    let out = dir.join("traces");
    let o = plume(&[
        "traces",
        "synth",
        "--kind",
        "constant",
        "--duration",
        "1500",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("`--duration 1500` is deprecated") && err.contains("use `--duration 1500ms`"),
        "{err}"
    );
    // --out is a folder: the trace is named after its parameters.
    let written = out.join("constant-6mbps-1500ms-seed0.trace");
    let text = std::fs::read_to_string(&written).expect("the trace in the --out folder");
    assert_eq!(text.lines().last(), Some("1500"), "period 1500 ms");

    // The same with a unit: no warning.
    let o = plume(&[
        "traces",
        "synth",
        "--kind",
        "constant",
        "--duration",
        "1.5s",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    assert!(!String::from_utf8_lossy(&o.stderr).contains("deprecated"));

    // The old file spelling of --out.
    let file = dir.join("one.trace");
    let o = plume(&[
        "traces",
        "synth",
        "--duration",
        "1s",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(file.is_file());
    assert!(String::from_utf8_lossy(&o.stderr).contains("a folder"));

    // New flags refuse bare numbers: a usage error with a hint, no backtrace.
    for args in [
        &["run", "--cgroup", "/tmp", "--run-for", "200"][..],
        &["run", "--cgroup", "/tmp", "--stale", "500"][..],
        &["selftest", "--duration", "2"][..],
        &["train", "--window", "10000"][..],
        &["train", "--delay", "5..80"][..],
        &["eval", "sim-to-real", "--traces", "x", "--delay", "20"][..],
    ] {
        let o = plume(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("has no unit") && err.contains("ms"),
            "{args:?}: {err}"
        );
    }
    let o = plume(&["emulate", "--delay", "20 parsecs"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--delay"));
}

/// A runtime error exits with 1 and prints its cause once, without a
/// backtrace even when RUST_BACKTRACE is set.
#[test]
fn a_runtime_error_is_one_message_without_a_backtrace() {
    let o = plume(&["run", "--policy", "/nonexistent/p.json", "--cgroup", "/tmp"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.matches("no such file or folder").count(), 1, "{err}");
    assert!(
        !err.contains("backtrace") && !err.contains("Stack"),
        "{err}"
    );
    let o = plume(&["status", "--pin-dir", "/nonexistent/pins"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--pin-dir"));
}

#[test]
fn the_help_lists_train_and_bench_and_hides_probe() {
    let o = plume(&["--help"]);
    let help = String::from_utf8_lossy(&o.stdout);
    let commands: Vec<&str> = help
        .lines()
        .filter_map(|l| l.strip_prefix("  ")?.split_whitespace().next())
        .collect();
    for c in ["train", "bench", "run", "status"] {
        assert!(commands.contains(&c), "{c} not in:\n{help}");
    }
    assert!(!commands.contains(&"probe"), "{help}");
}

/// `explain`: out-of-range settings name the flag and write nothing;
/// predictors of another policy are refused naming both hashes; `run
/// --json` prints only JSON and writes the CSV and the PNG.
#[test]
fn explain_refuses_bad_input_and_foreign_predictors() {
    let dir = common::tmpdir("explain-cli");
    let out = dir.join("fit");
    let o = Command::new(EXE)
        .args(["explain", "fit", "--policy", "policies/default", "--traces"])
        .arg(&dir)
        .args(["--decisions", "0", "--out"])
        .arg(&out)
        .current_dir(env!("CARGO_MANIFEST_DIR").to_string() + "/..")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--decisions must be in [10, 100000], got 0"),
        "{err}"
    );
    assert!(!out.exists(), "nothing is written");

    // The committed predictors of the default policy, bound to another
    // policy's hash.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let meta = std::fs::read_to_string(root.join("policies/default/explain.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&meta).unwrap();
    let real = v["policy_weights_sha256"].as_str().unwrap().to_string();
    v["policy_weights_sha256"] = serde_json::json!("f00d".repeat(16));
    let foreign = dir.join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("explain.json"), v.to_string()).unwrap();
    std::fs::copy(
        root.join("policies/default/explain.safetensors"),
        foreign.join("explain.safetensors"),
    )
    .unwrap();
    let trace = dir.join("c.trace");
    let ts: String = (1..=12_000u64).map(|t| format!("{t}\n")).collect();
    std::fs::write(&trace, ts).unwrap();
    let run_out = dir.join("run");
    let run = |predictors: &std::path::Path| {
        Command::new(EXE)
            .args(["explain", "run", "--policy", "default", "--predictors"])
            .arg(predictors)
            .arg("--trace")
            .arg(&trace)
            .args(["--window", "3s", "--json", "--out"])
            .arg(&run_out)
            .output()
            .unwrap()
    };
    let o = run(&foreign);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&"f00d".repeat(16)) && err.contains(&real),
        "{err}"
    );
    assert!(!run_out.exists(), "nothing is written");

    let o = run(&root.join("policies/default"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let decisions = s["decisions"].as_u64().unwrap() as usize;
    assert!(decisions >= 140, "3 s of 20 ms intervals: {s}");
    let csv = std::fs::read_to_string(run_out.join("explain.csv")).unwrap();
    assert_eq!(csv.lines().count(), decisions + 1);
    assert!(
        csv.starts_with("step,t_s,clamp_segments,raw_cwnd,raw_pacing,pred_policy_throughput_ret")
    );
    assert!(run_out.join("explain.png").exists());
}

/// `status` skips a pin folder it cannot read with a warning naming it, and
/// `--json` keeps stdout one JSON document; `--pin-dir` takes a folder of
/// pin folders as well as one (the kernel test in tests/datapath.rs pins a
/// real map of another layout beside a live datapath).
#[test]
fn status_skips_an_unreadable_pin_folder_with_a_warning() {
    let root = common::tmpdir("status-bogus");
    for name in ["old-build", "broken"] {
        std::fs::create_dir_all(root.join(name)).unwrap();
        // Not a bpffs pin: opening it as a BPF link fails.
        std::fs::write(root.join(name).join("link"), b"not a link").unwrap();
    }
    let o = plume(&["status", "--json", "--pin-dir", root.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&o.stdout)
        )
    });
    assert_eq!(v, serde_json::json!([]));
    for name in ["old-build", "broken"] {
        let needle = format!(
            "skipping the datapath pinned at {}",
            root.join(name).display()
        );
        assert!(err.contains(&needle), "{needle} not in {err}");
    }
    // Named directly, the one folder's error is the answer (exit 1).
    let o = plume(&["status", "--pin-dir", root.join("broken").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("broken"));
    std::fs::remove_dir_all(&root).unwrap();
}

/// `--traces` (and `traces analyze`'s folder) takes one trace file as well
/// as a folder, and a path that is neither is refused naming it.
#[test]
fn trace_arguments_take_a_file_or_a_folder() {
    let dir = common::tmpdir("traces-file");
    let trace = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../traces/synthetic/fade-6mbps.trace"
    );
    let o = plume(&[
        "traces",
        "analyze",
        trace,
        "--window",
        "1s",
        "--starts",
        "2",
        "--k-min",
        "2",
        "--k-max",
        "3",
        "--out",
        dir.join("an").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("an/report.json")).unwrap()).unwrap();
    assert_eq!(
        report["traces"],
        serde_json::json!({"fade-6mbps.trace": 60}),
        "{report}"
    );
    for args in [
        &["traces", "analyze", "/nonexistent/t.trace"][..],
        &[
            "eval",
            "sim-to-real",
            "--sim-only",
            "--traces",
            "/nonexistent/t.trace",
        ][..],
    ] {
        let o = plume(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("/nonexistent/t.trace: no such trace file or folder"),
            "{args:?}: {err}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Logs written into a pipe (or a file, or the journal) carry no ANSI
/// colour codes; colour is for a terminal only.
#[test]
fn logs_into_a_pipe_have_no_colour_codes() {
    let o = plume(&["run", "--cgroup", "/tmp", "--run-for", "1s"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("INFO"), "a log line was written: {err}");
    assert!(!err.contains('\x1b'), "colour codes in a pipe: {err:?}");
}

/// A value of the wrong type (a word for a count, a negative count, a word
/// for a duration, a count outside its range, NaN for a gain) is refused at
/// parsing with exit 2 and a message that names the flag and the accepted
/// form, not only Rust's "invalid digit found in string" (issue 17).
#[test]
fn values_of_the_wrong_type_name_the_accepted_form() {
    for (args, flag, form) in [
        (
            &["train", "--steps", "abc"][..],
            "'--steps <STEPS>'",
            "expected a whole number, 0 or more",
        ),
        (
            &["emulate", "--delay", "xyz"][..],
            "--delay",
            "write e.g. 20ms, 1.5s or 2m",
        ),
        (
            &["bench-decide", "--iterations", "-1"][..],
            "'--iterations <ITERATIONS>'",
            "expected a whole number, 0 or more",
        ),
        (
            &["bench-datapath", "--ebpf-runs", "99"][..],
            "'--ebpf-runs <EBPF_RUNS>'",
            "expected a whole number from 1 to 50",
        ),
        (
            &["train", "--cwnd-gain", "NaN"][..],
            "'--cwnd-gain <BDPS>'",
            "expected a number, e.g. 2, 0.5 or -1.5",
        ),
    ] {
        let o = plume(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        let line = err
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_else(|| panic!("{args:?}: no error line in {err}"));
        assert!(line.contains(flag), "{args:?}: {flag:?} not in {line}");
        assert!(line.contains(form), "{args:?}: {form:?} not in {line}");
        assert!(!err.contains("invalid digit"), "{args:?}: {err}");
    }
}

/// The engine is run under the name the user typed (the front execs it
/// with its own argv[0]), and on its own from `target/` or the package's
/// `bin/`: either way its help and usage errors say `plume-cc`, the
/// command a user types, never `plume-cc-engine`.
#[test]
fn the_engines_usage_says_plume_cc() {
    let engine = env!("CARGO_BIN_EXE_plume-cc-engine");
    let o = Command::new(engine)
        .args(["bench-decide", "--no-such-flag"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("Usage: plume-cc bench-decide"), "{err}");
    assert!(!err.contains("plume-cc-engine"), "{err}");
    let o = Command::new(engine).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{help}");
    assert!(
        help.contains("Usage: plume-cc [OPTIONS] <COMMAND>"),
        "{help}"
    );
    assert!(!help.contains("plume-cc-engine"), "{help}");
}
