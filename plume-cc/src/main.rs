//! `plume-cc`, the front: the binary users run, without libtorch.
//!
//! A binary that lists libtorch_cpu.so in DT_NEEDED pays libtorch's static
//! initialisers (operator registration, schema parsing: about 0.2 s) before
//! `main` runs, whatever the command (docs/BENCHMARKS.md, "Start-up time").
//! So this binary parses the command line with the whole clap tree (help,
//! version and usage errors, exit 2, come from here), runs the commands that
//! make no tensor itself (`status`, `cleanup`, `service`, `traces`), and
//! hands every other one to the engine, `plume-cc-engine`, by `exec`: the
//! same process (pid, argv, environment, open files), so signals, exit
//! codes, stdin/stdout and systemd's notification socket pass through.
//!
//! What keeps libtorch out of this binary: rust-lld links with
//! `--as-needed` and `--gc-sections`, so a shared library becomes DT_NEEDED
//! only when code that survives garbage collection calls into it; the
//! commands above never reach tch. `tests/front.rs` reads the dynamic
//! section and fails the day one does.

use std::{
    os::unix::{fs::MetadataExt as _, process::CommandExt as _},
    path::{Path, PathBuf},
};

// The front compiles all of `cli/` (each command's flags live beside its
// code) but runs only the commands above; the rest is the engine's, which
// uses, and lints, all of it.
#[allow(dead_code)]
mod cli;
use cli::command::{Cli, Command};

/// The engine's file name.
const ENGINE: &str = "plume-cc-engine";

fn main() {
    let cli = Cli::parse_or_exit();
    if !runs_here(&cli.command) {
        // The engine parses the same argv again and warns itself.
        drop(cli::args::take_parse_warnings());
        // Returns only if the engine could not be started.
        cli::logging::finish(Err(exec_engine()))
    }
    // Logging first: under --log-format json the warnings are JSON too.
    cli::logging::init_logging(cli.log_format);
    cli::args::print_parse_warnings();
    let result = match cli.command {
        Command::Status {
            json,
            pin_dir,
            explain,
        } => cli::status::status(json, pin_dir, explain),
        Command::Cleanup { pin_dir } => cli::status::cleanup(pin_dir),
        Command::Service(cmd) => cli::service::run(cmd).map_err(Into::into),
        Command::Traces(cmd) => cli::trace::run(cmd),
        _ => unreachable!("runs_here() hands this command to the engine"),
    };
    cli::logging::finish(result)
}

/// The commands the front runs itself: none of them makes a tensor, so
/// none needs libtorch (`traces` is the trace and Plume layers, `status`
/// and `cleanup` read pinned maps and the daemon's explanation file,
/// `service` writes unit files).
fn runs_here(command: &Command) -> bool {
    matches!(
        command,
        Command::Status { .. } | Command::Cleanup { .. } | Command::Service(_) | Command::Traces(_)
    )
}

/// Where the engine may be, in order: beside the front (`target/release/`,
/// the tarball's `bin/`), then in `../libexec/plume-cc/` from the front's
/// folder (a package that keeps helpers out of `/usr/bin`).
fn engine_candidates(front: &Path) -> Vec<PathBuf> {
    let dir = front.parent().unwrap_or(Path::new("/"));
    let mut v = vec![dir.join(ENGINE)];
    if let Some(prefix) = dir.parent() {
        v.push(prefix.join("libexec/plume-cc").join(ENGINE));
    }
    v
}

/// Replaces this process with the engine, run with this process's argv
/// (`argv[0]` included, so the engine's messages still say `plume-cc`).
/// Returns only when that fails: no engine where it should be, or the exec
/// itself failed.
fn exec_engine() -> anyhow::Error {
    // /proc/self/exe: the real file, a /usr/bin symlink resolved.
    let front = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            return anyhow::Error::new(e).context("locating plume-cc itself (/proc/self/exe)")
        }
    };
    let candidates = engine_candidates(&front);
    let Some(engine) = candidates.iter().find(|p| p.is_file()) else {
        let looked = candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" and ");
        return anyhow::anyhow!(
            "this command needs {ENGINE} (the part of plume-cc that loads libtorch), which is missing: looked at {looked}; install plume-cc whole (the tarball's bin/ holds both binaries), or build it with `cargo build --release -p plume-cc`"
        );
    };
    // An engine that is this very file would exec itself for ever.
    if let (Ok(a), Ok(b)) = (std::fs::metadata(&front), std::fs::metadata(engine)) {
        if (a.dev(), a.ino()) == (b.dev(), b.ino()) {
            return anyhow::anyhow!(
                "{} is this front binary, not the engine: the package is broken",
                engine.display()
            );
        }
    }
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| "plume-cc".into());
    let e = std::process::Command::new(engine)
        .arg0(arg0)
        .args(args)
        .exec();
    anyhow::Error::new(e).context(format!("starting the engine {}", engine.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engine_is_looked_for_beside_the_front_then_in_libexec() {
        assert_eq!(
            engine_candidates(Path::new("/opt/plume-cc-0.1.0/bin/plume-cc")),
            [
                PathBuf::from("/opt/plume-cc-0.1.0/bin/plume-cc-engine"),
                PathBuf::from("/opt/plume-cc-0.1.0/libexec/plume-cc/plume-cc-engine"),
            ]
        );
        assert_eq!(
            engine_candidates(Path::new("/plume-cc")),
            [PathBuf::from("/plume-cc-engine")]
        );
    }

    #[test]
    fn only_commands_without_tensors_run_in_the_front() {
        use clap::Parser as _;
        let here = |args: &[&str]| {
            let cli = Cli::try_parse_from(std::iter::once("plume-cc").chain(args.iter().copied()))
                .unwrap();
            runs_here(&cli.command)
        };
        assert!(here(&["status"]));
        assert!(here(&["status", "--json", "--explain"]));
        assert!(here(&["cleanup"]));
        assert!(here(&["service", "install", "--dry-run"]));
        assert!(here(&["traces", "synth", "--out", "x"]));
        assert!(!here(&["run", "--cgroup", "/tmp"]));
        assert!(!here(&[
            "train", "--traces", "t", "--out", "o", "--steps", "1"
        ]));
        assert!(!here(&["selftest"]));
        assert!(!here(&["bench-decide"]));
    }
}
