//! Replays every input of the fuzz corpus (`fuzz/corpus/<target>/`) and every crash the fuzzers found
//! (`fuzz/crashes/<target>/`) through the same target bodies `make fuzz` runs: none may panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../fuzz/targets.rs"]
mod targets;

#[test]
fn every_corpus_input_and_every_crash_found_replays_without_panicking() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut replayed = 0;
    for (name, target) in targets::TARGETS {
        let mut seeds = 0;
        for dir in ["corpus", "crashes"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(name)) else {
                continue;
            };
            let mut files: Vec<_> = entries
                .map(|e| e.unwrap().path())
                .filter(|p| p.is_file())
                .collect();
            files.sort();
            for file in files {
                let data = std::fs::read(&file).unwrap();
                if let Err(panic) = std::panic::catch_unwind(|| target(&data)) {
                    panic!("{} panicked: {panic:?}", file.display());
                }
                seeds += usize::from(dir == "corpus");
                replayed += 1;
            }
        }
        assert!(seeds > 0, "target {name} has a corpus in fuzz/corpus/{name}");
    }
    assert!(replayed >= 20, "{replayed} inputs replayed");
}
