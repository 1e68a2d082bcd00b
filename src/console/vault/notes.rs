//! The notes of the vault, rendered from the ledger: ideas, opportunities, memories, the
//! jobs they link to, agents, daily notes, weekly reports and the health snapshot. Every
//! note's name and content depend only on rows (times are written as timestamps), and a
//! link is written as `[[...]]` only when its note exists.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Utc};
use serde_json::{json, Value};

use super::text::{bullets, date, front_matter, line, s, safe, slug, when};
use crate::error::Result;

/// Rows of a query, each the first column (a JSON document).
fn rows(
    client: &mut impl postgres::GenericClient,
    sql: &str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
) -> Result<Vec<Value>> {
    Ok(client
        .query(sql, params)?
        .iter()
        .map(|r| r.try_get::<_, Value>(0))
        .collect::<std::result::Result<_, _>>()?)
}

const MEMORY_FOLDERS: [(&str, &str); 9] = [
    ("decision", "Decisions"),
    ("preference", "Preferences"),
    ("lesson", "Lessons"),
    ("pattern", "Patterns"),
    ("playbook", "Playbooks"),
    ("mistake", "Mistakes"),
    ("constraint", "Constraints"),
    ("entity_fact", "Facts"),
    ("context", "Context"),
];

/// The vault's notes: relative path -> content.
pub struct Notes {
    /// The files.
    pub files: BTreeMap<String, String>,
    names: BTreeMap<(String, String), String>,
}

impl Notes {
    fn name(&mut self, kind: &str, id: &str, rel: String) {
        self.names.insert((kind.into(), id.into()), rel);
    }

    /// `[[stem|label]]` when the note exists, else the label as text.
    fn link(&self, kind: &str, id: &str, label: &str) -> String {
        match self.names.get(&(kind.into(), id.into())) {
            Some(rel) => format!(
                "[[{}|{}]]",
                super::files::stem(rel),
                line(label).replace('|', "/")
            ),
            None => line(label),
        }
    }

    fn agent(&self, id: &str) -> String {
        self.link("agent", id, id)
    }
}

fn note_name(folder: &str, kind: &str, created: &str, title: &str, id: &str) -> String {
    format!(
        "{folder}/{}-{kind}-{}-{}.md",
        date(created),
        slug(title),
        id.get(..8).unwrap_or(id)
    )
}

