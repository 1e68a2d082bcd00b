//! Agents that ask for agents and for changes to their own settings: request-agent and
//! request-config-change file a job an operator applies with approve-request (scaffold or
//! edit, validate, sync in one step); refused keys, rejection, and failures half-way.

use super::shipped::fleet_dir;
use super::FleetDir;
use crate::support::{s, TestDb};
use serde_json::Value;
use std::path::Path;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// A copy of agents/assistant in a temporary folder, synced into `db`.
fn assistant(db: &TestDb) -> FleetDir {
    let f = FleetDir::new();
    std::fs::remove_dir_all(&f.0).unwrap();
    copy_dir(&fleet_dir("assistant"), &f.0);
    db.cli(&["fleet", "sync", f.path()]).ok();
    f
}

const AS_PERSONAL: &[(&str, &str)] = &[("AGENTBUS_AGENT", "personal")];

fn request_agent(db: &TestDb, f: &FleetDir, id: &str) -> Value {
    db.cli_with(
        &[
            "request-agent",
            "--fleet",
            f.path(),
            "--id",
            id,
            "--role",
            "Discount scouting for the app",
            "--from-template",
            "sub-agent",
            "--reason",
            "the co-founder asked",
        ],
        AS_PERSONAL,
        None,
    )
    .ok()
}

/// Everything but the events (a refusal adds only an event).
fn rows(db: &TestDb) -> Value {
    let mut snap = db.snapshot();
    snap.as_object_mut().unwrap().remove("events");
    snap
}

#[test]
fn a_requested_agent_is_scaffolded_validated_and_synced_only_after_approval() {
    let db = TestDb::new();
    let f = assistant(&db);
    let req = request_agent(&db, &f, "muqta");
    assert_eq!(req["status"], "awaiting_approval");
    assert_eq!(req["target_agent"], "personal");
    assert_eq!(req["payload"]["template"], "sub-agent");
    let id = s(&req, "id");
    assert!(!f.0.join("muqta").exists(), "nothing before the approval");

    // A plain approval would apply nothing: refused, the request still waits.
    db.cli(&["approve-job", &id]).fails(4, "approve-request");
    // An agent cannot approve its own request.
    db.cli_with(
        &["approve-request", &id, "--fleet", f.path()],
        AS_PERSONAL,
        None,
    )
    .fails(77, "someone else approves it");
    let listed = db
        .cli(&[
            "list-approvals",
            "--namespace",
            "assistant",
            "--format",
            "json",
        ])
        .ok();
    assert_eq!(listed[0]["id"], id.as_str());

    let applied = db
        .cli(&[
            "--actor",
            "operator:ann",
            "approve-request",
            &id,
            "--fleet",
            f.path(),
            "--reason",
            "ok for a month",
        ])
        .ok();
    assert_eq!(applied["applied"], true);
    assert_eq!(
        applied["job"]["status"], "queued",
        "back to the asking agent"
    );
    let toml = std::fs::read_to_string(f.0.join("muqta/agent.toml")).unwrap();
    assert!(toml.contains("id = \"muqta\""), "{toml}");
    assert!(
        toml.contains("role = \"Discount scouting for the app\""),
        "{toml}"
    );
    let md = std::fs::read_to_string(f.0.join("muqta/AGENTS.md")).unwrap();
    assert!(md.contains("Made at the request of `personal`"), "{md}");
    let agents: i64 =
        db.one("select count(*) from agents where namespace = 'assistant' and agent_id = 'muqta'");
    assert_eq!(agents, 1);
    db.cli(&["fleet", "validate", f.path()]).ok();
    // The trace holds the request, the approval and its application.
    let trace = db.cli(&["trace", &id, "--format", "json"]).ok().to_string();
    assert!(trace.contains("approve-job: ok for a month"), "{trace}");
    assert!(trace.contains("agentbus.request.applied"), "{trace}");
    // Applied once: a second approval finds nothing to approve, and a new request for
    // the same id is refused.
    db.cli(&["approve-request", &id, "--fleet", f.path()])
        .fails(4, "");
    db.cli_with(
        &[
            "request-agent",
            "--fleet",
            f.path(),
            "--id",
            "muqta",
            "--role",
            "again",
            "--from-template",
            "sub-agent",
        ],
        AS_PERSONAL,
        None,
    )
    .fails(4, "already has muqta");
}

