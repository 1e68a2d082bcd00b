//! Coding runs: repo-mutating work an agent hands to a coder (Claude Code, a ralph loop,
//! any command) instead of doing it in its own session. The `dev.code_change` job is the
//! intent; a coding run (`coding_runs`, one row per pass in `coding_run_passes`) is its
//! execution in a worktree of its own; merge and deploy are separate jobs, each held for
//! an operator's approval. `config` is the runner host's `coding.toml`, `git` the git
//! calls, `record` the rows, `runner` the loop, `gates` merge and deploy, `cleanup` the
//! retention of worktrees and artifacts.

pub mod cleanup;
pub mod config;
pub mod gates;
pub mod git;
mod process;
pub mod record;
pub mod runner;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::ledger::validate::{check_name, check_required_text};

/// Job type of a code change (the intent a coding run executes).
pub const CODE_CHANGE: &str = "dev.code_change";
/// Job type of the review a passed run asks for.
pub const REVIEW: &str = "dev.review";
/// Job type of a merge (held for approval).
pub const MERGE: &str = "dev.merge";
/// Job type of a deploy (held for approval).
pub const DEPLOY: &str = "dev.deploy";

/// What a `dev.code_change` job asks, read from its payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CodeChange {
    /// A repository of the runner's coding config.
    pub repo: String,
    /// The branch (or tag, or commit) to start from; merges go back into it.
    #[serde(default = "default_base")]
    pub base_ref: String,
    /// What is wrong or wanted.
    pub problem_statement: String,
    /// What must hold when done.
    #[serde(default)]
    pub acceptance_criteria: Vec<String>,
    /// Limits on the diff, and whether merge and deploy may be asked for.
    #[serde(default)]
    pub constraints: Constraints,
    /// Which coder, in which mode, for how long.
    #[serde(default)]
    pub handoff: Handoff,
}

fn default_base() -> String {
    "main".into()
}

/// Limits the diff must respect (checked on the diff, never taken from the coder's word).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Constraints {
    /// At most this many changed files (the repository's limit applies too).
    pub max_changed_files: Option<i64>,
    /// Path prefixes it may not touch (added to the repository's).
    #[serde(default)]
    pub forbidden_paths: Vec<String>,
    /// Whether a merge may be requested at all.
    #[serde(default)]
    pub allow_merge: bool,
    /// Whether a deploy may be requested at all.
    #[serde(default)]
    pub allow_deploy: bool,
}

/// Which coder, how.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Handoff {
    /// A runner of the coding config.
    #[serde(default = "default_runner")]
    pub runner: String,
    /// `single-shot` (one pass) or `ralph-loop` (passes until the tests pass).
    #[serde(default = "default_mode")]
    pub mode: String,
    /// Passes a ralph loop may make.
    #[serde(default = "default_iterations")]
    pub max_iterations: i32,
    /// Wall time for the whole run, in seconds.
    #[serde(default = "default_budget")]
    pub time_budget_seconds: u64,
}

impl Default for Handoff {
    fn default() -> Self {
        Handoff {
            runner: default_runner(),
            mode: default_mode(),
            max_iterations: default_iterations(),
            time_budget_seconds: default_budget(),
        }
    }
}

fn default_runner() -> String {
    "claude-code".into()
}
fn default_mode() -> String {
    "single-shot".into()
}
fn default_iterations() -> i32 {
    5
}
fn default_budget() -> u64 {
    3600
}

impl CodeChange {
    /// Reads and checks a job's payload.
    pub fn from_payload(payload: &Value) -> Result<CodeChange> {
        let c: CodeChange = serde_json::from_value(payload.clone()).map_err(|e| {
            Error::usage(format!("a {CODE_CHANGE} payload: {e}"))
                .with_hint("needs repo and problem_statement; see `agentbus code --help`")
        })?;
        check_name("`repo`", &c.repo)?;
        check_name("`handoff.runner`", &c.handoff.runner)?;
        check_required_text("`problem_statement`", &c.problem_statement)?;
        let base_ok = !c.base_ref.is_empty()
            && c.base_ref.len() <= 200
            && !c.base_ref.starts_with(['-', '/', '.'])
            && !c.base_ref.contains("..")
            && c.base_ref
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "._/-".contains(ch));
        if !base_ok {
            return Err(Error::usage(format!(
                "`base_ref`: {:?} is not a plain branch, tag or commit name",
                c.base_ref
            )));
        }
        if !matches!(c.handoff.mode.as_str(), "single-shot" | "ralph-loop") {
            return Err(Error::usage(format!(
                "`handoff.mode`: {:?} (single-shot or ralph-loop)",
                c.handoff.mode
            )));
        }
        if !(1..=50).contains(&c.handoff.max_iterations) {
            return Err(Error::usage("`handoff.max_iterations`: 1 to 50"));
        }
        if c.constraints.max_changed_files.is_some_and(|n| n < 1) {
            return Err(Error::usage("`constraints.max_changed_files`: at least 1"));
        }
        for p in &c.constraints.forbidden_paths {
            check_required_text("`constraints.forbidden_paths`", p)?;
        }
        Ok(c)
    }

    /// Passes this run may make.
    pub fn passes(&self) -> i32 {
        if self.handoff.mode == "ralph-loop" {
            self.handoff.max_iterations
        } else {
            1
        }
    }
}

/// The branch of a run: `agentbus/<job id, 8>-<slug of the subject>`.
pub fn branch_name(job_id: uuid::Uuid, subject: &str) -> String {
    let mut slug = String::new();
    for ch in subject.to_lowercase().chars() {
        if ch.is_ascii_alphanumeric() {
            slug.push(ch);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
        if slug.len() >= 40 {
            break;
        }
    }
    let slug = slug.trim_end_matches('-');
    let id = job_id.simple().to_string();
    let short = id.get(..8).unwrap_or(&id);
    if slug.is_empty() {
        format!("agentbus/{short}")
    } else {
        format!("agentbus/{short}-{slug}")
    }
}
