//! audit (findings), audit standing-orders.

use clap::{Args, Subcommand};

use super::args::NamespaceArg;
use super::output::{self, clip, fitted_table};
use super::time::{parse_duration, parse_since};
use super::{Ctx, Format};
use crate::console::findings::{self, Limits};
use crate::error::{Error, Result};
use crate::fleet::audit;
use crate::ledger::time::Since;

/// What is wrong right now, as findings with stable codes and the command that fixes each
///
/// Without a subcommand, lists findings: stale_queued (claimable work nobody claims),
/// stale_running (a run going on far too long), lease_expired (a lease nobody recovered),
/// closed_loop_missing (an agent was woken but never closed its job), retry_storm (many
/// failed attempts of one agent in the last hour), dead_growth (jobs that went dead),
/// standing_order_missed (a scheduled duty that did not run), supervisor_stale (a
/// supervisor that stopped beating), blocked_too_long; and for the proactive lane
/// opportunity_stale_new (nobody triaged it), opportunity_duplicate_title (several agents
/// propose the same thing), low_confidence_repeat (one agent proposing many weak ones),
/// budget_rejected (an agent hitting its daily budget); and guardrail_refused (an agent a
/// fleet guardrail refused, such as a hand-off outside its list); restore_drill_overdue (no
/// backup proven restorable lately); vacuum_horizon_pinned (a transaction open longer than
/// --long-transaction, a forgotten prepared transaction or an unread replication slot keeps
/// vacuum from removing the ledger's dead rows; other roles' transactions are visible only
/// to superusers and pg_read_all_stats). Each names the ids involved and a command to
/// run. With --record, each finding not recorded before is written once as an
/// audit.finding event (dedupe key = the finding's key), for the auditor agent and the
/// publisher. `audit standing-orders` is the per-order table.
#[derive(Debug, Args)]
#[command(after_help = AUDIT_EXAMPLES, args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: Option<AuditCommand>,

    #[command(flatten)]
    findings: FindingsArgs,
}

const AUDIT_EXAMPLES: &str = "\
Examples:
  agentbus audit
  agentbus audit --record --format json | jq -r '.findings[].suggestion'
  agentbus audit --stale-queued 10m --blocked-too-long 1h
  agentbus audit --long-transaction 5m   # what holds back vacuum, with the pid to end
  agentbus audit standing-orders --since 24h
  agentbus audit standing-orders --since 7d --agent auditor --format json | jq '.orders[].gaps'
  agentbus audit standing-orders --dry-run";

#[derive(Debug, Args)]
struct FindingsArgs {
    #[command(flatten)]
    ns: NamespaceArg,

    /// Window for things that happened (dead jobs, missed runs, unclosed runs)
    #[arg(long, default_value = "24h", value_name = "WHEN", value_parser = parse_since)]
    since: Since,

    /// A claimable job waiting longer than this is stale
    #[arg(long, default_value = "30m", value_name = "DURATION", value_parser = parse_span)]
    stale_queued: std::time::Duration,

    /// A job leased or running longer than this is stale
    #[arg(long, default_value = "2h", value_name = "DURATION", value_parser = parse_span)]
    stale_running: std::time::Duration,

    /// A job blocked longer than this is a finding
    #[arg(long, default_value = "4h", value_name = "DURATION", value_parser = parse_span)]
    blocked_too_long: std::time::Duration,

