//! Operator controls: cancel-job, retry-job, unblock-job, reprioritize-job,
//! dead-letter-job, approve-job, reject-job, drain-agent, list-approvals.

use std::io::Read;

use clap::Args;

use super::args::{json_object, JobRef, NamespaceArg};
use super::output;
use super::Ctx;
use crate::error::{Error, Result};
use crate::ledger::controls::{self, Control, ControlParams, Drain};

/// Cancel a job: it will not run (again)
///
/// Applies to queued, waiting, awaiting_approval, blocked, leased and running jobs. A
/// running agent's later complete-job is refused; an exec child is stopped when its lease
/// renewal is refused. Jobs waiting for this one become blocked. Illegal states exit 4.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  agentbus cancel-job 3f2a9c1e --reason 'duplicate of 7b1d...'")]
pub struct CancelJobArgs {
    /// The job (its id, or the first 8 or more characters of it)
    #[arg(value_name = "JOB")]
    job: JobRef,
    /// Why (kept in the job's history)
    #[arg(long)]
    reason: Option<String>,
}

/// Queue a dead, blocked or cancelled job again
///
/// The job keeps its id, attempts and history; its next claim is a new attempt (one more is
/// allowed when it had used them all). It goes to waiting instead when a dependency has not
/// succeeded. Exit 4 when another active job holds its dedupe key.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  agentbus retry-job 3f2a9c1e --reason 'gateway fixed'")]
pub struct RetryJobArgs {
    /// The job (its id, or the first 8 or more characters of it)
    #[arg(value_name = "JOB")]
    job: JobRef,
    /// Why (kept in the job's history)
    #[arg(long)]
    reason: Option<String>,
}

/// Queue a blocked job again, with a note saying what changed
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  agentbus unblock-job 3f2a9c1e --note 'added the missing email'\n  \
agentbus unblock-job 3f2a9c1e --note 'fixed payload' --payload @payload.json"
)]
pub struct UnblockJobArgs {
    /// The job (its id, or the first 8 or more characters of it)
    #[arg(value_name = "JOB")]
    job: JobRef,
    /// What changed (kept in the job's history)
    #[arg(long)]
    note: Option<String>,
    /// A new payload replacing the old one: JSON object, @FILE or - for stdin
    #[arg(long, value_name = "JSON")]
    payload: Option<String>,
}

/// Change the priority of an unfinished job (1 to 1000, higher first)
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  agentbus reprioritize-job 3f2a9c1e --priority 900 --reason 'customer waiting'"
)]
pub struct ReprioritizeJobArgs {
    /// The job (its id, or the first 8 or more characters of it)
    #[arg(value_name = "JOB")]
    job: JobRef,
    /// The new priority
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    priority: Option<i32>,
    /// Why (kept in the job's history)
    #[arg(long)]
    reason: Option<String>,
}

/// Give up on an unfinished job: it goes to the dead letters
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  agentbus dead-letter-job 3f2a9c1e --reason 'prospect asked not to be contacted'"
)]
pub struct DeadLetterJobArgs {
    /// The job (its id, or the first 8 or more characters of it)
    #[arg(value_name = "JOB")]
    job: JobRef,
    /// Why (kept as its last error and in its history)
    #[arg(long)]
    reason: Option<String>,
}

/// Approve a job held for a human: it is queued (or waits for its dependencies)
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  agentbus list-approvals\n  agentbus approve-job 3f2a9c1e --reason 'pricing checked'"
)]
pub struct ApproveJobArgs {
    /// The job (its id, or the first 8 or more characters of it)
    #[arg(value_name = "JOB")]
    job: JobRef,
    /// A note (kept in the job's history)
    #[arg(long)]
    reason: Option<String>,
}

/// Reject a job held for a human: it is cancelled
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  agentbus reject-job 3f2a9c1e --reason 'discount too deep'")]
pub struct RejectJobArgs {
    /// The job (its id, or the first 8 or more characters of it)
    #[arg(value_name = "JOB")]
    job: JobRef,
    /// Why (kept in the job's history)
    #[arg(long)]
    reason: Option<String>,
}

fn apply(
    ctx: &mut Ctx,
    job: &JobRef,
    control: Control,
    mut params: ControlParams,
) -> Result<String> {
    params.actor = ctx.actor();
    let id = ctx.job_id(job)?;
    let job = ctx.tx(|tx| controls::apply(tx, id, control, &params))?;
    output::json(&job)
}

/// A control that takes only a reason.
fn with_reason(
    ctx: &mut Ctx,
    job: &JobRef,
    control: Control,
    reason: Option<String>,
) -> Result<String> {
    let p = ControlParams {
        reason,
        ..Default::default()
    };
    apply(ctx, job, control, p)
}

