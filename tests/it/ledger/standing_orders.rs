//! start-standing-order and finish-standing-order, as the seed's scripts call them.

use crate::support::{s, TestDb};

#[test]
fn the_seed_standing_order_example_works_as_written() {
    let db = TestDb::new();
    // RUN_ID=$(agentbus start-standing-order ... | jq -r .id); agentbus finish-standing-order "$RUN_ID" ...
    let script = r#"
        set -e
        RUN_ID=$(agentbus start-standing-order --agent-id auditor --order-name lease_reaper \
                   --scheduled-for 2026-04-15T18:00:00Z | jq -r .id)
        agentbus finish-standing-order "$RUN_ID" --status completed \
          --summary "Requeued 2 expired jobs, found 0 cron gaps." --evidence '{"requeued":2,"gaps":0}'
    "#;
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_agentbus"))
        .parent()
        .unwrap()
        .display()
        .to_string();
    let path = format!("{bin_dir}:{}", std::env::var("PATH").unwrap_or_default());
    let out = std::process::Command::new("sh")
        .args(["-c", script])
        .env("DATABASE_URL", &db.url)
        .env("PATH", path)
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["status"], "completed");
    assert_eq!(run["evidence"]["requeued"], 2);
    assert_eq!(run["scheduled_for"], "2026-04-15T18:00:00Z");
}

#[test]
fn start_standing_order_is_idempotent_and_finish_refuses_a_different_outcome() {
    let db = TestDb::new();
    let args = [
        "start-standing-order",
        "--agent-id",
        "auditor",
        "--order-name",
        "gap_scan",
        "--scheduled-for",
        "2026-04-15T18:00:00Z",
    ];
    let first = db.cli(&args).ok();
    let again = db.cli(&args).ok();
    assert_eq!(first["id"], again["id"]);
    let id = s(&first, "id");

    let no_work = db
        .cli(&[
            "finish-standing-order",
            &id,
            "--status",
            "no_work",
            "--summary",
            "nothing to do",
        ])
        .ok();
    let repeat = db
        .cli(&["finish-standing-order", &id, "--status", "no_work"])
        .ok();
    let other = db.cli(&["finish-standing-order", &id, "--status", "failed"]);

    assert_eq!(no_work["status"], "no_work");
    assert_eq!(repeat["status"], "no_work");
    other.fails(4, "already finished as no_work");
}

#[test]
fn every_finish_status_of_the_seed_is_accepted() {
    let db = TestDb::new();
    for (i, status) in [
        "no_work",
        "completed",
        "blocked",
        "failed",
        "skipped",
        "missed",
    ]
    .iter()
    .enumerate()
    {
        let at = format!("2026-04-15T18:0{i}:00Z");
        let run = db
            .cli(&[
                "start-standing-order",
                "--agent-id",
                "a",
                "--order-name",
                "o",
                "--scheduled-for",
                &at,
            ])
            .ok();
        let done = db
            .cli(&["finish-standing-order", &s(&run, "id"), "--status", status])
            .ok();
        assert_eq!(done["status"], *status);
    }
}
