//! Everything one agent (or operator) did in a window, in time order: the jobs it
//! received and how each moved, the jobs it enqueued, the events it emitted, its
//! standing-order runs, and what it did to other agents' jobs (approvals, cancellations,
//! retries, ...).

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::error::Result;
use crate::ledger::validate::check_required_text;

/// At most this many entries (the oldest are dropped first; `truncated` says so).
pub const MAX_ENTRIES: i64 = 2000;

/// What kind of thing happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A job for the agent was created.
    Received,
    /// One of the agent's jobs changed status.
    Transition,
    /// The agent enqueued a job for someone.
    Enqueued,
    /// The agent emitted an event.
    Emitted,
    /// A standing-order run of the agent started.
    StandingOrderStarted,
    /// A standing-order run of the agent ended.
    StandingOrderFinished,
    /// The agent (or operator) changed another agent's job.
    Acted,
}

/// One line of the activity.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// When.
    pub at: DateTime<Utc>,
    /// What kind.
    pub kind: Kind,
    /// The job involved.
    pub job_id: Option<Uuid>,
    /// The other agent involved (target of an enqueue, owner of a job acted on).
    pub other_agent: Option<String>,
    /// A status, topic or order name.
    pub what: String,
    /// Subject, reason, summary.
    pub detail: Option<String>,
    /// Who made the change (transitions).
    pub actor: Option<String>,
}

/// An agent's activity.
#[derive(Debug, Clone, Serialize)]
pub struct Activity {
    /// Namespace.
    pub namespace: String,
    /// The agent (or actor, e.g. `operator:alice`).
    pub agent: String,
    /// Window start.
    pub since: DateTime<Utc>,
    /// Window end (the database's now).
    pub until: DateTime<Utc>,
    /// Entries, oldest first.
    pub entries: Vec<Entry>,
    /// True when [`MAX_ENTRIES`] cut older entries.
    pub truncated: bool,
}

/// The activity of `agent` in `namespace` since `since`.
pub fn activity(
    client: &mut impl postgres::GenericClient,
    namespace: &str,
    agent: &str,
    since: DateTime<Utc>,
) -> Result<Activity> {
    check_required_text("`agent`", agent)?;
    let until: DateTime<Utc> = crate::db::now(client)?;
    let limit = MAX_ENTRIES + 1;
    let rows = client.query(
        "select * from (
           select created_at as at, 'received' as kind, id as job_id, source_agent as other,
                  job_type as what, subject as detail, null::text as actor
             from jobs where namespace = $1 and target_agent = $2 and created_at >= $3
           union all
           select h.created_at, 'transition', h.job_id, null,
                  coalesce(h.from_status::text || ' -> ', '') || h.to_status::text,
                  h.reason, h.actor
             from job_history h join jobs j on j.id = h.job_id
            where j.namespace = $1 and j.target_agent = $2 and h.created_at >= $3
              and h.from_status is not null
           union all
           select created_at, 'enqueued', id, target_agent, job_type, subject, null
             from jobs where namespace = $1 and source_agent = $2 and target_agent <> $2
              and created_at >= $3
           union all
           select created_at, 'emitted', source_job_id, null, topic, payload::text, null
             from events where namespace = $1 and source_agent = $2 and created_at >= $3
           union all
           select started_at, 'standing_order_started', job_id, null, order_name,
                  'for ' || to_char(scheduled_for at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS\"Z\"'), null
             from standing_order_runs
            where namespace = $1 and agent_id = $2 and started_at >= $3 and status <> 'missed'
           union all
           select coalesce(finished_at, updated_at), 'standing_order_finished', job_id, null,
                  order_name || ': ' || status::text, summary, null
             from standing_order_runs
            where namespace = $1 and agent_id = $2 and status <> 'started'
              and coalesce(finished_at, updated_at) >= $3
           union all
           select h.created_at, 'acted', h.job_id, j.target_agent,
                  coalesce(h.from_status::text || ' -> ', '') || h.to_status::text, h.reason, h.actor
             from job_history h join jobs j on j.id = h.job_id
            where j.namespace = $1 and h.actor = $2 and j.target_agent <> $2
              and h.from_status is not null and h.created_at >= $3
         ) a
         order by at desc, kind
         limit $4",
        &[&namespace, &agent, &since, &limit],
    )?;
    let truncated = rows.len() as i64 > MAX_ENTRIES;
    let mut entries = Vec::with_capacity(rows.len());
    for r in rows.iter().take(MAX_ENTRIES as usize) {
        let kind = match r.try_get::<_, &str>(1)? {
            "received" => Kind::Received,
            "transition" => Kind::Transition,
            "enqueued" => Kind::Enqueued,
            "emitted" => Kind::Emitted,
            "standing_order_started" => Kind::StandingOrderStarted,
            "standing_order_finished" => Kind::StandingOrderFinished,
            _ => Kind::Acted,
        };
        entries.push(Entry {
            at: r.try_get(0)?,
            kind,
            job_id: r.try_get(2)?,
            other_agent: r.try_get(3)?,
            what: r.try_get(4)?,
            detail: r.try_get(5)?,
            actor: r.try_get(6)?,
        });
    }
    entries.reverse();
    Ok(Activity {
        namespace: namespace.to_string(),
        agent: agent.to_string(),
        since,
        until,
        entries,
        truncated,
    })
}
