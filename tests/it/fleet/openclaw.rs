//! fleet openclaw-config and openclaw-cron against a fake `openclaw` on the PATH.

use super::{validate, FleetDir};
use crate::support::TestDb;
use serde_json::Value;
use std::path::{Path, PathBuf};

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
    // Everything the gateway needs for the agent to close its jobs: an explicit roster,
    // no heartbeat turns without a job, exec on the gateway without an approval prompt,
    // and the folder of this very agentbus first on PATH.
    assert_eq!(config["agents"]["ownership"], "explicit");
    assert_eq!(scout["heartbeat"]["every"], "0m");
    assert_eq!(scout["tools"]["exec"]["host"], "gateway");
    assert_eq!(scout["tools"]["exec"]["mode"], "full");
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_agentbus"));
    let bin_dir = std::fs::canonicalize(bin).unwrap();
    assert_eq!(
        scout["tools"]["exec"]["pathPrepend"][0],
        bin_dir.parent().unwrap().display().to_string()
    );
    assert!(scout.get("model").is_none(), "{scout}");
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
fn model_heartbeat_and_tools_reach_the_agent_entry_and_are_checked() {
    let db = TestDb::new();
    let f = FleetDir::new();
    f.write(
        "scout/agent.toml",
        "id = \"scout\"\nname = \"Scout\"\nmodel = \"anthropic/claude-sonnet-4-6\"\nheartbeat = \"15m\"\n\
         [wake]\nmode = \"hook\"\n[tools]\nallow = [\"exec\", \"read\"]\ndeny = [\"browser\"]\n",
    );
    let out = db
        .cli(&["fleet", "openclaw-config", f.path(), "--format", "json"])
        .ok();
    let scout = &out["config"]["agents"]["entries"]["scout"];
    assert_eq!(scout["model"], "anthropic/claude-sonnet-4-6");
    assert_eq!(scout["heartbeat"]["every"], "15m");
    assert_eq!(scout["tools"]["allow"], serde_json::json!(["exec", "read"]));
    assert_eq!(scout["tools"]["deny"], serde_json::json!(["browser"]));

    for (text, line, needle) in [
        (
            "id = \"scout\"\nmodel = \"claude\"\n",
            2,
            "must be provider/model",
        ),
        (
            "id = \"scout\"\nheartbeat = \"often\"\n",
            2,
            "must be minutes or hours",
        ),
        (
            "id = \"scout\"\n[tools]\nallow = [\"exec\"]\ntrust = true\n",
            4,
            "unknown key \"tools.trust\"",
        ),
    ] {
        f.write("scout/agent.toml", text);
        let out = validate(&db, f.path().as_ref());
        out.fails(2, &format!("{}:{line}: ", f.file("scout/agent.toml")));
        assert!(out.stderr.contains(needle), "{text:?}: {}", out.stderr);
    }
}
