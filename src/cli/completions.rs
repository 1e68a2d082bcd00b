//! completions.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::supervisor::SupervisorArgs;
use super::{Cli, Ctx};
use crate::error::{Error, Result};

/// Print a shell completion script
///
/// Source it, or install it where your shell looks for completions. Covers every
/// subcommand and flag of agentbus (or of agentbus-supervisor with --supervisor).
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
agentbus completions bash > /etc/bash_completion.d/agentbus\n  \
agentbus completions zsh > \"${fpath[1]}/_agentbus\"\n  \
agentbus completions fish > ~/.config/fish/completions/agentbus.fish\n  \
agentbus completions bash --supervisor > /etc/bash_completion.d/agentbus-supervisor")]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell
    #[arg(value_name = "SHELL")]
    shell: Shell,

    /// For agentbus-supervisor instead of agentbus
    #[arg(long)]
    supervisor: bool,
}

pub fn run(_ctx: &mut Ctx, a: CompletionsArgs) -> Result<String> {
    let (mut cmd, name) = if a.supervisor {
        (SupervisorArgs::command(), "agentbus-supervisor")
    } else {
        (Cli::command(), "agentbus")
    };
    let mut out: Vec<u8> = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, name, &mut out);
    String::from_utf8(out).map_err(|_| Error::failure("the completion script is not UTF-8"))
}
