//! Migrations: fresh, re-run, concurrent, edited file refused, newer database refused.

use agentbus::db::migrate::{self, Migration, MigrationState, MIGRATIONS};
use agentbus::ErrorKind;

use crate::support::TestDb;

#[test]
fn a_fresh_database_is_migrated_then_up_to_date() {
    let db = TestDb::empty();

    let first = db.cli(&["migrate"]).ok();
    let second = db.cli(&["migrate"]).ok();
    let second_table = db.cli(&["migrate", "--format", "table"]);
    let status = db.cli(&["migrate", "--status"]).ok();

    assert_eq!(first["up_to_date"], false);
    assert_eq!(first["applied"].as_array().unwrap().len(), MIGRATIONS.len());
    assert_eq!(second["up_to_date"], true);
    assert!(second["applied"].as_array().unwrap().is_empty());
    assert!(
        second_table.stdout.contains("up to date"),
        "{}",
        second_table.stdout
    );
    assert!(status
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["state"] == "applied"));
    // The schema works: the views answer.
    db.client()
        .query("select * from system_health_snapshot_v", &[])
        .unwrap();
}

#[test]
fn status_lists_pending_migrations_without_applying_them() {
    let db = TestDb::empty();
    let status = db.cli(&["migrate", "--status"]).ok();
    assert!(status
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["state"] == "pending"));
    let ledger: bool = db
        .client()
        .query_one("select to_regclass('agentbus_migrations') is not null", &[])
        .unwrap()
        .get(0);
    assert!(
        !ledger,
        "migrate --status must not write (it created the ledger table)"
    );
    db.cli(&["list-jobs"]).fails(78, "agentbus migrate");
}

#[test]
fn concurrent_migrations_apply_once() {
    let db = TestDb::empty();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let url = db.url.clone();
            std::thread::spawn(move || {
                let mut c = crate::support::connect(&url);
                migrate::migrate(&mut c).expect("migrate")
            })
        })
        .collect();
    let reports: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        reports.iter().filter(|r| !r.up_to_date).count(),
        1,
        "exactly one run applied"
    );
}

#[test]
fn an_edited_migration_is_refused() {
    let db = TestDb::new();
    let mut c = db.client();
    let mut edited: Vec<Migration> = MIGRATIONS.to_vec();
    edited[0].sql = "select 1; -- edited";

    let err = migrate::apply(&mut c, &edited).unwrap_err();

    assert_eq!(err.kind, ErrorKind::Config);
    assert!(err.message.contains("was edited"), "{}", err.message);
    // Through the binary: the recorded checksum no longer matches the file.
    c.execute(
        "update agentbus_migrations set checksum = 'deadbeef' where version = 1",
        &[],
    )
    .unwrap();
    db.cli(&["migrate"]).fails(78, "was edited");
    db.cli(&["migrate", "--status"]).fails(78, "was edited");
}

#[test]
fn a_database_newer_than_the_binary_is_refused() {
    let db = TestDb::new();
    db.client()
        .execute("insert into agentbus_migrations (version, name, checksum) values (9999, 'future', 'x')", &[])
        .unwrap();
    db.cli(&["migrate"]).fails(78, "newer than this agentbus");
}

#[test]
fn a_new_migration_is_applied_after_the_existing_ones() {
    let db = TestDb::new();
    let mut c = db.client();
    let mut next: Vec<Migration> = MIGRATIONS.to_vec();
    next.push(Migration {
        version: MIGRATIONS.len() as i32 + 1,
        name: "extra",
        sql: "create table extra_t (id int);",
    });

    let report = migrate::apply(&mut c, &next).unwrap();

    assert_eq!(report.applied.len(), 1);
    assert_eq!(report.applied[0].name, "extra");
    assert_eq!(report.applied[0].state, MigrationState::Applied);
}

#[test]
fn every_sql_file_is_embedded() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sql");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".sql"))
        .collect();
    files.sort();
    let embedded: Vec<String> = MIGRATIONS
        .iter()
        .map(|m| format!("{:04}_{}.sql", m.version, m.name))
        .collect();
    assert_eq!(files, embedded);
}

#[test]
fn migrations_since_the_last_release_only_expand_and_migrate_to_stages_an_upgrade() {
    // The CI gate: nothing after sql/RELEASED would break the previous release.
    let db = crate::support::TestDb::empty();
    let gate = db.cli(&["migrate", "--check", "--format", "json"]);
    assert_eq!(gate.code, 0, "{}{}", gate.stdout, gate.stderr);
    assert_eq!(gate.json()["contracts"], serde_json::json!([]));
    // It does find contract steps: the whole history has some (each released long ago).
    let all = db.cli(&["migrate", "--check", "--since", "0", "--format", "table"]);
    assert_eq!(all.code, 1);
    assert!(
        all.stdout.contains("sql/0002_supervisor.sql:") && all.stdout.contains("drops a function"),
        "{}",
        all.stdout
    );

    // A staged upgrade: up to 5, then the rest.
    let five = db.cli(&["migrate", "--to", "5", "--format", "json"]).ok();
    assert_eq!(five["applied"].as_array().unwrap().len(), 5, "{five}");
    let version: i32 = db.one("select max(version) from agentbus_migrations");
    assert_eq!(version, 5);
    let back = db.cli(&["migrate", "--to", "3"]);
    assert_eq!(back.code, 4, "{}", back.stderr);
    assert!(back.stderr.contains("only go forward"), "{}", back.stderr);
    let unknown = db.cli(&["migrate", "--to", "999"]);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    let rest = db.cli(&["migrate", "--format", "json"]).ok();
    assert!(rest["applied"].as_array().unwrap().len() >= 16, "{rest}");
    let pending = db.cli(&["migrate", "--status", "--format", "json"]).ok();
    assert!(pending
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["state"] == "applied"));
}
