//! The trace of work `agentbus prune --archive` moved out of the live tables: the same tree,
//! read from `archived_jobs`, where each job's row holds its attempts, history, events and
//! the rest as they were when it was archived.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::{Parts, Scope, Trace, MAX_JOBS};
use crate::db::decode;
use crate::error::{Error, Result};
use crate::lanes::coding::record::CodingRun;
use crate::lanes::proactive::Opportunity;
use crate::ledger::events::Event;
use crate::ledger::jobs::{Attempt, HistoryEntry, Job, JobLink};
use crate::ledger::standing_orders::Run;

/// A nullable `jsonb` column decoded into `T`.
fn decode_opt<T: serde::de::DeserializeOwned>(
    row: &postgres::Row,
    column: &str,
) -> Result<Option<T>> {
    let value: Option<serde_json::Value> = row.try_get(column)?;
    value
        .map(|v| {
            serde_json::from_value(v).map_err(|e| {
                Error::failure(format!("unexpected row shape in column {column}: {e}"))
            })
        })
        .transpose()
}

/// The id of the one archived job of `namespace` whose id starts with `prefix`.
pub fn resolve_archived_prefix(
    client: &mut impl postgres::GenericClient,
    namespace: &str,
    prefix: &str,
) -> Result<Uuid> {
    let (lo, hi) = crate::ledger::jobs::prefix_range(prefix)?;
    let rows = client.query(
        "select id from archived_jobs where namespace = $3 and id between $1 and $2
          order by id limit 2",
        &[&lo, &hi, &namespace],
    )?;
    match rows.as_slice() {
        [] => Err(Error::not_found(format!(
            "no archived job id of namespace {namespace} starts with {prefix}"
        ))),
        [one] => Ok(one.try_get(0)?),
        _ => Err(Error::usage(format!(
            "{prefix} is the start of more than one archived job id; give more characters"
        ))),
    }
}

/// Builds the trace of `scope` from the archive (a job id needs no namespace).
pub fn trace_archived(
    client: &mut impl postgres::GenericClient,
    namespace: &str,
    scope: &Scope,
) -> Result<Trace> {
    let limit = MAX_JOBS + 1;
    let (label, rows, focus) = match scope {
        Scope::Job(id) => {
            let rows = client.query(
                "with recursive up(id, parent, depth) as (
                   select id, parent_job_id, 0 from archived_jobs where id = $1
                   union all
                   select a.id, a.parent_job_id, up.depth + 1
                     from archived_jobs a join up on a.id = up.parent
                    where up.depth < 100
                 ), down(id, depth) as (
                   select id, 0 from archived_jobs where id = $1
                   union all
                   select a.id, down.depth + 1
                     from archived_jobs a join down on a.parent_job_id = down.id
                    where down.depth < 100
                 ), ids as (select id from up union select id from down limit $2)
                 select a.* from archived_jobs a join ids using (id) order by a.created_at, a.id",
                &[id, &limit],
            )?;
            if rows.is_empty() {
                return Err(Error::not_found(format!("no archived job {id}")));
            }
            (format!("archived job {id}"), rows, Some(*id))
        }
        Scope::Flow(key) => (
            format!("archived flow {key}"),
            client.query(
                "select * from archived_jobs where namespace = $1 and flow_key = $2
                  order by created_at, id limit $3",
                &[&namespace, key, &limit],
            )?,
            None,
        ),
        Scope::Correlation(key) => (
            format!("archived correlation {key}"),
            client.query(
                "select * from archived_jobs where namespace = $1 and correlation_key = $2
                  order by created_at, id limit $3",
                &[&namespace, key, &limit],
            )?,
            None,
        ),
    };
    if rows.is_empty() {
        return Err(Error::not_found(format!(
            "nothing archived in namespace {namespace} for {label}"
        )));
    }
    let truncated = rows.len() as i64 > MAX_JOBS;
    let mut parts = Parts {
        focus,
        ..Parts::default()
    };
    let mut jobs = Vec::new();
    for row in rows.iter().take(MAX_JOBS as usize) {
        let job: Job = decode(row, "job")?;
        let id = job.id;
        parts
            .attempts
            .insert(id, decode::<Vec<Attempt>>(row, "attempts")?);
        parts
            .history
            .insert(id, decode::<Vec<HistoryEntry>>(row, "history")?);
        parts
            .events
            .insert(id, decode::<Vec<Event>>(row, "events")?);
        parts
            .deps
            .insert(id, decode::<Vec<JobLink>>(row, "depends_on")?);
        if let Some(run) = decode_opt::<Run>(row, "standing_order_run")? {
            parts.runs.insert(id, run);
        }
        if let Some(o) = decode_opt::<Opportunity>(row, "opportunity")? {
            parts.opportunities.insert(id, o);
        }
        if let Some(e) = decode_opt::<Event>(row, "origin_event")? {
            parts.origins.insert(e.id, e);
        }
        parts
            .coding_runs
            .insert(id, decode::<Vec<CodingRun>>(row, "coding_runs")?);
        jobs.push(job);
    }
    let in_trace: BTreeSet<Uuid> = jobs.iter().map(|j| j.id).collect();
    let mut children_of: BTreeMap<Option<Uuid>, Vec<Job>> = BTreeMap::new();
    for job in jobs {
        let parent = job.parent_job_id.filter(|p| in_trace.contains(p));
        children_of.entry(parent).or_default().push(job);
    }
    parts.children_of = children_of;
    let roots = parts.build(None, 0);
    Ok(Trace {
        scope: label,
        job_count: in_trace.len(),
        roots,
        truncated,
    })
}
