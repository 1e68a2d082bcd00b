//! The health views of the schema count what the ledger holds.

use crate::support::{s, TestDb};

#[test]
fn the_health_views_count_what_the_ledger_holds() {
    let db = TestDb::new();
    db.insert_job_in("queued");
    db.insert_job_in("dead");
    db.insert_job_in("blocked");
    let expired = db.insert_job_in("running");
    db.job(expired).lease_expired("1 minute");
    let run = db
        .cli(&[
            "start-standing-order",
            "--agent-id",
            "a",
            "--order-name",
            "o",
            "--scheduled-for",
            "2099-01-01T00:00:00Z",
        ])
        .ok();
    db.cli(&[
        "finish-standing-order",
        &s(&run, "id"),
        "--status",
        "no_work",
    ])
    .ok();
    db.client()
        .execute(
            "update standing_order_runs set scheduled_for = now() - interval '1 hour'",
            &[],
        )
        .unwrap();

    let row = db
        .client()
        .query_one(
            "select to_jsonb(v) from system_health_snapshot_v v where namespace = 'default'",
            &[],
        )
        .unwrap();
    let v: serde_json::Value = row.get(0);

    assert_eq!(v["queued_count"], 1);
    assert_eq!(v["dead_count"], 1);
    assert_eq!(v["blocked_count"], 1);
    assert_eq!(v["running_count"], 1);
    assert_eq!(v["expired_lease_count"], 1);
    assert_eq!(v["standing_no_work_last_24h"], 1);
    assert_eq!(v["dispatcher_count"], 0);
}
