//! route-blocked, reroute-job, idle-windows: the passes supervisors run every minute, by
//! hand, and the routing agent's answer.

use std::io::Read;

use clap::Args;

use super::args::{json_object, JobRef};
use super::output;
use super::Ctx;
use crate::error::Result;
use crate::ledger::jobs;

/// Route work blocked too long: a triage job for the routing agent, then a human
///
/// The pass every supervisor runs once a minute, by hand. For each namespace with a
/// `[blocked]` policy (fleet.toml): a job blocked longer than route_after gets one
/// `blocked.replan` job for route_to (its parent is the blocked job); blocked longer than
/// escalate_after, one escalation job that waits for a human. Once per block. Prints what
/// it did.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  agentbus route-blocked\n  agentbus route-blocked --namespace ops --format table"
)]
pub struct RouteBlockedArgs {
    /// Only this namespace (default: every namespace with a policy)
    #[arg(long, value_name = "NAMESPACE")]
    namespace: Option<String>,
}

pub fn route_blocked(ctx: &mut Ctx, a: RouteBlockedArgs) -> Result<String> {
    let routed = ctx.tx(|tx| jobs::route_blocked(tx, a.namespace.as_deref()))?;
    output::json(&routed)
}

/// Answer a blocked job: queue it again for another agent, or with a new payload
///
/// For the fleet's routing agent (`[blocked] route_to`) and operators; other agents exit
/// 77. With --to the job moves to that agent; without it the job is unblocked where it is
/// (give --payload with what was missing). The change and the reason are in its history.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  agentbus reroute-job 3f2a9c1e --to devops --reason 'an infrastructure problem, not research'\n  \
agentbus reroute-job 3f2a9c1e --payload '{\"email\":\"ops@acme.example\"}' --reason 'found the contact'"
)]
pub struct RerouteJobArgs {
    /// The blocked job (its id, or the first 8 or more characters of it)
    #[arg(value_name = "JOB")]
    job: JobRef,
    /// The agent that takes it over (default: the same agent)
    #[arg(long, value_name = "AGENT")]
    to: Option<String>,
    /// A new payload: JSON object, @FILE or - for stdin
    #[arg(long, value_name = "JSON")]
    payload: Option<String>,
    /// Why (kept in the job's history)
    #[arg(long)]
    reason: String,
}

pub fn reroute(ctx: &mut Ctx, a: RerouteJobArgs, stdin: &mut dyn Read) -> Result<String> {
    let mut used = false;
    let payload = json_object("--payload", a.payload.as_deref(), stdin, &mut used)?;
    let id = ctx.job_id(&a.job)?;
    let actor = ctx.actor();
    let job =
        ctx.tx(|tx| jobs::reroute(tx, id, a.to.as_deref(), payload.as_ref(), &a.reason, &actor))?;
    output::json(&job)
}

/// Open the thinking windows that are due: the idle pass supervisors run every minute
///
/// For each agent with an [idle] table: a window (an idle.think job) opens when the agent
/// is quiet for quiet_for, inside its hours, under its windows for the day, and nothing
/// urgent (priority 900 or more) is queued in the namespace. Prints the windows opened.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  agentbus idle-windows --namespace ops\n  agentbus digest thinking --namespace ops --since 7d"
)]
pub struct IdleWindowsArgs {
    #[command(flatten)]
    ns: super::args::NamespaceArg,
}

pub fn idle_windows(ctx: &mut Ctx, a: IdleWindowsArgs) -> Result<String> {
    let fired = ctx.tx(|tx| crate::lanes::idle::fire(tx, &a.ns.namespace))?;
    output::json(&fired)
}
