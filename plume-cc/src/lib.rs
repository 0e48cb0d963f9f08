//! plume-cc: a learned TCP congestion controller for the Linux datapath.
//!
//! One folder per concern, in layers. A module imports only from the layers
//! below its own, never sideways or up (the `layers` test below enforces it
//! by scanning every `crate::` path):
//!
//! 1. [`trace`] (the delivery schedule and Mahimahi traces), [`flow`] (what
//!    the kernel shows of a TCP flow) and [`stats`] (the one quantile
//!    convention) and [`font`] (the plots' one font, loaded lazily), with
//!    [`args`] (the duration grammar of every flag) and [`errors`] (an
//!    error chain on one line), the ground every other part stands on;
//! 2. [`congestion`] (the kernel-like base controllers) and [`plume`] (the
//!    trace-analysis method);
//! 3. [`sim`]: the packet simulator, which knows nothing of policies;
//! 4. [`policy`]: what a policy observes, decides and promises, and the
//!    policy file;
//! 5. [`rl`] (training: the RL environment over the simulator, PPO) and
//!    [`datapath`] (the eBPF loader and maps);
//! 6. [`explain`]: future-based explanations of the policy's decisions
//!    (predictors fit on simulator rollouts, run offline and by the daemon);
//! 7. [`daemon`] (the control loop on a host), [`emu`] (the link emulator)
//!    and [`service`] (the daemon's systemd units);
//! 8. [`bench`]: iperf3 across the emulator, with the daemon as a scheme;
//! 9. [`eval`]: checks that span training and the real stack, and
//!    [`fuzz`]: one entry point per parser of outside input.
//!
//! The binaries (`main.rs`, the front, and `bin/plume-cc-engine.rs`, with
//! their shared `cli/` modules: clap, progress bars, errors to exit codes)
//! are the edge that may use every layer. The front links no libtorch: it
//! runs only commands whose code never reaches tch (`traces`, `status`,
//! `cleanup`, `service`) and execs the engine for the others.
pub mod args;
pub mod bench;
pub mod congestion;
pub mod daemon;
pub mod datapath;
pub mod emu;
pub mod errors;
pub mod eval;
pub mod explain;
pub mod flow;
pub mod font;
pub mod fuzz;
pub mod plume;
pub mod policy;
pub mod rl;
pub mod service;
pub mod sim;
pub mod stats;
pub mod trace;

/// The layers, lowest first (see the crate docs).
pub const LAYERS: &[&[&str]] = &[
    &["trace", "flow", "stats", "font", "args", "errors"],
    &["congestion", "plume"],
    &["sim"],
    &["policy"],
    &["rl", "datapath"],
    &["explain"],
    &["daemon", "emu", "service"],
    &["bench"],
    &["eval", "fuzz"],
];

#[cfg(test)]
mod layers {
    use std::path::Path;

    use super::LAYERS;

    /// Imports that run against the layers today, each with its reason. The
    /// list may only shrink.
    const KNOWN_EXCEPTIONS: &[(&str, &str)] = &[];

    /// Folders of `src/` that belong to the binaries (`main.rs`, the front,
    /// and `bin/plume-cc-engine.rs`), not to the library: the command lines,
    /// the edge that may use every layer.
    const BINARY_SIDE: &[&str] = &["cli", "bin"];

    fn layer_of(module: &str) -> Option<usize> {
        LAYERS.iter().position(|l| l.contains(&module))
    }

    fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        // A module may be one file (`src/fuzz.rs`) instead of a folder.
        if !dir.is_dir() {
            let file = dir.with_extension("rs");
            assert!(
                file.is_file(),
                "{} is neither a folder nor a file",
                dir.display()
            );
            out.push(file);
            return;
        }
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                rust_files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }

    /// The identifier at the start of `s`.
    fn ident(s: &str) -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    }

    /// Every `crate::MODULE` in code (not in comments) of `text`, with the
    /// top-level names of a group (`crate::{trace::Schedule, sim}`, over
    /// several lines too), which a plain scan for `crate::NAME` would read
    /// as no module at all.
    fn imports(text: &str) -> Vec<String> {
        let code: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect();
        let code = code.join("\n");
        let mut v = Vec::new();
        let mut rest = code.as_str();
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let Some(group) = rest.strip_prefix('{') else {
                v.push(ident(rest));
                continue;
            };
            // The group's top-level items: split at commas outside
            // nested braces.
            let mut depth = 0usize;
            let mut start = 0;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        v.push(ident(group[start..j].trim_start()));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        v.push(ident(group[start..j].trim_start()));
                        start = j + 1;
                    }
                    _ => {}
                }
            }
        }
        v.retain(|m| !m.is_empty());
        v
    }

    /// The crate roots of `src/`: `lib.rs` (this file) and the front's
    /// `main.rs`, which are no module of a layer.
    const ROOTS: &[&str] = &["lib.rs", "main.rs"];

    /// Every folder and every single-file module of `src/` belongs to a
    /// layer (or to the binaries), and `LAYERS` names exactly the modules
    /// this file declares: a new module cannot dodge the import check by
    /// being left out of `LAYERS`, nor a layer name a module that is gone.
    #[test]
    fn every_module_is_in_a_layer() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut seen = Vec::new();
        for e in std::fs::read_dir(&src).unwrap() {
            let p = e.unwrap().path();
            let file = p.file_name().unwrap().to_string_lossy().to_string();
            let name = if p.is_dir() {
                file
            } else if let Some(stem) = file.strip_suffix(".rs") {
                if ROOTS.contains(&file.as_str()) {
                    continue;
                }
                stem.to_string()
            } else {
                continue;
            };
            if BINARY_SIDE.contains(&name.as_str()) {
                continue;
            }
            assert!(
                layer_of(&name).is_some(),
                "src/{name} is in no layer of LAYERS"
            );
            seen.push(name);
        }
        let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
        let mut declared: Vec<&str> = lib
            .lines()
            .filter_map(|l| {
                l.strip_prefix("pub mod ")
                    .or_else(|| l.strip_prefix("mod "))
            })
            .filter_map(|l| l.strip_suffix(';'))
            .collect();
        declared.sort_unstable();
        let mut layered: Vec<&str> = LAYERS.iter().flat_map(|l| l.iter().copied()).collect();
        layered.sort_unstable();
        assert_eq!(declared, layered, "lib.rs's modules against LAYERS");
        seen.sort_unstable();
        assert_eq!(seen, layered, "src/'s folders and files against LAYERS");
    }

    #[test]
    fn imports_follow_the_layers() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut bad = Vec::new();
        let mut used_exceptions = Vec::new();
        for layer in LAYERS {
            for module in *layer {
                let mut files = Vec::new();
                rust_files(&src.join(module), &mut files);
                let mine = layer_of(module).unwrap();
                for f in files {
                    let rel = f.strip_prefix(&src).unwrap().to_string_lossy().to_string();
                    let text = std::fs::read_to_string(&f).unwrap();
                    for dep in imports(&text) {
                        let Some(theirs) = layer_of(&dep) else {
                            continue; // `crate::` items of the module itself, macros
                        };
                        if dep == *module || theirs < mine {
                            continue;
                        }
                        if KNOWN_EXCEPTIONS.contains(&(rel.as_str(), dep.as_str())) {
                            used_exceptions.push((rel.clone(), dep.clone()));
                            continue;
                        }
                        bad.push(format!(
                            "{rel} imports crate::{dep} (layer {theirs} >= {mine})"
                        ));
                    }
                }
            }
        }
        bad.sort();
        bad.dedup();
        assert!(
            bad.is_empty(),
            "imports against the layers:\n{}",
            bad.join("\n")
        );
        for (file, dep) in KNOWN_EXCEPTIONS {
            assert!(
                used_exceptions.iter().any(|(f, d)| f == file && d == dep),
                "{file} no longer imports crate::{dep}: remove it from KNOWN_EXCEPTIONS"
            );
        }
    }

    #[test]
    fn the_scanner_sees_code_not_comments() {
        let text = "//! see [`crate::eval`]\nuse crate::trace::Schedule;\nlet x = crate::sim::Env::new(crate::policy::X);";
        assert_eq!(imports(text), vec!["trace", "sim", "policy"]);
        let grouped = "use crate::{\n    trace::{Schedule, MahimahiTrace},\n    daemon,\n};\nuse crate::{sim::X, policy::{self, Y}};";
        assert_eq!(imports(grouped), vec!["trace", "daemon", "sim", "policy"]);
    }
}
