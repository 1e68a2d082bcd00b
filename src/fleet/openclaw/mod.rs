//! What OpenClaw must know about a fleet: the `openclaw.json5` keys for its agents, hooks
//! and cron, and one cron job per `external` standing order.
//!
//! Checked against the npm package of [`VERIFIED_WITH`] (its docs and CLI source): agents
//! live under `agents.entries.<id>` (older releases had an `agents.list` array, which
//! `openclaw doctor --fix` migrates); config strings expand `${UPPER_CASE}` environment
//! variables; `openclaw cron add --declaration-key KEY` creates the job the first time and
//! updates that same job in place afterwards (unchanged: nothing happens), which is what
//! makes the printed script safe to run twice; `--exact` turns off the up-to-5-minute
//! stagger OpenClaw applies to top-of-hour schedules, which would otherwise eat into the
//! order's grace; `--no-deliver` keeps the run's text out of chat channels.

mod config;
mod cron;

pub use config::*;
pub use cron::*;

use crate::fleet::{AgentSpec, FiredBy, OrderSpec};
use crate::ledger::agents::WakeMode;

/// The OpenClaw release these outputs were checked against.
pub const VERIFIED_WITH: &str = "openclaw 2026.9.6";

/// The supervisor's default hook-token variable (`--hook-token-env`).
pub const DEFAULT_TOKEN_ENV: &str = "AGENTBUS_HOOK_TOKEN";

/// The OpenClaw agent id of a fleet agent.
pub(super) fn openclaw_agent_id(agent: &AgentSpec) -> String {
    agent
        .wake
        .as_ref()
        .and_then(|w| w.agent_id.clone())
        .unwrap_or_else(|| agent.id.clone())
}

pub(super) fn is_hook(agent: &AgentSpec) -> bool {
    agent
        .wake
        .as_ref()
        .is_some_and(|w| w.mode == WakeMode::Hook)
}

pub(super) fn external_orders(agent: &AgentSpec) -> impl Iterator<Item = &OrderSpec> {
    agent
        .standing_orders
        .iter()
        .filter(|o| o.fired_by == FiredBy::External)
}
