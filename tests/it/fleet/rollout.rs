//! agentbus rollout on the ops fleet: idempotent phases, a gate measured from the ledger
//! that refuses the next phase until it passes, a half-applied phase completed, --force
//! recorded, and going back without deleting anything.

use serde_json::Value;

use super::shipped::fleet_dir;
use crate::support::TestDb;

fn ops() -> String {
    fleet_dir("ops").to_str().unwrap().to_string()
}

fn apply(db: &TestDb, phase: &str, extra: &[&str]) -> crate::support::CliOutput {
    let dir = ops();
    let mut args = vec![
        "rollout",
        "apply",
        "--phase",
        phase,
        "--fleet",
        dir.as_str(),
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    db.cli(&args)
}

fn counts(db: &TestDb) -> (i64, i64, i64, i64) {
    let r = db
        .client()
        .query_one(
            "select (select count(*) from agents where namespace = 'ops' and not paused),
                (select count(*) from agents where namespace = 'ops'),
                (select count(*) from standing_orders where namespace = 'ops' and enabled),
                (select count(*) from standing_orders where namespace = 'ops')",
            &[],
        )
        .unwrap();
    (r.get(0), r.get(1), r.get(2), r.get(3))
}

/// Claims the next job of `agent` in ops (it must be `id`) and completes it.
fn claim_and_complete(db: &TestDb, agent: &str, id: &str, extra: &[&str]) {
    let env = [("AGENTBUS_NAMESPACE", "ops")];
    let claim = ["claim-jobs", "--lease-owner", "s1", "--target-agent", agent];
    let claimed = db.cli_with(&claim, &env, None).ok();
    assert_eq!(claimed[0]["id"], id);
    let token = claimed[0]["lease_token"].as_str().unwrap().to_string();
    let mut args = vec!["complete-job", id, "--lease-token", token.as_str()];
    args.extend_from_slice(extra);
    db.cli_with(&args, &env, None).ok();
}

/// Work that makes the gate of phase 1 pass: a job done, a standing order run completed.
fn healthy_day(db: &TestDb) {
    let env = [("AGENTBUS_NAMESPACE", "ops")];
    let enqueue = [
        "enqueue-job",
        "--target-agent",
        "devops",
        "--subject",
        "rotate the logs",
    ];
    let job = db.cli_with(&enqueue, &env, None).ok();
    claim_and_complete(
        db,
        "devops",
        job["id"].as_str().unwrap(),
        &["--summary", "rotated"],
    );
    let fire = [
        "fire-standing-order",
        "--agent-id",
        "auditor",
        "--order-name",
        "audit-lease-reaper",
    ];
    let run = db.cli_with(&fire, &env, None).ok();
    let extra = ["--no-work", "--summary", "nothing expired"];
    claim_and_complete(db, "auditor", run["job_id"].as_str().unwrap(), &extra);
}

#[test]
fn phases_apply_idempotently_behind_gates_that_measure_the_ledger_and_go_back_without_deleting() {
    let db = TestDb::empty();
    let dir = ops();
    // The plan reads the fleet before anything is installed.
    let plan = db
        .cli(&["rollout", "plan", "--fleet", &dir, "--format", "json"])
        .ok();
    assert_eq!(plan["state"], Value::Null);
    assert_eq!(
        plan["phases"][0]["agents"].as_array().unwrap().len(),
        4,
        "{plan}"
    );
    assert_eq!(plan["phases"][2]["lanes"][0], "proactive");

    // Phase 1: the schema, the four pilot agents and their duties; the lanes wait.
    let first = apply(&db, "1", &[]).ok();
    assert_eq!(first["changed"], true);
    assert_eq!(counts(&db), (4, 4, 13, 13));
    let lanes: i64 =
        db.one("select count(*) from lane_controls where namespace = 'ops' and paused");
    assert_eq!(lanes, 2, "proactive and memory wait for their phases");
    // Twice (the second time with the guardrail roles too): nothing of the fleet changes.
    let before = db.snapshot();
    let again = apply(&db, "1", &["--roles"]).ok();
    assert_eq!(again["changed"], false, "{again}");
    assert_eq!(again["roles"]["grants_applied"], true, "{again}");
    assert_eq!(db.snapshot(), before);

    // The gate of phase 1 fails on an empty ledger, and says why; phase 2 is refused.
    let gate = db.cli(&[
        "rollout", "check", "--phase", "1", "--fleet", &dir, "--format", "json",
    ]);
    assert_eq!(gate.code, 1);
    let blocking: Vec<String> = gate.json()["criteria"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["pass"] == false)
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        blocking,
        [
            "jobs succeeded (work flows)",
            "standing-order runs completed or no_work"
        ]
    );
    let refused = apply(&db, "2", &[]);
    assert_eq!(refused.code, 4, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("the gate of phase 1 fails"),
        "{}",
        refused.stderr
    );
    assert_eq!(counts(&db), (4, 4, 13, 13), "nothing written");
    let skip = apply(&db, "3", &[]);
    assert_eq!(skip.code, 4);
    assert!(
        skip.stderr.contains("apply phase 2 first"),
        "{}",
        skip.stderr
    );

    // A day of healthy work: the gate passes and phase 2 goes on.
    healthy_day(&db);
    let gate = db.cli(&[
        "rollout", "check", "--phase", "1", "--fleet", &dir, "--format", "table",
    ]);
    assert_eq!(gate.code, 0, "{}", gate.stdout);
    assert!(gate.stdout.contains("PASS"), "{}", gate.stdout);
    let second = apply(&db, "2", &[]).ok();
    assert_eq!(second["gate"]["pass"], true);
    assert_eq!(counts(&db), (11, 11, 25, 25));

    // Half-applied (an order of the phase disabled by hand): applying again completes it.
    db.client().batch_execute(
        "update standing_orders set enabled = false, removed_at = now() where order_name = 'design-queue-triage'",
    ).unwrap();
    let mended = apply(&db, "2", &[]).ok();
    assert_eq!(mended["changed"], true);
    assert_eq!(counts(&db), (11, 11, 25, 25));

    // Past a failing gate only with --force and a reason, both recorded.
    db.client()
        .batch_execute(
            "update jobs set status = 'dead', completed_at = now() where namespace = 'ops'",
        )
        .unwrap();
    assert_eq!(apply(&db, "3", &[]).code, 4);
    let forced = apply(
        &db,
        "3",
        &[
            "--force",
            "--reason",
            "the dead jobs are a known test fixture",
        ],
    )
    .ok();
    assert_eq!(
        forced["forced_reason"],
        "the dead jobs are a known test fixture"
    );
    let recorded: String =
        db.one("select forced_reason from rollout_state where namespace = 'ops'");
    assert_eq!(recorded, "the dead jobs are a known test fixture");
    let proactive_paused: bool =
        db.one("select paused from lane_controls where namespace = 'ops' and lane = 'proactive'");
    assert!(!proactive_paused, "phase 3 starts the proactive lane");

    // Back to 1: what phases 2 and 3 added is disabled, nothing is deleted.
    let back = db
        .cli(&[
            "rollout", "back", "--phase", "1", "--fleet", &dir, "--format", "json",
        ])
        .ok();
    assert_eq!(back["changed"], true);
    assert_eq!(counts(&db), (4, 11, 13, 37));
    let paused_again: i64 =
        db.one("select count(*) from lane_controls where namespace = 'ops' and paused");
    assert_eq!(paused_again, 2);
    let events: i64 = db.one("select count(*) from events where namespace = 'ops' and topic in ('rollout.applied', 'rollout.back')");
    assert_eq!(events, 5, "phase 1, 2, 2 mended, 3 forced, back");
    // And forward again: the paused agents resume.
    apply(&db, "2", &["--force", "--reason", "dead jobs again"]).ok();
    assert_eq!(counts(&db).0, 11);
    // Every phase, applied twice: the second run changes nothing.
    for phase in ["3", "4", "5"] {
        let first = apply(&db, phase, &["--force", "--reason", "the dead jobs above"]).ok();
        assert_eq!(first["changed"], true, "{phase}: {first}");
        let before = db.snapshot();
        let again = apply(&db, phase, &[]).ok();
        assert_eq!(again["changed"], false, "{phase}: {again}");
        assert_eq!(db.snapshot(), before, "phase {phase} applied twice");
    }
    assert_eq!(
        counts(&db),
        (11, 11, 50, 50),
        "phase 5: every agent and order"
    );
    let lanes: i64 =
        db.one("select count(*) from lane_controls where namespace = 'ops' and paused");
    assert_eq!(lanes, 0);
}

