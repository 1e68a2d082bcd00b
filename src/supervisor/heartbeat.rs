//! `dispatcher_heartbeats`: one row per live supervisor, refreshed every few seconds, so
//! operators (and `agentbus status`) can tell a running supervisor from a dead one.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::log::Level;
use super::metrics::Outcome;
use super::shared::Shared;
use crate::error::{Error, Result};

/// The host name, for the heartbeat row.
pub fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown-host".to_string())
}

/// Refuses to start when another live supervisor uses the same id: two processes sharing
/// an id would release each other's claims.
pub(super) fn check_id_free(shared: &Shared, client: &mut postgres::Client) -> Result<()> {
    let fresh_within = (shared.cfg.heartbeat_interval * 3).max(Duration::from_secs(15));
    let row = client.query_opt(
        "select host, pid, extract(epoch from now() - last_seen)::float8
         from dispatcher_heartbeats
         where namespace = $1 and dispatcher_id = $2
           and last_seen > now() - make_interval(secs => $3)",
        &[
            &shared.cfg.namespace,
            &shared.cfg.supervisor_id,
            &fresh_within.as_secs_f64(),
        ],
    )?;
    if let Some(row) = row {
        let host: Option<String> = row.try_get(0)?;
        let pid: Option<i32> = row.try_get(1)?;
        let age: f64 = row.try_get(2)?;
        let here = host_name();
        let me = (Some(here.clone()), Some(std::process::id() as i32));
        // A process of this host that no longer exists (kill -9, then a restart by
        // systemd) does not hold the id.
        let dead_here = host.as_deref() == Some(here.as_str())
            && pid.is_some_and(|p| {
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None)
                    == Err(nix::errno::Errno::ESRCH)
            });
        if (host.clone(), pid) != me && !dead_here {
            return Err(Error::config(format!(
                "supervisor id {:?} is in use by {} pid {} (heartbeat {:.0}s ago)",
                shared.cfg.supervisor_id,
                host.as_deref().unwrap_or("?"),
                pid.map_or("?".to_string(), |p| p.to_string()),
                age
            ))
            .with_hint(
                "give each supervisor its own `supervisor_id`, or stop the other one first",
            ));
        }
    }
    Ok(())
}

