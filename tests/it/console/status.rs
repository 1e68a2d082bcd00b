//! The operator's console against crafted states: status, health (each threshold and its
//! exit code), metrics (parsable exposition format), and tables that fit 100 columns.

use crate::support::{run_cli, s, TestDb};
use serde_json::Value;

pub(super) fn heartbeat(db: &TestDb, id: &str, seconds_ago: i64) {
    db.client()
        .execute(
            "insert into dispatcher_heartbeats (dispatcher_id, host, pid, version, last_seen)
             values ($1, 'host-a', 4242, '0.1.0', now() - make_interval(secs => $2::float8))",
            &[&id, &(seconds_ago as f64)],
        )
        .unwrap();
}

pub(super) fn exec(db: &TestDb, sql: &str) {
    db.client()
        .batch_execute(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// A fleet with one of everything worth seeing.
pub(super) fn busy(db: &TestDb) -> String {
    heartbeat(db, "sup-fresh", 5);
    heartbeat(db, "sup-stale", 600);
    for i in 0..3 {
        db.enqueue("writer", &format!("draft {i}"), &[]);
    }
    let approval = s(
        &db.cli(&[
            "enqueue-job",
            "--target-agent",
            "closer",
            "--subject",
            "send the proposal",
            "--requires-approval",
        ])
        .ok(),
        "id",
    );
    let expired = db.insert_job_in("leased");
    let hot = db.insert_job_in("queued");
    let dead = db.insert_job_in("dead");
    db.job(expired).lease_expired("5 minutes");
    db.job(hot).attempts(4).last_error("gateway 502");
    db.job(dead).last_error("gave up");
    exec(
        db,
        "insert into standing_order_runs (agent_id, order_name, scheduled_for, status)
           values ('auditor', 'sweep', now() - interval '1 hour', 'missed'),
                  ('auditor', 'sweep', now() - interval '2 hours', 'no_work'),
                  ('auditor', 'sweep', now() - interval '3 hours', 'completed');",
    );
    db.cli(&["pause-agent", "closer", "--reason", "pricing review"])
        .ok();
    approval
}

#[test]
fn status_shows_queues_agents_supervisors_and_what_needs_a_human() {
    let db = TestDb::new();
    let approval = busy(&db);
    let st = db.cli(&["status", "--format", "json"]).ok();
    assert_eq!(st["jobs"]["queued"], 4);
    assert_eq!(st["jobs"]["awaiting_approval"], 1);
    assert_eq!(st["jobs"]["dead"], 1);
    let writer = st["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agent"] == "writer")
        .unwrap();
    assert_eq!(writer["jobs"]["queued"], 3);
    let closer = st["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agent"] == "closer")
        .unwrap();
    assert_eq!(closer["paused"], true);
    assert_eq!(st["expired_leases"]["count"], 1);
    assert_eq!(st["retry_hotspots"]["count"], 1);
    assert_eq!(st["retry_hotspots"]["jobs"][0]["note"], "gateway 502");
    assert_eq!(st["dead_last_24h"]["count"], 1);
    assert_eq!(st["awaiting_approval"]["jobs"][0]["id"], approval.as_str());
    assert_eq!(st["standing_orders_24h"]["missed"], 1);
    assert_eq!(st["standing_orders_24h"]["no_work"], 1);
    let sups: Vec<(String, bool)> = st["supervisors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (s(b, "id"), b["fresh"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        sups,
        [
            ("sup-fresh".to_string(), true),
            ("sup-stale".to_string(), false)
        ]
    );
    assert_eq!(st["wake_problems"][0]["agent"], "closer");
    assert_eq!(st["wake_problems"][0]["paused_reason"], "pricing review");

    // An empty namespace is a valid, quiet status.
    let empty = db
        .cli(&["status", "--namespace", "elsewhere", "--format", "json"])
        .ok();
    assert_eq!(empty["jobs"]["queued"], 0);
    assert_eq!(empty["supervisors"], serde_json::json!([]));
}

