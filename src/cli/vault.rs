//! vault export, vault ingest.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::args::NamespaceArg;
use super::output::{self, Format};
use super::time::parse_since;
use super::Ctx;
use crate::console::vault::{self, ingest, Report};
use crate::error::Result;
use crate::ledger::time::Since;

/// The Obsidian vault: a Markdown projection of the ledger, and an inbox for people
///
/// `export` writes the vault from the ledger (ideas, opportunities, memories by kind, daily
/// notes, weekly reports, one page per agent, a health snapshot), linked with [[wikilinks]];
/// the same ledger gives byte-identical files, a second export writes nothing, and only the
/// files agentbus owns (its manifest, .agentbus-vault.json) are ever rewritten or removed.
/// Notes dropped in `00 Inbox/` are filed first (`ingest` does only that).
#[derive(Debug, Args)]
#[command(after_help = VAULT_EXAMPLES)]
pub struct VaultArgs {
    #[command(subcommand)]
    command: VaultCommand,
}

const VAULT_EXAMPLES: &str = "\
Examples:
  agentbus vault export ~/vaults/ops --namespace ops
  agentbus vault export ~/vaults/ops --namespace ops --watch      # keep it fresh
  agentbus vault ingest ~/vaults/ops --namespace ops              # file the inbox only";

#[derive(Debug, Subcommand)]
enum VaultCommand {
    /// Write the vault from the ledger (files the inbox first); prints written, unchanged,
    /// removed
    Export(ExportArgs),
    /// File the notes in `00 Inbox/` as ideas, opportunities or memory candidates
    Ingest(IngestArgs),
}

#[derive(Debug, Args)]
struct ExportArgs {
    /// The vault folder (created if missing; open it in Obsidian)
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    #[command(flatten)]
    ns: NamespaceArg,
    /// Daily notes and reports from then on (default: all): 30d, or an RFC 3339 time
    #[arg(long, value_name = "WINDOW", value_parser = parse_since)]
    since: Option<Since>,
    /// Export again after every change (checked every 2 s; a burst makes one export) until stopped
    #[arg(long)]
    watch: bool,
}

#[derive(Debug, Args)]
struct IngestArgs {
    /// The vault folder
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    #[command(flatten)]
    ns: NamespaceArg,
}

fn summary(r: &Report) -> String {
    let filed = r.ingested.iter().filter(|i| i.error.is_none()).count();
    let failed = r.ingested.len() - filed;
    format!(
        "vault {}: {} written, {} unchanged, {} removed; inbox: {filed} filed, {failed} not (see *.error.md)\n",
        r.dir, r.written, r.unchanged, r.removed
    )
}

pub fn run(ctx: &mut Ctx, a: VaultArgs) -> Result<String> {
    let format = ctx.format();
    match a.command {
        VaultCommand::Export(e) => {
            let client = ctx.db()?;
            if e.watch {
                vault::watch(
                    client,
                    &e.dir,
                    &e.ns.namespace,
                    Duration::from_secs(2),
                    |r| {
                        let line = match format {
                            Format::Json => serde_json::to_string(r).unwrap_or_default() + "\n",
                            Format::Table => summary(r),
                        };
                        use std::io::Write;
                        let mut out = std::io::stdout();
                        out.write_all(line.as_bytes()).is_ok() && out.flush().is_ok()
                    },
                )?;
                return Ok(String::new());
            }
            let now = crate::db::now(client)?;
            let since = e.since.map(|s| s.resolve(now));
            let report = vault::export(client, &e.dir, &e.ns.namespace, since)?;
            match format {
                Format::Json => output::json(&report),
                Format::Table => Ok(summary(&report)),
            }
        }
        VaultCommand::Ingest(i) => {
            let client = ctx.db()?;
            let done = ingest::ingest(client, &i.dir, &i.ns.namespace)?;
            output::json(&done)
        }
    }
}