#[test]
fn a_rejected_request_creates_nothing() {
    let db = TestDb::new();
    let f = assistant(&db);
    let id = s(&request_agent(&db, &f, "delivery"), "id");
    let rejected = db
        .cli(&["reject-job", &id, "--reason", "not this quarter"])
        .ok();
    assert_eq!(rejected["status"], "cancelled");
    db.cli(&["approve-request", &id, "--fleet", f.path()])
        .fails(4, "");
    assert!(!f.0.join("delivery").exists());
    let agents: i64 = db.one("select count(*) from agents where agent_id = 'delivery'");
    assert_eq!(agents, 0);
}

#[test]
fn an_agent_may_ask_only_for_the_keys_its_fleet_allows_and_only_for_itself() {
    let db = TestDb::new();
    let f = assistant(&db);
    let before = rows(&db);
    let ask = |agent: &str, setting: &str| {
        db.cli_with(
            &[
                "request-config-change",
                "--fleet",
                f.path(),
                "--agent",
                agent,
                "--set",
                setting,
            ],
            AS_PERSONAL,
            None,
        )
    };
    ask("personal", "wake.command=[\"sh\",\"-c\",\"curl evil\"]")
        .fails(77, "never changed by request");
    ask("personal", "handoffs=[\"muqta\"]").fails(77, "never changed by request");
    ask("personal", "approval_gates=[]").fails(77, "never changed by request");
    ask("personal", "max_concurrency=4").fails(77, "does not let agents change max_concurrency");
    ask("other", "role=x").fails(77, "only its own settings");
    ask("personal", "standing_orders.nope.cron=0 9 * * *").fails(3, "no standing order \"nope\"");
    ask("personal", "standing_orders.inbox-triage.enabled=maybe").fails(2, "true or false");
    assert_eq!(rows(&db), before, "a refused request writes nothing");
    let refusals: i64 = db.one(
        "select count(*) from events where topic = 'guardrail.refused' and payload->>'command' = 'request-config-change'",
    );
    assert!(refusals >= 5, "each refusal is recorded: {refusals}");

    // Allowed: the morning briefing moves to 07:30; the file keeps its comments.
    let req = ask(
        "personal",
        "standing_orders.morning-briefing.cron=30 7 * * *",
    )
    .ok();
    assert_eq!(req["status"], "awaiting_approval");
    let applied = db
        .cli(&["approve-request", &s(&req, "id"), "--fleet", f.path()])
        .ok();
    assert_eq!(applied["applied"], true);
    let toml = std::fs::read_to_string(f.0.join("personal/agent.toml")).unwrap();
    assert!(toml.contains("cron = \"30 7 * * *\""), "{toml}");
    assert!(
        toml.contains("# Personal assistant: every key"),
        "comments kept"
    );
    let cron: String = db.one(
        "select cron from standing_orders where namespace = 'assistant' and order_name = 'morning-briefing'",
    );
    assert_eq!(cron, "30 7 * * *");
}

