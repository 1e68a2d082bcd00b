//! Job commands: enqueue-job, mark-running-job, complete-job, block-job, fail-job,
//! renew-job-lease, claim-jobs, requeue-expired, show-job, list-jobs.

use std::io::Read;

use clap::Args;
use uuid::Uuid;

use super::args::json_object;
use super::output::{self, Format};
use super::Ctx;
use crate::error::{Error, Result};
use crate::ledger::input::{SinceArg, TimeArg};
use crate::ledger::jobs::{self, Caller, Fence, JobStatus};

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
        })
    }
}

/// Enqueue a job for an agent
///
/// Prints the job as JSON. With --dedupe-key, at most one active job exists per
/// (namespace, target agent, key): a second enqueue prints the existing job with
/// "deduped": true and exits 0. With --depends-on, the job waits until every dependency has
/// succeeded; a dependency that ends dead or cancelled blocks it. JSON documents are given
/// inline, as @FILE, or as - (standard input); each must be an object of at most 1 MiB.
#[derive(Debug, Args)]
#[command(after_help = ENQUEUE_EXAMPLES)]
pub struct EnqueueJobArgs {
    /// Namespace (fleet or tenant)
    #[arg(long, env = "AGENTBUS_NAMESPACE", default_value = "default")]
    namespace: String,

    /// Agent that should do the work
    #[arg(long, value_name = "AGENT")]
    target_agent: String,

    /// What to do, in a few words
    #[arg(long)]
    subject: String,

    /// Kind of job: reactive, scheduled, proactive, ...
    #[arg(long, default_value = "reactive", value_name = "TYPE")]
    job_type: String,

    /// Agent asking for the work
    #[arg(long, env = "AGENTBUS_AGENT", value_name = "AGENT")]
    source_agent: Option<String>,

    /// Job that asked for this one (default: $AGENTBUS_JOB_ID, the job being run)
    #[arg(long, value_name = "UUID")]
    parent_job_id: Option<Uuid>,

    /// Groups the jobs of one flow (default: the parent's)
    #[arg(long, value_name = "KEY")]
    flow_key: Option<String>,

    /// Ties the job to an outside thing, e.g. opportunity:42 (default: the parent's)
    #[arg(long, value_name = "KEY")]
    correlation_key: Option<String>,

    /// 1 (lowest) to 1000 (highest)
    #[arg(long, default_value_t = 100, allow_negative_numbers = true, value_parser = clap::value_parser!(i32).range(1..=1000))]
    priority: i32,

    /// At most one active job per (namespace, target agent, key)
    #[arg(long, value_name = "KEY")]
    dedupe_key: Option<String>,

    /// Input document: JSON object, @FILE or - for stdin
    #[arg(long, value_name = "JSON", default_value = "{}")]
    payload: String,

    /// Working-state document: JSON object, @FILE or -
    #[arg(long, value_name = "JSON", default_value = "{}")]
    state: String,

    /// Not claimable before: RFC 3339 time, or +90s / +15m / +2h / +1d
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    run_after: Option<TimeArg>,

    /// Attempts before the job goes dead
    #[arg(long, default_value_t = 5, allow_negative_numbers = true, value_parser = clap::value_parser!(i32).range(1..=1000))]
    max_attempts: i32,

    /// Job that must succeed first (repeatable)
    #[arg(long, value_name = "UUID")]
    depends_on: Vec<Uuid>,

    /// Hold the job in awaiting_approval until an operator approves it
    #[arg(long)]
    requires_approval: bool,

    /// Use this id instead of a generated one
    #[arg(long, value_name = "UUID")]
    id: Option<Uuid>,
}

const ENQUEUE_EXAMPLES: &str = "\
Examples:
  agentbus enqueue-job --target-agent security --job-type reactive \\
      --subject review_new_dependency \\
      --payload '{\"package\":\"fastapi\",\"version\":\"0.116.0\"}' \\
      --dedupe-key dep:fastapi:0.116.0
  JOB=$(agentbus enqueue-job --target-agent writer --subject draft_email --payload @lead.json | jq -r .id)
  agentbus enqueue-job --target-agent rep --subject send_sequence --depends-on \"$JOB\"";

fn parse_time(s: &str) -> std::result::Result<TimeArg, String> {
    TimeArg::parse(s).map_err(|e| e.message)
}

fn parse_since(s: &str) -> std::result::Result<SinceArg, String> {
    SinceArg::parse(s).map_err(|e| e.message)
}

