//! Jobs through the real binary: enqueue (every flag, files, stdin, approval, dedupe), the
//! agent's closing calls, retries and requeue, lists, `--get`, and job-id prefixes.

use crate::support::{s, t, TestDb};

#[test]
fn enqueue_job_records_every_flag() {
    let db = TestDb::new();
    let parent = db
        .cli(&[
            "enqueue-job",
            "--namespace",
            "sales",
            "--target-agent",
            "coordinator",
            "--subject",
            "parent",
        ])
        .ok();

    let job = db
        .cli_with(
            &[
                "enqueue-job",
                "--namespace",
                "sales",
                "--target-agent",
                "writer",
                "--subject",
                "draft_email",
                "--job-type",
                "proactive",
                "--parent-job-id",
                &s(&parent, "id"),
                "--flow-key",
                "lead-42",
                "--correlation-key",
                "opportunity:42",
                "--priority",
                "700",
                "--dedupe-key",
                "lead-42:draft",
                "--payload",
                r#"{"lead":42}"#,
                "--state",
                r#"{"step":1}"#,
                "--run-after",
                "+10m",
                "--max-attempts",
                "3",
            ],
            &[("AGENTBUS_AGENT", "scout")],
            None,
        )
        .ok();

    assert_eq!(job["parent_job_id"], parent["id"]);
    assert_eq!(job["flow_key"], "lead-42");
    assert_eq!(job["correlation_key"], "opportunity:42");
    assert_eq!(job["dedupe_key"], "lead-42:draft");
    assert_eq!(job["namespace"], "sales");
    assert_eq!(job["source_agent"], "scout");
    assert_eq!(job["job_type"], "proactive");
    assert_eq!(job["priority"], 700);
    assert_eq!(job["payload"]["lead"], 42);
    assert_eq!(job["state"]["step"], 1);
    assert_eq!(job["max_attempts"], 3);
    assert_eq!(job["status"], "queued");
    assert_eq!(job["deduped"], false);
    assert!(t(&job, "run_after") > t(&job, "created_at") + chrono::Duration::minutes(9));
    assert!(
        s(&job, "created_at").ends_with('Z'),
        "times are RFC 3339 UTC"
    );
}

