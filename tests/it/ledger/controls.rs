//! Operator controls: every (state, control) pair, the history they leave, approvals,
//! drain-agent, and two operators acting on one job at once.

use agentbus::ledger::jobs::JobStatus;
use serde_json::Value;

use crate::support::{s, TestDb};

/// Where each control takes a job from each state; `None` = illegal (exit 4).
fn expected(control: &str, from: JobStatus) -> Option<JobStatus> {
    use JobStatus::*;
    let unfinished = matches!(
        from,
        Queued | Waiting | AwaitingApproval | Blocked | Leased | Running | Failed
    );
    match control {
        "cancel-job" => unfinished.then_some(Cancelled),
        "dead-letter-job" => unfinished.then_some(Dead),
        "reprioritize-job" => unfinished.then_some(from),
        "retry-job" => matches!(from, Dead | Blocked | Cancelled | Failed).then_some(Queued),
        "unblock-job" => (from == Blocked).then_some(Queued),
        "approve-job" => (from == AwaitingApproval).then_some(Queued),
        "reject-job" => (from == AwaitingApproval).then_some(Cancelled),
        _ => unreachable!("unknown control {control}"),
    }
}

fn args<'a>(control: &'a str, id: &'a str) -> Vec<&'a str> {
    let mut a = vec!["--actor", "ops:alice", control, id];
    match control {
        "unblock-job" => a.extend(["--note", "fixed upstream"]),
        "reprioritize-job" => a.extend(["--priority", "900", "--reason", "customer waiting"]),
        _ => a.extend(["--reason", "operator test"]),
    }
    a
}

const CONTROLS: [&str; 7] = [
    "cancel-job",
    "dead-letter-job",
    "reprioritize-job",
    "retry-job",
    "unblock-job",
    "approve-job",
    "reject-job",
];

#[test]
fn every_state_and_control_pair_follows_the_rules_and_is_recorded() {
    let db = TestDb::new();
    for from in JobStatus::ALL {
        for control in CONTROLS {
            let id = db.insert_job_in(from.as_str()).to_string();
            let before = db.snapshot();
            let out = db.cli(&args(control, &id));
            match expected(control, from) {
                Some(to) => {
                    let job = out.ok();
                    assert_eq!(job["status"], to.as_str(), "{control} from {from}");
                    let detail = db.cli(&["show-job", &id, "--format", "json"]).ok();
                    let last = detail["history"]
                        .as_array()
                        .unwrap()
                        .last()
                        .unwrap()
                        .clone();
                    assert_eq!(last["from_status"], from.as_str(), "{control} from {from}");
                    assert_eq!(last["to_status"], to.as_str(), "{control} from {from}");
                    assert_eq!(last["actor"], "ops:alice", "{control} from {from}");
                    assert!(
                        last["reason"].as_str().unwrap().starts_with(control),
                        "{control} from {from}: {last}"
                    );
                    if matches!(to, JobStatus::Cancelled | JobStatus::Dead) {
                        assert!(job["lease_token"].is_null());
                        for a in detail["attempts"].as_array().unwrap() {
                            assert!(!a["finished_at"].is_null(), "{control}: open attempt {a}");
                        }
                    }
                }
                None => {
                    out.fails(4, &format!("is {from}"));
                    assert_eq!(db.snapshot(), before, "{control} from {from} wrote");
                }
            }
        }
    }
}

#[test]
fn controls_without_a_reason_or_with_bad_values_are_refused() {
    let db = TestDb::new();
    let id = db.enqueue("worker", "x", &[]);
    let before = db.snapshot();
    db.cli(&["cancel-job", &id])
        .fails(2, "--reason is required");
    db.cli(&["dead-letter-job", &id, "--reason", "  "])
        .fails(2, "--reason is required");
    db.cli(&["reprioritize-job", &id, "--priority", "0"])
        .fails(2, "out of range");
    db.cli(&["reprioritize-job", &id])
        .fails(2, "--priority is required");
    db.cli(&["cancel-job", "not-a-job", "--reason", "x"])
        .fails(2, "expected a job id");
    db.cli(&["cancel-job", "00000000", "--reason", "x"])
        .fails(3, "no job id of namespace default starts with 00000000");
    db.cli(&[
        "cancel-job",
        "6f9619ff-8b86-4d01-b42d-00cf4fc964ff",
        "--reason",
        "x",
    ])
    .fails(3, "not found");
    assert_eq!(db.snapshot(), before);

    // The first 8 characters are enough.
    let job = db
        .cli(&["cancel-job", &id[..8], "--reason", "short id"])
        .ok();
    assert_eq!(job["status"], "cancelled");
}

