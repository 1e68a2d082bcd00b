//! The proactive lane: create-idea, review-idea, archive-idea,
//! promote-idea-to-opportunity, create-opportunity, triage-opportunity,
//! convert-opportunity, list-ideas, list-opportunities, show-opportunity, digest.

use std::io::Read;

use clap::{Args, Subcommand};
use uuid::Uuid;

use super::args::json_object;
use super::output::{self, clip, fitted_table, Format};
use super::Ctx;
use crate::error::{Error, Result};
use crate::lanes::proactive::{
    self, Conversion, Decision, Filter, Idea, NewIdea, NewOpportunity, Opportunity, Reversibility,
};
use crate::ledger::input::SinceArg;

fn parse_since(s: &str) -> std::result::Result<SinceArg, String> {
    SinceArg::parse(s).map_err(|e| e.message)
}

fn score_1_5(s: &str) -> std::result::Result<i32, String> {
    match s.parse::<i32>() {
        Ok(n) if (1..=5).contains(&n) => Ok(n),
        _ => Err(format!("expected a whole number from 1 to 5, got {s:?}")),
    }
}

/// Tags: a JSON array of strings, or comma-separated words.
fn parse_tags(s: &str) -> Result<Vec<String>> {
    let t = s.trim();
    if t.starts_with('[') {
        let v: Vec<String> = serde_json::from_str(t)
            .map_err(|_| Error::usage("--tags: expected a JSON array of strings or a,b,c"))?;
        return Ok(v);
    }
    Ok(t.split(',')
        .map(|w| w.trim().to_string())
        .filter(|w| !w.is_empty())
        .collect())
}

/// File an idea: something that might matter, not yet strong enough to decide on
///
/// Ideas are cheap and counted against the agent's daily idea budget (exit 4 over it).
/// With --dedupe-key, one active (new or reviewed) idea per agent and key: a second call
/// prints the existing one with "deduped": true.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  agentbus create-idea --source-agent design --theme onboarding \\\n      \
--title 'Setup could feel collaborative' --body 'A paired-setup pattern might reduce friction.' \\\n      \
--tags ux,activation --dedupe-key onboarding:paired-setup"
)]
pub struct CreateIdeaArgs {
    /// Namespace
    #[arg(long, env = "AGENTBUS_NAMESPACE", default_value = "default")]
    namespace: String,
    /// The proposing agent
    #[arg(long, env = "AGENTBUS_AGENT", value_name = "AGENT")]
    source_agent: String,
    /// Theme (groups ideas and opportunities)
    #[arg(long)]
    theme: String,
    /// One line
    #[arg(long)]
    title: String,
    /// The idea
    #[arg(long)]
    body: String,
    /// Evidence: JSON object, @FILE or - for stdin
    #[arg(long, value_name = "JSON", default_value = "{}")]
    evidence: String,
    /// Tags: a JSON array or a,b,c
    #[arg(long, value_name = "TAGS")]
    tags: Option<String>,
    /// One active idea per agent and key
    #[arg(long, value_name = "KEY")]
    dedupe_key: Option<String>,
}

pub fn create_idea(ctx: &mut Ctx, a: CreateIdeaArgs, stdin: &mut dyn Read) -> Result<String> {
    let mut used = false;
    let p = NewIdea {
        namespace: a.namespace,
        source_agent: a.source_agent,
        theme: a.theme,
        title: a.title,
        body: a.body,
        evidence: json_object("--evidence", Some(&a.evidence), stdin, &mut used)?
            .unwrap_or_default(),
        tags: a
            .tags
            .as_deref()
            .map(parse_tags)
            .transpose()?
            .unwrap_or_default(),
        dedupe_key: a.dedupe_key,
    };
    output::json(&ctx.tx(|tx| proactive::create_idea(tx, &p))?)
}

/// Mark an idea reviewed (looked at during a scan)
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  agentbus review-idea --idea-id 5d0c...")]
pub struct ReviewIdeaArgs {
    /// The idea
    #[arg(long, value_name = "UUID")]
    idea_id: Uuid,
}

pub fn review_idea(ctx: &mut Ctx, a: ReviewIdeaArgs) -> Result<String> {
    output::json(&ctx.tx(|tx| proactive::review_idea(tx, a.idea_id))?)
}

/// Archive a new or reviewed idea
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  agentbus archive-idea --idea-id 5d0c...")]
pub struct ArchiveIdeaArgs {
    /// The idea
    #[arg(long, value_name = "UUID")]
    idea_id: Uuid,
}

pub fn archive_idea(ctx: &mut Ctx, a: ArchiveIdeaArgs) -> Result<String> {
    output::json(&ctx.tx(|tx| proactive::archive_idea(tx, a.idea_id))?)
}

