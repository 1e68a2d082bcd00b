//! `approve-request`: the operator's approval, the fleet's files changed, the fleet
//! validated and synced, in one step. The database writes are one transaction (the
//! caller's); the file changes are undone when anything fails, including the commit.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::templates::{self, Fill};
use super::{check_agent_request, check_config_request, load_fleet, AgentRequest, ConfigRequest};
use crate::db::decode;
use crate::error::{Error, Result};
use crate::fleet::request_keys::edit_agent_toml;
use crate::fleet::{sync, SyncReport};
use crate::ledger::controls::{self, Control, ControlParams, AGENT_REQUEST};
use crate::ledger::events::{self, EmitParams};
use crate::ledger::jobs::{Job, JobStatus};

/// File changes made for a request, undone on drop unless kept (after the commit).
#[derive(Debug)]
pub struct Staged {
    undo: Option<Undo>,
}

#[derive(Debug)]
enum Undo {
    RemoveDir(PathBuf),
    Restore { file: PathBuf, text: String },
}

impl Staged {
    /// The transaction committed: the changes stay.
    pub fn keep(mut self) {
        self.undo = None;
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        match self.undo.take() {
            Some(Undo::RemoveDir(dir)) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Some(Undo::Restore { file, text }) => {
                let _ = write_atomically(&file, &text);
            }
            None => {}
        }
    }
}

/// What `approve-request` did.
#[derive(Debug, Serialize)]
pub struct Approved {
    /// The request job afterwards (queued for the agent that asked, which is told).
    pub job: Job,
    /// False while a gate still wants more approvals (nothing applied yet).
    pub applied: bool,
    /// The files written or changed.
    pub files: Vec<PathBuf>,
    /// The fleet sync that followed.
    pub sync: Option<SyncReport>,
    /// The file changes, to keep once the transaction has committed.
    #[serde(skip)]
    pub staged: Option<Staged>,
}

fn write_atomically(file: &Path, text: &str) -> std::io::Result<()> {
    let tmp = file.with_extension(format!("toml.tmp-{}", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, file)
}

fn text(payload: &Value, key: &str) -> Result<String> {
    payload
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| Error::usage(format!("the request has no {key}")))
}

/// The settings of a config request's payload, back as `KEY=VALUE` to be checked again.
fn settings(payload: &Value) -> Result<Vec<String>> {
    let set = payload
        .get("set")
        .and_then(Value::as_object)
        .ok_or_else(|| Error::usage("the request has no settings"))?;
    Ok(set
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect())
}

