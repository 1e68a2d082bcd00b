//! The supervisor: claims ready jobs, wakes their agents, watches leases, and recovers
//! from crashes.
//!
//! Threads, no async runtime (see ARCHITECTURE.md, "The supervisor"):
//! - the main loop ([`event_loop`]) reacts to one [`Event`] at a time from one channel:
//!   notifications, freed slots, timers (reap, fire standing orders, audit, poll) and
//!   signals; it claims while this process has free slots;
//! - the listener thread holds the `LISTEN jobs_ready` connection ([`listener`]);
//! - the heartbeat thread writes `dispatcher_heartbeats` ([`heartbeat`]);
//! - one thread per claimed job wakes its agent ([`wake`], [`exec`]) and records how it
//!   ended ([`outcome`]).
//!
//! Nothing is kept in memory that the tables do not also hold: a supervisor killed at any
//! moment loses no job, because every claim carries a lease that another supervisor (or
//! its own restart) recovers.

mod event;
mod event_loop;
mod exec;
mod heartbeat;
pub mod hook;
mod hook_workers;
mod listener;
pub mod log;
pub mod metrics;
mod outcome;
mod plan;
mod pool;
pub mod prompt;
mod shared;
mod tasks;
mod wake;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::db::{DbConfig, SessionSettings};
use crate::error::{Error, Result};
use hook::{HookClient, Secret};
use hook_workers::HookWorkers;
use log::{Level, Logger};
use metrics::Metrics;
use pool::Pool;
use shared::Shared;

pub use event::{Event, Task};
pub use exec::expand_argv;
pub use heartbeat::host_name as heartbeat_host_name;
pub use shared::Stop;

/// How long `--once` waits for an unreachable database at start before exiting 75.
pub(crate) const ONCE_CONNECT_PATIENCE: Duration = Duration::from_secs(60);

/// How agents without settings of their own are woken.
#[derive(Debug, Clone)]
pub enum DefaultWake {
    /// Run this argv template (`--exec`).
    Exec(Vec<String>),
    /// POST to this hook URL (`--hook-url`).
    Hook(String),
}

/// Everything the supervisor is told at start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the ledger is.
    pub db: DbConfig,
    /// The URL handed to exec children as `AGENTBUS_DATABASE_URL` (and `DATABASE_URL`, for
    /// their own scripts): `$AGENTBUS_AGENT_DATABASE_URL` (an agent login), else the
    /// supervisor's own when it was given one; else they inherit its `PG*`.
    pub database_url: Option<String>,
    /// `AGENTBUS_POOL_MODE` for exec children (`$AGENTBUS_AGENT_POOL_MODE`: `transaction`
    /// when their URL goes through PgBouncer in transaction mode).
    pub agent_pool_mode: Option<String>,
    /// The namespace served.
    pub namespace: String,
    /// This supervisor's id (lease owner, heartbeat row).
    pub supervisor_id: String,
    /// Lease length at claim and per renewal.
    pub lease_seconds: i32,
    /// Claim at least this often without a notification.
    pub poll_interval: Duration,
    /// At most this many jobs per claim.
    pub claim_batch: i32,
    /// At most this many jobs being woken or run by this process at once.
    pub max_in_flight: usize,
    /// Concurrency limit of agents whose row sets none.
    pub default_concurrency: i32,
    /// How agents without a wake mode of their own are woken; `None`: they are not claimed.
    pub default_wake: Option<DefaultWake>,
    /// The bearer token for hooks (agents may name another env variable).
    pub hook_token: Option<Secret>,
    /// The origins (`http://host:port`) hook tokens may be sent to: `--hook-url`'s and
    /// every `--hook-origin`. A token never goes anywhere else; an agent whose hook URL
    /// points elsewhere is paused with the reason instead.
    pub hook_origins: Vec<String>,
    /// `timeoutSeconds` for hook runs (agents may override).
    pub hook_timeout_seconds: u32,
    /// How long one hook HTTP request may take.
    pub hook_request_timeout: Duration,
    /// The deadline of an exec child (agents may override).
    pub exec_timeout: Duration,
    /// Between TERM and KILL.
    pub kill_grace: Duration,
    /// How long running exec children may finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// Exit once nothing is ready or running.
    pub once: bool,
    /// Between heartbeats.
    pub heartbeat_interval: Duration,
    /// Between sweeps for expired leases.
    pub reap_interval: Duration,
    /// Where prompt files of exec children are written.
    pub work_dir: PathBuf,
    /// Serve Prometheus metrics here.
    pub metrics_addr: Option<SocketAddr>,
    /// The log.
    pub log: Logger,
    /// Environment lookup (hook token variables named by agents).
    pub env: EnvSnapshot,
}

