//! The whole story of a piece of work: a job with its parents and the follow-ups it
//! enqueued, as a tree, each node with its dependencies, attempts, history, emitted events
//! and the standing-order occurrence or opportunity it came from; or every job of one flow or
//! correlation key.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use uuid::Uuid;

use crate::db::decode_all;
use crate::error::{Error, Result};
use crate::ledger::events::Event;
use crate::ledger::jobs::{Attempt, HistoryEntry, Job, JobLink};
use crate::ledger::standing_orders::Run;

mod archived;
pub use archived::{resolve_archived_prefix, trace_archived};

/// At most this many jobs in one trace (the rest is reported as cut).
pub const MAX_JOBS: i64 = 500;

/// What to trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// One job, its ancestors and its descendants.
    Job(Uuid),
    /// Every job of a flow (`flow_key`).
    Flow(String),
    /// Every job with a correlation key.
    Correlation(String),
}

/// One job and everything that happened to it.
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    /// The job row.
    pub job: Job,
    /// True for the job the trace was asked for.
    pub focus: bool,
    /// Jobs it waited for.
    pub depends_on: Vec<JobLink>,
    /// Its attempts, oldest first.
    pub attempts: Vec<Attempt>,
    /// Its status changes, oldest first.
    pub history: Vec<HistoryEntry>,
    /// Events it emitted.
    pub events: Vec<Event>,
    /// The standing-order occurrence it carried.
    pub standing_order_run: Option<Run>,
    /// The opportunity it was converted from.
    pub opportunity: Option<crate::lanes::proactive::Opportunity>,
    /// The event a reaction made it for.
    pub origin_event: Option<Event>,
    /// The coding runs that executed it (a `dev.code_change` job), oldest first.
    pub coding_runs: Vec<crate::lanes::coding::record::CodingRun>,
    /// Follow-ups it enqueued (jobs whose parent it is), oldest first.
    pub children: Vec<Node>,
}

/// A trace.
#[derive(Debug, Clone, Serialize)]
pub struct Trace {
    /// What was traced, e.g. `job 3f2a...`, `flow prospect:acme`.
    pub scope: String,
    /// Top-level jobs (no parent in the trace), oldest first.
    pub roots: Vec<Node>,
    /// Jobs in the trace.
    pub job_count: usize,
    /// True when [`MAX_JOBS`] cut it short.
    pub truncated: bool,
}