/// Reads the ledger of `namespace` and renders every note (`since`: daily notes and
/// reports from then on; ideas, opportunities, memories and agents are always whole).
pub fn render(
    client: &mut impl postgres::GenericClient,
    namespace: &str,
    since: Option<DateTime<Utc>>,
) -> Result<Notes> {
    let ns = &namespace;
    let ideas = rows(
        client,
        "select to_jsonb(i) from ideas i where namespace = $1 order by created_at, id",
        &[ns],
    )?;
    let opps = rows(
        client,
        "select to_jsonb(o) || jsonb_build_object(
                  'score', opportunity_score(o.impact_score, o.confidence_score, o.urgency_score, o.reversibility),
                  'reviews', coalesce((select jsonb_agg(to_jsonb(r) order by r.id) from opportunity_reviews r
                                        where r.opportunity_id = o.id), '[]'))
           from opportunities o where namespace = $1 order by created_at, id",
        &[ns],
    )?;
    let memories = rows(
        client,
        "select to_jsonb(m) from memories m where namespace = $1 and status in ('active', 'superseded')
          order by created_at, id",
        &[ns],
    )?;
    let agents = rows(
        client,
        "select to_jsonb(a) || jsonb_build_object(
                  'orders', coalesce((select jsonb_agg(jsonb_build_object(
                      'name', o.order_name, 'cron', o.cron, 'timezone', o.timezone, 'enabled', o.enabled,
                      'last', (select jsonb_build_object('status', r.status, 'scheduled_for', r.scheduled_for)
                                 from standing_order_runs r
                                where r.namespace = o.namespace and r.agent_id = o.agent_id
                                  and r.order_name = o.order_name
                                order by r.scheduled_for desc limit 1)) order by o.order_name)
                    from standing_orders o where o.namespace = a.namespace and o.agent_id = a.agent_id), '[]'),
                  'open', coalesce((select jsonb_agg(jsonb_build_object('id', j.id, 'status', j.status,
                      'subject', j.subject, 'created_at', j.created_at) order by j.created_at, j.id)
                    from (select * from jobs j where j.namespace = a.namespace and j.target_agent = a.agent_id
                            and j.status not in ('succeeded', 'dead', 'cancelled')
                          order by j.created_at, j.id limit 20) j), '[]'),
                  'recent', coalesce((select jsonb_agg(jsonb_build_object('id', j.id, 'status', j.status,
                      'subject', j.subject, 'completed_at', j.completed_at, 'summary', j.summary)
                      order by j.completed_at desc, j.id)
                    from (select * from jobs j where j.namespace = a.namespace and j.target_agent = a.agent_id
                            and j.completed_at is not null
                          order by j.completed_at desc, j.id limit 10) j), '[]'))
           from agents a where namespace = $1 order by agent_id",
        &[ns],
    )?;
    // The jobs notes link to: conversions of opportunities, and memories' sources.
    let job_ids: Vec<uuid::Uuid> = opps
        .iter()
        .filter_map(|o| o["converted_job_id"].as_str())
        .chain(memories.iter().flat_map(|m| {
            m["source_refs"]["jobs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
        }))
        .filter_map(|id| uuid::Uuid::parse_str(id).ok())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let jobs = rows(
        client,
        "select to_jsonb(j) from jobs j where namespace = $1 and id = any($2) order by created_at, id",
        &[ns, &job_ids],
    )?;

    let mut notes = Notes {
        files: BTreeMap::new(),
        names: BTreeMap::new(),
    };
    for i in &ideas {
        let rel = note_name(
            "02 Ideas",
            "idea",
            s(i, "created_at"),
            s(i, "title"),
            s(i, "id"),
        );
        notes.name("idea", s(i, "id"), rel);
    }
    for o in &opps {
        let rel = note_name(
            "03 Opportunities",
            "opportunity",
            s(o, "created_at"),
            s(o, "title"),
            s(o, "id"),
        );
        notes.name("opportunity", s(o, "id"), rel);
    }
    for m in &memories {
        let folder = if s(m, "status") == "superseded" {
            "Superseded"
        } else {
            MEMORY_FOLDERS
                .iter()
                .find(|(k, _)| *k == s(m, "kind"))
                .map(|(_, f)| *f)
                .unwrap_or("Other")
        };
        let rel = note_name(
            &format!("04 Memories/{folder}"),
            "memory",
            s(m, "created_at"),
            s(m, "title"),
            s(m, "id"),
        );
        notes.name("memory", s(m, "id"), rel);
    }
    for j in &jobs {
        let rel = note_name(
            "08 Jobs",
            "job",
            s(j, "created_at"),
            s(j, "subject"),
            s(j, "id"),
        );
        notes.name("job", s(j, "id"), rel);
    }
    for a in &agents {
        notes.name(
            "agent",
            s(a, "agent_id"),
            format!("06 Agents/{}.md", slug(s(a, "agent_id"))),
        );
    }

    for i in &ideas {
        let text = idea(&notes, namespace, i);
        notes.files.insert(
            notes.names[&("idea".into(), s(i, "id").into())].clone(),
            text,
        );
    }
    for o in &opps {
        let text = opportunity(&notes, namespace, o, &jobs);
        notes.files.insert(
            notes.names[&("opportunity".into(), s(o, "id").into())].clone(),
            text,
        );
    }
    // Successors by the memory they supersede (one pass, not a search per memory).
    let successors: BTreeMap<&str, &Value> = memories
        .iter()
        .filter_map(|m| m["supersedes_memory_id"].as_str().map(|old| (old, m)))
        .collect();
    for m in &memories {
        let text = memory(&notes, namespace, m, &successors);
        notes.files.insert(
            notes.names[&("memory".into(), s(m, "id").into())].clone(),
            text,
        );
    }
    for j in &jobs {
        let text = job(&notes, namespace, j);
        notes.files.insert(
            notes.names[&("job".into(), s(j, "id").into())].clone(),
            text,
        );
    }
    for a in &agents {
        let text = agent(&notes, namespace, a, &memories);
        notes.files.insert(
            notes.names[&("agent".into(), s(a, "agent_id").into())].clone(),
            text,
        );
    }
    super::daily::add(client, &mut notes.files, namespace, since, &opps)?;
    notes
        .files
        .insert("00 Inbox/README.md".into(), INBOX_README.to_string());
    Ok(notes)
}

const INBOX_README: &str = "---\ngenerated: true\n---\n# Inbox\n\nDrop a note here to propose something. It becomes a candidate the next time the vault is\nexported (or on `agentbus vault ingest`), through the same rules and budgets as an agent's,\nand moves to `Processed/` with a link to what it became. A note that cannot be read stays\nhere with `<name>.error.md` beside it saying why.\n\n```\n---\ntype: idea            # idea | opportunity | memory\nauthor: ann\ntheme: onboarding\n---\n# The title\n\nThe body.\n```\n\nAn opportunity also needs `why_now`, `impact`, `confidence`, `urgency` (1-5),\n`reversibility` (high, medium, low) and `next_step`; a memory needs `kind`, `scope`,\n`subject_key` and `confidence` (it becomes a memory candidate for the curators, never a\nmemory directly). Everything else in this vault is written by agentbus and rewritten on\nevery export: edit it and the edit is lost.\n";

