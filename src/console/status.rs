//! One snapshot of the ledger for `agentbus status`: jobs per status and agent, the oldest
//! waits, expired leases, retry hotspots, approvals, standing-order results, supervisors
//! and agents that cannot be woken.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::error::Result;
use crate::ledger::jobs::JobStatus;

/// A supervisor heartbeat older than this is stale (`status`; `health` has a flag).
pub const DEFAULT_STALE_SUPERVISOR_SECONDS: i64 = 90;

/// How many jobs a list in the snapshot names at most.
const LIST_LIMIT: i64 = 10;

/// Everything `agentbus status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// Namespace.
    pub namespace: String,
    /// The database's clock when it was taken.
    pub taken_at: DateTime<Utc>,
    /// Jobs per status (every status, zeros included): every unfinished job, and the
    /// finished ones (succeeded, dead, cancelled) that finished in the last 24 hours, so the
    /// snapshot costs the same on a ledger of any age.
    pub jobs: BTreeMap<String, i64>,
    /// Unfinished jobs per agent.
    pub agents: Vec<AgentQueue>,
    /// Seconds the longest-waiting claimable job has waited.
    pub oldest_queued_seconds: Option<f64>,
    /// Seconds the longest-blocked job has been blocked.
    pub oldest_blocked_seconds: Option<f64>,
    /// Leased or running jobs whose lease ran out (the supervisors' reaper is behind).
    pub expired_leases: JobList,
    /// Unfinished jobs on their third attempt or later.
    pub retry_hotspots: JobList,
    /// Jobs that went dead in the last 24 hours (all dead jobs are in `jobs`).
    pub dead_last_24h: JobList,
    /// Jobs waiting for an operator.
    pub awaiting_approval: JobList,
    /// Seconds the oldest of them has waited.
    pub oldest_approval_seconds: Option<f64>,
    /// Standing-order runs of the last 24 hours, per status (missed included).
    pub standing_orders_24h: BTreeMap<String, i64>,
    /// Supervisors with a heartbeat row.
    pub supervisors: Vec<SupervisorBeat>,
    /// Heartbeats older than this are stale.
    pub stale_after_seconds: i64,
    /// Paused agents, and agents whose wake-ups fail.
    pub wake_problems: Vec<WakeProblem>,
    /// Whether PostgreSQL enforces the guardrails here, and who is looking.
    pub guardrails: crate::ledger::roles::Guardrails,
    /// The namespace's `[blocked]` policy and where its blocked work stands, if it has one.
    pub blocked_routing: Option<BlockedRouting>,
    /// Agents with thinking windows (`[idle]`): today's windows, and whether halved.
    pub idle: Vec<IdleState>,
}

/// One agent's thinking windows today.
#[derive(Debug, Clone, Serialize)]
pub struct IdleState {
    /// The agent.
    pub agent: String,
    /// Windows opened today (the agent's local day).
    pub windows_today: i64,
    /// Windows allowed today (max_per_day, halved while nothing of its is promoted).
    pub allowed_today: i32,
    /// Thinking half as often since.
    pub halved_since: Option<DateTime<Utc>>,
}

/// Blocked work and its routing (`[blocked]` in fleet.toml).
#[derive(Debug, Clone, Serialize)]
pub struct BlockedRouting {
    /// The routing agent.
    pub route_to: String,
    /// After how long a blocked job is routed.
    pub route_after_seconds: f64,
    /// After how long it is escalated to a human, if ever.
    pub escalate_after_seconds: Option<f64>,
    /// Jobs blocked now.
    pub blocked: i64,
    /// Of those, routed to the routing agent in their current block.
    pub routed: i64,
    /// Of those, escalated to a human in their current block.
    pub escalated: i64,
}

/// One agent's unfinished work.
#[derive(Debug, Clone, Serialize)]
pub struct AgentQueue {
    /// Agent id.
    pub agent: String,
    /// Jobs per unfinished status.
    pub jobs: BTreeMap<String, i64>,
    /// Seconds its longest-waiting claimable job has waited.
    pub oldest_queued_seconds: Option<f64>,
    /// Paused in its settings.
    pub paused: bool,
}

