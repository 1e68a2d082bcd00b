//! Agents: per-agent settings every supervisor shares (the `agents` table).
//!
//! An agent needs no row to receive work; a row limits its concurrency, pauses it, says
//! how to wake it, and records the wake errors supervisors saw.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::db::{decode, decode_all, set_actor, Tx};
use crate::error::{Error, Result};
use crate::ledger::validate::{check_name, check_optional_text, check_required_text};
use postgres::types::Type;

/// A row of `agents`. Field names are the column names.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    pub namespace: String,
    pub agent_id: String,
    pub name: Option<String>,
    pub role: Option<String>,
    pub max_concurrency: Option<i32>,
    pub paused: bool,
    pub paused_reason: Option<String>,
    pub paused_at: Option<DateTime<Utc>>,
    pub paused_by: Option<String>,
    pub wake_mode: Option<WakeMode>,
    pub hook_url: Option<String>,
    pub hook_agent_id: Option<String>,
    pub hook_session_key: Option<String>,
    pub hook_timeout_seconds: Option<i32>,
    pub hook_token_env: Option<String>,
    pub exec_command: Option<Vec<String>>,
    pub exec_timeout_seconds: Option<i32>,
    pub wake_failures: i32,
    pub wake_backoff_until: Option<DateTime<Utc>>,
    pub last_wake_error: Option<String>,
    pub last_wake_error_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub fleet: Option<String>,
    #[serde(default)]
    pub handoffs: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// How an agent is woken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WakeMode {
    /// HTTP POST to a hook (OpenClaw `/hooks/agent`).
    Hook,
    /// Run a local command.
    Exec,
}

impl WakeMode {
    /// The database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            WakeMode::Hook => "hook",
            WakeMode::Exec => "exec",
        }
    }
}

/// Every agent row of a namespace, by id.
pub fn list(client: &mut impl postgres::GenericClient, namespace: &str) -> Result<Vec<Agent>> {
    let rows = client.query(
        "select to_jsonb(a.*) as row from agents a where namespace = $1 order by agent_id",
        &[&namespace],
    )?;
    decode_all(&rows, "row")
}

/// Pauses an agent: no supervisor claims its jobs until it is resumed. Creates the row
/// when the agent has none. Pausing a paused agent replaces the reason.
pub fn pause(
    tx: &mut postgres::Transaction<'_>,
    namespace: &str,
    agent_id: &str,
    reason: &str,
    actor: &str,
) -> Result<Agent> {
    check_name("`namespace`", namespace)?;
    check_name("AGENT", agent_id)?;
    check_required_text("`reason`", reason)?;
    set_actor(tx, actor, Some(reason))?;
    let row = tx.query_one(
        "insert into agents (namespace, agent_id, paused, paused_reason, paused_at, paused_by)
         values ($1, $2, true, $3, now(), $4)
         on conflict (namespace, agent_id) do update
           set paused = true, paused_reason = excluded.paused_reason,
               paused_at = now(), paused_by = excluded.paused_by
         returning to_jsonb(agents.*) as row",
        &[&namespace, &agent_id, &reason, &actor],
    )?;
    let agent = decode(&row, "row")?;
    Ok(agent)
}

/// Resumes a paused agent and clears its wake back-off and error, so the next claim
/// tries it again at once.
pub fn resume(
    tx: &mut postgres::Transaction<'_>,
    namespace: &str,
    agent_id: &str,
    actor: &str,
) -> Result<Agent> {
    check_name("`namespace`", namespace)?;
    check_name("AGENT", agent_id)?;
    set_actor(tx, actor, Some("resumed"))?;
    let row = tx
        .query_opt(
            "update agents
             set paused = false, paused_reason = null, paused_at = null, paused_by = null,
                 wake_failures = 0, wake_backoff_until = null,
                 last_wake_error = null, last_wake_error_at = null
             where namespace = $1 and agent_id = $2
             returning to_jsonb(agents.*) as row",
            &[&namespace, &agent_id],
        )?
        .ok_or_else(|| {
            Error::not_found(format!(
                "agent {agent_id} has no settings in namespace {namespace}, so it is not paused"
            ))
        })?;
    let agent = decode(&row, "row")?;
    Ok(agent)
}

