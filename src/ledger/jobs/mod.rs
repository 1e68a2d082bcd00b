//! Jobs: enqueue, claim, the agent's closing calls, lease renewal and recovery, reads.
//!
//! # States
//!
//! ```text
//! waiting ──(all dependencies succeeded)──> queued ──claim──> leased ──mark-running──> running
//! awaiting_approval ──(operator approves; command not built yet)──> queued | waiting
//! leased | running ──complete──> succeeded
//! leased | running ──block──> blocked            (reason required)
//! leased | running ──fail --retry-seconds N──> queued (after N s)   or dead when attempts are used up
//! leased | running ──fail──> dead
//! leased | running ──lease expired──> queued (backoff) | dead      (requeue_expired_jobs)
//! waiting ──(a dependency ended dead or cancelled)──> blocked
//! ```
//!
//! `succeeded`, `dead` and `cancelled` are terminal (no command cancels a job yet; the
//! operator commands approve/cancel/retry belong to the console). Every transition is guarded in SQL
//! (`... where status in (...)`) after the row is locked, and recorded in `job_history` by
//! trigger. A call that is not legal from the job's current state is a conflict (exit 4)
//! and writes nothing.
//!
//! # Fencing
//!
//! Each claim issues a fresh `lease_token`. The closing calls accept the token (and the
//! attempt number); when given and not current, the call is refused as a conflict, the job
//! is left untouched, and the stale call is appended to the presenting attempt's
//! `stale_calls`. Repeating a successful close with the same token (for example after a
//! timeout hid the first answer) returns the job unchanged instead of failing.
mod blocked;
mod close;
mod complete;
mod enqueue;
mod lease;
mod read;
mod wake;

pub use blocked::*;
pub use close::*;
pub use complete::*;
pub use enqueue::*;
pub use lease::*;
pub use read::*;
pub use wake::*;

use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// Lifecycle state of a job (the `job_status` enum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Claimable once `run_after` has passed.
    Queued,
    /// Claimed by a supervisor; the agent is not yet running.
    Leased,
    /// The agent is working on it.
    Running,
    /// The agent cannot proceed; `blocked_reason` says why.
    Blocked,
    /// Done.
    Succeeded,
    /// Kept for compatibility; jobs do not rest in this state (a failed attempt requeues or kills).
    Failed,
    /// Out of attempts, or failed without a retry.
    Dead,
    /// Dependencies have not all succeeded.
    Waiting,
    /// Held for an operator's approval.
    AwaitingApproval,
    /// Cancelled by an operator.
    Cancelled,
}

impl JobStatus {
    /// Every state, in lifecycle order.
    pub const ALL: [JobStatus; 10] = [
        JobStatus::Waiting,
        JobStatus::AwaitingApproval,
        JobStatus::Queued,
        JobStatus::Leased,
        JobStatus::Running,
        JobStatus::Blocked,
        JobStatus::Failed,
        JobStatus::Succeeded,
        JobStatus::Dead,
        JobStatus::Cancelled,
    ];

    /// The database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Leased => "leased",
            JobStatus::Running => "running",
            JobStatus::Blocked => "blocked",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Dead => "dead",
            JobStatus::Waiting => "waiting",
            JobStatus::AwaitingApproval => "awaiting_approval",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// Leased or running: held by a worker under a lease (SQL: `job_in_flight`).
    pub fn is_in_flight(self) -> bool {
        matches!(self, JobStatus::Leased | JobStatus::Running)
    }

    /// Whether nothing but an operator's retry moves the job on.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Dead | JobStatus::Cancelled
        )
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for JobStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        JobStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = JobStatus::ALL.iter().map(|s| s.as_str()).collect();
                Error::usage(format!(
                    "unknown job status {s:?} (one of: {})",
                    names.join(", ")
                ))
            })
    }
}

/// State of one attempt (the `attempt_status` enum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptStatus {
    /// Claimed, agent not yet running.
    Leased,
    /// Agent running.
    Running,
    /// Closed with complete-job.
    Succeeded,
    /// Closed with block-job.
    Blocked,
    /// Closed with fail-job, or failed by the supervisor.
    Failed,
    /// The lease ran out before the job was closed.
    TimedOut,
    /// Cancelled, or released by a shutting-down supervisor before the agent was woken.
    Cancelled,
    /// The supervisor holding it went away before waking the agent; its restart released
    /// the job.
    Lost,
}

impl AttemptStatus {
    /// The database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptStatus::Leased => "leased",
            AttemptStatus::Running => "running",
            AttemptStatus::Succeeded => "succeeded",
            AttemptStatus::Blocked => "blocked",
            AttemptStatus::Failed => "failed",
            AttemptStatus::TimedOut => "timed_out",
            AttemptStatus::Cancelled => "cancelled",
            AttemptStatus::Lost => "lost",
        }
    }
}