/// Builds the trace of `scope` in `namespace` (a job id needs no namespace).
pub fn trace(
    client: &mut impl postgres::GenericClient,
    namespace: &str,
    scope: &Scope,
) -> Result<Trace> {
    let limit = MAX_JOBS + 1;
    let (label, ids, focus): (String, Vec<Uuid>, Option<Uuid>) = match scope {
        Scope::Job(id) => {
            if client
                .query_opt("select 1 from jobs where id = $1", &[id])?
                .is_none()
            {
                return Err(Error::not_found(format!("job {id} not found")));
            }
            let rows = client.query(
                "with recursive up(id, parent, depth) as (
                   select id, parent_job_id, 0 from jobs where id = $1
                   union all
                   select j.id, j.parent_job_id, up.depth + 1
                     from jobs j join up on j.id = up.parent
                    where up.depth < 100
                 ), down(id, depth) as (
                   select id, 0 from jobs where id = $1
                   union all
                   select j.id, down.depth + 1 from jobs j join down on j.parent_job_id = down.id
                    where down.depth < 100
                 )
                 select id from up union select id from down limit $2",
                &[id, &limit],
            )?;
            let ids = rows
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
            (format!("job {id}"), ids, Some(*id))
        }
        Scope::Flow(key) | Scope::Correlation(key) => {
            let column = if matches!(scope, Scope::Flow(_)) {
                "flow_key"
            } else {
                "correlation_key"
            };
            let sql = if matches!(scope, Scope::Flow(_)) {
                "select id from jobs where namespace = $1 and flow_key = $2
                  order by created_at, id limit $3"
            } else {
                "select id from jobs where namespace = $1 and correlation_key = $2
                  order by created_at, id limit $3"
            };
            let rows = client.query(sql, &[&namespace, key, &limit])?;
            if rows.is_empty() {
                return Err(Error::not_found(format!(
                    "no job in namespace {namespace} has {column} {key:?}"
                )));
            }
            let ids = rows
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
            let what = if column == "flow_key" {
                "flow"
            } else {
                "correlation"
            };
            (format!("{what} {key}"), ids, None)
        }
    };
    let truncated = ids.len() as i64 > MAX_JOBS;
    let ids: Vec<Uuid> = ids.into_iter().take(MAX_JOBS as usize).collect();

    let jobs: Vec<Job> = decode_all(
        &client.query(
            "select to_jsonb(j.*) as row from jobs j where id = any($1) order by created_at, id",
            &[&ids],
        )?,
        "row",
    )?;
    let mut attempts: BTreeMap<Uuid, Vec<Attempt>> = BTreeMap::new();
    for a in decode_all::<Attempt>(
        &client.query(
            "select to_jsonb(a.*) as row from job_attempts a where job_id = any($1) order by job_id, attempt_no",
            &[&ids],
        )?,
        "row",
    )? {
        attempts.entry(a.job_id).or_default().push(a);
    }
    let mut history: BTreeMap<Uuid, Vec<HistoryEntry>> = BTreeMap::new();
    for h in decode_all::<HistoryEntry>(
        &client.query(
            "select to_jsonb(h.*) as row from job_history h where job_id = any($1) order by id",
            &[&ids],
        )?,
        "row",
    )? {
        history.entry(h.job_id).or_default().push(h);
    }
    let mut events: BTreeMap<Uuid, Vec<Event>> = BTreeMap::new();
    for e in decode_all::<Event>(
        &client.query(
            "select to_jsonb(e.*) as row from events e where source_job_id = any($1) order by id",
            &[&ids],
        )?,
        "row",
    )? {
        if let Some(job) = e.source_job_id {
            events.entry(job).or_default().push(e);
        }
    }
    let mut deps: BTreeMap<Uuid, Vec<JobLink>> = BTreeMap::new();
    for r in client.query(
        "select d.job_id, jsonb_build_object('id', j.id, 'status', j.status, 'target_agent', j.target_agent,
                                             'subject', j.subject) as row
           from job_dependencies d join jobs j on j.id = d.depends_on_job_id
          where d.job_id = any($1) order by j.created_at",
        &[&ids],
    )? {
        let job: Uuid = r.try_get(0)?;
        let link: JobLink = crate::db::decode(&r, "row")?;
        deps.entry(job).or_default().push(link);
    }
    let mut runs: BTreeMap<Uuid, Run> = BTreeMap::new();
    for run in decode_all::<Run>(
        &client.query(
            "select to_jsonb(r.*) as row from standing_order_runs r where job_id = any($1)",
            &[&ids],
        )?,
        "row",
    )? {
        if let Some(job) = run.job_id {
            runs.insert(job, run);
        }
    }

    let opportunities = crate::lanes::proactive::converted_from(client, &ids)?;
    let origin_ids: Vec<i64> = jobs.iter().filter_map(|j| j.origin_event_id).collect();
    let origins: BTreeMap<i64, Event> = decode_all::<Event>(
        &client.query(
            "select to_jsonb(e.*) as row from events e where id = any($1)",
            &[&origin_ids],
        )?,
        "row",
    )?
    .into_iter()
    .map(|e| (e.id, e))
    .collect();

    let mut coding_runs: BTreeMap<Uuid, Vec<crate::lanes::coding::record::CodingRun>> =
        BTreeMap::new();
    for run in decode_all::<crate::lanes::coding::record::CodingRun>(
        &client.query(
            "select to_jsonb(r.*) as row from coding_runs r where job_id = any($1) order by created_at",
            &[&ids],
        )?,
        "row",
    )? {
        coding_runs.entry(run.job_id).or_default().push(run);
    }

    let in_trace: BTreeSet<Uuid> = jobs.iter().map(|j| j.id).collect();
    let mut children_of: BTreeMap<Option<Uuid>, Vec<Job>> = BTreeMap::new();
    for job in jobs {
        let parent = job.parent_job_id.filter(|p| in_trace.contains(p));
        children_of.entry(parent).or_default().push(job);
    }
    let mut parts = Parts {
        children_of,
        attempts,
        history,
        events,
        deps,
        runs,
        opportunities,
        origins,
        coding_runs,
        focus,
    };
    let roots = parts.build(None, 0);
    Ok(Trace {
        scope: label,
        job_count: in_trace.len(),
        roots,
        truncated,
    })
}

#[derive(Default)]
struct Parts {
    children_of: BTreeMap<Option<Uuid>, Vec<Job>>,
    attempts: BTreeMap<Uuid, Vec<Attempt>>,
    history: BTreeMap<Uuid, Vec<HistoryEntry>>,
    events: BTreeMap<Uuid, Vec<Event>>,
    deps: BTreeMap<Uuid, Vec<JobLink>>,
    runs: BTreeMap<Uuid, Run>,
    opportunities: BTreeMap<Uuid, crate::lanes::proactive::Opportunity>,
    origins: BTreeMap<i64, Event>,
    coding_runs: BTreeMap<Uuid, Vec<crate::lanes::coding::record::CodingRun>>,
    focus: Option<Uuid>,
}

impl Parts {
    fn build(&mut self, parent: Option<Uuid>, depth: usize) -> Vec<Node> {
        let jobs = self.children_of.remove(&parent).unwrap_or_default();
        jobs.into_iter()
            .map(|job| {
                let id = job.id;
                // Parent links cannot loop (a parent exists before its child), but the
                // depth guard keeps a hand-edited database from recursing forever.
                let children = if depth < 200 {
                    self.build(Some(id), depth + 1)
                } else {
                    Vec::new()
                };
                Node {
                    focus: self.focus == Some(id),
                    depends_on: self.deps.remove(&id).unwrap_or_default(),
                    attempts: self.attempts.remove(&id).unwrap_or_default(),
                    history: self.history.remove(&id).unwrap_or_default(),
                    events: self.events.remove(&id).unwrap_or_default(),
                    standing_order_run: self.runs.remove(&id),
                    opportunity: self.opportunities.remove(&id),
                    origin_event: job
                        .origin_event_id
                        .and_then(|e| self.origins.get(&e).cloned()),
                    coding_runs: self.coding_runs.remove(&id).unwrap_or_default(),
                    children,
                    job,
                }
            })
            .collect()
    }
}
