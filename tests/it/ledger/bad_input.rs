//! Bad input never writes: each case gives one clear error line, the documented exit code,
//! and leaves every ledger table exactly as it was.

use crate::support::{s, TestDb};

/// A database with one job in each interesting state, and a run, to snapshot around.
fn seeded() -> (TestDb, Seed) {
    let db = TestDb::new();
    let queued = db.enqueue("a", "queued", &[]);
    let dead = db.insert_job_in("dead").to_string();
    let cancelled = db.insert_job_in("cancelled").to_string();
    let running = db.insert_job_in("running").to_string();
    let other_ns = s(
        &db.cli(&[
            "enqueue-job",
            "--namespace",
            "other",
            "--target-agent",
            "a",
            "--subject",
            "elsewhere",
        ])
        .ok(),
        "id",
    );
    let run = s(
        &db.cli(&[
            "start-standing-order",
            "--agent-id",
            "a",
            "--order-name",
            "o",
            "--scheduled-for",
            "2026-01-01T00:00:00Z",
        ])
        .ok(),
        "id",
    );
    (
        db,
        Seed {
            queued,
            dead,
            cancelled,
            running,
            other_ns,
            run,
        },
    )
}

struct Seed {
    queued: String,
    dead: String,
    cancelled: String,
    running: String,
    other_ns: String,
    run: String,
}

/// Runs `args`, expects exit `code` with `needle` in the message, and no change at all.
fn refused(db: &TestDb, args: &[&str], stdin: Option<&[u8]>, code: i32, needle: &str) {
    let before = db.snapshot();
    let out = db.cli_with(args, &[], stdin);
    out.fails(code, needle);
    assert_eq!(db.snapshot(), before, "{args:?} changed the database");
}

#[test]
fn malformed_or_non_object_json_is_refused() {
    let (db, seed) = seeded();
    let enqueue = |payload: &'static str| {
        [
            "enqueue-job",
            "--target-agent",
            "a",
            "--subject",
            "s",
            "--payload",
            payload,
        ]
    };
    refused(&db, &enqueue("{not json"), None, 2, "not valid JSON");
    refused(&db, &enqueue("[1,2]"), None, 2, "expected a JSON object");
    refused(&db, &enqueue("\"text\""), None, 2, "expected a JSON object");
    refused(
        &db,
        &[
            "enqueue-job",
            "--target-agent",
            "a",
            "--subject",
            "s",
            "--state",
            "42",
        ],
        None,
        2,
        "--state",
    );
    refused(
        &db,
        &["emit-event", "--topic", "t", "--payload", "null"],
        None,
        2,
        "expected a JSON object",
    );
    refused(
        &db,
        &["complete-job", &seed.running, "--result", "[]"],
        None,
        2,
        "--result",
    );
    refused(
        &db,
        &[
            "finish-standing-order",
            &seed.run,
            "--status",
            "completed",
            "--evidence",
            "{",
        ],
        None,
        2,
        "--evidence",
    );
    refused(
        &db,
        &[
            "enqueue-job",
            "--target-agent",
            "a",
            "--subject",
            "s",
            "--payload",
            "@/nonexistent/p.json",
        ],
        None,
        2,
        "cannot read",
    );
}

#[test]
fn nul_characters_are_refused_with_a_clear_message() {
    let (db, seed) = seeded();
    refused(
        &db,
        &[
            "enqueue-job",
            "--target-agent",
            "a",
            "--subject",
            "s",
            "--payload",
            r#"{"a":"x\u0000y"}"#,
        ],
        None,
        2,
        "NUL",
    );
    refused(
        &db,
        &[
            "emit-event",
            "--topic",
            "t",
            "--payload",
            r#"{"k\u0000":1}"#,
        ],
        None,
        2,
        "NUL",
    );
    refused(
        &db,
        &[
            "complete-job",
            &seed.running,
            "--result",
            r#"{"a":["\u0000"]}"#,
        ],
        None,
        2,
        "NUL",
    );
    refused(
        &db,
        &[
            "finish-standing-order",
            &seed.run,
            "--status",
            "completed",
            "--evidence",
            r#"{"e":"\u0000"}"#,
        ],
        None,
        2,
        "NUL",
    );
}

#[test]
fn oversized_documents_are_refused() {
    let (db, _seed) = seeded();
    let big = format!("{{\"blob\":\"{}\"}}", "x".repeat(1024 * 1024 + 10));
    refused(
        &db,
        &[
            "enqueue-job",
            "--target-agent",
            "a",
            "--subject",
            "s",
            "--payload",
            "-",
        ],
        Some(big.as_bytes()),
        2,
        "1 MiB",
    );
}

#[test]
fn bad_uuids_and_unknown_rows_are_refused() {
    let (db, seed) = seeded();
    let unknown = uuid::Uuid::new_v4().to_string();
    refused(
        &db,
        &["complete-job", "not-a-uuid"],
        None,
        2,
        "invalid value",
    );
    refused(
        &db,
        &[
            "enqueue-job",
            "--target-agent",
            "a",
            "--subject",
            "s",
            "--depends-on",
            "123",
        ],
        None,
        2,
        "invalid value",
    );
    refused(&db, &["complete-job", &unknown], None, 3, "not found");
    refused(&db, &["show-job", &unknown], None, 3, "not found");
    refused(
        &db,
        &["finish-standing-order", &unknown, "--status", "completed"],
        None,
        3,
        "not found",
    );
    refused(
        &db,
        &[
            "enqueue-job",
            "--target-agent",
            "a",
            "--subject",
            "s",
            "--parent-job-id",
            &unknown,
        ],
        None,
        3,
        "parent job",
    );
    refused(
        &db,
        &[
            "enqueue-job",
            "--target-agent",
            "a",
            "--subject",
            "s",
            "--depends-on",
            &unknown,
        ],
        None,
        3,
        "not found",
    );
    refused(
        &db,
        &["emit-event", "--topic", "t", "--source-job-id", &unknown],
        None,
        3,
        "not found",
    );
    let _ = seed;
}

