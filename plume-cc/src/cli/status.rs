//! `plume-cc status` and `plume-cc cleanup`: read (or remove) the pinned
//! datapaths. Neither makes a tensor, so the front runs them itself without
//! loading libtorch (`status --explain` included: it reads the daemon's
//! state file); the engine runs the same code when called directly.

use std::path::PathBuf;

use anyhow::Context as _;

use plume_cc::daemon;

/// `plume-cc status [--json] [--pin-dir DIR] [--explain]`.
pub fn status(json: bool, pin_dir: Option<PathBuf>, explain: bool) -> anyhow::Result<()> {
    // `--pin-dir` naming one datapath's folder (not a folder of them):
    // its error is the answer rather than a warning.
    let single = pin_dir
        .as_deref()
        .is_some_and(plume_cc::datapath::attached_at);
    let pin_root = pin_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(plume_cc::datapath::PIN_ROOT));
    let dirs = match pin_dir {
        Some(d) => daemon::status::datapaths_at(&d).ok_or_else(|| {
            anyhow::anyhow!(
                "--pin-dir {}: no such folder (give a datapath's pin folder, as given to `run --pin-dir`, or a folder of them)",
                d.display()
            )
        })?,
        None => daemon::status::pinned_datapaths(),
    };
    if dirs.is_empty() && !json {
        println!(
            "no running plume-cc datapath (nothing pinned under {})",
            pin_root.display()
        );
    }
    // With --json, stdout holds exactly one JSON document: an array
    // with one entry per datapath (`[]` when none runs).
    let mut docs = Vec::new();
    for dir in dirs {
        let st = match daemon::status::read(&dir) {
            Ok(st) => st,
            // A daemon that just stopped removes its pins while we list them.
            Err(_) if !plume_cc::datapath::attached_at(&dir) => continue,
            // The one datapath asked for: its error is the answer.
            Err(e) if single => {
                return Err(anyhow::Error::new(e)
                    .context(format!("reading the datapath pinned at {}", dir.display())))
            }
            // One unreadable datapath (e.g. pinned by another build
            // whose map layouts differ) must not hide the others:
            // warn on stderr, so that --json's stdout stays one document.
            Err(e) => {
                eprintln!(
                    "plume-cc: warning: skipping the datapath pinned at {}: {}",
                    dir.display(),
                    plume_cc::errors::one_line(&e)
                );
                continue;
            }
        };
        let explained = if explain {
            plume_cc::explain::live::read_state(
                &plume_cc::explain::live::state_path(
                    std::path::Path::new(plume_cc::explain::live::STATE_DIR),
                    &dir,
                ),
                plume_cc::explain::live::unix_ms(),
                5_000,
            )?
        } else {
            None
        };
        if json {
            let mut v = serde_json::to_value(&st)?;
            if explain {
                v["explain"] = serde_json::to_value(&explained)?;
            }
            docs.push(v);
        } else {
            let c = &st.counters;
            let cgroup = st
                .cgroup
                .as_ref()
                .map(|c| format!("cgroup {}, ", c.display()))
                .unwrap_or_default();
            println!(
                "{} ({cgroup}{} flows, {}, stale after {} ms)",
                dir.display(),
                st.flows.len(),
                st.mode,
                st.stale_after_ms
            );
            println!(
                "  counters: opened {} closed {} map-full {} applied {} expired {} setsockopt-errors {} events-dropped {} torn-reads {} slot-hash-lookups {} recovery-tail-waits {}",
                c.flows_opened,
                c.flows_closed,
                c.flow_map_full,
                c.targets_applied,
                c.targets_expired,
                c.setsockopt_errors,
                c.events_dropped,
                c.torn_reads,
                c.slot_hash_lookups,
                c.recovery_tail_waits
            );
            print!("{}", daemon::status::table(&st.flows));
            if explain {
                match &explained {
                    None => {
                        println!("  no live explanation (is the daemon running with --explain?)")
                    }
                    Some(x) => print!("{}", plume_cc::explain::live::explain_table(x)),
                }
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string(&docs)?);
    }
    Ok(())
}

/// `plume-cc cleanup [--pin-dir DIR]`.
pub fn cleanup(pin_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let dirs = match pin_dir {
        Some(d) => vec![d],
        None => daemon::status::pinned_datapaths(),
    };
    if dirs.is_empty() {
        println!("nothing to clean up (nothing pinned under /sys/fs/bpf/plume-cc)");
    }
    for dir in dirs {
        let outcome = daemon::status::cleanup(&dir)
            .with_context(|| format!("cleaning up the datapath pinned at {}", dir.display()))?;
        println!("{}: {outcome}", dir.display());
    }
    Ok(())
}
