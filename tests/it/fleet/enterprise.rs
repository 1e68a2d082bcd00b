//! The enterprise crew (agents/enterprise): one fleet folder synced once per business unit,
//! units kept apart by row security, close decisions and money left to humans.

use super::shipped::fleet_dir;
use crate::support::logins::Guarded;
use crate::support::s;

#[test]
fn the_enterprise_crew_runs_per_business_unit_with_human_only_close_decisions() {
    let mut g = Guarded::new();
    let dir = fleet_dir("enterprise");
    let dir = dir.to_str().unwrap();
    for unit in ["skyvera", "jigtree"] {
        let first =
            g.db.cli(&[
                "fleet",
                "sync",
                dir,
                "--namespace",
                unit,
                "--format",
                "json",
            ])
            .ok();
        assert_eq!(first["added"].as_array().unwrap().len(), 8 + 14, "{first}");
        let again =
            g.db.cli(&[
                "fleet",
                "sync",
                dir,
                "--namespace",
                unit,
                "--format",
                "json",
            ])
            .ok();
        for k in ["added", "changed", "disabled"] {
            assert_eq!(again[k], serde_json::json!([]), "{unit}: {k}");
        }
    }
    let gates: String = g.db.one(
        "select string_agg(agent_id || ':' || gate_name || ':' || approvals, ',' order by agent_id, gate_name)
           from approval_gates where namespace = 'skyvera'",
    );
    assert_eq!(
        gates,
        "collections:payment-plan:1,collections:write-off:2,sales:close-human-only:1,sales:past-negotiation:1,sales:send-contract:2"
    );
    // Each region's lead gets the pipeline report at 08:00 local time.
    let zones: String = g.db.one(
        "select string_agg(timezone, ',' order by timezone) from standing_orders
          where namespace = 'jigtree' and order_name like 'bizops-pipeline-%'",
    );
    assert_eq!(zones, "America/New_York,Asia/Singapore,Europe/London");

    let sales = g.grant("sales", "agent", &["skyvera"], Some("sales"));
    let lead = g.grant("lead", "operator", &["skyvera"], None);
    let legal = g.grant("legal", "operator", &["skyvera"], None);
    let db = &g.db;
    let enqueue = |login: &str, ns: &str, agent: &str, subject: &str, payload: &str| {
        db.cli_as(
            login,
            &[
                "enqueue-job",
                "--namespace",
                ns,
                "--target-agent",
                agent,
                "--subject",
                subject,
                "--payload",
                payload,
            ],
            &[],
        )
    };
    // The other unit's work exists, and the skyvera sales agent never sees it.
    let other = db
        .cli(&[
            "enqueue-job",
            "--namespace",
            "jigtree",
            "--target-agent",
            "sales",
            "--subject",
            "account.plan: globex",
        ])
        .ok();
    db.cli_as(&sales, &["show-job", &s(&other, "id")], &[])
        .fails(3, "not found");
    enqueue(&sales, "jigtree", "sales", "account.plan: x", "{}").fails(77, "");

    // Sales hands technical discovery down the chain; it cannot skip to collections.
    let sa = enqueue(
        &sales,
        "skyvera",
        "solution-architect",
        "solution.design: acme",
        "{}",
    )
    .ok();
    assert_eq!(sa["status"], "queued");
    enqueue(&sales, "skyvera", "collections", "ar.review: acme", "{}")
        .fails(77, "sales may hand work only to solution-architect, bizops");

    // Up to negotiation the agent moves alone; past it, or a close, waits for a human.
    let stage5 = enqueue(
        &sales,
        "skyvera",
        "sales",
        "opportunity.qualify: acme",
        r#"{"stage":5}"#,
    )
    .ok();
    assert_eq!(stage5["status"], "queued");
    let stage6 = enqueue(
        &sales,
        "skyvera",
        "sales",
        "advance: acme",
        r#"{"stage":6}"#,
    )
    .ok();
    assert_eq!(stage6["status"], "awaiting_approval");
    let close = enqueue(&sales, "skyvera", "sales", "Close: acme won", "{}").ok();
    assert_eq!(close["status"], "awaiting_approval");
    db.cli_as(&sales, &["approve-job", &s(&close, "id")], &[])
        .fails(77, "");
    let approved = db
        .cli_as(
            &lead,
            &["approve-job", &s(&close, "id"), "--reason", "signed"],
            &[],
        )
        .ok();
    assert_eq!(approved["status"], "queued");

    // A contract goes out with two distinct humans: the regional lead and legal.
    let contract = enqueue(&sales, "skyvera", "sales", "Send contract: acme", "{}").ok();
    let id = s(&contract, "id");
    let once = db.cli_as(&lead, &["approve-job", &id], &[]).ok();
    assert_eq!(once["status"], "awaiting_approval");
    let twice = db.cli_as(&lead, &["approve-job", &id], &[]);
    assert_ne!(twice.code, 0, "the same human twice is one approval");
    let both = db.cli_as(&legal, &["approve-job", &id], &[]).ok();
    assert_eq!(both["status"], "queued");
}
