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
use crate::ledger::jobs;
use crate::ledger::validate::{check_name, check_optional_text, check_required_text};

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
    pub scheduled_for: Slot,
    /// OpenClaw task reference.
    pub openclaw_task_ref: Option<String>,
    /// OpenClaw session key.
    pub openclaw_session_key: Option<String>,
}

/// Which occurrence a started run is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// This exact occurrence (UTC).
    At(DateTime<Utc>),
    /// The declared order's most recent occurrence at or before the database's clock: what
    /// an agent woken by OpenClaw cron is running, without it having to know the slot.
    Latest,
}

/// Records that an occurrence started; returns the existing run if it was already recorded.
pub fn start(tx: &mut postgres::Transaction<'_>, p: &StartParams) -> Result<Run> {
    check_name("`namespace`", &p.namespace)?;
    check_name("`agent_id`", &p.agent_id)?;
    check_name("`order_name`", &p.order_name)?;
    check_required_text("`trigger_source`", &p.trigger_source)?;
    check_optional_text("`cron_job_id`", p.cron_job_id.as_deref())?;
    check_optional_text("`openclaw_task_ref`", p.openclaw_task_ref.as_deref())?;
    check_optional_text("`openclaw_session_key`", p.openclaw_session_key.as_deref())?;
    let scheduled_for = match p.scheduled_for {
        Slot::At(at) => at,
        Slot::Latest => latest_slot(tx, p)?,
    };
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
            &scheduled_for,
            &p.openclaw_task_ref,
            &p.openclaw_session_key,
        ],
    )?;
    let run = decode(&row, "row")?;
    Ok(run)
}

/// The declared order's latest occurrence by the database's clock.
fn latest_slot(tx: &mut postgres::Transaction<'_>, p: &StartParams) -> Result<DateTime<Utc>> {
    let name = format!("{}/{}/{}", p.namespace, p.agent_id, p.order_name);
    let row = tx
        .query_opt(
            "select cron, timezone, removed_at is not null as removed, now() as now
               from standing_orders
              where namespace = $1 and agent_id = $2 and order_name = $3",
            &[&p.namespace, &p.agent_id, &p.order_name],
        )?
        .ok_or_else(|| {
            Error::not_found(format!("standing order {name} is not declared"))
                .with_code("standing_order_latest_undeclared", Some(name.clone()))
        })?;
    let (cron, zone, removed, now): (String, String, bool, DateTime<Utc>) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    if removed {
        return Err(Error::conflict(format!(
            "standing order {name} was removed from its fleet files"
        ))
        .with_hint(
            "remove its OpenClaw cron job too (`openclaw cron list --all`, `openclaw cron rm ID`)",
        ));
    }
    let expr = crate::ledger::schedule::parse_cron(&cron)
        .map_err(|e| Error::config(format!("standing order {name}: cron {cron:?}: {e}")))?;
    let tz = crate::ledger::schedule::parse_zone(&zone)
        .map_err(|e| Error::config(format!("standing order {name}: {e}")))?;
    crate::ledger::schedule::latest_occurrence(&expr, tz, now)
        .map(|o| o.at)
        .ok_or_else(|| {
            Error::not_found(format!(
                "standing order {name} ({cron} {zone}) has no occurrence before {now}"
            ))
        })
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
pub fn finish(tx: &mut postgres::Transaction<'_>, run_id: Uuid, p: &FinishParams) -> Result<Run> {
    if p.status == RunStatus::Started {
        return Err(Error::usage(
            "`status`: a run is finished with no_work, completed, blocked, failed, skipped or missed",
        ));
    }
    check_optional_text("`summary`", p.summary.as_deref())?;
    check_optional_text("`openclaw_task_ref`", p.openclaw_task_ref.as_deref())?;
    check_optional_text("`openclaw_session_key`", p.openclaw_session_key.as_deref())?;
    if let Some(e) = &p.evidence {
        if !e.is_object() {
            return Err(Error::usage("`evidence`: expected a JSON object"));
        }
    }
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
    Ok(run)
}

/// A row of `standing_orders`: a declared, scheduled duty (synced from fleet files).
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Declared {
    pub namespace: String,
    pub agent_id: String,
    pub order_name: String,
    pub cron: String,
    pub timezone: String,
    pub grace_seconds: i32,
    pub max_runtime_seconds: Option<i32>,
    pub message: String,
    pub session_key: Option<String>,
    pub catch_up: String,
    pub fired_by: String,
    pub enabled: bool,
    pub alert_after_no_work: Option<i32>,
    pub alert_after_failures: Option<i32>,
    pub created_at: DateTime<Utc>,
}

/// What one firing pass did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FireReport {
    /// Runs created with a job, as `agent/order@time`.
    pub fired: Vec<String>,
    /// Occurrences recorded missed (too late to fire under the order's policy).
    pub missed: Vec<String>,
    /// Orders whose cron or zone no longer parses (skipped, with the reason).
    pub broken: Vec<String>,
}

