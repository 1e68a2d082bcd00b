//! JSON documents keep their numbers exactly: no float rounding between the caller,
//! PostgreSQL and the output.

#[test]
fn json_numbers_are_kept_as_written_not_rounded_through_a_float() {
    let db = crate::support::TestDb::new();
    let payload = r#"{"n": 123456789012345678901234567890, "pi": 3.14159265358979323846, "small": 1e-30, "ok": 7}"#;
    let job = db
        .cli(&[
            "enqueue-job",
            "--target-agent",
            "rep",
            "--subject",
            "numbers",
            "--payload",
            payload,
        ])
        .ok();
    let id = crate::support::s(&job, "id");
    // What PostgreSQL stored is what was written (jsonb keeps numerics exactly) ...
    let stored: String = db.one(&format!("select payload::text from jobs where id = '{id}'"));
    assert!(
        stored.contains("123456789012345678901234567890"),
        "{stored}"
    );
    assert!(stored.contains("3.14159265358979323846"), "{stored}");
    // ... and what agentbus prints is what PostgreSQL stored.
    let shown = db.cli(&["show-job", &id, "--get", "payload.n"]).ok_text();
    assert_eq!(shown.trim(), "123456789012345678901234567890");
    let shown = db.cli(&["show-job", &id, "--get", "payload.pi"]).ok_text();
    assert_eq!(shown.trim(), "3.14159265358979323846");
    assert_eq!(job["payload"]["ok"], 7);
}
