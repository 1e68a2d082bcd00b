//! backup, restore.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::args::NamespaceArg;
use super::output;
use super::Ctx;
use crate::db::backup::{self, retention};
use crate::db::DbConfig;
use crate::error::Result;
use crate::ledger::events::{self, EmitParams};

/// Back up agentbus's schema: pg_dump -Fc with a manifest, then keep 7 daily, 4 weekly, 3 monthly
///
/// Writes DIR/agentbus-<UTC time>.dump and its manifest (.json: the dump's SHA-256 and size,
/// the migration version, every table's row count and a checksum of a sample of each, jobs
/// per status, the duration), all measured in the dump's own snapshot. Then removes the
/// dumps the retention does not keep (only files named like agentbus's dumps) and records
/// a backup.completed event. Needs pg_dump (postgresql-client) of the server's major
/// version or newer. For point-in-time recovery, archive the WAL as well (README,
/// "Backups and the restore drill").
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  agentbus backup --to /var/backups/agentbus\n  agentbus backup --to /var/backups/agentbus --keep-daily 14 --keep-weekly 8 --keep-monthly 12"
)]
pub struct BackupArgs {
    /// The folder the dumps go to (created if missing)
    #[arg(long, value_name = "DIR")]
    to: PathBuf,
    /// Newest dump of each of the last N days
    #[arg(long, default_value_t = 7, value_name = "N")]
    keep_daily: usize,
    /// Newest dump of each of the last N ISO weeks
    #[arg(long, default_value_t = 4, value_name = "N")]
    keep_weekly: usize,
    /// Newest dump of each of the last N months
    #[arg(long, default_value_t = 3, value_name = "N")]
    keep_monthly: usize,
    /// Where the backup.completed event goes
    #[command(flatten)]
    ns: NamespaceArg,
}

pub fn backup(ctx: &mut Ctx, a: BackupArgs) -> Result<String> {
    let config = ctx.db_config()?;
    let manifest = backup::backup(ctx.db()?, &config, &a.to)?;
    let pruned = retention::prune(
        &a.to,
        retention::Keep {
            daily: a.keep_daily,
            weekly: a.keep_weekly,
            monthly: a.keep_monthly,
        },
    )?;
    let rows: i64 = manifest.tables.values().map(|t| t.rows).sum();
    let payload = json!({
        "file": a.to.join(&manifest.file).display().to_string(), "sha256": manifest.sha256,
        "bytes": manifest.bytes, "duration_ms": manifest.duration_ms, "rows": rows,
        "migration_version": manifest.migration_version, "removed_by_retention": pruned.removed.len(),
    });
    record(ctx, &a.ns.namespace, "backup.completed", payload)?;
    output::json(&json!({"manifest": manifest, "dir": a.to, "retention": pruned}))
}

fn record(ctx: &mut Ctx, namespace: &str, topic: &str, payload: serde_json::Value) -> Result<()> {
    let ns = namespace.to_string();
    let topic = topic.to_string();
    ctx.tx(|tx| {
        events::emit(
            tx,
            &EmitParams {
                namespace: ns,
                topic,
                source_agent: None,
                source_job_id: None,
                dedupe_key: None,
                payload,
            },
        )
        .map(|_| ())
    })
}

/// Restore a dump into an empty database; with --verify, prove it against its manifest
///
/// Checks the dump's SHA-256 against its manifest first (a corrupted file is refused, exit
/// 1), restores it in one transaction (pg_restore) into the database URL names (which must
/// have no agentbus tables), and with --verify compares it with the manifest: migration
/// version, every table's rows and sample checksum, jobs per status (no job lost), and that
/// claim_jobs runs. Exit 1 when a check disagrees. The result is recorded in the ledger
/// this command is configured for (AGENTBUS_DATABASE_URL) as backup.restore_verified or
/// backup.restore_failed; `agentbus audit` reports restore_drill_overdue when no drill
/// passed in 35 days. Needs pg_restore (postgresql-client).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  createdb agentbus_drill\n  agentbus restore --from /var/backups/agentbus/agentbus-20261129T023000Z.dump \\\n    --into postgres://postgres@127.0.0.1/agentbus_drill --verify\n  dropdb agentbus_drill"
)]
pub struct RestoreArgs {
    /// The dump (its manifest, the same name with .json, must be next to it)
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
    /// The empty database to restore into (a connection URL)
    #[arg(long, value_name = "URL")]
    into: String,
    /// Compare the restored database with the manifest
    #[arg(long)]
    verify: bool,
    /// Where the backup.restore_* event goes
    #[command(flatten)]
    ns: NamespaceArg,
}

pub fn restore(ctx: &mut Ctx, a: RestoreArgs) -> Result<String> {
    let into = DbConfig::parse(&a.into)?;
    let label = crate::redact::url_without_credentials(&a.into);
    let file = a.from.display().to_string();
    let restored = backup::restore(&a.from, &into, &label, a.verify);
    // The drill's outcome goes into the ledger agentbus is configured for, when there is one.
    let source = ctx.db_config().is_ok();
    match restored {
        Ok(r) => {
            let failed: Vec<&str> = r
                .checks
                .iter()
                .filter(|c| !c.ok)
                .map(|c| c.name.as_str())
                .collect();
            if source {
                let topic = match (r.verified, r.ok) {
                    (true, true) => Some("backup.restore_verified"),
                    (true, false) => Some("backup.restore_failed"),
                    (false, _) => None,
                };
                if let Some(topic) = topic {
                    record(
                        ctx,
                        &a.ns.namespace,
                        topic,
                        json!({
                            "file": file, "into": label, "duration_ms": r.duration_ms,
                            "checks": r.checks.len(), "failed": failed,
                            "backup_created_at": r.manifest.created_at,
                        }),
                    )?;
                }
            }
            if !r.ok {
                ctx.set_exit_code(1);
            }
            output::json(&r)
        }
        Err(e) => {
            if source {
                let _ = record(
                    ctx,
                    &a.ns.namespace,
                    "backup.restore_failed",
                    json!({"file": file, "into": label, "error": e.message}),
                );
            }
            Err(e)
        }
    }
}
