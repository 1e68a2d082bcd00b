//! Merge and deploy: jobs held for an operator's approval, a base that moved, and who may
//! do what with roles installed.

use serde_json::json;

use super::{change, git, run_change, Bench};
use crate::support::logins::{refused, Guarded};
use crate::support::{connect, url_as, TestDb};

/// Approves `job` as the operator, claims it as `claimer`, runs it as `runner`.
fn approve_claim_run(
    db: &TestDb,
    b: &Bench,
    job: &str,
    logins: Option<(&str, &str, &str)>,
) -> crate::support::CliOutput {
    let cfg = b.config.to_str().unwrap();
    match logins {
        None => {
            db.cli(&["approve-job", job]).ok();
            let (id, token) = db.claim_one("runner-1", Some("dev-runner"));
            assert_eq!(id, job);
            db.cli_with(
                &["code", "run", "--config", cfg],
                &[("AGENTBUS_JOB_ID", &id), ("AGENTBUS_LEASE_TOKEN", &token)],
                None,
            )
        }
        Some((op, sup, runner)) => {
            db.cli_as(op, &["approve-job", job], &[]).ok();
            let claimed = db
                .cli_as(
                    sup,
                    &[
                        "claim-jobs",
                        "--lease-owner",
                        "s1",
                        "--target-agent",
                        "dev-runner",
                    ],
                    &[],
                )
                .ok();
            let id = claimed[0]["id"].as_str().unwrap().to_string();
            let token = claimed[0]["lease_token"].as_str().unwrap().to_string();
            assert_eq!(id, job);
            db.cli_as(
                runner,
                &["code", "run", "--config", cfg],
                &[("AGENTBUS_JOB_ID", &id), ("AGENTBUS_LEASE_TOKEN", &token)],
            )
        }
    }
}

#[test]
fn a_merge_is_refused_when_the_base_moved_unless_retested() {
    let db = TestDb::new();
    let b = Bench::new("");
    b.plan(&["right"]);
    let (_, out) = run_change(
        &db,
        &b,
        &change("fake", "single-shot", 1, json!({"allow_merge": true})),
    );
    let r = out.ok();
    let run_id = r["run"]["id"].as_str().unwrap().to_string();
    // Someone else lands a commit on main meanwhile.
    std::fs::write(b.repo.join("README"), "moved\n").unwrap();
    git(&b.repo, &["add", "README"]);
    git(&b.repo, &["commit", "--quiet", "-m", "elsewhere"]);
    let moved = git(&b.repo, &["rev-parse", "main"]);
    let cfg = b.config.to_str().unwrap();
    let approve_and_run = |retest: bool| {
        let mut args = vec!["code", "merge", run_id.as_str()];
        if retest {
            args.push("--retest");
        }
        let asked = db.cli(&args).ok();
        let id = asked["id"].as_str().unwrap().to_string();
        db.cli(&["approve-job", &id]).ok();
        let (mid, token) = db.claim_one("runner-1", Some("dev-runner"));
        db.cli_with(
            &["code", "run", "--config", cfg],
            &[("AGENTBUS_JOB_ID", &mid), ("AGENTBUS_LEASE_TOKEN", &token)],
            None,
        )
    };
    let refused = approve_and_run(false);
    assert_eq!(refused.code, 4);
    assert!(
        refused.stderr.contains("moved") && refused.stderr.contains("--retest"),
        "{}",
        refused.stderr
    );
    assert_eq!(git(&b.repo, &["rev-parse", "main"]), moved);
    let done = approve_and_run(true).ok();
    assert_eq!(done["run"]["status"], "completed");
    let main = git(&b.repo, &["rev-parse", "main"]);
    assert_ne!(main, moved);
    assert_eq!(git(&b.repo, &["show", "main:answer.txt"]), "42");
    assert_eq!(git(&b.repo, &["show", "main:README"]), "moved");
}

