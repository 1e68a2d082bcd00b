//! The proactive lane: ideas ("this might matter"), scored opportunities ("this clears the
//! bar: decide"), their triage and conversion into jobs, and the per-agent daily budgets
//! that keep agents from drowning people in proposals. The budgets are enforced by the
//! database (sql/0004_proactive.sql); this module checks them first so it can say what
//! was used and when it resets, or file an over-budget opportunity as an idea.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::db::{decode, decode_all, set_actor};
use crate::error::{Error, Result};
use crate::ledger::input::{check_optional_text, check_required_text};
use crate::ledger::jobs::{self, JobLink};

/// How easily an opportunity's next step can be undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
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

/// What `create-idea` records.
#[derive(Debug, Clone)]
pub struct NewIdea {
    /// Namespace.
    pub namespace: String,
    /// The proposing agent.
    pub source_agent: String,
    /// Theme (groups ideas and opportunities).
    pub theme: String,
    /// One line.
    pub title: String,
    /// The idea itself.
    pub body: String,
    /// Evidence (an object).
    pub evidence: Value,
    /// Tags.
    pub tags: Vec<String>,
    /// One active idea per (namespace, agent, key).
    pub dedupe_key: Option<String>,
}

/// A created row, or the active one with the same dedupe key.
#[derive(Debug, Clone, Serialize)]
pub struct Created<T> {
    /// The row.
    #[serde(flatten)]
    pub row: T,
    /// True when an active row with the same dedupe key was returned instead.
    pub deduped: bool,
}

fn check_idea(p: &NewIdea) -> Result<()> {
    check_required_text("--namespace", &p.namespace)?;
    check_required_text("--source-agent", &p.source_agent)?;
    check_required_text("--theme", &p.theme)?;
    check_required_text("--title", &p.title)?;
    check_required_text("--body", &p.body)?;
    check_optional_text("--dedupe-key", p.dedupe_key.as_deref())?;
    if !p.evidence.is_object() {
        return Err(Error::usage("--evidence: expected a JSON object"));
    }
    for t in &p.tags {
        check_required_text("--tags", t)?;
    }
    Ok(())
}

/// Files an idea (one transaction; over the agent's idea budget: exit 4).
pub fn create_idea(tx: &mut postgres::Transaction<'_>, p: &NewIdea) -> Result<Created<Idea>> {
    check_idea(p)?;
    let out = insert_idea(tx, p)?;
    Ok(out)
}

fn insert_idea(tx: &mut postgres::Transaction<'_>, p: &NewIdea) -> Result<Created<Idea>> {
    if let Some(key) = &p.dedupe_key {
        if let Some(row) = tx.query_opt(
            "select to_jsonb(i.*) as row from ideas i
              where namespace = $1 and source_agent = $2 and dedupe_key = $3
                and status in ('new', 'reviewed')",
            &[&p.namespace, &p.source_agent, key],
        )? {
            return Ok(Created {
                row: decode(&row, "row")?,
                deduped: true,
            });
        }
    }
    let budget = budget(tx, &p.namespace, &p.source_agent, "idea")?;
    if let Some(limit) = budget.exceeded() {
        return Err(limit);
    }
    let row = tx.query_one(
        "insert into ideas (namespace, source_agent, theme, title, body, evidence, tags, dedupe_key)
         values ($1, $2, $3, $4, $5, $6, $7, $8)
         returning to_jsonb(ideas.*) as row",
        &[
            &p.namespace,
            &p.source_agent,
            &p.theme,
            &p.title,
            &p.body,
            &p.evidence,
            &p.tags,
            &p.dedupe_key,
        ],
    )?;
    Ok(Created {
        row: decode(&row, "row")?,
        deduped: false,
    })
}

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
    fn exceeded(&self) -> Option<Error> {
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
                _ => "file it as an idea (--overflow-to-idea) or keep only the strongest",
            })
        })
    }
}

