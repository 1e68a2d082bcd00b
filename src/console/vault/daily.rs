//! Daily notes (the morning read), weekly reports and the health snapshot. Each is a
//! function of rows only: a day's note lists what happened that UTC day, a report covers
//! one ISO week, the snapshot counts what stands now (ages as timestamps, never "5 min").

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::text::{front_matter, line, s, when};
use crate::error::Result;

/// Adds the daily notes, reports and snapshot of `namespace` to `files`.
pub fn add(
    client: &mut impl postgres::GenericClient,
    files: &mut BTreeMap<String, String>,
    namespace: &str,
    since: Option<DateTime<Utc>>,
    parts: Parts,
) -> Result<()> {
    let from = since.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    if parts.days {
        add_days(client, files, namespace, from)?;
    }
    if parts.bets {
        add_bets(client, files, namespace, from)?;
    }
    if parts.health {
        add_health(client, files, namespace, from)?;
    }
    Ok(())
}

/// Which of the notes to render (the others are kept as they are).
#[derive(Debug, Clone, Copy)]
pub struct Parts {
    /// `01 Daily/`: jobs and standing order runs.
    pub days: bool,
    /// `05 Reports/* weekly bets.md`: opportunities.
    pub bets: bool,
    /// `05 Reports/* thinking.md` and `07 Snapshots/`: jobs and agents.
    pub health: bool,
}

/// The daily notes from `from` on.
fn add_days(
    client: &mut impl postgres::GenericClient,
    files: &mut BTreeMap<String, String>,
    namespace: &str,
    from: DateTime<Utc>,
) -> Result<()> {
    // One pass per fact, grouped by UTC day (never a query per day).
    let mut days: BTreeMap<String, Value> = BTreeMap::new();
    let blank = || {
        json!({"created": 0, "finished": {}, "failed_attempts": 0, "dead": [], "orders": {},
               "missed": [], "waiting": []})
    };
    // Jobs created and finished per day: one scan, grouped by both days and the status.
    for r in client.query(
        "select c::text, c_in, f::text, f_in, status::text, n from (
           select (created_at at time zone 'UTC')::date c, created_at >= $2 c_in,
                  (completed_at at time zone 'UTC')::date f, completed_at >= $2 f_in, status, count(*) n
             from jobs where namespace = $1 and (created_at >= $2 or completed_at >= $2)
            group by 1, 2, 3, 4, 5) x",
        &[&namespace, &from],
    )? {
        let n: i64 = r.try_get(5)?;
        let status: String = r.try_get(4)?;
        if r.try_get::<_, bool>(1)? {
            let doc = days.entry(r.try_get(0)?).or_insert_with(blank);
            doc["created"] = json!(doc["created"].as_i64().unwrap_or(0) + n);
        }
        if let (Some(day), Some(true)) = (
            r.try_get::<_, Option<String>>(2)?,
            r.try_get::<_, Option<bool>>(3)?,
        ) {
            let doc = days.entry(day).or_insert_with(blank);
            let had = doc["finished"][&status].as_i64().unwrap_or(0);
            doc["finished"][&status] = json!(had + n);
        }
    }
    let facts: [(&str, &str); 5] = [
        ("failed_attempts", "select (a.started_at at time zone 'UTC')::date::text, to_jsonb(count(*))
                               from job_attempts a join jobs j on j.id = a.job_id
                              where j.namespace = $1 and a.status = 'failed' and a.started_at >= $2 group by 1"),
        ("dead", "select d, jsonb_agg(x.doc order by x.completed_at, x.id) from (
                    select (completed_at at time zone 'UTC')::date::text d, completed_at, id,
                           jsonb_build_object('id', id, 'agent', target_agent, 'subject', subject, 'error', last_error) doc,
                           row_number() over (partition by (completed_at at time zone 'UTC')::date order by completed_at, id) r
                      from jobs where namespace = $1 and status = 'dead' and completed_at >= $2) x
                  where r <= 20 group by d"),
        ("orders", "select d, jsonb_object_agg(status, n) from (
                      select (scheduled_for at time zone 'UTC')::date::text d, status::text, count(*) n
                        from standing_order_runs where namespace = $1 and scheduled_for >= $2 group by 1, 2) x group by d"),
        ("missed", "select d, jsonb_agg(x.doc order by x.scheduled_for, x.agent_id, x.order_name) from (
                      select (scheduled_for at time zone 'UTC')::date::text d, scheduled_for, agent_id, order_name,
                             jsonb_build_object('agent', agent_id, 'order', order_name, 'scheduled_for', scheduled_for) doc,
                             row_number() over (partition by (scheduled_for at time zone 'UTC')::date
                                                order by scheduled_for, agent_id, order_name) r
                        from standing_order_runs where namespace = $1 and status = 'missed' and scheduled_for >= $2) x
                    where r <= 20 group by d"),
        ("waiting", "select d, jsonb_agg(x.doc order by x.created_at, x.id) from (
                       select (created_at at time zone 'UTC')::date::text d, created_at, id,
                              jsonb_build_object('id', id, 'agent', target_agent, 'subject', subject, 'gate', approval_gate) doc,
                              row_number() over (partition by (created_at at time zone 'UTC')::date order by created_at, id) r
                         from jobs where namespace = $1 and status = 'awaiting_approval' and created_at >= $2) x
                     where r <= 20 group by d"),
    ];
    for (key, sql) in facts {
        for r in client.query(sql, &[&namespace, &from])? {
            let day: String = r.try_get(0)?;
            let v: Value = r.try_get(1)?;
            days.entry(day).or_insert_with(blank)[key] = v;
        }
    }
    for (day, v) in &days {
        files.insert(format!("01 Daily/{day}.md"), daily(namespace, day, v));
    }
    Ok(())
}

