//! agentbus-supervisor against real PostgreSQL: hook mode against a fake OpenClaw gateway,
//! exec mode with scripts that close, forget, crash, hang and block; kill -9 in the middle
//! of a run; several supervisors sharing one agent's concurrency limit; signals.

// Tests report what they measured (latency, duplicates) on stderr.
#![allow(clippy::print_stderr)]

mod dispatch;
mod exec;
mod hook;
mod lifecycle;
mod resilience;
mod secrets;

pub(super) use crate::support::Scratch;
use crate::support::TestDb;
use serde_json::Value;
use std::time::{Duration, Instant};

pub(super) const MINUTE: Duration = Duration::from_secs(60);

/// Every attempt row of a job, oldest first, as JSON.
pub(super) fn attempts(db: &TestDb, job: &str) -> Vec<Value> {
    let v: Value = db.one(&format!(
        "select coalesce(jsonb_agg(to_jsonb(a.*) order by attempt_no), '[]') from job_attempts a where job_id = '{job}'"
    ));
    v.as_array().cloned().unwrap_or_default()
}

/// Waits (at most 20 s) until a supervisor has woken the agent for `id`.
pub(super) fn wait_until_running(db: &TestDb, id: &str) {
    let until = Instant::now() + Duration::from_secs(20);
    while job(db, id)["status"] != "running" {
        assert!(Instant::now() < until, "job {id} never started running");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(super) fn job(db: &TestDb, job: &str) -> Value {
    db.one(&format!(
        "select to_jsonb(j.*) from jobs j where id = '{job}'"
    ))
}
