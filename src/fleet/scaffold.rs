//! `agentbus agent new`: a new agent folder from a template (copy-a-folder modularity).

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::ledger::agents::WakeMode;
use crate::ledger::validate::{check_optional_text, check_required_text};

/// What to scaffold.
#[derive(Debug, Clone)]
pub struct NewAgent {
    /// The fleet folder (holding fleet.toml).
    pub fleet_dir: PathBuf,
    /// The new agent's id (its folder name).
    pub id: String,
    /// Display name (default: the id, capitalised).
    pub name: Option<String>,
    /// Role, one line.
    pub role: String,
    /// How the supervisor wakes it.
    pub wake: WakeMode,
}

/// What was written.
#[derive(Debug, Clone, Serialize)]
pub struct Scaffolded {
    /// The agent folder.
    pub dir: PathBuf,
    /// The files written, in order.
    pub files: Vec<PathBuf>,
}

/// Writes `<fleet>/<id>/{agent.toml, AGENTS.md, HEARTBEAT.md, MEMORY.md}`. Refuses an
/// existing folder (exit 4) and a folder without fleet.toml (exit 3); writes nothing then.
pub fn scaffold(p: &NewAgent) -> Result<Scaffolded> {
    check_required_text("agent id", &p.id)?;
    check_required_text("`role`", &p.role)?;
    check_optional_text("`name`", p.name.as_deref())?;
    if !p
        .id
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err(Error::usage(format!(
            "agent id {:?} may hold only a-z, 0-9, - and _",
            p.id
        )));
    }
    if p.role.contains('\n') {
        return Err(Error::usage("`role` must be one line"));
    }
    if !p.fleet_dir.join("fleet.toml").is_file() {
        return Err(
            Error::not_found(format!("{} has no fleet.toml", p.fleet_dir.display()))
                .with_hint("agent new DIR/ID creates the agent inside the fleet folder DIR"),
        );
    }
    let dir = p.fleet_dir.join(&p.id);
    if dir.exists() {
        return Err(Error::conflict(format!("{} already exists", dir.display())));
    }
    let name = p.name.clone().unwrap_or_else(|| capitalise(&p.id));
    let files = [
        ("agent.toml", agent_toml(p, &name)),
        ("AGENTS.md", agents_md(p, &name)),
        ("HEARTBEAT.md", format!("# {name}: heartbeat\n\nWhat {name} checks when it wakes without a job (nothing yet).\n")),
        ("MEMORY.md", format!("# {name}: memory\n\nDurable notes for {name}. Keep only what later runs need.\n")),
    ];
    let files: Vec<(PathBuf, String)> = files
        .into_iter()
        .map(|(f, text)| (PathBuf::from(f), text))
        .collect();
    let files = write_folder(&p.fleet_dir, &p.id, &files)?;
    Ok(Scaffolded { dir, files })
}

/// Writes `files` (paths relative to the new folder) into `<fleet_dir>/<id>/`: into a
/// temporary sibling first, renamed into place, so a failure leaves no half-made agent.
/// Returns the paths written.
pub(crate) fn write_folder(
    fleet_dir: &Path,
    id: &str,
    files: &[(PathBuf, String)],
) -> Result<Vec<PathBuf>> {
    let dir = fleet_dir.join(id);
    let tmp = fleet_dir.join(format!(".{id}.new-{}", std::process::id()));
    let written = (|| -> std::io::Result<()> {
        std::fs::create_dir(&tmp)?;
        for (file, text) in files {
            if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(tmp.join(parent))?;
            }
            std::fs::write(tmp.join(file), text)?;
        }
        std::fs::rename(&tmp, &dir)
    })();
    match written {
        Ok(()) => Ok(files.iter().map(|(f, _)| dir.join(f)).collect()),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(Error::failure(format!(
                "cannot write {}: {e}",
                dir.display()
            )))
        }
    }
}

pub(crate) fn capitalise(id: &str) -> String {
    id.split(['-', '_'])
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn agent_toml(p: &NewAgent, name: &str) -> String {
    let wake = match p.wake {
        WakeMode::Hook => format!(
            "[wake]\nmode = \"hook\"\nagent_id = {}          # OpenClaw agentId\ntimeout_seconds = 600\n",
            toml_string(&p.id)
        ),
        WakeMode::Exec => "[wake]\nmode = \"exec\"\ncommand = [\"./run.sh\", \"{job_id}\", \"{prompt_file}\"]\ntimeout_seconds = 900\n".to_string(),
    };
    format!(
        "# {name}: see agentbus-fleet(5) for every key.\nid = {}\nname = {}\nrole = {}\nmax_concurrency = 1\nhandoffs = []                   # agents of this fleet it may enqueue work for\n\n{wake}\n# [[standing_orders]]\n# name = \"daily-review\"\n# cron = \"0 9 * * 1-5\"            # 09:00 Monday to Friday\n# timezone = \"UTC\"\n# grace_seconds = 300\n# message = \"Review ... and close the job with agentbus.\"\n# fired_by = \"supervisor\"\n# catch_up = \"skip\"\n",
        toml_string(&p.id),
        toml_string(name),
        toml_string(&p.role)
    )
}

fn agents_md(p: &NewAgent, name: &str) -> String {
    format!(
        "# {name}\n\nRole: {role}\n\n{section}\n## Authority\n\n(What {name} may do on its own, and what needs a human.)\n\n## Must never\n\n(What {name} must never do.)\n",
        role = p.role,
        section = agentbus_section(name)
    )
}

/// The part of an AGENTS.md that tells the agent how agentbus wakes it and how it closes
/// its jobs.
pub(crate) fn agentbus_section(name: &str) -> String {
    format!(
        "## When agentbus wakes you\n\n{name}'s message carries `AGENTBUS_JOB_ID`, `AGENTBUS_LEASE_TOKEN` and `AGENTBUS_ATTEMPT`\nlines, the job's subject and payload, and the results of the jobs it waited for.\n\nClose every job with exactly one command, with the token from your message:\n\n- done: `agentbus complete-job <job id> --lease-token <token> --summary '...'`\n- cannot proceed: `agentbus block-job <job id> --lease-token <token> --blocked-reason '...'`\n- failed: `agentbus fail-job <job id> --lease-token <token> --last-error '...'`\n\nReplying in chat does not close a job. If a close exits 4, another attempt owns the\njob now: stop. If it exits 75, run the same command again. If it exits 78 with \"no\ndatabase settings\", the gateway lacks `AGENTBUS_DATABASE_URL` (OpenClaw strips\n`DATABASE_URL`): say so and stop.\n\nHand work to another agent with `agentbus enqueue-job --target-agent <id> --parent-job-id <job id> ...`\n(only to the agents listed in `handoffs` of your agent.toml); record facts with\n`agentbus emit-event --source-job-id <job id> ...`.\n"
    )
}

/// Whether `path` names a fleet folder's agent (`DIR/ID`): returns (fleet dir, id).
pub fn split_agent_path(path: &Path) -> Result<(PathBuf, String)> {
    let id = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| Error::usage(format!("{}: expected DIR/ID", path.display())))?;
    let parent = path
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    Ok((parent, id))
}
