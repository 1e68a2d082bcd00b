//! The `agentbus` command line: clap definitions, dispatch, rendering, exit codes.
//!
//! This layer only parses, calls one library function, and renders. Stdout carries only
//! the command's document (JSON, or a table on a terminal); everything else goes to stderr.

mod activity;
mod agent_new;
mod agents;
mod args;
mod argv;
mod audit;
mod backup;
mod blocked;
mod close;
mod code;
mod completions;
mod controls;
mod digest;
mod doctor;
mod errors;
mod events;
mod fleet;
mod ideas;
mod jobs;
pub mod man;
mod memory;
mod migrate;
mod opportunities;
mod output;
mod prune;
mod purge;
mod requests;
mod roles;
mod rollout;
mod standing_orders;
mod status;
pub mod supervisor;
mod time;
mod trace;
mod vault;

use std::io::Write;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::db::{self, DbConfig, SessionSettings};
use crate::error::{Error, ErrorKind, Result};

pub use output::Format;

/// Looks up an environment variable by name (the binary passes `std::env::var`).
pub type EnvLookup = Box<dyn Fn(&str) -> Option<String>>;

/// Root help text shared by `agentbus --help` and agentbus(1).
pub(crate) const ROOT_AFTER_HELP: &str = "\
Examples:
  agentbus migrate
  agentbus enqueue-job --target-agent security --subject review_new_dependency \\
      --payload '{\"package\":\"fastapi\"}' --dedupe-key dep:fastapi:0.116.0
  agentbus list-jobs --status queued --agent security
  agentbus complete-job \"$AGENTBUS_JOB_ID\" --lease-token \"$AGENTBUS_LEASE_TOKEN\" --summary 'done'

Exit status:
  0   success
  1   failure (unexpected error)
  2   usage: bad flags, bad JSON, bad uuid, value out of range
  3   not found: the job or run named does not exist
  4   conflict: illegal state transition, stale lease token, lease lost
  75  temporary: database unreachable, timeout, serialization failure; retry the same command
  77  not permitted: a guardrail refused it (a hand-off outside handoffs, or something
      this database login may not do: see agentbus roles)
  78  configuration: no database settings, schema not migrated, migration edited

Environment:
  AGENTBUS_DATABASE_URL  PostgreSQL connection string; else DATABASE_URL; else the libpq
                         PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE variables. Inside
                         OpenClaw use AGENTBUS_DATABASE_URL or PG*: OpenClaw strips
                         DATABASE_URL from the commands agents run
  DATABASE_URL           PostgreSQL connection string (when AGENTBUS_DATABASE_URL is unset)
  AGENTBUS_NAMESPACE     default --namespace (default: default)
  AGENTBUS_AGENT         the calling agent: default --source-agent, recorded as the actor
  AGENTBUS_JOB_ID        default job id of complete-job, block-job, fail-job,
                         mark-running-job and renew-job-lease (set by the supervisor)
  AGENTBUS_LEASE_TOKEN   default --lease-token for the job named by AGENTBUS_JOB_ID

Output:
  Commands that write print the resulting row as one JSON object (field names are the
  column names; times are RFC 3339 UTC), so `jq -r .id` works. Commands that read print a
  table on a terminal and JSON otherwise (--format overrides). Errors are one line on
  stderr: `agentbus: error: <what>: <why>`.";

/// A durable work ledger for fleets of AI agents, in PostgreSQL.
///
/// Agents call agentbus to enqueue follow-up work, emit facts, and close the job they were
/// woken for; operators use it to migrate, inspect and list; cron scripts record standing
/// orders. Every write is one transaction, and every state change is guarded and recorded.
#[derive(Debug, Parser)]
#[command(
    name = "agentbus",
    version,
    max_term_width = 100,
    after_long_help = ROOT_AFTER_HELP,
    disable_help_subcommand = true
)]
pub struct Cli {
    /// Output format: table (terminal default) or json (default when stdout is not a terminal)
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub format: Option<Format>,

    /// Who is acting, for the job history (default: $AGENTBUS_AGENT, else operator:$USER)
    #[arg(long, global = true, value_name = "NAME")]
    pub actor: Option<String>,

