//! The supervisor: claims ready jobs, wakes their agents, watches leases, and recovers
//! from crashes (DESIGN.md §3.4).
//!
//! Threads, no async runtime:
//! - the main loop claims while this process has free slots, reaps expired leases, and
//!   waits for a hint (a `jobs_ready` notification or a freed slot) or the poll interval;
//! - a listener thread holds the `LISTEN jobs_ready` connection;
//! - a heartbeat thread writes `dispatcher_heartbeats`;
//! - one thread per claimed job wakes its agent (and, in exec mode, watches the child).
//!
//! Nothing is kept in memory that the tables do not also hold: a supervisor killed at any
//! moment loses no job, because every claim carries a lease that another supervisor (or
//! its own restart) recovers.

mod exec;
mod heartbeat;
pub mod hook;
pub mod log;
pub mod metrics;
mod pool;
pub mod prompt;
mod wake;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;

use crate::db::{DbConfig, SessionSettings};
use crate::error::{Error, ErrorKind, Result};
use crate::ledger::jobs::{self, AttemptStatus, Caller, ClaimParams, Fence, Job};
use crate::supervisor::hook::{HookClient, Secret};
use log::{Level, Logger};
use metrics::{Metrics, Outcome};
use pool::Pool;

pub use exec::expand_argv;
pub use heartbeat::host_name as heartbeat_host_name;

/// How long `--once` waits for an unreachable database at start before exiting 75.
const ONCE_CONNECT_PATIENCE: Duration = Duration::from_secs(60);

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
    /// The URL handed to exec children as `DATABASE_URL` (when the supervisor had one).
    pub database_url: Option<String>,
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

/// Hints to the main loop.
enum Hint {
    /// A job became ready, or a slot freed (notification).
    Notified,
    /// One of this process's job threads ended.
    SlotFreed,
}

/// State shared by the supervisor's threads.
struct Shared {
    cfg: Config,
    pool: Pool,
    hook: HookClient,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
    /// When the stop was first seen (start of the shutdown grace).
    stop_seen: Mutex<Option<Instant>>,
    in_flight: AtomicUsize,
    last_error: Mutex<Option<String>>,
    hints: Sender<Hint>,
    started: Instant,
}

impl Shared {
    fn log(&self, level: Level, message: &str, fields: &[(&str, &dyn std::fmt::Display)]) {
        self.cfg.log.log(level, message, fields);
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Whether running children must now be stopped (shutdown grace over).
    fn grace_over(&self) -> bool {
        if !self.stopping() {
            return false;
        }
        let mut seen = match self.stop_seen.lock() {
            Ok(s) => s,
            Err(_) => return true,
        };
        let at = *seen.get_or_insert_with(Instant::now);
        at.elapsed() >= self.cfg.shutdown_grace
    }

    fn note_error(&self, context: &str, err: &Error) {
        if err.kind == ErrorKind::Temporary {
            self.metrics.db_errors.fetch_add(1, Ordering::Relaxed);
            self.pool.clear();
        }
        let text = format!("{context}: {}", err.message);
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(text.clone());
        }
        self.log(
            Level::Warn,
            "error",
            &[("during", &context), ("error", &err.message)],
        );
    }

    fn caller(&self, command: &'static str) -> Caller {
        Caller {
            actor: format!("supervisor:{}", self.cfg.supervisor_id),
            command,
        }
    }

    fn claim_params(&self, limit: i32) -> ClaimParams {
        ClaimParams {
            namespace: self.cfg.namespace.clone(),
            lease_owner: self.cfg.supervisor_id.clone(),
            lease_seconds: self.cfg.lease_seconds,
            limit,
            target_agent: None,
            default_max_concurrency: Some(self.cfg.default_concurrency),
            claim_unconfigured: self.cfg.default_wake.is_some(),
        }
    }
}

