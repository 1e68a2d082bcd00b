//! The notes of the vault, rendered from the ledger: ideas, opportunities, memories, the
//! jobs they link to, agents, daily notes, weekly reports and the health snapshot. Every
//! note's name and content depend only on rows (times are written as timestamps), and a
//! link is written as `[[...]]` only when its note exists.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Utc};
use serde_json::{json, Value};

use super::cache::{self, Cache, Light};
use super::pages::{agent, idea, job, memory, opportunity, Notes};
use super::text::{date, s, slug};
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

/// A row's note stem, as `[[links]]` name it: `2026-04-15-idea-<slug>-<id8>`.
pub(super) fn note_stem(kind: &str, created: &str, title: &str, id: &str) -> String {
    format!(
        "{}-{kind}-{}-{}",
        date(created),
        slug(title),
        id.get(..8).unwrap_or(id)
    )
}

fn note_name(folder: &str, kind: &str, created: &str, title: &str, id: &str) -> String {
    format!("{folder}/{}.md", note_stem(kind, created, title, id))
}

/// A row's UTC day, as the light queries select it.
const DAY: &str = "to_char(x.created_at at time zone 'UTC', 'YYYY-MM-DD')";

/// The rendering's own version: a change to how notes are written must change every key.
const RENDER: &str = concat!("agentbus ", env!("CARGO_PKG_VERSION"), " vault 1");

fn light(
    client: &mut impl postgres::GenericClient,
    sql: &str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
    links: usize,
) -> Result<Vec<Light>> {
    let mut out = Vec::new();
    for r in client.query(sql, params)? {
        let mut l = Light {
            id: r.try_get(0)?,
            date: r.try_get(1)?,
            title: r.try_get(2)?,
            agent: r.try_get(3)?,
            links: Vec::new(),
            md5: r.try_get(4)?,
        };
        for i in 0..links {
            l.links.push(r.try_get(5 + i)?);
        }
        out.push(l);
    }
    Ok(out)
}

fn key(parts: &[&str]) -> String {
    super::files::sha256(parts.join("\u{1f}").as_bytes())
}

