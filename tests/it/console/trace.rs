//! trace (a job's parents, follow-ups and attempts as a tree) and activity (one agent's
//! or operator's window in time order).

use crate::support::{s, TestDb};

/// claim-jobs for one agent; returns the lease token.
fn claim(db: &TestDb, agent: &str, owner: &str) -> String {
    let (_, token) = db.claim_one(owner, Some(agent));
    token
}

#[test]
fn trace_renders_a_three_level_flow_with_a_retry_and_a_block() {
    let db = TestDb::new();
    let root = s(
        &db.cli(&[
            "enqueue-job",
            "--target-agent",
            "scout",
            "--subject",
            "Research Acme",
            "--flow-key",
            "prospect:acme",
        ])
        .ok(),
        "id",
    );
    let t = claim(&db, "scout", "sup-1");
    // Inside a run, AGENTBUS_JOB_ID makes the follow-up a child in the same flow.
    let in_run = |job: &str, args: &[&str]| {
        db.cli_with(
            args,
            &[("AGENTBUS_JOB_ID", job), ("AGENTBUS_AGENT", "tester")],
            None,
        )
        .ok()
    };
    let writer = s(
        &in_run(
            &root,
            &[
                "enqueue-job",
                "--target-agent",
                "writer",
                "--subject",
                "Draft email",
            ],
        ),
        "id",
    );
    db.cli(&[
        "emit-event",
        "--topic",
        "prospect.found",
        "--source-job-id",
        &root,
        "--payload",
        r#"{"company":"Acme"}"#,
    ])
    .ok();
    db.cli(&[
        "complete-job",
        &root,
        "--lease-token",
        &t,
        "--summary",
        "3 signals",
    ])
    .ok();
    let t = claim(&db, "writer", "sup-1");
    db.cli(&[
        "fail-job",
        &writer,
        "--lease-token",
        &t,
        "--last-error",
        "model timeout",
        "--retry-seconds",
        "0",
    ])
    .ok();
    let t = claim(&db, "writer", "sup-2");
    let rep = s(
        &in_run(
            &writer,
            &[
                "enqueue-job",
                "--target-agent",
                "rep",
                "--subject",
                "Send email",
            ],
        ),
        "id",
    );
    db.cli(&["complete-job", &writer, "--lease-token", &t]).ok();
    let t = claim(&db, "rep", "sup-1");
    db.cli(&[
        "block-job",
        &rep,
        "--lease-token",
        &t,
        "--blocked-reason",
        "no email address",
    ])
    .ok();

    let v = db.cli(&["trace", &writer, "--format", "json"]).ok();
    assert_eq!(v["job_count"], 3);
    let scout = &v["roots"][0];
    assert_eq!(scout["job"]["id"], root.as_str());
    assert_eq!(scout["events"][0]["topic"], "prospect.found");
    let w = &scout["children"][0];
    assert_eq!(w["focus"], true);
    assert_eq!(
        w["job"]["flow_key"], "prospect:acme",
        "inherited from the parent"
    );
    let attempts: Vec<&str> = w["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect();
    assert_eq!(attempts, ["failed", "succeeded"]);
    let r = &w["children"][0];
    assert_eq!(r["job"]["status"], "blocked");
    assert_eq!(r["job"]["blocked_reason"], "no email address");

    let text = db.cli(&["trace", &writer[..8], "--format", "table"]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    for needle in [
        &root[..8],
        &writer[..8],
        &rep[..8],
        "attempt 1 failed by sup-1",
        "model timeout",
        "attempt 2 succeeded by sup-2",
        "blocked: no email address",
        "event prospect.found",
        "queued -> leased by sup-1",
        "▶",
    ] {
        assert!(
            text.stdout.contains(needle),
            "{needle} missing:\n{}",
            text.stdout
        );
    }
    for line in text.stdout.lines() {
        assert!(line.chars().count() <= 100, "{line}");
    }

    let flow = db
        .cli(&["trace", "--flow", "prospect:acme", "--format", "json"])
        .ok();
    assert_eq!(flow["job_count"], 3);
    assert_eq!(flow["roots"].as_array().unwrap().len(), 1);

    db.cli(&["trace", "--flow", "nope"])
        .fails(3, "no job in namespace default has flow_key");
    db.cli(&["trace"]).fails(2, "required");
    db.cli(&["trace", &root, "--flow", "x"])
        .fails(2, "cannot be used with");
}

#[test]
fn activity_tells_what_an_agent_and_an_operator_did_in_the_window() {
    let db = TestDb::new();
    let as_writer = |args: &[&str]| {
        db.cli_with(args, &[("AGENTBUS_AGENT", "writer")], None)
            .ok()
    };
    let job = db.enqueue("writer", "Draft email", &[]);
    let old = db.enqueue("writer", "Last week's draft", &[]);
    db.job(&old).created("3 days");
    let (claimed, token) = db.claim_one("sup-1", Some("writer"));
    assert_eq!(claimed, job);
    let follow_up = s(
        &db.cli_with(
            &[
                "enqueue-job",
                "--target-agent",
                "closer",
                "--subject",
                "Close Acme",
                "--requires-approval",
            ],
            &[("AGENTBUS_AGENT", "writer"), ("AGENTBUS_JOB_ID", &job)],
            None,
        )
        .ok(),
        "id",
    );
    as_writer(&[
        "emit-event",
        "--topic",
        "draft.ready",
        "--source-job-id",
        &job,
        "--payload",
        "{}",
    ]);
    as_writer(&[
        "complete-job",
        &job,
        "--lease-token",
        &token,
        "--summary",
        "drafted",
    ]);
    as_writer(&[
        "start-standing-order",
        "--agent-id",
        "writer",
        "--order-name",
        "inbox-sweep",
        "--scheduled-for",
        "2026-11-23T08:00:00Z",
    ]);
    db.cli(&[
        "--actor",
        "operator:alice",
        "approve-job",
        &follow_up,
        "--reason",
        "ok",
    ])
    .ok();

    let act = db
        .cli(&[
            "activity", "--agent", "writer", "--since", "1d", "--format", "json",
        ])
        .ok();
    let kinds: Vec<(String, String)> = act["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (s(e, "kind"), s(e, "what")))
        .collect();
    for expected in [
        ("received", "reactive"),
        ("transition", "queued -> leased"),
        ("transition", "leased -> succeeded"),
        ("enqueued", "reactive"),
        ("emitted", "draft.ready"),
        ("standing_order_started", "inbox-sweep"),
    ] {
        assert!(
            kinds.contains(&(expected.0.into(), expected.1.into())),
            "{expected:?} missing from {kinds:?}"
        );
    }
    assert!(
        !act["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["job_id"] == old.as_str()),
        "outside the window"
    );
    let times: Vec<String> = act["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| s(e, "at"))
        .collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "time order");

    let alice = db
        .cli(&[
            "activity",
            "--agent",
            "operator:alice",
            "--since",
            "1d",
            "--format",
            "json",
        ])
        .ok();
    assert_eq!(alice["entries"][0]["kind"], "acted");
    assert_eq!(alice["entries"][0]["what"], "awaiting_approval -> queued");
    assert_eq!(alice["entries"][0]["other_agent"], "closer");

    let table = db.cli(&["activity", "--agent", "writer", "--format", "table"]);
    assert_eq!(table.code, 0);
    for line in table.stdout.lines() {
        assert!(line.chars().count() <= 100, "{line}");
    }
    db.cli(&["activity", "--agent", "writer", "--since", "yesterday"])
        .fails(2, "not a window");
    db.cli(&["activity", "--agent", " "]).fails(2, "--agent");
}