#[test]
fn the_smoke_test_proves_a_live_supervisor_wakes_a_probe_and_fires_an_order() {
    let db = TestDb::empty();
    let dir = std::env::temp_dir().join(format!("agentbus-smoke-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(dir.join("worker")).unwrap();
    std::fs::write(
        dir.join("fleet.toml"),
        "name = \"smoke\"\nnamespace = \"smoke\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("worker/agent.toml"),
        "id = \"worker\"\n[wake]\nmode = \"exec\"\ncommand = [\"true\"]\n",
    )
    .unwrap();
    let fleet = dir.to_str().unwrap();
    let args = [
        "rollout", "apply", "--phase", "1", "--fleet", fleet, "--smoke", "--format", "json",
    ];
    // No supervisor: the phase is applied, the smoke test fails and says why.
    let out = db.cli(&args);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let smoke = &out.json()["smoke"];
    assert!(
        smoke["failed"].as_str().unwrap().contains("no supervisor"),
        "{smoke}"
    );
    // With one: the probe job and the fired order end succeeded and completed, the audit is clean.
    let _supervisor = db.spawn_supervisor(&["--namespace", "smoke", "--poll-interval", "1"], &[]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while db.one::<i64>("select count(*) from dispatcher_heartbeats where namespace = 'smoke'") == 0
    {
        assert!(std::time::Instant::now() < deadline, "no heartbeat");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = db.cli(&args);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let r = out.json();
    assert_eq!(r["changed"], false, "the phase was already applied");
    assert_eq!(r["smoke"]["pass"], true, "{r}");
    assert_eq!(r["smoke"]["order_run"]["status"], "completed");
    let closed_by_probe: i64 = db.one(
        "select count(*) from jobs where namespace = 'smoke' and target_agent = 'rollout-probe'
            and status = 'succeeded' and summary = 'rollout smoke probe'",
    );
    assert_eq!(closed_by_probe, 2);

    // The phase's systemd units, when asked: written once, then left alone.
    let units = dir.join("units");
    let u = units.to_str().unwrap();
    let with_units = [
        "rollout", "apply", "--phase", "1", "--fleet", fleet, "--units", u, "--format", "json",
    ];
    let first = db.cli(&with_units).ok();
    assert_eq!(
        first["units"]["written"],
        serde_json::json!([
            "agentbus-supervisor.service",
            "agentbus-backup.service",
            "agentbus-backup.timer"
        ])
    );
    let second = db.cli(&with_units).ok();
    assert_eq!(second["units"]["written"], serde_json::json!([]));
    assert!(
        !units.join("agentbus-vault@.service").exists(),
        "the vault export is phase 5"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
