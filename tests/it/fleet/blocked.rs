//! `[blocked]`: work blocked too long goes to the routing agent once per block, then to a
//! human; the routing agent re-routes or unblocks it; a job blocked on another job comes
//! back by itself when that one succeeds or is approved.

use super::FleetDir;
use crate::support::{s, TestDb};
use serde_json::Value;

const POLICY: &str = "name = \"ops\"\nnamespace = \"ops\"\n\n[blocked]\nroute_to = \"coordinator\"\nroute_after = \"30m\"\nescalate_after = \"4h\"\n";

fn fleet(db: &TestDb) -> FleetDir {
    let f = FleetDir::new();
    f.write("fleet.toml", POLICY);
    f.write("coordinator/agent.toml", "id = \"coordinator\"\n");
    f.write("research/agent.toml", "id = \"research\"\n");
    f.write("devops/agent.toml", "id = \"devops\"\n");
    db.cli(&["fleet", "sync", f.path()]).ok();
    f
}

/// Claims the next job of `agent` in ops: (id, lease token).
fn claim(db: &TestDb, agent: &str) -> (String, String) {
    let got = db
        .cli(&[
            "claim-jobs",
            "--namespace",
            "ops",
            "--lease-owner",
            "sup",
            "--target-agent",
            agent,
        ])
        .ok();
    let job = got[0].clone();
    (s(&job, "id"), s(&job, "lease_token"))
}

/// A job for `agent`, claimed and blocked with `reason`; returns its id.
fn blocked_job(db: &TestDb, agent: &str, reason: &str) -> String {
    let id = s(
        &db.cli(&[
            "enqueue-job",
            "--namespace",
            "ops",
            "--target-agent",
            agent,
            "--subject",
            "compare vendor prices",
        ])
        .ok(),
        "id",
    );
    let (claimed, token) = claim(db, agent);
    assert_eq!(claimed, id);
    db.cli(&[
        "block-job",
        &id,
        "--lease-token",
        &token,
        "--blocked-reason",
        reason,
    ])
    .ok();
    id
}

/// Moves the job's current block `ago` into the past (a fake clock for the policy).
fn blocked_for(db: &TestDb, id: &str, ago: &str) {
    db.client()
        .batch_execute(&format!(
            "set session_replication_role = replica;
             update job_history set created_at = now() - interval '{ago}'
              where job_id = '{id}' and to_status = 'blocked'
                and id = (select max(id) from job_history where job_id = '{id}' and to_status = 'blocked')"
        ))
        .unwrap();
}

