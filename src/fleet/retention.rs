//! `[retention]` in fleet.toml: how long finished work stays in the live tables, run as a
//! standing order of one agent of the fleet (`agentbus prune`, in bounded batches).
//!
//! The section becomes one more standing order, `retention-prune`, of the agent it names,
//! so it is fired, audited and reported like every other duty (a missed prune is a missed
//! occurrence; a failed one alerts after one failure).

use toml::Table;

use super::spec::{CatchUp, FiredBy, OrderSpec};
use super::walk::Walker;
use crate::ledger::time::parse_duration;

/// The keys `[retention]` may hold.
pub(super) const RETENTION_KEYS: &[&str] = &[
    "agent",
    "archive_after",
    "delete_after",
    "archive",
    "cron",
    "batch",
];

/// The name of the standing order `[retention]` becomes.
pub const ORDER_NAME: &str = "retention-prune";

/// A read `[retention]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionSpec {
    /// The agent whose standing order runs the prune.
    pub agent: String,
    /// Finished work older than this leaves the live tables (as written, e.g. "30d").
    pub archive_after: String,
    /// Keep it in the archive tables (default true).
    pub archive: bool,
    /// Archived rows older than this are deleted (e.g. "365d").
    pub delete_after: Option<String>,
    /// When the prune runs.
    pub cron: String,
    /// Rows per batch.
    pub batch: i32,
    /// Where it was declared (file:line).
    pub source: String,
}

impl RetentionSpec {
    /// The `agentbus prune` command line the order's agent runs.
    pub fn command(&self) -> String {
        let mut cmd = format!("agentbus prune --older-than {}", self.archive_after);
        if self.archive {
            cmd += " --archive";
            if let Some(d) = &self.delete_after {
                cmd += &format!(" --drop-archived-older-than {d}");
            }
        }
        cmd += &format!(" --batch {} --format json", self.batch);
        cmd
    }

    /// The standing order it becomes.
    pub fn order(&self, timezone: &str) -> OrderSpec {
        OrderSpec {
            name: ORDER_NAME.to_string(),
            cron: self.cron.clone(),
            timezone: timezone.to_string(),
            grace_seconds: 3600,
            max_runtime_seconds: None,
            message: format!(
                "Retention: run `{}`. It moves finished work out of the live tables in short \
                 batches and may run while the fleet works. Complete with moved.jobs, \
                 unlinked_events and dropped_jobs from its report; fail-job with the error if \
                 it exits non-zero.",
                self.command()
            ),
            session: None,
            catch_up: CatchUp::RunOnce,
            enabled: true,
            fired_by: FiredBy::Supervisor,
            alert_after_no_work: None,
            alert_after_failures: Some(1),
            phase: None,
            source: self.source.clone(),
        }
    }
}

/// Reads `[retention]`; problems are reported through the walker.
pub(super) fn read(w: &mut Walker<'_>, t: &Table) -> Option<RetentionSpec> {
    w.unknown_keys(t, "retention", RETENTION_KEYS);
    let source = format!("{}:{}", w.file.display(), w.line_of("retention"));
    let age = |w: &mut Walker<'_>, key: &str| -> Option<(String, i64)> {
        let text = w.string(t, "retention", key)?;
        match parse_duration(&text) {
            Some(d) if d.num_seconds() >= 86_400 => Some((text, d.num_seconds())),
            _ => {
                w.error_at(
                    &format!("retention.{key}"),
                    format!("{key} {text:?} is not an age of a day or more, such as 30d or 12w"),
                );
                None
            }
        }
    };
    let archive_after = age(w, "archive_after");
    let delete_after = if t.contains_key("delete_after") {
        age(w, "delete_after")
    } else {
        None
    };
    let archive = w.boolean(t, "retention", "archive").unwrap_or(true);
    if let (Some((_, live)), Some((_, gone))) = (&archive_after, &delete_after) {
        if gone <= live {
            w.error_at(
                "retention.delete_after",
                "delete_after must be longer than archive_after",
            );
        }
    }
    if delete_after.is_some() && !archive {
        w.error_at(
            "retention.delete_after",
            "delete_after applies to the archive: it needs archive = true",
        );
    }
    let cron = w
        .string(t, "retention", "cron")
        .unwrap_or_else(|| "15 3 * * *".to_string());
    if let Err(e) = crate::ledger::schedule::parse_cron(&cron) {
        w.error_at("retention.cron", e);
    }
    let batch = w.positive(t, "retention", "batch").unwrap_or(1000);
    if batch > crate::ledger::archive::MAX_BATCH {
        w.error_at(
            "retention.batch",
            format!(
                "batch must be at most {}",
                crate::ledger::archive::MAX_BATCH
            ),
        );
    }
    let agent = w.string(t, "retention", "agent");
    if agent.is_none() {
        w.error_at(
            "retention",
            "[retention] needs agent = \"...\" (whose standing order runs the prune)",
        );
    }
    Some(RetentionSpec {
        agent: agent?,
        archive_after: archive_after?.0,
        archive,
        delete_after: delete_after.map(|d| d.0),
        cron,
        batch,
        source,
    })
}
