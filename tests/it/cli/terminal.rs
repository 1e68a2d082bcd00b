//! Values from rows never drive the operator's terminal: control characters are shown
//! escaped in tables and error lines, and kept exactly in JSON.

use crate::support::{s, TestDb};

#[test]
fn escape_sequences_in_values_are_shown_escaped_in_tables_and_kept_in_json() {
    let db = TestDb::new();
    let title = "Retitle\u{1b}]0;pwned\u{7}";
    let clear = "Clear\u{1b}[2J\u{1b}[H\rover";
    let id = s(
        &db.cli(&["enqueue-job", "--target-agent", "rep", "--subject", title])
            .ok(),
        "id",
    );
    db.cli(&["enqueue-job", "--target-agent", "rep", "--subject", clear])
        .ok();
    for args in [
        vec!["list-jobs", "--format", "table"],
        vec!["status", "--format", "table"],
        vec!["show-job", id.as_str(), "--format", "table"],
        vec!["trace", id.as_str(), "--format", "table"],
    ] {
        let out = db.cli(&args).ok_text();
        assert!(
            !out.chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t'),
            "{args:?} printed a control character: {out:?}"
        );
    }
    let table = db.cli(&["show-job", &id, "--format", "table"]).ok_text();
    assert!(table.contains("Retitle\\x1b]0;pwned\\x07"), "{table}");

    // JSON keeps the value exactly (escaped as JSON escapes it).
    let json = db.cli(&["show-job", &id, "--format", "json"]).ok();
    assert_eq!(
        json["job"]["subject"].as_str().or(json["subject"].as_str()),
        Some(title)
    );

    // Error lines too.
    let out = db.cli(&["cancel-job", &id, "--reason", "bad\u{1b}[31m\nsecond line"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = db.cli(&["cancel-job", &id, "--reason", "again"]);
    assert_eq!(out.code, 4);
    assert!(
        !out.stderr.chars().any(|c| c.is_control() && c != '\n'),
        "{:?}",
        out.stderr
    );
}
