//! `cargo xtask`: the chores cargo cannot do alone.
//!
//! - `setup`: install the toolchain pieces (idempotent, cached outside the clone);
//! - `build`: build the workspace (the eBPF object is embedded by plume-cc's build script);
//! - `build-ebpf`: build only the eBPF object and print its path;
//! - `test`: set up, then fmt, clippy (host and BPF target) and every test;
//! - `demo`: set up, build, and run the main job on embedded defaults;
//! - `train`: build, then train a policy (`plume-cc train ...`, see docs/TRAINING.md).
//! - `study`: build, then the sampler study on the default skewed scenario corpus
//!   (`plume-cc eval study`, see docs/TRAINING.md).
//! - `bench`: build, then run `plume-cc bench` (iperf3 across the emulated
//!   link) with a progress bar across runs.
//! - `dist`: build, then package the release binaries (the front and the
//!   engine) with the libtorch libraries the engine needs: a relocatable
//!   tarball and a .deb (see dist.rs).

mod bench;
mod cmd;
mod dist;
mod paths;
mod setup;

use std::{process::Command, time::Instant};

use anyhow::Context as _;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "plume-cc project chores")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Install everything plume-cc needs (Debian packages, eBPF nightly,
    /// bpf-linker, libtorch, bpffs); a second run only checks.
    Setup,
    /// Build the workspace (release by default).
    Build {
        /// Build the debug profile instead.
        #[arg(long)]
        debug: bool,
    },
    /// Build only the eBPF object and print where it is.
    BuildEbpf,
    /// Set up, then run cargo fmt --check, clippy -D warnings (host and BPF
    /// target) and all tests, including the kernel tests (needs root).
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// The main job on embedded defaults: set up, build, run.
    Demo,
    /// Build the release binary, then train a policy in the simulator:
    /// `cargo xtask train --traces DIR --sampler uniform|plume-static|plume-dynamic
    /// --steps N --seed S --out DIR` (every argument goes to the hidden
    /// `plume-cc train`; see docs/TRAINING.md). `--help` shows `plume-cc
    /// train --help` without building.
    #[command(disable_help_flag = true)]
    Train {
        /// Arguments for `plume-cc train`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Benchmark schemes with iperf3 across the emulated link (root): builds
    /// the release binary and runs `plume-cc bench` with these flags, e.g.
    /// `--traces A,B --schemes cubic,bbr,plume --duration 30s --delay 20ms
    /// --queue unlimited --runs 3 --out runs/bench` (see `plume-cc bench --help`).
    #[command(disable_help_flag = true)]
    Bench {
        /// Flags for `plume-cc bench`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The sampler study (docs/TRAINING.md, "The sampler study"): builds the
    /// release binary, writes the default skewed scenario corpus to
    /// runs/corpus/default if it is not there, then runs `plume-cc eval
    /// study` on it (uniform, plume-static, plume-dynamic; 5 seeds; 300k and
    /// 1M steps) into runs/study. Extra flags go to `plume-cc eval study`
    /// (e.g. `--budgets 300k,3M`). Interrupted, it resumes where it stopped.
    /// `--help` shows `plume-cc eval study --help` without building.
    #[command(disable_help_flag = true)]
    Study {
        /// Flags for `plume-cc eval study`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Build the release binaries and package them: a relocatable tarball
    /// (target/dist/plume-cc-VERSION-x86_64-linux.tar.gz: bin/ with the
    /// front and the engine, the libtorch libraries the engine needs in lib/, licences, README, systemd units) and a
    /// .deb with the same and the units in /lib/systemd/system.
    Dist(dist::Options),
    /// Fuzz every parser of outside input (`plume_cc::fuzz`) with cargo-fuzz
    /// on the pinned nightly, each for `--seconds`, seeded by the committed
    /// corpora in fuzz/corpus (new inputs go to fuzz/target/corpus). Installs cargo-fuzz if it is
    /// missing. CI does not fuzz; it replays the corpora
    /// (plume-cc/tests/fuzz_corpora.rs).
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Only these targets (default: all).
        #[arg(long, value_delimiter = ',')]
        targets: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let root = paths::repo_root();
    std::env::set_current_dir(&root)?;
    match cli.command {
        Task::Setup => setup::setup(),
        Task::Build { debug } => {
            setup::setup()?;
            build(!debug)
        }
        Task::BuildEbpf => {
            setup::setup()?;
            build_ebpf()
        }
        Task::Test { args } => test(&args),
        Task::Demo => demo(),
        Task::Train { args } => train(&args),
        Task::Bench { args } => bench::bench(&args),
        Task::Study { args } => study(&args),
        Task::Fuzz { seconds, targets } => fuzz(seconds, &targets),
        Task::Dist(opts) => {
            setup::setup()?;
            let a = dist::dist(&opts)?;
            println!("\ntarball: {}", a.tarball.display());
            if let Some(deb) = a.deb {
                println!("deb:     {}", deb.display());
            }
            Ok(())
        }
    }
}

/// A cargo command with the environment the workspace needs.
fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(paths::repo_root());
    c
}

fn build(release: bool) -> anyhow::Result<()> {
    let mut c = cargo();
    c.args(["build", "--workspace"]);
    if release {
        c.arg("--release");
    }
    cmd::run("cargo build", &mut c)
}

/// The eBPF crate built on its own, with the pinned nightly, like aya-build does.
fn ebpf_cargo(sub: &str) -> Command {
    let mut c = Command::new("rustup");
    c.args(["run", paths::ebpf_nightly(), "cargo", sub])
        .args([
            "--release",
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
        ])
        .current_dir(paths::repo_root().join("plume-cc-ebpf"))
        .env("PATH", tools_path());
    for k in [
        "RUSTC",
        "RUSTUP_TOOLCHAIN",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO",
    ] {
        c.env_remove(k);
    }
    c
}

fn tools_path() -> std::ffi::OsString {
    let mut dirs = vec![paths::links_dir().join("bin")];
    if let Some(p) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&p));
    }
    std::env::join_paths(dirs).unwrap_or_default()
}

