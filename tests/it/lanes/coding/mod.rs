//! Coding runs against a throw-away git repository per test and a fake coder: the loop,
//! the constraints, crashes and timeouts, the merge gate, the WIP limit and cleanup.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::support::{Scratch, TestDb};

mod gates;
mod hostile;

const SECRET: &str = "sk-test-0123456789abcdef";

/// A repository whose test passes when answer.txt says 42, a fake coder that does what
/// line N of its plan says on pass N, and a coding config for both.
pub(super) struct Bench {
    pub(super) dir: Scratch,
    pub(super) repo: PathBuf,
    pub(super) config: PathBuf,
    plan: PathBuf,
}

pub(super) fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@localhost"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Bench {
    pub(super) fn new(extra: &str) -> Bench {
        let dir = Scratch::new();
        let repo = dir.0.join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        git(&repo, &["init", "--quiet", "--initial-branch=main"]);
        std::fs::write(repo.join("test.sh"), "test \"$(cat answer.txt 2>/dev/null)\" = 42 || { echo \"expected 42, got $(cat answer.txt 2>/dev/null)\"; exit 1; }\n").unwrap();
        std::fs::write(repo.join("answer.txt"), "0\n").unwrap();
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "--quiet", "-m", "start"]);
        let coder = dir.0.join("coder.sh");
        std::fs::write(
            &coder,
            "#!/bin/sh\n# fake coder: PLAN PASS PROMPT\nstep=$(sed -n \"${2}p\" \"$1\")\necho \"pass $2: $step (key $CODER_SECRET)\"\n\
case \"$step\" in\n  wrong) echo 41 > answer.txt ;;\n  right) echo 42 > answer.txt ;;\n  crash) echo \"exploded with $CODER_SECRET\" >&2; exit 3 ;;\n  sleep) sleep 30 ;;\n\
  many) for i in 1 2 3 4 5; do echo $i > f$i.txt; done; echo 42 > answer.txt ;;\n  forbidden) mkdir -p secrets; echo x > secrets/key; echo 42 > answer.txt ;;\nesac\n\
test -n \"$DATABASE_URL$AGENTBUS_DATABASE_URL$AGENTBUS_LEASE_TOKEN\" && echo LEAKED-ENV\nexit 0\n",
        )
        .unwrap();
        let plan = dir.0.join("plan.txt");
        let config = dir.0.join("coding.toml");
        std::fs::write(
            &config,
            format!(
                "worktree_root = {wt:?}\nartifact_root = {art:?}\nreview_agent = \"reviewer\"\nkeep_failed_worktrees_hours = 0\n{extra}\n\
[repos.demo]\npath = {repo:?}\ntest = [\"sh\", \"test.sh\"]\nforbidden_paths = [\"secrets/\"]\n\
deploy = [\"sh\", \"-c\", \"echo $1 ${{DEPLOY_TOKEN:+with-token}} > ../deployed.txt; echo deploying with $DEPLOY_TOKEN $CODER_SECRET\", \"deploy\", \"{{commit}}\"]\n\
deploy_env = [\"DEPLOY_TOKEN\"]\n\
[runners.fake]\ncommand = [\"sh\", {coder:?}, {plan:?}, \"{{pass}}\", \"{{prompt_file}}\"]\ntimeout_seconds = 20\nenv = [\"CODER_SECRET\"]\n\
[runners.slow]\ncommand = [\"sh\", {coder:?}, {plan:?}, \"{{pass}}\", \"{{prompt_file}}\"]\ntimeout_seconds = 1\n",
                wt = dir.0.join("worktrees"),
                art = dir.0.join("artifacts"),
                repo = repo,
                coder = coder,
                plan = plan,
            ),
        )
        .unwrap();
        Bench {
            dir,
            repo,
            config,
            plan,
        }
    }

    pub(super) fn plan(&self, steps: &[&str]) {
        std::fs::write(&self.plan, steps.join("\n") + "\n").unwrap();
    }
}

pub(super) fn change(runner: &str, mode: &str, iterations: i32, constraints: Value) -> String {
    json!({
        "repo": "demo", "base_ref": "main",
        "problem_statement": "answer.txt must hold the answer",
        "acceptance_criteria": ["sh test.sh passes"],
        "constraints": constraints,
        "handoff": {"runner": runner, "mode": mode, "max_iterations": iterations, "time_budget_seconds": 120}
    })
    .to_string()
}

