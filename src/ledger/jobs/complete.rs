//! Closing a job as succeeded: the agent's most frequent call, so its usual path is one
//! statement.

use super::close::{check_openclaw_refs, close_attempt, fenced, LEASED_OR_RUNNING};
use super::{Caller, Fence, Job, JobStatus};
use crate::db::decode;
use crate::db::{Session, Tx};
use crate::error::Result;
use crate::ledger::validate::check_optional_text;
use postgres::types::{ToSql, Type};
use serde_json::Value;
use std::sync::LazyLock;
use uuid::Uuid;

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

/// The job's columns a completion sets, shared by both paths ($1 job, $2 result,
/// $3 summary, $4 task ref, $5 session key, $6 no_work).
const SET_SUCCEEDED: &str = "status = 'succeeded',
     result = coalesce($2, result)
              || case when $6 then jsonb_build_object('no_work', true) else '{}'::jsonb end,
     summary = coalesce($3, summary),
     blocked_reason = null,
     last_error = null,
     lease_owner = null,
     leased_until = null,
     completed_at = now(),
     openclaw_task_ref = coalesce($4, openclaw_task_ref),
     openclaw_session_key = coalesce($5, openclaw_session_key)";

/// Closes a job as succeeded.
///
/// With a lease token that is current, one statement sets the actor, closes the job and
/// its attempt (locking the job before the attempt, like every closing call). Anything
/// else (no token, a stale one, a job already closed, a row the login may not change)
/// takes the general fenced path, which explains and records the refusal or repeats an
/// idempotent close; both paths leave the same rows.
///
/// On a [`crate::db::SessionTx`] the one statement is prepared once per connection, and
/// the freed slot it makes is announced (`jobs_ready`) by the session after its commit
/// instead of by the trigger inside it. A close on the general path that frees a slot is
/// announced by the trigger (a repeat or a refusal frees none).
pub fn complete<'c>(
    tx: &mut impl Tx<'c>,
    job_id: Uuid,
    fence: Fence,
    caller: &Caller,
    p: &CompleteParams,
) -> Result<Job> {
    check_params(p)?;
    let reason = p.summary.as_deref().unwrap_or("completed");
    let closed = match (fence.lease_token, fence.force) {
        (Some(token), false) => {
            let announce = tx.notifies_after_commit();
            let run =
                |sql, params: &[(&(dyn ToSql + Sync), Type)]| tx.query_typed_cached(sql, params);
            complete_current(
                run,
                job_id,
                token,
                fence.attempt,
                caller,
                reason,
                announce,
                p,
            )?
        }
        _ => None,
    };
    let Some(job) = closed else {
        // The general path: when it frees a slot the trigger announces it.
        return complete_fenced(tx.transaction(), job_id, fence, caller, reason, p);
    };
    if tx.notifies_after_commit() {
        // The one statement named this job in `agentbus.slot_notice`, so the trigger left
        // the freed slot's notice to the session, sent once the close is committed.
        tx.notify_after_commit("jobs_ready", slot_freed(&job));
    }
    Ok(job)
}

/// [`complete`] on a session, in one round trip when the lease token is current: the one
/// statement runs as a transaction of its own ([`Session::query_alone`]: no `BEGIN` or
/// `COMMIT` to wait for), then the session announces the freed slot. Anything else (no
/// token, a stale one, a job already closed) takes [`complete`]'s general fenced path in a
/// transaction (the one statement is not tried twice), with the same outcome and records. For a runtime that holds a connection and closes many jobs
/// (the one statement is prepared once); a command-line call is one transaction.
pub fn complete_on_session(
    session: &mut Session,
    job_id: Uuid,
    fence: Fence,
    caller: &Caller,
    p: &CompleteParams,
) -> Result<Job> {
    check_params(p)?;
    let reason = p.summary.as_deref().unwrap_or("completed");
    if let (Some(token), false) = (fence.lease_token, fence.force) {
        let run = |sql, params: &[(&(dyn ToSql + Sync), Type)]| {
            let values: Vec<&(dyn ToSql + Sync)> = params.iter().map(|(v, _)| *v).collect();
            session.query_alone(sql, &values)
        };
        // The session announces the slot: the statement names the job, so the trigger
        // leaves it.
        if let Some(job) =
            complete_current(run, job_id, token, fence.attempt, caller, reason, true, p)?
        {
            // A hint sent after the commit: the supervisor also polls.
            let _ = session.notify(&[("jobs_ready", slot_freed(&job))]);
            return Ok(job);
        }
    }
    // The one statement changed nothing: straight to the general path, whose trigger
    // announces a slot it frees.
    session.transaction(|tx| complete_fenced(tx.transaction(), job_id, fence, caller, reason, p))
}

