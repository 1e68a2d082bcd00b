//! Connecting to PostgreSQL: where the connection settings come from, the session settings
//! every agentbus connection carries, and the helpers commands use to run one transaction.

pub mod backup;
pub mod migrate;
pub mod migrate_check;
mod session;
pub mod tls;

pub use session::{Session, SessionTx, Tx};

use std::time::Duration;

use crate::error::{Error, Result};

/// How long a statement may run, and how long a lock may be waited for, in a CLI call.
/// An agent's call must fail fast (exit 75, safe to retry) rather than hang its run.
pub const CLI_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// See [`CLI_STATEMENT_TIMEOUT`].
pub const CLI_LOCK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server keeps a command's transaction open once the command stops talking.
/// No command waits on anything but the database inside a transaction that locks rows
/// (the two read-only ones that do wait lift the limit: [`outlast_idle_limit`]), so a
/// silent one is a process that died or a host cut off between a statement and its
/// commit: it holds the rows it locked (an agent's job, while it closes it) and the
/// reapers of other hosts skip locked rows. Ended after 5 s, a lost host's jobs are recovered within one lease
/// (scripts/test-multihost.sh; with 60 s a cut-off close kept its job 60 s).
pub const CLI_IDLE_IN_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection attempt may take before the call gives up (exit 75).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// For a read-only transaction that waits on work outside the database (pg_dump reading
/// its exported snapshot, a vault rendered between its reads): lifts the session's limit on
/// silent transactions ([`CLI_IDLE_IN_TRANSACTION_TIMEOUT`]) until it ends. It locks no
/// row, so a silent one keeps no job from the reapers.
pub fn outlast_idle_limit(tx: &mut impl postgres::GenericClient) -> Result<()> {
    tx.execute(
        "select set_config('idle_in_transaction_session_timeout', '0', true)",
        &[],
    )?;
    Ok(())
}

/// Where to connect, resolved from `AGENTBUS_DATABASE_URL`, `DATABASE_URL` or the libpq
/// `PG*` variables.
#[derive(Clone)]
pub struct DbConfig {
    config: postgres::Config,
    tls: tls::TlsSettings,
    /// How the server end pools connections (`AGENTBUS_POOL_MODE`).
    pub pool: PoolMode,
}

/// What sits between agentbus and PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PoolMode {
    /// PostgreSQL itself, or a pooler that gives each client its own server session for
    /// as long as it is connected (PgBouncer's session mode).
    #[default]
    Session,
    /// A pooler that may hand each transaction to a different server session (PgBouncer's
    /// transaction mode): nothing may outlive a transaction, so the session settings are
    /// set with `SET LOCAL` at the start of each one and every statement of a command runs
    /// inside one (see [`pinned_begin`]).
    Transaction,
}

impl DbConfig {
    /// The password, if the settings carry one (for the redactor: it must never be
    /// printed).
    pub fn password(&self) -> Option<String> {
        self.config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
    }
}

impl std::fmt::Debug for DbConfig {
    /// Never prints the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbConfig")
            .field("host", &self.config.get_hosts())
            .field("port", &self.config.get_ports())
            .field("user", &self.config.get_user())
            .field("dbname", &self.config.get_dbname())
            .finish_non_exhaustive()
    }
}

impl DbConfig {
    /// Parses a libpq connection string or `postgres://` URL.
    pub fn parse(url: &str) -> Result<Self> {
        Self::parse_from("the database URL", url)
    }

    /// [`DbConfig::parse`], naming where the text came from in the error.
    fn parse_from(source: &str, url: &str) -> Result<Self> {
        Self::parse_with_env(source, url, &|_| None)
    }