/// The scored fields of an opportunity.
#[derive(Debug, Args)]
pub struct OpportunityFields {
    /// Namespace
    #[arg(long, env = "AGENTBUS_NAMESPACE", default_value = "default")]
    namespace: String,
    /// The proposing agent
    #[arg(long, env = "AGENTBUS_AGENT", value_name = "AGENT")]
    source_agent: String,
    /// Theme
    #[arg(long)]
    theme: String,
    /// One line
    #[arg(long)]
    title: String,
    /// Why this matters now
    #[arg(long)]
    why_now: String,
    /// Evidence: JSON object, @FILE or - for stdin
    #[arg(long, value_name = "JSON", default_value = "{}")]
    evidence: String,
    /// 1 to 5
    #[arg(long, value_name = "N", value_parser = score_1_5, allow_negative_numbers = true)]
    impact_score: i32,
    /// 1 to 5
    #[arg(long, value_name = "N", value_parser = score_1_5, allow_negative_numbers = true)]
    confidence_score: i32,
    /// 1 to 5 (5 is an urgent escalation, with a budget of its own)
    #[arg(long, value_name = "N", value_parser = score_1_5, allow_negative_numbers = true)]
    urgency_score: i32,
    /// How easily the next step is undone: high, medium, low
    #[arg(long, value_enum)]
    reversibility: Reversibility,
    /// Who should own it
    #[arg(long, value_name = "AGENT")]
    owner_candidate: Option<String>,
    /// The concrete next step
    #[arg(long)]
    suggested_next_step: String,
    /// One active opportunity per agent and key
    #[arg(long, value_name = "KEY")]
    dedupe_key: Option<String>,
}

impl OpportunityFields {
    fn into_new(self, stdin: &mut dyn Read) -> Result<NewOpportunity> {
        let mut used = false;
        Ok(NewOpportunity {
            namespace: self.namespace,
            source_agent: self.source_agent,
            theme: self.theme,
            title: self.title,
            why_now: self.why_now,
            evidence: json_object("--evidence", Some(&self.evidence), stdin, &mut used)?
                .unwrap_or_default(),
            impact_score: self.impact_score,
            confidence_score: self.confidence_score,
            urgency_score: self.urgency_score,
            reversibility: self.reversibility,
            owner_candidate: self.owner_candidate,
            suggested_next_step: self.suggested_next_step,
            dedupe_key: self.dedupe_key,
        })
    }
}

/// Propose a scored opportunity: something that clears the bar and needs a decision
///
/// Counted against the agent's daily budgets: new opportunities per day, and urgent
/// escalations (urgency 5) per day. Over a budget it exits 4 saying the budget, what was
/// used and when it resets (UTC midnight), and the refusal is kept for the auditor; with
/// --overflow-to-idea it is filed as an idea instead ("outcome": "idea").
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

/// Promote an idea to an opportunity, in one transaction
///
/// The opportunity is created under the proposing agent's budget, the idea becomes
/// promoted_to_opportunity and points at it, and a review row keeps --notes. Any failure
/// leaves both as they were.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  agentbus promote-idea-to-opportunity --idea-id 5d0c... --source-agent coordinator \\\n      \
--theme onboarding --title 'Test paired setup' --why-now 'Funnel weakness plus three idea reads' \\\n      \
--impact-score 4 --confidence-score 3 --urgency-score 3 --reversibility high \\\n      \
--suggested-next-step 'Design the experiment' --notes 'cross-pollination review'"
)]
pub struct PromoteIdeaArgs {
    /// The idea
    #[arg(long, value_name = "UUID")]
    idea_id: Uuid,
    #[command(flatten)]
    fields: OpportunityFields,
    /// Why it was promoted (kept as a review)
    #[arg(long)]
    notes: Option<String>,
}

pub fn promote_idea(ctx: &mut Ctx, a: PromoteIdeaArgs, stdin: &mut dyn Read) -> Result<String> {
    let p = a.fields.into_new(stdin)?;
    output::json(&ctx.tx(|tx| proactive::promote_idea(tx, a.idea_id, &p, a.notes.as_deref()))?)
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
    decision: Decision,
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
            a.decision,
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
}

pub fn convert(ctx: &mut Ctx, a: ConvertOpportunityArgs, stdin: &mut dyn Read) -> Result<String> {
    let mut used = false;
    let c = Conversion {
        target_agent: a.target_agent,
        job_type: a.job_type,
        subject: a.subject,
        priority: a.priority,
        payload: json_object("--payload", Some(&a.payload), stdin, &mut used)?.unwrap_or_default(),
        actor: ctx.actor(),
    };
    output::json(&ctx.tx(|tx| proactive::convert(tx, a.opportunity_id, &c))?)
}

/// Filters shared by list-ideas and list-opportunities.
#[derive(Debug, Args)]
pub struct ListFilter {
    /// Namespace
    #[arg(long, env = "AGENTBUS_NAMESPACE", default_value = "default")]
    namespace: String,
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
    since: Option<SinceArg>,
    /// At most this many
    #[arg(long, default_value_t = 50, allow_negative_numbers = true)]
    limit: i64,
}