/// Validates a configuration before anything connects.
pub fn validate(cfg: &Config) -> Result<()> {
    crate::ledger::validate::check_required_text("--supervisor-id", &cfg.supervisor_id)?;
    crate::ledger::validate::check_required_text("--namespace", &cfg.namespace)?;
    let range = |flag: &str, v: i64, lo: i64, hi: i64| {
        if (lo..=hi).contains(&v) {
            Ok(())
        } else {
            Err(Error::usage(format!(
                "{flag}: {v} is out of range ({lo} to {hi})"
            )))
        }
    };
    range("--lease-seconds", cfg.lease_seconds.into(), 5, 86_400)?;
    range("--claim-batch", cfg.claim_batch.into(), 1, 1000)?;
    range(
        "--max-in-flight",
        i64::try_from(cfg.max_in_flight).unwrap_or(i64::MAX),
        1,
        10_000,
    )?;
    range(
        "--default-concurrency",
        cfg.default_concurrency.into(),
        1,
        10_000,
    )?;
    // A lease that can run out while the hook request is still waiting for an answer
    // would hand the job to another supervisor mid-wake-up.
    if f64::from(cfg.lease_seconds) <= cfg.hook_request_timeout.as_secs_f64() {
        return Err(Error::usage(format!(
            "--lease-seconds ({}) must be longer than --hook-request-timeout ({} s)",
            cfg.lease_seconds,
            cfg.hook_request_timeout.as_secs_f64()
        )));
    }
    if let Some(DefaultWake::Exec(argv)) = &cfg.default_wake {
        if argv.first().map_or(true, |p| p.is_empty()) {
            return Err(Error::usage("--exec: the command is empty"));
        }
    }
    if let Some(DefaultWake::Hook(url)) = &cfg.default_wake {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Error::usage(format!(
                "--hook-url: {url:?} is not an http:// or https:// URL"
            )));
        }
    }
    Ok(())
}

