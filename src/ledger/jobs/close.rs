//! The agent's fenced calls: mark running, complete, block, fail, renew the lease.

use super::{record_attempt_facts, AttemptFacts, Job, JobStatus};
use crate::db::{decode, set_actor};
use crate::error::{Error, Result};
use crate::ledger::validate::{check_optional_text, check_required_text};
use serde_json::Value;
use uuid::Uuid;

/// The lease a closing call presents. Both fields optional; when given they must be current.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fence {
    /// The token issued with the claim.
    pub lease_token: Option<Uuid>,
    /// The attempt number issued with the claim.
    pub attempt: Option<i32>,
    /// An operator's explicit override: change a leased or running job without its lease
    /// (recorded in the history as forced). Without it, such a job needs the token or the
    /// attempt.
    pub force: bool,
}

/// Who is calling, and as which command (recorded in history and stale-call notes).
#[derive(Debug, Clone)]
pub struct Caller {
    /// The acting agent or operator.
    pub actor: String,
    /// The command name, e.g. `complete-job`.
    pub command: String,
}

/// What `block-job` records.
#[derive(Debug, Clone, Default)]
pub struct BlockParams {
    /// Why the job cannot proceed (required, non-empty).
    pub blocked_reason: String,
    /// The job it waits for: when that one succeeds (or, waiting for an approval, gets
    /// it), this one is queued again by itself.
    pub blocked_on: Option<Uuid>,
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

pub(super) const LEASED_OR_RUNNING: &[JobStatus] = &[JobStatus::Leased, JobStatus::Running];

/// Marks a leased job running (or updates a running job's references).
pub fn mark_running(
    tx: &mut postgres::Transaction<'_>,
    job_id: Uuid,
    fence: Fence,
    caller: &Caller,
    p: &MarkRunningParams,
) -> Result<Job> {
    check_optional_text("`summary`", p.summary.as_deref())?;
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
                 where id = $1 and job_in_flight(status)
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

/// Closes a job as blocked (the agent cannot proceed without something outside it).
pub fn block(
    tx: &mut postgres::Transaction<'_>,
    job_id: Uuid,
    fence: Fence,
    caller: &Caller,
    p: &BlockParams,
) -> Result<Job> {
    check_required_text("`blocked_reason`", &p.blocked_reason)?;
    check_optional_text("`summary`", p.summary.as_deref())?;
    if let Some(on) = p.blocked_on {
        if on == job_id {
            return Err(Error::usage("a job cannot be blocked on itself"));
        }
        let row = tx
            .query_opt(
                "select w.status::text from jobs w join jobs j on j.id = $2
                  where w.id = $1 and w.namespace = j.namespace",
                &[&on, &job_id],
            )?
            .ok_or_else(|| {
                Error::not_found(format!(
                    "job {on} (--blocked-on) not found in this job's namespace"
                ))
            })?;
        let status: String = row.try_get(0)?;
        if matches!(status.as_str(), "succeeded" | "cancelled" | "dead") {
            return Err(Error::conflict(format!(
                "job {on} is already {status}: nothing to wait for"
            )));
        }
    }
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
                     openclaw_session_key = coalesce($6, openclaw_session_key),
                     blocked_on_job_id = $7
                 where id = $1 and job_in_flight(status)
                 returning to_jsonb(jobs.*) as row",
                &[
                    &job.id,
                    &p.blocked_reason,
                    &p.result,
                    &p.summary,
                    &p.openclaw_task_ref,
                    &p.openclaw_session_key,
                    &p.blocked_on,
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
    check_required_text("`last_error`", &p.last_error)?;
    check_optional_text("`summary`", p.summary.as_deref())?;
    if let Some(s) = p.retry_seconds {
        if !(0..=31_536_000).contains(&s) {
            return Err(Error::usage(format!(
                "`retry_seconds`: {s} is out of range (0 to 31536000, one year)"
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
                 where id = $1 and job_in_flight(status)
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
            "`lease_seconds`: {lease_seconds} is out of range (1 to 86400)"
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
                 where id = $1 and job_in_flight(status)
                 returning to_jsonb(jobs.*) as row",
                &[&job.id, &f64::from(lease_seconds)],
            )?;
            decode(&row, "row")
        },
    )
}

pub(super) fn check_openclaw_refs(task_ref: Option<&str>, session_key: Option<&str>) -> Result<()> {
    check_optional_text("`openclaw_task_ref`", task_ref)?;
    check_optional_text("`openclaw_session_key`", session_key)
}

pub(super) fn close_attempt(
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
pub(super) fn fenced(
    tx: &mut postgres::Transaction<'_>,
    job_id: Uuid,
    fence: Fence,
    caller: &Caller,
    allowed: &[JobStatus],
    idempotent_when: Option<JobStatus>,
    reason: Option<&str>,
    write: impl FnOnce(&mut postgres::Transaction<'_>, &Job) -> Result<Job>,
) -> Result<Job> {
    // The lease presented is also the session's, for the guardrails: an agent login
    // changes only the jobs whose lease it holds (sql/0012_guardrails.sql).
    let row = tx
        .query_opt(
            "select to_jsonb(j.*) as row,
                    set_config('agentbus.lease_token',
                               coalesce($2::text, current_setting('agentbus.lease_token', true), ''),
                               true) as lease
               from jobs j where id = $1 for update",
            &[&job_id, &fence.lease_token.map(|t| t.to_string())],
        )?
        .ok_or_else(|| Error::not_found(format!("job {job_id} not found")))?;
    let job: Job = decode(&row, "row")?;

    if job.status.is_in_flight()
        && fence.lease_token.is_none()
        && fence.attempt.is_none()
        && !fence.force
    {
        return Err(Error::conflict(format!(
            "job {} is {}{}: pass its `lease_token` (inside the run it comes from $AGENTBUS_LEASE_TOKEN) or its `attempt`; an operator may override with `force`",
            job.id,
            job.status,
            job.lease_owner
                .as_deref()
                .map(|o| format!(" (lease held by {o})"))
                .unwrap_or_default()
        ))
        .with_hint("a worker without the lease must not close work another worker holds"));
    }
    let reason = if fence.force && job.status.is_in_flight() && fence.lease_token.is_none() {
        Some(format!("forced: {}", reason.unwrap_or(&caller.command)))
    } else {
        reason.map(str::to_string)
    };
    let reason = reason.as_deref();
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
