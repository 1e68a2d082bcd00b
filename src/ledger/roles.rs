//! Database roles and logins: the guardrails PostgreSQL enforces (sql/0012_guardrails.sql).
//!
//! Owns `agentbus_logins` and the three group roles `agentbus_agent`, `agentbus_supervisor`
//! and `agentbus_operator`. What each group may do is decided in SQL (grants, row-security
//! policies, triggers); this module creates the roles, binds logins to namespaces and
//! agents, reads them back, and records refusals.

use crate::db::decode_all;
use crate::error::{Error, Result};
use crate::ledger::validate::check_name;
use serde::{Deserialize, Serialize};

/// The three kinds of login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginClass {
    /// The commands agents run (the gateway's agents).
    Agent,
    /// The supervisor daemon.
    Supervisor,
    /// People.
    Operator,
}

impl LoginClass {
    /// `agent`, `supervisor` or `operator`.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginClass::Agent => "agent",
            LoginClass::Supervisor => "supervisor",
            LoginClass::Operator => "operator",
        }
    }

    /// The group role a login of this class is a member of.
    pub fn group(self) -> &'static str {
        match self {
            LoginClass::Agent => "agentbus_agent",
            LoginClass::Supervisor => "agentbus_supervisor",
            LoginClass::Operator => "agentbus_operator",
        }
    }
}

/// The group roles, in the order they are created.
pub const GROUPS: [LoginClass; 3] = [
    LoginClass::Agent,
    LoginClass::Supervisor,
    LoginClass::Operator,
];

/// What `install` did.
#[derive(Debug, Clone, Serialize)]
pub struct InstallReport {
    /// Group roles created by this call.
    pub created: Vec<String>,
    /// Group roles that already existed.
    pub existing: Vec<String>,
    /// The grants of every group were (re)applied to this database's tables.
    pub grants_applied: bool,
}

/// Creates the three group roles (those missing) and applies their grants. Idempotent.
/// Needs a role that may create roles and owns the ledger (or a superuser).
pub fn install(tx: &mut postgres::Transaction<'_>) -> Result<InstallReport> {
    let mut report = InstallReport {
        created: Vec::new(),
        existing: Vec::new(),
        grants_applied: false,
    };
    for class in GROUPS {
        let group = class.group();
        if role_exists(tx, group)? {
            report.existing.push(group.to_string());
            continue;
        }
        // Roles belong to the cluster: another database's install may create the same
        // role at the same moment, so the attempt runs in a savepoint and a lost race
        // counts as "existing".
        let sql: String = tx
            .query_one(
                "select format('create role %I nologin', $1::text)",
                &[&group],
            )?
            .get(0);
        let mut savepoint = tx.transaction()?;
        match savepoint.batch_execute(&sql) {
            Ok(()) => {
                savepoint.commit()?;
                report.created.push(group.to_string());
            }
            Err(e) => {
                drop(savepoint);
                if role_exists(tx, group)? {
                    report.existing.push(group.to_string());
                } else {
                    return Err(Error::from(e).with_hint(
                        "roles install needs a role that may create roles (CREATEROLE) and owns the agentbus tables, e.g. the one that ran `agentbus migrate`",
                    ));
                }
            }
        }
    }
    tx.execute("select agentbus_apply_grants()", &[])
        .map_err(|e| {
            Error::from(e).with_hint(
                "run roles install as the role that owns the agentbus tables (the one that ran `agentbus migrate`) or a superuser",
            )
        })?;
    report.grants_applied = true;
    Ok(report)
}

/// Re-applies the groups' grants when they are installed in this database (after a
/// migration added tables). Returns whether they were. A schema staged below the
/// guardrails' migration (`migrate --to`) has none to refresh.
pub fn refresh_grants(tx: &mut postgres::Transaction<'_>) -> Result<bool> {
    let known: bool = tx
        .query_one(
            "select to_regprocedure('agentbus_guardrails_on()') is not null",
            &[],
        )?
        .try_get(0)?;
    if !known {
        return Ok(false);
    }
    let on: bool = tx
        .query_one("select agentbus_guardrails_on()", &[])?
        .try_get(0)?;
    if on {
        tx.execute("select agentbus_apply_grants()", &[])?;
    }
    Ok(on)
}

fn role_exists(client: &mut impl postgres::GenericClient, role: &str) -> Result<bool> {
    Ok(client
        .query_one(
            "select exists (select 1 from pg_roles where rolname = $1)",
            &[&role],
        )?
        .get(0))
}