/// Runs the supervisor until `stop` is set (or, with `once`, until nothing is ready or
/// running). Returns what it did.
pub fn run(cfg: Config, stop: Arc<AtomicBool>) -> Result<RunSummary> {
    validate(&cfg)?;
    std::fs::create_dir_all(&cfg.work_dir).map_err(|e| {
        Error::config(format!(
            "--work-dir {}: cannot create it: {e}",
            cfg.work_dir.display()
        ))
    })?;
    let (hints_tx, hints_rx) = mpsc::channel();
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
    };
    let shared = Arc::new(Shared {
        pool: Pool::new(cfg.db.clone(), settings, cfg.max_in_flight.min(16) + 2),
        hook: HookClient::new(cfg.hook_request_timeout),
        metrics: Arc::new(Metrics::default()),
        stop,
        stop_seen: Mutex::new(None),
        in_flight: AtomicUsize::new(0),
        last_error: Mutex::new(None),
        hints: hints_tx,
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

    startup(&shared)?;
    let listener = spawn_listener(&shared);
    let beat = heartbeat::spawn(Arc::clone(&shared));
    let summary = main_loop(&shared, &hints_rx);
    let signalled = shared.stopping();
    // From here on every thread winds down (also after --once ran out of work).
    shared.stop.store(true, Ordering::SeqCst);
    shutdown(&shared, &hints_rx, signalled);
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

/// Connects (waiting for the database if it is not up yet), refuses a supervisor id that
/// another live process uses, and releases what a previous run under this id claimed
/// but never started.
fn startup(shared: &Arc<Shared>) -> Result<()> {
    let mut backoff = Backoff::new();
    loop {
        match shared.pool.get() {
            Ok(mut client) => {
                heartbeat::check_id_free(shared, &mut client)?;
                heartbeat::forget_dead_neighbours(shared, &mut client)?;
                release_leftovers(shared, &mut client)?;
                shared.log(
                    Level::Info,
                    "started",
                    &[
                        ("supervisor", &shared.cfg.supervisor_id),
                        ("namespace", &shared.cfg.namespace),
                        ("version", &env!("CARGO_PKG_VERSION")),
                        ("pid", &std::process::id()),
                    ],
                );
                return Ok(());
            }
            // A daemon waits for its database (it may start first at boot); a --once run
            // from cron or a script gives up after a minute with exit 75.
            Err(e)
                if e.kind == ErrorKind::Temporary
                    && !shared.stopping()
                    && !(shared.cfg.once && shared.started.elapsed() > ONCE_CONNECT_PATIENCE) =>
            {
                shared.note_error("connecting", &e);
                backoff.sleep(shared);
            }
            Err(e) => return Err(e),
        }
    }
}

fn release_leftovers(shared: &Shared, client: &mut postgres::Client) -> Result<()> {
    let rows = client.query(
        "select id, lease_token from jobs
         where namespace = $1 and lease_owner = $2 and status = 'leased'",
        &[&shared.cfg.namespace, &shared.cfg.supervisor_id],
    )?;
    for row in rows {
        let id: uuid::Uuid = row.try_get(0)?;
        let token: Option<uuid::Uuid> = row.try_get(1)?;
        let fence = Fence {
            lease_token: token,
            attempt: None,
        };
        match crate::db::transaction(client, |tx| {
            jobs::release_unwoken(
                tx,
                id,
                fence,
                &shared.caller("supervisor-restart"),
                AttemptStatus::Lost,
                "claimed by a previous run of this supervisor that ended before waking the agent",
            )
        }) {
            Ok(_) => shared.log(
                Level::Info,
                "released a job left by a previous run",
                &[("job", &id)],
            ),
            Err(e) if matches!(e.kind, ErrorKind::Conflict | ErrorKind::NotFound) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn main_loop(shared: &Arc<Shared>, hints: &Receiver<Hint>) -> RunSummary {
    let cfg = &shared.cfg;
    let mut summary = RunSummary::default();
    let mut last_reap: Option<Instant> = None;
    let mut last_claim: Option<Instant> = None;
    let mut last_fire: Option<Instant> = None;
    let mut last_audit: Option<Instant> = None;
    let mut hinted = true;
    let mut backoff = Backoff::new();
    // With --once, "nothing left" must be seen twice in a row with no hint in between.
    let mut idle_checks = 0;

    while !shared.stopping() {
        let mut db_ok = true;

        if last_reap.map_or(true, |t| t.elapsed() >= cfg.reap_interval) {
            last_reap = Some(Instant::now());
            match reap(shared) {
                Ok(n) => summary.reaped += n,
                Err(e) => {
                    shared.note_error("reaping expired leases", &e);
                    db_ok = false;
                }
            }
        }

        if db_ok && last_fire.map_or(true, |t| t.elapsed() >= FIRE_INTERVAL) {
            last_fire = Some(Instant::now());
            match fire_standing_orders(shared) {
                Ok(fired) => hinted |= fired > 0,
                Err(e) => {
                    shared.note_error("firing standing orders", &e);
                    db_ok = false;
                }
            }
        }

        if db_ok && last_audit.map_or(true, |t| t.elapsed() >= AUDIT_INTERVAL) {
            last_audit = Some(Instant::now());
            if let Err(e) = audit_standing_orders(shared) {
                shared.note_error("auditing standing orders", &e);
                db_ok = false;
            }
        }

        let due = hinted || last_claim.map_or(true, |t| t.elapsed() >= cfg.poll_interval);
        let mut claimed_full = false;
        let mut claimed_any = false;
        if db_ok && due {
            hinted = false;
            let free = cfg
                .max_in_flight
                .saturating_sub(shared.in_flight.load(Ordering::SeqCst));
            if free > 0 {
                last_claim = Some(Instant::now());
                let limit = i32::try_from(free).unwrap_or(i32::MAX).min(cfg.claim_batch);
                match claim(shared, limit) {
                    Ok(n) => {
                        summary.claimed += n as u64;
                        claimed_any = n > 0;
                        claimed_full = n as i32 == limit;
                        backoff.reset();
                    }
                    Err(e) => {
                        shared.note_error("claiming", &e);
                        db_ok = false;
                    }
                }
            }
        }

        if !db_ok {
            backoff.sleep(shared);
            hinted = true;
            continue;
        }
        if claimed_full {
            continue;
        }

        if cfg.once && !claimed_any && shared.in_flight.load(Ordering::SeqCst) == 0 {
            match work_remains(shared) {
                Ok(true) => idle_checks = 0,
                Ok(false) => {
                    idle_checks += 1;
                    if idle_checks >= 2 {
                        break;
                    }
                    hinted = true;
                    continue;
                }
                Err(e) => shared.note_error("checking for remaining work", &e),
            }
        }

        // Wait for a hint, the poll interval, or the next reap; wake at least every
        // 200 ms to notice a stop request.
        let wait = Duration::from_millis(200);
        match hints.recv_timeout(wait) {
            Ok(_) => {
                hinted = true;
                while hints.try_recv().is_ok() {}
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    summary.woken = shared.metrics.total(Outcome::Woken);
    summary.released = shared.metrics.total(Outcome::Released);
    summary
}

/// How often due standing orders are looked for (cron expressions may have seconds).
const FIRE_INTERVAL: Duration = Duration::from_secs(1);

/// Fires due `supervisor` standing orders; returns how many jobs it created.
fn fire_standing_orders(shared: &Shared) -> Result<usize> {
    let mut client = shared.pool.get()?;
    let report = crate::db::transaction(&mut client, |tx| {
        crate::ledger::standing_orders::fire_due(
            tx,
            &shared.cfg.namespace,
            chrono::Utc::now(),
            &format!("supervisor:{}", shared.cfg.supervisor_id),
        )
    })?;
    for f in &report.fired {
        shared.log(Level::Info, "standing order fired", &[("occurrence", f)]);
    }
    for m in &report.missed {
        shared.log(Level::Warn, "standing order missed", &[("occurrence", m)]);
    }
    for b in &report.broken {
        shared.log(
            Level::Error,
            "standing order cannot be scheduled",
            &[("order", b)],
        );
    }
    Ok(report.fired.len())
}

/// How often the missed-run audit runs (over the last day).
const AUDIT_INTERVAL: Duration = Duration::from_secs(60);

/// Records missed occurrences (supervisor- and OpenClaw-fired) and alert events.
fn audit_standing_orders(shared: &Shared) -> Result<()> {
    let mut client = shared.pool.get()?;
    let now = chrono::Utc::now();
    let audit = crate::db::transaction(&mut client, |tx| {
        crate::fleet::audit::audit(
            tx,
            &shared.cfg.namespace,
            now - chrono::Duration::hours(24),
            now,
            None,
            true,
            &format!("supervisor:{}", shared.cfg.supervisor_id),
        )
    })?;
    if audit.recorded_missed > 0 || audit.alerts > 0 {
        shared.log(
            Level::Warn,
            "standing-order audit",
            &[
                ("missed_recorded", &audit.recorded_missed),
                ("alerts", &audit.alerts),
            ],
        );
    }
    Ok(())
}

fn claim(shared: &Arc<Shared>, limit: i32) -> Result<usize> {
    let jobs = {
        let mut client = shared.pool.get()?;
        jobs::claim(&mut *client, &shared.claim_params(limit))?
    };
    let n = jobs.len();
    for job in jobs {
        shared.metrics.count(Outcome::Claimed, &job.target_agent);
        shared.log(
            Level::Debug,
            "claimed",
            &[
                ("job", &job.id),
                ("agent", &job.target_agent),
                ("attempt", &job.attempt_count),
            ],
        );
        start_job(shared, job);
    }
    Ok(n)
}

/// Starts the thread that wakes the agent for one claimed job.
fn start_job(shared: &Arc<Shared>, job: Job) {
    shared.in_flight.fetch_add(1, Ordering::SeqCst);
    shared.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
    let worker = Arc::clone(shared);
    let job_id = job.id;
    let spawned = std::thread::Builder::new()
        .name(format!("job-{job_id}"))
        .spawn(move || {
            let _slot = SlotGuard(Arc::clone(&worker));
            wake::run_job(&worker, job);
        });
    if let Err(e) = spawned {
        // The closure (and its guard) never ran: give the slot back; the lease recovers
        // the job.
        shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        shared.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
        shared.log(
            Level::Error,
            "cannot start a thread for a job; its lease will recover it",
            &[("job", &job_id), ("error", &e)],
        );
    }
}

/// Frees the process slot of a job thread however it ends.
struct SlotGuard(Arc<Shared>);

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
        let _ = self.0.hints.send(Hint::SlotFreed);
    }
}

fn reap(shared: &Shared) -> Result<u64> {
    let mut client = shared.pool.get()?;
    let reaped = jobs::requeue_expired(&mut *client, &shared.cfg.namespace, 1000)?;
    for job in &reaped {
        shared.metrics.count(Outcome::TimedOut, &job.target_agent);
        shared.log(
            Level::Info,
            "lease expired",
            &[
                ("job", &job.id),
                ("agent", &job.target_agent),
                ("attempt", &job.attempt_count),
                ("now", &job.status),
            ],
        );
    }
    Ok(reaped.len() as u64)
}

/// Whether anything is still ready for this supervisor, or leased or running anywhere in
/// the namespace (`--once` waits for hook runs to be closed by their agents).
fn work_remains(shared: &Shared) -> Result<bool> {
    let mut client = shared.pool.get()?;
    let row = client.query_one(
        "select exists (
           select 1 from jobs j
           left join agents a on a.namespace = j.namespace and a.agent_id = j.target_agent
           where j.namespace = $1
             and (j.status in ('leased', 'running')
                  or (j.status = 'queued' and j.run_after <= now()
                      and not coalesce(a.paused, false)
                      and (a.wake_backoff_until is null or a.wake_backoff_until <= now())
                      and (a.wake_mode is not null or $2))))",
        &[&shared.cfg.namespace, &shared.cfg.default_wake.is_some()],
    )?;
    Ok(row.try_get(0)?)
}

fn spawn_listener(shared: &Arc<Shared>) -> std::thread::JoinHandle<()> {
    let shared = Arc::clone(shared);
    std::thread::Builder::new()
        .name("listen".into())
        .spawn(move || listen(&shared))
        .unwrap_or_else(|_| std::thread::spawn(|| {}))
}

/// Holds `LISTEN jobs_ready` and turns notifications for our namespace into hints;
/// reconnects with back-off when the connection drops. Notifications are hints only: the
/// main loop also polls, so a notification lost while reconnecting delays, never loses.
fn listen(shared: &Arc<Shared>) {
    let mut backoff = Backoff::new();
    while !shared.stopping() {
        let mut client = match shared.pool.connect_dedicated().and_then(|mut c| {
            c.batch_execute("LISTEN jobs_ready")?;
            Ok(c)
        }) {
            Ok(c) => c,
            Err(e) => {
                shared.note_error("listening for jobs_ready", &e);
                backoff.sleep(shared);
                continue;
            }
        };
        backoff.reset();
        // Anything that became ready while we were not listening.
        let _ = shared.hints.send(Hint::Notified);
        while !shared.stopping() {
            let mut notes = client.notifications();
            let mut iter = notes.timeout_iter(Duration::from_millis(250));
            let mut broken = false;
            loop {
                match iter.next() {
                    Ok(Some(n)) => {
                        shared.metrics.notifications.fetch_add(1, Ordering::Relaxed);
                        let ours = serde_json::from_str::<serde_json::Value>(n.payload())
                            .ok()
                            .and_then(|v| {
                                v.get("namespace")
                                    .and_then(|s| s.as_str().map(String::from))
                            })
                            .map_or(true, |ns| ns == shared.cfg.namespace);
                        if ours {
                            let _ = shared.hints.send(Hint::Notified);
                        }
                    }
                    Err(e) => {
                        shared.note_error("listening for jobs_ready", &Error::from(e));
                        broken = true;
                        break;
                    }
                    Ok(None) => break,
                }
            }
            drop(iter);
            drop(notes);
            if broken || client.is_closed() {
                break;
            }
            // timeout_iter does not notice a dead server by itself: ask it.
            if client.is_valid(Duration::from_secs(5)).is_err() {
                shared.note_error(
                    "listening for jobs_ready",
                    &Error::temporary("the LISTEN connection stopped answering"),
                );
                break;
            }
        }
    }
}

/// Stops claiming, lets running children finish within the grace period, and waits for
/// every job thread (each releases or closes its own job).
fn shutdown(shared: &Arc<Shared>, hints: &Receiver<Hint>, signalled: bool) {
    if signalled {
        let _ = shared.grace_over(); // starts the grace clock
        shared.log(
            Level::Info,
            "stopping: no new claims; waiting for running jobs",
            &[
                ("in_flight", &shared.in_flight.load(Ordering::SeqCst)),
                ("grace_seconds", &shared.cfg.shutdown_grace.as_secs()),
            ],
        );
    }
    while shared.in_flight.load(Ordering::SeqCst) > 0 {
        let _ = hints.recv_timeout(Duration::from_millis(100));
    }
}

/// Exponential back-off with jitter for reconnects: 0.5 s doubling to 30 s.
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            next: Duration::from_millis(500),
        }
    }

    fn reset(&mut self) {
        self.next = Duration::from_millis(500);
    }

    /// Sleeps (in short slices, so a stop request is noticed) and doubles.
    fn sleep(&mut self, shared: &Shared) {
        let jitter = 0.8 + 0.4 * f64::from(uuid::Uuid::new_v4().as_bytes()[0]) / 255.0;
        let total = self.next.mul_f64(jitter);
        let until = Instant::now() + total;
        while Instant::now() < until && !shared.stopping() {
            std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
        }
        self.next = (self.next * 2).min(Duration::from_secs(30));
    }
}
