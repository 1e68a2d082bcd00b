//! One claimed job: decide how to wake its agent, build the prompt, mark the job running,
//! wake the agent, and record what happened on the attempt.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::log::Level;
use super::metrics::Outcome;
use super::outcome::{release, wake_failed};
use super::shared::Shared;
use super::{exec, DefaultWake};
use crate::error::ErrorKind;
use crate::ledger::agents::{self, WakeFailure, WakeMode};
use crate::ledger::jobs::{self, AttemptFacts, Fence, Job, WakeRecord};
use crate::supervisor::hook::{HookOutcome, HookTarget, Secret, WakeRequest};
use crate::supervisor::prompt;

/// A hook run gets its timeout plus this long before its lease runs out.
const HOOK_LEASE_MARGIN_SECONDS: u32 = 120;

/// How to wake one agent, resolved from its row and the supervisor's defaults.
enum WakePlan {
    Hook(HookTarget),
    Exec {
        argv: Vec<String>,
        timeout: Duration,
    },
}

pub(super) fn run_job(shared: &Arc<Shared>, job: Job) {
    let fence = Fence {
        lease_token: job.lease_token,
        attempt: Some(job.attempt_count),
        force: false,
    };
    if shared.stopping() {
        release(shared, &job, fence);
        return;
    }
    let (input, agent) = match shared
        .pool
        .get()
        .and_then(|mut c| prompt::load_input(&mut *c, job.clone()))
    {
        Ok(loaded) => loaded,
        Err(e) => {
            // The lease recovers the job; nothing was started.
            shared.note_error("reading the job's context and agent settings", &e);
            return;
        }
    };
    let plan = match plan_wake(shared, &job, agent.as_ref()) {
        Ok(plan) => plan,
        Err(why) => {
            wake_failed(
                shared,
                &job,
                fence,
                &why,
                WakeFailure::Rejected,
                true,
                AttemptFacts::default(),
            );
            return;
        }
    };
    let prompt = prompt::render(&input);
    let mode = match &plan {
        WakePlan::Hook(_) => WakeMode::Hook,
        _ => WakeMode::Exec,
    };
    let record = WakeRecord {
        wake_mode: mode.as_str(),
        prompt_hash: prompt.hash.clone(),
        prompt_version: prompt.version,
        memory_ids: prompt.memory_ids.clone(),
    };
    let woken = shared.pool.get().and_then(|mut c| {
        crate::db::transaction(&mut c, |tx| {
            jobs::mark_woken(tx, job.id, fence, &shared.caller("wake"), &record)
        })
    });
    let job = match woken {
        Ok(j) => j,
        Err(e) if e.kind == ErrorKind::Conflict => {
            shared.log(
                Level::Info,
                "job changed hands before its agent was woken; leaving it",
                &[("job", &job.id), ("reason", &e.message)],
            );
            return;
        }
        Err(e) => {
            shared.note_error("marking the job running", &e);
            return;
        }
    };
    let ready_at = job.run_after.max(job.created_at);
    let latency = (Utc::now() - ready_at).num_microseconds().unwrap_or(0) as f64 / 1e6;
    shared.metrics.observe_dispatch(latency);
    match plan {
        WakePlan::Hook(target) => wake_hook(shared, &job, fence, &target, &prompt.text),
        WakePlan::Exec { argv, timeout } => {
            exec::run(shared, &job, fence, &argv, timeout, &prompt.text)
        }
    }
}

/// How to wake the job's agent; `Err` says why it cannot be woken as configured.
fn plan_wake(shared: &Shared, job: &Job, row: Option<&agents::Agent>) -> Result<WakePlan, String> {
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

fn wake_hook(shared: &Shared, job: &Job, fence: Fence, target: &HookTarget, message: &str) {
    // The lease must outlive the request, or another supervisor could claim the job while
    // this one still waits for the gateway's answer.
    let request = shared.cfg.hook_request_timeout.as_secs_f64();
    if f64::from(shared.cfg.lease_seconds) <= request {
        let needed = i32::try_from(request.ceil() as i64 + 30).unwrap_or(i32::MAX);
        let renewed = shared.pool.get().and_then(|mut c| {
            crate::db::transaction(&mut c, |tx| {
                jobs::renew_lease(tx, job.id, fence, &shared.caller("wake"), needed)
            })
        });
        if let Err(e) = renewed {
            shared.note_error("extending the lease for the hook request", &e);
            return;
        }
    }
    let name = format!(
        "agentbus: {}",
        job.subject.chars().take(80).collect::<String>()
    );
    let outcome = shared.hook.wake(
        target,
        &WakeRequest {
            job_id: job.id,
            attempt: job.attempt_count,
            name: &name,
            message,
        },
    );
    match outcome {
        HookOutcome::Admitted { status, run_id } => {
            let lease = target
                .timeout_seconds
                .saturating_add(HOOK_LEASE_MARGIN_SECONDS);
            let recorded = shared.pool.get().and_then(|mut c| {
                crate::db::transaction(&mut c, |tx| {
                    let admitted = jobs::record_hook_admission(
                        tx,
                        job,
                        i32::from(status),
                        run_id.as_deref(),
                        f64::from(lease),
                    )?;
                    if admitted {
                        agents::record_wake_success(tx, &job.namespace, &job.target_agent)?;
                    }
                    Ok(())
                })
            });
            if let Err(e) = recorded {
                shared.note_error("recording the hook's runId", &e);
            }
            shared.metrics.count(Outcome::Woken, &job.target_agent);
            shared.log(
                Level::Info,
                "agent woken by hook",
                &[
                    ("job", &job.id),
                    ("agent", &job.target_agent),
                    ("attempt", &job.attempt_count),
                    ("status", &status),
                    ("run_id", &run_id.as_deref().unwrap_or("-")),
                ],
            );
        }
        HookOutcome::Rejected { status, detail } => wake_failed(
            shared,
            job,
            fence,
            &format!("hook refused the wake-up: {detail}"),
            WakeFailure::Rejected,
            true,
            AttemptFacts {
                hook_status: Some(i32::from(status)),
                ..Default::default()
            },
        ),
        HookOutcome::Retryable {
            status,
            detail,
            may_have_run,
        } => wake_failed(
            shared,
            job,
            fence,
            &format!("hook wake-up failed: {detail}"),
            WakeFailure::Transient,
            !may_have_run,
            AttemptFacts {
                hook_status: status.map(i32::from),
                ..Default::default()
            },
        ),
    }
}
