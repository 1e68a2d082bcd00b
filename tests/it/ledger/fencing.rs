//! Fencing: a worker whose lease expired and whose job was claimed again cannot change it.

use crate::support::{s, TestDb};

fn expire(db: &TestDb, id: &str) {
    db.job(id).lease_expired("1 second");
}

#[test]
fn a_worker_that_lost_its_lease_cannot_complete_or_fail_the_job() {
    let db = TestDb::new();
    let id = db.enqueue("a", "s", &[]);
    let first = db.cli(&["claim-jobs", "--lease-owner", "worker-a"]).ok();
    let old_token = s(&first[0], "lease_token");
    db.cli(&["mark-running-job", &id, "--lease-token", &old_token])
        .ok();

    // A's lease runs out; the job is recovered and B claims it.
    expire(&db, &id);
    db.cli(&["requeue-expired"]).ok();
    db.job(&id).due_now();
    let second = db.cli(&["claim-jobs", "--lease-owner", "worker-b"]).ok();
    let new_token = s(&second[0], "lease_token");
    assert_ne!(old_token, new_token);
    let job_before = db.cli(&["show-job", &id, "--format", "json"]).ok();

    let complete = db.cli(&[
        "complete-job",
        &id,
        "--lease-token",
        &old_token,
        "--summary",
        "late",
    ]);
    let fail = db.cli(&[
        "fail-job",
        &id,
        "--lease-token",
        &old_token,
        "--last-error",
        "late",
        "--retry-seconds",
        "1",
    ]);
    let block = db.cli(&[
        "block-job",
        &id,
        "--lease-token",
        &old_token,
        "--blocked-reason",
        "late",
    ]);
    let renew = db.cli(&["renew-job-lease", &id, "--lease-token", &old_token]);
    let mark = db.cli(&["mark-running-job", &id, "--lease-token", &old_token]);
    let by_attempt = db.cli(&["complete-job", &id, "--attempt", "1"]);

    for out in [&complete, &fail, &block, &renew, &mark] {
        out.fails(4, "stale lease token");
    }
    by_attempt.fails(4, "stale attempt");
    let job_after = db.cli(&["show-job", &id, "--format", "json"]).ok();
    for field in [
        "status",
        "lease_owner",
        "lease_token",
        "leased_until",
        "attempt_count",
        "summary",
        "last_error",
        "history",
    ] {
        assert_eq!(job_after[field], job_before[field], "{field} changed");
    }
    assert_eq!(job_after["status"], "leased");
    assert_eq!(job_after["lease_owner"], "worker-b");

    // The refused calls are on A's attempt, not B's.
    let attempts = job_after["attempts"].as_array().unwrap();
    let stale = attempts[0]["stale_calls"].as_array().unwrap();
    let commands: Vec<&str> = stale
        .iter()
        .map(|c| c["command"].as_str().unwrap())
        .collect();
    assert_eq!(
        commands,
        [
            "complete-job",
            "fail-job",
            "block-job",
            "renew-job-lease",
            "mark-running-job",
            "complete-job"
        ]
    );
    assert!(attempts[1]["stale_calls"].as_array().unwrap().is_empty());
    assert_eq!(attempts[0]["status"], "timed_out");

    // B, holding the current token, closes it.
    let done = db
        .cli(&[
            "complete-job",
            &id,
            "--lease-token",
            &new_token,
            "--attempt",
            "2",
        ])
        .ok();
    assert_eq!(done["status"], "succeeded");
}

#[test]
fn the_supervisor_token_in_the_environment_fences_only_its_own_job() {
    let db = TestDb::new();
    let mine = db.enqueue("a", "mine", &[]);
    let other = db.enqueue("b", "other", &[]);
    let claimed = db
        .cli(&["claim-jobs", "--lease-owner", "sup", "--limit", "2"])
        .ok();
    let token_of = |id: &str| {
        claimed
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["id"] == id)
            .map(|j| s(j, "lease_token"))
            .unwrap()
    };
    let env_stale = [
        ("AGENTBUS_JOB_ID", mine.as_str()),
        (
            "AGENTBUS_LEASE_TOKEN",
            "00000000-0000-0000-0000-000000000000",
        ),
    ];

    db.cli_with(&["complete-job"], &env_stale, None)
        .fails(4, "stale lease token");
    // Closing another job does not borrow the environment's token for it.
    let closed_other = db
        .cli_with(
            &["complete-job", &other, "--lease-token", &token_of(&other)],
            &env_stale,
            None,
        )
        .ok();
    assert_eq!(closed_other["status"], "succeeded");
    let env_good = [
        ("AGENTBUS_JOB_ID", mine.as_str()),
        ("AGENTBUS_LEASE_TOKEN", &*token_of(&mine)),
    ];
    assert_eq!(
        db.cli_with(&["complete-job"], &env_good, None).ok()["status"],
        "succeeded"
    );
}

#[test]
fn repeating_a_successful_close_with_its_token_is_harmless() {
    let db = TestDb::new();
    let id = db.enqueue("a", "s", &[]);
    let token = db.claim_one("w", None).1;
    let first = db
        .cli(&[
            "complete-job",
            &id,
            "--lease-token",
            &token,
            "--summary",
            "done",
        ])
        .ok();
    let before = db.snapshot();

    let again = db
        .cli(&[
            "complete-job",
            &id,
            "--lease-token",
            &token,
            "--summary",
            "done",
        ])
        .ok();

    assert_eq!(again, first);
    assert_eq!(db.snapshot(), before);
}
