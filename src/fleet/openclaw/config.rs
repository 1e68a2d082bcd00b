//! The openclaw.json5 keys for a fleet: agents (model, heartbeat, tools, exec), hooks, cron.

use super::{external_orders, is_hook, openclaw_agent_id, DEFAULT_TOKEN_ENV, VERIFIED_WITH};
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::fleet::{AgentSpec, CatchUp, Fleet, OrderSpec};

/// The `openclaw.json5` keys for a fleet, and what the operator must know about them.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigFragment {
    /// Fleet name.
    pub fleet: String,
    /// Its namespace.
    pub namespace: String,
    /// The release the shape was checked against.
    pub verified_with: &'static str,
    /// The keys to merge into openclaw.json5.
    pub config: OpenclawConfig,
    /// Things to check by hand, one line each.
    pub notes: Vec<String>,
}

/// The parts of openclaw.json5 agentbus needs.
#[derive(Debug, Clone, Serialize)]
pub struct OpenclawConfig {
    /// `agents.entries`.
    pub agents: AgentsSection,
    /// `hooks`, when an agent is woken by hook.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hooks: Option<HooksSection>,
    /// `cron`, when an order is fired by OpenClaw.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cron: Option<CronSection>,
}

/// `agents`.
#[derive(Debug, Clone, Serialize)]
pub struct AgentsSection {
    /// `explicit`: the roster is exactly `entries` (OpenClaw requires it for several agents).
    pub ownership: &'static str,
    /// By OpenClaw agent id.
    pub entries: BTreeMap<String, AgentEntry>,
}

/// `agents.entries.<id>`.
#[derive(Debug, Clone, Serialize)]
pub struct AgentEntry {
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The agent's folder in the fleet: OpenClaw reads its AGENTS.md from there.
    pub workspace: String,
    /// `provider/model`, when agent.toml sets `model`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The heartbeat cadence (`0m`, off, unless the fleet declares one: agentbus wakes it).
    pub heartbeat: HeartbeatEntry,
    /// Tool policy, and how its `exec` runs agentbus.
    pub tools: ToolsEntry,
}

/// `agents.entries.<id>.heartbeat`.
#[derive(Debug, Clone, Serialize)]
pub struct HeartbeatEntry {
    /// `15m`, `1h`, or `0m` (off).
    pub every: String,
}

/// `agents.entries.<id>.tools`.
#[derive(Debug, Clone, Serialize)]
pub struct ToolsEntry {
    /// Only these tools (agent.toml `[tools] allow`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
    /// Never these (agent.toml `[tools] deny`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deny: Option<Vec<String>>,
    /// How its shell commands run.
    pub exec: ExecEntry,
}

/// `agents.entries.<id>.tools.exec`: on the gateway host, without an interactive approval
/// (an unattended run waiting for one never runs the closing command), with the folder
/// of the agentbus binary first on PATH.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecEntry {
    /// `gateway`.
    pub host: &'static str,
    /// `full`: no human approval.
    pub mode: &'static str,
    /// The folder holding `agentbus`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub path_prepend: Vec<String>,
}

/// `hooks`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HooksSection {
    /// Always true.
    pub enabled: bool,
    /// `${VAR}`: the same variable the supervisor reads the token from.
    pub token: String,
    /// The base path of the supervisor's hook URL.
    pub path: String,
    /// The OpenClaw agent ids the supervisor wakes.
    pub allowed_agent_ids: Vec<String>,
    /// True when an agent sends its own session key.
    pub allow_request_session_key: bool,
    /// `hook:` (generated keys) plus each configured session key.
    pub allowed_session_key_prefixes: Vec<String>,
}

/// `cron`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CronSection {
    /// Always true.
    pub enabled: bool,
    /// True when every external order's catch-up policy is `skip`.
    pub skip_missed_jobs: bool,
}