/// The environment the supervisor started with (so tests can pass their own).
#[derive(Clone, Default)]
pub struct EnvSnapshot(pub Vec<(String, String)>);

impl std::fmt::Debug for EnvSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EnvSnapshot({} variables)", self.0.len())
    }
}

impl EnvSnapshot {
    /// The value of `name`, if set and not empty.
    pub fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    }
}

/// What a run of the supervisor did (printed when `--once` ends).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunSummary {
    /// Jobs claimed.
    pub claimed: u64,
    /// Agents woken.
    pub woken: u64,
    /// Expired leases recovered by this supervisor.
    pub reaped: u64,
    /// Jobs released unstarted at shutdown.
    pub released: u64,
}

/// Validates a configuration before anything connects.
pub fn validate(cfg: &Config) -> Result<()> {
    crate::ledger::validate::check_name("`supervisor_id`", &cfg.supervisor_id)?;
    crate::ledger::validate::check_name("`namespace`", &cfg.namespace)?;
    let range = |flag: &str, v: i64, lo: i64, hi: i64| {
        if (lo..=hi).contains(&v) {
            Ok(())
        } else {
            Err(Error::usage(format!(
                "{flag}: {v} is out of range ({lo} to {hi})"
            )))
        }
    };
    range("`lease_seconds`", cfg.lease_seconds.into(), 5, 86_400)?;
    range("`claim_batch`", cfg.claim_batch.into(), 1, 1000)?;
    range(
        "`max_in_flight`",
        i64::try_from(cfg.max_in_flight).unwrap_or(i64::MAX),
        1,
        10_000,
    )?;
    range(
        "`default_concurrency`",
        cfg.default_concurrency.into(),
        1,
        10_000,
    )?;
    // A lease that can run out while the hook request is still waiting for an answer
    // would hand the job to another supervisor mid-wake-up. Only a hook default makes
    // that the normal case; an agent with hook settings of its own under a short lease
    // gets its lease extended before the request (wake::wake_hook).
    if matches!(cfg.default_wake, Some(DefaultWake::Hook(_)))
        && f64::from(cfg.lease_seconds) <= cfg.hook_request_timeout.as_secs_f64()
    {
        return Err(Error::usage(format!(
            "`lease_seconds` ({}) must be longer than `hook_request_timeout` ({} s)",
            cfg.lease_seconds,
            cfg.hook_request_timeout.as_secs_f64()
        )));
    }
    if let Some(DefaultWake::Exec(argv)) = &cfg.default_wake {
        if argv.first().is_none_or(|p| p.is_empty()) {
            return Err(Error::usage("`exec`: the command is empty"));
        }
    }
    if let Some(DefaultWake::Hook(url)) = &cfg.default_wake {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Error::usage(format!(
                "`hook_url`: {url:?} is not an http:// or https:// URL"
            )));
        }
    }
    Ok(())
}

/// The secrets this supervisor knows: its hook token, the database password, and every
/// variable of its environment whose name says it holds one (`*TOKEN*`, `*SECRET*`,
/// `*PASSWORD*`, `*_KEY`), such as the token variables agents name.
fn redactor_for(cfg: &Config) -> crate::redact::Redactor {
    let mut secrets: Vec<String> = Vec::new();
    if let Some(t) = &cfg.hook_token {
        secrets.push(t.expose().to_string());
    }
    secrets.extend(cfg.db.password());
    for (name, value) in &cfg.env.0 {
        let upper = name.to_ascii_uppercase();
        if upper.contains("TOKEN")
            || upper.contains("SECRET")
            || upper.contains("PASSWORD")
            || upper.ends_with("_KEY")
        {
            secrets.push(value.clone());
        }
    }
    crate::redact::Redactor::new(secrets)
}

