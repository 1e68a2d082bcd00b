//! From a claim to the wake-ups, batched: one statement claims the jobs and reads their
//! prompts' inputs (`prompt::claim_for_wake`), the prompts are rendered here, one
//! statement marks them all running with their wake records (`mark_woken_many`), and each
//! job then goes to a hook worker (`hook_workers`) or a thread of its own running the
//! agent's command (`exec`). No thread is started and no connection opened per hook job.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::log::Level;
use super::metrics::Outcome;
use super::outcome::{release, wake_failed};
use super::shared::{Shared, Slot};
use super::{exec, hook_workers, DefaultWake};
use crate::error::{ErrorKind, Result};
use crate::ledger::agents::{self, WakeFailure, WakeMode};
use crate::ledger::jobs::{self, AttemptFacts, Fence, Job, WakeRecord, Waking};
use crate::supervisor::hook::{HookTarget, Secret};
use crate::supervisor::prompt::{self, ClaimedJob};

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
    pub record: WakeRecord,
    /// The agent has a wake back-off or failures on record: a successful wake-up clears
    /// them.
    pub clears_backoff: bool,
    pub slot: Slot,
}

/// Claims up to `limit` jobs and starts waking their agents; returns how many it claimed.
pub(super) fn claim_and_wake(shared: &Arc<Shared>, limit: i32) -> Result<usize> {
    let claimed = {
        let mut client = shared.pool.get()?;
        prompt::claim_for_wake(&mut client, &shared.claim_params(limit))?
    };
    let n = claimed.len();
    let ready: Vec<Ready> = claimed
        .into_iter()
        .filter_map(|c| prepare(shared, c))
        .collect();
    if ready.is_empty() {
        return Ok(n);
    }
    let batch: Vec<Waking> = ready
        .iter()
        .map(|r| Waking {
            job_id: r.job.id,
            fence: r.fence,
            record: r.record.clone(),
        })
        .collect();
    let marked = shared
        .pool
        .get()
        .and_then(|mut c| jobs::mark_woken_many(&mut c, &shared.caller("wake"), &batch));
    let results = match marked {
        Ok(results) => results,
        Err(e) => {
            // Nothing was started; the leases recover the jobs.
            shared.note_error("marking the jobs running", &e);
            return Ok(n);
        }
    };
    for (ready, result) in ready.into_iter().zip(results) {
        match result {
            Ok(job) => {
                let ready_at = job.run_after.max(job.created_at);
                let latency = (Utc::now() - ready_at).num_microseconds().unwrap_or(0) as f64 / 1e6;
                shared.metrics.observe_dispatch(latency);
                deliver(shared, Ready { job, ..ready });
            }
            Err(e) if e.kind == ErrorKind::Conflict => shared.log(
                Level::Info,
                "job changed hands before its agent was woken; leaving it",
                &[("job", &ready.job.id), ("reason", &e.message)],
            ),
            Err(e) => shared.note_error("marking the job running", &e),
        }
    }
    Ok(n)
}

/// Takes a slot for a claimed job, plans its wake-up and renders its prompt; `None` when
/// it was given back (shutdown) or its agent cannot be woken as configured (recorded).
fn prepare(shared: &Arc<Shared>, claimed: ClaimedJob) -> Option<Ready> {
    let job = &claimed.input.job;
    shared.metrics.count(Outcome::Claimed, &job.target_agent);
    shared.log(
        Level::Debug,
        "claimed",
        &[
            ("job", &job.id),
            ("agent", &job.target_agent),
            ("attempt", &job.attempt_count),
        ],
    );
    let slot = Slot::take(shared);
    let fence = Fence {
        lease_token: job.lease_token,
        attempt: Some(job.attempt_count),
        force: false,
    };
    if shared.stopping() {
        release(shared, job, fence);
        return None;
    }
    let plan = match plan_wake(shared, job, claimed.agent.as_ref()) {
        Ok(plan) => plan,
        Err(why) => {
            wake_failed(
                shared,
                job,
                fence,
                &why,
                WakeFailure::Rejected,
                true,
                AttemptFacts::default(),
            );
            return None;
        }
    };
    let prompt = prompt::render(&claimed.input);
    let record = WakeRecord {
        wake_mode: match &plan {
            WakePlan::Hook(_) => WakeMode::Hook,
            WakePlan::Exec { .. } => WakeMode::Exec,
        }
        .as_str(),
        prompt_hash: prompt.hash,
        prompt_version: prompt.version,
        memory_ids: prompt.memory_ids,
    };
    let clears_backoff = claimed
        .agent
        .as_ref()
        .is_some_and(|a| a.wake_failures != 0 || a.wake_backoff_until.is_some());
    Some(Ready {
        job: claimed.input.job,
        fence,
        plan,
        text: prompt.text,
        record,
        clears_backoff,
        slot,
    })
}

/// Hands a job marked running to a hook worker, or to a thread running its command.
fn deliver(shared: &Arc<Shared>, ready: Ready) {
    match ready.plan {
        WakePlan::Hook(_) => hook_workers::submit(shared, ready),
        WakePlan::Exec { .. } => {
            let worker = Arc::clone(shared);
            let job_id = ready.job.id;
            let spawned = std::thread::Builder::new()
                .name(format!("job-{job_id}"))
                .spawn(move || {
                    if let WakePlan::Exec { argv, timeout } = &ready.plan {
                        exec::run(
                            &worker,
                            &ready.job,
                            ready.fence,
                            argv,
                            *timeout,
                            &ready.text,
                        );
                    }
                    drop(ready.slot);
                });
            if let Err(e) = spawned {
                // The closure (and its slot) is dropped; the lease recovers the job.
                shared.log(
                    Level::Error,
                    "cannot start a thread for a job; its lease will recover it",
                    &[("job", &job_id), ("error", &e)],
                );
            }
        }
    }
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
