//! Job commands: enqueue-job, claim-jobs, requeue-expired, show-job, list-jobs.

use super::args::{json_object, JobRef, NamespaceArg};
use super::output::{self, Format};
use super::time::{parse_since, parse_when};
use super::Ctx;
use crate::error::{Error, Result};
use crate::ledger::jobs::{self, JobStatus};
use crate::ledger::time::{Since, When};
use clap::Args;
use std::io::Read;
use uuid::Uuid;

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

    /// Job that asked for this one, or the first 8 or more characters of its id (default:
    /// $AGENTBUS_JOB_ID, the job being run)
    #[arg(long, value_name = "UUID")]
    parent_job_id: Option<JobRef>,

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
    #[arg(long, value_name = "TIME", value_parser = parse_when)]
    run_after: Option<When>,

    /// Attempts before the job goes dead
    #[arg(long, default_value_t = 5, allow_negative_numbers = true, value_parser = clap::value_parser!(i32).range(1..=1000))]
    max_attempts: i32,

    /// Job that must succeed first, or the first 8 or more characters of its id
    /// (repeatable)
    #[arg(long, value_name = "UUID")]
    depends_on: Vec<JobRef>,

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

pub fn enqueue(ctx: &mut Ctx, a: EnqueueJobArgs, stdin: &mut dyn Read) -> Result<String> {
    let mut stdin_used = false;
    let payload = json_object("--payload", Some(&a.payload), stdin, &mut stdin_used)?;
    let state = json_object("--state", Some(&a.state), stdin, &mut stdin_used)?;
    // Inside a run the job being run is the parent, so follow-ups join its flow.
    let parent_job_id = super::args::job_or_running(ctx, a.parent_job_id.as_ref(), "parent job")?;
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
        depends_on: a
            .depends_on
            .iter()
            .map(|job| ctx.job_id(job))
            .collect::<Result<Vec<_>>>()?,
        requires_approval: a.requires_approval,
        actor: ctx.actor(),
        reason: "enqueued".into(),
        openclaw_session_key: None,
    };
    let out = ctx.tx(|tx| jobs::enqueue(tx, &params))?;
    output::json(&out)
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
    #[command(flatten)]
    ns: NamespaceArg,

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
        namespace: a.ns.namespace,
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
    #[command(flatten)]
    ns: NamespaceArg,

    /// At most this many jobs
    #[arg(long, default_value_t = 1000, allow_negative_numbers = true)]
    limit: i32,
}

const REQUEUE_EXAMPLES: &str = "\
Examples:
  agentbus requeue-expired
  agentbus requeue-expired --namespace sales --limit 100 | jq length";

pub fn requeue(ctx: &mut Ctx, a: RequeueExpiredArgs) -> Result<String> {
    let jobs = jobs::requeue_expired(ctx.db()?, &a.ns.namespace, a.limit)?;
    output::json(&jobs)
}

/// Show one job with its dependencies, attempts and status history
#[derive(Debug, Args)]
#[command(after_help = SHOW_EXAMPLES)]
pub struct ShowJobArgs {
    /// The job: its id or its first 8 or more characters
    #[arg(value_name = "JOB_ID")]
    job_id: JobRef,
}

const SHOW_EXAMPLES: &str = "\
Examples:
  agentbus show-job 7d4f0c1e-2b8a-4c55-9f0e-3a1b2c3d4e5f
  agentbus show-job 7d4f0c1e                     # the 8 characters tables print
  agentbus show-job \"$JOB\" --format json | jq '.attempts[-1].error'";

pub fn show(ctx: &mut Ctx, a: ShowJobArgs) -> Result<String> {
    let job_id = ctx.job_id(&a.job_id)?;
    let detail = jobs::show(ctx.db()?, job_id)?;
    match ctx.format() {
        Format::Json => output::json(&detail),
        Format::Table => Ok(output::job_detail_table(&detail)),
    }
}

/// List jobs, newest first
#[derive(Debug, Args)]
#[command(after_help = LIST_EXAMPLES)]
pub struct ListJobsArgs {
    #[command(flatten)]
    ns: NamespaceArg,

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
    since: Option<Since>,

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
        namespace: a.ns.namespace,
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
