//! Opportunities: create-opportunity, triage-opportunity, convert-opportunity,
//! list-opportunities, show-opportunity; the score and filter flags shared with ideas.

use super::args::{json_object, NamespaceArg};
use super::output::{self, clip, fitted_table, Format};
use super::time::parse_since;
use super::Ctx;
use crate::error::{Error, Result};
use crate::lanes::proactive::{
    self, Conversion, Decision, Filter, NewOpportunity, Opportunity, Reversibility,
};
use crate::ledger::time::Since;
use clap::Args;
use std::io::Read;
use uuid::Uuid;

fn score_1_5(s: &str) -> std::result::Result<i32, String> {
    match s.parse::<i32>() {
        Ok(n) if (1..=5).contains(&n) => Ok(n),
        _ => Err(format!("expected a whole number from 1 to 5, got {s:?}")),
    }
}

/// The fields of an opportunity.
#[derive(Debug, Args)]
pub struct OpportunityFields {
    #[command(flatten)]
    ns: NamespaceArg,
    /// The proposing agent
    #[arg(long, env = "AGENTBUS_AGENT", value_name = "AGENT")]
    source_agent: String,
    /// Theme
    #[arg(long)]
    theme: String,
    /// One line
    #[arg(long)]
    title: String,
    #[command(flatten)]
    scored: ScoredFields,
}

/// Why now, the evidence, the scores and the next step: what a proposal and a promotion
/// both state.
#[derive(Debug, Args)]
pub struct ScoredFields {
    /// Why this matters now
    #[arg(long)]
    pub why_now: String,
    /// Evidence: JSON object, @FILE or - for stdin
    #[arg(long, value_name = "JSON", default_value = "{}")]
    pub evidence: String,
    /// 1 to 5
    #[arg(long, value_name = "N", value_parser = score_1_5, allow_negative_numbers = true)]
    pub impact_score: i32,
    /// 1 to 5
    #[arg(long, value_name = "N", value_parser = score_1_5, allow_negative_numbers = true)]
    pub confidence_score: i32,
    /// 1 to 5 (5 is an urgent escalation, with a budget of its own)
    #[arg(long, value_name = "N", value_parser = score_1_5, allow_negative_numbers = true)]
    pub urgency_score: i32,
    /// How easily the next step is undone: high, medium, low
    #[arg(long, value_enum)]
    pub reversibility: ReversibilityArg,
    /// Who should own it
    #[arg(long, value_name = "AGENT")]
    pub owner_candidate: Option<String>,
    /// The concrete next step
    #[arg(long)]
    pub suggested_next_step: String,
    /// One active opportunity per agent and key
    #[arg(long, value_name = "KEY")]
    pub dedupe_key: Option<String>,
}

impl ScoredFields {
    /// The evidence as an object (`{}` when not given).
    pub(super) fn evidence(&self, stdin: &mut dyn Read) -> Result<serde_json::Value> {
        let mut used = false;
        Ok(json_object("--evidence", Some(&self.evidence), stdin, &mut used)?.unwrap_or_default())
    }
}

impl OpportunityFields {
    pub(super) fn into_new(self, stdin: &mut dyn Read) -> Result<NewOpportunity> {
        let evidence = self.scored.evidence(stdin)?;
        let f = self.scored;
        Ok(NewOpportunity {
            namespace: self.ns.namespace,
            source_agent: self.source_agent,
            theme: self.theme,
            title: self.title,
            why_now: f.why_now,
            evidence,
            impact_score: f.impact_score,
            confidence_score: f.confidence_score,
            urgency_score: f.urgency_score,
            reversibility: f.reversibility.into(),
            owner_candidate: f.owner_candidate,
            suggested_next_step: f.suggested_next_step,
            dedupe_key: f.dedupe_key,
        })
    }
}

