//! What the supervisor's threads share: the configuration, the connection pool, the hook
//! client, metrics, the stop request and the count of jobs in flight.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, Instant};

use super::event::Event;
use super::hook::HookClient;
use super::log::Level;
use super::metrics::Metrics;
use super::pool::Pool;
use super::Config;
use crate::error::{Error, ErrorKind};
use crate::ledger::jobs::{Caller, ClaimParams};

/// Asks a running supervisor to stop: the binary calls [`Stop::request`] on SIGTERM or
/// SIGINT, a test may call it by hand. The main loop receives it as an event; threads that
/// run jobs read [`Stop::requested`].
#[derive(Clone, Default)]
pub struct Stop {
    inner: Arc<StopInner>,
}

#[derive(Default)]
struct StopInner {
    requested: AtomicBool,
    signal: AtomicI32,
    events: Mutex<Option<Sender<Event>>>,
}

impl std::fmt::Debug for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Stop(requested: {})", self.requested())
    }
}

impl Stop {
    /// A stop nobody has asked for yet.
    pub fn new() -> Self {
        Stop::default()
    }

    /// Asks the supervisor to stop; `signal` is the signal number that asked (0: none).
    pub fn request(&self, signal: i32) {
        self.inner.signal.store(signal, Ordering::SeqCst);
        self.inner.requested.store(true, Ordering::SeqCst);
        if let Ok(events) = self.inner.events.lock() {
            if let Some(tx) = events.as_ref() {
                let _ = tx.send(Event::Signal(signal));
            }
        }
    }

    /// Whether a stop was asked for.
    pub fn requested(&self) -> bool {
        self.inner.requested.load(Ordering::SeqCst)
    }

    /// Delivers later requests to the main loop too (and one now, if one came early).
    pub(super) fn attach(&self, tx: Sender<Event>) {
        if let Ok(mut events) = self.inner.events.lock() {
            if self.requested() {
                let _ = tx.send(Event::Signal(self.inner.signal.load(Ordering::SeqCst)));
            }
            *events = Some(tx);
        }
    }

    /// Stops without a signal (the end of a `--once` run).
    pub(super) fn set(&self) {
        self.inner.requested.store(true, Ordering::SeqCst);
    }
}

/// State shared by the supervisor's threads.
pub(super) struct Shared {
    pub cfg: Config,
    pub pool: Pool,
    pub hook: HookClient,
    /// Removes the secrets this process knows from text that came from outside.
    pub redactor: crate::redact::Redactor,
    pub metrics: Arc<Metrics>,
    pub stop: Stop,
    /// When the stop was first seen (start of the shutdown grace).
    pub stop_seen: Mutex<Option<Instant>>,
    pub in_flight: AtomicUsize,
    /// Held by whoever claims (the main loop or the listener), one claim at a time: the
    /// free slots a claim asks for are counted and taken under it.
    pub claim_gate: Mutex<()>,
    /// Set while the main loop backs off after a database error: the listener then
    /// leaves claiming to the loop's retry.
    pub backing_off: AtomicBool,
    pub last_error: Mutex<Option<String>>,
    /// The main loop's event channel (job threads say when their slot frees).
    pub events: Sender<Event>,
    pub started: Instant,
}

/// One job's share of `--max-in-flight`, held from its claim until its wake-up is over
/// (recorded, failed, or its command ended); dropping it frees the slot and asks the main
/// loop to claim again.
pub(super) struct Slot(Arc<Shared>);

impl Slot {
    pub fn take(shared: &Arc<Shared>) -> Slot {
        shared.in_flight.fetch_add(1, Ordering::SeqCst);
        shared.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
        Slot(Arc::clone(shared))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
        let _ = self.0.events.send(Event::SlotFreed);
    }
}

/// The turn to claim (see [`Shared::claim_gate`]).
pub(super) struct ClaimTurn<'a> {
    _gate: MutexGuard<'a, ()>,
}

impl Shared {
    /// Waits for the turn to claim.
    pub fn claim_turn(&self) -> ClaimTurn<'_> {
        ClaimTurn {
            _gate: self
                .claim_gate
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        }
    }

    /// The turn to claim, unless another claimer holds it now.
    pub fn try_claim_turn(&self) -> Option<ClaimTurn<'_>> {
        match self.claim_gate.try_lock() {
            Ok(gate) => Some(ClaimTurn { _gate: gate }),
            Err(TryLockError::Poisoned(p)) => Some(ClaimTurn {
                _gate: p.into_inner(),
            }),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    pub fn log(&self, level: Level, message: &str, fields: &[(&str, &dyn std::fmt::Display)]) {
        self.cfg.log.log(level, message, fields);
    }

    pub fn stopping(&self) -> bool {
        self.stop.requested()
    }

    /// Whether running children must now be stopped (shutdown grace over).
    pub fn grace_over(&self) -> bool {
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

    pub fn note_error(&self, context: &str, err: &Error) {
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

    pub fn caller(&self, command: &'static str) -> Caller {
        Caller {
            actor: format!("supervisor:{}", self.cfg.supervisor_id),
            command: command.to_string(),
        }
    }

    pub fn claim_params(&self, limit: i32) -> ClaimParams {
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

/// Exponential back-off with jitter for reconnects: 0.5 s doubling to 30 s.
pub(super) struct Backoff {
    next: Duration,
}

impl Backoff {
    pub fn new() -> Backoff {
        Backoff {
            next: Duration::from_millis(500),
        }
    }

    pub fn reset(&mut self) {
        self.next = Duration::from_millis(500);
    }

    /// The next delay (with jitter); doubles the one after it.
    pub fn next_delay(&mut self) -> Duration {
        let jitter = 0.8 + 0.4 * f64::from(uuid::Uuid::new_v4().as_bytes()[0]) / 255.0;
        let delay = self.next.mul_f64(jitter);
        self.next = (self.next * 2).min(Duration::from_secs(30));
        delay
    }

    /// Sleeps for the next delay in short slices, so a stop request is noticed (the
    /// start-up and listener threads, which have no event channel of their own).
    pub fn sleep(&mut self, shared: &Shared) {
        let until = Instant::now() + self.next_delay();
        while Instant::now() < until && !shared.stopping() {
            std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
        }
    }
}