/// Refuses what no path may write (before anything runs).
fn check_params(p: &CompleteParams) -> Result<()> {
    check_optional_text("`summary`", p.summary.as_deref())?;
    check_openclaw_refs(
        p.openclaw_task_ref.as_deref(),
        p.openclaw_session_key.as_deref(),
    )
}

/// The notice of a slot freed by closing `job`, on channel `jobs_ready` (as the trigger
/// `notify_job_slot_freed` words it).
fn slot_freed(job: &Job) -> String {
    serde_json::json!({
        "namespace": job.namespace,
        "target_agent": job.target_agent,
        "job_id": job.id,
        "slot_freed": true,
    })
    .to_string()
}

/// The general fenced path of [`complete`].
fn complete_fenced(
    tx: &mut postgres::Transaction<'_>,
    job_id: Uuid,
    fence: Fence,
    caller: &Caller,
    reason: &str,
    p: &CompleteParams,
) -> Result<Job> {
    fenced(
        tx,
        job_id,
        fence,
        caller,
        LEASED_OR_RUNNING,
        Some(JobStatus::Succeeded),
        Some(reason),
        |tx, job| {
            let row = tx.query_one(
                &format!(
                    "update jobs set {SET_SUCCEEDED}
                     where id = $1 and job_in_flight(status)
                     returning to_jsonb(jobs.*) as row"
                ),
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

/// The one-statement path, the statement run by `run` (in the caller's transaction, or
/// as a transaction of its own): `None` when the job is not in flight under this token
/// (and attempt), leaving everything as it was. `announce`: the caller sends the freed
/// slot's notice itself after the commit, so the trigger leaves it.
#[allow(clippy::too_many_arguments)]
fn complete_current(
    run: impl FnOnce(&'static str, &[(&(dyn ToSql + Sync), Type)]) -> Result<Vec<postgres::Row>>,
    job_id: Uuid,
    token: Uuid,
    attempt: Option<i32>,
    caller: &Caller,
    reason: &str,
    announce: bool,
    p: &CompleteParams,
) -> Result<Option<Job>> {
    let slot_notice = if announce {
        job_id.to_string()
    } else {
        String::new()
    };
    let params: [(&(dyn ToSql + Sync), Type); 11] = [
        (&job_id, Type::UUID),
        (&p.result, Type::JSONB),
        (&p.summary, Type::TEXT),
        (&p.openclaw_task_ref, Type::TEXT),
        (&p.openclaw_session_key, Type::TEXT),
        (&p.no_work, Type::BOOL),
        (&caller.actor, Type::TEXT),
        (&reason, Type::TEXT),
        (&token, Type::UUID),
        (&attempt, Type::INT4),
        (&slot_notice, Type::TEXT),
    ];
    let rows = run(COMPLETE_CURRENT.as_str(), &params)?;
    rows.first().map(|r| decode(r, "row")).transpose()
}

/// The one statement of [`complete_current`] ($1-$6 as in [`SET_SUCCEEDED`], $7 actor,
/// $8 reason, $9 lease token, $10 attempt or null, $11 the job's id when the caller
/// announces its freed slot itself, else empty). The settings CTE is an uncorrelated
/// subquery of the jobs update, so it runs before the row is changed and the history
/// trigger sees the actor. The lease token is also the session's, as on the general path,
/// for the guardrails of an agent login.
static COMPLETE_CURRENT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "with settings as materialized (
           select set_config('agentbus.actor', $7, true),
                  set_config('agentbus.reason', $8, true),
                  set_config('agentbus.lease_token', $9::uuid::text, true),
                  set_config('agentbus.slot_notice', $11, true)
         ),
         done as (
           update jobs set {SET_SUCCEEDED}
           where id = $1 and lease_token = $9 and job_in_flight(status)
             and ($10::int is null or attempt_count = $10)
             and exists (select 1 from settings)
           returning jobs.*
         ),
         attempt as (
           update job_attempts
           set status = 'succeeded', summary = coalesce($3, summary), finished_at = now()
           where job_id = $1
             and attempt_no = (select attempt_count from done)
             and finished_at is null
           returning 1
         )
         select to_jsonb(d.*) as row, (select count(*) from attempt) as attempts
         from done d"
    )
});
