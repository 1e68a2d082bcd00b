//! Restores a dump into an empty database and, asked to, verifies it against its manifest.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use super::{file_sha256, jobs_by_status, read_manifest, run_pg, table_facts, Manifest};
use crate::db::{connect, DbConfig, SessionSettings};
use crate::error::{Error, Result};

/// One comparison of the restored database with the manifest.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was compared (`rows jobs`, `sample events`, `migration version`, ...).
    pub name: String,
    /// The manifest's value.
    pub expected: String,
    /// The restored database's.
    pub got: String,
    /// Whether they agree.
    pub ok: bool,
}

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    /// The dump restored.
    pub file: String,
    /// The database it went into (no credentials).
    pub into: String,
    /// Its manifest.
    pub manifest: Manifest,
    /// How long the restore (and the verification) took.
    pub duration_ms: u64,
    /// Whether it was verified.
    pub verified: bool,
    /// The comparisons (empty without verification).
    pub checks: Vec<Check>,
    /// True when every check agreed.
    pub ok: bool,
}

fn check(name: impl Into<String>, expected: impl ToString, got: impl ToString) -> Check {
    let (expected, got) = (expected.to_string(), got.to_string());
    Check {
        name: name.into(),
        ok: expected == got,
        expected,
        got,
    }
}

/// Restores `dump` into the empty database `into` (after checking the dump's SHA-256
/// against its manifest); with `verify`, compares it with the manifest.
pub fn restore(dump: &Path, into: &DbConfig, into_label: &str, verify: bool) -> Result<Restored> {
    let started = Instant::now();
    let manifest = read_manifest(dump)?;
    let (sha, bytes) = file_sha256(dump)?;
    if sha != manifest.sha256 || bytes != manifest.bytes {
        return Err(Error::failure(format!(
            "{}: corrupted: {bytes} bytes with SHA-256 {sha}, the manifest says {} bytes with {}",
            dump.display(),
            manifest.bytes,
            manifest.sha256
        ))
        .with_hint("restore another backup; this one cannot be trusted"));
    }
    let mut target = connect(into, &SessionSettings::cli("restore"))?;
    let existing: i64 = target
        .query_one(
            "select count(*) from pg_class where relnamespace = $1::text::regnamespace and relkind in ('r', 'p')",
            &[&manifest.schema],
        )
        .or_else(|_| -> Result<postgres::Row> {
            // The schema does not exist there: nothing to overwrite.
            Ok(target.query_one("select 0::bigint", &[])?)
        })?
        .try_get(0)?;
    if existing > 0 {
        return Err(Error::conflict(format!(
            "{into_label} already has {existing} table(s) in schema {}: restore only into an empty database",
            manifest.schema
        ))
        .with_hint("createdb a scratch database and restore into it"));
    }
    let file = dump.display().to_string();
    run_pg(
        "pg_restore",
        &[
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--single-transaction",
            "--clean",
            "--if-exists",
            "--dbname",
            into.dbname().unwrap_or("postgres"),
            &file,
        ],
        into,
    )?;
    let mut checks = Vec::new();
    if verify {
        let mut c = connect(into, &SessionSettings::cli("restore"))?;
        let version: i64 = c
            .query_one(
                "select coalesce(max(version), 0)::bigint from agentbus_migrations",
                &[],
            )?
            .try_get(0)?;
        checks.push(check(
            "migration version",
            manifest.migration_version,
            version,
        ));
        let facts = table_facts(&mut c)?;
        for (table, want) in &manifest.tables {
            match facts.get(table) {
                Some(got) => {
                    checks.push(check(format!("rows {table}"), want.rows, got.rows));
                    checks.push(check(
                        format!("sample {table}"),
                        &want.sample_md5,
                        &got.sample_md5,
                    ));
                }
                None => checks.push(check(format!("table {table}"), "present", "missing")),
            }
        }
        let jobs = jobs_by_status(&mut c)?;
        checks.push(check(
            "jobs by status",
            serde_json::to_string(&manifest.jobs_by_status).unwrap_or_default(),
            serde_json::to_string(&jobs).unwrap_or_default(),
        ));
        // The restored ledger works: a claim runs (and is rolled back).
        let mut tx = c.transaction()?;
        let claimed = tx.query(
            "select id from claim_jobs(coalesce((select namespace from jobs limit 1), 'default'), 'agentbus-restore-verify', 60, 1)",
            &[],
        );
        let ran = match claimed {
            Ok(_) => "runs".to_string(),
            Err(e) => format!(
                "fails: {}",
                e.as_db_error()
                    .map_or_else(|| e.to_string(), |d| d.message().to_string())
            ),
        };
        tx.rollback()?;
        checks.push(check("claim_jobs", "runs", ran));
    }
    let ok = checks.iter().all(|c| c.ok);
    Ok(Restored {
        file,
        into: into_label.to_string(),
        manifest,
        duration_ms: started.elapsed().as_millis() as u64,
        verified: verify,
        checks,
        ok,
    })
}