/// What `grant` writes.
#[derive(Debug, Clone)]
pub struct GrantParams {
    /// The login (a PostgreSQL role name: lower-case letters, digits, underscores).
    pub login: String,
    /// What the login is.
    pub class: LoginClass,
    /// The namespaces it may see and write (at least one).
    pub namespaces: Vec<String>,
    /// For agent logins: the one agent it is, whatever a caller claims.
    pub agent_id: Option<String>,
    /// A SCRAM-SHA-256 verifier (never the password itself), see [`password_verifier`].
    pub password_verifier: Option<String>,
}

/// A login as `agentbus_logins` and `pg_roles` describe it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Login {
    /// The role name.
    pub login: String,
    /// agent, supervisor or operator.
    pub class: LoginClass,
    /// Its namespaces.
    pub namespaces: Vec<String>,
    /// The agent it is bound to.
    pub agent_id: Option<String>,
    /// Who granted it (the database login).
    pub granted_by: String,
    /// The role exists and may log in.
    pub can_login: bool,
    /// The role is a member of its class's group.
    pub in_group: bool,
    /// When it was last granted.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// The characters a login name may use (checked by SQL too).
pub fn check_login_name(login: &str) -> Result<()> {
    let mut chars = login.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !first_ok || !rest_ok || login.len() > 63 {
        return Err(Error::usage(format!(
            "`LOGIN` must be 1-63 lower-case letters, digits or underscores, starting with a letter or underscore (got {login:?})"
        )));
    }
    if login.starts_with("pg_") || login.starts_with("agentbus_") {
        return Err(Error::usage(format!(
            "`LOGIN` {login:?} is reserved (pg_* belongs to PostgreSQL, agentbus_* to the group roles)"
        )));
    }
    Ok(())
}

/// The SCRAM-SHA-256 verifier of a password, computed here so the password itself never
/// reaches the server, its logs or `pg_stat_activity`.
pub fn password_verifier(password: &str) -> String {
    postgres_protocol::password::scram_sha_256(password.as_bytes())
}

/// Creates or updates a login: a role that may log in, a member of its class's group
/// only, bound to its namespaces (and agent). Refuses superusers and the ledger's owner,
/// whom the guardrails would not bind.
pub fn grant(tx: &mut postgres::Transaction<'_>, p: &GrantParams) -> Result<Login> {
    check_login_name(&p.login)?;
    if p.namespaces.is_empty() {
        return Err(Error::usage("give at least one `--namespace`"));
    }
    for ns in &p.namespaces {
        check_name("--namespace", ns)?;
    }
    if let Some(agent) = &p.agent_id {
        check_name("--agent", agent)?;
        if p.class != LoginClass::Agent {
            return Err(Error::usage(
                "`--agent` binds agent logins only (--as agent)",
            ));
        }
    }
    let existing = tx.query_opt(
        "select rolsuper,
                pg_has_role(oid, (select relowner from pg_class where oid = 'jobs'::regclass), 'MEMBER')
           from pg_roles where rolname = $1",
        &[&p.login],
    )?;
    if let Some(row) = existing {
        let (superuser, owner): (bool, bool) = (row.get(0), row.get(1));
        if superuser || owner {
            return Err(Error::not_permitted(format!(
                "{} is a superuser or owns the agentbus tables: the guardrails would not bind it",
                p.login
            ))
            .with_hint("grant a separate login to each agent, supervisor and person"));
        }
        let sql: String = tx
            .query_one(
                "select format('alter role %I login', $1::text)",
                &[&p.login],
            )?
            .get(0);
        tx.batch_execute(&sql)?;
    } else {
        let sql: String = tx
            .query_one(
                "select format('create role %I login', $1::text)",
                &[&p.login],
            )?
            .get(0);
        tx.batch_execute(&sql)?;
    }
    if let Some(verifier) = &p.password_verifier {
        let sql: String = tx
            .query_one(
                "select format('alter role %I password %L', $1::text, $2::text)",
                &[&p.login, verifier],
            )?
            .get(0);
        tx.batch_execute(&sql)?;
    }
    for class in GROUPS {
        let verb = if class == p.class {
            "grant %I to %I"
        } else {
            "revoke %I from %I"
        };
        let sql: String = tx
            .query_one(
                "select format($3::text, $1::text, $2::text)",
                &[&class.group(), &p.login, &verb],
            )?
            .get(0);
        tx.batch_execute(&sql)?;
    }
    tx.execute(
        "insert into agentbus_logins (login, class, namespaces, agent_id)
         values ($1, $2, $3, $4)
         on conflict (login) do update
           set class = excluded.class, namespaces = excluded.namespaces,
               agent_id = excluded.agent_id, granted_by = session_user, updated_at = now()",
        &[&p.login, &p.class.as_str(), &p.namespaces, &p.agent_id],
    )?;
    get(tx, &p.login)?
        .ok_or_else(|| Error::failure(format!("login {} vanished while granting", p.login)))
}