#[test]
fn status_tables_fit_100_columns_and_shorten_ids_unless_asked() {
    let db = TestDb::new();
    busy(&db);
    let long_subject = "Research the procurement process, budget cycle and decision makers at Globex Corporation International Holdings";
    let long = s(
        &db.cli(&[
            "enqueue-job",
            "--target-agent",
            "research-agent-with-a-rather-long-name",
            "--subject",
            long_subject,
            "--max-attempts",
            "9",
        ])
        .ok(),
        "id",
    );
    db.job(&long).attempts(5).last_error(&"x".repeat(300));
    let out = db.cli(&["status", "--format", "table"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for line in out.stdout.lines() {
        assert!(
            line.chars().count() <= 100,
            "{} columns: {line}",
            line.chars().count()
        );
    }
    assert!(out.stdout.contains(&long[..8]));
    assert!(!out.stdout.contains(&long), "ids are shortened");
    assert!(out.stdout.contains('…'), "long text is clipped");
    assert!(!out.stdout.contains(long_subject));
    assert!(out.stdout.contains("STALE"));

    let wide = db.cli(&["status", "--format", "table", "--full-ids"]);
    assert!(wide.stdout.contains(&long), "--full-ids shows whole ids");
}

pub(super) fn health(db: &TestDb, args: &[&str]) -> (i32, String) {
    let mut all = vec!["health"];
    all.extend_from_slice(args);
    let out = db.cli(&all);
    assert_eq!(out.stdout.lines().count(), 1, "one line: {}", out.stdout);
    (out.code, out.stdout.trim().to_string())
}

#[test]
fn health_exit_codes_follow_each_threshold() {
    let db = TestDb::new();
    let (code, line) = health(&db, &[]);
    assert_eq!(code, 2, "{line}");
    assert!(line.starts_with("agentbus CRITICAL - no supervisor has a heartbeat"));

    heartbeat(&db, "sup-1", 1);
    let (code, line) = health(&db, &[]);
    assert_eq!(code, 0, "{line}");
    assert!(
        line.starts_with("agentbus OK - namespace default"),
        "{line}"
    );
    assert!(line.contains("| supervisor="), "perfdata: {line}");

    // Supervisor silence.
    exec(
        &db,
        "update dispatcher_heartbeats set last_seen = now() - interval '100 seconds'",
    );
    assert_eq!(health(&db, &[]).0, 1);
    assert_eq!(health(&db, &["--supervisor-silence", "30,60"]).0, 2);
    exec(&db, "update dispatcher_heartbeats set last_seen = now()");

    // Oldest queued.
    let id = db.enqueue("writer", "old", &[]);
    db.job(&id).ready_since("20 minutes");
    assert_eq!(health(&db, &[]).0, 1, "20 min over the 10 min default");
    assert_eq!(health(&db, &["--oldest-queued", "60,600"]).0, 2);
    assert_eq!(health(&db, &["--oldest-queued", "3600,7200"]).0, 0);
    db.cli(&["cancel-job", &id, "--reason", "test"]).ok();

    // Dead jobs.
    let dead = db.insert_job_in("dead");
    let (code, line) = health(&db, &[]);
    assert_eq!(code, 1);
    assert!(line.contains("1 jobs went dead in 24h"), "{line}");
    assert_eq!(health(&db, &["--dead", "1,1"]).0, 2);
    db.job(dead).completed("2 days");
    assert_eq!(health(&db, &[]).0, 0, "older than 24 h");

    // Missed standing orders.
    exec(
        &db,
        "insert into standing_order_runs (agent_id, order_name, scheduled_for, status)
         values ('auditor', 'sweep', now() - interval '1 hour', 'missed')",
    );
    assert_eq!(health(&db, &[]).0, 1);
    assert_eq!(health(&db, &["--missed", "0,1"]).0, 2);
    exec(&db, "delete from standing_order_runs");

    // Expired leases.
    let leased = db.insert_job_in("leased");
    db.job(leased).lease_expired("1 minute");
    assert_eq!(health(&db, &[]).0, 1);
    assert_eq!(health(&db, &["--expired-leases", "1,1"]).0, 2);

    // JSON says the same, with every check.
    let out = db.cli(&["health", "--format", "json"]);
    assert_eq!(out.code, 1);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["level"], "warning");
    assert_eq!(v["checks"].as_array().unwrap().len(), 5);

    // Bad thresholds are usage errors.
    db.cli(&["health", "--dead", "5,1"])
        .fails(2, "WARN <= CRIT");
    db.cli(&["health", "--dead", "x"])
        .fails(2, "expected WARN,CRIT");
}

#[test]
fn health_is_critical_when_the_ledger_cannot_be_read() {
    let out = run_cli(
        &["health"],
        &[("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")],
        None,
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stdout
            .starts_with("agentbus CRITICAL - cannot read the ledger"),
        "{}",
        out.stdout
    );
}

#[test]
fn metrics_are_valid_prometheus_text() {
    let db = TestDb::new();
    busy(&db);
    let out = db.cli(&["metrics"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut families = std::collections::BTreeMap::<String, (bool, bool, usize)>::new();
    for line in out.stdout.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split_whitespace().next().unwrap();
            families.entry(name.into()).or_default().0 = true;
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            let name = it.next().unwrap();
            assert_eq!(it.next(), Some("gauge"), "{line}");
            families.entry(name.into()).or_default().1 = true;
        } else {
            // name{labels} value
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
            value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("value in {line}"));
            let (name, labels) = series.split_once('{').unwrap_or_else(|| panic!("{line}"));
            assert!(labels.ends_with('}'), "{line}");
            assert!(labels.contains("namespace=\"default\""), "{line}");
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{line}"
            );
            let f = families
                .get_mut(name)
                .unwrap_or_else(|| panic!("sample before its HELP/TYPE: {line}"));
            f.2 += 1;
        }
    }
    for (name, (help, ty, _)) in &families {
        assert!(*help && *ty, "{name}");
    }
    let sample = |needle: &str| -> f64 {
        out.stdout
            .lines()
            .find(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("no {needle}"))
            .rsplit_once(' ')
            .unwrap()
            .1
            .parse()
            .unwrap()
    };
    assert_eq!(
        sample("agentbus_jobs{namespace=\"default\",status=\"queued\"}"),
        4.0
    );
    assert_eq!(sample("agentbus_expired_leases{"), 1.0);
    assert_eq!(
        sample("agentbus_supervisors{namespace=\"default\",state=\"stale\"}"),
        1.0
    );
    assert_eq!(
        sample("agentbus_standing_order_runs_24h{namespace=\"default\",status=\"missed\"}"),
        1.0
    );
    assert_eq!(sample("agentbus_agents_paused{"), 1.0);
}