pub fn cancel(ctx: &mut Ctx, a: CancelJobArgs) -> Result<String> {
    with_reason(ctx, &a.job, Control::Cancel, a.reason)
}

pub fn retry(ctx: &mut Ctx, a: RetryJobArgs) -> Result<String> {
    with_reason(ctx, &a.job, Control::Retry, a.reason)
}

pub fn unblock(ctx: &mut Ctx, a: UnblockJobArgs, stdin: &mut dyn Read) -> Result<String> {
    let mut stdin_used = false;
    let p = ControlParams {
        reason: a.note,
        payload: json_object("--payload", a.payload.as_deref(), stdin, &mut stdin_used)?,
        ..Default::default()
    };
    apply(ctx, &a.job, Control::Unblock, p)
}

pub fn reprioritize(ctx: &mut Ctx, a: ReprioritizeJobArgs) -> Result<String> {
    let p = ControlParams {
        reason: a.reason,
        priority: a.priority,
        ..Default::default()
    };
    apply(ctx, &a.job, Control::Reprioritize, p)
}

pub fn dead_letter(ctx: &mut Ctx, a: DeadLetterJobArgs) -> Result<String> {
    with_reason(ctx, &a.job, Control::DeadLetter, a.reason)
}

pub fn approve(ctx: &mut Ctx, a: ApproveJobArgs) -> Result<String> {
    with_reason(ctx, &a.job, Control::Approve, a.reason)
}

pub fn reject(ctx: &mut Ctx, a: RejectJobArgs) -> Result<String> {
    with_reason(ctx, &a.job, Control::Reject, a.reason)
}

/// Cancel an agent's queued work, or hand it to another agent
///
/// Takes every queued, waiting and awaiting_approval job of AGENT, in one transaction.
/// Leased and running jobs are left to finish. It does not pause the agent: run
/// `agentbus pause-agent AGENT --reason ...` first so nothing new is claimed meanwhile.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  agentbus pause-agent writer --reason 'model outage'\n  \
agentbus drain-agent writer --to writer-backup --reason 'model outage'\n  \
agentbus drain-agent scout --cancel --reason 'campaign stopped'"
)]
pub struct DrainAgentArgs {
    /// The agent to drain
    #[arg(value_name = "AGENT")]
    agent: String,
    #[command(flatten)]
    ns: NamespaceArg,
    /// Give the jobs to this agent
    #[arg(
        long,
        value_name = "AGENT",
        conflicts_with = "cancel",
        required_unless_present = "cancel"
    )]
    to: Option<String>,
    /// Cancel the jobs instead
    #[arg(long)]
    cancel: bool,
    /// Why (kept in each job's history)
    #[arg(long)]
    reason: Option<String>,
}

pub fn drain(ctx: &mut Ctx, a: DrainAgentArgs) -> Result<String> {
    let action = match a.to {
        Some(to) => Drain::RerouteTo(to),
        None if a.cancel => Drain::Cancel,
        None => return Err(Error::usage("give --to AGENT or --cancel")),
    };
    let actor = ctx.actor();
    let report = ctx.tx(|tx| {
        controls::drain_agent(
            tx,
            &a.ns.namespace,
            &a.agent,
            &action,
            &actor,
            a.reason.as_deref(),
        )
    })?;
    output::json(&report)
}

/// List the jobs waiting for an operator's approval, oldest first
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  agentbus list-approvals\n  agentbus list-approvals --agent closer --format json"
)]
pub struct ListApprovalsArgs {
    #[command(flatten)]
    ns: NamespaceArg,
    /// Only this agent's jobs
    #[arg(long, value_name = "AGENT")]
    agent: Option<String>,
}

pub fn list_approvals(ctx: &mut Ctx, a: ListApprovalsArgs) -> Result<String> {
    let waiting = controls::list_approvals(ctx.db()?, &a.ns.namespace, a.agent.as_deref())?;
    let full = ctx.full_ids();
    output::listing(
        ctx.format(),
        &waiting,
        "no jobs are waiting for approval",
        |w| {
            output::table(
                &["id", "agent", "subject", "gate", "approved", "waiting"],
                w.iter().map(|a| {
                    vec![
                        output::id(a.job.id, full),
                        a.job.target_agent.clone(),
                        output::clip(&a.job.subject, 40),
                        a.job
                            .approval_gate
                            .clone()
                            .unwrap_or_else(|| "--requires-approval".into()),
                        format!("{} of {}", a.approvals, a.job.approvals_required),
                        output::time(a.job.created_at),
                    ]
                }),
            )
        },
    )
}