/// How far back a firing pass looks for occurrences it has not seen (a supervisor down
/// for longer records only this window as missed).
const LOOKBACK_DAYS: i64 = 7;

/// Fires every due occurrence of the enabled `supervisor` orders of `namespace`, as of
/// `now`: one `standing_order_runs` row and one `scheduled` job per occurrence, in one
/// transaction each. The run's unique key `(namespace, agent_id, order_name,
/// scheduled_for)` makes this exactly once however many supervisors call it at once.
///
/// An occurrence older than the order's grace is not fired but recorded `missed` (with a
/// `standing_order.missed` event), except that with `catch_up = "run_once"` the latest of
/// them fires once. Occurrences are looked for after the order's latest run (or its
/// creation), at most seven days back.
pub fn fire_due(
    tx: &mut postgres::Transaction<'_>,
    namespace: &str,
    now: DateTime<Utc>,
    actor: &str,
) -> Result<FireReport> {
    let rows = tx.query(
        "select to_jsonb(s.*) as row,
                (select max(r.scheduled_for) from standing_order_runs r
                 where r.namespace = s.namespace and r.agent_id = s.agent_id
                   and r.order_name = s.order_name
                   and r.trigger_source <> 'manual') as last_run
         from standing_orders s
         where s.namespace = $1 and s.enabled and s.fired_by = 'supervisor'
         order by s.agent_id, s.order_name",
        &[&namespace],
    )?;
    let mut report = FireReport::default();
    for row in rows {
        let order: Declared = decode(&row, "row")?;
        let last: Option<DateTime<Utc>> = row.try_get("last_run")?;
        let label = format!("{}/{}", order.agent_id, order.order_name);
        let (expr, tz) = match (
            crate::ledger::schedule::parse_cron(&order.cron),
            crate::ledger::schedule::parse_zone(&order.timezone),
        ) {
            (Ok(e), Ok(z)) => (e, z),
            (Err(e), _) | (_, Err(e)) => {
                report.broken.push(format!("{label}: {e}"));
                continue;
            }
        };
        let after = last
            .unwrap_or(order.created_at)
            .max(now - chrono::Duration::days(LOOKBACK_DAYS));
        let due = crate::ledger::schedule::occurrences(&expr, tz, after, now);
        let grace = chrono::Duration::seconds(i64::from(order.grace_seconds));
        let (late, on_time): (Vec<_>, Vec<_>) = due.into_iter().partition(|o| now - o.at > grace);
        let mut to_fire: Vec<_> = on_time;
        let mut to_miss = late;
        if order.catch_up == "run_once" && to_fire.is_empty() {
            if let Some(latest) = to_miss.pop() {
                to_fire.push(latest);
            }
        }
        for o in to_miss {
            if record_missed(tx, &order, o.at, actor)? {
                report.missed.push(format!("{label}@{}", o.at.to_rfc3339()));
            }
        }
        for o in to_fire {
            if fire_one(tx, &order, &o, "supervisor", actor)?.is_some() {
                report.fired.push(format!("{label}@{}", o.at.to_rfc3339()));
            }
        }
    }
    Ok(report)
}

/// One occurrence: run + job, linked; `None` when it was fired already (by another
/// supervisor, or a second manual firing within the same second).
fn fire_one(
    tx: &mut postgres::Transaction<'_>,
    order: &Declared,
    o: &crate::ledger::schedule::Occurrence,
    trigger_source: &str,
    actor: &str,
) -> Result<Option<Uuid>> {
    crate::db::set_actor(tx, actor, Some("standing order fired"))?;
    let run = tx.query_opt(
        "insert into standing_order_runs (namespace, agent_id, order_name, trigger_source,
                                          scheduled_for, status, started_at)
         values ($1, $2, $3, $5, $4, 'started', now())
         on conflict (namespace, agent_id, order_name, scheduled_for) do nothing
         returning id",
        &[
            &order.namespace,
            &order.agent_id,
            &order.order_name,
            &o.at,
            &trigger_source,
        ],
    )?;
    let Some(run) = run else {
        return Ok(None);
    };
    let run_id: Uuid = run.try_get(0)?;
    let payload = serde_json::json!({
        "standing_order": order.order_name,
        "scheduled_for": o.at,
        "local_time": o.local.to_string(),
        "timezone": order.timezone,
        "message": order.message,
        "run_id": run_id,
        "dst_note": o.dst_note,
        "max_runtime_seconds": order.max_runtime_seconds,
    });
    let mut job = jobs::EnqueueParams::new(
        order.namespace.clone(),
        order.agent_id.clone(),
        "scheduled",
        order.order_name.clone(),
        actor,
    );
    job.payload = payload;
    job.correlation_key = Some(format!(
        "standing_order:{}/{}",
        order.agent_id, order.order_name
    ));
    job.dedupe_key = Some(format!(
        "standing_order:{}:{}",
        order.order_name,
        o.at.to_rfc3339()
    ));
    job.openclaw_session_key = order.session_key.clone();
    job.reason = "standing order fired".into();
    let job_id = jobs::enqueue(tx, &job)?.job.id;
    tx.execute(
        "update standing_order_runs set job_id = $2 where id = $1",
        &[&run_id, &job_id],
    )?;
    Ok(Some(run_id))
}

