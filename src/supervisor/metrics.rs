//! Prometheus text metrics of one supervisor, and the tiny HTTP server that serves them.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::log::{Level, Logger};
use crate::console::prometheus::{Exposition, Kind};
use crate::error::{Error, Result};

/// Upper bounds (seconds) of the dispatch latency histogram.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
];

/// Per-agent outcome counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Leased by this supervisor.
    Claimed,
    /// Agent woken (hook admitted, or command started).
    Woken,
    /// Exec child closed the job as succeeded.
    Succeeded,
    /// Exec child blocked the job.
    Blocked,
    /// Wake-up or run failed (including "exited without closing the loop").
    Failed,
    /// Killed at its deadline, or the lease expired (reaped by this supervisor).
    TimedOut,
    /// Released unstarted at shutdown.
    Released,
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Outcome::Claimed => "agentbus_jobs_claimed_total",
            Outcome::Woken => "agentbus_jobs_woken_total",
            Outcome::Succeeded => "agentbus_jobs_succeeded_total",
            Outcome::Blocked => "agentbus_jobs_blocked_total",
            Outcome::Failed => "agentbus_jobs_failed_total",
            Outcome::TimedOut => "agentbus_jobs_timed_out_total",
            Outcome::Released => "agentbus_jobs_released_total",
        }
    }
}

/// Counters and the latency histogram, shared by every thread.
#[derive(Debug, Default)]
pub struct Metrics {
    by_agent: Mutex<BTreeMap<(Outcome, String), u64>>,
    latency: Mutex<Histogram>,
    /// Lease renewals that succeeded.
    pub lease_renewals: AtomicU64,
    /// Lease renewals refused or failed.
    pub lease_renewal_failures: AtomicU64,
    /// Database errors seen (each reconnect starts with one).
    pub db_errors: AtomicU64,
    /// Notifications received on `jobs_ready`.
    pub notifications: AtomicU64,
    /// Jobs this supervisor woken and still running in this process (threads).
    pub in_flight: AtomicU64,
}

#[derive(Debug, Default)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Metrics {
    /// Counts one outcome for an agent.
    pub fn count(&self, outcome: Outcome, agent: &str) {
        self.add(outcome, agent, 1);
    }

    /// Counts `n` outcomes for an agent.
    pub fn add(&self, outcome: Outcome, agent: &str, n: u64) {
        if let Ok(mut map) = self.by_agent.lock() {
            *map.entry((outcome, agent.to_string())).or_insert(0) += n;
        }
    }

    /// Observes one dispatch latency (ready → wake request sent).
    pub fn observe_dispatch(&self, seconds: f64) {
        if let Ok(mut h) = self.latency.lock() {
            for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
                if seconds <= *le {
                    h.buckets[i] += 1;
                }
            }
            h.count += 1;
            h.sum += seconds.max(0.0);
        }
    }

    /// A total over agents, for the heartbeat.
    pub fn total(&self, outcome: Outcome) -> u64 {
        self.by_agent.lock().map_or(0, |m| {
            m.iter()
                .filter(|((o, _), _)| *o == outcome)
                .map(|(_, n)| n)
                .sum()
        })
    }

    /// The Prometheus text exposition.
    pub fn render(&self, supervisor_id: &str) -> String {
        let sup = ("supervisor", supervisor_id);
        let mut out = Exposition::new();
        if let Ok(map) = self.by_agent.lock() {
            let mut last: Option<Outcome> = None;
            for ((outcome, agent), n) in map.iter() {
                if last != Some(*outcome) {
                    out.family(outcome.name(), Kind::Counter, None);
                    last = Some(*outcome);
                }
                out.sample(outcome.name(), &[sup, ("agent", agent)], n);
            }
        }
        for (name, kind, v) in [
            (
                "agentbus_lease_renewals_total",
                Kind::Counter,
                &self.lease_renewals,
            ),
            (
                "agentbus_lease_renewal_failures_total",
                Kind::Counter,
                &self.lease_renewal_failures,
            ),
            ("agentbus_db_errors_total", Kind::Counter, &self.db_errors),
            (
                "agentbus_notifications_total",
                Kind::Counter,
                &self.notifications,
            ),
            ("agentbus_in_flight", Kind::Gauge, &self.in_flight),
        ] {
            out.family(name, kind, None);
            out.sample(name, &[sup], v.load(Ordering::Relaxed));
        }
        if let Ok(h) = self.latency.lock() {
            let name = "agentbus_dispatch_latency_seconds";
            let bucket = format!("{name}_bucket");
            out.family(name, Kind::Histogram, None);
            for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
                out.sample(&bucket, &[sup, ("le", &le.to_string())], h.buckets[i]);
            }
            out.sample(&bucket, &[sup, ("le", "+Inf")], h.count);
            out.sample(&format!("{name}_sum"), &[sup], h.sum);
            out.sample(&format!("{name}_count"), &[sup], h.count);
        }
        out.finish()
    }
}

/// Serves `GET /metrics` on `addr` from a background thread. Binding fails with a
/// configuration error (exit 78) when the address is taken.
pub fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    supervisor_id: String,
    log: Logger,
) -> Result<SocketAddr> {
    let listener = TcpListener::bind(addr)
        .map_err(|e| Error::config(format!("`metrics_addr` {addr}: cannot listen: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::config(format!("`metrics_addr` {addr}: {e}")))?;
    if !bound.ip().is_loopback() {
        log.log(
            Level::Warn,
            "metrics are served on a non-loopback address; anyone who can reach it can read agent ids",
            &[("addr", &bound)],
        );
    }
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = answer(stream, &metrics, &supervisor_id);
            }
        })
        .map_err(|e| Error::failure(format!("cannot start the metrics thread: {e}")))?;
    Ok(bound)
}

fn answer(stream: TcpStream, metrics: &Metrics, supervisor_id: &str) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Drain the headers.
    let mut header = String::new();
    while reader.read_line(&mut header)? > 2 {
        header.clear();
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("");
    let (status, body) = if path == "/metrics" || path == "/" {
        ("200 OK", metrics.render(supervisor_id))
    } else {
        ("404 Not Found", "not found; try /metrics\n".to_string())
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}