/// What a supervisor does after a failed wake-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WakeFailure {
    /// The hook refused the request (4xx): the configuration is wrong. The agent is paused
    /// until an operator resumes it.
    Rejected,
    /// A transient failure (5xx, timeout, refused connection, spawn error): the agent is
    /// not claimed again for a back-off that doubles per consecutive failure (5 s .. 5 min).
    Transient,
}

/// Records a failed wake-up of an agent (creating its row when needed).
pub fn record_wake_failure(
    client: &mut impl postgres::GenericClient,
    namespace: &str,
    agent_id: &str,
    kind: WakeFailure,
    error: &str,
    supervisor_id: &str,
) -> Result<()> {
    check_optional_text("error", Some(error))?;
    let pause = kind == WakeFailure::Rejected;
    let reason = format!(
        "wake-up refused: {error} (fix the configuration, then `agentbus resume-agent {agent_id}`)"
    );
    client.execute(
        "insert into agents (namespace, agent_id, wake_failures, wake_backoff_until,
                             last_wake_error, last_wake_error_at,
                             paused, paused_reason, paused_at, paused_by)
         values ($1, $2, 1, case when $4 then null else now() + interval '5 seconds' end,
                 $3, now(),
                 $4, case when $4 then $5 end, case when $4 then now() end,
                 case when $4 then $6 end)
         on conflict (namespace, agent_id) do update
           set wake_failures = agents.wake_failures + 1,
               wake_backoff_until = case when $4 then agents.wake_backoff_until
                 else now() + make_interval(secs => least(300, 5 * power(2, least(agents.wake_failures, 10)))) end,
               last_wake_error = $3,
               last_wake_error_at = now(),
               paused = agents.paused or $4,
               paused_reason = case when $4 then $5 else agents.paused_reason end,
               paused_at = case when $4 then now() else agents.paused_at end,
               paused_by = case when $4 then $6 else agents.paused_by end",
        &[&namespace, &agent_id, &error, &pause, &reason, &supervisor_id],
    )?;
    Ok(())
}

/// Clears the wake error streak of agents that were just woken successfully, in one
/// statement (no write for an agent with nothing to clear).
pub fn record_wake_successes<'c>(
    tx: &mut impl Tx<'c>,
    namespace: &str,
    agent_ids: &[&str],
) -> Result<()> {
    tx.query_typed_cached(
        "update agents
         set wake_failures = 0, wake_backoff_until = null
         where namespace = $1 and agent_id = any($2)
           and (wake_failures <> 0 or wake_backoff_until is not null)",
        &[(&namespace, Type::TEXT), (&agent_ids, Type::TEXT_ARRAY)],
    )?;
    Ok(())
}

/// The settings `agentbus configure-agent` may change; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Display name.
    pub name: Option<String>,
    /// Role, one line.
    pub role: Option<String>,
    /// Concurrency limit (`Some(None)` clears it: the supervisor default applies).
    pub max_concurrency: Option<Option<i32>>,
    /// Wake mode (`Some(None)` clears it: the supervisor default applies).
    pub wake_mode: Option<Option<WakeMode>>,
    /// Hook URL.
    pub hook_url: Option<String>,
    /// OpenClaw agentId.
    pub hook_agent_id: Option<String>,
    /// OpenClaw sessionKey.
    pub hook_session_key: Option<String>,
    /// Hook run timeout.
    pub hook_timeout_seconds: Option<i32>,
    /// Name of the environment variable with the hook token.
    pub hook_token_env: Option<String>,
    /// Exec argv template.
    pub exec_command: Option<Vec<String>>,
    /// Exec deadline.
    pub exec_timeout_seconds: Option<i32>,
}

