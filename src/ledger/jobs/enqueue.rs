//! Enqueue: validation, dedupe, dependencies and the first state of a new job.
//!
//! The only place that inserts into `jobs`: conversions and standing orders call [`enqueue`]
//! inside their own transaction.

use super::{Job, JobStatus};
use crate::db::{decode, set_actor};
use crate::error::{Error, Result};
use crate::ledger::time::When;
use crate::ledger::validate::{
    check_name, check_optional_key, check_optional_name, check_required_text,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// What to enqueue.
#[derive(Debug, Clone)]
pub struct EnqueueParams {
    /// A caller-chosen id (so a script can know it before enqueuing); generated if `None`.
    pub id: Option<Uuid>,
    /// Namespace (a fleet or tenant).
    pub namespace: String,
    /// The job that asked for this one.
    pub parent_job_id: Option<Uuid>,
    /// Groups the jobs of one flow.
    pub flow_key: Option<String>,
    /// Ties jobs to an outside thing (`opportunity:42`, a ticket).
    pub correlation_key: Option<String>,
    /// The agent asking.
    pub source_agent: Option<String>,
    /// The agent that should do it.
    pub target_agent: String,
    /// `reactive`, `scheduled`, `proactive`, ...
    pub job_type: String,
    /// What to do, in a few words.
    pub subject: String,
    /// 1 (lowest) to 1000 (highest).
    pub priority: i32,
    /// At most one active job per (namespace, target agent, dedupe key).
    pub dedupe_key: Option<String>,
    /// Input document (an object).
    pub payload: Value,
    /// Working state document (an object).
    pub state: Value,
    /// Not claimable before this.
    pub run_after: Option<When>,
    /// Attempts before the job goes dead.
    pub max_attempts: i32,
    /// Jobs that must succeed first.
    pub depends_on: Vec<Uuid>,
    /// Hold in `awaiting_approval` until an operator approves.
    pub requires_approval: bool,
    /// Who is enqueuing (recorded in the history).
    pub actor: String,
    /// Why, for the history (`enqueued` unless the job comes from a conversion or a
    /// standing order).
    pub reason: String,
    /// The OpenClaw session the agent should run in (standing orders may name one).
    pub openclaw_session_key: Option<String>,
}

impl EnqueueParams {
    /// A job with the column defaults: priority 100, 5 attempts, empty payload and state,
    /// claimable now, no dependencies, no approval gate.
    pub fn new(
        namespace: impl Into<String>,
        target_agent: impl Into<String>,
        job_type: impl Into<String>,
        subject: impl Into<String>,
        actor: impl Into<String>,
    ) -> Self {
        EnqueueParams {
            id: None,
            namespace: namespace.into(),
            parent_job_id: None,
            flow_key: None,
            correlation_key: None,
            source_agent: None,
            target_agent: target_agent.into(),
            job_type: job_type.into(),
            subject: subject.into(),
            priority: 100,
            dedupe_key: None,
            payload: Value::Object(serde_json::Map::new()),
            state: Value::Object(serde_json::Map::new()),
            run_after: None,
            max_attempts: 5,
            depends_on: Vec::new(),
            requires_approval: false,
            actor: actor.into(),
            reason: "enqueued".into(),
            openclaw_session_key: None,
        }
    }
}

/// The result of an enqueue: the job, and whether it already existed.
#[derive(Debug, Clone, Serialize)]
pub struct Enqueued {
    /// The new job, or the existing active job with the same dedupe key.
    #[serde(flatten)]
    pub job: Job,
    /// True when an active job with the same dedupe key was returned instead.
    pub deduped: bool,
}

/// Enqueues a job (one transaction). Dependencies are locked while the new job is written,
/// so a dependency finishing at the same moment cannot leave it waiting forever.
pub fn enqueue(tx: &mut postgres::Transaction<'_>, p: &EnqueueParams) -> Result<Enqueued> {
    validate_enqueue(p)?;
    set_actor(tx, &p.actor, Some(&p.reason))?;

    if let Some(id) = p.id {
        if tx
            .query_opt("select 1 from jobs where id = $1", &[&id])?
            .is_some()
        {
            return Err(Error::conflict(format!(
                "a job with id {id} already exists"
            )));
        }
    }
    // A follow-up belongs to its parent's flow unless it names its own.
    let mut flow_key = p.flow_key.clone();
    let mut correlation_key = p.correlation_key.clone();
    if let Some(parent) = p.parent_job_id {
        // The parent's flow, and the fleet's hand-off rule for its agent, in one read.
        let row = tx
            .query_opt(
                "select namespace, flow_key, correlation_key, target_agent,
                        handoff_refusal($2, id, $3), session_user::text
                   from jobs where id = $1",
                &[&parent, &p.namespace, &p.target_agent],
            )?
            .ok_or_else(|| Error::not_found(format!("parent job {parent} not found")))?;
        let ns: String = row.try_get(0)?;
        if ns != p.namespace {
            return Err(Error::usage(format!(
                "parent job {parent} is in namespace {ns:?}, not {:?}",
                p.namespace
            )));
        }
        if flow_key.is_none() {
            flow_key = row.try_get(1)?;
        }
        if correlation_key.is_none() {
            correlation_key = row.try_get(2)?;
        }
        if let Some(why) = row.try_get::<_, Option<String>>(4)? {
            return Err(refuse_handoff(
                tx,
                p,
                parent,
                row.try_get(3)?,
                row.try_get(5)?,
                &why,
            ));
        }
    }

    let mut deps = p.depends_on.clone();
    deps.sort();
    deps.dedup();
    let (status, blocked_reason) = initial_status(tx, p, &deps)?;

    let (run_at, run_in) = split_time(p.run_after);
    let sql = "insert into jobs (id, namespace, parent_job_id, flow_key, correlation_key, source_agent,
                           target_agent, job_type, subject, priority, dedupe_key, payload, state,
                           status, run_after, max_attempts, requires_approval, blocked_reason,
                           openclaw_session_key)
         values (coalesce($1, gen_random_uuid()), $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
                 $14::text::job_status,
                 coalesce($15, now() + make_interval(secs => coalesce($16::float8, 0))),
                 $17, $18, $19, $20)
         on conflict (namespace, target_agent, dedupe_key)
           where dedupe_key is not null and job_active(status)
         do nothing
         returning to_jsonb(jobs.*) as row";
    // job_active() is the predicate of jobs_active_dedupe_idx (sql/0008), which the
    // conflict clause above must imply for PostgreSQL to pick that index as arbiter.
    let existing_sql = "select to_jsonb(j.*) as row from jobs j
         where namespace = $1 and target_agent = $2 and dedupe_key = $3
           and job_active(status)";
    for _ in 0..3 {
        let inserted = tx.query_opt(
            sql,
            &[
                &p.id,
                &p.namespace,
                &p.parent_job_id,
                &flow_key,
                &correlation_key,
                &p.source_agent,
                &p.target_agent,
                &p.job_type,
                &p.subject,
                &p.priority,
                &p.dedupe_key,
                &p.payload,
                &p.state,
                &status.as_str(),
                &run_at,
                &run_in,
                &p.max_attempts,
                &p.requires_approval,
                &blocked_reason,
                &p.openclaw_session_key,
            ],
        )?;
        if let Some(row) = inserted {
            let job: Job = decode(&row, "row")?;
            if !deps.is_empty() {
                tx.execute(
                    "insert into job_dependencies (job_id, depends_on_job_id)
                     select $1, unnest($2::uuid[])",
                    &[&job.id, &deps],
                )?;
            }
            return Ok(Enqueued {
                job,
                deduped: false,
            });
        }
        // An active job holds the dedupe key: return it. If it finished between the insert
        // and this read, the key is free again and the insert is retried.
        let existing = tx.query_opt(
            existing_sql,
            &[&p.namespace, &p.target_agent, &p.dedupe_key],
        )?;
        if let Some(row) = existing {
            let job: Job = decode(&row, "row")?;
            return Ok(Enqueued { job, deduped: true });
        }
    }
    Err(Error::temporary(
        "the dedupe key kept changing hands while enqueuing",
    ))
}

