//! Retention: finished work leaves the live tables, in bounded batches, so the tables every
//! claim, close and status read stay the size of the work in flight.
//!
//! Owns `archived_jobs` and `archived_events` (`sql/0023_archive.sql`). A batch is one call
//! of a SQL function in its own transaction: `agentbus_prune_jobs` moves at most `batch`
//! finished jobs (with their attempts, history, dependencies, approvals, events and coding
//! runs; with `archive`, first into one `archived_jobs` row each), `agentbus_prune_events`
//! events that belong to no job, `agentbus_drop_archived` deletes archived rows past the
//! second horizon. Which jobs may move is decided in SQL (`agentbus_job_prunable`): never
//! unfinished work, never a job something unfinished points at, checked again once the rows
//! are locked. Row locks are held for one batch, never for the whole prune.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::db;
use crate::error::{Error, Result};

/// The largest batch the SQL functions accept.
pub const MAX_BATCH: i32 = 10_000;

/// What to prune.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Finished jobs that ended (and unlinked events created) before this leave.
    pub before: DateTime<Utc>,
    /// Keep them in the archive tables (else they are deleted).
    pub archive: bool,
    /// Archived rows that ended before this are deleted for good.
    pub drop_archived_before: Option<DateTime<Utc>>,
    /// Rows per batch (one transaction each), 1 to [`MAX_BATCH`].
    pub batch: i32,
    /// Stop after this many batches of each kind (the rest waits for the next run).
    pub max_batches: Option<u32>,
}

/// What one batch of jobs moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct JobBatch {
    /// Jobs.
    pub jobs: i64,
    /// Their attempts.
    pub attempts: i64,
    /// Their history rows.
    pub history: i64,
    /// The events they emitted.
    pub events: i64,
}

/// What a prune did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The horizon: finished before this.
    pub before: Option<DateTime<Utc>>,
    /// True when the rows went to the archive tables.
    pub archived: bool,
    /// Jobs (and what came with them) moved.
    pub moved: JobBatch,
    /// Events that belonged to no job, moved.
    pub unlinked_events: i64,
    /// Archived jobs deleted for good (the second horizon).
    pub dropped_jobs: i64,
    /// Archived events deleted for good.
    pub dropped_events: i64,
    /// Transactions committed.
    pub batches: u32,
    /// True when `max_batches` stopped it with work left.
    pub more_left: bool,
}

/// What a prune would move now (a dry run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Pending {
    /// Finished jobs past the horizon that may move.
    pub jobs: i64,
    /// Finished jobs past the horizon held back (something unfinished points at them).
    pub held: i64,
    /// Archived jobs past the second horizon.
    pub archived_jobs_to_drop: i64,
}

fn check(plan: &Plan) -> Result<()> {
    if !(1..=MAX_BATCH).contains(&plan.batch) {
        return Err(Error::usage(format!(
            "the batch size must be between 1 and {MAX_BATCH}, not {}",
            plan.batch
        )));
    }
    if let Some(drop) = plan.drop_archived_before {
        if drop > plan.before {
            return Err(Error::usage(
                "archived rows must be kept at least as long as live ones: \
                 the second horizon must be older than the first",
            ));
        }
    }
    Ok(())
}

/// One batch of finished jobs, in the caller's transaction.
pub fn prune_jobs_batch(
    tx: &mut impl postgres::GenericClient,
    before: DateTime<Utc>,
    batch: i32,
    archive: bool,
) -> Result<JobBatch> {
    let row = tx.query_one(
        "select jobs, attempts, history, events from agentbus_prune_jobs($1, $2, $3)",
        &[&before, &batch, &archive],
    )?;
    Ok(JobBatch {
        jobs: row.try_get(0)?,
        attempts: row.try_get(1)?,
        history: row.try_get(2)?,
        events: row.try_get(3)?,
    })
}

/// One batch of events that belong to no job, in the caller's transaction.
pub fn prune_events_batch(
    tx: &mut impl postgres::GenericClient,
    before: DateTime<Utc>,
    batch: i32,
    archive: bool,
) -> Result<i64> {
    Ok(tx
        .query_one(
            "select agentbus_prune_events($1, $2, $3)",
            &[&before, &batch, &archive],
        )?
        .try_get(0)?)
}

