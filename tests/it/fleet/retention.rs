//! `[retention]` in fleet.toml: becomes the standing order `retention-prune` of the agent it
//! names, whose message is the `agentbus prune` command that agent runs.

use super::FleetDir;
use crate::support::{s, TestDb};

const FLEET: &str = "name = \"ops\"\nnamespace = \"ops\"\n\n[retention]\nagent = \"devops\"\n\
archive_after = \"30d\"\ndelete_after = \"365d\"\nbatch = 500\ncron = \"15 3 * * *\"\n";

fn fleet(fleet_toml: &str) -> FleetDir {
    let f = FleetDir::new();
    f.write("fleet.toml", fleet_toml);
    f.write("devops/agent.toml", "id = \"devops\"\n");
    f.write("coordinator/agent.toml", "id = \"coordinator\"\n");
    f
}

#[test]
fn retention_becomes_a_standing_order_whose_command_prunes() {
    let db = TestDb::new();
    let f = fleet(FLEET);
    db.cli(&["fleet", "sync", f.path()]).ok();
    let order: serde_json::Value = db.one(
        "select to_jsonb(o) from standing_orders o
          where namespace = 'ops' and agent_id = 'devops' and order_name = 'retention-prune'",
    );
    assert_eq!(order["cron"], "15 3 * * *", "{order}");
    let message = s(&order, "message");
    let command = "agentbus prune --older-than 30d --archive --drop-archived-older-than 365d \
                   --batch 500 --format json";
    assert!(message.contains(command), "{message}");
    // Syncing again changes nothing; the order fires like any other.
    db.cli(&["fleet", "sync", f.path()]).ok();
    let fired = db
        .cli(&[
            "fire-standing-order",
            "--namespace",
            "ops",
            "--agent-id",
            "devops",
            "--order-name",
            "retention-prune",
        ])
        .ok();
    assert_eq!(fired["status"], "started", "{fired}");
    let job: serde_json::Value = db.one(&format!(
        "select to_jsonb(j) from jobs j where id = '{}'",
        s(&fired, "job_id")
    ));
    assert_eq!(job["target_agent"], "devops", "{job}");

    // What the agent runs: the command of the message works as written.
    let old = db.enqueue("worker", "old", &[]);
    db.client()
        .execute(
            "update jobs set status = 'succeeded', completed_at = now() - interval '40 days'
              where id = $1::text::uuid",
            &[&old],
        )
        .expect("finish");
    let args: Vec<&str> = command.split(' ').skip(1).collect();
    let report = db.cli(&args).ok();
    assert_eq!(report["moved"]["jobs"], 1, "{report}");
    assert_eq!(report["archived"], true);
}

#[test]
fn a_bad_retention_section_is_reported_with_its_line() {
    for (section, needle) in [
        ("archive_after = \"30d\"\n", "needs agent"),
        ("agent = \"nobody\"\narchive_after = \"30d\"\n", "not an agent of this fleet"),
        ("agent = \"devops\"\narchive_after = \"2h\"\n", "a day or more"),
        ("agent = \"devops\"\narchive_after = \"soon\"\n", "a day or more"),
        (
            "agent = \"devops\"\narchive_after = \"30d\"\ndelete_after = \"7d\"\n",
            "longer than archive_after",
        ),
        (
            "agent = \"devops\"\narchive_after = \"30d\"\ndelete_after = \"365d\"\narchive = false\n",
            "needs archive = true",
        ),
        ("agent = \"devops\"\narchive_after = \"30d\"\nbatch = 20000\n", "at most 10000"),
        ("agent = \"devops\"\narchive_after = \"30d\"\ncron = \"every night\"\n", "cron expression"),
        ("agent = \"devops\"\narchive_after = \"30d\"\nkeep = 3\n", "keep"),
    ] {
        let f = fleet(&format!("name = \"ops\"\nnamespace = \"ops\"\n\n[retention]\n{section}"));
        let out = crate::support::run_cli(&["fleet", "validate", f.path()], &[], None);
        out.fails(2, needle);
        out.fails(2, "fleet.toml:");
    }
}
