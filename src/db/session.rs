//! A connection that keeps the statements prepared on it, for callers that hold one
//! connection for many calls (the supervisor's pool, an agent runtime embedding the
//! library): each hot statement is parsed and planned once per connection instead of on
//! every call. A `agentbus` CLI call makes one statement per process and has nothing to
//! reuse, so it runs on a plain [`postgres::Client`].
//!
//! A named statement lives on one server session: a session must be a direct connection
//! (or a session-mode pool), never PgBouncer's transaction mode, which hands the next
//! transaction to another server connection. The cache is owned with its connection, so a
//! statement can never be run on a connection it was not prepared on.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};

use postgres::types::{ToSql, Type};

use super::{connect, finish, DbConfig, PoolMode, Prepare, SessionSettings};
use crate::error::{Error, Result};

/// A connection and the statements prepared on it.
pub struct Session {
    client: postgres::Client,
    statements: HashMap<&'static str, postgres::Statement>,
}

impl Session {
    /// Connects (as [`connect`]) and holds the connection as a session. Refuses a
    /// connection through a transaction-mode pooler (`AGENTBUS_POOL_MODE=transaction`)
    /// before connecting: there a statement prepared on one server connection would be
    /// run on another that never prepared it.
    pub fn connect(db: &DbConfig, settings: &SessionSettings) -> Result<Session> {
        if db.pool == PoolMode::Transaction {
            return Err(Error::config(
                "a session keeps prepared statements on its connection, which a \
                 transaction-mode pooler does not keep (AGENTBUS_POOL_MODE=transaction)",
            )
            .with_hint(
                "connect this process directly to PostgreSQL or through a session-mode pool; \
                 agents' one-shot commands may keep the transaction pooler",
            ));
        }
        Ok(Session::new(connect(db, settings)?))
    }

    /// `client`, with no statement prepared yet. The caller vouches that `client` is a
    /// session of its own (see [`Session::connect`], which checks).
    pub fn new(client: postgres::Client) -> Session {
        Session {
            client,
            statements: HashMap::new(),
        }
    }

