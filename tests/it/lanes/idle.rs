//! Idle-time thinking ([idle]): a window opens only when the agent is quiet, inside its
//! hours, under its day's windows and with nothing urgent queued; never two at once, even
//! from concurrent supervisors; its only outputs are the three lanes; an agent whose
//! windows produce nothing promoted thinks half as often; the digest says what came of it.

use crate::support::{s, Scratch, TestDb};
use serde_json::Value;

fn fleet(db: &TestDb, idle: &str) -> Scratch {
    let dir = Scratch::new();
    std::fs::write(
        dir.0.join("fleet.toml"),
        "name = \"t\"\n[defaults.budgets]\nmax_memory_candidates_per_day = 1\n",
    )
    .unwrap();
    for (agent, extra) in [("research", idle), ("coordinator", "")] {
        std::fs::create_dir_all(dir.0.join(agent)).unwrap();
        std::fs::write(
            dir.0.join(agent).join("agent.toml"),
            format!(
                "id = \"{agent}\"\nrole = \"{agent} role\"\nhandoffs = [\"coordinator\"]\n{extra}"
            ),
        )
        .unwrap();
    }
    db.cli(&["fleet", "sync", dir.0.to_str().unwrap()]).ok();
    dir
}

const IDLE: &str = "[idle]\nquiet_for = \"1s\"\nmax_per_day = 2\nmax_runtime = \"20m\"\nquestions = [\"What changed that nobody has acted on yet?\", \"What belief might now be wrong?\"]\n";

fn fire(db: &TestDb) -> Vec<String> {
    let mut c = db.client();
    let mut tx = c.transaction().unwrap();
    let rows = tx
        .query(
            "select agent_id, question from fire_idle_thinking('default')",
            &[],
        )
        .unwrap();
    tx.commit().unwrap();
    rows.iter().map(|r| r.get::<_, String>(1)).collect()
}

fn skips(db: &TestDb) -> Value {
    db.one("select coalesce(jsonb_object_agg(reason, checks), '{}') from idle_skips where agent_id = 'research'")
}

/// Lets the agent's quiet_for (1 s here) pass.
fn quiet() {
    std::thread::sleep(std::time::Duration::from_millis(1100));
}

/// Claims research's window and closes it with --no-work; then waits out quiet_for.
fn think_and_close(db: &TestDb, id: &str) {
    let (claimed, token) = db.claim_one("sup", Some("research"));
    assert_eq!(claimed, id);
    db.cli(&[
        "complete-job",
        id,
        "--lease-token",
        &token,
        "--no-work",
        "--summary",
        "nothing new",
    ])
    .ok();
    quiet();
}

fn window(db: &TestDb) -> Value {
    db.one("select to_jsonb(j) from jobs j where job_type = 'idle.think' order by created_at desc limit 1")
}

