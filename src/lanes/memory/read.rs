//! Reading memories: filtered lists and one memory with its candidate, sources and the
//! runs that saw it.

use super::{one_of, Candidate, Memory, KINDS, SCOPES};
use crate::db::{decode, decode_all};
use crate::error::{Error, Result};
use serde::Serialize;
use uuid::Uuid;

/// Filters for `list-memories`.
#[derive(Debug, Clone, Default)]
pub struct MemoryFilter {
    /// Namespace.
    pub namespace: String,
    /// Statuses (active when empty).
    pub statuses: Vec<String>,
    /// Kind.
    pub kind: Option<String>,
    /// Scope.
    pub scope: Option<String>,
    /// Subject key.
    pub subject_key: Option<String>,
    /// Only memories whose next review is due.
    pub due_for_review: bool,
    /// At most this many.
    pub limit: i64,
}

/// Memories, most confident and newest first (or, due for review, oldest review first).
pub fn list(client: &mut impl postgres::GenericClient, f: &MemoryFilter) -> Result<Vec<Memory>> {
    if !(1..=10_000).contains(&f.limit) {
        return Err(Error::usage(format!(
            "`limit`: {} is out of range (1 to 10000)",
            f.limit
        )));
    }
    if let Some(k) = &f.kind {
        one_of("`kind`", k, KINDS)?;
    }
    if let Some(s) = &f.scope {
        one_of("`scope`", s, SCOPES)?;
    }
    for s in &f.statuses {
        one_of(
            "`status`",
            s,
            &["active", "superseded", "expired", "archived"],
        )?;
    }
    let statuses: Vec<String> = if f.statuses.is_empty() {
        vec!["active".into()]
    } else {
        f.statuses.clone()
    };
    let rows = client.query(
        "select to_jsonb(m.*) as row from memories m
          where namespace = $1 and status::text = any($2)
            and ($3::text is null or kind::text = $3)
            and ($4::text is null or scope::text = $4)
            and ($5::text is null or subject_key = $5)
            and (not $6 or (status = 'active' and next_review_at <= now()))
          order by case when $6 then next_review_at end, confidence_score desc, created_at desc, id
          limit $7",
        &[
            &f.namespace,
            &statuses,
            &f.kind,
            &f.scope,
            &f.subject_key,
            &f.due_for_review,
            &f.limit,
        ],
    )?;
    decode_all(&rows, "row")
}

/// A memory with where it came from.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryDetail {
    /// The row.
    #[serde(flatten)]
    pub memory: Memory,
    /// The candidate it was promoted from.
    pub candidate: Option<Candidate>,
    /// Its sources (kind, ref).
    pub links: Vec<(String, String)>,
    /// The memory it superseded, and the one that superseded it.
    pub supersedes: Option<Uuid>,
    /// The memory that replaced this one.
    pub superseded_by: Option<Uuid>,
    /// Attempts whose prompt included it (newest first, at most 20).
    pub seen_by_attempts: Vec<(Uuid, i32)>,
}

/// One memory with its provenance.
pub fn show(client: &mut impl postgres::GenericClient, id: Uuid) -> Result<MemoryDetail> {
    let row = client
        .query_opt(
            "select to_jsonb(m.*) as row from memories m where id = $1",
            &[&id],
        )?
        .ok_or_else(|| Error::not_found(format!("memory {id} not found")))?;
    let memory: Memory = decode(&row, "row")?;
    let candidate = match memory.source_candidate_id {
        Some(c) => client
            .query_opt(
                "select to_jsonb(c.*) as row from memory_candidates c where id = $1",
                &[&c],
            )?
            .map(|r| decode(&r, "row"))
            .transpose()?,
        None => None,
    };
    let mut links = Vec::new();
    for r in client.query(
        "select kind, ref from memory_links where memory_id = $1 order by kind, ref",
        &[&id],
    )? {
        links.push((r.try_get(0)?, r.try_get(1)?));
    }
    let superseded_by = client
        .query_opt(
            "select id from memories where supersedes_memory_id = $1 order by created_at desc limit 1",
            &[&id],
        )?
        .map(|r| r.try_get(0))
        .transpose()?;
    let mut seen = Vec::new();
    for r in client.query(
        "select job_id, attempt_no from job_attempts where $1 = any(memory_ids)
          order by started_at desc limit 20",
        &[&id],
    )? {
        seen.push((r.try_get(0)?, r.try_get(1)?));
    }
    Ok(MemoryDetail {
        supersedes: memory.supersedes_memory_id,
        memory,
        candidate,
        links,
        superseded_by,
        seen_by_attempts: seen,
    })
}
