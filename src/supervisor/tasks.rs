//! The main loop's duties, each one database transaction: start-up (claim the id, forget
//! dead neighbours, release leftovers), reaping expired leases, firing and auditing
//! standing orders, and the `--once` check for work left. Claiming is `wake`'s.

use std::collections::HashMap;
use std::sync::Arc;

use super::heartbeat;
use super::log::Level;
use super::metrics::Outcome;
use super::plan::{plan_wake, WakePlan};
use super::shared::{Backoff, Shared};
use super::ONCE_CONNECT_PATIENCE;
use crate::error::{ErrorKind, Result};
use crate::ledger::agents;
use crate::ledger::jobs::{self, AttemptStatus, Fence, Job};

/// Connects (waiting for the database if it is not up yet), refuses a supervisor id that
/// another live process uses, and releases what a previous run under this id claimed
/// but never started.
pub(super) fn startup(shared: &Arc<Shared>) -> Result<()> {
    let mut backoff = Backoff::new();
    loop {
        match shared.pool.get() {
            Ok(mut client) => {
                heartbeat::check_id_free(shared, &mut client)?;
                heartbeat::forget_dead_neighbours(shared, &mut client)?;
                release_leftovers(shared, &mut client)?;
                shared.log(
                    Level::Info,
                    "started",
                    &[
                        ("supervisor", &shared.cfg.supervisor_id),
                        ("namespace", &shared.cfg.namespace),
                        ("version", &env!("CARGO_PKG_VERSION")),
                        ("pid", &std::process::id()),
                    ],
                );
                return Ok(());
            }
            // A daemon waits for its database (it may start first at boot); a --once run
            // from cron or a script gives up after a minute with exit 75.
            Err(e)
                if e.kind == ErrorKind::Temporary
                    && !shared.stopping()
                    && !(shared.cfg.once && shared.started.elapsed() > ONCE_CONNECT_PATIENCE) =>
            {
                shared.note_error("connecting", &e);
                backoff.sleep(shared);
            }
            Err(e) => return Err(e),
        }
    }
}

