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
    fn latest_occurrence_is_the_slot_being_run() {
        let c = parse_cron("*/15 * * * *").unwrap_or_else(|e| panic!("{e}"));
        let at = |h, m, s| Utc.with_ymd_and_hms(2026, 11, 23, h, m, s).unwrap();
        let latest = |now| latest_occurrence(&c, chrono_tz::UTC, now).map(|o| o.at);
        assert_eq!(latest(at(10, 7, 12)), Some(at(10, 0, 0)));
        assert_eq!(latest(at(10, 15, 0)), Some(at(10, 15, 0)));
        assert_eq!(latest(at(10, 14, 59)), Some(at(10, 0, 0)));
        // Spring forward in Berlin: 02:30 local does not exist on 2026-03-29; the
        // occurrence is at the end of the gap (03:00 CEST = 01:00 UTC).
        let c = parse_cron("30 2 * * *").unwrap_or_else(|e| panic!("{e}"));
        let berlin = parse_zone("Europe/Berlin").unwrap_or_else(|e| panic!("{e}"));
        let now = Utc.with_ymd_and_hms(2026, 3, 29, 1, 20, 0).unwrap();
        let o = latest_occurrence(&c, berlin, now).unwrap_or_else(|| panic!("no occurrence"));
        assert_eq!(o.at, Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap());
        assert!(o.dst_note.is_some());
        // Fall back: 02:30 happens twice on 2026-10-25; the run belongs to the first.
        let now = Utc.with_ymd_and_hms(2026, 10, 25, 1, 40, 0).unwrap(); // the second 02:40
        let o = latest_occurrence(&c, berlin, now).unwrap_or_else(|| panic!("no occurrence"));
        assert_eq!(o.at, Utc.with_ymd_and_hms(2026, 10, 25, 0, 30, 0).unwrap());
    }

    #[test]
    fn zones_are_iana_names() {
        assert!(parse_zone("Europe/Berlin").is_ok());
        assert!(parse_zone("UTC").is_ok());
        assert!(parse_zone("Mars/Olympus").is_err());
    }
}

/// One occurrence of a standing order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Occurrence {
    /// When it is due (UTC); the key of its run.
    pub at: chrono::DateTime<chrono::Utc>,
    /// The local wall-clock time the schedule named.
    pub local: chrono::NaiveDateTime,
    /// Set when a daylight-saving change moved it.
    pub dst_note: Option<String>,
}

/// The occurrences of `expr` in zone `tz` after `after` (exclusive) up to `until`
/// (inclusive), in order, with daylight-saving changes handled so that nothing fires twice
/// and nothing vanishes silently:
///
/// - **Clocks go back** (a local time happens twice): the occurrence fires once, at the
///   first of the two instants.
/// - **Clocks go forward** (a local time does not exist): the occurrences the schedule
///   names inside the gap become one occurrence at the first instant after the gap, with
///   a `dst_note` saying so (02:30 Europe/Berlin on the spring-forward day fires at 03:00
///   CEST).
pub fn occurrences(
    expr: &CronExpr,
    tz: chrono_tz::Tz,
    after: chrono::DateTime<chrono::Utc>,
    until: chrono::DateTime<chrono::Utc>,
) -> Vec<Occurrence> {
    use chrono::{LocalResult, TimeZone};

    let mut out: Vec<Occurrence> = Vec::new();
    if until <= after {
        return out;
    }
    let start = after.with_timezone(&tz);
    for t in expr.schedule.after(&start) {
        let at = t.with_timezone(&chrono::Utc);
        if at > until {
            break;
        }
        let local = t.naive_local();
        // The second instant of a repeated local time is not a new occurrence.
        if let LocalResult::Ambiguous(first, _) = tz.from_local_datetime(&local) {
            if first.with_timezone(&chrono::Utc) != at {
                continue;
            }
        }
        out.push(Occurrence {
            at,
            local,
            dst_note: None,
        });
    }
    for (gap_start, gap_end, transition) in forward_gaps(tz, after, until) {
        // Local times the schedule names inside the gap, checked field by field.
        let probe = chrono::Utc.from_utc_datetime(&gap_start) - chrono::Duration::seconds(1);
        let mut named = expr
            .schedule
            .after(&probe)
            .map(|d| d.naive_utc())
            .take_while(|n| *n < gap_end);
        if let Some(first) = named.next() {
            if transition > after && transition <= until {
                out.push(Occurrence {
                    at: transition,
                    local: first,
                    dst_note: Some(format!(
                        "{first} does not exist in {tz} (clocks went forward); fired at the end of the gap"
                    )),
                });
            }
        }
    }
    out.sort_by_key(|o| o.at);
    // A gap's occurrence can coincide with a regular one (an every-minute order at the
    // end of the gap): one occurrence, keeping the note.
    let mut merged: Vec<Occurrence> = Vec::with_capacity(out.len());
    for o in out {
        match merged.last_mut() {
            Some(prev) if prev.at == o.at => {
                if prev.dst_note.is_none() {
                    prev.dst_note = o.dst_note;
                }
            }
            _ => merged.push(o),
        }
    }
    merged
}

