//! From a claim to the wake-ups, batched: one statement claims the jobs and reads their
//! prompts' inputs (`prompt::claim_for_wake`) and the prompts are rendered here. A hook
//! job then goes straight to a hook worker (`hook_workers`), whose recorder marks it
//! running when the gateway admits the run; the jobs whose agents run a command are
//! marked running with their wake records in one statement (`mark_woken_many`) before
//! each gets a thread of its own (`exec`). No thread is started and no connection opened
//! per hook job.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use chrono::Utc;

use super::exec;
use super::hook_workers::HookWorkers;
use super::log::Level;
use super::metrics::Outcome;
use super::outcome::{release, wake_failed};
use super::plan::{plan_wake, HookJob, Ready, WakePlan};
use super::shared::{ClaimTurn, Shared, Slot};
use crate::db::Session;
use crate::error::{ErrorKind, Result};
use crate::ledger::agents::{WakeFailure, WakeMode};
use crate::ledger::jobs::{self, AttemptFacts, Fence, WakeRecord, Waking};
use crate::supervisor::prompt::{self, ClaimedJob};

/// What one claim for the free slots did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Claim {
    /// Every slot is taken: a freed one asks again.
    NoFreeSlot,
    /// `n` jobs claimed and handed on; `full`: as many as were asked for (more may wait).
    Claimed { n: usize, full: bool },
}

/// Claims for the free slots (at most a batch) and starts waking the agents, in the
/// claimer's turn, so two claimers never count the same free slot. `on`: the connection
/// to claim on (the listener's: see `listener`), else one from the pool.
pub(super) fn claim_free(
    shared: &Arc<Shared>,
    workers: &HookWorkers,
    _turn: &ClaimTurn<'_>,
    on: Option<&mut Session>,
) -> Result<Claim> {
    let cfg = &shared.cfg;
    let free = cfg
        .max_in_flight
        .saturating_sub(shared.in_flight.load(Ordering::SeqCst));
    if free == 0 {
        return Ok(Claim::NoFreeSlot);
    }
    let limit = i32::try_from(free).unwrap_or(i32::MAX).min(cfg.claim_batch);
    let n = claim_and_wake(shared, workers, limit, on)?;
    Ok(Claim::Claimed {
        n,
        full: i32::try_from(n) == Ok(limit),
    })
}

/// Claims up to `limit` jobs and starts waking their agents; returns how many it claimed.
///
/// A hook wake-up is sent at once, its job still `leased`: the recorder marks it running
/// when the gateway admits the run (`record_hook_admissions`), so nothing is written
/// between the claim and the request. A command is started only after its job is marked
/// running, in one statement for the batch (`mark_woken_many`).
fn claim_and_wake(
    shared: &Arc<Shared>,
    workers: &HookWorkers,
    limit: i32,
    on: Option<&mut Session>,
) -> Result<usize> {
    let params = shared.claim_params(limit);
    let claimed = match on {
        Some(session) => prompt::claim_for_wake(session, &params)?,
        None => prompt::claim_for_wake(&mut shared.pool.get()?, &params)?,
    };
    let n = claimed.len();
    let mut commands = Vec::new();
    for (ready, waking) in claimed.into_iter().filter_map(|c| prepare(shared, c)) {
        if matches!(ready.plan, WakePlan::Hook(_)) {
            deliver(shared, workers, ready, waking.record);
        } else {
            commands.push((ready, waking));
        }
    }
    if commands.is_empty() {
        return Ok(n);
    }
    let (ready, batch): (Vec<Ready>, Vec<Waking>) = commands.into_iter().unzip();
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
    for ((ready, waking), result) in ready.into_iter().zip(batch).zip(results) {
        match result {
            Ok(job) => deliver(shared, workers, Ready { job, ..ready }, waking.record),
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

/// Takes a slot for a claimed job, plans its wake-up and renders its prompt (with the
/// wake record to mark it running); `None` when it was given back (shutdown) or its agent
/// cannot be woken as configured (recorded).
fn prepare(shared: &Arc<Shared>, claimed: ClaimedJob) -> Option<(Ready, Waking)> {
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
    let waking = Waking {
        job_id: job.id,
        fence,
        record,
    };
    Some((
        Ready {
            job: claimed.input.job,
            fence,
            plan,
            text: prompt.text,
            slot,
        },
        waking,
    ))
}

/// Hands a job to a hook worker (still `leased`), or to a thread running its command
/// (marked running), and counts its dispatch latency.
fn deliver(shared: &Arc<Shared>, workers: &HookWorkers, ready: Ready, wake: WakeRecord) {
    let Ready {
        job,
        fence,
        plan,
        text,
        slot,
    } = ready;
    let ready_at = job.run_after.max(job.created_at);
    let latency = (Utc::now() - ready_at).num_microseconds().unwrap_or(0) as f64 / 1e6;
    shared.metrics.observe_dispatch(latency);
    match plan {
        WakePlan::Hook(target) => workers.submit(
            shared,
            HookJob {
                job,
                fence,
                target,
                text,
                wake,
                slot,
            },
        ),
        WakePlan::Exec { argv, timeout } => {
            let worker = Arc::clone(shared);
            let job_id = job.id;
            let spawned = std::thread::Builder::new()
                .name(format!("job-{job_id}"))
                .spawn(move || {
                    exec::run(&worker, &job, fence, &argv, timeout, &text);
                    drop(slot);
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