/// Locks the agent's budget for this transaction and reads it (sql: proactive_budget).
fn budget(
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

/// What `create-opportunity` records.
#[derive(Debug, Clone)]
pub struct NewOpportunity {
    /// Namespace.
    pub namespace: String,
    /// The proposing agent.
    pub source_agent: String,
    /// Theme.
    pub theme: String,
    /// One line.
    pub title: String,
    /// Why this matters now.
    pub why_now: String,
    /// Evidence (an object).
    pub evidence: Value,
    /// 1 to 5.
    pub impact_score: i32,
    /// 1 to 5.
    pub confidence_score: i32,
    /// 1 to 5 (5 counts as an urgent escalation).
    pub urgency_score: i32,
    /// How easily the next step is undone.
    pub reversibility: Reversibility,
    /// Who should own it.
    pub owner_candidate: Option<String>,
    /// The concrete next step.
    pub suggested_next_step: String,
    /// One active opportunity per (namespace, agent, key).
    pub dedupe_key: Option<String>,
}

/// What became of a proposed opportunity.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Proposed {
    /// It was created (or an active one with its dedupe key exists: `deduped`).
    Opportunity {
        /// The row.
        opportunity: Opportunity,
        /// True when the existing one was returned.
        deduped: bool,
    },
    /// Over budget, filed as an idea instead (`--overflow-to-idea`).
    Idea {
        /// The idea.
        idea: Idea,
        /// The budget that was full.
        budget: Budget,
    },
}

fn check_opportunity(p: &NewOpportunity) -> Result<()> {
    check_required_text("--namespace", &p.namespace)?;
    check_required_text("--source-agent", &p.source_agent)?;
    check_required_text("--theme", &p.theme)?;
    check_required_text("--title", &p.title)?;
    check_required_text("--why-now", &p.why_now)?;
    check_required_text("--suggested-next-step", &p.suggested_next_step)?;
    check_optional_text("--owner-candidate", p.owner_candidate.as_deref())?;
    check_optional_text("--dedupe-key", p.dedupe_key.as_deref())?;
    if !p.evidence.is_object() {
        return Err(Error::usage("--evidence: expected a JSON object"));
    }
    for (flag, v) in [
        ("--impact-score", p.impact_score),
        ("--confidence-score", p.confidence_score),
        ("--urgency-score", p.urgency_score),
    ] {
        if !(1..=5).contains(&v) {
            return Err(Error::usage(format!(
                "{flag}: {v} is out of range (1 to 5)"
            )));
        }
    }
    Ok(())
}

/// Proposes an opportunity in one transaction. Over the agent's budget (new opportunities
/// per day, or urgent escalations per day for urgency 5): exit 4 saying the budget, the
/// use and the reset time, and the refusal is kept for the auditor; with
/// `overflow_to_idea` it is filed as an idea instead.
pub fn create_opportunity(
    tx: &mut postgres::Transaction<'_>,
    p: &NewOpportunity,
    overflow_to_idea: bool,
) -> Result<Proposed> {
    check_opportunity(p)?;
    match propose(tx, p, None)? {
        Ok((opportunity, deduped)) => Ok(Proposed::Opportunity {
            opportunity,
            deduped,
        }),
        Err((budget, refusal)) => {
            if overflow_to_idea {
                let idea = insert_idea(
                    tx,
                    &NewIdea {
                        namespace: p.namespace.clone(),
                        source_agent: p.source_agent.clone(),
                        theme: p.theme.clone(),
                        title: p.title.clone(),
                        body: format!(
                            "{}\n\nSuggested next step: {}",
                            p.why_now, p.suggested_next_step
                        ),
                        evidence: p.evidence.clone(),
                        tags: vec!["overflow".into()],
                        dedupe_key: p.dedupe_key.clone(),
                    },
                )?
                .row;
                record_refusal(tx, &budget, &p.title, Some(idea.id))?;
                Ok(Proposed::Idea { idea, budget })
            } else {
                record_refusal(tx, &budget, &p.title, None)?;
                Err(refusal.keeping_writes())
            }
        }
    }
}

