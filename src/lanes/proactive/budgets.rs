//! Per-agent daily budgets for proposals, and the refusals the audit reads.

use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// A budget as the database counts it.
#[derive(Debug, Clone, Serialize)]
pub struct Budget {
    /// Namespace.
    pub namespace: String,
    /// `opportunity`, `urgent` or `idea`.
    pub kind: &'static str,
    /// The agent.
    pub agent: String,
    /// Per UTC day; `None` = no limit.
    pub limit: Option<i32>,
    /// Used today.
    pub used: i64,
    /// When the day ends.
    pub resets_at: DateTime<Utc>,
}

impl Budget {
    /// The refusal, when nothing is left.
    pub(super) fn exceeded(&self) -> Option<Error> {
        let limit = self.limit?;
        (self.used >= i64::from(limit)).then(|| {
            let what = match self.kind {
                "opportunity" => "new opportunities",
                "urgent" => "urgent escalations (urgency 5)",
                _ => "ideas",
            };
            Error::conflict(format!(
                "budget: {} may create {limit} {what} per day; {} used today; resets at {}",
                self.agent,
                self.used,
                self.resets_at.format("%Y-%m-%d %H:%M:%SZ")
            ))
            .with_hint(match self.kind {
                "idea" => "keep the best ones; the budget is in the agent's agent.toml [budgets]",
                _ => "file it as an idea (`overflow_to_idea`) or keep only the strongest",
            })
        })
    }
}

/// Locks the agent's budget for this transaction and reads it (sql: proactive_budget).
pub(super) fn budget(
    tx: &mut postgres::Transaction<'_>,
    namespace: &str,
    agent: &str,
    kind: &'static str,
) -> Result<Budget> {
    let row = tx.query_one(
        "select budget, used, resets_at from proactive_budget($1, $2, $3)",
        &[&namespace, &agent, &kind],
    )?;
    Ok(Budget {
        namespace: namespace.to_string(),
        kind,
        agent: agent.to_string(),
        limit: row.try_get(0)?,
        used: i64::from(row.try_get::<_, i32>(1)?),
        resets_at: row.try_get(2)?,
    })
}

pub(super) fn record_refusal(
    tx: &mut postgres::Transaction<'_>,
    b: &Budget,
    title: &str,
    overflowed: Option<Uuid>,
) -> Result<()> {
    tx.execute(
        "insert into proactive_budget_refusals (namespace, agent_id, kind, budget, used, title, overflowed_to_idea)
         values ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &b.namespace,
            &b.agent,
            &b.kind,
            &b.limit.unwrap_or(0),
            &i32::try_from(b.used).unwrap_or(i32::MAX),
            &title,
            &overflowed,
        ],
    )?;
    Ok(())
}
