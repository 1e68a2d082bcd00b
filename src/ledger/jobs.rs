//! Jobs: enqueue, claim, the agent's closing calls, lease renewal and recovery, reads.
//!
//! # States
//!
//! ```text
//! waiting ──(all dependencies succeeded)──> queued ──claim──> leased ──mark-running──> running
//! awaiting_approval ──(operator approves; command not built yet)──> queued | waiting
//! leased | running ──complete──> succeeded
//! leased | running ──block──> blocked            (reason required)
//! leased | running ──fail --retry-seconds N──> queued (after N s)   or dead when attempts are used up
//! leased | running ──fail──> dead
//! leased | running ──lease expired──> queued (backoff) | dead      (requeue_expired_jobs)
//! waiting ──(a dependency ended dead or cancelled)──> blocked
//! ```
//!
//! `succeeded`, `dead` and `cancelled` are terminal (no command cancels a job yet; the
//! operator commands approve/cancel/retry belong to the console). Every transition is guarded in SQL
//! (`... where status in (...)`) after the row is locked, and recorded in `job_history` by
//! trigger. A call that is not legal from the job's current state is a conflict (exit 4)
//! and writes nothing.
//!
//! # Fencing
//!
//! Each claim issues a fresh `lease_token`. The closing calls accept the token (and the
//! attempt number); when given and not current, the call is refused as a conflict, the job
//! is left untouched, and the stale call is appended to the presenting attempt's
//! `stale_calls`. Repeating a successful close with the same token (for example after a
//! timeout hid the first answer) returns the job unchanged instead of failing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::db::{decode, decode_all, set_actor};
use crate::error::{Error, Result};
use crate::ledger::input::{check_optional_text, check_required_text, SinceArg, TimeArg};

/// Lifecycle state of a job (the `job_status` enum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Claimable once `run_after` has passed.
    Queued,
    /// Claimed by a supervisor; the agent is not yet running.
    Leased,
    /// The agent is working on it.
    Running,
    /// The agent cannot proceed; `blocked_reason` says why.
    Blocked,
    /// Done.
    Succeeded,
    /// Kept for compatibility; jobs do not rest in this state (a failed attempt requeues or kills).
    Failed,
    /// Out of attempts, or failed without a retry.
    Dead,
    /// Dependencies have not all succeeded.
    Waiting,
    /// Held for an operator's approval.
    AwaitingApproval,
    /// Cancelled by an operator.
    Cancelled,
}

impl JobStatus {
    /// Every state, in lifecycle order.
    pub const ALL: [JobStatus; 10] = [
        JobStatus::Waiting,
        JobStatus::AwaitingApproval,
        JobStatus::Queued,
        JobStatus::Leased,
        JobStatus::Running,
        JobStatus::Blocked,
        JobStatus::Failed,
        JobStatus::Succeeded,
        JobStatus::Dead,
        JobStatus::Cancelled,
    ];

    /// The database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Leased => "leased",
            JobStatus::Running => "running",
            JobStatus::Blocked => "blocked",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Dead => "dead",
            JobStatus::Waiting => "waiting",
            JobStatus::AwaitingApproval => "awaiting_approval",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// Whether nothing but an operator's retry moves the job on.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Dead | JobStatus::Cancelled
        )
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for JobStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        JobStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = JobStatus::ALL.iter().map(|s| s.as_str()).collect();
                Error::usage(format!(
                    "unknown job status {s:?} (one of: {})",
                    names.join(", ")
                ))
            })
    }
}

/// State of one attempt (the `attempt_status` enum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptStatus {
    /// Claimed, agent not yet running.
    Leased,
    /// Agent running.
    Running,
    /// Closed with complete-job.
    Succeeded,
    /// Closed with block-job.
    Blocked,
    /// Closed with fail-job, or failed by the supervisor.
    Failed,
    /// The lease ran out before the job was closed.
    TimedOut,
    /// Cancelled, or released by a shutting-down supervisor before the agent was woken.
    Cancelled,
    /// The supervisor holding it went away before waking the agent; its restart released
    /// the job.
    Lost,
}

impl AttemptStatus {
    /// The database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptStatus::Leased => "leased",
            AttemptStatus::Running => "running",
            AttemptStatus::Succeeded => "succeeded",
            AttemptStatus::Blocked => "blocked",
            AttemptStatus::Failed => "failed",
            AttemptStatus::TimedOut => "timed_out",
            AttemptStatus::Cancelled => "cancelled",
            AttemptStatus::Lost => "lost",
        }
    }
}

