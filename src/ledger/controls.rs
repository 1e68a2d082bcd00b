//! What an operator does to jobs by hand: cancel, retry, unblock, reprioritize,
//! dead-letter, approve, reject, and drain an agent's queue.
//!
//! Every control is one transaction that locks the job, checks that the job is in a state
//! the control applies to (otherwise exit 4 and nothing written), writes, and leaves a
//! `job_history` row with the operator's name and reason; controls that do not change the
//! status (reprioritize, reroute) write their history row themselves, from and to the same
//! status.

use serde::Serialize;
use uuid::Uuid;

use crate::db::{decode, decode_all, set_actor};
use crate::error::{Error, Result};
use crate::ledger::jobs::{Job, JobStatus};
use crate::ledger::validate::{check_name, check_required_text};

/// A control on one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Stop the job for good (`cancelled`).
    Cancel,
    /// Queue a dead, blocked or cancelled job again.
    Retry,
    /// Queue a blocked job again, with a note.
    Unblock,
    /// Change the priority of an unfinished job.
    Reprioritize,
    /// Give up on an unfinished job (`dead`).
    DeadLetter,
    /// Let an `awaiting_approval` job run.
    Approve,
    /// Refuse an `awaiting_approval` job (`cancelled`).
    Reject,
}

use JobStatus::*;

impl Control {
    /// The command that applies it.
    pub fn command(self) -> &'static str {
        match self {
            Control::Cancel => "cancel-job",
            Control::Retry => "retry-job",
            Control::Unblock => "unblock-job",
            Control::Reprioritize => "reprioritize-job",
            Control::DeadLetter => "dead-letter-job",
            Control::Approve => "approve-job",
            Control::Reject => "reject-job",
        }
    }

    /// The states it applies to.
    pub fn applies_to(self) -> &'static [JobStatus] {
        match self {
            Control::Cancel | Control::DeadLetter | Control::Reprioritize => &[
                Queued,
                Waiting,
                AwaitingApproval,
                Blocked,
                Leased,
                Running,
                Failed,
            ],
            Control::Retry => &[Dead, Blocked, Cancelled, Failed],
            Control::Unblock => &[Blocked],
            Control::Approve | Control::Reject => &[AwaitingApproval],
        }
    }
}

/// What an operator gives a control.
#[derive(Debug, Clone, Default)]
pub struct ControlParams {
    /// Who (recorded in the history).
    pub actor: String,
    /// Why (recorded in the history; required by cancel, dead-letter, reject, unblock).
    pub reason: Option<String>,
    /// reprioritize: the new priority (1 to 1000).
    pub priority: Option<i32>,
    /// unblock: a replacement payload (an object).
    pub payload: Option<serde_json::Value>,
    /// approve: the approval comes with the request's application (`approve-request`);
    /// a plain approve refuses a request job, since nothing would be applied.
    pub applying_request: bool,
}

/// Job type of a new-agent request (`agentbus request-agent`).
pub const AGENT_REQUEST: &str = "agentbus.request_agent";
/// Job type of a configuration-change request (`agentbus request-config-change`).
pub const CONFIG_REQUEST: &str = "agentbus.request_config";

/// Whether a job is a request an operator applies with `approve-request`.
pub fn is_request(job_type: &str) -> bool {
    job_type == AGENT_REQUEST || job_type == CONFIG_REQUEST
}

