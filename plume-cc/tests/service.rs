//! `plume-cc service`: the unit files as an operator will read them (a golden
//! file, compared exactly), and the dry runs (no root, no systemd).

mod common;

use std::process::Command;

use common::EXE;

const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/golden/service-install-dry-run.txt"
);

fn dry_run(args: &[&str]) -> String {
    let o = Command::new(EXE).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "plume-cc {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// The golden file holds `{VERSION}` where the unit names the version, so a
/// release bump does not rewrite it. `PLUME_UPDATE_GOLDEN=1` rewrites it
/// after an intended change (review the diff).
#[test]
fn service_install_dry_run_matches_the_golden_unit_files() {
    let got = dry_run(&[
        "service",
        "install",
        "--dry-run",
        "--bin",
        "/usr/bin/plume-cc",
        "--cgroup-root",
        "/sys/fs/cgroup",
    ])
    .replace(env!("CARGO_PKG_VERSION"), "{VERSION}");
    if std::env::var_os("PLUME_UPDATE_GOLDEN").is_some() {
        std::fs::write(GOLDEN, &got).unwrap();
    }
    let want = std::fs::read_to_string(GOLDEN).unwrap();
    if got != want {
        for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
            if g != w {
                panic!(
                    "line {}: got\n  {g}\nwant\n  {w}\n(PLUME_UPDATE_GOLDEN=1 rewrites {GOLDEN})",
                    i + 1
                );
            }
        }
        panic!(
            "{} lines, the golden file has {} (PLUME_UPDATE_GOLDEN=1 rewrites {GOLDEN})",
            got.lines().count(),
            want.lines().count()
        );
    }
}

#[test]
fn a_policy_file_is_written_as_an_absolute_path_and_must_exist() {
    let dir = common::tmpdir("service-policy");
    let p = dir.join("p.json");
    std::fs::write(&p, "{}").unwrap();
    let out = Command::new(EXE)
        .args(["service", "install", "--dry-run", "--policy", "p.json"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let abs = p.canonicalize().unwrap();
    assert!(
        text.contains(&format!(" --policy {} ", abs.display())),
        "{text}"
    );
    let out = Command::new(EXE)
        .args([
            "service",
            "install",
            "--dry-run",
            "--policy",
            "missing.json",
        ])
        .current_dir(&dir)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--policy missing.json"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn another_slice_is_nested_as_systemd_nests_it() {
    let text = dry_run(&[
        "service",
        "install",
        "--dry-run",
        "--slice",
        "net-bulk",
        "--cgroup-root",
        "/sys/fs/cgroup",
    ]);
    assert!(
        text.contains("# /etc/systemd/system/net-bulk.slice\n"),
        "{text}"
    );
    assert!(
        text.contains("--cgroup /sys/fs/cgroup/net.slice/net-bulk.slice\n"),
        "{text}"
    );
    let o = Command::new(EXE)
        .args(["service", "install", "--dry-run", "--slice", "a--b"])
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--slice"));
}

#[test]
fn uninstall_dry_run_stops_the_service_before_removing_its_files() {
    let text = dry_run(&["service", "uninstall", "--dry-run"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "$ systemctl disable --now plume-cc.service",
            "$ rm -f /etc/systemd/system/plume-cc.service",
            "$ rm -f /etc/systemd/system/plume-cc.slice",
            "$ systemctl daemon-reload",
        ]
    );
}

/// systemd's own checker on the files as installed (sections, directives,
/// capability names, the ExecStart binary), where systemd-analyze exists.
#[test]
fn systemd_analyze_verify_accepts_the_units() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("\n*** SKIPPED: systemd-analyze is not installed ***\n");
        return;
    }
    let root = common::tmpdir("service-verify");
    let o = Command::new(EXE)
        .args(["service", "install", "--unit-dir", "/units", "--root"])
        .arg(&root)
        .args(["--bin", EXE, "--cgroup-root", "/sys/fs/cgroup"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let units = root.join("units");
    let o = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(units.join("plume-cc.service"))
        .arg(units.join("plume-cc.slice"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && err.trim().is_empty(), "{err}");
    std::fs::remove_dir_all(&root).ok();
}