/// Runs the supervisor until `stop` is requested (or, with `once`, until nothing is ready
/// or running). Returns what it did.
pub fn run(cfg: Config, stop: Stop) -> Result<RunSummary> {
    validate(&cfg)?;
    std::fs::create_dir_all(&cfg.work_dir).map_err(|e| {
        Error::config(format!(
            "`work_dir` {}: cannot create it: {e}",
            cfg.work_dir.display()
        ))
    })?;
    let (events_tx, events_rx) = mpsc::channel();
    stop.attach(events_tx.clone());
    let settings = SessionSettings {
        application_name: format!("agentbus-supervisor/{}", cfg.supervisor_id),
        statement_timeout: Some(Duration::from_secs(30)),
        lock_timeout: Some(Duration::from_secs(10)),
        // Claims and wake records are on the dispatch path, and each synchronous commit
        // waits for a WAL flush. Losing the last few hundred milliseconds of them in a
        // server crash loses no job: a lost claim leaves the job queued (an agent woken
        // under it is refused with exit 4 and the job runs again), a lost close-out
        // leaves a lease that expires. Agents' own calls (enqueue, complete) stay
        // synchronous.
        synchronous_commit: false,
        lease_token: None,
        // A supervisor cut off from the database between a statement and its commit keeps
        // the rows it locked (a job it was claiming, waking or renewing) until the server
        // ends its transaction; the reapers of the other hosts skip locked rows. Its
        // transactions never wait on anything but the database, so the server may end one
        // that falls silent within a lease (scripts/test-multihost.sh; the CLI's calls
        // use 5 s, db::CLI_IDLE_IN_TRANSACTION_TIMEOUT).
        idle_in_transaction_timeout: Duration::from_secs(
            u64::try_from(cfg.lease_seconds).unwrap_or(60).clamp(5, 60),
        ),
    };
    let redactor = redactor_for(&cfg);
    let shared = Arc::new(Shared {
        pool: Pool::new(cfg.db.clone(), settings, cfg.max_in_flight.min(16) + 2),
        hook: HookClient::new(cfg.hook_request_timeout, redactor.clone()),
        redactor,
        metrics: Arc::new(Metrics::default()),
        stop,
        stop_seen: Mutex::new(None),
        in_flight: AtomicUsize::new(0),
        claim_gate: Mutex::new(()),
        backing_off: AtomicBool::new(false),
        last_error: Mutex::new(None),
        events: events_tx,
        started: Instant::now(),
        cfg,
    });

    if let Some(addr) = shared.cfg.metrics_addr {
        let bound = metrics::serve(
            addr,
            Arc::clone(&shared.metrics),
            shared.cfg.supervisor_id.clone(),
            shared.cfg.log,
        )?;
        shared.log(
            Level::Info,
            "serving metrics",
            &[("addr", &format!("http://{bound}/metrics"))],
        );
    }

    if let Some(DefaultWake::Exec(argv)) = &shared.cfg.default_wake {
        if let Some(arg) = exec::placeholder_in_shell_string(argv) {
            shared.log(
                Level::Warn,
                "the exec template puts a placeholder inside a shell string: use \"$AGENTBUS_AGENT\", \"$AGENTBUS_JOB_ID\", \"$AGENTBUS_NAMESPACE\" there instead (placeholders are safe only as whole arguments)",
                &[("argument", &arg)],
            );
        }
    }
    tasks::startup(&shared)?;
    // The listener claims too, so the hook workers start first.
    let workers = HookWorkers::start(&shared)?;
    let listener = match listener::spawn(&shared, &workers) {
        Ok(listener) => listener,
        Err(e) => {
            workers.close();
            return Err(e);
        }
    };
    let beat = match heartbeat::spawn(Arc::clone(&shared)) {
        Ok(beat) => beat,
        Err(e) => {
            shared.stop.set();
            let _ = listener.join();
            workers.close();
            // The first beat was written before the thread failed to start.
            heartbeat::remove(&shared);
            return Err(e);
        }
    };
    let summary = event_loop::Loop::new(&shared, &workers, &events_rx).run();
    let signalled = shared.stopping();
    // From here on every thread winds down (also after --once ran out of work).
    shared.stop.set();
    if signalled {
        let _ = shared.grace_over(); // starts the grace clock
        shared.log(
            Level::Info,
            "stopping: no new claims; waiting for running jobs",
            &[
                (
                    "in_flight",
                    &shared.in_flight.load(std::sync::atomic::Ordering::SeqCst),
                ),
                ("grace_seconds", &shared.cfg.shutdown_grace.as_secs()),
            ],
        );
    }
    event_loop::wait_for_job_threads(&shared, &events_rx);
    workers.close();
    let _ = listener.join();
    let _ = beat.join();
    heartbeat::remove(&shared);
    // Only when empty: prompt files are removed after each run, and the folder may be an
    // operator's own --work-dir with other things in it.
    let _ = std::fs::remove_dir(&shared.cfg.work_dir);
    shared.log(
        Level::Info,
        "stopped",
        &[
            ("claimed", &summary.claimed),
            ("reaped", &summary.reaped),
            ("released", &summary.released),
        ],
    );
    Ok(summary)
}
