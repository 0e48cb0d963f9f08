//! Replays every committed fuzz corpus (`fuzz/corpus/TARGET/*`) through its
//! target in `plume_cc::fuzz` on stable: an input that once crashed a parser
//! stays in the corpus and keeps the fix honest. Fuzzing itself (new
//! inputs) is `cargo xtask fuzz`, on the pinned nightly.

use std::path::Path;

#[test]
fn every_committed_fuzz_input_is_handled_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut total = 0;
    for (name, target) in plume_cc::fuzz::TARGETS {
        let dir = root.join(name);
        let entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("fuzz corpus {}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        assert!(
            !entries.is_empty(),
            "fuzz target {name} has no committed corpus in {}",
            dir.display()
        );
        for path in entries {
            let data = std::fs::read(&path).unwrap();
            target(&data);
            total += 1;
        }
    }
    println!("replayed {total} fuzz inputs");
}

#[test]
fn every_target_has_a_fuzz_binary() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let manifest = std::fs::read_to_string(fuzz.join("Cargo.toml")).unwrap();
    for (name, _) in plume_cc::fuzz::TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml has no [[bin]] {name}"
        );
        assert!(
            fuzz.join(format!("fuzz_targets/{name}.rs")).is_file(),
            "fuzz/fuzz_targets/{name}.rs is missing"
        );
    }
}