#[test]
fn reprioritize_keeps_the_status_and_leaves_a_history_row() {
    let db = TestDb::new();
    let id = db.enqueue("worker", "x", &[]);
    let job = db
        .cli(&[
            "reprioritize-job",
            &id,
            "--priority",
            "700",
            "--reason",
            "vip",
        ])
        .ok();
    assert_eq!(job["priority"], 700);
    let history = db.cli(&["show-job", &id, "--format", "json"]).ok()["history"].clone();
    let last = history.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["from_status"], "queued");
    assert_eq!(last["to_status"], "queued");
    assert_eq!(last["reason"], "reprioritize-job: priority 700: vip");
}

#[test]
fn a_dead_job_retried_gets_one_more_attempt_and_keeps_its_past() {
    let db = TestDb::new();
    let id = s(
        &db.cli(&[
            "enqueue-job",
            "--target-agent",
            "worker",
            "--subject",
            "flaky",
            "--max-attempts",
            "1",
        ])
        .ok(),
        "id",
    );
    let (_, token) = db.claim_one("d1", None);
    let dead = db
        .cli(&[
            "fail-job",
            &id,
            "--lease-token",
            &token,
            "--last-error",
            "boom",
        ])
        .ok();
    assert_eq!(dead["status"], "dead");

    let job = db.cli(&["retry-job", &id, "--reason", "fixed"]).ok();
    assert_eq!(job["status"], "queued");
    assert_eq!(job["attempt_count"], 1);
    assert_eq!(job["max_attempts"], 2);
    assert_eq!(job["last_error"], "boom", "the past is kept");

    let (again, _) = db.claim_one("d1", None);
    assert_eq!(again, id);
    let detail = db.cli(&["show-job", &id, "--format", "json"]).ok();
    assert_eq!(detail["attempts"].as_array().unwrap().len(), 2);
}

#[test]
fn retry_is_refused_when_another_active_job_holds_the_dedupe_key() {
    let db = TestDb::new();
    let enqueue = || {
        s(
            &db.cli(&[
                "enqueue-job",
                "--target-agent",
                "worker",
                "--subject",
                "x",
                "--dedupe-key",
                "k1",
            ])
            .ok(),
            "id",
        )
    };
    let first = enqueue();
    db.cli(&["cancel-job", &first, "--reason", "superseded"])
        .ok();
    let _second = enqueue();
    let before = db.snapshot();
    db.cli(&["retry-job", &first])
        .fails(4, "holds its dedupe key \"k1\"");
    assert_eq!(db.snapshot(), before);
}

#[test]
fn unblock_can_replace_the_payload() {
    let db = TestDb::new();
    let id = db.enqueue("worker", "send email", &[]);
    let (_, token) = db.claim_one("d1", None);
    db.cli(&[
        "block-job",
        &id,
        "--lease-token",
        &token,
        "--blocked-reason",
        "no email address",
    ])
    .ok();
    let job = db
        .cli_with(
            &["unblock-job", &id, "--note", "found it", "--payload", "-"],
            &[],
            Some(br#"{"email": "ada@example.com"}"#),
        )
        .ok();
    assert_eq!(job["status"], "queued");
    assert_eq!(job["payload"]["email"], "ada@example.com");
    assert!(job["blocked_reason"].is_null());
}

#[test]
fn approvals_hold_work_until_an_operator_decides() {
    let db = TestDb::new();
    let dep = db.enqueue("writer", "draft", &[]);
    let enqueue = |subject: &str, deps: &[&str]| {
        let mut a = vec![
            "enqueue-job",
            "--target-agent",
            "closer",
            "--subject",
            subject,
            "--requires-approval",
        ];
        for d in deps {
            a.extend(["--depends-on", d]);
        }
        s(&db.cli(&a).ok(), "id")
    };
    let proposal = enqueue("send proposal", &[]);
    let after_draft = enqueue("send contract", &[&dep]);
    let refused = enqueue("give 40% discount", &[]);

    let listed = db.cli(&["list-approvals", "--format", "json"]).ok();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [&proposal, &after_draft, &refused]);

    // Held jobs are not claimed.
    let claimed = db
        .cli(&[
            "claim-jobs",
            "--lease-owner",
            "d1",
            "--target-agent",
            "closer",
        ])
        .ok();
    assert_eq!(claimed, serde_json::json!([]));

    assert_eq!(db.cli(&["approve-job", &proposal]).ok()["status"], "queued");
    assert_eq!(
        db.cli(&["approve-job", &after_draft]).ok()["status"],
        "waiting",
        "approved, but its dependency has not succeeded"
    );
    assert_eq!(
        db.cli(&["reject-job", &refused, "--reason", "too deep"])
            .ok()["status"],
        "cancelled"
    );
    db.cli(&["reject-job", &proposal, "--reason", "late"])
        .fails(4, "is queued");

    let (claimed, _) = db.claim_one("d1", Some("closer"));
    assert_eq!(claimed, proposal);
    assert_eq!(
        db.cli(&["list-approvals", "--format", "json"]).ok(),
        serde_json::json!([])
    );
}

