//! `agentbus fleet import-folder`: an agent kept as a folder of `agent.md` (front matter
//! and system prompt), `config.yaml` (tools and schedules), `.env` and `memory/` becomes an
//! agent folder of a fleet. `.env` is never opened; what has no place in agentbus is
//! reported, not silently lost.

use std::path::{Path, PathBuf};

use serde::Serialize;
use yaml_rust2::{Yaml, YamlLoader};

use super::requests::load_fleet;
use super::scaffold::{agentbus_section, capitalise, write_folder};
use crate::error::{Error, Result};

/// Something of the source with no place in agentbus, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Dropped {
    /// What (`agent.md temperature`, `config.yaml tools.telegram-bot.config`).
    pub what: String,
    /// Why it was not carried over.
    pub why: String,
}

/// What `import-folder` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Imported {
    /// The new agent's folder.
    pub dir: PathBuf,
    /// Its id.
    pub id: String,
    /// Files written.
    pub files: Vec<PathBuf>,
    /// Schedules that became standing orders.
    pub standing_orders: usize,
    /// Tools listed in AGENTS.md.
    pub tools: usize,
    /// What was not carried over.
    pub dropped: Vec<Dropped>,
    /// Files never read (`.env`).
    pub not_read: Vec<String>,
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| Error::not_found(format!("cannot read {}: {e}", path.display())))
}

fn yaml(text: &str, what: &str) -> Result<Yaml> {
    let docs = YamlLoader::load_from_str(text)
        .map_err(|e| Error::usage(format!("{what}: not YAML: {e}")))?;
    Ok(docs.into_iter().next().unwrap_or(Yaml::Null))
}

