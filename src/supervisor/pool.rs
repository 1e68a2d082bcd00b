//! A small connection pool: the supervisor's threads share a few long-lived connections
//! instead of paying a backend start (5-6 ms) per job, and each connection keeps the hot
//! statements it prepared (`db::Prepare`), so the dispatch path parses and plans them
//! once. The supervisor always holds sessions of its own (it refuses a transaction-mode
//! pooler), so named statements are safe here.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

use crate::db::{connect, DbConfig, Prepare, SessionSettings};
use crate::error::Result;

/// A connection with the statements prepared on it.
struct Conn {
    client: postgres::Client,
    statements: HashMap<&'static str, postgres::Statement>,
}

/// Idle connections, opened on demand, dropped when broken.
pub struct Pool {
    db: DbConfig,
    settings: SessionSettings,
    idle: Mutex<Vec<Conn>>,
    max_idle: usize,
}

impl Pool {
    /// A pool keeping at most `max_idle` idle connections.
    pub fn new(db: DbConfig, settings: SessionSettings, max_idle: usize) -> Pool {
        Pool {
            db,
            settings,
            idle: Mutex::new(Vec::new()),
            max_idle,
        }
    }

    /// An idle connection, or a new one.
    pub fn get(&self) -> Result<Pooled<'_>> {
        let reused = self.idle.lock().ok().and_then(|mut v| v.pop());
        let conn = match reused {
            Some(c) if !c.client.is_closed() => c,
            _ => Conn {
                client: connect(&self.db, &self.settings)?,
                statements: HashMap::new(),
            },
        };
        Ok(Pooled {
            pool: self,
            conn: Some(conn),
        })
    }

    /// Drops every idle connection (after the database went away).
    pub fn clear(&self) {
        if let Ok(mut v) = self.idle.lock() {
            v.clear();
        }
    }

    /// Opens a connection outside the pool (for LISTEN).
    pub fn connect_dedicated(&self) -> Result<postgres::Client> {
        connect(&self.db, &self.settings)
    }
}

/// A connection borrowed from the pool; returned on drop unless broken.
pub struct Pooled<'a> {
    pool: &'a Pool,
    conn: Option<Conn>,
}

impl Deref for Pooled<'_> {
    type Target = postgres::Client;
    fn deref(&self) -> &postgres::Client {
        // Only `None` after drop.
        self.conn
            .as_ref()
            .map(|c| &c.client)
            .unwrap_or_else(|| unreachable!())
    }
}

impl DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut postgres::Client {
        self.conn
            .as_mut()
            .map(|c| &mut c.client)
            .unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if conn.client.is_closed() {
                return;
            }
            if let Ok(mut idle) = self.pool.idle.lock() {
                if idle.len() < self.pool.max_idle {
                    idle.push(conn);
                }
            }
        }
    }
}

impl Prepare for Pooled<'_> {
    fn prepared(&mut self, sql: &'static str) -> Result<postgres::Statement> {
        let conn = self.conn.as_mut().unwrap_or_else(|| unreachable!());
        if let Some(statement) = conn.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = conn.client.prepare(sql)?;
        conn.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    fn client(&mut self) -> &mut postgres::Client {
        self
    }
}
