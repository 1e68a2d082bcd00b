//! code run / merge / deploy / cleanup, list-coding-runs, show-coding-run.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use uuid::Uuid;

use super::args::{JobRef, NamespaceArg};
use super::output::{self, Format};
use super::Ctx;
use crate::error::{Error, Result};
use crate::lanes::coding::config::CodingConfig;
use crate::lanes::coding::gates::{self, Gate};
use crate::lanes::coding::{cleanup, record, runner, CODE_CHANGE, DEPLOY, MERGE};
use crate::ledger::jobs::{self, Caller, Fence};

/// Coding runs: hand repo-mutating work to a coder in a worktree of its own
///
/// `run` executes the job the caller holds the lease of (what a runner agent's exec wake
/// calls): a `dev.code_change` job gets a git worktree on a fresh branch
/// (agentbus/<job>-<subject>), the coder of its handoff.runner (a ralph loop passes again
/// until the repository's tests pass), its diff checked against the constraints, every pass
/// recorded; it ends the job completed with a `dev.review` job for the reviewer, blocked
/// with the evidence, or failed. An approved `dev.merge` or `dev.deploy` job is carried
/// out. `merge` and `deploy` only ask: each enqueues a job an operator must approve
/// (approve-job) before the runner acts. Repositories, coders, the test and deploy
/// commands come from the runner host's coding config, never from a job.
#[derive(Debug, Args)]
#[command(after_help = CODE_EXAMPLES)]
pub struct CodeArgs {
    #[command(subcommand)]
    command: CodeCommand,
}

const CODE_EXAMPLES: &str = "\
Examples:
  agentbus enqueue-job --target dev-runner --type dev.code_change --subject 'fix lease race' \\
    --payload '{\"repo\":\"infra\",\"base_ref\":\"main\",\"problem_statement\":\"...\",
                \"acceptance_criteria\":[\"tests pass\"],\"constraints\":{\"max_changed_files\":12,\"allow_merge\":true},
                \"handoff\":{\"runner\":\"claude-code\",\"mode\":\"ralph-loop\",\"max_iterations\":4}}'
  agentbus code run \"$AGENTBUS_JOB_ID\" --config /etc/agentbus/coding.toml   # in the runner's exec wake
  agentbus code merge 7f3c2a1b              # asks: a dev.merge job waits for approve-job
  agentbus approve-job <merge job>          # an operator; the runner then merges
  agentbus code cleanup --config /etc/agentbus/coding.toml

Payload: repo (a repository of the coding config), base_ref (default main),
problem_statement, acceptance_criteria [..], constraints {max_changed_files,
forbidden_paths [..], allow_merge, allow_deploy}, handoff {runner, mode single-shot |
ralph-loop, max_iterations, time_budget_seconds}.";

#[derive(Debug, Subcommand)]
enum CodeCommand {
    /// Execute a leased dev.code_change job (or an approved dev.merge / dev.deploy job)
    Run(RunArgs),
    /// Ask for a merge of a run whose tests passed: a dev.merge job that waits for approval
    Merge(GateArgs),
    /// Ask for a deploy of a merged run: a dev.deploy job that waits for approval
    Deploy(GateArgs),
    /// End runs whose runner is gone; remove worktrees and artifacts past retention
    Cleanup(CleanupArgs),
}

#[derive(Debug, Args)]
struct ConfigArg {
    /// The runner host's coding config (repositories, coders, worktree and artifact roots)
    #[arg(long, value_name = "FILE", env = "AGENTBUS_CODING_CONFIG")]
    config: PathBuf,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The job (default: $AGENTBUS_JOB_ID, the job the supervisor started this for)
    #[arg(value_name = "JOB")]
    job: Option<JobRef>,
    #[command(flatten)]
    config: ConfigArg,
    /// Lease token of the job (default: $AGENTBUS_LEASE_TOKEN when JOB is $AGENTBUS_JOB_ID)
    #[arg(long, value_name = "UUID")]
    lease_token: Option<Uuid>,
}