/// Writes the first heartbeat, then starts the heartbeat thread; it ends when the
/// supervisor stops and no job thread is left. The first beat is written before the
/// main loop claims anything, so a supervisor never holds work without its row. Failing
/// to start the thread is fatal: a supervisor without a heartbeat looks dead to every
/// operator and to `agentbus health`.
pub(super) fn spawn(shared: Arc<Shared>) -> Result<std::thread::JoinHandle<()>> {
    let first = Instant::now();
    if let Err(e) = beat(&shared) {
        shared.note_error("writing the heartbeat", &e);
    }
    std::thread::Builder::new()
        .name("heartbeat".into())
        .spawn(move || {
            let mut last: Option<Instant> = Some(first);
            loop {
                let done = shared.stopping() && shared.in_flight.load(Ordering::SeqCst) == 0;
                if done {
                    break;
                }
                if last.is_none_or(|t| t.elapsed() >= shared.cfg.heartbeat_interval) {
                    last = Some(Instant::now());
                    if let Err(e) = beat(&shared) {
                        shared.note_error("writing the heartbeat", &e);
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
        .map_err(|e| Error::failure(format!("cannot start the heartbeat thread: {e}")))
}

fn beat(shared: &Shared) -> Result<()> {
    let mut client = shared.pool.get()?;
    let last_error = shared.last_error.lock().ok().and_then(|e| e.clone());
    let m = &shared.metrics;
    let metrics = serde_json::json!({
        "claimed": m.total(Outcome::Claimed),
        "woken": m.total(Outcome::Woken),
        "succeeded": m.total(Outcome::Succeeded),
        "failed": m.total(Outcome::Failed),
        "timed_out": m.total(Outcome::TimedOut),
        "lease_renewals": m.lease_renewals.load(Ordering::Relaxed),
        "db_errors": m.db_errors.load(Ordering::Relaxed),
        "uptime_seconds": shared.started.elapsed().as_secs(),
        "stopping": shared.stopping(),
    });
    let in_flight = i32::try_from(shared.in_flight.load(Ordering::SeqCst)).unwrap_or(i32::MAX);
    client.execute(
        "insert into dispatcher_heartbeats as h
           (namespace, dispatcher_id, host, pid, version, started_at, last_seen,
            leases_owned, busy_agents, in_flight, last_error, metrics)
         select $1, $2, $3, $4, $5, now() - make_interval(secs => $6), now(),
                coalesce(l.leases, 0), coalesce(l.agents, 0), $7, $8, $9
         from (select count(*)::int as leases, count(distinct target_agent)::int as agents
               from jobs
               where namespace = $1 and lease_owner = $2 and job_in_flight(status)) l
         on conflict (namespace, dispatcher_id) do update set
           host = excluded.host, pid = excluded.pid, version = excluded.version,
           started_at = excluded.started_at, last_seen = now(),
           leases_owned = excluded.leases_owned, busy_agents = excluded.busy_agents,
           in_flight = excluded.in_flight, last_error = excluded.last_error,
           metrics = excluded.metrics",
        &[
            &shared.cfg.namespace,
            &shared.cfg.supervisor_id,
            &host_name(),
            &(std::process::id() as i32),
            &env!("CARGO_PKG_VERSION"),
            &shared.started.elapsed().as_secs_f64(),
            &in_flight,
            &last_error,
            &metrics,
        ],
    )?;
    shared.log(Level::Debug, "heartbeat", &[("in_flight", &in_flight)]);
    Ok(())
}

/// Removes the heartbeat rows of supervisors of this host whose process no longer exists
/// (killed, crashed, then restarted under a new id), so `status` and `audit` stop
/// reporting them stale. Their leases are not touched: they expire and are recovered.
pub(super) fn forget_dead_neighbours(shared: &Shared, client: &mut postgres::Client) -> Result<()> {
    let here = host_name();
    let rows = client.query(
        "select dispatcher_id, pid, last_seen from dispatcher_heartbeats
          where namespace = $1 and host = $2 and dispatcher_id <> $3 and pid is not null",
        &[&shared.cfg.namespace, &here, &shared.cfg.supervisor_id],
    )?;
    for row in rows {
        let id: String = row.try_get(0)?;
        let pid: i32 = row.try_get(1)?;
        let seen: chrono::DateTime<chrono::Utc> = row.try_get(2)?;
        let gone = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
            == Err(nix::errno::Errno::ESRCH);
        if !gone {
            continue;
        }
        // Only the row as observed: a process that came back meanwhile keeps its row.
        let removed = client.execute(
            "delete from dispatcher_heartbeats
              where namespace = $1 and dispatcher_id = $2 and last_seen = $3",
            &[&shared.cfg.namespace, &id, &seen],
        )?;
        if removed > 0 {
            shared.log(
                Level::Info,
                "forgot the heartbeat of a dead supervisor of this host",
                &[("supervisor", &id), ("pid", &pid)],
            );
        }
    }
    Ok(())
}

/// Deletes this supervisor's heartbeat row on a clean stop, so it is not reported stale.
pub(super) fn remove(shared: &Shared) {
    let result = shared.pool.get().and_then(|mut c| {
        c.execute(
            "delete from dispatcher_heartbeats where namespace = $1 and dispatcher_id = $2",
            &[&shared.cfg.namespace, &shared.cfg.supervisor_id],
        )
        .map_err(Error::from)
    });
    if let Err(e) = result {
        shared.log(
            Level::Warn,
            "could not remove the heartbeat row; it will show as stale",
            &[("error", &e.message)],
        );
    }
}
