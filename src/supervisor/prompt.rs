//! The job prompt: what a woken agent is told, identical in hook and exec mode.
//!
//! One text for both wake modes (the hook's `message`, the exec child's `{prompt_file}`).
//! It carries data, not instructions: OpenClaw wraps hook messages as untrusted content,
//! so each agent's durable rules live in its `AGENTS.md`. The ids sit on marker lines
//! (`AGENTBUS_JOB_ID: ...`) that an agent can find whatever wraps the message. The text is
//! versioned and its sha256 is stored on the attempt, so "what was this run told" can be
//! answered later.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::db::{decode, Prepare};
use crate::error::{Error, Result};
use crate::ledger::agents::Agent;
use crate::ledger::jobs::{check_claim, ClaimParams, Job, JobStatus};

/// Bumped whenever the layout of the prompt changes.
pub const PROMPT_VERSION: i32 = 4;

/// Payloads larger than this are cut (the agent can read the whole job with `show-job`).
const PAYLOAD_LIMIT: usize = 64 * 1024;
/// Each dependency's result is cut at this size.
const DEPENDENCY_RESULT_LIMIT: usize = 4 * 1024;

/// A job this one waited for, with what it produced.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct DependencyResult {
    pub id: Uuid,
    pub target_agent: String,
    pub subject: String,
    pub status: JobStatus,
    pub summary: Option<String>,
    pub result: Value,
}

/// The standing-order occurrence a scheduled job was fired for.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct Occurrence {
    pub id: Uuid,
    pub order_name: String,
    pub scheduled_for: DateTime<Utc>,
}

/// Everything the prompt is built from.
#[derive(Debug, Clone)]
pub struct PromptInput {
    /// The job, as claimed (with its lease token and attempt).
    pub job: Job,
    /// Its dependencies, oldest first.
    pub dependencies: Vec<DependencyResult>,
    /// The standing-order run it belongs to, if any.
    pub occurrence: Option<Occurrence>,
    /// Memories retrieved for it (empty when the memory lane is paused or off).
    pub memories: Vec<crate::lanes::memory::Retrieved>,
}

/// A rendered prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// The text handed to the agent.
    pub text: String,
    /// sha256 of `text`, lowercase hex.
    pub hash: String,
    /// [`PROMPT_VERSION`] at render time.
    pub version: i32,
    /// The memories it carries (within [`MEMORY_SECTION_LIMIT`]), recorded on the attempt.
    pub memory_ids: Vec<uuid::Uuid>,
}

/// At most this many characters of retrieved memories go into a prompt.
pub const MEMORY_SECTION_LIMIT: usize = 4000;

/// At most this many characters of one memory's body.
const MEMORY_BODY_LIMIT: usize = 600;

/// Claims (`claim_jobs`: fair across agents, within their limits) and reads, per claimed
/// job `c` (its row as claimed), what its prompt is built from: the results of its
/// dependencies, its standing-order run, its agent's settings and its memories
/// (sql: retrieve_memories).
const CLAIM_FOR_WAKE: &str = "
  with c as materialized (
    select * from claim_jobs($1, $2, $3, $4, $5, $6, $7)
  )
  select to_jsonb(c.*) as row,
   coalesce((
     select jsonb_agg(jsonb_build_object(
              'id', j.id, 'target_agent', j.target_agent, 'subject', j.subject,
              'status', j.status, 'summary', j.summary, 'result', j.result)
            order by j.created_at, j.id)
     from job_dependencies d
     join jobs j on j.id = d.depends_on_job_id
     where d.job_id = c.id), '[]'::jsonb) as dependencies,
   (select jsonb_build_object('id', r.id, 'order_name', r.order_name,
                              'scheduled_for', r.scheduled_for)
    from standing_order_runs r
    where r.job_id = c.id
    order by r.scheduled_for desc
    limit 1) as occurrence,
   (select to_jsonb(a.*) from agents a
    where a.namespace = c.namespace and a.agent_id = c.target_agent) as agent,
   (select coalesce(jsonb_agg(m.memory || jsonb_build_object('bucket', m.bucket)), '[]'::jsonb)
      from retrieve_memories(c.namespace, c.target_agent, c.payload ->> 'project_key',
                             c.payload ->> 'person_key', c.payload ->> 'service_key',
                             10, true) m) as memories
  from c";

