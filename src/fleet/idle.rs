//! `[idle]` of an agent file (over `[defaults.idle]` of fleet.toml): bounded thinking
//! windows when the agent is quiet (sql/0018_idle_thinking.sql fires them).

use chrono::NaiveTime;
use serde::Serialize;
use toml::{Table, Value};

use super::walk::Walker;
use crate::ledger::schedule::parse_zone;
use crate::ledger::time::parse_duration;

const IDLE_KEYS: &[&str] = &[
    "enabled",
    "quiet_for",
    "max_runtime",
    "max_per_day",
    "hours",
    "timezone",
    "questions",
    "adaptive_days",
];

/// An agent's thinking windows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IdleSpec {
    /// False keeps the settings but opens no window.
    pub enabled: bool,
    /// No queued, leased or running job of the agent, and none finished, for this long.
    pub quiet_for_seconds: i64,
    /// How long one window may take (told to the agent).
    pub max_runtime_seconds: i64,
    /// Windows per local day (halved while nothing of its is promoted).
    pub max_per_day: i32,
    /// Local hours windows may open in (`09:00-18:00`); all day when absent.
    pub hours: Option<(NaiveTime, NaiveTime)>,
    /// IANA zone of `hours` and of the day.
    pub timezone: String,
    /// The questions, asked in turn.
    pub questions: Vec<String>,
    /// Days without a promoted output before it thinks half as often.
    pub adaptive_days: i32,
    /// FILE:LINE of the declaration.
    pub source: String,
}

fn hours(text: &str) -> Option<(NaiveTime, NaiveTime)> {
    let (from, to) = text.split_once('-')?;
    let parse = |t: &str| NaiveTime::parse_from_str(t.trim(), "%H:%M").ok();
    let (from, to) = (parse(from)?, parse(to)?);
    (from != to).then_some((from, to))
}

impl Walker<'_> {
    /// `[idle]` of an agent file over the fleet's `[defaults.idle]`; `None` when neither
    /// declares one.
    pub(super) fn idle(
        &mut self,
        t: &Table,
        defaults: Option<&Table>,
        default_zone: Option<&str>,
    ) -> Option<IdleSpec> {
        let own = match t.get("idle") {
            None => None,
            Some(Value::Table(own)) => Some(own),
            Some(_) => {
                self.error_at("idle", "idle must be a table: [idle]");
                return None;
            }
        };
        if own.is_none() && defaults.is_none() {
            return None;
        }
        let mut merged = defaults.cloned().unwrap_or_default();
        for (k, v) in own.into_iter().flatten() {
            merged.insert(k.clone(), v.clone());
        }
        self.unknown_keys(&merged, "idle", IDLE_KEYS);
        let source = format!("{}:{}", self.file.display(), self.line_of("idle"));
        let duration = |w: &mut Self, key: &str, default: i64| -> i64 {
            match w.string(&merged, "idle", key) {
                None => default,
                Some(text) => match parse_duration(&text) {
                    Some(d) if d.num_seconds() > 0 => d.num_seconds(),
                    _ => {
                        w.error_at(
                            &format!("idle.{key}"),
                            format!("{key} {text:?} is not a duration such as 20m or 2h"),
                        );
                        default
                    }
                },
            }
        };
        let quiet_for_seconds = duration(self, "quiet_for", 3600);
        let max_runtime_seconds = duration(self, "max_runtime", 25 * 60);
        let max_per_day = self.positive(&merged, "idle", "max_per_day").unwrap_or(3);
        if max_per_day > 48 {
            self.error_at("idle.max_per_day", "max_per_day must be 1 to 48");
        }
        let adaptive_days = self.positive(&merged, "idle", "adaptive_days").unwrap_or(7);
        if adaptive_days > 90 {
            self.error_at("idle.adaptive_days", "adaptive_days must be 1 to 90");
        }
        let window = self.string(&merged, "idle", "hours").and_then(|h| {
            let parsed = hours(&h);
            if parsed.is_none() {
                self.error_at(
                    "idle.hours",
                    format!("hours {h:?} is not HH:MM-HH:MM (a window that may wrap midnight)"),
                );
            }
            parsed
        });
        let timezone = self
            .string(&merged, "idle", "timezone")
            .or_else(|| default_zone.map(str::to_string))
            .unwrap_or_else(|| "UTC".to_string());
        if let Err(e) = parse_zone(&timezone) {
            self.error_at("idle.timezone", e);
        }
        let questions = self
            .strings(&merged, "idle", "questions")
            .unwrap_or_default();
        if questions.is_empty() || questions.iter().any(|q| q.trim().is_empty()) {
            self.error_at(
                "idle.questions",
                "idle needs questions: a list of non-empty questions, asked in turn",
            );
        }
        Some(IdleSpec {
            enabled: self.boolean(&merged, "idle", "enabled").unwrap_or(true),
            quiet_for_seconds,
            max_runtime_seconds,
            max_per_day,
            hours: window,
            timezone,
            questions,
            adaptive_days,
            source,
        })
    }
}