/// Inserts an opportunity under the agent's budget lock: the row and whether it is an
/// existing one with the same dedupe key; `Err((budget, refusal))` when a budget is full
/// (nothing inserted).
fn propose(
    tx: &mut postgres::Transaction<'_>,
    p: &NewOpportunity,
    idea: Option<Uuid>,
) -> Result<std::result::Result<(Opportunity, bool), (Budget, Error)>> {
    if let Some(key) = &p.dedupe_key {
        if let Some(row) = tx.query_opt(
            &format!(
                "select {OPPORTUNITY_ROW} from opportunities o
                  where namespace = $1 and source_agent = $2 and dedupe_key = $3
                    and status in ('new', 'triaged', 'accepted', 'parked')"
            ),
            &[&p.namespace, &p.source_agent, key],
        )? {
            return Ok(Ok((decode(&row, "row")?, true)));
        }
    }
    let mut kinds = vec!["opportunity"];
    if p.urgency_score >= 5 {
        kinds.push("urgent");
    }
    for kind in kinds {
        let b = budget(tx, &p.namespace, &p.source_agent, kind)?;
        if let Some(refusal) = b.exceeded() {
            return Ok(Err((b, refusal)));
        }
    }
    let row = tx.query_one(
        &format!(
            "insert into opportunities as o (namespace, source_agent, theme, title, why_now, evidence,
                                             impact_score, confidence_score, urgency_score, reversibility,
                                             owner_candidate, suggested_next_step, dedupe_key, idea_id)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text::opportunity_reversibility, $11, $12, $13, $14)
             returning {OPPORTUNITY_ROW}"
        ),
        &[
            &p.namespace,
            &p.source_agent,
            &p.theme,
            &p.title,
            &p.why_now,
            &p.evidence,
            &p.impact_score,
            &p.confidence_score,
            &p.urgency_score,
            &p.reversibility.as_str(),
            &p.owner_candidate,
            &p.suggested_next_step,
            &p.dedupe_key,
            &idea,
        ],
    )?;
    Ok(Ok((decode(&row, "row")?, false)))
}

fn record_refusal(
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

/// Marks an idea reviewed (an agent looked at it during a scan). Already reviewed: no
/// change, exit 0; archived or promoted: exit 4.
pub fn review_idea(tx: &mut postgres::Transaction<'_>, id: Uuid) -> Result<Idea> {
    let idea = lock_idea(tx, id)?;
    match idea.status.as_str() {
        "reviewed" => Ok(idea),
        "new" => {
            let row = tx.query_one(
                "update ideas set status = 'reviewed' where id = $1 returning to_jsonb(ideas.*) as row",
                &[&id],
            )?;
            let idea = decode(&row, "row")?;
            Ok(idea)
        }
        other => Err(refuse("idea", id, other, "new ideas")),
    }
}

/// Archives a new or reviewed idea.
pub fn archive_idea(tx: &mut postgres::Transaction<'_>, id: Uuid) -> Result<Idea> {
    let idea = lock_idea(tx, id)?;
    if !matches!(idea.status.as_str(), "new" | "reviewed") {
        return Err(refuse("idea", id, &idea.status, "new and reviewed ideas"));
    }
    let row = tx.query_one(
        "update ideas set status = 'archived' where id = $1 returning to_jsonb(ideas.*) as row",
        &[&id],
    )?;
    let idea = decode(&row, "row")?;
    Ok(idea)
}

/// An idea promoted: the opportunity, and the idea now pointing at it.
#[derive(Debug, Clone, Serialize)]
pub struct Promoted {
    /// The new opportunity.
    pub opportunity: Opportunity,
    /// The idea, now `promoted_to_opportunity`.
    pub idea: Idea,
}

/// Promotes a new or reviewed idea to an opportunity, in one transaction: the opportunity
/// (under the proposing agent's budget), the idea marked promoted and linked, and a review
/// row with the notes. Any failure leaves both as they were.
pub fn promote_idea(
    tx: &mut postgres::Transaction<'_>,
    idea_id: Uuid,
    p: &NewOpportunity,
    notes: Option<&str>,
) -> Result<Promoted> {
    check_opportunity(p)?;
    check_optional_text("--notes", notes)?;
    let idea = lock_idea(tx, idea_id)?;
    if !matches!(idea.status.as_str(), "new" | "reviewed") {
        return Err(refuse(
            "idea",
            idea_id,
            &idea.status,
            "new and reviewed ideas",
        ));
    }
    if idea.namespace != p.namespace {
        return Err(Error::usage(format!(
            "idea {idea_id} is in namespace {:?}, not {:?}",
            idea.namespace, p.namespace
        )));
    }
    let opportunity = match propose(tx, p, Some(idea_id))? {
        Ok((opportunity, false)) => opportunity,
        Ok((opportunity, true)) => {
            return Err(Error::conflict(format!(
                "an active opportunity {} of {} already has dedupe key {:?}",
                opportunity.id,
                p.source_agent,
                p.dedupe_key.as_deref().unwrap_or("")
            )))
        }
        Err((_, refusal)) => return Err(refusal),
    };
    tx.execute(
        "insert into opportunity_reviews (opportunity_id, reviewer, decision, notes)
         values ($1, $2, 'new', $3)",
        &[
            &opportunity.id,
            &p.source_agent,
            &Some(notes.map_or_else(
                || format!("promoted from idea {idea_id}"),
                |n| format!("promoted from idea {idea_id}: {n}"),
            )),
        ],
    )?;
    let row = tx.query_one(
        "update ideas set status = 'promoted_to_opportunity', promoted_opportunity_id = $2
          where id = $1 returning to_jsonb(ideas.*) as row",
        &[&idea_id, &opportunity.id],
    )?;
    let idea = decode(&row, "row")?;
    Ok(Promoted { opportunity, idea })
}

/// A triage decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Decision {
    /// Looked at; needs more before a decision.
    Triaged,
    /// Worth doing: convert it when ready.
    Accepted,
    /// Not worth doing.
    Rejected,
    /// Not now.
    Parked,
}

