//! Where a command finds its database: `AGENTBUS_DATABASE_URL`, then `DATABASE_URL`, then
//! libpq's `PG*` variables; and what it says when it finds none, inside OpenClaw or not.

use crate::support::{run_cli, TestDb};

/// A URL that parses but never answers (nothing listens on port 1).
const DEAD: &str = "postgresql://nobody@127.0.0.1:1/none";

/// `postgresql://USER[:PASS]@HOST:PORT/DB` of the test database, as libpq variables.
fn pg_vars(url: &str) -> Vec<(&'static str, String)> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (auth, rest) = rest.split_once('@').unwrap_or(("postgres", rest));
    let (host_port, db) = rest.split_once('/').unwrap_or((rest, "postgres"));
    let db = db.split('?').next().unwrap_or(db);
    let (host, port) = host_port.split_once(':').unwrap_or((host_port, "5432"));
    let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
    let mut vars = vec![
        ("PGHOST", host.to_string()),
        ("PGPORT", port.to_string()),
        ("PGUSER", user.to_string()),
        ("PGDATABASE", db.to_string()),
    ];
    if !password.is_empty() {
        vars.push(("PGPASSWORD", password.to_string()));
    }
    vars
}

#[test]
fn agentbus_database_url_wins_then_database_url_then_pg_variables() {
    let db = TestDb::new();
    // AGENTBUS_DATABASE_URL is read first: a dead DATABASE_URL next to it is not used.
    let out = run_cli(
        &["list-jobs", "--format", "json"],
        &[("AGENTBUS_DATABASE_URL", &db.url), ("DATABASE_URL", DEAD)],
        None,
    );
    out.ok();
    // And the other way round: a dead AGENTBUS_DATABASE_URL is used, and fails (75).
    let out = run_cli(
        &["list-jobs"],
        &[("AGENTBUS_DATABASE_URL", DEAD), ("DATABASE_URL", &db.url)],
        None,
    );
    out.fails(75, "database unreachable");
    // DATABASE_URL alone still works.
    run_cli(&["list-jobs"], &[("DATABASE_URL", &db.url)], None).ok();
    // libpq's variables alone work, as OpenClaw passes them.
    let vars = pg_vars(&db.url);
    let env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let job = run_cli(
        &["enqueue-job", "--target-agent", "a", "--subject", "via PG*"],
        &env,
        None,
    )
    .ok();
    assert_eq!(job["subject"], "via PG*");
}

#[test]
fn no_settings_inside_openclaw_names_the_cause_and_the_fix() {
    // What an agent's exec sees when the gateway was given only DATABASE_URL: OpenClaw
    // removed it and set OPENCLAW_SHELL.
    let out = run_cli(
        &[
            "complete-job",
            "7d4f0c1e-2b8a-4c55-9f0e-3a1b2c3d4e5f",
            "--summary",
            "x",
        ],
        &[("OPENCLAW_SHELL", "exec"), ("OPENCLAW_CLI", "1")],
        None,
    );
    out.fails(78, "OpenClaw");
    for needle in [
        "never passes DATABASE_URL",
        "AGENTBUS_DATABASE_URL",
        "~/.openclaw/.env",
    ] {
        assert!(out.stderr.contains(needle), "{needle}: {}", out.stderr);
    }
    // Outside OpenClaw, the plain message.
    let out = run_cli(&["list-jobs"], &[], None);
    out.fails(78, "DATABASE_URL is not set");
    assert!(!out.stderr.contains("OpenClaw"), "{}", out.stderr);
}

#[test]
fn a_bad_url_is_named_by_its_variable_and_its_password_never_printed() {
    let out = run_cli(
        &["list-jobs"],
        &[(
            "AGENTBUS_DATABASE_URL",
            "postgresql://u:s3cret-pw@host:notaport/db",
        )],
        None,
    );
    out.fails(
        78,
        "AGENTBUS_DATABASE_URL is not a valid PostgreSQL connection string",
    );
    assert!(!out.stderr.contains("s3cret-pw"), "{}", out.stderr);
}

