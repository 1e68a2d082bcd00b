//! Standing orders fired by the supervisor: exactly once per occurrence, catch-up by
//! policy, and the run following its job (completed / no_work / blocked).

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;

use agentbus::ledger::standing_orders::fire_due;

use crate::support::TestDb;

fn declare(
    db: &TestDb,
    agent: &str,
    order: &str,
    cron: &str,
    grace: i32,
    catch_up: &str,
    created: DateTime<Utc>,
) {
    db.client()
        .execute(
            "insert into standing_orders (agent_id, order_name, cron, grace_seconds, catch_up, message, created_at)
             values ($1, $2, $3, $4, $5, 'Do the duty and close the job', $6)",
            &[&agent, &order, &cron, &grace, &catch_up, &created],
        )
        .unwrap();
}

/// auditor/sweep every 5 minutes, declared at 10:00.
fn sweep(db: &TestDb, grace: i32, catch_up: &str) {
    declare(
        db,
        "auditor",
        "sweep",
        "*/5 * * * *",
        grace,
        catch_up,
        t(10, 0),
    );
}

fn t(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, h, m, 0).unwrap()
}

fn runs(db: &TestDb, order: &str) -> Vec<(String, String, bool)> {
    let v: Value = db.one(&format!(
        "select coalesce(jsonb_agg(jsonb_build_array(to_char(scheduled_for at time zone 'UTC', 'HH24:MI'), status, job_id is not null) order by scheduled_for), '[]')
         from standing_order_runs where order_name = '{order}'"
    ));
    serde_json::from_value(v).unwrap()
}

#[test]
fn skip_records_the_downtime_as_missed_and_fires_only_what_is_on_time() {
    let db = TestDb::new();
    sweep(&db, 300, "skip");
    let mut c = db.client();
    // Down from 10:00; back at 10:27: 10:05-10:20 are older than the 5-minute grace.
    let report =
        agentbus::db::transaction(&mut c, |tx| fire_due(tx, "default", t(10, 27), "test")).unwrap();
    assert_eq!(report.fired.len(), 1, "{report:?}");
    assert_eq!(
        runs(&db, "sweep"),
        [
            ("10:05".into(), "missed".into(), false),
            ("10:10".into(), "missed".into(), false),
            ("10:15".into(), "missed".into(), false),
            ("10:20".into(), "missed".into(), false),
            ("10:25".into(), "started".into(), true),
        ]
    );
    let events: i64 = db.one("select count(*) from events where topic = 'standing_order.missed'");
    assert_eq!(events, 4);
    // Again, and from another supervisor: nothing new.
    let again = agentbus::db::transaction(&mut c, |tx| fire_due(tx, "default", t(10, 27), "other"))
        .unwrap();
    assert!(
        again.fired.is_empty() && again.missed.is_empty(),
        "{again:?}"
    );
    let jobs: i64 = db.one("select count(*) from jobs where job_type = 'scheduled'");
    assert_eq!(jobs, 1);
}

#[test]
fn run_once_fires_exactly_one_catch_up() {
    let db = TestDb::new();
    sweep(&db, 60, "run_once");
    let mut c = db.client();
    let report =
        agentbus::db::transaction(&mut c, |tx| fire_due(tx, "default", t(10, 27), "test")).unwrap();
    assert_eq!(report.fired.len(), 1);
    assert_eq!(report.missed.len(), 4);
    let r = runs(&db, "sweep");
    assert_eq!(r.iter().filter(|x| x.1 == "missed").count(), 4);
    assert_eq!(r.last(), Some(&("10:25".into(), "started".into(), true)));
    let skip = TestDb::new();
    sweep(&skip, 60, "skip");
    let report = agentbus::db::transaction(&mut skip.client(), |tx| {
        fire_due(tx, "default", t(10, 27), "test")
    })
    .unwrap();
    assert_eq!((report.fired.len(), report.missed.len()), (0, 5));
}

#[test]
fn the_run_ends_the_way_its_job_ends() {
    let db = TestDb::new();
    declare(&db, "scout", "scan", "* * * * *", 300, "skip", t(9, 57));
    let mut c = db.client();
    agentbus::db::transaction(&mut c, |tx| fire_due(tx, "default", t(10, 0), "test")).unwrap();
    assert_eq!(runs(&db, "scan").len(), 3);
    let mut outcomes = Vec::new();
    for how in [
        ["complete-job", "--no-work"],
        ["complete-job", "--summary"],
        ["block-job", "--blocked-reason"],
    ] {
        let (id, token) = db.claim_one("sup", Some("scout"));
        let mut args = vec![how[0], id.as_str(), "--lease-token", token.as_str(), how[1]];
        if how[1] != "--no-work" {
            args.push("nothing to add");
        }
        db.cli(&args).ok();
        let status: String = db.one(&format!(
            "select status::text from standing_order_runs where job_id = '{id}'"
        ));
        outcomes.push(status);
    }
    assert_eq!(outcomes, ["no_work", "completed", "blocked"]);
    let result: Value = db.one("select result from jobs j join standing_order_runs r on r.job_id = j.id where r.status = 'no_work'");
    assert_eq!(result["no_work"], true);
}