pub fn enqueue(ctx: &mut Ctx, a: EnqueueJobArgs, stdin: &mut dyn Read) -> Result<String> {
    let mut stdin_used = false;
    let payload = json_object("--payload", Some(&a.payload), stdin, &mut stdin_used)?;
    let state = json_object("--state", Some(&a.state), stdin, &mut stdin_used)?;
    // Inside a run the job being run is the parent, so follow-ups join its flow.
    let parent_job_id = match a.parent_job_id {
        Some(id) => Some(id),
        None => match ctx.env("AGENTBUS_JOB_ID") {
            Some(raw) => Some(Uuid::parse_str(raw.trim()).map_err(|_| {
                Error::usage("AGENTBUS_JOB_ID is not a valid uuid (it names the parent job)")
            })?),
            None => None,
        },
    };
    let params = jobs::EnqueueParams {
        id: a.id,
        namespace: a.namespace,
        parent_job_id,
        flow_key: a.flow_key,
        correlation_key: a.correlation_key,
        source_agent: a.source_agent,
        target_agent: a.target_agent,
        job_type: a.job_type,
        subject: a.subject,
        priority: a.priority,
        dedupe_key: a.dedupe_key,
        payload: payload.unwrap_or_else(|| serde_json::json!({})),
        state: state.unwrap_or_else(|| serde_json::json!({})),
        run_after: a.run_after,
        max_attempts: a.max_attempts,
        depends_on: a.depends_on,
        requires_approval: a.requires_approval,
        actor: ctx.actor(),
        reason: "enqueued".into(),
        openclaw_session_key: None,
    };
    let out = ctx.tx(|tx| jobs::enqueue(tx, &params))?;
    output::json(&out)
}

/// Mark a leased job as running
///
/// Called when the agent starts work (the supervisor calls it when a hook admits the run).
/// Also updates the OpenClaw references of a running job. Legal from leased or running.
#[derive(Debug, Args)]
#[command(after_help = MARK_RUNNING_EXAMPLES)]
pub struct MarkRunningJobArgs {
    /// The job (default: $AGENTBUS_JOB_ID)
    #[arg(env = "AGENTBUS_JOB_ID", value_name = "JOB_ID")]
    job_id: Uuid,

    /// OpenClaw task or run reference
    #[arg(long, value_name = "REF")]
    openclaw_task_ref: Option<String>,

    /// OpenClaw session key
    #[arg(long, value_name = "KEY")]
    openclaw_session_key: Option<String>,

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
        openclaw_task_ref: a.openclaw_task_ref,
        openclaw_session_key: a.openclaw_session_key,
        openclaw_meta: json_object(
            "--openclaw-meta",
            a.openclaw_meta.as_deref(),
            stdin,
            &mut stdin_used,
        )?,
        summary: a.summary,
    };
    let fence = a.fence.resolve(ctx, a.job_id)?;
    let caller = caller(ctx, "mark-running-job");
    let job = ctx.tx(|tx| jobs::mark_running(tx, a.job_id, fence, &caller, &params))?;
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
    /// The job (default: $AGENTBUS_JOB_ID)
    #[arg(env = "AGENTBUS_JOB_ID", value_name = "JOB_ID")]
    job_id: Uuid,

    /// One-line summary of what was done
    #[arg(long)]
    summary: Option<String>,

    /// Result document: JSON object, @FILE or -
    #[arg(long, value_name = "JSON")]
    result: Option<String>,

    /// OpenClaw task or run reference
    #[arg(long, value_name = "REF")]
    openclaw_task_ref: Option<String>,

    /// OpenClaw session key
    #[arg(long, value_name = "KEY")]
    openclaw_session_key: Option<String>,

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
        openclaw_task_ref: a.openclaw_task_ref,
        openclaw_session_key: a.openclaw_session_key,
        no_work: a.no_work,
    };
    let fence = a.fence.resolve(ctx, a.job_id)?;
    let caller = caller(ctx, "complete-job");
    let job = ctx.tx(|tx| jobs::complete(tx, a.job_id, fence, &caller, &params))?;
    output::json(&job)
}

/// Close a job as blocked: the agent cannot proceed without something outside it
///
/// Legal from leased or running; --blocked-reason is required and must not be empty.
#[derive(Debug, Args)]
#[command(after_help = BLOCK_EXAMPLES)]
pub struct BlockJobArgs {
    /// The job (default: $AGENTBUS_JOB_ID)
    #[arg(env = "AGENTBUS_JOB_ID", value_name = "JOB_ID")]
    job_id: Uuid,

    /// Why the job cannot proceed, and what would unblock it
    #[arg(long, value_name = "TEXT")]
    blocked_reason: String,

