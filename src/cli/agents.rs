//! configure-agent, pause-agent, resume-agent, list-agents.

use clap::{Args, ValueEnum};

use super::args::NamespaceArg;
use super::output;
use super::{Ctx, Format};
use crate::cli::argv::split_command;
use crate::error::{Error, Result};
use crate::ledger::agents::{self, Settings, WakeMode};

/// How `--wake` is spelled on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum WakeArg {
    /// POST to a hook (OpenClaw /hooks/agent)
    Hook,
    /// Run a local command
    Exec,
    /// No mode of its own: the supervisor's --exec or --hook-url applies
    Default,
}

/// Create or change an agent's settings: concurrency limit and how it is woken
///
/// Every supervisor reads these settings at each wake-up; a change applies to the next
/// job. Flags not given keep their value. Prints the agent's row as JSON.
#[derive(Debug, Args)]
#[command(after_help = CONFIGURE_EXAMPLES)]
pub struct ConfigureAgentArgs {
    /// The agent's id (the target_agent of its jobs)
    #[arg(value_name = "AGENT")]
    agent_id: String,

    #[command(flatten)]
    ns: NamespaceArg,

    /// Display name
    #[arg(long)]
    name: Option<String>,

    /// Role, one line
    #[arg(long)]
    role: Option<String>,

    /// At most this many of its jobs leased or running at once, across all supervisors
    #[arg(
        long,
        value_name = "N",
        allow_negative_numbers = true,
        conflicts_with = "default_concurrency"
    )]
    max_concurrency: Option<i32>,

    /// Clear --max-concurrency: the supervisor's --default-concurrency applies
    #[arg(long)]
    default_concurrency: bool,

    /// How the supervisor wakes it
    #[arg(long, value_enum, value_name = "MODE")]
    wake: Option<WakeArg>,

    /// hook: the URL to POST to (else the supervisor's --hook-url)
    #[arg(long, value_name = "URL")]
    hook_url: Option<String>,

    /// hook: OpenClaw agentId (default: the agent id)
    #[arg(long, value_name = "ID")]
    hook_agent_id: Option<String>,

    /// hook: OpenClaw sessionKey
    #[arg(long, value_name = "KEY")]
    hook_session_key: Option<String>,

    /// hook: timeoutSeconds of the agent's run
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    hook_timeout_seconds: Option<i32>,

    /// hook: the NAME of the supervisor's environment variable holding this agent's
    /// bearer token (the token itself is never stored)
    #[arg(long, value_name = "NAME")]
    hook_token_env: Option<String>,

    /// exec: the argv template, split like a shell would ({job_id}, {agent}, {attempt},
    /// {lease_token}, {prompt_file}, {namespace})
    #[arg(long, value_name = "COMMAND")]
    exec_command: Option<String>,

    /// exec: the deadline of one run
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    exec_timeout_seconds: Option<i32>,
}

const CONFIGURE_EXAMPLES: &str = "\
Examples:
  agentbus configure-agent scout --max-concurrency 2 --wake hook --hook-agent-id scout \\
      --hook-session-key hook:scout --hook-timeout-seconds 600
  agentbus configure-agent coder --wake exec \\
      --exec-command './agents/coder/run.sh {job_id} {prompt_file}' --exec-timeout-seconds 1800
  agentbus configure-agent scout --default-concurrency --wake default";

pub fn configure(ctx: &mut Ctx, a: ConfigureAgentArgs) -> Result<String> {
    let exec_command = a
        .exec_command
        .as_deref()
        .map(|c| split_command(c).map_err(|e| Error::usage(format!("--exec-command: {e}"))))
        .transpose()?;
    let settings = Settings {
        name: a.name,
        role: a.role,
        max_concurrency: if a.default_concurrency {
            Some(None)
        } else {
            a.max_concurrency.map(Some)
        },
        wake_mode: a.wake.map(|w| match w {
            WakeArg::Hook => Some(WakeMode::Hook),
            WakeArg::Exec => Some(WakeMode::Exec),
            WakeArg::Default => None,
        }),
        hook_url: a.hook_url,
        hook_agent_id: a.hook_agent_id,
        hook_session_key: a.hook_session_key,
        hook_timeout_seconds: a.hook_timeout_seconds,
        hook_token_env: a.hook_token_env,
        exec_command,
        exec_timeout_seconds: a.exec_timeout_seconds,
    };
    let actor = ctx.actor();
    let agent =
        ctx.tx(|tx| agents::configure(tx, &a.ns.namespace, &a.agent_id, &settings, &actor))?;
    output::json(&shown(agent))
}