/// Applies `control` to `job_id`; returns the job as it is afterwards.
pub fn apply(
    tx: &mut postgres::Transaction<'_>,
    job_id: Uuid,
    control: Control,
    p: &ControlParams,
) -> Result<Job> {
    check_required_text("`actor`", &p.actor)?;
    let reason = p.reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
    let needs_reason = matches!(
        control,
        Control::Cancel | Control::DeadLetter | Control::Reject | Control::Unblock
    );
    if needs_reason && reason.is_none() {
        let flag = if control == Control::Unblock {
            "`note`"
        } else {
            "`reason`"
        };
        return Err(Error::usage(format!(
            "{flag} is required: say why, it is kept in the job's history"
        )));
    }
    if let Some(r) = reason {
        check_required_text("`reason`", r)?;
    }
    let priority = match (control, p.priority) {
        (Control::Reprioritize, Some(pr)) if (1..=1000).contains(&pr) => Some(pr),
        (Control::Reprioritize, Some(pr)) => {
            return Err(Error::usage(format!(
                "`priority`: {pr} is out of range (1 to 1000)"
            )))
        }
        (Control::Reprioritize, None) => return Err(Error::usage("`priority` is required")),
        _ => None,
    };
    if let Some(payload) = &p.payload {
        if !payload.is_object() {
            return Err(Error::usage("`payload`: expected a JSON object"));
        }
    }

    let history_reason = match (reason, priority) {
        (_, Some(pr)) => Some(match reason {
            Some(r) => format!("{}: priority {pr}: {r}", control.command()),
            None => format!("{}: priority {pr}", control.command()),
        }),
        (Some(r), None) => Some(format!("{}: {r}", control.command())),
        (None, None) => Some(control.command().to_string()),
    };
    set_actor(tx, &p.actor, history_reason.as_deref())?;
    let row = tx
        .query_opt(
            "select to_jsonb(j.*) as row from jobs j where id = $1 for update",
            &[&job_id],
        )?
        .ok_or_else(|| Error::not_found(format!("job {job_id} not found")))?;
    let job: Job = decode(&row, "row")?;
    if !control.applies_to().contains(&job.status) {
        return Err(refusal(control, &job));
    }
    if control == Control::Approve && !p.applying_request && is_request(&job.job_type) {
        return Err(Error::conflict(format!(
            "job {} is a request ({}): approving it alone would apply nothing",
            job.id, job.job_type
        ))
        .with_hint("agentbus approve-request JOB --fleet DIR applies it, validates and syncs the fleet; reject-job refuses it"));
    }
    if control == Control::Approve && job.approvals_required > 1 {
        if let Some(held) = approve_in_part(tx, &job, &p.actor, reason)? {
            return Ok(held);
        }
    }

    let updated: Job = match control {
        Control::Cancel | Control::Reject | Control::DeadLetter => {
            let to = if control == Control::DeadLetter {
                "dead"
            } else {
                "cancelled"
            };
            let row = tx.query_one(
                "update jobs
                    set status = $2::text::job_status,
                        last_error = case when $2 = 'dead' then $3 else last_error end,
                        lease_owner = null, leased_until = null, lease_token = null,
                        completed_at = now()
                  where id = $1
                  returning to_jsonb(jobs.*) as row",
                &[&job.id, &to, &reason],
            )?;
            close_open_attempt(tx, &job, reason)?;
            decode(&row, "row")?
        }
        Control::Retry | Control::Unblock | Control::Approve => {
            // Back to the queue, or to waiting when a dependency has not succeeded yet.
            let row = tx.query_one(
                "update jobs
                    set status = case when exists (
                                   select 1 from job_dependencies d join jobs dep on dep.id = d.depends_on_job_id
                                    where d.job_id = $1 and dep.status <> 'succeeded')
                                 then 'waiting'::job_status else 'queued'::job_status end,
                        blocked_reason = null,
                        run_after = now(),
                        completed_at = null,
                        lease_owner = null, leased_until = null, lease_token = null,
                        max_attempts = case when $2 then greatest(max_attempts, attempt_count + 1)
                                            else max_attempts end,
                        payload = coalesce($3, payload)
                  where id = $1
                  returning to_jsonb(jobs.*) as row",
                &[&job.id, &(control == Control::Retry), &p.payload],
            )
            .map_err(|e| dedupe_conflict(e, &job))?;
            decode(&row, "row")?
        }
        Control::Reprioritize => {
            let row = tx.query_one(
                "update jobs set priority = $2 where id = $1 returning to_jsonb(jobs.*) as row",
                &[&job.id, &priority],
            )?;
            same_status_history(tx, &job, &p.actor, history_reason.as_deref())?;
            decode(&row, "row")?
        }
    };
    Ok(updated)
}