impl Decision {
    fn as_str(self) -> &'static str {
        match self {
            Decision::Triaged => "triaged",
            Decision::Accepted => "accepted",
            Decision::Rejected => "rejected",
            Decision::Parked => "parked",
        }
    }
}

/// Records a triage decision (and a review row), in one transaction. Applies to new,
/// triaged, accepted and parked opportunities; rejected and converted ones are final.
pub fn triage(
    tx: &mut postgres::Transaction<'_>,
    id: Uuid,
    reviewer: &str,
    decision: Decision,
    notes: Option<&str>,
) -> Result<Opportunity> {
    check_required_text("--reviewer", reviewer)?;
    check_optional_text("--notes", notes)?;
    let opp = lock_opportunity(tx, id)?;
    if !matches!(
        opp.status.as_str(),
        "new" | "triaged" | "accepted" | "parked"
    ) {
        return Err(refuse(
            "opportunity",
            id,
            &opp.status,
            "new, triaged, accepted and parked opportunities",
        ));
    }
    tx.execute(
        "insert into opportunity_reviews (opportunity_id, reviewer, decision, notes)
         values ($1, $2, $3::text::opportunity_status, $4)",
        &[&id, &reviewer, &decision.as_str(), &notes],
    )?;
    let row = tx.query_one(
        &format!(
            "update opportunities as o
                set status = $2::text::opportunity_status, triaged_by = $3, triage_notes = $4,
                    triaged_at = now()
              where id = $1
              returning {OPPORTUNITY_ROW}"
        ),
        &[&id, &decision.as_str(), &reviewer, &notes],
    )?;
    let opp = decode(&row, "row")?;
    Ok(opp)
}

/// What `convert-opportunity` creates.
#[derive(Debug, Clone)]
pub struct Conversion {
    /// Agent that gets the job.
    pub target_agent: String,
    /// Job type (default proactive).
    pub job_type: String,
    /// Job subject (default: the opportunity's title).
    pub subject: Option<String>,
    /// 1 to 1000.
    pub priority: i32,
    /// Extra payload (an object), merged over the opportunity's context.
    pub payload: Value,
    /// Who converts (reviewer, job source and history actor).
    pub actor: String,
}

/// An opportunity converted: the job and the opportunity pointing at it.
#[derive(Debug, Clone, Serialize)]
pub struct Converted {
    /// The opportunity, now `converted_to_job`.
    pub opportunity: Opportunity,
    /// The new job.
    pub job: crate::ledger::jobs::Job,
}

