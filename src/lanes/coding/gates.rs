//! Merge and deploy: separate approval boundaries. `agentbus code merge RUN` (or deploy)
//! only asks: it enqueues a `dev.merge` (`dev.deploy`) job for the runner agent, held in
//! `awaiting_approval`. The runner acts on such a job only when an operator approved it
//! (its history shows the approval): a coder, a reviewer or an agent that writes a merge
//! job itself merges nothing. A merge moves the base branch only if it is still where the
//! run's tests ran; when the base moved, the merge is refused unless it was asked with
//! `--retest`, which merges the new base in and runs the tests again first.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use uuid::Uuid;

use super::config::CodingConfig;
use super::record::{self, CodingRun};
use super::{git, process, DEPLOY, MERGE};
use crate::db::transaction;
use crate::error::{Error, Result};
use crate::ledger::jobs::{self, Caller, Enqueued, Fence, Job};
use crate::redact::Redactor;

/// Which boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Code into the base branch.
    Merge,
    /// Merged code into production.
    Deploy,
}

impl Gate {
    fn job_type(self) -> &'static str {
        match self {
            Gate::Merge => MERGE,
            Gate::Deploy => DEPLOY,
        }
    }
    fn word(self) -> &'static str {
        match self {
            Gate::Merge => "merge",
            Gate::Deploy => "deploy",
        }
    }
}

/// Asks for a merge or a deploy of `run`: a job for the runner agent that waits for an
/// operator's approval (the same job again while one is open).
pub fn request(
    tx: &mut postgres::Transaction<'_>,
    run: &CodingRun,
    gate: Gate,
    retest: bool,
    actor: &str,
) -> Result<Enqueued> {
    let allowed = run.prompt_input["constraints"][match gate {
        Gate::Merge => "allow_merge",
        Gate::Deploy => "allow_deploy",
    }]
    .as_bool()
    .unwrap_or(false);
    if !allowed {
        return Err(Error::conflict(format!(
            "coding run {}: its job does not allow a {} (constraints.allow_{} is false)",
            run.id,
            gate.word(),
            gate.word()
        )));
    }
    match gate {
        Gate::Merge if run.status != "waiting_for_review" => {
            return Err(Error::conflict(format!(
            "coding run {} is {}: only a run whose tests passed (waiting_for_review) can be merged",
            run.id, run.status
        )))
        }
        Gate::Deploy if run.merged_commit.is_none() => {
            return Err(Error::conflict(format!(
                "coding run {} is not merged: deploy comes after an approved merge",
                run.id
            )))
        }
        _ => {}
    }
    let code_job = jobs::get(tx, run.job_id)?;
    let mut p = jobs::EnqueueParams::new(
        run.namespace.clone(),
        code_job.target_agent.clone(),
        gate.job_type(),
        format!(
            "{} {}: {}",
            gate.word(),
            run.branch.clone().unwrap_or_default(),
            code_job.subject
        ),
        actor,
    );
    p.parent_job_id = Some(run.job_id);
    p.flow_key = code_job.flow_key.clone();
    p.requires_approval = true;
    p.dedupe_key = Some(format!(
        "{}:{}{}",
        gate.word(),
        run.id,
        if retest { ":retest" } else { "" }
    ));
    p.payload = json!({"run_id": run.id, "retest": retest, "branch": run.branch,
                       "head_commit": run.head_commit, "base_ref": run.base_ref});
    jobs::enqueue(tx, &p)
}

/// Whether an operator approved `job` (its history has the approval).
fn approved(client: &mut impl postgres::GenericClient, job: &Job) -> Result<bool> {
    Ok(job.requires_approval
        && client
            .query_one(
                "select exists (select 1 from job_history where job_id = $1
                                   and from_status = 'awaiting_approval'
                                   and to_status in ('queued', 'waiting'))",
                &[&job.id],
            )?
            .try_get(0)?)
}

/// What a merge or deploy did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Acted {
    /// The run afterwards.
    pub run: CodingRun,
    /// The merge or deploy job's status afterwards.
    pub job_status: String,
    /// What the job's result records.
    pub result: Value,
}

