//! The crate's own source files, for the tests that read them (the SQL statements, the
//! architecture).

use std::path::{Path, PathBuf};

/// Every `.rs` file under `src/`, in a stable order.
pub fn rust_files() -> Vec<PathBuf> {
    rust_files_under(&["src"])
}

/// Every `.rs` file of the crate: its source, tests and examples.
pub fn all_rust_files() -> Vec<PathBuf> {
    rust_files_under(&["src", "tests", "examples"])
}

fn rust_files_under(folders: &[&str]) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("read a source folder")
            .map(|e| e.expect("a folder entry").path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for folder in folders {
        walk(&root.join(folder), &mut out);
    }
    out
}

/// `path` relative to the crate root, for messages.
pub fn relative(path: &Path) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}
