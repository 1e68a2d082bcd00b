//! Ideas: filing one (under the agent's idea budget), marking it reviewed or archived,
//! and promoting it to an opportunity.

use super::{
    budget, check_opportunity, lock_idea, propose, refuse, Created, Idea, NewOpportunity,
    Opportunity,
};
use crate::db::decode;
use crate::error::{Error, Result};
use crate::ledger::validate::{check_name, check_optional_text, check_required_text};
use serde::Serialize;
use serde_json::Value;
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
    check_optional_text("`notes`", notes)?;
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