/// A row of `jobs`. Field names are the column names.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: Uuid,
    pub namespace: String,
    pub parent_job_id: Option<Uuid>,
    pub flow_key: Option<String>,
    pub correlation_key: Option<String>,
    pub source_agent: Option<String>,
    pub target_agent: String,
    pub job_type: String,
    pub subject: String,
    pub priority: i32,
    pub dedupe_key: Option<String>,
    pub payload: Value,
    pub state: Value,
    pub result: Value,
    pub summary: Option<String>,
    pub status: JobStatus,
    pub run_after: DateTime<Utc>,
    pub lease_owner: Option<String>,
    pub leased_until: Option<DateTime<Utc>>,
    pub lease_token: Option<Uuid>,
    pub attempt_count: i32,
    pub max_attempts: i32,
    /// Attempts whose wake-up never reached the agent; they do not count toward
    /// `max_attempts`.
    pub unreached_attempts: i32,
    pub blocked_reason: Option<String>,
    pub last_error: Option<String>,
    pub requires_approval: bool,
    /// The fleet's approval gate that held this job (`tier T1`, `gate stage-5`), if any.
    #[serde(default)]
    pub approval_gate: Option<String>,
    /// Approvals from distinct operators needed to release it (the two-person rule).
    #[serde(default = "one_approval")]
    pub approvals_required: i32,
    pub openclaw_task_ref: Option<String>,
    pub openclaw_session_key: Option<String>,
    pub openclaw_meta: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// The event a reaction made this job for (`[[reactions]]`), if any.
    #[serde(default)]
    pub origin_event_id: Option<i64>,
    /// How many reactions deep this job is (0: not made by a reaction).
    #[serde(default)]
    pub reaction_depth: i32,
    /// The job it waits for (`block-job --blocked-on`): when that one succeeds, this one
    /// is queued again.
    #[serde(default)]
    pub blocked_on_job_id: Option<Uuid>,
}

/// A row of `job_attempts`.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub id: i64,
    pub job_id: Uuid,
    pub attempt_no: i32,
    pub dispatcher_id: Option<String>,
    pub status: AttemptStatus,
    pub summary: Option<String>,
    pub error: Option<String>,
    pub openclaw_task_ref: Option<String>,
    pub openclaw_session_key: Option<String>,
    pub response: Value,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub lease_token: Option<Uuid>,
    pub stale_calls: Value,
    pub wake_mode: Option<String>,
    pub woken_at: Option<DateTime<Utc>>,
    pub prompt_hash: Option<String>,
    pub prompt_version: Option<i32>,
    pub hook_status: Option<i32>,
    pub run_id: Option<String>,
    pub exit_code: Option<i32>,
    pub exit_signal: Option<i32>,
    pub stderr_tail: Option<String>,
    /// Memories retrieved into this attempt's prompt.
    #[serde(default)]
    pub memory_ids: Vec<Uuid>,
}

/// What a supervisor learned about an attempt (columns of `job_attempts`); `None` keeps
/// what is stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AttemptFacts {
    /// HTTP status the wake hook answered.
    pub hook_status: Option<i32>,
    /// The hook's runId.
    pub run_id: Option<String>,
    /// Exit code of an exec child.
    pub exit_code: Option<i32>,
    /// Signal that ended an exec child.
    pub exit_signal: Option<i32>,
    /// Last lines of the child's stderr.
    pub stderr_tail: Option<String>,
    /// How the agent was to be woken, for a wake-up that failed before it was admitted (an
    /// admitted hook run's record is written with its admission, a command's when it is
    /// marked running).
    pub wake: Option<WakeRecord>,
}

/// The retry delay after attempt `attempt` failed: 10 s doubling per attempt, capped at
/// one hour, with +-20 % jitter (the same curve as `requeue_expired_jobs`).
pub fn retry_backoff_seconds(attempt: i32) -> i64 {
    let exponent = u32::try_from(attempt.saturating_sub(1).clamp(0, 20)).unwrap_or(0);
    let base = 10_i64.saturating_mul(1_i64 << exponent).min(3600);
    // Jitter from a random UUID: no extra dependency for 16 random bits.
    let bytes = Uuid::new_v4();
    let r = u16::from_le_bytes([bytes.as_bytes()[0], bytes.as_bytes()[1]]);
    let factor = 0.8 + 0.4 * f64::from(r) / f64::from(u16::MAX);
    ((base as f64) * factor).round() as i64
}

/// A row of `job_history`: one status change.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub id: i64,
    pub job_id: Uuid,
    pub namespace: String,
    pub from_status: Option<JobStatus>,
    pub to_status: JobStatus,
    pub attempt_no: i32,
    pub actor: String,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

fn one_approval() -> i32 {
    1
}
