//! `migrate --check`: are the migrations since the last release expand-only?
//!
//! During a rolling upgrade the previous release's supervisors and agents run against the
//! new schema until every host has the new binary, so a migration may only *expand*: add
//! tables, columns with defaults, functions, indexes. A *contract* step (drop or rename a
//! column, table, type or function, change a column's type, make it NOT NULL, add a
//! constraint the old binary's writes may break) must wait until no released binary uses
//! what it removes, and then says so in a `-- contract:` comment right above it (which
//! release stopped using it). This is a reading of the SQL text, line by line: a finding
//! names the file, the line and why.

use serde::Serialize;

use super::migrate::Migration;

/// One step that would break the previous binary.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Contract {
    /// `sql/NNNN_name.sql`.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// The statement's line, trimmed.
    pub text: String,
    /// What it does to an older binary.
    pub why: &'static str,
}

/// What each contract step breaks, by the words that make it one.
const RULES: &[(&[&str], &str)] = &[
    (
        &["drop column"],
        "drops a column an older binary may still read or write",
    ),
    (
        &["rename column"],
        "renames a column an older binary still names",
    ),
    (
        &[" rename to "],
        "renames a table, type or function an older binary still names",
    ),
    (
        &["drop table"],
        "drops a table an older binary may still use",
    ),
    (
        &["drop view"],
        "drops a view an older binary may still read",
    ),
    (&["drop type"], "drops a type an older binary may still use"),
    (
        &["drop function"],
        "drops a function an older binary may still call",
    ),
    (
        &["rename value"],
        "renames an enum value an older binary still writes",
    ),
    (
        &["alter column", " type "],
        "changes a column's type under an older binary",
    ),
    (
        &["set not null"],
        "makes a column NOT NULL that an older binary may leave empty",
    ),
    (
        &["add constraint"],
        "adds a constraint an older binary's writes may break",
    ),
];

/// The contract steps of `migrations` newer than `since` not marked `-- contract:`.
pub fn contracts(migrations: &[Migration], since: i32) -> Vec<Contract> {
    let mut out = Vec::new();
    for m in migrations.iter().filter(|m| m.version > since) {
        let mut marked = false;
        for (i, raw) in m.sql.lines().enumerate() {
            let line = raw.trim();
            if let Some(comment) = line.strip_prefix("--") {
                marked |= comment.trim_start().starts_with("contract:");
                continue;
            }
            if line.is_empty() {
                continue;
            }
            let lower = format!(" {} ", line.to_lowercase());
            let hit = RULES
                .iter()
                .find(|(words, _)| words.iter().all(|w| lower.contains(w)));
            if let (Some((_, why)), false) = (hit, marked) {
                out.push(Contract {
                    file: format!("sql/{:04}_{}.sql", m.version, m.name),
                    line: i + 1,
                    text: line.to_string(),
                    why,
                });
            }
            // A marker covers the statement that follows it, up to its semicolon.
            if line.ends_with(';') {
                marked = false;
            }
        }
    }
    out
}

/// The last migration of the previous release, from `sql/RELEASED` (its first line that
/// is a number).
pub fn released(text: &str) -> Option<i32> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(version: i32, sql: &'static str) -> Migration {
        Migration {
            version,
            name: "t",
            sql,
        }
    }

    #[test]
    fn contract_steps_are_found_unless_marked_and_expansions_pass() {
        let list = [
            m(1, "alter table jobs drop column summary;"),
            m(2, "create table x (a int);\nalter table jobs add column y int not null default 0;\ncreate index on jobs (y);"),
            m(3, "alter table jobs\n  rename column subject to title;"),
            m(4, "-- contract: unused since 0.4 (no released binary reads it)\nalter table jobs drop column old_flag;\nalter table jobs drop column other;"),
            m(5, "alter table jobs alter column priority type bigint;\nalter type job_status rename value 'dead' to 'buried';"),
            m(6, "alter table agents alter column role set not null;\nalter table agents add constraint c check (max_concurrency < 100);"),
        ];
        let found = contracts(&list, 0);
        let at: Vec<(String, usize)> = found.iter().map(|c| (c.file.clone(), c.line)).collect();
        assert_eq!(
            at,
            [
                ("sql/0001_t.sql".to_string(), 1),
                ("sql/0003_t.sql".to_string(), 2),
                ("sql/0004_t.sql".to_string(), 3),
                ("sql/0005_t.sql".to_string(), 1),
                ("sql/0005_t.sql".to_string(), 2),
                ("sql/0006_t.sql".to_string(), 1),
                ("sql/0006_t.sql".to_string(), 2),
            ]
        );
        assert!(
            contracts(&list, 6).is_empty(),
            "only migrations after the release"
        );
        assert_eq!(released("# the last release\n18\n"), Some(18));
    }
}
