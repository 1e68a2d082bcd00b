//! fleet validate, fleet sync, fleet openclaw-config, fleet openclaw-cron.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::output;
use super::{Ctx, Format};
use crate::error::{Error, Result};
use crate::fleet::openclaw;
use crate::fleet::{self, Fleet};

/// Check a fleet folder, or make the database match it
///
/// A fleet is agents/<fleet>/fleet.toml plus one folder per agent with an agent.toml;
/// the format is in agentbus-fleet(5).
#[derive(Debug, Args)]
#[command(after_help = FLEET_EXAMPLES)]
pub struct FleetArgs {
    #[command(subcommand)]
    command: FleetCommand,
}

const FLEET_EXAMPLES: &str = "\
Examples:
  agentbus fleet validate agents/gtm
  agentbus fleet sync agents/gtm
  agentbus fleet sync agents/gtm --format json | jq '.changed'
  agentbus fleet openclaw-config agents/ops > ops.openclaw.json5
  agentbus fleet openclaw-cron agents/ops | bash     # safe to run again";

#[derive(Debug, Subcommand)]
enum FleetCommand {
    /// Check every file of a fleet; print each problem as FILE:LINE: WHAT (exit 2)
    Validate(FleetDirArgs),
    /// Make the database's agents and standing orders match the fleet, in one transaction
    ///
    /// Prints what was added, changed and disabled; a second run changes nothing. An order
    /// removed from the files is disabled (its runs are kept); an agent removed is paused.
    Sync(FleetDirArgs),
    /// Print the openclaw.json5 keys for the fleet: agents.entries, hooks and cron
    ///
    /// Hook-woken agents and agents with external orders become agents.entries (workspace: the
    /// agent's folder, so OpenClaw reads its AGENTS.md); hooks allows exactly those agent ids
    /// and reads its token from the same environment variable as the supervisor; cron is
    /// enabled when an order is fired by OpenClaw. Nothing secret is printed. JSON5 text even
    /// when piped; JSON with --format json.
    OpenclawConfig(FleetDirArgs),
    /// Print a bash script of `openclaw cron add` commands for the fleet's external orders
    ///
    /// Each job has a declaration key (agentbus:NAMESPACE:AGENT:ORDER), so running the script
    /// again updates jobs in place instead of adding duplicates. Schedules keep the order's
    /// zone (--tz, never the gateway's local zone) and fire exactly (--exact); runs are not
    /// delivered to chat (--no-deliver); the message ends with the exact
    /// `agentbus start-standing-order ... --scheduled-for latest` and `finish-standing-order`
    /// lines the agent must run. A script even when piped; the jobs, with their argv, as JSON
    /// with --format json.
    OpenclawCron(FleetDirArgs),
    /// Turn an agent kept as a folder (agent.md, config.yaml, memory/) into an agent of the fleet
    ///
    /// agent.md's front matter gives the name, role and model, its body the start of
    /// AGENTS.md; config.yaml's schedules become standing orders (in the fleet's time zone),
    /// its tools are listed in AGENTS.md; memory/*.md is copied. `.env` is never opened, tool
    /// settings (which may hold secrets) are not copied, and everything left behind is
    /// listed under "dropped". The fleet must validate afterwards, else nothing is written.
    /// Then: `agentbus fleet sync DIR`.
    #[command(
        after_help = "Examples:\n  agentbus fleet import-folder ~/smbos/agents/andy --into agents/assistant --id andy\n  agentbus fleet sync agents/assistant"
    )]
    ImportFolder(ImportFolderArgs),
}

#[derive(Debug, Args)]
struct ImportFolderArgs {
    /// The agent folder to import (holding agent.md, and config.yaml if any)
    #[arg(value_name = "SRC")]
    src: PathBuf,
    /// The fleet folder it joins (holding fleet.toml)
    #[arg(long, value_name = "DIR")]
    into: PathBuf,
    /// Its id in the fleet (default: the source folder's name)
    #[arg(long, value_name = "ID")]
    id: Option<String>,
}

#[derive(Debug, Args)]
struct FleetDirArgs {
    /// The fleet folder (the one holding fleet.toml)
    #[arg(value_name = "DIR")]
    dir: PathBuf,

