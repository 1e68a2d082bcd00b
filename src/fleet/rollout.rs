//! Phased rollout: which agents, standing orders and lanes each of five phases brings in
//! (`phase` in agent.toml and on a standing order; `[rollout]` in fleet.toml for the
//! lanes), the fleet as it stands at a phase, the gate that measures a phase's exit
//! criteria from the ledger itself, and where a namespace stands (`rollout_state`, owned
//! here).
//!
//! 1. the core ledger and the supervisor with the pilot agents and their duties
//! 2. the full reactive fleet
//! 3. ideas, opportunities and the proactive scans
//! 4. memory candidates, curation and retrieval
//! 5. idle thinking and the Obsidian export

use serde::Serialize;

use super::spec::{AgentSpec, Fleet, OrderSpec, RolloutSpec};
use crate::error::Result;

/// What each phase is for.
pub const PHASES: [&str; 5] = [
    "core ledger, supervisor and the pilot agents with their duties",
    "the full reactive fleet",
    "ideas, opportunities and the proactive scans",
    "memory: candidates, curation, retrieval into prompts",
    "idle thinking and the Obsidian export",
];

/// The phase that schedules `o` (never before its agent's).
pub fn order_phase(agent: &AgentSpec, o: &OrderSpec) -> u8 {
    o.phase.unwrap_or(agent.phase).max(agent.phase)
}

/// The fleet as it stands at phase `n`: the agents and orders of phases up to `n`, and
/// idle thinking only from its phase.
pub fn at_phase(fleet: &Fleet, n: u8) -> Fleet {
    let mut f = fleet.clone();
    f.agents.retain(|a| a.phase <= n);
    for a in &mut f.agents {
        let agent = a.clone();
        a.standing_orders.retain(|o| order_phase(&agent, o) <= n);
        if n < fleet.rollout.idle {
            a.idle = None;
        }
    }
    f
}

/// Which lanes run at phase `n` (`proactive`, `memory`), and which are paused.
pub fn lanes_at(spec: &RolloutSpec, n: u8) -> [(&'static str, bool); 2] {
    [
        ("proactive", n >= spec.proactive),
        ("memory", n >= spec.memory),
    ]
}

/// What one phase brings in.
#[derive(Debug, Clone, Serialize)]
pub struct PhasePlan {
    /// 1 to 5.
    pub phase: u8,
    /// What it is for.
    pub title: &'static str,
    /// Agents it adds.
    pub agents: Vec<String>,
    /// Standing orders it adds (`agent/order`).
    pub orders: Vec<String>,
    /// Lanes it starts.
    pub lanes: Vec<&'static str>,
}

/// The five phases of `fleet`.
pub fn plan(fleet: &Fleet) -> Vec<PhasePlan> {
    (1..=5u8)
        .map(|n| {
            let mut lanes = Vec::new();
            if fleet.rollout.proactive == n {
                lanes.push("proactive");
            }
            if fleet.rollout.memory == n {
                lanes.push("memory");
            }
            if fleet.rollout.idle == n {
                lanes.push("idle thinking");
            }
            PhasePlan {
                phase: n,
                title: PHASES[usize::from(n - 1)],
                agents: fleet
                    .agents
                    .iter()
                    .filter(|a| a.phase == n)
                    .map(|a| a.id.clone())
                    .collect(),
                orders: fleet
                    .agents
                    .iter()
                    .flat_map(|a| {
                        a.standing_orders
                            .iter()
                            .filter(move |o| order_phase(a, o) == n)
                            .map(move |o| format!("{}/{}", a.id, o.name))
                    })
                    .collect(),
                lanes,
            }
        })
        .collect()
}

/// Where a namespace stands.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct State {
    /// Namespace.
    pub namespace: String,
    /// The phase applied.
    pub phase: i32,
    /// When.
    pub applied_at: String,
    /// By whom.
    pub applied_by: String,
    /// Why its gate was overridden, when it was.
    pub forced_reason: Option<String>,
}

/// The state of `namespace`, if it was ever rolled out (none on a schema not migrated yet).
pub fn state(client: &mut impl postgres::GenericClient, namespace: &str) -> Result<Option<State>> {
    let migrated: bool = client
        .query_one("select to_regclass('rollout_state') is not null", &[])?
        .try_get(0)?;
    if !migrated {
        return Ok(None);
    }
    client
        .query_opt(
            "select to_jsonb(r.*) as row from rollout_state r where namespace = $1",
            &[&namespace],
        )?
        .map(|r| crate::db::decode(&r, "row"))
        .transpose()
}

/// Records that `namespace` stands at `phase`; returns whether that changed anything.
pub fn record(
    tx: &mut postgres::Transaction<'_>,
    namespace: &str,
    phase: u8,
    actor: &str,
    forced_reason: Option<&str>,
) -> Result<bool> {
    let n = tx.execute(
        "insert into rollout_state (namespace, phase, applied_by, forced_reason)
         values ($1, $2, $3, $4)
         on conflict (namespace) do update
           set phase = excluded.phase, applied_by = excluded.applied_by,
               forced_reason = excluded.forced_reason, applied_at = now()
         where rollout_state.phase <> excluded.phase or excluded.forced_reason is not null",
        &[&namespace, &i32::from(phase), &actor, &forced_reason],
    )?;
    Ok(n > 0)
}

/// One exit criterion, measured.
#[derive(Debug, Clone, Serialize)]
pub struct Criterion {
    /// What is measured.
    pub name: String,
    /// What the ledger says.
    pub value: String,
    /// What it must be.
    pub limit: String,
    /// Whether it holds.
    pub pass: bool,
}

