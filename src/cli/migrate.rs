//! migrate.

use std::time::Duration;

use clap::Args;

use super::output::{self, Format};
use super::Ctx;
use crate::db::migrate::{self, MigrationState};
use crate::db::SessionSettings;
use crate::error::Result;

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
    #[arg(long)]
    status: bool,
}

const MIGRATE_EXAMPLES: &str = "\
Examples:
  export DATABASE_URL=$(scripts/pg-local.sh)
  agentbus migrate
  agentbus migrate --status";

pub fn run(ctx: &mut Ctx, a: MigrateArgs) -> Result<String> {
    let settings = SessionSettings {
        application_name: "agentbus/migrate".into(),
        statement_timeout: None,
        lock_timeout: Some(Duration::from_secs(300)),
        synchronous_commit: true,
        lease_token: None,
    };
    let format = ctx.format();
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
    let report = migrate::migrate(client)?;
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
