//! The proactive lane: ideas ("this might matter"), scored opportunities ("this clears the
//! bar: decide"), their triage and conversion into jobs, and the per-agent daily budgets
//! that keep agents from drowning people in proposals. The budgets are enforced by the
//! database (sql/0004_proactive.sql); this module checks them first so it can say what
//! was used and when it resets, or file an over-budget opportunity as an idea.

mod budgets;
mod ideas;
mod opportunities;
mod read;

pub use budgets::*;
pub use ideas::*;
pub use opportunities::*;
pub use read::*;

use crate::db::decode;
use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// How easily an opportunity's next step can be undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reversibility {
    /// Easy to undo.
    High,
    /// Some cost to undo.
    Medium,
    /// Hard or impossible to undo.
    Low,
}

impl Reversibility {
    /// The SQL enum label.
    pub fn as_str(self) -> &'static str {
        match self {
            Reversibility::High => "high",
            Reversibility::Medium => "medium",
            Reversibility::Low => "low",
        }
    }

    /// Its part of the score.
    fn bonus(self) -> i32 {
        match self {
            Reversibility::High => 2,
            Reversibility::Medium => 1,
            Reversibility::Low => 0,
        }
    }
}

/// The ranking score: impact x confidence + urgency + 2 (high reversibility) or 1
/// (medium); from 2 to 32. The same formula as the SQL function `opportunity_score`.
pub fn score(impact: i32, confidence: i32, urgency: i32, reversibility: Reversibility) -> i32 {
    impact * confidence + urgency + reversibility.bonus()
}

/// A row of `opportunities`, with its score.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Opportunity {
    pub id: Uuid,
    pub namespace: String,
    pub source_agent: String,
    pub theme: String,
    pub title: String,
    pub why_now: String,
    pub evidence: Value,
    pub impact_score: i32,
    pub confidence_score: i32,
    pub urgency_score: i32,
    pub reversibility: Reversibility,
    pub owner_candidate: Option<String>,
    pub suggested_next_step: String,
    pub status: String,
    pub triaged_by: Option<String>,
    pub triage_notes: Option<String>,
    pub triaged_at: Option<DateTime<Utc>>,
    pub converted_job_id: Option<Uuid>,
    pub dedupe_key: Option<String>,
    pub idea_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// [`score`], computed.
    #[serde(default)]
    pub score: i32,
}

/// A row of `ideas`.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Idea {
    pub id: Uuid,
    pub namespace: String,
    pub source_agent: String,
    pub theme: String,
    pub title: String,
    pub body: String,
    pub evidence: Value,
    pub tags: Vec<String>,
    pub status: String,
    pub promoted_opportunity_id: Option<Uuid>,
    pub dedupe_key: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A row of `opportunity_reviews`.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Review {
    pub id: i64,
    pub opportunity_id: Uuid,
    pub reviewer: String,
    pub decision: String,
    pub notes: Option<String>,
    pub created_at: DateTime<Utc>,
}

const OPPORTUNITY_ROW: &str =
    "to_jsonb(o.*) || jsonb_build_object('score', opportunity_score(o.impact_score, o.confidence_score, o.urgency_score, o.reversibility)) as row";

/// A created row, or the active one with the same dedupe key.
#[derive(Debug, Clone, Serialize)]
pub struct Created<T> {
    /// The row.
    #[serde(flatten)]
    pub row: T,
    /// True when an active row with the same dedupe key was returned instead.
    pub deduped: bool,
}

fn lock_idea(tx: &mut postgres::Transaction<'_>, id: Uuid) -> Result<Idea> {
    let row = tx
        .query_opt(
            "select to_jsonb(i.*) as row from ideas i where id = $1 for update",
            &[&id],
        )?
        .ok_or_else(|| Error::not_found(format!("idea {id} not found")))?;
    decode(&row, "row")
}

fn lock_opportunity(tx: &mut postgres::Transaction<'_>, id: Uuid) -> Result<Opportunity> {
    let row = tx
        .query_opt(
            &format!("select {OPPORTUNITY_ROW} from opportunities o where id = $1 for update"),
            &[&id],
        )?
        .ok_or_else(|| Error::not_found(format!("opportunity {id} not found")))?;
    decode(&row, "row")
}

fn refuse(what: &str, id: Uuid, status: &str, allowed: &str) -> Error {
    Error::conflict(format!(
        "{what} {id} is {status}; this applies to {allowed}"
    ))
}