/// The openclaw.json5 keys for `fleet`: its hook-woken agents and the agents of its
/// external orders (with their model, heartbeat, tools, and an exec that finds
/// `agentbus` in `agentbus_dir`), the hook ingress the supervisor posts to, and cron.
pub fn config(fleet: &Fleet, agentbus_dir: Option<&std::path::Path>) -> ConfigFragment {
    let mut notes = Vec::new();
    let path_prepend: Vec<String> = agentbus_dir
        .map(|d| d.display().to_string())
        .into_iter()
        .collect();
    if path_prepend.is_empty() {
        notes.push(
            "the folder of the agentbus binary is unknown: add it to tools.exec.pathPrepend of each agent"
                .to_string(),
        );
    }
    let openclaw_agents: Vec<&AgentSpec> = fleet
        .agents
        .iter()
        .filter(|a| is_hook(a) || external_orders(a).next().is_some())
        .collect();
    let entries = openclaw_agents
        .iter()
        .map(|a| {
            let folder = a.file.parent().unwrap_or(&fleet.dir);
            let workspace = std::fs::canonicalize(folder)
                .unwrap_or_else(|_| folder.to_path_buf())
                .display()
                .to_string();
            (
                openclaw_agent_id(a),
                AgentEntry {
                    name: a.name.clone(),
                    workspace,
                    model: a.model.clone(),
                    heartbeat: HeartbeatEntry {
                        every: a
                            .heartbeat
                            .clone()
                            .or_else(|| fleet.openclaw_heartbeat.clone())
                            .unwrap_or_else(|| "0m".to_string()),
                    },
                    tools: ToolsEntry {
                        allow: a
                            .tools
                            .as_ref()
                            .map(|t| t.allow.clone())
                            .filter(|l| !l.is_empty()),
                        deny: a
                            .tools
                            .as_ref()
                            .map(|t| t.deny.clone())
                            .filter(|l| !l.is_empty()),
                        exec: ExecEntry {
                            host: "gateway",
                            mode: "full",
                            path_prepend: path_prepend.clone(),
                        },
                    },
                },
            )
        })
        .collect();

    let hook_agents: Vec<&AgentSpec> = fleet.agents.iter().filter(|a| is_hook(a)).collect();
    let hooks = (!hook_agents.is_empty()).then(|| {
        let var = fleet
            .hook_token_env
            .clone()
            .unwrap_or_else(|| DEFAULT_TOKEN_ENV.to_string());
        if !is_substitutable(&var) {
            notes.push(format!(
                "OpenClaw only expands upper-case variable names; {var} is not one: set hooks.token by hand or rename [openclaw] token_env"
            ));
        }
        let path = match &fleet.hook_url {
            Some(url) => match hook_base_path(url) {
                Some(p) => p,
                None => {
                    notes.push(format!(
                        "[openclaw] hook_url {url} does not end in /agent: OpenClaw serves agent hooks at <hooks.path>/agent"
                    ));
                    "/hooks".to_string()
                }
            },
            None => {
                notes.push(
                    "fleet.toml sets no [openclaw] hook_url: start the supervisor with --hook-url http://GATEWAY:18789/hooks/agent"
                        .to_string(),
                );
                "/hooks".to_string()
            }
        };
        let session_keys: BTreeSet<String> = hook_agents
            .iter()
            .filter_map(|a| a.wake.as_ref().and_then(|w| w.session_key.clone()))
            .collect();
        let mut prefixes = vec!["hook:".to_string()];
        prefixes.extend(
            session_keys
                .iter()
                .filter(|k| !k.to_ascii_lowercase().starts_with("hook:"))
                .cloned(),
        );
        if !session_keys.is_empty() {
            notes.push(format!(
                "hooks.allowRequestSessionKey is true because [wake] session_key is set ({}); the gateway logs it as a dangerous flag, and allowedSessionKeyPrefixes limits it to these keys",
                session_keys.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        let ids: BTreeSet<String> = hook_agents.iter().map(|a| openclaw_agent_id(a)).collect();
        HooksSection {
            enabled: true,
            token: format!("${{{var}}}"),
            path,
            allowed_agent_ids: ids.into_iter().collect(),
            allow_request_session_key: !session_keys.is_empty(),
            allowed_session_key_prefixes: prefixes,
        }
    });

    let external: Vec<&OrderSpec> = fleet.agents.iter().flat_map(external_orders).collect();
    let cron = (!external.is_empty()).then(|| {
        let skip = external.iter().all(|o| o.catch_up == CatchUp::Skip);
        if !skip && external.iter().any(|o| o.catch_up == CatchUp::Skip) {
            notes.push(
                "external orders mix catch_up = skip and run_once; OpenClaw's skipMissedJobs is one switch for the gateway, so it is left false (missed slots run late, and the audit shows them late)"
                    .to_string(),
            );
        }
        CronSection {
            enabled: true,
            skip_missed_jobs: skip,
        }
    });

    ConfigFragment {
        fleet: fleet.name.clone(),
        namespace: fleet.namespace.clone(),
        verified_with: VERIFIED_WITH,
        config: OpenclawConfig {
            agents: AgentsSection {
                ownership: "explicit",
                entries,
            },
            hooks,
            cron,
        },
        notes,
    }
}

/// `/hooks` from `http://host:18789/hooks/agent`.
fn hook_base_path(url: &str) -> Option<String> {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = after_scheme
        .find('/')
        .map_or("", |i| &after_scheme[i..])
        .split(['?', '#'])
        .next()
        .unwrap_or("");
    let base = path.trim_end_matches('/').strip_suffix("/agent")?;
    (!base.is_empty()).then(|| base.to_string())
}

/// OpenClaw expands `${NAME}` only for `[A-Z_][A-Z0-9_]*`.
fn is_substitutable(var: &str) -> bool {
    let mut chars = var.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

impl ConfigFragment {
    /// The fragment as JSON5 text with comments, ready to merge into openclaw.json5.
    pub fn to_json5(&self) -> String {
        let mut out = format!(
            "// openclaw.json5 keys for agentbus fleet {} (namespace {}).\n\
             // Merge them into ~/.openclaw/openclaw.json (or $OPENCLAW_CONFIG_PATH) and restart the gateway.\n\
             // Checked against {}; releases that still use an `agents.list` array: `openclaw doctor --fix`.\n",
            self.fleet, self.namespace, self.verified_with
        );
        if let Some(h) = &self.config.hooks {
            out.push_str(&format!(
                "// hooks.token is read from the gateway's environment: export {} there with the same\n\
                 // value the supervisor has (never write the token into this file).\n",
                h.token.trim_start_matches("${").trim_end_matches('}')
            ));
        }
        out.push_str(
            "// The agents' commands reach the ledger through AGENTBUS_DATABASE_URL (or PGHOST, PGPORT,\n\
             // PGUSER, PGDATABASE, PGPASSWORD) in the gateway's environment: its service environment\n\
             // or ~/.openclaw/.env, never this file. OpenClaw strips DATABASE_URL from those commands.\n",
        );
        if self.config.cron.is_some() {
            out.push_str(
                "// The cron jobs themselves are not config: add them with `agentbus fleet openclaw-cron DIR | bash`.\n",
            );
        }
        for n in &self.notes {
            out.push_str(&format!("// NOTE: {n}\n"));
        }
        // JSON is JSON5; serde_json cannot fail on these plain structs.
        let body = serde_json::to_string_pretty(&self.config).unwrap_or_default();
        out.push_str(&body);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_paths() {
        assert_eq!(
            hook_base_path("http://127.0.0.1:18789/hooks/agent").as_deref(),
            Some("/hooks")
        );
        assert_eq!(
            hook_base_path("https://gw.example/oc/hooks/agent/").as_deref(),
            Some("/oc/hooks")
        );
        assert_eq!(hook_base_path("http://127.0.0.1:18789/agent"), None);
        assert_eq!(hook_base_path("http://127.0.0.1:18789/hooks/wake"), None);
    }

    #[test]
    fn variables_openclaw_expands() {
        assert!(is_substitutable("AGENTBUS_HOOK_TOKEN"));
        assert!(is_substitutable("_X1"));
        assert!(!is_substitutable("hook_token"));
        assert!(!is_substitutable("1X"));
        assert!(!is_substitutable(""));
    }
}
