//! Bounded idle-time thinking (sql/0018_idle_thinking.sql): firing the windows, and what
//! they produced, for `agentbus digest thinking` and `agentbus status`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::error::Result;
use crate::ledger::validate::check_name;

/// A thinking window opened.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Fired {
    /// The agent.
    pub agent_id: String,
    /// Its `idle.think` job.
    pub job_id: Uuid,
    /// The question of the turn.
    pub question: String,
}

/// Opens the thinking windows due in `namespace` (quiet, in hours, under the day's
/// windows, nothing urgent queued); one pass per namespace at a time.
pub fn fire(tx: &mut postgres::Transaction<'_>, namespace: &str) -> Result<Vec<Fired>> {
    check_name("`namespace`", namespace)?;
    tx.query(
        "select agent_id, job_id, question from fire_idle_thinking($1)",
        &[&namespace],
    )?
    .iter()
    .map(|r| {
        Ok(Fired {
            agent_id: r.try_get(0)?,
            job_id: r.try_get(1)?,
            question: r.try_get(2)?,
        })
    })
    .collect()
}

/// One agent's thinking over a window of time.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AgentThinking {
    /// The agent.
    pub agent_id: String,
    /// Windows opened.
    pub windows: i64,
    /// Of those, closed with `--no-work` (thought, found nothing worth filing).
    pub no_work: i64,
    /// Ideas, opportunities and memory candidates filed inside its windows.
    pub ideas: i64,
    /// Opportunities filed inside its windows.
    pub opportunities: i64,
    /// Memory candidates filed inside its windows.
    pub memory_candidates: i64,
    /// Of what it filed, promoted since (idea to opportunity, opportunity accepted or
    /// converted, candidate to memory).
    pub promoted: i64,
    /// Of what it filed, archived or rejected since.
    pub dropped: i64,
    /// Checks that opened no window, by reason (busy, urgent, hours, budget, paused).
    pub skipped: BTreeMap<String, i64>,
    /// Thinking half as often since (nothing of its promoted lately).
    pub halved_since: Option<DateTime<Utc>>,
    /// What its windows produced, newest first: (kind, title, status).
    pub outputs: Vec<Output>,
}

/// Something a window produced.
#[derive(Debug, Clone, Serialize)]
pub struct Output {
    /// idea, opportunity or memory_candidate.
    pub kind: String,
    /// Its title.
    pub title: String,
    /// Its status now.
    pub status: String,
    /// When it was filed.
    pub created_at: DateTime<Utc>,
}

/// What the thinking windows of `namespace` produced since `since`.
pub fn digest(
    client: &mut impl postgres::GenericClient,
    namespace: &str,
    since: DateTime<Utc>,
) -> Result<Vec<AgentThinking>> {
    let mut agents: BTreeMap<String, AgentThinking> = BTreeMap::new();
    for r in client.query(
        "select s.agent_id, s.halved_since,
                count(j.id), count(j.id) filter (where j.result ->> 'no_work' = 'true')
           from idle_settings s
           left join jobs j on j.namespace = s.namespace and j.target_agent = s.agent_id
                           and j.job_type = 'idle.think' and j.created_at >= $2
          where s.namespace = $1
          group by s.agent_id, s.halved_since",
        &[&namespace, &since],
    )? {
        let id: String = r.try_get(0)?;
        agents.insert(
            id.clone(),
            AgentThinking {
                agent_id: id,
                halved_since: r.try_get(1)?,
                windows: r.try_get(2)?,
                no_work: r.try_get(3)?,
                ..Default::default()
            },
        );
    }
    for r in client.query(
        "with windows as (
           select target_agent as agent, created_at as started, coalesce(completed_at, now()) as ended
             from jobs where namespace = $1 and job_type = 'idle.think' and created_at >= $2)
         select o.agent, o.kind, o.title, o.status, o.created_at from (
           select i.source_agent as agent, 'idea' as kind, i.title, i.status::text as status, i.created_at
             from ideas i where i.namespace = $1 and i.created_at >= $2
           union all
           select o.source_agent, 'opportunity', o.title, o.status::text, o.created_at
             from opportunities o where o.namespace = $1 and o.created_at >= $2
           union all
           select c.source_agent, 'memory_candidate', c.title, c.status::text, c.created_at
             from memory_candidates c where c.namespace = $1 and c.created_at >= $2) o
         where exists (select 1 from windows w
                        where w.agent = o.agent and o.created_at between w.started and w.ended)
         order by o.created_at desc",
        &[&namespace, &since],
    )? {
        let agent: String = r.try_get(0)?;
        let Some(a) = agents.get_mut(&agent) else {
            continue;
        };
        let out = Output {
            kind: r.try_get(1)?,
            title: r.try_get(2)?,
            status: r.try_get(3)?,
            created_at: r.try_get(4)?,
        };
        match out.kind.as_str() {
            "idea" => a.ideas += 1,
            "opportunity" => a.opportunities += 1,
            _ => a.memory_candidates += 1,
        }
        match out.status.as_str() {
            "promoted_to_opportunity" | "accepted" | "converted_to_job" | "promoted" => {
                a.promoted += 1
            }
            "archived" | "rejected" => a.dropped += 1,
            _ => {}
        }
        a.outputs.push(out);
    }
    for r in client.query(
        "select agent_id, reason, sum(checks)::int8 from idle_skips
          where namespace = $1 and last_at >= $2 group by agent_id, reason",
        &[&namespace, &since],
    )? {
        let agent: String = r.try_get(0)?;
        if let Some(a) = agents.get_mut(&agent) {
            a.skipped.insert(r.try_get(1)?, r.try_get(2)?);
        }
    }
    Ok(agents.into_values().collect())
}

/// The digest as Markdown for a publisher: per agent, what its windows produced and what
/// came of it, and why windows did not open.
pub fn markdown(
    namespace: &str,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    agents: &[AgentThinking],
) -> String {
    let mut out = format!(
        "# Thinking in {namespace}\n\n{} to {} UTC\n",
        since.format("%Y-%m-%d %H:%M"),
        until.format("%Y-%m-%d %H:%M")
    );
    if agents.is_empty() {
        out.push_str("\nNo agent has idle thinking configured ([idle] in agent.toml).\n");
        return out;
    }
    for a in agents {
        out.push_str(&format!(
            "\n## {}\n\n- windows: {} ({} with nothing worth filing)\n- filed: {} idea(s), {} opportunit(ies), {} memory candidate(s)\n- promoted since: {} · archived or rejected: {}\n",
            a.agent_id,
            a.windows,
            a.no_work,
            a.ideas,
            a.opportunities,
            a.memory_candidates,
            a.promoted,
            a.dropped
        ));
        if !a.skipped.is_empty() {
            let parts: Vec<String> = a
                .skipped
                .iter()
                .map(|(reason, n)| format!("{reason} {n}"))
                .collect();
            out.push_str(&format!(
                "- checks that opened no window: {}\n",
                parts.join(" · ")
            ));
        }
        if let Some(t) = a.halved_since {
            out.push_str(&format!(
                "- thinking half as often since {} (nothing of its promoted lately)\n",
                t.format("%Y-%m-%d %H:%M UTC")
            ));
        }
        for o in a.outputs.iter().take(10) {
            out.push_str(&format!(
                "  - {} \"{}\" ({})\n",
                o.kind,
                o.title.split_whitespace().collect::<Vec<_>>().join(" "),
                o.status
            ));
        }
    }
    out
}