#[derive(Debug, Args)]
struct GateArgs {
    /// The coding run (its id, or the first 8 or more characters)
    #[arg(value_name = "RUN")]
    run: String,
    #[command(flatten)]
    ns: NamespaceArg,
    /// Merge: when the base branch moved since the run's tests, merge it in and run the
    /// tests again before moving the base (without it such a merge is refused)
    #[arg(long)]
    retest: bool,
}

#[derive(Debug, Args)]
struct CleanupArgs {
    #[command(flatten)]
    config: ConfigArg,
}

pub fn run(ctx: &mut Ctx, a: CodeArgs) -> Result<String> {
    match a.command {
        CodeCommand::Run(r) => run_job(ctx, r),
        CodeCommand::Merge(g) => ask(ctx, g, Gate::Merge),
        CodeCommand::Deploy(g) => ask(ctx, g, Gate::Deploy),
        CodeCommand::Cleanup(c) => {
            let cfg = CodingConfig::load(&c.config.config)?;
            let done = cleanup::reap(ctx.db()?, &cfg)?;
            output::json(&done)
        }
    }
}

fn run_job(ctx: &mut Ctx, r: RunArgs) -> Result<String> {
    let cfg = CodingConfig::load(&r.config.config)?;
    let env_job = ctx.env("AGENTBUS_JOB_ID");
    let job_id = match &r.job {
        Some(j) => ctx.job_id(j)?,
        None => {
            let raw = env_job
                .clone()
                .ok_or_else(|| Error::usage("no JOB given and $AGENTBUS_JOB_ID is not set"))?;
            Uuid::parse_str(raw.trim())
                .map_err(|_| Error::usage("$AGENTBUS_JOB_ID is not a valid uuid"))?
        }
    };
    let mut lease_token = r.lease_token;
    if lease_token.is_none()
        && env_job.as_deref().map(str::trim) == Some(job_id.to_string().as_str())
    {
        lease_token = ctx
            .env("AGENTBUS_LEASE_TOKEN")
            .and_then(|t| Uuid::parse_str(t.trim()).ok());
    }
    let fence = Fence {
        lease_token,
        attempt: None,
        force: false,
    };
    let caller = Caller {
        actor: ctx.actor(),
        command: "code run".into(),
    };
    let client = ctx.db()?;
    let job = jobs::get(client, job_id)?;
    match job.job_type.as_str() {
        CODE_CHANGE => output::json(&runner::run(client, &cfg, job_id, fence, &caller)?),
        MERGE | DEPLOY => output::json(&gates::act(client, &cfg, &job, fence, &caller)?),
        other => Err(Error::usage(format!(
            "job {job_id} is {other}: code run takes {CODE_CHANGE}, {MERGE} and {DEPLOY} jobs"
        ))),
    }
}

fn ask(ctx: &mut Ctx, g: GateArgs, gate: Gate) -> Result<String> {
    let actor = ctx.actor();
    let ns = g.ns.namespace.clone();
    let asked = ctx.tx(|tx| {
        let run = record::get(tx, &g.run, &ns)?;
        gates::request(tx, &run, gate, g.retest, &actor)
    })?;
    output::json(&asked)
}

/// List coding runs, newest first
///
/// One row per run: its job, repository, branch, runner and mode, status, passes so far and
/// when it started. `show-coding-run` has the passes, the diff and the artifacts.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  agentbus list-coding-runs\n  agentbus list-coding-runs --status running --repo infra --format json"
)]
pub struct ListCodingRunsArgs {
    #[command(flatten)]
    ns: NamespaceArg,
    /// Only runs in this status (queued, running, waiting_for_tests, waiting_for_review,
    /// revision_requested, completed, blocked, failed)
    #[arg(long, value_parser = ["queued", "running", "waiting_for_tests", "waiting_for_review",
                                "revision_requested", "completed", "blocked", "failed"])]
    status: Option<String>,
    /// Only runs of this repository
    #[arg(long)]
    repo: Option<String>,
    /// At most this many
    #[arg(long, default_value_t = 50)]
    limit: i64,
}

