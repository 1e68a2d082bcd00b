//! Memory retrieval: three buckets within limits, scopes and visibility; injection into
//! prompts by the supervisor; due reviews; the seed's flags.

use super::memory::{candidate, candidate_with, curator, memory, promote, retrieve};
use crate::support::{s, TestDb};
use serde_json::Value;

#[test]
fn retrieval_fills_three_buckets_within_limits_scopes_and_visibility() {
    let db = TestDb::new();
    curator(&db, "knowledge");
    // Bucket 1: the exact context.
    memory(
        &db,
        "devops",
        "context",
        "service",
        "billing-api",
        "billing runs on two nodes",
    );
    memory(
        &db,
        "devops",
        "entity_fact",
        "agent",
        "devops",
        "devops owns the runbooks",
    );
    memory(
        &db,
        "closer",
        "preference",
        "person",
        "dana",
        "Dana wants short emails",
    );
    memory(
        &db,
        "devops",
        "context",
        "project",
        "apollo",
        "Apollo ships in March",
    );
    memory(
        &db,
        "devops",
        "context",
        "service",
        "search",
        "search is read-only",
    );
    // Bucket 2: lessons and playbooks.
    memory(
        &db,
        "devops",
        "playbook",
        "global",
        "*",
        "Roll back before debugging",
    );
    memory(
        &db,
        "devops",
        "mistake",
        "agent",
        "devops",
        "Never restart both nodes at once",
    );
    memory(
        &db,
        "security",
        "lesson",
        "agent",
        "security",
        "security lesson for security",
    );
    // Bucket 3: global guidance.
    for i in 0..6 {
        memory(
            &db,
            "research",
            "decision",
            "global",
            "*",
            &format!("global decision {i}"),
        );
    }
    // Private to closer, and expired ones: never shown to devops.
    let private = candidate_with(
        &db,
        "closer",
        "preference",
        "agent",
        "devops",
        "closer's private note about devops",
        &["--visibility", "private"],
    );
    db.cli(&[
        "--actor",
        "closer",
        "promote-memory-candidate",
        "--candidate-id",
        &private,
    ])
    .ok();
    let expired = memory(&db, "devops", "lesson", "agent", "devops", "expired lesson");
    db.cli(&["expire-memory", "--memory-id", &expired]).ok();

    let got = retrieve(
        &db,
        &[
            "--agent",
            "devops",
            "--service",
            "billing-api",
            "--project",
            "apollo",
        ],
    );
    let titles: Vec<&str> = got.iter().map(|(_, t)| t.as_str()).collect();
    assert!(got.len() <= 10, "{got:?}");
    let bucket = |b: i64| got.iter().filter(|(x, _)| *x == b).count();
    assert!(bucket(1) >= 3 && bucket(1) <= 4, "{got:?}");
    assert!(titles.contains(&"billing runs on two nodes"));
    assert!(titles.contains(&"Apollo ships in March"));
    assert!(titles.contains(&"devops owns the runbooks"));
    assert!(!titles.contains(&"search is read-only"), "another service");
    assert!(
        !titles.contains(&"Dana wants short emails"),
        "no person given"
    );
    assert!(titles.contains(&"Roll back before debugging"));
    assert!(
        !titles.contains(&"security lesson for security"),
        "another agent's lessons"
    );
    assert!(bucket(3) <= 4);
    assert!(
        !titles.contains(&"closer's private note about devops"),
        "private to closer"
    );
    assert!(!titles.contains(&"expired lesson"));
    let mut seen = titles.clone();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), titles.len(), "each memory once");

    // A superseded memory is not retrieved; its replacement is.
    let old = memory(&db, "devops", "constraint", "global", "*", "old constraint");
    let newer = candidate(&db, "devops", "constraint", "global", "*", "new constraint");
    promote(&db, &newer, &["--supersedes-memory-id", &old]);
    let titles: Vec<String> = retrieve(&db, &["--agent", "devops", "--limit", "50"])
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert!(titles.contains(&"new constraint".to_string()), "{titles:?}");
    assert!(
        !titles.contains(&"old constraint".to_string()),
        "{titles:?}"
    );

    // The limit holds; the owner sees its private memory.
    assert_eq!(
        retrieve(&db, &["--agent", "devops", "--limit", "3"]).len(),
        3
    );
    let closer: Vec<String> = retrieve(&db, &["--agent", "closer", "--person", "dana"])
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert!(closer.contains(&"Dana wants short emails".to_string()));
    db.cli(&["retrieve-memories", "--agent", "devops", "--limit", "0"])
        .fails(2, "out of range");
}

