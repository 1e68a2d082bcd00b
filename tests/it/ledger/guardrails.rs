//! Guardrails declared in fleet files and enforced by the database when a job is written:
//! hand-offs, and approval gates (tiers, subject globs, payload thresholds); through the
//! CLI and raw SQL alike.

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

#[test]
fn hand_offs_outside_the_fleets_list_are_refused_and_recorded() {
    let db = TestDb::new();
    let dir = std::env::temp_dir().join(format!("agentbus-handoffs-{}", uuid::Uuid::new_v4()));
    for (rel, text) in [
        ("fleet.toml", "name = \"h\"\nnamespace = \"default\"\n"),
        (
            "scout/agent.toml",
            "id = \"scout\"\nhandoffs = [\"writer\"]\n",
        ),
        (
            "writer/agent.toml",
            "id = \"writer\"\nhandoffs = [\"rep\"]\n",
        ),
        ("rep/agent.toml", "id = \"rep\"\n"),
    ] {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    db.cli(&["fleet", "sync", dir.to_str().unwrap()]).ok();
    let _ = std::fs::remove_dir_all(&dir);

    let scout_job = db.enqueue("scout", "research", &[]);
    let in_scouts_run = [
        ("AGENTBUS_JOB_ID", scout_job.as_str()),
        ("AGENTBUS_AGENT", "scout"),
    ];
    let follow = |target: &str| {
        db.cli_with(
            &[
                "enqueue-job",
                "--target-agent",
                target,
                "--subject",
                "next step",
            ],
            &in_scouts_run,
            None,
        )
    };
    // Listed, and the agent itself: allowed.
    assert_eq!(follow("writer").ok()["parent_job_id"], scout_job.as_str());
    follow("scout").ok();

    // Not listed: exit 77, no job, one guardrail.refused event naming the login.
    let before: i64 = db.one("select count(*) from jobs");
    let out = follow("rep");
    out.fails(
        77,
        "hand-off refused: scout may hand work only to writer, not to rep",
    );
    assert_eq!(db.one::<i64>("select count(*) from jobs"), before);
    let event: serde_json::Value =
        db.one("select payload from events where topic = 'guardrail.refused'");
    assert_eq!(event["rule"], "handoff");
    assert_eq!(event["from"], "scout");
    assert_eq!(event["to"], "rep");
    assert_eq!(event["claimed_actor"], "scout");
    assert!(
        event["login"].as_str().is_some_and(|l| !l.is_empty()),
        "{event}"
    );

    // The audit reports it.
    let audit = db.cli(&["audit", "--format", "json"]).ok();
    let refused: Vec<&serde_json::Value> = audit["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "guardrail_refused")
        .collect();
    assert_eq!(refused.len(), 1, "{audit}");
    assert_eq!(refused[0]["agent"], "scout");

    // The same rule holds for a raw insert.
    let mut c = db.client();
    let err = c
        .execute(
            "insert into jobs (target_agent, job_type, subject, parent_job_id)
             values ('rep', 'reactive', 'raw', $1::text::uuid)",
            &[&scout_job],
        )
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("AB003"), "{err}");

    // Not a hand-off: an operator's job without a parent, and agents no fleet declared.
    db.enqueue("rep", "from an operator", &[]);
    let stray = db.enqueue("stray", "undeclared agent", &[]);
    db.cli_with(
        &[
            "enqueue-job",
            "--target-agent",
            "rep",
            "--subject",
            "anyone",
        ],
        &[("AGENTBUS_JOB_ID", stray.as_str())],
        None,
    )
    .ok();
}
