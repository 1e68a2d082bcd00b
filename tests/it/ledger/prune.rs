//! agentbus prune: finished work leaves the live tables in bounded batches; nothing
//! unfinished, and nothing unfinished work points at, ever moves; archived work is still
//! traced.

use crate::support::logins::Guarded;
use crate::support::{s, TestDb};
use serde_json::Value;

/// Enqueues, claims and completes one job of `agent` (emitting one event from it);
/// returns its id.
fn done(db: &TestDb, agent: &str, subject: &str) -> String {
    let id = db.enqueue(agent, subject, &[]);
    let (claimed, token) = db.claim_one("sup", Some(agent));
    assert_eq!(claimed, id);
    db.cli(&["emit-event", "--topic", "work.done", "--source-job-id", &id])
        .ok();
    db.cli(&["complete-job", &id, "--lease-token", &token]).ok();
    id
}

/// Makes job `id` look as if it finished (and was created) `days` days ago.
fn age(db: &TestDb, id: &str, days: i32) {
    db.client()
        .execute(
            "update jobs set completed_at = now() - make_interval(days => $2),
                             created_at = now() - make_interval(days => $2 + 1)
              where id = $1::text::uuid",
            &[&id, &days],
        )
        .expect("age job");
}

/// `agentbus prune --older-than 30d EXTRA --format json`, which must succeed.
fn prune(db: &TestDb, extra: &[&str]) -> Value {
    let mut args = vec!["prune", "--older-than", "30d"];
    args.extend_from_slice(extra);
    args.extend(["--format", "json"]);
    db.cli(&args).ok()
}

fn count(db: &TestDb, sql: &str) -> i64 {
    db.one(sql)
}

fn live(db: &TestDb, id: &str) -> bool {
    db.one::<i64>(&format!("select count(*) from jobs where id = '{id}'")) == 1
}

#[test]
fn prune_moves_old_finished_work_only_and_the_archive_still_traces_it() {
    let db = TestDb::new();
    // Old and finished, nothing points at it: moves.
    let old = done(&db, "worker", "old work");
    age(&db, &old, 40);
    // Old and finished, but its child is still queued: held, with the child.
    let parent = done(&db, "worker", "old parent");
    age(&db, &parent, 40);
    let child = s(
        &db.cli(&[
            "enqueue-job",
            "--target-agent",
            "worker",
            "--subject",
            "child",
            "--parent-job-id",
            &parent,
        ])
        .ok(),
        "id",
    );
    // Old and finished, but an unfinished job waits for it: held.
    let waited = done(&db, "depended-on", "old dependency");
    age(&db, &waited, 40);
    let waiting = db.enqueue("other", "waits", &[]);
    db.client()
        .execute(
            "insert into job_dependencies (job_id, depends_on_job_id) values ($1::text::uuid, $2::text::uuid)",
            &[&waiting, &waited],
        )
        .expect("dependency");
    // Old but unfinished: never moves.
    let stuck = db.enqueue("idle-agent", "queued for weeks", &[]);
    db.client()
        .execute(
            "update jobs set created_at = now() - interval '60 days' where id = $1::text::uuid",
            &[&stuck],
        )
        .expect("age queued job");
    // Finished recently: stays.
    let recent = done(&db, "recent", "recent work");
    // Events of no job: the older of one topic moves, the newest of each topic stays.
    for _ in 0..2 {
        db.cli(&["emit-event", "--topic", "ops.note"]).ok();
    }
    db.client()
        .execute(
            "update events set created_at = now() - interval '50 days' where topic = 'ops.note'",
            &[],
        )
        .expect("age events");
    db.client()
        .execute(
            "update events set created_at = now() - interval '45 days'
              where id = (select max(id) from events where topic = 'ops.note')",
            &[],
        )
        .expect("age newest event");

    let dry = prune(&db, &["--dry-run"]);
    assert_eq!(dry["jobs"], 1, "{dry}");
    assert_eq!(dry["held"], 2, "{dry}");
    let before_attempts = count(&db, "select count(*) from job_attempts");
    let before_history = count(&db, "select count(*) from job_history");

    let report = prune(&db, &["--archive", "--batch", "1"]);
    assert_eq!(report["moved"]["jobs"], 1, "{report}");
    assert_eq!(report["moved"]["attempts"], 1, "{report}");
    assert_eq!(report["moved"]["history"], 3, "{report}");
    assert_eq!(report["moved"]["events"], 1, "{report}");
    assert_eq!(report["unlinked_events"], 1, "{report}");
    // Batches of one: a full batch of jobs, an empty one, the same for events.
    assert_eq!(report["batches"], 4, "{report}");
    assert_eq!(report["more_left"], false);
    assert!(!live(&db, &old));
    for id in [&parent, &child, &waited, &waiting, &stuck, &recent] {
        assert!(live(&db, id), "{id} must stay");
    }
    assert_eq!(
        count(&db, "select count(*) from job_attempts"),
        before_attempts - 1
    );
    assert_eq!(
        count(&db, "select count(*) from job_history"),
        before_history - 3
    );
    assert_eq!(
        count(&db, "select count(*) from events where topic = 'ops.note'"),
        1
    );
    assert_eq!(count(&db, "select count(*) from archived_events"), 1);

    // The live trace says where to look; the archive's trace is the job's whole story.
    db.cli(&["trace", &old]).fails(3, "--archived");
    let t = db
        .cli(&["trace", "--archived", &old[..8], "--format", "json"])
        .ok();
    let node = &t["roots"][0];
    assert_eq!(node["job"]["id"], Value::String(old.clone()));
    assert_eq!(node["job"]["status"], "succeeded");
    assert_eq!(node["attempts"].as_array().map(Vec::len), Some(1));
    assert_eq!(node["history"].as_array().map(Vec::len), Some(3));
    assert_eq!(node["events"][0]["topic"], "work.done");
    let text = db
        .cli(&["trace", "--archived", &old, "--format", "table"])
        .ok_text();
    assert!(text.contains("old work"), "{text}");

    // Once the child is finished, parent and child leave together.
    db.cli(&["cancel-job", &child, "--reason", "not needed"])
        .ok();
    age(&db, &child, 35);
    let again = prune(&db, &["--archive"]);
    assert_eq!(again["moved"]["jobs"], 2, "{again}");
    let tree = db
        .cli(&["trace", "--archived", &child, "--format", "json"])
        .ok();
    assert_eq!(tree["job_count"], 2, "{tree}");
    assert_eq!(tree["roots"][0]["job"]["id"], Value::String(parent.clone()));
    assert_eq!(tree["roots"][0]["children"][0]["focus"], true);

    // The second horizon deletes archived rows for good, and only those.
    let dropped = prune(&db, &["--archive", "--drop-archived-older-than", "38d"]);
    assert_eq!(dropped["dropped_jobs"], 2, "{dropped}");
    assert_eq!(dropped["dropped_events"], 1, "{dropped}");
    assert_eq!(count(&db, "select count(*) from archived_events"), 0);
    assert_eq!(count(&db, "select count(*) from archived_jobs"), 1);
    assert!(live(&db, &waited) && live(&db, &recent) && live(&db, &stuck));
}

