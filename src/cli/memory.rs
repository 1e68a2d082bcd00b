//! The memory lane: create-memory-candidate, review-memory-candidate,
//! reject-memory-candidate, promote-memory-candidate, expire-memory, archive-memory,
//! list-memories, show-memory, memories-due-review, retrieve-memories, pause-lane,
//! resume-lane.

use std::io::Read;

use chrono::{DateTime, Utc};
use clap::Args;
use uuid::Uuid;

use super::args::{json_object, NamespaceArg};
use super::output::{self, clip, fitted_table, Format};
use super::time::parse_when;
use super::Ctx;
use crate::error::{Error, Result};
use crate::lanes::memory::{self, Context, MemoryFilter, NewCandidate, Promotion};
use crate::ledger::time::When;

/// A time argument resolved against the database clock.
fn resolve(ctx: &mut Ctx, t: Option<When>) -> Result<Option<DateTime<Utc>>> {
    match t {
        None => Ok(None),
        Some(When::At(at)) => Ok(Some(at)),
        Some(When::FromNow(d)) => {
            let now: DateTime<Utc> = crate::db::now(ctx.db()?)?;
            Ok(Some(now + d))
        }
    }
}

const KINDS_HELP: &str =
    "decision, preference, pattern, mistake, lesson, playbook, constraint, entity_fact, context";

/// Propose a memory from evidence: a candidate a curator may promote
///
/// Kinds: decision, preference, pattern, mistake, lesson, playbook, constraint, entity_fact,
/// context. Scopes: global, agent, project, person, service (--subject-key names which
/// one). --visibility private keeps the memory to the proposing agent. Cite the sources
/// with --source-refs '{"jobs": [...], "events": [...], "opportunities": [...]}' and/or
/// --evidence: a candidate with neither is never promoted. With --dedupe-key, one active
/// (new or reviewed) candidate per agent and key.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  agentbus create-memory-candidate --source-agent devops --kind mistake --scope service \\\n      \
--subject-key billing-api --title 'Deploys fail when migrations run twice' \\\n      \
--body 'Run migrations from the deploy job only; the app must not run them at boot.' \\\n      \
--source-refs '{\"jobs\": [\"3f2a9c1e-...\"]}' --confidence-score 4 --stability stable"
)]
pub struct CreateCandidateArgs {
    #[command(flatten)]
    ns: NamespaceArg,
    /// The proposing agent
    #[arg(long, env = "AGENTBUS_AGENT", value_name = "AGENT")]
    source_agent: String,
    /// What it is about
    #[arg(long = "candidate-kind", visible_alias = "kind", value_name = "KIND", help = format!("What it is about: {KINDS_HELP}"))]
    kind: String,
    /// global, agent, project, person or service
    #[arg(long)]
    scope: String,
    /// What the scope names (an agent id, a project key, a person, a service; * for global)
    #[arg(long, value_name = "KEY")]
    subject_key: String,
    /// One line
    #[arg(long)]
    title: String,
    /// The memory, as it should be read later
    #[arg(long)]
    body: String,
    /// Evidence: JSON object, @FILE or - for stdin
    #[arg(long, value_name = "JSON", default_value = "{}")]
    evidence: String,
    /// Sources: {"jobs": [...], "attempts": [...], "events": [...], "opportunities": [...]}
    #[arg(long, value_name = "JSON", default_value = "{}")]
    source_refs: String,
    /// 1 to 5
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    confidence_score: i32,
    /// volatile, medium or stable
    #[arg(long, default_value = "medium")]
    stability: String,
    /// shared (every agent of the namespace) or private (the proposing agent only)
    #[arg(long, default_value = "shared")]
    visibility: String,
    /// One active candidate per agent and key
    #[arg(long, value_name = "KEY")]
    dedupe_key: Option<String>,
}