    /// Show whole job ids in tables (they are shortened to 8 characters otherwise)
    #[arg(long, global = true)]
    pub full_ids: bool,

    /// Print only this part of the JSON output, raw, one value per line: a dotted path
    /// such as `id`, `payload.email`, `jobs.queued`, `[].id` (every element), `roots.0.job`
    #[arg(long, global = true, value_name = "PATH")]
    pub get: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Migrate(migrate::MigrateArgs),
    EnqueueJob(jobs::EnqueueJobArgs),
    EmitEvent(events::EmitEventArgs),
    MarkRunningJob(close::MarkRunningJobArgs),
    CompleteJob(close::CompleteJobArgs),
    BlockJob(close::BlockJobArgs),
    FailJob(close::FailJobArgs),
    RenewJobLease(close::RenewJobLeaseArgs),
    ClaimJobs(jobs::ClaimJobsArgs),
    RequeueExpired(jobs::RequeueExpiredArgs),
    ShowJob(jobs::ShowJobArgs),
    ListJobs(jobs::ListJobsArgs),
    StartStandingOrder(standing_orders::StartStandingOrderArgs),
    FinishStandingOrder(standing_orders::FinishStandingOrderArgs),
    FireStandingOrder(standing_orders::FireStandingOrderArgs),
    ConfigureAgent(agents::ConfigureAgentArgs),
    PauseAgent(agents::PauseAgentArgs),
    ResumeAgent(agents::ResumeAgentArgs),
    ListAgents(agents::ListAgentsArgs),
    Fleet(fleet::FleetArgs),
    Agent(agent_new::AgentArgs),
    Audit(audit::AuditArgs),
    CancelJob(controls::CancelJobArgs),
    RetryJob(controls::RetryJobArgs),
    UnblockJob(controls::UnblockJobArgs),
    ReprioritizeJob(controls::ReprioritizeJobArgs),
    DeadLetterJob(controls::DeadLetterJobArgs),
    ApproveJob(controls::ApproveJobArgs),
    RejectJob(controls::RejectJobArgs),
    DrainAgent(controls::DrainAgentArgs),
    ListApprovals(controls::ListApprovalsArgs),
    RequestAgent(requests::RequestAgentArgs),
    RequestConfigChange(requests::RequestConfigChangeArgs),
    ApproveRequest(requests::ApproveRequestArgs),
    RouteBlocked(blocked::RouteBlockedArgs),
    RerouteJob(blocked::RerouteJobArgs),
    IdleWindows(blocked::IdleWindowsArgs),
    Vault(vault::VaultArgs),
    Backup(backup::BackupArgs),
    Restore(backup::RestoreArgs),
    Rollout(rollout::RolloutArgs),
    Code(code::CodeArgs),
    ListCodingRuns(code::ListCodingRunsArgs),
    ShowCodingRun(code::ShowCodingRunArgs),
    Status(status::StatusArgs),
    Health(status::HealthArgs),
    Metrics(status::MetricsArgs),
    Trace(trace::TraceArgs),
    Activity(activity::ActivityArgs),
    Events(activity::EventsArgs),
    Completions(completions::CompletionsArgs),
    PurgeNamespace(purge::PurgeNamespaceArgs),
    Prune(prune::PruneArgs),
    Doctor(doctor::DoctorArgs),
    Roles(roles::RolesArgs),
    CreateIdea(ideas::CreateIdeaArgs),
    ReviewIdea(ideas::ReviewIdeaArgs),
    ArchiveIdea(ideas::ArchiveIdeaArgs),
    PromoteIdeaToOpportunity(ideas::PromoteIdeaArgs),
    CreateOpportunity(opportunities::CreateOpportunityArgs),
    TriageOpportunity(opportunities::TriageOpportunityArgs),
    ConvertOpportunity(opportunities::ConvertOpportunityArgs),
    ListIdeas(ideas::ListIdeasArgs),
    ListOpportunities(opportunities::ListOpportunitiesArgs),
    ShowOpportunity(opportunities::ShowOpportunityArgs),
    Digest(digest::DigestArgs),
    CreateMemoryCandidate(memory::CreateCandidateArgs),
    ReviewMemoryCandidate(memory::ReviewCandidateArgs),
    RejectMemoryCandidate(memory::RejectCandidateArgs),
    PromoteMemoryCandidate(memory::PromoteCandidateArgs),
    ExpireMemory(memory::ExpireMemoryArgs),
    ArchiveMemory(memory::ArchiveMemoryArgs),
    ListMemories(memory::ListMemoriesArgs),
    ShowMemory(memory::ShowMemoryArgs),
    MemoriesDueReview(memory::DueReviewArgs),
    RetrieveMemories(memory::RetrieveArgs),
    PauseLane(memory::PauseLaneArgs),
    ResumeLane(memory::ResumeLaneArgs),
}

