//! doctor: the operator's first command when something is wrong.

use std::path::PathBuf;

use clap::Args;

use super::args::NamespaceArg;
use super::output::{self, Format};
use super::Ctx;
use crate::console::doctor::{self, Gateway, Level, Params};
use crate::error::Result;

/// Check the database, the schema, the supervisors, the fleet and the OpenClaw gateway
///
/// One line per check, ok / warn / fail, with the fix: the database answers; the schema is
/// migrated and current; a supervisor of the namespace has a fresh heartbeat; agents are
/// not paused or failing to be woken; no standing order was missed in the last day; with
/// --fleet, the database matches the fleet's files (compared by a sync that is rolled
/// back); with a hook URL, the gateway answers /readyz and accepts the hook token (probed
/// with an empty request the gateway refuses, so no agent runs). The token is never
/// printed. Exit status: 0 every check ok, 1 a warning, 2 a failure.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  agentbus doctor\n  agentbus doctor --fleet agents/gtm --namespace gtm\n  \
agentbus doctor --hook-url http://127.0.0.1:18789/hooks/agent --hook-token-env OPENCLAW_HOOKS_TOKEN\n  \
agentbus doctor --format json | jq '.checks[] | select(.level != \"ok\")'"
)]
pub struct DoctorArgs {
    #[command(flatten)]
    ns: NamespaceArg,

    /// A fleet folder to compare with the database; its [openclaw] settings give the hook
    /// URL and the token variable
    #[arg(long, value_name = "DIR")]
    fleet: Option<PathBuf>,

    /// The OpenClaw hook URL to probe (default: the fleet's hook_url, else
    /// $AGENTBUS_HOOK_URL)
    #[arg(long, value_name = "URL")]
    hook_url: Option<String>,

    /// The environment variable holding the hook token (default: the fleet's token_env,
    /// else AGENTBUS_HOOK_TOKEN, else OPENCLAW_HOOKS_TOKEN)
    #[arg(long, value_name = "NAME")]
    hook_token_env: Option<String>,

    /// A file holding the hook token, as the supervisor's --hook-token-file (default:
    /// $AGENTBUS_HOOK_TOKEN_FILE)
    #[arg(long, value_name = "FILE")]
    hook_token_file: Option<PathBuf>,

    /// Supervisor heartbeats older than this many seconds are stale
    #[arg(long, value_name = "SECONDS", default_value_t = 90)]
    stale_after: i64,
}

pub fn run(ctx: &mut Ctx, a: DoctorArgs) -> Result<String> {
    let loaded = a.fleet.as_deref().map(crate::fleet::load);
    let fleet_openclaw = loaded
        .as_ref()
        .and_then(|l| l.as_ref().ok())
        .map(|f| (f.hook_url.clone(), f.hook_token_env.clone()));
    let hook_url = a
        .hook_url
        .clone()
        .or_else(|| fleet_openclaw.as_ref().and_then(|(u, _)| u.clone()))
        .or_else(|| ctx.env("AGENTBUS_HOOK_URL"));
    let token_file = a
        .hook_token_file
        .clone()
        .or_else(|| ctx.env("AGENTBUS_HOOK_TOKEN_FILE").map(PathBuf::from));
    let (token, token_source) = match &token_file {
        Some(path) => (
            Some(super::args::read_token_file("--hook-token-file", path)?),
            format!("file {}", path.display()),
        ),
        None => {
            let names: Vec<String> = match (&a.hook_token_env, &fleet_openclaw) {
                (Some(name), _) => vec![name.clone()],
                (None, Some((_, Some(name)))) => vec![name.clone()],
                _ => vec!["AGENTBUS_HOOK_TOKEN".into(), "OPENCLAW_HOOKS_TOKEN".into()],
            };
            let found = names
                .iter()
                .find_map(|n| ctx.env(n).map(|v| (v, n.clone())));
            match found {
                Some((value, name)) => (Some(value), format!("${name}")),
                None => (
                    None,
                    names
                        .iter()
                        .map(|n| format!("${n}"))
                        .collect::<Vec<_>>()
                        .join(" or "),
                ),
            }
        }
    };
    let params = Params {
        namespace: &a.ns.namespace,
        fleet: a.fleet.as_deref().zip(loaded.as_ref()),
        gateway: Gateway {
            hook_url,
            token,
            token_source,
        },
        stale_after_seconds: a.stale_after,
    };
    let report = doctor::run(ctx.db(), &params);
    ctx.set_exit_code(report.level.exit_code());
    match ctx.format() {
        Format::Json => output::json(&report),
        Format::Table => {
            let mut out = String::new();
            for c in &report.checks {
                out.push_str(&format!(
                    "{:<5} {:<14} {}\n",
                    c.level.label(),
                    c.name,
                    c.detail
                ));
                if let Some(fix) = &c.fix {
                    out.push_str(&format!("{:<20}fix: {fix}\n", ""));
                }
            }
            let count = |l: Level| report.checks.iter().filter(|c| c.level == l).count();
            out.push_str(&format!(
                "{}: {} ok, {} warning(s), {} failure(s) in namespace {}\n",
                report.level.label(),
                count(Level::Ok),
                count(Level::Warn),
                count(Level::Fail),
                report.namespace
            ));
            Ok(out)
        }
    }
}
