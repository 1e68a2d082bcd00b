//! Cron expressions of standing orders, as operators write them.
//!
//! Five fields (`min hour day-of-month month day-of-week`) or six with seconds first.
//! Day-of-week numbers follow standard cron: 0 and 7 are Sunday, 1 is Monday ... 6 is
//! Saturday; names (`MON-FRI`) work too. (The `cron` crate underneath numbers days from
//! 1 = Sunday, so a standard `1-5` would silently mean Sunday to Thursday there; this
//! module translates numbers to names before handing the expression over.)

use std::str::FromStr;

/// A parsed cron expression and the text it came from.
#[derive(Debug, Clone)]
pub struct CronExpr {
    /// What the operator wrote.
    pub source: String,
    /// The six-field form given to the `cron` crate.
    pub normalized: String,
    /// The schedule.
    pub schedule: cron::Schedule,
}

const DAY_NAMES: [&str; 8] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];

/// Parses a 5- or 6-field cron expression.
pub fn parse_cron(expr: &str) -> Result<CronExpr, String> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let mut six: Vec<String> = match fields.len() {
        5 => std::iter::once("0".to_string())
            .chain(fields.iter().map(|f| f.to_string()))
            .collect(),
        6 => fields.iter().map(|f| f.to_string()).collect(),
        n => {
            return Err(format!(
                "cron expression {expr:?} has {n} fields; expected 5 (min hour day month weekday) or 6 (seconds first)"
            ))
        }
    };
    six[5] = day_of_week(&six[5])?;
    let normalized = six.join(" ");
    let schedule = cron::Schedule::from_str(&normalized).map_err(|e| {
        // The crate's message repeats the expression with a caret line; keep the reason.
        let text = e.to_string();
        let reason = text
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or("")
            .to_string();
        format!(
            "cron expression {expr:?} is not valid: {}",
            one_line(&reason)
        )
    })?;
    Ok(CronExpr {
        source: expr.to_string(),
        normalized,
        schedule,
    })
}

/// Translates standard day-of-week numbers (0-7, Sunday = 0 or 7) to names.
fn day_of_week(field: &str) -> Result<String, String> {
    let mut parts = Vec::new();
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (item, None),
        };
        let translated = match range.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day(a)?, day(b)?);
                if let (Some(x), Some(y)) = (a.1, b.1) {
                    // 0 and 7 both mean Sunday; a range ending on 7 ends on Saturday+1.
                    let x = if x == 7 { 0 } else { x };
                    if x > y {
                        return Err(format!(
                            "day-of-week range {range:?} wraps around the week; list the days instead (e.g. 5,6,0)"
                        ));
                    }
                    if y == 7 && x == 0 {
                        parts.push(step.map_or("*".to_string(), |s| format!("*/{s}")));
                        continue;
                    }
                    if y == 7 {
                        // FRI-SUN cannot be written as a range for the crate: expand it.
                        let days: Vec<&str> = (x..=7).map(|d| DAY_NAMES[d as usize]).collect();
                        parts.push(days.join(","));
                        continue;
                    }
                }
                format!("{}-{}", a.0, b.0)
            }
            None => day(range)?.0,
        };
        parts.push(match step {
            Some(s) => format!("{translated}/{s}"),
            None => translated,
        });
    }
    Ok(parts.join(","))
}

/// One day token: (crate spelling, number if it was numeric).
fn day(token: &str) -> Result<(String, Option<u8>), String> {
    if token == "*" || token == "?" {
        return Ok((token.to_string(), None));
    }
    match token.parse::<u8>() {
        Ok(n) if n <= 7 => Ok((DAY_NAMES[n as usize].to_string(), Some(n))),
        Ok(n) => Err(format!(
            "day of week {n} is out of range (0-7, Sunday is 0 or 7)"
        )),
        Err(_) => Ok((token.to_uppercase(), None)),
    }
}

/// Parses an IANA time zone name (`UTC`, `Europe/Berlin`).
pub fn parse_zone(name: &str) -> Result<chrono_tz::Tz, String> {
    name.parse::<chrono_tz::Tz>().map_err(|_| {
        format!("unknown time zone {name:?}; use an IANA name such as UTC or Europe/Berlin")
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, TimeZone, Utc};

    fn next_days(expr: &str) -> Vec<chrono::Weekday> {
        let c = parse_cron(expr).unwrap_or_else(|e| panic!("{e}"));
        let start = Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap(); // a Monday
        c.schedule
            .after(&start)
            .take(7)
            .map(|d| d.weekday())
            .collect()
    }

    #[test]
    fn weekday_numbers_mean_what_they_mean_in_cron() {
        use chrono::Weekday::*;
        assert_eq!(next_days("0 9 * * 1-5")[..5], [Mon, Tue, Wed, Thu, Fri]);
        assert_eq!(next_days("0 9 * * 0")[0], Sun);
        assert_eq!(next_days("0 9 * * 7")[0], Sun);
        assert_eq!(next_days("0 9 * * 5-7")[..3], [Fri, Sat, Sun]);
        assert_eq!(next_days("0 9 * * MON,WED")[..2], [Mon, Wed]);
        assert_eq!(next_days("0 0 9 * * 1")[0], Mon);
        assert!(parse_cron("0 9 * * 5-1").is_err());
        assert!(parse_cron("0 9 * * 8").is_err());
        assert!(parse_cron("0 9 * *").is_err());
        assert!(parse_cron("61 9 * * *").is_err());
    }

    #[test]
    fn zones_are_iana_names() {
        assert!(parse_zone("Europe/Berlin").is_ok());
        assert!(parse_zone("UTC").is_ok());
        assert!(parse_zone("Mars/Olympus").is_err());
    }
}
