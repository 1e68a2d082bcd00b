//! The agent's closing calls: mark-running-job, complete-job, block-job, fail-job,
//! renew-job-lease (all fenced by the lease token).

use super::args::{json_object, JobRef, OpenClawRefs};
use super::output::{self};
use super::Ctx;
use crate::error::{Error, Result};
use crate::ledger::jobs::{self, Caller, Fence};
use clap::Args;
use std::io::Read;
use uuid::Uuid;

/// The lease a closing call presents (fencing).
#[derive(Debug, Args)]
pub struct FenceArgs {
    /// Lease token issued with the claim; refused (exit 4) when it is no longer current.
    /// Defaults to $AGENTBUS_LEASE_TOKEN when the job is $AGENTBUS_JOB_ID
    #[arg(long, value_name = "UUID")]
    lease_token: Option<Uuid>,

    /// Attempt number issued with the claim; refused (exit 4) when it is no longer current
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    attempt: Option<i32>,

    /// Operators: change a leased or running job without its lease token (recorded in the
    /// history as forced). Without a token, an attempt or this, such a job is refused (exit 4)
    #[arg(long)]
    force: bool,
}

impl FenceArgs {
    /// The fence, taking the supervisor's token from the environment when this call is
    /// about the job the supervisor started (never for another job).
    fn resolve(&self, ctx: &Ctx, job_id: Uuid) -> Result<Fence> {
        let mut lease_token = self.lease_token;
        if lease_token.is_none() {
            let env_job = ctx.env("AGENTBUS_JOB_ID");
            if env_job.as_deref().map(str::trim) == Some(job_id.to_string().as_str()) {
                if let Some(raw) = ctx.env("AGENTBUS_LEASE_TOKEN") {
                    lease_token =
                        Some(Uuid::parse_str(raw.trim()).map_err(|_| {
                            Error::usage("AGENTBUS_LEASE_TOKEN is not a valid uuid")
                        })?);
                }
            }
        }
        Ok(Fence {
            lease_token,
            attempt: self.attempt,
            force: self.force,
        })
    }
}

/// Mark a leased job as running
///
/// Called when the agent starts work (the supervisor calls it when a hook admits the run).
/// Also updates the OpenClaw references of a running job. Legal from leased or running.
#[derive(Debug, Args)]
#[command(after_help = MARK_RUNNING_EXAMPLES)]
pub struct MarkRunningJobArgs {
    /// The job: its id or its first 8 or more characters (default: $AGENTBUS_JOB_ID)
    #[arg(env = "AGENTBUS_JOB_ID", value_name = "JOB_ID")]
    job_id: JobRef,

    #[command(flatten)]
    openclaw: OpenClawRefs,

    /// OpenClaw metadata: JSON object, @FILE or -
    #[arg(long, value_name = "JSON")]
    openclaw_meta: Option<String>,

    /// One-line summary
    #[arg(long)]
    summary: Option<String>,

    #[command(flatten)]
    fence: FenceArgs,
}

const MARK_RUNNING_EXAMPLES: &str = "\
Examples:
  agentbus mark-running-job \"$AGENTBUS_JOB_ID\" --openclaw-task-ref run_8f2c
  agentbus mark-running-job 7d4f0c1e-2b8a-4c55-9f0e-3a1b2c3d4e5f --lease-token \"$TOKEN\"";

pub fn mark_running(ctx: &mut Ctx, a: MarkRunningJobArgs, stdin: &mut dyn Read) -> Result<String> {
    let mut stdin_used = false;
    let params = jobs::MarkRunningParams {
        openclaw_task_ref: a.openclaw.openclaw_task_ref,
        openclaw_session_key: a.openclaw.openclaw_session_key,
        openclaw_meta: json_object(
            "--openclaw-meta",
            a.openclaw_meta.as_deref(),
            stdin,
            &mut stdin_used,
        )?,
        summary: a.summary,
    };
    let job_id = ctx.job_id(&a.job_id)?;
    let fence = a.fence.resolve(ctx, job_id)?;
    let caller = caller(ctx);
    let job = ctx.tx(|tx| jobs::mark_running(tx, job_id, fence, &caller, &params))?;
    output::json(&job)
}

