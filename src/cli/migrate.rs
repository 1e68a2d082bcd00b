//! migrate.

use std::time::Duration;

use clap::Args;

use super::output::{self, Format};
use super::Ctx;
use crate::db::migrate::{self, MigrationState};
use crate::db::migrate_check;
use crate::db::SessionSettings;
use crate::error::Result;

/// The last migration of the previous release, as built in.
const RELEASED: &str = include_str!("../../sql/RELEASED");

/// Apply the database migrations this agentbus carries
///
/// Applies every pending migration in order, each in its own transaction, under an advisory
/// lock (concurrent runs wait, then find nothing to do). Running it again prints "up to
/// date". Refuses with exit 78 when an applied migration was edited afterwards, or when the
/// database is newer than this binary. Safe to run at every deploy.
#[derive(Debug, Args)]
#[command(after_help = MIGRATE_EXAMPLES)]
pub struct MigrateArgs {
    /// List the migrations as applied or pending, and change nothing
    #[arg(long, conflicts_with_all = ["check", "to"])]
    status: bool,
    /// Apply the pending migrations up to this version only (a staged upgrade)
    #[arg(long, value_name = "VERSION", conflicts_with = "check")]
    to: Option<i32>,
    /// Read the migrations after --since and exit 1 if one would break the previous
    /// release during a rolling upgrade (drops, renames, type changes, NOT NULL, new
    /// constraints not marked `-- contract:`); needs no database
    #[arg(long)]
    check: bool,
    /// With --check: the last migration of the previous release (default: sql/RELEASED as
    /// built in)
    #[arg(long, value_name = "VERSION", requires = "check")]
    since: Option<i32>,
}

const MIGRATE_EXAMPLES: &str = "\
Examples:
  export DATABASE_URL=$(scripts/pg-local.sh)
  agentbus migrate
  agentbus migrate --status
  agentbus migrate --to 19              # a staged upgrade
  agentbus migrate --check              # in CI: only expand steps since the last release

Rolling upgrades: migrations only expand (add tables, columns with defaults, functions,
indexes), so the previous release keeps working while hosts are upgraded one by one:
migrate first, then replace the binaries. A contract step (dropping what an older binary
uses) ships a release after the last binary that used it, marked `-- contract:`. Going
back: run the previous binaries against the newer schema (they work: it only expanded);
to undo the schema itself, restore the backup taken before `migrate`.";

pub fn run(ctx: &mut Ctx, a: MigrateArgs) -> Result<String> {
    let settings = SessionSettings {
        application_name: "agentbus/migrate".into(),
        statement_timeout: None,
        lock_timeout: Some(Duration::from_secs(300)),
        synchronous_commit: true,
        lease_token: None,
        idle_in_transaction_timeout: crate::db::CLI_IDLE_IN_TRANSACTION_TIMEOUT,
    };
    let format = ctx.format();
    if a.check {
        let since = a
            .since
            .or_else(|| migrate_check::released(RELEASED))
            .unwrap_or(0);
        let found = migrate_check::contracts(migrate::MIGRATIONS, since);
        if !found.is_empty() {
            ctx.set_exit_code(1);
        }
        return match format {
            Format::Json => output::json(&serde_json::json!({"since": since, "contracts": found})),
            Format::Table if found.is_empty() => Ok(format!(
                "migrations after {since:04}: expand only (the previous release keeps working)\n"
            )),
            Format::Table => Ok(found
                .iter()
                .map(|c| format!("{}:{}: {}: {}\n", c.file, c.line, c.why, c.text))
                .collect()),
        };
    }
    let client = ctx.db_with(settings)?;
    if a.status {
        let lines = migrate::status(client)?;
        return match format {
            Format::Json => output::json(&lines),
            Format::Table => Ok(output::table(
                &["version", "name", "state", "applied_at", "checksum"],
                lines.iter().map(|l| {
                    vec![
                        format!("{:04}", l.version),
                        l.name.clone(),
                        match l.state {
                            MigrationState::Applied => "applied".into(),
                            MigrationState::Pending => "pending".into(),
                        },
                        output::time_opt(l.applied_at),
                        l.checksum.get(..12).unwrap_or(&l.checksum).to_string(),
                    ]
                }),
            )),
        };
    }
    let report = match a.to {
        Some(v) => migrate::migrate_to(client, v)?,
        None => migrate::migrate(client)?,
    };
    // New tables need the groups' grants too, where the guardrails are installed.
    let grants_refreshed = crate::db::transaction(client, crate::ledger::roles::refresh_grants)?;
    match format {
        Format::Json => {
            let mut value = serde_json::to_value(&report)
                .map_err(|e| crate::error::Error::failure(format!("rendering: {e}")))?;
            if let Some(obj) = value.as_object_mut() {
                obj.insert("guardrail_grants_refreshed".into(), grants_refreshed.into());
            }
            output::json(&value)
        }
        Format::Table => {
            let mut text = String::new();
            for m in &report.applied {
                text.push_str(&format!("applied {:04}_{}\n", m.version, m.name));
            }
            if report.up_to_date {
                text.push_str(&format!("up to date (schema version {})\n", report.version));
            } else {
                text.push_str(&format!("schema version {}\n", report.version));
            }
            if grants_refreshed {
                text.push_str("guardrails: grants of agentbus_agent, agentbus_supervisor and agentbus_operator refreshed\n");
            }
            Ok(text)
        }
    }
}
