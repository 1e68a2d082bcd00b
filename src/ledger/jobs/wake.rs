//! The supervisor's bookkeeping around a wake-up: the attempt's facts, the wake record,
//! the hook's admission, and giving back a job that was never woken.

use super::close::{close_attempt, fenced, LEASED_OR_RUNNING};
use super::{AttemptFacts, AttemptStatus, Caller, Fence, Job, JobStatus};
use crate::db::{decode, Prepare, Tx};
use crate::error::{Error, Result};
use postgres::types::Type;
use uuid::Uuid;

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
    let wake = facts.wake.as_ref();
    let row = client
        .query_opt(
            "with recorded as (
               update job_attempts
               set hook_status = coalesce($3, hook_status),
                   run_id = coalesce($4, run_id),
                   exit_code = coalesce($5, exit_code),
                   exit_signal = coalesce($6, exit_signal),
                   stderr_tail = coalesce($7, stderr_tail),
                   wake_mode = coalesce($8, wake_mode),
                   prompt_hash = coalesce($9, prompt_hash),
                   prompt_version = coalesce($10, prompt_version),
                   memory_ids = coalesce($11, memory_ids)
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
                &wake.map(|w| w.wake_mode),
                &wake.map(|w| w.prompt_hash.as_str()),
                &wake.map(|w| w.prompt_version),
                &wake.map(|w| w.memory_ids.as_slice()),
            ],
        )?
        .ok_or_else(|| Error::not_found(format!("job {job_id} not found")))?;
    decode(&row, "row")
}

/// What a supervisor records when it wakes the agent for a claimed job.
#[derive(Debug, Clone, PartialEq)]
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
/// records how (mode, prompt hash) on the attempt, through the general fenced path: a
/// fence that does not match is recorded and explained. The supervisor's usual case is
/// [`mark_woken_many`], one statement for a whole batch, which calls this for a job that
/// changed hands.
pub fn mark_woken(
    tx: &mut postgres::Transaction<'_>,
    job_id: Uuid,
    fence: Fence,
    caller: &Caller,
    wake: &WakeRecord,
) -> Result<Job> {
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
                 where id = $1 and job_in_flight(status)
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

/// One claimed job about to be woken, for [`mark_woken_many`].
#[derive(Debug, Clone)]
pub struct Waking {
    /// The job.
    pub job_id: Uuid,
    /// The lease it was claimed under.
    pub fence: Fence,
    /// How it is woken.
    pub record: WakeRecord,
}

/// Marks a batch of claimed jobs running (see [`mark_woken_many`]).
const MARK_WOKEN_MANY: &str = "with actor as materialized (
           select set_config('agentbus.actor', $1, true) as a,
                  set_config('agentbus.reason', 'waking the agent', true) as r
         ),
         w as (
           select * from jsonb_to_recordset($2::jsonb)
             as w(id uuid, token uuid, attempt int, mode text, hash text, version int,
                  memory_ids uuid[])
         ),
         woken as (
           update jobs j set status = 'running'
           from w
           where j.id = any($3::uuid[]) and j.id = w.id and j.lease_token = w.token
             and job_in_flight(j.status)
             and (w.attempt is null or j.attempt_count = w.attempt)
             and exists (select 1 from actor)
           returning j.*
         ),
         attempt as (
           update job_attempts a
           set status = 'running', wake_mode = w.mode, woken_at = now(),
               prompt_hash = w.hash, prompt_version = w.version, memory_ids = w.memory_ids
           from woken k join w on w.id = k.id
           where a.job_id = any($3::uuid[]) and a.job_id = k.id
             and a.attempt_no = k.attempt_count and a.finished_at is null
           returning 1
         )
         select k.id, to_jsonb(k.*) as row, (select count(*) from attempt) as attempts
         from woken k";

/// [`mark_woken`] for a batch of claimed jobs, in one statement on the usual path: every
/// job still held under its lease (token and attempt) is marked running with its wake
/// record. A job that changed hands since its claim gets the general path of
/// [`mark_woken`], so its `Err` says why; each of those runs in its own transaction (the batch is independent jobs,
/// and a stale fence is recorded by a commit of its own). Results are in the order of
/// `batch`.
pub fn mark_woken_many(
    client: &mut impl Prepare,
    caller: &Caller,
    batch: &[Waking],
) -> Result<Vec<Result<Job>>> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let items: Vec<serde_json::Value> = batch
        .iter()
        .map(|w| {
            serde_json::json!({
                "id": w.job_id,
                "token": w.fence.lease_token,
                "attempt": w.fence.attempt,
                "mode": w.record.wake_mode,
                "hash": w.record.prompt_hash,
                "version": w.record.prompt_version,
                "memory_ids": w.record.memory_ids,
            })
        })
        .collect();
    // The ids again as an array, so the jobs and attempts are read by their keys (see
    // record_hook_admissions).
    let ids: Vec<Uuid> = batch.iter().map(|w| w.job_id).collect();
    let statement = client.prepared(MARK_WOKEN_MANY)?;
    let rows = client.client().query(
        &statement,
        &[&caller.actor, &serde_json::Value::Array(items), &ids],
    )?;
    let mut woken = std::collections::HashMap::with_capacity(rows.len());
    for row in &rows {
        let id: Uuid = row.try_get("id")?;
        woken.insert(id, decode::<Job>(row, "row")?);
    }
    let mut out = Vec::with_capacity(batch.len());
    for w in batch {
        match woken.remove(&w.job_id) {
            Some(job) => out.push(Ok(job)),
            None => out.push(crate::db::transaction(client.client(), |tx| {
                mark_woken(tx, w.job_id, w.fence, caller, &w.record)
            })),
        }
    }
    Ok(out)
}