/// The weekly bets from `from` on.
fn add_bets(
    client: &mut impl postgres::GenericClient,
    files: &mut BTreeMap<String, String>,
    namespace: &str,
    from: DateTime<Utc>,
) -> Result<()> {
    // Weekly bets: the accepted and converted opportunities of each ISO week, best first.
    let opportunities: Vec<Value> = client
        .query(
            "select to_jsonb(o) || jsonb_build_object('score',
                      opportunity_score(o.impact_score, o.confidence_score, o.urgency_score, o.reversibility))
               from opportunities o
              where namespace = $1 and status in ('accepted', 'converted_to_job') and created_at >= $2
              order by created_at, id",
            &[&namespace, &from],
        )?
        .iter()
        .map(|r| r.try_get::<_, Value>(0))
        .collect::<std::result::Result<_, _>>()?;
    let mut weeks: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for o in &opportunities {
        if !matches!(s(o, "status"), "accepted" | "converted_to_job") {
            continue;
        }
        let Ok(t) = DateTime::parse_from_rfc3339(s(o, "created_at")) else {
            continue;
        };
        let t = t.with_timezone(&Utc);
        if t >= from {
            weeks.entry(super::notes::week(&t)).or_default().push(o);
        }
    }
    for (week, mut list) in weeks {
        list.sort_by(|a, b| {
            b["score"]
                .as_i64()
                .cmp(&a["score"].as_i64())
                .then(s(a, "id").cmp(s(b, "id")))
        });
        let mut out = front_matter(&[
            ("kind", json!("report")),
            ("report", json!("weekly bets")),
            ("week", json!(week)),
            ("namespace", json!(namespace)),
        ]);
        out.push_str(&format!("# Weekly bets, {week}\n\nAccepted and converted opportunities of the week, best first.\n\n"));
        for o in list.iter().take(10) {
            out.push_str(&format!(
                "- {} ({}, score {}, {}): {}\n",
                line(s(o, "title")),
                line(s(o, "theme")),
                o["score"],
                s(o, "status"),
                line(s(o, "suggested_next_step"))
            ));
        }
        files.insert(format!("05 Reports/{week} weekly bets.md"), out);
    }

    Ok(())
}

