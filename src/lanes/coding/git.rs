//! The git the runner needs, through `git` itself (argv, never a shell): worktrees on
//! fresh branches, a commit per pass, the diff against the base, and compare-and-swap
//! updates of the base branch for merges.

use std::path::Path;
use std::process::Command;

use crate::error::{Error, Result};

/// Runs `git -C dir args…` and returns its standard output (trimmed).
pub fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=agentbus",
            "-c",
            "user.email=agentbus@localhost",
        ])
        .args([
            "-c",
            "commit.gpgsign=false",
            "-c",
            "core.hooksPath=/dev/null",
        ])
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .map_err(|e| Error::config(format!("cannot run git: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(Error::failure(format!(
            "git {}: {}",
            args.first().copied().unwrap_or(""),
            crate::redact::bounded(err.trim(), 500)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The commit `rev` names in `repo`.
pub fn rev(repo: &Path, rev: &str) -> Result<String> {
    git(
        repo,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{commit}}"),
        ],
    )
    .map_err(|_| Error::usage(format!("{rev:?} is not a commit of {}", repo.display())))
}

/// Adds a worktree at `path` on a new branch `branch` starting at `commit`.
pub fn add_worktree(repo: &Path, path: &Path, branch: &str, commit: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::failure(format!("{}: {e}", parent.display())))?;
    }
    let p = path.to_string_lossy();
    git(
        repo,
        &["worktree", "add", "--quiet", "-b", branch, &p, commit],
    )
    .map(|_| ())
}

/// Removes a worktree (its branch stays); a worktree already gone is pruned.
pub fn remove_worktree(repo: &Path, path: &Path) -> Result<()> {
    let p = path.to_string_lossy();
    if path.exists() {
        git(repo, &["worktree", "remove", "--force", &p])?;
    }
    git(repo, &["worktree", "prune"]).map(|_| ())
}

/// Commits everything the coder left in `worktree` (if anything) and returns HEAD.
pub fn commit_all(worktree: &Path, message: &str) -> Result<String> {
    git(worktree, &["add", "--all"])?;
    let staged = git(worktree, &["diff", "--cached", "--name-only"])?;
    if !staged.is_empty() {
        git(
            worktree,
            &["commit", "--quiet", "--no-verify", "-m", message],
        )?;
    }
    git(worktree, &["rev-parse", "HEAD"])
}

/// The files changed between `base` and `head`, and the totals of `--numstat`.
pub fn diff(worktree: &Path, base: &str, head: &str) -> Result<(Vec<String>, i64, i64)> {
    let names = git(
        worktree,
        &["diff", "--name-only", "--no-renames", base, head],
    )?;
    let files: Vec<String> = names.lines().map(str::to_string).collect();
    let mut ins = 0;
    let mut del = 0;
    for line in git(worktree, &["diff", "--numstat", "--no-renames", base, head])?.lines() {
        let mut parts = line.split('\t');
        ins += parts
            .next()
            .and_then(|n| n.parse::<i64>().ok())
            .unwrap_or(0);
        del += parts
            .next()
            .and_then(|n| n.parse::<i64>().ok())
            .unwrap_or(0);
    }
    Ok((files, ins, del))
}

/// The patch from `base` to `head`.
pub fn patch(worktree: &Path, base: &str, head: &str) -> Result<String> {
    git(worktree, &["diff", "--binary", base, head])
}

/// Whether `ancestor` is an ancestor of (or equal to) `commit`.
pub fn is_ancestor(repo: &Path, ancestor: &str, commit: &str) -> bool {
    git(repo, &["merge-base", "--is-ancestor", ancestor, commit]).is_ok()
}

/// Moves `refs/heads/<branch>` from `old` to `new` only if it still is `old` (a merge
/// never overwrites a base that moved meanwhile). When the branch is checked out in the
/// repository's own working tree, that tree is fast-forwarded with it.
pub fn advance_branch(repo: &Path, branch: &str, old: &str, new: &str) -> Result<()> {
    let checked_out = git(repo, &["symbolic-ref", "--quiet", "HEAD"]).ok()
        == Some(format!("refs/heads/{branch}"))
        && git(repo, &["rev-parse", "--is-bare-repository"]).ok() == Some("false".into());
    if checked_out {
        if git(repo, &["rev-parse", "HEAD"])? != old {
            return Err(Error::conflict(format!("{branch} moved during the merge")));
        }
        git(repo, &["merge", "--ff-only", "--quiet", new]).map(|_| ())
    } else {
        let r = format!("refs/heads/{branch}");
        git(repo, &["update-ref", &r, new, old]).map(|_| ())
    }
}
