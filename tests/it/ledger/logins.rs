//! Guardrails PostgreSQL enforces per login (sql/0012_guardrails.sql): roles, row security
//! by namespace, identity from the binding or the lease, and refusals, each tried as the
//! login it concerns, through the CLI and through raw SQL.

use crate::support::{admin_url, connect, s, TestDb};
use serde_json::Value;

/// A database with the roles installed, and the logins of one test. Roles belong to the
/// cluster, so logins are named after the test database; dropping this drops the
/// database, then the logins.
struct Guarded {
    db: TestDb,
    logins: Vec<String>,
}

impl Guarded {
    fn new() -> Guarded {
        let db = TestDb::new();
        let installed = db.cli(&["roles", "install", "--format", "json"]).ok();
        assert_eq!(installed["grants_applied"], true);
        Guarded {
            db,
            logins: Vec::new(),
        }
    }

    /// Grants `short` (made unique) as `class` in `namespaces`; returns the login.
    fn grant(
        &mut self,
        short: &str,
        class: &str,
        namespaces: &[&str],
        agent: Option<&str>,
    ) -> String {
        let login = format!("{}_{short}", self.db.name.trim_start_matches("agentbus_"));
        let mut args = vec!["roles", "grant", login.as_str(), "--as", class];
        for ns in namespaces {
            args.extend(["--namespace", ns]);
        }
        if let Some(a) = agent {
            args.extend(["--agent", a]);
        }
        self.logins.push(login.clone());
        let granted = self.db.cli(&args).ok();
        assert_eq!(granted["class"], class);
        assert_eq!(granted["in_group"], true);
        login
    }

    /// The `guardrail.refused` events recorded for `login`.
    fn refusals(&self, login: &str) -> Vec<Value> {
        let mut c = self.db.client();
        c.query(
            "select to_jsonb(e) from events e where topic = 'guardrail.refused' and login = $1 order by id",
            &[&login],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        let mut admin = connect(&admin_url());
        let _ = admin.batch_execute(&format!(
            "drop database if exists {} with (force)",
            self.db.name
        ));
        for login in &self.logins {
            let _ = admin.batch_execute(&format!("drop role if exists {login}"));
        }
    }
}

/// Everything but the events (refusals add events, and only events).
fn ledger(db: &TestDb) -> Value {
    let mut snap = db.snapshot();
    if let Some(o) = snap.as_object_mut() {
        o.remove("events");
    }
    snap
}

fn sqlstate(e: &postgres::Error) -> String {
    e.code().map(|c| c.code().to_string()).unwrap_or_default()
}

/// Asserts that `sql` fails with SQLSTATE `state` on `client`.
fn refused(client: &mut postgres::Client, sql: &str, state: &str) {
    let e = client.execute(sql, &[]).unwrap_err();
    assert_eq!(sqlstate(&e), state, "{sql}: {e}");
}

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
        let updated = c
            .execute("update jobs set priority = 9 where namespace = 'b'", &[])
            .unwrap_or(0);
        assert_eq!(updated, 0);
        let deleted = c
            .execute("delete from events where namespace = 'b'", &[])
            .unwrap_or(0);
        assert_eq!(deleted, 0);
    }
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
    assert!(audit.to_string().contains("guardrail_refused"), "{audit}");
}

