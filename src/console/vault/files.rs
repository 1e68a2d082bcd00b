//! The vault on disk: the manifest of the files agentbus owns, atomic writes, and removal
//! of owned files whose rows are gone. A file agentbus did not write is never touched.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// The manifest's file name, at the root of the vault.
pub const MANIFEST: &str = ".agentbus-vault.json";

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::failure(format!("{}: {e}", path.display()))
}

/// What the manifest knows of an owned file: its SHA-256 and size when agentbus last wrote
/// or checked it, and the key of the rows it was rendered from (unknown while an export
/// that was about to write it has not finished).
pub type Known = Option<(String, u64, Option<String>)>;

/// A file an export wants: its content, or `None` when its input key matches the
/// manifest's and the file is still as written (it was not rendered again).
#[derive(Debug, Clone)]
pub struct Planned {
    /// The content, when rendered.
    pub text: Option<String>,
    /// The key of the rows it comes from (a note without one is always rendered).
    pub input: Option<String>,
}

/// Whether `rel` can be kept without rendering: the manifest recorded `input` for it and
/// the file on disk still has the recorded size.
pub fn keeps(dir: &Path, before: &BTreeMap<String, Known>, rel: &str, input: &str) -> bool {
    match before.get(rel) {
        Some(Some((_, len, Some(recorded)))) if recorded == input => {
            std::fs::metadata(dir.join(rel)).is_ok_and(|m| m.is_file() && m.len() == *len)
        }
        _ => false,
    }
}

/// One file of the manifest, as written to `.agentbus-vault.json`.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Entry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    input: Option<String>,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Manifest {
    #[serde(default)]
    generated_by: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    files: BTreeMap<String, Entry>,
}

/// The files agentbus owns in `dir` (none for a new vault).
pub fn owned(dir: &Path) -> Result<BTreeMap<String, Known>> {
    let path = dir.join(MANIFEST);
    let bytes = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(io(&path, e)),
    };
    let doc: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| Error::config(format!("{}: not a vault manifest: {e}", path.display())))?;
    Ok(doc
        .files
        .into_iter()
        .filter(|(rel, _)| safe(rel))
        .map(|(rel, e)| {
            let known = match (e.sha256, e.bytes) {
                (Some(h), Some(n)) => Some((h, n, e.input)),
                _ => None,
            };
            (rel, known)
        })
        .collect())
}

/// Whether a manifest entry stays inside the vault (a hand-edited manifest cannot make
/// agentbus delete `../../etc/passwd`).
fn safe(rel: &str) -> bool {
    let p = Path::new(rel);
    !rel.is_empty()
        && p.components().all(|c| matches!(c, Component::Normal(_)))
        && rel != MANIFEST
        && rel != super::cache::CACHE
}

/// Writes the manifest (atomically).
pub fn write_manifest(dir: &Path, files: &BTreeMap<String, Known>) -> Result<()> {
    let doc = Manifest {
        generated_by: "agentbus vault export".into(),
        note: "the files agentbus owns in this vault; it rewrites and removes only these".into(),
        files: files
            .iter()
            .map(|(rel, known)| {
                let e = match known {
                    Some((h, n, input)) => Entry {
                        sha256: Some(h.clone()),
                        bytes: Some(*n),
                        input: input.clone(),
                    },
                    None => Entry::default(),
                };
                (rel.clone(), e)
            })
            .collect(),
    };
    let mut bytes = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    bytes.push(b'\n');
    write_atomically(&dir.join(MANIFEST), &bytes)
}

/// The SHA-256 of `bytes`, in hex.
pub fn sha256(bytes: &[u8]) -> String {
    crate::sha::sha256_hex(bytes)
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
/// agentbus owned and no longer produces. A file whose content hash and size match the
/// manifest is not read again. The manifest is widened before any write (new files with
/// no hash yet) and narrowed after the removals, so an interrupted export leaves every file
/// it wrote owned, and the next export checks them again.
pub fn sync(
    dir: &Path,
    before: &BTreeMap<String, Known>,
    files: &BTreeMap<String, Planned>,
) -> Result<Written> {
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let mut widened = before.clone();
    for rel in files.keys() {
        widened.entry(rel.clone()).or_insert(None);
    }
    if widened.len() != before.len() {
        write_manifest(dir, &widened)?;
    }
    let mut out = Written::default();
    let mut after: BTreeMap<String, Known> = BTreeMap::new();
    for (rel, planned) in files {
        let Some(text) = &planned.text else {
            // Kept: same rows, same file.
            out.unchanged += 1;
            after.insert(rel.clone(), before.get(rel).cloned().flatten());
            continue;
        };
        let path = dir.join(rel);
        let hash = sha256(text.as_bytes());
        let len = text.len() as u64;
        let same_as_recorded = before
            .get(rel)
            .cloned()
            .flatten()
            .is_some_and(|(h, n, _)| h == hash && n == len)
            && std::fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() == len);
        let unchanged = same_as_recorded
            || std::fs::read(&path).is_ok_and(|existing| existing == text.as_bytes());
        if unchanged {
            out.unchanged += 1;
        } else {
            write_atomically(&path, text.as_bytes())?;
            out.written.push(rel.clone());
        }
        after.insert(rel.clone(), Some((hash, len, planned.input.clone())));
    }
    for rel in before.keys().filter(|rel| !files.contains_key(*rel)) {
        let path = dir.join(rel);
        match std::fs::remove_file(&path) {
            Ok(()) => out.removed.push(rel.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&path, e)),
        }
    }
    if &after != before {
        write_manifest(dir, &after)?;
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
