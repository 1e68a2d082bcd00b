//! Time values the ledger takes: an instant (absolute, or relative to the database's
//! clock) and a window reaching back from now. The CLI parses text into them
//! (`cli::time`); the library resolves them against `now()` of the database.

use chrono::{DateTime, Duration, Utc};

/// A point in time: an absolute instant, or this long after the database's `now()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// An absolute instant.
    At(DateTime<Utc>),
    /// This long after the database's now().
    FromNow(Duration),
}

/// The start of a window that ends now: an instant, or this long before now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// From this instant.
    At(DateTime<Utc>),
    /// This long before the database's now().
    Ago(Duration),
}

impl Since {
    /// The instant this names, as of `now`.
    pub fn resolve(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Since::At(t) => *t,
            Since::Ago(d) => now - *d,
        }
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
