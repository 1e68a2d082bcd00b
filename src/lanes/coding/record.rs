//! The rows of coding runs: one per run (`coding_runs`), one per pass
//! (`coding_run_passes`). This module owns both tables; each call runs in the caller's
//! transaction.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::db::{decode, decode_all};
use crate::error::{Error, Result};

/// A coding run as stored: the columns of `coding_runs` (sql/0020_coding_runs.sql says
/// what each holds).
#[allow(missing_docs)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CodingRun {
    pub id: Uuid,
    pub namespace: String,
    pub job_id: Uuid,
    pub runner: String,
    pub run_mode: String,
    pub status: String,
    pub repo: String,
    pub base_ref: String,
    pub base_commit: Option<String>,
    pub branch: Option<String>,
    pub head_commit: Option<String>,
    pub worktree_path: Option<String>,
    pub worktree_removed_at: Option<String>,
    pub runner_host: Option<String>,
    pub runner_pid: Option<i32>,
    pub external_session_id: Option<String>,
    pub attempt_no: i32,
    pub max_iterations: i32,
    pub prompt_input: Value,
    pub result_summary: Option<String>,
    pub changed_files: Value,
    pub patch_ref: Option<String>,
    pub patch_sha256: Option<String>,
    pub test_summary: Option<Value>,
    pub artifact_refs: Value,
    pub artifacts_removed_at: Option<String>,
    pub error: Option<String>,
    pub merged_commit: Option<String>,
    pub merged_at: Option<String>,
    pub deployed_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// One pass of a run: the coder's turn and the tests after it (the columns of
/// `coding_run_passes`).
#[allow(missing_docs)]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Pass {
    pub pass_no: i32,
    pub coder_exit: Option<i32>,
    /// `{"files": n, "insertions": n, "deletions": n}`
    pub diff_stat: Value,
    pub tests_passed: Option<bool>,
    pub test_exit: Option<i32>,
    pub test_tail: Option<String>,
    pub outcome: Option<String>,
    pub duration_ms: Option<i64>,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub finished_at: Option<String>,
}

/// What a new run starts with (columns of `coding_runs`).
#[allow(missing_docs)]
#[derive(Debug, Clone)]
pub struct NewRun {
    pub id: Uuid,
    pub namespace: String,
    pub job_id: Uuid,
    pub runner: String,
    pub run_mode: String,
    pub repo: String,
    pub base_ref: String,
    pub base_commit: String,
    pub branch: String,
    pub worktree_path: String,
    pub runner_host: String,
    pub runner_pid: i32,
    pub max_iterations: i32,
    pub prompt_input: Value,
}

/// Statuses of a run that holds a place under the repository's WIP limit.
pub const ACTIVE: &[&str] = &["queued", "running", "waiting_for_tests"];

