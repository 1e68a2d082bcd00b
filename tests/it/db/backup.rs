//! Backups and the restore drill: a round trip with every table non-empty, a corrupted
//! dump, a tampered manifest, a target that is not empty, and the audit's view of drills.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{Scratch, TestDb};

const FILL: &str = include_str!("../../fixtures/fill-every-table.sql");

/// Tables of the schema with no row.
fn empty_tables(db: &TestDb) -> Vec<String> {
    let mut c = db.client();
    let names: Vec<String> = c
        .query(
            "select relname::text from pg_class where relnamespace = current_schema()::regnamespace and relkind = 'r' order by 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    names
        .into_iter()
        .filter(|t| {
            let n: i64 = c
                .query_one(&format!("select count(*) from \"{t}\""), &[])
                .unwrap()
                .get(0);
            n == 0
        })
        .collect()
}

fn backed_up(db: &TestDb, dir: &Path) -> (Value, PathBuf) {
    let out = db
        .cli(&["backup", "--to", dir.to_str().unwrap(), "--format", "json"])
        .ok();
    let file = dir.join(out["manifest"]["file"].as_str().unwrap());
    assert!(file.is_file() && file.with_extension("json").is_file());
    (out, file)
}

fn codes(db: &TestDb) -> Vec<String> {
    let audit = db.cli(&["audit", "--format", "json"]).ok();
    audit["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_backup_restores_into_an_empty_database_and_verifies_table_by_table() {
    let db = TestDb::new();
    for i in 0..5 {
        db.enqueue("writer", &format!("draft {i}"), &[]);
    }
    db.claim_one("s1", Some("writer"));
    db.client().batch_execute(FILL).unwrap();
    assert_eq!(
        empty_tables(&db),
        Vec::<String>::new(),
        "every table has a row"
    );
    let dir = Scratch::new();
    let (out, file) = backed_up(&db, &dir.0);
    let m = &out["manifest"];
    assert_eq!(m["format"], "agentbus-backup 1");
    assert!(m["migration_version"].as_i64().unwrap() >= 20);
    assert!(m["tables"]["jobs"]["rows"].as_i64().unwrap() >= 5);
    assert_eq!(m["jobs_by_status"]["leased"], 1);
    let tables = m["tables"].as_object().unwrap().len();
    assert!(tables >= 25, "{tables} tables");

    let target = TestDb::empty();
    let r = db.cli(&[
        "restore",
        "--from",
        file.to_str().unwrap(),
        "--into",
        &target.url,
        "--verify",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = r.json();
    assert_eq!(r["ok"], true, "{r}");
    let checks = r["checks"].as_array().unwrap();
    assert_eq!(
        checks.len(),
        2 * tables + 3,
        "rows and sample per table, version, jobs, claim"
    );
    assert!(checks.iter().all(|c| c["ok"] == true));
    assert_eq!(empty_tables(&target), Vec::<String>::new());
    let queued: i64 = target.one("select count(*) from jobs where status = 'queued'");
    assert!(queued >= 4);
    // Both ends are in the ledger; no drill is overdue.
    let topics: Vec<String> = db
        .client()
        .query(
            "select topic from events where topic like 'backup.%' order by id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(topics, ["backup.completed", "backup.restore_verified"]);
    assert!(!codes(&db).contains(&"restore_drill_overdue".to_string()));

    // Restoring again into the same (now full) database is refused, and changes nothing.
    let again = db.cli(&[
        "restore",
        "--from",
        file.to_str().unwrap(),
        "--into",
        &target.url,
    ]);
    assert_eq!(again.code, 4, "{}", again.stderr);
    assert!(
        again.stderr.contains("restore only into an empty database"),
        "{}",
        again.stderr
    );
}

#[test]
fn a_corrupted_dump_is_refused_and_a_tampered_manifest_fails_the_verification() {
    let db = TestDb::new();
    db.enqueue("writer", "draft", &[]);
    let dir = Scratch::new();
    let (_, file) = backed_up(&db, &dir.0);

    // One byte flipped in the middle of the dump.
    let bad = dir.0.join("agentbus-20200101T000000Z.dump");
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&bad, &bytes).unwrap();
    std::fs::copy(file.with_extension("json"), bad.with_extension("json")).unwrap();
    let target = TestDb::empty();
    let r = db.cli(&[
        "restore",
        "--from",
        bad.to_str().unwrap(),
        "--into",
        &target.url,
        "--verify",
    ]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("corrupted"), "{}", r.stderr);
    assert_eq!(empty_tables(&target).len(), 0, "no table was created");
    let tables: i64 = target.one("select count(*) from pg_class where relnamespace = 'public'::regnamespace and relkind = 'r'");
    assert_eq!(tables, 0);
    assert!(
        codes(&db).contains(&"restore_drill_overdue".to_string()),
        "a failed drill is a finding"
    );

    // A manifest that claims one job more than the dump holds: the verification says so.
    let manifest_path = file.with_extension("json");
    let mut m: Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    let jobs = m["tables"]["jobs"]["rows"].as_i64().unwrap();
    m["tables"]["jobs"]["rows"] = (jobs + 1).into();
    std::fs::write(&manifest_path, serde_json::to_string(&m).unwrap()).unwrap();
    let r = db.cli(&[
        "restore",
        "--from",
        file.to_str().unwrap(),
        "--into",
        &target.url,
        "--verify",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let failed: Vec<String> = r.json()["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(failed, ["rows jobs"]);
}

#[test]
fn backups_taken_but_never_restored_are_an_audit_finding_and_retention_keeps_the_newest() {
    let db = TestDb::new();
    let dir = Scratch::new();
    backed_up(&db, &dir.0);
    // Fresh backups and no drill yet: not overdue.
    assert!(!codes(&db).contains(&"restore_drill_overdue".to_string()));
    // Backups for 40 days and never a drill: overdue.
    db.client()
        .batch_execute("update events set created_at = now() - interval '40 days' where topic = 'backup.completed'")
        .unwrap();
    let audit = db.cli(&["audit", "--format", "json"]).ok();
    let f = audit["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "restore_drill_overdue")
        .cloned()
        .unwrap_or_else(|| panic!("{audit}"));
    assert!(
        f["detail"]
            .as_str()
            .unwrap()
            .contains("none was ever restored"),
        "{f}"
    );

    // Old dumps in the folder (by their names) are pruned by the next backup; a file that
    // is not a dump stays.
    for day in 1..=20 {
        let name = format!("agentbus-202601{day:02}T020000Z.dump");
        std::fs::write(dir.0.join(&name), b"old").unwrap();
        std::fs::write(dir.0.join(name.replace(".dump", ".json")), b"{}").unwrap();
    }
    std::fs::write(dir.0.join("README"), b"mine").unwrap();
    let out = db
        .cli(&[
            "backup",
            "--to",
            dir.0.to_str().unwrap(),
            "--keep-daily",
            "2",
            "--keep-weekly",
            "1",
            "--keep-monthly",
            "2",
            "--format",
            "json",
        ])
        .ok();
    let kept = out["retention"]["kept"].as_array().unwrap().len();
    let removed = out["retention"]["removed"].as_array().unwrap().len();
    assert_eq!(kept + removed, 22);
    // Two days (today's newest, January 20), which also cover the week and both months;
    // today's first backup goes with the others.
    assert_eq!(kept, 2, "{out}");
    assert!(dir.0.join("README").exists());
    assert!(
        dir.0.join("agentbus-20260120T020000Z.dump").exists(),
        "newest of January"
    );
    assert!(!dir.0.join("agentbus-20260105T020000Z.dump").exists());
    assert!(!dir.0.join("agentbus-20260105T020000Z.json").exists());
}

/// The command's session ends a transaction that falls silent after a few seconds; the
/// backup's transaction, which holds the exported snapshot while pg_dump reads it, waits
/// as long as pg_dump takes. Here pg_dump is a wrapper that waits 7 s before the real one.
#[test]
fn a_backup_whose_dump_outlasts_the_idle_transaction_limit_completes() {
    let db = TestDb::new();
    db.enqueue("writer", "draft", &[]);
    let real = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.join("pg_dump"))
        .find(|f| f.is_file())
        .expect("pg_dump on PATH");
    let bin = Scratch::new();
    bin.script(
        "pg_dump",
        &format!("sleep 7\nexec '{}' \"$@\"", real.display()),
    );
    let path = format!(
        "{}:{}",
        bin.0.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let dir = Scratch::new();
    let out = db
        .cli_with(
            &[
                "backup",
                "--to",
                dir.0.to_str().unwrap(),
                "--format",
                "json",
            ],
            &[("PATH", &path)],
            None,
        )
        .ok();
    assert!(
        out["manifest"]["duration_ms"].as_u64().unwrap() >= 7000,
        "{out}"
    );
    let file = dir.0.join(out["manifest"]["file"].as_str().unwrap());
    assert!(file.is_file() && file.with_extension("json").is_file());
}
