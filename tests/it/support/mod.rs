//! Test support: one PostgreSQL database per test, cloned from a migrated template, and a
//! runner for the real `agentbus` binary with a clean environment.
//!
//! `AGENTBUS_TEST_DATABASE_URL` (or `DATABASE_URL`) names a server and a role that may
//! create databases; `scripts/test.sh` sets it from `scripts/pg-local.sh`. Without it the
//! tests fail with that instruction rather than skip.

#![allow(dead_code)]

pub mod cluster;
pub mod fake_hook;
pub mod fixtures;
pub mod logins;
pub mod scratch;
pub use scratch::Scratch;
mod cli;
pub mod source;
pub use cli::*;
mod supervisor_proc;
pub use supervisor_proc::*;

use std::sync::atomic::{AtomicU32, Ordering};

use agentbus::db::{self, DbConfig, SessionSettings};
use serde_json::Value;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The maintenance URL tests create their databases from.
pub fn admin_url() -> String {
    std::env::var("AGENTBUS_TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .unwrap_or_else(|_| {
            panic!(
                "set AGENTBUS_TEST_DATABASE_URL to a PostgreSQL URL whose role may create databases \
                 (scripts/test.sh does this via scripts/pg-local.sh)"
            )
        })
}

/// `url` with its database name replaced by `name` (URL or key=value form).
pub fn url_with_db(url: &str, name: &str) -> String {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (url, None),
        };
        let scheme_end = base.find("://").map_or(0, |i| i + 3);
        let host_part_end = base[scheme_end..]
            .find('/')
            .map_or(base.len(), |i| scheme_end + i);
        let mut out = format!("{}/{}", &base[..host_part_end], name);
        if let Some(q) = query {
            out.push('?');
            out.push_str(q);
        }
        out
    } else {
        format!("{url} dbname={name}")
    }
}

/// `url` logging in as `user` instead (URL or key=value form).
pub fn url_as(url: &str, user: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let host_start = match rest.find('@') {
            Some(at) if rest.find('/').is_none_or(|slash| at < slash) => at + 1,
            _ => 0,
        };
        format!("{scheme}://{user}@{}", &rest[host_start..])
    } else {
        format!("{url} user={user}")
    }
}

/// The session settings of the tests' own connections.
pub fn settings() -> SessionSettings {
    SessionSettings {
        application_name: "agentbus-tests".into(),
        statement_timeout: Some(std::time::Duration::from_secs(120)),
        lock_timeout: Some(std::time::Duration::from_secs(60)),
        synchronous_commit: true,
        lease_token: None,
        idle_in_transaction_timeout: db::CLI_IDLE_IN_TRANSACTION_TIMEOUT,
    }
}

/// A connection with test settings.
pub fn connect(url: &str) -> postgres::Client {
    let config = DbConfig::parse(url).expect("test database URL parses");
    db::connect(&config, &settings()).expect("connect to the test database")
}

fn template_name() -> String {
    let mut sums = String::new();
    for m in agentbus::db::migrate::MIGRATIONS {
        sums.push_str(&m.checksum());
    }
    // Short, stable name per schema: a new migration or an edit makes a new template.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in sums.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("agentbus_tpl_{h:016x}")
}

/// Creates (once, under an advisory lock) the migrated template database.
fn ensure_template(admin: &mut postgres::Client) -> String {
    let name = template_name();
    admin
        .execute("select pg_advisory_lock(727274)", &[])
        .expect("template lock");
    let exists = admin
        .query_opt("select 1 from pg_database where datname = $1", &[&name])
        .expect("look up template")
        .is_some();
    if !exists {
        let building = format!("{name}_building");
        admin
            .batch_execute(&format!("drop database if exists {building} with (force)"))
            .expect("drop half-built template");
        admin
            .batch_execute(&format!("create database {building}"))
            .expect("create template");
        {
            let mut c = connect(&url_with_db(&admin_url(), &building));
            agentbus::db::migrate::migrate(&mut c).expect("migrate template");
        }
        admin
            .batch_execute(&format!("alter database {building} rename to {name}"))
            .expect("publish template");
        // Templates of older schemas are dead weight; one still in use is left alone.
        let old: Vec<String> = admin
            .query(
                "select datname from pg_database where datname like 'agentbus\\_tpl\\_%' and datname <> $1",
                &[&name],
            )
            .map(|rows| rows.iter().map(|r| r.get(0)).collect())
            .unwrap_or_default();
        for db in old {
            let _ = admin.batch_execute(&format!("drop database if exists {db}"));
        }
    }
    admin
        .execute("select pg_advisory_unlock(727274)", &[])
        .expect("template unlock");
    name
}