/// The weekly thinking reports from `from` on, and the health snapshot.
fn add_health(
    client: &mut impl postgres::GenericClient,
    files: &mut BTreeMap<String, String>,
    namespace: &str,
    from: DateTime<Utc>,
) -> Result<()> {
    // Thinking: the idle windows of each ISO week, per agent.
    let thinking = client.query(
        "select to_char(created_at at time zone 'UTC', 'IYYY-\"W\"IW'), target_agent, count(*),
                count(*) filter (where result ->> 'no_work' = 'true')
           from jobs where namespace = $1 and job_type = 'idle.think' and created_at >= $2
          group by 1, 2 order by 1, 2",
        &[&namespace, &from],
    )?;
    let mut by_week: BTreeMap<String, String> = BTreeMap::new();
    for r in thinking {
        let week: String = r.try_get(0)?;
        let agent: String = r.try_get(1)?;
        let (n, none): (i64, i64) = (r.try_get(2)?, r.try_get(3)?);
        by_week.entry(week).or_default().push_str(&format!(
            "- {}: {n} window(s), {none} with nothing worth filing\n",
            line(&agent)
        ));
    }
    for (week, body) in by_week {
        let mut out = front_matter(&[
            ("kind", json!("report")),
            ("report", json!("thinking")),
            ("week", json!(week)),
            ("namespace", json!(namespace)),
        ]);
        out.push_str(&format!("# Thinking, {week}\n\nIdle windows per agent (`agentbus digest thinking` has what they produced).\n\n{body}"));
        files.insert(format!("05 Reports/{week} thinking.md"), out);
    }

    let health: Value = client
        .query_one(
            "select jsonb_build_object(
               'jobs', coalesce((select jsonb_object_agg(status, n) from (
                   select status::text, count(*) n from jobs where namespace = $1 group by status) x), '{}'),
               'oldest_queued', (select min(run_after) from jobs where namespace = $1 and status = 'queued'),
               'oldest_blocked', (select min(updated_at) from jobs where namespace = $1 and status = 'blocked'),
               'oldest_approval', (select min(created_at) from jobs where namespace = $1 and status = 'awaiting_approval'),
               'paused', coalesce((select jsonb_agg(agent_id order by agent_id) from agents
                                    where namespace = $1 and paused), '[]'))",
            &[&namespace],
        )?
        .try_get(0)?;
    let mut out = front_matter(&[("kind", json!("snapshot")), ("namespace", json!(namespace))]);
    out.push_str("# Health\n\nWhat stands in the ledger as of the last change (`agentbus status` for now).\n\n## Jobs\n\n");
    out.push_str(&super::text::bullets(&health["jobs"]));
    out.push_str("\n## Oldest\n\n");
    for (label, key) in [
        ("queued since", "oldest_queued"),
        ("blocked since", "oldest_blocked"),
        ("waiting for approval since", "oldest_approval"),
    ] {
        out.push_str(&format!(
            "- {label}: {}\n",
            health[key].as_str().map(when).unwrap_or_else(|| "-".into())
        ));
    }
    out.push_str(&format!(
        "\n## Paused agents\n\n{}\n",
        health["paused"]
            .as_array()
            .map(|p| p
                .iter()
                .filter_map(Value::as_str)
                .map(|a| format!("- {}\n", line(a)))
                .collect::<String>())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "- (none)\n".into())
    ));
    files.insert("07 Snapshots/health.md".into(), out);
    Ok(())
}

fn daily(namespace: &str, day: &str, v: &Value) -> String {
    let mut out = front_matter(&[
        ("kind", json!("daily")),
        ("date", json!(day)),
        ("namespace", json!(namespace)),
    ]);
    out.push_str(&format!(
        "# {day}\n\n## Work\n\n- created: {}\n",
        v["created"]
    ));
    for (status, n) in v["finished"].as_object().into_iter().flatten() {
        out.push_str(&format!("- {status}: {n}\n"));
    }
    out.push_str(&format!(
        "- failed attempts (retried or dead): {}\n",
        v["failed_attempts"]
    ));
    out.push_str("\n## Standing orders\n\n");
    let orders = v["orders"].as_object().cloned().unwrap_or_default();
    if orders.is_empty() {
        out.push_str("- (none scheduled)\n");
    }
    for (status, n) in &orders {
        out.push_str(&format!("- {status}: {n}\n"));
    }
    for m in v["missed"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "- missed: {}/{} for {}\n",
            line(s(m, "agent")),
            line(s(m, "order")),
            when(s(m, "scheduled_for"))
        ));
    }
    out.push_str("\n## Dead letters\n\n");
    let dead = v["dead"].as_array().cloned().unwrap_or_default();
    if dead.is_empty() {
        out.push_str("- (none)\n");
    }
    for d in &dead {
        out.push_str(&format!(
            "- {} ({}, {}): {}\n",
            line(s(d, "subject")),
            line(s(d, "agent")),
            s(d, "id").get(..8).unwrap_or(""),
            line(s(d, "error"))
        ));
    }
    out.push_str("\n## Waiting for approval\n\n");
    let waiting = v["waiting"].as_array().cloned().unwrap_or_default();
    if waiting.is_empty() {
        out.push_str("- (none)\n");
    }
    for w in &waiting {
        out.push_str(&format!(
            "- {} ({}, {}{})\n",
            line(s(w, "subject")),
            line(s(w, "agent")),
            s(w, "id").get(..8).unwrap_or(""),
            w["gate"]
                .as_str()
                .map(|g| format!(", {}", line(g)))
                .unwrap_or_default()
        ));
    }
    out
}