/// Close a job as succeeded
///
/// Legal from leased or running. With a lease token that is no longer current (the lease
/// expired and the job was claimed again), nothing changes, the stale call is recorded on
/// the attempt, and the command exits 4. Repeating the same call with the same token after
/// it succeeded prints the job again and exits 0.
#[derive(Debug, Args)]
#[command(after_help = COMPLETE_EXAMPLES)]
pub struct CompleteJobArgs {
    /// The job: its id or its first 8 or more characters (default: $AGENTBUS_JOB_ID)
    #[arg(env = "AGENTBUS_JOB_ID", value_name = "JOB_ID")]
    job_id: JobRef,

    /// One-line summary of what was done
    #[arg(long)]
    summary: Option<String>,

    /// Result document: JSON object, @FILE or -
    #[arg(long, value_name = "JSON")]
    result: Option<String>,

    #[command(flatten)]
    openclaw: OpenClawRefs,

    /// The work was checked and there was nothing to do: recorded as "no_work": true in
    /// the result, and a standing order's run ends no_work (ran and found nothing), not
    /// completed
    #[arg(long)]
    no_work: bool,

    #[command(flatten)]
    fence: FenceArgs,
}

const COMPLETE_EXAMPLES: &str = "\
Examples:
  agentbus complete-job \"$AGENTBUS_JOB_ID\" --lease-token \"$AGENTBUS_LEASE_TOKEN\" \\
      --summary 'No blocking issues found' --result '{\"risk\":\"low\"}'
  make-report | agentbus complete-job --summary 'report attached' --result -
  agentbus complete-job --no-work --summary 'No new leads since the last scan'";

pub fn complete(ctx: &mut Ctx, a: CompleteJobArgs, stdin: &mut dyn Read) -> Result<String> {
    let mut stdin_used = false;
    let params = jobs::CompleteParams {
        result: json_object("--result", a.result.as_deref(), stdin, &mut stdin_used)?,
        summary: a.summary,
        openclaw_task_ref: a.openclaw.openclaw_task_ref,
        openclaw_session_key: a.openclaw.openclaw_session_key,
        no_work: a.no_work,
    };
    let job_id = ctx.job_id(&a.job_id)?;
    let fence = a.fence.resolve(ctx, job_id)?;
    let caller = caller(ctx);
    let job = ctx.tx(|tx| jobs::complete(tx, job_id, fence, &caller, &params))?;
    output::json(&job)
}

/// Close a job as blocked: the agent cannot proceed without something outside it
///
/// Legal from leased or running; --blocked-reason is required and must not be empty.
#[derive(Debug, Args)]
#[command(after_help = BLOCK_EXAMPLES)]
pub struct BlockJobArgs {
    /// The job: its id or its first 8 or more characters (default: $AGENTBUS_JOB_ID)
    #[arg(env = "AGENTBUS_JOB_ID", value_name = "JOB_ID")]
    job_id: JobRef,

    /// Why the job cannot proceed, and what would unblock it
    #[arg(long, value_name = "TEXT")]
    blocked_reason: String,

    /// The job it waits for: when that job succeeds (or, held for approval, is approved)
    /// this one is queued again by itself
    #[arg(long, value_name = "JOB")]
    blocked_on: Option<JobRef>,

    /// One-line summary
    #[arg(long)]
    summary: Option<String>,

    /// Result document so far: JSON object, @FILE or -
    #[arg(long, value_name = "JSON")]
    result: Option<String>,

    #[command(flatten)]
    openclaw: OpenClawRefs,

    #[command(flatten)]
    fence: FenceArgs,
}

const BLOCK_EXAMPLES: &str = "\
Examples:
  agentbus block-job \"$AGENTBUS_JOB_ID\" --blocked-reason 'needs the staging DB password from an operator'
  agentbus block-job --blocked-reason 'waiting for the security review' --blocked-on 7b1d2e3f";