    /// Runs `f` in one transaction, committed when it returns `Ok` (or an error that keeps
    /// its writes), rolled back otherwise; like [`super::transaction`], with the
    /// connection's prepared statements at hand.
    ///
    /// The notifications the work queued with [`Tx::notify_after_commit`] are sent once the
    /// commit returned, in one statement of their own that changes no row and does not
    /// wait for a flush. They are hints: if sending them fails, the work stays committed
    /// and the result is the work's (a listener also polls).
    pub fn transaction<T>(&mut self, f: impl FnOnce(&mut SessionTx<'_>) -> Result<T>) -> Result<T> {
        let mut tx = SessionTx {
            tx: self.client.transaction()?,
            statements: &mut self.statements,
            notices: Vec::new(),
        };
        let result = f(&mut tx);
        let (result, notices) = tx.finish(result);
        let committed = match &result {
            Ok(_) => true,
            Err(e) => e.keep_writes,
        };
        if committed && !notices.is_empty() {
            let _ = self.notify(&notices);
        }
        result
    }

    /// Runs the statement `sql` (prepared on this connection the first time) as a
    /// transaction of its own: outside `BEGIN`/`COMMIT`, PostgreSQL commits a statement
    /// when it has run, so a write that is one statement costs one round trip instead of
    /// three. Its rows are returned once it is committed (durably, unless the session's
    /// `synchronous_commit` is off).
    pub fn query_alone(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>> {
        let statement = self.prepared(sql)?;
        Ok(self.client.query(&statement, params)?)
    }

    /// Sends `notices` (channel, payload) in one statement whose commit does not wait for
    /// the disk: it changes no row. For work already committed: [`Session::transaction`]
    /// sends its work's notices so, and a caller of [`Session::query_alone`] may; a hint,
    /// whose failure the caller may ignore.
    pub fn notify(&mut self, notices: &[(&'static str, String)]) -> Result<()> {
        let (channels, payloads): (Vec<&str>, Vec<&str>) =
            notices.iter().map(|(c, p)| (*c, p.as_str())).unzip();
        let statement = self.prepared(
            "select set_config('synchronous_commit', 'off', true), pg_notify(n.channel, n.payload)
             from unnest($1::text[], $2::text[]) as n(channel, payload)",
        )?;
        self.client.execute(&statement, &[&channels, &payloads])?;
        Ok(())
    }
}

impl Deref for Session {
    type Target = postgres::Client;
    fn deref(&self) -> &postgres::Client {
        &self.client
    }
}

impl DerefMut for Session {
    fn deref_mut(&mut self) -> &mut postgres::Client {
        &mut self.client
    }
}

impl Prepare for Session {
    fn prepared(&mut self, sql: &'static str) -> Result<postgres::Statement> {
        kept(&mut self.statements, &mut self.client, sql)
    }

    fn client(&mut self) -> &mut postgres::Client {
        &mut self.client
    }
}

/// `sql` from `statements`, prepared on `client` (the connection they belong to) the
/// first time.
fn kept(
    statements: &mut HashMap<&'static str, postgres::Statement>,
    client: &mut impl postgres::GenericClient,
    sql: &'static str,
) -> Result<postgres::Statement> {
    if let Some(statement) = statements.get(sql) {
        return Ok(statement.clone());
    }
    let statement = client.prepare(sql)?;
    statements.insert(sql, statement.clone());
    Ok(statement)
}

/// A transaction on a [`Session`].
pub struct SessionTx<'a> {
    tx: postgres::Transaction<'a>,
    statements: &'a mut HashMap<&'static str, postgres::Statement>,
    notices: Vec<(&'static str, String)>,
}

impl SessionTx<'_> {
    /// Commits or rolls back after the work gave `result` (see [`finish`]); returns the
    /// outcome and the notifications queued for after the commit. Consuming the whole
    /// transaction ends its borrow of the session.
    fn finish<T>(self, result: Result<T>) -> (Result<T>, Vec<(&'static str, String)>) {
        (finish(self.tx, result), self.notices)
    }
}

/// A transaction a library call runs in: a plain [`postgres::Transaction`] (every
/// statement parsed and planned where it runs) or a [`SessionTx`] (hot statements
/// prepared once per connection). A prepared statement survives the transaction it was
/// prepared in, committed or not.
pub trait Tx<'c> {
    /// The transaction itself.
    fn transaction(&mut self) -> &mut postgres::Transaction<'c>;
    /// `sql` prepared on this connection, or `None` when statements are not kept.
    fn cached(&mut self, sql: &'static str) -> Result<Option<postgres::Statement>>;

    /// Whether notifications given to [`Tx::notify_after_commit`] are sent after the
    /// commit (a session's transaction) rather than dropped.
    fn notifies_after_commit(&self) -> bool {
        false
    }

    /// Queues a notification on `channel` for after a successful commit (see
    /// [`Session::transaction`]); a plain transaction drops it, so a caller asks
    /// [`Tx::notifies_after_commit`] first and otherwise lets the database notify.
    fn notify_after_commit(&mut self, _channel: &'static str, _payload: String) {}

    /// Runs `sql`: as the statement prepared on this connection when statements are kept,
    /// else parsed, bound and run in one round trip (the parameters' types given, so
    /// nothing is asked of the server first).
    fn query_typed_cached(
        &mut self,
        sql: &'static str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Vec<postgres::Row>> {
        match self.cached(sql)? {
            Some(statement) => {
                let values: Vec<&(dyn ToSql + Sync)> = params.iter().map(|(v, _)| *v).collect();
                Ok(self.transaction().query(&statement, &values)?)
            }
            None => Ok(self.transaction().query_typed(sql, params)?),
        }
    }
}

impl<'c> Tx<'c> for postgres::Transaction<'c> {
    fn transaction(&mut self) -> &mut postgres::Transaction<'c> {
        self
    }

    fn cached(&mut self, _sql: &'static str) -> Result<Option<postgres::Statement>> {
        Ok(None)
    }
}

impl<'c> Tx<'c> for SessionTx<'c> {
    fn transaction(&mut self) -> &mut postgres::Transaction<'c> {
        &mut self.tx
    }

    fn cached(&mut self, sql: &'static str) -> Result<Option<postgres::Statement>> {
        kept(self.statements, &mut self.tx, sql).map(Some)
    }

    fn notifies_after_commit(&self) -> bool {
        true
    }

    fn notify_after_commit(&mut self, channel: &'static str, payload: String) {
        self.notices.push((channel, payload));
    }
}