/// A count and the first few jobs behind it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JobList {
    /// How many.
    pub count: i64,
    /// The first [`LIST_LIMIT`], most urgent first.
    pub jobs: Vec<JobBrief>,
}

/// Enough of a job to act on it.
#[derive(Debug, Clone, Serialize)]
pub struct JobBrief {
    /// Id.
    pub id: Uuid,
    /// Target agent.
    pub agent: String,
    /// Status.
    pub status: JobStatus,
    /// Subject.
    pub subject: String,
    /// Attempts used.
    pub attempt_count: i32,
    /// Why it is where it is (blocked reason, last error), if known.
    pub note: Option<String>,
    /// Seconds since the time that matters for the list (lease end, death, creation).
    pub age_seconds: f64,
}

/// One supervisor's last heartbeat.
#[derive(Debug, Clone, Serialize)]
pub struct SupervisorBeat {
    /// Its id.
    pub id: String,
    /// Host name.
    pub host: Option<String>,
    /// Process id.
    pub pid: Option<i32>,
    /// agentbus version.
    pub version: Option<String>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Seconds since its last heartbeat.
    pub seconds_since_seen: f64,
    /// Fresh (`seconds_since_seen` under the threshold).
    pub fresh: bool,
    /// Jobs it is running.
    pub in_flight: i32,
    /// Leases it holds.
    pub leases_owned: i32,
    /// Its last error.
    pub last_error: Option<String>,
}

/// An agent the supervisors cannot or will not wake.
#[derive(Debug, Clone, Serialize)]
pub struct WakeProblem {
    /// Agent id.
    pub agent: String,
    /// Paused.
    pub paused: bool,
    /// Why (when paused).
    pub paused_reason: Option<String>,
    /// Consecutive failed wake-ups.
    pub wake_failures: i32,
    /// Not woken before this.
    pub wake_backoff_until: Option<DateTime<Utc>>,
    /// The last failure.
    pub last_wake_error: Option<String>,
}

impl Snapshot {
    /// Supervisors with a fresh heartbeat.
    pub fn fresh_supervisors(&self) -> usize {
        self.supervisors.iter().filter(|s| s.fresh).count()
    }

    /// Jobs in `status`.
    pub fn count(&self, status: JobStatus) -> i64 {
        self.jobs.get(status.as_str()).copied().unwrap_or(0)
    }
}

fn brief_list(
    client: &mut impl postgres::GenericClient,
    namespace: &str,
    filter_and_age: (&str, &str),
    order: &str,
) -> Result<JobList> {
    let (filter, age) = filter_and_age;
    // SQL: dynamic. The filter, age and order fragments are the constants each caller
    // below passes; every `agentbus status` runs all five, so any status test covers them.
    let sql = format!(
        "select j.id, j.target_agent, j.status::text, j.subject, j.attempt_count,
                coalesce(j.blocked_reason, j.last_error),
                extract(epoch from now() - {age})::float8,
                count(*) over ()
           from jobs j
          where j.namespace = $1 and {filter}
          order by {order}
          limit $2"
    );
    let rows = client.query(&sql, &[&namespace, &LIST_LIMIT])?;
    let mut list = JobList::default();
    for r in rows {
        list.count = r.try_get(7)?;
        list.jobs.push(JobBrief {
            id: r.try_get(0)?,
            agent: r.try_get(1)?,
            status: r.try_get::<_, String>(2)?.parse()?,
            subject: r.try_get(3)?,
            attempt_count: r.try_get(4)?,
            note: r.try_get(5)?,
            age_seconds: r.try_get(6)?,
        });
    }
    Ok(list)
}