/// What a command needs from its surroundings: the environment, the output format, and a
/// database connection opened on first use.
pub struct Ctx {
    env: EnvLookup,
    command: String,
    format: Format,
    requested_format: Option<Format>,
    actor: Option<String>,
    /// The namespace the command names (flag or `$AGENTBUS_NAMESPACE`), else `default`:
    /// where short job ids are looked up.
    namespace: String,
    full_ids: bool,
    exit_code: u8,
    client: Option<postgres::Client>,
    /// Through a transaction pooler: the settings each new transaction begins with.
    pooled: Option<SessionSettings>,
    /// Through a transaction pooler: whether the command's pinned transaction is open (it
    /// is begun on the first use of the connection after the last one ended).
    pinned: bool,
}

impl Drop for Ctx {
    /// Through a transaction pooler, ends the command's pinned transaction (what ran in it
    /// after the last write is reads, or writes the command made outside a transaction,
    /// which would have committed on their own without a pooler).
    fn drop(&mut self) {
        self.rest();
    }
}

impl Ctx {
    /// Reads an environment variable (empty counts as unset).
    pub fn env(&self, name: &str) -> Option<String> {
        (self.env)(name).filter(|v| !v.is_empty())
    }

    /// The resolved output format for read commands.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The format of commands whose text is itself the product (a script, a config file):
    /// text unless `--format json` was asked for, terminal or not.
    pub fn document_format(&self) -> Format {
        self.requested_format.unwrap_or(Format::Table)
    }

    /// Whether tables show whole ids.
    pub fn full_ids(&self) -> bool {
        self.full_ids
    }

    /// Sets the exit code of a command that succeeded (health's 1 and 2).
    pub fn set_exit_code(&mut self, code: u8) {
        self.exit_code = code;
    }

    /// The database connection, opened on first use.
    pub fn db(&mut self) -> Result<&mut postgres::Client> {
        self.db_with(SessionSettings::cli(&self.command))
    }

