//! The supervisor's batched dispatch statements, called as the supervisor calls them:
//! marking a claimed batch running (commands), recording hooks' admissions (which mark
//! hook jobs running), and the one-statement
//! completion an agent's close takes under a current lease.

use agentbus::ledger::jobs::{self, Admission, Caller, CompleteParams, Fence, WakeRecord, Waking};
use serde_json::Value;
use std::time::{Duration, Instant};
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
fn hook_admissions_mark_leased_jobs_running_together_and_a_job_not_held_is_not_found() {
    let db = TestDb::new();
    for i in 0..3 {
        db.enqueue("scout", &format!("job {i}"), &[]);
    }
    // Claimed and still leased, as a hook job is while its wake-up is on its way.
    let claimed: Vec<(String, String)> = (0..3).map(|_| db.claim_one("sup-a", None)).collect();
    let mut c = db.client();
    // The third one's agent was quicker than the recording: already closed.
    let (quick, quick_token) = &claimed[2];
    db.cli(&["complete-job", quick, "--lease-token", quick_token])
        .ok();
    let leased_before: Vec<chrono::DateTime<chrono::Utc>> = claimed[..2]
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
        wake: WakeRecord {
            wake_mode: "hook",
            prompt_hash: format!("hash-{run}"),
            prompt_version: 4,
            memory_ids: Vec::new(),
        },
        sent: Instant::now().checked_sub(Duration::from_secs(2)).unwrap(),
    };
    let unknown = Uuid::new_v4().to_string();
    let found = agentbus::db::transaction(&mut c, |tx| {
        jobs::record_hook_admissions(
            tx,
            &caller("supervisor:sup-a", "wake"),
            &[
                admission(&claimed[0].0, Some(&claimed[0].1), "run-0"),
                admission(&unknown, None, "run-x"),
                admission(&claimed[1].0, Some(&claimed[1].1), "run-1"),
                admission(quick, Some(quick_token), "run-2"),
            ],
        )
    })
    .unwrap();

    assert_eq!(found, vec![true, false, true, true]);
    let row_of = |id: &str| -> Value {
        db.one(&format!(
            "select jsonb_build_object('status', j.status, 'ref', j.openclaw_task_ref,
                'leased_until', j.leased_until, 'run', a.run_id, 'hook_status', a.hook_status,
                'attempt', a.status, 'mode', a.wake_mode, 'hash', a.prompt_hash,
                'version', a.prompt_version,
                'sent_ago', extract(epoch from now() - a.woken_at)::float8)
               from jobs j join job_attempts a on a.job_id = j.id where j.id = '{id}'"
        ))
    };
    for (i, (id, _)) in claimed[..2].iter().enumerate() {
        let row = row_of(id);
        assert_eq!(row["status"], "running", "{row}");
        assert_eq!(row["attempt"], "running", "{row}");
        assert_eq!(row["ref"], format!("run-{i}"), "{row}");
        assert_eq!(row["run"], format!("run-{i}"), "{row}");
        assert_eq!(row["hook_status"], 200, "{row}");
        assert_eq!(row["mode"], "hook", "{row}");
        assert_eq!(row["hash"], format!("hash-run-{i}"), "{row}");
        assert_eq!(row["version"], 4, "{row}");
        // woken_at is when the request was sent: 2 s before the recording.
        let ago = row["sent_ago"].as_f64().unwrap();
        assert!((2.0..10.0).contains(&ago), "{row}");
        let until: chrono::DateTime<chrono::Utc> =
            serde_json::from_value(row["leased_until"].clone()).unwrap();
        assert!(until > leased_before[i], "the lease grew: {row}");
        let history: Value = db.one(&format!(
            "select jsonb_build_object('actor', actor, 'reason', reason) from job_history
              where job_id = '{id}' and from_status = 'leased' and to_status = 'running'"
        ));
        assert_eq!(history["actor"], "supervisor:sup-a", "{history}");
        assert_eq!(
            history["reason"], "the gateway admitted the run",
            "{history}"
        );
    }
    // The quick one stays closed; its attempt still says how it was woken.
    let row = row_of(quick);
    assert_eq!(row["status"], "succeeded", "{row}");
    assert_eq!(row["attempt"], "succeeded", "{row}");
    assert_eq!(row["mode"], "hook", "{row}");
    assert_eq!(row["hash"], "hash-run-2", "{row}");
    assert_eq!(row["hook_status"], 200, "{row}");
    let to_running: i64 = db.one(&format!(
        "select count(*) from job_history where job_id = '{quick}' and to_status = 'running'"
    ));
    assert_eq!(to_running, 0, "a closed job is not marked running");
}

#[test]
fn an_admission_for_a_job_that_changed_hands_leaves_the_job_to_its_new_holder() {
    let db = TestDb::new();
    let id = db.enqueue("scout", "lost and claimed again", &[]);
    let (_, old_token) = db.claim_one("sup-a", None);
    // The first lease runs out (moved into the past, then reaped) and another supervisor
    // claims the job, its retry back-off skipped: attempt 2, a new token.
    db.client()
        .batch_execute(&format!(
            "update jobs set leased_until = now() - interval '1 second' where id = '{id}';
             select requeue_expired_jobs('default');
             update jobs set run_after = now() where id = '{id}';"
        ))
        .unwrap();
    let (_, new_token) = db.claim_one("sup-b", None);
    let before: Value = db.one(&format!(
        "select to_jsonb(j.*) from jobs j where id = '{id}'"
    ));
    let mut c = db.client();
    let found = agentbus::db::transaction(&mut c, |tx| {
        jobs::record_hook_admissions(
            tx,
            &caller("supervisor:sup-a", "wake"),
            &[Admission {
                job_id: id.parse().unwrap(),
                lease_token: Some(old_token.parse().unwrap()),
                attempt: 1,
                hook_status: 200,
                run_id: Some("late-run".into()),
                lease_seconds: 3600.0,
                wake: WakeRecord {
                    wake_mode: "hook",
                    prompt_hash: "h".into(),
                    prompt_version: 4,
                    memory_ids: Vec::new(),
                },
                sent: Instant::now(),
            }],
        )
    })
    .unwrap();
    assert_eq!(found, vec![true], "the first attempt's row is there");
    let after: Value = db.one(&format!(
        "select to_jsonb(j.*) from jobs j where id = '{id}'"
    ));
    assert_eq!(after, before, "the job under its new lease is untouched");
    assert_eq!(after["lease_token"], new_token.as_str());
    assert_eq!(after["status"], "leased");
    let first: Value = db.one(&format!(
        "select to_jsonb(a.*) from job_attempts a where job_id = '{id}' and attempt_no = 1"
    ));
    assert_eq!(
        first["status"], "timed_out",
        "a finished attempt keeps its end: {first}"
    );
    assert_eq!(first["run_id"], "late-run");
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