/// A run whose tests passed, its merge asked for, approved and carried out; its id. (Before
/// the merge a deploy is refused: "not merged", exit 4.)
fn merged_run(db: &TestDb, b: &Bench) -> String {
    b.plan(&["right"]);
    let (_, out) = run_change(
        db,
        b,
        &change(
            "fake",
            "single-shot",
            1,
            json!({"allow_merge": true, "allow_deploy": true}),
        ),
    );
    let run_id = out.ok()["run"]["id"].as_str().unwrap().to_string();
    let early = db.cli(&["code", "deploy", &run_id]);
    assert_eq!(early.code, 4, "{}", early.stderr);
    assert!(early.stderr.contains("not merged"), "{}", early.stderr);
    let merge = db.cli(&["code", "merge", &run_id]).ok()["id"]
        .as_str()
        .unwrap()
        .to_string();
    approve_claim_run(db, b, &merge, None).ok();
    run_id
}

#[test]
fn a_deploy_comes_after_an_approved_merge_and_only_when_the_job_allows_it() {
    let db = TestDb::new();
    let b = Bench::new("");
    let run_id = merged_run(&db, &b);
    let deploy = db.cli(&["code", "deploy", &run_id]).ok();
    assert_eq!(deploy["status"], "awaiting_approval");
    let done = approve_claim_run(&db, &b, deploy["id"].as_str().unwrap(), None).ok();
    let main = git(&b.repo, &["rev-parse", "main"]);
    assert_eq!(done["result"]["deployed_commit"], main.as_str(), "{done}");
    assert!(done["run"]["deployed_at"].is_string());
    let deployed = std::fs::read_to_string(b.dir.0.join("deployed.txt")).unwrap();
    assert_eq!(deployed.trim(), main);

    // A job that does not allow a deploy (or a merge) cannot even ask for one.
    let (_, out) = run_change(&db, &b, &change("fake", "single-shot", 1, json!({})));
    let run_id = out.ok()["run"]["id"].as_str().unwrap().to_string();
    for gate in ["merge", "deploy"] {
        let refused = db.cli(&["code", gate, &run_id]);
        assert_eq!(refused.code, 4, "{gate}: {}", refused.stderr);
    }
    let merge = db.cli(&["code", "merge", &run_id]);
    assert!(
        merge.stderr.contains("allow_merge is false"),
        "{}",
        merge.stderr
    );
}

#[test]
fn with_roles_only_the_lease_holder_writes_a_run_and_only_an_operator_approves_its_merge() {
    let mut g = Guarded::new();
    let runner = g.grant("runner", "agent", &["default"], Some("dev-runner"));
    let reviewer = g.grant("reviewer", "agent", &["default"], Some("reviewer"));
    let sup = g.grant("sup", "supervisor", &["default"], None);
    let op = g.grant("op", "operator", &["default"], None);
    let db = &g.db;
    let b = Bench::new("");
    b.plan(&["right"]);
    let job = db
        .cli_as(
            &op,
            &[
                "enqueue-job",
                "--target-agent",
                "dev-runner",
                "--job-type",
                "dev.code_change",
                "--subject",
                "Fix the answer",
                "--payload",
                &change("fake", "single-shot", 1, json!({"allow_merge": true})),
            ],
            &[],
        )
        .ok();
    let claimed = db
        .cli_as(
            &sup,
            &[
                "claim-jobs",
                "--lease-owner",
                "s1",
                "--target-agent",
                "dev-runner",
            ],
            &[],
        )
        .ok();
    assert_eq!(claimed[0]["id"], job["id"]);
    let (id, token) = (
        claimed[0]["id"].as_str().unwrap(),
        claimed[0]["lease_token"].as_str().unwrap(),
    );
    let cfg = b.config.to_str().unwrap();
    let out = db
        .cli_as(
            &runner,
            &["code", "run", "--config", cfg],
            &[("AGENTBUS_JOB_ID", id), ("AGENTBUS_LEASE_TOKEN", token)],
        )
        .ok();
    assert_eq!(out["run"]["status"], "waiting_for_review", "{out}");
    let run_id = out["run"]["id"].as_str().unwrap().to_string();

    // Another agent's login, without the lease: the run's rows are not its to write.
    let mut other = connect(&url_as(&db.url, &reviewer));
    refused(
        &mut other,
        "update coding_runs set status = 'completed'",
        "AB003",
    );
    refused(
        &mut other,
        &format!("insert into coding_run_passes (run_id, pass_no) values ('{run_id}', 9)"),
        "AB003",
    );

    // The reviewer asks for the merge; neither it nor the supervisor can approve it.
    let merge = db.cli_as(&reviewer, &["code", "merge", &run_id], &[]).ok();
    let merge_id = merge["id"].as_str().unwrap().to_string();
    assert_eq!(merge["status"], "awaiting_approval");
    for login in [&reviewer, &sup, &runner] {
        let no = db.cli_as(login, &["approve-job", &merge_id], &[]);
        assert_eq!(no.code, 77, "{login}: {}", no.stderr);
    }
    let main_before = git(&b.repo, &["rev-parse", "main"]);
    assert_eq!(git(&b.repo, &["rev-parse", "main"]), main_before);
    let merged = approve_claim_run(db, &b, &merge_id, Some((&op, &sup, &runner))).ok();
    assert_eq!(merged["run"]["status"], "completed", "{merged}");
    assert_eq!(git(&b.repo, &["show", "main:answer.txt"]), "42");
}

