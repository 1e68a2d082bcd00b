//! The listener thread: holds `LISTEN jobs_ready` on a connection of its own and turns
//! notifications for our namespace into [`Event::Notified`].

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;

use super::event::Event;
use super::shared::{Backoff, Shared};
use crate::error::{Error, Result};

/// Starts the listener thread; failing to start it is fatal (without it the supervisor
/// would only poll).
pub(super) fn spawn(shared: &Arc<Shared>) -> Result<std::thread::JoinHandle<()>> {
    let shared = Arc::clone(shared);
    std::thread::Builder::new()
        .name("listen".into())
        .spawn(move || listen(&shared))
        .map_err(|e| Error::failure(format!("cannot start the listener thread: {e}")))
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
        let _ = shared.events.send(Event::Notified);
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
                            .is_none_or(|ns| ns == shared.cfg.namespace);
                        if ours {
                            let _ = shared.events.send(Event::Notified);
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
