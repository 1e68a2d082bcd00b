//! Text helpers for vault notes: file-name slugs, YAML front matter, and row text made
//! safe to put in Markdown (it can neither open a `[[link]]` nor a front-matter block).

use serde_json::Value;

/// A file-name slug: lower-case ASCII letters and digits, words joined by `-`, at most
/// 48 characters.
pub fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= 48 {
            break;
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "untitled".into()
    } else {
        out
    }
}

/// Row text for a note's body: brackets escaped (no `[[link]]` a row did not earn), a
/// leading `---` defused, control characters other than newlines dropped.
pub fn safe(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .collect();
    let escaped = cleaned.replace('[', "\\[").replace(']', "\\]");
    escaped
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("---") {
                format!("\\{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// One line of row text.
pub fn line(text: &str) -> String {
    safe(&text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// A YAML front matter block: `generated: true` first, then the fields in order. Values
/// are written as JSON, which YAML reads as they are (strings double-quoted).
pub fn front_matter(fields: &[(&str, Value)]) -> String {
    let mut out = String::from("---\ngenerated: true\n");
    out.push_str(
        "# Written by agentbus vault export from the ledger; edits here are never read back.\n",
    );
    out.push_str("# To propose something, drop a note in 00 Inbox/.\n");
    for (k, v) in fields {
        if v.is_null() {
            continue;
        }
        out.push_str(&format!(
            "{k}: {}\n",
            serde_json::to_string(v).unwrap_or_default()
        ));
    }
    out.push_str("---\n");
    out
}

/// A JSON object as Markdown bullets (`key: value`), one level deep.
pub fn bullets(v: &Value) -> String {
    let Some(obj) = v.as_object().filter(|o| !o.is_empty()) else {
        return "- (none)\n".into();
    };
    obj.iter()
        .map(|(k, v)| {
            let value = match v {
                Value::String(s) => line(s),
                other => line(&other.to_string()),
            };
            format!("- {}: {value}\n", line(k))
        })
        .collect()
}

/// `v[key]` as text ("" when absent).
pub fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

/// The date part (`2026-04-15`) of an RFC 3339 timestamp.
pub fn date(ts: &str) -> &str {
    ts.get(..10).unwrap_or(ts)
}

/// A timestamp as people read it: `2026-04-15 18:00 UTC`.
pub fn when(ts: &str) -> String {
    match (ts.get(..10), ts.get(11..16)) {
        (Some(d), Some(t)) => format!("{d} {t} UTC"),
        _ => ts.to_string(),
    }
}