/// Why a control does not apply, as exit 4 with what would.
fn refusal(control: Control, job: &Job) -> Error {
    let states: Vec<&str> = control.applies_to().iter().map(|s| s.as_str()).collect();
    let err = Error::conflict(format!(
        "job {} is {}; this applies only to {} jobs",
        job.id,
        job.status.as_str(),
        states.join(", ")
    ));
    let id = Some(job.id.to_string());
    match (control, job.status) {
        (Control::Retry | Control::Cancel | Control::DeadLetter, Succeeded) => {
            err.with_hint("a succeeded job stays succeeded: enqueue a new job for more work")
        }
        (Control::Unblock, Dead | Cancelled) => err.with_code("job_needs_retry", id),
        (Control::Approve | Control::Reject, _) => err.with_code("job_not_awaiting_approval", id),
        _ => err.with_code("job_state", id),
    }
}

fn dedupe_conflict(e: postgres::Error, job: &Job) -> Error {
    let unique = e.as_db_error().is_some_and(|d| d.code().code() == "23505");
    if unique {
        Error::conflict(format!(
            "job {} cannot be queued again: another active job for {} holds its dedupe key {:?}",
            job.id,
            job.target_agent,
            job.dedupe_key.as_deref().unwrap_or("")
        ))
    } else {
        e.into()
    }
}

/// Ends the attempt that was open when an operator stopped the job.
fn close_open_attempt(
    tx: &mut postgres::Transaction<'_>,
    job: &Job,
    reason: Option<&str>,
) -> Result<()> {
    tx.execute(
        "update job_attempts
            set status = 'cancelled', finished_at = now(),
                error = coalesce(error, $3)
          where job_id = $1 and attempt_no = $2 and finished_at is null",
        &[
            &job.id,
            &job.attempt_count,
            &reason.map(|r| format!("stopped by an operator: {r}")),
        ],
    )?;
    Ok(())
}

/// A history row for a change that keeps the status.
/// Records one approval of a job that needs several (the two-person rule). Returns the
/// job, unchanged, while approvals are missing; `None` once there are enough.
fn approve_in_part(
    tx: &mut postgres::Transaction<'_>,
    job: &Job,
    actor: &str,
    note: Option<&str>,
) -> Result<Option<Job>> {
    let added = tx.execute(
        "insert into job_approvals (job_id, actor, note) values ($1, $2, $3)
         on conflict do nothing",
        &[&job.id, &actor, &note],
    )?;
    let have: i32 = tx
        .query_one("select job_approval_count($1)", &[&job.id])?
        .get(0);
    if added == 0 {
        return Err(Error::conflict(format!(
            "you have already approved job {}; it needs {} approvals from distinct operators and has {have}",
            job.id, job.approvals_required
        ))
        .with_hint("ask another operator to run approve-job"));
    }
    if have >= job.approvals_required {
        return Ok(None);
    }
    let why = format!(
        "approve-job: approval {have} of {}{}",
        job.approvals_required,
        note.map(|n| format!(": {n}")).unwrap_or_default()
    );
    same_status_history(tx, job, actor, Some(&why))?;
    Ok(Some(job.clone()))
}

fn same_status_history(
    tx: &mut postgres::Transaction<'_>,
    job: &Job,
    actor: &str,
    reason: Option<&str>,
) -> Result<()> {
    tx.execute(
        "insert into job_history (job_id, namespace, from_status, to_status, attempt_no, actor, reason)
         values ($1, $2, $3::text::job_status, $3::text::job_status, $4, $5, $6)",
        &[
            &job.id,
            &job.namespace,
            &job.status.as_str(),
            &job.attempt_count,
            &actor,
            &reason,
        ],
    )?;
    Ok(())
}

/// What `drain-agent` does with the agent's queued work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drain {
    /// Cancel it.
    Cancel,
    /// Give it to another agent.
    RerouteTo(String),
}

/// What `drain-agent` did.
#[derive(Debug, Clone, Serialize)]
pub struct DrainReport {
    /// Namespace.
    pub namespace: String,
    /// The drained agent.
    pub agent: String,
    /// `cancel` or `reroute`.
    pub action: &'static str,
    /// The agent that received the work.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The jobs moved or cancelled.
    pub jobs: Vec<Uuid>,
    /// Jobs of the agent still leased or running (a drain does not touch them).
    pub in_flight: i64,
    /// Whether the agent is paused (a drain does not pause it).
    pub paused: bool,
}

