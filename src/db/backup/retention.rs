//! Which dumps to keep: the newest of each of the last `daily` days, `weekly` ISO weeks and
//! `monthly` months (a dump may count for all three), and always the newest of all. The rest
//! are removed with their manifests. Only files named like agentbus's own dumps are
//! considered; anything else in the folder is left alone.

use std::collections::BTreeSet;
use std::path::Path;

use chrono::{Datelike, NaiveDateTime};
use serde::Serialize;

use crate::error::{Error, Result};

/// How many of each period to keep.
#[derive(Debug, Clone, Copy)]
pub struct Keep {
    /// Newest per day, for this many days.
    pub daily: usize,
    /// Newest per ISO week, for this many weeks.
    pub weekly: usize,
    /// Newest per month, for this many months.
    pub monthly: usize,
}

/// What a prune did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Pruned {
    /// Dumps kept, newest first.
    pub kept: Vec<String>,
    /// Dumps removed (with their manifests).
    pub removed: Vec<String>,
}

/// The time in an agentbus dump's name (`agentbus-20261129T170000123Z.dump`, to the
/// millisecond, so two backups in one second do not share a name; names without the
/// milliseconds are read too).
fn stamp(name: &str) -> Option<NaiveDateTime> {
    let t = name.strip_prefix("agentbus-")?.strip_suffix(".dump")?;
    NaiveDateTime::parse_from_str(t, "%Y%m%dT%H%M%S%3fZ")
        .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y%m%dT%H%M%SZ"))
        .ok()
}

/// The names to keep among `names` (agentbus dumps; others are ignored).
pub fn plan(names: &[String], keep: Keep) -> BTreeSet<String> {
    let mut dumps: Vec<(NaiveDateTime, &String)> = names
        .iter()
        .filter_map(|n| stamp(n).map(|t| (t, n)))
        .collect();
    dumps.sort_by(|a, b| b.cmp(a));
    let mut out = BTreeSet::new();
    if let Some((_, newest)) = dumps.first() {
        out.insert((*newest).clone());
    }
    let mut pick = |key: &dyn Fn(&NaiveDateTime) -> (i32, u32), limit: usize| {
        let mut seen = Vec::new();
        for (t, n) in &dumps {
            let k = key(t);
            if seen.contains(&k) {
                continue;
            }
            if seen.len() == limit {
                break;
            }
            seen.push(k);
            out.insert((*n).clone());
        }
    };
    pick(&|t| (t.year(), t.ordinal()), keep.daily);
    pick(&|t| (t.iso_week().year(), t.iso_week().week()), keep.weekly);
    pick(&|t| (t.year(), t.month()), keep.monthly);
    out
}

/// Removes from `dir` the agentbus dumps (and manifests) that `keep` does not keep.
pub fn prune(dir: &Path, keep: Keep) -> Result<Pruned> {
    let names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| Error::failure(format!("{}: {e}", dir.display())))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| stamp(n).is_some())
        .collect();
    let kept = plan(&names, keep);
    let mut out = Pruned::default();
    let mut all = names.clone();
    all.sort_by(|a, b| b.cmp(a));
    for name in all {
        if kept.contains(&name) {
            out.kept.push(name);
            continue;
        }
        let path = dir.join(&name);
        std::fs::remove_file(&path)
            .map_err(|e| Error::failure(format!("{}: {e}", path.display())))?;
        let _ = std::fs::remove_file(super::manifest_path(&path));
        out.removed.push(name);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_of_each_day_week_and_month() {
        // One dump a day at 02:00 for 120 days, and a second one on the last day.
        let start = NaiveDateTime::parse_from_str("20260801T020000Z", "%Y%m%dT%H%M%SZ").unwrap();
        let mut names: Vec<String> = (0..120)
            .map(|d| {
                format!(
                    "agentbus-{}.dump",
                    (start + chrono::Duration::days(d)).format("%Y%m%dT%H%M%SZ")
                )
            })
            .collect();
        names.push("agentbus-20261128T030000Z.dump".into());
        names.push("notes.txt".into());
        let kept = plan(
            &names,
            Keep {
                daily: 7,
                weekly: 4,
                monthly: 3,
            },
        );
        // 7 days (the last day's newer dump only), the newest of 4 weeks and of 3 months:
        // the week and month dumps that are not already among the 7 days.
        assert!(kept.contains("agentbus-20261128T030000Z.dump"));
        assert!(!kept.contains("agentbus-20261128T020000Z.dump"));
        assert!(kept.contains("agentbus-20261122T020000Z.dump"), "7th day");
        assert!(!kept.contains("agentbus-20261121T020000Z.dump"));
        assert!(
            kept.contains("agentbus-20261031T020000Z.dump"),
            "newest of October"
        );
        assert!(
            kept.contains("agentbus-20260930T020000Z.dump"),
            "newest of September"
        );
        assert!(
            !kept.contains("agentbus-20260831T020000Z.dump"),
            "August is the 4th month"
        );
        assert!(!kept.contains("notes.txt"));
        // 7 days, plus the weeks of Nov 15 and Nov 8 and the months of October and
        // September that the days do not already cover.
        assert_eq!(kept.len(), 11, "{kept:?}");
    }
}