/// Creates or updates an agent's settings in one statement.
pub fn configure(
    tx: &mut postgres::Transaction<'_>,
    namespace: &str,
    agent_id: &str,
    s: &Settings,
    actor: &str,
) -> Result<Agent> {
    check_name("`namespace`", namespace)?;
    check_name("AGENT", agent_id)?;
    for (flag, v) in [
        ("`name`", &s.name),
        ("`role`", &s.role),
        ("`hook_url`", &s.hook_url),
        ("`hook_agent_id`", &s.hook_agent_id),
        ("`hook_session_key`", &s.hook_session_key),
        ("`hook_token_env`", &s.hook_token_env),
    ] {
        check_optional_text(flag, v.as_deref())?;
    }
    if let Some(url) = &s.hook_url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Error::usage(format!(
                "`hook_url`: {url:?} is not an http:// or https:// URL"
            )));
        }
    }
    if let Some(Some(n)) = s.max_concurrency {
        if !(1..=10_000).contains(&n) {
            return Err(Error::usage(format!(
                "`max_concurrency`: {n} is out of range (1 to 10000)"
            )));
        }
    }
    for (flag, v) in [
        ("`hook_timeout_seconds`", s.hook_timeout_seconds),
        ("`exec_timeout_seconds`", s.exec_timeout_seconds),
    ] {
        if let Some(n) = v {
            if !(1..=86_400).contains(&n) {
                return Err(Error::usage(format!(
                    "{flag}: {n} is out of range (1 to 86400)"
                )));
            }
        }
    }
    if let Some(argv) = &s.exec_command {
        if argv.first().is_none_or(|a| a.trim().is_empty()) {
            return Err(Error::usage("`exec_command`: the program is empty"));
        }
        for a in argv {
            check_optional_text("`exec_command`", Some(a))?;
        }
    }
    let max_set = s.max_concurrency.is_some();
    let max = s.max_concurrency.flatten();
    let mode_set = s.wake_mode.is_some();
    let mode = s.wake_mode.flatten().map(WakeMode::as_str);
    set_actor(tx, actor, Some("configured"))?;
    let row = tx.query_one(
        "insert into agents (namespace, agent_id, name, role, max_concurrency, wake_mode,
                             hook_url, hook_agent_id, hook_session_key, hook_timeout_seconds,
                             hook_token_env, exec_command, exec_timeout_seconds)
         values ($1, $2, $3, $4, $5, $7, $9, $10, $11, $12, $13, $14, $15)
         on conflict (namespace, agent_id) do update set
           name = coalesce($3, agents.name),
           role = coalesce($4, agents.role),
           max_concurrency = case when $6 then $5 else agents.max_concurrency end,
           wake_mode = case when $8 then $7 else agents.wake_mode end,
           hook_url = coalesce($9, agents.hook_url),
           hook_agent_id = coalesce($10, agents.hook_agent_id),
           hook_session_key = coalesce($11, agents.hook_session_key),
           hook_timeout_seconds = coalesce($12, agents.hook_timeout_seconds),
           hook_token_env = coalesce($13, agents.hook_token_env),
           exec_command = coalesce($14, agents.exec_command),
           exec_timeout_seconds = coalesce($15, agents.exec_timeout_seconds)
         returning to_jsonb(agents.*) as row",
        &[
            &namespace,
            &agent_id,
            &s.name,
            &s.role,
            &max,
            &max_set,
            &mode,
            &mode_set,
            &s.hook_url,
            &s.hook_agent_id,
            &s.hook_session_key,
            &s.hook_timeout_seconds,
            &s.hook_token_env,
            &s.exec_command,
            &s.exec_timeout_seconds,
        ],
    )?;
    let agent = decode(&row, "row")?;
    Ok(agent)
}
