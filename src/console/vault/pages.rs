//! One note per row: an idea, an opportunity, a memory, a job, an agent.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::text::{bullets, front_matter, line, s, safe, when};

/// The vault's notes, by relative path.
pub struct Notes {
    /// The files: rendered, or kept as they are.
    pub files: BTreeMap<String, super::files::Planned>,
    /// Kind, then id, then the note's path.
    pub(super) names: BTreeMap<String, BTreeMap<String, String>>,
}

impl Notes {
    pub(super) fn name(&mut self, kind: &str, id: &str, rel: String) {
        self.names
            .entry(kind.to_string())
            .or_default()
            .insert(id.to_string(), rel);
    }

    pub(super) fn rel(&self, kind: &str, id: &str) -> Option<&String> {
        self.names.get(kind)?.get(id)
    }

    /// The stem of a note, or `-` when there is none: part of the key of notes linking it.
    pub(super) fn stem_or_dash(&self, kind: &str, id: &str) -> String {
        self.rel(kind, id)
            .map(|r| super::files::stem(r))
            .unwrap_or_else(|| "-".into())
    }

    /// `[[stem|label]]` when the note exists, else the label as text.
    pub(super) fn link(&self, kind: &str, id: &str, label: &str) -> String {
        match self.rel(kind, id) {
            Some(rel) => format!(
                "[[{}|{}]]",
                super::files::stem(rel),
                line(label).replace('|', "/")
            ),
            None => line(label),
        }
    }

    pub(super) fn agent(&self, id: &str) -> String {
        self.link("agent", id, id)
    }
}

pub(super) fn idea(notes: &Notes, ns: &str, i: &Value) -> String {
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

pub(super) fn opportunity(notes: &Notes, ns: &str, o: &Value, jobs: &[Value]) -> String {
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

pub(super) fn memory(
    notes: &Notes,
    ns: &str,
    m: &Value,
    successors: &BTreeMap<&str, &Value>,
) -> String {
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

pub(super) fn job(notes: &Notes, ns: &str, j: &Value) -> String {
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

pub(super) fn agent(notes: &Notes, ns: &str, a: &Value, memories: &[Value]) -> String {
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
