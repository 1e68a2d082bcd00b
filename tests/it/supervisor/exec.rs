//! Exec mode: every way a child can end, lease renewal while it runs, and an operator
//! cancelling a running job.

use super::{attempts, job, Scratch, MINUTE};
use crate::support::{s, TestDb};
use nix::sys::signal::Signal;
use serde_json::Value;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Exec mode
// ---------------------------------------------------------------------------

#[test]
fn exec_agents_each_end_as_documented() {
    let db = TestDb::new();
    let scratch = Scratch::new();
    let runner = scratch.script(
        "agent.sh",
        r#"case "$AGENTBUS_AGENT" in
  closer)   grep -q "AGENTBUS_JOB_ID: $1" "$2" || exit 9
            exec agentbus complete-job --summary 'did it' >/dev/null ;;
  forgetter) echo "all done, I think" >&2; exit 0 ;;
  crasher)  echo "loading model" >&2; echo "error: boom, out of memory" >&2
            echo "hint: give it more memory" >&2; exit 3 ;;
  hanger)   sleep 30 ;;
  blocker)  exec agentbus block-job --blocked-reason 'needs a CRM login' >/dev/null ;;
esac"#,
    );
    let work_dir = scratch.path("work");
    let ids: Vec<(String, String)> = ["closer", "forgetter", "crasher", "hanger", "blocker"]
        .iter()
        .map(|a| (a.to_string(), db.enqueue(a, &format!("{a} job"), &[])))
        .collect();
    let started = Instant::now();
    let out = db.supervise_once(
        &[
            "--exec",
            &format!("{runner} {{job_id}} {{prompt_file}}"),
            "--exec-timeout",
            "2",
            "--kill-grace",
            "1",
            "--work-dir",
            &work_dir,
        ],
        &[],
        MINUTE,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "the hanger was not stopped at its deadline"
    );
    let by_agent = |name: &str| {
        ids.iter()
            .find(|(a, _)| a == name)
            .map(|(_, id)| id.clone())
            .unwrap()
    };

    let closer = by_agent("closer");
    assert_eq!(job(&db, &closer)["status"], "succeeded");
    let a = &attempts(&db, &closer)[0];
    assert_eq!(
        (a["status"].as_str(), a["exit_code"].as_i64()),
        (Some("succeeded"), Some(0))
    );

    let forgetter = by_agent("forgetter");
    let j = job(&db, &forgetter);
    assert_eq!(j["status"], "queued", "retried: {j}");
    let a = &attempts(&db, &forgetter)[0];
    assert_eq!(a["status"], "failed");
    assert_eq!(a["exit_code"], 0);
    let err = a["error"].as_str().unwrap();
    assert!(
        err.contains("exited without closing the loop (exit code 0)")
            && err.contains("all done, I think"),
        "{err}"
    );

    let crasher = by_agent("crasher");
    let a = &attempts(&db, &crasher)[0];
    assert_eq!(a["status"], "failed");
    assert_eq!(a["exit_code"], 3);
    assert_eq!(
        a["stderr_tail"],
        "loading model\nerror: boom, out of memory\nhint: give it more memory"
    );
    // The job's error carries the line naming the error, not the hint after it.
    let last_error = job(&db, &crasher)["last_error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        last_error.ends_with("; stderr: error: boom, out of memory"),
        "{last_error}"
    );

    let hanger = by_agent("hanger");
    let a = &attempts(&db, &hanger)[0];
    assert_eq!(a["status"], "timed_out", "{a}");
    assert_eq!(a["exit_signal"], 15);
    assert!(
        a["error"]
            .as_str()
            .unwrap()
            .contains("killed at its deadline of 2s"),
        "{a}"
    );
    assert_eq!(job(&db, &hanger)["status"], "queued");

    let blocker = by_agent("blocker");
    let j = job(&db, &blocker);
    assert_eq!(j["status"], "blocked");
    assert_eq!(j["blocked_reason"], "needs a CRM login");
    assert_eq!(attempts(&db, &blocker)[0]["status"], "blocked");

    // Every transition was recorded with its actor.
    let actors: Vec<String> = {
        let v: Value = db.one(&format!(
            "select jsonb_agg(actor order by id) from job_history where job_id = '{closer}'"
        ));
        serde_json::from_value(v).unwrap()
    };
    assert!(
        actors.iter().any(|a| a.starts_with("supervisor:")),
        "{actors:?}"
    );
    assert_eq!(
        actors.last().map(String::as_str),
        Some("closer"),
        "{actors:?}"
    );
    // Prompt files are removed after each run, so the work folder was left empty (and
    // then removed on the clean stop).
    let leftovers: Vec<_> = std::fs::read_dir(&work_dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        leftovers.is_empty(),
        "prompt files left behind: {leftovers:?}"
    );
}