#[test]
fn two_operators_deciding_at_once_one_wins() {
    let db = TestDb::new();
    for _ in 0..5 {
        let id = s(
            &db.cli(&[
                "enqueue-job",
                "--target-agent",
                "closer",
                "--subject",
                "x",
                "--requires-approval",
            ])
            .ok(),
            "id",
        );
        let codes: Vec<i32> = std::thread::scope(|scope| {
            let approve = scope.spawn(|| db.cli(&["approve-job", &id]).code);
            let reject = scope.spawn(|| db.cli(&["reject-job", &id, "--reason", "no"]).code);
            vec![approve.join().unwrap(), reject.join().unwrap()]
        });
        let mut sorted = codes.clone();
        sorted.sort();
        assert_eq!(sorted, [0, 4], "{codes:?}");
        let decided: i64 = db.one(&format!(
            "select count(*) from job_history where job_id = '{id}' and from_status = 'awaiting_approval'"
        ));
        assert_eq!(decided, 1);
    }
}

#[test]
fn drain_agent_reroutes_or_cancels_queued_work_and_leaves_running_work() {
    let db = TestDb::new();
    let a = db.enqueue("writer", "a", &[]);
    let b = db.enqueue("writer", "b", &[]);
    let running = db.enqueue("writer", "c", &[]);
    db.cli(&["claim-jobs", "--lease-owner", "d1", "--limit", "1"])
        .ok();
    // Whatever was claimed first is in flight; make sure we know which.
    let in_flight: String = db.one("select id::text from jobs where status = 'leased'");
    let queued: Vec<String> = [&a, &b, &running]
        .into_iter()
        .filter(|id| **id != in_flight)
        .cloned()
        .collect();
    db.enqueue("writer-backup", "other work", &[]);

    let before = db.snapshot();
    db.cli(&["drain-agent", "writer", "--to", "nobody"])
        .fails(3, "agent nobody has no settings and no jobs");
    db.cli(&["drain-agent", "writer", "--to", "writer"])
        .fails(2, "another agent");
    db.cli(&["drain-agent", "writer"]).fails(2, "--to <AGENT>");
    assert_eq!(db.snapshot(), before);

    let report = db
        .cli(&[
            "--actor",
            "ops:bob",
            "drain-agent",
            "writer",
            "--to",
            "writer-backup",
            "--reason",
            "model outage",
        ])
        .ok();
    assert_eq!(report["action"], "reroute");
    assert_eq!(report["in_flight"], 1);
    let moved: Vec<String> = report["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(moved, queued);
    for id in &queued {
        let detail = db.cli(&["show-job", id, "--format", "json"]).ok();
        assert_eq!(detail["target_agent"], "writer-backup");
        let last = detail["history"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        assert_eq!(last["actor"], "ops:bob");
        assert_eq!(
            last["reason"],
            "drain-agent writer: rerouted to writer-backup: model outage"
        );
    }
    let leased: Value = db.cli(&["show-job", &in_flight, "--format", "json"]).ok();
    assert_eq!(leased["status"], "leased");
    assert_eq!(leased["target_agent"], "writer");

    let report = db
        .cli(&[
            "drain-agent",
            "writer-backup",
            "--cancel",
            "--reason",
            "stop",
        ])
        .ok();
    assert_eq!(report["jobs"].as_array().unwrap().len(), 3);
    let left: i64 = db.one("select count(*) from jobs where status = 'queued'");
    assert_eq!(left, 0);
}
