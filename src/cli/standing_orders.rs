//! start-standing-order, finish-standing-order.

use std::io::Read;

use clap::Args;
use uuid::Uuid;

use super::args::{json_object, NamespaceArg, OpenClawRefs};
use super::output;
use super::Ctx;
use crate::error::Result;
use crate::ledger::standing_orders::{self, RunStatus, Slot};
use crate::ledger::time::When;

/// Record that a standing-order occurrence started
///
/// One run exists per (namespace, agent, order, scheduled time): starting the same
/// occurrence again prints the same run. Prints the run as JSON; keep its id to finish it.
#[derive(Debug, Args)]
#[command(after_help = START_EXAMPLES)]
pub struct StartStandingOrderArgs {
    #[command(flatten)]
    ns: NamespaceArg,

    /// Agent whose duty this is
    #[arg(long, value_name = "AGENT")]
    agent_id: String,

    /// The standing order's name
    #[arg(long, value_name = "NAME")]
    order_name: String,

    /// The occurrence this run is for: its time (RFC 3339, e.g. the cron slot
    /// 2026-04-15T18:00:00Z), or `latest` for the declared order's most recent occurrence
    /// (what an agent woken by OpenClaw cron uses)
    #[arg(long, value_name = "TIME|latest", value_parser = parse_occurrence)]
    scheduled_for: Slot,

    /// What fired it: cron, supervisor, manual
    #[arg(long, default_value = "cron", value_name = "SOURCE")]
    trigger_source: String,

    /// OpenClaw cron job id
    #[arg(long, value_name = "ID")]
    cron_job_id: Option<String>,

    #[command(flatten)]
    openclaw: OpenClawRefs,
}

const START_EXAMPLES: &str = "\
Examples:
  RUN_ID=$(agentbus start-standing-order --agent-id auditor --order-name lease_reaper \\
      --scheduled-for 2026-04-15T18:00:00Z | jq -r .id)
  agentbus finish-standing-order \"$RUN_ID\" --status completed \\
      --summary 'Requeued 2 expired jobs, found 0 cron gaps.' --evidence '{\"requeued\":2,\"gaps\":0}'
  # Woken by OpenClaw cron, not knowing the slot: the order's latest occurrence
  agentbus start-standing-order --agent-id auditor --order-name lease_reaper --scheduled-for latest";

/// An occurrence is an absolute time or `latest`: relative forms would make retries start
/// new runs.
fn parse_occurrence(s: &str) -> std::result::Result<Slot, String> {
    if s == "latest" {
        return Ok(Slot::Latest);
    }
    match super::time::parse_when(s) {
        Ok(When::At(at)) => Ok(Slot::At(at)),
        Ok(When::FromNow(_)) => Err(
            "must be an RFC 3339 time (the occurrence), e.g. 2026-04-15T18:00:00Z, or latest"
                .into(),
        ),
        Err(e) => Err(e),
    }
}

pub fn start(ctx: &mut Ctx, a: StartStandingOrderArgs) -> Result<String> {
    let params = standing_orders::StartParams {
        namespace: a.ns.namespace,
        agent_id: a.agent_id,
        order_name: a.order_name,
        trigger_source: a.trigger_source,
        cron_job_id: a.cron_job_id,
        scheduled_for: a.scheduled_for,
        openclaw_task_ref: a.openclaw.openclaw_task_ref,
        openclaw_session_key: a.openclaw.openclaw_session_key,
    };
    let run = ctx.tx(|tx| standing_orders::start(tx, &params))?;
    output::json(&run)
}

/// Record how a standing-order occurrence ended
///
/// no_work means "ran and found nothing to do", which is different from missed ("did not
/// run"). A started run is finished once; repeating the same status prints it unchanged, a
/// different status exits 4.
#[derive(Debug, Args)]
#[command(after_help = START_EXAMPLES)]
pub struct FinishStandingOrderArgs {
    /// The run id printed by start-standing-order
    #[arg(value_name = "RUN_ID")]
    run_id: Uuid,

    /// no_work, completed, blocked, failed, skipped or missed
    #[arg(long, value_parser = parse_finished)]
    status: RunStatus,

    /// One line: what the run found or did
    #[arg(long)]
    summary: Option<String>,

    /// Evidence: JSON object, @FILE or - for stdin
    #[arg(long, value_name = "JSON")]
    evidence: Option<String>,

    #[command(flatten)]
    openclaw: OpenClawRefs,
}

fn parse_finished(s: &str) -> std::result::Result<RunStatus, String> {
    match s.parse::<RunStatus>() {
        Ok(st) if st != RunStatus::Started => Ok(st),
        _ => Err("expected one of: no_work, completed, blocked, failed, skipped, missed".into()),
    }
}

pub fn finish(ctx: &mut Ctx, a: FinishStandingOrderArgs, stdin: &mut dyn Read) -> Result<String> {
    let mut stdin_used = false;
    let params = standing_orders::FinishParams {
        status: a.status,
        summary: a.summary,
        evidence: json_object("--evidence", a.evidence.as_deref(), stdin, &mut stdin_used)?,
        openclaw_task_ref: a.openclaw.openclaw_task_ref,
        openclaw_session_key: a.openclaw.openclaw_session_key,
    };
    let run = ctx.tx(|tx| standing_orders::finish(tx, a.run_id, &params))?;
    output::json(&run)
}

/// Fire a declared standing order now, outside its schedule
///
/// Creates a run (trigger_source manual, for the current second) and its scheduled job,
/// exactly as the supervisor fires an occurrence; a supervisor then wakes the agent, and
/// the run ends with the job (completed, no_work, blocked, failed). The schedule is not
/// moved: the next occurrences fire as usual. Prints the run as JSON.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
agentbus fire-standing-order --agent-id mission-control --order-name nightly-standup\n  \
agentbus trace $(agentbus fire-standing-order --agent-id auditor --order-name lease-sweep | jq -r .job_id)")]
pub struct FireStandingOrderArgs {
    #[command(flatten)]
    ns: NamespaceArg,

    /// Agent whose duty this is
    #[arg(long, value_name = "AGENT")]
    agent_id: String,

    /// The standing order's name
    #[arg(long, value_name = "NAME")]
    order_name: String,
}

pub fn fire(ctx: &mut Ctx, a: FireStandingOrderArgs) -> Result<String> {
    let actor = ctx.actor();
    let run = ctx.tx(|tx| {
        standing_orders::fire_now(tx, &a.ns.namespace, &a.agent_id, &a.order_name, &actor)
    })?;
    output::json(&run)
}
