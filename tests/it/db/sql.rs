//! Every SQL statement in the library is prepared against the migrated schema, so a
//! renamed column or table fails here, not in a user's hands.
//!
//! The rule this enforces (ARCHITECTURE.md, "SQL"): a statement is a string literal at the
//! place that runs it, or a `format!` whose placeholders are `const` fragments of the same
//! module (`{OPPORTUNITY_ROW}`). A statement assembled from other pieces at run time is
//! marked `// SQL: dynamic` on a line above it and is exercised by the tests of its
//! command instead.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::support::source::{relative, rust_files};
use crate::support::TestDb;

/// A string literal found in a source file.
struct Literal {
    file: PathBuf,
    line: usize,
    text: String,
    /// The literal is the template of a `format!`.
    in_format: bool,
    /// A `// SQL: dynamic` comment is on one of the fifteen lines above.
    marked_dynamic: bool,
}

#[test]
fn every_sql_statement_in_the_library_prepares_against_the_schema() {
    let files = rust_files();
    let mut statements = Vec::new();
    let mut dynamic = Vec::new();
    let mut problems = Vec::new();
    for file in &files {
        let source = std::fs::read_to_string(file).expect("read a source file");
        let consts = module_consts(file);
        for lit in literals(file, &source) {
            if !looks_like_sql(&lit.text) {
                continue;
            }
            let place = format!("{}:{}", relative(&lit.file), lit.line);
            if !lit.in_format {
                statements.push((place, lit.text));
                continue;
            }
            match substitute(&lit.text, &consts) {
                Some(sql) => statements.push((place, sql)),
                None if lit.marked_dynamic => dynamic.push(place),
                None => problems.push(format!(
                    "{place}: a format! statement with placeholders that are not const \
                     fragments of its module; make it a literal, or mark it `// SQL: dynamic` \
                     and cover it in its command's tests"
                )),
            }
        }
    }
    assert!(
        statements.len() > 150,
        "found only {} statements: the scanner is broken",
        statements.len()
    );

    let db = TestDb::new();
    let mut client = db.client();
    for (place, sql) in &statements {
        // Prepared inside a transaction that is rolled back: nothing runs, nothing stays.
        let mut tx = client.transaction().expect("begin");
        if let Err(e) = tx.prepare(sql) {
            let why = e
                .as_db_error()
                .map_or_else(|| e.to_string(), |d| d.message().to_string());
            problems.push(format!("{place}: {why}\n    {}", first_line(sql)));
        }
        let _ = tx.rollback();
    }
    assert!(
        problems.is_empty(),
        "{} of {} statements do not prepare:\n{}",
        problems.len(),
        statements.len(),
        problems.join("\n")
    );
    // The dynamic ones are few and known; a new one is a decision worth a look (the fourth:
    // the backup's per-table count and sample, over the catalog's tables).
    assert!(
        dynamic.len() <= 4,
        "more dynamic statements than expected: {dynamic:?}"
    );
}

#[test]
fn the_status_sets_match_the_rust_enum_and_the_dedupe_index() {
    let db = TestDb::new();
    let mut c = db.client();
    let in_flight: Vec<String> = c
        .query(
            "select s::text from unnest(enum_range(null::job_status)) s where job_in_flight(s) order by 1",
            &[],
        )
        .expect("in flight")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(in_flight, ["leased", "running"]);
    let active: Vec<String> = c
        .query(
            "select s::text from unnest(enum_range(null::job_status)) s where job_active(s) order by 1",
            &[],
        )
        .expect("active")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let terminal: Vec<&str> = agentbus::ledger::jobs::JobStatus::ALL
        .iter()
        .filter(|s| !active.iter().any(|a| a == s.as_str()))
        .map(|s| s.as_str())
        .collect();
    assert_eq!(terminal, ["succeeded", "dead", "cancelled"]);
    let index: String = c
        .query_one(
            "select pg_get_expr(indpred, indrelid) from pg_index
              where indexrelid = 'jobs_active_dedupe_idx'::regclass",
            &[],
        )
        .expect("index predicate")
        .get(0);
    for s in &active {
        assert!(
            index.contains(&format!("'{s}'")),
            "{s} missing from {index}"
        );
    }
}

fn first_line(sql: &str) -> String {
    sql.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(120)
        .collect()
}

/// Whether a literal is a statement: it starts like one and reads like one.
fn looks_like_sql(text: &str) -> bool {
    let t = text.trim_start().to_ascii_lowercase();
    let words: Vec<&str> = t.split_whitespace().collect();
    match words.first().copied() {
        Some("select") => t.contains(" from ") || t.contains("\nfrom ") || words.len() <= 12,
        Some("insert") => words.get(1) == Some(&"into"),
        Some("delete") => words.get(1) == Some(&"from"),
        Some("update") => words.iter().take(5).any(|w| *w == "set"),
        Some("with") => t.contains(" as (") || t.contains(" as\n"),
        _ => false,
    }
}

