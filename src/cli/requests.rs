//! request-agent, request-config-change, approve-request.

use std::path::PathBuf;

use clap::Args;

use super::args::JobRef;
use super::output;
use super::Ctx;
use crate::error::Result;
use crate::fleet::requests::{self, AgentRequest, ConfigRequest};

/// Ask an operator for a new agent in the fleet, made from one of its templates
///
/// Files a job for the asking agent that waits in awaiting_approval; nothing is created
/// until an operator runs `agentbus approve-request`, which scaffolds the folder from
/// <fleet>/templates/<template>/, validates the fleet and syncs it in one step. The
/// asking agent gets the job back once applied (close it); a rejection cancels it.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  agentbus request-agent --fleet agents/assistant --id muqta --role 'Discount scouting for the Muqta app' \\\n      \
--from-template sub-agent --reason 'the co-founder asked for daily discount scans'\n  \
agentbus approve-request 3f2a9c1e --fleet agents/assistant"
)]
pub struct RequestAgentArgs {
    /// The fleet folder (holding fleet.toml)
    #[arg(long, value_name = "DIR")]
    fleet: PathBuf,
    /// The new agent's id (its folder name)
    #[arg(long, value_name = "ID")]
    id: String,
    /// What it does, one line
    #[arg(long)]
    role: String,
    /// The template: a folder under the fleet's templates/
    #[arg(long, value_name = "TEMPLATE")]
    from_template: String,
    /// Display name (default: the id, capitalised)
    #[arg(long)]
    name: Option<String>,
    /// The agent asking (default: $AGENTBUS_AGENT)
    #[arg(long, env = "AGENTBUS_AGENT", value_name = "AGENT")]
    requested_by: String,
    /// Why (shown to the operator)
    #[arg(long)]
    reason: Option<String>,
}

pub fn request_agent(ctx: &mut Ctx, a: RequestAgentArgs) -> Result<String> {
    let r = AgentRequest {
        requested_by: a.requested_by,
        id: a.id,
        role: a.role,
        name: a.name,
        template: a.from_template,
        reason: a.reason,
    };
    let actor = ctx.actor();
    output::json(&ctx.tx(|tx| requests::request_agent(tx, &a.fleet, &r, &actor))?)
}

/// Ask an operator to change settings of your own agent.toml
///
/// Only the keys the fleet lists in `[requests] config_keys` (fleet.toml), and never wake
/// settings, hand-offs, tools, tiers, approval gates or ids: those exit 77. Files a job
/// for the agent that waits in awaiting_approval; `agentbus approve-request` edits the
/// file (comments kept), validates the fleet and syncs it in one step.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  agentbus request-config-change --fleet agents/assistant --agent personal \\\n      \
--set standing_orders.morning-briefing.cron='30 7 * * *' --reason 'the user wakes earlier now'\n  \
agentbus request-config-change --fleet agents/assistant --agent personal --set model=anthropic/claude-haiku-4-5"
)]
pub struct RequestConfigChangeArgs {
    /// The fleet folder (holding fleet.toml)
    #[arg(long, value_name = "DIR")]
    fleet: PathBuf,
    /// The agent whose settings change: the agent asking
    #[arg(long, value_name = "AGENT")]
    agent: String,
    /// KEY=VALUE (repeat): name, role, model, heartbeat, max_concurrency, paused,
    /// budgets.<limit>, standing_orders.<order>.cron|timezone|message|enabled
    #[arg(long = "set", value_name = "KEY=VALUE", required = true)]
    settings: Vec<String>,
    /// Why (shown to the operator)
    #[arg(long)]
    reason: Option<String>,
}

pub fn request_config_change(ctx: &mut Ctx, a: RequestConfigChangeArgs) -> Result<String> {
    let r = ConfigRequest {
        agent: a.agent,
        settings: a.settings,
        requested_by: ctx.env("AGENTBUS_AGENT"),
        reason: a.reason,
    };
    let actor = ctx.actor();
    output::json(&ctx.tx(|tx| requests::request_config(tx, &a.fleet, &r, &actor))?)
}

/// Approve an agent's request and apply it: scaffold or edit, validate, sync
///
/// Checks the request again against the fleet folder you name, records your approval,
/// writes the files, validates the whole fleet and syncs it, all or nothing: if anything
/// fails the files are put back and the request still waits. With a two-person gate the
/// first approval only records itself. Reject a request with `agentbus reject-job`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  agentbus list-approvals\n  agentbus approve-request 3f2a9c1e --fleet agents/assistant --reason 'ok for a month'"
)]
pub struct ApproveRequestArgs {
    /// The request job (its id, or the first 8 or more characters of it)
    #[arg(value_name = "JOB")]
    job: JobRef,
    /// The fleet folder the request is for
    #[arg(long, value_name = "DIR")]
    fleet: PathBuf,
    /// A note (kept in the job's history)
    #[arg(long)]
    reason: Option<String>,
}

pub fn approve_request(ctx: &mut Ctx, a: ApproveRequestArgs) -> Result<String> {
    let id = ctx.job_id(&a.job)?;
    let actor = ctx.actor();
    let mut approved =
        ctx.tx(|tx| requests::approve(tx, id, &a.fleet, &actor, a.reason.clone()))?;
    if let Some(staged) = approved.staged.take() {
        staged.keep();
    }
    output::json(&approved)
}
