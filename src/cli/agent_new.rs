//! agent new.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::output;
use super::Ctx;
use crate::error::Result;
use crate::fleet::scaffold::{self, NewAgent};
use crate::ledger::agents::WakeMode;

/// Agent folders: create one from a template
#[derive(Debug, Args)]
#[command(after_help = AGENT_EXAMPLES)]
pub struct AgentArgs {
    #[command(subcommand)]
    command: AgentCommand,
}

const AGENT_EXAMPLES: &str = "\
Examples:
  agentbus agent new agents/gtm/closer --role 'Close qualified deals' --wake hook
  agentbus fleet validate agents/gtm && agentbus fleet sync agents/gtm";

#[derive(Debug, Subcommand)]
enum AgentCommand {
    /// Create DIR/ID with agent.toml, AGENTS.md, HEARTBEAT.md and MEMORY.md
    ///
    /// DIR must be a fleet folder (it holds fleet.toml); DIR/ID must not exist yet. Edit
    /// the files, then `agentbus fleet validate DIR` and `agentbus fleet sync DIR`.
    New(NewArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum WakeArg {
    /// OpenClaw hook
    Hook,
    /// Local command
    Exec,
}

#[derive(Debug, Args)]
struct NewArgs {
    /// The new agent's folder: FLEET_DIR/AGENT_ID
    #[arg(value_name = "DIR/ID")]
    path: PathBuf,

    /// What the agent does, one line
    #[arg(long)]
    role: String,

    /// Display name (default: the id, capitalised)
    #[arg(long)]
    name: Option<String>,

    /// How the supervisor wakes it
    #[arg(long, value_enum, default_value = "hook")]
    wake: WakeArg,
}

pub fn run(_ctx: &mut Ctx, a: AgentArgs) -> Result<String> {
    match a.command {
        AgentCommand::New(n) => {
            let (fleet_dir, id) = scaffold::split_agent_path(&n.path)?;
            let made = scaffold::scaffold(&NewAgent {
                fleet_dir,
                id,
                name: n.name,
                role: n.role,
                wake: match n.wake {
                    WakeArg::Hook => WakeMode::Hook,
                    WakeArg::Exec => WakeMode::Exec,
                },
            })?;
            output::json(&made)
        }
    }
}