/// Takes the snapshot of `namespace`; supervisors silent for `stale_after_seconds` are
/// stale.
pub fn snapshot(
    client: &mut impl postgres::GenericClient,
    namespace: &str,
    stale_after_seconds: i64,
) -> Result<Snapshot> {
    let taken_at: DateTime<Utc> = crate::db::now(client)?;

    let mut jobs: BTreeMap<String, i64> = JobStatus::ALL
        .iter()
        .map(|s| (s.as_str().to_string(), 0))
        .collect();
    let mut agents: BTreeMap<String, AgentQueue> = BTreeMap::new();
    for r in client.query(
        "select target_agent, status::text, count(*),
                extract(epoch from now() - min(run_after) filter (where status = 'queued' and run_after <= now()))::float8
           from jobs where namespace = $1 and status not in ('succeeded', 'dead', 'cancelled')
          group by 1, 2
         union all
         select target_agent, status::text, count(*), null
           from jobs
          where coalesce(completed_at, updated_at) >= now() - interval '24 hours'
            and status in ('succeeded', 'dead', 'cancelled') and namespace = $1
          group by 1, 2",
        &[&namespace],
    )? {
        let agent: String = r.try_get(0)?;
        let status: String = r.try_get(1)?;
        let n: i64 = r.try_get(2)?;
        *jobs.entry(status.clone()).or_insert(0) += n;
        let parsed: JobStatus = status.parse()?;
        if parsed.is_terminal() {
            continue;
        }
        let q = agents.entry(agent.clone()).or_insert_with(|| AgentQueue {
            agent,
            jobs: BTreeMap::new(),
            oldest_queued_seconds: None,
            paused: false,
        });
        q.jobs.insert(status, n);
        if let Some(age) = r.try_get::<_, Option<f64>>(3)? {
            q.oldest_queued_seconds = Some(age);
        }
    }
    for r in client.query(
        "select agent_id from agents where namespace = $1 and paused",
        &[&namespace],
    )? {
        let id: String = r.try_get(0)?;
        if let Some(q) = agents.get_mut(&id) {
            q.paused = true;
        }
    }
    let ages = client.query_one(
        "select extract(epoch from now() - min(run_after) filter (where status = 'queued' and run_after <= now()))::float8,
                extract(epoch from now() - min(updated_at) filter (where status = 'blocked'))::float8,
                extract(epoch from now() - min(created_at) filter (where status = 'awaiting_approval'))::float8
           from jobs where namespace = $1 and status in ('queued', 'blocked', 'awaiting_approval')",
        &[&namespace],
    )?;

    let expired_leases = brief_list(
        client,
        namespace,
        (
            "job_in_flight(j.status) and j.leased_until < now()",
            "j.leased_until",
        ),
        "j.leased_until",
    )?;
    let retry_hotspots = brief_list(
        client,
        namespace,
        (
            "j.attempt_count >= 3 and j.status not in ('succeeded', 'dead', 'cancelled')",
            "j.created_at",
        ),
        "j.attempt_count desc, j.created_at",
    )?;
    let dead_last_24h = brief_list(
        client,
        namespace,
        (
            "j.status = 'dead' and coalesce(j.completed_at, j.updated_at) >= now() - interval '24 hours'",
            "coalesce(j.completed_at, j.updated_at)",
        ),
        "coalesce(j.completed_at, j.updated_at) desc",
    )?;
    let awaiting_approval = brief_list(
        client,
        namespace,
        ("j.status = 'awaiting_approval'", "j.created_at"),
        "j.created_at",
    )?;

    let mut standing_orders_24h: BTreeMap<String, i64> = [
        "started",
        "completed",
        "no_work",
        "blocked",
        "failed",
        "skipped",
        "missed",
    ]
    .iter()
    .map(|s| (s.to_string(), 0))
    .collect();
    for r in client.query(
        "select status::text, count(*) from standing_order_runs
          where namespace = $1 and scheduled_for >= now() - interval '24 hours'
          group by 1",
        &[&namespace],
    )? {
        standing_orders_24h.insert(r.try_get(0)?, r.try_get(1)?);
    }

    let mut supervisors = Vec::new();
    for r in client.query(
        "select dispatcher_id, host, pid, version, started_at,
                extract(epoch from now() - last_seen)::float8, in_flight, leases_owned, last_error
           from dispatcher_heartbeats where namespace = $1
          order by last_seen desc",
        &[&namespace],
    )? {
        let seen: f64 = r.try_get(5)?;
        supervisors.push(SupervisorBeat {
            id: r.try_get(0)?,
            host: r.try_get(1)?,
            pid: r.try_get(2)?,
            version: r.try_get(3)?,
            started_at: r.try_get(4)?,
            seconds_since_seen: seen,
            fresh: seen < stale_after_seconds as f64,
            in_flight: r.try_get(6)?,
            leases_owned: r.try_get(7)?,
            last_error: r.try_get(8)?,
        });
    }

    let mut wake_problems = Vec::new();
    for r in client.query(
        "select agent_id, paused, paused_reason, wake_failures, wake_backoff_until, last_wake_error
           from agent_wake_problems_v where namespace = $1 order by agent_id",
        &[&namespace],
    )? {
        wake_problems.push(WakeProblem {
            agent: r.try_get(0)?,
            paused: r.try_get(1)?,
            paused_reason: r.try_get(2)?,
            wake_failures: r.try_get(3)?,
            wake_backoff_until: r.try_get(4)?,
            last_wake_error: r.try_get(5)?,
        });
    }

    Ok(Snapshot {
        namespace: namespace.to_string(),
        taken_at,
        jobs,
        agents: agents.into_values().collect(),
        oldest_queued_seconds: ages.try_get(0)?,
        oldest_blocked_seconds: ages.try_get(1)?,
        expired_leases,
        retry_hotspots,
        dead_last_24h,
        awaiting_approval,
        oldest_approval_seconds: ages.try_get(2)?,
        standing_orders_24h,
        supervisors,
        stale_after_seconds,
        wake_problems,
        guardrails: crate::ledger::roles::state(client)?,
        blocked_routing: blocked_routing(client, namespace)?,
        idle: idle_states(client, namespace)?,
    })
}