#[test]
fn exec_children_get_agentbus_database_url() {
    let db = TestDb::new();
    let id = db.enqueue("worker", "close me without DATABASE_URL", &[]);
    // The child drops DATABASE_URL, as OpenClaw would, and still closes its job.
    let out = db.supervise_once(
        &[
            "--exec",
            "sh -c 'unset DATABASE_URL; exec agentbus complete-job --summary closed-via-agentbus-url'",
        ],
        &[],
        std::time::Duration::from_secs(60),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let job = db.cli(&["show-job", &id, "--format", "json"]).ok();
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["summary"], "closed-via-agentbus-url");
}

#[test]
fn the_supervisor_reads_agentbus_database_url_before_database_url() {
    let db = TestDb::new();
    let id = db.enqueue("worker", "x", &[]);
    let out = db.supervise_once(
        &["--exec", "agentbus complete-job --summary done"],
        &[("DATABASE_URL", DEAD), ("AGENTBUS_DATABASE_URL", &db.url)],
        std::time::Duration::from_secs(60),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let job = db.cli(&["show-job", &id, "--format", "json"]).ok();
    assert_eq!(job["status"], "succeeded");
}

#[test]
fn transaction_pool_mode_sets_the_session_per_transaction_and_the_supervisor_refuses_it() {
    let db = TestDb::new();
    let pooled = [("AGENTBUS_POOL_MODE", "transaction")];
    // A job's whole life with the settings set per transaction (as through PgBouncer in
    // transaction mode; scripts/test-pgbouncer.sh runs the same through a real one).
    let job = db
        .cli_with(
            &["enqueue-job", "--target-agent", "w", "--subject", "pooled"],
            &pooled,
            None,
        )
        .ok();
    let id = crate::support::s(&job, "id");
    let claimed = db
        .cli_with(
            &["claim-jobs", "--lease-owner", "sup", "--format", "json"],
            &pooled,
            None,
        )
        .ok();
    let token = crate::support::s(&claimed[0], "lease_token");
    db.cli_with(
        &["complete-job", &id, "--lease-token", &token],
        &pooled,
        None,
    )
    .ok();
    let shown = db
        .cli_with(&["show-job", &id, "--format", "json"], &pooled, None)
        .ok();
    assert_eq!(shown["status"], "succeeded");
    // A read command after the pinned transaction (status runs several statements).
    let status = db
        .cli_with(&["status", "--format", "json"], &pooled, None)
        .ok();
    assert_eq!(status["jobs"]["succeeded"], 1, "{status}");
    // A bad value names itself.
    db.cli_with(&["status"], &[("AGENTBUS_POOL_MODE", "statement")], None)
        .fails(78, "AGENTBUS_POOL_MODE");
    // The supervisor LISTENs: it needs a session of its own.
    let out = db.supervise_once(
        &["--exec", "true"],
        &[("AGENTBUS_POOL_MODE", "transaction")],
        std::time::Duration::from_secs(30),
    );
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert!(out.stderr.contains("transaction pooler"), "{}", out.stderr);
}

#[test]
fn sessions_run_without_jit_or_parallel_workers_in_both_pool_modes() {
    // Short statements on a big ledger: compiling (JIT) or starting worker processes for
    // them costs more than it saves, whether the settings travel in the startup packet
    // (session) or are set per transaction (through a transaction pooler).
    use agentbus::db::{connect, DbConfig, SessionSettings};
    let db = TestDb::new();
    for mode in ["session", "transaction"] {
        let cfg = DbConfig::from_lookup(|name| match name {
            "AGENTBUS_DATABASE_URL" => Some(db.url.clone()),
            "AGENTBUS_POOL_MODE" => Some(mode.to_string()),
            _ => None,
        })
        .unwrap();
        let mut client = connect(&cfg, &SessionSettings::cli("test")).unwrap();
        let row = client
            .query_one(
                "select current_setting('jit'), current_setting('max_parallel_workers_per_gather')",
                &[],
            )
            .unwrap();
        let (jit, workers): (String, String) = (row.get(0), row.get(1));
        assert_eq!(
            (jit.as_str(), workers.as_str()),
            ("off", "0"),
            "{mode} mode"
        );
    }
}