fn route(db: &TestDb) -> Vec<Value> {
    db.cli(&["route-blocked", "--namespace", "ops"])
        .ok()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn blocked_work_is_routed_once_per_block_then_escalated_to_a_human() {
    let db = TestDb::new();
    let _f = fleet(&db);
    let id = blocked_job(
        &db,
        "research",
        "the vendor portal needs a login nobody gave us",
    );
    assert!(route(&db).is_empty(), "not before route_after");
    blocked_for(&db, &id, "31 minutes");
    let routed = route(&db);
    assert_eq!(routed.len(), 1, "{routed:?}");
    assert_eq!(routed[0]["action"], "routed");
    let triage = db
        .cli(&["show-job", &s(&routed[0], "new_job_id"), "--format", "json"])
        .ok();
    let triage = if triage.get("job").is_some() {
        triage["job"].clone()
    } else {
        triage
    };
    assert_eq!(triage["target_agent"], "coordinator");
    assert_eq!(triage["job_type"], "blocked.triage");
    assert_eq!(triage["parent_job_id"], id.as_str());
    assert!(
        s(&triage, "subject").starts_with("blocked.replan: research:"),
        "{triage}"
    );
    assert_eq!(
        triage["payload"]["blocked_job"]["blocked_reason"],
        "the vendor portal needs a login nobody gave us"
    );
    assert!(route(&db).is_empty(), "routed once per block");
    let status = db
        .cli(&["status", "--namespace", "ops", "--format", "json"])
        .ok();
    assert_eq!(status["blocked_routing"]["route_to"], "coordinator");
    assert_eq!(status["blocked_routing"]["blocked"], 1);
    assert_eq!(status["blocked_routing"]["routed"], 1);
    assert_eq!(status["blocked_routing"]["escalated"], 0);
    let table = db
        .cli(&["status", "--namespace", "ops", "--format", "table"])
        .ok_text();
    assert!(
        table.contains("1 blocked · 1 routed to coordinator"),
        "{table}"
    );

    blocked_for(&db, &id, "5 hours");
    let escalated = route(&db);
    assert_eq!(escalated.len(), 1, "{escalated:?}");
    assert_eq!(escalated[0]["action"], "escalated");
    let waiting = db
        .cli(&["list-approvals", "--namespace", "ops", "--format", "json"])
        .ok();
    assert_eq!(waiting.as_array().unwrap().len(), 1);
    assert!(s(&waiting[0], "subject").starts_with("Escalation: research blocked since"));
    assert!(route(&db).is_empty(), "escalated once per block");
    let topics: String = db.one(
        "select string_agg(topic, ',' order by id) from events where topic like 'job.blocked.%'",
    );
    assert_eq!(topics, "job.blocked.routed,job.blocked.escalated");

    // The routing agent moves the work; blocked again later, it is routed again.
    let moved = db
        .cli(&[
            "reroute-job",
            &id,
            "--to",
            "devops",
            "--reason",
            "an access problem: devops owns logins",
        ])
        .ok();
    assert_eq!(moved["status"], "queued");
    assert_eq!(moved["target_agent"], "devops");
    let (again, token) = claim(&db, "devops");
    assert_eq!(again, id);
    db.cli(&[
        "block-job",
        &id,
        "--lease-token",
        &token,
        "--blocked-reason",
        "still no login",
    ])
    .ok();
    blocked_for(&db, &id, "1 hour");
    assert_eq!(route(&db).len(), 1, "a new block is routed again");
    let trace = db.cli(&["trace", &id, "--format", "table"]).ok_text();
    assert!(
        trace.contains("reroute-job: from research to devops"),
        "{trace}"
    );
    assert!(trace.contains("blocked.replan"), "{trace}");
}

#[test]
fn reroute_refuses_what_is_not_blocked_and_agents_that_do_not_exist() {
    let db = TestDb::new();
    let _f = fleet(&db);
    let id = blocked_job(&db, "research", "missing the budget figure");
    db.cli(&["reroute-job", &id, "--to", "nobody", "--reason", "x"])
        .fails(3, "no agent nobody");
    // Unblocked where it is, with what was missing.
    let back = db
        .cli(&[
            "reroute-job",
            &id,
            "--payload",
            r#"{"budget": 12000}"#,
            "--reason",
            "finance answered",
        ])
        .ok();
    assert_eq!(back["status"], "queued");
    assert_eq!(back["target_agent"], "research");
    assert_eq!(back["payload"]["budget"], 12000);
    db.cli(&["reroute-job", &id, "--to", "devops", "--reason", "x"])
        .fails(4, "not blocked");
    db.cli(&["reroute-job", &id, "--reason", " "]).fails(2, "");
}

#[test]
fn a_job_blocked_on_another_comes_back_when_that_one_succeeds_or_is_approved() {
    let db = TestDb::new();
    let _f = fleet(&db);
    let review = s(
        &db.cli(&[
            "enqueue-job",
            "--namespace",
            "ops",
            "--target-agent",
            "devops",
            "--subject",
            "security review",
        ])
        .ok(),
        "id",
    );
    let id = s(
        &db.cli(&[
            "enqueue-job",
            "--namespace",
            "ops",
            "--target-agent",
            "research",
            "--subject",
            "ship it",
        ])
        .ok(),
        "id",
    );
    let (_, token) = claim(&db, "research");
    db.cli(&[
        "block-job",
        &id,
        "--lease-token",
        &token,
        "--blocked-reason",
        "waiting for the review",
        "--blocked-on",
        &review,
    ])
    .ok();
    let (_, rtoken) = claim(&db, "devops");
    db.cli(&[
        "complete-job",
        &review,
        "--lease-token",
        &rtoken,
        "--summary",
        "ok",
    ])
    .ok();
    let status: String = db.one(&format!("select status::text from jobs where id = '{id}'"));
    assert_eq!(status, "queued", "unblocked by the review's success");
    let reason: String = db.one(&format!(
        "select reason from job_history where job_id = '{id}' order by id desc limit 1"
    ));
    assert!(reason.contains("succeeded"), "{reason}");

    // Blocked on an approval: approving it unblocks.
    let gate = s(
        &db.cli(&[
            "enqueue-job",
            "--namespace",
            "ops",
            "--target-agent",
            "devops",
            "--subject",
            "spend 5k",
            "--requires-approval",
        ])
        .ok(),
        "id",
    );
    let (_, token) = claim(&db, "research");
    db.cli(&[
        "block-job",
        &id,
        "--lease-token",
        &token,
        "--blocked-reason",
        "needs the spend approved",
        "--blocked-on",
        &gate,
    ])
    .ok();
    db.cli(&["approve-job", &gate]).ok();
    let status: String = db.one(&format!("select status::text from jobs where id = '{id}'"));
    assert_eq!(status, "queued", "unblocked by the approval");

    // Nothing to wait for: refused, nothing written.
    let (_, token) = claim(&db, "research");
    db.cli(&[
        "block-job",
        &id,
        "--lease-token",
        &token,
        "--blocked-reason",
        "x",
        "--blocked-on",
        &review,
    ])
    .fails(4, "already succeeded");
}

#[test]
fn with_the_guardrails_on_only_the_routing_agent_or_an_operator_reroutes() {
    let mut g = crate::support::logins::Guarded::new();
    let _f = fleet(&g.db);
    let coordinator = g.grant("coord", "agent", &["ops"], Some("coordinator"));
    let research = g.grant("research", "agent", &["ops"], Some("research"));
    let elsewhere = g.grant("other", "operator", &["sales"], None);
    let id = blocked_job(&g.db, "research", "stuck");
    let db = &g.db;
    db.cli_as(
        &research,
        &["reroute-job", &id, "--to", "devops", "--reason", "mine"],
        &[],
    )
    .fails(77, "only the routing agent (coordinator)");
    db.cli_as(
        &elsewhere,
        &["reroute-job", &id, "--to", "devops", "--reason", "x"],
        &[],
    )
    .fails(3, "");
    db.cli_as(&research, &["route-blocked", "--format", "json"], &[])
        .ok();
    let moved = db
        .cli_as(
            &coordinator,
            &[
                "reroute-job",
                &id,
                "--to",
                "devops",
                "--reason",
                "devops owns it",
            ],
            &[],
        )
        .ok();
    assert_eq!(moved["target_agent"], "devops");
}

#[test]
fn fleet_validate_checks_the_blocked_policy() {
    let db = TestDb::new();
    let f = FleetDir::new();
    f.write(
        "fleet.toml",
        "name = \"x\"\n[blocked]\nroute_to = \"nobody\"\nroute_after = \"soon\"\nescalate_after = \"1m\"\n",
    );
    let out = db.cli(&["fleet", "validate", f.path()]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("route_after \"soon\" is not a duration"),
        "{}",
        out.stderr
    );
    f.write(
        "fleet.toml",
        "name = \"x\"\n[blocked]\nroute_to = \"nobody\"\nroute_after = \"2h\"\nescalate_after = \"1h\"\n",
    );
    let out = db.cli(&["fleet", "validate", f.path()]);
    assert!(
        out.stderr.contains("escalate_after must be longer"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("blocked.route_to \"nobody\" is not an agent"),
        "{}",
        out.stderr
    );
}
