//! Hook mode against a fake OpenClaw gateway: admission (200, 202), refusals (401, 500),
//! timeouts, refused connections, and wake-up by notification.

use super::{attempts, job, Scratch, MINUTE};
use crate::support::fake_hook::{Answer, FakeHook};
use crate::support::TestDb;
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Hook mode
// ---------------------------------------------------------------------------

fn hook_admits_and_the_agent_closes(status: u16) {
    let db = TestDb::new();
    let scratch = Scratch::new();
    let token_file = scratch.path("token");
    std::fs::write(&token_file, "s3cret-hook-token\n").unwrap();
    let fake = FakeHook::start(
        Answer::Status(status),
        Some((Duration::from_millis(200), db.url.clone())),
    );
    let ids: Vec<String> = (0..12)
        .map(|i| db.enqueue(&format!("agent-{}", i % 3), &format!("job {i}"), &[]))
        .collect();

    let out = db.supervise_once(
        &[
            "--hook-url",
            &fake.url,
            "--hook-token-file",
            &token_file,
            "--hook-timeout-seconds",
            "300",
        ],
        &[],
        MINUTE,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stderr.contains("s3cret"), "token leaked into the log");

    let requests = fake.requests();
    assert_eq!(requests.len(), 12, "one wake-up per job, no re-dispatch");
    for r in &requests {
        let job_id = r.marker("AGENTBUS_JOB_ID").expect("job id marker line");
        assert_eq!(r.header("Authorization"), Some("Bearer s3cret-hook-token"));
        assert_eq!(
            r.header("Idempotency-Key"),
            Some(format!("{job_id}:1").as_str())
        );
        assert_eq!(r.body["deliver"], false);
        assert_eq!(r.body["timeoutSeconds"], 300);
        assert!(r.body["agentId"].as_str().unwrap().starts_with("agent-"));
        assert!(r.body["name"]
            .as_str()
            .unwrap()
            .starts_with("agentbus: job "));
    }
    for id in &ids {
        let j = job(&db, id);
        assert_eq!(j["status"], "succeeded", "{j}");
        assert_eq!(j["attempt_count"], 1, "requeued: {j}");
        let a = attempts(&db, id);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0]["status"], "succeeded");
        assert_eq!(a[0]["hook_status"], status);
        assert_eq!(a[0]["wake_mode"], "hook");
        assert!(
            a[0]["run_id"].as_str().unwrap().starts_with("run-"),
            "{}",
            a[0]
        );
        assert_eq!(j["openclaw_task_ref"], a[0]["run_id"]);
        assert_eq!(a[0]["prompt_hash"].as_str().map(str::len), Some(64));
    }
    let history: i64 = db.one(
        "select count(*) from job_history where to_status = 'queued' and from_status is not null",
    );
    assert_eq!(history, 0, "no job went back to the queue");
}

#[test]
fn hook_200_is_admission_and_the_agent_closes_the_job() {
    hook_admits_and_the_agent_closes(200);
}

#[test]
fn hook_202_is_admission_too() {
    hook_admits_and_the_agent_closes(202);
}

#[test]
fn hook_500_fails_the_attempt_without_counting_it_and_backs_the_agent_off() {
    let db = TestDb::new();
    let fake = FakeHook::start(Answer::Status(500), None);
    let id = db.enqueue("scout", "find leads", &[]);
    let out = db.supervise_once(&["--hook-url", &fake.url], &[], MINUTE);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(fake.requests().len(), 1, "backed off, not hammered");
    let j = job(&db, &id);
    assert_eq!(j["status"], "queued");
    assert_eq!(j["unreached_attempts"], 1);
    assert!(
        j["last_error"].as_str().unwrap().contains("HTTP 500"),
        "{j}"
    );
    let a = attempts(&db, &id);
    assert_eq!(a[0]["status"], "failed");
    assert_eq!(a[0]["hook_status"], 500);
    // How it was to be woken is on the attempt, though no run was admitted.
    assert_eq!(a[0]["wake_mode"], "hook", "{}", a[0]);
    assert_eq!(a[0]["prompt_hash"].as_str().map(str::len), Some(64));
    assert!(a[0]["woken_at"].is_null(), "not admitted: {}", a[0]);
    let backing_off: bool = db.one(
        "select wake_backoff_until > now() and not paused from agents where agent_id = 'scout'",
    );
    assert!(backing_off);
}

#[test]
fn an_admitted_wake_clears_the_agents_back_off() {
    let db = TestDb::new();
    // Three failed wake-ups earlier; the back-off has run out, so the job is claimed.
    db.client()
        .batch_execute(
            "insert into agents (namespace, agent_id, wake_failures, wake_backoff_until)
             values ('default', 'scout', 3, now() - interval '1 second')",
        )
        .unwrap();
    let fake = FakeHook::start(
        Answer::Status(200),
        Some((Duration::from_millis(50), db.url.clone())),
    );
    let id = db.enqueue("scout", "find leads", &[]);
    let out = db.supervise_once(&["--hook-url", &fake.url], &[], MINUTE);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(job(&db, &id)["status"], "succeeded");
    let cleared: bool = db.one(
        "select wake_failures = 0 and wake_backoff_until is null
         from agents where agent_id = 'scout'",
    );
    assert!(cleared, "the admitted wake-up left the back-off in place");
}