#[test]
fn the_supervisor_injects_memories_and_records_them_unless_frozen_or_off() {
    let db = TestDb::new();
    curator(&db, "knowledge");
    let m = memory(
        &db,
        "devops",
        "playbook",
        "agent",
        "worker",
        "Check the queue first",
    );
    let job = db.enqueue("worker", "inject me", &[]);
    let runner = "sh -c 'grep -q \"Check the queue first\" \"$AGENTBUS_PROMPT_FILE\" && exec agentbus complete-job >/dev/null'";
    let out = db.supervise_once(&["--exec", runner], &[], std::time::Duration::from_secs(60));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let attempt: Value = db.one(&format!(
        "select jsonb_build_object('status', status, 'memory_ids', memory_ids)
           from job_attempts where job_id = '{job}'"
    ));
    assert_eq!(
        attempt["status"], "succeeded",
        "the prompt carried the memory"
    );
    assert_eq!(attempt["memory_ids"], serde_json::json!([m]));
    let trace = db.cli(&["trace", &job, "--format", "table"]).ok_text();
    assert!(
        trace.contains(&format!("saw memories {}", &m[..8])),
        "{trace}"
    );
    let shown = db.cli(&["show-memory", &m, "--format", "json"]).ok();
    assert_eq!(shown["seen_by_attempts"][0][0], job.as_str());

    // Frozen: nothing injected.
    db.cli(&["pause-lane", "memory", "--reason", "investigating"])
        .ok();
    let frozen = db.enqueue("worker", "while frozen", &[]);
    let out = db.supervise_once(
        &[
            "--exec",
            "agentbus complete-job {job_id} --lease-token {lease_token}",
        ],
        &[],
        std::time::Duration::from_secs(60),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let ids: Value = db.one(&format!(
        "select to_jsonb(memory_ids) from job_attempts where job_id = '{frozen}'"
    ));
    assert_eq!(ids, serde_json::json!([]));
    db.cli(&["resume-lane", "memory"]).ok();

    // Off in the fleet: nothing injected either.
    db.client()
        .execute("update lane_controls set inject = false", &[])
        .unwrap();
    let off = db.enqueue("worker", "injection off", &[]);
    db.supervise_once(
        &[
            "--exec",
            "agentbus complete-job {job_id} --lease-token {lease_token}",
        ],
        &[],
        std::time::Duration::from_secs(60),
    );
    let ids: Value = db.one(&format!(
        "select to_jsonb(memory_ids) from job_attempts where job_id = '{off}'"
    ));
    assert_eq!(ids, serde_json::json!([]));
}

#[test]
fn due_reviews_and_fleet_curators() {
    let db = TestDb::new();
    curator(&db, "knowledge");
    let c = candidate(&db, "devops", "pattern", "global", "*", "Fridays are quiet");
    let m = s(&promote(&db, &c, &["--review-at", "+1d"]), "id");
    assert_eq!(
        db.cli(&["memories-due-review", "--format", "json"]).ok(),
        serde_json::json!([])
    );
    db.client()
        .execute(
            "update memories set next_review_at = now() - interval '1 hour'",
            &[],
        )
        .unwrap();
    let due = db.cli(&["memories-due-review", "--get", "[].id"]).ok_text();
    assert_eq!(due.trim(), m);

    // Curators come from fleet.toml ([memory] curators, default: the knowledge agent).
    let dir = std::env::temp_dir()
        .join(format!("agentbus-memory-{}", uuid::Uuid::new_v4()))
        .join("crew");
    for a in ["knowledge", "devops"] {
        std::fs::create_dir_all(dir.join(a)).unwrap();
        std::fs::write(dir.join(a).join("agent.toml"), format!("id = \"{a}\"\n")).unwrap();
    }
    std::fs::write(dir.join("fleet.toml"), "namespace = \"crew\"\n").unwrap();
    db.cli(&["fleet", "sync", dir.to_str().unwrap()]).ok();
    let curators: Vec<String> = db
        .client()
        .query(
            "select agent_id from memory_curators where namespace = 'crew'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(curators, ["knowledge"]);
    std::fs::write(
        dir.join("fleet.toml"),
        "namespace = \"crew\"\n[memory]\ncurators = [\"devops\", \"knowledge\"]\ninject = false\n",
    )
    .unwrap();
    let report = db
        .cli(&["fleet", "sync", dir.to_str().unwrap(), "--format", "json"])
        .ok();
    assert_eq!(report["changed"].as_array().unwrap().len(), 2, "{report}");
    let inject: bool = db.one("select inject from lane_controls where namespace = 'crew'");
    assert!(!inject);
    let again = db
        .cli(&["fleet", "sync", dir.to_str().unwrap(), "--format", "json"])
        .ok();
    assert_eq!(again["changed"], serde_json::json!([]));
    std::fs::write(
        dir.join("fleet.toml"),
        "namespace = \"crew\"\n[memory]\ncurators = [\"nobody\"]\n",
    )
    .unwrap();
    db.cli(&["fleet", "validate", dir.to_str().unwrap()])
        .fails(2, "memory curator \"nobody\" is not an agent");
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

#[test]
fn the_seed_flags_work_and_a_curator_may_correct_a_candidate() {
    let db = TestDb::new();
    curator(&db, "knowledge");
    let c = s(
        &db.cli(&[
            "create-memory-candidate",
            "--source-agent",
            "design",
            "--candidate-kind",
            "pattern",
            "--scope",
            "project",
            "--subject-key",
            "apollo",
            "--title",
            "Reviews slip on Fridays",
            "--body",
            "Design reviews planned for Friday slip to Monday.",
            "--evidence",
            r#"{"weeks": 4}"#,
            "--confidence-score",
            "2",
            "--stability",
            "volatile",
            "--dedupe-key",
            "apollo:friday-reviews",
        ])
        .ok(),
        "id",
    );
    let out = db
        .cli(&[
            "promote-memory-candidate",
            "--candidate-id",
            &c,
            "--promoted-by",
            "knowledge",
            "--kind",
            "lesson",
            "--confidence-score",
            "3",
            "--title",
            "Do not plan design reviews on Fridays",
            "--next-review-at",
            "+14d",
        ])
        .ok();
    let m = &out["memory"];
    assert_eq!(m["kind"], "lesson");
    assert_eq!(m["confidence_score"], 3);
    assert_eq!(m["title"], "Do not plan design reviews on Fridays");
    assert_eq!(
        m["scope"], "project",
        "uncorrected fields come from the candidate"
    );
    assert_eq!(m["stability"], "volatile");
    assert_eq!(m["created_by"], "knowledge");
    assert!(!m["next_review_at"].is_null());
    assert_eq!(m["source_refs"]["evidence"]["weeks"], 4);
}
