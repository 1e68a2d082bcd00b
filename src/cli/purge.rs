//! purge-namespace.

use clap::Args;

use super::output;
use super::Ctx;
use crate::console::namespaces;
use crate::error::{Error, Result};

/// Delete everything of one namespace: jobs, their attempts and history, events, runs,
/// standing orders, agents
///
/// For a finished demo or a staging copy of a fleet. Irreversible, so the namespace must
/// be typed twice; refused (exit 4) while a supervisor of the namespace is running. One
/// transaction: all or nothing. Prints the rows deleted per table.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  agentbus purge-namespace demo --confirm demo")]
pub struct PurgeNamespaceArgs {
    /// The namespace to delete
    #[arg(value_name = "NAMESPACE")]
    namespace: String,

    /// The same namespace again
    #[arg(long, value_name = "NAMESPACE")]
    confirm: Option<String>,
}

pub fn run(ctx: &mut Ctx, a: PurgeNamespaceArgs) -> Result<String> {
    if a.confirm.as_deref() != Some(a.namespace.as_str()) {
        return Err(Error::usage(format!(
            "--confirm {0} is required to delete namespace {0}",
            a.namespace
        )));
    }
    let purged = ctx.tx(|tx| namespaces::purge(tx, &a.namespace))?;
    output::json(&purged)
}
