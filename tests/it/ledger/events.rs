//! emit-event: recorded, deduplicated, and text stored verbatim.

use crate::support::{s, TestDb};

#[test]
fn emit_event_records_and_dedupes() {
    let db = TestDb::new();
    let job = db
        .cli(&[
            "enqueue-job",
            "--target-agent",
            "security",
            "--subject",
            "s",
        ])
        .ok();
    let args = [
        "emit-event",
        "--topic",
        "security.review.completed",
        "--source-agent",
        "security",
        "--source-job-id",
        job["id"].as_str().unwrap(),
        "--dedupe-key",
        "review:1",
        "--payload",
        r#"{"risk":"low","summary":"No blocking issues found."}"#,
    ];
    let first = db.cli(&args).ok();
    let again = db.cli(&args).ok();
    assert_eq!(first["topic"], "security.review.completed");
    assert_eq!(first["payload"]["risk"], "low");
    assert_eq!(first["deduped"], false);
    assert_eq!(again["deduped"], true);
    assert_eq!(again["id"], first["id"]);
}

#[test]
fn text_with_quotes_semicolons_and_unicode_is_stored_verbatim() {
    let db = TestDb::new();
    let nasty = "it's \"quoted\"; drop table jobs; -- ünïcødé 🚀 \\ $1";
    let job = db
        .cli(&[
            "enqueue-job",
            "--target-agent",
            "a",
            "--subject",
            nasty,
            "--payload",
            r#"{"k":"'; drop table jobs; --"}"#,
        ])
        .ok();
    assert_eq!(job["subject"], nasty);
    let shown = db
        .cli(&["show-job", &s(&job, "id"), "--format", "json"])
        .ok();
    assert_eq!(shown["subject"], nasty);
    assert_eq!(shown["payload"]["k"], "'; drop table jobs; --");
}
