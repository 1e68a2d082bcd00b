//! Retention of what runs leave on a runner host: a run whose runner is gone is ended
//! `failed`; a finished run's worktree is removed (a failed or blocked one after
//! `keep_failed_worktrees_hours`, for a person to look at first); artifacts after
//! `artifact_retention_days`. Runs at the start of every `agentbus code run` and by
//! `agentbus code cleanup`.

use std::path::PathBuf;

use serde::Serialize;
use uuid::Uuid;

use super::config::CodingConfig;
use super::{git, record};
use crate::db::transaction;
use crate::error::Result;

/// What a cleanup did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Cleaned {
    /// Runs whose runner was gone, now failed.
    pub lost: Vec<Uuid>,
    /// Runs whose worktree was removed.
    pub worktrees_removed: Vec<Uuid>,
    /// Runs whose artifacts were removed.
    pub artifacts_removed: Vec<Uuid>,
}

/// Whether process `pid` still runs on this host.
fn alive(pid: i32) -> bool {
    use nix::errno::Errno;
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(e) => e == Errno::EPERM,
    }
}

/// Ends lost runs and removes what is past retention on this host.
pub fn reap(client: &mut postgres::Client, cfg: &CodingConfig) -> Result<Cleaned> {
    let host = super::runner::host();
    let mut out = Cleaned::default();
    for run in record::lost(client, &host, alive)? {
        let why = match run.runner_pid {
            Some(pid) if run.runner_host.as_deref() == Some(host.as_str()) && !alive(pid) => {
                format!("the runner (pid {pid} on {host}) is gone")
            }
            _ => "its job is no longer leased or running (lease expired or stopped)".into(),
        };
        transaction(client, |tx| record::mark_lost(tx, run.id, &why))?;
        out.lost.push(run.id);
    }
    let (worktrees, artifacts) = record::cleanup_candidates(
        client,
        &host,
        i32::try_from(cfg.keep_failed_worktrees_hours).unwrap_or(i32::MAX),
        i32::try_from(cfg.artifact_retention_days).unwrap_or(i32::MAX),
    )?;
    for run in worktrees {
        // The path comes from this host's config and the run's id, never from the row: a
        // row someone rewrote cannot make cleanup delete anything outside the worktrees.
        let path: PathBuf = cfg
            .worktree_root
            .join(&run.namespace)
            .join(run.id.to_string());
        let removed = match cfg.repos.get(&run.repo) {
            Some(repo) => git::remove_worktree(&repo.path, &path).is_ok(),
            // A repository no longer configured: its worktree folder is removed alone.
            None => std::fs::remove_dir_all(&path).is_ok() || !path.exists(),
        };
        if removed {
            transaction(client, |tx| record::mark_removed(tx, run.id, false))?;
            out.worktrees_removed.push(run.id);
        }
    }
    for run in artifacts {
        let dir = cfg
            .artifact_root
            .join(&run.namespace)
            .join(run.id.to_string());
        if std::fs::remove_dir_all(&dir).is_ok() || !dir.exists() {
            transaction(client, |tx| record::mark_removed(tx, run.id, true))?;
            out.artifacts_removed.push(run.id);
        }
    }
    Ok(out)
}
