//! One OpenClaw cron job per `external` standing order, as a re-runnable script.

use super::{openclaw_agent_id, VERIFIED_WITH};

use serde::Serialize;

use crate::fleet::{FiredBy, Fleet, OrderSpec};

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
