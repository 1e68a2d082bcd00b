//! Identifiers are identifiers (sql/0014_identifiers.sql): names and keys with shell
//! metacharacters, spaces or control characters are refused by every command that takes
//! them and by the database itself; a supervisor never sees one; existing bad rows stop the
//! migration, listed.

use agentbus::db::migrate::{self, MIGRATIONS};

use crate::support::logins::sqlstate;
use crate::support::{s, TestDb};

const HOSTILE: [&str; 8] = [
    "x;touch pwned;echo",
    "$(touch pwned)",
    "`touch pwned`",
    "a b",
    "Closer",
    "x\u{1b}]0;t\u{7}",
    "-rf",
    "../etc",
];

#[test]
fn hostile_names_are_refused_by_every_command_and_nothing_is_written() {
    let db = TestDb::new();
    db.enqueue("rep", "fixture", &[]); // a ledger that is not empty
    let before = db.snapshot();
    for bad in HOSTILE {
        let cases: Vec<Vec<&str>> = vec![
            vec!["enqueue-job", "--target-agent", bad, "--subject", "s"],
            vec![
                "enqueue-job",
                "--namespace",
                bad,
                "--target-agent",
                "rep",
                "--subject",
                "s",
            ],
            vec![
                "enqueue-job",
                "--target-agent",
                "rep",
                "--subject",
                "s",
                "--source-agent",
                bad,
            ],
            vec![
                "enqueue-job",
                "--target-agent",
                "rep",
                "--subject",
                "s",
                "--flow-key",
                bad,
            ],
            vec![
                "enqueue-job",
                "--target-agent",
                "rep",
                "--subject",
                "s",
                "--correlation-key",
                bad,
            ],
            vec!["emit-event", "--topic", "t", "--source-agent", bad],
            vec!["emit-event", "--namespace", bad, "--topic", "t"],
            vec!["claim-jobs", "--lease-owner", bad],
            vec!["configure-agent", bad, "--max-concurrency", "1"],
            vec!["pause-agent", bad, "--reason", "r"],
            vec![
                "start-standing-order",
                "--agent-id",
                bad,
                "--order-name",
                "o",
                "--scheduled-for",
                "latest",
            ],
            vec![
                "start-standing-order",
                "--agent-id",
                "a",
                "--order-name",
                bad,
                "--scheduled-for",
                "latest",
            ],
            vec!["drain-agent", bad, "--cancel", "--reason", "r"],
            vec![
                "create-idea",
                "--source-agent",
                bad,
                "--theme",
                "t",
                "--title",
                "t",
                "--body",
                "b",
            ],
        ];
        for args in cases {
            let key_flag = args.contains(&"--flow-key") || args.contains(&"--correlation-key");
            if key_flag && agentbus::ledger::validate::is_key(bad) {
                continue; // keys may hold capitals ("Closer")
            }
            let out = db.cli(&args);
            assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
            assert!(
                out.stderr.contains("is not a valid name")
                    || out.stderr.contains("is not a valid key")
                    || (bad.starts_with('-') && out.stderr.contains("unexpected argument")),
                "{args:?}: {}",
                out.stderr
            );
            assert!(
                !out.stderr.contains('\u{1b}'),
                "the refusal echoed a raw escape: {:?}",
                out.stderr
            );
        }
    }
    assert_eq!(db.snapshot(), before);
    // Still usable for good names.
    db.cli(&[
        "enqueue-job",
        "--target-agent",
        "deal-desk.v2",
        "--subject",
        "s",
        "--flow-key",
        "deal/ACME-42",
    ])
    .ok();
}

#[test]
fn the_database_refuses_bad_identifiers_from_any_writer() {
    let db = TestDb::new();
    let mut c = db.client();
    for sql in [
        "insert into jobs (target_agent, job_type, subject) values ('x;rm -rf', 't', 's')",
        "insert into jobs (namespace, target_agent, job_type, subject) values ('a b', 'w', 't', 's')",
        "insert into jobs (target_agent, job_type, subject, flow_key) values ('w', 't', 's', 'k;k')",
        "insert into agents (namespace, agent_id) values ('default', '$(id)')",
        "insert into events (namespace, topic, source_agent) values ('default', 't', 'A')",
        "insert into standing_orders (agent_id, order_name, cron, message) values ('a', 'x y', '* * * * *', 'm')",
    ] {
        let e = c.execute(sql, &[]).unwrap_err();
        assert_eq!(sqlstate(&e), "23514", "{sql}: {e}");
    }
}

