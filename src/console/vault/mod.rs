//! The Obsidian vault: a one-way Markdown projection of the ledger people read, and an
//! inbox they write to on purpose. PostgreSQL stays the source of truth: exported notes
//! are rewritten on every export and never read back; only notes dropped in `00 Inbox/`
//! come in, through the same calls and budgets as an agent's.
//!
//! ```text
//! 00 Inbox/            notes to file (README.md explains); Processed/ after filing
//! 01 Daily/            one note per UTC day: work, standing orders, dead letters, approvals
//! 02 Ideas/            2026-04-15-idea-<slug>-<id8>.md
//! 03 Opportunities/    with reviews, the job it became and its outcome
//! 04 Memories/<Kind>/  active memories by kind; Superseded/ linked from their successors
//! 05 Reports/          weekly bets and thinking, per ISO week
//! 06 Agents/           one page per agent
//! 07 Snapshots/        health
//! 08 Jobs/             the jobs other notes link to
//! ```

mod cache;
mod daily;
pub mod files;
pub mod ingest;
mod notes;
mod pages;
mod text;

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::Result;
use crate::ledger::validate::check_name;

/// What one export did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The vault folder.
    pub dir: String,
    /// Namespace exported.
    pub namespace: String,
    /// Inbox notes filed (or not) before the export.
    pub ingested: Vec<ingest::Ingested>,
    /// Files written (new or changed).
    pub written: usize,
    /// Files already as they should be.
    pub unchanged: usize,
    /// Owned files removed because their rows are gone.
    pub removed: usize,
    /// The files written and removed, by name.
    pub changes: files::Written,
}

/// Files the inbox, then makes the vault in `dir` match the ledger of `namespace`
/// (`since`: daily notes and reports from then on). The reads are one repeatable-read
/// transaction in UTC, so the notes are one consistent, reproducible picture.
pub fn export(
    client: &mut postgres::Client,
    dir: &Path,
    namespace: &str,
    since: Option<DateTime<Utc>>,
) -> Result<Report> {
    check_name("`namespace`", namespace)?;
    let ingested = ingest::ingest(client, dir, namespace)?;
    let mut tx = client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?;
    tx.batch_execute("set local time zone 'UTC'")?;
    // The notes are rendered between the reads: on a big ledger, longer than a command's
    // session lets a transaction fall silent.
    crate::db::outlast_idle_limit(&mut tx)?;
    let before = files::owned(dir)?;
    let (notes, cache) = notes::render(&mut tx, namespace, since, dir, &before)?;
    tx.commit()?;
    let changes = files::sync(dir, &before, &notes.files)?;
    if let Some(cache) = cache {
        cache::save(dir, &cache)?;
    }
    Ok(Report {
        dir: dir.display().to_string(),
        namespace: namespace.to_string(),
        ingested,
        written: changes.written.len(),
        unchanged: changes.unchanged,
        removed: changes.removed.len(),
        changes,
    })
}

/// Exports, then again whenever the ledger changed (checked every `debounce` with the
/// export's own per-table fingerprints; a burst of changes makes one export once it
/// settles), and whenever notes arrive in the inbox.
/// Calls `on_export` with each report; runs until it returns false.
pub fn watch(
    client: &mut postgres::Client,
    dir: &Path,
    namespace: &str,
    debounce: Duration,
    mut on_export: impl FnMut(&Report) -> bool,
) -> Result<()> {
    let inbox_notes = |dir: &Path| {
        std::fs::read_dir(dir.join(ingest::INBOX))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                    .count()
            })
            .unwrap_or(0)
    };
    loop {
        let report = export(client, dir, namespace, None)?;
        if !on_export(&report) {
            return Ok(());
        }
        let mut seen = (cache::fingerprints(client, namespace)?, inbox_notes(dir));
        // Wait for a change, then until it settles.
        loop {
            std::thread::sleep(debounce);
            let now = (cache::fingerprints(client, namespace)?, inbox_notes(dir));
            if now == seen {
                continue;
            }
            seen = now;
            loop {
                std::thread::sleep(debounce);
                let again = (cache::fingerprints(client, namespace)?, inbox_notes(dir));
                if again == seen {
                    break;
                }
                seen = again;
            }
            break;
        }
    }
}
