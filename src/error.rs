//! The one error type of the library, its kinds, and the exit code of each kind.
//!
//! Every failure an agent can branch on has a kind: usage (fix the call), not found,
//! conflict (the state moved on: stale lease, illegal transition), temporary (safe to retry
//! the same command), configuration. The table in [`ErrorKind::exit_code`] is the only place
//! exit codes are defined.

use std::fmt;

/// What kind of failure an [`Error`] is; decides the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Anything else (a bug, an unexpected database error).
    Failure,
    /// Bad flags, bad JSON, bad uuid, out-of-range values.
    Usage,
    /// The job, run or event named does not exist.
    NotFound,
    /// Illegal state transition, stale lease token, lost lease, duplicate id.
    Conflict,
    /// Database unreachable, timeout, serialization failure: retry the same command.
    Temporary,
    /// Missing DATABASE_URL, schema not migrated, edited migration.
    Config,
    /// A guardrail refused the call (a hand-off the fleet does not allow).
    NotPermitted,
}

impl ErrorKind {
    /// The process exit code for this kind (documented in agentbus(1), EXIT STATUS).
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Failure => 1,
            ErrorKind::Usage => 2,
            ErrorKind::NotFound => 3,
            ErrorKind::Conflict => 4,
            ErrorKind::Temporary => 75,
            ErrorKind::Config => 78,
            ErrorKind::NotPermitted => 77,
        }
    }
}

/// A failure with a kind, a one-line message, and an optional hint for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What kind of failure this is.
    pub kind: ErrorKind,
    /// One line: what failed and why.
    pub message: String,
    /// What to do about it, when there is something useful to say.
    pub hint: Option<String>,
    /// The writes made before this error must be kept: it is a refusal the ledger records
    /// (a stale lease token on the attempt, an over-budget proposal for the audit), so
    /// [`crate::db::transaction`] commits and then reports it.
    pub keep_writes: bool,
    /// A stable name for failures a caller may act on (`agent_unknown`,
    /// `schema_not_migrated`); the CLI turns it into the command to run next.
    pub code: Option<&'static str>,
    /// What the failure is about (a job or opportunity id), for that next command.
    pub subject: Option<String>,
}