#[test]
fn arbitrary_strings_as_identifiers_are_refused_or_kept_exactly() {
    // A property test without a framework: a fixed-seed generator over characters that
    // matter (shell metacharacters, quotes, controls, unicode, the allowed set).
    let db = TestDb::new();
    let alphabet: Vec<char> = "abcz09_.:-/@+=AZ ;|&$`'\"\\()<>*?~#!{}[]\n\t\r\u{1b}\u{7f}äé✓"
        .chars()
        .collect();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut accepted = 0;
    for _ in 0..150 {
        let len = (next() % 12) as usize;
        let value: String = (0..len)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
            .collect();
        let flag = format!("--target-agent={value}");
        let out = db.cli(&["enqueue-job", &flag, "--subject", "p", "--flow-key", "k"]);
        match out.code {
            0 => {
                accepted += 1;
                let job = out.json();
                assert_eq!(job["target_agent"], value.as_str(), "stored changed");
                let shown = db
                    .cli(&["show-job", &s(&job, "id"), "--get", "target_agent"])
                    .ok_text();
                assert_eq!(shown.trim_end_matches('\n'), value);
            }
            2 => assert!(
                out.stderr.contains("is not a valid name"),
                "{value:?}: {}",
                out.stderr
            ),
            other => panic!("{value:?}: exit {other}: {}", out.stderr),
        }
    }
    assert!(accepted > 0, "the generator never produced a valid name");
}

#[test]
fn a_migration_stops_on_existing_bad_identifiers_and_lists_them() {
    let db = TestDb::empty();
    let mut c = db.client();
    let before_identifiers = MIGRATIONS
        .iter()
        .position(|m| m.name == "identifiers")
        .expect("the identifiers migration");
    migrate::apply(&mut c, &MIGRATIONS[..before_identifiers]).unwrap();
    c.batch_execute(
        "insert into agents (namespace, agent_id) values ('default', 'x;rm -rf /');
         insert into jobs (target_agent, job_type, subject, flow_key) values ('ok', 't', 's', 'has space')",
    )
    .unwrap();
    let out = db.cli(&["migrate"]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("agents.agent_id = 'x;rm -rf /'"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("jobs.flow_key = 'has space'"),
        "{}",
        out.stderr
    );
    // Nothing was rewritten, and the schema stayed where it was.
    let agent: String = db.one("select agent_id from agents");
    assert_eq!(agent, "x;rm -rf /");
    let version: i32 = db.one("select max(version) from agentbus_migrations");
    assert_eq!(version as usize, before_identifiers);
}

#[test]
fn short_ids_resolve_within_the_namespace_and_errors_name_the_command() {
    let db = TestDb::new();
    let theirs = s(
        &db.cli(&[
            "enqueue-job",
            "--namespace",
            "other",
            "--target-agent",
            "rep",
            "--subject",
            "theirs",
        ])
        .ok(),
        "id",
    );
    let short = &theirs[..8];
    let before = db.snapshot();
    db.cli(&["cancel-job", short, "--reason", "oops"])
        .fails(3, "no job id of namespace default starts with");
    db.cli(&["show-job", short])
        .fails(3, "no job id of namespace default");
    assert_eq!(db.snapshot(), before);
    // In its own namespace the short id works; a whole id works anywhere.
    let other = [("AGENTBUS_NAMESPACE", "other")];
    let shown = db
        .cli_with(&["show-job", short, "--get", "status"], &other, None)
        .ok_text();
    assert_eq!(shown.trim(), "queued");
    db.cli(&["show-job", &theirs]).ok();
    db.cli_with(&["cancel-job", short, "--reason", "mine"], &other, None)
        .ok();
    // Parse errors have the documented shape, and no message repeats the command.
    db.cli(&["cancel-job", "zz"])
        .fails(2, "agentbus: error: cancel-job: invalid value 'zz'");
    let again = db.cli(&["cancel-job", &theirs, "--reason", "again"]);
    assert_eq!(again.code, 4);
    assert!(
        !again.stderr.contains("cancel-job: cancel-job"),
        "{}",
        again.stderr
    );
}

#[test]
fn an_operator_whose_user_name_is_not_a_name_gets_a_name_as_its_default_actor() {
    let db = TestDb::new();
    let env = [("USER", "Ann Smith")];
    // The default actor is made a name: operator:ann-smith.
    let job = db
        .cli_with(
            &["enqueue-job", "--target-agent", "rep", "--subject", "s"],
            &env,
            None,
        )
        .ok();
    let actor: String = db.one(&format!(
        "select actor from job_history where job_id = '{}'",
        s(&job, "id")
    ));
    assert_eq!(actor, "operator:ann-smith");
}
