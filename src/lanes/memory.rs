//! The memory lane: candidates proposed from evidence, memories promoted by curators or
//! operators (never deleted: superseded, expired or archived), the three-bucket retrieval
//! the supervisor injects into job prompts, and the lane's freeze.
//!
//! The rules that must hold for every writer live in the database
//! (sql/0005_memory.sql): no promotion while the lane is paused, shared memory only from a
//! curator or an operator, no memory without sources, one active memory per dedupe key.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::db::{decode, decode_all, set_actor};
use crate::error::{Error, Result};
use crate::ledger::input::{check_optional_text, check_required_text};

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
    check_required_text("--namespace", &p.namespace)?;
    check_required_text("--source-agent", &p.source_agent)?;
    one_of("--kind", &p.kind, KINDS)?;
    one_of("--scope", &p.scope, SCOPES)?;
    one_of("--stability", &p.stability, STABILITIES)?;
    one_of("--visibility", &p.visibility, VISIBILITIES)?;
    check_required_text("--subject-key", &p.subject_key)?;
    check_required_text("--title", &p.title)?;
    check_required_text("--body", &p.body)?;
    check_optional_text("--dedupe-key", p.dedupe_key.as_deref())?;
    if !(1..=5).contains(&p.confidence_score) {
        return Err(Error::usage(format!(
            "--confidence-score: {} is out of range (1 to 5)",
            p.confidence_score
        )));
    }
    for (flag, v) in [
        ("--evidence", &p.evidence),
        ("--source-refs", &p.source_refs),
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

fn lock_candidate(tx: &mut postgres::Transaction<'_>, id: Uuid) -> Result<Candidate> {
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
    check_required_text("--reviewer", reviewer)?;
    check_optional_text("--notes", notes)?;
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
    check_required_text("--actor", &p.actor)?;
    check_optional_text("--dedupe-key", p.dedupe_key.as_deref())?;
    check_optional_text("--notes", p.notes.as_deref())?;
    let e = &p.edits;
    if let Some(k) = &e.kind {
        one_of("--kind", k, KINDS)?;
    }
    if let Some(sc) = &e.scope {
        one_of("--scope", sc, SCOPES)?;
    }
    if let Some(st) = &e.stability {
        one_of("--stability", st, STABILITIES)?;
    }
    for (flag, v) in [
        ("--subject-key", &e.subject_key),
        ("--title", &e.title),
        ("--body", &e.body),
    ] {
        if let Some(v) = v {
            check_required_text(flag, v)?;
        }
    }
    if let Some(c) = e.confidence_score {
        if !(1..=5).contains(&c) {
            return Err(Error::usage(format!(
                "--confidence-score: {c} is out of range (1 to 5)"
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
    let empty = |v: &Value| v.as_object().map_or(true, |o| o.is_empty());
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
                        "--supersedes-memory-id: {old} is not an active memory of namespace {}",
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
                    "an active memory already has dedupe key {:?}; supersede it with --supersedes-memory-id",
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
    check_required_text("--actor", actor)?;
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
            "--limit: {} is out of range (1 to 10000)",
            f.limit
        )));
    }
    if let Some(k) = &f.kind {
        one_of("--kind", k, KINDS)?;
    }
    if let Some(s) = &f.scope {
        one_of("--scope", s, SCOPES)?;
    }
    for s in &f.statuses {
        one_of(
            "--status",
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
/// supervisor injects (crate::supervisor::prompt::load_input), not this: an operator can still ask.
pub fn retrieve(client: &mut impl postgres::GenericClient, c: &Context) -> Result<Vec<Retrieved>> {
    check_required_text("--agent", &c.agent)?;
    if !(1..=MAX_RETRIEVE).contains(&c.limit) {
        return Err(Error::usage(format!(
            "--limit: {} is out of range (1 to {MAX_RETRIEVE})",
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

/// Pauses (freezes) or resumes the memory lane of `namespace`: while paused, nothing is
/// promoted and nothing is injected.
pub fn set_paused(
    tx: &mut postgres::Transaction<'_>,
    namespace: &str,
    lane: &str,
    paused: bool,
    reason: Option<&str>,
    actor: &str,
) -> Result<Lane> {
    check_required_text("--namespace", namespace)?;
    if lane != "memory" {
        return Err(Error::usage(format!(
            "unknown lane {lane:?}; the lane that can be paused is: memory"
        )));
    }
    if paused {
        check_required_text("--reason", reason.unwrap_or(""))?;
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
