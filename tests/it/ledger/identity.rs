//! Guardrails of identity and approval (sql/0012_guardrails.sql, 0013): raw SQL as agent
//! and supervisor logins, identity from the login's binding or the lease, curators acting
//! as themselves, a fleet running under its own logins, and the two-person rule.

use crate::support::logins::{ledger, refused, sqlstate, Guarded};
use crate::support::{s, TestDb};
use serde_json::Value;

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
        .fails(4, "--lease-token");
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
        // The supervisor hands the agent login's URL down (AGENTBUS_AGENT_DATABASE_URL).
        "#!/bin/sh\nexec agentbus complete-job --summary 'closed by the agent login' >/dev/null\n",
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
            ("AGENTBUS_AGENT_DATABASE_URL", agent_url.as_str()),
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
    let waiting = db
        .cli_as(&second, &["list-approvals", "--format", "json"], &[])
        .ok();
    assert_eq!(waiting[0]["approvals"], 1);
    assert_eq!(waiting[0]["approvals_required"], 2);
    assert_eq!(waiting[0]["approval_gate"], "gate contracts");
    let table = db
        .cli_as(&second, &["list-approvals", "--format", "table"], &[])
        .ok_text();
    assert!(
        table.contains("gate contracts") && table.contains("1 of 2"),
        "{table}"
    );
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
