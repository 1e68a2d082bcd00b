//! configure-agent, pause-agent, resume-agent, list-agents.

use crate::support::{s, TestDb};

#[test]
fn configure_pause_resume_and_list_an_agent() {
    let db = TestDb::new();
    let a = db
        .cli(&[
            "configure-agent",
            "scout",
            "--max-concurrency",
            "2",
            "--wake",
            "hook",
            "--hook-agent-id",
            "scout-oc",
            "--hook-session-key",
            "hook:scout",
            "--hook-timeout-seconds",
            "300",
            "--hook-token-env",
            "SCOUT_TOKEN",
        ])
        .ok();
    assert_eq!(a["max_concurrency"], 2);
    assert_eq!(a["wake_mode"], "hook");
    assert_eq!(a["hook_agent_id"], "scout-oc");
    assert_eq!(a["hook_token_env"], "SCOUT_TOKEN");

    // Flags not given keep their value; --default-concurrency clears the limit.
    let a = db
        .cli(&[
            "configure-agent",
            "scout",
            "--default-concurrency",
            "--exec-command",
            "./run.sh '{job_id}' \"a b\"",
        ])
        .ok();
    assert!(a["max_concurrency"].is_null());
    assert_eq!(a["wake_mode"], "hook");
    assert_eq!(
        a["exec_command"],
        serde_json::json!(["./run.sh", "{job_id}", "a b"])
    );

    let p = db
        .cli(&["pause-agent", "scout", "--reason", "duplicate digests"])
        .ok();
    assert_eq!(p["paused"], true);
    assert_eq!(p["paused_by"], "operator:tester");
    let list = db.cli(&["list-agents", "--format", "json"]).ok();
    assert_eq!(list[0]["paused_reason"], "duplicate digests");
    let table = db.cli(&["list-agents", "--format", "table"]);
    assert!(
        table.stdout.contains("duplicate digests"),
        "{}",
        table.stdout
    );

    // A paused agent's jobs are not claimed.
    let id = db.enqueue("scout", "wait for me", &[]);
    let got = db.cli(&["claim-jobs", "--lease-owner", "x"]).ok();
    assert_eq!(got, serde_json::json!([]));
    let r = db.cli(&["resume-agent", "scout"]).ok();
    assert_eq!(r["paused"], false);
    let (claimed, _) = db.claim_one("x", None);
    assert_eq!(claimed, id);
    let _ = s;
}

#[test]
fn bad_agent_settings_are_refused_and_write_nothing() {
    let db = TestDb::new();
    db.cli(&["configure-agent", "scout", "--max-concurrency", "1"])
        .ok();
    let before = db.snapshot();
    db.cli(&["configure-agent", "scout", "--max-concurrency", "0"])
        .fails(2, "--max-concurrency");
    db.cli(&["configure-agent", "scout", "--max-concurrency", "-3"])
        .fails(2, "--max-concurrency");
    db.cli(&["configure-agent", "scout", "--hook-url", "ftp://x"])
        .fails(2, "--hook-url");
    db.cli(&["configure-agent", "scout", "--exec-command", "echo 'x"])
        .fails(2, "--exec-command");
    db.cli(&["configure-agent", "scout", "--exec-command", "''"])
        .fails(2, "--exec-command");
    db.cli(&["configure-agent", "scout", "--hook-timeout-seconds", "0"])
        .fails(2, "--hook-timeout-seconds");
    db.cli(&["configure-agent", "scout", "--wake", "carrier-pigeon"])
        .fails(2, "carrier-pigeon");
    db.cli(&[
        "configure-agent",
        "scout",
        "--max-concurrency",
        "2",
        "--default-concurrency",
    ])
    .fails(2, "cannot be used with");
    db.cli(&["configure-agent", "", "--max-concurrency", "2"])
        .fails(2, "AGENT: \"\" is not a valid name");
    db.cli(&["pause-agent", "scout", "--reason", ""])
        .fails(2, "--reason");
    db.cli(&["pause-agent", "scout"]).fails(2, "--reason");
    db.cli(&["resume-agent", "nobody"]).fails(3, "nobody");
    assert_eq!(db.snapshot(), before, "nothing written");
}

#[test]
fn concurrent_pauses_and_resumes_leave_one_consistent_row() {
    let db = TestDb::new();
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let url = db.url.clone();
            std::thread::spawn(move || {
                let env = [("DATABASE_URL", url.as_str())];
                let args: Vec<String> = if i % 2 == 0 {
                    vec![
                        "pause-agent".into(),
                        "scout".into(),
                        "--reason".into(),
                        format!("r{i}"),
                    ]
                } else {
                    vec![
                        "configure-agent".into(),
                        "scout".into(),
                        "--max-concurrency".into(),
                        format!("{}", i + 1),
                    ]
                };
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                crate::support::run_cli(&args, &env, None).code
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 0);
    }
    let rows: i64 = db.one("select count(*) from agents where agent_id = 'scout'");
    assert_eq!(rows, 1);
    let paused: bool =
        db.one("select paused and paused_reason like 'r%' from agents where agent_id = 'scout'");
    assert!(paused);
}
