//! fleet validate and fleet sync against real files and a real database.

use super::{validate, FleetDir};
use crate::support::TestDb;
use serde_json::Value;

#[test]
fn a_good_fleet_validates() {
    let db = TestDb::new();
    let f = FleetDir::new();
    let out = validate(&db, &f.0).ok();
    assert_eq!(out["valid"], true);
    assert_eq!(out["agents"], 2);
    assert_eq!(out["standing_orders"], 2);
}

#[test]
fn every_error_class_is_reported_with_its_file_and_line() {
    let db = TestDb::new();
    let cases: &[(&str, &str, usize, &str)] = &[
        ("scout/agent.toml", "id = \"scout\"\ncolour = \"blue\"\n", 2, "unknown key \"colour\""),
        ("scout/agent.toml", "id = \"scout\"\n\n[[standing_orders]]\nname = \"x\"\ncron = \"0 25 * * *\"\nmessage = \"m\"\n", 5, "not valid"),
        ("scout/agent.toml", "id = \"scout\"\n[[standing_orders]]\nname = \"x\"\ncron = \"* * * *\"\nmessage = \"m\"\n", 4, "has 4 fields"),
        ("scout/agent.toml", "id = \"scout\"\n[[standing_orders]]\nname = \"x\"\ncron = \"0 9 * * *\"\ntimezone = \"Mars/Olympus\"\nmessage = \"m\"\n", 5, "unknown time zone"),
        ("scout/agent.toml", "id = \"scout\"\n[[standing_orders]]\nname = \"x\"\ncron = \"0 9 * * *\"\nmessage = \"m\"\n[[standing_orders]]\nname = \"x\"\ncron = \"0 9 * * *\"\nmessage = \"m\"\n", 7, "declared twice"),
        ("scout/agent.toml", "id = \"scout\"\nhandoffs = [\"closer\"]\n", 2, "hand-off target \"closer\""),
        ("scout/agent.toml", "id = \"scout\"\n[wake]\nmode = \"pigeon\"\n", 3, "not hook or exec"),
        ("scout/agent.toml", "id = \"scout\"\n[wake]\nmode = \"exec\"\n", 2, "needs command"),
        ("scout/agent.toml", "id = \"scout\"\nmax_concurrency = \"two\"\n", 2, "positive integer"),
        ("scout/agent.toml", "id = \"scout\"\nname = \"Scout\n", 2, "not valid TOML"),
        ("scout/agent.toml", "id = \"writer\"\n", 1, "differs from its folder"),
        ("scout/agent.toml", "id = \"scout\"\n[[standing_orders]]\nname = \"x\"\ncron = \"0 9 * * *\"\nmessage = \"m\"\nfired_by = \"cron\"\n", 6, "not supervisor or external"),
        ("fleet.toml", "name = \"gtm\"\n[defaults]\ntimezone = \"Nowhere\"\n", 3, "unknown time zone"),
        ("fleet.toml", "name = \"gtm\"\nnamespce = \"x\"\n", 2, "unknown key \"namespce\""),
    ];
    for (file, text, line, needle) in cases {
        let f = FleetDir::new();
        f.write(file, text);
        let out = validate(&db, &f.0);
        let expected = format!("{}:{line}: ", f.file(file));
        out.fails(2, &expected);
        assert!(
            out.stderr.contains(needle),
            "{file} {text:?}: {}",
            out.stderr
        );
    }
}

#[test]
fn duplicate_agent_ids_are_reported() {
    let db = TestDb::new();
    let f = FleetDir::new();
    f.write("writer2/agent.toml", "id = \"writer\"\n");
    let out = validate(&db, &f.0);
    out.fails(2, "is already used by");
    assert!(
        out.stderr
            .contains(&format!("{}:1:", f.file("writer2/agent.toml"))),
        "{}",
        out.stderr
    );
}