    /// One-line summary
    #[arg(long)]
    summary: Option<String>,

    /// Result document so far: JSON object, @FILE or -
    #[arg(long, value_name = "JSON")]
    result: Option<String>,

    /// OpenClaw task or run reference
    #[arg(long, value_name = "REF")]
    openclaw_task_ref: Option<String>,

    /// OpenClaw session key
    #[arg(long, value_name = "KEY")]
    openclaw_session_key: Option<String>,

    #[command(flatten)]
    fence: FenceArgs,
}

const BLOCK_EXAMPLES: &str = "\
Examples:
  agentbus block-job \"$AGENTBUS_JOB_ID\" --blocked-reason 'needs the staging DB password from an operator'";

pub fn block(ctx: &mut Ctx, a: BlockJobArgs, stdin: &mut dyn Read) -> Result<String> {
    let mut stdin_used = false;
    let params = jobs::BlockParams {
        blocked_reason: a.blocked_reason,
        summary: a.summary,
        result: json_object("--result", a.result.as_deref(), stdin, &mut stdin_used)?,
        openclaw_task_ref: a.openclaw_task_ref,
        openclaw_session_key: a.openclaw_session_key,
    };
    let fence = a.fence.resolve(ctx, a.job_id)?;
    let caller = caller(ctx, "block-job");
    let job = ctx.tx(|tx| jobs::block(tx, a.job_id, fence, &caller, &params))?;
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
    /// The job (default: $AGENTBUS_JOB_ID)
    #[arg(env = "AGENTBUS_JOB_ID", value_name = "JOB_ID")]
    job_id: Uuid,

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
    let fence = a.fence.resolve(ctx, a.job_id)?;
    let caller = caller(ctx, "fail-job");
    let job = ctx.tx(|tx| jobs::fail(tx, a.job_id, fence, &caller, &params))?;
    output::json(&job)
}

/// Extend the lease of a leased or running job
///
/// Long-running agents call this before the lease runs out, so the job is not recovered
/// as expired while they still work on it.
#[derive(Debug, Args)]
#[command(after_help = RENEW_EXAMPLES)]
pub struct RenewJobLeaseArgs {
    /// The job (default: $AGENTBUS_JOB_ID)
    #[arg(env = "AGENTBUS_JOB_ID", value_name = "JOB_ID")]
    job_id: Uuid,

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
    let fence = a.fence.resolve(ctx, a.job_id)?;
    let caller = caller(ctx, "renew-job-lease");
    let job = ctx.tx(|tx| jobs::renew_lease(tx, a.job_id, fence, &caller, a.lease_seconds))?;
    output::json(&job)
}

/// Claim ready jobs with a lease (what the supervisor does)
///
/// Takes up to --limit queued jobs whose run_after has passed, fairly across agents (each
/// agent's best job before any agent's second), then by priority. Each comes back leased,
/// with a fresh lease_token and attempt_count + 1. Prints a JSON array (empty when nothing
/// is ready).
#[derive(Debug, Args)]
#[command(after_help = CLAIM_EXAMPLES)]
pub struct ClaimJobsArgs {
    /// Namespace
    #[arg(long, env = "AGENTBUS_NAMESPACE", default_value = "default")]
    namespace: String,

    /// Who holds the leases (a supervisor or worker id)
    #[arg(long, value_name = "ID")]
    lease_owner: String,

    /// Lease length
    #[arg(
        long,
        default_value_t = 600,
        value_name = "SECONDS",
        allow_negative_numbers = true
    )]
    lease_seconds: i32,

    /// At most this many jobs
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    limit: i32,

    /// Only this agent's jobs
    #[arg(long, value_name = "AGENT")]
    target_agent: Option<String>,
}

const CLAIM_EXAMPLES: &str = "\
Examples:
  agentbus claim-jobs --lease-owner dispatcher-1 --lease-seconds 600 --limit 10
  agentbus claim-jobs --lease-owner worker-7 --target-agent security | jq -r '.[].id'";

pub fn claim(ctx: &mut Ctx, a: ClaimJobsArgs) -> Result<String> {
    let params = jobs::ClaimParams {
        namespace: a.namespace,
        lease_owner: a.lease_owner,
        lease_seconds: a.lease_seconds,
        limit: a.limit,
        target_agent: a.target_agent,
        default_max_concurrency: None,
        claim_unconfigured: true,
    };
    let jobs = jobs::claim(ctx.db()?, &params)?;
    output::json(&jobs)
}