pub fn create_candidate(
    ctx: &mut Ctx,
    a: CreateCandidateArgs,
    stdin: &mut dyn Read,
) -> Result<String> {
    let mut used = false;
    let p = NewCandidate {
        namespace: a.ns.namespace,
        source_agent: a.source_agent,
        kind: a.kind,
        scope: a.scope,
        subject_key: a.subject_key,
        title: a.title,
        body: a.body,
        evidence: json_object("--evidence", Some(&a.evidence), stdin, &mut used)?
            .unwrap_or_default(),
        source_refs: json_object("--source-refs", Some(&a.source_refs), stdin, &mut used)?
            .unwrap_or_default(),
        confidence_score: a.confidence_score,
        stability: a.stability,
        visibility: a.visibility,
        dedupe_key: a.dedupe_key,
    };
    output::json(&ctx.tx(|tx| memory::create_candidate(tx, &p))?)
}

/// Mark a new memory candidate reviewed
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  agentbus review-memory-candidate --candidate-id 7c1e... --notes 'needs a second source'"
)]
pub struct ReviewCandidateArgs {
    /// The candidate
    #[arg(long, value_name = "UUID")]
    candidate_id: Uuid,
    /// Who reviews (default: --actor, $AGENTBUS_AGENT, operator:$USER)
    #[arg(long, value_name = "NAME")]
    reviewer: Option<String>,
    /// Notes
    #[arg(long)]
    notes: Option<String>,
}

pub fn review_candidate(ctx: &mut Ctx, a: ReviewCandidateArgs) -> Result<String> {
    let reviewer = a.reviewer.unwrap_or_else(|| ctx.actor());
    output::json(&ctx.tx(|tx| {
        memory::decide_candidate(tx, a.candidate_id, &reviewer, a.notes.as_deref(), false)
    })?)
}

/// Reject a memory candidate (it stays, rejected, with the reason)
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  agentbus reject-memory-candidate --candidate-id 7c1e... --notes 'one incident, not a pattern'"
)]
pub struct RejectCandidateArgs {
    /// The candidate
    #[arg(long, value_name = "UUID")]
    candidate_id: Uuid,
    /// Who rejects (default: --actor, $AGENTBUS_AGENT, operator:$USER)
    #[arg(long, value_name = "NAME")]
    reviewer: Option<String>,
    /// Why
    #[arg(long)]
    notes: String,
}

pub fn reject_candidate(ctx: &mut Ctx, a: RejectCandidateArgs) -> Result<String> {
    let reviewer = a.reviewer.unwrap_or_else(|| ctx.actor());
    crate::ledger::validate::check_required_text("--notes", &a.notes)?;
    output::json(
        &ctx.tx(|tx| {
            memory::decide_candidate(tx, a.candidate_id, &reviewer, Some(&a.notes), true)
        })?,
    )
}

/// Promote a candidate into a memory, in one transaction
///
/// Only curators (fleet.toml [memory] curators; the knowledge agent by default) and
/// operators (--actor operator:NAME, or a human's $USER) may promote into shared memory;
/// a private candidate needs no curator (only its own agent ever retrieves the memory).
/// Refused (exit 4) without evidence
/// or sources, while the lane is paused, or when an active memory has the dedupe key. With
/// --supersedes-memory-id the old memory becomes superseded (never deleted). --kind,
/// --scope, --subject-key, --title, --body, --confidence-score and --stability correct the
/// candidate's fields in the memory.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  agentbus promote-memory-candidate --actor knowledge --candidate-id 7c1e... \\\n      \
--dedupe-key billing-api:migrations --review-at +30d\n  \
agentbus promote-memory-candidate --actor knowledge --candidate-id 9d2f... --supersedes-memory-id 1a2b..."
)]
pub struct PromoteCandidateArgs {
    /// The candidate
    #[arg(long, value_name = "UUID")]
    candidate_id: Uuid,
    /// The memory this one replaces
    #[arg(long, value_name = "UUID")]
    supersedes_memory_id: Option<Uuid>,
    /// When it stops applying: RFC 3339, or +30d
    #[arg(long, value_name = "TIME", value_parser = parse_when)]
    expires_at: Option<When>,
    /// When a curator should look at it again: RFC 3339, or +30d
    #[arg(long = "next-review-at", visible_alias = "review-at", value_name = "TIME", value_parser = parse_when)]
    review_at: Option<When>,
    /// Who promotes (default: --actor, $AGENTBUS_AGENT, operator:$USER)
    #[arg(long, value_name = "NAME")]
    promoted_by: Option<String>,
    /// Correct the kind
    #[arg(long)]
    kind: Option<String>,
    /// Correct the scope
    #[arg(long)]
    scope: Option<String>,
    /// Correct the subject key
    #[arg(long, value_name = "KEY")]
    subject_key: Option<String>,
    /// Correct the title
    #[arg(long)]
    title: Option<String>,
    /// Correct the body
    #[arg(long)]
    body: Option<String>,
    /// Correct the confidence (1 to 5)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    confidence_score: Option<i32>,
    /// Correct the stability
    #[arg(long)]
    stability: Option<String>,
    /// One active memory per key
    #[arg(long, value_name = "KEY")]
    dedupe_key: Option<String>,
    /// Why
    #[arg(long)]
    notes: Option<String>,
}

