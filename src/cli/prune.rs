//! prune.

use clap::Args;

use super::output::{self, Format};
use super::time::parse_duration;
use super::Ctx;
use crate::db;
use crate::error::Result;
use crate::ledger::archive::{self, Plan};

/// Move finished work out of the live tables: jobs that ended before the horizon, with
/// their attempts, history and events
///
/// Only succeeded, dead and cancelled jobs move, and never one that unfinished work points
/// at (a child, a job blocked on it or waiting for it, a reaction to one of its events, a
/// merge or deploy of its coding run); a tree of jobs leaves when all of it is finished.
/// Events that belong to no job go too, except the newest of each topic. With --archive
/// each job becomes one row of archived_jobs (`agentbus trace --archived JOB` still shows
/// it) and --drop-archived-older-than deletes archived rows past a second horizon; without
/// it they are deleted. Runs in batches of --batch rows, each its own short transaction, so
/// it can run while the fleet works; an interrupted prune keeps what it did. Needs an
/// operator login (or the owner); sees only the namespaces the login sees.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  agentbus prune --older-than 30d --archive --drop-archived-older-than 365d\n  \
agentbus prune --older-than 90d --dry-run\n  agentbus prune --older-than 30d --archive --batch 500 --max-batches 20 --format json"
)]
pub struct PruneArgs {
    /// Jobs that finished longer ago than this (e.g. 30d, 12h, 2w)
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    older_than: chrono::Duration,

    /// Keep what moves in the archive tables (else it is deleted)
    #[arg(long)]
    archive: bool,

    /// Delete archived rows whose job finished longer ago than this (a second horizon)
    #[arg(long, value_name = "AGE", value_parser = parse_age, requires = "archive")]
    drop_archived_older_than: Option<chrono::Duration>,

    /// Rows per batch; each batch is one transaction
    #[arg(long, default_value_t = 1000, value_name = "N")]
    batch: i32,

    /// Stop after this many batches of each kind (the rest waits for the next run)
    #[arg(long, value_name = "N")]
    max_batches: Option<u32>,

    /// Count what would move, move nothing
    #[arg(long)]
    dry_run: bool,
}

fn parse_age(s: &str) -> std::result::Result<chrono::Duration, String> {
    parse_duration(s).ok_or_else(|| format!("expected an age such as 30d, 12h or 2w; got {s:?}"))
}

pub fn run(ctx: &mut Ctx, a: PruneArgs) -> Result<String> {
    let format = ctx.format();
    let client = ctx.db()?;
    let now = db::now(client)?;
    let plan = Plan {
        before: now - a.older_than,
        archive: a.archive,
        drop_archived_before: a.drop_archived_older_than.map(|d| now - d),
        batch: a.batch,
        max_batches: a.max_batches,
    };
    if a.dry_run {
        let pending = archive::pending(client, &plan)?;
        return match format {
            Format::Json => output::json(&pending),
            Format::Table => Ok(format!(
                "finished before {}: {} job(s) would move, {} held back by unfinished work; \
                 {} archived job(s) past the second horizon\n",
                output::time(plan.before),
                pending.jobs,
                pending.held,
                pending.archived_jobs_to_drop
            )),
        };
    }
    let report = archive::prune(client, &plan, |_| {})?;
    match format {
        Format::Json => output::json(&report),
        Format::Table => {
            let m = &report.moved;
            let verb = if report.archived {
                "archived"
            } else {
                "deleted"
            };
            let mut out = format!(
                "finished before {}: {verb} {} job(s) with {} attempt(s), {} history row(s) and \
                 {} event(s); {} unlinked event(s); {} batch(es)\n",
                output::time(plan.before),
                m.jobs,
                m.attempts,
                m.history,
                m.events,
                report.unlinked_events,
                report.batches
            );
            if plan.drop_archived_before.is_some() {
                out += &format!(
                    "dropped from the archive: {} job(s), {} event(s)\n",
                    report.dropped_jobs, report.dropped_events
                );
            }
            if report.more_left {
                out += "stopped at --max-batches: more is left for the next run\n";
            }
            Ok(out)
        }
    }
}