/// A database of its own for one test, dropped when the value is dropped.
pub struct TestDb {
    /// Database name.
    pub name: String,
    /// URL of this database.
    pub url: String,
    /// Whether dropping the value drops the database.
    owned: bool,
}

impl TestDb {
    /// A fresh, migrated database.
    pub fn new() -> TestDb {
        Self::create(true)
    }

    /// A fresh, empty database (for migration tests).
    pub fn empty() -> TestDb {
        Self::create(false)
    }

    fn create(migrated: bool) -> TestDb {
        let admin_url = admin_url();
        let mut admin = connect(&admin_url);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!(
            "agentbus_t_{}_{}_{}",
            std::process::id(),
            n,
            uuid::Uuid::new_v4()
                .simple()
                .to_string()
                .get(..8)
                .unwrap_or("x")
        );
        let sql = if migrated {
            let tpl = ensure_template(&mut admin);
            format!("create database {name} template {tpl}")
        } else {
            format!("create database {name}")
        };
        // Cloning fails with object_in_use while another session is connected to the
        // template (e.g. another test process publishing it); only that is retried.
        let mut tries = 0;
        loop {
            match admin.batch_execute(&sql) {
                Ok(()) => break,
                Err(e)
                    if tries < 50
                        && e.code() == Some(&postgres::error::SqlState::OBJECT_IN_USE) =>
                {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(e) => panic!("create test database: {e}"),
            }
        }
        TestDb {
            url: url_with_db(&admin_url, &name),
            name,
            owned: true,
        }
    }

    /// The helpers on a database that someone else created (and drops).
    pub fn attach(url: &str) -> TestDb {
        TestDb {
            name: String::new(),
            url: url.to_string(),
            owned: false,
        }
    }

    /// A new connection to this database.
    pub fn client(&self) -> postgres::Client {
        connect(&self.url)
    }

    /// Runs `agentbus ARGS` against this database.
    pub fn cli(&self, args: &[&str]) -> CliOutput {
        self.cli_with(args, &[], None)
    }

    /// Runs `agentbus ARGS` with extra environment and optional stdin.
    pub fn cli_with(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> CliOutput {
        let mut all_env = vec![("DATABASE_URL", self.url.as_str())];
        all_env.extend_from_slice(env);
        run_cli(args, &all_env, stdin)
    }

    /// Runs `agentbus ARGS` logged in as `login` (see `url_as`), with extra environment.
    pub fn cli_as(&self, login: &str, args: &[&str], env: &[(&str, &str)]) -> CliOutput {
        let url = url_as(&self.url, login);
        let mut all_env = vec![("AGENTBUS_DATABASE_URL", url.as_str())];
        all_env.extend_from_slice(env);
        run_cli(args, &all_env, None)
    }

    /// A connection logged in as `login`.
    pub fn client_as(&self, login: &str) -> postgres::Client {
        connect(&url_as(&self.url, login))
    }

    /// Enqueues a job for `agent` with `subject` after `deps`; returns its id.
    pub fn enqueue(&self, agent: &str, subject: &str, deps: &[&str]) -> String {
        let mut args = vec!["enqueue-job", "--target-agent", agent, "--subject", subject];
        for d in deps {
            args.extend(["--depends-on", d]);
        }
        s(&self.cli(&args).ok(), "id")
    }

    /// Claims one job as `owner` (of `agent` only, when given); returns (id, lease token).
    pub fn claim_one(&self, owner: &str, agent: Option<&str>) -> (String, String) {
        let mut args = vec!["claim-jobs", "--lease-owner", owner];
        if let Some(a) = agent {
            args.extend(["--target-agent", a]);
        }
        let got = self.cli(&args).ok();
        let job = got
            .as_array()
            .and_then(|a| a.first())
            .cloned()
            .unwrap_or_else(|| panic!("nothing to claim: {got}"));
        (s(&job, "id"), s(&job, "lease_token"))
    }

    /// A JSON snapshot of every row of every ledger table, to prove "nothing written".
    pub fn snapshot(&self) -> Value {
        let mut c = self.client();
        let row = c
            .query_one(
                "select jsonb_build_object(
                   'jobs', (select coalesce(jsonb_agg(to_jsonb(j) order by id), '[]') from jobs j),
                   'job_history', (select coalesce(jsonb_agg(to_jsonb(h) order by id), '[]') from job_history h),
                   'job_attempts', (select coalesce(jsonb_agg(to_jsonb(a) order by id), '[]') from job_attempts a),
                   'job_dependencies', (select coalesce(jsonb_agg(to_jsonb(d) order by job_id, depends_on_job_id), '[]') from job_dependencies d),
                   'events', (select coalesce(jsonb_agg(to_jsonb(e) order by id), '[]') from events e),
                   'standing_order_runs', (select coalesce(jsonb_agg(to_jsonb(r) order by id), '[]') from standing_order_runs r),
                   'agents', (select coalesce(jsonb_agg(to_jsonb(a) order by namespace, agent_id), '[]') from agents a),
                   'standing_orders', (select coalesce(jsonb_agg(to_jsonb(o) order by namespace, agent_id, order_name), '[]') from standing_orders o),
                   'dispatcher_heartbeats', (select coalesce(jsonb_agg(to_jsonb(h) order by namespace, dispatcher_id), '[]') from dispatcher_heartbeats h),
                   'ideas', (select coalesce(jsonb_agg(to_jsonb(i) order by id), '[]') from ideas i),
                   'opportunities', (select coalesce(jsonb_agg(to_jsonb(o) order by id), '[]') from opportunities o),
                   'opportunity_reviews', (select coalesce(jsonb_agg(to_jsonb(r) order by id), '[]') from opportunity_reviews r),
                   'proactive_budgets', (select coalesce(jsonb_agg(to_jsonb(b) order by namespace, agent_id), '[]') from proactive_budgets b),
                   'proactive_budget_refusals', (select coalesce(jsonb_agg(to_jsonb(x) order by id), '[]') from proactive_budget_refusals x),
                   'memory_candidates', (select coalesce(jsonb_agg(to_jsonb(c) order by id), '[]') from memory_candidates c),
                   'memories', (select coalesce(jsonb_agg(to_jsonb(m) order by id), '[]') from memories m),
                   'memory_links', (select coalesce(jsonb_agg(to_jsonb(l) order by memory_id, kind, ref), '[]') from memory_links l),
                   'lane_controls', (select coalesce(jsonb_agg(to_jsonb(l) order by namespace, lane), '[]') from lane_controls l))",
                &[],
            )
            .expect("snapshot");
        row.get(0)
    }

    /// Inserts a job directly in `status` (bypassing the commands), with the fields that
    /// state requires: leased/running jobs get a lease token, an owner and an attempt row.
    pub fn insert_job_in(&self, status: &str) -> uuid::Uuid {
        let mut c = self.client();
        let row = c
            .query_one(
                "insert into jobs (target_agent, job_type, subject, status, attempt_count,
                                   lease_owner, leased_until, lease_token, blocked_reason, completed_at)
                 values ('worker', 'reactive', 'fixture', $1::text::job_status,
                         case when $1 in ('queued', 'waiting', 'awaiting_approval') then 0 else 1 end,
                         case when $1 in ('leased', 'running') then 'fixture-owner' end,
                         case when $1 in ('leased', 'running') then now() + interval '10 minutes' end,
                         case when $1 in ('leased', 'running') then gen_random_uuid() end,
                         case when $1 = 'blocked' then 'fixture reason' end,
                         case when $1 in ('succeeded', 'dead', 'cancelled') then now() end)
                 returning id, lease_token",
                &[&status],
            )
            .expect("insert fixture job");
        let id: uuid::Uuid = row.get(0);
        let token: Option<uuid::Uuid> = row.get(1);
        if status != "queued" && status != "waiting" && status != "awaiting_approval" {
            let attempt_status = match status {
                "leased" | "running" | "succeeded" | "blocked" | "failed" => status,
                "dead" => "failed",
                _ => "cancelled",
            };
            c.execute(
                "insert into job_attempts (job_id, attempt_no, dispatcher_id, status, lease_token, finished_at)
                 values ($1, 1, 'fixture-owner', $2::text::attempt_status, $3,
                         case when $2 in ('leased', 'running') then null else now() end)",
                &[&id, &attempt_status, &token],
            )
            .expect("insert fixture attempt");
        }
        id
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        if std::env::var_os("AGENTBUS_TEST_KEEP_DB").is_some() {
            #[allow(clippy::print_stderr)] // the test harness talks to the developer
            {
                eprintln!("kept test database {}", self.name);
            }
            return;
        }
        if let Ok(mut admin) = postgres::Client::connect(&admin_url(), postgres::NoTls) {
            let _ = admin.batch_execute(&format!(
                "drop database if exists {} with (force)",
                self.name
            ));
        }
    }
}

impl TestDb {
    /// One value from a query.
    pub fn one<T: for<'a> postgres::types::FromSql<'a>>(&self, sql: &str) -> T {
        self.client()
            .query_one(sql, &[])
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0)
    }

    /// Inserts `n` queued jobs spread over `agents` agents named `agent-0`...; returns nothing.
    pub fn bulk_enqueue(&self, n: i32, agents: i32) {
        self.client()
            .execute(
                "insert into jobs (target_agent, job_type, subject, max_attempts)
                 select 'agent-' || (g % $2), 'test', 'job ' || g, 10
                 from generate_series(1, $1) g",
                &[&n, &agents],
            )
            .expect("bulk enqueue");
    }
}
