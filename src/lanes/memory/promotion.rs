//! Promotion of a candidate into memory (curators and operators only, with sources),
//! supersession, and retiring a memory (expired or archived, never deleted).

use super::{lock_candidate, one_of, Candidate, Memory, KINDS, SCOPES, STABILITIES};
use crate::db::{decode, set_actor};
use crate::error::{Error, Result};
use crate::ledger::validate::{check_optional_text, check_required_text};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// What `promote-memory-candidate` adds to the candidate.
#[derive(Debug, Clone, Default)]
pub struct Promotion {
    /// Who promotes (a curator or `operator:NAME` for shared memory).
    pub actor: String,
    /// The memory this one replaces (it becomes `superseded`).
    pub supersedes: Option<Uuid>,
    /// When it stops applying.
    pub expires_at: Option<DateTime<Utc>>,
    /// When a curator should look at it again.
    pub next_review_at: Option<DateTime<Utc>>,
    /// One active memory per (namespace, key).
    pub dedupe_key: Option<String>,
    /// Why (kept on the candidate).
    pub notes: Option<String>,
    /// The curator's edits of the candidate's fields, applied to the memory.
    pub edits: Edits,
}

/// Fields a curator may correct when promoting (`None` keeps the candidate's).
#[derive(Debug, Clone, Default)]
pub struct Edits {
    /// One of [`KINDS`].
    pub kind: Option<String>,
    /// One of [`SCOPES`].
    pub scope: Option<String>,
    /// Subject key.
    pub subject_key: Option<String>,
    /// Title.
    pub title: Option<String>,
    /// Body.
    pub body: Option<String>,
    /// 1 to 5.
    pub confidence_score: Option<i32>,
    /// One of [`STABILITIES`].
    pub stability: Option<String>,
}

/// A promotion's result.
#[derive(Debug, Clone, Serialize)]
pub struct Promoted {
    /// The new memory.
    pub memory: Memory,
    /// The candidate, now `promoted`.
    pub candidate: Candidate,
    /// The memory it superseded, now `superseded`.
    pub superseded: Option<Memory>,
}

const LINK_KINDS: [(&str, &str); 4] = [
    ("jobs", "job"),
    ("attempts", "attempt"),
    ("events", "event"),
    ("opportunities", "opportunity"),
];

