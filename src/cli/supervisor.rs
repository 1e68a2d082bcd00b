//! The `agentbus-supervisor` command line: flags and environment, turned into a
//! [`supervisor::Config`](crate::supervisor::Config).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::cli::argv::split_command;
use crate::db::DbConfig;
use crate::error::{Error, Result};
use crate::supervisor::hook::Secret;
use crate::supervisor::log::{Level, Logger};
use crate::supervisor::{self, heartbeat_host_name, Config, DefaultWake, EnvSnapshot};

const AFTER_HELP: &str = "\
Examples:
  # Wake every agent by running a command (the quick start; no fleet needed):
  agentbus-supervisor --exec './agents/run-agent.sh {agent} {job_id} {prompt_file}'

  # Wake OpenClaw agents through the gateway's hook endpoint:
  agentbus-supervisor --hook-url http://127.0.0.1:18789/hooks/agent \\
      --hook-token-file /etc/agentbus/openclaw-hook-token

  # Process what is ready, wait for what runs, then exit (cron, scripts, tests):
  agentbus-supervisor --once --exec 'sh -c \"do-the-work && agentbus complete-job\"'

Wake modes:
  An agent's row in the agents table (agentbus fleet sync, or configure-agent) may set its wake mode,
  hook URL, OpenClaw agentId and sessionKey, timeouts, token variable and exec command.
  Agents without a wake mode of their own are woken with --exec or --hook-url; without
  either, the supervisor claims only agents that have one.

  hook: POST {agentId, name, message, deliver:false, timeoutSeconds, sessionKey?} with
  Authorization: Bearer <token> and Idempotency-Key: <job_id>:<attempt>. A 2xx means the
  run was admitted, not finished: the runId is stored on the attempt and the job stays
  running (lease: the hook timeout + 120 s) until the agent closes it with agentbus. A
  4xx (other than 408/429) pauses the agent (agentbus resume-agent ID after fixing the
  configuration); 5xx, 408, 429, timeouts and refused connections fail the attempt, back
  the agent off (5 s doubling to 5 min) and retry the job.

  exec: runs the argv template with {job_id}, {agent}, {attempt}, {lease_token},
  {prompt_file} and {namespace} replaced (each as a whole argument: inside `sh -c '...'`
  use \"$AGENTBUS_AGENT\" and the other variables instead; the supervisor warns at start
  when a template puts a placeholder in a shell string), in its own process group, with AGENTBUS_JOB_ID,
  AGENTBUS_LEASE_TOKEN, AGENTBUS_ATTEMPT, AGENTBUS_AGENT, AGENTBUS_NAMESPACE,
  AGENTBUS_PROMPT_FILE and AGENTBUS_DATABASE_URL (also as DATABASE_URL; from
  $AGENTBUS_AGENT_DATABASE_URL when set) set. The lease is renewed every third of
  --lease-seconds while it runs; at the deadline the group gets TERM, then KILL after
  --kill-grace. If the job is still open when the command exits, the attempt fails with
  \"exited without closing the loop\", the exit code and the last lines of stderr.

