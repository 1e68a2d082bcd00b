//! Recording how a wake-up ended when the agent could not close the job itself: a failed
//! wake-up (hook refused or unreachable, command that could not start) and a job given
//! back unstarted at shutdown. Used by both wake modes (`wake` and `exec`).

use super::log::Level;
use super::metrics::Outcome;
use super::shared::Shared;
use crate::error::ErrorKind;
use crate::ledger::agents::{self, WakeFailure};
use crate::ledger::jobs::{self, AttemptFacts, AttemptStatus, FailParams, Fence, Job};

/// Fails the attempt of a wake-up that went wrong and records it on the agent, in one
/// transaction. `unreached`: the agent certainly did not start, so the attempt does not
/// count toward `max_attempts`.
pub(super) fn wake_failed(
    shared: &Shared,
    job: &Job,
    fence: Fence,
    error: &str,
    kind: WakeFailure,
    unreached: bool,
    facts: AttemptFacts,
) {
    let counted = job.attempt_count - job.unreached_attempts;
    let retry = if unreached {
        0
    } else {
        jobs::retry_backoff_seconds(counted)
    };
    let result = shared.pool.get().and_then(|mut c| {
        crate::db::transaction(&mut c, |tx| {
            let failed = jobs::fail(
                tx,
                job.id,
                fence,
                &shared.caller("wake"),
                &FailParams {
                    last_error: error.to_string(),
                    retry_seconds: Some(retry),
                    unreached,
                    facts,
                    ..Default::default()
                },
            )?;
            agents::record_wake_failure(
                tx,
                &job.namespace,
                &job.target_agent,
                kind,
                error,
                &shared.cfg.supervisor_id,
            )?;
            Ok(failed)
        })
    });
    shared.metrics.count(Outcome::Failed, &job.target_agent);
    match result {
        Ok(after) => shared.log(
            if kind == WakeFailure::Rejected {
                Level::Error
            } else {
                Level::Warn
            },
            if kind == WakeFailure::Rejected {
                "wake-up refused; agent paused"
            } else {
                "wake-up failed; agent backing off"
            },
            &[
                ("job", &job.id),
                ("agent", &job.target_agent),
                ("attempt", &job.attempt_count),
                ("now", &after.status),
                ("error", &error),
            ],
        ),
        Err(e) if e.kind == ErrorKind::Conflict => shared.log(
            Level::Info,
            "job changed hands while waking its agent",
            &[("job", &job.id), ("reason", &e.message)],
        ),
        Err(e) => shared.note_error("recording a failed wake-up", &e),
    }
}

/// Gives back a job claimed but not started (shutdown).
pub(super) fn release(shared: &Shared, job: &Job, fence: Fence) {
    let result = shared.pool.get().and_then(|mut c| {
        crate::db::transaction(&mut c, |tx| {
            jobs::release_unwoken(
                tx,
                job.id,
                fence,
                &shared.caller("supervisor-shutdown"),
                AttemptStatus::Cancelled,
                "released unstarted: the supervisor is shutting down",
            )
        })
    });
    match result {
        Ok(_) => {
            shared.metrics.count(Outcome::Released, &job.target_agent);
            shared.log(Level::Info, "released unstarted job", &[("job", &job.id)]);
        }
        Err(e) => shared.note_error("releasing an unstarted job (its lease will recover it)", &e),
    }
}