#[test]
fn out_of_range_values_are_refused() {
    let (db, seed) = seeded();
    for p in ["0", "1001", "-5", "ten"] {
        refused(
            &db,
            &[
                "enqueue-job",
                "--target-agent",
                "a",
                "--subject",
                "s",
                "--priority",
                p,
            ],
            None,
            2,
            "priority",
        );
    }
    refused(
        &db,
        &[
            "enqueue-job",
            "--target-agent",
            "a",
            "--subject",
            "s",
            "--max-attempts",
            "0",
        ],
        None,
        2,
        "max-attempts",
    );
    refused(
        &db,
        &[
            "enqueue-job",
            "--target-agent",
            "a",
            "--subject",
            "s",
            "--run-after",
            "tomorrow",
        ],
        None,
        2,
        "run-after",
    );
    refused(
        &db,
        &["enqueue-job", "--target-agent", "a", "--subject", "   "],
        None,
        2,
        "must not be empty",
    );
    refused(
        &db,
        &[
            "fail-job",
            &seed.running,
            "--last-error",
            "x",
            "--retry-seconds",
            "-5",
        ],
        None,
        2,
        "retry-seconds",
    );
    refused(
        &db,
        &["claim-jobs", "--lease-owner", "d", "--lease-seconds", "0"],
        None,
        2,
        "lease-seconds",
    );
    refused(
        &db,
        &["claim-jobs", "--lease-owner", "d", "--limit", "0"],
        None,
        2,
        "limit",
    );
    refused(
        &db,
        &["renew-job-lease", &seed.running, "--lease-seconds", "0"],
        None,
        2,
        "lease-seconds",
    );
    refused(
        &db,
        &[
            "start-standing-order",
            "--agent-id",
            "a",
            "--order-name",
            "o",
            "--scheduled-for",
            "soon",
        ],
        None,
        2,
        "scheduled-for",
    );
    refused(
        &db,
        &["finish-standing-order", &seed.run, "--status", "started"],
        None,
        2,
        "expected one of",
    );
    refused(
        &db,
        &["list-jobs", "--status", "nope"],
        None,
        2,
        "unknown job status",
    );
}

#[test]
fn missing_required_flags_and_empty_reasons_are_refused() {
    let (db, seed) = seeded();
    refused(
        &db,
        &["enqueue-job", "--subject", "s"],
        None,
        2,
        "--target-agent",
    );
    refused(
        &db,
        &["block-job", &seed.running],
        None,
        2,
        "--blocked-reason",
    );
    refused(
        &db,
        &["block-job", &seed.running, "--blocked-reason", ""],
        None,
        2,
        "must not be empty",
    );
    refused(
        &db,
        &["fail-job", &seed.running, "--last-error", " "],
        None,
        2,
        "must not be empty",
    );
    refused(&db, &["complete-job"], None, 2, "JOB_ID");
    refused(
        &db,
        &[
            "enqueue-job",
            "--target-agent",
            "a",
            "--subject",
            "s",
            "--payload",
            "-",
            "--state",
            "-",
        ],
        Some(b"{}"),
        2,
        "only one argument",
    );
}

#[test]
fn illegal_transitions_exit_4_and_change_nothing() {
    let (db, seed) = seeded();
    refused(&db, &["complete-job", &seed.dead], None, 4, "is dead");
    refused(
        &db,
        &["complete-job", &seed.cancelled],
        None,
        4,
        "is cancelled",
    );
    refused(&db, &["complete-job", &seed.queued], None, 4, "is queued");
    refused(
        &db,
        &["block-job", &seed.dead, "--blocked-reason", "x"],
        None,
        4,
        "is dead",
    );
    refused(
        &db,
        &["fail-job", &seed.cancelled, "--last-error", "x"],
        None,
        4,
        "is cancelled",
    );
}

#[test]
fn impossible_dependencies_are_refused() {
    let (db, seed) = seeded();
    let own = uuid::Uuid::new_v4().to_string();
    refused(
        &db,
        &[
            "enqueue-job",
            "--target-agent",
            "a",
            "--subject",
            "s",
            "--depends-on",
            &seed.other_ns,
        ],
        None,
        2,
        "namespace",
    );
    refused(
        &db,
        &[
            "enqueue-job",
            "--target-agent",
            "a",
            "--subject",
            "s",
            "--id",
            &own,
            "--depends-on",
            &own,
        ],
        None,
        2,
        "itself",
    );
    refused(
        &db,
        &[
            "enqueue-job",
            "--target-agent",
            "a",
            "--subject",
            "s",
            "--id",
            &seed.queued,
        ],
        None,
        4,
        "already exists",
    );
    refused(
        &db,
        &[
            "enqueue-job",
            "--target-agent",
            "a",
            "--subject",
            "s",
            "--parent-job-id",
            &seed.other_ns,
        ],
        None,
        2,
        "namespace",
    );
}

#[test]
fn json_errors_are_available_on_stderr() {
    let (db, seed) = seeded();
    let out = db.cli(&["complete-job", &seed.dead, "--format", "json"]);
    assert_eq!(out.code, 4);
    let doc: serde_json::Value = serde_json::from_str(out.stderr.lines().last().unwrap()).unwrap();
    assert_eq!(doc["error"]["kind"], "conflict");
    assert_eq!(doc["error"]["exit_code"], 4);
}
