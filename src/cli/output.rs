//! Rendering: JSON documents for agents, comfy-table tables for operators.

use chrono::{DateTime, Utc};
use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::ledger::jobs::{Job, JobDetail};

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

/// The `list-jobs` table: ids shortened unless `full_ids`, long text clipped, at most
/// 100 columns (type, priority and times are in `--format json`).
pub fn jobs_table(jobs: &[Job], full_ids: bool) -> String {
    if jobs.is_empty() {
        return "no jobs match\n".into();
    }
    fitted_table(
        &["id", "status", "agent", "subject", "tries", "note"],
        jobs.iter().map(|j| {
            vec![
                id(j.id, full_ids),
                j.status.to_string(),
                clip(&j.target_agent, 12),
                clip(&j.subject, 22),
                format!("{}/{}", j.attempt_count, j.max_attempts),
                clip(
                    j.blocked_reason
                        .as_deref()
                        .or(j.last_error.as_deref())
                        .or(j.summary.as_deref())
                        .unwrap_or(""),
                    16,
                ),
            ]
        }),
        full_ids,
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

/// The widest a table gets: fits a 100-column terminal.
pub const TABLE_WIDTH: u16 = 100;

/// A table of at most [`TABLE_WIDTH`] columns; cells should be clipped beforehand (see
/// [`clip`]) so nothing needs wrapping. `wide` (whole ids asked for) lifts the limit.
pub fn fitted_table<I: IntoIterator<Item = Vec<String>>>(
    header: &[&str],
    rows: I,
    wide: bool,
) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_header(header.iter().copied());
    if !wide {
        t.set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(TABLE_WIDTH);
    }
    for row in rows {
        t.add_row(row);
    }
    t.to_string()
}

/// `s` on one line, at most `max` characters, ending in an ellipsis when cut.
pub fn clip(s: &str, max: usize) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        let mut cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// A job id: its first 8 characters unless `full`.
pub fn id(id: uuid::Uuid, full: bool) -> String {
    let s = id.to_string();
    if full {
        s
    } else {
        s[..8].to_string()
    }
}

/// Seconds as `45s`, `12m`, `3h05m`, `2d04h`.
pub fn age(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as i64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// An optional age, or `-`.
pub fn age_opt(seconds: Option<f64>) -> String {
    seconds.map(age).unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_and_ages() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("a b\nc", 10), "a b c");
        assert_eq!(clip("abcdefghijk", 5), "abcd…");
        assert_eq!(clip("ééééééé", 3).chars().count(), 3);
        assert_eq!(age(5.4), "5s");
        assert_eq!(age(125.0), "2m05s");
        assert_eq!(age(3.0 * 3600.0 + 300.0), "3h05m");
        assert_eq!(age(2.0 * 86_400.0 + 4.0 * 3600.0), "2d04h");
    }
}

/// `--get PATH`: the parts of a JSON document at `path`, raw (strings unquoted, other
/// values as JSON), one per line. `[]` maps over an array; a number indexes one.
pub fn get_path(json_text: &str, path: &str) -> Result<String> {
    let doc: serde_json::Value = serde_json::from_str(json_text)
        .map_err(|_| Error::usage("--get: this command's output is not a JSON document"))?;
    let mut values = vec![doc];
    for step in path.split('.').filter(|s| !s.is_empty()) {
        let mut next = Vec::new();
        for v in values {
            match (step, v) {
                ("[]", serde_json::Value::Array(items)) => next.extend(items),
                ("[]", other) => {
                    return Err(Error::usage(format!(
                        "--get {path}: [] needs an array, found {}",
                        kind(&other)
                    )))
                }
                (key, serde_json::Value::Array(items)) => {
                    let i: usize = key.parse().map_err(|_| {
                        Error::usage(format!(
                            "--get {path}: {key:?} on an array (use [] or an index)"
                        ))
                    })?;
                    next.push(items.get(i).cloned().unwrap_or(serde_json::Value::Null));
                }
                (key, serde_json::Value::Object(mut map)) => {
                    next.push(map.remove(key).unwrap_or(serde_json::Value::Null));
                }
                (key, other) => {
                    return Err(Error::usage(format!(
                        "--get {path}: {key:?} on {}",
                        kind(&other)
                    )))
                }
            }
        }
        values = next;
    }
    Ok(values
        .iter()
        .map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod get_tests {
    use super::get_path;

    #[test]
    fn paths() {
        let doc =
            r#"{"id":"a","payload":{"email":"x@y","n":3},"list":[{"id":1},{"id":2}],"none":null}"#;
        assert_eq!(get_path(doc, "id").unwrap(), "a");
        assert_eq!(get_path(doc, "payload.email").unwrap(), "x@y");
        assert_eq!(get_path(doc, "payload.n").unwrap(), "3");
        assert_eq!(get_path(doc, "payload.missing").unwrap(), "");
        assert_eq!(get_path(doc, "list.[].id").unwrap(), "1\n2");
        assert_eq!(get_path(doc, "list.1.id").unwrap(), "2");
        assert_eq!(
            get_path(doc, "payload").unwrap(),
            r#"{"email":"x@y","n":3}"#
        );
        assert!(get_path(doc, "id.x").is_err());
        assert!(get_path(doc, "payload.[]").is_err());
        assert_eq!(
            get_path(r#"[{"id":"a"},{"id":"b"}]"#, "[].id").unwrap(),
            "a\nb"
        );
    }
}

/// A read command's list: JSON, or `empty` when there is nothing, or the table.
pub fn listing<T: Serialize>(
    format: Format,
    items: &[T],
    empty: &str,
    table: impl FnOnce(&[T]) -> String,
) -> Result<String> {
    match format {
        Format::Json => json(&items),
        Format::Table if items.is_empty() => Ok(format!("{empty}\n")),
        Format::Table => Ok(table(items)),
    }
}

/// Text made safe for a terminal: every control character but newline and tab is shown
/// escaped (`\x1b`, `\r`, `\u{9b}`), so a value (an agent name, a subject, an error)
/// cannot move the cursor, clear the screen or retitle the window. JSON needs nothing:
/// serde_json already escapes control characters.
pub fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    if !text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' | '\t' => out.push(c),
            '\r' => out.push_str("\\r"),
            c if c.is_control() && (c as u32) < 0x80 => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod terminal_tests {
    use super::terminal_safe;

    #[test]
    fn control_characters_are_escaped_and_text_is_kept() {
        assert_eq!(terminal_safe("plain\nline\ttab"), "plain\nline\ttab");
        assert_eq!(terminal_safe("a\x1b]0;pwned\x07b"), "a\\x1b]0;pwned\\x07b");
        assert_eq!(terminal_safe("x\x1b[2Jy\r"), "x\\x1b[2Jy\\r");
        assert_eq!(terminal_safe("c1\u{9b}31m"), "c1\\u{9b}31m");
        assert_eq!(terminal_safe("del\x7f"), "del\\x7f");
        assert_eq!(terminal_safe("ünïcode ✓"), "ünïcode ✓");
    }
}