/// A claimed job with what its wake-up needs.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    /// The prompt's inputs (the job as claimed, with its lease token).
    pub input: PromptInput,
    /// The settings of the agent it goes to (`None`: no row, the supervisor's defaults).
    pub agent: Option<Agent>,
}

/// Claims up to `p.limit` ready jobs (`claim_jobs`, fair across agents, within their
/// limits) and reads what each one's prompt and wake-up need, in one statement: the
/// supervisor's dispatch path is one round trip from a notification to the prompts.
pub fn claim_for_wake(client: &mut impl Prepare, p: &ClaimParams) -> Result<Vec<ClaimedJob>> {
    check_claim(p)?;
    let statement = client.prepared(CLAIM_FOR_WAKE)?;
    let rows = client.client().query(&statement, &p.sql_args())?;
    rows.iter().map(decode_claimed).collect()
}

fn decode_claimed(row: &postgres::Row) -> Result<ClaimedJob> {
    let job: Job = decode(row, "row")?;
    let memories = decode(row, "memories")?;
    let dependencies = decode(row, "dependencies")?;
    let occurrence: Option<Value> = row.try_get("occurrence")?;
    let occurrence = occurrence
        .map(|v| {
            serde_json::from_value(v)
                .map_err(|e| Error::failure(format!("unexpected standing-order run shape: {e}")))
        })
        .transpose()?;
    let agent: Option<Value> = row.try_get("agent")?;
    let agent = agent
        .map(|v| {
            serde_json::from_value(v)
                .map_err(|e| Error::failure(format!("unexpected agents row shape: {e}")))
        })
        .transpose()?;
    Ok(ClaimedJob {
        input: PromptInput {
            job,
            dependencies,
            occurrence,
            memories,
        },
        agent,
    })
}

