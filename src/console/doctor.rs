//! `agentbus doctor`: the operator's first command when something is wrong. Each check says
//! ok, warn or fail, what it saw, and the fix; the worst level decides the exit code.
//!
//! The checks run in order and a check that needs something an earlier one found missing
//! (the database, the schema) is reported as skipped rather than failing twice.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::console::status;
use crate::db::migrate::{self, MigrationState};
use crate::error::Error;
use crate::fleet::{self, Fleet};

/// How bad a check's finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Nothing to do.
    Ok,
    /// Works, but something needs a look (or could not be checked).
    Warn,
    /// Broken: the fleet cannot work until it is fixed.
    Fail,
}

impl Level {
    /// The process exit code: 0 ok, 1 warn, 2 fail.
    pub fn exit_code(self) -> u8 {
        match self {
            Level::Ok => 0,
            Level::Warn => 1,
            Level::Fail => 2,
        }
    }

    /// `ok`, `warn` or `fail`.
    pub fn label(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "fail",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// A stable name: `database`, `schema`, `supervisor`, `fleet`, `hook_url`,
    /// `hook_token`, `wake_errors`, `missed_orders`, `guardrails`.
    pub name: &'static str,
    /// How bad.
    pub level: Level,
    /// What was seen.
    pub detail: String,
    /// What to do (absent when ok).
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            level: Level::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    fn bad(
        name: &'static str,
        level: Level,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name,
            level,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The namespace checked.
    pub namespace: String,
    /// The worst level of any check.
    pub level: Level,
    /// Every check, in order.
    pub checks: Vec<Check>,
}

/// Where the OpenClaw gateway is and how to authenticate, for the hook checks.
#[derive(Debug, Clone, Default)]
pub struct Gateway {
    /// The hook URL (`.../hooks/agent`); `None` skips both hook checks.
    pub hook_url: Option<String>,
    /// The hook token; `None` skips the token check. Never printed.
    pub token: Option<String>,
    /// Where the token was to come from, for messages (`$OPENCLAW_HOOKS_TOKEN`).
    pub token_source: String,
}

/// What to check.
#[derive(Debug, Clone)]
pub struct Params<'a> {
    /// The namespace.
    pub namespace: &'a str,
    /// The fleet folder to compare with the database, as loaded (the caller reads it once,
    /// also for its `[openclaw]` settings).
    pub fleet: Option<(&'a Path, &'a Loaded)>,
    /// The gateway.
    pub gateway: Gateway,
    /// Heartbeats older than this are stale.
    pub stale_after_seconds: i64,
}

/// A fleet folder as `fleet::load` returned it.
pub type Loaded = std::result::Result<Fleet, Vec<fleet::Diagnostic>>;

/// The checks that read the ledger, after the database or the schema check failed.
fn skip_ledger_checks(checks: &mut Vec<Check>, fleet: bool, why: &str) {
    for name in ["supervisor", "wake_errors", "missed_orders"] {
        checks.push(skipped(name, why));
    }
    if fleet {
        checks.push(skipped("fleet", why));
    }
}

/// Runs every check. `client` is the database connection, or why there is none.
pub fn run(client: std::result::Result<&mut postgres::Client, Error>, p: &Params<'_>) -> Report {
    let mut checks = Vec::new();
    match client {
        Err(e) => {
            checks.push(Check::bad(
                "database",
                Level::Fail,
                format!("cannot connect: {}", e.message),
                e.hint.unwrap_or_else(|| {
                    "set AGENTBUS_DATABASE_URL (or DATABASE_URL, or PGHOST/PGDATABASE)".into()
                }),
            ));
            checks.push(skipped("schema", "no database"));
            skip_ledger_checks(&mut checks, p.fleet.is_some(), "no database");
        }
        Ok(client) => database_checks(client, p, &mut checks),
    }
    hook_checks(&p.gateway, &mut checks);
    let level = checks.iter().map(|c| c.level).max().unwrap_or(Level::Ok);
    Report {
        namespace: p.namespace.to_string(),
        level,
        checks,
    }
}

fn skipped(name: &'static str, why: &str) -> Check {
    Check::bad(
        name,
        Level::Warn,
        format!("not checked: {why}"),
        "fix the check above first",
    )
}

fn database_checks(client: &mut postgres::Client, p: &Params<'_>, checks: &mut Vec<Check>) {
    let version = client
        .query_one("select current_setting('server_version')", &[])
        .and_then(|r| r.try_get::<_, String>(0));
    match version {
        Ok(v) => checks.push(Check::ok("database", format!("reachable (PostgreSQL {v})"))),
        Err(e) => {
            let e = Error::from(e);
            checks.push(Check::bad(
                "database",
                Level::Fail,
                format!("cannot query: {}", e.message),
                "check that PostgreSQL is running and the connection settings are right",
            ));
            return;
        }
    }
    match migrate::status(client) {
        Ok(list) => {
            let pending: Vec<String> = list
                .iter()
                .filter(|m| m.state != MigrationState::Applied)
                .map(|m| format!("{:04}_{}", m.version, m.name))
                .collect();
            if pending.is_empty() {
                let latest = list.last().map_or(0, |m| m.version);
                checks.push(Check::ok("schema", format!("migrated (at {latest})")));
            } else {
                checks.push(Check::bad(
                    "schema",
                    Level::Fail,
                    format!(
                        "{} migration(s) pending: {}",
                        pending.len(),
                        pending.join(", ")
                    ),
                    "agentbus migrate",
                ));
                skip_ledger_checks(checks, p.fleet.is_some(), "the schema is not current");
                return;
            }
        }
        Err(e) => {
            checks.push(Check::bad(
                "schema",
                Level::Fail,
                e.message,
                "agentbus migrate",
            ));
            return;
        }
    }
    match status::snapshot(client, p.namespace, p.stale_after_seconds) {
        Ok(s) => snapshot_checks(&s, p.namespace, checks),
        Err(e) => checks.push(Check::bad(
            "supervisor",
            Level::Fail,
            format!("cannot read the ledger: {}", e.message),
            "agentbus status shows the same error",
        )),
    }
    if let Some((dir, loaded)) = p.fleet {
        checks.push(fleet_check(client, dir, loaded, p.namespace));
    }
}

fn snapshot_checks(s: &status::Snapshot, namespace: &str, checks: &mut Vec<Check>) {
    let g = &s.guardrails;
    checks.push(Check::ok(
        "guardrails",
        if g.on {
            let logins: Vec<String> = g.logins.iter().map(|(k, v)| format!("{v} {k}")).collect();
            format!(
                "on: PostgreSQL enforces roles and namespaces ({} login(s) visible: {}); connected as {}{}",
                g.logins.values().sum::<i64>(),
                if logins.is_empty() { "none".into() } else { logins.join(", ") },
                g.login,
                if g.unrestricted { ", the owner, who bypasses them" } else { "" }
            )
        } else {
            format!(
                "off: no roles installed, every caller is the owner (fine for one user; for shared fleets or tenants: agentbus roles install); connected as {}",
                g.login
            )
        },
    ));
    let fresh = s.fresh_supervisors();
    checks.push(if fresh > 0 {
        Check::ok(
            "supervisor",
            format!("{fresh} supervisor(s) with a fresh heartbeat in namespace {namespace}"),
        )
    } else if s.supervisors.is_empty() {
        Check::bad(
            "supervisor",
            Level::Fail,
            format!("no supervisor has ever sent a heartbeat in namespace {namespace}"),
            format!("start one: agentbus-supervisor --namespace {namespace} (or the systemd unit)"),
        )
    } else {
        let newest = s
            .supervisors
            .iter()
            .map(|b| b.seconds_since_seen)
            .fold(f64::INFINITY, f64::min);
        Check::bad(
            "supervisor",
            Level::Fail,
            format!(
                "no fresh heartbeat in namespace {namespace}: the newest is {newest:.0}s old (stale after {}s)",
                s.stale_after_seconds
            ),
            "restart it (systemctl restart agentbus-supervisor); jobs wait queued until then",
        )
    });
    let troubled: Vec<String> = s
        .wake_problems
        .iter()
        .map(|w| match (&w.paused_reason, &w.last_wake_error) {
            (Some(r), _) if w.paused => format!("{} paused: {r}", w.agent),
            (_, Some(e)) => format!("{} failing to wake ({}x): {e}", w.agent, w.wake_failures),
            _ => format!("{} paused", w.agent),
        })
        .collect();
    checks.push(if troubled.is_empty() {
        Check::ok("wake_errors", "no agent paused or failing to wake")
    } else {
        Check::bad(
            "wake_errors",
            Level::Warn,
            troubled.join("; "),
            "fix the cause (agentbus list-agents shows the last error), then agentbus resume-agent AGENT",
        )
    });
    let missed = s.standing_orders_24h.get("missed").copied().unwrap_or(0);
    checks.push(if missed == 0 {
        Check::ok("missed_orders", "no standing order missed in the last 24 h")
    } else {
        Check::bad(
            "missed_orders",
            Level::Warn,
            format!("{missed} standing-order occurrence(s) missed in the last 24 h"),
            format!("agentbus audit standing-orders --namespace {namespace} --since 24h"),
        )
    });
}

/// Whether the database matches the fleet folder: `fleet sync` inside a transaction that
/// is rolled back, so what it would change is exactly what differs.
fn fleet_check(
    client: &mut postgres::Client,
    dir: &Path,
    loaded: &Loaded,
    namespace: &str,
) -> Check {
    let fleet = match loaded {
        Ok(f) => f,
        Err(diags) => {
            let first = diags.first().map(ToString::to_string).unwrap_or_default();
            return Check::bad(
                "fleet",
                Level::Fail,
                format!("{} problem(s) in {}: {first}", diags.len(), dir.display()),
                format!("agentbus fleet validate {}", dir.display()),
            );
        }
    };
    if fleet.namespace != namespace {
        return Check::bad(
            "fleet",
            Level::Warn,
            format!(
                "{} is fleet namespace {:?}, not {namespace:?}",
                dir.display(),
                fleet.namespace
            ),
            format!(
                "agentbus doctor --namespace {} --fleet {}",
                fleet.namespace,
                dir.display()
            ),
        );
    }
    let dry_run = client
        .transaction()
        .map_err(Error::from)
        .and_then(|mut tx| {
            let report = fleet::sync(&mut tx, fleet, "doctor");
            let _ = tx.rollback();
            report
        });
    match dry_run {
        Ok(r) if r.added.is_empty() && r.changed.is_empty() && r.disabled.is_empty() => Check::ok(
            "fleet",
            format!(
                "the database matches {} ({} agents)",
                dir.display(),
                fleet.agents.len()
            ),
        ),
        Ok(r) => {
            let name = |c: &fleet::Change| format!("{} {}", c.object, c.id);
            let mut what: Vec<String> = Vec::new();
            what.extend(r.added.iter().map(|c| format!("missing {}", name(c))));
            what.extend(r.changed.iter().map(|c| format!("{} differs", name(c))));
            what.extend(
                r.disabled
                    .iter()
                    .map(|c| format!("{} not in the files", name(c))),
            );
            Check::bad(
                "fleet",
                Level::Warn,
                format!(
                    "the database differs from {}: {}",
                    dir.display(),
                    what.join(", ")
                ),
                format!("agentbus fleet sync {}", dir.display()),
            )
        }
        Err(e) => Check::bad(
            "fleet",
            Level::Fail,
            format!("cannot compare with {}: {}", dir.display(), e.message),
            format!("agentbus fleet validate {}", dir.display()),
        ),
    }
}

/// How long each HTTP probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

fn hook_checks(g: &Gateway, checks: &mut Vec<Check>) {
    let Some(url) = &g.hook_url else {
        checks.push(Check::ok(
            "hook_url",
            "no hook URL given or configured: hook checks skipped (exec agents only?)",
        ));
        return;
    };
    let agent = ureq::AgentBuilder::new()
        .timeout(PROBE_TIMEOUT)
        .redirects(0)
        .build();
    let base = crate::redact::origin(url).unwrap_or_else(|| url.to_string());
    let ready = format!("{base}/readyz");
    let reachable = match agent.get(&ready).call() {
        Ok(r) => {
            checks.push(Check::ok(
                "hook_url",
                format!("{ready} answered {}", r.status()),
            ));
            true
        }
        Err(ureq::Error::Status(code, _)) => {
            checks.push(Check::bad(
                "hook_url",
                Level::Fail,
                format!("{ready} answered {code}: the gateway is up but not ready"),
                "look at the gateway's log; it answers 200 once it has started",
            ));
            true
        }
        Err(ureq::Error::Transport(t)) => {
            checks.push(Check::bad(
                "hook_url",
                Level::Fail,
                format!("{ready}: {}", t.kind()),
                "start the OpenClaw gateway (openclaw gateway run), or fix the hook URL",
            ));
            false
        }
    };
    let Some(token) = &g.token else {
        checks.push(Check::bad(
            "hook_token",
            Level::Warn,
            format!("no hook token in {}: not checked", g.token_source),
            "give doctor the supervisor's token (--hook-token-env NAME or --hook-token-file FILE)",
        ));
        return;
    };
    if !reachable {
        checks.push(skipped("hook_token", "the gateway does not answer"));
        return;
    }
    // An empty body with the token: a gateway that accepts the token refuses the body
    // (400, "message required") without starting an agent run; a wrong token is 401.
    let answer = agent
        .post(url)
        .set("Authorization", &format!("Bearer {token}"))
        .set("Content-Type", "application/json")
        .send_string("{}");
    checks.push(match answer {
        Err(ureq::Error::Status(400, _)) | Ok(_) => Check::ok(
            "hook_token",
            format!("the gateway accepts the token from {}", g.token_source),
        ),
        Err(ureq::Error::Status(code @ (401 | 403), _)) => Check::bad(
            "hook_token",
            Level::Fail,
            format!("the gateway refused the token from {} ({code})", g.token_source),
            "use the same value as hooks.token in the gateway's openclaw.json, then restart the supervisor",
        ),
        Err(ureq::Error::Status(code, _)) => Check::bad(
            "hook_token",
            Level::Warn,
            format!(
                "unexpected answer {code} to a probe of {}",
                crate::redact::url_without_credentials(url)
            ),
            "check that the hook URL ends in the gateway's hooks path (/hooks/agent)",
        ),
        Err(ureq::Error::Transport(t)) => Check::bad(
            "hook_token",
            Level::Fail,
            format!("{}: {}", crate::redact::url_without_credentials(url), t.kind()),
            "check the hook URL",
        ),
    });
}
