//! How one claimed job's agent is woken: the plan resolved from the agent's row and the
//! supervisor's defaults, and the job as it travels from the claim to its wake-up.

use std::time::Duration;

use super::shared::{Shared, Slot};
use super::DefaultWake;
use crate::ledger::agents::{self, WakeMode};
use crate::ledger::jobs::{Fence, Job, WakeRecord};
use crate::supervisor::hook::{HookTarget, Secret};

/// How to wake one agent, resolved from its row and the supervisor's defaults.
pub(super) enum WakePlan {
    Hook(HookTarget),
    Exec {
        argv: Vec<String>,
        timeout: Duration,
    },
}

/// A claimed job with its prompt rendered and its slot taken.
pub(super) struct Ready {
    pub job: Job,
    pub fence: Fence,
    pub plan: WakePlan,
    pub text: String,
    pub slot: Slot,
}

/// A claimed job (still `leased`), for a hook worker.
pub(super) struct HookJob {
    pub job: Job,
    pub fence: Fence,
    pub target: HookTarget,
    pub text: String,
    /// Recorded with the admission.
    pub wake: WakeRecord,
    pub slot: Slot,
}

/// How to wake the job's agent; `Err` says why it cannot be woken as configured.
pub(super) fn plan_wake(
    shared: &Shared,
    job: &Job,
    row: Option<&agents::Agent>,
) -> Result<WakePlan, String> {
    let cfg = &shared.cfg;
    let agent = &job.target_agent;
    let mode = row.and_then(|r| r.wake_mode).or(match &cfg.default_wake {
        Some(DefaultWake::Exec(_)) => Some(WakeMode::Exec),
        Some(DefaultWake::Hook(_)) => Some(WakeMode::Hook),
        None => None,
    });
    match mode {
        None => Err(format!(
            "agent {agent} has no wake mode and this supervisor has no default (--exec or --hook-url)"
        )),
        Some(WakeMode::Hook) => {
            let url = row.and_then(|r| r.hook_url.clone()).or(match &cfg.default_wake {
                Some(DefaultWake::Hook(u)) => Some(u.clone()),
                _ => None,
            });
            let token = match row.and_then(|r| r.hook_token_env.clone()) {
                Some(var) => cfg
                    .env
                    .get(&var)
                    .as_deref()
                    .and_then(Secret::new)
                    .map(Some)
                    .ok_or_else(|| {
                        format!(
                            "agent {agent} takes its hook token from ${var}, which is not set in the supervisor's environment"
                        )
                    }),
                None => Ok(cfg.hook_token.clone()),
            };
            match (url, token) {
                (None, _) => Err(format!(
                    "agent {agent} is woken by hook but no hook URL is set (agents.hook_url or --hook-url)"
                )),
                (_, Err(why)) => Err(why),
                // The token stays with its gateway: never sent to an origin the supervisor
                // was not configured for, whoever wrote the agent's hook URL.
                (Some(url), Ok(Some(_)))
                    if !crate::redact::origin(&url)
                        .is_some_and(|o| cfg.hook_origins.contains(&o)) =>
                {
                    Err(format!(
                        "agent {agent}'s hook URL {} is not an origin this supervisor sends its hook token to ({}); nothing was sent: fix the agent's hook_url, or start the supervisor with --hook-origin for that gateway",
                        crate::redact::url_without_credentials(&url),
                        if cfg.hook_origins.is_empty() {
                            "none configured: --hook-url or --hook-origin".to_string()
                        } else {
                            cfg.hook_origins.join(", ")
                        }
                    ))
                }
                (Some(url), Ok(token)) => Ok(WakePlan::Hook(HookTarget {
                    url,
                    token,
                    agent_id: row
                        .and_then(|r| r.hook_agent_id.clone())
                        .unwrap_or_else(|| agent.clone()),
                    session_key: row.and_then(|r| r.hook_session_key.clone()),
                    timeout_seconds: row
                        .and_then(|r| r.hook_timeout_seconds)
                        .and_then(|s| u32::try_from(s).ok())
                        .unwrap_or(cfg.hook_timeout_seconds),
                })),
            }
        }
        Some(WakeMode::Exec) => {
            let argv = row.and_then(|r| r.exec_command.clone()).or(match &cfg.default_wake {
                Some(DefaultWake::Exec(a)) => Some(a.clone()),
                _ => None,
            });
            let timeout = row
                .and_then(|r| r.exec_timeout_seconds)
                .and_then(|s| u64::try_from(s).ok())
                .map_or(cfg.exec_timeout, Duration::from_secs);
            match argv {
                Some(argv) if !argv.is_empty() => Ok(WakePlan::Exec { argv, timeout }),
                _ => Err(format!(
                    "agent {agent} is woken by exec but no command is set (agents.exec_command or --exec)"
                )),
            }
        }
    }
}