impl ListFilter {
    fn resolve(self, ctx: &mut Ctx, allowed: &[&str]) -> Result<Filter> {
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
            namespace: self.namespace,
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
const IDEA_STATES: &[&str] = &["new", "reviewed", "promoted_to_opportunity", "archived"];

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

/// List ideas, newest first
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  agentbus list-ideas --status new\n  agentbus list-ideas --agent design --since 7d"
)]
pub struct ListIdeasArgs {
    #[command(flatten)]
    filter: ListFilter,
}

pub fn list_ideas(ctx: &mut Ctx, a: ListIdeasArgs) -> Result<String> {
    let f = a.filter.resolve(ctx, IDEA_STATES)?;
    let full = ctx.full_ids();
    let list = proactive::list_ideas(ctx.db()?, &f)?;
    output::listing(ctx.format(), &list, "no ideas match", |l| {
        ideas_table(l, full)
    })
}

fn ideas_table(list: &[Idea], full: bool) -> String {
    fitted_table(
        &["id", "status", "from", "theme", "title", "created"],
        list.iter().map(|i| {
            vec![
                output::id(i.id, full),
                i.status.clone(),
                clip(&i.source_agent, 12),
                clip(&i.theme, 14),
                clip(&i.title, 30),
                i.created_at.format("%m-%d %H:%M").to_string(),
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

/// Markdown digests of the proactive lane, for a publisher agent to send
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  agentbus digest opportunities --since 24h\n  \
agentbus digest opportunities --weekly-bets 5\n  agentbus digest ideas --since 24h --format json"
)]
pub struct DigestArgs {
    #[command(subcommand)]
    what: DigestWhat,
}

#[derive(Debug, Subcommand)]
enum DigestWhat {
    /// Open opportunities proposed in the window, ranked by score, with evidence and the
    /// next step; or, with --weekly-bets N, the top N accepted or converted opportunities
    /// of the last 7 days grouped by theme
    Opportunities(DigestOpportunitiesArgs),
    /// Ideas filed in the window, newest first
    Ideas(DigestIdeasArgs),
}

#[derive(Debug, Args)]
struct DigestOpportunitiesArgs {
    /// Namespace
    #[arg(long, env = "AGENTBUS_NAMESPACE", default_value = "default")]
    namespace: String,
    /// Window: 24h, 7d, or an RFC 3339 time
    #[arg(long, default_value = "24h", value_name = "WINDOW", value_parser = parse_since)]
    since: SinceArg,
    /// The top N accepted or converted opportunities of the last 7 days, by theme
    #[arg(long, value_name = "N")]
    weekly_bets: Option<i64>,
}

#[derive(Debug, Args)]
struct DigestIdeasArgs {
    /// Namespace
    #[arg(long, env = "AGENTBUS_NAMESPACE", default_value = "default")]
    namespace: String,
    /// Window: 24h, 7d, or an RFC 3339 time
    #[arg(long, default_value = "24h", value_name = "WINDOW", value_parser = parse_since)]
    since: SinceArg,
}

pub fn digest(ctx: &mut Ctx, a: DigestArgs) -> Result<String> {
    let format = ctx.document_format();
    let client = ctx.db()?;
    let now: chrono::DateTime<chrono::Utc> = crate::db::now(client)?;
    match a.what {
        DigestWhat::Opportunities(d) => {
            let (title, since, statuses, limit) = match d.weekly_bets {
                Some(n) if (1..=100).contains(&n) => (
                    format!("Weekly bets: the top {n} accepted opportunities"),
                    now - chrono::Duration::days(7),
                    vec!["accepted".to_string(), "converted_to_job".to_string()],
                    n,
                ),
                Some(n) => {
                    return Err(Error::usage(format!(
                        "--weekly-bets: {n} is out of range (1 to 100)"
                    )))
                }
                None => (
                    "Opportunities".to_string(),
                    d.since.resolve(now),
                    vec![
                        "new".into(),
                        "triaged".into(),
                        "accepted".into(),
                        "parked".into(),
                    ],
                    100,
                ),
            };
            let list = proactive::list_opportunities(
                client,
                &Filter {
                    namespace: d.namespace.clone(),
                    statuses,
                    since: Some(since),
                    limit,
                    ..Default::default()
                },
            )?;
            match format {
                Format::Json => output::json(&serde_json::json!({
                    "namespace": d.namespace, "since": since, "until": now,
                    "weekly_bets": d.weekly_bets, "opportunities": list,
                })),
                Format::Table => Ok(crate::lanes::digest::opportunities(
                    &title,
                    &d.namespace,
                    since,
                    now,
                    &list,
                    d.weekly_bets.is_some(),
                )),
            }
        }
        DigestWhat::Ideas(d) => {
            let since = d.since.resolve(now);
            let list = proactive::list_ideas(
                client,
                &Filter {
                    namespace: d.namespace.clone(),
                    since: Some(since),
                    limit: 100,
                    ..Default::default()
                },
            )?;
            match format {
                Format::Json => output::json(&serde_json::json!({
                    "namespace": d.namespace, "since": since, "until": now, "ideas": list,
                })),
                Format::Table => Ok(crate::lanes::digest::ideas(&d.namespace, since, now, &list)),
            }
        }
    }
}
