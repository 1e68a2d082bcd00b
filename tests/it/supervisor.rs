//! agentbus-supervisor against real PostgreSQL: hook mode against a fake OpenClaw gateway,
//! exec mode with scripts that close, forget, crash, hang and block; kill -9 in the middle
//! of a run; several supervisors sharing one agent's concurrency limit; signals.

// Tests report what they measured (latency, duplicates) on stderr.
#![allow(clippy::print_stderr)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::support::fake_hook::{Answer, FakeHook};
use crate::support::{run_cli, s, TestDb, SUPERVISOR};

const MINUTE: Duration = Duration::from_secs(60);

/// A scratch directory for scripts and files, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let dir = std::env::temp_dir().join(format!("agentbus-it-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// Writes an executable shell script; returns its path.
    fn script(&self, name: &str, body: &str) -> String {
        use std::os::unix::fs::PermissionsExt;
        let path = self.0.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.display().to_string()
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every attempt row of a job, oldest first, as JSON.
fn attempts(db: &TestDb, job: &str) -> Vec<Value> {
    let v: Value = db.one(&format!(
        "select coalesce(jsonb_agg(to_jsonb(a.*) order by attempt_no), '[]') from job_attempts a where job_id = '{job}'"
    ));
    v.as_array().cloned().unwrap_or_default()
}

/// Waits (at most 20 s) until a supervisor has woken the agent for `id`.
fn wait_until_running(db: &TestDb, id: &str) {
    let until = Instant::now() + Duration::from_secs(20);
    while job(db, id)["status"] != "running" {
        assert!(Instant::now() < until, "job {id} never started running");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn job(db: &TestDb, job: &str) -> Value {
    db.one(&format!(
        "select to_jsonb(j.*) from jobs j where id = '{job}'"
    ))
}

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
    let backing_off: bool = db.one(
        "select wake_backoff_until > now() and not paused from agents where agent_id = 'scout'",
    );
    assert!(backing_off);
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
  crasher)  echo "loading model" >&2; echo "boom: out of memory" >&2; exit 3 ;;
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
    assert_eq!(a["stderr_tail"], "loading model\nboom: out of memory");
    assert!(job(&db, &crasher)["last_error"]
        .as_str()
        .unwrap()
        .contains("boom: out of memory"));

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
fn a_restarted_supervisor_releases_what_it_claimed_but_never_started() {
    let db = TestDb::new();
    let id = db.enqueue("a", "left behind", &[]);
    let (claimed, _) = db.claim_one("sup-1", None);
    assert_eq!(claimed, id);
    let out = db.supervise_once(
        &[
            "--supervisor-id",
            "sup-1",
            "--exec",
            "agentbus complete-job {job_id} --lease-token {lease_token}",
        ],
        &[],
        MINUTE,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let a = attempts(&db, &id);
    let statuses: Vec<&str> = a.iter().map(|a| a["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["lost", "succeeded"]);
    let j = job(&db, &id);
    assert_eq!(j["unreached_attempts"], 1);
}

#[test]
fn kill_9_in_the_middle_of_a_run_loses_nothing() {
    let db = TestDb::new();
    let scratch = Scratch::new();
    let effects = scratch.path("effects.log");
    let runner = scratch.script(
        "append.sh",
        &format!("echo \"$AGENTBUS_JOB_ID\" >> {effects}\nexec agentbus complete-job >/dev/null"),
    );
    db.bulk_enqueue(500, 10);
    let args = [
        "--supervisor-id",
        "crashy",
        "--exec",
        runner.as_str(),
        "--default-concurrency",
        "4",
        "--lease-seconds",
        "5",
        "--hook-request-timeout",
        "2",
        "--reap-interval",
        "1",
    ];
    let mut kills = 0;
    for round in 0..4 {
        let sup = db.spawn_supervisor(&args, &[]);
        std::thread::sleep(Duration::from_millis(700 + 300 * round));
        sup.signal(Signal::SIGKILL);
        drop(sup); // reaps it
        kills += 1;
    }
    // Finish the work with a supervisor that is left alone: jobs cut off by a kill come
    // back when their lease expires (5 s), after their retry back-off (~10 s).
    let sup = db.spawn_supervisor(&args, &[]);
    let until = Instant::now() + Duration::from_secs(180);
    while db.one::<i64>("select count(*) from jobs where status <> 'succeeded'") > 0 {
        assert!(
            Instant::now() < until,
            "jobs did not finish after the kills"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    sup.signal(Signal::SIGTERM);
    let out = sup.wait(MINUTE);
    assert_eq!(out.code, 0, "{}", out.stderr);

    let by_status: Value = db.one("select jsonb_object_agg(status, n) from (select status, count(*) n from jobs group by 1) s");
    assert_eq!(
        by_status,
        serde_json::json!({"succeeded": 500}),
        "every job succeeded"
    );
    let duplicate_successes: i64 = db.one(
        "select count(*) from (select job_id from job_attempts where status = 'succeeded' group by 1 having count(*) > 1) d",
    );
    assert_eq!(duplicate_successes, 0);
    let lines = std::fs::read_to_string(&effects).unwrap();
    let total = lines.lines().count();
    let distinct: std::collections::HashSet<&str> = lines.lines().collect();
    assert_eq!(distinct.len(), 500, "every job ran at least once");
    let duplicates = total - distinct.len();
    eprintln!(
        "kill -9 x{kills}: 500 jobs, {duplicates} duplicate side effects, 0 duplicate successes"
    );
    // A duplicate needs a kill between the side effect and the close; each kill can cut
    // at most one run per slot in flight (10 agents x 4).
    assert!(
        duplicates <= kills * 40,
        "{duplicates} duplicates for {kills} kills"
    );
}

#[test]
fn three_supervisors_never_exceed_an_agents_max_concurrency() {
    let db = TestDb::new();
    let scratch = Scratch::new();
    let runner = scratch.script("work.sh", "exec agentbus complete-job >/dev/null");
    db.client()
        .execute(
            "insert into agents (agent_id, max_concurrency) values ('agent-0', 2)",
            &[],
        )
        .unwrap();
    db.bulk_enqueue(150, 1);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let url = db.url.clone();
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut c = crate::support::connect(&url);
            let (mut max, mut samples) = (0i64, 0);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let n: i64 = c
                    .query_one("select count(*) from jobs where target_agent = 'agent-0' and status in ('leased', 'running')", &[])
                    .unwrap()
                    .get(0);
                max = max.max(n);
                samples += 1;
            }
            (max, samples)
        })
    };
    let sups: Vec<_> = (0..3)
        .map(|i| {
            db.spawn_supervisor(
                &[
                    "--supervisor-id",
                    &format!("s{i}"),
                    "--exec",
                    &runner,
                    "--default-concurrency",
                    "50",
                ],
                &[],
            )
        })
        .collect();
    let until = Instant::now() + Duration::from_secs(120);
    while db.one::<i64>("select count(*) from jobs where status <> 'succeeded'") > 0 {
        assert!(Instant::now() < until, "jobs did not finish");
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (max, samples) = sampler.join().unwrap();
    drop(sups);
    eprintln!("max concurrent jobs of agent-0 over {samples} samples: {max}");
    assert!(
        max <= 2,
        "saw {max} jobs of agent-0 leased or running at once"
    );
    assert_eq!(max, 2, "the limit of 2 was never used in full");
    let owners: i64 = db.one("select count(distinct dispatcher_id) from job_attempts");
    assert!(owners >= 2, "only {owners} supervisor(s) did any work");
}

#[test]
fn sigterm_lets_running_children_finish_then_exits_0() {
    let db = TestDb::new();
    let scratch = Scratch::new();
    let runner = scratch.script(
        "work.sh",
        "sleep 1.5; exec agentbus complete-job >/dev/null",
    );
    let id = db.enqueue("a", "finish me", &[]);
    let sup = db.spawn_supervisor(
        &[
            "--supervisor-id",
            "term-test",
            "--exec",
            &runner,
            "--heartbeat-interval",
            "0.2",
        ],
        &[],
    );
    wait_until_running(&db, &id);
    let beats: i64 =
        db.one("select count(*) from dispatcher_heartbeats where dispatcher_id = 'term-test'");
    assert_eq!(beats, 1, "heartbeat row while running");
    sup.signal(Signal::SIGTERM);
    let out = sup.wait(Duration::from_secs(20));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        job(&db, &id)["status"],
        "succeeded",
        "the child was allowed to finish"
    );
    let beats: i64 =
        db.one("select count(*) from dispatcher_heartbeats where dispatcher_id = 'term-test'");
    assert_eq!(beats, 0, "a clean stop removes the heartbeat row");
}

#[test]
fn sigterm_stops_children_that_outlive_the_grace_and_requeues_their_jobs() {
    let db = TestDb::new();
    let scratch = Scratch::new();
    let runner = scratch.script("work.sh", "sleep 60");
    let id = db.enqueue("a", "too slow", &[]);
    let sup = db.spawn_supervisor(
        &[
            "--exec",
            &runner,
            "--shutdown-grace",
            "0.5",
            "--kill-grace",
            "0.5",
        ],
        &[],
    );
    wait_until_running(&db, &id);
    sup.signal(Signal::SIGTERM);
    let out = sup.wait(Duration::from_secs(20));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let j = job(&db, &id);
    assert_eq!(j["status"], "queued", "{j}");
    let run_after_now: bool = db.one(&format!(
        "select run_after <= now() from jobs where id = '{id}'"
    ));
    assert!(run_after_now, "ready again at once for another supervisor");
    let a = &attempts(&db, &id)[0];
    assert!(
        a["error"]
            .as_str()
            .unwrap()
            .contains("supervisor shut down"),
        "{a}"
    );
}

#[test]
fn the_supervisor_rides_out_a_database_restart() {
    let cluster = crate::support::cluster::PrivateCluster::start();
    let admin = cluster.url("postgres");
    crate::support::connect(&admin)
        .batch_execute("create database ledger")
        .unwrap();
    let url = cluster.url("ledger");
    assert_eq!(
        run_cli(&["migrate"], &[("DATABASE_URL", url.as_str())], None).code,
        0
    );
    let db = TestDb::attach(&url);
    let scratch = Scratch::new();
    // An agent retries its close on exit 75 (database unreachable), as AGENTS.md says.
    let runner = scratch.script(
        "work.sh",
        "sleep 0.2\nfor i in $(seq 100); do agentbus complete-job >/dev/null 2>&1; rc=$?; [ $rc -ne 75 ] && exit $rc; sleep 0.2; done; exit 75",
    );
    db.bulk_enqueue(40, 4);
    let sup = db.spawn_supervisor(
        &[
            "--exec",
            &runner,
            "--lease-seconds",
            "10",
            "--hook-request-timeout",
            "2",
            "--reap-interval",
            "1",
        ],
        &[],
    );
    let until = Instant::now() + Duration::from_secs(60);
    while db.one::<i64>("select count(*) from jobs where status = 'succeeded'") < 8 {
        assert!(Instant::now() < until, "no progress before the restart");
        std::thread::sleep(Duration::from_millis(50));
    }
    cluster.restart();
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        let left = crate::support::connect(&url)
            .query_one("select count(*) from jobs where status <> 'succeeded'", &[])
            .map(|r| r.get::<_, i64>(0))
            .unwrap_or(i64::MAX);
        if left == 0 {
            break;
        }
        assert!(Instant::now() < until, "{left} jobs left after the restart");
        std::thread::sleep(Duration::from_millis(200));
    }
    sup.signal(Signal::SIGTERM);
    let out = sup.wait(MINUTE);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("WARN"),
        "the outage was logged: {}",
        out.stderr
    );
    let dup: i64 = db.one("select count(*) from (select job_id from job_attempts where status = 'succeeded' group by 1 having count(*) > 1) d");
    assert_eq!(dup, 0);
}

#[test]
fn bad_supervisor_flags_exit_2_or_78_and_write_nothing() {
    let db = TestDb::new();
    db.enqueue("a", "untouched", &[]);
    let before = db.snapshot();
    let scratch = Scratch::new();
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["--lease-seconds", "0", "--exec", "true"],
            2,
            "--lease-seconds",
        ),
        (&["--exec", "echo 'unterminated"], 2, "--exec"),
        (
            &["--exec", "true", "--lease-seconds", "20"],
            2,
            "must be longer than --hook-request-timeout",
        ),
        (
            &["--exec", "true", "--hook-url", "http://x"],
            2,
            "cannot be used with",
        ),
        (&["--hook-url", "ftp://x"], 2, "--hook-url"),
        (
            &["--exec", "true", "--poll-interval", "-1"],
            2,
            "--poll-interval",
        ),
        (&["--log-level", "loud"], 2, "log level"),
        (
            &[
                "--hook-url",
                "http://127.0.0.1:9/",
                "--hook-token-file",
                "/nonexistent/token",
            ],
            78,
            "--hook-token-file",
        ),
    ];
    for (args, code, needle) in cases {
        let mut all = vec!["--once"];
        all.extend_from_slice(args);
        let out = db.spawn_supervisor(&all, &[]).wait(MINUTE);
        assert_eq!(out.code, *code, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
    }
    assert_eq!(db.snapshot(), before, "nothing written");
    let _ = scratch;

    // No database configured at all.
    let out = std::process::Command::new(SUPERVISOR)
        .args(["--once", "--exec", "true"])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(78),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A database that was never migrated.
    let empty = TestDb::empty();
    let out = empty.supervise_once(&["--exec", "true"], &[], MINUTE);
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert!(out.stderr.contains("agentbus migrate"), "{}", out.stderr);
}

