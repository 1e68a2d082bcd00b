//! Forward-only schema migrations, embedded in the binary.
//!
//! Each file `sql/NNNN_name.sql` is applied once, in order, in its own transaction, while
//! the applier holds a session advisory lock (so two `agentbus migrate` runs at once do not
//! race: the second waits, then finds nothing to do). Every applied migration is recorded
//! in `agentbus_migrations` with the SHA-256 of its text. A migration whose recorded
//! checksum differs from the embedded text was edited after it was applied: migrating
//! refuses (configuration error) rather than guess. Fix a released migration by adding a
//! new one.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::{Error, Result};

/// One embedded migration.
#[derive(Debug, Clone)]
pub struct Migration {
    /// Its number (the `NNNN` of the file name).
    pub version: i32,
    /// Its name (the rest of the file name).
    pub name: &'static str,
    /// The SQL text.
    pub sql: &'static str,
}

impl Migration {
    /// Hex SHA-256 of the SQL text.
    pub fn checksum(&self) -> String {
        crate::sha::sha256_hex(self.sql.as_bytes())
    }
}

/// Every migration this binary knows, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "core",
        sql: include_str!("../../sql/0001_core.sql"),
    },
    Migration {
        version: 2,
        name: "supervisor",
        sql: include_str!("../../sql/0002_supervisor.sql"),
    },
    Migration {
        version: 3,
        name: "fleets",
        sql: include_str!("../../sql/0003_fleets.sql"),
    },
    Migration {
        version: 4,
        name: "proactive",
        sql: include_str!("../../sql/0004_proactive.sql"),
    },
    Migration {
        version: 5,
        name: "memory",
        sql: include_str!("../../sql/0005_memory.sql"),
    },
    Migration {
        version: 6,
        name: "memory_retrieval",
        sql: include_str!("../../sql/0006_memory_retrieval.sql"),
    },
    Migration {
        version: 7,
        name: "memory_retrieval_plpgsql",
        sql: include_str!("../../sql/0007_memory_retrieval_plpgsql.sql"),
    },
    Migration {
        version: 8,
        name: "status_sets",
        sql: include_str!("../../sql/0008_status_sets.sql"),
    },
    Migration {
        version: 9,
        name: "approval_gates",
        sql: include_str!("../../sql/0009_approval_gates.sql"),
    },
    Migration {
        version: 10,
        name: "handoffs",
        sql: include_str!("../../sql/0010_handoffs.sql"),
    },
    Migration {
        version: 11,
        name: "approval_gates_plpgsql",
        sql: include_str!("../../sql/0011_approval_gates_plpgsql.sql"),
    },
    Migration {
        version: 12,
        name: "guardrails",
        sql: include_str!("../../sql/0012_guardrails.sql"),
    },
    Migration {
        version: 13,
        name: "two_person_approvals",
        sql: include_str!("../../sql/0013_two_person_approvals.sql"),
    },
    Migration {
        version: 14,
        name: "identifiers",
        sql: include_str!("../../sql/0014_identifiers.sql"),
    },
    Migration {
        version: 15,
        name: "proactive_lane_pause",
        sql: include_str!("../../sql/0015_proactive_lane_pause.sql"),
    },
    Migration {
        version: 16,
        name: "reactions",
        sql: include_str!("../../sql/0016_reactions.sql"),
    },
    Migration {
        version: 17,
        name: "blocked_routing",
        sql: include_str!("../../sql/0017_blocked_routing.sql"),
    },
    Migration {
        version: 18,
        name: "idle_thinking",
        sql: include_str!("../../sql/0018_idle_thinking.sql"),
    },
    Migration {
        version: 19,
        name: "agent_work_indexes",
        sql: include_str!("../../sql/0019_agent_work_indexes.sql"),
    },
    Migration {
        version: 20,
        name: "coding_runs",
        sql: include_str!("../../sql/0020_coding_runs.sql"),
    },
    Migration {
        version: 21,
        name: "restorable_checks",
        sql: include_str!("../../sql/0021_restorable_checks.sql"),
    },
    Migration {
        version: 22,
        name: "rollout",
        sql: include_str!("../../sql/0022_rollout.sql"),
    },
    Migration {
        version: 23,
        name: "archive",
        sql: include_str!("../../sql/0023_archive.sql"),
    },
    Migration {
        version: 24,
        name: "lighter_writes",
        sql: include_str!("../../sql/0024_lighter_writes.sql"),
    },
    Migration {
        version: 25,
        name: "slot_notice_after_commit",
        sql: include_str!("../../sql/0025_slot_notice_after_commit.sql"),
    },
    Migration {
        version: 26,
        name: "cheaper_closes",
        sql: include_str!("../../sql/0026_cheaper_closes.sql"),
    },
    Migration {
        version: 27,
        name: "identifier_checks_planned_once",
        sql: include_str!("../../sql/0027_identifier_checks_planned_once.sql"),
    },
    Migration {
        version: 28,
        name: "fewer_trigger_calls",
        sql: include_str!("../../sql/0028_fewer_trigger_calls.sql"),
    },
    Migration {
        version: 29,
        name: "drop_overlapping_indexes",
        sql: include_str!("../../sql/0029_drop_overlapping_indexes.sql"),
    },
];