Standing orders:
  Every second the supervisor fires the due orders with fired_by = \"supervisor\": one
  standing_order_runs row and one `scheduled` job per occurrence, exactly once across
  supervisors. An occurrence seen only after its grace is recorded missed (catch_up =
  \"run_once\" fires the latest of those once). Every minute it runs the missed-run audit
  over the last day (agentbus audit standing-orders), for OpenClaw-fired orders too.

Attempts that never reached the agent (refused connection, HTTP 5xx or 4xx, a command
that could not start) are recorded but do not count toward the job's max_attempts.

Signals:
  SIGTERM, SIGINT  stop claiming; running exec children get --shutdown-grace to finish
                   (then TERM/KILL); jobs claimed but not started are released; exit 0
  second signal    exit at once (leases recover whatever was running)
  kill -9          loses nothing: expired leases are recovered by any supervisor.
                   Exec children live on in their own process groups and may still
                   close their jobs; once a lease expires and the job is retried, a
                   late close from the old child is refused (exit 4)

Exit status:
  0   stopped cleanly (signal, or --once ran out of work)
  2   usage: bad flags
  75  --once only: the database stayed unreachable for a minute at start (a daemon
      waits for it, and while running it reconnects with back-off)
  78  configuration: no database, schema not migrated, supervisor id in use, metrics
      address taken

Environment:
  AGENTBUS_DATABASE_URL     the ledger (--database-url wins; else DATABASE_URL, else PGHOST,
                            PGPORT, PGUSER, PGPASSWORD, PGDATABASE)
  AGENTBUS_AGENT_DATABASE_URL  what exec agents get as AGENTBUS_DATABASE_URL (and
                            DATABASE_URL) instead of the supervisor's own: with roles
                            installed, an agent login, so agents never hold the
                            supervisor's rights
  AGENTBUS_NAMESPACE        --namespace
  AGENTBUS_SUPERVISOR_ID    --supervisor-id
  AGENTBUS_EXEC             --exec
  AGENTBUS_HOOK_URL         --hook-url
  AGENTBUS_HOOK_TOKEN       the hook bearer token (or the variable --hook-token-env names)
  AGENTBUS_HOOK_TOKEN_FILE  --hook-token-file
  AGENTBUS_HOOK_ORIGINS     --hook-origin (comma-separated)
  AGENTBUS_LOG_LEVEL        --log-level
  AGENTBUS_METRICS_ADDR     --metrics-addr

Files:
  scripts/agentbus-supervisor.service   a hardened systemd unit
  agentbus-supervisor.env               its environment file (AGENTBUS_DATABASE_URL, token
                                        file)";

/// Claims ready jobs, wakes their agents, watches leases, and recovers from crashes.
///
/// A job enqueued for an agent wakes it within milliseconds (LISTEN jobs_ready, with
/// polling as a backstop). Per-agent concurrency limits hold across any number of
/// supervisors; every attempt leaves a job_attempts row saying what happened; a lease
/// that runs out is recovered (retried with back-off, or dead after max_attempts). Run as
/// many supervisors as you like, on as many hosts, against one database.
#[derive(Debug, Parser)]
#[command(
    name = "agentbus-supervisor",
    version,
    max_term_width = 100,
    after_long_help = AFTER_HELP
)]
pub struct SupervisorArgs {
    /// PostgreSQL connection string (default: $AGENTBUS_DATABASE_URL, else $DATABASE_URL,
    /// else the libpq PG* variables)
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,

    /// Namespace served
    #[arg(long, env = "AGENTBUS_NAMESPACE", default_value = "default")]
    namespace: String,

    /// This supervisor's id: lease owner and heartbeat row (default: HOST-PID). Give a
    /// stable id (e.g. the host name) to have a restart release the command jobs it had
    /// claimed but not started (a hook job it may have sent is left to its lease)
    #[arg(long, env = "AGENTBUS_SUPERVISOR_ID", value_name = "ID")]
    supervisor_id: Option<String>,