/// What a previous run under this id left `leased`. A job whose agent runs a command was
/// never started (a command starts only once its job is marked running): it goes back
/// to the queue at once, and the attempt does not count. A hook job may have been sent
/// (it is marked running when the gateway's admission is recorded, and the run may have
/// ended before that): waking it again could run the agent twice, so it is left to its
/// lease, like a job that was running; so is a job whose wake-up this run cannot plan.
fn release_leftovers(shared: &Shared, client: &mut postgres::Client) -> Result<()> {
    let rows = client.query(
        "select to_jsonb(j.*) as row from jobs j
         where namespace = $1 and lease_owner = $2 and status = 'leased'",
        &[&shared.cfg.namespace, &shared.cfg.supervisor_id],
    )?;
    if rows.is_empty() {
        return Ok(());
    }
    let left: Vec<Job> = crate::db::decode_all(&rows, "row")?;
    let agents: HashMap<String, agents::Agent> = agents::list(client, &shared.cfg.namespace)?
        .into_iter()
        .map(|a| (a.agent_id.clone(), a))
        .collect();
    for job in left {
        // Only a command job is known never to have started; anything else (a hook job, or
        // an agent whose wake-up this run cannot plan) may have been sent.
        let plan = plan_wake(shared, &job, agents.get(&job.target_agent));
        if !matches!(plan, Ok(WakePlan::Exec { .. })) {
            shared.log(
                Level::Info,
                "left a job of a previous run to its lease: not a command job, so its wake-up may have reached a gateway",
                &[("job", &job.id), ("leased_until", &job.leased_until.map_or_else(String::new, |t| t.to_rfc3339()))],
            );
            continue;
        }
        let fence = Fence {
            lease_token: job.lease_token,
            attempt: None,
            force: false,
        };
        match crate::db::transaction(client, |tx| {
            jobs::release_unwoken(
                tx,
                job.id,
                fence,
                &shared.caller("supervisor-restart"),
                AttemptStatus::Lost,
                "claimed by a previous run of this supervisor that ended before waking the agent",
            )
        }) {
            Ok(_) => shared.log(
                Level::Info,
                "released a job left by a previous run",
                &[("job", &job.id)],
            ),
            Err(e) if matches!(e.kind, ErrorKind::Conflict | ErrorKind::NotFound) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Fires due `supervisor` standing orders; returns how many jobs it created.
pub(super) fn fire_standing_orders(shared: &Shared) -> Result<usize> {
    let mut client = shared.pool.get()?;
    let report = crate::db::transaction(&mut client, |tx| {
        crate::ledger::standing_orders::fire_due(
            tx,
            &shared.cfg.namespace,
            chrono::Utc::now(),
            &format!("supervisor:{}", shared.cfg.supervisor_id),
        )
    })?;
    for f in &report.fired {
        shared.log(Level::Info, "standing order fired", &[("occurrence", f)]);
    }
    for m in &report.missed {
        shared.log(Level::Warn, "standing order missed", &[("occurrence", m)]);
    }
    for b in &report.broken {
        shared.log(
            Level::Error,
            "standing order cannot be scheduled",
            &[("order", b)],
        );
    }
    Ok(report.fired.len())
}

/// Records missed occurrences (supervisor- and OpenClaw-fired) and alert events.
pub(super) fn audit_standing_orders(shared: &Shared) -> Result<()> {
    let mut client = shared.pool.get()?;
    let now = chrono::Utc::now();
    let audit = crate::db::transaction(&mut client, |tx| {
        crate::fleet::audit::audit(
            tx,
            &shared.cfg.namespace,
            now - chrono::Duration::hours(24),
            now,
            None,
            true,
            &format!("supervisor:{}", shared.cfg.supervisor_id),
        )
    })?;
    if audit.recorded_missed > 0 || audit.alerts > 0 {
        shared.log(
            Level::Warn,
            "standing-order audit",
            &[
                ("missed_recorded", &audit.recorded_missed),
                ("alerts", &audit.alerts),
            ],
        );
    }
    Ok(())
}

/// Routes the namespace's work blocked too long (its `[blocked]` policy); returns how many
/// jobs it made.
pub(super) fn route_blocked(shared: &Shared) -> Result<usize> {
    let mut client = shared.pool.get()?;
    let routed = crate::db::transaction(&mut client, |tx| {
        jobs::route_blocked(tx, Some(&shared.cfg.namespace))
    })?;
    for r in &routed {
        shared.log(
            Level::Info,
            "blocked job routed",
            &[
                ("job", &r.job_id),
                ("action", &r.action),
                ("new_job", &r.new_job_id),
            ],
        );
    }
    Ok(routed.len())
}

/// Opens the namespace's due thinking windows (`[idle]`); returns how many.
pub(super) fn think(shared: &Shared) -> Result<usize> {
    let mut client = shared.pool.get()?;
    let fired = crate::db::transaction(&mut client, |tx| {
        crate::lanes::idle::fire(tx, &shared.cfg.namespace)
    })?;
    for f in &fired {
        shared.log(
            Level::Info,
            "thinking window opened",
            &[("agent", &f.agent_id), ("job", &f.job_id)],
        );
    }
    Ok(fired.len())
}

/// Recovers expired leases of the namespace (retry with back-off, or dead).
pub(super) fn reap(shared: &Shared) -> Result<u64> {
    let mut client = shared.pool.get()?;
    let reaped = jobs::requeue_expired(&mut *client, &shared.cfg.namespace, 1000)?;
    for job in &reaped {
        shared.metrics.count(Outcome::TimedOut, &job.target_agent);
        shared.log(
            Level::Info,
            "lease expired",
            &[
                ("job", &job.id),
                ("agent", &job.target_agent),
                ("attempt", &job.attempt_count),
                ("now", &job.status),
            ],
        );
    }
    Ok(reaped.len() as u64)
}

/// Whether anything is still ready for this supervisor, or leased or running anywhere in
/// the namespace (`--once` waits for hook runs to be closed by their agents).
pub(super) fn work_remains(shared: &Shared) -> Result<bool> {
    let mut client = shared.pool.get()?;
    let row = client.query_one(
        "select exists (
           select 1 from jobs j
           left join agents a on a.namespace = j.namespace and a.agent_id = j.target_agent
           where j.namespace = $1
             and (job_in_flight(j.status)
                  or (j.status = 'queued' and j.run_after <= now()
                      and not coalesce(a.paused, false)
                      and (a.wake_backoff_until is null or a.wake_backoff_until <= now())
                      and (a.wake_mode is not null or $2))))",
        &[&shared.cfg.namespace, &shared.cfg.default_wake.is_some()],
    )?;
    Ok(row.try_get(0)?)
}
