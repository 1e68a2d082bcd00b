//! Rendering: JSON documents for agents, comfy-table tables for operators.

use chrono::{DateTime, Utc};
use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::jobs::{Job, JobDetail};

/// How read commands print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table for people (default on a terminal).
    Table,
    /// JSON for programs (default when stdout is not a terminal).
    Json,
}

/// Pretty JSON of any serialisable value.
pub fn json<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string_pretty(value)
        .map_err(|e| Error::failure(format!("cannot render JSON: {e}")))
}

/// A table with `header` and `rows`.
pub fn table<I: IntoIterator<Item = Vec<String>>>(header: &[&str], rows: I) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.iter().copied());
    for row in rows {
        t.add_row(row);
    }
    t.to_string()
}

/// A time as `2026-04-15 18:00:00Z`.
pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// An optional time, or `-`.
pub fn time_opt(t: Option<DateTime<Utc>>) -> String {
    t.map(time).unwrap_or_else(|| "-".into())
}

fn opt(s: Option<&str>) -> String {
    s.unwrap_or("-").to_string()
}

/// The `list-jobs` table.
pub fn jobs_table(jobs: &[Job]) -> String {
    if jobs.is_empty() {
        return "no jobs match\n".into();
    }
    table(
        &[
            "id", "status", "agent", "type", "subject", "prio", "attempts", "created", "note",
        ],
        jobs.iter().map(|j| {
            vec![
                j.id.to_string(),
                j.status.to_string(),
                j.target_agent.clone(),
                j.job_type.clone(),
                j.subject.clone(),
                j.priority.to_string(),
                format!("{}/{}", j.attempt_count, j.max_attempts),
                time(j.created_at),
                j.blocked_reason
                    .as_deref()
                    .or(j.last_error.as_deref())
                    .or(j.summary.as_deref())
                    .unwrap_or("")
                    .to_string(),
            ]
        }),
    )
}

/// The `show-job` tables: the job's fields, then its links, attempts and history.
pub fn job_detail_table(d: &JobDetail) -> String {
    let j = &d.job;
    let mut out = table(
        &["field", "value"],
        [
            ("id", j.id.to_string()),
            ("namespace", j.namespace.clone()),
            ("status", j.status.to_string()),
            ("target_agent", j.target_agent.clone()),
            ("source_agent", opt(j.source_agent.as_deref())),
            ("job_type", j.job_type.clone()),
            ("subject", j.subject.clone()),
            ("priority", j.priority.to_string()),
            (
                "attempts",
                format!("{} of {}", j.attempt_count, j.max_attempts),
            ),
            ("run_after", time(j.run_after)),
            ("lease_owner", opt(j.lease_owner.as_deref())),
            ("leased_until", time_opt(j.leased_until)),
            (
                "parent_job_id",
                opt(j.parent_job_id.map(|u| u.to_string()).as_deref()),
            ),
            ("flow_key", opt(j.flow_key.as_deref())),
            ("correlation_key", opt(j.correlation_key.as_deref())),
            ("dedupe_key", opt(j.dedupe_key.as_deref())),
            ("blocked_reason", opt(j.blocked_reason.as_deref())),
            ("last_error", opt(j.last_error.as_deref())),
            ("summary", opt(j.summary.as_deref())),
            ("payload", j.payload.to_string()),
            ("result", j.result.to_string()),
            ("created_at", time(j.created_at)),
            ("completed_at", time_opt(j.completed_at)),
        ]
        .into_iter()
        .map(|(k, v)| vec![k.to_string(), v]),
    );
    out.push('\n');
    let links = d
        .depends_on
        .iter()
        .map(|l| ("depends on", l))
        .chain(d.dependents.iter().map(|l| ("needed by", l)));
    let link_rows: Vec<Vec<String>> = links
        .map(|(rel, l)| {
            vec![
                rel.to_string(),
                l.id.to_string(),
                l.status.to_string(),
                l.target_agent.clone(),
                l.subject.clone(),
            ]
        })
        .collect();
    if !link_rows.is_empty() {
        out.push_str("\ndependencies\n");
        out.push_str(&table(
            &["", "job", "status", "agent", "subject"],
            link_rows,
        ));
        out.push('\n');
    }
    if !d.attempts.is_empty() {
        out.push_str("\nattempts\n");
        out.push_str(&table(
            &["#", "status", "by", "started", "finished", "outcome"],
            d.attempts.iter().map(|a| {
                let stale = a.stale_calls.as_array().map_or(0, Vec::len);
                let mut outcome = a
                    .error
                    .as_deref()
                    .or(a.summary.as_deref())
                    .unwrap_or("")
                    .to_string();
                if stale > 0 {
                    outcome.push_str(&format!(" [{stale} stale call(s) refused]"));
                }
                vec![
                    a.attempt_no.to_string(),
                    a.status.as_str().to_string(),
                    opt(a.dispatcher_id.as_deref()),
                    time(a.started_at),
                    time_opt(a.finished_at),
                    outcome,
                ]
            }),
        ));
        out.push('\n');
    }
    out.push_str("\nhistory\n");
    out.push_str(&table(
        &["at", "from", "to", "attempt", "actor", "reason"],
        d.history.iter().map(|h| {
            vec![
                time(h.created_at),
                h.from_status.map_or("-".into(), |s| s.to_string()),
                h.to_status.to_string(),
                h.attempt_no.to_string(),
                h.actor.clone(),
                opt(h.reason.as_deref()),
            ]
        }),
    ));
    out
}
