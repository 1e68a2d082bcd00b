//! Logical backups of agentbus's schema and the restore drill that proves them.
//!
//! `backup` runs `pg_dump -Fc` of the schema inside a snapshot this module exported, and in
//! that same snapshot counts every table's rows and takes a checksum of a sample of each
//! (its first 1,000 rows by primary key): the manifest written next to the dump describes
//! exactly what the dump holds. `restore` checks the dump's SHA-256 against the manifest
//! before anything is restored (a corrupted file is refused), restores it with
//! `pg_restore --single-transaction` into an empty database, and with `verify` compares
//! the result with the manifest: the migration version, every table's row count and sample
//! checksum, the jobs per status (no job lost), and that `claim_jobs` runs on it.
//! `retention` keeps the newest dump of each of the last N days, weeks and months.

mod restore;
pub mod retention;

pub use restore::{restore, Check, Restored};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::DbConfig;
use crate::error::{Error, Result};

/// The manifest's format name.
pub const FORMAT: &str = "agentbus-backup 1";

/// What a dump holds, measured in the dump's own snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The dump's file name (next to the manifest).
    pub file: String,
    /// SHA-256 of the dump file.
    pub sha256: String,
    /// Its size.
    pub bytes: u64,
    /// When the snapshot was taken (UTC, RFC 3339).
    pub created_at: String,
    /// How long the backup took.
    pub duration_ms: u64,
    /// The database dumped.
    pub database: String,
    /// The schema dumped (agentbus's tables live in one).
    pub schema: String,
    /// The newest migration applied.
    pub migration_version: i64,
    /// The server's version.
    pub server_version: String,
    /// Per table: rows and the sample checksum.
    pub tables: BTreeMap<String, TableFacts>,
    /// Jobs per status.
    pub jobs_by_status: BTreeMap<String, i64>,
}

/// One table's facts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TableFacts {
    /// Rows.
    pub rows: i64,
    /// md5 of the text of its first 1,000 rows by primary key (every column otherwise).
    pub sample_md5: String,
}

/// The schema's tables with the sample query of each (shared with the verification).
pub(crate) fn table_facts(
    client: &mut impl postgres::GenericClient,
) -> Result<BTreeMap<String, TableFacts>> {
    let tables = client.query(
        "select c.relname::text,
                coalesce((select string_agg(quote_ident(a.attname), ', ' order by k.n)
                            from pg_index i
                            cross join lateral unnest(i.indkey) with ordinality k(attnum, n)
                            join pg_attribute a on a.attrelid = c.oid and a.attnum = k.attnum
                           where i.indrelid = c.oid and i.indisprimary), '')
           from pg_class c
          where c.relnamespace = current_schema()::regnamespace and c.relkind in ('r', 'p')
          order by 1",
        &[],
    )?;
    let mut out = BTreeMap::new();
    for t in tables {
        let name: String = t.try_get(0)?;
        let pk: String = t.try_get(1)?;
        let order = if pk.is_empty() {
            "t::text".to_string()
        } else {
            pk
        };
        let ident = quote_ident(&name);
        // SQL: dynamic. The table and its key columns come from the catalog (quoted);
        // tests/it/db/backup.rs runs this for every table of the schema.
        let row = client.query_one(
            &format!(
                "select (select count(*) from {ident}),
                        md5(coalesce((select string_agg(s.t::text, E'\\n')
                                        from (select t from {ident} t order by {order} limit 1000) s), ''))"
            ),
            &[],
        )?;
        out.insert(
            name,
            TableFacts {
                rows: row.try_get(0)?,
                sample_md5: row.try_get(1)?,
            },
        );
    }
    Ok(out)
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub(crate) fn jobs_by_status(
    client: &mut impl postgres::GenericClient,
) -> Result<BTreeMap<String, i64>> {
    let mut out = BTreeMap::new();
    for r in client.query("select status::text, count(*) from jobs group by 1", &[])? {
        out.insert(r.try_get(0)?, r.try_get(1)?);
    }
    Ok(out)
}

/// The SHA-256 of a file, streamed, and its size.
pub fn file_sha256(path: &Path) -> Result<(String, u64)> {
    crate::sha::file_sha256(path).map_err(|e| Error::failure(format!("{}: {e}", path.display())))
}

/// The manifest next to a dump (`x.dump` → `x.json`).
pub fn manifest_path(dump: &Path) -> PathBuf {
    dump.with_extension("json")
}

/// Reads a dump's manifest.
pub fn read_manifest(dump: &Path) -> Result<Manifest> {
    let path = manifest_path(dump);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::not_found(format!(
            "{}: {e} (every dump has its manifest next to it)",
            path.display()
        ))
    })?;
    let m: Manifest = serde_json::from_str(&text)
        .map_err(|e| Error::config(format!("{}: not a backup manifest: {e}", path.display())))?;
    if m.format != FORMAT {
        return Err(Error::config(format!(
            "{}: format {:?}, this agentbus reads {FORMAT:?}",
            path.display(),
            m.format
        )));
    }
    Ok(m)
}

