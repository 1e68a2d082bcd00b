//! Agents that ask for agents and for changes to their own settings: `request-agent` and
//! `request-config-change` file a job that waits for an operator; `approve-request`
//! applies it to the fleet's files, validates the fleet and syncs it, in one step (the
//! files are put back when anything fails). Nothing from a request row is trusted at
//! approval: the operator names the fleet folder, and every check runs again.

mod apply;
mod templates;

use super::request_keys as keys;
pub use apply::{approve, Approved, Staged};
pub(crate) use templates::check_id;

use serde::Serialize;
use serde_json::{json, Value};

use super::{load, Fleet};
use crate::error::{Error, Result};
use crate::ledger::jobs::{self, EnqueueParams, Enqueued};
use crate::ledger::validate::{check_name, check_optional_text, check_required_text};

pub use crate::ledger::controls::{is_request, AGENT_REQUEST, CONFIG_REQUEST};

/// A new agent, asked for by `requested_by`.
#[derive(Debug, Clone)]
pub struct AgentRequest {
    /// The agent asking (the job is its, and tells it the outcome).
    pub requested_by: String,
    /// The new agent's id.
    pub id: String,
    /// Its role, one line.
    pub role: String,
    /// Display name (default: the id).
    pub name: Option<String>,
    /// The folder under the fleet's templates/.
    pub template: String,
    /// Why.
    pub reason: Option<String>,
}

/// Changes to an agent's own agent.toml.
#[derive(Debug, Clone)]
pub struct ConfigRequest {
    /// The agent whose settings change (and who asks).
    pub agent: String,
    /// `KEY=VALUE` settings.
    pub settings: Vec<String>,
    /// The agent the caller acts as, when it is one: it may ask only for itself.
    pub requested_by: Option<String>,
    /// Why.
    pub reason: Option<String>,
}

/// A filed request: the job waiting for an operator.
#[derive(Debug, Clone, Serialize)]
pub struct Filed {
    /// The request job (`awaiting_approval`).
    #[serde(flatten)]
    pub job: Enqueued,
    /// The command an operator runs to apply it.
    pub approve_with: String,
}

pub(crate) fn load_fleet(dir: &std::path::Path) -> Result<Fleet> {
    load(dir).map_err(|diags| {
        let lines: Vec<String> = diags.iter().map(ToString::to_string).collect();
        Error::usage(format!(
            "the fleet does not validate:\n{}",
            lines.join("\n")
        ))
    })
}

/// Checks an agent request against the fleet as it is now.
fn check_agent_request(fleet: &Fleet, r: &AgentRequest) -> Result<()> {
    check_name("`requested_by`", &r.requested_by)?;
    check_required_text("`role`", &r.role)?;
    check_optional_text("`name`", r.name.as_deref())?;
    check_optional_text("`reason`", r.reason.as_deref())?;
    templates::check_id(&r.id)?;
    if !fleet.agents.iter().any(|a| a.id == r.requested_by) {
        return Err(Error::not_found(format!(
            "{:?} is not an agent of fleet {}",
            r.requested_by, fleet.name
        )));
    }
    if fleet.agents.iter().any(|a| a.id == r.id) || fleet.dir.join(&r.id).exists() {
        return Err(Error::conflict(format!(
            "fleet {} already has {}",
            fleet.name, r.id
        )));
    }
    templates::read(&fleet.dir, &r.template)?;
    Ok(())
}