#[test]
fn a_window_opens_only_when_quiet_in_hours_under_budget_and_nothing_urgent() {
    let db = TestDb::new();
    let dir = fleet(&db, IDLE);
    // Quiet (no work ever): one window, the first question, with context to think with.
    assert_eq!(fire(&db), ["What changed that nobody has acted on yet?"]);
    let w = window(&db);
    assert_eq!(w["target_agent"], "research");
    assert_eq!(w["priority"], 1);
    assert_eq!(w["payload"]["role"], "research role");
    assert_eq!(w["payload"]["max_runtime_seconds"], 1200);
    assert_eq!(
        w["payload"]["question"],
        "What changed that nobody has acted on yet?"
    );
    for key in [
        "events",
        "open_ideas",
        "open_opportunities",
        "previous_windows",
        "outputs",
    ] {
        assert!(w["payload"][key].is_array(), "{key}: {w}");
    }
    assert!(fire(&db).is_empty(), "never two windows at once");
    let id = s(&w, "id");

    // Inside the window: ideas yes, work for others no.
    let inside = [("AGENTBUS_JOB_ID", id.as_str())];
    db.cli_with(
        &[
            "enqueue-job",
            "--target-agent",
            "coordinator",
            "--subject",
            "do this",
        ],
        &inside,
        None,
    )
    .fails(77, "hands out no work");
    db.cli_with(
        &[
            "create-idea",
            "--source-agent",
            "research",
            "--theme",
            "t",
            "--title",
            "Vendors raise prices in March",
            "--body",
            "three renewals mention it",
        ],
        &inside,
        None,
    )
    .ok();
    think_and_close(&db, &id);

    // Busy: work of its own, or finished too recently.
    db.enqueue("research", "real work", &[]);
    assert!(fire(&db).is_empty());
    assert_eq!(skips(&db)["busy"], 1);
    let real = db.one::<uuid::Uuid>("select id from jobs where subject = 'real work'");
    db.cli(&[
        "cancel-job",
        &real.to_string(),
        "--reason",
        "done elsewhere",
    ])
    .ok();
    quiet();

    // Urgent work anywhere in the namespace waits first.
    let urgent = s(
        &db.cli(&[
            "enqueue-job",
            "--target-agent",
            "coordinator",
            "--subject",
            "outage",
            "--priority",
            "950",
        ])
        .ok(),
        "id",
    );
    assert!(fire(&db).is_empty());
    assert_eq!(skips(&db)["urgent"], 1);
    db.cli(&["cancel-job", &urgent, "--reason", "handled"]).ok();

    // Outside its hours.
    let hour = chrono::Utc::now()
        .format("%H")
        .to_string()
        .parse::<u32>()
        .unwrap();
    let hours = format!("{:02}:00-{:02}:00", (hour + 2) % 24, (hour + 3) % 24);
    let toml = format!("{IDLE}hours = \"{hours}\"\ntimezone = \"UTC\"\n");
    std::fs::write(
        dir.0.join("research/agent.toml"),
        format!(
            "id = \"research\"\nrole = \"research role\"\nhandoffs = [\"coordinator\"]\n{toml}"
        ),
    )
    .unwrap();
    db.cli(&["fleet", "sync", dir.0.to_str().unwrap()]).ok();
    assert!(fire(&db).is_empty());
    assert_eq!(skips(&db)["hours"], 1);
    std::fs::write(
        dir.0.join("research/agent.toml"),
        format!(
            "id = \"research\"\nrole = \"research role\"\nhandoffs = [\"coordinator\"]\n{IDLE}"
        ),
    )
    .unwrap();
    db.cli(&["fleet", "sync", dir.0.to_str().unwrap()]).ok();

    // The second window asks the next question; the third is over the day's two.
    assert_eq!(fire(&db), ["What belief might now be wrong?"]);
    think_and_close(&db, &s(&window(&db), "id"));
    assert!(fire(&db).is_empty());
    assert_eq!(skips(&db)["budget"], 1);

    // Paused agents do not think.
    db.cli(&["pause-agent", "research", "--reason", "quiet week"])
        .ok();
    assert!(fire(&db).is_empty());
    assert_eq!(skips(&db)["paused"], 1);

    // The digest says what came of it and why windows did not open.
    let digest = db
        .cli(&["digest", "thinking", "--since", "1d", "--format", "table"])
        .ok_text();
    for needle in [
        "## research",
        "windows: 2 (2 with nothing worth filing)",
        "filed: 1 idea(s)",
        "Vendors raise prices in March",
        "busy 1",
        "urgent 1",
    ] {
        assert!(digest.contains(needle), "{needle}: {digest}");
    }
    let json = db.cli(&["digest", "thinking", "--format", "json"]).ok();
    assert_eq!(json["agents"][0]["ideas"], 1);
}

#[test]
fn concurrent_passes_open_one_window() {
    let db = TestDb::new();
    let _dir = fleet(&db, IDLE);
    let opened: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..3).map(|_| scope.spawn(|| fire(&db).len())).collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(opened, 1);
    let windows: i64 = db.one("select count(*) from jobs where job_type = 'idle.think'");
    assert_eq!(windows, 1);
}