#[test]
fn prune_runs_in_bounded_batches_and_skips_rows_another_transaction_holds() {
    let db = TestDb::new();
    db.bulk_enqueue(25, 1);
    db.client()
        .execute(
            "update jobs set status = 'succeeded', completed_at = now() - interval '40 days'",
            &[],
        )
        .expect("finish");
    let first = db.one::<String>("select id::text from jobs order by id limit 1");

    // Another transaction holds one row: the prune does not wait for it.
    let mut holder = db.client();
    let mut tx = holder.transaction().expect("tx");
    tx.execute(
        "select 1 from jobs where id = $1::text::uuid for update",
        &[&first],
    )
    .expect("lock");
    let capped = prune(&db, &["--batch", "10", "--max-batches", "2"]);
    assert_eq!(capped["moved"]["jobs"], 20, "{capped}");
    assert_eq!(capped["more_left"], true, "{capped}");
    let rest = prune(&db, &["--batch", "10"]);
    assert_eq!(rest["moved"]["jobs"], 4, "{rest}");
    assert!(live(&db, &first), "the locked row was skipped");
    tx.rollback().expect("release");
    let last = prune(&db, &[]);
    assert_eq!(last["moved"]["jobs"], 1, "{last}");
    assert_eq!(count(&db, "select count(*) from jobs"), 0);
    // Without --archive nothing is kept.
    assert_eq!(count(&db, "select count(*) from archived_jobs"), 0);
}

#[test]
fn prune_refuses_bad_input_and_logins_that_are_not_operators() {
    let mut g = Guarded::new();
    let old = done(&g.db, "worker", "old");
    age(&g.db, &old, 40);
    let ledger = |db: &TestDb| -> Value {
        db.one(
            "select jsonb_build_array((select jsonb_agg(to_jsonb(j)) from jobs j),
                                      (select count(*) from job_attempts),
                                      (select count(*) from job_history),
                                      (select count(*) from events where topic <> 'guardrail.refused'),
                                      (select count(*) from archived_jobs),
                                      (select count(*) from archived_events))",
        )
    };
    let before = ledger(&g.db);
    for (args, code, needle) in [
        (vec!["prune"], 2, "--older-than"),
        (vec!["prune", "--older-than", "soon"], 2, "expected an age"),
        (
            vec!["prune", "--older-than", "30d", "--batch", "0"],
            2,
            "between 1 and 10000",
        ),
        (
            vec!["prune", "--older-than", "30d", "--batch", "20000"],
            2,
            "between 1 and 10000",
        ),
        (
            vec![
                "prune",
                "--older-than",
                "30d",
                "--drop-archived-older-than",
                "60d",
            ],
            2,
            "--archive",
        ),
        (
            vec![
                "prune",
                "--older-than",
                "30d",
                "--archive",
                "--drop-archived-older-than",
                "7d",
            ],
            2,
            "second horizon",
        ),
    ] {
        g.db.cli(&args).fails(code, needle);
    }
    let agent = g.grant("pruner", "agent", &["default"], Some("worker"));
    g.db.cli_as(&agent, &["prune", "--older-than", "30d"], &[])
        .fails(77, "not permitted");
    let supervisor = g.grant("sup", "supervisor", &["default"], None);
    g.db.cli_as(
        &supervisor,
        &["prune", "--older-than", "30d", "--archive"],
        &[],
    )
    .fails(77, "not permitted");
    assert_eq!(ledger(&g.db), before, "nothing moved");
    // The refusals are recorded, as every refusal by the database is.
    assert_eq!(g.refusals(&agent).len(), 1);
    assert_eq!(g.refusals(&supervisor).len(), 1);
    // An operator of another namespace sees, and so moves, nothing.
    let other = g.grant("elsewhere", "operator", &["other"], None);
    let none =
        g.db.cli_as(
            &other,
            &["prune", "--older-than", "30d", "--format", "json"],
            &[],
        )
        .ok();
    assert_eq!(none["moved"]["jobs"], 0, "{none}");
    let op = g.grant("ops", "operator", &["default"], None);
    let moved =
        g.db.cli_as(
            &op,
            &[
                "prune",
                "--older-than",
                "30d",
                "--archive",
                "--format",
                "json",
            ],
            &[],
        )
        .ok();
    assert_eq!(moved["moved"]["jobs"], 1, "{moved}");
}
