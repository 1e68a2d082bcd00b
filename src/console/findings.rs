//! `agentbus audit`: what is wrong with the ledger right now, as findings with stable codes,
//! the ids involved and the command that resolves each.
//!
//! Each finding names one thing (a job, an attempt, a run, an agent's backlog, a
//! supervisor) and has a key that stays the same while that thing stays wrong, so
//! `--record` writes it once as an `audit.finding` event however often the audit runs.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::Result;

/// Stable finding codes.
pub const CODES: &[&str] = &[
    "stale_queued",
    "stale_running",
    "lease_expired",
    "closed_loop_missing",
    "retry_storm",
    "dead_growth",
    "standing_order_missed",
    "supervisor_stale",
    "blocked_too_long",
    "opportunity_stale_new",
    "opportunity_duplicate_title",
    "low_confidence_repeat",
    "budget_rejected",
    "guardrail_refused",
    "restore_drill_overdue",
    "vacuum_horizon_pinned",
];

/// The topic recorded findings are emitted on.
pub const TOPIC: &str = "audit.finding";

/// At most this many findings of one code are listed (the count says how many there are).
pub(super) const PER_CODE_LIMIT: i64 = 50;

/// When things count as wrong.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A claimable job waiting longer than this.
    pub stale_queued: Duration,
    /// A job leased or running longer than this (lease renewed all along).
    pub stale_running: Duration,
    /// A job blocked longer than this.
    pub blocked_too_long: Duration,
    /// A lease this long past its end and still not recovered.
    pub lease_grace: Duration,
    /// A supervisor heartbeat older than this.
    pub supervisor_stale: Duration,
    /// Failed or timed-out attempts of one agent in the last hour.
    pub retry_storm: i64,
    /// An opportunity left `new` (untriaged) longer than this.
    pub stale_opportunity: Duration,
    /// This many low-confidence (1 or 2) opportunities from one agent in the window.
    pub low_confidence_repeat: i64,
    /// A transaction (or prepared transaction) holding back vacuum longer than this.
    pub long_transaction: Duration,
    /// Window for events that happened (dead jobs, missed runs, unclosed runs).
    pub since: DateTime<Utc>,
}

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Stable code, one of [`CODES`].
    pub code: &'static str,
    /// Identity while the problem lasts (the `dedupe_key` of its event).
    pub key: String,
    /// The agent involved, if one.
    pub agent: Option<String>,
    /// The ids involved (jobs, runs, supervisors).
    pub ids: Vec<String>,
    /// What is wrong, one line.
    pub detail: String,
    /// A command that resolves or explains it.
    pub suggestion: String,
}

/// The audit's result.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Namespace.
    pub namespace: String,
    /// The database clock.
    pub checked_at: DateTime<Utc>,
    /// Findings, by code then age.
    pub findings: Vec<Finding>,
    /// Codes with more findings than listed, and how many in all.
    pub more: Vec<(String, i64)>,
    /// Findings written as events by this run (`--record`).
    pub recorded: usize,
}

pub(super) fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

pub(super) fn age(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as i64;
    if s < 120 {
        format!("{s}s")
    } else if s < 7200 {
        format!("{}m", s / 60)
    } else if s < 172_800 {
        format!("{}h", s / 3600)
    } else {
        format!("{}d", s / 86_400)
    }
}

