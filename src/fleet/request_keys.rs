//! Which keys of its own agent.toml an agent may ask to change, and the edit itself
//! (comments and layout of the file are kept).

use toml_edit::{value, DocumentMut, Item, Table};

use crate::error::{Error, Result};

/// What a requestable key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Line,
    Count,
    Positive,
    Flag,
}

const SCALARS: &[(&str, Kind)] = &[
    ("name", Kind::Line),
    ("role", Kind::Line),
    ("model", Kind::Line),
    ("heartbeat", Kind::Line),
    ("max_concurrency", Kind::Positive),
    ("paused", Kind::Flag),
    ("budgets.max_opportunities_per_day", Kind::Count),
    ("budgets.max_urgent_per_day", Kind::Count),
    ("budgets.max_ideas_per_day", Kind::Count),
];

const ORDER_FIELDS: &[(&str, Kind)] = &[
    ("cron", Kind::Line),
    ("timezone", Kind::Line),
    ("message", Kind::Text),
    ("enabled", Kind::Flag),
];

const NEVER: &str = "wake settings, hand-offs, tools, tiers, approval gates, ids and secrets \
are never changed by request: an operator edits them";

/// The kind of `key` (a concrete key or, in fleet.toml, a pattern with `*` as the order).
fn kind_of(key: &str) -> Option<Kind> {
    if let Some((_, k)) = SCALARS.iter().find(|(name, _)| *name == key) {
        return Some(*k);
    }
    let rest = key.strip_prefix("standing_orders.")?;
    let (order, field) = rest.rsplit_once('.')?;
    if order != "*" && !crate::ledger::validate::is_name(order) {
        return None;
    }
    ORDER_FIELDS
        .iter()
        .find(|(name, _)| *name == field)
        .map(|(_, k)| *k)
}

/// Whether `key` may appear in `[requests] config_keys`; the error says why not.
pub fn check_requestable(key: &str) -> std::result::Result<(), String> {
    match kind_of(key) {
        Some(_) => Ok(()),
        None => Err(format!("{key:?} cannot be requested: {NEVER}")),
    }
}

/// Whether the fleet's `allowed` patterns cover `key`.
pub fn allowed(allowed: &[String], key: &str) -> bool {
    allowed.iter().any(|pattern| {
        pattern == key
            || match (
                pattern.strip_prefix("standing_orders.*."),
                key.strip_prefix("standing_orders."),
            ) {
                (Some(field), Some(rest)) => rest.rsplit_once('.').is_some_and(|(_, f)| f == field),
                _ => false,
            }
    })
}

/// Parses `KEY=VALUE` into the key and a TOML value of the key's kind.
pub fn parse_setting(setting: &str) -> Result<(String, toml::Value)> {
    let (key, raw) = setting
        .split_once('=')
        .ok_or_else(|| Error::usage(format!("--set {setting:?}: expected KEY=VALUE")))?;
    let key = key.trim().to_string();
    let kind = kind_of(&key)
        .ok_or_else(|| Error::not_permitted(format!("{key:?} cannot be requested: {NEVER}")))?;
    let bad = |what: &str| Error::usage(format!("--set {key}: expected {what}, got {raw:?}"));
    let v = match kind {
        Kind::Text | Kind::Line => {
            if raw.trim().is_empty() {
                return Err(bad("text"));
            }
            if kind == Kind::Line && raw.contains('\n') {
                return Err(bad("one line"));
            }
            crate::ledger::validate::check_required_text(&format!("--set {key}"), raw)?;
            toml::Value::String(raw.to_string())
        }
        Kind::Count => toml::Value::Integer(
            raw.trim()
                .parse::<u32>()
                .map_err(|_| bad("a whole number, 0 or more"))?
                .into(),
        ),
        Kind::Positive => match raw.trim().parse::<u32>() {
            Ok(n) if n > 0 => toml::Value::Integer(n.into()),
            _ => return Err(bad("a whole number, 1 or more")),
        },
        Kind::Flag => match raw.trim() {
            "true" => toml::Value::Boolean(true),
            "false" => toml::Value::Boolean(false),
            _ => return Err(bad("true or false")),
        },
    };
    Ok((key, v))
}

fn edit_value(v: &toml::Value) -> Item {
    match v {
        toml::Value::Integer(n) => value(*n),
        toml::Value::Boolean(b) => value(*b),
        other => value(other.as_str().unwrap_or_default()),
    }
}

/// `text` (an agent.toml) with `changes` applied; refuses an order the file does not have.
pub fn edit_agent_toml(text: &str, changes: &[(String, toml::Value)]) -> Result<String> {
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e| Error::config(format!("agent.toml does not parse: {e}")))?;
    for (key, v) in changes {
        if let Some(limit) = key.strip_prefix("budgets.") {
            let budgets = doc
                .entry("budgets")
                .or_insert_with(|| Item::Table(Table::new()));
            let Some(t) = budgets.as_table_like_mut() else {
                return Err(Error::config("agent.toml: budgets is not a table"));
            };
            t.insert(limit, edit_value(v));
        } else if let Some(rest) = key.strip_prefix("standing_orders.") {
            let (order, field) = rest.rsplit_once('.').ok_or_else(|| {
                Error::usage(format!("{key:?}: expected standing_orders.NAME.FIELD"))
            })?;
            let orders = doc
                .get_mut("standing_orders")
                .and_then(Item::as_array_of_tables_mut)
                .ok_or_else(|| {
                    Error::not_found(format!("agent.toml has no standing order {order:?}"))
                })?;
            let entry = orders
                .iter_mut()
                .find(|t| t.get("name").and_then(Item::as_str) == Some(order))
                .ok_or_else(|| {
                    Error::not_found(format!("agent.toml has no standing order {order:?}"))
                })?;
            entry.insert(field, edit_value(v));
        } else {
            doc.insert(key, edit_value(v));
        }
    }
    Ok(doc.to_string())
}
