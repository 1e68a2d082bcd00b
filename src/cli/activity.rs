//! activity, events.

use std::io::Write;

use clap::Args;

use super::args::{JobRef, NamespaceArg};
use super::output::{self, clip, fitted_table, Format};
use super::time::parse_since;
use super::Ctx;
use crate::console::activity::{self, Kind};
use crate::error::{Error, Result};
use crate::ledger::events::{self, EventFilter};
use crate::ledger::time::Since;

/// Everything one agent did in a window, in time order
///
/// Jobs it received and every status change they went through (with who made it), jobs it
/// enqueued for other agents, events it emitted, its standing-order runs, and what it did
/// to other agents' jobs (an operator's approvals, cancellations and retries show under
/// --agent operator:NAME). At most 2000 entries, the newest kept.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  agentbus activity --agent writer --since 2h\n  \
agentbus activity --agent operator:alice --since 1d\n  \
agentbus activity --agent scout --since 2026-11-23T08:00:00Z --format json"
)]
pub struct ActivityArgs {
    /// The agent (or actor, such as operator:alice)
    #[arg(long, value_name = "AGENT")]
    agent: String,

    /// Start of the window: a duration back from now (30m, 2h, 7d) or an RFC 3339 time
    #[arg(long, default_value = "24h", value_name = "WHEN", value_parser = parse_since)]
    since: Since,

    #[command(flatten)]
    ns: NamespaceArg,
}

pub fn activity(ctx: &mut Ctx, a: ActivityArgs) -> Result<String> {
    let full = ctx.full_ids();
    let client = ctx.db()?;
    let now: chrono::DateTime<chrono::Utc> = crate::db::now(client)?;
    let act = activity::activity(client, &a.ns.namespace, &a.agent, a.since.resolve(now))?;
    match ctx.format() {
        Format::Json => output::json(&act),
        Format::Table => {
            let mut out = format!(
                "activity of {} in namespace {} from {} to {}\n",
                act.agent,
                act.namespace,
                output::time(act.since),
                output::time(act.until)
            );
            if act.entries.is_empty() {
                out += "nothing happened in this window\n";
                return Ok(out);
            }
            if act.truncated {
                out += "(older entries cut; narrow --since)\n";
            }
            out += &fitted_table(
                &["time", "kind", "job", "what", "detail"],
                act.entries.iter().map(|e| {
                    let kind = match e.kind {
                        Kind::Received => "received",
                        Kind::Transition => "job",
                        Kind::Enqueued => "enqueued",
                        Kind::Emitted => "emitted",
                        Kind::StandingOrderStarted => "order start",
                        Kind::StandingOrderFinished => "order end",
                        Kind::Acted => "acted on",
                    };
                    let detail = match (&e.detail, &e.actor) {
                        (Some(d), Some(actor)) => format!("{d} (by {actor})"),
                        (None, Some(actor)) => format!("by {actor}"),
                        (Some(d), None) => d.clone(),
                        (None, None) => String::new(),
                    };
                    let what = match (e.kind, &e.other_agent) {
                        (Kind::Enqueued, Some(to)) => format!("{} for {to}", e.what),
                        (Kind::Acted, Some(of)) => format!("{} ({of})", e.what),
                        _ => e.what.clone(),
                    };
                    vec![
                        e.at.format("%m-%d %H:%M").to_string(),
                        kind.to_string(),
                        e.job_id.map(|id| output::id(id, full)).unwrap_or_default(),
                        clip(&what, 24),
                        clip(&detail, 32),
                    ]
                }),
                full,
            );
            Ok(out)
        }
    }
}

/// Read events, or follow them as they arrive
///
/// Without --follow, prints the events of the window (the newest --limit of them, oldest
/// first). With --follow, prints them and then every new matching event as one JSON object
/// per line until interrupted; it listens for the insert notification and also polls every
/// second, so nothing is missed when notifications are. A topic ending in .* matches a
/// prefix (standing_order.*).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  agentbus events --topic standing_order.missed --since 24h\n  \
agentbus events --topic 'prospect.*' --follow | jq -c '.payload'\n  \
agentbus events --source-agent auditor --since 1h --format json"
)]
pub struct EventsArgs {
    /// Only these topics (repeat the flag; a trailing .* matches a prefix)
    #[arg(long, value_name = "TOPIC")]
    topic: Vec<String>,

    /// Start of the window: a duration back from now (30m, 2h, 7d) or an RFC 3339 time
    #[arg(long, default_value = "1h", value_name = "WHEN", value_parser = parse_since)]
    since: Since,

    /// Only events this agent emitted
    #[arg(long, value_name = "AGENT")]
    source_agent: Option<String>,

    /// Only events of this job (its id or its first 8 or more characters)
    #[arg(long, value_name = "UUID")]
    source_job_id: Option<JobRef>,

    /// At most this many events from the window (the newest)
    #[arg(long, default_value_t = 200, value_name = "N")]
    limit: i64,

    /// Keep printing new events as JSON Lines until interrupted
    #[arg(long)]
    follow: bool,

    #[command(flatten)]
    ns: NamespaceArg,
}

pub fn events(ctx: &mut Ctx, a: EventsArgs, stdout: &mut dyn Write) -> Result<String> {
    if !(1..=100_000).contains(&a.limit) {
        return Err(Error::usage(format!(
            "--limit: {} is out of range (1 to 100000)",
            a.limit
        )));
    }
    for t in &a.topic {
        if t.trim().is_empty() || (t.contains('*') && !t.ends_with(".*")) {
            return Err(Error::usage(format!(
                "--topic {t:?}: a topic, or a prefix ending in .* (standing_order.*)"
            )));
        }
    }
    let source_job_id = match &a.source_job_id {
        Some(job) => Some(ctx.job_id(job)?),
        None => None,
    };
    let full = ctx.full_ids();
    let format = ctx.format();
    let client = ctx.db()?;
    let now: chrono::DateTime<chrono::Utc> = crate::db::now(client)?;
    let filter = EventFilter {
        namespace: a.ns.namespace.clone(),
        topics: a.topic.clone(),
        source_agent: a.source_agent.clone(),
        source_job_id,
        since: Some(a.since.resolve(now)),
    };
    let first = events::list(client, &filter, 0, a.limit, true)?;
    if !a.follow {
        return match format {
            Format::Json => output::json(&first),
            Format::Table if first.is_empty() => Ok("no events match\n".into()),
            Format::Table => Ok(fitted_table(
                &["id", "time", "topic", "agent", "job", "payload"],
                first.iter().map(|e| {
                    vec![
                        e.id.to_string(),
                        e.created_at.format("%m-%d %H:%M:%S").to_string(),
                        clip(&e.topic, 26),
                        clip(e.source_agent.as_deref().unwrap_or(""), 12),
                        e.source_job_id
                            .map(|id| output::id(id, full))
                            .unwrap_or_default(),
                        clip(&e.payload.to_string(), 30),
                    ]
                }),
                full,
            )),
        };
    }

    let mut follower = events::Follower::start(client, filter, &first)?;
    let mut batch = first;
    loop {
        for e in &batch {
            let line = format!("{}\n", serde_json::to_string(e).unwrap_or_default());
            if stdout
                .write_all(line.as_bytes())
                .and_then(|_| stdout.flush())
                .is_err()
            {
                return Ok(String::new());
            }
        }
        batch = follower.next_batch(client)?;
    }
}