/// Recover jobs whose lease expired
///
/// The attempt is recorded as timed_out; the job is queued again after a backoff
/// (10 s doubling, at most 1 h, with jitter) while attempts remain, else it goes dead.
/// Prints the recovered jobs as a JSON array.
#[derive(Debug, Args)]
#[command(after_help = REQUEUE_EXAMPLES)]
pub struct RequeueExpiredArgs {
    /// Namespace
    #[arg(long, env = "AGENTBUS_NAMESPACE", default_value = "default")]
    namespace: String,

    /// At most this many jobs
    #[arg(long, default_value_t = 1000, allow_negative_numbers = true)]
    limit: i32,
}

const REQUEUE_EXAMPLES: &str = "\
Examples:
  agentbus requeue-expired
  agentbus requeue-expired --namespace sales --limit 100 | jq length";

pub fn requeue(ctx: &mut Ctx, a: RequeueExpiredArgs) -> Result<String> {
    let jobs = jobs::requeue_expired(ctx.db()?, &a.namespace, a.limit)?;
    output::json(&jobs)
}

/// Show one job with its dependencies, attempts and status history
#[derive(Debug, Args)]
#[command(after_help = SHOW_EXAMPLES)]
pub struct ShowJobArgs {
    /// The job
    #[arg(value_name = "JOB_ID")]
    job_id: Uuid,
}

const SHOW_EXAMPLES: &str = "\
Examples:
  agentbus show-job 7d4f0c1e-2b8a-4c55-9f0e-3a1b2c3d4e5f
  agentbus show-job \"$JOB\" --format json | jq '.attempts[-1].error'";

pub fn show(ctx: &mut Ctx, a: ShowJobArgs) -> Result<String> {
    let detail = jobs::show(ctx.db()?, a.job_id)?;
    match ctx.format() {
        Format::Json => output::json(&detail),
        Format::Table => Ok(output::job_detail_table(&detail)),
    }
}

/// List jobs, newest first
#[derive(Debug, Args)]
#[command(after_help = LIST_EXAMPLES)]
pub struct ListJobsArgs {
    /// Namespace
    #[arg(long, env = "AGENTBUS_NAMESPACE", default_value = "default")]
    namespace: String,

    /// Only jobs for this agent
    #[arg(long, value_name = "AGENT")]
    agent: Option<String>,

    /// Only jobs enqueued by this agent
    #[arg(long, value_name = "AGENT")]
    source_agent: Option<String>,

    /// Only jobs in this state (repeatable, or comma-separated)
    #[arg(long, value_name = "STATUS", value_delimiter = ',', value_parser = parse_status)]
    status: Vec<JobStatus>,

    /// Only jobs of this type
    #[arg(long = "type", value_name = "TYPE")]
    job_type: Option<String>,

    /// Only jobs created in this window: 2h, 30m, 7d, or an RFC 3339 time
    #[arg(long, value_name = "WINDOW", value_parser = parse_since)]
    since: Option<SinceArg>,

    /// Only jobs of this flow
    #[arg(long, value_name = "KEY")]
    flow: Option<String>,

    /// Only jobs with this correlation key
    #[arg(long, value_name = "KEY")]
    correlation: Option<String>,

    /// At most this many jobs
    #[arg(long, default_value_t = 50, allow_negative_numbers = true)]
    limit: i64,
}

const LIST_EXAMPLES: &str = "\
Examples:
  agentbus list-jobs --status queued,blocked
  agentbus list-jobs --agent security --since 2h
  agentbus list-jobs --flow prospect:acme --get '[].status'
  agentbus list-jobs --status dead --format json | jq -r '.[] | [.id, .last_error] | @tsv'";

fn parse_status(s: &str) -> std::result::Result<JobStatus, String> {
    s.parse().map_err(|e: Error| e.message)
}

pub fn list(ctx: &mut Ctx, a: ListJobsArgs) -> Result<String> {
    let params = jobs::ListParams {
        namespace: a.namespace,
        target_agent: a.agent,
        source_agent: a.source_agent,
        statuses: a.status,
        job_type: a.job_type,
        since: a.since,
        flow_key: a.flow,
        correlation_key: a.correlation,
        limit: a.limit,
    };
    let jobs = jobs::list(ctx.db()?, &params)?;
    match ctx.format() {
        Format::Json => output::json(&jobs),
        Format::Table => Ok(output::jobs_table(&jobs, ctx.full_ids())),
    }
}

fn caller(ctx: &Ctx, command: &'static str) -> Caller {
    Caller {
        actor: ctx.actor(),
        command,
    }
}
