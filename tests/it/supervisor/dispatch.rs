//! The supervisor's batched dispatch statements, called as the supervisor calls them:
//! marking a claimed batch running, recording hooks' admissions, and the one-statement
//! completion an agent's close takes under a current lease.

use agentbus::ledger::jobs::{self, Admission, Caller, CompleteParams, Fence, WakeRecord, Waking};
use serde_json::Value;
use uuid::Uuid;

use crate::db::session::closed_shape;
use crate::support::TestDb;

fn caller(actor: &str, command: &str) -> Caller {
    Caller {
        actor: actor.into(),
        command: command.into(),
    }
}

fn waking(id: &str, token: &str, attempt: i32, hash: &str) -> Waking {
    Waking {
        job_id: id.parse().unwrap(),
        fence: Fence {
            lease_token: Some(token.parse().unwrap()),
            attempt: Some(attempt),
            force: false,
        },
        record: WakeRecord {
            wake_mode: "hook",
            prompt_hash: hash.into(),
            prompt_version: 4,
            memory_ids: Vec::new(),
        },
    }
}

#[test]
fn a_batch_is_marked_running_with_each_wake_record_and_a_job_that_changed_hands_is_refused() {
    let db = TestDb::new();
    for i in 0..3 {
        db.enqueue("scout", &format!("job {i}"), &[]);
    }
    let claimed: Vec<(String, String)> = (0..3).map(|_| db.claim_one("sup-a", None)).collect();
    // The third one is given back by an operator before the supervisor marks it.
    let (gone, _) = &claimed[2];
    db.cli(&[
        "fail-job",
        gone,
        "--force",
        "--last-error",
        "operator took it back",
    ])
    .ok();
    let left_as: String = db.one(&format!(
        "select status::text from jobs where id = '{gone}'"
    ));
    let before = db.snapshot();
    let batch: Vec<Waking> = claimed
        .iter()
        .enumerate()
        .map(|(i, (id, token))| waking(id, token, 1, &format!("hash-{i}")))
        .collect();

    let mut c = db.client();
    let results =
        jobs::mark_woken_many(&mut c, &caller("supervisor:sup-a", "wake"), &batch).unwrap();

    assert_eq!(results.len(), 3);
    for (i, result) in results.iter().take(2).enumerate() {
        let job = result.as_ref().expect("marked running");
        assert_eq!(job.id.to_string(), claimed[i].0);
        assert_eq!(job.status.as_str(), "running");
        let attempt: Value = db.one(&format!(
            "select to_jsonb(a.*) from job_attempts a where job_id = '{}'",
            claimed[i].0
        ));
        assert_eq!(attempt["status"], "running");
        assert_eq!(attempt["wake_mode"], "hook");
        assert_eq!(attempt["prompt_hash"], format!("hash-{i}"));
        assert!(attempt["woken_at"].is_string());
        let actor: String = db.one(&format!(
            "select actor from job_history where job_id = '{}' and to_status = 'running'",
            claimed[i].0
        ));
        assert_eq!(actor, "supervisor:sup-a");
    }
    let refused = results[2].as_ref().expect_err("changed hands");
    assert_eq!(
        refused.kind,
        agentbus::error::ErrorKind::Conflict,
        "{refused:?}"
    );
    // The refused job is as the operator left it.
    let status: String = db.one(&format!(
        "select status::text from jobs where id = '{gone}'"
    ));
    assert_eq!(status, left_as);
    assert_ne!(before, db.snapshot(), "the two others were written");
}