/// Runs a PostgreSQL program with the connection in its environment; its stderr (which
/// names no password: the password is only in the environment) becomes the error.
pub(crate) fn run_pg(program: &str, args: &[&str], db: &DbConfig) -> Result<()> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    for (k, v) in db.libpq_env() {
        cmd.env(k, v);
    }
    let out = cmd.output().map_err(|e| {
        Error::config(format!(
            "cannot run {program}: {e} (PostgreSQL's client programs are needed: apt install postgresql-client)"
        ))
    })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(Error::failure(format!(
            "{program} failed: {}",
            crate::redact::bounded(err.trim(), 1000)
        )));
    }
    Ok(())
}

/// Backs up the schema of `client`'s database (`db` says how pg_dump connects) into
/// `dir/agentbus-<UTC time>.dump` with its manifest. The dump is written under a temporary
/// name and renamed once complete; the manifest last.
pub fn backup(client: &mut postgres::Client, db: &DbConfig, dir: &Path) -> Result<Manifest> {
    let started = Instant::now();
    std::fs::create_dir_all(dir).map_err(|e| Error::failure(format!("{}: {e}", dir.display())))?;
    let mut tx = client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?;
    // The transaction holds the exported snapshot, idle, for as long as pg_dump runs.
    crate::db::outlast_idle_limit(&mut tx)?;
    let row = tx.query_one(
        "select pg_export_snapshot(), current_database()::text, current_schema()::text,
                to_char(now() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                to_char(clock_timestamp() at time zone 'UTC', 'YYYYMMDD\"T\"HH24MISSMS\"Z\"'),
                (select coalesce(max(version), 0)::bigint from agentbus_migrations),
                current_setting('server_version')",
        &[],
    )?;
    let snapshot: String = row.try_get(0)?;
    let database: String = row.try_get(1)?;
    let schema: String = row.try_get(2)?;
    let created_at: String = row.try_get(3)?;
    let stamp: String = row.try_get(4)?;
    let migration_version: i64 = row.try_get(5)?;
    let server_version: String = row.try_get(6)?;
    let tables = table_facts(&mut tx)?;
    let jobs = jobs_by_status(&mut tx)?;
    let name = format!("agentbus-{stamp}.dump");
    let tmp = dir.join(format!(".{name}.partial"));
    let tmp_s = tmp.display().to_string();
    let dumped = run_pg(
        "pg_dump",
        &[
            "--format=custom",
            "--no-owner",
            "--no-privileges",
            "--snapshot",
            &snapshot,
            "--schema",
            &schema,
            "--file",
            &tmp_s,
        ],
        db,
    );
    tx.commit()?;
    if let Err(e) = dumped {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let path = dir.join(&name);
    std::fs::rename(&tmp, &path).map_err(|e| Error::failure(format!("{}: {e}", path.display())))?;
    let (sha256, bytes) = file_sha256(&path)?;
    let manifest = Manifest {
        format: FORMAT.into(),
        file: name,
        sha256,
        bytes,
        created_at,
        duration_ms: started.elapsed().as_millis() as u64,
        database,
        schema,
        migration_version,
        server_version,
        tables,
        jobs_by_status: jobs,
    };
    let text = serde_json::to_string_pretty(&manifest).unwrap_or_default() + "\n";
    let mpath = manifest_path(&path);
    let mtmp = dir.join(format!(
        ".{}.partial",
        manifest.file.replace(".dump", ".json")
    ));
    std::fs::write(&mtmp, text).map_err(|e| Error::failure(format!("{}: {e}", mtmp.display())))?;
    std::fs::rename(&mtmp, &mpath)
        .map_err(|e| Error::failure(format!("{}: {e}", mpath.display())))?;
    Ok(manifest)
}
