//! The listener thread: holds `LISTEN jobs_ready` on a connection of its own and, when a
//! notification for our namespace arrives, claims at once on that same connection.
//!
//! The claim runs on the listening connection because its server process has just
//! delivered the notification and is still warm: 0.15-0.2 ms sooner from the enqueue's
//! commit to the hook request than a claim on a pool connection whose process had slept
//! since the last job (scripts/bench-ab.sh and a build timing every hop; README, "The
//! claim on the listening connection"). It is the same claim as the
//! main loop's (`wake::claim_free`), in the same turn (one claimer at a time, so a free
//! slot is counted once). The listener leaves the claim to the main loop, with
//! [`Event::Notified`], when the loop holds the turn, is backing off after a database
//! error, runs `--once`, or when a claim filled its batch or failed.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::Notification;

use super::event::Event;
use super::hook_workers::HookWorkers;
use super::shared::{Backoff, Shared};
use super::wake::{self, Claim};
use crate::db::Session;
use crate::error::{Error, Result};

/// How long the listener waits for a notification before asking the server whether the
/// connection still answers.
const QUIET_CHECK: Duration = Duration::from_millis(250);

/// Starts the listener thread; failing to start it is fatal (without it the supervisor
/// would only poll).
pub(super) fn spawn(
    shared: &Arc<Shared>,
    workers: &HookWorkers,
) -> Result<std::thread::JoinHandle<()>> {
    let shared = Arc::clone(shared);
    let workers = workers.clone();
    std::thread::Builder::new()
        .name("listen".into())
        .spawn(move || listen(&shared, &workers))
        .map_err(|e| Error::failure(format!("cannot start the listener thread: {e}")))
}

/// Holds `LISTEN jobs_ready` and claims for our namespace's notifications; reconnects with
/// back-off when the connection drops. Notifications are hints only: the main loop also
/// polls, so a notification lost while reconnecting delays, never loses.
fn listen(shared: &Arc<Shared>, workers: &HookWorkers) {
    let mut backoff = Backoff::new();
    while !shared.stopping() {
        let mut session = match shared.pool.connect_session().and_then(|mut s| {
            s.batch_execute("LISTEN jobs_ready")?;
            Ok(s)
        }) {
            Ok(s) => s,
            Err(e) => {
                shared.note_error("listening for jobs_ready", &e);
                backoff.sleep(shared);
                continue;
            }
        };
        backoff.reset();
        // Anything that became ready while we were not listening.
        let _ = shared.events.send(Event::Notified);
        while !shared.stopping() {
            let next = session.notifications().timeout_iter(QUIET_CHECK).next();
            match next {
                Ok(Some(first)) => {
                    // A burst is one claim: take every notification already here.
                    // (An error here shows at the next wait.)
                    let mut ours = is_ours(shared, &first);
                    {
                        let mut pending = session.notifications();
                        let mut rest = pending.iter();
                        while let Ok(Some(n)) = rest.next() {
                            ours |= is_ours(shared, &n);
                        }
                    }
                    if ours {
                        claim_here(shared, workers, &mut session);
                    }
                }
                Ok(None) => {
                    // timeout_iter does not notice a dead server by itself: ask it.
                    if session.is_valid(Duration::from_secs(5)).is_err() {
                        shared.note_error(
                            "listening for jobs_ready",
                            &Error::temporary("the LISTEN connection stopped answering"),
                        );
                        break;
                    }
                }
                Err(e) => {
                    shared.note_error("listening for jobs_ready", &Error::from(e));
                    break;
                }
            }
            if session.is_closed() {
                break;
            }
        }
    }
}

/// Counts a notification; whether it is for our namespace (one without a namespace is).
fn is_ours(shared: &Shared, n: &Notification) -> bool {
    shared.metrics.notifications.fetch_add(1, Ordering::Relaxed);
    match serde_json::from_str::<serde_json::Value>(n.payload()) {
        Ok(v) => v
            .get("namespace")
            .and_then(serde_json::Value::as_str)
            .is_none_or(|ns| ns == shared.cfg.namespace),
        Err(_) => true,
    }
}

/// Claims on the listening connection, or asks the main loop to.
fn claim_here(shared: &Arc<Shared>, workers: &HookWorkers, session: &mut Session) {
    let ask_the_loop = || {
        let _ = shared.events.send(Event::Notified);
    };
    if shared.cfg.once || shared.stopping() || shared.backing_off.load(Ordering::SeqCst) {
        return ask_the_loop();
    }
    // The loop is claiming: it claims again after this notification.
    let Some(turn) = shared.try_claim_turn() else {
        return ask_the_loop();
    };
    match wake::claim_free(shared, workers, &turn, Some(session)) {
        Ok(Claim::NoFreeSlot) | Ok(Claim::Claimed { full: false, .. }) => {}
        // More may be ready than one batch took.
        Ok(Claim::Claimed { full: true, .. }) => ask_the_loop(),
        Err(e) => {
            // The loop's claim retries, or starts its back-off.
            shared.note_error("claiming on the listening connection", &e);
            ask_the_loop();
        }
    }
}
