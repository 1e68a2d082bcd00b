//! Is the fleet healthy? The status snapshot judged against thresholds (`agentbus health`,
//! Nagios-style) and rendered for Prometheus (`agentbus metrics`).

use std::fmt::Write as _;

use serde::Serialize;

use crate::console::prometheus::{Exposition, Kind};
use crate::console::status::Snapshot;
use crate::ledger::jobs::JobStatus;

/// Nagios-style verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Exit 0.
    Ok,
    /// Exit 1.
    Warning,
    /// Exit 2.
    Critical,
}

impl Level {
    /// The exit code monitors expect.
    pub fn exit_code(self) -> u8 {
        match self {
            Level::Ok => 0,
            Level::Warning => 1,
            Level::Critical => 2,
        }
    }

    /// OK, WARNING, CRITICAL.
    pub fn label(self) -> &'static str {
        match self {
            Level::Ok => "OK",
            Level::Warning => "WARNING",
            Level::Critical => "CRITICAL",
        }
    }
}

/// Warning and critical thresholds of one check (a value at or over a threshold trips it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Threshold {
    /// At or over this: warning.
    pub warning: f64,
    /// At or over this: critical.
    pub critical: f64,
}

/// The thresholds of `agentbus health`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    /// Seconds since the freshest supervisor's heartbeat.
    pub supervisor_silence_seconds: Threshold,
    /// Seconds the oldest claimable job has waited.
    pub oldest_queued_seconds: Threshold,
    /// Jobs that went dead in the last 24 hours.
    pub dead_last_24h: Threshold,
    /// Standing-order occurrences recorded missed in the last 24 hours.
    pub missed_last_24h: Threshold,
    /// Jobs whose lease ran out and were not recovered.
    pub expired_leases: Threshold,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            supervisor_silence_seconds: Threshold {
                warning: 90.0,
                critical: 300.0,
            },
            oldest_queued_seconds: Threshold {
                warning: 600.0,
                critical: 3600.0,
            },
            dead_last_24h: Threshold {
                warning: 1.0,
                critical: 10.0,
            },
            missed_last_24h: Threshold {
                warning: 1.0,
                critical: 5.0,
            },
            expired_leases: Threshold {
                warning: 1.0,
                critical: 10.0,
            },
        }
    }
}

/// One judged fact.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Stable name (also the perfdata label).
    pub name: &'static str,
    /// Its verdict.
    pub level: Level,
    /// The measured value (`None`: nothing to measure, e.g. no supervisor ever ran).
    pub value: Option<f64>,
    /// The thresholds it was judged against.
    pub threshold: Threshold,
    /// One phrase for the summary line.
    pub message: String,
}

/// `agentbus health`'s verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// Namespace.
    pub namespace: String,
    /// The worst check.
    pub level: Level,
    /// The one line monitors show.
    pub summary: String,
    /// Every check.
    pub checks: Vec<Check>,
}

fn judge(value: f64, t: Threshold) -> Level {
    if value >= t.critical {
        Level::Critical
    } else if value >= t.warning {
        Level::Warning
    } else {
        Level::Ok
    }
}

/// Judges `s` against `t`.
pub fn evaluate(s: &Snapshot, t: &Thresholds) -> Health {
    let mut checks = Vec::new();
    let silence = s
        .supervisors
        .iter()
        .map(|b| b.seconds_since_seen)
        .fold(None, |min: Option<f64>, v| {
            Some(min.map_or(v, |m| m.min(v)))
        });
    checks.push(match silence {
        None => Check {
            name: "supervisor",
            level: Level::Critical,
            value: None,
            threshold: t.supervisor_silence_seconds,
            message: "no supervisor has a heartbeat (start agentbus-supervisor)".into(),
        },
        Some(v) => Check {
            name: "supervisor",
            level: judge(v, t.supervisor_silence_seconds),
            value: Some(v),
            threshold: t.supervisor_silence_seconds,
            message: format!(
                "freshest supervisor heartbeat {}s ago ({} of {} fresh)",
                v.round(),
                s.fresh_supervisors(),
                s.supervisors.len()
            ),
        },
    });
    let oldest = s.oldest_queued_seconds.unwrap_or(0.0);
    checks.push(Check {
        name: "oldest_queued",
        level: judge(oldest, t.oldest_queued_seconds),
        value: Some(oldest),
        threshold: t.oldest_queued_seconds,
        message: format!("oldest queued job waited {}s", oldest.round()),
    });
    for (name, value, threshold, what) in [
        (
            "dead_last_24h",
            s.dead_last_24h.count,
            t.dead_last_24h,
            "jobs went dead in 24h",
        ),
        (
            "missed_last_24h",
            s.standing_orders_24h.get("missed").copied().unwrap_or(0),
            t.missed_last_24h,
            "standing-order runs missed in 24h",
        ),
        (
            "expired_leases",
            s.expired_leases.count,
            t.expired_leases,
            "expired leases",
        ),
    ] {
        let v = value as f64;
        checks.push(Check {
            name,
            level: judge(v, threshold),
            value: Some(v),
            threshold,
            message: format!("{value} {what}"),
        });
    }
    let level = checks.iter().map(|c| c.level).max().unwrap_or(Level::Ok);
    let bad: Vec<&str> = checks
        .iter()
        .filter(|c| c.level == level && level != Level::Ok)
        .map(|c| c.message.as_str())
        .collect();
    let mut summary = format!(
        "agentbus {} - {}",
        level.label(),
        if bad.is_empty() {
            format!(
                "namespace {}: {} queued, {} running, {} fresh supervisor(s)",
                s.namespace,
                s.count(JobStatus::Queued),
                s.count(JobStatus::Running) + s.count(JobStatus::Leased),
                s.fresh_supervisors()
            )
        } else {
            bad.join("; ")
        }
    );
    // Nagios performance data after the bar.
    summary.push_str(" |");
    for c in &checks {
        let _ = write!(
            summary,
            " {}={};{};{}",
            c.name,
            c.value
                .map(|v| format!("{v:.0}"))
                .unwrap_or_else(|| "U".into()),
            c.threshold.warning,
            c.threshold.critical
        );
    }
    Health {
        namespace: s.namespace.clone(),
        level,
        summary,
        checks,
    }
}