/// Carries out the approved `dev.merge` or `dev.deploy` job `job` (leased by the caller).
pub fn act(
    client: &mut postgres::Client,
    cfg: &CodingConfig,
    job: &Job,
    fence: Fence,
    caller: &Caller,
) -> Result<Acted> {
    let gate = if job.job_type == MERGE {
        Gate::Merge
    } else {
        Gate::Deploy
    };
    let run_id = job.payload["run_id"]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| Error::usage(format!("job {}: payload.run_id is missing", job.id)))?;
    let run = record::get(client, &run_id.to_string(), &job.namespace)?;
    let refuse = |client: &mut postgres::Client, why: String| -> Result<Acted> {
        transaction(client, |tx| {
            jobs::block(
                tx,
                job.id,
                fence,
                caller,
                &jobs::BlockParams {
                    blocked_reason: why.clone(),
                    ..Default::default()
                },
            )
        })?;
        Err(Error::conflict(why))
    };
    if !approved(client, job)? {
        return refuse(client, format!(
            "a {} needs an operator's approval: this job was never approved (agentbus code {} {} asks for one)",
            gate.word(), gate.word(), run.id
        ));
    }
    let repo = cfg.repo(&run.repo)?;
    let result = match gate {
        Gate::Merge => match merge(cfg, &run, job.payload["retest"].as_bool() == Some(true)) {
            Ok(commit) => {
                transaction(client, |tx| record::mark_merged(tx, run.id, &commit))?;
                json!({"coding_run_id": run.id, "merged_commit": commit, "base_ref": run.base_ref})
            }
            Err(e) => return refuse(client, e.message),
        },
        Gate::Deploy => {
            if repo.deploy.is_empty() {
                return refuse(
                    client,
                    format!(
                        "repository {} has no deploy command in the coding config",
                        run.repo
                    ),
                );
            }
            let commit = run.merged_commit.clone().unwrap_or_default();
            let argv: Vec<String> = repo
                .deploy
                .iter()
                .map(|a| a.replace("{commit}", &commit))
                .collect();
            let dir = cfg
                .artifact_root
                .join(&run.namespace)
                .join(run.id.to_string());
            let _ = std::fs::create_dir_all(&dir);
            let log = dir.join("deploy.log");
            let redactor = Redactor::for_env_vars(&repo.deploy_env);
            let ended = process::run(
                &argv,
                &repo.path,
                &repo.deploy_env,
                Duration::from_secs(1800),
                &log,
                &redactor,
            )?;
            process::scrub(&log, &redactor);
            if ended.code != Some(0) {
                let why = format!(
                    "the deploy command exited {:?}: {}",
                    ended.code,
                    ended.tail.trim()
                );
                transaction(client, |tx| {
                    jobs::fail(
                        tx,
                        job.id,
                        fence,
                        caller,
                        &jobs::FailParams {
                            last_error: why.chars().take(1900).collect(),
                            ..Default::default()
                        },
                    )
                })?;
                return Err(Error::failure(why));
            }
            transaction(client, |tx| record::mark_deployed(tx, run.id))?;
            json!({"coding_run_id": run.id, "deployed_commit": commit, "log": log.display().to_string()})
        }
    };
    let done = transaction(client, |tx| {
        jobs::complete(
            tx,
            job.id,
            fence,
            caller,
            &jobs::CompleteParams {
                summary: Some(format!(
                    "{} of {} done",
                    gate.word(),
                    run.branch.clone().unwrap_or_default()
                )),
                result: Some(result.clone()),
                ..Default::default()
            },
        )
    })?;
    let run = record::get(client, &run.id.to_string(), &run.namespace)?;
    Ok(Acted {
        run,
        job_status: done.status.as_str().to_string(),
        result,
    })
}

/// Moves the base branch to the run's head (or to a merge of the moved base with it,
/// tested again); returns the new base commit.
fn merge(cfg: &CodingConfig, run: &CodingRun, retest: bool) -> Result<String> {
    let repo = cfg.repo(&run.repo)?;
    let head = run
        .head_commit
        .clone()
        .ok_or_else(|| Error::conflict("the run has no head commit"))?;
    let base_ref = format!("refs/heads/{}", run.base_ref);
    let base_now = git::rev(&repo.path, &base_ref).map_err(|_| {
        Error::conflict(format!(
            "{} is not a branch of {}: nothing to merge into",
            run.base_ref, run.repo
        ))
    })?;
    let tested_on = run.base_commit.clone().unwrap_or_default();
    if base_now == tested_on || git::is_ancestor(&repo.path, &base_now, &head) {
        git::advance_branch(&repo.path, &run.base_ref, &base_now, &head)?;
        return Ok(head);
    }
    if !retest {
        return Err(Error::conflict(format!(
            "{} moved from {} to {} since the run's tests: the merge was not tested on it (agentbus code merge {} --retest asks again, testing the merge first)",
            run.base_ref, short(&tested_on), short(&base_now), run.id
        )));
    }
    // Merge the new base into the run's head in a worktree of its own, test, then move
    // the base (only if it is still where it was).
    let dir: PathBuf = cfg
        .worktree_root
        .join(&run.namespace)
        .join(format!("{}-merge", run.id));
    let temp = format!(
        "{}-merge",
        run.branch
            .clone()
            .unwrap_or_else(|| format!("agentbus/{}", run.id))
    );
    let _ = git::remove_worktree(&repo.path, &dir);
    let _ = git::git(&repo.path, &["branch", "-D", &temp]);
    git::add_worktree(&repo.path, &dir, &temp, &head)?;
    let outcome = (|| -> Result<String> {
        git::git(&dir, &["merge", "--no-edit", "--quiet", &base_now]).map_err(|e| {
            Error::conflict(format!(
                "the moved base does not merge cleanly: {}",
                e.message
            ))
        })?;
        let merged = git::git(&dir, &["rev-parse", "HEAD"])?;
        let log = cfg
            .artifact_root
            .join(&run.namespace)
            .join(run.id.to_string())
            .join("test-merge.log");
        if let Some(parent) = log.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let t = process::run(
            &repo.test,
            &dir,
            &[],
            Duration::from_secs(repo.test_timeout_seconds),
            &log,
            &Redactor::default(),
        )?;
        if t.code != Some(0) {
            return Err(Error::conflict(format!(
                "the tests fail on the merge with the moved base: {}",
                t.tail.trim()
            )));
        }
        git::advance_branch(&repo.path, &run.base_ref, &base_now, &merged)?;
        Ok(merged)
    })();
    let _ = git::remove_worktree(&repo.path, &dir);
    let _ = git::git(&repo.path, &["branch", "-D", &temp]);
    outcome
}

fn short(commit: &str) -> &str {
    commit.get(..10).unwrap_or(commit)
}