pub fn block(ctx: &mut Ctx, a: BlockJobArgs, stdin: &mut dyn Read) -> Result<String> {
    let mut stdin_used = false;
    let blocked_on = match &a.blocked_on {
        Some(j) => Some(ctx.job_id(j)?),
        None => None,
    };
    let params = jobs::BlockParams {
        blocked_reason: a.blocked_reason,
        blocked_on,
        summary: a.summary,
        result: json_object("--result", a.result.as_deref(), stdin, &mut stdin_used)?,
        openclaw_task_ref: a.openclaw.openclaw_task_ref,
        openclaw_session_key: a.openclaw.openclaw_session_key,
    };
    let job_id = ctx.job_id(&a.job_id)?;
    let fence = a.fence.resolve(ctx, job_id)?;
    let caller = caller(ctx);
    let job = ctx.tx(|tx| jobs::block(tx, job_id, fence, &caller, &params))?;
    output::json(&job)
}

/// Fail the current attempt of a job
///
/// With --retry-seconds N the job is queued again after N seconds, while attempts remain
/// (attempt_count < max_attempts); otherwise, or without --retry-seconds, it goes dead.
/// Legal from leased or running.
#[derive(Debug, Args)]
#[command(after_help = FAIL_EXAMPLES)]
pub struct FailJobArgs {
    /// The job: its id or its first 8 or more characters (default: $AGENTBUS_JOB_ID)
    #[arg(env = "AGENTBUS_JOB_ID", value_name = "JOB_ID")]
    job_id: JobRef,

    /// What went wrong
    #[arg(long, value_name = "TEXT")]
    last_error: String,

    /// Retry after this many seconds (while attempts remain); without it the job goes dead
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    retry_seconds: Option<i64>,

    /// One-line summary
    #[arg(long)]
    summary: Option<String>,

    /// Result document so far: JSON object, @FILE or -
    #[arg(long, value_name = "JSON")]
    result: Option<String>,

    #[command(flatten)]
    fence: FenceArgs,
}

const FAIL_EXAMPLES: &str = "\
Examples:
  agentbus fail-job \"$AGENTBUS_JOB_ID\" --last-error 'CRM API returned 503' --retry-seconds 300
  agentbus fail-job \"$AGENTBUS_JOB_ID\" --last-error 'lead record is malformed; retrying will not help'";

pub fn fail(ctx: &mut Ctx, a: FailJobArgs, stdin: &mut dyn Read) -> Result<String> {
    let mut stdin_used = false;
    let params = jobs::FailParams {
        last_error: a.last_error,
        summary: a.summary,
        result: json_object("--result", a.result.as_deref(), stdin, &mut stdin_used)?,
        retry_seconds: a.retry_seconds,
        ..Default::default()
    };
    let job_id = ctx.job_id(&a.job_id)?;
    let fence = a.fence.resolve(ctx, job_id)?;
    let caller = caller(ctx);
    let job = ctx.tx(|tx| jobs::fail(tx, job_id, fence, &caller, &params))?;
    output::json(&job)
}

/// Extend the lease of a leased or running job
///
/// Long-running agents call this before the lease runs out, so the job is not recovered
/// as expired while they still work on it.
#[derive(Debug, Args)]
#[command(after_help = RENEW_EXAMPLES)]
pub struct RenewJobLeaseArgs {
    /// The job: its id or its first 8 or more characters (default: $AGENTBUS_JOB_ID)
    #[arg(env = "AGENTBUS_JOB_ID", value_name = "JOB_ID")]
    job_id: JobRef,

    /// New lease length, counted from now
    #[arg(
        long,
        default_value_t = 600,
        value_name = "SECONDS",
        allow_negative_numbers = true
    )]
    lease_seconds: i32,

    #[command(flatten)]
    fence: FenceArgs,
}

const RENEW_EXAMPLES: &str = "\
Examples:
  agentbus renew-job-lease \"$AGENTBUS_JOB_ID\" --lease-seconds 900";

pub fn renew(ctx: &mut Ctx, a: RenewJobLeaseArgs) -> Result<String> {
    let job_id = ctx.job_id(&a.job_id)?;
    let fence = a.fence.resolve(ctx, job_id)?;
    let caller = caller(ctx);
    let job = ctx.tx(|tx| jobs::renew_lease(tx, job_id, fence, &caller, a.lease_seconds))?;
    output::json(&job)
}

fn caller(ctx: &Ctx) -> Caller {
    Caller {
        actor: ctx.actor(),
        command: ctx.command().to_string(),
    }
}