/// Audits `namespace`; with `record`, writes each finding not yet recorded as an event.
pub fn audit(
    tx: &mut postgres::Transaction<'_>,
    namespace: &str,
    limits: &Limits,
    record: bool,
    actor: &str,
) -> Result<Report> {
    let checked_at: DateTime<Utc> = crate::db::now(tx)?;
    let mut findings = Vec::new();
    let mut more = Vec::new();
    let ns = &namespace;
    let cap = PER_CODE_LIMIT;

    // stale_queued: per agent, keyed by its oldest stale job.
    let rows = tx.query(
        "select j.target_agent, count(*) over (partition by j.target_agent),
                first_value(j.id::text) over w,
                extract(epoch from now() - first_value(j.run_after) over w)::float8,
                coalesce(a.paused, false), array_agg(j.id::text) over (partition by j.target_agent),
                row_number() over w
           from jobs j left join agents a on a.namespace = j.namespace and a.agent_id = j.target_agent
          where j.namespace = $1 and j.status = 'queued'
            and j.run_after <= now() - make_interval(secs => $2)
         window w as (partition by j.target_agent order by j.run_after, j.id)",
        &[ns, &secs(limits.stale_queued)],
    )?;
    for r in rows {
        if r.try_get::<_, i64>(6)? != 1 {
            continue;
        }
        let agent: String = r.try_get(0)?;
        let count: i64 = r.try_get(1)?;
        let oldest: String = r.try_get(2)?;
        let waited: f64 = r.try_get(3)?;
        let paused: bool = r.try_get(4)?;
        let mut ids: Vec<String> = r.try_get(5)?;
        ids.truncate(20);
        let suggestion = if paused {
            format!(
                "agentbus resume-agent {agent}  (it is paused; or drain-agent {agent} --to OTHER)"
            )
        } else {
            format!("agentbus status  (is a supervisor running? is {agent} in wake back-off?)")
        };
        findings.push(Finding {
            code: "stale_queued",
            key: format!("stale_queued:{agent}:{oldest}"),
            agent: Some(agent.clone()),
            ids,
            detail: format!(
                "{count} job(s) for {agent} claimable but not claimed; the oldest waited {}",
                age(waited)
            ),
            suggestion,
        });
    }

    // stale_running: leased or running for long, lease still alive.
    let rows = tx.query(
        "select j.id::text, j.target_agent, j.attempt_count,
                extract(epoch from now() - coalesce(a.started_at, j.updated_at))::float8,
                count(*) over ()
           from jobs j
           left join job_attempts a on a.job_id = j.id and a.attempt_no = j.attempt_count
          where j.namespace = $1 and job_in_flight(j.status)
            and j.leased_until >= now()
            and coalesce(a.started_at, j.updated_at) <= now() - make_interval(secs => $2)
          order by 4 desc limit $3",
        &[ns, &secs(limits.stale_running), &cap],
    )?;
    push_per_job(
        &mut findings,
        &mut more,
        rows,
        "stale_running",
        |id, agent, attempt, age_s, _| {
            (
                format!("stale_running:{id}:{attempt}"),
                format!(
                    "attempt {attempt} of {agent}'s job has run for {}",
                    age(age_s)
                ),
                format!("agentbus trace {id}  (then cancel-job {id} --reason ... if it is stuck)"),
            )
        },
    )?;

    // lease_expired: nobody reaped it.
    let rows = tx.query(
        "select j.id::text, j.target_agent, j.attempt_count,
                extract(epoch from now() - j.leased_until)::float8, count(*) over ()
           from jobs j
          where j.namespace = $1 and job_in_flight(j.status)
            and j.leased_until < now() - make_interval(secs => $2)
          order by j.leased_until limit $3",
        &[ns, &secs(limits.lease_grace), &cap],
    )?;
    push_per_job(
        &mut findings,
        &mut more,
        rows,
        "lease_expired",
        |id, agent, attempt, age_s, _| {
            (
                format!("lease_expired:{id}:{attempt}"),
                format!(
                "{agent}'s job lease ended {} ago and was not recovered (no supervisor reaping?)",
                age(age_s)
            ),
                "agentbus requeue-expired  (and check `agentbus status` for supervisors)"
                    .to_string(),
            )
        },
    )?;

    // closed_loop_missing: the agent was woken but never closed its job.
    let rows = tx.query(
        "select a.job_id::text, j.target_agent, a.attempt_no,
                extract(epoch from now() - a.finished_at)::float8, count(*) over ()
           from job_attempts a join jobs j on j.id = a.job_id
          where j.namespace = $1 and a.woken_at is not null and a.finished_at >= $2
            and (a.status = 'timed_out'
                 or (a.status = 'failed' and a.error like '%without closing the loop%'))
          order by a.finished_at desc limit $3",
        &[ns, &limits.since, &cap],
    )?;
    push_per_job(
        &mut findings,
        &mut more,
        rows,
        "closed_loop_missing",
        |id, agent, attempt, age_s, _| {
            (
            format!("closed_loop_missing:{id}:{attempt}"),
            format!(
                "{agent} was woken for attempt {attempt} but never ran complete-job, block-job or fail-job ({} ago)",
                age(age_s)
            ),
            format!("agentbus trace {id}  (and check the closing rule in {agent}'s AGENTS.md)"),
        )
        },
    )?;

    // retry_storm: many failed attempts of one agent in the last hour.
    let rows = tx.query(
        "select j.target_agent, count(*), array_agg(distinct a.job_id::text),
                to_char(date_trunc('hour', now() at time zone 'UTC'), 'YYYY-MM-DD\"T\"HH24')
           from job_attempts a join jobs j on j.id = a.job_id
          where j.namespace = $1 and a.status in ('failed', 'timed_out', 'lost')
            and a.finished_at >= now() - interval '1 hour'
          group by j.target_agent having count(*) >= $2
          order by 2 desc",
        &[ns, &limits.retry_storm],
    )?;
    for r in rows {
        let agent: String = r.try_get(0)?;
        let n: i64 = r.try_get(1)?;
        let mut ids: Vec<String> = r.try_get(2)?;
        ids.truncate(20);
        let hour: String = r.try_get(3)?;
        findings.push(Finding {
            code: "retry_storm",
            key: format!("retry_storm:{agent}:{hour}"),
            agent: Some(agent.clone()),
            ids,
            detail: format!("{n} failed or timed-out attempts of {agent} in the last hour"),
            suggestion: format!(
                "agentbus pause-agent {agent} --reason 'retry storm'  (then agentbus activity --agent {agent} --since 1h)"
            ),
        });
    }

    // dead_growth: each job that went dead in the window.
    let rows = tx.query(
        "select j.id::text, j.target_agent, j.attempt_count,
                extract(epoch from now() - coalesce(j.completed_at, j.updated_at))::float8, count(*) over ()
           from jobs j
          where j.namespace = $1 and j.status = 'dead'
            and coalesce(j.completed_at, j.updated_at) >= $2
          order by coalesce(j.completed_at, j.updated_at) desc limit $3",
        &[ns, &limits.since, &cap],
    )?;
    push_per_job(
        &mut findings,
        &mut more,
        rows,
        "dead_growth",
        |id, agent, attempt, age_s, _| {
            (
                format!("dead_growth:{id}"),
                format!(
                    "{agent}'s job went dead after {attempt} attempt(s), {} ago",
                    age(age_s)
                ),
                format!(
                    "agentbus trace {id}  (then agentbus retry-job {id} once the cause is fixed)"
                ),
            )
        },
    )?;

    // standing_order_missed: each missed run in the window.
    let rows = tx.query(
        "select id::text, agent_id, order_name, scheduled_for, count(*) over ()
           from standing_order_runs
          where namespace = $1 and status = 'missed' and scheduled_for >= $2
          order by scheduled_for desc limit $3",
        &[ns, &limits.since, &cap],
    )?;
    let mut total = 0;
    for r in &rows {
        total = r.try_get(4)?;
        let id: String = r.try_get(0)?;
        let agent: String = r.try_get(1)?;
        let order: String = r.try_get(2)?;
        let at: DateTime<Utc> = r.try_get(3)?;
        findings.push(Finding {
            code: "standing_order_missed",
            key: format!("standing_order_missed:{id}"),
            agent: Some(agent.clone()),
            ids: vec![id],
            detail: format!(
                "{agent}/{order} did not run for {}",
                at.format("%Y-%m-%d %H:%M:%SZ")
            ),
            suggestion: format!("agentbus audit standing-orders --agent {agent} --since 7d"),
        });
    }
    if total > cap {
        more.push(("standing_order_missed".into(), total));
    }

    // supervisor_stale: heartbeats gone quiet (a clean exit removes its row).
    for r in tx.query(
        "select dispatcher_id, host, pid, extract(epoch from now() - last_seen)::float8,
                to_char(started_at at time zone 'UTC', 'YYYYMMDDHH24MISS')
           from dispatcher_heartbeats
          where namespace = $1 and last_seen < now() - make_interval(secs => $2)
          order by last_seen",
        &[ns, &secs(limits.supervisor_stale)],
    )? {
        let id: String = r.try_get(0)?;
        let host: Option<String> = r.try_get(1)?;
        let pid: Option<i32> = r.try_get(2)?;
        let quiet: f64 = r.try_get(3)?;
        let started: String = r.try_get(4)?;
        findings.push(Finding {
            code: "supervisor_stale",
            key: format!("supervisor_stale:{id}:{started}"),
            agent: None,
            ids: vec![id.clone()],
            detail: format!(
                "supervisor {id} (host {}, pid {}) silent for {}",
                host.as_deref().unwrap_or("?"),
                pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into()),
                age(quiet)
            ),
            suggestion: "restart it (systemctl restart agentbus-supervisor); its leases expire and are requeued by any running supervisor"
                .to_string(),
        });
    }

    // blocked_too_long.
    let rows = tx.query(
        "select j.id::text, j.target_agent, j.attempt_count,
                extract(epoch from now() - j.updated_at)::float8, count(*) over (), j.blocked_reason
           from jobs j
          where j.namespace = $1 and j.status = 'blocked'
            and j.updated_at <= now() - make_interval(secs => $2)
          order by j.updated_at limit $3",
        &[ns, &secs(limits.blocked_too_long), &cap],
    )?;
    push_per_job(
        &mut findings,
        &mut more,
        rows,
        "blocked_too_long",
        |id, agent, _, age_s, why| {
            (
            format!("blocked_too_long:{id}"),
            format!("{agent}'s job blocked for {}: {}", age(age_s), why.unwrap_or("?")),
            format!("agentbus unblock-job {id} --note 'what changed'  (or cancel-job {id} --reason ...)"),
        )
        },
    )?;

    super::proactive_findings::findings(tx, namespace, limits, &mut findings)?;
    super::drills::findings(tx, namespace, &mut findings)?;
    super::horizon::findings(tx, limits.long_transaction, &mut findings)?;

    let mut recorded = 0;
    if record && !findings.is_empty() {
        crate::db::set_actor(tx, actor, Some("audit --record"))?;
        for f in &findings {
            let payload = serde_json::to_value(f).map_err(|e| {
                crate::error::Error::failure(format!("cannot encode a finding: {e}"))
            })?;
            let emitted = crate::ledger::events::emit(
                tx,
                &crate::ledger::events::EmitParams {
                    namespace: namespace.to_string(),
                    topic: TOPIC.to_string(),
                    // An actor that is not a name (`--actor "Ann B"`) is no event source; `login` still says who.
                    source_agent: crate::ledger::validate::is_name(actor)
                        .then(|| actor.to_string()),
                    source_job_id: None,
                    dedupe_key: Some(f.key.clone()),
                    payload,
                },
            )?;
            recorded += usize::from(!emitted.deduped);
        }
    }

    Ok(Report {
        namespace: namespace.to_string(),
        checked_at,
        findings,
        more,
        recorded,
    })
}

/// Adds one finding per row of (job id, agent, attempt, age seconds, total count, and an
/// optional note).
fn push_per_job(
    findings: &mut Vec<Finding>,
    more: &mut Vec<(String, i64)>,
    rows: Vec<postgres::Row>,
    code: &'static str,
    describe: impl Fn(&str, &str, i32, f64, Option<&str>) -> (String, String, String),
) -> Result<()> {
    let mut total = 0;
    for r in &rows {
        total = r.try_get(4)?;
        let id: String = r.try_get(0)?;
        let agent: String = r.try_get(1)?;
        let attempt: i32 = r.try_get(2)?;
        let age_s: f64 = r.try_get(3)?;
        let note: Option<String> = if r.len() > 5 { r.try_get(5)? } else { None };
        let (key, detail, suggestion) = describe(&id, &agent, attempt, age_s, note.as_deref());
        findings.push(Finding {
            code,
            key,
            agent: Some(agent),
            ids: vec![id],
            detail,
            suggestion,
        });
    }
    if total > PER_CODE_LIMIT {
        more.push((code.to_string(), total));
    }
    Ok(())
}