fn validate_enqueue(p: &EnqueueParams) -> Result<()> {
    check_name("`namespace`", &p.namespace)?;
    check_name("`target_agent`", &p.target_agent)?;
    check_required_text("`job_type`", &p.job_type)?;
    check_required_text("`subject`", &p.subject)?;
    check_optional_key("`flow_key`", p.flow_key.as_deref())?;
    check_optional_key("`correlation_key`", p.correlation_key.as_deref())?;
    check_optional_name("`source_agent`", p.source_agent.as_deref())?;
    if let Some(key) = &p.dedupe_key {
        check_required_text("`dedupe_key`", key)?;
    }
    if !(1..=1000).contains(&p.priority) {
        return Err(Error::usage(format!(
            "`priority`: {} is out of range (1 to 1000)",
            p.priority
        )));
    }
    if p.max_attempts < 1 {
        return Err(Error::usage(format!(
            "`max_attempts`: {} must be at least 1",
            p.max_attempts
        )));
    }
    if let Some(id) = p.id {
        if p.depends_on.contains(&id) {
            return Err(Error::usage(format!("job {id} cannot depend on itself")));
        }
        if p.parent_job_id == Some(id) {
            return Err(Error::usage(format!("job {id} cannot be its own parent")));
        }
    }
    for (what, doc) in [("`payload`", &p.payload), ("`state`", &p.state)] {
        if !doc.is_object() {
            return Err(Error::usage(format!("{what}: expected a JSON object")));
        }
    }
    Ok(())
}