/// Fires a declared order now, outside its schedule (an operator's "run it now"): a run
/// with `trigger_source = manual` for the current second and its `scheduled` job, exactly
/// as the supervisor fires an occurrence. Manual runs do not move the schedule: the next
/// occurrences fire as usual.
pub fn fire_now(
    tx: &mut postgres::Transaction<'_>,
    namespace: &str,
    agent_id: &str,
    order_name: &str,
    actor: &str,
) -> Result<Run> {
    let name = format!("{namespace}/{agent_id}/{order_name}");
    let row = tx
        .query_opt(
            "select to_jsonb(s.*) as row, date_trunc('second', now()) as now
               from standing_orders s
              where namespace = $1 and agent_id = $2 and order_name = $3 and removed_at is null",
            &[&namespace, &agent_id, &order_name],
        )?
        .ok_or_else(|| {
            Error::not_found(format!("standing order {name} is not declared"))
                .with_code("standing_order_undeclared", Some(name.clone()))
        })?;
    let order: Declared = decode(&row, "row")?;
    let now: DateTime<Utc> = row.try_get("now")?;
    let tz = crate::ledger::schedule::parse_zone(&order.timezone)
        .map_err(|e| Error::config(format!("standing order {name}: {e}")))?;
    let occurrence = crate::ledger::schedule::Occurrence {
        at: now,
        local: now.with_timezone(&tz).naive_local(),
        dst_note: None,
    };
    let run_id = fire_one(tx, &order, &occurrence, "manual", actor)?.ok_or_else(|| {
        Error::conflict(format!(
            "standing order {name} was already fired for {now}; try again in a second"
        ))
    })?;
    let row = tx.query_one(
        "select to_jsonb(r.*) as row from standing_order_runs r where id = $1",
        &[&run_id],
    )?;
    decode(&row, "row")
}

/// A `missed` run and its `standing_order.missed` event, once; `true` when written now.
pub fn record_missed(
    tx: &mut postgres::Transaction<'_>,
    order: &Declared,
    at: DateTime<Utc>,
    actor: &str,
) -> Result<bool> {
    crate::db::set_actor(tx, actor, Some("standing order missed"))?;
    let run = tx.query_opt(
        "insert into standing_order_runs (namespace, agent_id, order_name, trigger_source,
                                          scheduled_for, status, summary, started_at, finished_at)
         values ($1, $2, $3, case when $5 = 'external' then 'cron' else 'supervisor' end, $4, 'missed',
                 case when $5 = 'external'
                      then 'not started: no start-standing-order within the grace'
                      else 'not fired: the occurrence was older than its grace when a supervisor saw it' end,
                 now(), now())
         on conflict (namespace, agent_id, order_name, scheduled_for) do nothing
         returning id",
        &[&order.namespace, &order.agent_id, &order.order_name, &at, &order.fired_by],
    )?;
    let Some(run) = run else {
        return Ok(false);
    };
    let run_id: Uuid = run.try_get(0)?;
    crate::ledger::events::emit(
        tx,
        &crate::ledger::events::EmitParams {
            namespace: order.namespace.clone(),
            topic: "standing_order.missed".into(),
            // An actor that is not a name (`--actor "Ann B"`) is no event source; `login` still says who.
            source_agent: crate::ledger::validate::is_name(actor).then(|| actor.to_string()),
            source_job_id: None,
            dedupe_key: Some(format!(
                "missed:{}/{}@{}",
                order.agent_id,
                order.order_name,
                at.to_rfc3339()
            )),
            payload: serde_json::json!({
                "agent_id": order.agent_id,
                "order_name": order.order_name,
                "scheduled_for": at,
                "run_id": run_id,
                "fired_by": order.fired_by,
                "reason": if order.fired_by == "external" {
                    "the agent did not record a start within the grace"
                } else {
                    "no supervisor fired it within its grace"
                },
            }),
        },
    )?;
    Ok(true)
}