#[test]
fn supervisor_help_has_examples_and_every_wake_mode() {
    let out = std::process::Command::new(SUPERVISOR)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "Examples:",
        "agentbus-supervisor --exec",
        "--hook-url",
        "Idempotency-Key",
        "Exit status:",
        "SIGTERM",
    ] {
        assert!(text.contains(needle), "--help lacks {needle:?}");
    }
    let _ = run_cli;
}

#[test]
fn expired_leases_are_recovered_exactly_once_by_concurrent_reapers() {
    let db = TestDb::new();
    db.bulk_enqueue(300, 5);
    let mut c = db.client();
    c.execute(
        "select count(*) from claim_jobs('default', 'gone', 60, 300)",
        &[],
    )
    .unwrap();
    c.execute(
        "update jobs set leased_until = now() - interval '1 second' where status = 'leased'",
        &[],
    )
    .unwrap();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(6));
    let reapers: Vec<_> = (0..6)
        .map(|_| {
            let url = db.url.clone();
            let barrier = std::sync::Arc::clone(&barrier);
            std::thread::spawn(move || {
                let mut c = crate::support::connect(&url);
                barrier.wait();
                let mut mine = 0;
                loop {
                    let got =
                        agentbus::ledger::jobs::requeue_expired(&mut c, "default", 7).unwrap();
                    if got.is_empty() {
                        return mine;
                    }
                    mine += got.len();
                }
            })
        })
        .collect();
    let total: usize = reapers.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(total, 300, "every expired lease recovered once");
    let timed_out: i64 = db.one("select count(*) from job_attempts where status = 'timed_out'");
    assert_eq!(timed_out, 300);
    let history: i64 = db.one(
        "select count(*) from job_history where from_status = 'leased' and to_status = 'queued'",
    );
    assert_eq!(history, 300, "one transition per job");
}

