//! The main loop: one thread, one channel, one `handle(event)`.
//!
//! Everything that can make the supervisor act arrives as an [`Event`]: a `jobs_ready`
//! notification for our namespace that the listener thread left to the loop (it claims
//! most of them itself, in the same claim turn), a freed slot (from a job
//! thread that ended), a signal, or a timer that came due ([`Task`]). After each event the
//! loop takes whatever else is already waiting, so a burst of notifications is one claim,
//! then claims while it has free slots and is asked to.
//!
//! A database error in any task starts a back-off: no task runs and nothing is claimed
//! until it passes (events still arrive, and a signal still stops the loop at once).

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::event::{Event, Task};
use super::hook_workers::HookWorkers;
use super::log::Level;
use super::metrics::Outcome;
use super::shared::{Backoff, Shared};
use super::wake::{self, Claim};
use super::{tasks, RunSummary};
use crate::error::Error;

/// How often due standing orders are looked for.
const FIRE_INTERVAL: Duration = Duration::from_secs(1);
/// How often the missed-run audit runs (over the last day).
const AUDIT_INTERVAL: Duration = Duration::from_secs(60);

/// When each task is next due.
struct Timers {
    reap: Instant,
    fire: Instant,
    audit: Instant,
    poll: Instant,
    /// The end of a database back-off, while one runs.
    retry: Option<Instant>,
}

impl Timers {
    fn new(now: Instant) -> Self {
        Timers {
            reap: now,
            fire: now,
            audit: now,
            poll: now,
            retry: None,
        }
    }

    /// The task due first and when.
    fn next(&self) -> (Task, Instant) {
        if let Some(at) = self.retry {
            return (Task::Retry, at);
        }
        [
            (Task::Reap, self.reap),
            (Task::FireOrders, self.fire),
            (Task::AuditOrders, self.audit),
            (Task::Poll, self.poll),
        ]
        .into_iter()
        .min_by_key(|(_, at)| *at)
        .unwrap_or((Task::Poll, self.poll))
    }
}

/// The main loop's state.
pub(super) struct Loop<'a> {
    shared: &'a Arc<Shared>,
    workers: &'a HookWorkers,
    events: &'a Receiver<Event>,
    timers: Timers,
    backoff: Backoff,
    /// Something asked for a claim that has not run yet.
    claim_wanted: bool,
    /// With `--once`: how many checks in a row found nothing left to do.
    idle_checks: u32,
    summary: RunSummary,
}

impl<'a> Loop<'a> {
    pub fn new(
        shared: &'a Arc<Shared>,
        workers: &'a HookWorkers,
        events: &'a Receiver<Event>,
    ) -> Self {
        Loop {
            shared,
            workers,
            events,
            timers: Timers::new(Instant::now()),
            backoff: Backoff::new(),
            claim_wanted: true,
            idle_checks: 0,
            summary: RunSummary::default(),
        }
    }

    /// Runs until a signal (or, with `--once`, until nothing is ready or running).
    pub fn run(mut self) -> RunSummary {
        while let Some(event) = self.next_event() {
            self.handle(event);
            while let Ok(event) = self.events.try_recv() {
                self.handle(event);
            }
            if self.shared.stopping() {
                break;
            }
            let claimed = self.claim_while_wanted();
            if self.shared.cfg.once && !claimed && self.once_done() {
                break;
            }
        }
        // The listener claims too: the count is the metrics'.
        self.summary.claimed = self.shared.metrics.total(Outcome::Claimed);
        self.summary.woken = self.shared.metrics.total(Outcome::Woken);
        self.summary.released = self.shared.metrics.total(Outcome::Released);
        self.summary
    }

    /// The next event: one already sent, or the next timer when it comes due. `None`
    /// when every sender is gone (cannot happen while `Shared` lives).
    fn next_event(&mut self) -> Option<Event> {
        let (task, at) = self.timers.next();
        let now = Instant::now();
        if at <= now {
            return Some(Event::Tick(task));
        }
        if self.claim_wanted && self.timers.retry.is_none() {
            // A claim is pending: do not wait, only take what is already there.
            return Some(self.events.try_recv().unwrap_or(Event::Tick(Task::Poll)));
        }
        let wait = at - now;
        match self.events.recv_timeout(wait) {
            Ok(event) => Some(event),
            Err(RecvTimeoutError::Timeout) => Some(Event::Tick(task)),
            Err(RecvTimeoutError::Disconnected) => None,
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Notified | Event::SlotFreed => self.claim_wanted = true,
            Event::Signal(signal) => {
                self.shared
                    .log(Level::Info, "stop requested", &[("signal", &signal)])
            }
            Event::Tick(task) => self.run_task(task),
        }
    }

