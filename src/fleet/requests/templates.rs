//! Agent templates: `<fleet>/templates/<name>/` holds agent.toml, AGENTS.md, HEARTBEAT.md
//! and MEMORY.md with `{{id}}`, `{{name}}`, `{{role}}` and `{{requested_by}}` placeholders.

use std::path::Path;

use crate::error::{Error, Result};

/// The files a template may hold (anything else in its folder is ignored).
const FILES: [&str; 4] = ["agent.toml", "AGENTS.md", "HEARTBEAT.md", "MEMORY.md"];

/// An agent id: a-z, 0-9, - and _ (a folder name and an identifier).
pub(crate) fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && crate::ledger::validate::is_name(id);
    if ok {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "agent id {id:?} may hold only a-z, 0-9, - and _ (1-64, starting with a letter or digit)"
        )))
    }
}

/// The template's files, as (file name, text). A template name is a name (no paths).
pub(super) fn read(fleet_dir: &Path, template: &str) -> Result<Vec<(&'static str, String)>> {
    check_id(template).map_err(|_| {
        Error::usage(format!(
            "template {template:?} may hold only a-z, 0-9, - and _"
        ))
    })?;
    let dir = fleet_dir.join("templates").join(template);
    if !dir.join("agent.toml").is_file() {
        let known: Vec<String> = std::fs::read_dir(fleet_dir.join("templates"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.path().join("agent.toml").is_file())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        return Err(Error::not_found(format!(
            "fleet has no template {template:?} (templates/{template}/agent.toml); it has: {}",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )));
    }
    let mut out = Vec::new();
    for f in FILES {
        let path = dir.join(f);
        // A symlink could point anywhere: templates are plain files.
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_file() => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| Error::failure(format!("cannot read {}: {e}", path.display())))?;
                out.push((f, text));
            }
            Ok(_) => {
                return Err(Error::config(format!(
                    "{} is not a plain file",
                    path.display()
                )))
            }
            Err(_) => {}
        }
    }
    Ok(out)
}

/// What fills the placeholders.
pub(super) struct Fill<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub role: &'a str,
    pub requested_by: &'a str,
}

/// The template's files with the placeholders filled: TOML-quoted in agent.toml (write
/// `id = {{id}}`), as text in the Markdown files.
pub(super) fn render(files: &[(&'static str, String)], fill: &Fill<'_>) -> Vec<(String, String)> {
    let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
    files
        .iter()
        .map(|(name, text)| {
            let toml = name.ends_with(".toml");
            let v = |s: &str| if toml { quote(s) } else { s.to_string() };
            let out = text
                .replace("{{id}}", &v(fill.id))
                .replace("{{name}}", &v(fill.name))
                .replace("{{role}}", &v(fill.role))
                .replace("{{requested_by}}", &v(fill.requested_by));
            (name.to_string(), out)
        })
        .collect()
}