/// `const NAME: &str = "...";` of the file's module (the file and, for a file inside a
/// module folder, that folder's mod.rs).
fn module_consts(file: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut sources = vec![file.to_path_buf()];
    if let Some(parent) = file.parent() {
        let module = parent.join("mod.rs");
        if module != file && module.exists() {
            sources.push(module);
        }
    }
    for path in sources {
        let text = std::fs::read_to_string(&path).expect("read a source file");
        let lits = literals(&path, &text);
        for (i, line) in text.lines().enumerate() {
            let l = line.trim_start();
            let l = l.strip_prefix("pub(crate) ").unwrap_or(l);
            let l = l.strip_prefix("pub(super) ").unwrap_or(l);
            let l = l.strip_prefix("pub ").unwrap_or(l);
            let Some(rest) = l.strip_prefix("const ") else {
                continue;
            };
            let Some((name, ty)) = rest.split_once(':') else {
                continue;
            };
            if !ty.trim_start().starts_with("&str") {
                continue;
            }
            // The literal that starts on this line or the next.
            if let Some(lit) = lits.iter().find(|l| l.line == i + 1 || l.line == i + 2) {
                out.insert(name.trim().to_string(), lit.text.clone());
            }
        }
    }
    out
}

/// The format template with `{NAME}` replaced by module consts, `{{`/`}}` unescaped;
/// `None` when another placeholder remains.
fn substitute(template: &str, consts: &BTreeMap<String, String>) -> Option<String> {
    let mut out = String::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let mut name = String::new();
                for n in chars.by_ref() {
                    if n == '}' {
                        break;
                    }
                    name.push(n);
                }
                out.push_str(consts.get(&name)?);
            }
            c => out.push(c),
        }
    }
    Some(out)
}

/// Every string literal of a Rust source file (normal, raw, byte), with its line, whether
/// it is the first argument of `format!`, and whether it is marked dynamic.
fn literals(file: &Path, src: &str) -> Vec<Literal> {
    let b: Vec<char> = src.chars().collect();
    let line_at = |i: usize| b[..i].iter().filter(|c| **c == '\n').count() + 1;
    let lines: Vec<&str> = src.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == '/' && b.get(i + 1) == Some(&'/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && b.get(i + 1) == Some(&'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == '*' && b[i + 1] == '/') {
                i += 1;
            }
            i += 2;
            continue;
        }
        if c == '\'' {
            // A char literal ('"', '\''), or a lifetime ('a).
            if b.get(i + 1) == Some(&'\\') {
                i += 2;
                while i < b.len() && b[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if b.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
            continue;
        }
        let ident_before = i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_');
        let raw = !ident_before && (c == 'r' || (c == 'b' && b.get(i + 1) == Some(&'r'))) && {
            let mut j = i + if c == 'b' { 2 } else { 1 };
            while b.get(j) == Some(&'#') {
                j += 1;
            }
            b.get(j) == Some(&'"')
        };
        if raw || c == '"' || (c == 'b' && !ident_before && b.get(i + 1) == Some(&'"')) {
            let start = i;
            let mut text = String::new();
            if raw {
                let mut j = i + if c == 'b' { 2 } else { 1 };
                let mut hashes = 0;
                while b[j] == '#' {
                    hashes += 1;
                    j += 1;
                }
                j += 1;
                loop {
                    if b[j] == '"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&'#')) {
                        i = j + 1 + hashes;
                        break;
                    }
                    text.push(b[j]);
                    j += 1;
                }
            } else {
                let mut j = if c == 'b' { i + 2 } else { i + 1 };
                while b[j] != '"' {
                    if b[j] == '\\' {
                        j += 1;
                        match b[j] {
                            'n' => text.push('\n'),
                            't' => text.push('\t'),
                            'r' => text.push('\r'),
                            '0' => text.push('\0'),
                            '\n' => {
                                while b[j + 1].is_whitespace() {
                                    j += 1;
                                }
                            }
                            'u' => {
                                while b[j] != '}' {
                                    j += 1;
                                }
                                text.push('?');
                            }
                            other => text.push(other),
                        }
                    } else {
                        text.push(b[j]);
                    }
                    j += 1;
                }
                i = j + 1;
            }
            let before: String = b[..start].iter().collect();
            let before = before.trim_end();
            let line = line_at(start);
            let marked_dynamic = lines[line.saturating_sub(16)..line.saturating_sub(1)]
                .iter()
                .any(|l| l.contains("// SQL: dynamic"));
            out.push(Literal {
                file: file.to_path_buf(),
                line,
                text,
                in_format: before.ends_with("format!("),
                marked_dynamic,
            });
            continue;
        }
        i += 1;
    }
    out
}