fn idea(notes: &Notes, ns: &str, i: &Value) -> String {
    let mut out = front_matter(&[
        ("id", i["id"].clone()),
        ("kind", json!("idea")),
        ("status", i["status"].clone()),
        ("source_agent", i["source_agent"].clone()),
        ("theme", i["theme"].clone()),
        ("tags", i["tags"].clone()),
        ("created_at", i["created_at"].clone()),
        ("updated_at", i["updated_at"].clone()),
        ("namespace", json!(ns)),
    ]);
    out.push_str(&format!("# {}\n\n", line(s(i, "title"))));
    out.push_str(&format!(
        "Idea from {}, {}.\n\n",
        notes.agent(s(i, "source_agent")),
        when(s(i, "created_at"))
    ));
    out.push_str(&format!(
        "## Summary\n\n{}\n\n## Evidence\n\n{}",
        safe(s(i, "body")),
        bullets(&i["evidence"])
    ));
    if let Some(o) = i["promoted_opportunity_id"].as_str() {
        out.push_str(&format!(
            "\n## Became\n\n{}\n",
            notes.link("opportunity", o, "the opportunity")
        ));
    }
    out
}

fn opportunity(notes: &Notes, ns: &str, o: &Value, jobs: &[Value]) -> String {
    let mut out = front_matter(&[
        ("id", o["id"].clone()),
        ("kind", json!("opportunity")),
        ("status", o["status"].clone()),
        ("source_agent", o["source_agent"].clone()),
        ("theme", o["theme"].clone()),
        ("score", o["score"].clone()),
        ("owner", o["owner_candidate"].clone()),
        ("created_at", o["created_at"].clone()),
        ("updated_at", o["updated_at"].clone()),
        ("namespace", json!(ns)),
        ("idea_id", o["idea_id"].clone()),
        ("job_id", o["converted_job_id"].clone()),
    ]);
    out.push_str(&format!("# {}\n\n## Summary\n\n", line(s(o, "title"))));
    out.push_str(&format!(
        "Opportunity from {}, {}; score {} (impact {}, confidence {}, urgency {}, reversibility {}).\n\n",
        notes.agent(s(o, "source_agent")),
        when(s(o, "created_at")),
        o["score"],
        o["impact_score"],
        o["confidence_score"],
        o["urgency_score"],
        s(o, "reversibility")
    ));
    out.push_str(&format!(
        "## Evidence\n\n{}\n## Why it matters\n\n{}\n\n## Next step\n\n{}\n",
        bullets(&o["evidence"]),
        safe(s(o, "why_now")),
        safe(s(o, "suggested_next_step"))
    ));
    if let Some(idea) = o["idea_id"].as_str() {
        out.push_str(&format!(
            "\nFrom {}.\n",
            notes.link("idea", idea, "the idea")
        ));
    }
    let reviews = o["reviews"].as_array().cloned().unwrap_or_default();
    if !reviews.is_empty() {
        out.push_str("\n## Reviews\n\n");
        for r in &reviews {
            out.push_str(&format!(
                "- {} {} by {}: {}\n",
                when(s(r, "created_at")),
                s(r, "decision"),
                line(s(r, "reviewer")),
                line(s(r, "notes"))
            ));
        }
    }
    if let Some(job) = o["converted_job_id"].as_str() {
        let outcome = jobs
            .iter()
            .find(|j| s(j, "id") == job)
            .map(|j| {
                format!(
                    "{}{}",
                    s(j, "status"),
                    j["summary"]
                        .as_str()
                        .map(|t| format!(": {}", line(t)))
                        .unwrap_or_default()
                )
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "\n## Became\n\n{} ({outcome})\n",
            notes.link("job", job, "the job")
        ));
    }
    out
}

