//! `agentbus code run`: executes a `dev.code_change` job the caller holds the lease of.
//! A worktree on a fresh branch, then passes — the coder, a commit of what it left, the
//! diff checked against the constraints, the tests — until the tests pass (ralph loop),
//! the passes or the time budget run out, or a constraint breaks. Every pass is a row.
//! The job ends completed (with a `dev.review` job for the reviewer), blocked (with the
//! evidence) or failed (the coder crashed or timed out); the run ends
//! `waiting_for_review`, `blocked` or `failed`. Each step is its own short transaction:
//! the rows say how far a run got even if the runner is killed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use uuid::Uuid;

use super::config::{CodingConfig, RepoConfig, RunnerConfig};
use super::record::{self, CodingRun, Finish, NewRun, Pass};
use super::{branch_name, git, process, CodeChange, REVIEW};
use crate::db::transaction;
use crate::error::{Error, ErrorKind, Result};
use crate::ledger::jobs::{self, Caller, Fence, Job};
use crate::redact::Redactor;

/// How a run ended.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    /// The run afterwards.
    pub run: CodingRun,
    /// Its passes.
    pub passes: Vec<Pass>,
    /// The job as it is now.
    pub job_status: String,
    /// The review job, when the tests passed.
    pub review_job_id: Option<Uuid>,
}

/// The runner's identity (host name and process id), recorded with each run so a later
/// run on the same host can tell a dead runner from a busy one.
pub fn host() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".into())
}

struct Ctx<'a> {
    cfg: &'a CodingConfig,
    job: Job,
    fence: Fence,
    caller: Caller,
    change: CodeChange,
    repo: &'a RepoConfig,
    runner: &'a RunnerConfig,
    redactor: Redactor,
}

/// Runs the code change `job_id` (leased by the caller: `fence`).
pub fn run(
    client: &mut postgres::Client,
    cfg: &CodingConfig,
    job_id: Uuid,
    fence: Fence,
    caller: &Caller,
) -> Result<Outcome> {
    super::cleanup::reap(client, cfg)?;
    let job = transaction(client, |tx| {
        jobs::mark_running(tx, job_id, fence, caller, &Default::default())
    })?;
    let stop = |client: &mut postgres::Client, why: String| -> Result<Outcome> {
        transaction(client, |tx| {
            jobs::block(
                tx,
                job_id,
                fence,
                caller,
                &jobs::BlockParams {
                    blocked_reason: why.clone(),
                    ..Default::default()
                },
            )
        })?;
        Err(Error::usage(why))
    };
    let change = match CodeChange::from_payload(&job.payload) {
        Ok(c) => c,
        Err(e) => return stop(client, e.to_string()),
    };
    let (repo, runner) = match (cfg.repo(&change.repo), cfg.runner(&change.handoff.runner)) {
        (Ok(r), Ok(n)) => (r, n),
        (Err(e), _) | (_, Err(e)) => return stop(client, e.to_string()),
    };
    let base_commit = match git::rev(&repo.path, &change.base_ref) {
        Ok(c) => c,
        Err(e) => return stop(client, e.to_string()),
    };
    let redactor = Redactor::for_env_vars(&runner.env);
    let ctx = Ctx {
        cfg,
        job,
        fence,
        caller: caller.clone(),
        change,
        repo,
        runner,
        redactor,
    };
    execute(client, &ctx, &base_commit)
}

