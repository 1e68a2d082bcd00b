//! digest: Markdown summaries of the proactive lane for the publisher.

use super::args::NamespaceArg;
use super::output::{self, Format};
use super::time::parse_since;
use super::Ctx;
use crate::error::{Error, Result};
use crate::lanes::proactive::{self, Filter};
use crate::ledger::time::Since;
use clap::{Args, Subcommand};

/// Markdown digests of the proactive lane, for a publisher agent to send
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  agentbus digest opportunities --since 24h\n  \
agentbus digest opportunities --weekly-bets 5\n  agentbus digest ideas --since 24h --format json\n  \
agentbus digest thinking --since 7d"
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
    /// What the idle thinking windows produced per agent, what was promoted or dropped,
    /// and why windows did not open (busy, urgent work, hours, the day's windows used)
    Thinking(DigestIdeasArgs),
}

#[derive(Debug, Args)]
struct DigestOpportunitiesArgs {
    #[command(flatten)]
    ns: NamespaceArg,
    /// Window: 24h, 7d, or an RFC 3339 time
    #[arg(long, default_value = "24h", value_name = "WINDOW", value_parser = parse_since)]
    since: Since,
    /// The top N accepted or converted opportunities of the last 7 days, by theme
    #[arg(long, value_name = "N")]
    weekly_bets: Option<i64>,
}

#[derive(Debug, Args)]
struct DigestIdeasArgs {
    #[command(flatten)]
    ns: NamespaceArg,
    /// Window: 24h, 7d, or an RFC 3339 time
    #[arg(long, default_value = "24h", value_name = "WINDOW", value_parser = parse_since)]
    since: Since,
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
                    namespace: d.ns.namespace.clone(),
                    statuses,
                    since: Some(since),
                    limit,
                    ..Default::default()
                },
            )?;
            match format {
                Format::Json => output::json(&serde_json::json!({
                    "namespace": d.ns.namespace, "since": since, "until": now,
                    "weekly_bets": d.weekly_bets, "opportunities": list,
                })),
                Format::Table => Ok(crate::lanes::digest::opportunities(
                    &title,
                    &d.ns.namespace,
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
                    namespace: d.ns.namespace.clone(),
                    since: Some(since),
                    limit: 100,
                    ..Default::default()
                },
            )?;
            match format {
                Format::Json => output::json(&serde_json::json!({
                    "namespace": d.ns.namespace, "since": since, "until": now, "ideas": list,
                })),
                Format::Table => Ok(crate::lanes::digest::ideas(
                    &d.ns.namespace,
                    since,
                    now,
                    &list,
                )),
            }
        }
        DigestWhat::Thinking(d) => {
            let since = d.since.resolve(now);
            let agents = crate::lanes::idle::digest(client, &d.ns.namespace, since)?;
            match format {
                Format::Json => output::json(&serde_json::json!({
                    "namespace": d.ns.namespace, "since": since, "until": now, "agents": agents,
                })),
                Format::Table => Ok(crate::lanes::idle::markdown(
                    &d.ns.namespace,
                    since,
                    now,
                    &agents,
                )),
            }
        }
    }
}