#[test]
fn three_supervisors_fire_each_second_exactly_once() {
    let db = TestDb::new();
    let start = Utc::now();
    declare(&db, "ticker", "tick", "* * * * * *", 60, "skip", start);
    let sups: Vec<_> = (0..3)
        .map(|i| {
            db.spawn_supervisor(
                &[
                    "--supervisor-id",
                    &format!("f{i}"),
                    "--exec",
                    "agentbus complete-job",
                    "--default-concurrency",
                    "20",
                ],
                &[],
            )
        })
        .collect();
    std::thread::sleep(Duration::from_secs(10));
    drop(sups);
    let v: Value = db.one(
        "select jsonb_agg(extract(epoch from scheduled_for)::bigint order by scheduled_for) from standing_order_runs where order_name = 'tick'",
    );
    let seconds: Vec<i64> = serde_json::from_value(v).unwrap();
    assert!(
        seconds.len() >= 8,
        "only {} occurrences fired in 10 s",
        seconds.len()
    );
    for pair in seconds.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            1,
            "a second was skipped or fired twice: {seconds:?}"
        );
    }
    let missed: i64 = db.one("select count(*) from standing_order_runs where status = 'missed'");
    assert_eq!(missed, 0);
    let unlinked: i64 = db.one("select count(*) from standing_order_runs where job_id is null");
    assert_eq!(unlinked, 0);
    let jobs: i64 = db.one("select count(*) from jobs where job_type = 'scheduled'");
    assert_eq!(jobs as usize, seconds.len(), "one job per occurrence");
}