fn execute(client: &mut postgres::Client, c: &Ctx<'_>, base_commit: &str) -> Result<Outcome> {
    let run_id = Uuid::new_v4();
    let ns = &c.job.namespace;
    let worktree = c.cfg.worktree_root.join(ns).join(run_id.to_string());
    let artifacts = c.cfg.artifact_root.join(ns).join(run_id.to_string());
    std::fs::create_dir_all(&artifacts)
        .map_err(|e| Error::failure(format!("{}: {e}", artifacts.display())))?;
    let mut branch = branch_name(c.job.id, &c.job.subject);
    if git::rev(&c.repo.path, &format!("refs/heads/{branch}")).is_ok() {
        branch = format!("{branch}-{}", &run_id.simple().to_string()[..6]);
    }
    let new = NewRun {
        id: run_id,
        namespace: ns.clone(),
        job_id: c.job.id,
        runner: c.change.handoff.runner.clone(),
        run_mode: c.change.handoff.mode.clone(),
        repo: c.change.repo.clone(),
        base_ref: c.change.base_ref.clone(),
        base_commit: base_commit.to_string(),
        branch: branch.clone(),
        worktree_path: worktree.display().to_string(),
        runner_host: host(),
        runner_pid: i32::try_from(std::process::id()).unwrap_or(0),
        max_iterations: c.change.passes(),
        prompt_input: json!({
            "subject": c.job.subject,
            "problem_statement": c.change.problem_statement,
            "acceptance_criteria": c.change.acceptance_criteria,
            "constraints": c.change.constraints,
        }),
    };
    let started = transaction(client, |tx| {
        record::start(tx, &new, c.cfg.max_runs_per_repo)
    });
    let run = match started {
        Ok(run) => run,
        Err(e) if e.kind == ErrorKind::Temporary => {
            // The repository is at its limit: give the job back, to be tried again later,
            // without counting the attempt.
            transaction(client, |tx| {
                jobs::fail(
                    tx,
                    c.job.id,
                    c.fence,
                    &c.caller,
                    &jobs::FailParams {
                        last_error: e.to_string(),
                        retry_seconds: Some(60),
                        unreached: true,
                        ..Default::default()
                    },
                )
            })?;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    if let Err(e) = git::add_worktree(&c.repo.path, &worktree, &branch, base_commit) {
        return end_failed(
            client,
            c,
            &run,
            Vec::new(),
            &format!("worktree: {e}"),
            false,
        );
    }
    let deadline = Instant::now() + Duration::from_secs(c.change.handoff.time_budget_seconds);
    let mut passes = Vec::new();
    let mut feedback = String::new();
    let mut head = base_commit.to_string();
    for n in 1..=c.change.passes() {
        let prompt = artifacts.join(format!("prompt-{n}.md"));
        std::fs::write(&prompt, prompt_text(c, n, &feedback))
            .map_err(|e| Error::failure(format!("{}: {e}", prompt.display())))?;
        transaction(client, |tx| record::set_status(tx, run.id, "running"))?;
        let argv = fill(&c.runner.command, &prompt, &worktree, n);
        let left = deadline.saturating_duration_since(Instant::now());
        let budget = Duration::from_secs(c.runner.timeout_seconds).min(left);
        let coder_log = artifacts.join("coder.log");
        let coder = process::run(
            &argv,
            &worktree,
            &c.runner.env,
            budget,
            &coder_log,
            &c.redactor,
        )?;
        let mut pass = Pass {
            pass_no: n,
            coder_exit: coder.code,
            diff_stat: json!({}),
            duration_ms: Some(coder.duration.as_millis() as i64),
            ..Default::default()
        };
        if coder.code != Some(0) {
            let why = if coder.timed_out {
                format!("the coder ran out of time after {} s", budget.as_secs())
            } else {
                format!("the coder exited {:?}", coder.code)
            };
            pass.outcome = Some(why.clone());
            transaction(client, |tx| record::add_pass(tx, run.id, &pass))?;
            passes.push(pass);
            let error = format!("{why}; last output: {}", coder.tail.trim());
            return end_failed(client, c, &run, passes, &error, true);
        }
        head = git::commit_all(&worktree, &format!("agentbus pass {n}: {}", c.job.subject))?;
        let (files, ins, del) = git::diff(&worktree, base_commit, &head)?;
        pass.diff_stat = json!({"files": files.len(), "insertions": ins, "deletions": del});
        if let Some(why) = broken_constraint(c, &files) {
            pass.outcome = Some(why.clone());
            transaction(client, |tx| record::add_pass(tx, run.id, &pass))?;
            passes.push(pass);
            return end_blocked(client, c, &run, passes, &head, files, &why);
        }
        transaction(client, |tx| {
            record::set_status(tx, run.id, "waiting_for_tests")
        })?;
        let test_log = artifacts.join(format!("test-{n}.log"));
        let left = deadline.saturating_duration_since(Instant::now());
        let test_budget =
            Duration::from_secs(c.repo.test_timeout_seconds).min(left.max(Duration::from_secs(1)));
        let tests = process::run(
            &c.repo.test,
            &worktree,
            &[],
            test_budget,
            &test_log,
            &c.redactor,
        )?;
        let passed = tests.code == Some(0);
        pass.tests_passed = Some(passed);
        pass.test_exit = tests.code;
        pass.test_tail = Some(tests.tail.clone());
        pass.duration_ms = Some((coder.duration + tests.duration).as_millis() as i64);
        let out_of_time = Instant::now() >= deadline;
        let last = n == c.change.passes() || out_of_time;
        if !passed && last {
            pass.outcome = Some(if out_of_time {
                "time budget spent".into()
            } else {
                "no passes left".into()
            });
        }
        transaction(client, |tx| {
            record::add_pass(tx, run.id, &pass)?;
            jobs::renew_lease(tx, c.job.id, c.fence, &c.caller, 900).map(|_| ())
        })?;
        passes.push(pass);
        if passed {
            return end_passed(client, c, &run, passes, &head, files);
        }
        if last {
            let why = format!(
                "the tests never passed: {} pass(es){}; last test output: {}",
                passes.len(),
                if out_of_time {
                    ", time budget spent"
                } else {
                    ""
                },
                tests.tail.trim()
            );
            return end_blocked(client, c, &run, passes, &head, files, &why);
        }
        feedback = tests.tail;
    }
    let why = "no pass ran".to_string();
    end_blocked(client, c, &run, passes, &head, Vec::new(), &why)
}

/// The first constraint the diff breaks, if any.
fn broken_constraint(c: &Ctx<'_>, files: &[String]) -> Option<String> {
    let max = c
        .change
        .constraints
        .max_changed_files
        .map_or(c.repo.max_changed_files, |n| {
            n.min(c.repo.max_changed_files)
        });
    if files.len() as i64 > max {
        return Some(format!(
            "constraint broken: {} files changed, at most {max} allowed",
            files.len()
        ));
    }
    let forbidden: Vec<&String> = c
        .repo
        .forbidden_paths
        .iter()
        .chain(&c.change.constraints.forbidden_paths)
        .collect();
    files.iter().find_map(|f| {
        forbidden
            .iter()
            .find(|p| f.starts_with(p.as_str()))
            .map(|p| format!("constraint broken: {f} is under the forbidden path {p}"))
    })
}

fn fill(argv: &[String], prompt: &Path, worktree: &Path, pass: i32) -> Vec<String> {
    argv.iter()
        .map(|a| {
            a.replace("{prompt_file}", &prompt.display().to_string())
                .replace("{worktree}", &worktree.display().to_string())
                .replace("{pass}", &pass.to_string())
        })
        .collect()
}

fn prompt_text(c: &Ctx<'_>, pass: i32, feedback: &str) -> String {
    let mut out = format!(
        "# {}\n\n{}\n\n## Acceptance criteria\n\n",
        c.job.subject, c.change.problem_statement
    );
    for a in &c.change.acceptance_criteria {
        out.push_str(&format!("- {a}\n"));
    }
    out.push_str("\n## Constraints\n\n");
    let forbidden: Vec<&String> = c
        .repo
        .forbidden_paths
        .iter()
        .chain(&c.change.constraints.forbidden_paths)
        .collect();
    out.push_str(&format!(
        "- change at most {} files\n- never touch: {}\n- the tests (`{}`) must pass\n",
        c.change
            .constraints
            .max_changed_files
            .map_or(c.repo.max_changed_files, |n| n
                .min(c.repo.max_changed_files)),
        if forbidden.is_empty() {
            "nothing listed".into()
        } else {
            forbidden
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        },
        c.repo.test.join(" ")
    ));
    if pass > 1 {
        out.push_str(&format!(
            "\n## Pass {pass}: the tests failed after the last pass\n\n```\n{feedback}\n```\n"
        ));
    }
    out
}

/// Keeps the logs, prompts and patch as artifacts (scrubbed of secrets, hashed).
fn artifacts(c: &Ctx<'_>, run: &CodingRun) -> Vec<Value> {
    let dir: PathBuf = c
        .cfg
        .artifact_root
        .join(&run.namespace)
        .join(run.id.to_string());
    let mut out = Vec::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    names.sort();
    for path in names {
        process::scrub(&path, &c.redactor);
        if let Ok(bytes) = std::fs::read(&path) {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let kind = name.split(['-', '.']).next().unwrap_or("file").to_string();
            out.push(json!({"kind": kind, "path": path.display().to_string(),
                            "sha256": crate::sha::sha256_hex(&bytes), "bytes": bytes.len()}));
        }
    }
    out
}

fn test_summary(passes: &[Pass]) -> Value {
    json!({
        "passes": passes.len(),
        "passed": passes.last().and_then(|p| p.tests_passed).unwrap_or(false),
        "last_exit": passes.last().and_then(|p| p.test_exit),
    })
}

fn outcome(
    client: &mut postgres::Client,
    run: CodingRun,
    passes: Vec<Pass>,
    review: Option<Uuid>,
    job_id: Uuid,
) -> Result<Outcome> {
    let job = jobs::get(client, job_id)?;
    Ok(Outcome {
        run,
        passes,
        job_status: job.status.as_str().to_string(),
        review_job_id: review,
    })
}

fn end_passed(
    client: &mut postgres::Client,
    c: &Ctx<'_>,
    run: &CodingRun,
    passes: Vec<Pass>,
    head: &str,
    files: Vec<String>,
) -> Result<Outcome> {
    let worktree = c
        .cfg
        .worktree_root
        .join(&run.namespace)
        .join(run.id.to_string());
    let patch = git::patch(&worktree, run.base_commit.as_deref().unwrap_or(""), head)?;
    let dir = c
        .cfg
        .artifact_root
        .join(&run.namespace)
        .join(run.id.to_string());
    let patch_path = dir.join("patch.diff");
    std::fs::write(&patch_path, format!("{patch}\n"))
        .map_err(|e| Error::failure(format!("{}: {e}", patch_path.display())))?;
    let refs = artifacts(c, run);
    let patch_sha = refs
        .iter()
        .find(|r| r["kind"] == "patch")
        .and_then(|r| r["sha256"].as_str())
        .map(str::to_string);
    let removed = git::remove_worktree(&c.repo.path, &worktree).is_ok();
    let summary = format!(
        "tests pass after {} pass(es); {} file(s) changed on {}",
        passes.len(),
        files.len(),
        run.branch.clone().unwrap_or_default()
    );
    let finish = Finish {
        status: "waiting_for_review".into(),
        head_commit: Some(head.to_string()),
        result_summary: Some(summary.clone()),
        changed_files: files.clone(),
        patch_ref: Some(patch_path.display().to_string()),
        patch_sha256: patch_sha.clone(),
        test_summary: Some(test_summary(&passes)),
        artifact_refs: refs,
        error: None,
        worktree_removed: removed,
    };
    let (run, review) = transaction(client, |tx| {
        let run = record::finish(tx, run.id, &finish)?;
        let mut p = jobs::EnqueueParams::new(
            c.job.namespace.clone(),
            c.cfg.review_agent.clone(),
            REVIEW,
            format!("review: {}", c.job.subject),
            c.caller.actor.clone(),
        );
        p.parent_job_id = Some(c.job.id);
        p.flow_key = c.job.flow_key.clone();
        p.source_agent = Some(c.job.target_agent.clone());
        p.dedupe_key = Some(format!("review:{}", run.id));
        p.payload = json!({
            "run_id": run.id, "branch": run.branch, "head_commit": head, "base_ref": run.base_ref,
            "patch_ref": run.patch_ref, "patch_sha256": run.patch_sha256,
            "changed_files": files, "problem_statement": c.change.problem_statement,
            "acceptance_criteria": c.change.acceptance_criteria,
            "allow_merge": c.change.constraints.allow_merge,
        });
        let review = jobs::enqueue(tx, &p)?;
        jobs::complete(
            tx,
            c.job.id,
            c.fence,
            &c.caller,
            &jobs::CompleteParams {
                summary: Some(summary.clone()),
                result: Some(json!({
                    "coding_run_id": run.id, "branch": run.branch, "head_commit": head,
                    "patch_ref": run.patch_ref, "patch_sha256": run.patch_sha256,
                    "changed_files": run.changed_files, "test_summary": run.test_summary,
                    "review_job_id": review.job.id,
                })),
                ..Default::default()
            },
        )?;
        Ok((run, review.job.id))
    })?;
    outcome(client, run, passes, Some(review), c.job.id)
}

fn end_blocked(
    client: &mut postgres::Client,
    c: &Ctx<'_>,
    run: &CodingRun,
    passes: Vec<Pass>,
    head: &str,
    files: Vec<String>,
    why: &str,
) -> Result<Outcome> {
    let finish = Finish {
        status: "blocked".into(),
        head_commit: Some(head.to_string()),
        result_summary: Some(why.chars().take(3900).collect()),
        changed_files: files,
        test_summary: Some(test_summary(&passes)),
        artifact_refs: artifacts(c, run),
        ..Default::default()
    };
    let run = transaction(client, |tx| {
        let run = record::finish(tx, run.id, &finish)?;
        jobs::block(
            tx,
            c.job.id,
            c.fence,
            &c.caller,
            &jobs::BlockParams {
                blocked_reason: why.chars().take(1900).collect(),
                result: Some(json!({"coding_run_id": run.id, "branch": run.branch,
                                    "worktree_path": run.worktree_path,
                                    "changed_files": run.changed_files,
                                    "test_summary": run.test_summary})),
                ..Default::default()
            },
        )?;
        Ok(run)
    })?;
    outcome(client, run, passes, None, c.job.id)
}

fn end_failed(
    client: &mut postgres::Client,
    c: &Ctx<'_>,
    run: &CodingRun,
    passes: Vec<Pass>,
    error: &str,
    retry: bool,
) -> Result<Outcome> {
    let error: String = error.chars().take(1900).collect();
    let finish = Finish {
        status: "failed".into(),
        error: Some(error.clone()),
        test_summary: Some(test_summary(&passes)),
        artifact_refs: artifacts(c, run),
        ..Default::default()
    };
    let run = transaction(client, |tx| {
        let run = record::finish(tx, run.id, &finish)?;
        jobs::fail(
            tx,
            c.job.id,
            c.fence,
            &c.caller,
            &jobs::FailParams {
                last_error: error.clone(),
                retry_seconds: retry.then(|| jobs::retry_backoff_seconds(c.job.attempt_count)),
                result: Some(json!({"coding_run_id": run.id, "worktree_path": run.worktree_path})),
                ..Default::default()
            },
        )?;
        Ok(run)
    })?;
    outcome(client, run, passes, None, c.job.id)
}
