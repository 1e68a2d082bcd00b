//! status, health, metrics.

use std::io::Write;
use std::time::Duration;

use clap::Args;

use super::args::NamespaceArg;
use super::output::{self, age, age_opt, clip, fitted_table, Format};
use super::Ctx;
use crate::console::health::{self, Threshold, Thresholds};
use crate::console::status::{self, Snapshot, DEFAULT_STALE_SUPERVISOR_SECONDS};
use crate::error::{Error, Result};
use crate::ledger::jobs::JobStatus;

/// Is the fleet healthy? Queues, agents, supervisors, standing orders, what needs a human
///
/// One screen: jobs per status and per agent (finished ones: the last 24 h), the oldest queued and blocked ages, expired
/// leases, retry hotspots, jobs that went dead in the last 24 h, jobs awaiting approval,
/// standing-order results of the last 24 h (missed included), supervisors (fresh or stale
/// heartbeats) and paused agents or agents whose wake-ups fail. A table on a terminal,
/// JSON otherwise.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  agentbus status\n  agentbus status --watch 5\n  \
agentbus status --format json | jq '.jobs.queued'"
)]
pub struct StatusArgs {
    #[command(flatten)]
    ns: NamespaceArg,

    /// Redraw every N seconds until interrupted (Ctrl-C)
    #[arg(long, value_name = "N")]
    watch: Option<u64>,

    /// A supervisor heartbeat older than this many seconds is stale
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_STALE_SUPERVISOR_SECONDS)]
    stale_after: i64,
}

pub fn status(ctx: &mut Ctx, a: StatusArgs, stdout: &mut dyn Write) -> Result<String> {
    if a.stale_after < 1 {
        return Err(Error::usage("--stale-after: must be at least 1"));
    }
    let Some(every) = a.watch else {
        let snap = status::snapshot(ctx.db()?, &a.ns.namespace, a.stale_after)?;
        return render(ctx, &snap);
    };
    if !(1..=3600).contains(&every) {
        return Err(Error::usage("--watch: N is out of range (1 to 3600)"));
    }
    loop {
        let snap = status::snapshot(ctx.db()?, &a.ns.namespace, a.stale_after)?;
        let text = render(ctx, &snap)?;
        let screen = match ctx.format() {
            // Home, clear, then the screen: redrawn in place.
            Format::Table => format!(
                "\x1b[H\x1b[2J{}\n(every {every}s; Ctrl-C to stop)\n",
                output::terminal_safe(&text)
            ),
            // JSON: one document per line, for `| jq`.
            Format::Json => format!("{}\n", serde_json::to_string(&snap).unwrap_or_default()),
        };
        if stdout
            .write_all(screen.as_bytes())
            .and_then(|_| stdout.flush())
            .is_err()
        {
            // The reader went away.
            return Ok(String::new());
        }
        ctx.rest();
        std::thread::sleep(Duration::from_secs(every));
    }
}

fn render(ctx: &Ctx, s: &Snapshot) -> Result<String> {
    match ctx.format() {
        Format::Json => output::json(s),
        Format::Table => Ok(status_text(s, ctx.full_ids())),
    }
}

fn counts(pairs: impl IntoIterator<Item = (String, i64)>) -> String {
    pairs
        .into_iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(" · ")
}

/// One line: whether PostgreSQL enforces the guardrails, and as whom this screen was read.
pub fn guardrails_line(g: &crate::ledger::roles::Guardrails) -> String {
    let who = match (g.unrestricted, g.class) {
        (true, _) => format!("{} (owner)", output::clip(&g.login, 24)),
        (false, Some(class)) => format!("{} ({})", output::clip(&g.login, 24), class.as_str()),
        (false, None) => format!("{} (no agentbus login)", output::clip(&g.login, 24)),
    };
    if g.on {
        format!(
            "guardrails: on ({} logins) · you are {who}",
            counts(g.logins.iter().map(|(k, v)| (k.clone(), *v)))
        )
    } else {
        format!("guardrails: off (no roles installed: agentbus roles install) · you are {who}")
    }
}