#[test]
fn an_approval_that_fails_half_way_leaves_the_files_and_the_ledger_as_they_were() {
    let db = TestDb::new();
    let f = assistant(&db);
    // A template that renders into an agent.toml the fleet rejects.
    f.write(
        "templates/broken/agent.toml",
        "id = {{id}}\nmax_concurrency = 0\n[wake]\nmode = \"hook\"\n",
    );
    let req = db
        .cli_with(
            &[
                "request-agent",
                "--fleet",
                f.path(),
                "--id",
                "broken-one",
                "--role",
                "r",
                "--from-template",
                "broken",
            ],
            AS_PERSONAL,
            None,
        )
        .ok();
    let id = s(&req, "id");
    let before = rows(&db);
    db.cli(&["approve-request", &id, "--fleet", f.path()])
        .fails(2, "max_concurrency");
    assert!(!f.0.join("broken-one").exists(), "the folder is removed");
    assert_eq!(rows(&db), before, "the approval is rolled back");

    // The files are written and valid, but the database refuses the sync: the folder goes.
    let good = s(&request_agent(&db, &f, "second"), "id");
    db.client()
        .batch_execute(
            "create function no_new_agents() returns trigger language plpgsql as $$
             begin raise exception 'injected failure'; end $$;
             create trigger no_new_agents before insert on agents
               for each row execute function no_new_agents();",
        )
        .unwrap();
    let before = rows(&db);
    let failed = db.cli(&["approve-request", &good, "--fleet", f.path()]);
    assert_ne!(failed.code, 0, "{}", failed.stderr);
    assert!(!f.0.join("second").exists(), "the folder is removed");
    assert_eq!(rows(&db), before);
    let status: String = db.one(&format!(
        "select status::text from jobs where id = '{good}'"
    ));
    assert_eq!(status, "awaiting_approval");
}

#[test]
fn a_seed_shaped_agent_folder_is_imported_without_its_secrets() {
    let db = TestDb::new();
    let f = assistant(&db);
    let src = FleetDir::new();
    src.write(
        "andy/agent.md",
        "---\nname: Andy\nmodel: claude-sonnet-4-6\nversion: 1.0\nmax_tokens: 8192\ntemperature: 0.7\n---\n\n# Identity\nYou are Andy, a personal planner.\n\n# Boundaries\nNever spend money.\n",
    );
    src.write(
        "andy/config.yaml",
        "tools:\n  - id: telegram-bot\n    type: mcp\n    server: ./mcp/telegram-bot\n    config:\n      bot_token: ${TELEGRAM_BOT_TOKEN}\n      fallback_token: 999:literal-secret-in-config\n    enabled: true\n  - id: file-ops\n    type: cli\n    commands: [read_file, write_file]\n    enabled: true\nschedules:\n  - id: morning-briefing\n    cron: \"0 8 * * *\"\n    action: \"Calendar today + Notion deadlines + Telegram summary\"\n    enabled: true\n  - id: telegram-monitor\n    cron: \"*/5 * * * *\"\n    action: \"Check monitored chats\"\n    enabled: false\n",
    );
    src.write("andy/.env", "TELEGRAM_BOT_TOKEN=123456:env-secret-value\n");
    src.write("andy/memory/context.md", "# Current projects\n- launch\n");
    src.write("andy/memory/people.md", "# People\n");
    let andy = src.0.join("andy");
    let out = db
        .cli(&[
            "fleet",
            "import-folder",
            andy.to_str().unwrap(),
            "--into",
            f.path(),
        ])
        .ok();
    assert_eq!(out["id"], "andy");
    assert_eq!(out["standing_orders"], 2);
    assert_eq!(out["tools"], 2);
    assert_eq!(out["not_read"], serde_json::json!([".env"]));
    let dropped = out["dropped"].to_string();
    for what in ["temperature", "max_tokens", "tools.telegram-bot.config"] {
        assert!(dropped.contains(what), "{dropped}");
    }
    // No secret anywhere: not in the output, not in the files.
    let mut all = out.to_string();
    for file in [
        "agent.toml",
        "AGENTS.md",
        "MEMORY.md",
        "memory/context.md",
        "memory/people.md",
    ] {
        all.push_str(&std::fs::read_to_string(f.0.join("andy").join(file)).unwrap());
    }
    for secret in [
        "env-secret-value",
        "literal-secret-in-config",
        "TELEGRAM_BOT_TOKEN",
    ] {
        assert!(!all.contains(secret), "{secret} leaked");
    }
    let toml = std::fs::read_to_string(f.0.join("andy/agent.toml")).unwrap();
    assert!(
        toml.contains("model = \"anthropic/claude-sonnet-4-6\""),
        "{toml}"
    );
    assert!(toml.contains("enabled = false"), "{toml}");
    // The fleet syncs with it, twice without change, in the fleet's (the user's) zone.
    db.cli(&["fleet", "sync", f.path()]).ok();
    let again = db
        .cli(&["fleet", "sync", f.path(), "--format", "json"])
        .ok();
    assert_eq!(again["changed"], serde_json::json!([]));
    let zone: String = db.one(
        "select timezone from standing_orders where namespace = 'assistant' and agent_id = 'andy' and order_name = 'morning-briefing'",
    );
    assert_eq!(zone, "Europe/Moscow");
    // Importing again, or over an existing agent, writes nothing.
    db.cli(&[
        "fleet",
        "import-folder",
        andy.to_str().unwrap(),
        "--into",
        f.path(),
    ])
    .fails(4, "already exists");
}

