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
