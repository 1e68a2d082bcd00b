//! What must survive: kill -9 mid-run, three supervisors sharing one limit, a database
//! restart, concurrent reapers; heartbeats and metrics of a running supervisor.

use super::{Scratch, MINUTE};
use crate::support::fake_hook::{Answer, FakeHook};
use crate::support::{run_cli, TestDb};
use nix::sys::signal::Signal;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    wait_all_succeeded(&db, Duration::from_secs(180), "after the kills");
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
    let sampler = MaxSampler::start(
        &db.url,
        "select count(*) from jobs where target_agent = 'agent-0' and status in ('leased', 'running')",
    );
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
    wait_all_succeeded(&db, Duration::from_secs(120), "");
    let (max, samples) = sampler.finish();
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
fn expired_leases_are_recovered_exactly_once_by_concurrent_reapers() {
    let db = TestDb::new();
    db.bulk_enqueue(300, 5);
    let mut c = db.client();
    c.execute(
        "select count(*) from claim_jobs('default', 'gone', 60, 300)",
        &[],
    )
    .unwrap();
    db.expire_all_leases();
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
fn jobs_arriving_while_others_end_stay_within_max_in_flight() {
    // A backlog, then jobs arriving one at a time while others end: the listener claims on
    // notifications (an enqueue's, a close's) and the main loop on freed slots, in turns;
    // the jobs out at once stay within --max-in-flight, every job runs once. What this does
    // not show: that the turn is needed (three runs with the loop taking a turn of its own
    // did not overstep, as a close notifies before its command exits and the listener then
    // finds no free slot), nor which of the two claimed each job.
    let db = TestDb::new();
    let scratch = Scratch::new();
    let runner = scratch.script(
        "work.sh",
        "sleep 0.1\nexec agentbus complete-job >/dev/null",
    );
    let sampler = MaxSampler::start(
        &db.url,
        "select count(*) from jobs where status in ('leased', 'running')",
    );
    let sup = db.spawn_supervisor(
        &[
            "--exec",
            &runner,
            "--max-in-flight",
            "2",
            "--default-concurrency",
            "50",
        ],
        &[],
    );
    let mut c = db.client();
    db.bulk_enqueue(60, 10);
    for i in 0..30 {
        c.execute(
            "insert into jobs (target_agent, job_type, subject) values ($1, 'test', 'one at a time')",
            &[&format!("agent-{}", i % 10)],
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_all_succeeded(&db, Duration::from_secs(120), "");
    let (max, _) = sampler.finish();
    drop(sup);
    assert!(max <= 2, "saw {max} jobs leased or running at once");
    assert_eq!(max, 2, "the 2 slots were never used in full");
    assert_eq!(db.one::<i64>("select count(*) from job_attempts"), 90);
}

/// Waits until every job succeeded; fails the test after `within`.
fn wait_all_succeeded(db: &TestDb, within: Duration, what: &str) {
    let until = Instant::now() + within;
    while db.one::<i64>("select count(*) from jobs where status <> 'succeeded'") > 0 {
        assert!(Instant::now() < until, "jobs did not finish {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs a count over and over on a connection of its own until finished: the largest
/// count seen, and how many times it ran.
struct MaxSampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(i64, u64)>,
}

impl MaxSampler {
    fn start(url: &str, count: &'static str) -> MaxSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let (url, done) = (url.to_string(), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let mut c = crate::support::connect(&url);
            let (mut max, mut samples) = (0i64, 0u64);
            while !done.load(Ordering::SeqCst) {
                let n: i64 = c.query_one(count, &[]).unwrap().get(0);
                max = max.max(n);
                samples += 1;
            }
            (max, samples)
        });
        MaxSampler { stop, thread }
    }

    fn finish(self) -> (i64, u64) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}
