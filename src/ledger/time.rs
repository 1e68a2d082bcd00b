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