#[test]
fn an_agent_whose_thinking_is_never_promoted_thinks_half_as_often_until_it_is() {
    let db = TestDb::new();
    let _dir = fleet(&db, IDLE);
    // A window eight days ago that produced an idea nobody promoted.
    db.client()
        .batch_execute(
            "insert into jobs (target_agent, job_type, subject, status, created_at, completed_at, priority)
             values ('research', 'idle.think', 'idle.think: old', 'succeeded',
                     now() - interval '8 days', now() - interval '8 days' + interval '20 minutes', 1);",
        )
        .unwrap();
    // Max 2 a day, halved to 1: one window, then the day's budget.
    assert_eq!(fire(&db).len(), 1);
    let status = db.cli(&["status", "--format", "json"]).ok();
    let research = status["idle"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["agent"] == "research")
        .cloned()
        .unwrap();
    assert_eq!(research["allowed_today"], 1, "{research}");
    assert!(research["halved_since"].is_string());
    let table = db.cli(&["status", "--format", "table"]).ok_text();
    assert!(table.contains("research 1/1 (halved)"), "{table}");
    let halved: String = db.one(
        "select payload::text from events where topic = 'idle.halved' and source_agent = 'research'",
    );
    assert!(halved.contains("\"max_per_day\": 1"), "{halved}");
    let id = s(&window(&db), "id");
    // This window's idea is promoted: back to the full rate.
    let idea = s(
        &db.cli_with(
            &[
                "create-idea",
                "--source-agent",
                "research",
                "--theme",
                "t",
                "--title",
                "worth it",
                "--body",
                "b",
            ],
            &[("AGENTBUS_JOB_ID", id.as_str())],
            None,
        )
        .ok(),
        "id",
    );
    think_and_close(&db, &id);
    db.client()
        .batch_execute(&format!(
            "update jobs set created_at = now() - interval '20 minutes' where id = '{id}';
             update ideas set status = 'promoted_to_opportunity', created_at = now() - interval '18 minutes'
              where id = '{idea}'"
        ))
        .unwrap();
    assert_eq!(
        fire(&db).len(),
        1,
        "the second window of the day opens again"
    );
    let restored: i64 = db.one(
        "select count(*) from events where topic = 'idle.restored' and source_agent = 'research'",
    );
    assert_eq!(restored, 1);
    let status = db.cli(&["digest", "thinking", "--format", "json"]).ok();
    assert!(status["agents"][0]["halved_since"].is_null());
}

#[test]
fn memory_candidates_have_a_daily_budget_and_idle_settings_are_checked() {
    let db = TestDb::new();
    let dir = fleet(&db, IDLE);
    let file = |title: &str| {
        db.cli(&[
            "create-memory-candidate",
            "--source-agent",
            "research",
            "--kind",
            "lesson",
            "--scope",
            "agent",
            "--subject-key",
            "research",
            "--title",
            title,
            "--body",
            "b",
            "--source-refs",
            r#"{"jobs": ["x"]}"#,
            "--confidence-score",
            "3",
        ])
    };
    file("first").ok();
    file("second").fails(4, "budget: research may file 1 memory candidate(s) per day");

    std::fs::write(
        dir.0.join("research/agent.toml"),
        "id = \"research\"\n[idle]\nquiet_for = \"soon\"\nhours = \"9-5\"\nmax_per_day = 99\ntimezone = \"Mars/Olympus\"\nquestions = []\n",
    )
    .unwrap();
    let out = db.cli(&["fleet", "validate", dir.0.to_str().unwrap()]);
    assert_eq!(out.code, 2);
    for needle in [
        "quiet_for \"soon\" is not a duration",
        "hours \"9-5\" is not HH:MM-HH:MM",
        "max_per_day must be 1 to 48",
        "Mars/Olympus",
        "idle needs questions",
    ] {
        assert!(out.stderr.contains(needle), "{needle}: {}", out.stderr);
    }
}
