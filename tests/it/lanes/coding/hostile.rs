//! Bad inputs to the coding commands, and rows someone rewrote.

use std::path::Path;

use serde_json::json;

use super::{change, run_change, Bench};
use crate::support::TestDb;

#[test]
fn bad_inputs_to_the_coding_commands_exit_with_their_codes_and_write_nothing() {
    let db = TestDb::new();
    let b = Bench::new("");
    let cfg = b.config.to_str().unwrap();
    let before = db.snapshot();
    for (args, code, says) in [
        (vec!["show-coding-run", "zz"], 2, "not a coding run id"),
        (vec!["show-coding-run", "deadbeef"], 3, "not found"),
        (
            vec!["code", "merge", "0f0f0f0f-0000-4000-8000-000000000000"],
            3,
            "not found",
        ),
        (
            vec!["list-coding-runs", "--status", "merged"],
            2,
            "invalid value",
        ),
        (
            vec![
                "code",
                "run",
                "--config",
                "/nonexistent/coding.toml",
                "0f0f0f0f-0000-4000-8000-000000000000",
            ],
            78,
            "coding.toml",
        ),
        (vec!["code", "run", "--config", cfg], 2, "AGENTBUS_JOB_ID"),
    ] {
        let out = db.cli(&args);
        assert_eq!(out.code, code, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
    }
    assert_eq!(db.snapshot(), before, "nothing written");
    // A coding config that does not parse names the file and the key.
    std::fs::write(&b.config, "worktree_root = 1\n").unwrap();
    let out = db.cli(&["code", "cleanup", "--config", cfg]);
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert!(out.stderr.contains("coding.toml"), "{}", out.stderr);
    // A job of another type is not the runner's.
    let other = db.enqueue("dev-runner", "not code", &[]);
    let (id, token) = db.claim_one("runner-1", Some("dev-runner"));
    assert_eq!(id, other);
    std::fs::write(
        &b.config,
        "worktree_root = \"/tmp/w\"\nartifact_root = \"/tmp/a\"\nreview_agent = \"r\"\n",
    )
    .unwrap();
    let out = db.cli_with(
        &["code", "run", "--config", cfg],
        &[("AGENTBUS_JOB_ID", &id), ("AGENTBUS_LEASE_TOKEN", &token)],
        None,
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("code run takes dev.code_change"),
        "{}",
        out.stderr
    );
    let runs: i64 = db.one("select count(*) from coding_runs");
    assert_eq!(runs, 0);
}

#[test]
fn cleanup_removes_only_its_own_worktrees_whatever_a_row_says() {
    let db = TestDb::new();
    let b = Bench::new("");
    b.plan(&["wrong"]);
    let (_, out) = run_change(&db, &b, &change("fake", "single-shot", 1, json!({})));
    let r = out.ok();
    let kept = r["run"]["worktree_path"].as_str().unwrap().to_string();
    // Someone rewrites the row to point at a folder that is not a worktree.
    let victim = b.dir.0.join("precious");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("data"), "keep me").unwrap();
    db.client()
        .execute(
            "update coding_runs set worktree_path = $1",
            &[&victim.to_str().unwrap()],
        )
        .unwrap();
    let cleaned = db
        .cli(&["code", "cleanup", "--config", b.config.to_str().unwrap()])
        .ok();
    assert_eq!(cleaned["worktrees_removed"].as_array().unwrap().len(), 1);
    assert!(
        victim.join("data").exists(),
        "a path from a row is never removed"
    );
    assert!(!Path::new(&kept).exists(), "the run's own worktree is");
}
