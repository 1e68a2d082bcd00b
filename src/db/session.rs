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

use super::{finish, Prepare};
use crate::error::Result;

/// A connection and the statements prepared on it.
pub struct Session {
    client: postgres::Client,
    statements: HashMap<&'static str, postgres::Statement>,
}

impl Session {
    /// `client`, with no statement prepared yet.
    pub fn new(client: postgres::Client) -> Session {
        Session {
            client,
            statements: HashMap::new(),
        }
    }

    /// Runs `f` in one transaction, committed when it returns `Ok` (or an error that keeps
    /// its writes), rolled back otherwise; like [`super::transaction`], with the
    /// connection's prepared statements at hand.
    pub fn transaction<T>(&mut self, f: impl FnOnce(&mut SessionTx<'_>) -> Result<T>) -> Result<T> {
        let mut tx = SessionTx {
            tx: self.client.transaction()?,
            statements: &mut self.statements,
        };
        let result = f(&mut tx);
        finish(tx.tx, result)
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
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    fn client(&mut self) -> &mut postgres::Client {
        &mut self.client
    }
}

/// A transaction on a [`Session`].
pub struct SessionTx<'a> {
    tx: postgres::Transaction<'a>,
    statements: &'a mut HashMap<&'static str, postgres::Statement>,
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
        if let Some(statement) = self.statements.get(sql) {
            return Ok(Some(statement.clone()));
        }
        let statement = self.tx.prepare(sql)?;
        self.statements.insert(sql, statement.clone());
        Ok(Some(statement))
    }
}
