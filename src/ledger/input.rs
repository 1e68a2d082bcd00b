//! Validation of values that come from agents and operators, before anything reaches the
//! database: JSON documents (size, shape, NUL characters), text fields, relative times.

use chrono::{DateTime, Duration, Utc};
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

/// A point in time given on the command line: RFC 3339 (`2026-04-15T18:00:00Z`), or
/// relative to now (`+90s`, `+15m`, `+2h`, `+1d`), or `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeArg {
    /// An absolute instant.
    At(DateTime<Utc>),
    /// This long after the database's now().
    FromNow(Duration),
}

impl TimeArg {
    /// Parses the forms above.
    pub fn parse(text: &str) -> Result<Self> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("now") {
            return Ok(TimeArg::FromNow(Duration::zero()));
        }
        if let Some(rel) = t.strip_prefix('+') {
            return parse_duration(rel).map(TimeArg::FromNow).ok_or_else(|| {
                Error::usage(format!(
                    "not a relative time: {text:?} (expected e.g. +90s, +15m, +2h, +1d)"
                ))
            });
        }
        DateTime::parse_from_rfc3339(t)
            .map(|d| TimeArg::At(d.with_timezone(&Utc)))
            .map_err(|e| {
                Error::usage(format!(
                    "not a time: {text:?} ({e}; expected RFC 3339 such as 2026-04-15T18:00:00Z, or +15m)"
                ))
            })
    }
}

/// A past window given on the command line (`--since`): a duration back from now (`2h`,
/// `30m`, `7d`) or an RFC 3339 instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinceArg {
    /// From this instant.
    At(DateTime<Utc>),
    /// This long before the database's now().
    Ago(Duration),
}

impl SinceArg {
    /// The instant this names, as of `now`.
    pub fn resolve(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            SinceArg::At(t) => *t,
            SinceArg::Ago(d) => now - *d,
        }
    }

    /// Parses the forms above.
    pub fn parse(text: &str) -> Result<Self> {
        let t = text.trim();
        if let Some(d) = parse_duration(t) {
            return Ok(SinceArg::Ago(d));
        }
        DateTime::parse_from_rfc3339(t)
            .map(|d| SinceArg::At(d.with_timezone(&Utc)))
            .map_err(|_| {
                Error::usage(format!(
                    "not a window: {text:?} (expected a duration such as 2h, 30m, 7d, or an RFC 3339 time)"
                ))
            })
    }
}

/// Parses `90s`, `15m`, `2h`, `1d`, `1w` (one number, one unit); `None` if it is not one.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = t.split_at(split);
    let n: i64 = num.parse().ok()?;
    let unit_secs = match unit {
        "s" | "sec" | "secs" => 1,
        "m" | "min" | "mins" => 60,
        "h" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        "w" | "week" | "weeks" => 604_800,
        _ => return None,
    };
    let secs = n.checked_mul(unit_secs)?;
    // Ten years is far beyond any sensible window and keeps intervals in range.
    (secs <= 10 * 366 * 86_400).then(|| Duration::seconds(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_objects_pass_and_everything_else_is_refused() {
        assert!(parse_json_object("--payload", r#"{"a":[1,"x"]}"#).is_ok());
        for bad in ["[1]", "3", "\"s\"", "null", "{", "{\"a\":}", ""] {
            let err = parse_json_object("--payload", bad).unwrap_err();
            assert_eq!(err.kind, crate::error::ErrorKind::Usage, "{bad}");
        }
    }

    #[test]
    fn nul_is_found_in_nested_values_and_keys() {
        let err = parse_json_object("--payload", r#"{"a":{"b":["ok","x\u0000y"]}}"#).unwrap_err();
        assert!(err.message.contains("$.a.b[1]"), "{}", err.message);
        let err = parse_json_object("--payload", r#"{"k\u0000":1}"#).unwrap_err();
        assert!(err.message.contains("NUL"), "{}", err.message);
    }

    #[test]
    fn oversized_documents_are_refused_before_parsing() {
        let big = format!("{{\"a\":\"{}\"}}", "x".repeat(MAX_JSON_BYTES));
        let err = parse_json_object("--payload", &big).unwrap_err();
        assert!(err.message.contains("1 MiB"), "{}", err.message);
    }

    #[test]
    fn times_parse_in_every_documented_form() {
        assert_eq!(
            TimeArg::parse("+15m").unwrap(),
            TimeArg::FromNow(Duration::minutes(15))
        );
        assert!(matches!(
            TimeArg::parse("2026-04-15T18:00:00Z").unwrap(),
            TimeArg::At(_)
        ));
        assert!(TimeArg::parse("tomorrow").is_err());
        assert_eq!(
            SinceArg::parse("2h").unwrap(),
            SinceArg::Ago(Duration::hours(2))
        );
        assert!(SinceArg::parse("2x").is_err());
        assert!(parse_duration("99999999999999d").is_none());
    }
}

/// Splits a command line into words the way a POSIX shell would for simple cases: blanks
/// separate words, '...' keeps everything literally, "..." keeps blanks and allows \" and
/// \\, a backslash outside quotes escapes the next character. No expansion of any kind
/// (no variables, globs or pipes): the words become an argv, not a shell script.
pub fn split_command(line: &str) -> std::result::Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => word.push(ch),
                        None => return Err("unterminated ' quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(ch @ ('"' | '\\' | '$' | '`')) => word.push(ch),
                            Some(ch) => {
                                word.push('\\');
                                word.push(ch);
                            }
                            None => return Err("unterminated \" quote".into()),
                        },
                        Some(ch) => word.push(ch),
                        None => return Err("unterminated \" quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(ch) => word.push(ch),
                    None => return Err("trailing backslash".into()),
                }
            }
            ch => {
                in_word = true;
                word.push(ch);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    if words.is_empty() {
        return Err("the command is empty".into());
    }
    Ok(words)
}

#[cfg(test)]
mod split_command_tests {
    use super::split_command;

    #[test]
    fn splits_like_a_shell() {
        assert_eq!(
            split_command(r#"sh -c 'echo "$X" {job_id}' a\ b "c \"d\"""#),
            Ok(vec![
                "sh".to_string(),
                "-c".into(),
                "echo \"$X\" {job_id}".into(),
                "a b".into(),
                "c \"d\"".into()
            ])
        );
        assert!(split_command("  ").is_err());
        assert!(split_command("echo 'x").is_err());
        assert_eq!(split_command("''"), Ok(vec![String::new()]));
    }
}
