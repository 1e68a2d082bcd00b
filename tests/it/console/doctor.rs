//! agentbus doctor: every check passing, and each failing in its own way.

use serde_json::Value;

use crate::support::fake_hook::{Answer, FakeHook};
use crate::support::{run_cli, TestDb};

fn doctor(db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> (i32, Value, String) {
    let mut all = vec!["doctor", "--format", "json"];
    all.extend_from_slice(args);
    let out = db.cli_with(&all, env, None);
    let report: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor printed no JSON ({e}): {} {}",
            out.stdout, out.stderr
        )
    });
    (out.code, report, out.stderr)
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no {name} check in {report}"))
}

fn beat(db: &TestDb, age: &str) {
    db.client()
        .execute(
            "insert into dispatcher_heartbeats (dispatcher_id, host, pid, last_seen)
             values ('sup-1', 'h1', 1, now() - $1::text::interval)",
            &[&age],
        )
        .unwrap();
}

/// A one-agent fleet in a temporary folder.
fn fleet(hook_url: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("agentbus-doctor-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(dir.join("scout")).unwrap();
    std::fs::write(
        dir.join("fleet.toml"),
        format!(
            "name = \"t\"\n[openclaw]\nhook_url = \"{hook_url}\"\ntoken_env = \"T_HOOK_TOKEN\"\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("scout/agent.toml"),
        "id = \"scout\"\n[wake]\nmode = \"hook\"\n",
    )
    .unwrap();
    dir
}

#[test]
fn a_healthy_fleet_passes_every_check() {
    let db = TestDb::new();
    beat(&db, "1 second");
    let gw = FakeHook::start(Answer::Gateway("right-token"), None);
    let dir = fleet(&gw.url);
    let path = dir.to_str().unwrap();
    db.cli(&["fleet", "sync", path]).ok();
    let (code, report, _) = doctor(&db, &["--fleet", path], &[("T_HOOK_TOKEN", "right-token")]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["level"], "ok");
    for name in [
        "database",
        "schema",
        "supervisor",
        "wake_errors",
        "missed_orders",
        "fleet",
        "hook_url",
        "hook_token",
    ] {
        assert_eq!(check(&report, name)["level"], "ok", "{name}: {report}");
    }
    // The token probe started no run: the only POST had no message.
    let posts: Vec<_> = gw
        .requests()
        .into_iter()
        .filter(|r| r.body.get("message").is_some())
        .collect();
    assert!(posts.is_empty());
    // The table form names each check; the token is never printed.
    let text = db.cli_with(
        &["doctor", "--fleet", path, "--format", "table"],
        &[("T_HOOK_TOKEN", "right-token")],
        None,
    );
    assert!(!text.stdout.contains("right-token") && !text.stderr.contains("right-token"));
}

#[test]
fn each_problem_fails_or_warns_with_its_fix() {
    // No database settings at all.
    let out = run_cli(&["doctor", "--format", "json"], &[], None);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(check(&report, "database")["level"], "fail");
    assert!(check(&report, "schema")["detail"]
        .as_str()
        .unwrap()
        .contains("not checked"));

    // A database nobody migrated.
    let empty = TestDb::empty();
    let (code, report, _) = doctor(&empty, &[], &[]);
    assert_eq!(code, 2);
    assert_eq!(check(&report, "schema")["level"], "fail");
    assert_eq!(check(&report, "schema")["fix"], "agentbus migrate");

    // No supervisor, then a stale one.
    let db = TestDb::new();
    let (code, report, _) = doctor(&db, &[], &[]);
    assert_eq!(code, 2);
    assert!(check(&report, "supervisor")["detail"]
        .as_str()
        .unwrap()
        .contains("no supervisor has ever sent a heartbeat"));
    beat(&db, "10 minutes");
    let (_, report, _) = doctor(&db, &[], &[]);
    let sup = check(&report, "supervisor");
    assert_eq!(sup["level"], "fail");
    assert!(
        sup["detail"]
            .as_str()
            .unwrap()
            .contains("no fresh heartbeat"),
        "{sup}"
    );
    db.client()
        .execute("update dispatcher_heartbeats set last_seen = now()", &[])
        .unwrap();

    // A paused agent and a missed standing order: warnings.
    db.cli(&["pause-agent", "writer", "--reason", "model outage"])
        .ok();
    db.client()
        .execute(
            "insert into standing_order_runs (agent_id, order_name, scheduled_for, status)
             values ('auditor', 'sweep', now() - interval '1 hour', 'missed')",
            &[],
        )
        .unwrap();
    let (code, report, _) = doctor(&db, &[], &[]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(check(&report, "wake_errors")["level"], "warn");
    assert!(check(&report, "wake_errors")["detail"]
        .as_str()
        .unwrap()
        .contains("model outage"));
    assert_eq!(check(&report, "missed_orders")["level"], "warn");
    db.cli(&["resume-agent", "writer"]).ok();
    db.client()
        .execute("delete from standing_order_runs", &[])
        .unwrap();

    // A fleet the database does not match yet.
    let gw = FakeHook::start(Answer::Gateway("right-token"), None);
    let dir = fleet(&gw.url);
    let path = dir.to_str().unwrap().to_string();
    let (code, report, _) = doctor(&db, &["--fleet", &path], &[("T_HOOK_TOKEN", "right-token")]);
    assert_eq!(code, 1, "{report}");
    let f = check(&report, "fleet");
    assert!(
        f["detail"]
            .as_str()
            .unwrap()
            .contains("missing agent scout"),
        "{f}"
    );
    assert_eq!(f["fix"], format!("agentbus fleet sync {path}"));

    // A gateway that refuses the token, and one that is down.
    let (code, report, stderr) =
        doctor(&db, &["--fleet", &path], &[("T_HOOK_TOKEN", "wrong-token")]);
    assert_eq!(code, 2);
    let t = check(&report, "hook_token");
    assert_eq!(t["level"], "fail");
    assert!(t["detail"].as_str().unwrap().contains("401"), "{t}");
    assert!(!report.to_string().contains("wrong-token") && !stderr.contains("wrong-token"));
    let (code, report, _) = doctor(
        &db,
        &["--hook-url", "http://127.0.0.1:9/hooks/agent"],
        &[("OPENCLAW_HOOKS_TOKEN", "x")],
    );
    assert_eq!(code, 2);
    assert_eq!(check(&report, "hook_url")["level"], "fail");
    assert!(check(&report, "hook_token")["detail"]
        .as_str()
        .unwrap()
        .contains("not checked"));
    let _ = std::fs::remove_dir_all(&dir);
}
