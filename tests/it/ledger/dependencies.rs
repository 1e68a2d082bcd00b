//! Dependencies: waiting jobs become claimable when every dependency has succeeded, in the
//! same transaction; a dependency that dies blocks its dependents.

use std::sync::{Arc, Barrier};

use postgres::fallible_iterator::FallibleIterator;

use crate::support::{s, TestDb};

fn status(db: &TestDb, id: &str) -> String {
    s(
        &db.cli(&["show-job", id, "--format", "json"]).ok(),
        "status",
    )
}

/// Completes `id` with `token` on a new connection in another thread, once `barrier` opens.
fn complete_in_thread(
    db: &TestDb,
    id: String,
    token: String,
    barrier: Arc<Barrier>,
) -> std::thread::JoinHandle<agentbus::ledger::jobs::Job> {
    let url = db.url.clone();
    std::thread::spawn(move || {
        let mut client = crate::support::connect(&url);
        let fence = agentbus::ledger::jobs::Fence {
            lease_token: Some(token.parse().unwrap()),
            attempt: None,
            force: false,
        };
        let caller = agentbus::ledger::jobs::Caller {
            actor: "t".into(),
            command: "complete-job".into(),
        };
        barrier.wait();
        agentbus::db::transaction(&mut client, |tx| {
            agentbus::ledger::jobs::complete(
                tx,
                id.parse().unwrap(),
                fence,
                &caller,
                &Default::default(),
            )
        })
        .expect("complete")
    })
}

#[test]
fn a_diamond_runs_in_dependency_order() {
    let db = TestDb::new();
    let a = db.enqueue("a", "a", &[]);
    let b = db.enqueue("b", "b", &[&a]);
    let c = db.enqueue("c", "c", &[&a]);
    let d = db.enqueue("d", "d", &[&b, &c]);
    assert_eq!(
        [status(&db, &b), status(&db, &c), status(&db, &d)],
        ["waiting", "waiting", "waiting"]
    );
    let all = db
        .cli(&["claim-jobs", "--lease-owner", "d", "--limit", "10"])
        .ok();
    assert_eq!(all.as_array().unwrap().len(), 1, "only A is ready");

    let token_a = s(&all[0], "lease_token");
    db.cli(&["complete-job", &a, "--lease-token", &token_a])
        .ok();
    assert_eq!(
        [status(&db, &b), status(&db, &c), status(&db, &d)],
        ["queued", "queued", "waiting"]
    );

    let (_, tb) = db.claim_one("d", Some("b"));
    let (_, tc) = db.claim_one("d", Some("c"));
    db.cli(&["complete-job", &b, "--lease-token", &tb]).ok();
    assert_eq!(status(&db, &d), "waiting", "C has not succeeded yet");
    db.cli(&["complete-job", &c, "--lease-token", &tc]).ok();
    assert_eq!(status(&db, &d), "queued");

    let shown = db.cli(&["show-job", &d, "--format", "json"]).ok();
    assert_eq!(shown["depends_on"].as_array().unwrap().len(), 2);
    let history: Vec<&str> = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["to_status"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["waiting", "queued"]);
}

#[test]
fn a_dead_dependency_blocks_its_dependents_with_a_reason_naming_it() {
    let db = TestDb::new();
    let a = db.enqueue("a", "a", &[]);
    let b = db.enqueue("b", "b", &[&a]);
    let d = db.enqueue("d", "d", &[&b]);
    let (_, ta) = db.claim_one("d", Some("a"));
    db.cli(&["complete-job", &a, "--lease-token", &ta]).ok();
    let (_, tb) = db.claim_one("d", Some("b"));

    db.cli(&[
        "fail-job",
        &b,
        "--lease-token",
        &tb,
        "--last-error",
        "unrecoverable",
    ])
    .ok();

    let shown = db.cli(&["show-job", &d, "--format", "json"]).ok();
    assert_eq!(shown["status"], "blocked");
    assert!(
        s(&shown, "blocked_reason").contains(&b),
        "{}",
        shown["blocked_reason"]
    );
    assert!(s(&shown, "blocked_reason").contains("dead"));
}

