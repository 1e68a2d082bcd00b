//! Approval gates declared in fleet files, enforced by the database when a job is written:
//! tiers, subject globs, payload thresholds; the CLI and raw SQL alike.

use crate::support::{s, TestDb};

/// A fleet with a T1 agent, a T2 agent with an outbound subject, and an agent with a
/// subject gate and a stage gate; returns its folder.
fn gated_fleet() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("agentbus-gates-{}", uuid::Uuid::new_v4()));
    let write = |rel: &str, text: &str| {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("fleet.toml", "name = \"g\"\nnamespace = \"default\"\n");
    write("closer/agent.toml", "id = \"closer\"\ntier = \"T1\"\n");
    write(
        "rep/agent.toml",
        "id = \"rep\"\ntier = \"T2\"\noutbound = [\"Send sequence\"]\n",
    );
    write(
        "deals/agent.toml",
        "id = \"deals\"\n\
         [[approval_gates]]\nname = \"proposals\"\nsubject = \"Proposal:*\"\n\
         [[approval_gates]]\nname = \"stage-5\"\npayload_field = \"stage\"\nat_least = 5\n",
    );
    dir
}

fn enqueue(db: &TestDb, agent: &str, subject: &str, payload: &str) -> serde_json::Value {
    db.cli(&[
        "enqueue-job",
        "--target-agent",
        agent,
        "--subject",
        subject,
        "--payload",
        payload,
    ])
    .ok()
}

#[test]
fn gated_jobs_wait_for_approval_whoever_enqueues_them() {
    let db = TestDb::new();
    let dir = gated_fleet();
    db.cli(&["fleet", "sync", dir.to_str().unwrap()]).ok();
    let _ = std::fs::remove_dir_all(&dir);

    let cases = [
        ("closer", "Anything at all", "{}", Some("tier T1")),
        (
            "rep",
            "Send sequence",
            "{}",
            Some("tier T2 (outbound subject)"),
        ),
        ("rep", "Draft sequence", "{}", None),
        ("deals", "Proposal: Acme", "{}", Some("gate proposals")),
        (
            "deals",
            "Review pricing",
            "{\"stage\": 5}",
            Some("gate stage-5"),
        ),
        ("deals", "Review pricing", "{\"stage\": 4}", None),
        ("deals", "Review pricing", "{\"stage\": \"5\"}", None),
        ("nobody", "Proposal: Acme", "{}", None),
    ];
    for (agent, subject, payload, gate) in cases {
        let job = enqueue(&db, agent, subject, payload);
        let want = if gate.is_some() {
            "awaiting_approval"
        } else {
            "queued"
        };
        assert_eq!(job["status"], want, "{agent} {subject} {payload}: {job}");
        assert_eq!(job["approval_gate"].as_str(), gate, "{job}");
        assert_eq!(job["requires_approval"], gate.is_some(), "{job}");
    }

    // Asking for approval on a gated job changes nothing; the gate is still recorded.
    let job = db
        .cli(&[
            "enqueue-job",
            "--target-agent",
            "closer",
            "--subject",
            "x",
            "--requires-approval",
        ])
        .ok();
    assert_eq!(job["status"], "awaiting_approval");
    assert_eq!(job["approval_gate"], "tier T1");

    // The database holds the gate for every writer, psql included.
    let status: String = db.one(
        "insert into jobs (target_agent, job_type, subject) values ('closer', 'reactive', 'raw')
         returning status::text",
    );
    assert_eq!(status, "awaiting_approval");

    // Standing-order runs are declared duties: not gated.
    let status: String = db.one(
        "insert into jobs (target_agent, job_type, subject) values ('closer', 'scheduled', 'sweep')
         returning status::text",
    );
    assert_eq!(status, "queued");

    // Nothing gated is claimable until an operator approves it.
    let claimed = db
        .cli(&[
            "claim-jobs",
            "--lease-owner",
            "d1",
            "--target-agent",
            "closer",
        ])
        .ok();
    let subjects: Vec<&str> = claimed
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["sweep"]);
    let held = enqueue(&db, "closer", "Proposal: Initech", "{}");
    let id = s(&held, "id");
    let approved = db
        .cli(&["approve-job", &id, "--reason", "terms checked"])
        .ok();
    assert_eq!(approved["status"], "queued");
    assert_eq!(approved["approval_gate"], "tier T1");
}

#[test]
fn gates_follow_the_files_and_bad_declarations_name_their_line() {
    let db = TestDb::new();
    let dir = gated_fleet();
    let path = dir.to_str().unwrap().to_string();
    db.cli(&["fleet", "sync", &path]).ok();
    // The closer is no longer T1 and the stage gate goes: sync reports it, jobs follow.
    std::fs::write(
        dir.join("closer/agent.toml"),
        "id = \"closer\"\ntier = \"T3\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("deals/agent.toml"),
        "id = \"deals\"\n[[approval_gates]]\nname = \"proposals\"\nsubject = \"Proposal:*\"\n",
    )
    .unwrap();
    let report = db.cli(&["fleet", "sync", &path, "--format", "json"]).ok();
    let changed = report["changed"].to_string();
    assert!(
        changed.contains("approval_gates") && changed.contains("approval_tier"),
        "{report}"
    );
    assert_eq!(enqueue(&db, "closer", "x", "{}")["status"], "queued");
    assert_eq!(
        enqueue(&db, "deals", "Review", "{\"stage\": 6}")["status"],
        "queued"
    );
    assert_eq!(
        enqueue(&db, "deals", "Proposal: Globex", "{}")["status"],
        "awaiting_approval"
    );

    for (text, line, needle) in [
        ("id = \"deals\"\ntier = \"T9\"\n", 2, "not T1, T2 or T3"),
        (
            "id = \"deals\"\n[[approval_gates]]\nsubject = \"x*\"\n",
            2,
            "needs a name",
        ),
        (
            "id = \"deals\"\n[[approval_gates]]\nname = \"a\"\npayload_field = \"stage\"\n",
            2,
            "go together",
        ),
        (
            "id = \"deals\"\n[[approval_gates]]\nname = \"a\"\n[[approval_gates]]\nname = \"a\"\n",
            5,
            "declared twice",
        ),
        (
            "id = \"deals\"\n[[approval_gates]]\nname = \"a\"\nwhen = \"always\"\n",
            4,
            "unknown key",
        ),
    ] {
        std::fs::write(dir.join("deals/agent.toml"), text).unwrap();
        let out = db.cli(&["fleet", "validate", &path]);
        let file = dir.join("deals/agent.toml");
        out.fails(2, &format!("{}:{line}: ", file.display()));
        assert!(out.stderr.contains(needle), "{text:?}: {}", out.stderr);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