#[test]
fn raw_sql_as_agent_and_supervisor_logins_is_held_to_the_same_rules() {
    let mut g = Guarded::new();
    let agent = g.grant("agent", "agent", &["default"], None);
    let sup = g.grant("sup", "supervisor", &["default"], None);
    let db = &g.db;
    db.cli(&["pause-agent", "sleeper", "--reason", "night"])
        .ok();
    let dead = db.insert_job_in("dead");
    let gated = db.insert_job_in("awaiting_approval");
    let leased = db.insert_job_in("leased");
    let token: uuid::Uuid = db.one(&format!(
        "select lease_token from jobs where id = '{leased}'"
    ));
    let before = ledger(db);

    let mut a = db.client_as(&agent);
    for (sql, state) in [
        ("insert into agents (namespace, agent_id) values ('default', 'forged')", "42501"),
        ("update agents set paused = false", "42501"),
        ("delete from jobs", "42501"),
        ("insert into job_history (job_id, namespace, to_status, attempt_no, actor) select id, namespace, 'succeeded', 1, 'x' from jobs limit 1", "42501"),
        ("update job_history set actor = 'x'", "42501"),
        ("insert into memory_curators (namespace, agent_id) values ('default', 'me')", "42501"),
        ("insert into agentbus_logins (login, class, namespaces) values ('me', 'operator', '{default}')", "42501"),
        ("insert into jobs (target_agent, job_type, subject, status) values ('w', 't', 's', 'succeeded')", "AB003"),
    ] {
        refused(&mut a, sql, state);
    }
    for id in [dead, gated, leased] {
        let e = a
            .execute("update jobs set status = 'queued' where id = $1", &[&id])
            .unwrap_err();
        assert_eq!(sqlstate(&e), "AB003", "{e}");
    }
    let seen: i64 = a
        .query_one("select count(*) from agentbus_logins", &[])
        .unwrap()
        .get(0);
    assert_eq!(seen, 1, "an agent login sees only its own binding");

    let mut s_ = db.client_as(&sup);
    for (sql, state) in [
        ("update agents set max_concurrency = 9", "42501"),
        ("update agents set paused = false where agent_id = 'sleeper'", "AB003"),
        ("delete from jobs", "42501"),
        ("insert into approval_gates (namespace, agent_id, gate_name, source) values ('default', 'w', 'g', 'x')", "42501"),
    ] {
        refused(&mut s_, sql, state);
    }
    for (id, to) in [(gated, "queued"), (dead, "queued"), (gated, "cancelled")] {
        let e = s_
            .execute(
                &format!("update jobs set status = '{to}' where id = $1"),
                &[&id],
            )
            .unwrap_err();
        assert_eq!(sqlstate(&e), "AB003", "{e}");
    }
    assert_eq!(ledger(db), before, "a refused statement wrote something");

    // With the lease, the agent login may move the job it holds, and only that one.
    a.batch_execute(&format!("set agentbus.lease_token = '{token}'"))
        .unwrap();
    let n = a
        .execute(
            "update jobs set status = 'running' where id = $1",
            &[&leased],
        )
        .unwrap();
    assert_eq!(n, 1);
    let e = a
        .execute("update jobs set priority = 1 where id = $1", &[&leased])
        .unwrap_err();
    assert_eq!(sqlstate(&e), "AB003", "{e}");
    let history: Value = db.one(&format!(
        "select to_jsonb(h) from job_history h where job_id = '{leased}' and to_status = 'running'"
    ));
    assert_eq!(history["login"], agent.as_str());
}

