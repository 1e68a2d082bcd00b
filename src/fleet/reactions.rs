//! What a fleet does without being told: `[[reactions]]` of an agent file (the event topics
//! an agent reacts to, and the job each event gives it; the database makes the jobs when the
//! event is inserted, sql/0016_reactions.sql, so an event and its reactions commit together)
//! and the `[blocked]` policy of fleet.toml (sql/0017_blocked_routing.sql).

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value as Json;
use toml::{Table, Value};

use super::walk::Walker;

const REACTION_KEYS: &[&str] = &["name", "topic", "subject", "priority", "when", "max_depth"];

/// One `[[reactions]]` table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReactionSpec {
    /// Its name, unique per agent.
    pub name: String,
    /// A glob on the topic: `*` any text (`security.alert.*`).
    pub topic: String,
    /// The job's subject: `{topic}`, `{event_id}`, `{source_agent}` and `{payload.FIELD}`
    /// are filled in.
    pub subject: String,
    /// The job's priority (1 to 1000).
    pub priority: i32,
    /// Top-level payload fields the event must carry: a value, or a list of allowed values.
    pub when: serde_json::Map<String, Json>,
    /// How deep a chain of reactions may go before this one is refused (1 to 10).
    pub max_depth: i32,
    /// FILE:LINE of the declaration.
    pub source: String,
}

impl ReactionSpec {
    /// The topic glob as a SQL LIKE pattern (`*` any text; `_` matches itself).
    pub fn topic_like(&self) -> String {
        self.topic.replace('_', "\\_").replace('*', "%")
    }
}

fn topic_ok(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= 200
        && topic
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-*".contains(c))
}

/// The placeholders of a subject template that are not known, if any.
fn unknown_placeholders(template: &str) -> Vec<String> {
    let mut bad = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else {
            bad.push(after.to_string());
            break;
        };
        let name = &after[..end];
        let known = matches!(name, "topic" | "event_id" | "source_agent")
            || name.strip_prefix("payload.").is_some_and(|f| {
                !f.is_empty() && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
        if !known {
            bad.push(name.to_string());
        }
        rest = &after[end + 1..];
    }
    bad
}

fn scalar(v: &Value) -> Option<Json> {
    match v {
        Value::String(s) => Some(Json::String(s.clone())),
        Value::Integer(n) => Some(Json::from(*n)),
        Value::Boolean(b) => Some(Json::Bool(*b)),
        Value::Float(f) => serde_json::Number::from_f64(*f).map(Json::Number),
        _ => None,
    }
}

impl Walker<'_> {
    /// `[[reactions]]` of an agent file.
    pub(super) fn reactions(&mut self, t: &Table) -> Vec<ReactionSpec> {
        let mut out = Vec::new();
        let mut names = BTreeSet::new();
        let items = match t.get("reactions") {
            None => return out,
            Some(Value::Array(items)) => items,
            Some(_) => {
                self.error_at("reactions", "reactions must be [[reactions]] tables");
                return out;
            }
        };
        for (i, item) in items.iter().enumerate() {
            let prefix = format!("reactions[{i}]");
            let Value::Table(rt) = item else {
                self.error_at("reactions", "reactions must be [[reactions]] tables");
                continue;
            };
            self.unknown_keys(rt, &prefix, REACTION_KEYS);
            let source = format!("{}:{}", self.file.display(), self.line_of(&prefix));
            let (Some(name), Some(topic), Some(subject)) = (
                self.string(rt, &prefix, "name"),
                self.string(rt, &prefix, "topic"),
                self.string(rt, &prefix, "subject"),
            ) else {
                self.error_at(&prefix, "a reaction needs a name, a topic and a subject");
                continue;
            };
            if !crate::ledger::validate::is_name(&name) {
                self.error_at(
                    &format!("{prefix}.name"),
                    format!("reaction name {name:?} may hold only a-z, 0-9, _, ., : and -"),
                );
            }
            if !names.insert(name.clone()) {
                self.error_at(
                    &format!("{prefix}.name"),
                    format!("reaction {name:?} is declared twice"),
                );
            }
            if !topic_ok(&topic) {
                self.error_at(
                    &format!("{prefix}.topic"),
                    format!(
                        "topic pattern {topic:?} may hold only a-z, 0-9, ., _, - and * (any text)"
                    ),
                );
            } else if topic.starts_with("reaction.") {
                self.error_at(
                    &format!("{prefix}.topic"),
                    "reaction.* topics are agentbus's own and never trigger reactions",
                );
            }
            let bad = unknown_placeholders(&subject);
            if !bad.is_empty() {
                self.error_at(
                    &format!("{prefix}.subject"),
                    format!(
                        "unknown placeholder(s) {}: use {{topic}}, {{event_id}}, {{source_agent}} or {{payload.FIELD}}",
                        bad.iter().map(|b| format!("{{{b}}}")).collect::<Vec<_>>().join(", ")
                    ),
                );
            }
            let priority = match rt.get("priority").map(Value::as_integer) {
                None => 100,
                Some(Some(n)) if (1..=1000).contains(&n) => n as i32,
                Some(_) => {
                    self.error_at(&format!("{prefix}.priority"), "priority must be 1 to 1000");
                    100
                }
            };
            let max_depth = match rt.get("max_depth").map(Value::as_integer) {
                None => 3,
                Some(Some(n)) if (1..=10).contains(&n) => n as i32,
                Some(_) => {
                    self.error_at(&format!("{prefix}.max_depth"), "max_depth must be 1 to 10");
                    3
                }
            };
            let mut when = serde_json::Map::new();
            if let Some(w) = self.table(rt, &prefix, "when") {
                for (field, v) in w {
                    let value = match v {
                        Value::Array(items) => items
                            .iter()
                            .map(scalar)
                            .collect::<Option<Vec<_>>>()
                            .map(Json::Array),
                        other => scalar(other),
                    };
                    match value {
                        Some(j) => {
                            when.insert(field.clone(), j);
                        }
                        None => self.error_at(
                            &format!("{prefix}.when.{field}"),
                            "a condition is a value (text, number, true/false) or a list of them",
                        ),
                    }
                }
            }
            out.push(ReactionSpec {
                name,
                topic,
                subject,
                priority,
                when,
                max_depth,
                source,
            });
        }
        out
    }
}