/// Starts a run, `running`, if the repository is under `max_runs` active runs across every
/// runner (an advisory lock per repository makes the count and the insert one step);
/// otherwise a temporary refusal naming the runs in the way.
pub fn start(tx: &mut postgres::Transaction<'_>, r: &NewRun, max_runs: i64) -> Result<CodingRun> {
    tx.execute(
        "select pg_advisory_xact_lock(hashtextextended('agentbus.coding:' || $1 || ':' || $2, 0))",
        &[&r.namespace, &r.repo],
    )?;
    let active: Vec<Uuid> = tx
        .query(
            "select id from coding_runs
              where namespace = $1 and repo = $2 and status::text = any($3) order by created_at",
            &[&r.namespace, &r.repo, &ACTIVE],
        )?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<std::result::Result<_, _>>()?;
    if active.len() as i64 >= max_runs {
        return Err(Error::temporary(format!(
            "repository {} has {} coding run(s) in progress (max_runs_per_repo = {max_runs}): {}",
            r.repo,
            active.len(),
            active
                .iter()
                .map(Uuid::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .with_hint(
            "the job is retried later; agentbus list-coding-runs --status running shows them",
        ));
    }
    let row = tx.query_one(
        "insert into coding_runs (id, namespace, job_id, runner, run_mode, status, repo, base_ref,
                                  base_commit, branch, worktree_path, runner_host, runner_pid,
                                  attempt_no, max_iterations, prompt_input, started_at)
         values ($1, $2, $3, $4, $5, 'running', $6, $7, $8, $9, $10, $11, $12,
                 (select count(*) + 1 from coding_runs where job_id = $3)::int, $13, $14, now())
         returning to_jsonb(coding_runs.*) as row",
        &[
            &r.id,
            &r.namespace,
            &r.job_id,
            &r.runner,
            &r.run_mode,
            &r.repo,
            &r.base_ref,
            &r.base_commit,
            &r.branch,
            &r.worktree_path,
            &r.runner_host,
            &r.runner_pid,
            &r.max_iterations,
            &r.prompt_input,
        ],
    )?;
    decode(&row, "row")
}

/// Sets a run's status (the loop's own steps: running, waiting_for_tests).
pub fn set_status(tx: &mut postgres::Transaction<'_>, id: Uuid, status: &str) -> Result<()> {
    tx.execute(
        "update coding_runs set status = $2::text::coding_run_status where id = $1",
        &[&id, &status],
    )?;
    Ok(())
}

/// Records a pass.
pub fn add_pass(tx: &mut postgres::Transaction<'_>, id: Uuid, p: &Pass) -> Result<()> {
    tx.execute(
        "insert into coding_run_passes (run_id, pass_no, coder_exit, diff_stat, tests_passed,
                                        test_exit, test_tail, outcome, duration_ms, started_at,
                                        finished_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9::bigint,
                 now() - make_interval(secs => coalesce($9::bigint, 0)::float8 / 1000), now())",
        &[
            &id,
            &p.pass_no,
            &p.coder_exit,
            &p.diff_stat,
            &p.tests_passed,
            &p.test_exit,
            &p.test_tail,
            &p.outcome,
            &p.duration_ms,
        ],
    )?;
    Ok(())
}

/// How a run ended (columns of `coding_runs`; `worktree_removed` stamps
/// `worktree_removed_at`).
#[allow(missing_docs)]
#[derive(Debug, Clone, Default)]
pub struct Finish {
    pub status: String,
    pub head_commit: Option<String>,
    pub result_summary: Option<String>,
    pub changed_files: Vec<String>,
    pub patch_ref: Option<String>,
    pub patch_sha256: Option<String>,
    pub test_summary: Option<Value>,
    pub artifact_refs: Vec<Value>,
    pub error: Option<String>,
    pub worktree_removed: bool,
}

/// Ends a run (completed by review, waiting_for_review, blocked or failed).
pub fn finish(tx: &mut postgres::Transaction<'_>, id: Uuid, f: &Finish) -> Result<CodingRun> {
    let row = tx.query_one(
        "update coding_runs
            set status = $2::text::coding_run_status, head_commit = coalesce($3, head_commit),
                result_summary = $4, changed_files = $5, patch_ref = $6, patch_sha256 = $7,
                test_summary = $8, artifact_refs = $9, error = $10, finished_at = now(),
                worktree_removed_at = case when $11 then now() else worktree_removed_at end
          where id = $1
          returning to_jsonb(coding_runs.*) as row",
        &[
            &id,
            &f.status,
            &f.head_commit,
            &f.result_summary,
            &json!(f.changed_files),
            &f.patch_ref,
            &f.patch_sha256,
            &f.test_summary,
            &Value::Array(f.artifact_refs.clone()),
            &f.error,
            &f.worktree_removed,
        ],
    )?;
    decode(&row, "row")
}

/// A run by id (a prefix of 8 or more characters is looked up in `namespace`).
pub fn get(
    client: &mut impl postgres::GenericClient,
    id: &str,
    namespace: &str,
) -> Result<CodingRun> {
    let rows = if let Ok(uuid) = Uuid::parse_str(id) {
        client.query(
            "select to_jsonb(r.*) as row from coding_runs r where id = $1",
            &[&uuid],
        )?
    } else {
        let hex: String = id.chars().filter(|c| *c != '-').collect();
        if hex.len() < 8 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::usage(format!(
                "{id:?} is not a coding run id (a uuid, or its first 8 or more characters)"
            )));
        }
        client.query(
            "select to_jsonb(r.*) as row from coding_runs r
              where namespace = $1 and replace(id::text, '-', '') like $2 || '%' limit 2",
            &[&namespace, &hex.to_lowercase()],
        )?
    };
    match rows.len() {
        1 => decode(&rows[0], "row"),
        0 => Err(Error::not_found(format!("coding run {id} not found"))),
        _ => Err(Error::usage(format!(
            "{id:?} names more than one coding run: give more characters"
        ))),
    }
}

/// A run's passes, in order.
pub fn passes(client: &mut impl postgres::GenericClient, id: Uuid) -> Result<Vec<Pass>> {
    let rows = client.query(
        "select to_jsonb(p.*) - 'run_id' as row from coding_run_passes p
          where run_id = $1 order by pass_no",
        &[&id],
    )?;
    decode_all(&rows, "row")
}