/// Takes a login's rights away: it may no longer log in, leaves its group, and its
/// binding is deleted. The role itself is kept (it may own objects elsewhere).
pub fn revoke(tx: &mut postgres::Transaction<'_>, login: &str) -> Result<Login> {
    check_login_name(login)?;
    let before = get(tx, login)?.ok_or_else(|| {
        Error::not_found(format!("{login} is not an agentbus login"))
            .with_hint("agentbus roles list")
    })?;
    let sql: String = tx
        .query_one(
            "select format('alter role %I nologin; revoke %I from %I', $1::text, $2::text, $1::text)",
            &[&login, &before.class.group()],
        )?
        .get(0);
    tx.batch_execute(&sql)?;
    tx.execute("delete from agentbus_logins where login = $1", &[&login])?;
    Ok(Login {
        can_login: false,
        in_group: false,
        ..before
    })
}

/// Every login bound in this database (an operator login sees only itself).
pub fn list(client: &mut impl postgres::GenericClient) -> Result<Vec<Login>> {
    logins(client, None)
}

/// One login, if it is bound here.
fn get(client: &mut impl postgres::GenericClient, login: &str) -> Result<Option<Login>> {
    Ok(logins(client, Some(login))?.into_iter().next())
}

fn logins(client: &mut impl postgres::GenericClient, only: Option<&str>) -> Result<Vec<Login>> {
    let rows = client.query(
        "select to_jsonb(x) as row from (
           select l.login, l.class, l.namespaces, l.agent_id, l.granted_by, l.updated_at,
                  coalesce(r.rolcanlogin, false) as can_login,
                  r.oid is not null and pg_has_role(r.oid, 'agentbus_' || l.class, 'MEMBER') as in_group
             from agentbus_logins l
             left join pg_roles r on r.rolname = l.login
            where $1::text is null or l.login = $1
            order by l.class, l.login) x",
        &[&only],
    )?;
    decode_all(&rows, "row")
}

/// Whether the guardrails are on here, and who the caller is.
#[derive(Debug, Clone, Serialize)]
pub struct Guardrails {
    /// The group roles exist and hold their grants in this database.
    pub on: bool,
    /// The database login of this connection.
    pub login: String,
    /// Its class, when it is a bound login; `None` for the owner or a superuser.
    pub class: Option<LoginClass>,
    /// The caller bypasses the guardrails (the owner of the tables or a superuser).
    pub unrestricted: bool,
    /// Bound logins this caller can see, by class (all of them for the owner).
    pub logins: std::collections::BTreeMap<String, i64>,
}

/// Reads [`Guardrails`].
pub fn state(client: &mut impl postgres::GenericClient) -> Result<Guardrails> {
    let row = client.query_one(
        "select agentbus_guardrails_on(), session_user::text, agentbus_unrestricted(),
                (select class from agentbus_logins where login = current_user),
                coalesce((select jsonb_object_agg(class, n) from
                           (select class, count(*) as n from agentbus_logins group by class) c),
                         '{}'::jsonb)",
        &[],
    )?;
    let class: Option<String> = row.get(3);
    let logins: serde_json::Value = row.get(4);
    Ok(Guardrails {
        on: row.get(0),
        login: row.get(1),
        unrestricted: row.get(2),
        class: class.and_then(|c| serde_json::from_value(serde_json::Value::String(c)).ok()),
        logins: serde_json::from_value(logins)
            .map_err(|e| Error::failure(format!("reading login counts: {e}")))?,
    })
}

/// What a refused command was about, for its `guardrail.refused` event.
#[derive(Debug, Clone)]
pub struct Refusal<'a> {
    /// The namespace the command named (used when it named no job).
    pub namespace: &'a str,
    /// The job it named, by id or prefix (its namespace wins).
    pub job: Option<&'a str>,
    /// The identity the caller claimed (`--actor`, `$AGENTBUS_AGENT`).
    pub claimed: &'a str,
    /// The command, e.g. `cancel-job`.
    pub command: &'a str,
    /// The one-line reason it was refused.
    pub reason: &'a str,
}

/// Records a refusal as a `guardrail.refused` event with the session's login (which the
/// caller cannot fake) next to the identity it claimed.
pub fn record_refusal(tx: &mut postgres::Transaction<'_>, r: &Refusal<'_>) -> Result<i64> {
    Ok(tx
        .query_one(
            "select record_guardrail_refusal($1, $2, $3, $4, $5)",
            &[&r.namespace, &r.job, &r.claimed, &r.command, &r.reason],
        )?
        .get(0))
}