    /// Lease length at claim and per renewal (exec children are renewed every third)
    #[arg(
        long,
        default_value_t = 60,
        value_name = "SECONDS",
        allow_negative_numbers = true
    )]
    lease_seconds: i32,

    /// Claim at least this often without a notification
    #[arg(
        long,
        default_value_t = 2.0,
        value_name = "SECONDS",
        allow_negative_numbers = true
    )]
    poll_interval: f64,

    /// At most this many jobs per claim
    #[arg(long, default_value_t = 16, value_name = "N")]
    claim_batch: i32,

    /// At most this many jobs being woken or run by this process at once
    #[arg(long, default_value_t = 64, value_name = "N")]
    max_in_flight: usize,

    /// Concurrency limit of agents whose settings set none
    #[arg(long, default_value_t = 1, value_name = "N")]
    default_concurrency: i32,

    /// Wake agents without settings of their own by running this command (argv template,
    /// split like a shell would; no shell is run)
    #[arg(
        long,
        env = "AGENTBUS_EXEC",
        value_name = "COMMAND",
        conflicts_with = "hook_url"
    )]
    exec: Option<String>,

    /// Wake agents without settings of their own by POSTing to this hook URL
    #[arg(long, env = "AGENTBUS_HOOK_URL", value_name = "URL")]
    hook_url: Option<String>,

    /// Read the hook bearer token from this file (first line; never logged)
    #[arg(long, env = "AGENTBUS_HOOK_TOKEN_FILE", value_name = "FILE")]
    hook_token_file: Option<PathBuf>,

    /// Read the hook bearer token from this environment variable
    #[arg(long, default_value = "AGENTBUS_HOOK_TOKEN", value_name = "NAME")]
    hook_token_env: String,

    /// Another origin (http://host:port) hook tokens may be sent to, besides --hook-url's;
    /// repeat for several gateways. A token is never sent anywhere else
    #[arg(
        long,
        env = "AGENTBUS_HOOK_ORIGINS",
        value_delimiter = ',',
        value_name = "ORIGIN"
    )]
    hook_origin: Vec<String>,

    /// timeoutSeconds sent with hook wake-ups (agents may override)
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    hook_timeout_seconds: u32,

    /// How long one hook HTTP request may take (OpenClaw may take up to 15 s to admit a run)
    #[arg(
        long,
        default_value_t = 30.0,
        value_name = "SECONDS",
        allow_negative_numbers = true
    )]
    hook_request_timeout: f64,

    /// Deadline of an exec child (agents may override)
    #[arg(
        long,
        default_value_t = 900.0,
        value_name = "SECONDS",
        allow_negative_numbers = true
    )]
    exec_timeout: f64,

    /// Between TERM and KILL of an exec child's process group
    #[arg(
        long,
        default_value_t = 10.0,
        value_name = "SECONDS",
        allow_negative_numbers = true
    )]
    kill_grace: f64,

    /// After SIGTERM, how long running exec children may finish
    #[arg(
        long,
        default_value_t = 30.0,
        value_name = "SECONDS",
        allow_negative_numbers = true
    )]
    shutdown_grace: f64,

    /// Between heartbeat writes
    #[arg(
        long,
        default_value_t = 5.0,
        value_name = "SECONDS",
        allow_negative_numbers = true
    )]
    heartbeat_interval: f64,

    /// Between sweeps for expired leases
    #[arg(
        long,
        default_value_t = 5.0,
        value_name = "SECONDS",
        allow_negative_numbers = true
    )]
    reap_interval: f64,

    /// Process until nothing is ready or running, then exit (prints a JSON summary)
    #[arg(long)]
    once: bool,

    /// Where exec prompt files are written (mode 0600, removed after each run)
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,

    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9464)
    #[arg(long, env = "AGENTBUS_METRICS_ADDR", value_name = "ADDR")]
    metrics_addr: Option<SocketAddr>,

    /// error, warn, info or debug
    #[arg(
        long,
        env = "AGENTBUS_LOG_LEVEL",
        default_value = "info",
        value_name = "LEVEL"
    )]
    log_level: Level,
}

