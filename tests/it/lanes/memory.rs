//! The memory lane: candidates, promotion (curators, sources, supersession), retrieval
//! buckets, limits, scopes, visibility and expiry, injection recorded on attempts, the
//! freeze, and bad input.

use crate::support::{s, TestDb};
use serde_json::Value;

pub(super) fn curator(db: &TestDb, agent: &str) {
    db.client()
        .execute(
            "insert into memory_curators (namespace, agent_id) values ('default', $1)",
            &[&agent],
        )
        .unwrap();
}

/// Files a candidate as `agent`; returns its id.
pub(super) fn candidate(
    db: &TestDb,
    agent: &str,
    kind: &str,
    scope: &str,
    subject: &str,
    title: &str,
) -> String {
    candidate_with(db, agent, kind, scope, subject, title, &[])
}

pub(super) fn candidate_with(
    db: &TestDb,
    agent: &str,
    kind: &str,
    scope: &str,
    subject: &str,
    title: &str,
    extra: &[&str],
) -> String {
    let mut args = vec![
        "create-memory-candidate",
        "--source-agent",
        agent,
        "--kind",
        kind,
        "--scope",
        scope,
        "--subject-key",
        subject,
        "--title",
        title,
        "--body",
        "What was learned, in one paragraph.",
        "--source-refs",
        r#"{"jobs": ["job-1"], "events": ["42"]}"#,
        "--confidence-score",
        "4",
    ];
    args.extend_from_slice(extra);
    s(&db.cli(&args).ok(), "id")
}

/// Promotes as the knowledge curator; returns the memory.
pub(super) fn promote(db: &TestDb, candidate: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "--actor",
        "knowledge",
        "promote-memory-candidate",
        "--candidate-id",
        candidate,
    ];
    args.extend_from_slice(extra);
    db.cli(&args).ok()["memory"].clone()
}

pub(super) fn memory(
    db: &TestDb,
    agent: &str,
    kind: &str,
    scope: &str,
    subject: &str,
    title: &str,
) -> String {
    let c = candidate(db, agent, kind, scope, subject, title);
    s(&promote(db, &c, &[]), "id")
}

pub(super) fn retrieve(db: &TestDb, args: &[&str]) -> Vec<(i64, String)> {
    let mut all = vec!["retrieve-memories", "--format", "json"];
    all.extend_from_slice(args);
    db.cli(&all)
        .ok()
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["bucket"].as_i64().unwrap(), s(m, "title")))
        .collect()
}

#[test]
fn a_candidate_is_promoted_by_a_curator_with_its_sources_and_never_deleted() {
    let db = TestDb::new();
    curator(&db, "knowledge");
    let c = candidate(
        &db,
        "devops",
        "mistake",
        "service",
        "billing-api",
        "Migrations ran twice",
    );
    let reviewed = db
        .cli(&[
            "--actor",
            "knowledge",
            "review-memory-candidate",
            "--candidate-id",
            &c,
        ])
        .ok();
    assert_eq!(reviewed["status"], "reviewed");
    assert_eq!(reviewed["reviewer"], "knowledge");

    // Not a curator: refused by the database, nothing written.
    let before = db.snapshot();
    db.cli(&[
        "--actor",
        "devops",
        "promote-memory-candidate",
        "--candidate-id",
        &c,
    ])
    .fails(4, "devops may not promote into shared memory");
    assert_eq!(db.snapshot(), before);

    let out = db
        .cli(&[
            "--actor",
            "knowledge",
            "promote-memory-candidate",
            "--candidate-id",
            &c,
            "--dedupe-key",
            "billing-api:migrations",
            "--review-at",
            "+30d",
            "--notes",
            "seen twice",
        ])
        .ok();
    let m = &out["memory"];
    assert_eq!(m["status"], "active");
    assert_eq!(m["created_by"], "knowledge");
    assert_eq!(m["source_candidate_id"], c.as_str());
    assert_eq!(out["candidate"]["status"], "promoted");
    let id = s(m, "id");
    let shown = db.cli(&["show-memory", &id, "--format", "json"]).ok();
    let links: Vec<(String, String)> = serde_json::from_value(shown["links"].clone()).unwrap();
    assert!(links.contains(&("job".into(), "job-1".into())), "{links:?}");
    assert!(links.contains(&("event".into(), "42".into())), "{links:?}");
    assert!(
        links.contains(&("candidate".into(), c.clone())),
        "{links:?}"
    );

    // The dedupe key is unique among active memories.
    let c2 = candidate(
        &db,
        "devops",
        "mistake",
        "service",
        "billing-api",
        "Migrations again",
    );
    db.cli(&[
        "--actor",
        "knowledge",
        "promote-memory-candidate",
        "--candidate-id",
        &c2,
        "--dedupe-key",
        "billing-api:migrations",
    ])
    .fails(4, "already has dedupe key");
    // Superseding replaces it; the old one stays, superseded.
    let out = db
        .cli(&[
            "--actor",
            "knowledge",
            "promote-memory-candidate",
            "--candidate-id",
            &c2,
            "--supersedes-memory-id",
            &id,
        ])
        .ok();
    assert_eq!(out["superseded"]["status"], "superseded");
    let old = db.cli(&["show-memory", &id, "--format", "json"]).ok();
    assert_eq!(old["status"], "superseded");
    assert_eq!(old["superseded_by"], out["memory"]["id"]);

    // Operators may promote too.
    let c3 = candidate(
        &db,
        "research",
        "decision",
        "global",
        "*",
        "EU data stays in EU",
    );
    let m3 = db
        .cli(&[
            "--actor",
            "operator:alice",
            "promote-memory-candidate",
            "--candidate-id",
            &c3,
        ])
        .ok();
    assert_eq!(m3["memory"]["created_by"], "operator:alice");
    let m3 = s(&m3["memory"], "id");
    assert_eq!(
        db.cli(&["expire-memory", "--memory-id", &m3]).ok()["status"],
        "expired"
    );
    db.cli(&["archive-memory", "--memory-id", &m3])
        .fails(4, "only active memories");
    let kept: i64 = db.one("select count(*) from memories");
    assert_eq!(kept, 3, "nothing is deleted");
}