fn memory(notes: &Notes, ns: &str, m: &Value, successors: &BTreeMap<&str, &Value>) -> String {
    let mut out = front_matter(&[
        ("id", m["id"].clone()),
        ("kind", json!("memory")),
        ("memory_kind", m["kind"].clone()),
        ("status", m["status"].clone()),
        ("scope", m["scope"].clone()),
        ("subject_key", m["subject_key"].clone()),
        ("confidence", m["confidence_score"].clone()),
        ("visibility", m["visibility"].clone()),
        ("owner", m["owner_agent"].clone()),
        ("created_at", m["created_at"].clone()),
        ("updated_at", m["updated_at"].clone()),
        ("namespace", json!(ns)),
        ("source_refs", m["source_refs"].clone()),
    ]);
    out.push_str(&format!(
        "# {}\n\n{}\n\n",
        line(s(m, "title")),
        safe(s(m, "body"))
    ));
    if let Some(old) = m["supersedes_memory_id"].as_str() {
        out.push_str(&format!(
            "Supersedes {}.\n\n",
            notes.link("memory", old, "an earlier memory")
        ));
    }
    if let Some(new) = successors.get(s(m, "id")) {
        out.push_str(&format!(
            "Superseded by {}.\n\n",
            notes.link("memory", s(new, "id"), s(new, "title"))
        ));
    }
    let sources: Vec<String> = m["source_refs"]["jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|j| notes.link("job", j, &format!("job {}", j.get(..8).unwrap_or(j))))
        .collect();
    if !sources.is_empty() {
        out.push_str(&format!(
            "## Sources\n\n{}\n",
            sources
                .iter()
                .map(|x| format!("- {x}\n"))
                .collect::<String>()
        ));
    }
    out
}

fn job(notes: &Notes, ns: &str, j: &Value) -> String {
    let mut out = front_matter(&[
        ("id", j["id"].clone()),
        ("kind", json!("job")),
        ("status", j["status"].clone()),
        ("target_agent", j["target_agent"].clone()),
        ("job_type", j["job_type"].clone()),
        ("created_at", j["created_at"].clone()),
        ("completed_at", j["completed_at"].clone()),
        ("namespace", json!(ns)),
    ]);
    out.push_str(&format!(
        "# {}\n\nFor {}, {}; {}.\n",
        line(s(j, "subject")),
        notes.agent(s(j, "target_agent")),
        when(s(j, "created_at")),
        s(j, "status")
    ));
    if let Some(summary) = j["summary"].as_str() {
        out.push_str(&format!("\n{}\n", safe(summary)));
    }
    out.push_str(&format!(
        "\n`agentbus trace {}` tells its whole story.\n",
        s(j, "id")
    ));
    out
}

fn agent(notes: &Notes, ns: &str, a: &Value, memories: &[Value]) -> String {
    let id = s(a, "agent_id");
    let mut out = front_matter(&[
        ("id", json!(id)),
        ("kind", json!("agent")),
        ("role", a["role"].clone()),
        ("max_concurrency", a["max_concurrency"].clone()),
        ("wake_mode", a["wake_mode"].clone()),
        ("paused", a["paused"].clone()),
        ("fleet", a["fleet"].clone()),
        ("namespace", json!(ns)),
    ]);
    out.push_str(&format!("# {}\n\n{}\n\n", line(id), line(s(a, "role"))));
    out.push_str("## Standing orders\n\n");
    let orders = a["orders"].as_array().cloned().unwrap_or_default();
    if orders.is_empty() {
        out.push_str("- (none)\n");
    }
    for o in &orders {
        let last = match o["last"].as_object() {
            Some(_) => format!(
                "last {} for {}",
                s(&o["last"], "status"),
                when(s(&o["last"], "scheduled_for"))
            ),
            None => "never ran".into(),
        };
        out.push_str(&format!(
            "- {} `{}` ({}){}: {last}\n",
            line(s(o, "name")),
            line(s(o, "cron")),
            s(o, "timezone"),
            if o["enabled"] == json!(false) {
                ", disabled"
            } else {
                ""
            }
        ));
    }
    for (title, key, at) in [
        ("Open work", "open", "created_at"),
        ("Recent work", "recent", "completed_at"),
    ] {
        out.push_str(&format!("\n## {title}\n\n"));
        let list = a[key].as_array().cloned().unwrap_or_default();
        if list.is_empty() {
            out.push_str("- (none)\n");
        }
        for j in &list {
            out.push_str(&format!(
                "- {} {} {} ({})\n",
                when(s(j, at)),
                s(j, "status"),
                notes.link("job", s(j, "id"), s(j, "subject")),
                s(j, "id").get(..8).unwrap_or("")
            ));
        }
    }
    let mine: Vec<&Value> = memories
        .iter()
        .filter(|m| {
            s(m, "status") == "active"
                && (s(m, "owner_agent") == id
                    || (s(m, "scope") == "agent" && s(m, "subject_key") == id))
        })
        .collect();
    out.push_str("\n## Memories\n\n");
    if mine.is_empty() {
        out.push_str("- (none)\n");
    }
    for m in mine {
        out.push_str(&format!(
            "- {}\n",
            notes.link("memory", s(m, "id"), s(m, "title"))
        ));
    }
    out
}

/// ISO week label of a timestamp (`2026-W16`).
pub fn week(ts: &DateTime<Utc>) -> String {
    let w = ts.iso_week();
    format!("{}-W{:02}", w.year(), w.week())
}