fn handoff_fleet(db: &TestDb) {
    let dir =
        std::env::temp_dir().join(format!("agentbus-login-handoffs-{}", uuid::Uuid::new_v4()));
    for (rel, text) in [
        ("fleet.toml", "name = \"h\"\nnamespace = \"default\"\n"),
        (
            "writer/agent.toml",
            "id = \"writer\"\nhandoffs = [\"rep\"]\n",
        ),
        ("rep/agent.toml", "id = \"rep\"\n"),
        ("closer/agent.toml", "id = \"closer\"\n"),
    ] {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    db.cli(&["fleet", "sync", dir.to_str().unwrap()]).ok();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn identity_comes_from_the_login_binding_or_the_lease_never_from_the_claim() {
    let mut g = Guarded::new();
    let writer = g.grant("writer", "agent", &["default"], Some("writer"));
    let rep = g.grant("rep", "agent", &["default"], Some("rep"));
    let gateway = g.grant("gateway", "agent", &["default"], None);
    let db = &g.db;
    handoff_fleet(db);

    // Bound: whatever --actor and --source-agent say, the job comes from writer.
    let job = db
        .cli_as(
            &writer,
            &[
                "--actor",
                "operator:boss",
                "enqueue-job",
                "--target-agent",
                "rep",
                "--subject",
                "call them",
                "--source-agent",
                "closer",
            ],
            &[],
        )
        .ok();
    assert_eq!(job["source_agent"], "writer");
    let history: Value = db.one(&format!(
        "select to_jsonb(h) from job_history h where job_id = '{}'",
        s(&job, "id")
    ));
    assert_eq!(history["actor"], "operator:boss", "the claim is kept");
    assert_eq!(history["login"], writer.as_str(), "next to the real login");
    let event = db
        .cli_as(
            &writer,
            &[
                "emit-event",
                "--topic",
                "deal.found",
                "--source-agent",
                "closer",
            ],
            &[],
        )
        .ok();
    assert_eq!(event["source_agent"], "writer");
    assert_eq!(event["claimed_source_agent"], "closer");
    assert_eq!(event["login"], writer.as_str());

    // Hand-offs follow the binding, with or without a parent job.
    let before = ledger(db);
    db.cli_as(
        &writer,
        &[
            "enqueue-job",
            "--target-agent",
            "closer",
            "--subject",
            "close it",
        ],
        &[("AGENTBUS_AGENT", "rep")],
    )
    .fails(
        77,
        "hand-off refused: writer may hand work only to rep, not to closer",
    );
    assert_eq!(ledger(db), before);
    let refused = g.refusals(&writer);
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["payload"]["claimed_actor"], "rep");

    // Unbound (one login for a whole gateway): the lease names the agent.
    let (writer_job, token) = {
        let id = db.enqueue("writer", "research", &[]);
        let got = db
            .cli(&[
                "claim-jobs",
                "--lease-owner",
                "sup",
                "--target-agent",
                "writer",
            ])
            .ok();
        assert_eq!(got[0]["id"], id.as_str());
        (id, s(&got[0], "lease_token"))
    };
    let in_run = [
        ("AGENTBUS_LEASE_TOKEN", token.as_str()),
        ("AGENTBUS_AGENT", "closer"),
    ];
    db.cli_as(
        &gateway,
        &[
            "enqueue-job",
            "--target-agent",
            "closer",
            "--subject",
            "close it",
        ],
        &in_run,
    )
    .fails(77, "hand-off refused: writer may hand work only to rep");
    let follow = db
        .cli_as(
            &gateway,
            &["enqueue-job", "--target-agent", "rep", "--subject", "call"],
            &in_run,
        )
        .ok();
    assert_eq!(follow["source_agent"], "writer");

    // Closing needs the lease; a login bound to another agent cannot use it.
    db.cli_as(
        &rep,
        &["complete-job", &writer_job, "--lease-token", &token],
        &[],
    )
    .fails(77, "bound to agent");
    db.cli_as(&gateway, &["complete-job", &writer_job], &[])
        .fails(77, "lease");
    let done = db
        .cli_as(
            &gateway,
            &[
                "complete-job",
                &writer_job,
                "--lease-token",
                &token,
                "--summary",
                "done",
            ],
            &[],
        )
        .ok();
    assert_eq!(done["status"], "succeeded");
}

#[test]
fn only_the_curator_itself_promotes_into_shared_memory() {
    let mut g = Guarded::new();
    let gateway = g.grant("gateway", "agent", &["default"], None);
    let knowledge = g.grant("knowledge", "agent", &["default"], Some("knowledge"));
    let db = &g.db;
    db.client()
        .execute(
            "insert into memory_curators (namespace, agent_id) values ('default', 'knowledge')",
            &[],
        )
        .unwrap();
    let candidate = |login: &str, subject: &str| {
        s(
            &db.cli_as(
                login,
                &[
                    "create-memory-candidate",
                    "--source-agent",
                    "ops",
                    "--kind",
                    "lesson",
                    "--scope",
                    "global",
                    "--subject-key",
                    subject,
                    "--title",
                    "Deploys need a backup first",
                    "--body",
                    "Seen twice.",
                    "--source-refs",
                    r#"{"jobs": ["job-1"]}"#,
                    "--confidence-score",
                    "4",
                ],
                &[],
            )
            .ok(),
            "id",
        )
    };
    let c = candidate(&gateway, "deploys:backup");
    let before = ledger(db);
    db.cli_as(
        &gateway,
        &[
            "promote-memory-candidate",
            "--candidate-id",
            &c,
            "--promoted-by",
            "knowledge",
        ],
        &[],
    )
    .fails(77, "may not promote into shared memory");
    db.cli_as(
        &gateway,
        &[
            "--actor",
            "operator:boss",
            "promote-memory-candidate",
            "--candidate-id",
            &c,
        ],
        &[],
    )
    .fails(77, "may not promote into shared memory");
    assert_eq!(ledger(db), before);
    let promoted = db
        .cli_as(
            &knowledge,
            &["promote-memory-candidate", "--candidate-id", &c],
            &[],
        )
        .ok();
    assert_eq!(promoted["memory"]["status"], "active");
}

#[test]
fn a_fleet_runs_end_to_end_under_its_own_logins() {
    let mut g = Guarded::new();
    let sup = g.grant("sup", "supervisor", &["default"], None);
    let gateway = g.grant("gateway", "agent", &["default"], None);
    let op = g.grant("op", "operator", &["default"], None);
    let db = &g.db;
    let agent_url = crate::support::url_as(&db.url, &gateway);
    let job = s(
        &db.cli_as(
            &op,
            &[
                "enqueue-job",
                "--target-agent",
                "closer",
                "--subject",
                "close acme",
            ],
            &[],
        )
        .ok(),
        "id",
    );
    let dir = std::env::temp_dir().join(format!("agentbus-login-run-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("agent.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nAGENTBUS_DATABASE_URL='{agent_url}' exec agentbus complete-job --summary 'closed by the agent login' >/dev/null\n"),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let sup_url = crate::support::url_as(&db.url, &sup);
    let out = db.supervise_once(
        &[
            "--exec",
            script.to_str().unwrap(),
            "--work-dir",
            dir.to_str().unwrap(),
        ],
        &[
            ("AGENTBUS_DATABASE_URL", sup_url.as_str()),
            ("DATABASE_URL", sup_url.as_str()),
        ],
        std::time::Duration::from_secs(60),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    let history: Vec<Value> = db
        .client()
        .query(
            "select to_jsonb(h) from job_history h where job_id = $1 order by id",
            &[&uuid::Uuid::parse_str(&job).unwrap()],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let logins: Vec<(String, String)> = history
        .iter()
        .map(|h| (s(h, "to_status"), s(h, "login")))
        .collect();
    assert_eq!(
        logins,
        vec![
            ("queued".to_string(), op.clone()),
            ("leased".to_string(), sup.clone()),
            ("running".to_string(), sup.clone()),
            ("succeeded".to_string(), gateway.clone()),
        ],
        "{history:?}"
    );
}

#[test]
fn a_two_person_gate_releases_a_job_only_after_two_distinct_operator_logins_approve() {
    let mut g = Guarded::new();
    let first = g.grant("first", "operator", &["default"], None);
    let second = g.grant("second", "operator", &["default"], None);
    let db = &g.db;
    let dir = std::env::temp_dir().join(format!("agentbus-two-person-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(dir.join("deals")).unwrap();
    std::fs::write(
        dir.join("fleet.toml"),
        "name = \"t\"\nnamespace = \"default\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("deals/agent.toml"),
        "id = \"deals\"\n[[approval_gates]]\nname = \"contracts\"\nsubject = \"Contract:*\"\napprovals = 2\n",
    )
    .unwrap();
    db.cli(&["fleet", "sync", dir.to_str().unwrap()]).ok();
    // Without roles (one owner), distinct names count: the honour system.
    let single = TestDb::new();
    single.cli(&["fleet", "sync", dir.to_str().unwrap()]).ok();
    let held = s(
        &single
            .cli(&[
                "enqueue-job",
                "--target-agent",
                "deals",
                "--subject",
                "Contract: x",
            ])
            .ok(),
        "id",
    );
    let one = single
        .cli(&["--actor", "operator:ann", "approve-job", &held])
        .ok();
    assert_eq!(one["status"], "awaiting_approval");
    let two = single
        .cli(&["--actor", "operator:bob", "approve-job", &held])
        .ok();
    assert_eq!(two["status"], "queued");
    std::fs::write(
        dir.join("deals/agent.toml"),
        "id = \"deals\"\n[[approval_gates]]\nname = \"contracts\"\napprovals = 9\n",
    )
    .unwrap();
    db.cli(&["fleet", "validate", dir.to_str().unwrap()])
        .fails(2, "approvals must be a whole number from 1 to 5");
    let _ = std::fs::remove_dir_all(&dir);

    let job = db
        .cli_as(
            &first,
            &[
                "enqueue-job",
                "--target-agent",
                "deals",
                "--subject",
                "Contract: acme",
            ],
            &[],
        )
        .ok();
    assert_eq!(job["status"], "awaiting_approval");
    assert_eq!(job["approvals_required"], 2);
    let id = s(&job, "id");

    let once = db
        .cli_as(&first, &["approve-job", &id, "--reason", "terms ok"], &[])
        .ok();
    assert_eq!(once["status"], "awaiting_approval");
    let before = ledger(db);
    db.cli_as(
        &first,
        &["--actor", "someone-else", "approve-job", &id],
        &[],
    )
    .ok();
    assert_eq!(
        db.one::<String>(&format!("select status::text from jobs where id = '{id}'")),
        "awaiting_approval",
        "a second name from the same login is not a second person"
    );
    db.cli_as(&first, &["approve-job", &id], &[])
        .fails(4, "already approved");
    let mut raw = db.client_as(&first);
    refused(
        &mut raw,
        &format!("update jobs set status = 'queued' where id = '{id}'"),
        "AB003",
    );
    let after = ledger(db);
    assert_eq!(after["jobs"], before["jobs"]);

    let released = db.cli_as(&second, &["approve-job", &id], &[]).ok();
    assert_eq!(released["status"], "queued");
    let approvers: Vec<String> = db
        .client()
        .query(
            "select distinct login from job_approvals where job_id = $1 order by 1",
            &[&uuid::Uuid::parse_str(&id).unwrap()],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut expected = vec![first.clone(), second.clone()];
    expected.sort();
    assert_eq!(approvers, expected);
}
