//! Starting and stopping: leftovers released (commands) or left to their lease (hooks)
//! at restart, SIGTERM with and without grace,
//! a second signal, bad flags, help, and heartbeats of dead processes.

use super::{attempts, job, wait_until_running, Scratch, MINUTE};
use crate::support::fake_hook::{Answer, FakeHook};
use crate::support::{run_cli, TestDb, SUPERVISOR};
use nix::sys::signal::Signal;
use std::time::Duration;

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
fn a_restarted_supervisor_leaves_a_hook_job_it_may_have_sent_to_its_lease() {
    // A hook job is sent while still leased, so one left leased by a previous run may
    // have reached the gateway: it is not woken again at once (that could run the agent
    // twice), but recovered when its lease runs out, as a running job would be.
    let db = TestDb::new();
    let fake = FakeHook::start(
        Answer::Status(200),
        Some((Duration::from_millis(100), db.url.clone())),
    );
    let id = db.enqueue("a", "maybe sent", &[]);
    let claimed = db
        .cli(&[
            "claim-jobs",
            "--lease-owner",
            "sup-1",
            "--lease-seconds",
            "2",
        ])
        .ok();
    assert_eq!(claimed[0]["id"], id.as_str());
    let out = db.supervise_once(
        &["--supervisor-id", "sup-1", "--hook-url", &fake.url],
        &[],
        MINUTE,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("left a job of a previous run to its lease"),
        "{}",
        out.stderr
    );
    // --once ends when nothing is ready: the job is back in the queue for its retry.
    let a = attempts(&db, &id);
    let statuses: Vec<&str> = a.iter().map(|a| a["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["timed_out"], "{a:?}");
    assert!(fake.requests().is_empty(), "not woken again");
    let j = job(&db, &id);
    assert_eq!(j["status"], "queued", "{j}");
    assert_eq!(j["unreached_attempts"], 0, "{j}");
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
            &[
                "--hook-url",
                "http://127.0.0.1:9/hooks/agent",
                "--lease-seconds",
                "20",
            ],
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

#[test]
fn an_exec_only_supervisor_accepts_a_lease_shorter_than_the_hook_request_timeout() {
    let db = TestDb::new();
    let id = db.enqueue("worker", "short lease", &[]);
    let out = db.supervise_once(
        &[
            "--exec",
            "agentbus complete-job --summary done",
            "--lease-seconds",
            "5",
        ],
        &[],
        MINUTE,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let job = db.cli(&["show-job", &id, "--format", "json"]).ok();
    assert_eq!(job["status"], "succeeded");
}
