//! Integration tests against a real PostgreSQL (see support/mod.rs for the harness).

mod agents;
mod bad_input;
mod commands;
mod concurrency;
mod console;
mod controls;
mod demo;
mod dependencies;
mod docs;
mod fencing;
mod findings;
mod firing;
mod fleet;
mod fleets;
mod memory;
mod migrations;
mod proactive;
mod sql;
mod state_machine;
mod supervisor;
mod support;

/// Every file in tests/it is declared above, so none is silently skipped.
#[test]
fn no_forgotten_test_files() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it");
    let main = std::fs::read_to_string(dir.join("main.rs")).expect("read main.rs");
    for entry in std::fs::read_dir(&dir).expect("read tests/it") {
        let path = entry.expect("dir entry").path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if stem == "main" || path.extension().is_some_and(|e| e != "rs") {
            continue;
        }
        assert!(
            main.contains(&format!("mod {stem};")),
            "tests/it/{stem} is not declared in main.rs"
        );
    }
}