/// A row of `jobs`. Field names are the column names.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: Uuid,
    pub namespace: String,
    pub parent_job_id: Option<Uuid>,
    pub flow_key: Option<String>,
    pub correlation_key: Option<String>,
    pub source_agent: Option<String>,
    pub target_agent: String,
    pub job_type: String,
    pub subject: String,
    pub priority: i32,
    pub dedupe_key: Option<String>,
    pub payload: Value,
    pub state: Value,
    pub result: Value,
    pub summary: Option<String>,
    pub status: JobStatus,
    pub run_after: DateTime<Utc>,
    pub lease_owner: Option<String>,
    pub leased_until: Option<DateTime<Utc>>,
    pub lease_token: Option<Uuid>,
    pub attempt_count: i32,
    pub max_attempts: i32,
    /// Attempts whose wake-up never reached the agent; they do not count toward
    /// `max_attempts`.
    pub unreached_attempts: i32,
    pub blocked_reason: Option<String>,
    pub last_error: Option<String>,
    pub requires_approval: bool,
    pub openclaw_task_ref: Option<String>,
    pub openclaw_session_key: Option<String>,
    pub openclaw_meta: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// A row of `job_attempts`.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub id: i64,
    pub job_id: Uuid,
    pub attempt_no: i32,
    pub dispatcher_id: Option<String>,
    pub status: AttemptStatus,
    pub summary: Option<String>,
    pub error: Option<String>,
    pub openclaw_task_ref: Option<String>,
    pub openclaw_session_key: Option<String>,
    pub response: Value,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub lease_token: Option<Uuid>,
    pub stale_calls: Value,
    pub wake_mode: Option<String>,
    pub woken_at: Option<DateTime<Utc>>,
    pub prompt_hash: Option<String>,
    pub prompt_version: Option<i32>,
    pub hook_status: Option<i32>,
    pub run_id: Option<String>,
    pub exit_code: Option<i32>,
    pub exit_signal: Option<i32>,
    pub stderr_tail: Option<String>,
    /// Memories retrieved into this attempt's prompt.
    #[serde(default)]
    pub memory_ids: Vec<Uuid>,
}

/// What a supervisor learned about an attempt (columns of `job_attempts`); `None` keeps
/// what is stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AttemptFacts {
    /// HTTP status the wake hook answered.
    pub hook_status: Option<i32>,
    /// The hook's runId.
    pub run_id: Option<String>,
    /// Exit code of an exec child.
    pub exit_code: Option<i32>,
    /// Signal that ended an exec child.
    pub exit_signal: Option<i32>,
    /// Last lines of the child's stderr.
    pub stderr_tail: Option<String>,
}

/// Writes `facts` onto attempt `attempt_no` of `job_id`, finished or not.
pub fn record_attempt_facts(
    client: &mut impl postgres::GenericClient,
    job_id: Uuid,
    attempt_no: i32,
    facts: &AttemptFacts,
) -> Result<()> {
    record_attempt_facts_and_get(client, job_id, attempt_no, facts).map(|_| ())
}

/// [`record_attempt_facts`], then reads the job, in one round trip.
pub fn record_attempt_facts_and_get(
    client: &mut impl postgres::GenericClient,
    job_id: Uuid,
    attempt_no: i32,
    facts: &AttemptFacts,
) -> Result<Job> {
    let row = client
        .query_opt(
            "with recorded as (
               update job_attempts
               set hook_status = coalesce($3, hook_status),
                   run_id = coalesce($4, run_id),
                   exit_code = coalesce($5, exit_code),
                   exit_signal = coalesce($6, exit_signal),
                   stderr_tail = coalesce($7, stderr_tail)
               where job_id = $1 and attempt_no = $2
               returning 1
             )
             select to_jsonb(j.*) as row, (select count(*) from recorded) as n
             from jobs j where j.id = $1",
            &[
                &job_id,
                &attempt_no,
                &facts.hook_status,
                &facts.run_id,
                &facts.exit_code,
                &facts.exit_signal,
                &facts.stderr_tail,
            ],
        )?
        .ok_or_else(|| Error::not_found(format!("job {job_id} not found")))?;
    decode(&row, "row")
}

/// The retry delay after attempt `attempt` failed: 10 s doubling per attempt, capped at
/// one hour, with +-20 % jitter (the same curve as `requeue_expired_jobs`).
pub fn retry_backoff_seconds(attempt: i32) -> i64 {
    let exponent = u32::try_from(attempt.saturating_sub(1).clamp(0, 20)).unwrap_or(0);
    let base = 10_i64.saturating_mul(1_i64 << exponent).min(3600);
    // Jitter from a random UUID: no extra dependency for 16 random bits.
    let bytes = Uuid::new_v4();
    let r = u16::from_le_bytes([bytes.as_bytes()[0], bytes.as_bytes()[1]]);
    let factor = 0.8 + 0.4 * f64::from(r) / f64::from(u16::MAX);
    ((base as f64) * factor).round() as i64
}

/// A row of `job_history`: one status change.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub id: i64,
    pub job_id: Uuid,
    pub namespace: String,
    pub from_status: Option<JobStatus>,
    pub to_status: JobStatus,
    pub attempt_no: i32,
    pub actor: String,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

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
    pub run_after: Option<TimeArg>,
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