/// Propose a scored opportunity: something that clears the bar and needs a decision
///
/// Counted against the agent's daily budgets: new opportunities per day, and urgent
/// escalations (urgency 5) per day. Over a budget it exits 4 saying the budget, what was
/// used and when it resets (UTC midnight), and the refusal is kept for the auditor; with
/// --overflow-to-idea it is filed as an idea instead. Prints the row (`.id` is the new
/// opportunity's) with "outcome": "opportunity" and "deduped", or the idea's row with
/// "outcome": "idea" and "overflowed_to_idea": true.
#[derive(Debug, Args)]
#[command(after_help = CREATE_OPPORTUNITY_EXAMPLES)]
pub struct CreateOpportunityArgs {
    #[command(flatten)]
    fields: OpportunityFields,
    /// Over budget, file it as an idea instead of failing
    #[arg(long)]
    overflow_to_idea: bool,
}

const CREATE_OPPORTUNITY_EXAMPLES: &str = "Examples:\n  agentbus create-opportunity --source-agent research --theme market-shift \\\n      \
--title 'Competitor leaves a gap in onboarding' --why-now 'Three sources report setup churn' \\\n      \
--evidence '{\"sources\":[\"a\",\"b\",\"c\"]}' --impact-score 4 --confidence-score 3 \\\n      \
--urgency-score 3 --reversibility high --owner-candidate coordinator \\\n      \
--suggested-next-step 'Scope an experiment' --overflow-to-idea\n\n\
Score (the ranking of list-opportunities and the digests): impact x confidence + urgency\n\
+ 2 when reversibility is high, + 1 when medium; from 2 to 32.";

pub fn create_opportunity(
    ctx: &mut Ctx,
    a: CreateOpportunityArgs,
    stdin: &mut dyn Read,
) -> Result<String> {
    let p = a.fields.into_new(stdin)?;
    output::json(&ctx.tx(|tx| proactive::create_opportunity(tx, &p, a.overflow_to_idea))?)
}

/// Decide on an opportunity: triaged, accepted, rejected or parked
///
/// Applies to new, triaged, accepted and parked opportunities (rejected and converted ones
/// are final: exit 4); each decision is also kept as a review row.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  agentbus triage-opportunity --opportunity-id 9a1f... --reviewer coordinator \\\n      \
--decision accepted --notes 'strong signal, low-risk next step'"
)]
pub struct TriageOpportunityArgs {
    /// The opportunity
    #[arg(long, value_name = "UUID")]
    opportunity_id: Uuid,
    /// Who decides (default: --actor, $AGENTBUS_AGENT, operator:$USER)
    #[arg(long, value_name = "NAME")]
    reviewer: Option<String>,
    /// triaged, accepted, rejected or parked
    #[arg(long, value_enum)]
    decision: DecisionArg,
    /// Why
    #[arg(long)]
    notes: Option<String>,
}

pub fn triage(ctx: &mut Ctx, a: TriageOpportunityArgs) -> Result<String> {
    let reviewer = a.reviewer.unwrap_or_else(|| ctx.actor());
    output::json(&ctx.tx(|tx| {
        proactive::triage(
            tx,
            a.opportunity_id,
            &reviewer,
            a.decision.into(),
            a.notes.as_deref(),
        )
    })?)
}