pub fn promote(ctx: &mut Ctx, a: PromoteCandidateArgs) -> Result<String> {
    let p = Promotion {
        actor: a.promoted_by.clone().unwrap_or_else(|| ctx.actor()),
        supersedes: a.supersedes_memory_id,
        expires_at: resolve(ctx, a.expires_at)?,
        next_review_at: resolve(ctx, a.review_at)?,
        dedupe_key: a.dedupe_key,
        notes: a.notes,
        edits: memory::Edits {
            kind: a.kind,
            scope: a.scope,
            subject_key: a.subject_key,
            title: a.title,
            body: a.body,
            confidence_score: a.confidence_score,
            stability: a.stability,
        },
    };
    output::json(&ctx.tx(|tx| memory::promote(tx, a.candidate_id, &p))?)
}

/// Mark an active memory expired (no longer true); it is kept, never deleted
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  agentbus expire-memory --memory-id 1a2b...")]
pub struct ExpireMemoryArgs {
    /// The memory
    #[arg(long, value_name = "UUID")]
    memory_id: Uuid,
}

pub fn expire(ctx: &mut Ctx, a: ExpireMemoryArgs) -> Result<String> {
    let actor = ctx.actor();
    output::json(&ctx.tx(|tx| memory::retire(tx, a.memory_id, "expired", &actor))?)
}

/// Archive an active memory (no longer useful); it is kept, never deleted
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  agentbus archive-memory --memory-id 1a2b...")]
pub struct ArchiveMemoryArgs {
    /// The memory
    #[arg(long, value_name = "UUID")]
    memory_id: Uuid,
}

pub fn archive(ctx: &mut Ctx, a: ArchiveMemoryArgs) -> Result<String> {
    let actor = ctx.actor();
    output::json(&ctx.tx(|tx| memory::retire(tx, a.memory_id, "archived", &actor))?)
}

/// List memories (active ones unless --status says otherwise)
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  agentbus list-memories --kind mistake\n  agentbus list-memories --scope service --subject-key billing-api\n  \
agentbus list-memories --status superseded,expired --format json"
)]
pub struct ListMemoriesArgs {
    #[command(flatten)]
    ns: NamespaceArg,
    /// active, superseded, expired, archived (repeatable or comma-separated)
    #[arg(long, value_delimiter = ',', value_name = "STATUS")]
    status: Vec<String>,
    /// Only this kind
    #[arg(long)]
    kind: Option<String>,
    /// Only this scope
    #[arg(long)]
    scope: Option<String>,
    /// Only this subject key
    #[arg(long, value_name = "KEY")]
    subject_key: Option<String>,
    /// At most this many
    #[arg(long, default_value_t = 50, allow_negative_numbers = true)]
    limit: i64,
}

