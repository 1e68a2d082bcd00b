//! Opportunities: proposing one (scored, deduplicated, under budget), triage, and
//! conversion into a job through the ledger's enqueue.

use super::{
    budget, insert_idea, lock_opportunity, record_refusal, refuse, Budget, Idea, NewIdea,
    Opportunity, Reversibility, OPPORTUNITY_ROW,
};
use crate::db::{decode, set_actor};
use crate::error::{Error, Result};
use crate::ledger::jobs::{self};
use crate::ledger::validate::{check_name, check_optional_text, check_required_text};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

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

/// What became of a proposed opportunity. Serialized as the row itself (so `.id` is the
/// opportunity's, or the idea's), with `outcome` saying which, as the seed's scripts read
/// it: `{"outcome": "opportunity", "deduped": false, "id": ..., ...}` or
/// `{"outcome": "idea", "overflowed_to_idea": true, "budget": {...}, "id": ..., ...}`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Proposed {
    /// It was created (or an active one with its dedupe key exists: `deduped`).
    Opportunity {
        /// The row.
        #[serde(flatten)]
        opportunity: Opportunity,
        /// True when the existing one was returned.
        deduped: bool,
    },
    /// Over budget, filed as an idea instead (`--overflow-to-idea`).
    Idea {
        /// The idea.
        #[serde(flatten)]
        idea: Idea,
        /// Always true: the proposal became this idea.
        overflowed_to_idea: bool,
        /// The budget that was full.
        budget: Budget,
    },
}

pub(super) fn check_opportunity(p: &NewOpportunity) -> Result<()> {
    check_name("`namespace`", &p.namespace)?;
    check_name("`source_agent`", &p.source_agent)?;
    check_required_text("`theme`", &p.theme)?;
    check_required_text("`title`", &p.title)?;
    check_required_text("`why_now`", &p.why_now)?;
    check_required_text("`suggested_next_step`", &p.suggested_next_step)?;
    check_optional_text("`owner_candidate`", p.owner_candidate.as_deref())?;
    check_optional_text("`dedupe_key`", p.dedupe_key.as_deref())?;
    if !p.evidence.is_object() {
        return Err(Error::usage("`evidence`: expected a JSON object"));
    }
    for (flag, v) in [
        ("`impact_score`", p.impact_score),
        ("`confidence_score`", p.confidence_score),
        ("`urgency_score`", p.urgency_score),
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
                Ok(Proposed::Idea {
                    idea,
                    overflowed_to_idea: true,
                    budget,
                })
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
pub(super) fn propose(
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

/// A triage decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    check_required_text("`reviewer`", reviewer)?;
    check_optional_text("`notes`", notes)?;
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
    /// The review note (default: which job, for whom).
    pub notes: Option<String>,
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
    check_name("`target_agent`", &c.target_agent)?;
    check_required_text("`job_type`", &c.job_type)?;
    check_optional_text("`subject`", c.subject.as_deref())?;
    check_required_text("`actor`", &c.actor)?;
    check_optional_text("`notes`", c.notes.as_deref())?;
    if !(1..=1000).contains(&c.priority) {
        return Err(Error::usage(format!(
            "`priority`: {} is out of range (1 to 1000)",
            c.priority
        )));
    }
    let Some(extra) = c.payload.as_object() else {
        return Err(Error::usage("`payload`: expected a JSON object"));
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
        .with_code("opportunity_not_triaged", Some(id.to_string())));
    }
    // The seed's payload (top-level context), then agentbus's whole opportunity under
    // `opportunity`, then what the caller adds.
    let mut payload = serde_json::Map::new();
    for (k, v) in [
        ("origin", Value::from("opportunity")),
        ("opportunity_id", Value::from(opp.id.to_string())),
        ("title", Value::from(opp.title.clone())),
        ("theme", Value::from(opp.theme.clone())),
        ("why_now", Value::from(opp.why_now.clone())),
        (
            "suggested_next_step",
            Value::from(opp.suggested_next_step.clone()),
        ),
    ] {
        payload.insert(k.into(), v);
    }
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
    // The converter is the job's source when it is an agent's name (an operator's
    // `operator:$USER` may not be one; the history keeps it either way).
    job.source_agent = crate::ledger::validate::is_name(&c.actor).then(|| c.actor.clone());
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
            &c.notes
                .clone()
                .unwrap_or_else(|| format!("job {} for {}", job.id, c.target_agent)),
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
