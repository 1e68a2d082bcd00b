//! Ideas: create-idea, review-idea, archive-idea, promote-idea-to-opportunity, list-ideas.

use super::args::{json_object, NamespaceArg};
use super::opportunities::{ListFilter, ScoredFields};
use super::output::{self, clip, fitted_table};
use super::Ctx;
use crate::error::{Error, Result};
use crate::lanes::proactive::{self, Idea, IdeaPromotion, NewIdea};
use clap::Args;
use std::io::Read;
use uuid::Uuid;

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
    #[command(flatten)]
    ns: NamespaceArg,
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
        namespace: a.ns.namespace,
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

/// Promote an idea to an opportunity, in one transaction
///
/// The opportunity is created in the idea's namespace under the promoter's budget and is
/// already triaged by the promoter; its evidence keeps the idea's body and evidence beside
/// the promotion's. Theme and title default to the idea's. The idea becomes
/// promoted_to_opportunity and points at it; a review row keeps --notes. Any failure
/// leaves both as they were. Prints {"idea": ..., "opportunity": ...}.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  agentbus promote-idea-to-opportunity --idea-id 5d0c... --promoted-by coordinator \\\n      \
--why-now 'Funnel weakness plus three idea reads' \\\n      \
--impact-score 4 --confidence-score 3 --urgency-score 3 --reversibility high \\\n      \
--suggested-next-step 'Design the experiment' --notes 'cross-pollination review'"
)]
pub struct PromoteIdeaArgs {
    /// The idea
    #[arg(long, value_name = "UUID")]
    idea_id: Uuid,
    /// Who promotes it: the opportunity's source agent and triager (alias --source-agent)
    #[arg(
        long,
        alias = "source-agent",
        env = "AGENTBUS_AGENT",
        value_name = "AGENT"
    )]
    promoted_by: String,
    /// Theme (default: the idea's)
    #[arg(long)]
    theme: Option<String>,
    /// One line (default: the idea's)
    #[arg(long)]
    title: Option<String>,
    #[command(flatten)]
    scored: ScoredFields,
    /// Why it was promoted (kept as the triage notes and a review)
    #[arg(long)]
    notes: Option<String>,
}

pub fn promote_idea(ctx: &mut Ctx, a: PromoteIdeaArgs, stdin: &mut dyn Read) -> Result<String> {
    let evidence = a.scored.evidence(stdin)?;
    let f = a.scored;
    let p = IdeaPromotion {
        promoted_by: a.promoted_by,
        theme: a.theme,
        title: a.title,
        why_now: f.why_now,
        evidence,
        impact_score: f.impact_score,
        confidence_score: f.confidence_score,
        urgency_score: f.urgency_score,
        reversibility: f.reversibility.into(),
        owner_candidate: f.owner_candidate,
        suggested_next_step: f.suggested_next_step,
        dedupe_key: f.dedupe_key,
        notes: a.notes,
    };
    output::json(&ctx.tx(|tx| proactive::promote_idea(tx, a.idea_id, &p))?)
}

const IDEA_STATES: &[&str] = &["new", "reviewed", "promoted_to_opportunity", "archived"];

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
