//! purge-namespace: one namespace only, and only when confirmed and idle.

use crate::support::{s, TestDb};

#[test]
fn purge_namespace_deletes_one_namespace_only_when_confirmed_and_idle() {
    let db = TestDb::new();
    let keep = db.enqueue("writer", "keep me", &[]);
    let gone = s(
        &db.cli(&[
            "enqueue-job",
            "--namespace",
            "demo",
            "--target-agent",
            "writer",
            "--subject",
            "demo job",
        ])
        .ok(),
        "id",
    );
    db.cli(&[
        "emit-event",
        "--namespace",
        "demo",
        "--topic",
        "t",
        "--source-job-id",
        &gone,
        "--payload",
        "{}",
    ])
    .ok();
    let before = db.snapshot();
    db.cli(&["purge-namespace", "demo"])
        .fails(2, "--confirm demo");
    db.cli(&["purge-namespace", "demo", "--confirm", "dmeo"])
        .fails(2, "--confirm demo");
    db.client()
        .execute(
            "insert into dispatcher_heartbeats (namespace, dispatcher_id, last_seen) values ('demo', 'sup', now())",
            &[],
        )
        .unwrap();
    db.cli(&["purge-namespace", "demo", "--confirm", "demo"])
        .fails(4, "supervisor sup is running");
    db.client()
        .execute("delete from dispatcher_heartbeats", &[])
        .unwrap();
    assert_eq!(db.snapshot(), before);

    let out = db
        .cli(&["purge-namespace", "demo", "--confirm", "demo"])
        .ok();
    assert_eq!(out["deleted"]["jobs"], 1);
    assert_eq!(out["deleted"]["events"], 1);
    let left: i64 = db.one("select count(*) from jobs");
    assert_eq!(left, 1);
    db.cli(&["show-job", &keep]).ok();
}