#[test]
fn promotion_without_sources_or_while_frozen_is_refused() {
    let db = TestDb::new();
    curator(&db, "knowledge");
    let bare = s(
        &db.cli(&[
            "create-memory-candidate",
            "--source-agent",
            "design",
            "--kind",
            "preference",
            "--scope",
            "global",
            "--subject-key",
            "*",
            "--title",
            "Users like dark mode",
            "--body",
            "A hunch.",
            "--confidence-score",
            "2",
        ])
        .ok(),
        "id",
    );
    let before = db.snapshot();
    db.cli(&[
        "--actor",
        "knowledge",
        "promote-memory-candidate",
        "--candidate-id",
        &bare,
    ])
    .fails(4, "no evidence and no source references");
    assert_eq!(db.snapshot(), before);
    assert_eq!(
        db.cli(&[
            "--actor",
            "knowledge",
            "reject-memory-candidate",
            "--candidate-id",
            &bare,
            "--notes",
            "a hunch is an idea, not a memory"
        ])
        .ok()["status"],
        "rejected"
    );

    let c = candidate(&db, "devops", "lesson", "global", "*", "Roll back first");
    memory(
        &db,
        "devops",
        "lesson",
        "global",
        "*",
        "Page before paging twice",
    );
    db.cli(&["pause-lane", "memory", "--reason", "bad memory injected"])
        .ok();
    let before = db.snapshot();
    db.cli(&[
        "--actor",
        "knowledge",
        "promote-memory-candidate",
        "--candidate-id",
        &c,
    ])
    .fails(4, "memory lane of namespace default is paused");
    assert_eq!(db.snapshot(), before);
    db.cli(&["pause-lane", "memory"])
        .fails(2, "--reason is required");
    db.cli(&["pause-lane", "tasks", "--reason", "x"])
        .fails(2, "unknown lane");
    db.cli(&["resume-lane", "memory"]).ok();
    promote(&db, &c, &[]);
}

#[test]
fn bad_memory_input_is_refused_and_writes_nothing() {
    let db = TestDb::new();
    let before = db.snapshot();
    let base = |kind: &'static str, scope: &'static str, conf: &'static str, vis: &'static str| {
        vec![
            "create-memory-candidate",
            "--source-agent",
            "devops",
            "--kind",
            kind,
            "--scope",
            scope,
            "--subject-key",
            "x",
            "--title",
            "t",
            "--body",
            "b",
            "--confidence-score",
            conf,
            "--visibility",
            vis,
        ]
    };
    db.cli(&base("rumour", "global", "3", "shared"))
        .fails(2, "--kind: unknown \"rumour\"");
    db.cli(&base("lesson", "team", "3", "shared"))
        .fails(2, "--scope: unknown \"team\"");
    db.cli(&base("lesson", "global", "6", "shared"))
        .fails(2, "out of range (1 to 5)");
    db.cli(&base("lesson", "global", "0", "shared"))
        .fails(2, "out of range (1 to 5)");
    db.cli(&base("lesson", "global", "3", "secret"))
        .fails(2, "--visibility: unknown");
    let mut bad_refs = base("lesson", "global", "3", "shared");
    bad_refs.extend(["--source-refs", "[1]"]);
    db.cli(&bad_refs).fails(2, "--source-refs");
    db.cli(&["list-memories", "--kind", "rumour"])
        .fails(2, "--kind");
    db.cli(&["list-memories", "--status", "deleted"])
        .fails(2, "--status");
    db.cli(&["show-memory", "6f9619ff-8b86-4d01-b42d-00cf4fc964ff"])
        .fails(3, "not found");
    db.cli(&[
        "promote-memory-candidate",
        "--candidate-id",
        "6f9619ff-8b86-4d01-b42d-00cf4fc964ff",
    ])
    .fails(3, "not found");
    assert_eq!(db.snapshot(), before);
}