/// Stop waking an agent: no supervisor claims its jobs until it is resumed
///
/// Jobs already running are not touched; queued jobs wait. Pausing a paused agent
/// replaces the reason. Prints the agent's row as JSON.
#[derive(Debug, Args)]
#[command(after_help = PAUSE_EXAMPLES)]
pub struct PauseAgentArgs {
    /// The agent's id
    #[arg(value_name = "AGENT")]
    agent_id: String,

    #[command(flatten)]
    ns: NamespaceArg,

    /// Why (shown in list-agents and status)
    #[arg(long)]
    reason: String,
}

const PAUSE_EXAMPLES: &str = "\
Examples:
  agentbus pause-agent publisher --reason 'sending duplicate digests; investigating'";

pub fn pause(ctx: &mut Ctx, a: PauseAgentArgs) -> Result<String> {
    let actor = ctx.actor();
    let agent = ctx.tx(|tx| agents::pause(tx, &a.ns.namespace, &a.agent_id, &a.reason, &actor))?;
    output::json(&shown(agent))
}

/// Wake a paused agent again, and clear its wake-up errors and back-off
///
/// A supervisor pauses an agent itself when its hook refuses a wake-up (HTTP 4xx: wrong
/// token, URL or agent id); fix that, then resume. Exit 3 when the agent has no settings.
#[derive(Debug, Args)]
#[command(after_help = RESUME_EXAMPLES)]
pub struct ResumeAgentArgs {
    /// The agent's id
    #[arg(value_name = "AGENT")]
    agent_id: String,

    #[command(flatten)]
    ns: NamespaceArg,
}

const RESUME_EXAMPLES: &str = "\
Examples:
  agentbus resume-agent publisher";

pub fn resume(ctx: &mut Ctx, a: ResumeAgentArgs) -> Result<String> {
    let actor = ctx.actor();
    let agent = ctx.tx(|tx| agents::resume(tx, &a.ns.namespace, &a.agent_id, &actor))?;
    output::json(&shown(agent))
}

/// List agents with settings: limits, wake mode, pauses and wake-up errors
///
/// Agents that never had settings (and never failed a wake-up) have no row and are not
/// listed. A table on a terminal, JSON otherwise.
#[derive(Debug, Args)]
#[command(after_help = LIST_EXAMPLES)]
pub struct ListAgentsArgs {
    #[command(flatten)]
    ns: NamespaceArg,
}

const LIST_EXAMPLES: &str = "\
Examples:
  agentbus list-agents
  agentbus list-agents --format json | jq -r '.[] | select(.paused) | .agent_id'";

pub fn list(ctx: &mut Ctx, a: ListAgentsArgs) -> Result<String> {
    let rows: Vec<agents::Agent> = agents::list(ctx.db()?, &a.ns.namespace)?
        .into_iter()
        .map(shown)
        .collect();
    match ctx.format() {
        Format::Json => output::json(&rows),
        Format::Table => Ok(output::table(
            &[
                "agent",
                "max",
                "wake",
                "paused",
                "backoff until",
                "last wake error",
            ],
            rows.iter().map(|r| {
                vec![
                    r.agent_id.clone(),
                    r.max_concurrency
                        .map_or("default".to_string(), |n| n.to_string()),
                    r.wake_mode.map_or("default", WakeMode::as_str).to_string(),
                    r.paused_reason.clone().unwrap_or_default(),
                    output::time_opt(r.wake_backoff_until),
                    r.last_wake_error.clone().unwrap_or_default(),
                ]
            }),
        )),
    }
}

/// An agent as printed: credentials in its hook URL masked (`http://user:***@host`).
fn shown(mut agent: agents::Agent) -> agents::Agent {
    agent.hook_url = agent
        .hook_url
        .map(|u| crate::redact::url_without_credentials(&u));
    agent
}