/// Runs of a job, oldest first.
pub fn for_job(client: &mut impl postgres::GenericClient, job_id: Uuid) -> Result<Vec<CodingRun>> {
    let rows = client.query(
        "select to_jsonb(r.*) as row from coding_runs r where job_id = $1 order by created_at",
        &[&job_id],
    )?;
    decode_all(&rows, "row")
}

/// What `list-coding-runs` filters on: a namespace, a status, a repository, how many.
#[allow(missing_docs)]
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    pub namespace: String,
    pub status: Option<String>,
    pub repo: Option<String>,
    pub limit: i64,
}

/// Runs of a namespace, newest first.
pub fn list(client: &mut impl postgres::GenericClient, p: &ListParams) -> Result<Vec<CodingRun>> {
    let rows = client.query(
        "select to_jsonb(r.*) as row from coding_runs r
          where namespace = $1 and ($2::text is null or status::text = $2)
            and ($3::text is null or repo = $3)
          order by created_at desc, id limit $4",
        &[&p.namespace, &p.status, &p.repo, &p.limit],
    )?;
    decode_all(&rows, "row")
}

/// Active runs whose runner is gone: their job is no longer leased or running (the lease
/// expired, an operator stopped it), or — on this host — their runner process is dead.
pub fn lost(
    client: &mut impl postgres::GenericClient,
    host: &str,
    alive: impl Fn(i32) -> bool,
) -> Result<Vec<CodingRun>> {
    let rows = client.query(
        "select to_jsonb(r.*) as row, j.status in ('leased', 'running') as job_live
           from coding_runs r join jobs j on j.id = r.job_id
          where r.status::text = any($1)",
        &[&ACTIVE],
    )?;
    let mut out = Vec::new();
    for row in rows {
        let run: CodingRun = decode(&row, "row")?;
        let job_live: bool = row.try_get("job_live")?;
        let dead_here = run.runner_host.as_deref() == Some(host)
            && run.runner_pid.is_some_and(|pid| !alive(pid));
        if !job_live || dead_here {
            out.push(run);
        }
    }
    Ok(out)
}

/// Ends a run whose runner is gone (`failed`, with why).
pub fn mark_lost(tx: &mut postgres::Transaction<'_>, id: Uuid, why: &str) -> Result<()> {
    tx.execute(
        "update coding_runs set status = 'failed', error = $2, finished_at = now()
          where id = $1 and status::text = any($3)",
        &[&id, &why, &ACTIVE],
    )?;
    Ok(())
}

/// Records that a run's worktree, or its artifacts, were removed.
pub fn mark_removed(tx: &mut postgres::Transaction<'_>, id: Uuid, artifacts: bool) -> Result<()> {
    let sql = if artifacts {
        "update coding_runs set artifacts_removed_at = now() where id = $1 and artifacts_removed_at is null"
    } else {
        "update coding_runs set worktree_removed_at = now() where id = $1 and worktree_removed_at is null"
    };
    tx.execute(sql, &[&id])?;
    Ok(())
}

/// Records a merge or a deploy of a run.
pub fn mark_merged(tx: &mut postgres::Transaction<'_>, id: Uuid, commit: &str) -> Result<()> {
    tx.execute(
        "update coding_runs set merged_commit = $2, merged_at = now(), status = 'completed' where id = $1",
        &[&id, &commit],
    )?;
    Ok(())
}

/// Records a deploy of a run.
pub fn mark_deployed(tx: &mut postgres::Transaction<'_>, id: Uuid) -> Result<()> {
    tx.execute(
        "update coding_runs set deployed_at = now() where id = $1",
        &[&id],
    )?;
    Ok(())
}

/// Finished runs on `host` whose worktree is still there, and runs whose artifacts are
/// past retention: what cleanup looks at.
pub fn cleanup_candidates(
    client: &mut impl postgres::GenericClient,
    host: &str,
    keep_failed_hours: i32,
    retention_days: i32,
) -> Result<(Vec<CodingRun>, Vec<CodingRun>)> {
    let worktrees = client.query(
        "select to_jsonb(r.*) as row from coding_runs r
          where runner_host = $1 and worktree_removed_at is null and worktree_path is not null
            and status::text <> all($2)
            and (status not in ('failed', 'blocked')
                 or finished_at < now() - make_interval(hours => $3))",
        &[&host, &ACTIVE, &keep_failed_hours],
    )?;
    let artifacts = client.query(
        "select to_jsonb(r.*) as row from coding_runs r
          where runner_host = $1 and artifacts_removed_at is null and status::text <> all($2)
            and finished_at < now() - make_interval(days => $3)",
        &[&host, &ACTIVE, &retention_days],
    )?;
    Ok((
        decode_all(&worktrees, "row")?,
        decode_all(&artifacts, "row")?,
    ))
}