/// Renders the prompt. Pure: the same input gives the same text and hash.
pub fn render(input: &PromptInput) -> Prompt {
    let job = &input.job;
    let token = job
        .lease_token
        .map(|t| t.to_string())
        .unwrap_or_else(|| "(none: the job is not leased)".to_string());
    let mut out = String::new();
    let mut line = |s: &str| {
        out.push_str(s);
        out.push('\n');
    };

    line("agentbus job: you were woken to do the job below, then close it with agentbus.");
    line("");
    line(&format!("AGENTBUS_NAMESPACE: {}", job.namespace));
    line(&format!("AGENTBUS_JOB_ID: {}", job.id));
    line(&format!("AGENTBUS_ATTEMPT: {}", job.attempt_count));
    line(&format!("AGENTBUS_LEASE_TOKEN: {token}"));
    line(&format!("AGENTBUS_AGENT: {}", job.target_agent));
    line(&format!("AGENTBUS_PROMPT_VERSION: {PROMPT_VERSION}"));
    line("");
    line(&format!("Subject: {}", one_line(&job.subject)));
    line(&format!("Type: {}", one_line(&job.job_type)));
    line(&format!("Priority: {}", job.priority));
    line(&format!(
        "From: {}",
        job.source_agent
            .as_deref()
            .map(one_line)
            .unwrap_or("(operator)".into())
    ));
    if let Some(flow) = &job.flow_key {
        line(&format!("Flow: {}", one_line(flow)));
    }
    if let Some(correlation) = &job.correlation_key {
        line(&format!("Correlation: {}", one_line(correlation)));
    }
    if let Some(parent) = job.parent_job_id {
        line(&format!("Parent job: {parent}"));
    }
    if let Some(until) = job.leased_until {
        line(&format!("Lease until: {}", rfc3339(until)));
    }
    line(&format!(
        "Attempt {} of {}{}",
        job.attempt_count,
        job.max_attempts,
        job.last_error
            .as_deref()
            .map(|e| format!("; the previous attempt ended: {}", one_line(e)))
            .unwrap_or_default()
    ));
    if let Some(o) = &input.occurrence {
        line(&format!(
            "Standing order: {} scheduled for {} (run {})",
            one_line(&o.order_name),
            rfc3339(o.scheduled_for),
            o.id
        ));
    }
    line("");
    line("Payload (JSON):");
    line(&capped_json(&job.payload, PAYLOAD_LIMIT, job.id));
    if !input.dependencies.is_empty() {
        line("");
        line(&format!(
            "Dependencies ({}), the work this job waited for:",
            input.dependencies.len()
        ));
        for d in &input.dependencies {
            line(&format!(
                "- {} [{}] {} (agent {}){}",
                d.id,
                d.status,
                one_line(&d.subject),
                d.target_agent,
                d.summary
                    .as_deref()
                    .map(|s| format!(": {}", one_line(s)))
                    .unwrap_or_default()
            ));
            line(&format!(
                "  result: {}",
                capped_json(&d.result, DEPENDENCY_RESULT_LIMIT, d.id)
            ));
        }
    }
    let mut memory_ids = Vec::new();
    if !input.memories.is_empty() {
        line("");
        line(
            "Memories agentbus retrieved for this job (curated; cite their ids when they matter):",
        );
        let mut used = 0;
        for r in &input.memories {
            let m = &r.memory;
            let body: String = one_line(&m.body).chars().take(MEMORY_BODY_LIMIT).collect();
            let entry = format!(
                "  - [{} {}/{} {}] {} (memory {}, confidence {}): {}",
                r.bucket,
                m.kind,
                m.scope,
                one_line(&m.subject_key),
                one_line(&m.title),
                m.id,
                m.confidence_score,
                body
            );
            if used + entry.len() > MEMORY_SECTION_LIMIT {
                break;
            }
            used += entry.len();
            memory_ids.push(m.id);
            line(&entry);
        }
    }
    line("");
    line("Close the job with exactly one of these (replying in chat does not close it):");
    let id = job.id;
    line(&format!(
        "  done:     agentbus complete-job {id} --lease-token {token} --summary '...' [--result '{{...}}']"
    ));
    if input.occurrence.is_some() {
        line(&format!(
            "  nothing:  agentbus complete-job {id} --lease-token {token} --no-work --summary '...'  (ran and found nothing)"
        ));
    }
    line(&format!(
        "  blocked:  agentbus block-job {id} --lease-token {token} --blocked-reason '...'"
    ));
    line(&format!(
        "  failed:   agentbus fail-job {id} --lease-token {token} --last-error '...' [--retry-seconds N]"
    ));
    line(&format!(
        "  longer:   agentbus renew-job-lease {id} --lease-token {token} --lease-seconds 900"
    ));
    line(&format!(
        "Follow-up work: agentbus enqueue-job --parent-job-id {id} --target-agent AGENT --subject '...' (the flow is inherited)"
    ));
    line(&format!(
        "Facts: agentbus emit-event --source-job-id {id} --topic TOPIC --payload '{{...}}'"
    ));
    line("A job that is not closed before its lease ends is retried; exit code 4 from a close means another attempt owns the job now: stop.");

    let hash = crate::sha::sha256_hex(out.as_bytes());
    Prompt {
        text: out,
        hash,
        version: PROMPT_VERSION,
        memory_ids,
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Keeps a value on one line, so it cannot forge a marker line.
fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

fn capped_json(value: &Value, limit: usize, job_id: Uuid) -> String {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "{}".to_string());
    if text.len() <= limit {
        return text;
    }
    let mut cut = limit;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(
        "{}\n... (cut at {limit} bytes of {}; read it all with `agentbus show-job {job_id}`)",
        &text[..cut],
        text.len()
    )
}
