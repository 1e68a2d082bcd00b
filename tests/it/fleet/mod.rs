//! Fleet folders: validate, sync, agent new, the shipped fleets, and the OpenClaw
//! configuration and cron script.

mod blocked;
mod enterprise;
mod files;
mod openclaw;
mod reactions;
mod requests;
mod retention;
mod rollout;
mod shipped;

use crate::support::TestDb;
use std::path::{Path, PathBuf};

/// A fleet folder in a temporary directory, removed at the end.
pub(super) struct FleetDir(pub(super) PathBuf);

impl FleetDir {
    pub(super) fn new() -> FleetDir {
        let dir = std::env::temp_dir()
            .join(format!("agentbus-fleet-{}", uuid::Uuid::new_v4()))
            .join("gtm");
        std::fs::create_dir_all(&dir).unwrap();
        let f = FleetDir(dir);
        f.write(
            "fleet.toml",
            "name = \"gtm\"\n\n[defaults]\nmax_concurrency = 1\n\n[openclaw]\nhook_url = \"http://127.0.0.1:18789/hooks/agent\"\ntoken_env = \"OPENCLAW_HOOKS_TOKEN\"\n",
        );
        f.write(
            "scout/agent.toml",
            r#"id = "scout"
name = "Scout"
role = "Research prospects"
handoffs = ["writer"]

[wake]
mode = "hook"
timeout_seconds = 300

[[standing_orders]]
name = "prospect-scan"
cron = "0,15,30,45 * * * *"
message = "Run the prospect scan"

[[standing_orders]]
name = "weekly-review"
cron = "0 9 * * 1"
timezone = "Europe/Berlin"
message = """
Review the week's prospects.
"""
fired_by = "external"
catch_up = "run_once"
"#,
        );
        f.write(
            "writer/agent.toml",
            "id = \"writer\"\nmax_concurrency = 2\n\n[wake]\nmode = \"exec\"\ncommand = [\"./run.sh\", \"{job_id}\"]\n",
        );
        f
    }

    pub(super) fn write(&self, rel: &str, text: &str) {
        let path = self.0.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    pub(super) fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }

    pub(super) fn file(&self, rel: &str) -> String {
        self.0.join(rel).display().to_string()
    }
}

impl Drop for FleetDir {
    fn drop(&mut self) {
        if let Some(parent) = self.0.parent() {
            let _ = std::fs::remove_dir_all(parent);
        }
    }
}

pub(super) fn validate(db: &TestDb, dir: &Path) -> crate::support::CliOutput {
    db.cli(&["fleet", "validate", dir.to_str().unwrap()])
}