    /// A lease this far past its end and not recovered is a finding
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = parse_span)]
    lease_grace: std::time::Duration,

    /// A supervisor heartbeat older than this is stale
    #[arg(long, default_value = "90s", value_name = "DURATION", value_parser = parse_span)]
    supervisor_stale: std::time::Duration,

    /// This many failed or timed-out attempts of one agent in an hour is a retry storm
    #[arg(long, default_value_t = 10, value_name = "N")]
    retry_storm: i64,

    /// An opportunity untriaged (new) longer than this is a finding
    #[arg(long, default_value = "24h", value_name = "DURATION", value_parser = parse_span)]
    stale_opportunity: std::time::Duration,

    /// This many low-confidence (1-2) opportunities of one agent in the window is a finding
    #[arg(long, default_value_t = 3, value_name = "N")]
    low_confidence_repeat: i64,

    /// A transaction (or prepared transaction) holding back vacuum longer than this is a
    /// finding
    #[arg(long, default_value = "30m", value_name = "DURATION", value_parser = parse_span)]
    long_transaction: std::time::Duration,

    /// Write each new finding once as an audit.finding event
    #[arg(long)]
    record: bool,
}

fn parse_span(s: &str) -> std::result::Result<std::time::Duration, String> {
    parse_duration(s)
        .and_then(|d| d.to_std().ok())
        .ok_or_else(|| format!("expected a duration such as 90s, 30m, 4h or 2d; got {s:?}"))
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Per standing order: expected occurrences and what became of each, and the gaps
    ///
    /// For every enabled order (fired by the supervisor or by OpenClaw's cron) the
    /// occurrences its schedule named in the window are compared with its runs: completed,
    /// no_work (ran and found nothing), blocked, failed, missed (did not run), still
    /// running, late (started after the grace), pending (still inside the grace). An
    /// occurrence with no run after its grace is a gap: it is recorded as a missed run
    /// with one standing_order.missed event (again and again: nothing is added twice),
    /// unless --dry-run. Supervisors run this audit every minute.
    StandingOrders(StandingOrdersArgs),
}

#[derive(Debug, Args)]
struct StandingOrdersArgs {
    #[command(flatten)]
    ns: NamespaceArg,

    /// Window start: a duration back from now (2h, 7d) or an RFC 3339 time
    #[arg(long, default_value = "24h", value_name = "WHEN", value_parser = parse_since)]
    since: Since,

    /// Only this agent's orders
    #[arg(long, value_name = "AGENT")]
    agent: Option<String>,

    /// Report gaps without recording them as missed runs
    #[arg(long)]
    dry_run: bool,
}

pub fn run(ctx: &mut Ctx, a: AuditArgs) -> Result<String> {
    match a.command {
        None => findings(ctx, a.findings),
        Some(AuditCommand::StandingOrders(s)) => {
            let now = chrono::Utc::now();
            let since = s.since.resolve(now);
            let actor = ctx.actor();
            let audit = ctx.tx(|tx| {
                audit::audit(
                    tx,
                    &s.ns.namespace,
                    since,
                    now,
                    s.agent.as_deref(),
                    !s.dry_run,
                    &actor,
                )
            })?;
            match ctx.format() {
                Format::Json => output::json(&audit),
                Format::Table => {
                    // One row per order, at most 100 columns: the outcomes that
                    // happened, by count.
                    let table = fitted_table(
                        &["order", "expected", "what happened", "gaps", "last"],
                        audit.orders.iter().map(|o| {
                            let name = if o.fired_by == "external" {
                                format!("{}/{} (ext)", o.agent_id, o.order_name)
                            } else {
                                format!("{}/{}", o.agent_id, o.order_name)
                            };
                            let outcomes: Vec<String> = [
                                ("done", o.completed),
                                ("no_work", o.no_work),
                                ("blocked", o.blocked),
                                ("failed", o.failed),
                                ("missed", o.missed),
                                ("running", o.running),
                                ("late", o.late),
                                ("pending", o.pending),
                            ]
                            .iter()
                            .filter(|(_, n)| *n > 0)
                            .map(|(what, n)| format!("{n} {what}"))
                            .collect();
                            vec![
                                clip(&name, 34),
                                o.expected.to_string(),
                                if outcomes.is_empty() {
                                    "-".to_string()
                                } else {
                                    clip(&outcomes.join(", "), 28)
                                },
                                match (o.gaps.first(), &o.error) {
                                    (_, Some(e)) => clip(&format!("error: {e}"), 14),
                                    (Some(first), None) => {
                                        format!("{} from {}", o.gaps.len(), first.format("%H:%M"))
                                    }
                                    (None, None) => "-".into(),
                                },
                                o.last_status.clone().unwrap_or_else(|| "-".into()),
                            ]
                        }),
                        false,
                    );
                    Ok(format!(
                        "{table}\nstanding orders of namespace {}, {} to {}\n{} missed recorded now, {} alerts",
                        audit.namespace,
                        output::time(audit.since),
                        output::time(audit.until),
                        audit.recorded_missed,
                        audit.alerts
                    ))
                }
            }
        }
    }
}