/// The status screen.
pub fn status_text(s: &Snapshot, full_ids: bool) -> String {
    use JobStatus::*;
    let mut out = format!(
        "agentbus status: namespace {} at {}\n{}\n\n",
        s.namespace,
        output::time(s.taken_at),
        guardrails_line(&s.guardrails)
    );
    let line = |states: &[JobStatus]| {
        counts(
            states
                .iter()
                .map(|st| (st.as_str().to_string(), s.count(*st))),
        )
    };
    out += &format!(
        "open      {}\n",
        line(&[Queued, Waiting, AwaitingApproval, Leased, Running, Blocked])
    );
    out += &format!("closed    {}\n", line(&[Succeeded, Dead, Cancelled]));
    out += &format!(
        "waiting   oldest queued {} · oldest blocked {} · oldest approval {}\n",
        age_opt(s.oldest_queued_seconds),
        age_opt(s.oldest_blocked_seconds),
        age_opt(s.oldest_approval_seconds)
    );
    if let Some(b) = &s.blocked_routing {
        out += &format!(
            "blocked   {} blocked · {} routed to {} (after {}) · {} escalated{}\n",
            b.blocked,
            b.routed,
            b.route_to,
            age_opt(Some(b.route_after_seconds)),
            b.escalated,
            b.escalate_after_seconds
                .map(|e| format!(" (after {})", age_opt(Some(e))))
                .unwrap_or_else(|| " (never)".into())
        );
    }
    if !s.idle.is_empty() {
        let parts: Vec<String> = s
            .idle
            .iter()
            .map(|i| {
                format!(
                    "{} {}/{}{}",
                    i.agent,
                    i.windows_today,
                    i.allowed_today,
                    if i.halved_since.is_some() {
                        " (halved)"
                    } else {
                        ""
                    }
                )
            })
            .collect();
        out += &format!("thinking  today: {}\n", parts.join(" · "));
    }
    out += &format!(
        "trouble   expired leases {} · retry hotspots {} · dead in 24h {} · awaiting approval {}\n",
        s.expired_leases.count,
        s.retry_hotspots.count,
        s.dead_last_24h.count,
        s.awaiting_approval.count
    );
    let so = |k: &str| s.standing_orders_24h.get(k).copied().unwrap_or(0);
    out += &format!(
        "standing  24h: completed {} · no_work {} · blocked {} · failed {} · missed {} · running {}\n",
        so("completed"),
        so("no_work"),
        so("blocked"),
        so("failed"),
        so("missed"),
        so("started")
    );

    out += "\nAgents\n";
    if s.agents.is_empty() {
        out += "  no unfinished work\n";
    } else {
        let n = |a: &status::AgentQueue, st: JobStatus| -> String {
            a.jobs.get(st.as_str()).copied().unwrap_or(0).to_string()
        };
        out += &fitted_table(
            &[
                "agent",
                "queued",
                "waiting",
                "approval",
                "leased",
                "running",
                "blocked",
                "oldest queued",
                "state",
            ],
            s.agents.iter().map(|a| {
                vec![
                    clip(&a.agent, 24),
                    n(a, Queued),
                    n(a, Waiting),
                    n(a, AwaitingApproval),
                    n(a, Leased),
                    n(a, Running),
                    n(a, Blocked),
                    age_opt(a.oldest_queued_seconds),
                    if a.paused { "paused" } else { "" }.to_string(),
                ]
            }),
            full_ids,
        );
        out.push('\n');
    }

    out += "\nSupervisors\n";
    if s.supervisors.is_empty() {
        out += "  none has a heartbeat: nothing is claiming work (start agentbus-supervisor)\n";
    } else {
        out += &fitted_table(
            &[
                "supervisor",
                "host",
                "pid",
                "seen",
                "in flight",
                "leases",
                "state",
                "last error",
            ],
            s.supervisors.iter().map(|b| {
                vec![
                    clip(&b.id, 24),
                    clip(b.host.as_deref().unwrap_or("-"), 16),
                    b.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                    format!("{} ago", age(b.seconds_since_seen)),
                    b.in_flight.to_string(),
                    b.leases_owned.to_string(),
                    if b.fresh { "fresh" } else { "STALE" }.to_string(),
                    clip(b.last_error.as_deref().unwrap_or(""), 30),
                ]
            }),
            full_ids,
        );
        out.push('\n');
    }

    let mut attention: Vec<Vec<String>> = Vec::new();
    for (kind, list) in [
        ("expired lease", &s.expired_leases),
        ("retry hotspot", &s.retry_hotspots),
        ("dead (24h)", &s.dead_last_24h),
        ("approval", &s.awaiting_approval),
    ] {
        for j in &list.jobs {
            attention.push(vec![
                kind.to_string(),
                output::id(j.id, full_ids),
                clip(&j.agent, 16),
                clip(&j.subject, 28),
                j.attempt_count.to_string(),
                age(j.age_seconds),
                clip(j.note.as_deref().unwrap_or(""), 30),
            ]);
        }
    }
    if !attention.is_empty() {
        out += "\nNeeds attention\n";
        out += &fitted_table(
            &["what", "job", "agent", "subject", "tries", "age", "note"],
            attention,
            full_ids,
        );
        out.push('\n');
    }
    if !s.wake_problems.is_empty() {
        out += "\nAgents not being woken\n";
        out += &fitted_table(
            &["agent", "paused", "failures", "back-off until", "why"],
            s.wake_problems.iter().map(|w| {
                vec![
                    clip(&w.agent, 24),
                    if w.paused { "yes" } else { "no" }.to_string(),
                    w.wake_failures.to_string(),
                    output::time_opt(w.wake_backoff_until),
                    clip(
                        w.paused_reason
                            .as_deref()
                            .or(w.last_wake_error.as_deref())
                            .unwrap_or(""),
                        40,
                    ),
                ]
            }),
            full_ids,
        );
        out.push('\n');
    }
    out
}