#[test]
fn exec_lease_is_renewed_while_the_agent_runs() {
    let db = TestDb::new();
    let scratch = Scratch::new();
    let runner = scratch.script("slow.sh", "sleep 7; exec agentbus complete-job >/dev/null");
    let id = db.enqueue("slow", "slow job", &[]);
    // A 5 s lease renewed every 1-2 s outlives a 7 s run; a requeue would show as attempt 2.
    let out = db.supervise_once(
        &[
            "--exec",
            &runner,
            "--lease-seconds",
            "5",
            "--hook-request-timeout",
            "2",
            "--reap-interval",
            "1",
        ],
        &[],
        MINUTE,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let j = job(&db, &id);
    assert_eq!(
        (j["status"].as_str(), j["attempt_count"].as_i64()),
        (Some("succeeded"), Some(1)),
        "{j}"
    );
}

#[test]
fn an_operator_cancelling_a_running_job_stops_its_child_and_approvals_release_work() {
    let db = TestDb::new();
    let scratch = Scratch::new();
    let marker = scratch.0.join("finished");
    let runner = scratch.script(
        "runner.sh",
        &format!(
            "if grep -q 'long job' \"$AGENTBUS_PROMPT_FILE\"; then sleep 30; touch {}; fi\nexec agentbus complete-job >/dev/null",
            marker.display()
        ),
    );
    let long = db.enqueue("worker", "long job", &[]);
    let held = s(
        &db.cli(&[
            "enqueue-job",
            "--target-agent",
            "worker",
            "--subject",
            "held job",
            "--requires-approval",
        ])
        .ok(),
        "id",
    );
    let sup = db.spawn_supervisor(
        &[
            "--exec",
            &runner,
            "--lease-seconds",
            "5",
            "--hook-request-timeout",
            "2",
            "--poll-interval",
            "1",
        ],
        &[],
    );
    let deadline = std::time::Instant::now() + MINUTE;
    while job(&db, &long)["status"] != "running" {
        assert!(std::time::Instant::now() < deadline, "never ran");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(job(&db, &held)["status"], "awaiting_approval");
    db.cli(&["cancel-job", &long, "--reason", "wrong prospect"])
        .ok();
    db.cli(&["approve-job", &held]).ok();
    while job(&db, &held)["status"] != "succeeded" {
        assert!(
            std::time::Instant::now() < deadline,
            "approved job never ran"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The cancelled job's child is stopped at its next lease renewal (every 1-2 s here).
    let stopped: i64 = {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let n: i64 = db.one(&format!(
                "select count(*) from job_attempts where job_id = '{long}' and status = 'cancelled'"
            ));
            if n == 1 || std::time::Instant::now() > until {
                break n;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    assert_eq!(stopped, 1);
    std::thread::sleep(std::time::Duration::from_secs(3));
    sup.signal(Signal::SIGTERM);
    let out = sup.wait(MINUTE);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        !marker.exists(),
        "the cancelled job's command ran to its end"
    );
    assert_eq!(job(&db, &long)["status"], "cancelled");
}
