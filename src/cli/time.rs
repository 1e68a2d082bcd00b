//! Times and windows written on the command line, parsed into the ledger's time values.

use chrono::{DateTime, Duration, Utc};

use crate::ledger::time::{Since, When};

/// Parses an instant: RFC 3339 (`2026-04-15T18:00:00Z`), relative to now (`+90s`, `+15m`,
/// `+2h`, `+1d`), or `now`.
pub fn parse_when(text: &str) -> Result<When, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("now") {
        return Ok(When::FromNow(Duration::zero()));
    }
    if let Some(rel) = t.strip_prefix('+') {
        return parse_duration(rel).map(When::FromNow).ok_or_else(|| {
            format!("not a relative time: {text:?} (expected e.g. +90s, +15m, +2h, +1d)")
        });
    }
    DateTime::parse_from_rfc3339(t)
        .map(|d| When::At(d.with_timezone(&Utc)))
        .map_err(|e| {
            format!(
                "not a time: {text:?} ({e}; expected RFC 3339 such as 2026-04-15T18:00:00Z, or +15m)"
            )
        })
}

/// Parses a window's start (`--since`): a duration back from now (`2h`, `30m`, `7d`) or an
/// RFC 3339 instant.
pub fn parse_since(text: &str) -> Result<Since, String> {
    let t = text.trim();
    if let Some(d) = parse_duration(t) {
        return Ok(Since::Ago(d));
    }
    DateTime::parse_from_rfc3339(t)
        .map(|d| Since::At(d.with_timezone(&Utc)))
        .map_err(|_| {
            format!(
                "not a window: {text:?} (expected a duration such as 2h, 30m, 7d, or an RFC 3339 time)"
            )
        })
}

pub use crate::ledger::time::parse_duration;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_every_documented_form() {
        assert_eq!(
            parse_when("+15m").unwrap(),
            When::FromNow(Duration::minutes(15))
        );
        assert!(matches!(
            parse_when("2026-04-15T18:00:00Z").unwrap(),
            When::At(_)
        ));
        assert!(parse_when("tomorrow").is_err());
        assert_eq!(parse_since("2h").unwrap(), Since::Ago(Duration::hours(2)));
        assert!(parse_since("2x").is_err());
        assert!(parse_duration("99999999999999d").is_none());
    }
}