/// One batch of the archive's own retention, in the caller's transaction: (jobs, events).
pub fn drop_archived_batch(
    tx: &mut impl postgres::GenericClient,
    before: DateTime<Utc>,
    batch: i32,
) -> Result<(i64, i64)> {
    let row = tx.query_one(
        "select jobs, events from agentbus_drop_archived($1, $2)",
        &[&before, &batch],
    )?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

/// Runs the plan to the end (or to `max_batches`), each batch its own transaction, so a
/// prune of millions of rows never holds a lock for longer than one batch and an
/// interrupted one keeps what it did. `on_batch` hears the running totals after each.
pub fn prune(
    client: &mut postgres::Client,
    plan: &Plan,
    mut on_batch: impl FnMut(&Report),
) -> Result<Report> {
    check(plan)?;
    let mut report = Report {
        before: Some(plan.before),
        archived: plan.archive,
        ..Report::default()
    };
    let full = i64::from(plan.batch);
    let mut stages = vec![Stage::Jobs, Stage::Events];
    if plan.drop_archived_before.is_some() {
        stages.push(Stage::DropArchived);
    }
    for stage in stages {
        let mut done = 0u32;
        loop {
            if Some(done) == plan.max_batches {
                report.more_left = true;
                return Ok(report);
            }
            // Counted once committed, never for a batch that rolled back.
            let more = db::transaction(client, |tx| stage.run(tx, plan))?.add_to(&mut report);
            done += 1;
            report.batches += 1;
            on_batch(&report);
            if more < full {
                break;
            }
        }
    }
    Ok(report)
}

/// The three kinds of batch, in the order a prune runs them.
#[derive(Debug, Clone, Copy)]
enum Stage {
    Jobs,
    Events,
    DropArchived,
}

/// What one committed batch did.
enum Done {
    Jobs(JobBatch),
    Events(i64),
    Dropped { jobs: i64, events: i64 },
}

impl Stage {
    /// Runs one batch in `tx`.
    fn run(self, tx: &mut postgres::Transaction<'_>, plan: &Plan) -> Result<Done> {
        Ok(match (self, plan.drop_archived_before) {
            (Stage::Jobs, _) => {
                Done::Jobs(prune_jobs_batch(tx, plan.before, plan.batch, plan.archive)?)
            }
            (Stage::Events, _) => Done::Events(prune_events_batch(
                tx,
                plan.before,
                plan.batch,
                plan.archive,
            )?),
            (Stage::DropArchived, Some(before)) => {
                let (jobs, events) = drop_archived_batch(tx, before, plan.batch)?;
                Done::Dropped { jobs, events }
            }
            (Stage::DropArchived, None) => Done::Dropped { jobs: 0, events: 0 },
        })
    }
}

impl Done {
    /// Adds a committed batch to `report`; returns the most rows one of its tables lost (a
    /// full batch means there may be more).
    fn add_to(self, report: &mut Report) -> i64 {
        match self {
            Done::Jobs(b) => {
                report.moved.jobs += b.jobs;
                report.moved.attempts += b.attempts;
                report.moved.history += b.history;
                report.moved.events += b.events;
                b.jobs
            }
            Done::Events(n) => {
                report.unlinked_events += n;
                n
            }
            Done::Dropped { jobs, events } => {
                report.dropped_jobs += jobs;
                report.dropped_events += events;
                jobs.max(events)
            }
        }
    }
}

/// What [`prune`] would move now, without moving anything.
pub fn pending(client: &mut impl postgres::GenericClient, plan: &Plan) -> Result<Pending> {
    check(plan)?;
    let row = client.query_one(
        "select count(*) filter (where p), count(*) filter (where not p)
           from (select agentbus_job_prunable(j.id) as p
                   from jobs j
                  where j.status in ('succeeded', 'dead', 'cancelled')
                    and coalesce(j.completed_at, j.updated_at) < $1) c",
        &[&plan.before],
    )?;
    let drop: i64 = match plan.drop_archived_before {
        Some(at) => client
            .query_one(
                "select count(*) from archived_jobs where completed_at < $1",
                &[&at],
            )?
            .try_get(0)?,
        None => 0,
    };
    Ok(Pending {
        jobs: row.try_get(0)?,
        held: row.try_get(1)?,
        archived_jobs_to_drop: drop,
    })
}