/// The gate of a phase: its exit criteria over the window.
#[derive(Debug, Clone, Serialize)]
pub struct Gate {
    /// Namespace.
    pub namespace: String,
    /// The phase whose exit is measured.
    pub phase: u8,
    /// Hours of ledger looked at.
    pub window_hours: i32,
    /// The criteria.
    pub criteria: Vec<Criterion>,
    /// Every criterion holds.
    pub pass: bool,
}

/// Measures the exit criteria of `phase` for `namespace` from the ledger.
pub fn check(
    client: &mut impl postgres::GenericClient,
    namespace: &str,
    phase: u8,
    spec: &RolloutSpec,
) -> Result<Gate> {
    let r = client.query_one(
        "with w as (select now() - make_interval(hours => $2) as since)
         select
           (select count(*) from jobs, w where namespace = $1 and status = 'succeeded' and completed_at >= w.since),
           (select count(*) from jobs j, w where j.namespace = $1 and j.status = 'dead' and j.completed_at >= w.since
               and not exists (select 1 from job_history h where h.job_id = j.id and h.to_status = 'dead'
                                 and h.reason like 'dead-letter-job%')),
           (select count(*) from standing_order_runs, w where namespace = $1 and status = 'missed' and scheduled_for >= w.since),
           (select count(*) from standing_order_runs, w where namespace = $1 and status in ('completed', 'no_work') and scheduled_for >= w.since),
           (select count(*) from job_attempts a join jobs j on j.id = a.job_id, w
             where j.namespace = $1 and a.status in ('lost', 'timed_out') and a.started_at >= w.since),
           (select coalesce(percentile_cont(0.95) within group (order by extract(epoch from a.started_at - j.run_after)), 0)::float8
              from jobs j join job_attempts a on a.job_id = j.id and a.attempt_no = 1, w
             where j.namespace = $1 and j.created_at >= w.since),
           (select count(*) from opportunities where namespace = $1 and status = 'new' and created_at < now() - interval '2 days'),
           (select count(*) from memory_candidates where namespace = $1 and status in ('new', 'reviewed') and created_at < now() - interval '7 days'),
           (select count(*) from jobs j, w where j.namespace = $1 and j.job_type = 'idle.think'
               and j.status in ('dead', 'failed') and j.updated_at >= w.since)",
        &[&namespace, &spec.window_hours],
    )?;
    let n = |i: usize| -> Result<i64> { Ok(r.try_get::<_, i64>(i)?) };
    let p95: f64 = r.try_get(5)?;
    let mut criteria = vec![
        crit("jobs succeeded (work flows)", n(0)?, ">= 1", n(0)? >= 1),
        crit(
            "dead jobs not dead-lettered by an operator",
            n(1)?,
            "0",
            n(1)? == 0,
        ),
        crit("standing-order runs missed", n(2)?, "0", n(2)? == 0),
        crit(
            "standing-order runs completed or no_work",
            n(3)?,
            ">= 1",
            n(3)? >= 1,
        ),
        crit(
            "attempts lost or timed out (expired leases)",
            n(4)?,
            &format!("<= {}", spec.max_expired_leases),
            n(4)? <= i64::from(spec.max_expired_leases),
        ),
        crit(
            "hand-off p95, ready to claimed (s)",
            format!("{p95:.1}"),
            &format!("<= {}", spec.max_handoff_p95_seconds),
            p95 <= f64::from(spec.max_handoff_p95_seconds),
        ),
    ];
    if phase >= spec.proactive {
        criteria.push(crit(
            "opportunities untriaged for 2 days",
            n(6)?,
            "0",
            n(6)? == 0,
        ));
    }
    if phase >= spec.memory {
        criteria.push(crit(
            "memory candidates pending for 7 days",
            n(7)?,
            "0",
            n(7)? == 0,
        ));
    }
    if phase >= spec.idle {
        criteria.push(crit("idle windows that failed", n(8)?, "0", n(8)? == 0));
    }
    let pass = criteria.iter().all(|c| c.pass);
    Ok(Gate {
        namespace: namespace.to_string(),
        phase,
        window_hours: spec.window_hours,
        criteria,
        pass,
    })
}

fn crit(name: &str, value: impl ToString, limit: &str, pass: bool) -> Criterion {
    Criterion {
        name: name.to_string(),
        value: value.to_string(),
        limit: limit.to_string(),
        pass,
    }
}

/// The probe agent of `rollout apply --smoke` (no fleet: sync never touches it).
pub const PROBE_AGENT: &str = "rollout-probe";
/// Its standing order: disabled (it never fires by schedule), fired once per smoke test.
pub const PROBE_ORDER: &str = "rollout-smoke";

/// Declares the probe's standing order in `namespace` (once; idempotent).
pub fn declare_probe_order(tx: &mut postgres::Transaction<'_>, namespace: &str) -> Result<()> {
    tx.execute(
        "insert into standing_orders (namespace, agent_id, order_name, cron, message, enabled, source)
         values ($1, $2, $3, '0 0 1 1 *', 'rollout smoke test: close this job', false, 'agentbus rollout apply --smoke')
         on conflict (namespace, agent_id, order_name) do nothing",
        &[&namespace, &PROBE_AGENT, &PROBE_ORDER],
    )?;
    Ok(())
}

/// The supervisor with the freshest heartbeat for `namespace` in the last two minutes.
pub fn live_supervisor(
    client: &mut impl postgres::GenericClient,
    namespace: &str,
) -> Result<Option<String>> {
    Ok(client
        .query_opt(
            "select dispatcher_id from dispatcher_heartbeats
              where namespace = $1 and last_seen > now() - interval '2 minutes'
              order by last_seen desc limit 1",
            &[&namespace],
        )?
        .map(|r| r.try_get(0))
        .transpose()?)
}