/// Turn a triaged or accepted opportunity into a job, in one transaction
///
/// The job's payload carries the opportunity's context under "opportunity" (plus
/// --payload), its correlation key is opportunity:<id>, and the opportunity becomes
/// converted_to_job pointing at it; a review row records the conversion. Any failure
/// leaves nothing. Prints the opportunity and the job.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  agentbus convert-opportunity --opportunity-id 9a1f... --target-agent coordinator \\\n      \
--subject 'opportunity.followup:onboarding-gap' --priority 120 \\\n      \
--payload '{\"kind\":\"experiment-proposal\"}'\n  \
agentbus trace --correlation opportunity:9a1f..."
)]
pub struct ConvertOpportunityArgs {
    /// The opportunity
    #[arg(long, value_name = "UUID")]
    opportunity_id: Uuid,
    /// Agent that gets the job
    #[arg(long, value_name = "AGENT")]
    target_agent: String,
    /// Job type
    #[arg(long, default_value = "proactive", value_name = "TYPE")]
    job_type: String,
    /// Job subject (default: the opportunity's title)
    #[arg(long)]
    subject: Option<String>,
    /// 1 (lowest) to 1000 (highest)
    #[arg(long, default_value_t = 100, allow_negative_numbers = true)]
    priority: i32,
    /// More payload: JSON object, @FILE or - for stdin
    #[arg(long, value_name = "JSON", default_value = "{}")]
    payload: String,
    /// Who converts it (default: --actor, $AGENTBUS_AGENT, operator:$USER)
    #[arg(long, value_name = "NAME")]
    converted_by: Option<String>,
    /// The review note kept with the conversion
    #[arg(long)]
    notes: Option<String>,
}

pub fn convert(ctx: &mut Ctx, a: ConvertOpportunityArgs, stdin: &mut dyn Read) -> Result<String> {
    let mut used = false;
    let c = Conversion {
        target_agent: a.target_agent,
        job_type: a.job_type,
        subject: a.subject,
        priority: a.priority,
        payload: json_object("--payload", Some(&a.payload), stdin, &mut used)?.unwrap_or_default(),
        actor: a
            .converted_by
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| ctx.actor()),
        notes: a.notes,
    };
    output::json(&ctx.tx(|tx| proactive::convert(tx, a.opportunity_id, &c))?)
}

/// Filters shared by list-ideas and list-opportunities.
#[derive(Debug, Args)]
pub struct ListFilter {
    #[command(flatten)]
    ns: NamespaceArg,
    /// Only these states (repeatable, or comma-separated)
    #[arg(long, value_delimiter = ',', value_name = "STATUS")]
    status: Vec<String>,
    /// Only this agent's
    #[arg(long, value_name = "AGENT")]
    agent: Option<String>,
    /// Only this theme
    #[arg(long)]
    theme: Option<String>,
    /// Only created in this window: 24h, 7d, or an RFC 3339 time
    #[arg(long, value_name = "WINDOW", value_parser = parse_since)]
    since: Option<Since>,
    /// At most this many
    #[arg(long, default_value_t = 50, allow_negative_numbers = true)]
    limit: i64,
}

impl ListFilter {
    pub(super) fn resolve(self, ctx: &mut Ctx, allowed: &[&str]) -> Result<Filter> {
        for s in &self.status {
            if !allowed.contains(&s.as_str()) {
                return Err(Error::usage(format!(
                    "--status {s:?}: expected one of {}",
                    allowed.join(", ")
                )));
            }
        }
        let since = match self.since {
            None => None,
            Some(s) => {
                let now: chrono::DateTime<chrono::Utc> = crate::db::now(ctx.db()?)?;
                Some(s.resolve(now))
            }
        };
        Ok(Filter {
            namespace: self.ns.namespace,
            statuses: self.status,
            agent: self.agent,
            theme: self.theme,
            since,
            limit: self.limit,
        })
    }
}

const OPPORTUNITY_STATES: &[&str] = &[
    "new",
    "triaged",
    "accepted",
    "rejected",
    "parked",
    "converted_to_job",
];
/// List opportunities, ranked by score
///
/// Score: impact x confidence + urgency, + 2 when reversibility is high, + 1 when medium
/// (2 to 32); ties go to the oldest.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  agentbus list-opportunities --status new,triaged\n  \
agentbus list-opportunities --theme onboarding --since 7d --format json"
)]
pub struct ListOpportunitiesArgs {
    #[command(flatten)]
    filter: ListFilter,
}