/// One check for monitors and cron: exit 0 healthy, 1 warning, 2 critical
///
/// Prints one Nagios-style line, `agentbus LEVEL - what | perfdata` (also when piped;
/// --format json prints every check). A check trips when its
/// value is at or over a threshold. Checks: the freshest supervisor heartbeat (none at all
/// is critical), the oldest claimable job's wait, jobs gone dead in the last 24 h,
/// standing-order runs missed in the last 24 h, and expired leases. When the database
/// cannot be read the line says so and the exit is 2.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  agentbus health\n  \
agentbus health --oldest-queued 300,900 --dead 1,5 || page-oncall\n  \
*/5 * * * * agentbus health --format json > /var/lib/agentbus/health.json\n\n\
Thresholds are WARNING,CRITICAL; the defaults:\n  \
--supervisor-silence 90,300  --oldest-queued 600,3600  --dead 1,10  --missed 1,5  \
--expired-leases 1,10")]
pub struct HealthArgs {
    #[command(flatten)]
    ns: NamespaceArg,

    /// Seconds since the freshest supervisor heartbeat
    #[arg(long, value_name = "WARN,CRIT", value_parser = parse_threshold)]
    supervisor_silence: Option<Threshold>,

    /// Seconds the oldest claimable job has waited
    #[arg(long, value_name = "WARN,CRIT", value_parser = parse_threshold)]
    oldest_queued: Option<Threshold>,

    /// Jobs gone dead in the last 24 hours
    #[arg(long, value_name = "WARN,CRIT", value_parser = parse_threshold)]
    dead: Option<Threshold>,

    /// Standing-order runs missed in the last 24 hours
    #[arg(long, value_name = "WARN,CRIT", value_parser = parse_threshold)]
    missed: Option<Threshold>,

    /// Jobs whose lease ran out without being recovered
    #[arg(long, value_name = "WARN,CRIT", value_parser = parse_threshold)]
    expired_leases: Option<Threshold>,
}

