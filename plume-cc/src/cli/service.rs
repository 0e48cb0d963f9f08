//! `plume-cc service install|uninstall`: the command line over this module.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use plume_cc::service::{
    check_host, dry_run_text, install, install_commands, uninstall, uninstall_commands,
    unit::resolve_policy, unit_files, HostSystemctl, ServiceError, SliceName, Systemctl, UnitSpec,
    ADMIN_UNIT_DIR,
};

/// `plume-cc service ...`.
#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Write plume-cc.service and its slice unit into /etc/systemd/system,
    /// then `systemctl daemon-reload` and `systemctl enable --now
    /// plume-cc.service` (needs root and systemd).
    Install {
        #[command(flatten)]
        common: CommonArgs,
        /// Policy the service runs: `default` (embedded), or a policy file or
        /// folder (written into the unit as an absolute path).
        #[arg(long, default_value = "default")]
        policy: PathBuf,
        /// The plume-cc binary the unit runs (default: this one).
        #[arg(long)]
        bin: Option<PathBuf>,
        /// Mount point of cgroup2 on the host that runs the service
        /// (default: this host's, e.g. /sys/fs/cgroup).
        #[arg(long)]
        cgroup_root: Option<PathBuf>,
    },
    /// Stop and disable plume-cc.service, remove its unit files and reload
    /// systemd. Applications in the slice keep running, under the kernel's
    /// congestion control.
    Uninstall {
        #[command(flatten)]
        common: CommonArgs,
    },
}

/// Flags of both subcommands.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// The slice whose flows the daemon controls (NAME or NAME.slice; each
    /// `-` nests it: plume-cc.slice lives in plume.slice).
    #[arg(long, default_value = "plume-cc.slice")]
    pub slice: String,
    /// Print the files and the systemctl calls; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Folder for the unit files.
    #[arg(long, default_value = ADMIN_UNIT_DIR)]
    pub unit_dir: PathBuf,
    /// Write under this folder instead of `/` and run no systemctl (for
    /// packaging: `cargo xtask dist` builds the .deb's tree with it).
    #[arg(long, hide = true)]
    pub root: Option<PathBuf>,
}

/// Runs a `service` subcommand; prints the files with `--dry-run`, else
/// what was done.
pub fn run(cmd: ServiceCommand) -> Result<(), ServiceError> {
    match cmd {
        ServiceCommand::Install {
            common,
            policy,
            bin,
            cgroup_root,
        } => {
            let spec = UnitSpec {
                exe: match bin {
                    Some(b) => b,
                    None => this_exe()?,
                },
                slice: SliceName::parse(&common.slice)?,
                policy: resolve_policy(&policy)?,
                cgroup_root: cgroup_root.unwrap_or_else(host_cgroup_root),
            };
            let files = unit_files(&spec, &common.unit_dir);
            if common.dry_run {
                print!("{}", dry_run_text(&files, &install_commands()));
                return Ok(());
            }
            match &common.root {
                Some(root) => install(&files, root, None)?,
                None => {
                    check_host(&common.unit_dir)?;
                    install(
                        &files,
                        Path::new("/"),
                        Some(&mut HostSystemctl as &mut dyn Systemctl),
                    )?;
                }
            }
            for f in &files {
                println!("wrote {}", under(common.root.as_deref(), &f.path).display());
            }
            if common.root.is_none() {
                println!(
                    "plume-cc.service is running and controls {}: start applications with `systemd-run --slice={} CMD`, see their flows with `plume-cc status`",
                    spec.cgroup().display(),
                    spec.slice
                );
            }
            Ok(())
        }
        ServiceCommand::Uninstall { common } => {
            // Only the paths matter for removal.
            let spec = UnitSpec {
                exe: PathBuf::from("plume-cc"),
                slice: SliceName::parse(&common.slice)?,
                policy: "default".into(),
                cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            };
            let files = unit_files(&spec, &common.unit_dir);
            if common.dry_run {
                for c in uninstall_commands() {
                    println!("$ systemctl {}", c.join(" "));
                }
                for f in &files {
                    println!("$ rm -f {}", f.path.display());
                }
                println!("$ systemctl daemon-reload");
                return Ok(());
            }
            let removed = match &common.root {
                Some(root) => uninstall(&files, root, None)?,
                None => {
                    check_host(&common.unit_dir)?;
                    uninstall(
                        &files,
                        Path::new("/"),
                        Some(&mut HostSystemctl as &mut dyn Systemctl),
                    )?
                }
            };
            for p in &removed {
                println!("removed {}", p.display());
            }
            if removed.is_empty() {
                println!("no plume-cc unit files in {}", common.unit_dir.display());
            }
            Ok(())
        }
    }
}

fn under(root: Option<&Path>, path: &Path) -> PathBuf {
    match root {
        Some(r) => r.join(path.strip_prefix("/").unwrap_or(path)),
        None => path.to_owned(),
    }
}

/// This binary's real path (a `/usr/bin` symlink resolves to the packaged
/// binary, which finds its libraries next to itself).
fn this_exe() -> Result<PathBuf, ServiceError> {
    let exe = std::env::current_exe().map_err(|e| ServiceError::Io {
        action: "locating",
        path: PathBuf::from("/proc/self/exe"),
        source: e,
    })?;
    Ok(exe.canonicalize().unwrap_or(exe))
}

/// This host's cgroup2 mount point, or `/sys/fs/cgroup` (systemd's unified
/// layout) where none is mounted here.
fn host_cgroup_root() -> PathBuf {
    plume_cc::datapath::cgroup::cgroup2_mount().unwrap_or_else(|_| PathBuf::from("/sys/fs/cgroup"))
}