    fn run_task(&mut self, task: Task) {
        let now = Instant::now();
        let cfg = &self.shared.cfg;
        match task {
            Task::Retry => {
                self.set_retry(None);
                self.claim_wanted = true;
            }
            // During a back-off only the retry timer runs.
            _ if self.timers.retry.is_some() => {}
            Task::Reap => {
                self.timers.reap = now + cfg.reap_interval;
                match tasks::reap(self.shared) {
                    Ok(n) => self.summary.reaped += n,
                    Err(e) => self.db_failed("reaping expired leases", &e),
                }
            }
            Task::FireOrders => {
                self.timers.fire = now + FIRE_INTERVAL;
                match tasks::fire_standing_orders(self.shared) {
                    Ok(fired) => self.claim_wanted |= fired > 0,
                    Err(e) => self.db_failed("firing standing orders", &e),
                }
            }
            Task::AuditOrders => {
                self.timers.audit = now + AUDIT_INTERVAL;
                if let Err(e) = tasks::audit_standing_orders(self.shared) {
                    self.db_failed("auditing standing orders", &e);
                }
                match tasks::route_blocked(self.shared) {
                    Ok(made) => self.claim_wanted |= made > 0,
                    Err(e) => self.db_failed("routing blocked work", &e),
                }
                match tasks::think(self.shared) {
                    Ok(opened) => self.claim_wanted |= opened > 0,
                    Err(e) => self.db_failed("opening thinking windows", &e),
                }
            }
            Task::Poll => self.claim_wanted = true,
        }
    }

    /// Claims while a claim is wanted and slots are free; a full batch asks for another.
    /// Returns whether anything was claimed.
    fn claim_while_wanted(&mut self) -> bool {
        let mut claimed_any = false;
        while self.claim_wanted && self.timers.retry.is_none() && !self.shared.stopping() {
            self.claim_wanted = false;
            self.timers.poll = Instant::now() + self.shared.cfg.poll_interval;
            let turn = self.shared.claim_turn();
            match wake::claim_free(self.shared, self.workers, &turn, None) {
                // A job thread's SlotFreed asks again.
                Ok(Claim::NoFreeSlot) => break,
                Ok(Claim::Claimed { n, full }) => {
                    claimed_any |= n > 0;
                    self.claim_wanted = full;
                    self.backoff.reset();
                }
                Err(e) => {
                    drop(turn);
                    self.db_failed("claiming", &e);
                }
            }
        }
        claimed_any
    }

    /// With `--once`: whether nothing is left (seen twice in a row, with a claim in
    /// between, so a job enqueued at that moment is not missed).
    fn once_done(&mut self) -> bool {
        if self.shared.in_flight.load(Ordering::SeqCst) > 0 || self.timers.retry.is_some() {
            return false;
        }
        match tasks::work_remains(self.shared) {
            Ok(true) => {
                self.idle_checks = 0;
                false
            }
            Ok(false) => {
                self.idle_checks += 1;
                self.claim_wanted = true;
                self.idle_checks >= 2
            }
            Err(e) => {
                self.shared.note_error("checking for remaining work", &e);
                false
            }
        }
    }

    /// Notes a database error and starts (or lengthens) the back-off.
    fn db_failed(&mut self, during: &str, e: &Error) {
        self.shared.note_error(during, e);
        let at = Instant::now() + self.backoff.next_delay();
        self.set_retry(Some(at));
        self.claim_wanted = false;
    }

    /// Starts or ends a back-off; the listener reads whether one runs (it does not claim
    /// then).
    fn set_retry(&mut self, at: Option<Instant>) {
        self.timers.retry = at;
        self.shared
            .backing_off
            .store(at.is_some(), Ordering::SeqCst);
    }
}

/// After the loop: waits for every job thread of this process to end (each releases or
/// closes its own job); their `SlotFreed` events wake this wait.
pub(super) fn wait_for_job_threads(shared: &Shared, events: &Receiver<Event>) {
    while shared.in_flight.load(Ordering::SeqCst) > 0 {
        let _ = events.recv_timeout(Duration::from_millis(100));
    }
}
