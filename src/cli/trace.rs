//! trace.

use clap::Args;

use super::args::JobRef;
use super::output::{self, clip, Format};
use super::Ctx;
use crate::console::trace::{self, Node, Scope, Trace};
use crate::error::{Error, ErrorKind, Result};

/// The whole story of a piece of work, as a tree
///
/// For JOB: its parents, then the job and every follow-up it (and they) enqueued; for each,
/// the jobs it waited for, every attempt (who, when, outcome, runId or exit code, error),
/// its status changes with who made them and why, the events it emitted, and the
/// standing-order occurrence it carried. --flow KEY or --correlation KEY traces every job
/// of a flow. At most 500 jobs. Work `agentbus prune --archive` moved out of the live tables
/// is traced with --archived.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  agentbus trace 3f2a9c1e\n  agentbus trace --flow prospect:acme\n  \
agentbus trace --correlation opportunity:42 --format json | jq '.roots[0].job.status'\n  \
agentbus trace --archived 3f2a9c1e"
)]
pub struct TraceArgs {
    /// The job (its id, or the first 8 or more characters of it)
    #[arg(value_name = "JOB", required_unless_present_any = ["flow", "correlation"], conflicts_with_all = ["flow", "correlation"])]
    job: Option<JobRef>,

    /// Every job with this flow key
    #[arg(long, value_name = "KEY", conflicts_with = "correlation")]
    flow: Option<String>,

    /// Every job with this correlation key
    #[arg(long, value_name = "KEY")]
    correlation: Option<String>,

    /// Read the archive (work `agentbus prune --archive` moved) instead of the live tables
    #[arg(long)]
    archived: bool,

    /// Namespace (for --flow and --correlation)
    #[arg(long, env = "AGENTBUS_NAMESPACE", default_value = "default")]
    namespace: String,
}

pub fn run(ctx: &mut Ctx, a: TraceArgs) -> Result<String> {
    let full = ctx.full_ids();
    let client = ctx.db()?;
    let scope = match (a.job, a.flow, a.correlation) {
        (Some(JobRef::Prefix(p)), _, _) if a.archived => {
            Scope::Job(trace::resolve_archived_prefix(client, &a.namespace, &p)?)
        }
        (Some(job), _, _) => Scope::Job(job.resolve(client, &a.namespace).map_err(archived_hint)?),
        (None, Some(flow), _) => Scope::Flow(flow),
        (None, None, Some(key)) => Scope::Correlation(key),
        (None, None, None) => {
            return Err(Error::usage("give JOB, --flow KEY or --correlation KEY"))
        }
    };
    let t = if a.archived {
        trace::trace_archived(client, &a.namespace, &scope)?
    } else {
        trace::trace(client, &a.namespace, &scope).map_err(archived_hint)?
    };
    match ctx.format() {
        Format::Json => output::json(&t),
        Format::Table => Ok(render(&t, full)),
    }
}

/// A job not found in the live tables may have been archived.
fn archived_hint(e: Error) -> Error {
    if e.kind == ErrorKind::NotFound {
        e.with_hint("archived work (agentbus prune --archive) is traced with --archived")
    } else {
        e
    }
}

/// The tree as text, at most 100 columns per line (long text is clipped).
pub fn render(t: &Trace, full_ids: bool) -> String {
    let mut out = format!(
        "trace of {} ({} job{})\n",
        t.scope,
        t.job_count,
        if t.job_count == 1 { "" } else { "s" }
    );
    let n = t.roots.len();
    for (i, node) in t.roots.iter().enumerate() {
        node_lines(node, "", i + 1 == n, full_ids, &mut out);
    }
    if t.truncated {
        out += &format!(
            "... cut at {} jobs; use --format json, or trace a job further down\n",
            trace::MAX_JOBS
        );
    }
    out
}