pub fn list(ctx: &mut Ctx, a: ListCodingRunsArgs) -> Result<String> {
    let format = ctx.format();
    let full = ctx.full_ids();
    let p = record::ListParams {
        namespace: a.ns.namespace,
        status: a.status,
        repo: a.repo,
        limit: a.limit.clamp(1, 1000),
    };
    let runs = record::list(ctx.db()?, &p)?;
    match format {
        Format::Json => output::json(&runs),
        Format::Table => {
            let id = |u: &Uuid| {
                let s = u.to_string();
                if full {
                    s
                } else {
                    s[..8].to_string()
                }
            };
            Ok(output::table(
                &[
                    "RUN", "JOB", "REPO", "BRANCH", "RUNNER", "STATUS", "CREATED",
                ],
                runs.iter().map(|r| {
                    vec![
                        id(&r.id),
                        id(&r.job_id),
                        r.repo.clone(),
                        r.branch.clone().unwrap_or_default(),
                        format!("{} ({})", r.runner, r.run_mode),
                        r.status.clone(),
                        r.created_at.clone(),
                    ]
                }),
            ))
        }
    }
}

/// Show a coding run: its passes, diff, tests and artifacts
///
/// The run's row (repository, base, branch, worktree, status, summary, changed files,
/// patch and artifacts by path and SHA-256) and one line per pass: the coder's exit, the
/// diff stat, the tests and how long it took.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  agentbus show-coding-run 7f3c2a1b\n  agentbus show-coding-run 7f3c2a1b --format json"
)]
pub struct ShowCodingRunArgs {
    /// The run (its id, or the first 8 or more characters)
    #[arg(value_name = "RUN")]
    run: String,
    #[command(flatten)]
    ns: NamespaceArg,
}

pub fn show(ctx: &mut Ctx, a: ShowCodingRunArgs) -> Result<String> {
    let format = ctx.format();
    let client = ctx.db()?;
    let run = record::get(client, &a.run, &a.ns.namespace)?;
    let passes = record::passes(client, run.id)?;
    match format {
        Format::Json => output::json(&serde_json::json!({"run": run, "passes": passes})),
        Format::Table => {
            let mut out = format!(
                "run {}  {}\njob {}  repo {}  base {} ({})\nbranch {}  runner {} ({})\n",
                run.id,
                run.status,
                run.job_id,
                run.repo,
                run.base_ref,
                run.base_commit.as_deref().unwrap_or("-"),
                run.branch.as_deref().unwrap_or("-"),
                run.runner,
                run.run_mode
            );
            if let Some(s) = &run.result_summary {
                out.push_str(&format!("summary: {s}\n"));
            }
            if let Some(e) = &run.error {
                out.push_str(&format!("error: {e}\n"));
            }
            if let Some(m) = &run.merged_commit {
                out.push_str(&format!("merged: {m}\n"));
            }
            out.push('\n');
            out.push_str(&output::table(
                &["PASS", "CODER", "FILES", "+/-", "TESTS", "MS", "OUTCOME"],
                passes.iter().map(|p| {
                    vec![
                        p.pass_no.to_string(),
                        p.coder_exit.map_or("killed".into(), |c| c.to_string()),
                        p.diff_stat["files"].to_string(),
                        format!(
                            "+{} -{}",
                            p.diff_stat["insertions"], p.diff_stat["deletions"]
                        ),
                        match p.tests_passed {
                            Some(true) => "pass".into(),
                            Some(false) => "fail".into(),
                            None => "-".into(),
                        },
                        p.duration_ms.map_or("-".into(), |d| d.to_string()),
                        p.outcome.clone().unwrap_or_default(),
                    ]
                }),
            ));
            Ok(out)
        }
    }
}
