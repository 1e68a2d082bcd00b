//! A database with the guardrail roles installed, and logins bound in it, for the tests
//! that run as each login (sql/0012_guardrails.sql).

use super::{admin_url, connect, TestDb};
use serde_json::Value;

/// A database with the roles installed, and the logins of one test. Roles belong to the
/// cluster, so logins are named after the test database; dropping this drops the
/// database, then the logins.
pub struct Guarded {
    /// The database.
    pub db: TestDb,
    logins: Vec<String>,
}

impl Guarded {
    /// A fresh database with `roles install` run in it.
    pub fn new() -> Guarded {
        let db = TestDb::new();
        let installed = db.cli(&["roles", "install", "--format", "json"]).ok();
        assert_eq!(installed["grants_applied"], true);
        Guarded {
            db,
            logins: Vec::new(),
        }
    }

    /// Grants `short` (made unique) as `class` in `namespaces`; returns the login.
    pub fn grant(
        &mut self,
        short: &str,
        class: &str,
        namespaces: &[&str],
        agent: Option<&str>,
    ) -> String {
        let login = format!("{}_{short}", self.db.name.trim_start_matches("agentbus_"));
        let mut args = vec!["roles", "grant", login.as_str(), "--as", class];
        for ns in namespaces {
            args.extend(["--namespace", ns]);
        }
        if let Some(a) = agent {
            args.extend(["--agent", a]);
        }
        self.logins.push(login.clone());
        let granted = self.db.cli(&args).ok();
        assert_eq!(granted["class"], class);
        assert_eq!(granted["in_group"], true);
        login
    }

    /// The `guardrail.refused` events recorded for `login`.
    pub fn refusals(&self, login: &str) -> Vec<Value> {
        let mut c = self.db.client();
        c.query(
            "select to_jsonb(e) from events e where topic = 'guardrail.refused' and login = $1 order by id",
            &[&login],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        let mut admin = connect(&admin_url());
        let _ = admin.batch_execute(&format!(
            "drop database if exists {} with (force)",
            self.db.name
        ));
        for login in &self.logins {
            let _ = admin.batch_execute(&format!("drop role if exists {login}"));
        }
    }
}

/// Everything but the events (refusals add events, and only events).
pub fn ledger(db: &TestDb) -> Value {
    let mut snap = db.snapshot();
    if let Some(o) = snap.as_object_mut() {
        o.remove("events");
    }
    snap
}

/// The SQLSTATE of a database error.
pub fn sqlstate(e: &postgres::Error) -> String {
    e.code().map(|c| c.code().to_string()).unwrap_or_default()
}

/// Asserts that `sql` fails with SQLSTATE `state` on `client`.
pub fn refused(client: &mut postgres::Client, sql: &str, state: &str) {
    let e = client.execute(sql, &[]).unwrap_err();
    assert_eq!(sqlstate(&e), state, "{sql}: {e}");
}