/// Checks a config request against the fleet as it is now; returns the parsed settings.
fn check_config_request(fleet: &Fleet, r: &ConfigRequest) -> Result<Vec<(String, toml::Value)>> {
    check_name("`agent`", &r.agent)?;
    check_optional_text("`reason`", r.reason.as_deref())?;
    if let Some(by) = r.requested_by.as_deref().filter(|by| *by != r.agent) {
        return Err(Error::not_permitted(format!(
            "{by} may ask to change only its own settings, not {}'s",
            r.agent
        )));
    }
    let spec = fleet
        .agents
        .iter()
        .find(|a| a.id == r.agent)
        .ok_or_else(|| {
            Error::not_found(format!(
                "{:?} is not an agent of fleet {}",
                r.agent, fleet.name
            ))
        })?;
    if r.settings.is_empty() {
        return Err(Error::usage("nothing to change: give --set KEY=VALUE"));
    }
    let mut changes = Vec::new();
    for s in &r.settings {
        let (key, v) = keys::parse_setting(s)?;
        if key.contains(".*.") {
            return Err(Error::usage(format!(
                "{key:?}: name the standing order, not *"
            )));
        }
        if !keys::allowed(&fleet.request_config_keys, &key) {
            return Err(Error::not_permitted(format!(
                "fleet {} does not let agents change {key} ([requests] config_keys in fleet.toml: {})",
                fleet.name,
                if fleet.request_config_keys.is_empty() {
                    "none".to_string()
                } else {
                    fleet.request_config_keys.join(", ")
                }
            )));
        }
        changes.push((key, v));
    }
    // The edit must apply to the file as it is (an order that exists, a file that parses).
    let text = std::fs::read_to_string(&spec.file)
        .map_err(|e| Error::failure(format!("cannot read {}: {e}", spec.file.display())))?;
    keys::edit_agent_toml(&text, &changes)?;
    Ok(changes)
}

/// The request job to file.
struct Filing<'a> {
    target: &'a str,
    job_type: &'a str,
    subject: String,
    payload: Value,
    dedupe: String,
}

fn file(
    tx: &mut postgres::Transaction<'_>,
    fleet: &Fleet,
    f: Filing<'_>,
    actor: &str,
) -> Result<Filed> {
    let mut p = EnqueueParams::new(&fleet.namespace, f.target, f.job_type, f.subject, actor);
    p.source_agent = Some(f.target.to_string());
    p.payload = f.payload;
    p.dedupe_key = Some(f.dedupe);
    p.requires_approval = true;
    p.max_attempts = 1;
    p.reason = "requested".into();
    let job = jobs::enqueue(tx, &p)?;
    let approve_with = format!(
        "agentbus approve-request {} --fleet {}",
        job.job.id,
        fleet.dir.display()
    );
    Ok(Filed { job, approve_with })
}

/// Files a new-agent request (one transaction): a job for the requesting agent, waiting
/// in `awaiting_approval`. One open request per new id.
pub fn request_agent(
    tx: &mut postgres::Transaction<'_>,
    dir: &std::path::Path,
    r: &AgentRequest,
    actor: &str,
) -> Result<Filed> {
    let fleet = load_fleet(dir)?;
    check_agent_request(&fleet, r)?;
    let payload = json!({
        "request": "agent",
        "fleet": fleet.name,
        "id": r.id,
        "role": r.role,
        "name": r.name,
        "template": r.template,
        "reason": r.reason,
    });
    let filing = Filing {
        target: &r.requested_by,
        job_type: AGENT_REQUEST,
        subject: format!("Request agent: {}", r.id),
        payload,
        dedupe: format!("request-agent:{}", r.id),
    };
    file(tx, &fleet, filing, actor)
}

/// Files a configuration-change request (one transaction) for the agent's own settings.
pub fn request_config(
    tx: &mut postgres::Transaction<'_>,
    dir: &std::path::Path,
    r: &ConfigRequest,
    actor: &str,
) -> Result<Filed> {
    let fleet = load_fleet(dir)?;
    let changes = check_config_request(&fleet, r)?;
    let set: serde_json::Map<String, Value> = changes
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or(Value::Null)))
        .collect();
    let keys: Vec<&str> = changes.iter().map(|(k, _)| k.as_str()).collect();
    let payload = json!({
        "request": "config",
        "fleet": fleet.name,
        "agent": r.agent,
        "set": set,
        "reason": r.reason,
    });
    let filing = Filing {
        target: &r.agent,
        job_type: CONFIG_REQUEST,
        subject: format!("Config change: {} ({})", r.agent, keys.join(", ")),
        payload,
        dedupe: format!("request-config:{}:{}", r.agent, keys.join("+")),
    };
    file(tx, &fleet, filing, actor)
}