/// Enqueues a code change for dev-runner, claims it, runs it; returns (job id, output).
pub(super) fn run_change(
    db: &TestDb,
    b: &Bench,
    payload: &str,
) -> (String, crate::support::CliOutput) {
    let job = db
        .cli(&[
            "enqueue-job",
            "--target-agent",
            "dev-runner",
            "--job-type",
            "dev.code_change",
            "--subject",
            "Fix the answer",
            "--payload",
            payload,
        ])
        .ok()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (id, token) = db.claim_one("runner-1", Some("dev-runner"));
    assert_eq!(id, job);
    let cfg = b.config.to_str().unwrap();
    let out = db.cli_with(
        &["code", "run", "--config", cfg],
        &[
            ("AGENTBUS_JOB_ID", &id),
            ("AGENTBUS_LEASE_TOKEN", &token),
            ("CODER_SECRET", SECRET),
        ],
        None,
    );
    (job, out)
}

pub(super) fn no_secret_anywhere(db: &TestDb, b: &Bench) {
    // Every table, as pg_dump sees it.
    let dump = Command::new("pg_dump")
        .args(["--data-only", &db.url])
        .output()
        .expect("run pg_dump (PostgreSQL's client programs are needed for the tests)");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(
        dump.contains("coding_run_passes"),
        "pg_dump saw the coding tables"
    );
    assert!(!dump.contains(SECRET), "the coder's secret reached a row");
    for e in walk(&b.dir.0.join("artifacts")) {
        let text = std::fs::read_to_string(&e).unwrap_or_default();
        assert!(!text.contains(SECRET), "{} holds the secret", e.display());
        assert!(
            !text.contains("LEAKED-ENV"),
            "{}: the coder saw agentbus's environment",
            e.display()
        );
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_ralph_loop_fails_then_passes_asks_for_review_and_merges_only_after_approval() {
    let db = TestDb::new();
    let b = Bench::new("");
    b.plan(&["wrong", "right"]);
    let (job, out) = run_change(
        &db,
        &b,
        &change("fake", "ralph-loop", 3, json!({"allow_merge": true})),
    );
    let r = out.ok();
    assert_eq!(r["run"]["status"], "waiting_for_review", "{r}");
    assert_eq!(r["job_status"], "succeeded");
    let passes = r["passes"].as_array().unwrap();
    assert_eq!(passes.len(), 2);
    assert_eq!(passes[0]["tests_passed"], false);
    assert!(passes[0]["test_tail"]
        .as_str()
        .unwrap()
        .contains("expected 42, got 41"));
    assert_eq!(passes[1]["tests_passed"], true);
    assert_eq!(passes[1]["diff_stat"]["files"], 1);
    let run_id = r["run"]["id"].as_str().unwrap().to_string();
    let branch = r["run"]["branch"].as_str().unwrap().to_string();
    assert!(
        branch.starts_with(&format!("agentbus/{}-fix-the-answer", &job[..8])),
        "{branch}"
    );
    // The worktree is gone, the branch stays, the patch is kept by path and hash.
    assert!(!Path::new(r["run"]["worktree_path"].as_str().unwrap()).exists());
    assert_eq!(
        git(&b.repo, &["show", &format!("{branch}:answer.txt")]),
        "42"
    );
    let patch = std::fs::read(r["run"]["patch_ref"].as_str().unwrap()).unwrap();
    use sha2::Digest;
    let hex: String = sha2::Sha256::digest(&patch)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect();
    assert_eq!(r["run"]["patch_sha256"], hex.as_str());
    // A review job for the reviewer, child of the code change.
    let review = r["review_job_id"].as_str().unwrap();
    let (who, parent, kind): (String, String, String) = {
        let row = db.client().query_one(
            "select target_agent, parent_job_id::text, job_type from jobs where id = $1::text::uuid",
            &[&review],
        ).unwrap();
        (row.get(0), row.get(1), row.get(2))
    };
    assert_eq!(
        (who.as_str(), parent.as_str(), kind.as_str()),
        ("reviewer", job.as_str(), "dev.review")
    );
    // show-coding-run and list-coding-runs read it back; trace shows it under its job.
    let shown = db
        .cli(&["show-coding-run", &run_id[..8], "--format", "json"])
        .ok();
    assert_eq!(shown["passes"].as_array().unwrap().len(), 2);
    let listed = db.cli(&["list-coding-runs", "--format", "json"]).ok();
    assert_eq!(listed[0]["id"], run_id.as_str());
    let table = db.cli(&["list-coding-runs", "--format", "table"]);
    assert!(
        table.stdout.contains("waiting_for_review"),
        "{}",
        table.stdout
    );

    // A merge job an agent wrote itself, never approved: the runner refuses it.
    let main_before = git(&b.repo, &["rev-parse", "main"]);
    db.cli(&[
        "enqueue-job",
        "--target-agent",
        "dev-runner",
        "--job-type",
        "dev.merge",
        "--subject",
        "merge it myself",
        "--payload",
        &json!({"run_id": run_id}).to_string(),
    ])
    .ok();
    let (mid, token) = db.claim_one("runner-1", Some("dev-runner"));
    let cfg = b.config.to_str().unwrap();
    let refused = db.cli_with(
        &["code", "run", "--config", cfg],
        &[("AGENTBUS_JOB_ID", &mid), ("AGENTBUS_LEASE_TOKEN", &token)],
        None,
    );
    assert_eq!(refused.code, 4, "{}{}", refused.stdout, refused.stderr);
    assert!(refused.stderr.contains("approval"), "{}", refused.stderr);
    assert_eq!(
        git(&b.repo, &["rev-parse", "main"]),
        main_before,
        "nothing merged"
    );

    // The real path: ask, wait, approve, merge.
    let asked = db.cli(&["code", "merge", &run_id]).ok();
    assert_eq!(asked["status"], "awaiting_approval", "{asked}");
    let merge_job = asked["id"].as_str().unwrap().to_string();
    let nothing = db
        .cli(&[
            "claim-jobs",
            "--lease-owner",
            "runner-1",
            "--target-agent",
            "dev-runner",
        ])
        .ok();
    assert_eq!(
        nothing.as_array().unwrap().len(),
        0,
        "a merge waiting for approval is not claimable"
    );
    db.cli(&["approve-job", &merge_job, "--reason", "reviewed"])
        .ok();
    let (mid, token) = db.claim_one("runner-1", Some("dev-runner"));
    assert_eq!(mid, merge_job);
    let merged = db
        .cli_with(
            &["code", "run", "--config", cfg],
            &[("AGENTBUS_JOB_ID", &mid), ("AGENTBUS_LEASE_TOKEN", &token)],
            None,
        )
        .ok();
    assert_eq!(merged["run"]["status"], "completed", "{merged}");
    assert_eq!(
        git(&b.repo, &["rev-parse", "main"]),
        git(&b.repo, &["rev-parse", &branch])
    );
    assert_eq!(git(&b.repo, &["show", "main:answer.txt"]), "42");
    no_secret_anywhere(&db, &b);
}

#[test]
fn tests_that_never_pass_block_the_job_with_the_evidence_and_keep_the_worktree() {
    let db = TestDb::new();
    let b = Bench::new("");
    b.plan(&["wrong", "wrong", "wrong"]);
    let (job, out) = run_change(&db, &b, &change("fake", "ralph-loop", 2, json!({})));
    let r = out.ok();
    assert_eq!(r["run"]["status"], "blocked");
    assert_eq!(r["job_status"], "blocked");
    assert_eq!(
        r["passes"].as_array().unwrap().len(),
        2,
        "the iteration limit holds"
    );
    assert_eq!(r["passes"][1]["outcome"], "no passes left");
    let reason: String = db.one(&format!(
        "select blocked_reason from jobs where id = '{job}'"
    ));
    assert!(
        reason.contains("never passed") && reason.contains("expected 42, got 41"),
        "{reason}"
    );
    assert!(
        Path::new(r["run"]["worktree_path"].as_str().unwrap()).exists(),
        "kept to look at"
    );
    // Single-shot makes one pass whatever the plan.
    b.plan(&["wrong", "right"]);
    let (_, out) = run_change(&db, &b, &change("fake", "single-shot", 5, json!({})));
    let r = out.ok();
    assert_eq!(r["passes"].as_array().unwrap().len(), 1);
    assert_eq!(r["run"]["status"], "blocked");
}

#[test]
fn the_diff_is_checked_against_the_constraints_not_the_coders_word() {
    let db = TestDb::new();
    let b = Bench::new("");
    b.plan(&["many"]);
    let (_, out) = run_change(
        &db,
        &b,
        &change("fake", "single-shot", 1, json!({"max_changed_files": 3})),
    );
    let r = out.ok();
    assert_eq!(r["run"]["status"], "blocked");
    assert!(
        r["run"]["result_summary"]
            .as_str()
            .unwrap()
            .contains("6 files changed, at most 3"),
        "{r}"
    );
    assert_eq!(
        r["passes"][0]["tests_passed"],
        Value::Null,
        "tests never ran"
    );

    b.plan(&["forbidden"]);
    let (job, out) = run_change(&db, &b, &change("fake", "single-shot", 1, json!({})));
    let r = out.ok();
    assert_eq!(r["run"]["status"], "blocked");
    let reason: String = db.one(&format!(
        "select blocked_reason from jobs where id = '{job}'"
    ));
    assert!(
        reason.contains("secrets/key is under the forbidden path secrets/"),
        "{reason}"
    );
}

#[test]
fn a_crashing_or_hanging_coder_fails_the_run_with_its_output_and_no_secret() {
    let db = TestDb::new();
    let b = Bench::new("");
    b.plan(&["crash"]);
    let (job, out) = run_change(&db, &b, &change("fake", "single-shot", 1, json!({})));
    let r = out.ok();
    assert_eq!(r["run"]["status"], "failed");
    let err = r["run"]["error"].as_str().unwrap();
    assert!(
        err.contains("exited Some(3)") && err.contains("exploded with ***"),
        "{err}"
    );
    let later: bool = db.one(&format!(
        "select status = 'queued' and run_after > now() and last_error like '%exited%' from jobs where id = '{job}'"
    ));
    assert!(later, "retried later with backoff, like any failed attempt");

    b.plan(&["sleep"]);
    let started = std::time::Instant::now();
    let (_, out) = run_change(&db, &b, &change("slow", "single-shot", 1, json!({})));
    let r = out.ok();
    assert!(started.elapsed().as_secs() < 15, "killed at its deadline");
    assert_eq!(r["run"]["status"], "failed");
    assert!(
        r["run"]["error"]
            .as_str()
            .unwrap()
            .contains("ran out of time"),
        "{r}"
    );
    no_secret_anywhere(&db, &b);
}

#[test]
fn bad_payloads_and_unknown_repositories_block_the_job_and_start_no_run() {
    let db = TestDb::new();
    let b = Bench::new("");
    b.plan(&["right"]);
    for (payload, says) in [
        (json!({"repo": "demo"}).to_string(), "problem_statement"),
        (
            json!({"repo": "elsewhere", "problem_statement": "x"}).to_string(),
            "not in this runner's coding config",
        ),
        (
            json!({"repo": "demo", "problem_statement": "x", "base_ref": "--upload-pack=evil"})
                .to_string(),
            "base_ref",
        ),
        (
            json!({"repo": "demo", "problem_statement": "x", "handoff": {"runner": "rm -rf /"}})
                .to_string(),
            "runner",
        ),
    ] {
        let (job, out) = run_change(&db, &b, &payload);
        assert_eq!(out.code, 2, "{payload}: {}{}", out.stdout, out.stderr);
        assert!(out.stderr.contains(says), "{payload}: {}", out.stderr);
        let status: String = db.one(&format!("select status::text from jobs where id = '{job}'"));
        assert_eq!(status, "blocked");
    }
    let runs: i64 = db.one("select count(*) from coding_runs");
    assert_eq!(runs, 0);
}

#[test]
fn the_wip_limit_holds_across_runners_and_a_lost_runners_worktree_is_cleaned_up() {
    let db = TestDb::new();
    let b = Bench::new("max_runs_per_repo = 1");
    b.plan(&["sleep"]);
    // Runner one: a coder that hangs (until its 20 s deadline), holding the repository.
    let job1 = db
        .cli(&[
            "enqueue-job",
            "--target-agent",
            "dev-runner",
            "--job-type",
            "dev.code_change",
            "--subject",
            "one",
            "--payload",
            &change("fake", "single-shot", 1, json!({})),
        ])
        .ok();
    let (id1, token1) = db.claim_one("runner-1", Some("dev-runner"));
    assert_eq!(job1["id"], id1.as_str());
    let mut first = Command::new(env!("CARGO_BIN_EXE_agentbus"))
        .args(["code", "run", "--config", b.config.to_str().unwrap()])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &db.url)
        .env("AGENTBUS_JOB_ID", &id1)
        .env("AGENTBUS_LEASE_TOKEN", &token1)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while db.one::<i64>("select count(*) from coding_runs where status = 'running'") == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the first run never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Runner two, same repository: refused for now, the job given back without counting.
    let (job2, out) = run_change(&db, &b, &change("fake", "single-shot", 1, json!({})));
    assert_eq!(out.code, 75, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("max_runs_per_repo = 1"),
        "{}",
        out.stderr
    );
    let (status, attempts): (String, i32) = {
        let row = db
            .client()
            .query_one(
                "select status::text, attempt_count from jobs where id = $1::text::uuid",
                &[&job2],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(status, "queued", "given back to be tried again");
    let _ = attempts;
    // Runner one is killed: its run is lost; the next cleanup fails it and removes its
    // worktree (keep_failed_worktrees_hours = 0).
    first.kill().unwrap();
    first.wait().unwrap();
    let worktree: String = db.one("select worktree_path from coding_runs where status = 'running'");
    assert!(Path::new(&worktree).exists());
    let cleaned = db
        .cli(&["code", "cleanup", "--config", b.config.to_str().unwrap()])
        .ok();
    assert_eq!(cleaned["lost"].as_array().unwrap().len(), 1, "{cleaned}");
    assert_eq!(
        cleaned["worktrees_removed"].as_array().unwrap().len(),
        1,
        "{cleaned}"
    );
    assert!(!Path::new(&worktree).exists());
    let error: String = db
        .one("select error from coding_runs where worktree_path is not null and status = 'failed'");
    assert!(error.contains("is gone"), "{error}");
    assert!(!git(&b.repo, &["worktree", "list"]).contains(&worktree));
}