/// Makes the agent's idle settings those of its files (none: deleted); returns whether
/// they changed. `halved_since` is the database's to keep.
pub(super) fn sync_idle(
    tx: &mut postgres::Transaction<'_>,
    ns: &str,
    agent: &super::AgentSpec,
) -> crate::Result<bool> {
    let current: Option<serde_json::Value> = tx
        .query_opt(
            "select jsonb_build_object(
                      'enabled', enabled, 'quiet_for', extract(epoch from quiet_for)::int8,
                      'max_runtime', extract(epoch from max_runtime)::int8,
                      'max_per_day', max_per_day, 'hours_from', hours_from::text,
                      'hours_to', hours_to::text, 'timezone', timezone, 'questions', questions,
                      'adaptive_days', adaptive_days)
               from idle_settings where namespace = $1 and agent_id = $2 for update",
            &[&ns, &agent.id],
        )?
        .map(|r| r.try_get(0))
        .transpose()?;
    let time = |t: NaiveTime| t.format("%H:%M:%S").to_string();
    let wanted = agent.idle.as_ref().map(|i| {
        serde_json::json!({
            "enabled": i.enabled, "quiet_for": i.quiet_for_seconds,
            "max_runtime": i.max_runtime_seconds, "max_per_day": i.max_per_day,
            "hours_from": i.hours.map(|h| time(h.0)), "hours_to": i.hours.map(|h| time(h.1)),
            "timezone": i.timezone, "questions": i.questions, "adaptive_days": i.adaptive_days,
        })
    });
    if current == wanted {
        return Ok(false);
    }
    match &agent.idle {
        None => {
            tx.execute(
                "delete from idle_settings where namespace = $1 and agent_id = $2",
                &[&ns, &agent.id],
            )?;
        }
        Some(i) => {
            tx.execute(
                "insert into idle_settings (namespace, agent_id, enabled, quiet_for, max_runtime,
                                            max_per_day, hours_from, hours_to, timezone, questions,
                                            adaptive_days, source)
                 values ($1, $2, $3, make_interval(secs => $4::float8), make_interval(secs => $5::float8),
                         $6, $7::text::time, $8::text::time, $9, $10, $11, $12)
                 on conflict (namespace, agent_id) do update
                   set enabled = excluded.enabled, quiet_for = excluded.quiet_for,
                       max_runtime = excluded.max_runtime, max_per_day = excluded.max_per_day,
                       hours_from = excluded.hours_from, hours_to = excluded.hours_to,
                       timezone = excluded.timezone, questions = excluded.questions,
                       adaptive_days = excluded.adaptive_days, source = excluded.source,
                       updated_at = now()",
                &[
                    &ns,
                    &agent.id,
                    &i.enabled,
                    &(i.quiet_for_seconds as f64),
                    &(i.max_runtime_seconds as f64),
                    &i.max_per_day,
                    &i.hours.map(|h| time(h.0)),
                    &i.hours.map(|h| time(h.1)),
                    &i.timezone,
                    &i.questions,
                    &i.adaptive_days,
                    &i.source,
                ],
            )?;
        }
    }
    Ok(true)
}