#[test]
fn a_fired_order_reaches_its_agent_and_no_work_is_recorded() {
    let db = TestDb::new();
    declare(
        &db,
        "scout",
        "scan",
        "* * * * *",
        300,
        "skip",
        Utc::now() - chrono::Duration::seconds(61),
    );
    let dir = std::env::temp_dir().join(format!("agentbus-firing-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("agent.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\ngrep -q 'Standing order: scan scheduled for' \"$1\" || exit 7\ngrep -q -- '--no-work' \"$1\" || exit 8\nexec agentbus complete-job --no-work --summary 'no new prospects'\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let exec = format!("{} {{prompt_file}}", script.display());
    let out = db.supervise_once(&["--exec", &exec], &[], Duration::from_secs(60));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: Value =
        db.one("select jsonb_agg(status::text) from standing_order_runs where order_name = 'scan'");
    let statuses: Vec<String> = serde_json::from_value(v).unwrap();
    assert!(!statuses.is_empty());
    assert!(
        statuses.iter().all(|s| s == "no_work"),
        "{statuses:?}; {}",
        out.stderr
    );
    let summary: String =
        db.one("select summary from standing_order_runs where order_name = 'scan' limit 1");
    assert_eq!(summary, "no new prospects");
}

fn day(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, h, m, s).unwrap()
}

/// An `external` order (OpenClaw's cron fires it) every minute from 10:00 on 2026-11-20,
/// with a 30 s grace; runs as the agent recorded them.
fn external_with_runs(db: &TestDb) {
    db.client()
        .execute(
            "insert into standing_orders (agent_id, order_name, cron, grace_seconds, fired_by, message, created_at, alert_after_no_work)
             values ('auditor', 'lease-sweep', '* * * * *', 30, 'external', 'Sweep leases', $1, 2)",
            &[&day(10, 0, 0)],
        )
        .unwrap();
    for (at, started, status) in [
        (day(10, 1, 0), day(10, 1, 2), "no_work"),
        (day(10, 3, 10), day(10, 3, 10), "no_work"), // OpenClaw staggered it by 10 s
    ] {
        db.client()
            .execute(
                "insert into standing_order_runs (agent_id, order_name, trigger_source, scheduled_for, started_at, status, finished_at)
                 values ('auditor', 'lease-sweep', 'cron', $1, $2, $3::text::standing_order_status, $2)",
                &[&at, &started, &status],
            )
            .unwrap();
    }
}

/// The audit of 2026-11-20 from 09:00 to `until`, recording.
fn audit_until(c: &mut postgres::Client, until: DateTime<Utc>) -> agentbus::fleet::audit::Audit {
    agentbus::db::transaction(c, |tx| {
        agentbus::fleet::audit::audit(tx, "default", day(9, 0, 0), until, None, true, "test")
    })
    .unwrap()
}

#[test]
fn the_audit_tells_no_work_from_did_not_run_and_records_each_gap_once() {
    let db = TestDb::new();
    external_with_runs(&db);
    let mut c = db.client();
    let a = audit_until(&mut c, day(10, 5, 20));
    let o = &a.orders[0];
    assert_eq!(o.expected, 5, "10:01 .. 10:05: {o:?}");
    assert_eq!((o.no_work, o.pending), (2, 1), "{o:?}");
    let gaps: Vec<String> = o
        .gaps
        .iter()
        .map(|g| g.format("%H:%M").to_string())
        .collect();
    assert_eq!(gaps, ["10:02", "10:04"]);
    assert_eq!(a.recorded_missed, 2);
    assert_eq!(
        a.alerts, 0,
        "the latest run is missed: no streak of no_work"
    );

    // In the ledger, "ran and found nothing" and "did not run" are different rows.
    let v: Value = db.one(
        "select jsonb_agg(jsonb_build_array(to_char(scheduled_for at time zone 'UTC', 'HH24:MI'), status::text) order by scheduled_for)
         from standing_order_runs",
    );
    assert_eq!(
        v,
        serde_json::json!([
            ["10:01", "no_work"],
            ["10:02", "missed"],
            ["10:03", "no_work"],
            ["10:04", "missed"]
        ])
    );
    let events: i64 = db.one("select count(*) from events where topic = 'standing_order.missed'");
    assert_eq!(events, 2);

    // Again: nothing added.
    let before = db.snapshot();
    let again = audit_until(&mut c, day(10, 5, 20));
    assert_eq!((again.recorded_missed, again.alerts), (0, 0));
    assert_eq!(again.orders[0].missed, 2);
    assert_eq!(db.snapshot(), before);

    // Two no_work runs in a row (alert_after_no_work = 2): one alert, once.
    for at in [day(10, 5, 0), day(10, 6, 0)] {
        c.execute(
            "insert into standing_order_runs (agent_id, order_name, trigger_source, scheduled_for, started_at, status, finished_at)
             values ('auditor', 'lease-sweep', 'cron', $1, $1, 'no_work', $1)",
            &[&at],
        )
        .unwrap();
    }
    let streak = audit_until(&mut c, day(10, 6, 20));
    assert_eq!(streak.alerts, 1);
    let again = audit_until(&mut c, day(10, 6, 20));
    assert_eq!(again.alerts, 0);
    let alert: Value = db.one("select payload from events where topic = 'standing_order.alert'");
    assert_eq!(alert["kind"], "no_work");
    assert_eq!(alert["consecutive"], 2);
}

#[test]
fn audit_standing_orders_from_the_command_line() {
    let db = TestDb::new();
    external_with_runs(&db);
    let before = db.snapshot();
    let dry = db
        .cli(&[
            "audit",
            "standing-orders",
            "--since",
            "2026-11-20T09:00:00Z",
            "--dry-run",
            "--format",
            "json",
        ])
        .ok();
    let o = &dry["orders"][0];
    assert_eq!(o["agent_id"], "auditor");
    assert_eq!(o["fired_by"], "external");
    assert!(o["gaps"].as_array().unwrap().len() > 2, "{o}");
    assert_eq!(db.snapshot(), before, "--dry-run writes nothing");

    let table = db.cli(&[
        "audit",
        "standing-orders",
        "--since",
        "2026-11-20T09:00:00Z",
        "--format",
        "table",
    ]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    for needle in ["lease-sweep", "no_work", "missed", "gaps"] {
        assert!(table.stdout.contains(needle), "{needle}: {}", table.stdout);
    }
    db.cli(&["audit", "standing-orders", "--since", "yesterday"])
        .fails(2, "not a window");
}

#[test]
fn an_operator_fires_an_order_now_without_moving_its_schedule() {
    let db = TestDb::new();
    let created: DateTime<Utc> = db.one("select now() - interval '3 minutes'");
    declare(
        &db,
        "mission-control",
        "standup",
        "* * * * *",
        3600,
        "skip",
        created,
    );
    let fire = |order: &str| {
        db.cli(&[
            "fire-standing-order",
            "--agent-id",
            "mission-control",
            "--order-name",
            order,
        ])
    };
    fire("nope").fails(
        3,
        "standing order default/mission-control/nope is not declared",
    );

    let run = fire("standup").ok();
    assert_eq!(run["trigger_source"], "manual");
    assert_eq!(run["status"], "started");
    let job = db
        .cli(&[
            "show-job",
            run["job_id"].as_str().unwrap(),
            "--format",
            "json",
        ])
        .ok();
    assert_eq!(job["job_type"], "scheduled");
    assert_eq!(job["payload"]["run_id"], run["id"]);

    // The scheduled occurrences since the order was declared still fire.
    let mut c = db.client();
    let now: DateTime<Utc> = db.one("select now()");
    let report =
        agentbus::db::transaction(&mut c, |tx| fire_due(tx, "default", now, "test")).unwrap();
    assert!(report.fired.len() >= 3, "{report:?}");

    // The manual run ends with its job.
    let (claimed, token) = db.claim_one("sup", Some("mission-control"));
    let manual_job = run["job_id"].as_str().unwrap().to_string();
    let token = if claimed == manual_job {
        token
    } else {
        // Scheduled jobs may be claimed first; claim until the manual one comes up.
        let mut t = String::new();
        for _ in 0..10 {
            let (id, tok) = db.claim_one("sup", Some("mission-control"));
            if id == manual_job {
                t = tok;
                break;
            }
        }
        t
    };
    db.cli(&[
        "complete-job",
        &manual_job,
        "--lease-token",
        &token,
        "--no-work",
    ])
    .ok();
    let status: String = db.one(&format!(
        "select status::text from standing_order_runs where id = '{}'",
        run["id"].as_str().unwrap()
    ));
    assert_eq!(status, "no_work");
}