pub fn list_opportunities(ctx: &mut Ctx, a: ListOpportunitiesArgs) -> Result<String> {
    let f = a.filter.resolve(ctx, OPPORTUNITY_STATES)?;
    let full = ctx.full_ids();
    let list = proactive::list_opportunities(ctx.db()?, &f)?;
    output::listing(ctx.format(), &list, "no opportunities match", |l| {
        opportunities_table(l, full)
    })
}

fn opportunities_table(list: &[Opportunity], full: bool) -> String {
    fitted_table(
        &["id", "score", "status", "from", "theme", "title", "I/C/U/R"],
        list.iter().map(|o| {
            vec![
                output::id(o.id, full),
                o.score.to_string(),
                o.status.clone(),
                clip(&o.source_agent, 10),
                clip(&o.theme, 12),
                clip(&o.title, 18),
                format!(
                    "{}/{}/{}/{}",
                    o.impact_score,
                    o.confidence_score,
                    o.urgency_score,
                    &o.reversibility.as_str()[..1]
                ),
            ]
        }),
        full,
    )
}

/// One opportunity: its fields, score, reviews, the idea it came from, the job it became
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  agentbus show-opportunity 9a1f...")]
pub struct ShowOpportunityArgs {
    /// The opportunity
    #[arg(value_name = "UUID")]
    opportunity_id: Uuid,
}

pub fn show_opportunity(ctx: &mut Ctx, a: ShowOpportunityArgs) -> Result<String> {
    let d = proactive::show_opportunity(ctx.db()?, a.opportunity_id)?;
    match ctx.format() {
        Format::Json => output::json(&d),
        Format::Table => {
            let o = &d.opportunity;
            let mut out = format!(
                "{} ({}), score {}: impact {}, confidence {}, urgency {}, reversibility {}\n\
                 status {} · from {} · theme {} · created {}\n\
                 why now: {}\nnext step: {}\nevidence: {}\n",
                o.title,
                o.id,
                o.score,
                o.impact_score,
                o.confidence_score,
                o.urgency_score,
                o.reversibility.as_str(),
                o.status,
                o.source_agent,
                o.theme,
                output::time(o.created_at),
                o.why_now,
                o.suggested_next_step,
                o.evidence
            );
            if let Some(i) = &d.idea {
                out += &format!("from idea {} \"{}\"\n", i.id, i.title);
            }
            if let Some(j) = &d.job {
                out += &format!(
                    "became job {} ({}, {}) \"{}\"\n",
                    j.id, j.status, j.target_agent, j.subject
                );
            }
            for r in &d.reviews {
                out += &format!(
                    "{} {} by {}{}\n",
                    output::time(r.created_at),
                    r.decision,
                    r.reviewer,
                    r.notes
                        .as_deref()
                        .map(|n| format!(": {n}"))
                        .unwrap_or_default()
                );
            }
            Ok(out)
        }
    }
}

/// How easily an opportunity's next step can be undone, as the command line spells it.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ReversibilityArg {
    /// Easy to undo.
    High,
    /// Some cost to undo.
    Medium,
    /// Hard or impossible to undo.
    Low,
}

impl From<ReversibilityArg> for Reversibility {
    fn from(r: ReversibilityArg) -> Self {
        match r {
            ReversibilityArg::High => Reversibility::High,
            ReversibilityArg::Medium => Reversibility::Medium,
            ReversibilityArg::Low => Reversibility::Low,
        }
    }
}

/// A triage decision, as the command line spells it.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum DecisionArg {
    /// Looked at; needs more before a decision.
    Triaged,
    /// Worth doing: convert it when ready.
    Accepted,
    /// Not worth doing.
    Rejected,
    /// Not now.
    Parked,
}

impl From<DecisionArg> for Decision {
    fn from(d: DecisionArg) -> Self {
        match d {
            DecisionArg::Triaged => Decision::Triaged,
            DecisionArg::Accepted => Decision::Accepted,
            DecisionArg::Rejected => Decision::Rejected,
            DecisionArg::Parked => Decision::Parked,
        }
    }
}