/// The most recent occurrence at or before `now` (the one an agent woken by an outside
/// scheduler is running), with the same daylight-saving rules as [`occurrences`]. `None`
/// when the schedule never fired before `now`.
pub fn latest_occurrence(
    expr: &CronExpr,
    tz: chrono_tz::Tz,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Occurrence> {
    let probe = (now + chrono::Duration::seconds(1)).with_timezone(&tz);
    // A few candidates back: the latest instant may be the repeat of a local time that
    // already happened (clocks went back), which is not an occurrence of its own.
    let earliest = expr
        .schedule
        .after(&probe)
        .rev()
        .map(|t| t.with_timezone(&chrono::Utc))
        .filter(|t| *t <= now)
        .take(3)
        .last()?;
    occurrences(expr, tz, earliest - chrono::Duration::seconds(1), now).pop()
}

/// Spring-forward gaps in (after, until]: (first missing local time, first local time
/// after the gap, the UTC instant of the change).
fn forward_gaps(
    tz: chrono_tz::Tz,
    after: chrono::DateTime<chrono::Utc>,
    until: chrono::DateTime<chrono::Utc>,
) -> Vec<(
    chrono::NaiveDateTime,
    chrono::NaiveDateTime,
    chrono::DateTime<chrono::Utc>,
)> {
    use chrono::Offset;

    let offset =
        |t: chrono::DateTime<chrono::Utc>| t.with_timezone(&tz).offset().fix().local_minus_utc();
    let mut gaps = Vec::new();
    let step = chrono::Duration::hours(1);
    let mut t = after;
    while t < until {
        let next = (t + step).min(until);
        let (before, later) = (offset(t), offset(next));
        if later > before {
            // Binary search the instant of the change, to the second.
            let (mut lo, mut hi) = (t, next);
            while hi - lo > chrono::Duration::seconds(1) {
                let mid = lo + (hi - lo) / 2;
                if offset(mid) == before {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            // Offsets change on whole seconds and the change is in (lo, hi], less than a
            // second wide: truncating gives the same instant whatever fraction `after`
            // carried, so every caller computes the same occurrence.
            let change = chrono::SubsecRound::trunc_subsecs(hi, 0);
            let gap_start = (change + chrono::Duration::seconds(i64::from(before))).naive_utc();
            let gap_end = (change + chrono::Duration::seconds(i64::from(later))).naive_utc();
            gaps.push((gap_start, gap_end, change));
        }
        t = next;
    }
    gaps
}

#[cfg(test)]
mod dst_tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn berlin() -> chrono_tz::Tz {
        parse_zone("Europe/Berlin").unwrap_or(chrono_tz::UTC)
    }

    #[test]
    fn spring_forward_fires_once_at_the_end_of_the_gap() {
        // 2026-03-29: 02:00 CET becomes 03:00 CEST; 02:30 does not exist.
        let c = parse_cron("30 2 * * *").unwrap_or_else(|e| panic!("{e}"));
        let after = Utc.with_ymd_and_hms(2026, 3, 27, 12, 0, 0).unwrap();
        let until = Utc.with_ymd_and_hms(2026, 3, 31, 12, 0, 0).unwrap();
        let got = occurrences(&c, berlin(), after, until);
        let at: Vec<String> = got.iter().map(|o| o.at.to_rfc3339()).collect();
        assert_eq!(
            at,
            [
                "2026-03-28T01:30:00+00:00", // 02:30 CET
                "2026-03-29T01:00:00+00:00", // the gap ends: 03:00 CEST
                "2026-03-30T00:30:00+00:00", // 02:30 CEST
                "2026-03-31T00:30:00+00:00",
            ]
        );
        assert!(got[1]
            .dst_note
            .as_deref()
            .unwrap_or("")
            .contains("does not exist"));
        assert!(got.iter().filter(|o| o.dst_note.is_some()).count() == 1);
    }

    #[test]
    fn fall_back_fires_once_at_the_first_instant() {
        // 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:30 happens twice.
        let c = parse_cron("30 2 * * *").unwrap_or_else(|e| panic!("{e}"));
        let after = Utc.with_ymd_and_hms(2026, 10, 24, 12, 0, 0).unwrap();
        let until = Utc.with_ymd_and_hms(2026, 10, 26, 12, 0, 0).unwrap();
        let at: Vec<String> = occurrences(&c, berlin(), after, until)
            .iter()
            .map(|o| o.at.to_rfc3339())
            .collect();
        assert_eq!(
            at,
            ["2026-10-25T00:30:00+00:00", "2026-10-26T01:30:00+00:00"]
        );
    }

    #[test]
    fn an_every_minute_order_gets_one_catch_up_for_the_whole_gap() {
        let c = parse_cron("* * * * *").unwrap_or_else(|e| panic!("{e}"));
        let after = Utc.with_ymd_and_hms(2026, 3, 29, 0, 58, 30).unwrap();
        let until = Utc.with_ymd_and_hms(2026, 3, 29, 1, 1, 30).unwrap();
        let got = occurrences(&c, berlin(), after, until);
        let at: Vec<String> = got.iter().map(|o| o.at.to_rfc3339()).collect();
        // 01:59 CET, then 03:00 CEST standing for the missing 02:00-02:59 too (once, with
        // the note), then 03:01 CEST.
        assert_eq!(
            at,
            [
                "2026-03-29T00:59:00+00:00",
                "2026-03-29T01:00:00+00:00",
                "2026-03-29T01:01:00+00:00",
            ]
        );
        assert!(got[1].dst_note.is_some());
    }

    #[test]
    fn utc_has_no_surprises() {
        let c = parse_cron("*/15 * * * *").unwrap_or_else(|e| panic!("{e}"));
        let after = Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap();
        let until = Utc.with_ymd_and_hms(2026, 11, 23, 1, 0, 0).unwrap();
        assert_eq!(occurrences(&c, chrono_tz::UTC, after, until).len(), 4);
    }
}