/// Cancels or reroutes every queued, waiting or awaiting-approval job of `agent`, in one
/// transaction. Leased and running jobs are left to finish.
pub fn drain_agent(
    tx: &mut postgres::Transaction<'_>,
    namespace: &str,
    agent: &str,
    action: &Drain,
    actor: &str,
    reason: Option<&str>,
) -> Result<DrainReport> {
    check_name("`namespace`", namespace)?;
    check_name("AGENT", agent)?;
    check_required_text("`actor`", actor)?;
    if let Drain::RerouteTo(to) = action {
        check_required_text("`to`", to)?;
        if to == agent {
            return Err(Error::usage("`to`: the work must go to another agent"));
        }
    }
    let known = |tx: &mut postgres::Transaction<'_>, id: &str| -> Result<bool> {
        Ok(tx
            .query_opt(
                "select 1 from agents where namespace = $1 and agent_id = $2
                 union all
                 select 1 from jobs where namespace = $1 and target_agent = $2
                 limit 1",
                &[&namespace, &id],
            )?
            .is_some())
    };
    if !known(tx, agent)? {
        return Err(Error::not_found(format!(
            "agent {agent} has no settings and no jobs in namespace {namespace}"
        ))
        .with_code("agent_unknown", Some(agent.to_string())));
    }
    let to = match action {
        Drain::Cancel => None,
        Drain::RerouteTo(to) => {
            if !known(tx, to)? {
                return Err(Error::not_found(format!(
                    "`to`: agent {to} has no settings and no jobs in namespace {namespace}; a typo would strand the work"
                ))
                .with_code("agent_unknown", Some(to.to_string())));
            }
            Some(to.clone())
        }
    };
    let why = match (&to, reason) {
        (Some(to), Some(r)) => format!("drain-agent {agent}: rerouted to {to}: {r}"),
        (Some(to), None) => format!("drain-agent {agent}: rerouted to {to}"),
        (None, Some(r)) => format!("drain-agent {agent}: {r}"),
        (None, None) => format!("drain-agent {agent}"),
    };
    set_actor(tx, actor, Some(&why))?;
    let rows = tx.query(
        "select to_jsonb(j.*) as row from jobs j
          where namespace = $1 and target_agent = $2
            and status in ('queued', 'waiting', 'awaiting_approval')
          order by created_at, id
          for update",
        &[&namespace, &agent],
    )?;
    let jobs: Vec<Job> = decode_all(&rows, "row")?;
    for job in &jobs {
        match &to {
            None => {
                tx.execute(
                    "update jobs set status = 'cancelled', completed_at = now() where id = $1",
                    &[&job.id],
                )?;
            }
            Some(to) => {
                tx.execute(
                    "update jobs set target_agent = $2 where id = $1",
                    &[&job.id, to],
                )
                .map_err(|e| dedupe_conflict(e, job))?;
                same_status_history(tx, job, actor, Some(&why))?;
            }
        }
    }
    let row = tx.query_one(
        "select (select count(*) from jobs where namespace = $1 and target_agent = $2
                    and job_in_flight(status)),
                coalesce((select paused from agents where namespace = $1 and agent_id = $2), false)",
        &[&namespace, &agent],
    )?;
    let report = DrainReport {
        namespace: namespace.to_string(),
        agent: agent.to_string(),
        action: if to.is_some() { "reroute" } else { "cancel" },
        to,
        jobs: jobs.iter().map(|j| j.id).collect(),
        in_flight: row.try_get(0)?,
        paused: row.try_get(1)?,
    };
    Ok(report)
}

/// Jobs waiting for an operator's decision, oldest first.
pub fn list_approvals(
    client: &mut impl postgres::GenericClient,
    namespace: &str,
    agent: Option<&str>,
) -> Result<Vec<AwaitingApproval>> {
    let rows = client.query(
        "select to_jsonb(j.*) || jsonb_build_object('approvals', job_approval_count(j.id)) as row
           from jobs j
          where namespace = $1 and status = 'awaiting_approval'
            and ($2::text is null or target_agent = $2)
          order by created_at, id",
        &[&namespace, &agent],
    )?;
    decode_all(&rows, "row")
}

/// A job waiting for approval, with how many distinct approvers it has so far (its
/// `approvals_required` says how many it needs).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AwaitingApproval {
    /// The job.
    #[serde(flatten)]
    pub job: Job,
    /// Distinct approvers so far (the two-person rule).
    pub approvals: i32,
}
