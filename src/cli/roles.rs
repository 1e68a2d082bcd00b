//! roles install, roles grant, roles revoke, roles list.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::output::{self, Format};
use super::Ctx;
use crate::error::Result;
use crate::ledger::roles::{self, GrantParams, Login, LoginClass};

/// Database roles and logins: who may do what, in which namespace
///
/// With roles installed, PostgreSQL itself enforces the guardrails for every login, through
/// agentbus and psql alike: an agent login changes only the jobs whose lease it holds and
/// acts as its bound agent; a supervisor login claims, wakes and recovers but never
/// approves, cancels, retries or resumes; an operator login does everything, in its
/// namespaces only. The owner of the tables (the role that runs `agentbus migrate`) and
/// superusers bypass them; without roles installed agentbus is a single-user ledger
/// ("guardrails off" in `agentbus status` and `agentbus doctor`).
#[derive(Debug, Args)]
#[command(after_help = ROLES_EXAMPLES)]
pub struct RolesArgs {
    #[command(subcommand)]
    command: RolesCommand,
}

const ROLES_EXAMPLES: &str = "\
Examples:
  # as the role that ran `agentbus migrate` (it needs CREATEROLE), or a superuser:
  agentbus roles install
  agentbus roles grant gateway --as agent --namespace sales --password-file /etc/agentbus/gateway.pw
  agentbus roles grant closer --as agent --namespace sales --agent closer
  agentbus roles grant supervisor_web1 --as supervisor --namespace sales --namespace ops
  agentbus roles grant alice --as operator --namespace sales
  agentbus roles list
  agentbus roles revoke alice";

#[derive(Debug, Subcommand)]
enum RolesCommand {
    /// Create the group roles agentbus_agent, agentbus_supervisor and agentbus_operator
    /// and apply their grants here (idempotent; `migrate` refreshes the grants afterwards)
    Install,
    /// Create or update a login, bound to its namespaces (and, for an agent, one agent)
    ///
    /// The login becomes a member of exactly one group. A password is read from the first
    /// line of --password-file and sent to PostgreSQL only as a SCRAM-SHA-256 verifier;
    /// without it the login authenticates however pg_hba.conf says (certificate, peer).
    Grant(GrantArgs),
    /// Take a login's rights away: no login, no group, no namespaces (the role is kept)
    Revoke(RevokeArgs),
    /// The logins bound in this database (an operator login sees only itself)
    List,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ClassArg {
    Agent,
    Supervisor,
    Operator,
}

#[derive(Debug, Args)]
struct GrantArgs {
    /// The login (a PostgreSQL role: lower-case letters, digits, underscores)
    #[arg(value_name = "LOGIN")]
    login: String,

    /// What the login is
    #[arg(long = "as", value_enum, value_name = "CLASS")]
    class: ClassArg,

    /// A namespace it may see and write (repeat for several)
    #[arg(long, value_name = "NAMESPACE", required = true)]
    namespace: Vec<String>,

    /// Agent logins only: the one agent this login is, whatever a caller claims
    #[arg(long, value_name = "AGENT")]
    agent: Option<String>,

    /// A file whose first line is the login's password
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct RevokeArgs {
    /// The login
    #[arg(value_name = "LOGIN")]
    login: String,
}

pub fn run(ctx: &mut Ctx, a: RolesArgs) -> Result<String> {
    let format = ctx.format();
    match a.command {
        RolesCommand::Install => {
            let report = ctx.tx(roles::install)?;
            match format {
                Format::Json => output::json(&report),
                Format::Table => {
                    let mut text = String::new();
                    for g in &report.created {
                        text.push_str(&format!("created {g}\n"));
                    }
                    for g in &report.existing {
                        text.push_str(&format!("exists  {g}\n"));
                    }
                    text.push_str("grants applied; next: agentbus roles grant LOGIN --as agent|supervisor|operator --namespace NS\n");
                    Ok(text)
                }
            }
        }
        RolesCommand::Grant(g) => {
            let password_verifier = match &g.password_file {
                Some(path) => Some(roles::password_verifier(&super::args::read_token_file(
                    "--password-file",
                    path,
                )?)),
                None => None,
            };
            let params = GrantParams {
                login: g.login,
                class: match g.class {
                    ClassArg::Agent => LoginClass::Agent,
                    ClassArg::Supervisor => LoginClass::Supervisor,
                    ClassArg::Operator => LoginClass::Operator,
                },
                namespaces: g.namespace,
                agent_id: g.agent,
                password_verifier,
            };
            let login = ctx.tx(|tx| roles::grant(tx, &params))?;
            render_one(format, &login)
        }
        RolesCommand::Revoke(r) => {
            let login = ctx.tx(|tx| roles::revoke(tx, &r.login))?;
            render_one(format, &login)
        }
        RolesCommand::List => {
            let logins = roles::list(ctx.db()?)?;
            output::listing(
                format,
                &logins,
                "no logins (agentbus roles grant LOGIN --as CLASS --namespace NS)",
                logins_table,
            )
        }
    }
}

fn render_one(format: Format, login: &Login) -> Result<String> {
    match format {
        Format::Json => output::json(login),
        Format::Table => Ok(logins_table(std::slice::from_ref(login))),
    }
}

fn logins_table(logins: &[Login]) -> String {
    output::table(
        &[
            "login",
            "as",
            "namespaces",
            "agent",
            "can_login",
            "in_group",
            "granted_by",
            "updated",
        ],
        logins.iter().map(|l| {
            vec![
                l.login.clone(),
                l.class.as_str().to_string(),
                l.namespaces.join(","),
                l.agent_id.clone().unwrap_or_else(|| "-".into()),
                if l.can_login { "yes" } else { "no" }.into(),
                if l.in_group { "yes" } else { "no" }.into(),
                l.granted_by.clone(),
                output::time(l.updated_at),
            ]
        }),
    )
}
