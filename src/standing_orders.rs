//! Standing-order runs: one row per occurrence of a scheduled duty, so that "ran and found
//! nothing" (`no_work`) is told apart from "did not run" (`missed`).
//!
//! `start` is idempotent per `(namespace, agent_id, order_name, scheduled_for)`: starting the
//! same occurrence twice returns the same run. `finish` moves a `started` run to its outcome
//! once; repeating the same outcome returns the run unchanged, a different one is a conflict.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::db::decode;
use crate::error::{Error, Result};
use crate::input::{check_optional_text, check_required_text};

/// Outcome of a standing-order occurrence (the `standing_order_status` enum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Started, not yet finished.
    Started,
    /// Ran and found nothing to do.
    NoWork,
    /// Ran and did its work.
    Completed,
    /// Ran and could not proceed.
    Blocked,
    /// Ran and failed.
    Failed,
    /// Deliberately not run (e.g. catch-up policy `skip`).
    Skipped,
    /// Did not run: no start within the grace period.
    Missed,
}

impl RunStatus {
    /// The statuses `finish-standing-order --status` accepts.
    pub const FINISHED: [RunStatus; 6] = [
        RunStatus::NoWork,
        RunStatus::Completed,
        RunStatus::Blocked,
        RunStatus::Failed,
        RunStatus::Skipped,
        RunStatus::Missed,
    ];

    /// The database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Started => "started",
            RunStatus::NoWork => "no_work",
            RunStatus::Completed => "completed",
            RunStatus::Blocked => "blocked",
            RunStatus::Failed => "failed",
            RunStatus::Skipped => "skipped",
            RunStatus::Missed => "missed",
        }
    }
}

impl std::str::FromStr for RunStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        [RunStatus::Started]
            .into_iter()
            .chain(RunStatus::FINISHED)
            .find(|st| st.as_str() == s)
            .ok_or_else(|| Error::usage(format!("unknown standing-order status {s:?}")))
    }
}

/// A row of `standing_order_runs`.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: Uuid,
    pub namespace: String,
    pub agent_id: String,
    pub order_name: String,
    pub trigger_source: String,
    pub cron_job_id: Option<String>,
    pub scheduled_for: DateTime<Utc>,
    pub status: RunStatus,
    pub summary: Option<String>,
    pub evidence: Value,
    pub openclaw_task_ref: Option<String>,
    pub openclaw_session_key: Option<String>,
    pub job_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// What `start-standing-order` records.
#[derive(Debug, Clone)]
pub struct StartParams {
    /// Namespace.
    pub namespace: String,
    /// The agent whose duty this is.
    pub agent_id: String,
    /// The order's name.
    pub order_name: String,
    /// What fired it (`cron`, `supervisor`, `manual`).
    pub trigger_source: String,
    /// The OpenClaw cron job id, if OpenClaw fired it.
    pub cron_job_id: Option<String>,
    /// The occurrence this run is for.
    pub scheduled_for: DateTime<Utc>,
    /// OpenClaw task reference.
    pub openclaw_task_ref: Option<String>,
    /// OpenClaw session key.
    pub openclaw_session_key: Option<String>,
}

/// Records that an occurrence started; returns the existing run if it was already recorded.
pub fn start(client: &mut postgres::Client, p: &StartParams) -> Result<Run> {
    check_required_text("--namespace", &p.namespace)?;
    check_required_text("--agent-id", &p.agent_id)?;
    check_required_text("--order-name", &p.order_name)?;
    check_required_text("--trigger-source", &p.trigger_source)?;
    check_optional_text("--cron-job-id", p.cron_job_id.as_deref())?;
    check_optional_text("--openclaw-task-ref", p.openclaw_task_ref.as_deref())?;
    check_optional_text("--openclaw-session-key", p.openclaw_session_key.as_deref())?;
    let mut tx = client.transaction()?;
    let row = tx.query_one(
        "insert into standing_order_runs (namespace, agent_id, order_name, trigger_source, cron_job_id,
                                          scheduled_for, status, openclaw_task_ref, openclaw_session_key)
         values ($1, $2, $3, $4, $5, $6, 'started', $7, $8)
         on conflict (namespace, agent_id, order_name, scheduled_for)
         do update set updated_at = now()
         returning to_jsonb(standing_order_runs.*) as row",
        &[
            &p.namespace,
            &p.agent_id,
            &p.order_name,
            &p.trigger_source,
            &p.cron_job_id,
            &p.scheduled_for,
            &p.openclaw_task_ref,
            &p.openclaw_session_key,
        ],
    )?;
    let run = decode(&row, "row")?;
    tx.commit()?;
    Ok(run)
}

/// What `finish-standing-order` records.
#[derive(Debug, Clone)]
pub struct FinishParams {
    /// The outcome (not `started`).
    pub status: RunStatus,
    /// One line: what the run found or did.
    pub summary: Option<String>,
    /// Evidence document (an object), e.g. `{"requeued": 2}`.
    pub evidence: Option<Value>,
    /// OpenClaw task reference.
    pub openclaw_task_ref: Option<String>,
    /// OpenClaw session key.
    pub openclaw_session_key: Option<String>,
}

/// Records an occurrence's outcome.
pub fn finish(client: &mut postgres::Client, run_id: Uuid, p: &FinishParams) -> Result<Run> {
    if p.status == RunStatus::Started {
        return Err(Error::usage(
            "--status: a run is finished with no_work, completed, blocked, failed, skipped or missed",
        ));
    }
    check_optional_text("--summary", p.summary.as_deref())?;
    check_optional_text("--openclaw-task-ref", p.openclaw_task_ref.as_deref())?;
    check_optional_text("--openclaw-session-key", p.openclaw_session_key.as_deref())?;
    if let Some(e) = &p.evidence {
        if !e.is_object() {
            return Err(Error::usage("--evidence: expected a JSON object"));
        }
    }
    let mut tx = client.transaction()?;
    let row = tx
        .query_opt(
            "select to_jsonb(r.*) as row from standing_order_runs r where id = $1 for update",
            &[&run_id],
        )?
        .ok_or_else(|| Error::not_found(format!("standing-order run {run_id} not found")))?;
    let run: Run = decode(&row, "row")?;
    if run.status == p.status {
        return Ok(run);
    }
    if run.status != RunStatus::Started {
        return Err(Error::conflict(format!(
            "standing-order run {run_id} already finished as {}; it cannot become {}",
            run.status.as_str(),
            p.status.as_str()
        )));
    }
    let row = tx.query_one(
        "update standing_order_runs
         set status = $2::text::standing_order_status,
             summary = coalesce($3, summary),
             evidence = coalesce($4, evidence),
             finished_at = now(),
             openclaw_task_ref = coalesce($5, openclaw_task_ref),
             openclaw_session_key = coalesce($6, openclaw_session_key)
         where id = $1 and status = 'started'
         returning to_jsonb(standing_order_runs.*) as row",
        &[
            &run_id,
            &p.status.as_str(),
            &p.summary,
            &p.evidence,
            &p.openclaw_task_ref,
            &p.openclaw_session_key,
        ],
    )?;
    let run = decode(&row, "row")?;
    tx.commit()?;
    Ok(run)
}
