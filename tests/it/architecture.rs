//! The layout ARCHITECTURE.md describes, checked: dependencies between areas point one way,
//! no two modules import each other (directly or around a loop), and no source file is
//! over 600 lines (tests and examples included).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::support::source::{all_rust_files, relative, rust_files as source_files};

/// Each area and its rank: an area may use only areas of a lower rank (and itself).
/// `fleet` and `lanes` share a rank and may not use each other.
const RANKS: &[(&str, u8)] = &[
    ("error", 0),
    ("redact", 0),
    ("sha", 0),
    ("db", 1),
    ("ledger", 2),
    ("fleet", 3),
    ("lanes", 3),
    ("console", 4),
    ("supervisor", 5),
    ("cli", 6),
];

#[test]
fn areas_depend_only_on_the_areas_below_them() {
    let mut problems = Vec::new();
    for file in source_files() {
        let Some(area) = area_of(&file) else { continue };
        let rank = rank(&area);
        for (line, target) in crate_references(&file) {
            let Some(target_rank) = RANKS.iter().find(|(a, _)| *a == target).map(|(_, r)| *r)
            else {
                continue;
            };
            if target != area && target_rank >= rank {
                problems.push(format!(
                    "{}:{line}: {area} uses crate::{target}",
                    relative(&file)
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "dependencies must point down (cli > supervisor > console > fleet, lanes > ledger > db > error):\n{}",
        problems.join("\n")
    );
}

#[test]
fn no_two_modules_import_each_other() {
    let files = source_files();
    let modules: BTreeMap<Vec<String>, PathBuf> =
        files.iter().map(|f| (module_path(f), f.clone())).collect();
    let known: BTreeSet<Vec<String>> = modules.keys().cloned().collect();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (module, file) in &modules {
        for target in used_modules(file, module, &known) {
            // A module and its own parent or children share a file tree (a parent re-exports
            // its children, children use the parent's types): not a cycle between peers.
            if target.starts_with(module) || module.starts_with(&target) {
                continue;
            }
            edges.entry(module.clone()).or_default().insert(target);
        }
    }
    let mut cycles = Vec::new();
    for start in edges.keys() {
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((node, path)) = stack.pop() {
            for next in edges.get(&node).into_iter().flatten() {
                if next == start {
                    let names: Vec<String> = path.iter().map(|m| m.join("::")).collect();
                    cycles.push(format!("{} -> {}", names.join(" -> "), start.join("::")));
                } else if seen.insert(next.clone()) {
                    let mut p = path.clone();
                    p.push(next.clone());
                    stack.push((next.clone(), p));
                }
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn no_source_file_is_over_600_lines() {
    let long: Vec<String> = all_rust_files()
        .into_iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(&f).ok()?.lines().count();
            (n > 600).then(|| format!("{}: {n} lines", relative(&f)))
        })
        .collect();
    assert!(long.is_empty(), "split these files:\n{}", long.join("\n"));
}

fn rank(area: &str) -> u8 {
    RANKS
        .iter()
        .find(|(a, _)| *a == area)
        .map_or(u8::MAX, |(_, r)| *r)
}

/// `src/ledger/jobs/close.rs` -> ["ledger", "jobs", "close"]; `mod.rs` names its folder;
/// `lib.rs` and the binaries are the crate root ([]).
fn module_path(file: &Path) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let rel = file.strip_prefix(&src).unwrap_or(file);
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.first().is_some_and(|p| p == "bin") || parts == ["lib"] {
        return Vec::new();
    }
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The area of a file (`ledger` for src/ledger/jobs/close.rs, `error` for src/error.rs).
fn area_of(file: &Path) -> Option<String> {
    module_path(file).first().cloned()
}

/// The code of a file without comments (doc comments name other modules freely).
fn code_lines(file: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(file).expect("read a source file");
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.split("//").next().unwrap_or("").to_string()))
        .collect()
}

/// Every `crate::AREA` a file's code names, with its line.
fn crate_references(file: &Path) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in code_lines(file) {
        let mut rest = line.as_str();
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            out.push((n, name));
            rest = after;
        }
    }
    out
}

/// The modules of the crate a file's `use` declarations and `crate::` paths name.
fn used_modules(
    file: &Path,
    module: &[String],
    known: &BTreeSet<Vec<String>>,
) -> BTreeSet<Vec<String>> {
    let text: String = code_lines(file)
        .into_iter()
        .map(|(_, l)| l)
        .collect::<Vec<_>>()
        .join("\n");
    let mut paths = Vec::new();
    // `use` declarations, braces expanded one level.
    for decl in text.split(';') {
        let decl = decl.trim();
        let Some(body) = decl
            .strip_prefix("use ")
            .or_else(|| decl.strip_prefix("pub use "))
            .or_else(|| decl.strip_prefix("pub(crate) use "))
            .or_else(|| decl.strip_prefix("pub(super) use "))
        else {
            continue;
        };
        let body: String = body.split_whitespace().collect();
        match body.split_once("::{") {
            Some((prefix, group)) => {
                for item in group.trim_end_matches('}').split(',') {
                    if !item.is_empty() {
                        paths.push(format!("{prefix}::{item}"));
                    }
                }
            }
            None => paths.push(body),
        }
    }
    // `crate::a::b` written in code.
    for (_, line) in code_lines(file) {
        let mut rest = line.as_str();
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i..];
            let path: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            paths.push(path);
            rest = &rest[i + "crate::".len()..];
        }
    }
    let mut out = BTreeSet::new();
    for path in paths {
        let mut segments: Vec<String> = Vec::new();
        let mut parts = path.split("::").filter(|s| !s.is_empty()).peekable();
        match parts.peek().copied() {
            Some("crate") => {
                parts.next();
            }
            Some("super") => {
                segments = module.to_vec();
                while parts.peek() == Some(&"super") {
                    parts.next();
                    segments.pop();
                }
            }
            Some("self") => {
                parts.next();
                segments = module.to_vec();
            }
            _ => continue,
        }
        segments.extend(parts.map(str::to_string));
        // The longest prefix that is a module of the crate.
        while !segments.is_empty() && !known.contains(&segments) {
            segments.pop();
        }
        if !segments.is_empty() && segments != module {
            out.insert(segments);
        }
    }
    out
}
