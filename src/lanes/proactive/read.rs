//! Reading the proactive lane: ranked opportunities, ideas, and one opportunity in full.

use super::{Idea, Opportunity, Review, OPPORTUNITY_ROW};
use crate::db::{decode, decode_all};
use crate::error::{Error, Result};
use crate::ledger::jobs::JobLink;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

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
            "`limit`: {limit} is out of range (1 to 10000)"
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