fn node_lines(node: &Node, prefix: &str, last: bool, full: bool, out: &mut String) {
    let j = &node.job;
    let branch = if last { "└─ " } else { "├─ " };
    let marker = if node.focus { "▶ " } else { "" };
    let head = format!(
        "{marker}{} {} {} \"{}\"",
        output::id(j.id, full),
        j.status,
        j.target_agent,
        j.subject
    );
    let width = 100usize.saturating_sub(prefix.chars().count() + 3);
    out.push_str(&format!("{prefix}{branch}{}\n", clip(&head, width)));
    let inner = format!("{prefix}{}", if last { "   " } else { "│  " });
    let child_bar = if node.children.is_empty() {
        "   "
    } else {
        "│  "
    };
    let detail_prefix = format!("{inner}{child_bar}");
    let dw = 100usize.saturating_sub(detail_prefix.chars().count());
    let mut detail = |text: String| {
        out.push_str(&format!("{detail_prefix}{}\n", clip(&text, dw)));
    };

    let mut facts = vec![
        format!("type {}", j.job_type),
        format!("prio {}", j.priority),
    ];
    if let Some(src) = &j.source_agent {
        facts.push(format!("from {src}"));
    }
    if let Some(f) = &j.flow_key {
        facts.push(format!("flow {f}"));
    }
    if let Some(c) = &j.correlation_key {
        facts.push(format!("corr {c}"));
    }
    facts.push(format!("created {}", output::time(j.created_at)));
    detail(facts.join(" · "));
    if let Some(r) = &j.blocked_reason {
        detail(format!("blocked: {r}"));
    }
    if let Some(s) = &j.summary {
        detail(format!("summary: {s}"));
    }
    if let Some(run) = &node.standing_order_run {
        detail(format!(
            "standing order {}/{} for {} -> {}",
            run.agent_id,
            run.order_name,
            output::time(run.scheduled_for),
            run.status.as_str()
        ));
    }
    if let Some(e) = &node.origin_event {
        detail(format!(
            "reaction {} to event {} {} (from {}), depth {}",
            node.job.payload["reaction"].as_str().unwrap_or("?"),
            e.id,
            e.topic,
            e.source_agent.as_deref().unwrap_or("-"),
            node.job.reaction_depth
        ));
    }
    if let Some(o) = &node.opportunity {
        detail(format!(
            "from opportunity {} \"{}\" (score {}, proposed by {})",
            output::id(o.id, full),
            o.title,
            o.score,
            o.source_agent
        ));
    }
    for r in &node.coding_runs {
        let mut line = format!(
            "coding run {} {} by {} ({}) on {}",
            output::id(r.id, full),
            r.status,
            r.runner,
            r.run_mode,
            r.branch.as_deref().unwrap_or("-")
        );
        if let Some(s) = r.result_summary.as_deref().or(r.error.as_deref()) {
            line += &format!(": {s}");
        }
        if let Some(m) = &r.merged_commit {
            line += &format!(" · merged {}", m.get(..10).unwrap_or(m));
        }
        detail(line);
    }
    for d in &node.depends_on {
        detail(format!(
            "waited for {} {} {} \"{}\"",
            output::id(d.id, full),
            d.status,
            d.target_agent,
            d.subject
        ));
    }
    for a in &node.attempts {
        let mut line = format!(
            "attempt {} {} by {} at {}",
            a.attempt_no,
            a.status.as_str(),
            a.dispatcher_id.as_deref().unwrap_or("?"),
            output::time(a.started_at)
        );
        if let Some(mode) = &a.wake_mode {
            line += &format!(" ({mode})");
        }
        if let Some(run) = &a.run_id {
            line += &format!(" runId {run}");
        }
        if let Some(code) = a.exit_code {
            line += &format!(" exit {code}");
        }
        if let Some(sig) = a.exit_signal {
            line += &format!(" signal {sig}");
        }
        if let Some(e) = &a.error {
            line += &format!(": {e}");
        }
        detail(line);
        if !a.memory_ids.is_empty() {
            let ids: Vec<String> = a.memory_ids.iter().map(|m| output::id(*m, full)).collect();
            detail(format!("  saw memories {}", ids.join(" ")));
        }
    }
    for h in &node.history {
        let from = h
            .from_status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "new".into());
        let mut line = format!(
            "{} {} -> {} by {}",
            h.created_at.format("%m-%d %H:%M:%S"),
            from,
            h.to_status,
            h.actor
        );
        if let Some(r) = &h.reason {
            line += &format!(" ({r})");
        }
        detail(line);
    }
    for e in &node.events {
        detail(format!(
            "event {} at {} {}",
            e.topic,
            output::time(e.created_at),
            e.payload
        ));
    }
    let n = node.children.len();
    for (i, child) in node.children.iter().enumerate() {
        node_lines(child, &inner, i + 1 == n, full, out);
    }
}