/// Converts a triaged or accepted opportunity into a job, in one transaction: the job
/// (payload: the opportunity's context under `opportunity`, plus the given payload;
/// `correlation_key = opportunity:<id>`), a review row, and the opportunity marked
/// converted and linked. Any failure leaves nothing.
pub fn convert(tx: &mut postgres::Transaction<'_>, id: Uuid, c: &Conversion) -> Result<Converted> {
    check_required_text("--target-agent", &c.target_agent)?;
    check_required_text("--job-type", &c.job_type)?;
    check_optional_text("--subject", c.subject.as_deref())?;
    check_required_text("--actor", &c.actor)?;
    if !(1..=1000).contains(&c.priority) {
        return Err(Error::usage(format!(
            "--priority: {} is out of range (1 to 1000)",
            c.priority
        )));
    }
    let Some(extra) = c.payload.as_object() else {
        return Err(Error::usage("--payload: expected a JSON object"));
    };
    set_actor(tx, &c.actor, Some("convert-opportunity"))?;
    let opp = lock_opportunity(tx, id)?;
    if !matches!(opp.status.as_str(), "triaged" | "accepted") {
        return Err(refuse(
            "opportunity",
            id,
            &opp.status,
            "triaged and accepted opportunities",
        )
        .with_hint(format!(
            "triage it first: agentbus triage-opportunity --opportunity-id {id} --decision accepted"
        )));
    }
    let mut payload = serde_json::Map::new();
    payload.insert(
        "opportunity".into(),
        serde_json::json!({
            "id": opp.id,
            "source_agent": opp.source_agent,
            "theme": opp.theme,
            "title": opp.title,
            "why_now": opp.why_now,
            "evidence": opp.evidence,
            "impact_score": opp.impact_score,
            "confidence_score": opp.confidence_score,
            "urgency_score": opp.urgency_score,
            "reversibility": opp.reversibility,
            "score": opp.score,
            "suggested_next_step": opp.suggested_next_step,
            "owner_candidate": opp.owner_candidate,
        }),
    );
    for (k, v) in extra {
        payload.insert(k.clone(), v.clone());
    }
    let payload = Value::Object(payload);
    let subject = c.subject.clone().unwrap_or_else(|| opp.title.clone());
    let mut job = jobs::EnqueueParams::new(
        opp.namespace.clone(),
        c.target_agent.clone(),
        c.job_type.clone(),
        subject,
        c.actor.clone(),
    );
    job.source_agent = Some(c.actor.clone());
    job.priority = c.priority;
    job.payload = payload;
    job.correlation_key = Some(format!("opportunity:{id}"));
    job.reason = "convert-opportunity".into();
    let job = jobs::enqueue(tx, &job)?.job;
    tx.execute(
        "insert into opportunity_reviews (opportunity_id, reviewer, decision, notes)
         values ($1, $2, 'converted_to_job', $3)",
        &[
            &id,
            &c.actor,
            &format!("job {} for {}", job.id, c.target_agent),
        ],
    )?;
    let row = tx.query_one(
        &format!(
            "update opportunities as o set status = 'converted_to_job', converted_job_id = $2
              where id = $1 returning {OPPORTUNITY_ROW}"
        ),
        &[&id, &job.id],
    )?;
    let opportunity = decode(&row, "row")?;
    Ok(Converted { opportunity, job })
}

/// Filters for listing.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Namespace.
    pub namespace: String,
    /// Statuses (any when empty).
    pub statuses: Vec<String>,
    /// Proposing agent.
    pub agent: Option<String>,
    /// Theme.
    pub theme: Option<String>,
    /// Created at or after.
    pub since: Option<DateTime<Utc>>,
    /// At most this many.
    pub limit: i64,
}

fn check_limit(limit: i64) -> Result<()> {
    if (1..=10_000).contains(&limit) {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "--limit: {limit} is out of range (1 to 10000)"
        )))
    }
}

