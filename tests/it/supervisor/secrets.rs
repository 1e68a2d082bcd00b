//! Secrets stay where they belong: a hook token goes only to the origins the supervisor was
//! given, and whatever a gateway answers (even the request's own headers, echoed) reaches
//! no row, no log line and no output with a token in it.

use super::{attempts, job, MINUTE};
use crate::support::fake_hook::{Answer, FakeHook};
use crate::support::TestDb;

#[test]
fn a_hook_token_is_never_sent_to_an_origin_the_supervisor_was_not_given() {
    let db = TestDb::new();
    let token = format!("gw-{}", uuid::Uuid::new_v4().simple());
    let gateway = FakeHook::start(
        Answer::Status(200),
        Some((std::time::Duration::from_millis(50), db.url.clone())),
    );
    let thief = FakeHook::start(Answer::Status(200), None);
    // Someone with the right to configure agents points one at their own listener.
    db.cli(&[
        "configure-agent",
        "exfil",
        "--wake",
        "hook",
        "--hook-url",
        &thief.url,
    ])
    .ok();
    let stolen = db.enqueue("exfil", "anything", &[]);
    let honest = db.enqueue("scout", "find leads", &[]);
    let out = db.supervise_once(
        &["--hook-url", &gateway.url],
        &[("AGENTBUS_HOOK_TOKEN", token.as_str())],
        MINUTE,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(thief.requests().is_empty(), "the thief was called");
    let sent = gateway.wait_for(1, MINUTE);
    assert_eq!(
        sent[0].header("authorization"),
        Some(format!("Bearer {token}").as_str())
    );
    assert_eq!(
        sent[0].marker("AGENTBUS_JOB_ID").as_deref(),
        Some(honest.as_str())
    );
    // The agent is paused with the reason; its job waits, nothing was sent.
    let reason: String = db.one("select paused_reason from agents where agent_id = 'exfil'");
    assert!(
        reason.contains("not an origin this supervisor sends its hook token to"),
        "{reason}"
    );
    assert_eq!(job(&db, &stolen)["status"], "queued");
    assert!(!out.stderr.contains(&token));
}

#[test]
fn an_echoing_gateway_leaks_no_token_into_rows_logs_or_output() {
    let db = TestDb::new();
    let token = format!("gw-{}", uuid::Uuid::new_v4().simple());
    for status in [500, 401] {
        let echo = FakeHook::start(Answer::Echo(status), None);
        let id = db.enqueue(&format!("scout-{status}"), &format!("echo {status}"), &[]);
        let out = db.supervise_once(
            &["--hook-url", &echo.url],
            &[("AGENTBUS_HOOK_TOKEN", token.as_str())],
            MINUTE,
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
        // The echo did carry the token ...
        let got = echo.wait_for(1, MINUTE);
        assert_eq!(
            got[0].header("authorization"),
            Some(format!("Bearer {token}").as_str())
        );
        // ... and what was kept says so without it.
        let error = attempts(&db, &id)[0]["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(error.contains("Bearer ***"), "{error}");
        assert!(
            !out.stderr.contains(&token),
            "the supervisor log has the token"
        );
        for args in [
            vec!["list-agents", "--format", "json"],
            vec!["list-agents", "--format", "table"],
            vec!["show-job", id.as_str(), "--format", "json"],
            vec!["trace", id.as_str(), "--format", "table"],
            vec!["status", "--format", "json"],
        ] {
            let shown = db.cli(&args);
            assert!(!shown.stdout.contains(&token), "{args:?} printed the token");
        }
    }
    let dump = db.snapshot().to_string();
    assert!(!dump.contains(&token), "a row holds the token");
    assert!(
        dump.contains("Bearer ***"),
        "the redacted error was not kept"
    );
    // And the whole database, every table, as pg_dump sees it.
    let pg_dump = std::process::Command::new("pg_dump")
        .args(["--data-only", &db.url])
        .output()
        .expect("run pg_dump (PostgreSQL's client programs are needed for the tests)");
    assert!(
        pg_dump.status.success(),
        "{}",
        String::from_utf8_lossy(&pg_dump.stderr)
    );
    let dump = String::from_utf8_lossy(&pg_dump.stdout);
    assert!(dump.contains("Bearer ***"), "pg_dump saw no redacted error");
    assert!(!dump.contains(&token), "pg_dump found the token in a row");
}

#[test]
fn a_placeholder_inside_a_shell_string_is_warned_about_at_start() {
    let db = TestDb::new();
    let out = db.supervise_once(&["--exec", "sh -c 'echo {agent} >/dev/null'"], &[], MINUTE);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("WARN") && out.stderr.contains("placeholder inside a shell string"),
        "{}",
        out.stderr
    );
    let fine = db.supervise_once(
        &["--exec", "sh -c 'echo \"$AGENTBUS_AGENT\"' {agent}"],
        &[],
        MINUTE,
    );
    assert!(
        !fine.stderr.contains("placeholder inside a shell string"),
        "{}",
        fine.stderr
    );
}

#[test]
fn credentials_in_a_hook_url_are_never_printed() {
    let db = TestDb::new();
    let url = "http://ops:pw-9f8e7d6c@127.0.0.1:9/hooks/agent";
    let configured = db.cli(&[
        "configure-agent",
        "scout",
        "--wake",
        "hook",
        "--hook-url",
        url,
    ]);
    assert_eq!(configured.code, 0, "{}", configured.stderr);
    assert!(
        !configured.stdout.contains("pw-9f8e7d6c"),
        "{}",
        configured.stdout
    );
    for format in ["json", "table"] {
        let out = db.cli(&["list-agents", "--format", format]).ok_text();
        assert!(!out.contains("pw-9f8e7d6c"), "{out}");
        if format == "json" {
            assert!(out.contains("ops:***@127.0.0.1:9"), "{out}");
        }
    }
}
