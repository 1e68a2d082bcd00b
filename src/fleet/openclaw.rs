//! What OpenClaw must know about a fleet: the `openclaw.json5` keys for its agents, hooks
//! and cron, and one cron job per `external` standing order.
//!
//! Checked against the npm package of [`VERIFIED_WITH`] (its docs and CLI source): agents
//! live under `agents.entries.<id>` (older releases had an `agents.list` array, which
//! `openclaw doctor --fix` migrates); config strings expand `${UPPER_CASE}` environment
//! variables; `openclaw cron add --declaration-key KEY` creates the job the first time and
//! updates that same job in place afterwards (unchanged: nothing happens), which is what
//! makes the printed script safe to run twice; `--exact` turns off the up-to-5-minute
//! stagger OpenClaw applies to top-of-hour schedules, which would otherwise eat into the
//! order's grace; `--no-deliver` keeps the run's text out of chat channels.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::fleet::{AgentSpec, CatchUp, FiredBy, Fleet, OrderSpec};
use crate::ledger::agents::WakeMode;

/// The OpenClaw release these outputs were checked against.
pub const VERIFIED_WITH: &str = "openclaw 2026.9.6";

/// The supervisor's default hook-token variable (`--hook-token-env`).
pub const DEFAULT_TOKEN_ENV: &str = "AGENTBUS_HOOK_TOKEN";

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

/// The OpenClaw agent id of a fleet agent.
fn openclaw_agent_id(agent: &AgentSpec) -> String {
    agent
        .wake
        .as_ref()
        .and_then(|w| w.agent_id.clone())
        .unwrap_or_else(|| agent.id.clone())
}

fn is_hook(agent: &AgentSpec) -> bool {
    agent
        .wake
        .as_ref()
        .is_some_and(|w| w.mode == WakeMode::Hook)
}

fn external_orders(agent: &AgentSpec) -> impl Iterator<Item = &OrderSpec> {
    agent
        .standing_orders
        .iter()
        .filter(|o| o.fired_by == FiredBy::External)
}

