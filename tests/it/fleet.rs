//! fleet validate and fleet sync against real files and a real database.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::TestDb;

/// A fleet folder in a temporary directory, removed at the end.
struct FleetDir(PathBuf);

impl FleetDir {
    fn new() -> FleetDir {
        let dir = std::env::temp_dir()
            .join(format!("agentbus-fleet-{}", uuid::Uuid::new_v4()))
            .join("gtm");
        std::fs::create_dir_all(&dir).unwrap();
        let f = FleetDir(dir);
        f.write(
            "fleet.toml",
            "name = \"gtm\"\n\n[defaults]\nmax_concurrency = 1\n\n[openclaw]\nhook_url = \"http://127.0.0.1:18789/hooks/agent\"\ntoken_env = \"OPENCLAW_HOOKS_TOKEN\"\n",
        );
        f.write(
            "scout/agent.toml",
            r#"id = "scout"
name = "Scout"
role = "Research prospects"
handoffs = ["writer"]

[wake]
mode = "hook"
timeout_seconds = 300

[[standing_orders]]
name = "prospect-scan"
cron = "0,15,30,45 * * * *"
message = "Run the prospect scan"

[[standing_orders]]
name = "weekly-review"
cron = "0 9 * * 1"
timezone = "Europe/Berlin"
message = """
Review the week's prospects.
"""
fired_by = "external"
catch_up = "run_once"
"#,
        );
        f.write(
            "writer/agent.toml",
            "id = \"writer\"\nmax_concurrency = 2\n\n[wake]\nmode = \"exec\"\ncommand = [\"./run.sh\", \"{job_id}\"]\n",
        );
        f
    }

    fn write(&self, rel: &str, text: &str) {
        let path = self.0.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }

    fn file(&self, rel: &str) -> String {
        self.0.join(rel).display().to_string()
    }
}

impl Drop for FleetDir {
    fn drop(&mut self) {
        if let Some(parent) = self.0.parent() {
            let _ = std::fs::remove_dir_all(parent);
        }
    }
}