    /// Use this namespace instead of fleet.toml's (a staging or demo copy of a fleet)
    #[arg(long, value_name = "NAMESPACE")]
    namespace: Option<String>,
}

impl FleetDirArgs {
    fn load(&self) -> Result<Fleet> {
        let mut fleet = load(&self.dir)?;
        if let Some(ns) = &self.namespace {
            crate::ledger::validate::check_name("--namespace", ns)?;
            fleet.namespace = ns.clone();
        }
        Ok(fleet)
    }
}

pub fn run(ctx: &mut Ctx, a: FleetArgs) -> Result<String> {
    match a.command {
        FleetCommand::Validate(d) => {
            let fleet = d.load()?;
            let orders: usize = fleet.agents.iter().map(|a| a.standing_orders.len()).sum();
            let doc = serde_json::json!({
                "fleet": fleet.name,
                "namespace": fleet.namespace,
                "agents": fleet.agents.len(),
                "standing_orders": orders,
                "valid": true,
            });
            match ctx.format() {
                Format::Json => output::json(&doc),
                Format::Table => Ok(format!(
                    "fleet {} is valid: {} agents, {} standing orders (namespace {})",
                    fleet.name,
                    fleet.agents.len(),
                    orders,
                    fleet.namespace
                )),
            }
        }
        FleetCommand::OpenclawConfig(d) => {
            // The exec tool must find this very agentbus: its folder goes first on PATH.
            let here = std::env::current_exe()
                .ok()
                .and_then(|p| std::fs::canonicalize(p).ok())
                .and_then(|p| p.parent().map(std::path::Path::to_path_buf));
            let fragment = openclaw::config(&d.load()?, here.as_deref());
            match ctx.document_format() {
                Format::Json => output::json(&fragment),
                Format::Table => Ok(fragment.to_json5()),
            }
        }
        FleetCommand::OpenclawCron(d) => {
            let plan = openclaw::cron_plan(&d.load()?);
            match ctx.document_format() {
                Format::Json => output::json(&plan),
                Format::Table => Ok(plan.to_script(&d.dir.display().to_string())),
            }
        }
        FleetCommand::ImportFolder(i) => output::json(&crate::fleet::import::import_folder(
            &i.src,
            &i.into,
            i.id.as_deref(),
        )?),
        FleetCommand::Sync(d) => {
            let fleet = d.load()?;
            let actor = ctx.actor();
            let report = ctx.tx(|tx| fleet::sync(tx, &fleet, &actor))?;
            match ctx.format() {
                Format::Json => output::json(&report),
                Format::Table => {
                    let mut rows = Vec::new();
                    for (what, list) in [
                        ("added", &report.added),
                        ("changed", &report.changed),
                        ("disabled", &report.disabled),
                    ] {
                        for c in list {
                            rows.push(vec![
                                what.to_string(),
                                c.object.to_string(),
                                c.id.clone(),
                                c.fields.join(", "),
                            ]);
                        }
                    }
                    let summary = format!(
                        "fleet {} (namespace {}): {} added, {} changed, {} disabled, {} unchanged",
                        report.fleet,
                        report.namespace,
                        report.added.len(),
                        report.changed.len(),
                        report.disabled.len(),
                        report.unchanged
                    );
                    if rows.is_empty() {
                        Ok(summary)
                    } else {
                        Ok(format!(
                            "{}\n{summary}",
                            output::table(&["change", "object", "id", "fields"], rows)
                        ))
                    }
                }
            }
        }
    }
}

pub(super) fn load(dir: &std::path::Path) -> Result<Fleet> {
    if !dir.join("fleet.toml").is_file() {
        return Err(
            Error::not_found(format!("{} has no fleet.toml", dir.display())).with_hint(
                "a fleet folder holds fleet.toml and one folder per agent; see agentbus-fleet(5)",
            ),
        );
    }
    fleet::load(dir).map_err(|diags| {
        let lines: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
        Error::usage(format!(
            "{} problem{} in fleet {}:\n{}",
            diags.len(),
            if diags.len() == 1 { "" } else { "s" },
            dir.display(),
            lines.join("\n")
        ))
    })
}