/// Result with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            hint: None,
            keep_writes: false,
            code: None,
            subject: None,
        }
    }

    /// Names the failure with a stable `code` about `subject` (see [`Error::code`]).
    pub fn with_code(mut self, code: &'static str, subject: Option<String>) -> Self {
        self.code = Some(code);
        self.subject = subject;
        self
    }

    /// Marks this error as a recorded refusal: the transaction commits what was written
    /// before it (see [`Error::keep_writes`]).
    pub fn keeping_writes(mut self) -> Self {
        self.keep_writes = true;
        self
    }

    /// Adds a hint (shown on a second line).
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// A usage error (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Usage, message)
    }

    /// A not-found error (exit 3).
    pub fn not_found(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::NotFound, message)
    }

    /// A conflict (exit 4).
    pub fn conflict(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Conflict, message)
    }

    /// A configuration error (exit 78).
    pub fn config(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Config, message)
    }

    /// A temporary error (exit 75).
    pub fn temporary(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Temporary, message)
    }

    /// A guardrail refused it (exit 77).
    pub fn not_permitted(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::NotPermitted, message)
    }

    /// Any other failure (exit 1).
    pub fn failure(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Failure, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<postgres::Error> for Error {
    /// Classifies a database error by SQLSTATE. Messages never include connection
    /// parameters, so passwords cannot leak through here.
    fn from(err: postgres::Error) -> Self {
        let Some(db) = err.as_db_error() else {
            // No SQLSTATE and not about the connection: a row or a parameter this build
            // cannot convert, or an unexpected number of rows. Retrying cannot help.
            if is_conversion_error(&err) {
                return Error::failure(format!("unexpected database response: {err}")).with_hint(
                    "a bug in agentbus or a schema it does not know; retrying will not help",
                );
            }
            // Otherwise the connection failed or was lost.
            if err.is_closed() {
                return Error::temporary("database connection lost")
                    .with_hint("safe to retry the same command");
            }
            return Error::temporary(format!("database unreachable: {}", connection_reason(&err)))
                .with_hint(
                "safe to retry the same command; check DATABASE_URL and that PostgreSQL is running",
            );
        };
        let code = db.code().code();
        let message = db.message().to_string();
        match code {
            // serialization_failure, deadlock_detected, lock_not_available, query_canceled
            // (statement_timeout), admin/crash shutdown, too many connections, cannot connect now
            "40001" | "40P01" | "55P03" | "57014" | "57P01" | "57P02" | "57P03" | "53300" => {
                Error::temporary(format!("database busy: {message}"))
                    .with_hint("safe to retry the same command")
            }
            // undefined_table, undefined_column, undefined_function, undefined_object
            "42P01" | "42703" | "42883" | "42704" => Error::config(format!(
                "the database schema is missing or older than this agentbus ({message})"
            ))
            .with_code("schema_not_migrated", None),
            // invalid_catalog_name (database does not exist), invalid_authorization_specification,
            // invalid_password
            "3D000" | "28000" | "28P01" => {
                Error::config(format!("cannot use the database: {message}"))
            }
            // protocol_violation: PgBouncer in transaction mode refuses the session settings
            // agentbus sends at connect unless told it is there.
            "08P01" if message.contains("unsupported startup parameter") => {
                Error::config(format!("cannot use the database: {message}")).with_hint(
                    "this looks like PgBouncer in transaction mode: set AGENTBUS_POOL_MODE=transaction",
                )
            }
            "23505" => Error::conflict(format!("already exists: {message}")),
            // A proactive budget (0004_proactive.sql): the message says the budget, what
            // was used and when it resets.
            "AB001" => Error::conflict(message),
            // A memory-lane rule (0005_memory.sql): frozen lane, no sources, not a curator.
            "AB002" => Error::conflict(message),
            // A guardrail of the fleet (0010_handoffs.sql) or of the login (0012_guardrails.sql).
            "AB003" => Error::not_permitted(message),
            // A row a security-definer function looked for and the login may not see, or
            // that does not exist (0017_blocked_routing.sql).
            "AB004" => Error::not_found(message),
            // insufficient_privilege: the login's group has no grant for this table, or a
            // row-security policy refused a row outside the login's namespaces.
            "42501" => Error::not_permitted(format!("not permitted: {message}")).with_hint(
                "this database login may not do that (agentbus roles list shows what each login is)",
            ),
            "23503" => Error::not_found(format!("referenced row not found: {message}")),
            // check_violation, not_null_violation, invalid_text_representation,
            // character_not_in_repertoire, untranslatable_character, numeric out of range,
            // invalid_parameter_value, datetime overflow
            "23514" | "23502" | "22P02" | "22021" | "22P05" | "22003" | "22023" | "22008" => {
                Error::usage(format!("invalid value: {message}"))
            }
            _ => Error::failure(format!("database error {code}: {message}")),
        }
    }
}

/// Whether `err` is about the data rather than the connection: rust-postgres keeps its
/// error kinds private, so these are told by the messages of the kinds that are not
/// (conversion of a column or parameter, an unknown column, a parameter count, a row
/// count). Anything else without a SQLSTATE stays a connection problem, safe to retry.
fn is_conversion_error(err: &postgres::Error) -> bool {
    let text = err.to_string();
    [
        "error deserializing column",
        "error serializing parameter",
        "invalid column",
        "expected ",
        "query returned an unexpected number of rows",
    ]
    .iter()
    .any(|p| text.starts_with(p))
}

/// The underlying I/O reason of a connection error, without the connection string.
fn connection_reason(err: &postgres::Error) -> String {
    let mut source = std::error::Error::source(err);
    let mut last = None;
    while let Some(s) = source {
        last = Some(s.to_string());
        source = s.source();
    }
    last.unwrap_or_else(|| err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_match_the_documented_table() {
        assert_eq!(ErrorKind::Failure.exit_code(), 1);
        assert_eq!(ErrorKind::Usage.exit_code(), 2);
        assert_eq!(ErrorKind::NotFound.exit_code(), 3);
        assert_eq!(ErrorKind::Conflict.exit_code(), 4);
        assert_eq!(ErrorKind::Temporary.exit_code(), 75);
        assert_eq!(ErrorKind::Config.exit_code(), 78);
    }
}