#[test]
fn enqueue_job_reads_payload_from_a_file_and_from_stdin() {
    let db = TestDb::new();
    let dir = std::env::temp_dir().join(format!("agentbus-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("payload.json");
    std::fs::write(&file, r#"{"from":"file"}"#).unwrap();

    let from_file = db
        .cli(&[
            "enqueue-job",
            "--target-agent",
            "a",
            "--subject",
            "s",
            "--payload",
            &format!("@{}", file.display()),
        ])
        .ok();
    let from_stdin = db
        .cli_with(
            &[
                "enqueue-job",
                "--target-agent",
                "a",
                "--subject",
                "s",
                "--payload",
                "-",
            ],
            &[],
            Some(br#"{"from":"stdin"}"#),
        )
        .ok();

    assert_eq!(from_file["payload"]["from"], "file");
    assert_eq!(from_stdin["payload"]["from"], "stdin");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn enqueue_job_with_requires_approval_waits_for_an_operator() {
    let db = TestDb::new();
    let job = db
        .cli(&[
            "enqueue-job",
            "--target-agent",
            "closer",
            "--subject",
            "send_contract",
            "--requires-approval",
        ])
        .ok();
    assert_eq!(job["status"], "awaiting_approval");
    assert_eq!(job["requires_approval"], true);
    let claimed = db
        .cli(&["claim-jobs", "--lease-owner", "d1", "--limit", "10"])
        .ok();
    assert_eq!(
        claimed.as_array().map(Vec::len),
        Some(0),
        "awaiting_approval is not claimable"
    );
}

#[test]
fn dedupe_returns_the_active_job_and_frees_the_key_when_it_ends() {
    let db = TestDb::new();
    let args = [
        "enqueue-job",
        "--target-agent",
        "security",
        "--subject",
        "review",
        "--dedupe-key",
        "dep:x",
    ];
    let first = db.cli(&args).ok();
    let second = db.cli(&args).ok();
    assert_eq!(second["deduped"], true);
    assert_eq!(second["id"], first["id"]);

    let claimed = db.cli(&["claim-jobs", "--lease-owner", "d1"]).ok();
    let token = s(&claimed[0], "lease_token");
    db.cli(&["complete-job", &s(&first, "id"), "--lease-token", &token])
        .ok();
    let third = db.cli(&args).ok();
    assert_eq!(
        third["deduped"], false,
        "a finished job releases its dedupe key"
    );
    assert_ne!(third["id"], first["id"]);
}

#[test]
fn a_job_runs_its_whole_life_through_the_agent_commands() {
    let db = TestDb::new();
    let job = db
        .cli(&[
            "enqueue-job",
            "--target-agent",
            "security",
            "--subject",
            "review",
        ])
        .ok();
    let id = s(&job, "id");

    let claimed = db
        .cli(&[
            "claim-jobs",
            "--lease-owner",
            "dispatcher-1",
            "--lease-seconds",
            "600",
            "--limit",
            "10",
        ])
        .ok();
    assert_eq!(claimed[0]["id"], job["id"]);
    assert_eq!(claimed[0]["status"], "leased");
    assert_eq!(claimed[0]["attempt_count"], 1);
    let token = s(&claimed[0], "lease_token");
    // The supervisor's environment closes the loop without flags.
    let env = [
        ("AGENTBUS_JOB_ID", id.as_str()),
        ("AGENTBUS_LEASE_TOKEN", token.as_str()),
        ("AGENTBUS_AGENT", "security"),
    ];

    let running = db
        .cli_with(
            &[
                "mark-running-job",
                "--openclaw-task-ref",
                "run_1",
                "--openclaw-meta",
                r#"{"k":1}"#,
            ],
            &env,
            None,
        )
        .ok();
    assert_eq!(running["status"], "running");
    assert_eq!(running["openclaw_task_ref"], "run_1");
    assert_eq!(running["openclaw_meta"]["k"], 1);

    let renewed = db
        .cli_with(&["renew-job-lease", "--lease-seconds", "1200"], &env, None)
        .ok();
    assert!(t(&renewed, "leased_until") > t(&running, "leased_until"));

    let done = db
        .cli_with(
            &[
                "complete-job",
                "--summary",
                "no issues",
                "--result",
                r#"{"risk":"low"}"#,
            ],
            &env,
            None,
        )
        .ok();
    assert_eq!(done["status"], "succeeded");
    assert_eq!(done["result"]["risk"], "low");
    assert!(done["completed_at"].is_string());

    let shown = db.cli(&["show-job", &id, "--format", "json"]).ok();
    assert_eq!(shown["attempts"][0]["status"], "succeeded");
    let transitions: Vec<(String, String)> = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["to_status"].as_str().unwrap().to_string(),
                h["actor"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        transitions,
        vec![
            ("queued".into(), "operator:tester".into()),
            ("leased".into(), "dispatcher-1".into()),
            ("running".into(), "security".into()),
            ("succeeded".into(), "security".into()),
        ]
    );
}

#[test]
fn block_job_keeps_the_reason_and_closes_the_attempt() {
    let db = TestDb::new();
    let id = db.enqueue("devops", "rotate", &[]);
    let token = db.claim_one("d1", None).1;

    let blocked = db
        .cli(&[
            "block-job",
            &id,
            "--lease-token",
            &token,
            "--blocked-reason",
            "needs the vault password",
            "--summary",
            "waiting",
        ])
        .ok();

    assert_eq!(blocked["status"], "blocked");
    assert_eq!(blocked["blocked_reason"], "needs the vault password");
    let shown = db.cli(&["show-job", &id, "--format", "json"]).ok();
    assert_eq!(shown["attempts"][0]["status"], "blocked");
}

#[test]
fn fail_job_retries_while_attempts_remain_then_goes_dead() {
    let db = TestDb::new();
    let id = s(
        &db.cli(&[
            "enqueue-job",
            "--target-agent",
            "rep",
            "--subject",
            "send",
            "--max-attempts",
            "2",
        ])
        .ok(),
        "id",
    );

    let token = db.claim_one("d1", None).1;
    let retried = db
        .cli(&[
            "fail-job",
            &id,
            "--lease-token",
            &token,
            "--last-error",
            "503",
            "--retry-seconds",
            "0",
        ])
        .ok();
    assert_eq!(retried["status"], "queued");
    assert_eq!(retried["last_error"], "503");
    assert!(retried["lease_token"].is_null());

    let token = db.claim_one("d1", None).1;
    let dead = db
        .cli(&[
            "fail-job",
            &id,
            "--lease-token",
            &token,
            "--last-error",
            "503 again",
            "--retry-seconds",
            "0",
        ])
        .ok();
    assert_eq!(dead["status"], "dead", "attempt 2 of 2 used: no retry");
    assert_eq!(dead["attempt_count"], 2);

    let shown = db.cli(&["show-job", &id, "--format", "json"]).ok();
    let attempts: Vec<&str> = shown["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect();
    assert_eq!(attempts, ["failed", "failed"]);
}

#[test]
fn fail_job_without_retry_seconds_is_dead_at_once() {
    let db = TestDb::new();
    let id = db.enqueue("rep", "send", &[]);
    let (claimed, token) = db.claim_one("d1", None);
    assert_eq!(claimed, id);
    let dead = db
        .cli(&[
            "fail-job",
            &id,
            "--last-error",
            "malformed lead",
            "--lease-token",
            &token,
        ])
        .ok();
    assert_eq!(dead["status"], "dead");
}

#[test]
fn a_close_without_the_lease_is_refused_unless_forced_or_inside_the_run() {
    // Worker B holds the lease; a stale worker A without a token must not kill B's job.
    let db = TestDb::new();
    let id = db.enqueue("rep", "send", &[]);
    let (_, token) = db.claim_one("worker-b", None);
    let before = db.snapshot();
    for cmd in [
        vec!["fail-job", &id, "--last-error", "stale worker"],
        vec!["complete-job", &id],
        vec!["block-job", &id, "--blocked-reason", "x"],
        vec!["renew-job-lease", &id],
        vec!["mark-running-job", &id],
    ] {
        db.cli(&cmd).fails(4, "pass its --lease-token");
    }
    assert_eq!(db.snapshot(), before);
    // Inside the run the supervisor's environment supplies it: the seed's plain call works.
    let in_run = [
        ("AGENTBUS_JOB_ID", id.as_str()),
        ("AGENTBUS_LEASE_TOKEN", token.as_str()),
    ];
    let running = db.cli_with(&["mark-running-job"], &in_run, None).ok();
    assert_eq!(running["status"], "running");
    // An operator's override is recorded as forced.
    let forced = db
        .cli(&["fail-job", &id, "--last-error", "wedged", "--force"])
        .ok();
    assert_eq!(forced["status"], "dead");
    let reason: String = db.one(&format!(
        "select reason from job_history where job_id = '{id}' and to_status = 'dead'"
    ));
    assert!(reason.starts_with("forced"), "{reason}");
}

#[test]
fn requeue_expired_times_out_the_attempt_and_requeues_with_backoff() {
    let db = TestDb::new();
    let id = s(
        &db.cli(&[
            "enqueue-job",
            "--target-agent",
            "a",
            "--subject",
            "s",
            "--max-attempts",
            "2",
        ])
        .ok(),
        "id",
    );
    db.cli(&["claim-jobs", "--lease-owner", "d1"]).ok();
    db.job(&id).lease_expired("1 second");

    let requeued = db.cli(&["requeue-expired"]).ok();

    assert_eq!(requeued[0]["id"].as_str(), Some(id.as_str()));
    assert_eq!(requeued[0]["status"], "queued");
    assert!(
        t(&requeued[0], "run_after") > t(&requeued[0], "updated_at"),
        "retried after a backoff"
    );
    let shown = db.cli(&["show-job", &id, "--format", "json"]).ok();
    assert_eq!(shown["attempts"][0]["status"], "timed_out");

    // The second expiry uses the last attempt: dead, not queued.
    db.job(&id).due_now();
    db.cli(&["claim-jobs", "--lease-owner", "d2"]).ok();
    db.job(&id).lease_expired("1 second");
    let dead = db.cli(&["requeue-expired"]).ok();
    assert_eq!(dead[0]["status"], "dead");
}

#[test]
fn list_jobs_filters_by_agent_status_type_and_window() {
    let db = TestDb::new();
    db.cli(&[
        "enqueue-job",
        "--target-agent",
        "a",
        "--subject",
        "one",
        "--job-type",
        "scheduled",
    ])
    .ok();
    db.cli(&["enqueue-job", "--target-agent", "b", "--subject", "two"])
        .ok();
    db.cli(&[
        "enqueue-job",
        "--target-agent",
        "b",
        "--subject",
        "three",
        "--requires-approval",
    ])
    .ok();

    let by_agent = db.cli(&["list-jobs", "--agent", "b"]).ok();
    let by_status = db
        .cli(&["list-jobs", "--status", "queued,awaiting_approval"])
        .ok();
    let by_type = db.cli(&["list-jobs", "--type", "scheduled"]).ok();
    let recent = db.cli(&["list-jobs", "--since", "1h"]).ok();
    let future = db
        .cli(&["list-jobs", "--since", "2999-01-01T00:00:00Z"])
        .ok();
    let table = db.cli(&["list-jobs", "--format", "table"]);

    assert_eq!(by_agent.as_array().unwrap().len(), 2);
    assert_eq!(by_status.as_array().unwrap().len(), 3);
    assert_eq!(by_type.as_array().unwrap().len(), 1);
    assert_eq!(recent.as_array().unwrap().len(), 3);
    assert_eq!(future.as_array().unwrap().len(), 0);
    assert_eq!(table.code, 0);
    assert!(
        table.stdout.contains("awaiting_approval") && table.stdout.contains("subject"),
        "{}",
        table.stdout
    );
}

#[test]
fn get_prints_parts_of_the_json_output() {
    let db = TestDb::new();
    let id = db.enqueue("writer", "draft", &[]);
    let out = db.cli(&["show-job", &id, "--get", "subject"]);
    assert_eq!(out.stdout.trim(), "draft");
    let out = db.cli(&["list-jobs", "--get", "[].target_agent"]);
    assert_eq!(out.stdout.trim(), "writer");
    let out = db.cli(&["status", "--get", "jobs.queued"]);
    assert_eq!(out.stdout.trim(), "1");
    db.cli(&["show-job", &id, "--get", "subject.x"])
        .fails(2, "--get subject.x");
}

#[test]
fn list_jobs_filters_by_flow_and_correlation() {
    let db = TestDb::new();
    for (flow, corr) in [("a", "x"), ("a", "y"), ("b", "x")] {
        db.cli(&[
            "enqueue-job",
            "--target-agent",
            "w",
            "--subject",
            "s",
            "--flow-key",
            flow,
            "--correlation-key",
            corr,
        ])
        .ok();
    }
    let n = |args: &[&str]| {
        let mut all = vec!["list-jobs", "--format", "json"];
        all.extend_from_slice(args);
        db.cli(&all).ok().as_array().unwrap().len()
    };
    assert_eq!(n(&["--flow", "a"]), 2);
    assert_eq!(n(&["--correlation", "x"]), 2);
    assert_eq!(n(&["--flow", "a", "--correlation", "x"]), 1);
}

#[test]
fn every_job_id_argument_takes_the_8_characters_tables_print() {
    let db = TestDb::new();
    let parent = db.enqueue("scout", "research", &[]);
    let short = &parent[..8];
    let child = db
        .cli(&[
            "enqueue-job",
            "--target-agent",
            "writer",
            "--subject",
            "draft",
            "--parent-job-id",
            short,
            "--depends-on",
            short,
        ])
        .ok();
    assert_eq!(child["parent_job_id"], parent.as_str());
    assert_eq!(child["status"], "waiting");
    let shown = db.cli(&["show-job", short, "--format", "json"]).ok();
    assert_eq!(shown["id"], parent.as_str());
    assert_eq!(shown["dependents"][0]["id"], child["id"]);

    let (id, token) = db.claim_one("d1", Some("scout"));
    assert_eq!(id, parent);
    db.cli(&["mark-running-job", short, "--lease-token", &token])
        .ok();
    db.cli(&[
        "emit-event",
        "--topic",
        "research.done",
        "--source-job-id",
        short,
    ])
    .ok();
    let events = db
        .cli(&["events", "--source-job-id", short, "--format", "json"])
        .json();
    assert_eq!(events[0]["source_job_id"], parent.as_str());
    let done = db
        .cli(&[
            "complete-job",
            short,
            "--lease-token",
            &token,
            "--summary",
            "ok",
        ])
        .ok();
    assert_eq!(done["status"], "succeeded");

    // A prefix that names no job, or too few characters: refused before anything is written.
    let before = db.snapshot();
    db.cli(&["show-job", "00000000"])
        .fails(3, "no job id of namespace default starts with");
    db.cli(&["complete-job", "abc", "--summary", "x"])
        .fails(2, "expected a job id");
    assert_eq!(db.snapshot(), before);
}