fn memories_table(list: &[memory::Memory], full: bool) -> String {
    fitted_table(
        &[
            "id", "kind", "scope", "subject", "title", "conf", "vis", "status",
        ],
        list.iter().map(|m| {
            vec![
                output::id(m.id, full),
                m.kind.clone(),
                m.scope.clone(),
                clip(&m.subject_key, 14),
                clip(&m.title, 26),
                m.confidence_score.to_string(),
                if m.visibility == "private" {
                    format!("own:{}", clip(m.owner_agent.as_deref().unwrap_or("?"), 8))
                } else {
                    "shared".into()
                },
                m.status.clone(),
            ]
        }),
        full,
    )
}

fn render_list(ctx: &mut Ctx, f: &MemoryFilter) -> Result<String> {
    let full = ctx.full_ids();
    let list = memory::list(ctx.db()?, f)?;
    output::listing(ctx.format(), &list, "no memories match", |l| {
        memories_table(l, full)
    })
}

pub fn list(ctx: &mut Ctx, a: ListMemoriesArgs) -> Result<String> {
    let f = MemoryFilter {
        namespace: a.ns.namespace,
        statuses: a.status,
        kind: a.kind,
        scope: a.scope,
        subject_key: a.subject_key,
        due_for_review: false,
        limit: a.limit,
    };
    render_list(ctx, &f)
}

/// Active memories whose review date has passed, oldest review first
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  agentbus memories-due-review\n  agentbus memories-due-review --get '[].id'"
)]
pub struct DueReviewArgs {
    #[command(flatten)]
    ns: NamespaceArg,
    /// At most this many
    #[arg(long, default_value_t = 50, allow_negative_numbers = true)]
    limit: i64,
}

pub fn due_review(ctx: &mut Ctx, a: DueReviewArgs) -> Result<String> {
    let f = MemoryFilter {
        namespace: a.ns.namespace,
        due_for_review: true,
        limit: a.limit,
        ..Default::default()
    };
    render_list(ctx, &f)
}

/// One memory and its provenance: candidate, sources, what it replaced, which runs saw it
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  agentbus show-memory 1a2b...")]
pub struct ShowMemoryArgs {
    /// The memory
    #[arg(value_name = "UUID")]
    memory_id: Uuid,
}

pub fn show(ctx: &mut Ctx, a: ShowMemoryArgs) -> Result<String> {
    let d = memory::show(ctx.db()?, a.memory_id)?;
    match ctx.format() {
        Format::Json => output::json(&d),
        Format::Table => {
            let m = &d.memory;
            let mut out = format!(
                "{} ({})\n{} · {}/{} · confidence {} · {} · {} · {}\n{}\n",
                m.title,
                m.id,
                m.kind,
                m.scope,
                m.subject_key,
                m.confidence_score,
                m.stability,
                match &m.owner_agent {
                    Some(o) if m.visibility == "private" => format!("private to {o}"),
                    _ => "shared".to_string(),
                },
                m.status,
                m.body
            );
            out += &format!(
                "promoted by {} at {}",
                m.created_by.as_deref().unwrap_or("?"),
                output::time(m.created_at)
            );
            if let Some(c) = &d.candidate {
                out += &format!(" from candidate {} of {}", c.id, c.source_agent);
            }
            out.push('\n');
            for (kind, r) in &d.links {
                out += &format!("source {kind} {r}\n");
            }
            if let Some(s) = d.supersedes {
                out += &format!("supersedes memory {s}\n");
            }
            if let Some(s) = d.superseded_by {
                out += &format!("superseded by memory {s}\n");
            }
            for (job, attempt) in &d.seen_by_attempts {
                out += &format!("seen by job {job} attempt {attempt}\n");
            }
            Ok(out)
        }
    }
}

