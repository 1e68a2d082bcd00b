//! audit standing-orders.

use clap::{Args, Subcommand};

use super::output;
use super::{Ctx, Format};
use crate::error::Result;
use crate::input::SinceArg;
use crate::standing_order_audit;

/// Audits of what should have happened
#[derive(Debug, Args)]
#[command(after_help = AUDIT_EXAMPLES)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

const AUDIT_EXAMPLES: &str = "\
Examples:
  agentbus audit standing-orders --since 24h
  agentbus audit standing-orders --since 7d --agent auditor --format json | jq '.orders[].gaps'
  agentbus audit standing-orders --dry-run";

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
    /// Namespace
    #[arg(long, env = "AGENTBUS_NAMESPACE", default_value = "default")]
    namespace: String,

    /// Window start: a duration back from now (2h, 7d) or an RFC 3339 time
    #[arg(long, default_value = "24h", value_name = "WHEN", value_parser = parse_since)]
    since: SinceArg,

    /// Only this agent's orders
    #[arg(long, value_name = "AGENT")]
    agent: Option<String>,

    /// Report gaps without recording them as missed runs
    #[arg(long)]
    dry_run: bool,
}

pub fn run(ctx: &mut Ctx, a: AuditArgs) -> Result<String> {
    match a.command {
        AuditCommand::StandingOrders(s) => {
            let now = chrono::Utc::now();
            let since = s.since.resolve(now);
            let actor = ctx.actor();
            let audit = standing_order_audit::audit(
                ctx.db()?,
                &s.namespace,
                since,
                now,
                s.agent.as_deref(),
                !s.dry_run,
                &actor,
            )?;
            match ctx.format() {
                Format::Json => output::json(&audit),
                Format::Table => {
                    let table = output::table(
                        &[
                            "agent", "order", "by", "expected", "done", "no_work", "blocked",
                            "failed", "missed", "running", "late", "pending", "gaps", "last",
                        ],
                        audit.orders.iter().map(|o| {
                            vec![
                                o.agent_id.clone(),
                                o.order_name.clone(),
                                o.fired_by.clone(),
                                o.expected.to_string(),
                                o.completed.to_string(),
                                o.no_work.to_string(),
                                o.blocked.to_string(),
                                o.failed.to_string(),
                                o.missed.to_string(),
                                o.running.to_string(),
                                o.late.to_string(),
                                o.pending.to_string(),
                                match (o.gaps.first(), &o.error) {
                                    (_, Some(e)) => format!("error: {e}"),
                                    (Some(first), None) => {
                                        format!("{} from {}", o.gaps.len(), output::time(*first))
                                    }
                                    (None, None) => "-".into(),
                                },
                                o.last_status.clone().unwrap_or_else(|| "-".into()),
                            ]
                        }),
                    );
                    Ok(format!(
                        "{table}\nstanding orders of namespace {} from {} to {}: {} missed recorded now, {} alerts",
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

fn parse_since(s: &str) -> std::result::Result<SinceArg, String> {
    SinceArg::parse(s).map_err(|e| e.message)
}
