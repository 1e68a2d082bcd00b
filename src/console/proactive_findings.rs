//! The audit's findings about the proactive lane: opportunities nobody triaged, the same
//! title proposed by several agents, one agent proposing many weak ones, budget refusals,
//! and guardrail refusals.

use super::findings::{age, secs, Finding, Limits, PER_CODE_LIMIT};
use crate::error::Result;

/// Appends this module's findings (see the module's summary) for `namespace`.
pub(super) fn findings(
    tx: &mut postgres::Transaction<'_>,
    namespace: &str,
    limits: &Limits,
    findings: &mut Vec<Finding>,
) -> Result<()> {
    let ns = &namespace;
    for r in tx.query(
        "select id::text, source_agent, title, extract(epoch from now() - created_at)::float8
           from opportunities
          where namespace = $1 and status = 'new'
            and created_at <= now() - make_interval(secs => $2)
          order by created_at limit $3",
        &[ns, &secs(limits.stale_opportunity), &PER_CODE_LIMIT],
    )? {
        let id: String = r.try_get(0)?;
        let agent: String = r.try_get(1)?;
        let title: String = r.try_get(2)?;
        let waited: f64 = r.try_get(3)?;
        findings.push(Finding {
            code: "opportunity_stale_new",
            key: format!("opportunity_stale_new:{id}"),
            agent: Some(agent.clone()),
            ids: vec![id.clone()],
            detail: format!("{agent}'s opportunity \"{title}\" untriaged for {}", age(waited)),
            suggestion: format!(
                "agentbus triage-opportunity --opportunity-id {id} --decision accepted|rejected|parked"
            ),
        });
    }
    for r in tx.query(
        "select lower(title), array_agg(distinct source_agent order by source_agent),
                array_agg(id::text order by created_at)
           from opportunities
          where namespace = $1 and status in ('new', 'triaged', 'accepted', 'parked')
          group by lower(title) having count(distinct source_agent) > 1
          order by 1 limit $2",
        &[ns, &PER_CODE_LIMIT],
    )? {
        let title: String = r.try_get(0)?;
        let agents: Vec<String> = r.try_get(1)?;
        let ids: Vec<String> = r.try_get(2)?;
        findings.push(Finding {
            code: "opportunity_duplicate_title",
            key: format!("opportunity_duplicate_title:{}", ids.join(",")),
            agent: None,
            ids: ids.clone(),
            detail: format!("\"{title}\" is proposed by {}", agents.join(", ")),
            suggestion: format!(
                "keep one: agentbus triage-opportunity --opportunity-id {} --decision rejected --notes 'duplicate'",
                ids.last().map(String::as_str).unwrap_or("ID")
            ),
        });
    }
    for r in tx.query(
        "select source_agent, count(*), array_agg(id::text order by created_at)
           from opportunities
          where namespace = $1 and confidence_score <= 2 and created_at >= $2
          group by source_agent having count(*) >= $3
          order by 2 desc",
        &[ns, &limits.since, &limits.low_confidence_repeat],
    )? {
        let agent: String = r.try_get(0)?;
        let n: i64 = r.try_get(1)?;
        let mut ids: Vec<String> = r.try_get(2)?;
        ids.truncate(20);
        findings.push(Finding {
            code: "low_confidence_repeat",
            key: format!("low_confidence_repeat:{agent}:{}", ids.first().map(String::as_str).unwrap_or("")),
            agent: Some(agent.clone()),
            ids,
            detail: format!("{agent} proposed {n} low-confidence (1-2) opportunities in the window"),
            suggestion: format!(
                "file these as ideas instead (agentbus create-idea); lower {agent}'s max_opportunities_per_day"
            ),
        });
    }
    for r in tx.query(
        "select agent_id, kind, count(*), max(budget), min(id), max(id)
           from proactive_budget_refusals
          where namespace = $1 and created_at >= $2
          group by agent_id, kind order by 3 desc",
        &[ns, &limits.since],
    )? {
        let agent: String = r.try_get(0)?;
        let kind: String = r.try_get(1)?;
        let n: i64 = r.try_get(2)?;
        let budget: i32 = r.try_get(3)?;
        let first: i64 = r.try_get(4)?;
        let last: i64 = r.try_get(5)?;
        findings.push(Finding {
            code: "budget_rejected",
            key: format!("budget_rejected:{agent}:{kind}:{first}-{last}"),
            agent: Some(agent.clone()),
            ids: vec![agent.clone()],
            detail: format!(
                "{agent} hit its {kind} budget ({budget} per day) {n} time(s) in the window"
            ),
            suggestion: format!(
                "agentbus list-opportunities --agent {agent} --since 1d  (raise [budgets] in its agent.toml only if they were worth it)"
            ),
        });
    }
    // Callers a guardrail refused (a hand-off outside their list, a control their database
    // login may not run), per claimed agent, login and rule: a burst is a misconfigured
    // agent or someone probing.
    for r in tx.query(
        "select coalesce(source_agent, '?'), payload ->> 'rule', login, count(*), min(id), max(id)
           from events where namespace = $1 and topic = 'guardrail.refused' and created_at >= $2
          group by 1, 2, 3 order by 4 desc",
        &[ns, &limits.since],
    )? {
        let (agent, rule, login): (String, Option<String>, String) =
            (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
        let (n, first, last): (i64, i64, i64) = (r.try_get(3)?, r.try_get(4)?, r.try_get(5)?);
        let rule = rule.unwrap_or_else(|| "?".into());
        findings.push(Finding {
            code: "guardrail_refused",
            key: format!("guardrail_refused:{agent}:{login}:{rule}:{first}-{last}"),
            agent: Some(agent.clone()),
            ids: vec![agent.clone(), login.clone()],
            detail: format!("{agent} (database login {login}) was refused {n} time(s) by the {rule} guardrail in the window"),
            suggestion: format!("agentbus events --topic guardrail.refused --source-agent {agent} --since 1d  (then its AGENTS.md, or the fleet's rule)"),
        });
    }
    Ok(())
}