    /// [`DbConfig::parse_from`], with `PGSSLMODE` and `PGSSLROOTCERT` from `lookup` for what
    /// the connection string leaves unsaid (the string wins, as in libpq).
    fn parse_with_env(
        source: &str,
        url: &str,
        lookup: &impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let (rest, mode, root_cert) = tls::split_settings(url)?;
        let config: postgres::Config = rest.parse().map_err(|_| {
            // The parser's message can quote the input, which may hold a password.
            Error::config(format!(
                "{source} is not a valid PostgreSQL connection string"
            ))
            .with_hint("expected e.g. postgresql://user@127.0.0.1:5432/agentbus")
        })?;
        Ok(DbConfig {
            config,
            tls: tls_settings(mode, root_cert, lookup)?,
            pool: pool_mode(lookup)?,
        })
    }

    /// Resolves the connection from the environment, given a lookup function:
    /// `AGENTBUS_DATABASE_URL` first, then `DATABASE_URL`; else the libpq variables
    /// `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`; else a configuration
    /// error. `AGENTBUS_DATABASE_URL` exists because OpenClaw strips `DATABASE_URL` from
    /// the environment of every command an agent runs; its own name passes.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        if let Some((name, url)) = url_from_lookup(&lookup) {
            return DbConfig::parse_with_env(name, &url, &lookup);
        }
        let host = lookup("PGHOST");
        let database = lookup("PGDATABASE");
        if host.is_none() && database.is_none() {
            return Err(no_settings(lookup("OPENCLAW_SHELL").is_some()));
        }
        let mut config = postgres::Config::new();
        config.host(host.as_deref().unwrap_or("localhost"));
        if let Some(port) = lookup("PGPORT") {
            let port: u16 = port
                .parse()
                .map_err(|_| Error::config(format!("PGPORT is not a port number: {port:?}")))?;
            config.port(port);
        }
        let user = lookup("PGUSER")
            .or_else(|| lookup("USER"))
            .unwrap_or_else(|| "postgres".to_string());
        config.user(&user);
        if let Some(password) = lookup("PGPASSWORD") {
            config.password(password);
        }
        config.dbname(database.as_deref().unwrap_or(&user));
        Ok(DbConfig {
            config,
            tls: tls_settings(None, None, &lookup)?,
            pool: pool_mode(&lookup)?,
        })
    }

    /// The database name, for messages.
    pub fn dbname(&self) -> Option<&str> {
        self.config.get_dbname()
    }

    /// The same settings as libpq environment variables (`PGHOST`, `PGPORT`, `PGUSER`,
    /// `PGDATABASE`, `PGPASSWORD`, `PGSSLMODE`, `PGSSLROOTCERT`), for PostgreSQL's own
    /// programs (pg_dump, pg_restore): the password travels in the child's environment,
    /// never on a command line another user could read.
    pub fn libpq_env(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .map(|h| match h {
                postgres::config::Host::Tcp(name) => name.clone(),
                postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        if !hosts.is_empty() {
            out.push(("PGHOST", hosts.join(",")));
        }
        let ports: Vec<String> = self.config.get_ports().iter().map(u16::to_string).collect();
        if !ports.is_empty() {
            out.push(("PGPORT", ports.join(",")));
        }
        if let Some(u) = self.config.get_user() {
            out.push(("PGUSER", u.to_string()));
        }
        if let Some(d) = self.config.get_dbname() {
            out.push(("PGDATABASE", d.to_string()));
        }
        if let Some(p) = self.password() {
            out.push(("PGPASSWORD", p));
        }
        out.push(("PGSSLMODE", self.tls.mode.as_str().to_string()));
        if let Some(root) = &self.tls.root_cert {
            out.push(("PGSSLROOTCERT", root.clone()));
        }
        out
    }
}

/// The TLS settings: the connection string's, else `PGSSLMODE` / `PGSSLROOTCERT`, else
/// `prefer` with no root (libpq's order).
fn tls_settings(
    mode: Option<String>,
    root_cert: Option<String>,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<tls::TlsSettings> {
    Ok(tls::TlsSettings {
        mode: match mode.or_else(|| lookup("PGSSLMODE")) {
            Some(m) => tls::TlsMode::parse(&m)?,
            None => tls::TlsMode::Prefer,
        },
        root_cert: root_cert.or_else(|| lookup("PGSSLROOTCERT")),
    })
}

/// The connection URL the environment names, and the variable it came from:
/// `AGENTBUS_DATABASE_URL`, else `DATABASE_URL` (empty counts as unset). The one place
/// this order is decided; libpq's `PG*` variables come after both.
pub fn url_from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Option<(&'static str, String)> {
    ["AGENTBUS_DATABASE_URL", "DATABASE_URL"]
        .into_iter()
        .find_map(|name| {
            lookup(name)
                .filter(|v| !v.trim().is_empty())
                .map(|v| (name, v))
        })
}

/// The error for "no connection settings at all", which inside OpenClaw has a known cause.
fn no_settings(in_openclaw: bool) -> Error {
    if in_openclaw {
        return Error::config(
            "no database settings: this command runs inside OpenClaw, which never passes \
             DATABASE_URL to the commands an agent runs",
        )
        .with_hint(
            "set AGENTBUS_DATABASE_URL (or PGHOST, PGPORT, PGUSER, PGDATABASE and PGPASSWORD) \
             in the gateway's environment: its service environment (systemd \
             Environment=/EnvironmentFile=) or ~/.openclaw/.env, then restart the gateway",
        );
    }
    Error::config("DATABASE_URL is not set (nor AGENTBUS_DATABASE_URL, PGHOST or PGDATABASE)")
        .with_hint(
            "export AGENTBUS_DATABASE_URL=postgresql://USER@HOST:5432/DB (or DATABASE_URL, or \
             PGHOST/PGDATABASE); scripts/pg-local.sh prints one for this machine",
        )
}

/// `AGENTBUS_POOL_MODE`: `session` (the default) or `transaction`.
fn pool_mode(lookup: &impl Fn(&str) -> Option<String>) -> Result<PoolMode> {
    match lookup("AGENTBUS_POOL_MODE").as_deref().map(str::trim) {
        None | Some("") | Some("session") => Ok(PoolMode::Session),
        Some("transaction") => Ok(PoolMode::Transaction),
        Some(other) => Err(Error::config(format!(
            "AGENTBUS_POOL_MODE is {other:?}; expected session or transaction"
        ))
        .with_hint("transaction: agentbus connects through PgBouncer in transaction mode")),
    }
}

/// Session settings for one connection.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// Shown in `pg_stat_activity.application_name`, e.g. `agentbus/complete-job`.
    pub application_name: String,
    /// `statement_timeout`; `None` disables it.
    pub statement_timeout: Option<Duration>,
    /// `lock_timeout`; `None` disables it.
    pub lock_timeout: Option<Duration>,
    /// `synchronous_commit`: `false` only for writes whose loss in a server crash is
    /// recovered anyway (the supervisor's claims and wake records; see supervisor docs).
    pub synchronous_commit: bool,
    /// The lease the session holds (`$AGENTBUS_LEASE_TOKEN` inside a run): the guardrails
    /// take an agent login's identity from it (sql/0012_guardrails.sql).
    pub lease_token: Option<uuid::Uuid>,
    /// `idle_in_transaction_session_timeout`: how long the server keeps a transaction whose
    /// client went silent (a host cut off between a statement and its commit keeps the
    /// rows it locked that long).
    pub idle_in_transaction_timeout: Duration,
}

impl SessionSettings {
    /// The settings for a short CLI call named `command`.
    pub fn cli(command: &str) -> Self {
        SessionSettings {
            application_name: format!("agentbus/{command}"),
            statement_timeout: Some(CLI_STATEMENT_TIMEOUT),
            lock_timeout: Some(CLI_LOCK_TIMEOUT),
            synchronous_commit: true,
            lease_token: None,
            idle_in_transaction_timeout: CLI_IDLE_IN_TRANSACTION_TIMEOUT,
        }
    }
}

/// Opens a connection with the session settings in the startup packet (no extra round
/// trips): UTC time zone, timeouts, and the application name. JIT compilation is off: it
/// pays off for long analytical queries, and agentbus runs short ones whose row estimates
/// can still be large on a big ledger (a 24-hour window over millions of finished jobs
/// spent 40 ms compiling to save nothing). Parallel workers are off for the same reason:
/// each is a process the server starts for the one query (`status` on a ledger of 100,000
/// jobs took 16.2 ms with two workers reading a day of finished jobs, 5.9 ms without).
pub fn connect(db: &DbConfig, settings: &SessionSettings) -> Result<postgres::Client> {
    let mut config = db.config.clone();
    config.application_name(&settings.application_name);
    config.connect_timeout(CONNECT_TIMEOUT);
    let ms = |d: Option<Duration>| d.map_or(0, |d| d.as_millis());
    let lease = settings
        .lease_token
        .map(|t| format!(" -c agentbus.lease_token={t}"))
        .unwrap_or_default();
    // A transaction pooler refuses (or drops) startup options: they are set per
    // transaction instead.
    if db.pool == PoolMode::Session {
        config.options(&format!(
        "-c TimeZone=UTC -c jit=off -c max_parallel_workers_per_gather=0 -c statement_timeout={} -c lock_timeout={} -c idle_in_transaction_session_timeout={} -c synchronous_commit={}{lease}",
        ms(settings.statement_timeout),
        ms(settings.lock_timeout),
        settings.idle_in_transaction_timeout.as_millis(),
        if settings.synchronous_commit { "on" } else { "off" },
        ));
    }
    let connected = match db.tls.mode {
        tls::TlsMode::Disable => {
            config.ssl_mode(postgres::config::SslMode::Disable);
            #[allow(clippy::disallowed_methods)] // the one sanctioned connect
            config.connect(postgres::NoTls)
        }
        mode => {
            config.ssl_mode(if mode == tls::TlsMode::Prefer {
                postgres::config::SslMode::Prefer
            } else {
                postgres::config::SslMode::Require
            });
            #[allow(clippy::disallowed_methods)] // the one sanctioned connect
            config.connect(tls::connector(&db.tls)?)
        }
    };
    let mut client = connected.map_err(|e| match tls::is_tls_error(&e) {
        // Retrying the same settings cannot help: a configuration error (exit 78).
        Some(reason) if db.tls.mode != tls::TlsMode::Disable => Error::config(format!(
            "TLS to the database failed (sslmode {}): {reason}",
            db.tls.mode.as_str()
        ))
        .with_hint("check sslmode and sslrootcert in the connection string (or PGSSLMODE, PGSSLROOTCERT) against the server's certificate"),
        _ => Error::from(e),
    })?;
    if db.pool == PoolMode::Transaction {
        pinned_begin(&mut client, settings)?;
    }
    Ok(client)
}

/// Through a transaction pooler: opens the transaction the rest of a command runs in and
/// sets what [`connect`] would have put in the startup packet, for this transaction only
/// (`SET LOCAL`: nothing leaks to the next client of the server session). A pooler keeps a
/// client on one server session for the length of a transaction, so the statements that
/// rust-postgres prepares under names stay on the session that knows them. A later
/// `BEGIN` inside it (`db::transaction`) only draws a warning; its `COMMIT` ends both, after
/// which the caller begins again.
pub fn pinned_begin(client: &mut postgres::Client, settings: &SessionSettings) -> Result<()> {
    let ms = |d: Option<Duration>| d.map_or(0, |d| d.as_millis()).to_string();
    client.batch_execute("begin")?;
    client.execute(
        "select set_config('TimeZone', 'UTC', true), set_config('jit', 'off', true),
                set_config('max_parallel_workers_per_gather', '0', true),
                set_config('statement_timeout', $1, true),
                set_config('lock_timeout', $2, true),
                set_config('idle_in_transaction_session_timeout', $5, true),
                set_config('synchronous_commit', $3, true),
                set_config('agentbus.lease_token', coalesce($4, ''), true)",
        &[
            &ms(settings.statement_timeout),
            &ms(settings.lock_timeout),
            &(if settings.synchronous_commit {
                "on"
            } else {
                "off"
            }),
            &settings.lease_token.map(|t| t.to_string()),
            &settings.idle_in_transaction_timeout.as_millis().to_string(),
        ],
    )?;
    Ok(())
}

/// The one place a write commits. Runs `f` inside a new transaction and commits when it
/// returns `Ok`, or when it returns an error marked [`Error::keep_writes`] (a refusal the
/// ledger records, such as a stale lease token); any other error rolls everything back.
///
/// Library functions take `&mut impl GenericClient` and never commit: the caller (a CLI
/// command or the supervisor) decides where a transaction begins and ends, so one command
/// is one transaction however many library calls it makes.
pub fn transaction<T>(
    client: &mut postgres::Client,
    f: impl FnOnce(&mut postgres::Transaction<'_>) -> Result<T>,
) -> Result<T> {
    let mut tx = client.transaction()?;
    let result = f(&mut tx);
    finish(tx, result)
}

/// Ends `tx` after its work gave `result`: commits on `Ok` and on an error that keeps its
/// writes (a refusal recorded on the attempt), rolls back otherwise.
fn finish<T>(tx: postgres::Transaction<'_>, result: Result<T>) -> Result<T> {
    match result {
        Ok(value) => {
            tx.commit()?;
            Ok(value)
        }
        Err(e) if e.keep_writes => {
            tx.commit()?;
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// Sets who is acting and why for the rest of the transaction; the job history trigger
/// records both with every status change.
pub fn set_actor(
    tx: &mut impl postgres::GenericClient,
    actor: &str,
    reason: Option<&str>,
) -> Result<()> {
    tx.execute(
        "select set_config('agentbus.actor', $1, true), set_config('agentbus.reason', $2, true)",
        &[&actor, &reason.unwrap_or("")],
    )?;
    Ok(())
}

/// The database's clock: windows (`--since 2h`) and ages are measured against it, not
/// against the caller's.
pub fn now(client: &mut impl postgres::GenericClient) -> Result<chrono::DateTime<chrono::Utc>> {
    Ok(client.query_one("select now()", &[])?.try_get(0)?)
}

/// Decodes a `to_jsonb(row)` column into a typed row.
pub fn decode<T: serde::de::DeserializeOwned>(row: &postgres::Row, column: &str) -> Result<T> {
    let value: serde_json::Value = row.try_get(column)?;
    serde_json::from_value(value)
        .map_err(|e| Error::failure(format!("unexpected row shape in column {column}: {e}")))
}

/// Decodes every row's `to_jsonb(row)` column.
pub fn decode_all<T: serde::de::DeserializeOwned>(
    rows: &[postgres::Row],
    column: &str,
) -> Result<Vec<T>> {
    rows.iter().map(|r| decode(r, column)).collect()
}

/// A connection that can keep prepared statements: the supervisor's pooled connections
/// parse and plan each of their hot statements once ([`Prepare::prepared`] caches); a
/// plain [`postgres::Client`] prepares every time, so nothing named outlives a statement
/// (what a transaction-mode pooler needs).
pub trait Prepare {
    /// `sql` prepared on this connection.
    fn prepared(&mut self, sql: &'static str) -> Result<postgres::Statement>;
    /// The connection itself.
    fn client(&mut self) -> &mut postgres::Client;
}

impl Prepare for postgres::Client {
    fn prepared(&mut self, sql: &'static str) -> Result<postgres::Statement> {
        Ok(self.prepare(sql)?)
    }

    fn client(&mut self) -> &mut postgres::Client {
        self
    }
}