/// agent.md: its front matter (YAML between `---` lines) and its body.
pub(crate) fn split_front_matter(text: &str) -> Result<(Yaml, String)> {
    let Some(rest) = text.strip_prefix("---\n") else {
        return Ok((Yaml::Null, text.to_string()));
    };
    let Some(end) = rest.find("\n---") else {
        return Err(Error::usage(
            "agent.md: front matter starts with --- but never ends",
        ));
    };
    let front = yaml(&rest[..end], "agent.md front matter")?;
    let body = rest[end + 4..].trim_start_matches(['-', '\n']).to_string();
    Ok((front, body))
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn scalar(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(n) => Some(n.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Imports the agent folder `src` into the fleet `fleet_dir` as `id` (default: the source
/// folder's name). Writes beside and renames into place; the whole fleet must validate
/// afterwards, else the folder is removed and the problems are returned.
pub fn import_folder(src: &Path, fleet_dir: &Path, id: Option<&str>) -> Result<Imported> {
    let id = match id {
        Some(id) => id.to_string(),
        None => src
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default(),
    };
    super::requests::check_id(&id)?;
    load_fleet(fleet_dir)?;
    let dir = fleet_dir.join(&id);
    if dir.exists() {
        return Err(Error::conflict(format!("{} already exists", dir.display())));
    }
    let mut dropped = Vec::new();
    let mut drop = |what: String, why: &str| {
        dropped.push(Dropped {
            what,
            why: why.to_string(),
        })
    };

    let (front, body) = split_front_matter(&read(&src.join("agent.md"))?)?;
    let name = front["name"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| capitalise(&id));
    let role = front["role"]
        .as_str()
        .or_else(|| front["description"].as_str())
        .or_else(|| {
            body.lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with('#'))
        })
        .map(str::to_string)
        .unwrap_or_else(|| format!("Imported from {}", src.display()));
    if name.contains('\n') || name.trim().is_empty() {
        return Err(Error::usage("agent.md: name must be one line of text"));
    }
    let model = front["model"].as_str().map(|m| {
        if m.contains('/') {
            m.to_string()
        } else {
            format!("anthropic/{m}")
        }
    });
    if let Some(map) = front.as_hash() {
        for key in map.keys().filter_map(Yaml::as_str) {
            if !matches!(key, "name" | "role" | "description" | "model") {
                drop(
                    format!("agent.md {key}"),
                    "the gateway sets model parameters; agentbus does not carry them",
                );
            }
        }
    }

    let config = match std::fs::read_to_string(src.join("config.yaml")) {
        Ok(text) => yaml(&text, "config.yaml")?,
        Err(_) => Yaml::Null,
    };
    let mut orders = String::new();
    let mut order_count = 0;
    for s in config["schedules"]
        .as_vec()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let (Some(order), Some(cron), Some(action)) =
            (scalar(&s["id"]), scalar(&s["cron"]), scalar(&s["action"]))
        else {
            drop(
                format!(
                    "config.yaml schedule {}",
                    scalar(&s["id"]).unwrap_or_default()
                ),
                "a schedule needs id, cron and action",
            );
            continue;
        };
        let enabled = s["enabled"].as_bool().unwrap_or(true);
        orders.push_str(&format!(
            "\n[[standing_orders]]\nname = {}\ncron = {}\nmessage = {}\nenabled = {enabled}\ncatch_up = \"skip\"\nfired_by = \"supervisor\"\n",
            quote(&order),
            quote(&cron),
            quote(&action),
        ));
        order_count += 1;
    }
    let mut tools = String::new();
    let mut tool_count = 0;
    for t in config["tools"]
        .as_vec()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let tid = scalar(&t["id"]).unwrap_or_else(|| "?".into());
        let kind = scalar(&t["type"]).unwrap_or_else(|| "?".into());
        let enabled = t["enabled"].as_bool().unwrap_or(true);
        tools.push_str(&format!(
            "- `{tid}` ({kind}){}\n",
            if enabled { "" } else { ", disabled" }
        ));
        tool_count += 1;
        if !t["config"].is_badvalue() && !t["config"].is_null() {
            drop(
                format!("config.yaml tools.{tid}.config"),
                "not copied: tool settings may hold secrets; give them to the gateway's environment",
            );
        }
    }
    let not_read: Vec<String> = [".env"]
        .into_iter()
        .filter(|f| src.join(f).exists())
        .map(str::to_string)
        .collect();

    let mut agent_toml = format!(
        "# Imported from an agent folder (agent.md, config.yaml); every key is documented in\n# agentbus-fleet(5).\nid = {}\nname = {}\nrole = {}\n",
        quote(&id),
        quote(&name),
        quote(role.lines().next().unwrap_or_default()),
    );
    if let Some(m) = &model {
        agent_toml.push_str(&format!("model = {}\n", quote(m)));
    }
    agent_toml.push_str(&format!(
        "max_concurrency = 1\nhandoffs = []\n\n[wake]\nmode = \"hook\"\nagent_id = {}\ntimeout_seconds = 600\n{orders}",
        quote(&id)
    ));
    let mut agents_md = format!("# {name}\n\n{}\n\n", body.trim());
    if !tools.is_empty() {
        agents_md.push_str(&format!(
            "## Tools (from config.yaml)\n\nConnected in the gateway, not by agentbus:\n\n{tools}\n"
        ));
    }
    agents_md.push_str(&agentbus_section(&name));

    let mut files: Vec<(PathBuf, String)> = vec![
        (PathBuf::from("agent.toml"), agent_toml),
        (PathBuf::from("AGENTS.md"), agents_md),
        (
            PathBuf::from("MEMORY.md"),
            format!("# {name}: memory\n\nNotes carried over from the old folder are in memory/.\n"),
        ),
    ];
    if let Ok(rd) = std::fs::read_dir(src.join("memory")) {
        let mut notes: Vec<PathBuf> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        notes.sort();
        for note in notes {
            let plain = std::fs::symlink_metadata(&note).is_ok_and(|m| m.file_type().is_file());
            let md = note.extension().is_some_and(|e| e == "md");
            match (plain && md, note.file_name()) {
                (true, Some(file)) => files.push((Path::new("memory").join(file), read(&note)?)),
                _ => drop(
                    format!(
                        "memory/{}",
                        note.file_name().unwrap_or_default().to_string_lossy()
                    ),
                    "only plain .md files are carried over",
                ),
            }
        }
    }

    let written = write_folder(fleet_dir, &id, &files)?;
    if let Err(e) = load_fleet(fleet_dir) {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(e);
    }
    Ok(Imported {
        files: written,
        dir,
        id,
        standing_orders: order_count,
        tools: tool_count,
        dropped,
        not_read,
    })
}