fn parse_threshold(s: &str) -> std::result::Result<Threshold, String> {
    let bad = || format!("expected WARN,CRIT with 0 <= WARN <= CRIT, e.g. 300,900; got {s:?}");
    let (w, c) = s.split_once(',').ok_or_else(bad)?;
    let warning: f64 = w.trim().parse().map_err(|_| bad())?;
    let critical: f64 = c.trim().parse().map_err(|_| bad())?;
    if !(warning.is_finite() && critical.is_finite()) || warning < 0.0 || warning > critical {
        return Err(bad());
    }
    Ok(Threshold { warning, critical })
}

impl HealthArgs {
    fn thresholds(&self) -> Thresholds {
        let d = Thresholds::default();
        Thresholds {
            supervisor_silence_seconds: self
                .supervisor_silence
                .unwrap_or(d.supervisor_silence_seconds),
            oldest_queued_seconds: self.oldest_queued.unwrap_or(d.oldest_queued_seconds),
            dead_last_24h: self.dead.unwrap_or(d.dead_last_24h),
            missed_last_24h: self.missed.unwrap_or(d.missed_last_24h),
            expired_leases: self.expired_leases.unwrap_or(d.expired_leases),
        }
    }
}

pub fn health(ctx: &mut Ctx, a: HealthArgs) -> Result<String> {
    let thresholds = a.thresholds();
    let stale = thresholds.supervisor_silence_seconds.warning.max(1.0) as i64;
    let snap = ctx
        .db()
        .and_then(|c| status::snapshot(c, &a.ns.namespace, stale));
    let snap = match snap {
        Ok(s) => s,
        Err(e) => {
            // Monitors read stdout and the exit code; an unreadable ledger is critical.
            ctx.set_exit_code(2);
            let line = format!("agentbus CRITICAL - cannot read the ledger: {}", e.message);
            return match ctx.document_format() {
                Format::Json => output::json(&serde_json::json!({
                    "namespace": a.ns.namespace,
                    "level": "critical",
                    "summary": line,
                    "checks": [],
                })),
                Format::Table => Ok(line),
            };
        }
    };
    let verdict = health::evaluate(&snap, &thresholds);
    ctx.set_exit_code(verdict.level.exit_code());
    match ctx.document_format() {
        Format::Json => output::json(&verdict),
        Format::Table => Ok(verdict.summary),
    }
}

/// Print the status facts in Prometheus text format
///
/// For node_exporter's textfile collector (write to a temporary file, then rename it into
/// the collector's directory) or any scraper. Gauges: agentbus_jobs{status},
/// agentbus_agent_jobs{agent,status}, agentbus_oldest_queued_seconds,
/// agentbus_oldest_blocked_seconds, agentbus_expired_leases, agentbus_retry_hotspots,
/// agentbus_dead_last_24h, agentbus_awaiting_approval,
/// agentbus_standing_order_runs_24h{status}, agentbus_supervisors{state},
/// agentbus_supervisor_heartbeat_age_seconds{supervisor}, agentbus_agents_paused and
/// agentbus_health (0 ok, 1 warning, 2 critical, with health's default thresholds); every
/// sample carries namespace. The supervisor's own counters are on its --metrics-addr.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  agentbus metrics\n  \
agentbus metrics > /var/lib/node_exporter/agentbus.prom.$$ && \\\n    \
mv /var/lib/node_exporter/agentbus.prom.$$ /var/lib/node_exporter/agentbus.prom")]
pub struct MetricsArgs {
    #[command(flatten)]
    ns: NamespaceArg,
}

pub fn metrics(ctx: &mut Ctx, a: MetricsArgs) -> Result<String> {
    let thresholds = Thresholds::default();
    let snap = status::snapshot(
        ctx.db()?,
        &a.ns.namespace,
        thresholds.supervisor_silence_seconds.warning as i64,
    )?;
    let verdict = health::evaluate(&snap, &thresholds);
    Ok(health::prometheus(&snap, &verdict))
}
