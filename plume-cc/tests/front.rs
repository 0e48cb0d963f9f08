//! The front (`plume-cc`, no libtorch) and the engine (`plume-cc-engine`)
//! it execs: what each links, what the front does alone, and what passes
//! through the exec (no root, except the last check, which runs as nobody
//! when it can).

mod common;

use std::{
    os::unix::{fs::symlink, process::CommandExt as _},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use common::EXE;

const ENGINE: &str = env!("CARGO_BIN_EXE_plume-cc-engine");

/// The DT_NEEDED entries of an ELF file, read from its dynamic section.
fn needed(path: &Path) -> Vec<String> {
    use object::read::elf::{FileHeader as _, SectionHeader as _};
    let data = std::fs::read(path).unwrap();
    let header = object::elf::FileHeader64::<object::Endianness>::parse(&*data).unwrap();
    let endian = header.endian().unwrap();
    let sections = header.sections(endian, &*data).unwrap();
    // The one SHT_DYNAMIC section of an executable.
    assert!(
        sections
            .iter()
            .any(|s| s.sh_type(endian) == object::elf::SHT_DYNAMIC),
        "{} has no dynamic section",
        path.display()
    );
    let table = sections.dynamic_table(endian, &*data).unwrap();
    table
        .iter()
        .filter(|d| d.tag == object::elf::DT_NEEDED)
        .map(|d| String::from_utf8_lossy(table.string(d).unwrap()).into_owned())
        .collect()
}

fn is_torch(soname: &str) -> bool {
    soname.contains("torch") || soname.starts_with("libc10")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `exe ARGS` with no library path from the environment.
fn run(exe: &Path, args: &[&str]) -> Output {
    output_of(
        Command::new(exe)
            .args(args)
            .env_remove("LD_LIBRARY_PATH")
            .env("RUST_BACKTRACE", "1"),
    )
}

/// Runs `cmd`, retrying while the program is "busy" (ETXTBSY, directly or
/// as reported by `setpriv`). A test that has just copied the front
/// (`lone_front`) can exec it while another test thread's fork still holds
/// an inherited copy of the write descriptor, until that child reaches its
/// own exec (rust-lang/rust#114554); CI on 2026-12-04 failed once on it.
/// The copy is complete, so waiting a moment is the whole remedy.
fn output_of(cmd: &mut Command) -> Output {
    for _ in 0..100 {
        match cmd.output() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {}
            Ok(o) if !o.status.success() && text(&o.stderr).contains("Text file busy") => {}
            r => return r.unwrap(),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{cmd:?} stayed busy for 2 s");
}

/// A copy of the front alone in a fresh folder: no engine beside it, none
/// in `../libexec/plume-cc`.
fn lone_front(tag: &str) -> (common::TestDir, PathBuf) {
    let tmp = common::tmpdir(tag);
    let dir = tmp.join("bin");
    std::fs::create_dir_all(&dir).unwrap();
    let front = dir.join("plume-cc");
    std::fs::copy(EXE, &front).unwrap();
    (tmp, front)
}

#[test]
fn the_front_links_no_libtorch_and_the_engine_does() {
    let front = needed(Path::new(EXE));
    assert!(
        front.iter().any(|l| l.starts_with("libc.so")),
        "the dynamic section was read: {front:?}"
    );
    assert!(
        !front.iter().any(|l| is_torch(l)),
        "the front lists libtorch in DT_NEEDED, so every --help pays its static initialisers: {front:?}"
    );
    let engine = needed(Path::new(ENGINE));
    assert!(
        engine.iter().any(|l| l == "libtorch_cpu.so") && engine.iter().any(|l| l == "libc10.so"),
        "{engine:?}"
    );
}

/// Help, usage errors and the light commands come from the front alone,
/// with no engine and no library path; the help text is the engine's own.
#[test]
fn the_front_alone_helps_parses_and_runs_the_light_commands() {
    let (_tmp, front) = lone_front("front-alone");
    for args in [
        &["--help"][..],
        &["run", "--help"][..],
        &["traces", "--help"][..],
    ] {
        let o = run(&front, args);
        assert!(o.status.success(), "{args:?}: {}", text(&o.stderr));
        // The engine as the front execs it: argv[0] kept.
        let engine = Command::new(ENGINE)
            .arg0("plume-cc")
            .args(args)
            .output()
            .unwrap();
        assert_eq!(
            text(&o.stdout),
            text(&engine.stdout),
            "{args:?}: the front's help differs from the engine's"
        );
        assert!(text(&o.stdout).contains("Usage: plume-cc"));
    }
    assert!(text(&run(&front, &["--help"]).stdout).contains("train"));
    let o = run(&front, &["--version"]);
    assert_eq!(
        text(&o.stdout).trim(),
        format!("plume-cc {}", env!("CARGO_PKG_VERSION"))
    );

    // A usage error: exit 2 from the front, which needs no engine for it.
    let o = run(&front, &["run", "--cgroup", "/tmp", "--run-for", "200"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("has no unit"),
        "{}",
        text(&o.stderr)
    );
    assert!(!text(&o.stderr).contains("plume-cc-engine"));

    let o = run(&front, &["status", "--json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v.is_array());

    let out = front.parent().unwrap().join("traces");
    let o = run(
        &front,
        &[
            "traces",
            "synth",
            "--kind",
            "constant",
            "--mbps",
            "12",
            "--duration",
            "1s",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let trace = out.join("constant-12mbps-1000ms-seed0.trace");
    // 12 Mbit/s of 1500-byte opportunities for 1 s.
    assert_eq!(
        std::fs::read_to_string(trace).unwrap().lines().count(),
        1000
    );

    let o = run(&front, &["service", "install", "--dry-run"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // The unit runs the front, which finds the engine itself.
    assert!(
        text(&o.stdout).contains(&format!("ExecStart={} run", front.display())),
        "{}",
        text(&o.stdout)
    );
}

/// A command the front hands over, with no engine to take it: an error
/// that names the engine and every place looked at, exit 1.
#[test]
fn a_missing_engine_is_a_clear_error() {
    let (_tmp, front) = lone_front("front-no-engine");
    let dir = front.parent().unwrap();
    let o = run(
        &front,
        &["bench-decide", "--flows", "1", "--iterations", "1"],
    );
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.starts_with("plume-cc: error: "), "{err}");
    assert!(err.contains("plume-cc-engine"), "{err}");
    assert!(
        err.contains(&dir.join("plume-cc-engine").display().to_string()),
        "names the folder beside the front: {err}"
    );
    assert!(
        err.contains(
            &dir.parent()
                .unwrap()
                .join("libexec/plume-cc/plume-cc-engine")
                .display()
                .to_string()
        ),
        "names the package folder: {err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!err.contains("backtrace"), "{err}");
}

/// The engine in `../libexec/plume-cc/`, as a package may keep it, and
/// the front reached through a symlink (as /usr/bin/plume-cc is): the
/// command runs, its stdout and exit code come back.
#[test]
fn a_forwarded_command_runs_from_libexec_and_through_a_symlink() {
    let (_tmp, front) = lone_front("front-libexec");
    let prefix = front.parent().unwrap().parent().unwrap().to_path_buf();
    std::fs::create_dir_all(prefix.join("libexec/plume-cc")).unwrap();
    symlink(ENGINE, prefix.join("libexec/plume-cc/plume-cc-engine")).unwrap();
    std::fs::create_dir_all(prefix.join("usr/bin")).unwrap();
    let link = prefix.join("usr/bin/plume-cc");
    symlink(&front, &link).unwrap();
    let o = run(
        &link,
        &[
            "bench-decide",
            "--flows",
            "1",
            "--iterations",
            "2",
            "--json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is the engine's JSON ({e}): {}", text(&o.stdout)));
    assert_eq!(v[0]["flows"], 1, "{v}");
    assert!(text(&o.stderr).contains("decide step"));
}

/// What passes through the exec: a runtime error's exit code and its one
/// message, a deprecation warning printed once (not by both parsers), and
/// the process itself: the pid the caller holds becomes the engine, so
/// signals reach it.
#[test]
fn a_forwarded_command_is_the_same_process_with_the_same_exit_code() {
    let o = run(
        Path::new(EXE),
        &[
            "run",
            "--interval",
            "20",
            "--policy",
            "/nonexistent/p.json",
            "--cgroup",
            "/tmp",
        ],
    );
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.matches("no such file or folder").count(), 1, "{err}");
    assert_eq!(
        err.matches("`--interval 20` is deprecated").count(),
        1,
        "the warning once, from the engine: {err}"
    );

    let mut child = Command::new(EXE)
        .args([
            "bench-decide",
            "--flows",
            "10000",
            "--iterations",
            "100000000",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let exe = PathBuf::from(format!("/proc/{}/exe", child.id()));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut became = None;
    while Instant::now() < deadline {
        if let Ok(p) = std::fs::read_link(&exe) {
            if p.file_name().is_some_and(|n| n == "plume-cc-engine") {
                became = Some(p);
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: kill(2) on our own child's pid, which has not been reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(
        became.is_some(),
        "pid {} never became plume-cc-engine",
        child.id()
    );
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
}

/// As nobody, who cannot read the builder's home where the dev build's
/// libtorch is (the front's unused RUNPATH points there): `--help` and
/// `status` still work, so nothing of libtorch is loaded. Root only (to
/// become nobody); skipped loudly otherwise, and a failure in CI.
#[test]
fn the_front_runs_where_libtorch_is_unreachable() {
    if !common::have_root("the front as nobody", "setpriv to become nobody") {
        return;
    }
    let (_tmp, front) = lone_front("front-nobody");
    let as_nobody = |args: &[&str]| {
        output_of(
            Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(&front)
                .args(args)
                .env_remove("LD_LIBRARY_PATH")
                .current_dir("/"),
        )
    };
    // The control: the engine cannot start there.
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(ENGINE)
        .arg("--help")
        .env_remove("LD_LIBRARY_PATH")
        .current_dir("/")
        .output()
        .unwrap();
    assert!(
        !o.status.success() && text(&o.stderr).contains("libtorch_cpu.so"),
        "the engine found libtorch as nobody, so this test proves nothing: {}",
        text(&o.stderr)
    );
    let o = as_nobody(&["--help"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("Usage: plume-cc"));
    let o = as_nobody(&["status"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
}
