//! emit-event.

use std::io::Read;

use clap::Args;

use super::args::{json_object, JobRef, NamespaceArg};
use super::output;
use super::Ctx;
use crate::error::Result;
use crate::ledger::events;

/// Record a fact other agents and operators can react to
///
/// Prints the event as JSON. With --dedupe-key, at most one event per (namespace, topic,
/// key) is ever stored: emitting it again prints the first one with "deduped": true.
/// Listeners on the events_inserted channel are notified.
#[derive(Debug, Args)]
#[command(after_help = EMIT_EXAMPLES)]
pub struct EmitEventArgs {
    #[command(flatten)]
    ns: NamespaceArg,

    /// Dotted topic, e.g. security.review.completed
    #[arg(long)]
    topic: String,

    /// Agent emitting the event
    #[arg(long, env = "AGENTBUS_AGENT", value_name = "AGENT")]
    source_agent: Option<String>,

    /// Job the fact came from: its id or its first 8 or more characters (default inside a
    /// run: $AGENTBUS_JOB_ID, the job being run)
    #[arg(long, value_name = "UUID")]
    source_job_id: Option<JobRef>,

    /// At most one event per (namespace, topic, key)
    #[arg(long, value_name = "KEY")]
    dedupe_key: Option<String>,

    /// The fact: JSON object, @FILE or - for stdin
    #[arg(long, value_name = "JSON", default_value = "{}")]
    payload: String,
}

const EMIT_EXAMPLES: &str = "\
Examples:
  agentbus emit-event --topic security.review.completed --source-agent security \\
      --source-job-id \"$AGENTBUS_JOB_ID\" \\
      --payload '{\"risk\":\"low\",\"summary\":\"No blocking issues found.\"}'
  agentbus emit-event --topic deploy.finished --dedupe-key deploy:v1.4.2 --payload @deploy.json";

pub fn emit(ctx: &mut Ctx, a: EmitEventArgs, stdin: &mut dyn Read) -> Result<String> {
    let mut stdin_used = false;
    let payload = json_object("--payload", Some(&a.payload), stdin, &mut stdin_used)?
        .unwrap_or_else(|| serde_json::json!({}));
    // Inside a run the job being run is the source: a reaction to this event is one
    // level deeper than that job, which is how reaction loops are stopped.
    let source_job_id = super::args::job_or_running(ctx, a.source_job_id.as_ref(), "source job")?;
    let params = events::EmitParams {
        namespace: a.ns.namespace,
        topic: a.topic,
        source_agent: a.source_agent,
        source_job_id,
        dedupe_key: a.dedupe_key,
        payload,
    };
    let event = ctx.tx(|tx| events::emit(tx, &params))?;
    output::json(&event)
}