#[test]
fn hook_401_pauses_the_agent_and_keeps_the_job() {
    let db = TestDb::new();
    let fake = FakeHook::start(Answer::Status(401), None);
    let id = db.enqueue("scout", "find leads", &[]);
    let other = db.enqueue("writer", "write", &[]);
    let out = db.supervise_once(&["--hook-url", &fake.url], &[], MINUTE);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Both agents were refused once each, then left alone.
    assert_eq!(fake.requests().len(), 2);
    for id in [&id, &other] {
        let j = job(&db, id);
        assert_eq!(j["status"], "queued", "{j}");
        assert_eq!(j["unreached_attempts"], 1);
        assert_eq!(attempts(&db, id)[0]["hook_status"], 401);
    }
    let reason: String =
        db.one("select paused_reason from agents where agent_id = 'scout' and paused");
    assert!(
        reason.contains("401") && reason.contains("resume-agent scout"),
        "{reason}"
    );

    // After the operator fixes the token and resumes the agent, the same job runs.
    let ok = FakeHook::start(
        Answer::Status(200),
        Some((Duration::from_millis(50), db.url.clone())),
    );
    db.cli(&["resume-agent", "scout"]).ok();
    let out = db.supervise_once(&["--hook-url", &ok.url], &[], MINUTE);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(job(&db, &id)["status"], "succeeded");
    assert_eq!(
        job(&db, &other)["status"],
        "queued",
        "writer is still paused"
    );
}

#[test]
fn hook_timeout_counts_as_an_attempt_and_retries_with_backoff() {
    let db = TestDb::new();
    let fake = FakeHook::start(Answer::Hang(Duration::from_secs(5)), None);
    let id = db.enqueue("scout", "find leads", &[]);
    let out = db.supervise_once(
        &["--hook-url", &fake.url, "--hook-request-timeout", "0.5"],
        &[],
        MINUTE,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let j = job(&db, &id);
    assert_eq!(j["status"], "queued");
    // The gateway may have started the run: the attempt counts.
    assert_eq!(j["unreached_attempts"], 0);
    let delay: f64 = db.one(&format!(
        "select extract(epoch from run_after - updated_at)::float8 from jobs where id = '{id}'"
    ));
    assert!(
        (7.0..=13.0).contains(&delay),
        "first retry after ~10 s, got {delay}"
    );
    let a = attempts(&db, &id);
    assert_eq!(a[0]["status"], "failed");
    assert!(a[0]["hook_status"].is_null());
    let error = a[0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("no answer within 0.5 s"), "{error}");
}

#[test]
fn refused_connection_is_retried_and_nothing_is_lost() {
    let db = TestDb::new();
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let id = db.enqueue("scout", "find leads", &[]);
    let url = format!("http://127.0.0.1:{port}/hooks/agent");
    let out = db.supervise_once(&["--hook-url", &url], &[], MINUTE);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let j = job(&db, &id);
    assert_eq!(j["status"], "queued");
    assert_eq!(j["unreached_attempts"], 1);
    assert!(
        j["last_error"]
            .as_str()
            .unwrap()
            .contains("hook wake-up failed"),
        "{j}"
    );
    let error: String = db.one("select last_wake_error from agents where agent_id = 'scout'");
    assert!(!error.is_empty());
}

#[test]
fn an_idle_supervisor_is_woken_by_the_notification_not_the_poll() {
    let db = TestDb::new();
    let fake = FakeHook::start(Answer::Status(200), Some((Duration::ZERO, db.url.clone())));
    // Poll only every 10 minutes: a wake-up within seconds can only come from NOTIFY.
    let sup = db.spawn_supervisor(&["--hook-url", &fake.url, "--poll-interval", "600"], &[]);
    // Let it start, connect, LISTEN and find nothing.
    std::thread::sleep(Duration::from_millis(1500));
    let mut latencies = Vec::new();
    for i in 0..5 {
        let mut c = db.client();
        let start = Instant::now();
        c.execute(
            "insert into jobs (target_agent, job_type, subject) values ('a', 't', $1)",
            &[&format!("job {i}")],
        )
        .unwrap();
        let got = fake.wait_for(i + 1, Duration::from_secs(30));
        latencies.push(got[i].at.duration_since(start));
        std::thread::sleep(Duration::from_millis(300));
    }
    drop(sup);
    latencies.sort();
    eprintln!("dispatch latency (commit -> hook received), debug build: {latencies:?}");
}

#[test]
fn a_hook_agent_under_a_short_lease_gets_its_lease_extended_before_the_request() {
    let db = TestDb::new();
    // The gateway takes its time: the request outlives the supervisor's 5 s lease.
    let fake = FakeHook::start(Answer::Hang(Duration::from_secs(6)), None);
    db.cli(&[
        "configure-agent",
        "scout",
        "--wake",
        "hook",
        "--hook-url",
        &fake.url,
    ])
    .ok();
    let id = db.enqueue("scout", "slow gateway", &[]);
    // An exec default lets the supervisor start with a lease shorter than the request
    // timeout; the hook agent's own settings then need the longer lease.
    let sup = db.spawn_supervisor(
        &[
            "--exec",
            "true",
            "--lease-seconds",
            "5",
            "--hook-request-timeout",
            "8",
        ],
        &[],
    );
    fake.wait_for(1, MINUTE);
    let left: f64 = db.one(&format!(
        "select extract(epoch from leased_until - now())::float8 from jobs where id = '{id}'"
    ));
    sup.signal(Signal::SIGTERM);
    let out = sup.wait(MINUTE);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        left > 20.0,
        "the lease must outlive the 8 s request (+30 s): {left:.1} s left"
    );
}