/// The key of the advisory lock held while migrating ("agentbus" in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x6167_656e_7462_7573;

/// Whether a migration has been applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationState {
    /// Recorded in the database with a matching checksum.
    Applied,
    /// Not yet applied.
    Pending,
}

/// One line of `agentbus migrate --status`.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationStatus {
    /// Migration number.
    pub version: i32,
    /// Migration name.
    pub name: String,
    /// Applied or pending.
    pub state: MigrationState,
    /// When it was applied.
    pub applied_at: Option<DateTime<Utc>>,
    /// SHA-256 of the embedded text.
    pub checksum: String,
}

/// What `agentbus migrate` did.
#[derive(Debug, Clone, Serialize)]
pub struct MigrateReport {
    /// The migrations applied by this run (empty when the schema was up to date).
    pub applied: Vec<MigrationStatus>,
    /// The schema version after this run.
    pub version: i32,
    /// True when nothing needed applying.
    pub up_to_date: bool,
}

const CREATE_LEDGER: &str = "
create table if not exists agentbus_migrations (
  version int primary key,
  name text not null,
  checksum text not null,
  applied_at timestamptz not null default now(),
  applied_by text not null default session_user
)";

/// Applies every pending migration of [`MIGRATIONS`].
pub fn migrate(client: &mut postgres::Client) -> Result<MigrateReport> {
    apply(client, MIGRATIONS)
}

/// Applies the pending migrations up to `version` (inclusive): a staged upgrade. Refuses a
/// version this binary does not carry, and one below what the database already has
/// (migrations are forward-only: going back is restoring a backup taken before).
pub fn migrate_to(client: &mut postgres::Client, version: i32) -> Result<MigrateReport> {
    let Some(last) = MIGRATIONS.iter().position(|m| m.version == version) else {
        return Err(Error::usage(format!(
            "no migration {version}: this agentbus carries 1 to {}",
            MIGRATIONS.last().map_or(0, |m| m.version)
        )));
    };
    let applied = check(client, MIGRATIONS)?
        .iter()
        .filter(|l| l.state == MigrationState::Applied)
        .map(|l| l.version)
        .max()
        .unwrap_or(0);
    if applied > version {
        return Err(Error::conflict(format!(
            "the database is at migration {applied}, past {version}: migrations only go forward"
        ))
        .with_hint("to go back, restore a backup taken before the upgrade (agentbus restore)"));
    }
    apply(client, &MIGRATIONS[..=last])
}

