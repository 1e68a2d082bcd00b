//! Whole namespaces: removing one (a finished demo, a staging copy of a fleet).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::ledger::validate::check_name;

/// What a purge removed, per table.
#[derive(Debug, Clone, Serialize)]
pub struct Purged {
    /// The namespace.
    pub namespace: String,
    /// Rows deleted per table (attempts, history and dependencies go with their jobs).
    pub deleted: BTreeMap<&'static str, u64>,
}

/// Deletes every row of `namespace` in one transaction. Refused (exit 4) while a
/// supervisor of the namespace has a fresh heartbeat: it would keep working on rows that
/// are going away.
pub fn purge(tx: &mut postgres::Transaction<'_>, namespace: &str) -> Result<Purged> {
    check_name("NAMESPACE", namespace)?;
    // Row security would make it delete nothing; say so instead (sql/0012_guardrails.sql).
    let allowed: bool = tx
        .query_one(
            "select agentbus_unrestricted() or $1 = any (agentbus_login_namespaces())",
            &[&namespace],
        )?
        .get(0);
    if !allowed {
        return Err(Error::not_permitted(format!(
            "this login may not purge namespace {namespace}: it is not one of its namespaces"
        )));
    }
    // Serialize with claims and syncs of the namespace: lock its agents and jobs first.
    tx.execute(
        "select 1 from agents where namespace = $1 for update",
        &[&namespace],
    )?;
    if let Some(row) = tx.query_opt(
        "select dispatcher_id from dispatcher_heartbeats
          where namespace = $1 and last_seen > now() - interval '90 seconds' limit 1",
        &[&namespace],
    )? {
        let id: String = row.try_get(0)?;
        return Err(Error::conflict(format!(
            "supervisor {id} is running in namespace {namespace}"
        ))
        .with_hint("stop it first (SIGTERM), then purge"));
    }
    let mut deleted = BTreeMap::new();
    for (table, sql) in [
        ("events", "delete from events where namespace = $1"),
        (
            "opportunity_reviews",
            "delete from opportunity_reviews r using opportunities o
              where r.opportunity_id = o.id and o.namespace = $1",
        ),
        ("ideas", "delete from ideas where namespace = $1"),
        (
            "memory_candidates",
            "update memory_candidates set promoted_memory_id = null where namespace = $1",
        ),
        ("memories", "delete from memories where namespace = $1"),
        (
            "memory_candidates",
            "delete from memory_candidates where namespace = $1",
        ),
        (
            "memory_curators",
            "delete from memory_curators where namespace = $1",
        ),
        (
            "lane_controls",
            "delete from lane_controls where namespace = $1",
        ),
        (
            "opportunities",
            "delete from opportunities where namespace = $1",
        ),
        (
            "proactive_budgets",
            "delete from proactive_budgets where namespace = $1",
        ),
        (
            "proactive_budget_refusals",
            "delete from proactive_budget_refusals where namespace = $1",
        ),
        (
            "standing_order_runs",
            "delete from standing_order_runs where namespace = $1",
        ),
        ("jobs", "delete from jobs where namespace = $1"),
        (
            "archived_jobs",
            "delete from archived_jobs where namespace = $1",
        ),
        (
            "archived_events",
            "delete from archived_events where namespace = $1",
        ),
        (
            "standing_orders",
            "delete from standing_orders where namespace = $1",
        ),
        (
            "approval_gates",
            "delete from approval_gates where namespace = $1",
        ),
        ("agents", "delete from agents where namespace = $1"),
        (
            "dispatcher_heartbeats",
            "delete from dispatcher_heartbeats where namespace = $1",
        ),
    ] {
        deleted.insert(table, tx.execute(sql, &[&namespace])?);
    }
    Ok(Purged {
        namespace: namespace.to_string(),
        deleted,
    })
}