fn blocked_routing(
    client: &mut impl postgres::GenericClient,
    namespace: &str,
) -> Result<Option<BlockedRouting>> {
    let Some(r) = client.query_opt(
        "select p.route_to, extract(epoch from p.route_after)::float8,
                extract(epoch from p.escalate_after)::float8,
                count(j.id),
                count(j.id) filter (where exists (
                  select 1 from jobs t where t.namespace = p.namespace
                     and t.dedupe_key = format('blocked-route:%s:%s', j.id, k.block_no))),
                count(j.id) filter (where exists (
                  select 1 from jobs t where t.namespace = p.namespace
                     and t.dedupe_key = format('blocked-escalate:%s:%s', j.id, k.block_no)))
           from blocked_policies p
           left join jobs j on j.namespace = p.namespace and j.status = 'blocked'
           left join lateral job_block(j.id) k on true
          where p.namespace = $1
          group by p.namespace, p.route_to, p.route_after, p.escalate_after",
        &[&namespace],
    )?
    else {
        return Ok(None);
    };
    Ok(Some(BlockedRouting {
        route_to: r.try_get(0)?,
        route_after_seconds: r.try_get(1)?,
        escalate_after_seconds: r.try_get(2)?,
        blocked: r.try_get(3)?,
        routed: r.try_get(4)?,
        escalated: r.try_get(5)?,
    }))
}

fn idle_states(
    client: &mut impl postgres::GenericClient,
    namespace: &str,
) -> Result<Vec<IdleState>> {
    client
        .query(
            "select s.agent_id,
                    (select count(*) from jobs j
                      where j.namespace = s.namespace and j.target_agent = s.agent_id
                        and j.job_type = 'idle.think'
                        and j.created_at >= date_trunc('day', now() at time zone s.timezone) at time zone s.timezone),
                    case when s.halved_since is null then s.max_per_day else greatest(1, s.max_per_day / 2) end,
                    s.halved_since
               from idle_settings s
              where s.namespace = $1 and s.enabled
              order by s.agent_id",
            &[&namespace],
        )?
        .iter()
        .map(|r| {
            Ok(IdleState {
                agent: r.try_get(0)?,
                windows_today: r.try_get(1)?,
                allowed_today: r.try_get(2)?,
                halved_since: r.try_get(3)?,
            })
        })
        .collect()
}