#[test]
fn a_folder_without_fleet_toml_is_not_found() {
    let db = TestDb::new();
    let dir = std::env::temp_dir().join(format!("agentbus-nofleet-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    validate(&db, &dir).fails(3, "has no fleet.toml");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn sync_is_idempotent_and_reports_what_changed() {
    let db = TestDb::new();
    let f = FleetDir::new();
    let first = db.cli(&["fleet", "sync", f.path()]).ok();
    assert_eq!(first["added"].as_array().unwrap().len(), 4, "{first}");
    let scout: Value = db.one("select to_jsonb(a) from agents a where agent_id = 'scout'");
    assert_eq!(scout["wake_mode"], "hook");
    assert_eq!(scout["hook_url"], "http://127.0.0.1:18789/hooks/agent");
    assert_eq!(scout["hook_token_env"], "OPENCLAW_HOOKS_TOKEN");
    assert_eq!(scout["hook_timeout_seconds"], 300);
    assert_eq!(scout["max_concurrency"], 1, "fleet default");
    assert_eq!(scout["handoffs"], serde_json::json!(["writer"]));
    let order: Value =
        db.one("select to_jsonb(s) from standing_orders s where order_name = 'weekly-review'");
    assert_eq!(order["fired_by"], "external");
    assert_eq!(order["catch_up"], "run_once");
    assert_eq!(order["timezone"], "Europe/Berlin");
    assert_eq!(order["message"], "Review the week's prospects.\n");
    assert!(
        order["source"]
            .as_str()
            .unwrap()
            .ends_with("scout/agent.toml:15"),
        "{order}"
    );

    let before = db.snapshot();
    let second = db.cli(&["fleet", "sync", f.path()]).ok();
    assert_eq!(second["added"], serde_json::json!([]));
    assert_eq!(second["changed"], serde_json::json!([]));
    assert_eq!(second["disabled"], serde_json::json!([]));
    assert_eq!(second["unchanged"], 4);
    assert_eq!(db.snapshot(), before, "a second sync writes nothing");

    // A change, a removal, and an agent gone from the files.
    f.write(
        "scout/agent.toml",
        "id = \"scout\"\nmax_concurrency = 3\n\n[wake]\nmode = \"hook\"\ntimeout_seconds = 300\n\n[[standing_orders]]\nname = \"prospect-scan\"\ncron = \"0 * * * *\"\nmessage = \"Run the prospect scan\"\n",
    );
    std::fs::remove_dir_all(f.0.join("writer")).unwrap();
    let third = db.cli(&["fleet", "sync", f.path()]).ok();
    let changed: Vec<(String, Value)> = third["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap().to_string(), c["fields"].clone()))
        .collect();
    assert!(
        changed.contains(&(
            "scout".into(),
            serde_json::json!(["handoffs", "max_concurrency", "name", "role"])
        )),
        "{third}"
    );
    assert!(
        changed.contains(&("scout/prospect-scan".into(), serde_json::json!(["cron"]))),
        "{third}"
    );
    let disabled: Vec<&str> = third["disabled"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(disabled, ["scout/weekly-review", "writer"]);
    let kept: Value =
        db.one("select to_jsonb(s) from standing_orders s where order_name = 'weekly-review'");
    assert_eq!(kept["enabled"], false, "disabled, not deleted");
    assert!(!kept["removed_at"].is_null());
    let writer: Value = db.one("select to_jsonb(a) from agents a where agent_id = 'writer'");
    assert_eq!(writer["paused"], true);
    assert_eq!(writer["paused_reason"], "removed from fleet gtm");
}

#[test]
fn an_invalid_fleet_is_not_synced() {
    let db = TestDb::new();
    let f = FleetDir::new();
    f.write("scout/agent.toml", "id = \"scout\"\ncolour = \"blue\"\n");
    let before = db.snapshot();
    db.cli(&["fleet", "sync", f.path()]).fails(2, "unknown key");
    assert_eq!(db.snapshot(), before, "nothing written");
}

#[test]
fn concurrent_syncs_add_each_agent_once() {
    let db = TestDb::new();
    let f = FleetDir::new();
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let url = db.url.clone();
            let dir = f.path().to_string();
            std::thread::spawn(move || {
                crate::support::run_cli(
                    &["fleet", "sync", &dir],
                    &[("DATABASE_URL", url.as_str())],
                    None,
                )
            })
        })
        .collect();
    let mut added = 0;
    for h in handles {
        let out = h.join().unwrap();
        assert_eq!(out.code, 0, "{}", out.stderr);
        added += out.json()["added"].as_array().unwrap().len();
    }
    assert_eq!(added, 4, "each agent and order added by exactly one sync");
}

#[test]
fn agent_new_scaffolds_a_folder_that_validates_and_syncs() {
    let db = TestDb::new();
    let f = FleetDir::new();
    let target = f.0.join("closer");
    let out = db
        .cli(&[
            "agent",
            "new",
            target.to_str().unwrap(),
            "--role",
            "Close qualified deals",
            "--wake",
            "exec",
        ])
        .ok();
    let files: Vec<&str> = out["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(files.len(), 4);
    for f in ["agent.toml", "AGENTS.md", "HEARTBEAT.md", "MEMORY.md"] {
        assert!(target.join(f).is_file(), "{f} missing");
    }
    let agents_md = std::fs::read_to_string(target.join("AGENTS.md")).unwrap();
    assert!(agents_md.contains("agentbus complete-job"), "{agents_md}");
    let valid = validate(&db, &f.0).ok();
    assert_eq!(valid["agents"], 3);
    let synced = db.cli(&["fleet", "sync", f.path()]).ok();
    assert!(
        synced["added"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == "closer"),
        "{synced}"
    );
    let closer: Value = db.one("select to_jsonb(a) from agents a where agent_id = 'closer'");
    assert_eq!(closer["name"], "Closer");
    assert_eq!(closer["role"], "Close qualified deals");
    assert_eq!(closer["wake_mode"], "exec");
}

#[test]
fn agent_new_refuses_bad_requests_and_writes_nothing() {
    let db = TestDb::new();
    let f = FleetDir::new();
    let listing = || {
        let mut v: Vec<String> = std::fs::read_dir(&f.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let before = listing();
    let scout_before = std::fs::read_to_string(f.0.join("scout/agent.toml")).unwrap();
    let p = |id: &str| f.0.join(id).display().to_string();
    db.cli(&["agent", "new", &p("scout"), "--role", "x"])
        .fails(4, "already exists");
    db.cli(&["agent", "new", &p("Bad Id"), "--role", "x"])
        .fails(2, "may hold only");
    db.cli(&["agent", "new", &p("closer")]).fails(2, "--role");
    db.cli(&["agent", "new", &p("closer"), "--role", ""])
        .fails(2, "--role");
    db.cli(&[
        "agent",
        "new",
        &p("closer"),
        "--role",
        "x",
        "--wake",
        "pigeon",
    ])
    .fails(2, "pigeon");
    let nowhere = std::env::temp_dir().join(format!("agentbus-nofleet-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&nowhere).unwrap();
    db.cli(&[
        "agent",
        "new",
        nowhere.join("closer").to_str().unwrap(),
        "--role",
        "x",
    ])
    .fails(3, "has no fleet.toml");
    assert!(!nowhere.join("closer").exists());
    let _ = std::fs::remove_dir_all(&nowhere);
    assert_eq!(listing(), before, "nothing written");
    assert_eq!(
        std::fs::read_to_string(f.0.join("scout/agent.toml")).unwrap(),
        scout_before
    );
}

#[test]
fn sync_into_another_namespace_keeps_the_two_apart() {
    let db = TestDb::new();
    let f = FleetDir::new();
    db.cli(&["fleet", "sync", f.path()]).ok();
    let report = db
        .cli(&["fleet", "sync", f.path(), "--namespace", "staging"])
        .ok();
    assert_eq!(report["namespace"], "staging");
    let n: i64 = db.one("select count(*) from agents where namespace = 'staging'");
    assert_eq!(n, 2);
    let n: i64 = db.one("select count(*) from agents where namespace = 'default'");
    assert_eq!(n, 2);
    db.cli(&["fleet", "sync", f.path(), "--namespace", " "])
        .fails(2, "--namespace");
}
