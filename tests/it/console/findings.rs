//! `agentbus audit`: each finding code from a crafted state, none when healthy, and
//! `--record` writing each finding once.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::support::TestDb;

/// Runs SQL with triggers off (to back-date rows the triggers would stamp now()).
fn raw(db: &TestDb, sql: &str) {
    db.client()
        .batch_execute(&format!(
            "set session_replication_role = replica; {sql}; set session_replication_role = origin;"
        ))
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn audit(db: &TestDb, args: &[&str]) -> Value {
    let mut all = vec!["audit", "--format", "json"];
    all.extend_from_slice(args);
    db.cli(&all).ok()
}

/// code -> ids of every finding.
fn by_code(report: &Value) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in report["findings"].as_array().unwrap() {
        let ids = f["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string());
        out.entry(f["code"].as_str().unwrap().to_string())
            .or_default()
            .extend(ids);
        assert!(!f["suggestion"].as_str().unwrap().is_empty(), "{f}");
        assert!(!f["detail"].as_str().unwrap().is_empty(), "{f}");
    }
    out
}

fn healthy(db: &TestDb) {
    raw(
        db,
        "insert into dispatcher_heartbeats (dispatcher_id, host, pid, last_seen)
         values ('sup-ok', 'h', 1, now())",
    );
    db.enqueue("writer", "fresh work", &[]);
    let done = db.insert_job_in("succeeded");
    let _ = done;
}

#[test]
fn a_healthy_ledger_has_no_findings() {
    let db = TestDb::new();
    healthy(&db);
    let r = audit(&db, &[]);
    assert_eq!(r["findings"], serde_json::json!([]), "{r}");
    let text = db.cli(&["audit", "--format", "table"]);
    assert!(text.stdout.starts_with("0 finding(s)"), "{}", text.stdout);
}

#[test]
fn each_finding_code_comes_from_its_state() {
    let db = TestDb::new();
    healthy(&db);
    let stale_queued = db.enqueue("writer", "old work", &[]);
    db.job(&stale_queued).ready_since("1 hour");

    let stale_running = db.insert_job_in("running");
    db.job(stale_running).attempts_started("3 hours");

    let expired = db.insert_job_in("leased");
    db.job(expired).lease_expired("5 minutes");

    let unclosed = db.insert_job_in("queued");
    db.job(unclosed).timed_out_attempt();

    let stormy = db.insert_job_in("queued");
    db.job(stormy).target("flaky").failed_attempts(10, "boom");

    let dead = db.insert_job_in("dead");

    raw(
        &db,
        "insert into standing_order_runs (agent_id, order_name, scheduled_for, status)
         values ('auditor', 'sweep', now() - interval '1 hour', 'missed')",
    );
    let missed_run: String = db.one("select id::text from standing_order_runs");

    raw(
        &db,
        "insert into dispatcher_heartbeats (dispatcher_id, host, pid, last_seen)
         values ('sup-dead', 'h2', 2, now() - interval '10 minutes')",
    );

    let blocked = db.insert_job_in("blocked");
    db.job(blocked).updated("5 hours");

    let r = audit(&db, &[]);
    let codes = by_code(&r);
    let expect = [
        ("stale_queued", stale_queued.clone()),
        ("stale_running", stale_running.to_string()),
        ("lease_expired", expired.to_string()),
        ("closed_loop_missing", unclosed.to_string()),
        ("retry_storm", stormy.to_string()),
        ("dead_growth", dead.to_string()),
        ("standing_order_missed", missed_run),
        ("supervisor_stale", "sup-dead".to_string()),
        ("blocked_too_long", blocked.to_string()),
    ];
    for (code, id) in &expect {
        let ids = codes
            .get(*code)
            .unwrap_or_else(|| panic!("no {code} finding in {r}"));
        assert!(ids.contains(id), "{code}: {id} not in {ids:?}");
    }
    assert_eq!(codes.len(), expect.len(), "nothing else: {codes:?}");
    // The ledger's codes; the proactive lane's are in tests/it/proactive.rs.
    for code in &agentbus::console::findings::CODES[..9] {
        assert!(codes.contains_key(*code), "{code} untested");
    }

    // Thresholds move the line.
    let lenient = by_code(&audit(
        &db,
        &[
            "--stale-queued",
            "2h",
            "--blocked-too-long",
            "1d",
            "--retry-storm",
            "50",
        ],
    ));
    assert!(!lenient.contains_key("stale_queued"));
    assert!(!lenient.contains_key("blocked_too_long"));
    assert!(!lenient.contains_key("retry_storm"));

    // --record writes each finding once.
    let first = audit(&db, &["--record"]);
    assert_eq!(first["recorded"], expect.len());
    let again = audit(&db, &["--record"]);
    assert_eq!(again["recorded"], 0);
    let events: i64 = db.one("select count(*) from events where topic = 'audit.finding'");
    assert_eq!(events, expect.len() as i64);

    // The table fits 100 columns.
    let text = db.cli(&["audit", "--format", "table"]);
    for line in text.stdout.lines() {
        assert!(line.chars().count() <= 100, "{line}");
    }
    assert!(
        text.stdout.contains("-> agentbus unblock-job"),
        "{}",
        text.stdout
    );
}

#[test]
fn bad_audit_arguments_are_usage_errors() {
    let db = TestDb::new();
    db.cli(&["audit", "--stale-queued", "soon"])
        .fails(2, "expected a duration");
    db.cli(&["audit", "--retry-storm", "0"])
        .fails(2, "at least 1");
    db.cli(&["audit", "--record", "standing-orders"])
        .fails(2, "cannot be used with");
}

#[test]
fn a_transaction_holding_back_vacuum_is_named_with_its_pid() {
    let db = TestDb::new();
    // One session holds a snapshot, another has written and sits idle in its transaction.
    let mut reader = db.client();
    let mut writer = db.client();
    let pid = |c: &mut postgres::Client| -> String {
        c.query_one("select pg_backend_pid()::text", &[])
            .unwrap()
            .get(0)
    };
    let (reader_pid, writer_pid) = (pid(&mut reader), pid(&mut writer));
    let mut snapshot = reader
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .start()
        .unwrap();
    snapshot
        .query_one("select count(*) from jobs", &[])
        .unwrap();
    let mut wrote = writer.transaction().unwrap();
    wrote
        .execute("select set_config('agentbus.actor', 'x', true)", &[])
        .unwrap();
    wrote.query_one("select txid_current()", &[]).unwrap();

    // Not yet long enough for the default (30 minutes).
    let r = audit(&db, &[]);
    assert!(!by_code(&r).contains_key("vacuum_horizon_pinned"), "{r}");

    std::thread::sleep(std::time::Duration::from_millis(1100));
    let r = audit(&db, &["--long-transaction", "1s"]);
    let found = by_code(&r)
        .remove("vacuum_horizon_pinned")
        .unwrap_or_default();
    assert!(found.contains(&reader_pid), "{r}");
    assert!(found.contains(&writer_pid), "{r}");
    let finding = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["ids"][0] == reader_pid.as_str())
        .unwrap();
    assert!(
        finding["suggestion"]
            .as_str()
            .unwrap()
            .contains(&format!("pg_terminate_backend({reader_pid})")),
        "{finding}"
    );
    assert!(
        finding["detail"]
            .as_str()
            .unwrap()
            .contains("idle in transaction"),
        "{finding}"
    );

    // Ended: no finding.
    snapshot.commit().unwrap();
    wrote.rollback().unwrap();
    let r = audit(&db, &["--long-transaction", "1s"]);
    assert!(!by_code(&r).contains_key("vacuum_horizon_pinned"), "{r}");
}