fn validate(db: &TestDb, dir: &Path) -> crate::support::CliOutput {
    db.cli(&["fleet", "validate", dir.to_str().unwrap()])
}

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
fn openclaw_config_lists_hook_agents_and_never_prints_the_token() {
    let db = TestDb::new();
    let f = FleetDir::new();
    let secret = "s3cret-hook-token-value";
    let env = [("OPENCLAW_HOOKS_TOKEN", secret)];
    let json = db.cli_with(
        &["fleet", "openclaw-config", f.path(), "--format", "json"],
        &env,
        None,
    );
    let out = json.ok();
    let config = &out["config"];
    let scout = &config["agents"]["entries"]["scout"];
    assert_eq!(scout["name"], "Scout");
    assert!(
        scout["workspace"].as_str().unwrap().ends_with("/gtm/scout"),
        "{scout}"
    );
    assert!(
        config["agents"]["entries"].get("writer").is_none(),
        "an exec agent is not an OpenClaw agent: {config}"
    );
    assert_eq!(config["hooks"]["token"], "${OPENCLAW_HOOKS_TOKEN}");
    assert_eq!(config["hooks"]["path"], "/hooks");
    assert_eq!(
        config["hooks"]["allowedAgentIds"],
        serde_json::json!(["scout"])
    );
    assert_eq!(config["hooks"]["allowRequestSessionKey"], false);
    assert_eq!(config["cron"]["enabled"], true);
    assert_eq!(
        config["cron"]["skipMissedJobs"], false,
        "the external order catches up once"
    );

    // The text form is JSON5: comments, then the same document.
    let text = db.cli_with(&["fleet", "openclaw-config", f.path()], &env, None);
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(text
        .stdout
        .starts_with("// openclaw.json5 keys for agentbus fleet gtm"));
    let body: String = text
        .stdout
        .lines()
        .filter(|l| !l.starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let parsed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(&parsed, config);
    for o in [&json, &text] {
        assert!(!o.stdout.contains(secret) && !o.stderr.contains(secret));
    }
}

#[test]
fn openclaw_config_of_an_invalid_fleet_is_refused() {
    let db = TestDb::new();
    let f = FleetDir::new();
    f.write(
        "writer/agent.toml",
        "id = \"writer\"\nhandoffs = [\"nobody\"]\n",
    );
    db.cli(&["fleet", "openclaw-config", f.path()])
        .fails(2, "1 problem in fleet");
    db.cli(&["fleet", "openclaw-cron", f.path()])
        .fails(2, "1 problem in fleet");
}

/// A stand-in `openclaw` on PATH that writes each argument on its own NUL-terminated
/// record, so the test sees exactly what the shell passed.
fn fake_openclaw(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("openclaw");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done >> {}\nprintf '\\n\\0' >> {}\n",
            dir.join("calls").display(),
            dir.join("calls").display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[test]
fn openclaw_cron_script_adds_each_external_order_with_a_declaration_key() {
    let db = TestDb::new();
    let f = FleetDir::new();
    // An order whose message needs quoting, disabled, with a session and a runtime.
    f.write(
        "writer/agent.toml",
        r#"id = "writer"
[wake]
mode = "exec"
command = ["./run.sh"]

[[standing_orders]]
name = "drafts-cleanup"
cron = "30 2 * * *"
message = "Don't keep drafts older than 30 days; say \"done\"."
fired_by = "external"
session = "hook:writer"
max_runtime_seconds = 600
enabled = false
"#,
    );
    let script = db.cli(&["fleet", "openclaw-cron", f.path()]);
    assert_eq!(script.code, 0, "{}", script.stderr);
    assert!(script.stdout.starts_with("#!/usr/bin/env bash\n"));
    assert_eq!(
        db.cli(&["fleet", "openclaw-cron", f.path()]).stdout,
        script.stdout,
        "the same files give the same script"
    );
    let plan = db
        .cli(&["fleet", "openclaw-cron", f.path(), "--format", "json"])
        .ok();
    let jobs = plan["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2, "only external orders: {plan}");
    assert_eq!(plan["supervisor_fired"], 1);

    // Run it against the stand-in, twice: the argv arrives intact, and each call carries
    // the declaration key that makes OpenClaw update instead of add.
    let work = f.0.parent().unwrap().join("run");
    std::fs::create_dir_all(&work).unwrap();
    let bin = fake_openclaw(&work);
    let script_file = work.join("cron.sh");
    std::fs::write(&script_file, &script.stdout).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    for _ in 0..2 {
        let st = std::process::Command::new("bash")
            .arg(&script_file)
            .env("PATH", &path)
            .status()
            .unwrap();
        assert!(st.success());
    }
    let calls = std::fs::read(work.join("calls")).unwrap();
    let words: Vec<String> = calls
        .strip_suffix(b"\0")
        .unwrap()
        .split(|b| *b == 0)
        .map(|w| String::from_utf8(w.to_vec()).unwrap())
        .collect();
    let calls: Vec<Vec<String>> = words
        .split(|w| w == "\n")
        .filter(|c| !c.is_empty())
        .map(|c| c.to_vec())
        .collect();
    assert_eq!(calls.len(), 4);
    for (i, call) in calls.iter().enumerate() {
        let job = &jobs[i % 2];
        let expected: Vec<String> = job["argv"].as_array().unwrap()[1..]
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert_eq!(call, &expected);
    }
    let flag = |job: &Value, name: &str| -> Option<String> {
        let argv: Vec<&str> = job["argv"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        argv.iter()
            .position(|a| *a == name)
            .map(|i| argv.get(i + 1).unwrap_or(&"").to_string())
    };
    let weekly = jobs.iter().find(|j| j["order"] == "weekly-review").unwrap();
    assert_eq!(
        flag(weekly, "--declaration-key").as_deref(),
        Some("agentbus:default:scout:weekly-review")
    );
    assert_eq!(flag(weekly, "--cron").as_deref(), Some("0 9 * * 1"));
    assert_eq!(flag(weekly, "--tz").as_deref(), Some("Europe/Berlin"));
    assert_eq!(flag(weekly, "--session").as_deref(), Some("isolated"));
    assert_eq!(flag(weekly, "--agent").as_deref(), Some("scout"));
    assert!(flag(weekly, "--no-deliver").is_some() && flag(weekly, "--exact").is_some());
    assert!(flag(weekly, "--disabled").is_none());
    let message = flag(weekly, "--message").unwrap();
    assert!(message.starts_with("Review the week's prospects."));
    assert!(message.contains(
        "agentbus start-standing-order --namespace default --agent-id scout --order-name weekly-review --scheduled-for latest"
    ));
    assert!(message.contains("agentbus finish-standing-order RUN_ID --status no_work"));

    let cleanup = jobs
        .iter()
        .find(|j| j["order"] == "drafts-cleanup")
        .unwrap();
    assert_eq!(
        flag(cleanup, "--session").as_deref(),
        Some("session:hook:writer")
    );
    assert_eq!(flag(cleanup, "--timeout-seconds").as_deref(), Some("600"));
    assert_eq!(flag(cleanup, "--tz").as_deref(), Some("UTC"));
    assert!(flag(cleanup, "--disabled").is_some());
    assert!(flag(cleanup, "--message")
        .unwrap()
        .starts_with("Don't keep drafts older than 30 days; say \"done\"."));
}

#[test]
fn an_agent_woken_by_openclaw_cron_starts_the_latest_occurrence() {
    let db = TestDb::new();
    let f = FleetDir::new();
    f.write(
        "writer/agent.toml",
        "id = \"writer\"\n[[standing_orders]]\nname = \"new-year\"\ncron = \"0 0 1 1 *\"\nmessage = \"m\"\nfired_by = \"external\"\n",
    );
    let start = |order: &str| {
        db.cli(&[
            "start-standing-order",
            "--agent-id",
            "writer",
            "--order-name",
            order,
            "--scheduled-for",
            "latest",
        ])
    };
    start("new-year").fails(3, "standing order default/writer/new-year is not declared");
    assert_eq!(db.one::<i64>("select count(*) from standing_order_runs"), 0);

    db.cli(&["fleet", "sync", f.path()]).ok();
    let run = start("new-year").ok();
    let year: i32 = db.one("select extract(year from now())::int");
    assert_eq!(
        run["scheduled_for"].as_str().unwrap(),
        format!("{year}-01-01T00:00:00Z")
    );
    assert_eq!(run["status"], "started");
    let again = start("new-year").ok();
    assert_eq!(again["id"], run["id"], "one run per occurrence");

    // Removed from the files: its OpenClaw job should go too, and starts are refused.
    f.write("writer/agent.toml", "id = \"writer\"\n");
    db.cli(&["fleet", "sync", f.path()]).ok();
    start("new-year").fails(4, "was removed from its fleet files");
    assert_eq!(db.one::<i64>("select count(*) from standing_order_runs"), 1);
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