/// The statuses in which a dedupe key is held (must match `jobs_active_dedupe_idx`).
const ACTIVE_STATUSES_SQL: &str =
    "('queued', 'leased', 'running', 'blocked', 'failed', 'waiting', 'awaiting_approval')";

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
        let row = tx
            .query_opt(
                "select namespace, flow_key, correlation_key from jobs where id = $1",
                &[&parent],
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
    }

    let mut deps = p.depends_on.clone();
    deps.sort();
    deps.dedup();
    let (status, blocked_reason) = initial_status(tx, p, &deps)?;

    let (run_at, run_in) = split_time(p.run_after);
    let sql = format!(
        "insert into jobs (id, namespace, parent_job_id, flow_key, correlation_key, source_agent,
                           target_agent, job_type, subject, priority, dedupe_key, payload, state,
                           status, run_after, max_attempts, requires_approval, blocked_reason,
                           openclaw_session_key)
         values (coalesce($1, gen_random_uuid()), $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
                 $14::text::job_status,
                 coalesce($15, now() + make_interval(secs => coalesce($16::float8, 0))),
                 $17, $18, $19, $20)
         on conflict (namespace, target_agent, dedupe_key)
           where dedupe_key is not null and status in {ACTIVE_STATUSES_SQL}
         do nothing
         returning to_jsonb(jobs.*) as row"
    );
    let existing_sql = format!(
        "select to_jsonb(j.*) as row from jobs j
         where namespace = $1 and target_agent = $2 and dedupe_key = $3
           and status in {ACTIVE_STATUSES_SQL}"
    );
    for _ in 0..3 {
        let inserted = tx.query_opt(
            &sql,
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
            &existing_sql,
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
    check_required_text("--namespace", &p.namespace)?;
    check_required_text("--target-agent", &p.target_agent)?;
    check_required_text("--job-type", &p.job_type)?;
    check_required_text("--subject", &p.subject)?;
    check_optional_text("--flow-key", p.flow_key.as_deref())?;
    check_optional_text("--correlation-key", p.correlation_key.as_deref())?;
    check_optional_text("--source-agent", p.source_agent.as_deref())?;
    if let Some(key) = &p.dedupe_key {
        check_required_text("--dedupe-key", key)?;
    }
    if !(1..=1000).contains(&p.priority) {
        return Err(Error::usage(format!(
            "--priority: {} is out of range (1 to 1000)",
            p.priority
        )));
    }
    if p.max_attempts < 1 {
        return Err(Error::usage(format!(
            "--max-attempts: {} must be at least 1",
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
    for (what, doc) in [("--payload", &p.payload), ("--state", &p.state)] {
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
                "--depends-on: job {} not found",
                missing.join(", ")
            )));
        }
        for row in &rows {
            let id: Uuid = row.try_get("id")?;
            let ns: String = row.try_get("namespace")?;
            if ns != p.namespace {
                return Err(Error::usage(format!(
                    "--depends-on: job {id} is in namespace {ns:?}, not {:?}",
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

fn split_time(t: Option<TimeArg>) -> (Option<DateTime<Utc>>, Option<f64>) {
    match t {
        None => (None, None),
        Some(TimeArg::At(at)) => (Some(at), None),
        Some(TimeArg::FromNow(d)) => (None, Some(d.num_milliseconds() as f64 / 1000.0)),
    }
}

/// The lease a closing call presents. Both fields optional; when given they must be current.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fence {
    /// The token issued with the claim.
    pub lease_token: Option<Uuid>,
    /// The attempt number issued with the claim.
    pub attempt: Option<i32>,
}

/// Who is calling, and as which command (recorded in history and stale-call notes).
#[derive(Debug, Clone)]
pub struct Caller {
    /// The acting agent or operator.
    pub actor: String,
    /// The command name, e.g. `complete-job`.
    pub command: &'static str,
}

/// What `complete-job` records.
#[derive(Debug, Clone, Default)]
pub struct CompleteParams {
    /// Result document (an object); kept as is when `None`.
    pub result: Option<Value>,
    /// One-line summary of what was done.
    pub summary: Option<String>,
    /// OpenClaw task reference.
    pub openclaw_task_ref: Option<String>,
    /// OpenClaw session key.
    pub openclaw_session_key: Option<String>,
    /// Nothing to do: `"no_work": true` is added to the result (a standing order's run
    /// then ends `no_work`).
    pub no_work: bool,
}

/// What `block-job` records.
#[derive(Debug, Clone, Default)]
pub struct BlockParams {
    /// Why the job cannot proceed (required, non-empty).
    pub blocked_reason: String,
    /// One-line summary.
    pub summary: Option<String>,
    /// Result document so far (an object).
    pub result: Option<Value>,
    /// OpenClaw task reference.
    pub openclaw_task_ref: Option<String>,
    /// OpenClaw session key.
    pub openclaw_session_key: Option<String>,
}

/// What `fail-job` records.
#[derive(Debug, Clone, Default)]
pub struct FailParams {
    /// The error (required, non-empty).
    pub last_error: String,
    /// One-line summary.
    pub summary: Option<String>,
    /// Result document so far (an object).
    pub result: Option<Value>,
    /// Retry after this many seconds (if attempts remain); without it the job goes dead.
    pub retry_seconds: Option<i64>,
    /// Close the attempt `timed_out` instead of `failed` (a supervisor killed it at its
    /// deadline).
    pub timed_out: bool,
    /// The wake-up never reached the agent (refused connection, 5xx, refused request):
    /// the attempt does not count toward `max_attempts`, so the job is always retried.
    pub unreached: bool,
    /// What the supervisor learned about the attempt (hook status, exit code, stderr).
    pub facts: AttemptFacts,
}

/// What `mark-running-job` records.
#[derive(Debug, Clone, Default)]
pub struct MarkRunningParams {
    /// OpenClaw task reference (e.g. the hook's runId).
    pub openclaw_task_ref: Option<String>,
    /// OpenClaw session key.
    pub openclaw_session_key: Option<String>,
    /// OpenClaw metadata document (replaces the stored one when given).
    pub openclaw_meta: Option<Value>,
    /// One-line summary.
    pub summary: Option<String>,
}

const LEASED_OR_RUNNING: &[JobStatus] = &[JobStatus::Leased, JobStatus::Running];

/// Marks a leased job running (or updates a running job's references).
pub fn mark_running(
    tx: &mut postgres::Transaction<'_>,
    job_id: Uuid,
    fence: Fence,
    caller: &Caller,
    p: &MarkRunningParams,
) -> Result<Job> {
    check_optional_text("--summary", p.summary.as_deref())?;
    check_openclaw_refs(
        p.openclaw_task_ref.as_deref(),
        p.openclaw_session_key.as_deref(),
    )?;
    fenced(
        tx,
        job_id,
        fence,
        caller,
        LEASED_OR_RUNNING,
        None,
        Some("agent running"),
        |tx, job| {
            let row = tx.query_one(
                "update jobs
                 set status = 'running',
                     openclaw_task_ref = coalesce($2, openclaw_task_ref),
                     openclaw_session_key = coalesce($3, openclaw_session_key),
                     openclaw_meta = coalesce($4, openclaw_meta),
                     summary = coalesce($5, summary)
                 where id = $1 and status in ('leased', 'running')
                 returning to_jsonb(jobs.*) as row",
                &[
                    &job.id,
                    &p.openclaw_task_ref,
                    &p.openclaw_session_key,
                    &p.openclaw_meta,
                    &p.summary,
                ],
            )?;
            tx.execute(
                "update job_attempts
                 set status = 'running',
                     openclaw_task_ref = coalesce($3, openclaw_task_ref),
                     openclaw_session_key = coalesce($4, openclaw_session_key)
                 where job_id = $1 and attempt_no = $2 and finished_at is null",
                &[
                    &job.id,
                    &job.attempt_count,
                    &p.openclaw_task_ref,
                    &p.openclaw_session_key,
                ],
            )?;
            decode(&row, "row")
        },
    )
}

/// Closes a job as succeeded.
pub fn complete(
    tx: &mut postgres::Transaction<'_>,
    job_id: Uuid,
    fence: Fence,
    caller: &Caller,
    p: &CompleteParams,
) -> Result<Job> {
    check_optional_text("--summary", p.summary.as_deref())?;
    check_openclaw_refs(
        p.openclaw_task_ref.as_deref(),
        p.openclaw_session_key.as_deref(),
    )?;
    fenced(
        tx,
        job_id,
        fence,
        caller,
        LEASED_OR_RUNNING,
        Some(JobStatus::Succeeded),
        p.summary.as_deref().or(Some("completed")),
        |tx, job| {
            let row = tx.query_one(
                "update jobs
                 set status = 'succeeded',
                     result = coalesce($2, result)
                              || case when $6 then jsonb_build_object('no_work', true) else '{}'::jsonb end,
                     summary = coalesce($3, summary),
                     blocked_reason = null,
                     last_error = null,
                     lease_owner = null,
                     leased_until = null,
                     completed_at = now(),
                     openclaw_task_ref = coalesce($4, openclaw_task_ref),
                     openclaw_session_key = coalesce($5, openclaw_session_key)
                 where id = $1 and status in ('leased', 'running')
                 returning to_jsonb(jobs.*) as row",
                &[
                    &job.id,
                    &p.result,
                    &p.summary,
                    &p.openclaw_task_ref,
                    &p.openclaw_session_key,
                    &p.no_work,
                ],
            )?;
            close_attempt(tx, job, "succeeded", p.summary.as_deref(), None)?;
            decode(&row, "row")
        },
    )
}

/// Closes a job as blocked (the agent cannot proceed without something outside it).
pub fn block(
    tx: &mut postgres::Transaction<'_>,
    job_id: Uuid,
    fence: Fence,
    caller: &Caller,
    p: &BlockParams,
) -> Result<Job> {
    check_required_text("--blocked-reason", &p.blocked_reason)?;
    check_optional_text("--summary", p.summary.as_deref())?;
    check_openclaw_refs(
        p.openclaw_task_ref.as_deref(),
        p.openclaw_session_key.as_deref(),
    )?;
    fenced(
        tx,
        job_id,
        fence,
        caller,
        LEASED_OR_RUNNING,
        Some(JobStatus::Blocked),
        Some(&p.blocked_reason),
        |tx, job| {
            let row = tx.query_one(
                "update jobs
                 set status = 'blocked',
                     blocked_reason = $2,
                     result = coalesce($3, result),
                     summary = coalesce($4, summary),
                     lease_owner = null,
                     leased_until = null,
                     openclaw_task_ref = coalesce($5, openclaw_task_ref),
                     openclaw_session_key = coalesce($6, openclaw_session_key)
                 where id = $1 and status in ('leased', 'running')
                 returning to_jsonb(jobs.*) as row",
                &[
                    &job.id,
                    &p.blocked_reason,
                    &p.result,
                    &p.summary,
                    &p.openclaw_task_ref,
                    &p.openclaw_session_key,
                ],
            )?;
            close_attempt(
                tx,
                job,
                "blocked",
                p.summary.as_deref(),
                Some(&p.blocked_reason),
            )?;
            decode(&row, "row")
        },
    )
}

/// Fails the current attempt: retries after `retry_seconds` while attempts remain,
/// otherwise (or without `retry_seconds`) the job goes dead.
pub fn fail(
    tx: &mut postgres::Transaction<'_>,
    job_id: Uuid,
    fence: Fence,
    caller: &Caller,
    p: &FailParams,
) -> Result<Job> {
    check_required_text("--last-error", &p.last_error)?;
    check_optional_text("--summary", p.summary.as_deref())?;
    if let Some(s) = p.retry_seconds {
        if !(0..=31_536_000).contains(&s) {
            return Err(Error::usage(format!(
                "--retry-seconds: {s} is out of range (0 to 31536000, one year)"
            )));
        }
    }
    // A retry is only repeated idempotently when it would not have retried.
    let idempotent = if p.retry_seconds.is_none() {
        Some(JobStatus::Dead)
    } else {
        None
    };
    fenced(
        tx,
        job_id,
        fence,
        caller,
        LEASED_OR_RUNNING,
        idempotent,
        Some(&p.last_error),
        |tx, job| {
            let counted = job.attempt_count - job.unreached_attempts;
            let retry = p
                .retry_seconds
                .filter(|_| p.unreached || counted < job.max_attempts);
            let row = tx.query_one(
                "update jobs
                 set status = case when $2::int8 is null then 'dead'::job_status
                                   else 'queued'::job_status end,
                     last_error = $3,
                     result = coalesce($4, result),
                     summary = coalesce($5, summary),
                     run_after = case when $2::int8 is null then run_after
                                      else now() + make_interval(secs => $2::int8) end,
                     completed_at = case when $2::int8 is null then now() else null end,
                     lease_owner = null,
                     leased_until = null,
                     lease_token = case when $2::int8 is null then lease_token else null end,
                     unreached_attempts = unreached_attempts + case when $6 then 1 else 0 end
                 where id = $1 and status in ('leased', 'running')
                 returning to_jsonb(jobs.*) as row",
                &[
                    &job.id,
                    &retry,
                    &p.last_error,
                    &p.result,
                    &p.summary,
                    &p.unreached,
                ],
            )?;
            let outcome = if p.timed_out { "timed_out" } else { "failed" };
            close_attempt(tx, job, outcome, p.summary.as_deref(), Some(&p.last_error))?;
            record_attempt_facts(tx, job.id, job.attempt_count, &p.facts)?;
            decode(&row, "row")
        },
    )
}

/// Extends a leased or running job's lease to `lease_seconds` from now.
pub fn renew_lease(
    tx: &mut postgres::Transaction<'_>,
    job_id: Uuid,
    fence: Fence,
    caller: &Caller,
    lease_seconds: i32,
) -> Result<Job> {
    if !(1..=86_400).contains(&lease_seconds) {
        return Err(Error::usage(format!(
            "--lease-seconds: {lease_seconds} is out of range (1 to 86400)"
        )));
    }
    fenced(
        tx,
        job_id,
        fence,
        caller,
        LEASED_OR_RUNNING,
        None,
        None,
        |tx, job| {
            let row = tx.query_one(
                "update jobs
                 set leased_until = now() + make_interval(secs => $2)
                 where id = $1 and status in ('leased', 'running')
                 returning to_jsonb(jobs.*) as row",
                &[&job.id, &f64::from(lease_seconds)],
            )?;
            decode(&row, "row")
        },
    )
}

/// What a supervisor records when it wakes the agent for a claimed job.
#[derive(Debug, Clone)]
pub struct WakeRecord {
    /// `hook` or `exec`.
    pub wake_mode: &'static str,
    /// sha256 of the job prompt.
    pub prompt_hash: String,
    /// Version of the prompt layout.
    pub prompt_version: i32,
    /// Memories the prompt carries.
    pub memory_ids: Vec<Uuid>,
}

/// Marks a leased job running because the supervisor is about to wake its agent, and
/// records how (mode, prompt hash) on the attempt.
///
/// One statement on the usual path (the dispatch latency is a handful of round trips);
/// when the fence does not match, the general fenced path runs to record and explain it.
pub fn mark_woken(
    tx: &mut postgres::Transaction<'_>,
    job_id: Uuid,
    fence: Fence,
    caller: &Caller,
    wake: &WakeRecord,
) -> Result<Job> {
    // The actor CTE is an uncorrelated subquery of the jobs update, so it runs first and
    // the history trigger sees the actor. The attempts update reads the jobs update, so
    // locks are taken jobs first, then job_attempts, as in every closing call.
    let row = tx.query_opt(
        "with actor as materialized (
           select set_config('agentbus.actor', $3, true) as a,
                  set_config('agentbus.reason', 'waking the agent', true) as r
         ),
         woken as (
           update jobs set status = 'running'
           where id = $1 and lease_token = $2 and status in ('leased', 'running')
             and ($7::int is null or attempt_count = $7)
             and exists (select 1 from actor)
           returning jobs.*
         ),
         attempt as (
           update job_attempts
           set status = 'running', wake_mode = $4, woken_at = now(),
               prompt_hash = $5, prompt_version = $6, memory_ids = $8
           where job_id = $1
             and attempt_no = (select attempt_count from woken)
             and finished_at is null
           returning 1
         )
         select to_jsonb(w.*) as row, (select count(*) from attempt) as attempts
         from woken w",
        &[
            &job_id,
            &fence.lease_token,
            &caller.actor,
            &wake.wake_mode,
            &wake.prompt_hash,
            &wake.prompt_version,
            &fence.attempt,
            &wake.memory_ids,
        ],
    )?;
    if let (Some(row), Some(_)) = (row, fence.lease_token) {
        return decode(&row, "row");
    }
    fenced(
        tx,
        job_id,
        fence,
        caller,
        LEASED_OR_RUNNING,
        None,
        Some("waking the agent"),
        |tx, job| {
            let row = tx.query_one(
                "update jobs set status = 'running'
                 where id = $1 and status in ('leased', 'running')
                 returning to_jsonb(jobs.*) as row",
                &[&job.id],
            )?;
            tx.execute(
                "update job_attempts
                 set status = 'running', wake_mode = $3, woken_at = now(),
                     prompt_hash = $4, prompt_version = $5, memory_ids = $6
                 where job_id = $1 and attempt_no = $2 and finished_at is null",
                &[
                    &job.id,
                    &job.attempt_count,
                    &wake.wake_mode,
                    &wake.prompt_hash,
                    &wake.prompt_version,
                    &wake.memory_ids,
                ],
            )?;
            decode(&row, "row")
        },
    )
}

/// Records that the hook admitted a run: the runId and status on the attempt and, when
/// the job is still this attempt's, the run reference and a lease long enough for the
/// run (`lease_seconds` from now, never shortened). One statement, locking the job before
/// the attempt like every closing call, so an agent closing the job at the same moment
/// cannot deadlock with it.
pub fn record_hook_admission(
    tx: &mut postgres::Transaction<'_>,
    job: &Job,
    hook_status: i32,
    run_id: Option<&str>,
    lease_seconds: f64,
) -> Result<()> {
    tx.execute(
        "with locked as materialized (
           select id from jobs where id = $1 for update
         ),
         extended as (
           update jobs
           set openclaw_task_ref = coalesce($3, openclaw_task_ref),
               leased_until = greatest(leased_until, now() + make_interval(secs => $4))
           where id = (select id from locked) and lease_token = $2
             and status in ('leased', 'running')
           returning 1
         ),
         attempt as (
           update job_attempts
           set hook_status = $5, run_id = coalesce($3, run_id)
           where job_id = (select id from locked) and attempt_no = $6
           returning 1
         ),
         agent as (
           update agents
           set wake_failures = 0, wake_backoff_until = null
           where namespace = $7 and agent_id = $8
             and (wake_failures <> 0 or wake_backoff_until is not null)
             and exists (select 1 from attempt)
           returning 1
         )
         select (select count(*) from extended), (select count(*) from agent)",
        &[
            &job.id,
            &job.lease_token,
            &run_id,
            &lease_seconds,
            &hook_status,
            &job.attempt_count,
            &job.namespace,
            &job.target_agent,
        ],
    )?;
    Ok(())
}

/// Puts a leased job whose agent was never woken back in the queue, ready at once; the
/// attempt ends `outcome` (`cancelled`: released by a shutting-down supervisor; `lost`:
/// found by the restart of the supervisor that held it) and does not count toward
/// `max_attempts`.
pub fn release_unwoken(
    tx: &mut postgres::Transaction<'_>,
    job_id: Uuid,
    fence: Fence,
    caller: &Caller,
    outcome: AttemptStatus,
    reason: &str,
) -> Result<Job> {
    if !matches!(outcome, AttemptStatus::Cancelled | AttemptStatus::Lost) {
        return Err(Error::usage(format!(
            "a released attempt ends cancelled or lost, not {}",
            outcome.as_str()
        )));
    }
    fenced(
        tx,
        job_id,
        fence,
        caller,
        &[JobStatus::Leased],
        None,
        Some(reason),
        |tx, job| {
            let row = tx.query_one(
                "update jobs
                 set status = 'queued', run_after = now(), lease_owner = null,
                     leased_until = null, lease_token = null,
                     unreached_attempts = unreached_attempts + 1
                 where id = $1 and status = 'leased'
                 returning to_jsonb(jobs.*) as row",
                &[&job.id],
            )?;
            close_attempt(tx, job, outcome.as_str(), None, Some(reason))?;
            decode(&row, "row")
        },
    )
}

fn check_openclaw_refs(task_ref: Option<&str>, session_key: Option<&str>) -> Result<()> {
    check_optional_text("--openclaw-task-ref", task_ref)?;
    check_optional_text("--openclaw-session-key", session_key)
}

fn close_attempt(
    tx: &mut impl postgres::GenericClient,
    job: &Job,
    status: &str,
    summary: Option<&str>,
    error: Option<&str>,
) -> Result<()> {
    tx.execute(
        "update job_attempts
         set status = $3::text::attempt_status,
             summary = coalesce($4, summary),
             error = coalesce($5, error),
             finished_at = now()
         where job_id = $1 and attempt_no = $2 and finished_at is null",
        &[&job.id, &job.attempt_count, &status, &summary, &error],
    )?;
    Ok(())
}

/// The shared shape of every fenced write: lock the job, check the fence, check the state,
/// write, commit. A stale fence is noted on the presenting attempt and committed, then
/// refused; an illegal state writes nothing.
#[allow(clippy::too_many_arguments)]
fn fenced(
    tx: &mut postgres::Transaction<'_>,
    job_id: Uuid,
    fence: Fence,
    caller: &Caller,
    allowed: &[JobStatus],
    idempotent_when: Option<JobStatus>,
    reason: Option<&str>,
    write: impl FnOnce(&mut postgres::Transaction<'_>, &Job) -> Result<Job>,
) -> Result<Job> {
    let row = tx
        .query_opt(
            "select to_jsonb(j.*) as row from jobs j where id = $1 for update",
            &[&job_id],
        )?
        .ok_or_else(|| Error::not_found(format!("job {job_id} not found")))?;
    let job: Job = decode(&row, "row")?;

    if let Some(stale) = stale_fence(&job, fence) {
        tx.execute(
            "update job_attempts
             set stale_calls = stale_calls || jsonb_build_array(jsonb_build_object(
                   'command', $3::text, 'actor', $4::text, 'at', now(),
                   'job_status', $5::text, 'job_attempt', $6::int))
             where job_id = $1
               and (lease_token = $2 or ($2 is null and attempt_no = $7))",
            &[
                &job.id,
                &fence.lease_token,
                &caller.command,
                &caller.actor,
                &job.status.as_str(),
                &job.attempt_count,
                &fence.attempt,
            ],
        )?;
        return Err(Error::conflict(stale)
            .with_hint(
                "this worker no longer owns the job; stop working on it (the call was recorded, the job left unchanged)",
            )
            .keeping_writes());
    }

    if !allowed.contains(&job.status) {
        // Repeating a close that already happened under this very lease is not an error.
        if idempotent_when == Some(job.status) && fence.lease_token.is_some() {
            return Ok(job);
        }
        let allowed: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
        return Err(Error::conflict(format!(
            "job {} is {}; only {} jobs can be changed this way",
            job.id,
            job.status,
            allowed.join(" or ")
        )));
    }

    set_actor(tx, &caller.actor, reason)?;
    let out = write(tx, &job)?;
    Ok(out)
}

fn stale_fence(job: &Job, fence: Fence) -> Option<String> {
    if let Some(token) = fence.lease_token {
        if job.lease_token != Some(token) {
            return Some(format!(
                "stale lease token: job {} is {} at attempt {}{}; token {} is not its current lease",
                job.id,
                job.status,
                job.attempt_count,
                job.lease_owner
                    .as_deref()
                    .map(|o| format!(", leased by {o}"))
                    .unwrap_or_default(),
                token
            ));
        }
    }
    if let Some(attempt) = fence.attempt {
        if attempt != job.attempt_count {
            return Some(format!(
                "stale attempt: job {} is at attempt {}, not {}",
                job.id, job.attempt_count, attempt
            ));
        }
    }
    None
}

/// What to claim.
#[derive(Debug, Clone)]
pub struct ClaimParams {
    /// Namespace to claim from.
    pub namespace: String,
    /// Who holds the leases (a supervisor id).
    pub lease_owner: String,
    /// Lease length.
    pub lease_seconds: i32,
    /// At most this many jobs.
    pub limit: i32,
    /// Only this agent's jobs.
    pub target_agent: Option<String>,
    /// The concurrency limit of agents whose `agents.max_concurrency` is unset
    /// (`None`: no limit).
    pub default_max_concurrency: Option<i32>,
    /// Whether agents without a wake mode of their own may be claimed.
    pub claim_unconfigured: bool,
}

/// Claims up to `limit` ready jobs fairly across agents (see `claim_jobs` in
/// `sql/0001_core.sql`). Each comes back `leased` with a fresh lease token.
pub fn claim(client: &mut impl postgres::GenericClient, p: &ClaimParams) -> Result<Vec<Job>> {
    check_required_text("--lease-owner", &p.lease_owner)?;
    if !(1..=86_400).contains(&p.lease_seconds) {
        return Err(Error::usage(format!(
            "--lease-seconds: {} is out of range (1 to 86400)",
            p.lease_seconds
        )));
    }
    if !(1..=10_000).contains(&p.limit) {
        return Err(Error::usage(format!(
            "--limit: {} is out of range (1 to 10000)",
            p.limit
        )));
    }
    let rows = client.query(
        "select to_jsonb(c.*) as row from claim_jobs($1, $2, $3, $4, $5, $6, $7) c",
        &[
            &p.namespace,
            &p.lease_owner,
            &p.lease_seconds,
            &p.limit,
            &p.target_agent,
            &p.default_max_concurrency,
            &p.claim_unconfigured,
        ],
    )?;
    decode_all(&rows, "row")
}

/// Recovers up to `limit` jobs whose lease expired (see `requeue_expired_jobs`).
pub fn requeue_expired(
    client: &mut impl postgres::GenericClient,
    namespace: &str,
    limit: i32,
) -> Result<Vec<Job>> {
    if !(1..=100_000).contains(&limit) {
        return Err(Error::usage(format!(
            "--limit: {limit} is out of range (1 to 100000)"
        )));
    }
    let rows = client.query(
        "select to_jsonb(r.*) as row from requeue_expired_jobs($1, $2) r",
        &[&namespace, &limit],
    )?;
    decode_all(&rows, "row")
}

/// A job one job depends on, or that depends on it.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobLink {
    pub id: Uuid,
    pub status: JobStatus,
    pub target_agent: String,
    pub subject: String,
}

/// A job with everything `show-job` prints about it.
#[derive(Debug, Clone, Serialize)]
pub struct JobDetail {
    /// The job row.
    #[serde(flatten)]
    pub job: Job,
    /// Jobs it waits for.
    pub depends_on: Vec<JobLink>,
    /// Jobs waiting for it.
    pub dependents: Vec<JobLink>,
    /// Every attempt, oldest first.
    pub attempts: Vec<Attempt>,
    /// Every status change, oldest first.
    pub history: Vec<HistoryEntry>,
}

/// Reads one job.
pub fn get(client: &mut impl postgres::GenericClient, job_id: Uuid) -> Result<Job> {
    let row = client
        .query_opt(
            "select to_jsonb(j.*) as row from jobs j where id = $1",
            &[&job_id],
        )?
        .ok_or_else(|| Error::not_found(format!("job {job_id} not found")))?;
    decode(&row, "row")
}

/// Reads one job with its dependencies, attempts and history.
pub fn show(client: &mut impl postgres::GenericClient, job_id: Uuid) -> Result<JobDetail> {
    let job = get(client, job_id)?;
    let links =
        "select jsonb_build_object('id', j.id, 'status', j.status, 'target_agent', j.target_agent,
                                           'subject', j.subject) as row
                 from job_dependencies d join jobs j on j.id = ";
    let depends_on = client.query(
        &format!("{links} d.depends_on_job_id where d.job_id = $1 order by j.created_at"),
        &[&job_id],
    )?;
    let dependents = client.query(
        &format!("{links} d.job_id where d.depends_on_job_id = $1 order by j.created_at"),
        &[&job_id],
    )?;
    let attempts = client.query(
        "select to_jsonb(a.*) as row from job_attempts a where job_id = $1 order by attempt_no",
        &[&job_id],
    )?;
    let history = client.query(
        "select to_jsonb(h.*) as row from job_history h where job_id = $1 order by id",
        &[&job_id],
    )?;
    Ok(JobDetail {
        job,
        depends_on: decode_all(&depends_on, "row")?,
        dependents: decode_all(&dependents, "row")?,
        attempts: decode_all(&attempts, "row")?,
        history: decode_all(&history, "row")?,
    })
}

/// Filters for `list-jobs`.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    /// Namespace.
    pub namespace: String,
    /// Only jobs for this agent.
    pub target_agent: Option<String>,
    /// Only jobs enqueued by this agent.
    pub source_agent: Option<String>,
    /// Only jobs in these states (any, when empty).
    pub statuses: Vec<JobStatus>,
    /// Only jobs of this type.
    pub job_type: Option<String>,
    /// Only jobs created in this window.
    pub since: Option<SinceArg>,
    /// Only jobs of this flow.
    pub flow_key: Option<String>,
    /// Only jobs with this correlation key.
    pub correlation_key: Option<String>,
    /// At most this many (newest first).
    pub limit: i64,
}

/// Lists jobs, newest first.
pub fn list(client: &mut impl postgres::GenericClient, p: &ListParams) -> Result<Vec<Job>> {
    if !(1..=100_000).contains(&p.limit) {
        return Err(Error::usage(format!(
            "--limit: {} is out of range (1 to 100000)",
            p.limit
        )));
    }
    let statuses: Option<Vec<&str>> = if p.statuses.is_empty() {
        None
    } else {
        Some(p.statuses.iter().map(|s| s.as_str()).collect())
    };
    let (since_at, since_secs) = match p.since {
        None => (None, None),
        Some(SinceArg::At(at)) => (Some(at), None),
        Some(SinceArg::Ago(d)) => (None, Some(d.num_seconds() as f64)),
    };
    let rows = client.query(
        "select to_jsonb(j.*) as row from jobs j
         where namespace = $1
           and ($2::text is null or target_agent = $2)
           and ($3::text is null or source_agent = $3)
           and ($4::text[] is null or status::text = any($4))
           and ($5::text is null or job_type = $5)
           and ($6::timestamptz is null or created_at >= $6)
           and ($7::float8 is null or created_at >= now() - make_interval(secs => $7))
           and ($9::text is null or flow_key = $9)
           and ($10::text is null or correlation_key = $10)
         order by created_at desc, id
         limit $8",
        &[
            &p.namespace,
            &p.target_agent,
            &p.source_agent,
            &statuses,
            &p.job_type,
            &since_at,
            &since_secs,
            &p.limit,
            &p.flow_key,
            &p.correlation_key,
        ],
    )?;
    decode_all(&rows, "row")
}