#[test]
fn heartbeat_and_metrics_describe_a_running_supervisor() {
    let db = TestDb::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let fake = FakeHook::start(Answer::Status(200), Some((Duration::ZERO, db.url.clone())));
    for i in 0..3 {
        db.enqueue("scout", &format!("job {i}"), &[]);
    }
    let sup = db.spawn_supervisor(
        &[
            "--supervisor-id",
            "metrics-test",
            "--hook-url",
            &fake.url,
            "--metrics-addr",
            &addr,
            "--heartbeat-interval",
            "0.2",
        ],
        &[],
    );
    let until = Instant::now() + Duration::from_secs(30);
    while db.one::<i64>("select count(*) from jobs where status = 'succeeded'") < 3 {
        assert!(Instant::now() < until, "jobs not done");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let beat: Value = db.one(
        "select to_jsonb(h.*) from dispatcher_heartbeats h where dispatcher_id = 'metrics-test'",
    );
    assert_eq!(beat["pid"], sup.child.id());
    assert_eq!(beat["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(beat["metrics"]["claimed"], 3, "{beat}");
    assert_eq!(beat["metrics"]["woken"], 3, "{beat}");

    let body = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(
        body.contains("agentbus_jobs_claimed_total{supervisor=\"metrics-test\",agent=\"scout\"} 3"),
        "{body}"
    );
    assert!(
        body.contains("agentbus_jobs_woken_total{supervisor=\"metrics-test\",agent=\"scout\"} 3"),
        "{body}"
    );
    assert!(
        body.contains("agentbus_dispatch_latency_seconds_count{supervisor=\"metrics-test\"} 3"),
        "{body}"
    );
    assert!(body.contains("# TYPE agentbus_in_flight gauge"), "{body}");
    drop(sup);
}

#[test]
fn a_second_sigterm_exits_at_once() {
    let db = TestDb::new();
    let scratch = Scratch::new();
    let runner = scratch.script("work.sh", "sleep 60");
    let id = db.enqueue("a", "slow", &[]);
    let sup = db.spawn_supervisor(&["--exec", &runner, "--shutdown-grace", "120"], &[]);
    wait_until_running(&db, &id);
    sup.signal(Signal::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    sup.signal(Signal::SIGTERM);
    // Well inside the 120 s grace: the second signal did not wait for the child.
    let out = sup.wait(Duration::from_secs(10));
    assert_ne!(out.code, 0, "{}", out.stderr);
    // The job is still leased to the dead supervisor; its lease will recover it.
    assert_eq!(job(&db, &id)["status"], "running");
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

#[test]
fn a_restarted_supervisor_forgets_the_heartbeats_of_dead_processes_on_its_host() {
    let db = TestDb::new();
    let host = nix::unistd::gethostname()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = gone.id() as i32;
    gone.wait().unwrap();
    let alive_pid = std::process::id() as i32;
    db.client()
        .execute(
            "insert into dispatcher_heartbeats (dispatcher_id, host, pid, last_seen)
             values ('old-dead', $1, $2, now() - interval '10 minutes'),
                    ('old-alive', $1, $3, now() - interval '10 minutes'),
                    ('elsewhere', 'another-host', $2, now() - interval '10 minutes')",
            &[&host, &dead_pid, &alive_pid],
        )
        .unwrap();
    let out = db.supervise_once(&["--exec", "true"], &[], MINUTE);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let left: Vec<String> = db
        .client()
        .query(
            "select dispatcher_id from dispatcher_heartbeats order by 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, ["elsewhere", "old-alive"]);
}