/// Reads the ledger of `namespace` and plans every note: rendered again when its rows or
/// the notes it links to changed since the manifest (`before`) recorded it, kept
/// otherwise (`since`: daily notes and reports from then on).
pub fn render(
    client: &mut impl postgres::GenericClient,
    namespace: &str,
    since: Option<DateTime<Utc>>,
    dir: &std::path::Path,
    before: &BTreeMap<String, super::files::Known>,
) -> Result<(Notes, Option<Cache>)> {
    use super::files::{keeps, Planned};
    let ns = &namespace;
    let made_by = format!("{RENDER}\u{1f}{namespace}\u{1f}{since:?}");
    let old = cache::load(dir, &made_by);
    let now = cache::fingerprints(client, namespace)?;
    let reuse = |tables: &[&str]| old.unchanged(&now, tables);
    let ideas = if reuse(&["ideas"]) {
        old.ideas.clone()
    } else {
        light(
            client,
            &format!(
                "select x.id::text, {DAY}, x.title, x.source_agent, md5(x::text),
                         x.promoted_opportunity_id::text
                    from ideas x where namespace = $1 order by created_at, id"
            ),
            &[ns],
            1,
        )?
    };
    let opps = if reuse(&["opportunities", "opportunity_reviews"]) {
        old.opportunities.clone()
    } else {
        light(
        client,
        &format!("select x.id::text, {DAY}, x.title, x.source_agent,
                         md5(x::text || coalesce((select string_agg(r::text, ',' order by r.id)
                                                 from opportunity_reviews r where r.opportunity_id = x.id), '')),
                         x.idea_id::text, x.converted_job_id::text
                    from opportunities x where namespace = $1 order by created_at, id"),
        &[ns],
        2,
    )?
    };
    // links: supersedes, kind, status, owner, scope, subject, source jobs
    let memories = if reuse(&["memories"]) {
        old.memories.clone()
    } else {
        light(
        client,
        &format!("select x.id::text, {DAY}, x.title, coalesce(x.owner_agent, ''), md5(x::text),
                         x.supersedes_memory_id::text, x.kind::text, x.status::text, x.scope::text, x.subject_key,
                         (select string_agg(j, ' ') from jsonb_array_elements_text(
                            case when jsonb_typeof(x.source_refs -> 'jobs') = 'array'
                                 then x.source_refs -> 'jobs' else '[]'::jsonb end) j)
                    from memories x where namespace = $1 and status in ('active', 'superseded')
                   order by created_at, id"),
        &[ns],
        6,
    )?
    };
    let mem_sources = |m: &Light| -> Vec<String> {
        m.links[5]
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    let job_ids: Vec<uuid::Uuid> = opps
        .iter()
        .filter_map(|o| o.links[1].clone())
        .chain(memories.iter().flat_map(mem_sources))
        .filter_map(|id| uuid::Uuid::parse_str(&id).ok())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let jobs = light(
        client,
        &format!(
            "select x.id::text, {DAY}, x.subject, x.target_agent, md5(x::text)
                    from jobs x where namespace = $1 and id = any($2) order by created_at, id"
        ),
        &[ns, &job_ids],
        0,
    )?;
    let agent_ids: Vec<String> = client
        .query(
            "select agent_id from agents where namespace = $1 order by agent_id",
            &[ns],
        )?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<std::result::Result<_, _>>()?;

    let mut notes = Notes {
        files: BTreeMap::new(),
        names: BTreeMap::new(),
    };
    for i in &ideas {
        notes.name(
            "idea",
            &i.id,
            note_name("02 Ideas", "idea", &i.date, &i.title, &i.id),
        );
    }
    for o in &opps {
        notes.name(
            "opportunity",
            &o.id,
            note_name("03 Opportunities", "opportunity", &o.date, &o.title, &o.id),
        );
    }
    for m in &memories {
        let folder = if m.links[2].as_deref() == Some("superseded") {
            "Superseded"
        } else {
            MEMORY_FOLDERS
                .iter()
                .find(|(k, _)| Some(*k) == m.links[1].as_deref())
                .map(|(_, f)| *f)
                .unwrap_or("Other")
        };
        notes.name(
            "memory",
            &m.id,
            note_name(
                &format!("04 Memories/{folder}"),
                "memory",
                &m.date,
                &m.title,
                &m.id,
            ),
        );
    }
    for j in &jobs {
        notes.name(
            "job",
            &j.id,
            note_name("08 Jobs", "job", &j.date, &j.title, &j.id),
        );
    }
    for a in &agent_ids {
        notes.name("agent", a, format!("06 Agents/{}.md", slug(a)));
    }
    let job_md5: BTreeMap<&str, &str> = jobs
        .iter()
        .map(|j| (j.id.as_str(), j.md5.as_str()))
        .collect();
    let successors: BTreeMap<&str, &Light> = memories
        .iter()
        .filter_map(|m| m.links[0].as_deref().map(|old| (old, m)))
        .collect();

    // Which notes must be rendered again: their key (rows, and the notes they link to)
    // differs from the one the manifest recorded.
    let mut stale: BTreeMap<&str, Vec<(String, String)>> = BTreeMap::new();
    let mut plan = |notes: &mut Notes, kind: &'static str, id: &str, k: String| {
        let rel = notes.rel(kind, id).cloned().unwrap_or_default();
        if keeps(dir, before, &rel, &k) {
            notes.files.insert(
                rel,
                Planned {
                    text: None,
                    input: Some(k),
                },
            );
        } else {
            stale.entry(kind).or_default().push((id.to_string(), k));
        }
    };
    for i in &ideas {
        let k = key(&[
            RENDER,
            &i.md5,
            &notes.stem_or_dash("agent", &i.agent),
            &notes.stem_or_dash("opportunity", i.links[0].as_deref().unwrap_or("")),
        ]);
        plan(&mut notes, "idea", &i.id, k);
    }
    for o in &opps {
        let job = o.links[1].as_deref().unwrap_or("");
        let k = key(&[
            RENDER,
            &o.md5,
            &notes.stem_or_dash("agent", &o.agent),
            &notes.stem_or_dash("idea", o.links[0].as_deref().unwrap_or("")),
            &notes.stem_or_dash("job", job),
            job_md5.get(job).copied().unwrap_or("-"),
        ]);
        plan(&mut notes, "opportunity", &o.id, k);
    }
    for m in &memories {
        let mut parts = vec![
            RENDER.to_string(),
            m.md5.clone(),
            notes.stem_or_dash("memory", m.links[0].as_deref().unwrap_or("")),
        ];
        if let Some(next) = successors.get(m.id.as_str()) {
            parts.push(notes.stem_or_dash("memory", &next.id));
            parts.push(next.md5.clone());
        }
        for j in mem_sources(m) {
            parts.push(notes.stem_or_dash("job", &j));
        }
        let k = key(&parts.iter().map(String::as_str).collect::<Vec<_>>());
        plan(&mut notes, "memory", &m.id, k);
    }
    for j in &jobs {
        let k = key(&[RENDER, &j.md5, &notes.stem_or_dash("agent", &j.agent)]);
        plan(&mut notes, "job", &j.id, k);
    }
    // Render what is stale, from whole rows fetched for it alone.
    let ids = |kind: &str| -> Vec<uuid::Uuid> {
        stale
            .get(kind)
            .into_iter()
            .flatten()
            .filter_map(|(id, _)| uuid::Uuid::parse_str(id).ok())
            .collect()
    };
    let keys: BTreeMap<(String, String), String> = stale
        .iter()
        .flat_map(|(kind, list)| {
            list.iter()
                .map(move |(id, k)| ((kind.to_string(), id.clone()), k.clone()))
        })
        .collect();
    let rendered = |notes: &mut Notes, kind: &str, id: &str, text: String| {
        let rel = notes.rel(kind, id).cloned().unwrap_or_default();
        let input = keys.get(&(kind.to_string(), id.to_string())).cloned();
        notes.files.insert(
            rel,
            Planned {
                text: Some(text),
                input,
            },
        );
    };
    for i in rows(
        client,
        "select to_jsonb(i) from ideas i where id = any($1)",
        &[&ids("idea")],
    )? {
        let text = idea(&notes, namespace, &i);
        rendered(&mut notes, "idea", s(&i, "id"), text);
    }
    let stale_opps = rows(
        client,
        "select to_jsonb(o) || jsonb_build_object(
                  'score', opportunity_score(o.impact_score, o.confidence_score, o.urgency_score, o.reversibility),
                  'reviews', coalesce((select jsonb_agg(to_jsonb(r) order by r.id) from opportunity_reviews r
                                        where r.opportunity_id = o.id), '[]'))
           from opportunities o where id = any($1)",
        &[&ids("opportunity")],
    )?;
    let outcome_ids: Vec<uuid::Uuid> = stale_opps
        .iter()
        .filter_map(|o| o["converted_job_id"].as_str())
        .filter_map(|id| uuid::Uuid::parse_str(id).ok())
        .collect();
    let outcomes = rows(
        client,
        "select to_jsonb(j) from jobs j where id = any($1)",
        &[&outcome_ids],
    )?;
    for o in &stale_opps {
        let text = opportunity(&notes, namespace, o, &outcomes);
        rendered(&mut notes, "opportunity", s(o, "id"), text);
    }
    let successor_docs: BTreeMap<&str, Value> = successors
        .iter()
        .map(|(old, m)| (*old, json!({"id": m.id, "title": m.title})))
        .collect();
    let successor_refs: BTreeMap<&str, &Value> =
        successor_docs.iter().map(|(k, v)| (*k, v)).collect();
    for m in rows(
        client,
        "select to_jsonb(m) from memories m where id = any($1)",
        &[&ids("memory")],
    )? {
        let text = memory(&notes, namespace, &m, &successor_refs);
        rendered(&mut notes, "memory", s(&m, "id"), text);
    }
    for j in rows(
        client,
        "select to_jsonb(j) from jobs j where id = any($1)",
        &[&ids("job")],
    )? {
        let text = job(&notes, namespace, &j);
        rendered(&mut notes, "job", s(&j, "id"), text);
    }
    // Agents, daily notes, reports and the snapshot are few: rendered again whenever a
    // table they read moved, kept whole otherwise.
    let mut more = BTreeMap::new();
    let keep = |notes: &mut Notes, tables: &[&str], part: &dyn Fn(&str) -> bool| -> bool {
        let kept = reuse(tables)
            .then(|| cache::intact(dir, before, part))
            .flatten();
        for rel in kept.iter().flatten() {
            notes.files.insert(
                rel.clone(),
                Planned {
                    text: None,
                    input: None,
                },
            );
        }
        kept.is_some()
    };
    let agent_tables = [
        "agents",
        "standing_orders",
        "standing_order_runs",
        "jobs",
        "memories",
    ];
    if !keep(&mut notes, &agent_tables, &|rel| {
        rel.starts_with("06 Agents/")
    }) {
        let memory_docs: Vec<Value> = memories
            .iter()
            .map(|m| {
                json!({"id": m.id, "title": m.title, "owner_agent": m.agent, "status": m.links[2],
                       "scope": m.links[3], "subject_key": m.links[4]})
            })
            .collect();
        for a in rows(client, AGENTS_SQL, &[ns])? {
            let text = agent(&notes, namespace, &a, &memory_docs);
            let rel = notes
                .rel("agent", s(&a, "agent_id"))
                .cloned()
                .unwrap_or_default();
            more.insert(rel, text);
        }
    }
    let report = |rel: &str, suffix: &str| rel.starts_with("05 Reports/") && rel.ends_with(suffix);
    let parts = super::daily::Parts {
        days: !keep(&mut notes, &["jobs", "standing_order_runs"], &|rel| {
            rel.starts_with("01 Daily/")
        }),
        bets: !keep(&mut notes, &["opportunities"], &|rel| {
            report(rel, " weekly bets.md")
        }),
        health: !keep(&mut notes, &["jobs", "agents"], &|rel| {
            report(rel, " thinking.md") || rel.starts_with("07 Snapshots/")
        }),
    };
    super::daily::add(client, &mut more, namespace, since, parts)?;
    more.insert("00 Inbox/README.md".to_string(), INBOX_README.to_string());
    for (rel, text) in more {
        notes.files.insert(
            rel,
            Planned {
                text: Some(text),
                input: None,
            },
        );
    }
    // The cache changes only when a table moved (or it was made otherwise).
    let moved = old.made_by != made_by || old.sources != now;
    let cache = moved.then_some(Cache {
        made_by,
        sources: now,
        ideas,
        opportunities: opps,
        memories,
    });
    Ok((notes, cache))
}

/// Per agent: its settings, standing orders with their last run, its 20 oldest open jobs
/// and 10 latest finished (index probes per agent: `jobs_open_by_agent_idx`,
/// `jobs_finished_by_agent_idx`).
const AGENTS_SQL: &str = "select to_jsonb(a) || jsonb_build_object(
          'orders', coalesce((select jsonb_agg(jsonb_build_object(
              'name', o.order_name, 'cron', o.cron, 'timezone', o.timezone, 'enabled', o.enabled,
              'last', (select jsonb_build_object('status', r.status, 'scheduled_for', r.scheduled_for)
                         from standing_order_runs r
                        where r.namespace = o.namespace and r.agent_id = o.agent_id
                          and r.order_name = o.order_name
                        order by r.scheduled_for desc limit 1)) order by o.order_name)
            from standing_orders o where o.namespace = a.namespace and o.agent_id = a.agent_id), '[]'),
          'open', coalesce((select jsonb_agg(jsonb_build_object('id', x.id, 'status', x.status, 'subject', x.subject,
                                                                'created_at', x.created_at) order by x.created_at, x.id)
                              from (select id, status, subject, created_at from jobs j
                                     where j.namespace = a.namespace and j.target_agent = a.agent_id
                                       and j.status not in ('succeeded', 'dead', 'cancelled')
                                     order by created_at, id limit 20) x), '[]'),
          'recent', coalesce((select jsonb_agg(jsonb_build_object('id', x.id, 'status', x.status, 'subject', x.subject,
                                                                  'completed_at', x.completed_at, 'summary', x.summary)
                                               order by x.completed_at desc, x.id)
                                from (select id, status, subject, completed_at, summary from jobs j
                                       where j.namespace = a.namespace and j.target_agent = a.agent_id
                                         and j.completed_at is not null
                                       order by completed_at desc, id limit 10) x), '[]'))
   from agents a where namespace = $1 order by agent_id";

const INBOX_README: &str = "---\ngenerated: true\n---\n# Inbox\n\nDrop a note here to propose something. It becomes a candidate the next time the vault is\nexported (or on `agentbus vault ingest`), through the same rules and budgets as an agent's,\nand moves to `Processed/` with a link to what it became. A note that cannot be read stays\nhere with `<name>.error.md` beside it saying why.\n\n```\n---\ntype: idea            # idea | opportunity | memory\nauthor: ann\ntheme: onboarding\n---\n# The title\n\nThe body.\n```\n\nAn opportunity also needs `why_now`, `impact`, `confidence`, `urgency` (1-5),\n`reversibility` (high, medium, low) and `next_step`; a memory needs `kind`, `scope`,\n`subject_key` and `confidence` (it becomes a memory candidate for the curators, never a\nmemory directly). Everything else in this vault is written by agentbus and rewritten on\nevery export: edit it and the edit is lost.\n";

/// ISO week label of a timestamp (`2026-W16`).
pub fn week(ts: &DateTime<Utc>) -> String {
    let w = ts.iso_week();
    format!("{}-W{:02}", w.year(), w.week())
}
