//! Validation of values that come from agents and operators, before anything reaches the
//! database: JSON documents (size, shape, NUL characters) and text fields.

use serde_json::Value;

use crate::error::{Error, Result};

/// The largest JSON document (payload, state, result, evidence, meta) accepted, in bytes
/// of its text: 1 MiB. Larger artefacts belong in files or object storage, referenced by
/// path or URL from the payload.
pub const MAX_JSON_BYTES: usize = 1024 * 1024;

/// Parses `text` as a JSON object named `what` (e.g. `--payload`).
///
/// Refuses: more than [`MAX_JSON_BYTES`], malformed JSON, anything but an object, and NUL
/// characters anywhere (PostgreSQL cannot store `\u0000` in jsonb or text).
pub fn parse_json_object(what: &str, text: &str) -> Result<Value> {
    if text.len() > MAX_JSON_BYTES {
        return Err(Error::usage(format!(
            "{what}: document is {} bytes, over the 1 MiB limit ({MAX_JSON_BYTES} bytes)",
            text.len()
        ))
        .with_hint("store large artefacts elsewhere and put their path or URL in the document"));
    }
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Error::usage(format!("{what}: not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(Error::usage(format!(
            "{what}: expected a JSON object ({{...}}), got {}",
            json_kind(&value)
        )));
    }
    if let Some(path) = find_nul(&value, String::from("$")) {
        return Err(Error::usage(format!(
            "{what}: contains a NUL character (\\u0000) at {path}, which PostgreSQL cannot store"
        )));
    }
    Ok(value)
}

/// Refuses NUL characters in a text field named `what`.
pub fn check_text(what: &str, value: &str) -> Result<()> {
    if value.contains('\0') {
        return Err(Error::usage(format!(
            "{what}: contains a NUL character, which PostgreSQL cannot store"
        )));
    }
    Ok(())
}

/// Refuses an empty (or all-blank) or NUL-containing required text field.
pub fn check_required_text(what: &str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(Error::usage(format!("{what}: must not be empty")));
    }
    check_text(what, value)
}

/// The longest name (agent id, namespace, order name, lease owner, supervisor id).
pub const MAX_NAME_LEN: usize = 64;
/// The longest key (flow key, correlation key).
pub const MAX_KEY_LEN: usize = 200;

/// Whether `value` is a name: 1-64 of `a-z 0-9 _ . : -`, starting with a letter or digit.
/// Names reach argv, file names and prompts, so none of them can carry a shell
/// metacharacter, a space or a control character. The same rule is the SQL function
/// `agentbus_is_name` behind the tables' check constraints (sql/0014_identifiers.sql).
pub fn is_name(value: &str) -> bool {
    let mut chars = value.chars();
    value.len() <= MAX_NAME_LEN
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | ':' | '-')
        })
}

/// Whether `value` is a key: 1-200 of `A-Z a-z 0-9 _ . : / @ + = -`, starting with a letter
/// or digit (`prospect:acme`, `opportunity:8c2e...`, `deal/ACME-42`). SQL: `agentbus_is_key`.
pub fn is_key(value: &str) -> bool {
    let mut chars = value.chars();
    value.len() <= MAX_KEY_LEN
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '/' | '@' | '+' | '=' | '-')
        })
}

/// `text` made into a name (see [`is_name`]) for defaults built from the environment (a
/// host name, `$USER`): lower-cased, other characters as `-`, leading punctuation dropped,
/// at most `max` characters; `fallback` when nothing is left.
pub fn name_from(text: &str, max: usize, fallback: &str) -> String {
    let mapped: String = text
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '_' | '.' | ':' | '-') => c,
            _ => '-',
        })
        .collect();
    let trimmed: String = mapped
        .trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
        .chars()
        .take(max.min(MAX_NAME_LEN))
        .collect();
    if trimmed.is_empty() {
        fallback.to_string()
    } else {
        trimmed
    }
}

/// Refuses a value that is not a name (see [`is_name`]).
pub fn check_name(what: &str, value: &str) -> Result<()> {
    if is_name(value) {
        return Ok(());
    }
    Err(Error::usage(format!(
        "{what}: {:?} is not a valid name: use 1-{MAX_NAME_LEN} of a-z, 0-9, _, ., : and -, starting with a letter or digit",
        shown(value)
    )))
}

