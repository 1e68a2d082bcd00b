//! The missed-run audit: for every enabled standing order, the occurrences its schedule
//! expected in a window, what happened to each, and the gaps. An expected occurrence with
//! no run once its grace has passed is recorded as a `missed` run with one
//! `standing_order.missed` event (recording twice adds nothing).
//!
//! A run counts for an occurrence when its `scheduled_for` lies in `[occurrence,
//! occurrence + grace)`: OpenClaw's cron staggers top-of-hour jobs by up to 5 minutes,
//! so an agent that records the time it actually started still matches its slot.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::db::decode_all;
use crate::error::Result;
use crate::ledger::schedule::{occurrences, parse_cron, parse_zone};
use crate::ledger::standing_orders::Declared;

/// One order's account for the window. Counts are runs by status.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderAudit {
    pub agent_id: String,
    pub order_name: String,
    pub fired_by: String,
    pub cron: String,
    pub timezone: String,
    /// Occurrences the schedule named in the window (up to now).
    pub expected: usize,
    pub completed: usize,
    pub no_work: usize,
    pub blocked: usize,
    pub failed: usize,
    pub missed: usize,
    /// Started and not finished.
    pub running: usize,
    /// Runs that started after their grace.
    pub late: usize,
    /// Expected occurrences still inside their grace with no run yet.
    pub pending: usize,
    /// Occurrences with no run after the grace (recorded missed when `record`).
    pub gaps: Vec<DateTime<Utc>>,
    /// Status of the latest run.
    pub last_status: Option<String>,
    /// An order whose schedule no longer parses.
    pub error: Option<String>,
}

/// The audit of a window.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Audit {
    pub namespace: String,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub orders: Vec<OrderAudit>,
    /// Missed runs written by this audit.
    pub recorded_missed: usize,
    /// Alert events written by this audit.
    pub alerts: usize,
}

#[derive(Debug, Clone, serde::Deserialize)]
struct RunRow {
    scheduled_for: DateTime<Utc>,
    started_at: DateTime<Utc>,
    status: String,
}