/// Opportunities, ranked: score (highest first), then oldest first.
pub fn list_opportunities(
    client: &mut impl postgres::GenericClient,
    f: &Filter,
) -> Result<Vec<Opportunity>> {
    check_limit(f.limit)?;
    let statuses: Option<&Vec<String>> = (!f.statuses.is_empty()).then_some(&f.statuses);
    let rows = client.query(
        &format!(
            "select {OPPORTUNITY_ROW} from opportunities o
              where namespace = $1
                and ($2::text[] is null or status::text = any($2))
                and ($3::text is null or source_agent = $3)
                and ($4::text is null or theme = $4)
                and ($5::timestamptz is null or created_at >= $5)
              order by opportunity_score(impact_score, confidence_score, urgency_score, reversibility) desc,
                       created_at, id
              limit $6"
        ),
        &[&f.namespace, &statuses, &f.agent, &f.theme, &f.since, &f.limit],
    )?;
    decode_all(&rows, "row")
}

/// Ideas, newest first.
pub fn list_ideas(client: &mut impl postgres::GenericClient, f: &Filter) -> Result<Vec<Idea>> {
    check_limit(f.limit)?;
    let statuses: Option<&Vec<String>> = (!f.statuses.is_empty()).then_some(&f.statuses);
    let rows = client.query(
        "select to_jsonb(i.*) as row from ideas i
          where namespace = $1
            and ($2::text[] is null or status::text = any($2))
            and ($3::text is null or source_agent = $3)
            and ($4::text is null or theme = $4)
            and ($5::timestamptz is null or created_at >= $5)
          order by created_at desc, id
          limit $6",
        &[
            &f.namespace,
            &statuses,
            &f.agent,
            &f.theme,
            &f.since,
            &f.limit,
        ],
    )?;
    decode_all(&rows, "row")
}

/// An opportunity with its reviews, the idea it came from and the job it became.
#[derive(Debug, Clone, Serialize)]
pub struct OpportunityDetail {
    /// The row (with its score).
    #[serde(flatten)]
    pub opportunity: Opportunity,
    /// Every review, oldest first.
    pub reviews: Vec<Review>,
    /// The idea it was promoted from.
    pub idea: Option<Idea>,
    /// The job it was converted to.
    pub job: Option<JobLink>,
}

/// Reads one opportunity with its reviews, idea and job.
pub fn show_opportunity(
    client: &mut impl postgres::GenericClient,
    id: Uuid,
) -> Result<OpportunityDetail> {
    let row = client
        .query_opt(
            &format!("select {OPPORTUNITY_ROW} from opportunities o where id = $1"),
            &[&id],
        )?
        .ok_or_else(|| Error::not_found(format!("opportunity {id} not found")))?;
    let opportunity: Opportunity = decode(&row, "row")?;
    let reviews = decode_all(
        &client.query(
            "select to_jsonb(r.*) as row from opportunity_reviews r where opportunity_id = $1 order by id",
            &[&id],
        )?,
        "row",
    )?;
    let idea = match opportunity.idea_id {
        Some(i) => client
            .query_opt(
                "select to_jsonb(i.*) as row from ideas i where id = $1",
                &[&i],
            )?
            .map(|r| decode(&r, "row"))
            .transpose()?,
        None => None,
    };
    let job = match opportunity.converted_job_id {
        Some(j) => client
            .query_opt(
                "select jsonb_build_object('id', id, 'status', status, 'target_agent', target_agent,
                                           'subject', subject) as row from jobs where id = $1",
                &[&j],
            )?
            .map(|r| decode(&r, "row"))
            .transpose()?,
        None => None,
    };
    Ok(OpportunityDetail {
        opportunity,
        reviews,
        idea,
        job,
    })
}

/// The opportunities the given jobs were converted from, by job id (for `trace`).
pub fn converted_from(
    client: &mut impl postgres::GenericClient,
    job_ids: &[Uuid],
) -> Result<std::collections::BTreeMap<Uuid, Opportunity>> {
    let rows = client.query(
        &format!("select {OPPORTUNITY_ROW} from opportunities o where converted_job_id = any($1)"),
        &[&job_ids],
    )?;
    Ok(decode_all::<Opportunity>(&rows, "row")?
        .into_iter()
        .filter_map(|o| o.converted_job_id.map(|j| (j, o)))
        .collect())
}
