//! Blocked work picked up without a human waiting for it (sql/0017_blocked_routing.sql):
//! the routing pass every supervisor runs once a minute, and the routing agent's answer.

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::Job;
use crate::db::{decode, set_actor};
use crate::error::{Error, Result};
use crate::ledger::validate::{check_name, check_required_text};

/// What the routing pass did to one blocked job.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Routed {
    /// The blocked job.
    pub job_id: Uuid,
    /// `routed` (a triage job for the routing agent) or `escalated` (a job that waits for
    /// a human).
    pub action: String,
    /// The job made.
    pub new_job_id: Uuid,
}

/// Routes the jobs blocked longer than their namespace's `[blocked]` policy allows
/// (`namespace`: one namespace, else all), once per block; returns what it did.
pub fn route_blocked(
    tx: &mut postgres::Transaction<'_>,
    namespace: Option<&str>,
) -> Result<Vec<Routed>> {
    if let Some(ns) = namespace {
        check_name("`namespace`", ns)?;
    }
    let rows = tx.query(
        "select job_id, action, new_job_id from route_blocked_jobs($1)",
        &[&namespace],
    )?;
    rows.iter()
        .map(|r| {
            Ok(Routed {
                job_id: r.try_get(0)?,
                action: r.try_get(1)?,
                new_job_id: r.try_get(2)?,
            })
        })
        .collect()
}

/// The routing agent's (or an operator's) answer to a blocked job: queued again, for
/// `to` (`None`: the same agent), with `payload` (`None`: the same payload).
pub fn reroute(
    tx: &mut postgres::Transaction<'_>,
    job_id: Uuid,
    to: Option<&str>,
    payload: Option<&Value>,
    reason: &str,
    actor: &str,
) -> Result<Job> {
    if let Some(agent) = to {
        check_name("`to`", agent)?;
    }
    check_required_text("`reason`", reason)?;
    if payload.is_some_and(|p| !p.is_object()) {
        return Err(Error::usage("`payload`: expected a JSON object"));
    }
    set_actor(tx, actor, Some("reroute-job"))?;
    let row = tx.query_one(
        "select to_jsonb(r) as row from reroute_blocked_job($1, $2, $3, $4) r",
        &[&job_id, &to, &payload, &reason],
    )?;
    decode(&row, "row")
}
