//! Guardrails PostgreSQL enforces per login (sql/0012_guardrails.sql): roles, row security
//! by namespace, and operator controls refused to agent and supervisor logins, each tried
//! as the login it concerns, through the CLI and through raw SQL.

use crate::support::logins::{ledger, sqlstate, Guarded};
use crate::support::{s, TestDb};
use serde_json::Value;

#[test]
fn without_roles_nothing_changes_and_status_and_doctor_say_guardrails_off() {
    let db = TestDb::new();
    let status = db.cli(&["status", "--format", "json"]).ok();
    assert_eq!(status["guardrails"]["on"], false);
    assert_eq!(status["guardrails"]["unrestricted"], true);
    let text = db.cli(&["status", "--format", "table"]).ok_text();
    assert!(
        text.contains("guardrails: off (no roles installed"),
        "{text}"
    );
    let doctor = db.cli(&["doctor", "--format", "json"]).json();
    let check = doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "guardrails")
        .cloned()
        .unwrap_or_else(|| panic!("no guardrails check: {doctor}"));
    assert!(
        s(&check, "detail").starts_with("off: no roles installed"),
        "{check}"
    );
    assert_eq!(
        db.cli(&["roles", "list", "--format", "json"]).ok(),
        serde_json::json!([])
    );
}