/// Audits `namespace` over `[since, until]`, for one agent or all. With `record`, gaps are
/// written as `missed` runs plus events, and alert events are emitted for orders whose
/// last N runs were all `no_work` (or all failed) as configured.
pub fn audit(
    tx: &mut postgres::Transaction<'_>,
    namespace: &str,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    agent: Option<&str>,
    record: bool,
    actor: &str,
) -> Result<Audit> {
    let rows = tx.query(
        "select to_jsonb(s.*) as row from standing_orders s
         where s.namespace = $1 and s.enabled and ($2::text is null or s.agent_id = $2)
         order by s.agent_id, s.order_name",
        &[&namespace, &agent],
    )?;
    let orders: Vec<Declared> = decode_all(&rows, "row")?;
    let mut out = Audit {
        namespace: namespace.to_string(),
        since,
        until,
        orders: Vec::new(),
        recorded_missed: 0,
        alerts: 0,
    };
    for order in orders {
        let rows = tx.query(
            "select jsonb_build_object('scheduled_for', scheduled_for, 'started_at', started_at,
                                       'status', status) as row
             from standing_order_runs
             where namespace = $1 and agent_id = $2 and order_name = $3
               and scheduled_for >= $4 and scheduled_for <= $5
             order by scheduled_for",
            &[
                &namespace,
                &order.agent_id,
                &order.order_name,
                &since,
                &until,
            ],
        )?;
        let runs: Vec<RunRow> = decode_all(&rows, "row")?;
        let grace = chrono::Duration::seconds(i64::from(order.grace_seconds));
        let mut a = OrderAudit {
            agent_id: order.agent_id.clone(),
            order_name: order.order_name.clone(),
            fired_by: order.fired_by.clone(),
            cron: order.cron.clone(),
            timezone: order.timezone.clone(),
            expected: 0,
            completed: 0,
            no_work: 0,
            blocked: 0,
            failed: 0,
            missed: 0,
            running: 0,
            late: 0,
            pending: 0,
            gaps: Vec::new(),
            last_status: runs.last().map(|r| r.status.clone()),
            error: None,
        };
        for r in &runs {
            match r.status.as_str() {
                "completed" => a.completed += 1,
                "no_work" => a.no_work += 1,
                "blocked" => a.blocked += 1,
                "failed" => a.failed += 1,
                "missed" => a.missed += 1,
                "started" => a.running += 1,
                _ => {}
            }
            if r.status != "missed" && r.started_at - r.scheduled_for > grace {
                a.late += 1;
            }
        }
        let schedule =
            parse_cron(&order.cron).and_then(|c| parse_zone(&order.timezone).map(|z| (c, z)));
        let (expr, tz) = match schedule {
            Ok(s) => s,
            Err(e) => {
                a.error = Some(e);
                out.orders.push(a);
                continue;
            }
        };
        // Only what the order could have produced: occurrences after it was declared
        // (as the supervisor fires them), and from `since` on, inclusive.
        let from = if order.created_at >= since {
            order.created_at
        } else {
            since - chrono::Duration::seconds(1)
        };
        let expected = occurrences(&expr, tz, from, until);
        a.expected = expected.len();
        for o in &expected {
            let matched = runs.iter().any(|r| {
                r.scheduled_for >= o.at
                    && r.scheduled_for < o.at + grace.max(chrono::Duration::seconds(1))
            });
            if matched {
                continue;
            }
            if until - o.at <= grace {
                a.pending += 1;
                continue;
            }
            a.gaps.push(o.at);
        }
        if record {
            for at in &a.gaps {
                if crate::ledger::standing_orders::record_missed(tx, &order, *at, actor)? {
                    out.recorded_missed += 1;
                    a.missed += 1;
                }
            }
            out.alerts += alerts(tx, &order, actor)?;
        }
        out.orders.push(a);
    }
    Ok(out)
}

/// `standing_order.alert` when the last N runs were all no_work (or all failed), once per
/// streak (keyed by the latest run).
fn alerts(tx: &mut postgres::Transaction<'_>, order: &Declared, actor: &str) -> Result<usize> {
    let mut written = 0;
    for (threshold, statuses, kind) in [
        (order.alert_after_no_work, &["no_work"][..], "no_work"),
        (
            order.alert_after_failures,
            &["failed", "missed"][..],
            "failed",
        ),
    ] {
        let Some(n) = threshold else { continue };
        let rows = tx.query(
            "select id, status::text from standing_order_runs
             where namespace = $1 and agent_id = $2 and order_name = $3
               and status <> 'started'
             order by scheduled_for desc limit $4",
            &[
                &order.namespace,
                &order.agent_id,
                &order.order_name,
                &i64::from(n),
            ],
        )?;
        if rows.len() < n as usize {
            continue;
        }
        let mut all = true;
        for r in &rows {
            let s: String = r.try_get(1)?;
            all &= statuses.contains(&s.as_str());
        }
        if !all {
            continue;
        }
        let latest: uuid::Uuid = rows[0].try_get(0)?;
        let emitted = crate::ledger::events::emit(
            tx,
            &crate::ledger::events::EmitParams {
                namespace: order.namespace.clone(),
                topic: "standing_order.alert".into(),
                // An actor that is not a name (`--actor "Ann B"`) is no event source; `login` still says who.
                source_agent: crate::ledger::validate::is_name(actor).then(|| actor.to_string()),
                source_job_id: None,
                dedupe_key: Some(format!("alert:{kind}:{latest}")),
                payload: serde_json::json!({
                    "agent_id": order.agent_id,
                    "order_name": order.order_name,
                    "kind": kind,
                    "consecutive": n,
                    "latest_run_id": latest,
                }),
            },
        )?;
        written += usize::from(!emitted.deduped);
    }
    Ok(written)
}