    /// Runs `f` as this command's one transaction (see [`db::transaction`]): committed when
    /// it succeeds or records a refusal, rolled back otherwise.
    pub fn tx<T>(
        &mut self,
        f: impl FnOnce(&mut postgres::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let result = db::transaction(self.db()?, f);
        // Through a transaction pooler, the command's pinned transaction ended with this
        // one: the next use of the connection begins a new one.
        self.pinned = false;
        result
    }

    /// Before a command waits (`status --watch` between screens): through a transaction
    /// pooler, ends the pinned transaction, so the wait neither holds a server connection
    /// nor meets the server's idle-in-transaction limit; the next use begins a new one.
    /// Without a pooler no transaction is open between commands' statements: nothing to do.
    pub fn rest(&mut self) {
        if let (true, Some(client)) = (self.pinned, self.client.as_mut()) {
            let _ = client.batch_execute("commit");
        }
        self.pinned = false;
    }

    /// The id of a job named on the command line (a prefix is looked up).
    pub fn job_id(&mut self, job: &args::JobRef) -> Result<uuid::Uuid> {
        match job {
            args::JobRef::Id(id) => Ok(*id),
            prefix => {
                let namespace = self.namespace.clone();
                prefix.resolve(self.db()?, &namespace)
            }
        }
    }

    /// The name of the command being run (`complete-job`), as clap parsed it.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// The database settings the environment gives (for PostgreSQL's own programs).
    pub fn db_config(&self) -> Result<DbConfig> {
        DbConfig::from_lookup(|k| self.env(k))
    }

    /// The database connection with specific session settings, opened on first use.
    pub fn db_with(&mut self, settings: SessionSettings) -> Result<&mut postgres::Client> {
        if self.client.is_none() {
            let config = DbConfig::from_lookup(|k| self.env(k))?;
            let mut settings = settings;
            // Inside a run, the lease names the job and so the agent (guardrails); a
            // malformed token is ignored here and refused by the command that uses it.
            settings.lease_token = self
                .env("AGENTBUS_LEASE_TOKEN")
                .and_then(|t| uuid::Uuid::parse_str(t.trim()).ok());
            self.client = Some(db::connect(&config, &settings)?);
            if config.pool == db::PoolMode::Transaction {
                // `connect` began the first pinned transaction.
                self.pooled = Some(settings);
                self.pinned = true;
            }
        }
        let client = self
            .client
            .as_mut()
            .ok_or_else(|| Error::failure("database connection unavailable"))?;
        if let (Some(settings), false) = (&self.pooled, self.pinned) {
            db::pinned_begin(client, settings)?;
            self.pinned = true;
        }
        Ok(client)
    }

    /// Who is acting, for the history: `AGENTBUS_AGENT`, else `operator:$USER`.
    pub fn actor(&self) -> String {
        if let Some(actor) = self
            .actor
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            return actor.to_string();
        }
        self.env("AGENTBUS_AGENT").unwrap_or_else(|| {
            // A name (lower case, no spaces), so it can also be an event's source.
            let user = crate::ledger::validate::name_from(
                &self
                    .env("USER")
                    .or_else(|| self.env("LOGNAME"))
                    .unwrap_or_else(|| "unknown".into()),
                50,
                "unknown",
            );
            format!("operator:{user}")
        })
    }
}

/// Runs the CLI with `argv`, writing to `stdout`/`stderr`, and returns the exit code.
///
/// `env` looks up environment variables (the binary passes `std::env::var`), `stdout_is_tty`
/// decides the default format of read commands.
pub fn run(
    argv: Vec<String>,
    env: EnvLookup,
    stdin: &mut dyn std::io::Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
    stdout_is_tty: bool,
) -> u8 {
    // Parsed in two steps so the command's name comes from clap itself (for errors, the
    // application name and the history), not from a table kept by hand.
    let parsed = <Cli as CommandFactory>::command()
        .try_get_matches_from(&argv)
        .and_then(|mut matches| {
            let command = matches.subcommand_name().unwrap_or("agentbus").to_string();
            let subject = matches
                .subcommand()
                .map(|(_, m)| (namespace_of(m), job_of(m)));
            Cli::from_arg_matches_mut(&mut matches).map(|cli| (cli, command, subject))
        });
    let (cli, command, subject) = match parsed {
        Ok(parsed) => parsed,
        Err(err) => return errors::clap_error(err, &argv, stdout, stderr),
    };
    let format = if cli.get.is_some() {
        Format::Json
    } else {
        cli.format.unwrap_or(if stdout_is_tty {
            Format::Table
        } else {
            Format::Json
        })
    };
    let json_errors = cli.format == Some(Format::Json);
    let namespace = subject
        .as_ref()
        .and_then(|(ns, _)| ns.clone())
        .or_else(|| env("AGENTBUS_NAMESPACE").filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "default".into());
    let mut ctx = Ctx {
        env,
        command: command.clone(),
        format,
        requested_format: if cli.get.is_some() {
            Some(Format::Json)
        } else {
            cli.format
        },
        actor: cli.actor.clone(),
        namespace,
        full_ids: cli.full_ids,
        exit_code: 0,
        client: None,
        pooled: None,
        pinned: false,
    };
    // Everything but `--get` (raw values, for scripts) is made terminal-safe: a value from
    // a row can never drive the operator's terminal. JSON is unchanged by it.
    let result = dispatch(&mut ctx, cli.command, stdin, stdout).and_then(|text| match &cli.get {
        Some(path) if !text.is_empty() => output::get_path(&text, path),
        _ => Ok(output::terminal_safe(&text).into_owned()),
    });
    match result {
        Ok(text) if text.is_empty() => ctx.exit_code,
        Ok(text) => {
            if let Err(e) = write_all(stdout, &text) {
                // A closed pipe (e.g. `| head`) is not worth more than a quiet failure.
                let _ = writeln!(stderr, "agentbus: error: writing output: {e}");
                return ErrorKind::Failure.exit_code();
            }
            ctx.exit_code
        }
        Err(err) => {
            if err.kind == ErrorKind::NotPermitted && !err.keep_writes {
                let job = subject.and_then(|(_, job)| job);
                record_refusal(&mut ctx, job.as_deref(), &err);
            }
            errors::report(stderr, &command, &err, json_errors);
            err.kind.exit_code()
        }
    }
}