/// Approves request `job_id` as `actor` and applies it to the fleet in `dir`: a new agent
/// folder from its template, or the changed agent.toml; then the whole fleet is validated
/// and synced. Every check of the request runs again against the fleet as it is now.
pub fn approve(
    tx: &mut postgres::Transaction<'_>,
    job_id: Uuid,
    dir: &Path,
    actor: &str,
    reason: Option<String>,
) -> Result<Approved> {
    let fleet = load_fleet(dir)?;
    let row = tx
        .query_opt(
            "select to_jsonb(j.*) as row from jobs j where id = $1 for update",
            &[&job_id],
        )?
        .ok_or_else(|| Error::not_found(format!("job {job_id} not found")))?;
    let job: Job = decode(&row, "row")?;
    if !controls::is_request(&job.job_type) {
        return Err(Error::usage(format!(
            "job {job_id} is not a request (it is {}); approve it with approve-job",
            job.job_type
        )));
    }
    if job.namespace != fleet.namespace
        || job.payload.get("fleet").and_then(Value::as_str) != Some(fleet.name.as_str())
    {
        return Err(Error::usage(format!(
            "job {job_id} asks fleet {} in namespace {}; --fleet {} is fleet {} in {}",
            job.payload
                .get("fleet")
                .and_then(Value::as_str)
                .unwrap_or("?"),
            job.namespace,
            dir.display(),
            fleet.name,
            fleet.namespace
        )));
    }
    if actor == job.target_agent || job.source_agent.as_deref() == Some(actor) {
        return Err(Error::not_permitted(format!(
            "{actor} asked for this; someone else approves it (with the guardrails on, only operator logins can)"
        )));
    }
    let agent_request = job.job_type == AGENT_REQUEST;
    let plan =
        if agent_request {
            let r = AgentRequest {
                requested_by: job.target_agent.clone(),
                id: text(&job.payload, "id")?,
                role: text(&job.payload, "role")?,
                name: job
                    .payload
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                template: text(&job.payload, "template")?,
                reason: None,
            };
            check_agent_request(&fleet, &r)?;
            Plan::Agent(r)
        } else {
            if job.payload.get("agent").and_then(Value::as_str) != Some(job.target_agent.as_str())
                || job
                    .source_agent
                    .as_deref()
                    .is_some_and(|s| s != job.target_agent)
            {
                return Err(Error::not_permitted(format!(
                "job {job_id} changes {:?} but was filed by {:?}: an agent asks only for itself",
                job.payload.get("agent").and_then(Value::as_str).unwrap_or("?"),
                job.source_agent.as_deref().unwrap_or("?")
            )));
            }
            let r = ConfigRequest {
                agent: job.target_agent.clone(),
                settings: settings(&job.payload)?,
                requested_by: None,
                reason: None,
            };
            let changes = check_config_request(&fleet, &r)?;
            Plan::Config(r.agent, changes)
        };

    let job = controls::apply(
        tx,
        job_id,
        Control::Approve,
        &ControlParams {
            actor: actor.to_string(),
            reason,
            applying_request: true,
            ..Default::default()
        },
    )?;
    if job.status == JobStatus::AwaitingApproval {
        return Ok(Approved {
            job,
            applied: false,
            files: Vec::new(),
            sync: None,
            staged: None,
        });
    }

    let (staged, files) = match &plan {
        Plan::Agent(r) => stage_agent(&fleet.dir, r)?,
        Plan::Config(agent, changes) => {
            let spec = fleet
                .agents
                .iter()
                .find(|a| &a.id == agent)
                .ok_or_else(|| Error::not_found(format!("{agent:?} is not in the fleet")))?;
            stage_config(&spec.file, changes)?
        }
    };
    // The whole fleet, with the change, must validate; else the change is undone.
    let changed = load_fleet(dir)?;
    let report = sync(tx, &changed, actor)?;
    events::emit(
        tx,
        &EmitParams {
            namespace: job.namespace.clone(),
            topic: "agentbus.request.applied".into(),
            source_agent: None,
            source_job_id: Some(job.id),
            dedupe_key: Some(format!("request-applied:{}", job.id)),
            payload: json!({
                "request": job.job_type,
                "subject": job.subject,
                "files": files,
                "approved_by": actor,
            }),
        },
    )?;
    Ok(Approved {
        job,
        applied: true,
        files,
        sync: Some(report),
        staged: Some(staged),
    })
}

enum Plan {
    Agent(AgentRequest),
    Config(String, Vec<(String, toml::Value)>),
}

/// The new agent's folder from its template, written beside and renamed into place.
fn stage_agent(fleet_dir: &Path, r: &AgentRequest) -> Result<(Staged, Vec<PathBuf>)> {
    let files = templates::read(fleet_dir, &r.template)?;
    let name = r
        .name
        .clone()
        .unwrap_or_else(|| crate::fleet::scaffold::capitalise(&r.id));
    let rendered = templates::render(
        &files,
        &Fill {
            id: &r.id,
            name: &name,
            role: &r.role,
            requested_by: &r.requested_by,
        },
    );
    let files: Vec<(PathBuf, String)> = rendered
        .into_iter()
        .map(|(f, text)| (PathBuf::from(f), text))
        .collect();
    let paths = crate::fleet::scaffold::write_folder(fleet_dir, &r.id, &files)?;
    let dir = fleet_dir.join(&r.id);
    Ok((
        Staged {
            undo: Some(Undo::RemoveDir(dir)),
        },
        paths,
    ))
}

/// The agent's agent.toml with the changes (comments kept), replaced atomically.
fn stage_config(file: &Path, changes: &[(String, toml::Value)]) -> Result<(Staged, Vec<PathBuf>)> {
    let before = std::fs::read_to_string(file)
        .map_err(|e| Error::failure(format!("cannot read {}: {e}", file.display())))?;
    let after = edit_agent_toml(&before, changes)?;
    write_atomically(file, &after)
        .map_err(|e| Error::failure(format!("cannot write {}: {e}", file.display())))?;
    Ok((
        Staged {
            undo: Some(Undo::Restore {
                file: file.to_path_buf(),
                text: before,
            }),
        },
        vec![file.to_path_buf()],
    ))
}
