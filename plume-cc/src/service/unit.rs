//! The text of the unit files. Pure functions of a [`UnitSpec`], so the
//! golden test (`tests/service.rs`) pins every line an operator will read.

use std::path::{Path, PathBuf};

use super::{ServiceError, SERVICE_UNIT};

/// What the units say: which binary, which slice, which policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitSpec {
    /// The `plume-cc` binary the service runs (absolute).
    pub exe: PathBuf,
    /// The slice whose flows the daemon controls.
    pub slice: SliceName,
    /// `default`, or the absolute path of a policy file or folder.
    pub policy: String,
    /// Mount point of the cgroup2 hierarchy on the target host
    /// (`/sys/fs/cgroup`; `/sys/fs/cgroup/unified` on hybrid hosts).
    pub cgroup_root: PathBuf,
}

/// A valid systemd slice unit name (`NAME.slice`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceName(String);

impl SliceName {
    /// Accepts `NAME` or `NAME.slice`. systemd reads each `-` in a slice name
    /// as a level of nesting (`a-b.slice` lives in `a.slice`), so empty
    /// levels (`-a`, `a-`, `a--b`) are refused, and so are the characters
    /// that systemd would escape in the cgroup's name, which would make the
    /// path this module computes wrong.
    pub fn parse(name: &str) -> Result<Self, ServiceError> {
        let bad = |why| ServiceError::BadSlice {
            name: name.to_string(),
            why,
        };
        let stem = name.strip_suffix(".slice").unwrap_or(name);
        if stem.is_empty() {
            return Err(bad("the name is empty"));
        }
        if stem == "-" || stem.starts_with('-') || stem.ends_with('-') || stem.contains("--") {
            return Err(bad(
                "a `-` nests slices, so it cannot start, end or double a name",
            ));
        }
        if !stem
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(bad("only letters, digits, `_` and `-` are allowed"));
        }
        if stem.starts_with('_') {
            return Err(bad("systemd escapes a leading `_` in the cgroup's name"));
        }
        Ok(Self(format!("{stem}.slice")))
    }

    /// The unit name, `NAME.slice`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The slice's cgroup relative to the cgroup2 root: every `-`-separated
    /// prefix is a parent slice, so `plume-cc.slice` is
    /// `plume.slice/plume-cc.slice` (what `systemctl show -p ControlGroup`
    /// prints, without the leading `/`).
    pub fn cgroup_rel(&self) -> PathBuf {
        let stem = self.0.strip_suffix(".slice").unwrap_or(&self.0);
        let parts: Vec<&str> = stem.split('-').collect();
        let mut path = PathBuf::new();
        for i in 1..=parts.len() {
            path.push(format!("{}.slice", parts[..i].join("-")));
        }
        path
    }
}

impl std::fmt::Display for SliceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl UnitSpec {
    /// The cgroup folder the daemon attaches to.
    pub fn cgroup(&self) -> PathBuf {
        self.cgroup_root.join(self.slice.cgroup_rel())
    }

    /// The daemon's command line, quoted for `ExecStart=`.
    pub fn exec_start(&self) -> String {
        let args = [
            self.exe.to_string_lossy().into_owned(),
            "run".into(),
            "--policy".into(),
            self.policy.clone(),
            "--cgroup".into(),
            self.cgroup().to_string_lossy().into_owned(),
        ];
        args.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
    }
}

/// One `ExecStart=` word: `%` and `$` are systemd's specifier and variable
/// marks and are doubled; a word with spaces, quotes or backslashes is
/// double-quoted with C-style escapes (systemd.service(5), "Command lines").
pub fn quote(word: &str) -> String {
    let escaped = word.replace('%', "%%").replace('$', "$$");
    if !escaped.is_empty()
        && !escaped
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '\'' || c == '\\' || c == ';')
    {
        return escaped;
    }
    let mut s = String::from("\"");
    for c in escaped.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\t' => s.push_str("\\t"),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// The capabilities the daemon keeps, with the reason for each; the unit
/// lists them in this order. On kernel 6.18 `plume-cc run` with only these
/// (as uid 0: bpffs and the cgroup tree belong to root) attached, re-adopted
/// its pins after a SIGKILL and detached; `plume-cc selftest` passed too
/// (docs/BENCHMARKS.md, "Daemon capabilities"). Neither CAP_PERFMON (the program
/// reads no kernel memory and leaks no pointers) nor CAP_SYS_ADMIN is
/// needed from 5.8 on, which brought CAP_BPF.
pub const CAPABILITIES: &[(&str, &str)] = &[
    (
        "CAP_BPF",
        "bpf(2): create the maps, load the program, pin them in bpffs",
    ),
    (
        "CAP_NET_ADMIN",
        "sock_ops is a networking program type: load it, attach it to the slice",
    ),
];