/// Applies every pending migration of `migrations` (tests pass edited lists).
pub fn apply(client: &mut postgres::Client, migrations: &[Migration]) -> Result<MigrateReport> {
    client.execute("select pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])?;
    let outcome = apply_locked(client, migrations);
    // Unlock even when applying failed; if the connection is gone the lock went with it.
    let _ = client.execute("select pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY]);
    outcome
}

fn apply_locked(client: &mut postgres::Client, migrations: &[Migration]) -> Result<MigrateReport> {
    client.batch_execute(CREATE_LEDGER)?;
    let status = check(client, migrations)?;
    let mut applied = Vec::new();
    for (migration, mut line) in migrations.iter().zip(status) {
        if line.state == MigrationState::Applied {
            continue;
        }
        let mut tx = client.transaction()?;
        tx.batch_execute(migration.sql).map_err(|e| {
            let mut err = Error::from(e);
            err.message = format!(
                "migration {:04}_{} failed: {}",
                migration.version, migration.name, err.message
            );
            err
        })?;
        let row = tx.query_one(
            "insert into agentbus_migrations (version, name, checksum) values ($1, $2, $3)
             returning applied_at",
            &[&migration.version, &migration.name, &line.checksum],
        )?;
        tx.commit()?;
        line.state = MigrationState::Applied;
        line.applied_at = Some(row.try_get(0)?);
        applied.push(line);
    }
    Ok(MigrateReport {
        up_to_date: applied.is_empty(),
        applied,
        version: migrations.last().map_or(0, |m| m.version),
    })
}

/// Lists every known migration as applied or pending, and refuses (configuration error)
/// when an applied migration was edited or the database is newer than this binary.
///
/// Reads only: on a database that was never migrated every migration is pending.
pub fn status(client: &mut postgres::Client) -> Result<Vec<MigrationStatus>> {
    check(client, MIGRATIONS)
}

fn check(client: &mut postgres::Client, migrations: &[Migration]) -> Result<Vec<MigrationStatus>> {
    let ledger_exists: bool = client
        .query_one("select to_regclass('agentbus_migrations') is not null", &[])?
        .try_get(0)?;
    let rows = if ledger_exists {
        client.query(
            "select version, name, checksum, applied_at from agentbus_migrations order by version",
            &[],
        )?
    } else {
        Vec::new()
    };
    let known_max = migrations.last().map_or(0, |m| m.version);
    let mut recorded = std::collections::BTreeMap::new();
    for row in &rows {
        let version: i32 = row.try_get("version")?;
        let checksum: String = row.try_get("checksum")?;
        let applied_at: DateTime<Utc> = row.try_get("applied_at")?;
        if version > known_max {
            return Err(Error::config(format!(
                "the database schema is at migration {version}, newer than this agentbus knows ({known_max})"
            ))
            .with_hint("upgrade agentbus; never run an older binary against a newer schema"));
        }
        recorded.insert(version, (checksum, applied_at));
    }
    let mut out = Vec::with_capacity(migrations.len());
    for m in migrations {
        let checksum = m.checksum();
        let (state, applied_at) = match recorded.get(&m.version) {
            Some((db_checksum, applied_at)) => {
                if *db_checksum != checksum {
                    return Err(Error::config(format!(
                        "migration {:04}_{} was edited after it was applied (checksum {} in the database, {} in this binary)",
                        m.version,
                        m.name,
                        short(db_checksum),
                        short(&checksum),
                    ))
                    .with_hint("migrations are forward-only: restore the file and add a new migration for the change"));
                }
                (MigrationState::Applied, Some(*applied_at))
            }
            None => (MigrationState::Pending, None),
        };
        out.push(MigrationStatus {
            version: m.version,
            name: m.name.to_string(),
            state,
            applied_at,
            checksum,
        });
    }
    Ok(out)
}

fn short(checksum: &str) -> &str {
    checksum.get(..12).unwrap_or(checksum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_contiguously_from_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(
                m.version as usize,
                i + 1,
                "migration {} out of order",
                m.name
            );
        }
    }

    #[test]
    fn checksum_is_hex_sha256() {
        let m = Migration {
            version: 1,
            name: "x",
            sql: "",
        };
        assert_eq!(
            m.checksum(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