/// Decides the new job's first state from its dependencies (locked `for share` so they
/// cannot finish unseen while this transaction runs).
fn initial_status(
    tx: &mut postgres::Transaction<'_>,
    p: &EnqueueParams,
    deps: &[Uuid],
) -> Result<(JobStatus, Option<String>)> {
    let mut all_succeeded = true;
    let mut ended: Option<(Uuid, JobStatus)> = None;
    if !deps.is_empty() {
        let rows = tx.query(
            "select id, namespace, status::text as status from jobs
             where id = any($1) order by id for share",
            &[&deps],
        )?;
        if rows.len() != deps.len() {
            let found: Vec<Uuid> = rows
                .iter()
                .filter_map(|r| r.try_get::<_, Uuid>("id").ok())
                .collect();
            let missing: Vec<String> = deps
                .iter()
                .filter(|d| !found.contains(d))
                .map(Uuid::to_string)
                .collect();
            return Err(Error::not_found(format!(
                "`depends_on`: job {} not found",
                missing.join(", ")
            )));
        }
        for row in &rows {
            let id: Uuid = row.try_get("id")?;
            let ns: String = row.try_get("namespace")?;
            if ns != p.namespace {
                return Err(Error::usage(format!(
                    "`depends_on`: job {id} is in namespace {ns:?}, not {:?}",
                    p.namespace
                )));
            }
            let status: JobStatus = row.try_get::<_, String>("status")?.parse()?;
            if status != JobStatus::Succeeded {
                all_succeeded = false;
            }
            if matches!(status, JobStatus::Dead | JobStatus::Cancelled) && ended.is_none() {
                ended = Some((id, status));
            }
        }
    }
    Ok(if p.requires_approval {
        (JobStatus::AwaitingApproval, None)
    } else if let Some((id, status)) = ended {
        (
            JobStatus::Blocked,
            Some(format!("dependency {id} ended {status}")),
        )
    } else if all_succeeded {
        (JobStatus::Queued, None)
    } else {
        (JobStatus::Waiting, None)
    })
}

fn split_time(t: Option<When>) -> (Option<DateTime<Utc>>, Option<f64>) {
    match t {
        None => (None, None),
        Some(When::At(at)) => (Some(at), None),
        Some(When::FromNow(d)) => (None, Some(d.num_milliseconds() as f64 / 1000.0)),
    }
}

/// Records a refused hand-off as a `guardrail.refused` event and returns the refusal (a
/// recorded one: the event is committed, nothing else is written). The rule is checked by
/// the same SQL function before the insert, so the refusal can be explained; the trigger
/// `jobs_handoffs` holds it for every other writer.
fn refuse_handoff(
    tx: &mut postgres::Transaction<'_>,
    p: &EnqueueParams,
    parent: Uuid,
    from: String,
    login: String,
    why: &str,
) -> Error {
    let recorded = crate::ledger::events::emit(
        tx,
        &crate::ledger::events::EmitParams {
            namespace: p.namespace.clone(),
            topic: "guardrail.refused".into(),
            source_agent: Some(from.clone()),
            source_job_id: Some(parent),
            dedupe_key: None,
            payload: serde_json::json!({
                "rule": "handoff",
                "from": from,
                "to": p.target_agent,
                "subject": p.subject,
                "claimed_actor": p.actor,
                "login": login,
                "reason": why,
            }),
        },
    );
    if let Err(e) = recorded {
        return e;
    }
    Error::not_permitted(format!("hand-off refused: {why}"))
        .with_hint("enqueue it for an agent in the handoffs list, or ask an operator")
        .keeping_writes()
}
