//! The vault on disk: the manifest of the files agentbus owns, atomic writes, and removal
//! of owned files whose rows are gone. A file agentbus did not write is never touched.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// The manifest's file name, at the root of the vault.
pub const MANIFEST: &str = ".agentbus-vault.json";

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::failure(format!("{}: {e}", path.display()))
}

/// The relative paths agentbus owns in `dir` (empty for a new vault).
pub fn owned(dir: &Path) -> Result<BTreeSet<String>> {
    let path = dir.join(MANIFEST);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => return Err(io(&path, e)),
    };
    let doc: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::config(format!("{}: not a vault manifest: {e}", path.display())))?;
    Ok(doc["files"]
        .as_array()
        .map(|files| {
            files
                .iter()
                .filter_map(|f| f.as_str())
                .filter(|f| safe(f))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default())
}

/// Whether a manifest entry stays inside the vault (a hand-edited manifest cannot make
/// agentbus delete `../../etc/passwd`).
fn safe(rel: &str) -> bool {
    let p = Path::new(rel);
    !rel.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_))) && rel != MANIFEST
}

/// Writes the manifest (atomically).
pub fn write_manifest(dir: &Path, files: &BTreeSet<String>) -> Result<()> {
    let doc = serde_json::json!({
        "generated_by": "agentbus vault export",
        "note": "the files agentbus owns in this vault; it rewrites and removes only these",
        "files": files,
    });
    let text = serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n";
    write_atomically(&dir.join(MANIFEST), text.as_bytes())
}

/// Writes `bytes` to `path` through a temporary sibling and a rename, so a reader (or an
/// export killed half-way) sees the old file or the new one, never a part.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(path, e)
    })
}

/// What an export did to the files.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Written {
    /// Files written (new or changed).
    pub written: Vec<String>,
    /// Files already as they should be.
    pub unchanged: usize,
    /// Owned files removed (their rows are gone).
    pub removed: Vec<String>,
}

/// Makes the owned files of `dir` exactly `files`: writes what differs, removes what
/// agentbus owned and no longer produces. The manifest is widened before any write and
/// narrowed after the removals, so an interrupted export leaves every file it wrote owned.
pub fn sync(dir: &Path, files: &BTreeMap<String, String>) -> Result<Written> {
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let before = owned(dir)?;
    let wanted: BTreeSet<String> = files.keys().cloned().collect();
    let union: BTreeSet<String> = before.union(&wanted).cloned().collect();
    if union != before {
        write_manifest(dir, &union)?;
    }
    let mut out = Written::default();
    for (rel, text) in files {
        let path = dir.join(rel);
        match std::fs::read(&path) {
            Ok(existing) if existing == text.as_bytes() => out.unchanged += 1,
            _ => {
                write_atomically(&path, text.as_bytes())?;
                out.written.push(rel.clone());
            }
        }
    }
    for rel in before.difference(&wanted) {
        let path = dir.join(rel);
        match std::fs::remove_file(&path) {
            Ok(()) => out.removed.push(rel.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&path, e)),
        }
    }
    if union != wanted {
        write_manifest(dir, &wanted)?;
    }
    Ok(out)
}

/// The vault-relative path of a file as Obsidian resolves a `[[link]]`: its stem.
pub fn stem(rel: &str) -> String {
    PathBuf::from(rel)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}
