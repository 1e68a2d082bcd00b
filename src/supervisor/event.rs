//! What the supervisor's main loop reacts to. A leaf module: the threads that send events
//! (listener, job threads, the signal handler) and the loop that handles them all name
//! these types without naming each other.

/// Something the main loop reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A job became ready in our namespace (a `jobs_ready` notification).
    Notified,
    /// A job thread of this process ended: a slot is free.
    SlotFreed,
    /// A timer came due.
    Tick(Task),
    /// SIGTERM or SIGINT (the number; 0 when stopped by hand): stop claiming.
    Signal(i32),
}

/// The periodic duties of the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Recover expired leases (every `--reap-interval`).
    Reap,
    /// Fire due standing orders (every second: cron expressions may have seconds).
    FireOrders,
    /// Record missed standing-order occurrences and alerts (every minute).
    AuditOrders,
    /// Claim even without a notification (every `--poll-interval`: the backstop).
    Poll,
    /// A database back-off ended: try everything again.
    Retry,
}
