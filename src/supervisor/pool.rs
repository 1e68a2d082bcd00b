//! A small connection pool: the supervisor's threads share a few long-lived connections
//! instead of paying a backend start (5-6 ms) per job, and each connection is a
//! `db::Session` keeping the hot statements it prepared, so the dispatch path parses and
//! plans them once. The supervisor always holds sessions of its own (it refuses a
//! transaction-mode pooler), so named statements are safe here.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

use crate::db::{DbConfig, Prepare, Session, SessionSettings};
use crate::error::Result;

/// Idle connections, opened on demand, dropped when broken.
pub struct Pool {
    db: DbConfig,
    settings: SessionSettings,
    idle: Mutex<Vec<Session>>,
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
            Some(c) if !c.is_closed() => c,
            _ => Session::connect(&self.db, &self.settings)?,
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

    /// Opens a connection outside the pool, with its own prepared statements (the
    /// listener's: it LISTENs and claims on it).
    pub fn connect_session(&self) -> Result<Session> {
        Session::connect(&self.db, &self.settings)
    }
}

/// A connection borrowed from the pool; returned on drop unless broken.
pub struct Pooled<'a> {
    pool: &'a Pool,
    conn: Option<Session>,
}

impl Pooled<'_> {
    /// The connection with its prepared statements, for a transaction that uses them.
    pub fn session(&mut self) -> &mut Session {
        self.conn.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Deref for Pooled<'_> {
    type Target = postgres::Client;
    fn deref(&self) -> &postgres::Client {
        // Only `None` after drop.
        self.conn.as_deref().unwrap_or_else(|| unreachable!())
    }
}

impl DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut postgres::Client {
        self.conn.as_deref_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if conn.is_closed() {
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
        self.session().prepared(sql)
    }

    fn client(&mut self) -> &mut postgres::Client {
        self
    }
}