fn build_ebpf() -> anyhow::Result<()> {
    cmd::run("build the eBPF object", ebpf_cargo("build").arg("--bins"))?;
    let obj = paths::repo_root().join("target/bpfel-unknown-none/release/plume-cc");
    println!("eBPF object: {}", obj.display());
    Ok(())
}

fn test(args: &[String]) -> anyhow::Result<()> {
    let start = Instant::now();
    setup::setup()?;
    let mut stages: Vec<(&str, std::time::Duration)> = Vec::new();
    let t = Instant::now();
    cmd::run(
        "cargo fmt --check",
        cargo().args(["fmt", "--all", "--check"]),
    )
    .context("formatting differs: run `cargo fmt --all`")?;
    stages.push(("fmt", t.elapsed()));
    let t = Instant::now();
    cmd::run(
        "cargo clippy --workspace -- -D warnings",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    cmd::run(
        "cargo clippy (eBPF crate, bpfel-unknown-none) -- -D warnings",
        ebpf_cargo("clippy").args(["--", "-D", "warnings"]),
    )?;
    stages.push(("clippy", t.elapsed()));
    let t = Instant::now();
    let mut c = cargo();
    c.args([
        "test",
        "--release",
        "--workspace",
        "--exclude",
        "plume-cc-ebpf",
    ]);
    // The kernel tests (datapath, daemon, emulator, bench) are #[ignore]d
    // for plain `cargo test`, which then reports them as ignored rather than
    // as a silent pass; as root they run here, and CI must be root.
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    if !root && ci {
        anyhow::bail!("CI must run `cargo xtask test` as root: the kernel tests need it");
    }
    c.arg("--");
    if root {
        c.arg("--include-ignored");
    } else {
        println!(
            "*** not root: the kernel tests are IGNORED (run `sudo -E cargo xtask test` to include them) ***"
        );
    }
    c.args(args);
    cmd::run_inherit("cargo test --release --workspace", &mut c)?;
    stages.push(("tests", t.elapsed()));
    println!();
    for (name, d) in &stages {
        println!("  {name:<8} {d:>8.1?}");
    }
    println!("all checks passed in {:.1?}", start.elapsed());
    Ok(())
}

fn demo() -> anyhow::Result<()> {
    setup::setup()?;
    cmd::run(
        "cargo build --release -p plume-cc",
        cargo().args(["build", "--release", "-p", "plume-cc"]),
    )?;
    let root = paths::repo_root();
    let exe = root.join("target/release/plume-cc");
    cmd::run_inherit(
        "plume-cc selftest (the datapath end to end on this host)",
        Command::new(&exe).arg("selftest"),
    )?;
    // A short benchmark: the committed default policy (plume) against the
    // kernel's CUBIC and BBR, iperf3 across the emulated link, on a trace the
    // project generates and, when ../shared is present, a public cellular trace.
    let mut traces = vec![root.join("traces/synthetic/lte-4mbps-s1.trace")];
    let shared = root.join("../shared/traces/mahimahi/ATT-LTE-driving.down");
    if shared.is_file() {
        traces.push(shared);
    } else {
        println!("(../shared/traces/mahimahi not found: benchmarking the synthetic trace only)");
    }
    let list: Vec<String> = traces.iter().map(|t| t.display().to_string()).collect();
    let out = root.join("runs/demo");
    cmd::run_inherit(
        "plume-cc bench: plume (default policy) vs cubic vs bbr, 10 s per run",
        Command::new(&exe)
            .arg("bench")
            .args(["--traces", &list.join(",")])
            .args([
                "--schemes",
                "cubic,bbr,plume",
                "--duration",
                "10s",
                "--delay",
                "20ms",
            ])
            .args(["--queue", "packets=200", "--runs", "1", "--out"])
            .arg(&out),
    )?;
    println!(
        "\nresults: {}/summary.md; plots: {}/plot-*.png",
        out.display(),
        out.display()
    );
    Ok(())
}

/// Builds the release binary (no setup: run `cargo xtask setup` once first)
/// and runs `plume-cc train ARGS`, so the training logic stays in the library.
/// True when the pass-through flags of `train`, `bench` or `study` ask
/// for help.
pub fn wants_help(args: &[String]) -> bool {
    args.iter().any(|a| a == "--help" || a == "-h")
}

/// `cargo xtask CMD --help` without setting up or building: the built
/// binary's own help for `plume-cc SUBCOMMAND...` when it exists, else
/// where to find it. Why: a user asking for help should not wait minutes
/// for a build.
pub fn pass_through_help(subcommand: &[&str]) -> anyhow::Result<()> {
    let exe = paths::repo_root().join("target/release/plume-cc");
    if exe.is_file() {
        let status = Command::new(&exe).args(subcommand).arg("--help").status()?;
        anyhow::ensure!(status.success(), "{} --help failed", exe.display());
    } else {
        println!(
            "`cargo xtask` passes these flags to `plume-cc {}`; build once \
             (`cargo xtask build`) and run `target/release/plume-cc {} --help` \
             for them, or see README.md and docs/.",
            subcommand.join(" "),
            subcommand.join(" ")
        );
    }
    Ok(())
}

/// The fuzz targets, as in `plume_cc::fuzz::TARGETS` (fuzz/Cargo.toml's
/// binaries; plume-cc/tests/fuzz_corpora.rs checks that the two agree).
const FUZZ_TARGETS: &[&str] = &[
    "mahimahi_trace",
    "policy_file",
    "scripted_policy",
    "scenario_spec",
    "scenario_mix",
    "duration",
];

fn fuzz(seconds: u64, only: &[String]) -> anyhow::Result<()> {
    setup::setup()?;
    for t in only {
        anyhow::ensure!(
            FUZZ_TARGETS.contains(&t.as_str()),
            "unknown fuzz target {t:?}; the targets are {}",
            FUZZ_TARGETS.join(", ")
        );
    }
    let has_cargo_fuzz = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_cargo_fuzz {
        cmd::run(
            "cargo install cargo-fuzz --locked",
            Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]),
        )?;
    }
    let nightly = format!("+{}", paths::ebpf_nightly());
    let root = paths::repo_root();
    let mut report = Vec::new();
    for t in FUZZ_TARGETS
        .iter()
        .filter(|t| only.is_empty() || only.iter().any(|o| o == *t))
    {
        let corpus = root.join("fuzz/corpus").join(t);
        // New inputs go to a scratch folder (libFuzzer writes to the first
        // one); the committed corpus only seeds it. Commit an input by hand
        // when it found a bug, so the replay test keeps it fixed.
        let scratch = root.join("fuzz/target/corpus").join(t);
        std::fs::create_dir_all(&scratch)?;
        // libFuzzer without a sanitizer: libtorch's C++ runtime and ASan do
        // not load together; overflow checks and debug assertions stay on
        // (cargo-fuzz's default), and they are what finds Rust bugs here.
        let took = cmd::run_inherit(
            &format!("cargo fuzz run {t} ({seconds} s)"),
            // The rustup proxy, not $CARGO: only the proxy takes `+toolchain`.
            Command::new("cargo")
                .env_remove("RUSTUP_TOOLCHAIN")
                // The fuzz binaries link libtorch from the setup's cache.
                .env("LD_LIBRARY_PATH", root.join(".plume/libtorch/lib"))
                .current_dir(root.join("fuzz"))
                .args([nightly.as_str(), "fuzz", "run", "--sanitizer", "none", t])
                .arg(&scratch)
                .arg(&corpus)
                .arg("--")
                .arg(format!("-max_total_time={seconds}")),
        )?;
        let inputs = std::fs::read_dir(&scratch)?.count();
        report.push(format!(
            "{t}: {:.0} s, 0 crashes, {inputs} new inputs",
            took.as_secs_f64()
        ));
    }
    println!("\nfuzzing done:");
    for r in report {
        println!("  {r}");
    }
    Ok(())
}

