//! Memory candidates: proposing one from evidence, and a curator's accept or reject.

use super::{one_of, Candidate, KINDS, SCOPES, STABILITIES, VISIBILITIES};
use crate::db::decode;
use crate::error::{Error, Result};
use crate::ledger::validate::{check_name, check_optional_text, check_required_text};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// What `create-memory-candidate` records.
#[derive(Debug, Clone)]
pub struct NewCandidate {
    /// Namespace.
    pub namespace: String,
    /// The proposing agent.
    pub source_agent: String,
    /// One of [`KINDS`].
    pub kind: String,
    /// One of [`SCOPES`].
    pub scope: String,
    /// What the scope names: an agent id, a project key, a person, a service, or `*` for
    /// global.
    pub subject_key: String,
    /// One line.
    pub title: String,
    /// The memory, as it should be read later.
    pub body: String,
    /// Evidence (an object).
    pub evidence: Value,
    /// Sources: `{"jobs": [...], "attempts": [...], "events": [...], "opportunities": [...]}`.
    pub source_refs: Value,
    /// 1 to 5.
    pub confidence_score: i32,
    /// One of [`STABILITIES`].
    pub stability: String,
    /// One of [`VISIBILITIES`].
    pub visibility: String,
    /// One active candidate per (namespace, agent, key).
    pub dedupe_key: Option<String>,
}

/// A created candidate, or the active one with the same dedupe key.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedCandidate {
    /// The row.
    #[serde(flatten)]
    pub candidate: Candidate,
    /// True when an active candidate with the same dedupe key was returned instead.
    pub deduped: bool,
}

/// Files a memory candidate (one transaction).
pub fn create_candidate(
    tx: &mut postgres::Transaction<'_>,
    p: &NewCandidate,
) -> Result<CreatedCandidate> {
    check_name("`namespace`", &p.namespace)?;
    check_name("`source_agent`", &p.source_agent)?;
    one_of("`kind`", &p.kind, KINDS)?;
    one_of("`scope`", &p.scope, SCOPES)?;
    one_of("`stability`", &p.stability, STABILITIES)?;
    one_of("`visibility`", &p.visibility, VISIBILITIES)?;
    check_required_text("`subject_key`", &p.subject_key)?;
    check_required_text("`title`", &p.title)?;
    check_required_text("`body`", &p.body)?;
    check_optional_text("`dedupe_key`", p.dedupe_key.as_deref())?;
    if !(1..=5).contains(&p.confidence_score) {
        return Err(Error::usage(format!(
            "`confidence_score`: {} is out of range (1 to 5)",
            p.confidence_score
        )));
    }
    for (flag, v) in [
        ("`evidence`", &p.evidence),
        ("`source_refs`", &p.source_refs),
    ] {
        if !v.is_object() {
            return Err(Error::usage(format!("{flag}: expected a JSON object")));
        }
    }
    if let Some(key) = &p.dedupe_key {
        if let Some(row) = tx.query_opt(
            "select to_jsonb(c.*) as row from memory_candidates c
              where namespace = $1 and source_agent = $2 and dedupe_key = $3
                and status in ('new', 'reviewed')",
            &[&p.namespace, &p.source_agent, key],
        )? {
            return Ok(CreatedCandidate {
                candidate: decode(&row, "row")?,
                deduped: true,
            });
        }
    }
    let row = tx.query_one(
        "insert into memory_candidates (namespace, source_agent, candidate_kind, scope, subject_key,
                                        title, body, evidence, source_refs, confidence_score,
                                        stability, visibility, dedupe_key)
         values ($1, $2, $3::text::memory_kind, $4::text::memory_scope, $5, $6, $7, $8, $9, $10,
                 $11::text::memory_stability, $12::text::memory_visibility, $13)
         returning to_jsonb(memory_candidates.*) as row",
        &[
            &p.namespace,
            &p.source_agent,
            &p.kind,
            &p.scope,
            &p.subject_key,
            &p.title,
            &p.body,
            &p.evidence,
            &p.source_refs,
            &p.confidence_score,
            &p.stability,
            &p.visibility,
            &p.dedupe_key,
        ],
    )?;
    let candidate = decode(&row, "row")?;
    Ok(CreatedCandidate {
        candidate,
        deduped: false,
    })
}

pub(super) fn lock_candidate(tx: &mut postgres::Transaction<'_>, id: Uuid) -> Result<Candidate> {
    let row = tx
        .query_opt(
            "select to_jsonb(c.*) as row from memory_candidates c where id = $1 for update",
            &[&id],
        )?
        .ok_or_else(|| Error::not_found(format!("memory candidate {id} not found")))?;
    decode(&row, "row")
}

/// Marks a new candidate reviewed, or rejects a new or reviewed one, with the reviewer and
/// notes.
pub fn decide_candidate(
    tx: &mut postgres::Transaction<'_>,
    id: Uuid,
    reviewer: &str,
    notes: Option<&str>,
    reject: bool,
) -> Result<Candidate> {
    check_required_text("`reviewer`", reviewer)?;
    check_optional_text("`notes`", notes)?;
    let c = lock_candidate(tx, id)?;
    let allowed: &[&str] = if reject {
        &["new", "reviewed"]
    } else {
        &["new"]
    };
    if !allowed.contains(&c.status.as_str()) {
        return Err(Error::conflict(format!(
            "memory candidate {id} is {}; this applies to {} candidates",
            c.status,
            allowed.join(" and ")
        )));
    }
    let to = if reject { "rejected" } else { "reviewed" };
    let row = tx.query_one(
        "update memory_candidates set status = $2::text::memory_candidate_status, reviewer = $3,
                review_notes = coalesce($4, review_notes)
          where id = $1 returning to_jsonb(memory_candidates.*) as row",
        &[&id, &to, &reviewer, &notes],
    )?;
    let c = decode(&row, "row")?;
    Ok(c)
}