/// The snapshot in Prometheus text exposition format (for node_exporter's textfile
/// collector).
pub fn prometheus(s: &Snapshot, h: &Health) -> String {
    let mut out = Exposition::new();
    let ns = s.namespace.as_str();
    let mut family = |name: &str, help: &str, samples: Vec<(Vec<(&str, &str)>, f64)>| {
        out.family(name, Kind::Gauge, Some(help));
        for (extra, value) in samples {
            let mut labels = vec![("namespace", ns)];
            labels.extend(extra);
            out.sample(name, &labels, value);
        }
    };
    let one = |v: f64| vec![(Vec::new(), v)];
    family(
        "agentbus_jobs",
        "Jobs per status: every unfinished job; succeeded, dead and cancelled ones finished in the last 24 hours.",
        s.jobs
            .iter()
            .map(|(st, n)| (vec![("status", st.as_str())], *n as f64))
            .collect(),
    );
    family(
        "agentbus_agent_jobs",
        "Unfinished jobs per agent and status.",
        s.agents
            .iter()
            .flat_map(|a| {
                a.jobs.iter().map(move |(st, n)| {
                    (
                        vec![("agent", a.agent.as_str()), ("status", st.as_str())],
                        *n as f64,
                    )
                })
            })
            .collect(),
    );
    family(
        "agentbus_oldest_queued_seconds",
        "Seconds the longest-waiting claimable job has waited (0 when none).",
        one(s.oldest_queued_seconds.unwrap_or(0.0)),
    );
    family(
        "agentbus_oldest_blocked_seconds",
        "Seconds the longest-blocked job has been blocked (0 when none).",
        one(s.oldest_blocked_seconds.unwrap_or(0.0)),
    );
    family(
        "agentbus_expired_leases",
        "Leased or running jobs whose lease ran out.",
        one(s.expired_leases.count as f64),
    );
    family(
        "agentbus_retry_hotspots",
        "Unfinished jobs on their third attempt or later.",
        one(s.retry_hotspots.count as f64),
    );
    family(
        "agentbus_dead_last_24h",
        "Jobs that went dead in the last 24 hours.",
        one(s.dead_last_24h.count as f64),
    );
    family(
        "agentbus_awaiting_approval",
        "Jobs waiting for an operator's approval.",
        one(s.awaiting_approval.count as f64),
    );
    family(
        "agentbus_standing_order_runs_24h",
        "Standing-order runs scheduled in the last 24 hours, per status.",
        s.standing_orders_24h
            .iter()
            .map(|(st, n)| (vec![("status", st.as_str())], *n as f64))
            .collect(),
    );
    family(
        "agentbus_supervisors",
        "Supervisors with a heartbeat row, fresh or stale.",
        vec![
            (vec![("state", "fresh")], s.fresh_supervisors() as f64),
            (
                vec![("state", "stale")],
                (s.supervisors.len() - s.fresh_supervisors()) as f64,
            ),
        ],
    );
    family(
        "agentbus_supervisor_heartbeat_age_seconds",
        "Seconds since each supervisor's last heartbeat.",
        s.supervisors
            .iter()
            .map(|b| (vec![("supervisor", b.id.as_str())], b.seconds_since_seen))
            .collect(),
    );
    family(
        "agentbus_agents_paused",
        "Paused agents.",
        one(s.wake_problems.iter().filter(|w| w.paused).count() as f64),
    );
    family(
        "agentbus_health",
        "agentbus health verdict: 0 ok, 1 warning, 2 critical.",
        one(f64::from(h.level.exit_code())),
    );
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_trip_at_or_over() {
        let t = Threshold {
            warning: 1.0,
            critical: 10.0,
        };
        assert_eq!(judge(0.0, t), Level::Ok);
        assert_eq!(judge(1.0, t), Level::Warning);
        assert_eq!(judge(9.9, t), Level::Warning);
        assert_eq!(judge(10.0, t), Level::Critical);
    }
}