/// [`check_name`] on an optional field.
pub fn check_optional_name(what: &str, value: Option<&str>) -> Result<()> {
    value.map_or(Ok(()), |v| check_name(what, v))
}

/// Refuses a value that is not a key (see [`is_key`]).
pub fn check_key(what: &str, value: &str) -> Result<()> {
    if is_key(value) {
        return Ok(());
    }
    Err(Error::usage(format!(
        "{what}: {:?} is not a valid key: use 1-{MAX_KEY_LEN} of A-Z, a-z, 0-9, _, ., :, /, @, +, = and -, starting with a letter or digit",
        shown(value)
    )))
}

/// [`check_key`] on an optional field.
pub fn check_optional_key(what: &str, value: Option<&str>) -> Result<()> {
    value.map_or(Ok(()), |v| check_key(what, v))
}

/// A refused value as an error shows it: at most 80 characters.
fn shown(value: &str) -> String {
    let mut out: String = value.chars().take(80).collect();
    if value.chars().count() > 80 {
        out.push('…');
    }
    out
}

/// [`check_text`] on an optional field.
pub fn check_optional_text(what: &str, value: Option<&str>) -> Result<()> {
    value.map_or(Ok(()), |v| check_text(what, v))
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn find_nul(v: &Value, path: String) -> Option<String> {
    match v {
        Value::String(s) if s.contains('\0') => Some(path),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| find_nul(item, format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, item)| {
            if k.contains('\0') {
                Some(format!("{path} (a key)"))
            } else {
                find_nul(item, format!("{path}.{k}"))
            }
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_objects_pass_and_everything_else_is_refused() {
        assert!(parse_json_object("`payload`", r#"{"a":[1,"x"]}"#).is_ok());
        for bad in ["[1]", "3", "\"s\"", "null", "{", "{\"a\":}", ""] {
            let err = parse_json_object("`payload`", bad).unwrap_err();
            assert_eq!(err.kind, crate::error::ErrorKind::Usage, "{bad}");
        }
    }

    #[test]
    fn nul_is_found_in_nested_values_and_keys() {
        let err = parse_json_object("`payload`", r#"{"a":{"b":["ok","x\u0000y"]}}"#).unwrap_err();
        assert!(err.message.contains("$.a.b[1]"), "{}", err.message);
        let err = parse_json_object("`payload`", r#"{"k\u0000":1}"#).unwrap_err();
        assert!(err.message.contains("NUL"), "{}", err.message);
    }

    #[test]
    fn oversized_documents_are_refused_before_parsing() {
        let big = format!("{{\"a\":\"{}\"}}", "x".repeat(MAX_JSON_BYTES));
        let err = parse_json_object("`payload`", &big).unwrap_err();
        assert!(err.message.contains("1 MiB"), "{}", err.message);
    }
}

#[cfg(test)]
mod identifier_tests {
    use super::{is_key, is_name};

    #[test]
    fn names_and_keys_take_only_their_characters() {
        for ok in [
            "closer",
            "gtm-demo",
            "lease_reaper",
            "sup-host1-8123",
            "operator:demo",
            "a.b",
            "7",
        ] {
            assert!(is_name(ok), "{ok}");
        }
        let too_long = "a".repeat(65);
        for bad in [
            "",
            "Closer",
            "-x",
            "x;touch pwned",
            "$(id)",
            "a b",
            "`x`",
            "x\u{1b}",
            "ä",
            too_long.as_str(),
        ] {
            assert!(!is_name(bad), "{bad:?}");
        }
        for ok in [
            "prospect:acme",
            "deal/ACME-42",
            "opportunity:8c2e",
            "a@b+c=d",
        ] {
            assert!(is_key(ok), "{ok}");
        }
        for bad in ["", "/x", "a b", "x;y", "$(id)", "a\nb"] {
            assert!(!is_key(bad), "{bad:?}");
        }
        assert_eq!(super::name_from("Ann Smith", 50, "x"), "ann-smith");
        assert_eq!(
            super::name_from("-WEB_01.Example", 40, "x"),
            "web_01.example"
        );
        assert_eq!(super::name_from("ä", 40, "host"), "host");
    }
}