/// The namespace a parsed command names (flag, `$AGENTBUS_NAMESPACE` or its default),
/// looked for in nested subcommands too.
fn namespace_of(m: &clap::ArgMatches) -> Option<String> {
    if let Ok(Some(ns)) = m.try_get_one::<String>("namespace") {
        return Some(ns.clone());
    }
    m.subcommand().and_then(|(_, sub)| namespace_of(sub))
}

/// The job a parsed command names (`JOB` or `JOB_ID`), as typed.
fn job_of(m: &clap::ArgMatches) -> Option<String> {
    ["job", "job_id"]
        .iter()
        .find_map(|name| match m.try_get_one::<args::JobRef>(name) {
            Ok(Some(args::JobRef::Id(id))) => Some(id.to_string()),
            Ok(Some(args::JobRef::Prefix(p))) => Some(p.clone()),
            _ => None,
        })
}

/// Leaves a `guardrail.refused` event for a refusal the database rolled back (the login
/// comes from the session, not from the caller). Best effort: a refusal that cannot be
/// recorded is still refused.
fn record_refusal(ctx: &mut Ctx, job: Option<&str>, err: &Error) {
    let namespace = ctx.namespace.clone();
    let claimed = ctx.actor();
    let command = ctx.command.clone();
    let refusal = crate::ledger::roles::Refusal {
        namespace: &namespace,
        job,
        claimed: &claimed,
        command: &command,
        reason: &err.message,
    };
    if let Some(client) = ctx.client.as_mut() {
        let _ = db::transaction(client, |tx| {
            crate::ledger::roles::record_refusal(tx, &refusal)
        });
    }
}