/// Parses the command line into a configuration.
pub fn config(a: SupervisorArgs, env: EnvSnapshot) -> Result<Config> {
    // --database-url, then AGENTBUS_DATABASE_URL, DATABASE_URL, then libpq's PG*.
    // Exec children get AGENTBUS_AGENT_DATABASE_URL when it is set (an agent login, with
    // the guardrails on), else the supervisor's own URL.
    let database_url = env
        .get("AGENTBUS_AGENT_DATABASE_URL")
        .filter(|u| !u.trim().is_empty())
        .or_else(|| a.database_url.clone().filter(|u| !u.trim().is_empty()))
        .or_else(|| crate::db::url_from_lookup(&|k| env.get(k)).map(|(_, url)| url));
    let db = match &a.database_url {
        Some(url) if !url.trim().is_empty() => DbConfig::parse(url)?,
        _ => DbConfig::from_lookup(|k| env.get(k))?,
    };
    if db.pool == crate::db::PoolMode::Transaction {
        return Err(Error::config(
            "the supervisor cannot run through a transaction pooler: it LISTENs for work, which \
             needs a session of its own",
        )
        .with_hint(
            "connect it directly to PostgreSQL (or through a session-mode pool) and give \
             agents the pooler: AGENTBUS_AGENT_DATABASE_URL and AGENTBUS_AGENT_POOL_MODE=transaction",
        ));
    }
    let agent_pool_mode = match env
        .get("AGENTBUS_AGENT_POOL_MODE")
        .as_deref()
        .map(str::trim)
    {
        None | Some("") => None,
        Some(m @ ("session" | "transaction")) => Some(m.to_string()),
        Some(other) => {
            return Err(Error::config(format!(
                "AGENTBUS_AGENT_POOL_MODE is {other:?}; expected session or transaction"
            )))
        }
    };
    let seconds = |flag: &str, v: f64, max: f64| {
        if v.is_finite() && v > 0.0 && v <= max {
            Ok(Duration::from_secs_f64(v))
        } else {
            Err(Error::usage(format!(
                "{flag}: {v} is out of range (more than 0, at most {max})"
            )))
        }
    };
    let default_wake = match (&a.exec, &a.hook_url) {
        (Some(cmd), _) => Some(DefaultWake::Exec(
            split_command(cmd).map_err(|e| Error::usage(format!("--exec: {e}")))?,
        )),
        (None, Some(url)) => Some(DefaultWake::Hook(url.clone())),
        (None, None) => None,
    };
    let hook_token = match &a.hook_token_file {
        Some(path) => Secret::new(&crate::cli::args::read_token_file(
            "--hook-token-file",
            path,
        )?),
        None => env.get(&a.hook_token_env).as_deref().and_then(Secret::new),
    };
    // --hook-url's origin (a bad --hook-url is reported by the supervisor's own checks),
    // then each --hook-origin.
    let mut hook_origins: Vec<String> = a
        .hook_url
        .iter()
        .filter_map(|u| crate::redact::origin(u.trim()))
        .collect();
    for url in &a.hook_origin {
        let origin = crate::redact::origin(url.trim()).ok_or_else(|| {
            Error::usage(format!(
                "`hook_origin`: {:?} is not an http:// or https:// URL",
                crate::redact::url_without_credentials(url)
            ))
        })?;
        if !hook_origins.contains(&origin) {
            hook_origins.push(origin);
        }
    }
    let supervisor_id = a.supervisor_id.clone().unwrap_or_else(|| {
        // A name (sql/0014_identifiers.sql), then the pid.
        let host = crate::ledger::validate::name_from(&heartbeat_host_name(), 40, "host");
        format!("{host}-{}", std::process::id())
    });
    let work_dir = a.work_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("agentbus-supervisor-{}", std::process::id()))
    });
    Ok(Config {
        db,
        database_url,
        agent_pool_mode,
        namespace: a.namespace,
        supervisor_id,
        lease_seconds: a.lease_seconds,
        poll_interval: seconds("--poll-interval", a.poll_interval, 3600.0)?,
        claim_batch: a.claim_batch,
        max_in_flight: a.max_in_flight,
        default_concurrency: a.default_concurrency,
        default_wake,
        hook_token,
        hook_origins,
        hook_timeout_seconds: a.hook_timeout_seconds,
        hook_request_timeout: seconds("--hook-request-timeout", a.hook_request_timeout, 600.0)?,
        exec_timeout: seconds("--exec-timeout", a.exec_timeout, 7.0 * 86_400.0)?,
        kill_grace: seconds("--kill-grace", a.kill_grace, 3600.0)?,
        shutdown_grace: seconds("--shutdown-grace", a.shutdown_grace, 86_400.0)?,
        once: a.once,
        heartbeat_interval: seconds("--heartbeat-interval", a.heartbeat_interval, 3600.0)?,
        reap_interval: seconds("--reap-interval", a.reap_interval, 3600.0)?,
        work_dir,
        metrics_addr: a.metrics_addr,
        log: Logger::new(a.log_level),
        env,
    })
}

/// Runs `agentbus-supervisor` with `argv`; returns the exit code.
pub fn run(
    argv: Vec<String>,
    env: EnvSnapshot,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
    stop: supervisor::Stop,
) -> u8 {
    let args = match SupervisorArgs::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let text = e.render().to_string();
            if code == 0 {
                let _ = write!(stdout, "{text}");
            } else {
                let first = text.lines().next().unwrap_or("invalid arguments");
                let _ = writeln!(
                    stderr,
                    "agentbus-supervisor: {}\nagentbus-supervisor: hint: see `agentbus-supervisor --help`",
                    first.trim_start_matches("error: ")
                );
            }
            return code;
        }
    };
    let once = args.once;
    let outcome = config(args, env).and_then(|cfg| supervisor::run(cfg, stop));
    match outcome {
        Ok(summary) => {
            if once {
                let _ = writeln!(
                    stdout,
                    "{}",
                    serde_json::to_string(&summary).unwrap_or_default()
                );
            }
            0
        }
        Err(e) => {
            let root = <SupervisorArgs as clap::CommandFactory>::command();
            let flags = crate::cli::errors::flags_of(&root, "");
            let (message, hint) = crate::cli::errors::rendered(&e, &flags);
            let _ = writeln!(stderr, "agentbus-supervisor: error: {message}");
            if let Some(hint) = &hint {
                let _ = writeln!(stderr, "agentbus-supervisor: hint: {hint}");
            }
            e.kind.exit_code()
        }
    }
}