/// The memories a job for AGENT would be given: the seed's three buckets
///
/// 1: the exact context (the agent itself, --project, --person, --service); 2: lessons,
/// mistakes, playbooks and constraints (global, the agent's, the service's); 3: global
/// decisions, preferences and constraints. At most 4 per bucket and --limit in all, each
/// memory once; only active, unexpired memories; another agent's private memories never.
/// The supervisor runs the same retrieval for every job (with the payload's project_key,
/// person_key and service_key) unless the lane is paused or injection is off.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  agentbus retrieve-memories --agent devops --service billing-api\n  \
agentbus retrieve-memories --agent closer --person 'dana.reyes@acme.example' --limit 5 --format json"
)]
pub struct RetrieveArgs {
    #[command(flatten)]
    ns: NamespaceArg,
    /// The agent the memories are for
    #[arg(long, value_name = "AGENT")]
    agent: String,
    /// Project key
    #[arg(long, value_name = "KEY")]
    project: Option<String>,
    /// Person key
    #[arg(long, value_name = "KEY")]
    person: Option<String>,
    /// Service key
    #[arg(long, value_name = "KEY")]
    service: Option<String>,
    /// At most this many (1 to 50)
    #[arg(long, default_value_t = 10, allow_negative_numbers = true)]
    limit: i64,
}

pub fn retrieve(ctx: &mut Ctx, a: RetrieveArgs) -> Result<String> {
    let full = ctx.full_ids();
    let c = Context {
        namespace: a.ns.namespace,
        agent: a.agent,
        project: a.project,
        person: a.person,
        service: a.service,
        limit: a.limit,
    };
    let got = memory::retrieve(ctx.db()?, &c)?;
    match ctx.format() {
        Format::Json => output::json(&got),
        Format::Table if got.is_empty() => Ok("no memories for this context\n".into()),
        Format::Table => Ok(fitted_table(
            &["bucket", "id", "kind", "scope", "subject", "title", "conf"],
            got.iter().map(|r| {
                vec![
                    r.bucket.to_string(),
                    output::id(r.memory.id, full),
                    r.memory.kind.clone(),
                    r.memory.scope.clone(),
                    clip(&r.memory.subject_key, 14),
                    clip(&r.memory.title, 30),
                    r.memory.confidence_score.to_string(),
                ]
            }),
            full,
        )),
    }
}

/// Freeze a lane: `memory` (no promotions, no injection) or `proactive` (no new ideas,
/// opportunities or conversions) until resume-lane
///
/// The incident response to memory pollution: freeze, then find and expire or archive the
/// bad memories (list-memories, show-memory), then resume. For a proactive lane that is
/// flooding the fleet with opportunities: freeze it; jobs already converted run on.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  agentbus pause-lane memory --reason 'bad pricing memory injected into closer runs'\n  \
agentbus pause-lane proactive --reason 'scouts filing duplicate opportunities'\n  \
agentbus resume-lane memory"
)]
pub struct PauseLaneArgs {
    /// The lane (memory or proactive)
    #[arg(value_name = "LANE")]
    lane: String,
    #[command(flatten)]
    ns: NamespaceArg,
    /// Why (shown until it is resumed)
    #[arg(long)]
    reason: Option<String>,
}

pub fn pause_lane(ctx: &mut Ctx, a: PauseLaneArgs) -> Result<String> {
    if a.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
        return Err(Error::usage(
            "--reason is required: say why the lane is frozen",
        ));
    }
    let actor = ctx.actor();
    output::json(&ctx.tx(|tx| {
        memory::set_paused(
            tx,
            &a.ns.namespace,
            &a.lane,
            true,
            a.reason.as_deref(),
            &actor,
        )
    })?)
}

/// Unfreeze a lane paused with pause-lane
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  agentbus resume-lane memory\n  agentbus resume-lane proactive"
)]
pub struct ResumeLaneArgs {
    /// The lane (memory or proactive)
    #[arg(value_name = "LANE")]
    lane: String,
    #[command(flatten)]
    ns: NamespaceArg,
}

pub fn resume_lane(ctx: &mut Ctx, a: ResumeLaneArgs) -> Result<String> {
    let actor = ctx.actor();
    output::json(
        &ctx.tx(|tx| memory::set_paused(tx, &a.ns.namespace, &a.lane, false, None, &actor))?,
    )
}
