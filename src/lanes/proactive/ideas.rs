//! Ideas: filing one (under the agent's idea budget), marking it reviewed or archived,
//! and promoting it to an opportunity.

use super::{
    budget, check_opportunity, lock_idea, propose, refuse, triage, Created, Decision, Idea,
    NewOpportunity, Opportunity, Reversibility,
};
use crate::db::decode;
use crate::error::{Error, Result};
use crate::ledger::validate::{check_name, check_optional_text, check_required_text};
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

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

fn check_idea(p: &NewIdea) -> Result<()> {
    check_name("`namespace`", &p.namespace)?;
    check_name("`source_agent`", &p.source_agent)?;
    check_required_text("`theme`", &p.theme)?;
    check_required_text("`title`", &p.title)?;
    check_required_text("`body`", &p.body)?;
    check_optional_text("`dedupe_key`", p.dedupe_key.as_deref())?;
    if !p.evidence.is_object() {
        return Err(Error::usage("`evidence`: expected a JSON object"));
    }
    for t in &p.tags {
        check_required_text("`tags`", t)?;
    }
    Ok(())
}

/// Files an idea (one transaction; over the agent's idea budget: exit 4).
pub fn create_idea(tx: &mut postgres::Transaction<'_>, p: &NewIdea) -> Result<Created<Idea>> {
    check_idea(p)?;
    let out = insert_idea(tx, p)?;
    Ok(out)
}

pub(super) fn insert_idea(
    tx: &mut postgres::Transaction<'_>,
    p: &NewIdea,
) -> Result<Created<Idea>> {
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

/// What `promote-idea-to-opportunity` records. Theme and title fall back to the idea's;
/// the namespace is the idea's.
#[derive(Debug, Clone)]
pub struct IdeaPromotion {
    /// Who promotes (the opportunity's source agent and its triager).
    pub promoted_by: String,
    /// Theme (default: the idea's).
    pub theme: Option<String>,
    /// One line (default: the idea's).
    pub title: Option<String>,
    /// Why this matters now.
    pub why_now: String,
    /// The promotion's own evidence (an object), kept beside the idea's.
    pub evidence: Value,
    /// 1 to 5.
    pub impact_score: i32,
    /// 1 to 5.
    pub confidence_score: i32,
    /// 1 to 5.
    pub urgency_score: i32,
    /// How easily the next step is undone.
    pub reversibility: Reversibility,
    /// Who should own it.
    pub owner_candidate: Option<String>,
    /// The concrete next step.
    pub suggested_next_step: String,
    /// One active opportunity per (namespace, agent, key).
    pub dedupe_key: Option<String>,
    /// Why it was promoted (the triage notes; default "promoted from idea <id>").
    pub notes: Option<String>,
}

/// Promotes a new or reviewed idea to an opportunity, in one transaction: the opportunity
/// (in the idea's namespace, under the promoter's budget, already `triaged` by the
/// promoter, its evidence carrying the idea's body and evidence beside the promotion's),
/// the idea marked promoted and linked, and a review row with the notes. Any failure
/// leaves both as they were.
pub fn promote_idea(
    tx: &mut postgres::Transaction<'_>,
    idea_id: Uuid,
    p: &IdeaPromotion,
) -> Result<Promoted> {
    check_optional_text("`notes`", p.notes.as_deref())?;
    check_optional_text("`theme`", p.theme.as_deref())?;
    check_optional_text("`title`", p.title.as_deref())?;
    if !p.evidence.is_object() {
        return Err(Error::usage("`evidence`: expected a JSON object"));
    }
    let idea = lock_idea(tx, idea_id)?;
    if !matches!(idea.status.as_str(), "new" | "reviewed") {
        return Err(refuse(
            "idea",
            idea_id,
            &idea.status,
            "new and reviewed ideas",
        ));
    }
    let new = NewOpportunity {
        namespace: idea.namespace.clone(),
        source_agent: p.promoted_by.clone(),
        theme: p.theme.clone().unwrap_or_else(|| idea.theme.clone()),
        title: p.title.clone().unwrap_or_else(|| idea.title.clone()),
        why_now: p.why_now.clone(),
        evidence: json!({
            "idea_origin_id": idea.id,
            "idea_body": idea.body,
            "idea_evidence": idea.evidence,
            "promotion_evidence": p.evidence,
        }),
        impact_score: p.impact_score,
        confidence_score: p.confidence_score,
        urgency_score: p.urgency_score,
        reversibility: p.reversibility,
        owner_candidate: p.owner_candidate.clone(),
        suggested_next_step: p.suggested_next_step.clone(),
        dedupe_key: p.dedupe_key.clone(),
    };
    check_opportunity(&new)?;
    let opportunity = match propose(tx, &new, Some(idea_id))? {
        Ok((opportunity, false)) => opportunity,
        Ok((opportunity, true)) => {
            return Err(Error::conflict(format!(
                "an active opportunity {} of {} already has dedupe key {:?}",
                opportunity.id,
                new.source_agent,
                new.dedupe_key.as_deref().unwrap_or("")
            )))
        }
        Err((_, refusal)) => return Err(refusal),
    };
    let notes = p.notes.as_deref().map_or_else(
        || format!("promoted from idea {idea_id}"),
        |n| format!("promoted from idea {idea_id}: {n}"),
    );
    let opportunity = triage(
        tx,
        opportunity.id,
        &p.promoted_by,
        Decision::Triaged,
        Some(&notes),
    )?;
    let row = tx.query_one(
        "update ideas set status = 'promoted_to_opportunity', promoted_opportunity_id = $2
          where id = $1 returning to_jsonb(ideas.*) as row",
        &[&idea_id, &opportunity.id],
    )?;
    let idea = decode(&row, "row")?;
    Ok(Promoted { opportunity, idea })
}
