//! Integration tests against a real PostgreSQL (see support/mod.rs for the harness).

mod architecture;
mod cli;
mod console;
mod db;
mod fleet;
mod lanes;
mod ledger;
mod supervisor;
mod support;

/// Every file under tests/it is declared by main.rs or its folder's mod.rs, so none is
/// silently skipped.
#[test]
fn no_forgotten_test_files() {
    fn check(dir: &std::path::Path) {
        let parent = if dir.ends_with("tests/it") {
            "main.rs"
        } else {
            "mod.rs"
        };
        let declared = std::fs::read_to_string(dir.join(parent)).expect("read the module file");
        for entry in std::fs::read_dir(dir).expect("read a test folder") {
            let path = entry.expect("dir entry").path();
            let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            if path.is_dir() {
                assert!(
                    declared.contains(&format!("mod {stem};")),
                    "{}/{stem} is not declared in {parent}",
                    dir.display()
                );
                check(&path);
                continue;
            }
            if stem == "main" || stem == "mod" || path.extension().is_some_and(|e| e != "rs") {
                continue;
            }
            assert!(
                declared.contains(&format!("mod {stem};")),
                "{} is not declared in {parent}",
                path.display()
            );
        }
    }
    check(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it"));
}