fn study(args: &[String]) -> anyhow::Result<()> {
    if wants_help(args) {
        return pass_through_help(&["eval", "study"]);
    }
    setup::setup()?;
    cmd::run(
        "cargo build --release -p plume-cc",
        cargo().args(["build", "--release", "-p", "plume-cc"]),
    )?;
    let root = paths::repo_root();
    let exe = root.join("target/release/plume-cc");
    let corpus = root.join("runs/corpus/default");
    let sources = root.join("../shared/traces/mahimahi");
    if !corpus.join("paths.jsonl").is_file() {
        anyhow::ensure!(
            sources.is_dir(),
            "the default corpus is cut from {}, which is missing",
            sources.display()
        );
        cmd::run_inherit(
            "plume-cc traces scenarios",
            Command::new(&exe)
                .args(["traces", "scenarios", "--windows", "1000", "--seed", "0"])
                .arg("--sources")
                .arg(&sources)
                .arg("--out")
                .arg(&corpus),
        )?;
    }
    let mut c = Command::new(&exe);
    c.args(["eval", "study", "--corpus"]).arg(&corpus);
    if !args.iter().any(|a| a == "--out") {
        c.args(["--out", "runs/study"]);
    }
    if !args.iter().any(|a| a == "--budgets") {
        c.args(["--budgets", "300k,1M"]);
    }
    cmd::run_inherit("plume-cc eval study", c.args(args))?;
    Ok(())
}

fn train(args: &[String]) -> anyhow::Result<()> {
    if wants_help(args) {
        return pass_through_help(&["train"]);
    }
    setup::setup()?;
    cmd::run(
        "cargo build --release -p plume-cc",
        cargo().args(["build", "--release", "-p", "plume-cc"]),
    )?;
    let exe = paths::repo_root().join("target/release/plume-cc");
    cmd::run_inherit("plume-cc train", Command::new(&exe).arg("train").args(args))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_is_recognised_anywhere_in_the_pass_through_flags() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(wants_help(&v(&["--help"])));
        assert!(wants_help(&v(&["--traces", "x", "-h"])));
        assert!(!wants_help(&v(&["--traces", "help"])));
        assert!(!wants_help(&[]));
    }

    #[test]
    fn pass_through_commands_take_help_as_their_own_flag() {
        for cmd in ["train", "bench", "study"] {
            let cli = Cli::try_parse_from(["xtask", cmd, "--help"]).expect(cmd);
            let args = match cli.command {
                Task::Train { args } | Task::Bench { args } | Task::Study { args } => args,
                other => panic!("{cmd} parsed as {other:?}"),
            };
            assert!(wants_help(&args), "{cmd}: {args:?}");
        }
    }
}