/// The openclaw.json5 keys for `fleet`: its hook-woken agents and the agents of its
/// external orders, the hook ingress the supervisor posts to, and cron.
pub fn config(fleet: &Fleet) -> ConfigFragment {
    let mut notes = Vec::new();
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
            agents: AgentsSection { entries },
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

/// One OpenClaw cron job for an external standing order.
#[derive(Debug, Clone, Serialize)]
pub struct CronJob {
    /// `agentbus:<namespace>:<agent>:<order>`: OpenClaw updates the job with this key
    /// instead of adding another.
    pub declaration_key: String,
    /// The job's name in `openclaw cron list`.
    pub name: String,
    /// The agentbus agent.
    pub agent: String,
    /// The order.
    pub order: String,
    /// The OpenClaw agent id.
    pub openclaw_agent: String,
    /// Cron expression as written in the fleet.
    pub cron: String,
    /// IANA zone, always passed (OpenClaw's default is the gateway host's zone).
    pub timezone: String,
    /// `--session` target.
    pub session: String,
    /// `--timeout-seconds`, from max_runtime_seconds.
    pub timeout_seconds: Option<i32>,
    /// False: created or switched disabled.
    pub enabled: bool,
    /// The message, with the agentbus lines the agent must run.
    pub message: String,
    /// The `openclaw cron add ...` argv.
    pub argv: Vec<String>,
}

/// The cron jobs for a fleet's external orders.
#[derive(Debug, Clone, Serialize)]
pub struct CronPlan {
    /// Fleet name.
    pub fleet: String,
    /// Its namespace.
    pub namespace: String,
    /// The release the commands were checked against.
    pub verified_with: &'static str,
    /// One per external order.
    pub jobs: Vec<CronJob>,
    /// Orders the supervisor fires (not OpenClaw), counted.
    pub supervisor_fired: usize,
}

/// What the agent is told when OpenClaw cron fires `order`: the order's own message, then
/// the exact agentbus lines that record the run.
pub fn external_order_message(namespace: &str, agent: &str, order: &OrderSpec) -> String {
    let start = format!(
        "agentbus start-standing-order --namespace {} --agent-id {} --order-name {} --scheduled-for latest",
        shell_word(namespace),
        shell_word(agent),
        shell_word(&order.name)
    );
    format!(
        "{message}\n\n\
         This is agentbus standing order {agent}/{name} (namespace {namespace}). Before you start, record the run:\n\
         \x20 {start}\n\
         It prints the run as JSON. When you are done, finish that run with its \"id\" and exactly one status:\n\
         \x20 agentbus finish-standing-order RUN_ID --status completed --summary 'what you did'\n\
         \x20 agentbus finish-standing-order RUN_ID --status no_work --summary 'what you checked and found nothing to do'\n\
         \x20 agentbus finish-standing-order RUN_ID --status blocked --summary 'what you need and from whom'\n\
         \x20 agentbus finish-standing-order RUN_ID --status failed --summary 'what went wrong'\n\
         A run you do not record counts as missed.",
        message = order.message.trim_end(),
        name = order.name,
    )
}

/// OpenClaw's `--session`: main, isolated, current or session:<key>.
fn session_target(session: Option<&str>) -> String {
    match session {
        None => "isolated".to_string(),
        Some(s @ ("main" | "isolated" | "current")) => s.to_string(),
        Some(s) if s.starts_with("session:") => s.to_string(),
        Some(s) => format!("session:{s}"),
    }
}

/// The `openclaw cron add` commands for `fleet`'s external orders.
pub fn cron_plan(fleet: &Fleet) -> CronPlan {
    let mut jobs = Vec::new();
    let mut supervisor_fired = 0;
    for agent in &fleet.agents {
        for order in &agent.standing_orders {
            if order.fired_by != FiredBy::External {
                supervisor_fired += 1;
                continue;
            }
            let declaration_key =
                format!("agentbus:{}:{}:{}", fleet.namespace, agent.id, order.name);
            let name = format!("agentbus {}/{}/{}", fleet.namespace, agent.id, order.name);
            let openclaw_agent = openclaw_agent_id(agent);
            let session = session_target(order.session.as_deref());
            let message = external_order_message(&fleet.namespace, &agent.id, order);
            let mut argv: Vec<String> = [
                "openclaw",
                "cron",
                "add",
                "--declaration-key",
                &declaration_key,
                "--name",
                &name,
                "--cron",
                &order.cron,
                "--tz",
                &order.timezone,
                "--exact",
                "--session",
                &session,
                "--agent",
                &openclaw_agent,
                "--no-deliver",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            if let Some(t) = order.max_runtime_seconds {
                argv.extend(["--timeout-seconds".to_string(), t.to_string()]);
            }
            if !order.enabled {
                argv.push("--disabled".to_string());
            }
            argv.extend(["--message".to_string(), message.clone()]);
            jobs.push(CronJob {
                declaration_key,
                name,
                agent: agent.id.clone(),
                order: order.name.clone(),
                openclaw_agent,
                cron: order.cron.clone(),
                timezone: order.timezone.clone(),
                session,
                timeout_seconds: order.max_runtime_seconds,
                enabled: order.enabled,
                message,
                argv,
            });
        }
    }
    CronPlan {
        fleet: fleet.name.clone(),
        namespace: fleet.namespace.clone(),
        verified_with: VERIFIED_WITH,
        jobs,
        supervisor_fired,
    }
}

impl CronPlan {
    /// A bash script that adds (or updates in place) every job; running it again changes
    /// nothing.
    pub fn to_script(&self, source: &str) -> String {
        let mut out = format!(
            "#!/usr/bin/env bash\n\
             # OpenClaw cron jobs for the external standing orders of agentbus fleet {fleet} (namespace {ns}).\n\
             # Generated by: agentbus fleet openclaw-cron {source}\n\
             #\n\
             # Safe to run again: each job carries a declaration key, and OpenClaw updates the job\n\
             # with that key in place (or leaves it alone) instead of adding a second one.\n\
             # Checked against {verified}; a release without --declaration-key rejects the first\n\
             # command and the script stops before creating anything.\n\
             #\n\
             # An order set to enabled = false is switched off here; switched back on in the files, it\n\
             # stays off in OpenClaw until `openclaw cron enable JOB_ID` (the audit shows it missed).\n\
             # An order deleted from the files is not removed here: `openclaw cron list --all`, then\n\
             # `openclaw cron rm JOB_ID` (agentbus refuses to start runs of a removed order).\n\
             set -euo pipefail\n",
            fleet = self.fleet,
            ns = self.namespace,
            verified = self.verified_with,
        );
        if self.jobs.is_empty() {
            out.push_str(&format!(
                "# No external standing orders ({} fired by agentbus-supervisor): nothing to add.\n",
                self.supervisor_fired
            ));
            return out;
        }
        for job in &self.jobs {
            out.push_str(&format!("\n# {}/{}\n", job.agent, job.order));
            // `openclaw cron add`, then one flag (with its value) per line.
            let mut line = job
                .argv
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join(" ");
            let mut rest = job.argv.iter().skip(3);
            while let Some(flag) = rest.next() {
                line.push_str(" \\\n  ");
                line.push_str(&shell_word(flag));
                if takes_value(flag) {
                    if let Some(value) = rest.next() {
                        line.push(' ');
                        line.push_str(&shell_word(value));
                    }
                }
            }
            out.push_str(&line);
            out.push('\n');
        }
        out
    }
}

fn takes_value(flag: &str) -> bool {
    !matches!(flag, "--exact" | "--no-deliver" | "--disabled")
}

/// `s` quoted for a POSIX shell when it needs it.
pub fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':' | '=' | '@' | ',')
        });
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
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

    #[test]
    fn sessions() {
        assert_eq!(session_target(None), "isolated");
        assert_eq!(session_target(Some("main")), "main");
        assert_eq!(session_target(Some("session:x")), "session:x");
        assert_eq!(session_target(Some("hook:scout")), "session:hook:scout");
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_word("*/5 * * * *"), "'*/5 * * * *'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word("UTC"), "UTC");
        assert_eq!(shell_word(""), "''");
    }
}