#[test]
fn hook_admissions_are_recorded_together_and_a_job_not_held_is_not_found() {
    let db = TestDb::new();
    for i in 0..2 {
        db.enqueue("scout", &format!("job {i}"), &[]);
    }
    let claimed: Vec<(String, String)> = (0..2).map(|_| db.claim_one("sup-a", None)).collect();
    let batch: Vec<Waking> = claimed
        .iter()
        .map(|(id, token)| waking(id, token, 1, "h"))
        .collect();
    let mut c = db.client();
    jobs::mark_woken_many(&mut c, &caller("supervisor:sup-a", "wake"), &batch).unwrap();
    let leased_before: Vec<chrono::DateTime<chrono::Utc>> = claimed
        .iter()
        .map(|(id, _)| db.one(&format!("select leased_until from jobs where id = '{id}'")))
        .collect();

    let admission = |id: &str, token: Option<&str>, run: &str| Admission {
        job_id: id.parse().unwrap(),
        lease_token: token.map(|t| t.parse().unwrap()),
        attempt: 1,
        hook_status: 200,
        run_id: Some(run.into()),
        lease_seconds: 3600.0,
    };
    let unknown = Uuid::new_v4().to_string();
    let found = agentbus::db::transaction(&mut c, |tx| {
        jobs::record_hook_admissions(
            tx,
            &[
                admission(&claimed[0].0, Some(&claimed[0].1), "run-0"),
                admission(&unknown, None, "run-x"),
                admission(&claimed[1].0, Some(&claimed[1].1), "run-1"),
            ],
        )
    })
    .unwrap();

    assert_eq!(found, vec![true, false, true]);
    for (i, (id, _)) in claimed.iter().enumerate() {
        let row: Value = db.one(
            &format!(
                "select jsonb_build_object('ref', j.openclaw_task_ref, 'run', a.run_id,
                    'status', a.hook_status, 'lease_grew', j.leased_until > $1::timestamptz)
               from jobs j join job_attempts a on a.job_id = j.id where j.id = '{id}'"
            )
            .replace(
                "$1::timestamptz",
                &format!("'{}'::timestamptz", leased_before[i].to_rfc3339()),
            ),
        );
        assert_eq!(row["ref"], format!("run-{i}"), "{row}");
        assert_eq!(row["run"], format!("run-{i}"), "{row}");
        assert_eq!(row["status"], 200, "{row}");
        assert_eq!(row["lease_grew"], true, "{row}");
    }
}

#[test]
fn completing_under_a_current_lease_leaves_the_rows_the_general_path_leaves() {
    let db = TestDb::new();
    let fast = db.enqueue("scout", "through the lease", &[]);
    let general = db.enqueue("scout", "through the attempt number", &[]);
    let (a, token_a) = db.claim_one("sup-a", None);
    let (b, _) = db.claim_one("sup-a", None);
    assert_eq!((a.as_str(), b.as_str()), (fast.as_str(), general.as_str()));
    let mut c = db.client();
    let params = CompleteParams {
        result: Some(serde_json::json!({"done": 1})),
        summary: Some("all done".into()),
        openclaw_task_ref: Some("run-9".into()),
        openclaw_session_key: None,
        no_work: true,
    };
    let close = |c: &mut postgres::Client, id: &str, fence: Fence| {
        agentbus::db::transaction(c, |tx| {
            jobs::complete(
                tx,
                id.parse().unwrap(),
                fence,
                &caller("scout", "complete-job"),
                &params,
            )
        })
        .unwrap()
    };
    let by_token = Fence {
        lease_token: Some(token_a.parse().unwrap()),
        attempt: None,
        force: false,
    };
    let by_attempt = Fence {
        lease_token: None,
        attempt: Some(1),
        force: false,
    };
    close(&mut c, &fast, by_token);
    close(&mut c, &general, by_attempt);

    let (f, g) = (closed_shape(&db, &fast), closed_shape(&db, &general));
    assert_eq!(f["job"]["status"], "succeeded");
    assert_eq!(
        f["job"]["result"],
        serde_json::json!({"done": 1, "no_work": true})
    );
    assert_eq!(f, g, "the lease path and the general path differ");
    // Closing again under the same lease is not an error and changes nothing.
    let again = db.snapshot();
    close(&mut c, &fast, by_token);
    assert_eq!(again, db.snapshot());
}