/// Promotes a new or reviewed candidate into a memory, in one transaction: the memory
/// (sources: the candidate's references and evidence), its links, the superseded memory
/// marked `superseded` (never deleted), and the candidate marked `promoted`. The database
/// refuses (exit 4) while the lane is paused, without sources, and for shared memory from
/// anyone but a curator or an operator.
pub fn promote(tx: &mut postgres::Transaction<'_>, id: Uuid, p: &Promotion) -> Result<Promoted> {
    check_required_text("`actor`", &p.actor)?;
    check_optional_text("`dedupe_key`", p.dedupe_key.as_deref())?;
    check_optional_text("`notes`", p.notes.as_deref())?;
    let e = &p.edits;
    if let Some(k) = &e.kind {
        one_of("`kind`", k, KINDS)?;
    }
    if let Some(sc) = &e.scope {
        one_of("`scope`", sc, SCOPES)?;
    }
    if let Some(st) = &e.stability {
        one_of("`stability`", st, STABILITIES)?;
    }
    for (flag, v) in [
        ("`subject_key`", &e.subject_key),
        ("`title`", &e.title),
        ("`body`", &e.body),
    ] {
        if let Some(v) = v {
            check_required_text(flag, v)?;
        }
    }
    if let Some(c) = e.confidence_score {
        if !(1..=5).contains(&c) {
            return Err(Error::usage(format!(
                "`confidence_score`: {c} is out of range (1 to 5)"
            )));
        }
    }
    set_actor(tx, &p.actor, Some("promote-memory-candidate"))?;
    let c = lock_candidate(tx, id)?;
    if !matches!(c.status.as_str(), "new" | "reviewed") {
        return Err(Error::conflict(format!(
            "memory candidate {id} is {}; only new and reviewed candidates are promoted",
            c.status
        )));
    }
    let empty = |v: &Value| v.as_object().is_none_or(|o| o.is_empty());
    if empty(&c.evidence) && empty(&c.source_refs) {
        return Err(Error::conflict(format!(
            "memory candidate {id} has no evidence and no source references; a memory needs them"
        ))
        .with_hint("reject it, or ask its agent for a candidate that cites its sources"));
    }
    let mut refs = c.source_refs.as_object().cloned().unwrap_or_default();
    if !empty(&c.evidence) {
        refs.insert("evidence".into(), c.evidence.clone());
    }
    refs.insert("candidate".into(), Value::String(c.id.to_string()));
    let superseded = match p.supersedes {
        None => None,
        Some(old) => {
            let row = tx
                .query_opt(
                    "update memories set status = 'superseded', updated_by = $3
                      where id = $1 and namespace = $2 and status = 'active'
                      returning to_jsonb(memories.*) as row",
                    &[&old, &c.namespace, &p.actor],
                )?
                .ok_or_else(|| {
                    Error::conflict(format!(
                        "`supersedes_memory_id`: {old} is not an active memory of namespace {}",
                        c.namespace
                    ))
                })?;
            Some(decode::<Memory>(&row, "row")?)
        }
    };
    let owner = (c.visibility == "private").then(|| c.source_agent.clone());
    let row = tx
        .query_one(
            "insert into memories (namespace, kind, scope, subject_key, title, body, source_candidate_id,
                                   source_refs, confidence_score, stability, visibility, owner_agent,
                                   created_by, updated_by, expires_at, next_review_at,
                                   supersedes_memory_id, dedupe_key)
             values ($1, $2::text::memory_kind, $3::text::memory_scope, $4, $5, $6, $7, $8, $9,
                     $10::text::memory_stability, $11::text::memory_visibility, $12, $13, $13,
                     $14, $15, $16, $17)
             returning to_jsonb(memories.*) as row",
            &[
                &c.namespace,
                e.kind.as_ref().unwrap_or(&c.candidate_kind),
                e.scope.as_ref().unwrap_or(&c.scope),
                e.subject_key.as_ref().unwrap_or(&c.subject_key),
                e.title.as_ref().unwrap_or(&c.title),
                e.body.as_ref().unwrap_or(&c.body),
                &c.id,
                &Value::Object(refs.clone()),
                e.confidence_score.as_ref().unwrap_or(&c.confidence_score),
                e.stability.as_ref().unwrap_or(&c.stability),
                &c.visibility,
                &owner,
                &p.actor,
                &p.expires_at,
                &p.next_review_at,
                &p.supersedes,
                &p.dedupe_key,
            ],
        )
        .map_err(|e| {
            if e.as_db_error().is_some_and(|d| d.code().code() == "23505") {
                Error::conflict(format!(
                    "an active memory already has dedupe key {:?}; supersede it with `supersedes_memory_id`",
                    p.dedupe_key.as_deref().unwrap_or("")
                ))
            } else {
                e.into()
            }
        })?;
    let memory: Memory = decode(&row, "row")?;
    tx.execute(
        "insert into memory_links (memory_id, kind, ref) values ($1, 'candidate', $2)",
        &[&memory.id, &c.id.to_string()],
    )?;
    for (key, kind) in LINK_KINDS {
        if let Some(items) = refs.get(key).and_then(Value::as_array) {
            for item in items {
                let r = item
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| item.to_string());
                tx.execute(
                    "insert into memory_links (memory_id, kind, ref) values ($1, $2, $3)
                     on conflict do nothing",
                    &[&memory.id, &kind, &r],
                )?;
            }
        }
    }
    let row = tx.query_one(
        "update memory_candidates set status = 'promoted', promoted_memory_id = $2,
                reviewer = coalesce(reviewer, $3), review_notes = coalesce($4, review_notes)
          where id = $1 returning to_jsonb(memory_candidates.*) as row",
        &[&id, &memory.id, &p.actor, &p.notes],
    )?;
    let candidate = decode(&row, "row")?;
    Ok(Promoted {
        memory,
        candidate,
        superseded,
    })
}

/// Ends an active memory: `expired` (no longer true) or `archived` (no longer useful).
/// Nothing is deleted.
pub fn retire(
    tx: &mut postgres::Transaction<'_>,
    id: Uuid,
    to: &str,
    actor: &str,
) -> Result<Memory> {
    check_required_text("`actor`", actor)?;
    let row = tx
        .query_opt(
            "select status::text from memories where id = $1 for update",
            &[&id],
        )?
        .ok_or_else(|| Error::not_found(format!("memory {id} not found")))?;
    let status: String = row.try_get(0)?;
    if status != "active" {
        return Err(Error::conflict(format!(
            "memory {id} is {status}; only active memories can be {to}"
        )));
    }
    let row = tx.query_one(
        "update memories set status = $2::text::memory_status, updated_by = $3,
                expires_at = case when $2 = 'expired' then least(coalesce(expires_at, now()), now()) else expires_at end
          where id = $1 returning to_jsonb(memories.*) as row",
        &[&id, &to, &actor],
    )?;
    let m = decode(&row, "row")?;
    Ok(m)
}