/// `status --watch EVERY --format json` under `pool_mode`, and its lines.
fn watch(
    db: &TestDb,
    every: &str,
    pool_mode: &str,
) -> (
    std::process::Child,
    std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_agentbus"))
        .args(["status", "--watch", every, "--format", "json"])
        .env_clear()
        .env("DATABASE_URL", &db.url)
        .env("AGENTBUS_POOL_MODE", pool_mode)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

#[test]
fn status_watch_redraws_until_stopped() {
    let db = TestDb::new();
    db.cli(&["status", "--watch", "0"]).fails(2, "out of range");
    let (mut child, mut lines) = watch(&db, "1", "session");
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["jobs"]["queued"], 0);
    db.enqueue("writer", "arrives between two screens", &[]);
    let second: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(second["jobs"]["queued"], 1);
    child.kill().unwrap();
    let _ = child.wait();
}

/// Through a transaction pooler, `--watch` ends its transaction before it waits: the wait
/// holds no server connection and outlasts the server's 5 s idle-in-transaction limit.
#[test]
fn status_watch_through_a_transaction_pooler_waits_outside_a_transaction() {
    let db = TestDb::new();
    let (mut child, mut lines) = watch(&db, "7", "transaction");
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["jobs"]["queued"], 0);
    // Between two screens the session is idle, not idle in a transaction.
    let state = || -> Vec<String> {
        db.client()
            .query(
                "select state from pg_stat_activity
                  where application_name = 'agentbus/status' and datname = current_database()",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while state() != ["idle"] && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(state(), ["idle"]);
    db.enqueue("writer", "arrives between two screens", &[]);
    // The second screen comes after 7 s of waiting: the connection survived it.
    let second: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(second["jobs"]["queued"], 1);
    child.kill().unwrap();
    let _ = child.wait();
}