/// A reaction as stored.
type ReactionRow = (String, String, String, i32, Json, i32);

/// Makes the agent's reactions those of its file; returns whether they changed.
pub(super) fn sync_reactions(
    tx: &mut postgres::Transaction<'_>,
    ns: &str,
    agent: &super::AgentSpec,
) -> crate::Result<bool> {
    let current: Vec<ReactionRow> = tx
        .query(
            "select reaction_name, topic_like, subject_template, priority, conditions, max_depth
               from reactions where namespace = $1 and agent_id = $2 order by reaction_name",
            &[&ns, &agent.id],
        )?
        .iter()
        .map(|r| {
            Ok((
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                r.try_get(4)?,
                r.try_get(5)?,
            ))
        })
        .collect::<std::result::Result<_, postgres::Error>>()?;
    let mut wanted: Vec<ReactionRow> = agent
        .reactions
        .iter()
        .map(|r| {
            (
                r.name.clone(),
                r.topic_like(),
                r.subject.clone(),
                r.priority,
                Json::Object(r.when.clone()),
                r.max_depth,
            )
        })
        .collect();
    wanted.sort_by(|a, b| a.0.cmp(&b.0));
    if current == wanted {
        return Ok(false);
    }
    tx.execute(
        "delete from reactions where namespace = $1 and agent_id = $2",
        &[&ns, &agent.id],
    )?;
    for r in &agent.reactions {
        tx.execute(
            "insert into reactions (namespace, agent_id, reaction_name, topic_like,
                                    subject_template, priority, conditions, max_depth, source)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &ns,
                &agent.id,
                &r.name,
                &r.topic_like(),
                &r.subject,
                &r.priority,
                &Json::Object(r.when.clone()),
                &r.max_depth,
                &r.source,
            ],
        )?;
    }
    Ok(true)
}

/// Makes the namespace's `[blocked]` policy that of the fleet (none: deleted); returns the
/// change, if any.
pub(super) fn sync_blocked_policy(
    tx: &mut postgres::Transaction<'_>,
    ns: &str,
    policy: Option<&super::BlockedPolicy>,
) -> crate::Result<Option<super::Change>> {
    let current: Option<(String, i64, Option<i64>)> = tx
        .query_opt(
            "select route_to, extract(epoch from route_after)::int8,
                    extract(epoch from escalate_after)::int8
               from blocked_policies where namespace = $1 for update",
            &[&ns],
        )?
        .map(|r| -> std::result::Result<_, postgres::Error> {
            Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))
        })
        .transpose()?;
    let wanted = policy.map(|p| {
        (
            p.route_to.clone(),
            p.route_after_seconds,
            p.escalate_after_seconds,
        )
    });
    if current == wanted {
        return Ok(None);
    }
    match policy {
        None => {
            tx.execute("delete from blocked_policies where namespace = $1", &[&ns])?;
        }
        Some(p) => {
            tx.execute(
                "insert into blocked_policies (namespace, route_to, route_after, escalate_after, source)
                 values ($1, $2, make_interval(secs => $3::float8),
                         case when $4::float8 is null then null else make_interval(secs => $4::float8) end, $5)
                 on conflict (namespace) do update
                   set route_to = excluded.route_to, route_after = excluded.route_after,
                       escalate_after = excluded.escalate_after, source = excluded.source,
                       updated_at = now()",
                &[
                    &ns,
                    &p.route_to,
                    &(p.route_after_seconds as f64),
                    &p.escalate_after_seconds.map(|s| s as f64),
                    &p.source,
                ],
            )?;
        }
    }
    Ok(Some(super::Change {
        object: "blocked",
        id: ns.to_string(),
        fields: policy.map(|p| vec![p.route_to.clone()]).unwrap_or_default(),
    }))
}