fn limits(a: &FindingsArgs, now: chrono::DateTime<chrono::Utc>) -> Limits {
    Limits {
        stale_queued: a.stale_queued,
        stale_running: a.stale_running,
        blocked_too_long: a.blocked_too_long,
        lease_grace: a.lease_grace,
        supervisor_stale: a.supervisor_stale,
        retry_storm: a.retry_storm,
        stale_opportunity: a.stale_opportunity,
        low_confidence_repeat: a.low_confidence_repeat.max(1),
        long_transaction: a.long_transaction,
        since: a.since.resolve(now),
    }
}

/// The audit of `namespace` with `agentbus audit`'s default limits (rollout's smoke test).
pub(super) fn default_audit(
    client: &mut postgres::Client,
    namespace: &str,
    actor: &str,
) -> Result<findings::Report> {
    #[derive(clap::Parser)]
    struct Defaults {
        #[command(flatten)]
        a: FindingsArgs,
    }
    let d = <Defaults as clap::Parser>::try_parse_from(["audit", "--namespace", namespace])
        .map_err(|e| Error::failure(format!("audit defaults: {e}")))?;
    let now = crate::db::now(client)?;
    let limits = limits(&d.a, now);
    crate::db::transaction(client, |tx| {
        findings::audit(tx, namespace, &limits, false, actor)
    })
}

fn findings(ctx: &mut Ctx, a: FindingsArgs) -> Result<String> {
    if a.retry_storm < 1 {
        return Err(Error::usage("--retry-storm: must be at least 1"));
    }
    let full = ctx.full_ids();
    let actor = ctx.actor();
    let client = ctx.db()?;
    let now: chrono::DateTime<chrono::Utc> = crate::db::now(client)?;
    let limits = limits(&a, now);
    let report = crate::db::transaction(client, |tx| {
        findings::audit(tx, &a.ns.namespace, &limits, a.record, &actor)
    })?;
    match ctx.format() {
        Format::Json => output::json(&report),
        Format::Table => {
            // A finding per paragraph: code and ids, what is wrong, what to run.
            let mut out = String::new();
            for f in &report.findings {
                let ids: Vec<String> = f
                    .ids
                    .iter()
                    .map(|id| match uuid::Uuid::parse_str(id) {
                        Ok(u) => output::id(u, full),
                        Err(_) => id.clone(),
                    })
                    .collect();
                let ids = match ids.len() {
                    0..=3 => ids.join(" "),
                    n => format!("{} and {} more", ids[..3].join(" "), n - 3),
                };
                let head = format!("{} {}", f.code, ids);
                out += &format!("{}\n", if full { head } else { clip(&head, 100) });
                out += &format!("  {}\n", clip(&f.detail, 98));
                out += &format!("  -> {}\n\n", clip(&f.suggestion, 95));
            }
            out += &format!(
                "{} finding(s) in namespace {} at {}\n",
                report.findings.len(),
                report.namespace,
                output::time(report.checked_at)
            );
            for (code, n) in &report.more {
                out += &format!("{code}: {n} in all (first 50 listed; --format json for ids)\n");
            }
            if a.record {
                out += &format!(
                    "{} new finding(s) recorded as audit.finding events\n",
                    report.recorded
                );
            }
            Ok(out)
        }
    }
}