fn write_all(out: &mut dyn Write, text: &str) -> std::io::Result<()> {
    out.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Runs one command. Most return their whole output; commands that stream (`--watch`,
/// `--follow`) write to `stdout` themselves and return an empty string.
fn dispatch(
    ctx: &mut Ctx,
    command: Command,
    stdin: &mut dyn std::io::Read,
    stdout: &mut dyn Write,
) -> Result<String> {
    match command {
        Command::Migrate(a) => migrate::run(ctx, a),
        Command::EnqueueJob(a) => jobs::enqueue(ctx, a, stdin),
        Command::EmitEvent(a) => events::emit(ctx, a, stdin),
        Command::MarkRunningJob(a) => close::mark_running(ctx, a, stdin),
        Command::CompleteJob(a) => close::complete(ctx, a, stdin),
        Command::BlockJob(a) => close::block(ctx, a, stdin),
        Command::FailJob(a) => close::fail(ctx, a, stdin),
        Command::RenewJobLease(a) => close::renew(ctx, a),
        Command::ClaimJobs(a) => jobs::claim(ctx, a),
        Command::RequeueExpired(a) => jobs::requeue(ctx, a),
        Command::ShowJob(a) => jobs::show(ctx, a),
        Command::ListJobs(a) => jobs::list(ctx, a),
        Command::StartStandingOrder(a) => standing_orders::start(ctx, a),
        Command::FinishStandingOrder(a) => standing_orders::finish(ctx, a, stdin),
        Command::FireStandingOrder(a) => standing_orders::fire(ctx, a),
        Command::ConfigureAgent(a) => agents::configure(ctx, a),
        Command::PauseAgent(a) => agents::pause(ctx, a),
        Command::ResumeAgent(a) => agents::resume(ctx, a),
        Command::ListAgents(a) => agents::list(ctx, a),
        Command::Fleet(a) => fleet::run(ctx, a),
        Command::Agent(a) => agent_new::run(ctx, a),
        Command::Audit(a) => audit::run(ctx, a),
        Command::CancelJob(a) => controls::cancel(ctx, a),
        Command::RetryJob(a) => controls::retry(ctx, a),
        Command::UnblockJob(a) => controls::unblock(ctx, a, stdin),
        Command::ReprioritizeJob(a) => controls::reprioritize(ctx, a),
        Command::DeadLetterJob(a) => controls::dead_letter(ctx, a),
        Command::ApproveJob(a) => controls::approve(ctx, a),
        Command::RequestAgent(a) => requests::request_agent(ctx, a),
        Command::RequestConfigChange(a) => requests::request_config_change(ctx, a),
        Command::ApproveRequest(a) => requests::approve_request(ctx, a),
        Command::RouteBlocked(a) => blocked::route_blocked(ctx, a),
        Command::RerouteJob(a) => blocked::reroute(ctx, a, stdin),
        Command::IdleWindows(a) => blocked::idle_windows(ctx, a),
        Command::Vault(a) => vault::run(ctx, a),
        Command::Backup(a) => backup::backup(ctx, a),
        Command::Restore(a) => backup::restore(ctx, a),
        Command::Rollout(a) => rollout::run(ctx, a),
        Command::Code(a) => code::run(ctx, a),
        Command::ListCodingRuns(a) => code::list(ctx, a),
        Command::ShowCodingRun(a) => code::show(ctx, a),
        Command::RejectJob(a) => controls::reject(ctx, a),
        Command::DrainAgent(a) => controls::drain(ctx, a),
        Command::ListApprovals(a) => controls::list_approvals(ctx, a),
        Command::Status(a) => status::status(ctx, a, stdout),
        Command::Health(a) => status::health(ctx, a),
        Command::Metrics(a) => status::metrics(ctx, a),
        Command::Trace(a) => trace::run(ctx, a),
        Command::Activity(a) => activity::activity(ctx, a),
        Command::Events(a) => activity::events(ctx, a, stdout),
        Command::Completions(a) => completions::run(ctx, a),
        Command::PurgeNamespace(a) => purge::run(ctx, a),
        Command::Prune(a) => prune::run(ctx, a),
        Command::Roles(a) => roles::run(ctx, a),
        Command::Doctor(a) => doctor::run(ctx, a),
        Command::CreateIdea(a) => ideas::create_idea(ctx, a, stdin),
        Command::ReviewIdea(a) => ideas::review_idea(ctx, a),
        Command::ArchiveIdea(a) => ideas::archive_idea(ctx, a),
        Command::PromoteIdeaToOpportunity(a) => ideas::promote_idea(ctx, a, stdin),
        Command::CreateOpportunity(a) => opportunities::create_opportunity(ctx, a, stdin),
        Command::TriageOpportunity(a) => opportunities::triage(ctx, a),
        Command::ConvertOpportunity(a) => opportunities::convert(ctx, a, stdin),
        Command::ListIdeas(a) => ideas::list_ideas(ctx, a),
        Command::ListOpportunities(a) => opportunities::list_opportunities(ctx, a),
        Command::ShowOpportunity(a) => opportunities::show_opportunity(ctx, a),
        Command::Digest(a) => digest::digest(ctx, a),
        Command::CreateMemoryCandidate(a) => memory::create_candidate(ctx, a, stdin),
        Command::ReviewMemoryCandidate(a) => memory::review_candidate(ctx, a),
        Command::RejectMemoryCandidate(a) => memory::reject_candidate(ctx, a),
        Command::PromoteMemoryCandidate(a) => memory::promote(ctx, a),
        Command::ExpireMemory(a) => memory::expire(ctx, a),
        Command::ArchiveMemory(a) => memory::archive(ctx, a),
        Command::ListMemories(a) => memory::list(ctx, a),
        Command::ShowMemory(a) => memory::show(ctx, a),
        Command::MemoriesDueReview(a) => memory::due_review(ctx, a),
        Command::RetrieveMemories(a) => memory::retrieve(ctx, a),
        Command::PauseLane(a) => memory::pause_lane(ctx, a),
        Command::ResumeLane(a) => memory::resume_lane(ctx, a),
    }
}