#[test]
fn roles_install_is_idempotent_and_grant_checks_its_input() {
    let mut g = Guarded::new();
    let again = g.db.cli(&["roles", "install", "--format", "json"]).ok();
    assert_eq!(again["created"], serde_json::json!([]));
    assert_eq!(
        again["existing"],
        serde_json::json!(["agentbus_agent", "agentbus_supervisor", "agentbus_operator"])
    );
    let migrated = g.db.cli(&["migrate", "--format", "json"]).ok();
    assert_eq!(migrated["guardrail_grants_refreshed"], true);

    let before = g.db.one::<i64>("select count(*) from agentbus_logins");
    for (args, code, needle) in [
        (
            vec![
                "roles",
                "grant",
                "Bad-Name",
                "--as",
                "agent",
                "--namespace",
                "a",
            ],
            2,
            "`LOGIN` must be",
        ),
        (
            vec![
                "roles",
                "grant",
                "agentbus_x",
                "--as",
                "agent",
                "--namespace",
                "a",
            ],
            2,
            "reserved",
        ),
        (
            vec![
                "roles",
                "grant",
                "x1",
                "--as",
                "operator",
                "--namespace",
                "a",
                "--agent",
                "w",
            ],
            2,
            "`--agent` binds agent logins only",
        ),
        (
            vec!["roles", "grant", "x1", "--as", "agent"],
            2,
            "--namespace",
        ),
        (
            vec![
                "roles",
                "grant",
                "postgres",
                "--as",
                "agent",
                "--namespace",
                "a",
            ],
            77,
            "superuser",
        ),
        (
            vec!["roles", "revoke", "nobody_here"],
            3,
            "not an agentbus login",
        ),
    ] {
        g.db.cli(&args).fails(code, needle);
    }
    assert_eq!(
        g.db.one::<i64>("select count(*) from agentbus_logins"),
        before
    );

    // A password reaches PostgreSQL only as a SCRAM verifier.
    let dir = std::env::temp_dir().join(format!("agentbus-pw-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let pw = dir.join("pw");
    std::fs::write(&pw, "correct horse battery\n").unwrap();
    let login = g.grant("ops", "operator", &["default"], None);
    g.db.cli(&[
        "roles",
        "grant",
        &login,
        "--as",
        "operator",
        "--namespace",
        "default",
        "--namespace",
        "b",
        "--password-file",
        pw.to_str().unwrap(),
    ])
    .ok();
    let stored: String =
        g.db.client()
            .query_one(
                "select rolpassword from pg_authid where rolname = $1",
                &[&login],
            )
            .unwrap()
            .get(0);
    assert!(stored.starts_with("SCRAM-SHA-256$"), "{stored}");
    assert!(!stored.contains("horse"));
    let _ = std::fs::remove_dir_all(&dir);
    let listed = g.db.cli(&["roles", "list", "--format", "json"]).ok();
    assert_eq!(listed[0]["namespaces"], serde_json::json!(["default", "b"]));

    // An operator login sees itself only; revoked, it can no longer log in.
    let seen =
        g.db.cli_as(&login, &["roles", "list", "--format", "json"], &[])
            .ok();
    assert_eq!(seen.as_array().map(Vec::len), Some(1));
    let revoked =
        g.db.cli(&["roles", "revoke", &login, "--format", "json"])
            .ok();
    assert_eq!(revoked["can_login"], false);
    let out = g.db.cli_as(&login, &["list-jobs"], &[]);
    assert_eq!(out.code, 78, "{}", out.stderr);
}

#[test]
fn tenants_see_and_change_only_their_namespaces_through_the_cli_and_psql() {
    let mut g = Guarded::new();
    let op_a = g.grant("op_a", "operator", &["default"], None);
    let op_b = g.grant("op_b", "operator", &["b"], None);
    let agent_a = g.grant("agent_a", "agent", &["default"], None);
    let sup_a = g.grant("sup_a", "supervisor", &["default"], None);
    let db = &g.db;

    let a_job = db.enqueue("worker", "tenant a work", &[]);
    let b_gated = s(
        &db.cli(&[
            "enqueue-job",
            "--namespace",
            "b",
            "--target-agent",
            "y",
            "--subject",
            "tenant b deal",
            "--requires-approval",
        ])
        .ok(),
        "id",
    );
    db.cli(&["emit-event", "--namespace", "b", "--topic", "b.secret"])
        .ok();
    let status = db.cli_as(&op_a, &["status", "--format", "json"], &[]).ok();
    assert_eq!(status["guardrails"]["on"], true);
    assert_eq!(status["guardrails"]["class"], "operator");
    assert_eq!(status["guardrails"]["login"], op_a.as_str());

    // Operator of A: B does not exist for it (exit 3 for ids, empty lists).
    let listed = db
        .cli_as(
            &op_a,
            &["list-jobs", "--namespace", "b", "--format", "json"],
            &[],
        )
        .ok();
    assert_eq!(listed, serde_json::json!([]));
    let mine = db
        .cli_as(&op_a, &["list-jobs", "--format", "json"], &[])
        .ok();
    assert_eq!(mine[0]["id"], a_job.as_str());
    let moved = db
        .cli_as(
            &op_a,
            &[
                "reprioritize-job",
                &a_job,
                "--priority",
                "7",
                "--reason",
                "first",
            ],
            &[],
        )
        .ok();
    assert_eq!(moved["priority"], 7);
    let noted: Value = db.one(&format!(
        "select to_jsonb(h) from job_history h where job_id = '{a_job}' order by id desc limit 1"
    ));
    assert_eq!(noted["login"], op_a.as_str());
    db.cli_as(&op_a, &["trace", &b_gated], &[])
        .fails(3, "not found");
    db.cli_as(&op_a, &["approve-job", &b_gated], &[])
        .fails(3, "not found");
    let purged = db.cli_as(
        &op_a,
        &["purge-namespace", "b", "--confirm", "b", "--format", "json"],
        &[],
    );
    assert_ne!(purged.code, 0, "{}", purged.stdout);
    assert_eq!(
        db.one::<i64>("select count(*) from jobs where namespace = 'b'"),
        1
    );
    assert_eq!(
        db.one::<String>(&format!(
            "select status::text from jobs where id = '{b_gated}'"
        )),
        "awaiting_approval"
    );
    // Writing into B is refused outright.
    db.cli_as(
        &op_a,
        &[
            "enqueue-job",
            "--namespace",
            "b",
            "--target-agent",
            "y",
            "--subject",
            "x",
        ],
        &[],
    )
    .fails(77, "row-level security");
    assert_eq!(g.refusals(&op_a).len(), 2);
    // The operator of B approves it.
    let approved = db.cli_as(&op_b, &["approve-job", &b_gated], &[]).ok();
    assert_eq!(approved["status"], "queued");
    let history: Value = db.one(&format!(
        "select to_jsonb(h) from job_history h where job_id = '{b_gated}' and to_status = 'queued'"
    ));
    assert_eq!(history["login"], op_b.as_str());

    // Raw SQL as each login of A: nothing of B in any table, and no way to write there.
    let ledger_b = |db: &TestDb| -> i64 {
        db.one(
            "select (select count(*) from jobs where namespace = 'b') * 1000
                  + (select count(*) from events where namespace = 'b') * 100
                  + (select count(*) from job_history where namespace = 'b')
                  + (select coalesce(sum(priority), 0) from jobs where namespace = 'b') * 10000",
        )
    };
    let b_before = ledger_b(db);
    let tables = [
        "agents",
        "approval_gates",
        "dispatcher_heartbeats",
        "events",
        "ideas",
        "job_history",
        "jobs",
        "lane_controls",
        "memories",
        "memory_candidates",
        "memory_curators",
        "opportunities",
        "proactive_budget_refusals",
        "proactive_budgets",
        "standing_order_runs",
        "standing_orders",
    ];
    for login in [&op_a, &agent_a, &sup_a] {
        let mut c = db.client_as(login);
        for t in tables {
            let n: i64 = c
                .query_one(
                    &format!("select count(*) from {t} where namespace = 'b'"),
                    &[],
                )
                .unwrap()
                .get(0);
            assert_eq!(n, 0, "{login} sees {t} rows of b");
        }
        let n: i64 = c
            .query_one(
                &format!("select count(*) from job_history where job_id = '{b_gated}'"),
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(n, 0);
        let n: i64 = c
            .query_one("select count(*) from job_attempts a join jobs j on j.id = a.job_id where j.namespace = 'b'", &[])
            .unwrap()
            .get(0);
        assert_eq!(n, 0);
        let e = c
            .execute(
                "insert into events (namespace, topic) values ('b', 'forged')",
                &[],
            )
            .unwrap_err();
        assert_eq!(sqlstate(&e), "42501", "{login}: {e}");
        // Every table: an insert into B is refused (grant or policy); an update or delete
        // of B's rows is refused or touches nothing.
        for t in tables {
            // (memories: with sources, or its own rule refuses first)
            let sql = if t == "memories" {
                "insert into memories (namespace, visibility, source_refs) values ('b', 'private', '{\"jobs\": [\"j\"]}')"
                    .to_string()
            } else {
                format!("insert into {t} (namespace) values ('b')")
            };
            let e = c.execute(&sql, &[]).unwrap_err();
            assert_eq!(sqlstate(&e), "42501", "{login} insert into {t}: {e}");
            for sql in [
                format!("update {t} set namespace = namespace where namespace = 'b'"),
                format!("delete from {t} where namespace = 'b'"),
            ] {
                match c.execute(&sql, &[]) {
                    Ok(n) => assert_eq!(n, 0, "{login}: {sql}"),
                    Err(e) => assert_eq!(sqlstate(&e), "42501", "{login}: {sql}: {e}"),
                }
            }
        }
    }
    assert_eq!(ledger_b(db), b_before, "a login of A changed B");
    assert_eq!(
        db.one::<i64>("select count(*) from events where namespace = 'b' and topic = 'b.secret'"),
        1
    );
    assert_eq!(
        db.one::<i64>("select count(*) from jobs where namespace = 'b' and priority = 9"),
        0
    );
}

#[test]
fn agent_and_supervisor_logins_are_refused_every_operator_control() {
    let mut g = Guarded::new();
    let agent = g.grant("agent", "agent", &["default"], None);
    let sup = g.grant("sup", "supervisor", &["default"], None);
    let db = &g.db;
    db.cli(&["configure-agent", "worker", "--max-concurrency", "1"])
        .ok();
    db.cli(&["pause-agent", "sleeper", "--reason", "night"])
        .ok();
    let gated = s(
        &db.cli(&[
            "enqueue-job",
            "--target-agent",
            "worker",
            "--subject",
            "deal",
            "--requires-approval",
        ])
        .ok(),
        "id",
    );
    let queued = db.insert_job_in("queued").to_string();
    let dead = db.insert_job_in("dead").to_string();
    let blocked = db.insert_job_in("blocked").to_string();
    let fleet = std::env::temp_dir().join(format!("agentbus-login-fleet-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(fleet.join("worker")).unwrap();
    std::fs::write(
        fleet.join("fleet.toml"),
        "name = \"f\"\nnamespace = \"default\"\n",
    )
    .unwrap();
    std::fs::write(
        fleet.join("worker/agent.toml"),
        "id = \"worker\"\nmax_concurrency = 3\n",
    )
    .unwrap();
    let fleet_dir = fleet.to_str().unwrap().to_string();

    let controls: Vec<Vec<&str>> = vec![
        vec!["approve-job", &gated, "--reason", "ok"],
        vec!["reject-job", &gated, "--reason", "no"],
        vec!["cancel-job", &queued, "--reason", "no"],
        vec!["dead-letter-job", &queued, "--reason", "no"],
        vec![
            "reprioritize-job",
            &queued,
            "--priority",
            "1",
            "--reason",
            "x",
        ],
        vec!["retry-job", &dead, "--reason", "again"],
        vec!["unblock-job", &blocked, "--note", "go"],
        vec![
            "drain-agent",
            "worker",
            "--to",
            "sleeper",
            "--reason",
            "stop",
        ],
        vec!["pause-agent", "worker", "--reason", "mine now"],
        vec!["resume-agent", "sleeper"],
        vec!["configure-agent", "worker", "--max-concurrency", "9"],
        vec!["fleet", "sync", &fleet_dir],
        vec!["purge-namespace", "default", "--confirm", "default"],
    ];
    for login in [&agent, &sup] {
        for args in &controls {
            let before = ledger(db);
            let refused_before = g.refusals(login).len();
            let out = db.cli_as(login, args, &[("AGENTBUS_AGENT", "operator:boss")]);
            out.fails(77, "not permitted");
            assert_eq!(
                out.stderr
                    .lines()
                    .filter(|l| l.starts_with("agentbus: error:"))
                    .count(),
                1
            );
            assert_eq!(ledger(db), before, "{login} {args:?} wrote something");
            let refusals = g.refusals(login);
            assert_eq!(
                refusals.len(),
                refused_before + 1,
                "{login} {args:?}: no event"
            );
            let last = refusals.last().unwrap();
            assert_eq!(last["payload"]["login"], login.as_str());
            assert_eq!(last["payload"]["claimed_actor"], "operator:boss");
            assert_eq!(last["payload"]["command"], args[0]);
            assert_eq!(last["namespace"], "default");
        }
    }
    let _ = std::fs::remove_dir_all(&fleet);
    // The audit reports the burst.
    let audit = db.cli(&["audit", "--format", "json"]).json();
    for login in [&agent, &sup] {
        let burst =
            format!("(database login {login}) was refused 13 time(s) by the database guardrail");
        assert!(audit.to_string().contains(&burst), "{burst}: {audit}");
    }
}