#[test]
fn a_deploy_gets_only_its_own_credentials_and_its_log_keeps_none() {
    let db = TestDb::new();
    let b = Bench::new("");
    let run_id = merged_run(&db, &b);
    let deploy = db.cli(&["code", "deploy", &run_id]).ok()["id"]
        .as_str()
        .unwrap()
        .to_string();
    db.cli(&["approve-job", &deploy]).ok();
    let (id, token) = db.claim_one("runner-1", Some("dev-runner"));
    assert_eq!(id, deploy);
    let secret = "deploy-tok-7f3a9c";
    let coder_secret = "coder-key-1b2c3d";
    let cfg = b.config.to_str().unwrap();
    let done = db
        .cli_with(
            &["code", "run", "--config", cfg],
            &[
                ("AGENTBUS_JOB_ID", &id),
                ("AGENTBUS_LEASE_TOKEN", &token),
                ("DEPLOY_TOKEN", secret),
                ("CODER_SECRET", coder_secret),
            ],
            None,
        )
        .ok();
    let main = git(&b.repo, &["rev-parse", "main"]);
    assert_eq!(done["result"]["deployed_commit"], main.as_str(), "{done}");
    // The deploy saw its token (and not the coder's, which is not in its list)...
    let deployed = std::fs::read_to_string(b.dir.0.join("deployed.txt")).unwrap();
    assert_eq!(deployed.trim(), format!("{main} with-token"));
    // ...and its log, kept as an artifact, holds neither value.
    let log = std::fs::read_to_string(
        b.dir
            .0
            .join("artifacts")
            .join("default")
            .join(&run_id)
            .join("deploy.log"),
    )
    .unwrap();
    assert!(log.contains("deploying with"), "{log}");
    assert!(!log.contains(secret), "{log}");
    assert!(!log.contains(coder_secret), "{log}");
    let dump = db.snapshot().to_string();
    assert!(!dump.contains(secret) && !dump.contains(coder_secret));
}

#[test]
fn a_config_that_would_pass_on_ledger_access_is_refused() {
    let db = TestDb::new();
    let b = Bench::new("");
    for (field, var) in [
        ("deploy_env", "DATABASE_URL"),
        ("deploy_env", "AGENTBUS_LEASE_TOKEN"),
        ("env", "PGPASSWORD"),
    ] {
        let text = std::fs::read_to_string(&b.config).unwrap();
        let bad = b.dir.0.join("bad.toml");
        let text = match field {
            "deploy_env" => text.replace(
                "deploy_env = [\"DEPLOY_TOKEN\"]",
                &format!("deploy_env = [\"DEPLOY_TOKEN\", \"{var}\"]"),
            ),
            _ => text.replace(
                "env = [\"CODER_SECRET\"]",
                &format!("env = [\"CODER_SECRET\", \"{var}\"]"),
            ),
        };
        std::fs::write(&bad, text).unwrap();
        db.cli(&["code", "cleanup", "--config", bad.to_str().unwrap()])
            .fails(78, &format!("{var} reaches the ledger"));
    }
}