/// A hook's admission of a run, for [`record_hook_admissions`].
#[derive(Debug, Clone)]
pub struct Admission {
    /// The job.
    pub job_id: Uuid,
    /// The lease it was woken under.
    pub lease_token: Option<Uuid>,
    /// The attempt woken.
    pub attempt: i32,
    /// The HTTP status of the hook's answer.
    pub hook_status: i32,
    /// The gateway's `runId`.
    pub run_id: Option<String>,
    /// The lease the run gets, from now (never shortened).
    pub lease_seconds: f64,
    /// How the agent was woken (mode, prompt hash, memories).
    pub wake: WakeRecord,
    /// When the wake-up was sent. The attempt's `woken_at` is the database's clock at the
    /// recording minus the time since, so the hosts' clocks do not matter.
    pub sent: std::time::Instant,
}

/// The statement of [`record_hook_admissions`] ($1 the admissions as JSON, $2 their ids,
/// $3 the actor). The settings CTE is materialized and named by the jobs update, so the
/// history trigger sees the actor and reason of the `running` transition.
const RECORD_HOOK_ADMISSIONS: &str = "with settings as materialized (
            select set_config('agentbus.actor', $3, true) as a,
                   set_config('agentbus.reason', 'the gateway admitted the run', true) as r
          ),
          a as (
            select * from jsonb_to_recordset($1::jsonb)
              as a(id uuid, token uuid, attempt int, status int, run_id text, lease float8,
                   mode text, hash text, version int, memory_ids uuid[], ago float8)
          ),
          locked as materialized (
            select j.id from jobs j where j.id = any($2::uuid[]) order by j.id for update
          ),
          extended as (
            update jobs j
            set status = case when j.status = 'leased' then 'running'::job_status
                              else j.status end,
                openclaw_task_ref = coalesce(a.run_id, j.openclaw_task_ref),
                leased_until = greatest(j.leased_until, now() + make_interval(secs => a.lease))
            from a
            where j.id = any($2::uuid[]) and j.id = a.id and j.id in (select id from locked)
              and j.lease_token = a.token and job_in_flight(j.status)
              and j.attempt_count = a.attempt
              and exists (select 1 from settings)
            returning j.id
          ),
          attempt as (
            update job_attempts t
            set hook_status = a.status, run_id = coalesce(a.run_id, t.run_id),
                status = case when t.status = 'leased' and t.finished_at is null
                              then 'running'::attempt_status else t.status end,
                wake_mode = a.mode,
                woken_at = now() - make_interval(secs => greatest(a.ago, 0)),
                prompt_hash = a.hash,
                prompt_version = a.version,
                memory_ids = a.memory_ids
            from a
            where t.job_id = any($2::uuid[]) and t.job_id = a.id
              and t.job_id in (select id from locked) and t.attempt_no = a.attempt
            returning t.job_id
          )
          select a.id, exists (select 1 from attempt t where t.job_id = a.id) as found,
                 (select count(*) from extended) as extended
          from a";

/// Records that the hook admitted each run of a batch, in one statement. A hook wake-up
/// is sent while its job is still `leased` (no write between the claim and the request);
/// this is where it becomes `running`: when the job is still this attempt's, it is
/// marked running (unless the agent already closed it, or marked it running itself), and
/// gets the run reference and a lease long enough for the run (`lease_seconds` from now,
/// never shortened); the attempt gets the status, the runId and the wake record (mode,
/// prompt hash, memories, when it was sent), whether or not the agent already closed it.
/// The jobs are locked in id order before any attempt, so two batches, or a batch and an
/// agent closing one of its jobs, cannot deadlock. Returns, in the order of `batch`,
/// whether each attempt was found (the caller then clears those agents' wake back-off,
/// `agents::record_wake_successes`, in the same transaction).
pub fn record_hook_admissions<'c>(
    tx: &mut impl Tx<'c>,
    caller: &Caller,
    batch: &[Admission],
) -> Result<Vec<bool>> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let items: Vec<serde_json::Value> = batch
        .iter()
        .map(|a| {
            serde_json::json!({
                "id": a.job_id,
                "token": a.lease_token,
                "attempt": a.attempt,
                "status": a.hook_status,
                "run_id": a.run_id,
                "lease": a.lease_seconds,
                "mode": a.wake.wake_mode,
                "hash": a.wake.prompt_hash,
                "version": a.wake.prompt_version,
                "memory_ids": a.wake.memory_ids,
                "ago": a.sent.elapsed().as_secs_f64(),
            })
        })
        .collect();
    // The ids again as an array: `= any($2)` is what lets the planner read the jobs and
    // attempts by their keys whatever the size of the tables (a join against the JSON
    // rows was planned as a scan of every job).
    let ids: Vec<Uuid> = batch.iter().map(|a| a.job_id).collect();
    let items = serde_json::Value::Array(items);
    let rows = tx.query_typed_cached(
        RECORD_HOOK_ADMISSIONS,
        &[
            (&items, Type::JSONB),
            (&ids, Type::UUID_ARRAY),
            (&caller.actor, Type::TEXT),
        ],
    )?;
    let mut found = std::collections::HashMap::with_capacity(rows.len());
    for row in &rows {
        found.insert(
            row.try_get::<_, Uuid>("id")?,
            row.try_get::<_, bool>("found")?,
        );
    }
    Ok(batch
        .iter()
        .map(|a| found.get(&a.job_id).copied().unwrap_or(false))
        .collect())
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
