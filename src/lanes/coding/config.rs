//! The runner host's coding configuration (`coding.toml`): which repositories may be
//! worked on and where they are, which coders exist and how each is started, where
//! worktrees and artifacts go and for how long. A job names a repository and a runner; it
//! never carries a command or a path, so whoever can write a job cannot make the runner
//! execute something the host did not configure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::ledger::validate::check_name;

/// `coding.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodingConfig {
    /// Where worktrees are created (`<root>/<namespace>/<run id>`).
    pub worktree_root: PathBuf,
    /// Where logs, prompts and patches are kept (`<root>/<namespace>/<run id>/`).
    pub artifact_root: PathBuf,
    /// Artifacts older than this are removed by `agentbus code cleanup` (and every run).
    #[serde(default = "default_retention_days")]
    pub artifact_retention_days: u32,
    /// A failed or blocked run's worktree is kept this long for a person to look at.
    #[serde(default = "default_keep_failed_hours")]
    pub keep_failed_worktrees_hours: u32,
    /// At most this many runs of one repository at once, across every runner host.
    #[serde(default = "default_wip")]
    pub max_runs_per_repo: i64,
    /// The agent that gets the `dev.review` job of a run whose tests passed.
    pub review_agent: String,
    /// Repositories by name (the job's `repo`).
    #[serde(default)]
    pub repos: BTreeMap<String, RepoConfig>,
    /// Coders by name (the job's `handoff.runner`).
    #[serde(default)]
    pub runners: BTreeMap<String, RunnerConfig>,
}

/// One repository a job may name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    /// The local clone (a worktree is made from it; merges land in it).
    pub path: PathBuf,
    /// The test command (argv, run in the worktree, no shell).
    pub test: Vec<String>,
    /// Seconds a test run may take.
    #[serde(default = "default_test_timeout")]
    pub test_timeout_seconds: u64,
    /// The deploy command (argv, run in the repository after a merge; `{commit}` is filled
    /// in); no deploy without it.
    #[serde(default)]
    pub deploy: Vec<String>,
    /// Environment variables passed through to the deploy command (its credentials: a
    /// deploy token, a kubeconfig path); besides PATH, HOME, LANG and TMPDIR nothing else
    /// of the runner's environment is. Their values are removed from the deploy log and
    /// from what the job records.
    #[serde(default)]
    pub deploy_env: Vec<String>,
    /// Path prefixes a run may never change (in addition to the job's own).
    #[serde(default)]
    pub forbidden_paths: Vec<String>,
    /// The most files a run may change (a job may ask for fewer).
    #[serde(default = "default_max_files")]
    pub max_changed_files: i64,
}

/// One coder.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunnerConfig {
    /// argv; `{prompt_file}`, `{worktree}` and `{pass}` are filled in. Runs in the
    /// worktree with no shell.
    pub command: Vec<String>,
    /// Seconds one pass may take.
    #[serde(default = "default_pass_timeout")]
    pub timeout_seconds: u64,
    /// Environment variables passed through to the coder (an API key, say); nothing else
    /// of the runner's environment is (no database URL, no lease token). Their values are
    /// removed from every log and row.
    #[serde(default)]
    pub env: Vec<String>,
}

fn default_retention_days() -> u32 {
    14
}
fn default_keep_failed_hours() -> u32 {
    24
}
fn default_wip() -> i64 {
    2
}
fn default_test_timeout() -> u64 {
    900
}
fn default_pass_timeout() -> u64 {
    1800
}
fn default_max_files() -> i64 {
    50
}

/// Refuses passing on what reaches the ledger: `DATABASE_URL`, agentbus's own variables
/// (`AGENTBUS_DATABASE_URL`, `AGENTBUS_LEASE_TOKEN`, ...) and libpq's (`PGPASSWORD`,
/// `PGHOST`, ...). A coder or a deploy script never holds the runner's ledger access.
fn check_pass_env(field: &str, names: &[String]) -> std::result::Result<(), String> {
    match names
        .iter()
        .find(|n| *n == "DATABASE_URL" || n.starts_with("AGENTBUS_") || n.starts_with("PG"))
    {
        Some(n) => Err(format!(
            "{field}: {n} reaches the ledger and is never passed on (pass the command's own credentials only)"
        )),
        None => Ok(()),
    }
}

impl CodingConfig {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<CodingConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::config(format!("{}: {e}", path.display())))?;
        let cfg: CodingConfig =
            toml::from_str(&text).map_err(|e| Error::config(format!("{}: {e}", path.display())))?;
        cfg.check()
            .map_err(|e| Error::config(format!("{}: {e}", path.display())))?;
        Ok(cfg)
    }

    fn check(&self) -> std::result::Result<(), String> {
        let problem = |e: Error| e.to_string();
        check_name("`review_agent`", &self.review_agent).map_err(problem)?;
        if self.max_runs_per_repo < 1 {
            return Err("max_runs_per_repo must be at least 1".into());
        }
        for (name, repo) in &self.repos {
            check_name("a repository's name", name).map_err(problem)?;
            if repo.test.is_empty() {
                return Err(format!("repos.{name}.test: a test command is required"));
            }
            if repo.max_changed_files < 1 {
                return Err(format!("repos.{name}.max_changed_files must be at least 1"));
            }
            check_pass_env(&format!("repos.{name}.deploy_env"), &repo.deploy_env)?;
        }
        for (name, runner) in &self.runners {
            check_name("a runner's name", name).map_err(problem)?;
            if runner.command.is_empty() {
                return Err(format!("runners.{name}.command is empty"));
            }
            check_pass_env(&format!("runners.{name}.env"), &runner.env)?;
        }
        Ok(())
    }

    /// The repository a job names.
    pub fn repo(&self, name: &str) -> Result<&RepoConfig> {
        self.repos.get(name).ok_or_else(|| {
            Error::usage(format!(
                "repository {name:?} is not in this runner's coding config (known: {})",
                self.repos.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }

    /// The runner a job names.
    pub fn runner(&self, name: &str) -> Result<&RunnerConfig> {
        self.runners.get(name).ok_or_else(|| {
            Error::usage(format!(
                "runner {name:?} is not in this runner's coding config (known: {})",
                self.runners.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }
}
