//! The memory lane: candidates proposed from evidence, memories promoted by curators or
//! operators (never deleted: superseded, expired or archived), the three-bucket retrieval
//! the supervisor injects into job prompts, and the lane's freeze.
//!
//! The rules that must hold for every writer live in the database
//! (sql/0005_memory.sql): no promotion while the lane is paused, shared memory only from a
//! curator or an operator, no memory without sources, one active memory per dedupe key.

mod candidates;
mod promotion;
mod read;

pub use candidates::*;
pub use promotion::*;
pub use read::*;

use crate::db::decode;
use crate::error::{Error, Result};
use crate::ledger::validate::{check_name, check_required_text};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// What a memory is about.
pub const KINDS: &[&str] = &[
    "decision",
    "preference",
    "pattern",
    "mistake",
    "lesson",
    "playbook",
    "constraint",
    "entity_fact",
    "context",
];
/// What a memory's subject key names.
pub const SCOPES: &[&str] = &["global", "agent", "project", "person", "service"];
/// How long a memory is expected to hold.
pub const STABILITIES: &[&str] = &["volatile", "medium", "stable"];
/// Who may retrieve a memory.
pub const VISIBILITIES: &[&str] = &["shared", "private"];

/// Most memories one retrieval returns.
pub const MAX_RETRIEVE: i64 = 50;

fn one_of(flag: &str, value: &str, allowed: &[&str]) -> Result<()> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "{flag}: unknown {value:?}; expected one of {}",
            allowed.join(", ")
        )))
    }
}

/// A row of `memory_candidates`.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub id: Uuid,
    pub namespace: String,
    pub source_agent: String,
    pub candidate_kind: String,
    pub scope: String,
    pub subject_key: String,
    pub title: String,
    pub body: String,
    pub evidence: Value,
    pub source_refs: Value,
    pub confidence_score: i32,
    pub stability: String,
    pub visibility: String,
    pub status: String,
    pub reviewer: Option<String>,
    pub review_notes: Option<String>,
    pub promoted_memory_id: Option<Uuid>,
    pub dedupe_key: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A row of `memories`.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    pub id: Uuid,
    pub namespace: String,
    pub kind: String,
    pub scope: String,
    pub subject_key: String,
    pub title: String,
    pub body: String,
    pub source_candidate_id: Option<Uuid>,
    pub source_refs: Value,
    pub confidence_score: i32,
    pub stability: String,
    pub visibility: String,
    pub owner_agent: Option<String>,
    pub status: String,
    pub created_by: Option<String>,
    pub updated_by: Option<String>,
    pub valid_from: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub next_review_at: Option<DateTime<Utc>>,
    pub supersedes_memory_id: Option<Uuid>,
    pub dedupe_key: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What retrieval looks for.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Namespace.
    pub namespace: String,
    /// The agent the memories are for.
    pub agent: String,
    /// Project key.
    pub project: Option<String>,
    /// Person key.
    pub person: Option<String>,
    /// Service key.
    pub service: Option<String>,
    /// At most this many in all.
    pub limit: i64,
}

/// A retrieved memory and the bucket it came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Retrieved {
    /// 1: the exact context (the agent, project, person or service); 2: lessons, mistakes,
    /// playbooks and constraints; 3: global decisions, preferences and constraints.
    pub bucket: i32,
    /// The memory.
    #[serde(flatten)]
    pub memory: Memory,
}

/// The seed's three buckets, each at most 4, never more than `limit` in all, each memory
/// once; expired, superseded and archived memories never; another agent's private memories
/// never (sql: retrieve_memories). A paused lane or injection switched off stops what the
/// supervisor injects when it builds a prompt, not this: an operator can still ask.
pub fn retrieve(client: &mut impl postgres::GenericClient, c: &Context) -> Result<Vec<Retrieved>> {
    check_name("`agent`", &c.agent)?;
    if !(1..=MAX_RETRIEVE).contains(&c.limit) {
        return Err(Error::usage(format!(
            "`limit`: {} is out of range (1 to {MAX_RETRIEVE})",
            c.limit
        )));
    }
    let rows = client.query(
        "select bucket, memory from retrieve_memories($1, $2, $3, $4, $5, $6, $7)",
        &[
            &c.namespace,
            &c.agent,
            &c.project,
            &c.person,
            &c.service,
            &(c.limit as i32),
            &false,
        ],
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        out.push(Retrieved {
            bucket: r.try_get(0)?,
            memory: decode(r, "memory")?,
        });
    }
    Ok(out)
}

/// A lane's switches.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct Lane {
    pub namespace: String,
    pub lane: String,
    pub inject: bool,
    pub paused: bool,
    pub paused_reason: Option<String>,
    pub paused_by: Option<String>,
    pub paused_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// Whether a lane of `namespace` is paused (no row: it runs).
pub fn is_paused(
    client: &mut impl postgres::GenericClient,
    namespace: &str,
    lane: &str,
) -> Result<bool> {
    Ok(client
        .query_opt(
            "select paused from lane_controls where namespace = $1 and lane = $2",
            &[&namespace, &lane],
        )?
        .map(|r| r.try_get::<_, bool>(0))
        .transpose()?
        .unwrap_or(false))
}

/// Pauses (freezes) or resumes a lane of `namespace` (`lane_controls` belongs to this
/// module): while `memory` is paused nothing is promoted or injected; while `proactive` is
/// paused the triggers of sql/0015_proactive_lane_pause.sql refuse new ideas,
/// opportunities and conversions.
pub fn set_paused(
    tx: &mut postgres::Transaction<'_>,
    namespace: &str,
    lane: &str,
    paused: bool,
    reason: Option<&str>,
    actor: &str,
) -> Result<Lane> {
    check_name("`namespace`", namespace)?;
    if !matches!(lane, "memory" | "proactive") {
        return Err(Error::usage(format!(
            "unknown lane {lane:?}; the lanes that can be paused are: memory, proactive"
        )));
    }
    if paused {
        check_required_text("`reason`", reason.unwrap_or(""))?;
    }
    let row = tx.query_one(
        "insert into lane_controls (namespace, lane, paused, paused_reason, paused_by, paused_at)
         values ($1, $2, $3, $4, $5, case when $3 then now() end)
         on conflict (namespace, lane) do update
           set paused = excluded.paused, paused_reason = excluded.paused_reason,
               paused_by = excluded.paused_by, paused_at = excluded.paused_at, updated_at = now()
         returning to_jsonb(lane_controls.*) as row",
        &[
            &namespace,
            &lane,
            &paused,
            &reason.filter(|_| paused),
            &Some(actor).filter(|_| paused),
        ],
    )?;
    decode(&row, "row")
}