#[test]
fn depending_on_finished_jobs_decides_the_first_state() {
    let db = TestDb::new();
    let done = db.insert_job_in("succeeded").to_string();
    let dead = db.insert_job_in("dead").to_string();
    let ready = db
        .cli(&[
            "enqueue-job",
            "--target-agent",
            "x",
            "--subject",
            "s",
            "--depends-on",
            &done,
        ])
        .ok();
    let blocked = db
        .cli(&[
            "enqueue-job",
            "--target-agent",
            "x",
            "--subject",
            "s",
            "--depends-on",
            &done,
            "--depends-on",
            &dead,
        ])
        .ok();
    assert_eq!(ready["status"], "queued");
    assert_eq!(blocked["status"], "blocked");
    assert!(s(&blocked, "blocked_reason").contains(&dead));
}

#[test]
fn two_dependencies_succeeding_at_the_same_moment_release_the_dependent() {
    // Repeated, because the hazard is a race between the two completing transactions.
    for _ in 0..10 {
        let db = TestDb::new();
        let b = db.enqueue("b", "b", &[]);
        let c = db.enqueue("c", "c", &[]);
        let d = db.enqueue("d", "d", &[&b, &c]);
        let (_, tb) = db.claim_one("d", Some("b"));
        let (_, tc) = db.claim_one("d", Some("c"));
        let barrier = Arc::new(Barrier::new(2));
        let handles = [
            complete_in_thread(&db, b.clone(), tb, Arc::clone(&barrier)),
            complete_in_thread(&db, c.clone(), tc, Arc::clone(&barrier)),
        ];
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(status(&db, &d), "queued");
    }
}

#[test]
fn a_dependency_finishing_while_a_dependent_is_enqueued_is_not_lost() {
    let db = TestDb::new();
    for round in 0..10 {
        let agent = format!("b{round}");
        let b = db.enqueue(&agent, &agent, &[]);
        let (_, tb) = db.claim_one("d", Some(&agent));
        let barrier = Arc::new(Barrier::new(2));
        let completer = complete_in_thread(&db, b.clone(), tb, Arc::clone(&barrier));
        barrier.wait();
        let d = db.enqueue("d", "d", &[&b]);
        completer.join().unwrap();
        assert_eq!(
            status(&db, &d),
            "queued",
            "round {round}: dependent left waiting"
        );
    }
}

#[test]
fn releasing_a_dependent_notifies_jobs_ready() {
    let db = TestDb::new();
    let a = db.enqueue("a", "a", &[]);
    let b = db.enqueue("b", "b", &[&a]);
    let (_, ta) = db.claim_one("d", Some("a"));
    let mut listener = db.client();
    listener.batch_execute("listen jobs_ready").unwrap();

    db.cli(&["complete-job", &a, "--lease-token", &ta]).ok();

    // Completing `a` also frees its agent's slot (a `slot_freed` hint); the release of `b`
    // must come as a notification of its own.
    let mut notes = listener.notifications();
    let mut iter = notes.timeout_iter(std::time::Duration::from_secs(5));
    let mut seen = Vec::new();
    let payload = loop {
        let note = iter
            .next()
            .expect("read notifications")
            .unwrap_or_else(|| panic!("no release of b within 5 s; saw {seen:?}"));
        assert_eq!(note.channel(), "jobs_ready");
        let payload: serde_json::Value = serde_json::from_str(note.payload()).unwrap();
        if payload["job_id"].as_str() == Some(b.as_str()) {
            break payload;
        }
        assert_eq!(payload["job_id"].as_str(), Some(a.as_str()));
        assert_eq!(payload["slot_freed"], true);
        seen.push(payload);
    };
    assert_eq!(payload["target_agent"], "b");
}