#[test]
fn a_fleet_cannot_make_wake_settings_or_gates_requestable() {
    let db = TestDb::new();
    let f = assistant(&db);
    let fleet = std::fs::read_to_string(f.0.join("fleet.toml")).unwrap();
    f.write(
        "fleet.toml",
        &fleet.replace(
            "config_keys = [\"role\"",
            "config_keys = [\"wake.command\", \"approval_gates\", \"role\"",
        ),
    );
    let out = db.cli(&["fleet", "validate", f.path()]);
    out.fails(2, "\"wake.command\" cannot be requested");
    assert!(
        out.stderr
            .contains("\"approval_gates\" cannot be requested"),
        "{}",
        out.stderr
    );
}

#[test]
fn with_the_guardrails_on_the_asking_agent_cannot_apply_and_an_operator_login_can() {
    let mut g = crate::support::logins::Guarded::new();
    let f = assistant(&g.db);
    let agent = g.grant("andy", "agent", &["assistant"], Some("personal"));
    let other = g.grant("intruder", "agent", &["assistant"], Some("personal"));
    let operator = g.grant("ops", "operator", &["assistant"], None);
    let db = &g.db;
    // The bound login files the request as itself, whatever it claims to be.
    let req = db
        .cli_as(
            &agent,
            &[
                "request-config-change",
                "--fleet",
                f.path(),
                "--agent",
                "personal",
                "--set",
                "standing_orders.evening-review.cron=0 22 * * *",
            ],
            &[],
        )
        .ok();
    assert_eq!(req["source_agent"], "personal");
    let id = s(&req, "id");
    // Neither it nor another agent login can approve; PostgreSQL refuses the approval.
    db.cli_as(
        &other,
        &[
            "--actor",
            "operator:x",
            "approve-request",
            &id,
            "--fleet",
            f.path(),
        ],
        &[],
    )
    .fails(77, "");
    let cron: String = db.one(
        "select cron from standing_orders where namespace = 'assistant' and order_name = 'evening-review'",
    );
    assert_eq!(cron, "0 21 * * *", "nothing applied");
    let toml = std::fs::read_to_string(f.0.join("personal/agent.toml")).unwrap();
    assert!(
        toml.contains("cron = \"0 21 * * *\""),
        "the file was put back"
    );
    let applied = db
        .cli_as(
            &operator,
            &["approve-request", &id, "--fleet", f.path()],
            &[],
        )
        .ok();
    assert_eq!(applied["applied"], true);
    let cron: String = db.one(
        "select cron from standing_orders where namespace = 'assistant' and order_name = 'evening-review'",
    );
    assert_eq!(cron, "0 22 * * *");
}
