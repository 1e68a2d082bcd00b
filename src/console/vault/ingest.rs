//! The inbox: notes a person drops in `00 Inbox/` become ideas, opportunities or memory
//! candidates through the same library calls and budgets as an agent's, one transaction
//! each; the note then moves to `00 Inbox/Processed/` with a link to what it became. A
//! note that cannot be read stays, with `<name>.error.md` beside it.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::json;
use yaml_rust2::Yaml;

use super::files::write_atomically;
use crate::error::{Error, Result};
use crate::lanes::memory::{self, NewCandidate};
use crate::lanes::proactive::{self, NewIdea, NewOpportunity, Reversibility};

/// The inbox folder.
pub const INBOX: &str = "00 Inbox";

/// What became of one inbox note.
#[derive(Debug, Clone, Serialize)]
pub struct Ingested {
    /// The note's file name.
    pub file: String,
    /// idea, opportunity or memory_candidate; `None` when it could not be read.
    pub became: Option<String>,
    /// The new row's id.
    pub id: Option<String>,
    /// Why not, when it could not be read.
    pub error: Option<String>,
}

fn field(front: &Yaml, key: &str) -> Option<String> {
    match &front[key] {
        Yaml::String(s) | Yaml::Real(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Yaml::Integer(n) => Some(n.to_string()),
        _ => None,
    }
}

fn need(front: &Yaml, key: &str) -> Result<String> {
    field(front, key).ok_or_else(|| Error::usage(format!("the front matter needs `{key}`")))
}

fn score(front: &Yaml, key: &str) -> Result<i32> {
    need(front, key)?
        .parse::<i32>()
        .ok()
        .filter(|n| (1..=5).contains(n))
        .ok_or_else(|| Error::usage(format!("`{key}` must be 1 to 5")))
}

/// Title and body: `title:` in the front matter, else the first `# ` heading.
fn title_and_body(front: &Yaml, body: &str) -> Result<(String, String)> {
    if let Some(t) = field(front, "title") {
        return Ok((t, body.trim().to_string()));
    }
    let mut lines = body.lines();
    let mut title = None;
    let mut rest = Vec::new();
    for l in lines.by_ref() {
        if title.is_none() {
            if let Some(t) = l.strip_prefix("# ") {
                title = Some(t.trim().to_string());
                continue;
            }
            if l.trim().is_empty() {
                continue;
            }
        }
        rest.push(l);
    }
    let title =
        title.ok_or_else(|| Error::usage("the note needs a `title:` or a `# Title` heading"))?;
    Ok((title, rest.join("\n").trim().to_string()))
}

/// Files one note; returns what it became: (kind, id, created_at, title).
fn file_note(
    tx: &mut postgres::Transaction<'_>,
    namespace: &str,
    name: &str,
    text: &str,
) -> Result<(String, String, String, String)> {
    let (front, body) = crate::fleet::import::split_front_matter(text)?;
    let kind = need(&front, "type")?;
    let author = field(&front, "author").unwrap_or_else(|| "inbox".into());
    let source_agent =
        crate::ledger::validate::name_from(&format!("human:{author}"), 64, "human:inbox");
    let (title, body) = title_and_body(&front, &body)?;
    let theme = field(&front, "theme").unwrap_or_else(|| "inbox".into());
    let evidence = json!({"inbox_note": name, "author": author});
    match kind.as_str() {
        "idea" => {
            let made = proactive::create_idea(
                tx,
                &NewIdea {
                    namespace: namespace.into(),
                    source_agent,
                    theme,
                    title: title.clone(),
                    body: if body.is_empty() { title.clone() } else { body },
                    evidence,
                    tags: vec!["inbox".into()],
                    dedupe_key: None,
                },
            )?;
            let row = serde_json::to_value(&made.row).unwrap_or_default();
            Ok((
                "idea".into(),
                row["id"].as_str().unwrap_or("").into(),
                row["created_at"].as_str().unwrap_or("").into(),
                title,
            ))
        }
        "opportunity" => {
            let reversibility = match need(&front, "reversibility")?.as_str() {
                "high" => Reversibility::High,
                "medium" => Reversibility::Medium,
                "low" => Reversibility::Low,
                _ => return Err(Error::usage("`reversibility` must be high, medium or low")),
            };
            let made = proactive::create_opportunity(
                tx,
                &NewOpportunity {
                    namespace: namespace.into(),
                    source_agent,
                    theme,
                    title: title.clone(),
                    why_now: need(&front, "why_now")?,
                    evidence,
                    impact_score: score(&front, "impact")?,
                    confidence_score: score(&front, "confidence")?,
                    urgency_score: score(&front, "urgency")?,
                    reversibility,
                    owner_candidate: field(&front, "owner"),
                    suggested_next_step: need(&front, "next_step")?,
                    dedupe_key: None,
                },
                false,
            )?;
            let row = serde_json::to_value(&made).unwrap_or_default();
            Ok((
                "opportunity".into(),
                row["id"].as_str().unwrap_or("").into(),
                row["created_at"].as_str().unwrap_or("").into(),
                title,
            ))
        }
        "memory" => {
            let made = memory::create_candidate(
                tx,
                &NewCandidate {
                    namespace: namespace.into(),
                    source_agent,
                    kind: need(&front, "kind")?,
                    scope: need(&front, "scope")?,
                    subject_key: need(&front, "subject_key")?,
                    title: title.clone(),
                    body: if body.is_empty() { title.clone() } else { body },
                    evidence,
                    source_refs: json!({"inbox": [name]}),
                    confidence_score: score(&front, "confidence")?,
                    stability: field(&front, "stability").unwrap_or_else(|| "medium".into()),
                    visibility: "shared".into(),
                    dedupe_key: None,
                },
            )?;
            let row = serde_json::to_value(&made).unwrap_or_default();
            let row = if row.get("row").is_some() {
                row["row"].clone()
            } else {
                row
            };
            Ok((
                "memory_candidate".into(),
                row["id"].as_str().unwrap_or("").into(),
                row["created_at"].as_str().unwrap_or("").into(),
                title,
            ))
        }
        other => Err(Error::usage(format!(
            "`type: {other}` is not idea, opportunity or memory"
        ))),
    }
}

fn processed_path(inbox: &Path, name: &str) -> PathBuf {
    let dir = inbox.join("Processed");
    let mut path = dir.join(name);
    let mut n = 1;
    while path.exists() {
        path = dir.join(format!("{}-{n}.md", name.trim_end_matches(".md")));
        n += 1;
    }
    path
}

/// Files every note of `dir`'s inbox (each in its own transaction); returns what became
/// of each. The vault's own README and error notes are skipped.
pub fn ingest(client: &mut postgres::Client, dir: &Path, namespace: &str) -> Result<Vec<Ingested>> {
    let inbox = dir.join(INBOX);
    let mut names: Vec<String> = match std::fs::read_dir(&inbox) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                n.ends_with(".md")
                    && n != "README.md"
                    && !n.ends_with(".error.md")
                    && !n.starts_with('.')
            })
            .collect(),
        Err(_) => return Ok(Vec::new()),
    };
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let path = inbox.join(&name);
        let error_path = inbox.join(format!("{}.error.md", name.trim_end_matches(".md")));
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                out.push(Ingested {
                    file: name,
                    became: None,
                    id: None,
                    error: Some(e.to_string()),
                });
                continue;
            }
        };
        match crate::db::transaction(client, |tx| file_note(tx, namespace, &name, &text)) {
            Ok((kind, id, created, title)) => {
                let link = if kind == "memory_candidate" {
                    format!("memory candidate {id} (for the curators: `agentbus show-memory` once promoted)")
                } else {
                    format!(
                        "[[{}]]",
                        super::notes::note_stem(&kind, &created, &title, &id)
                    )
                };
                let moved = format!(
                    "{}\n\n---\nFiled by agentbus as {kind}: {link}\n",
                    text.trim_end()
                );
                write_atomically(&processed_path(&inbox, &name), moved.as_bytes())?;
                let _ = std::fs::remove_file(&path);
                let _ = std::fs::remove_file(&error_path);
                out.push(Ingested {
                    file: name,
                    became: Some(kind),
                    id: Some(id),
                    error: None,
                });
            }
            Err(e) => {
                let note = format!(
                    "# Not filed: {name}\n\n{}\n\nFix the note and export again (or run `agentbus vault ingest`).\n",
                    e.message
                );
                if std::fs::read_to_string(&error_path).ok().as_deref() != Some(note.as_str()) {
                    write_atomically(&error_path, note.as_bytes())?;
                }
                out.push(Ingested {
                    file: name,
                    became: None,
                    id: None,
                    error: Some(e.message.clone()),
                });
            }
        }
    }
    Ok(out)
}