/// The service unit.
pub fn service_unit(spec: &UnitSpec) -> String {
    let slice = spec.slice.as_str();
    let caps: Vec<&str> = CAPABILITIES.iter().map(|(c, _)| *c).collect();
    let cap_lines: String = CAPABILITIES
        .iter()
        .map(|(c, why)| format!("#   {c:<14}{why}\n"))
        .collect();
    format!(
        "\
# {SERVICE_UNIT}: written by `plume-cc service install` (plume-cc {version}).
# The daemon controls the TCP flows of every process in {slice}
# (cgroup {cgroup}). Put an application there with
#   systemd-run --slice={slice} CMD...   or   Slice={slice} in its unit.
# Stopping the service hands every flow back to the kernel's congestion control;
# a daemon that dies leaves no limit behind for longer than --stale.
[Unit]
Description=plume-cc learned TCP congestion control for {slice}
Documentation=https://github.com/plume-cc/plume-cc#running-on-a-server
Wants={slice}
After={slice} network.target

[Service]
# READY=1 comes once the sock_ops program is attached to the slice.
Type=notify
NotifyAccess=main
ExecStart={exec}
Restart=on-failure
RestartSec=2s
# SIGTERM releases every flow (checked per flow) before detaching.
TimeoutStopSec=20s
# root's uid (bpffs and the cgroup tree belong to root) but only the
# capabilities the datapath needs:
{cap_lines}# Kernels before 5.8 have no CAP_BPF: put CAP_SYS_ADMIN in its place.
CapabilityBoundingSet={caps}
AmbientCapabilities={caps}
NoNewPrivileges=yes
# Kernels before 5.11 charge BPF maps to the locked-memory limit.
LimitMEMLOCK=infinity
ProtectSystem=full
ProtectHome=read-only

[Install]
WantedBy=multi-user.target
",
        version = env!("CARGO_PKG_VERSION"),
        cgroup = spec.cgroup().display(),
        exec = spec.exec_start(),
        caps = caps.join(" "),
    )
}

/// The slice unit: a name for the controlled cgroup, nothing more.
pub fn slice_unit(spec: &UnitSpec) -> String {
    let slice = spec.slice.as_str();
    format!(
        "\
# {slice}: written by `plume-cc service install` (plume-cc {version}).
# Every TCP flow of a process in this slice is steered by {SERVICE_UNIT}.
[Unit]
Description=Applications whose TCP flows plume-cc controls
Documentation=https://github.com/plume-cc/plume-cc#running-on-a-server

[Slice]
",
        version = env!("CARGO_PKG_VERSION"),
    )
}

/// `policy` as the unit must name it: `default` stays, a path becomes
/// absolute (the service does not run in the installer's folder) and must
/// exist.
pub fn resolve_policy(policy: &Path) -> Result<String, ServiceError> {
    if policy.as_os_str() == "default" {
        return Ok("default".into());
    }
    let abs = policy
        .canonicalize()
        .map_err(|_| ServiceError::NoPolicy(policy.to_owned()))?;
    Ok(abs.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_names_nest_on_dashes() {
        let s = SliceName::parse("plume-cc").unwrap();
        assert_eq!(s.as_str(), "plume-cc.slice");
        assert_eq!(s.cgroup_rel(), Path::new("plume.slice/plume-cc.slice"));
        let s = SliceName::parse("net-ctl-web.slice").unwrap();
        assert_eq!(
            s.cgroup_rel(),
            Path::new("net.slice/net-ctl.slice/net-ctl-web.slice")
        );
        assert_eq!(
            SliceName::parse("plumecc").unwrap().cgroup_rel(),
            Path::new("plumecc.slice")
        );
    }

    #[test]
    fn bad_slice_names_are_refused_with_the_reason() {
        for bad in [
            "",
            ".slice",
            "-a",
            "a-",
            "a--b",
            "a b",
            "a/b",
            "_a",
            "x.service",
        ] {
            let e = SliceName::parse(bad).expect_err(bad);
            assert!(e.to_string().contains("--slice"), "{e}");
        }
    }

    #[test]
    fn exec_start_words_are_quoted_for_systemd() {
        assert_eq!(quote("/usr/bin/plume-cc"), "/usr/bin/plume-cc");
        assert_eq!(quote("/srv/my policy"), "\"/srv/my policy\"");
        assert_eq!(quote("50%"), "50%%");
        assert_eq!(quote("$HOME"), "$$HOME");
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
        assert_eq!(quote(""), "\"\"");
    }

    #[test]
    fn the_daemon_runs_on_the_slices_cgroup() {
        let spec = UnitSpec {
            exe: PathBuf::from("/opt/plume cc/bin/plume-cc"),
            slice: SliceName::parse("plume-cc").unwrap(),
            policy: "default".into(),
            cgroup_root: PathBuf::from("/sys/fs/cgroup/unified"),
        };
        assert_eq!(
            spec.exec_start(),
            "\"/opt/plume cc/bin/plume-cc\" run --policy default --cgroup /sys/fs/cgroup/unified/plume.slice/plume-cc.slice"
        );
        let unit = service_unit(&spec);
        assert!(unit.contains("\nType=notify\n"));
        assert!(unit.contains("\nWants=plume-cc.slice\n"));
        assert!(unit.contains("\nCapabilityBoundingSet=CAP_BPF CAP_NET_ADMIN\n"));
    }

    #[test]
    fn a_missing_policy_file_is_refused() {
        assert_eq!(resolve_policy(Path::new("default")).unwrap(), "default");
        let e = resolve_policy(Path::new("/nonexistent/p.json")).unwrap_err();
        assert!(matches!(e, ServiceError::NoPolicy(_)));
    }
}
