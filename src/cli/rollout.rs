//! rollout plan / apply / check / back.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::json;

use super::output::{self, Format};
use super::Ctx;
use crate::db::SessionSettings;
use crate::error::{Error, Result};
use crate::fleet::rollout::{self, Gate};
use crate::fleet::{self, Fleet};
use crate::lanes::memory;
use crate::ledger::events::{self, EmitParams};

/// Bring an installation up phase by phase, each behind a gate that measures the last
///
/// Phase 1 is the core ledger, the supervisor and the pilot agents with their duties; 2 the
/// full reactive fleet; 3 ideas, opportunities and the proactive scans; 4 memory; 5 idle
/// thinking and the Obsidian export. Agents and standing orders say their phase in the
/// fleet files (`phase = N`, default 1; an order defaults to its agent's), the lanes in
/// fleet.toml's [rollout]. `apply` is idempotent: run twice, the second run changes
/// nothing; run on a half-applied phase, it completes it. It refuses to go past a phase
/// whose gate (`check`) fails unless --force with a --reason, which is recorded. `back`
/// disables what later phases added (orders disabled, agents paused, lanes paused) and
/// deletes nothing.
#[derive(Debug, Args)]
#[command(after_help = ROLLOUT_EXAMPLES)]
pub struct RolloutArgs {
    #[command(subcommand)]
    command: RolloutCommand,
}

const ROLLOUT_EXAMPLES: &str = "\
Examples:
  agentbus rollout plan --fleet agents/ops
  agentbus rollout apply --phase 1 --fleet agents/ops
  agentbus rollout check --phase 1 --fleet agents/ops        # the gate: PASS or what blocks
  agentbus rollout apply --phase 2 --fleet agents/ops        # refused while the gate fails
  agentbus rollout apply --phase 2 --fleet agents/ops --force --reason 'pilot ran a week, one known dead job'
  agentbus rollout back --phase 2 --fleet agents/ops";

#[derive(Debug, Subcommand)]
enum RolloutCommand {
    /// The phases of the fleet and where this installation stands
    Plan(FleetArg),
    /// Bring the installation to phase N (schema, agents, orders, lanes), idempotently
    Apply(ApplyArgs),
    /// Measure a phase's exit criteria from the ledger: PASS, or exactly what blocks (exit 1)
    Check(CheckArgs),
    /// Go back to phase N: disable what later phases added, delete nothing
    Back(ApplyArgs),
}

#[derive(Debug, Args)]
struct FleetArg {
    /// The fleet folder (fleet.toml and one folder per agent)
    #[arg(long, value_name = "DIR")]
    fleet: PathBuf,
    /// Use this namespace instead of fleet.toml's
    #[arg(long, value_name = "NAMESPACE")]
    namespace: Option<String>,
}

impl FleetArg {
    fn load(&self) -> Result<Fleet> {
        let mut f = super::fleet::load(&self.fleet)?;
        if let Some(ns) = &self.namespace {
            crate::ledger::validate::check_name("--namespace", ns)?;
            f.namespace = ns.clone();
        }
        Ok(f)
    }
}

#[derive(Debug, Args)]
struct ApplyArgs {
    /// The phase (1 to 5)
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=5))]
    phase: u8,
    #[command(flatten)]
    fleet: FleetArg,
    /// Go past a failing gate (or skip a phase); needs --reason, which is recorded
    #[arg(long, requires = "reason")]
    force: bool,
    /// Why the gate is overridden
    #[arg(long)]
    reason: Option<String>,
    /// Then prove it runs: a live supervisor wakes a probe agent (rollout-probe, exec: this
    /// agentbus closing its job), a standing order fired once ends completed, and the audit
    /// finds nothing; exit 1 if any of it fails
    #[arg(long)]
    smoke: bool,
    /// How long the smoke test waits for the probe's jobs
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    smoke_timeout: u64,
    /// Also install the guardrail roles (agentbus roles install: agentbus_agent,
    /// agentbus_supervisor, agentbus_operator; needs CREATEROLE), idempotently
    #[arg(long)]
    roles: bool,
    /// Also write the systemd units of the phase into DIR (/etc/systemd/system): the
    /// supervisor and the nightly backup from phase 1, the vault export from phase 5;
    /// files already as they should be are left alone. Then: systemctl daemon-reload
    #[arg(long, value_name = "DIR")]
    units: Option<PathBuf>,
}

/// The systemd units agentbus ships, and the phase each belongs to.
const UNITS: [(&str, u8, &str); 4] = [
    (
        "agentbus-supervisor.service",
        1,
        include_str!("../../scripts/agentbus-supervisor.service"),
    ),
    (
        "agentbus-backup.service",
        1,
        include_str!("../../scripts/agentbus-backup.service"),
    ),
    (
        "agentbus-backup.timer",
        1,
        include_str!("../../scripts/agentbus-backup.timer"),
    ),
    (
        "agentbus-vault@.service",
        5,
        include_str!("../../scripts/agentbus-vault.service"),
    ),
];

/// Writes the units of phases up to `phase` into `dir`; returns (written, unchanged).
fn write_units(dir: &std::path::Path, phase: u8) -> Result<serde_json::Value> {
    std::fs::create_dir_all(dir).map_err(|e| Error::failure(format!("{}: {e}", dir.display())))?;
    let mut written = Vec::new();
    let mut unchanged = Vec::new();
    for (name, _, text) in UNITS.iter().filter(|(_, from, _)| *from <= phase) {
        let path = dir.join(name);
        if std::fs::read_to_string(&path).is_ok_and(|t| t == *text) {
            unchanged.push(*name);
            continue;
        }
        std::fs::write(&path, text)
            .map_err(|e| Error::failure(format!("{}: {e}", path.display())))?;
        written.push(*name);
    }
    Ok(
        json!({"dir": dir, "written": written, "unchanged": unchanged,
              "next": "systemctl daemon-reload, then systemctl enable --now each unit written"}),
    )
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// The phase whose exit criteria to measure (1 to 5)
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=5))]
    phase: u8,
    #[command(flatten)]
    fleet: FleetArg,
}

pub fn run(ctx: &mut Ctx, a: RolloutArgs) -> Result<String> {
    match a.command {
        RolloutCommand::Plan(f) => plan(ctx, f),
        RolloutCommand::Apply(x) => apply(ctx, x, false),
        RolloutCommand::Back(x) => apply(ctx, x, true),
        RolloutCommand::Check(c) => {
            let fleet = c.fleet.load()?;
            let gate = rollout::check(ctx.db()?, &fleet.namespace, c.phase, &fleet.rollout)?;
            if !gate.pass {
                ctx.set_exit_code(1);
            }
            match ctx.format() {
                Format::Json => output::json(&gate),
                Format::Table => Ok(gate_table(&gate)),
            }
        }
    }
}

fn gate_table(g: &Gate) -> String {
    let mut out = format!(
        "gate of phase {} for {} (last {} h): {}\n",
        g.phase,
        g.namespace,
        g.window_hours,
        if g.pass { "PASS" } else { "FAIL" }
    );
    out.push_str(&output::table(
        &["criterion", "value", "must be", ""],
        g.criteria.iter().map(|c| {
            vec![
                c.name.clone(),
                c.value.clone(),
                c.limit.clone(),
                if c.pass { "ok" } else { "BLOCKS" }.to_string(),
            ]
        }),
    ));
    out
}

fn plan(ctx: &mut Ctx, f: FleetArg) -> Result<String> {
    let fleet = f.load()?;
    let phases = rollout::plan(&fleet);
    let state = rollout::state(ctx.db()?, &fleet.namespace)?;
    match ctx.format() {
        Format::Json => {
            output::json(&json!({"namespace": fleet.namespace, "state": state, "phases": phases}))
        }
        Format::Table => {
            let at = state.as_ref().map_or(0, |s| s.phase);
            let mut out = format!(
                "fleet {} (namespace {}): {}\n",
                fleet.name,
                fleet.namespace,
                match &state {
                    Some(s) => format!(
                        "at phase {} since {} ({})",
                        s.phase, s.applied_at, s.applied_by
                    ),
                    None => "not rolled out yet".to_string(),
                }
            );
            out.push_str(&output::table(
                &["", "phase", "what", "agents", "orders", "lanes"],
                phases.iter().map(|p| {
                    vec![
                        if i32::from(p.phase) <= at { "✓" } else { "" }.to_string(),
                        p.phase.to_string(),
                        p.title.to_string(),
                        p.agents.join(", "),
                        p.orders.len().to_string(),
                        p.lanes.join(", "),
                    ]
                }),
            ));
            Ok(out)
        }
    }
}

fn apply(ctx: &mut Ctx, a: ApplyArgs, back: bool) -> Result<String> {
    let fleet = a.fleet.load()?;
    let ns = fleet.namespace.clone();
    let actor = ctx.actor();
    let forced = a.force.then(|| a.reason.clone().unwrap_or_default());
    if let Some(r) = &forced {
        crate::ledger::validate::check_required_text("`reason`", r)?;
    }
    let client = ctx.db_with(SessionSettings {
        application_name: "agentbus/rollout".into(),
        statement_timeout: None,
        lock_timeout: Some(Duration::from_secs(300)),
        synchronous_commit: true,
        lease_token: None,
        idle_in_transaction_timeout: crate::db::CLI_IDLE_IN_TRANSACTION_TIMEOUT,
    })?;
    // The schema first (every migration: the phases differ in what runs, not in tables).
    let migrated = crate::db::migrate::migrate(client)?;
    let roles = if a.roles {
        Some(crate::db::transaction(
            client,
            crate::ledger::roles::install,
        )?)
    } else {
        crate::db::transaction(client, crate::ledger::roles::refresh_grants)?;
        None
    };
    let current = rollout::state(client, &ns)?.map_or(0, |s| s.phase);
    let n = i32::from(a.phase);
    let mut gate = None;
    if back {
        if n >= current {
            return Err(Error::conflict(format!(
                "namespace {ns} is at phase {current}: back goes to an earlier phase (apply goes forward)"
            )));
        }
    } else {
        if n < current {
            return Err(Error::conflict(format!(
                "namespace {ns} is at phase {current}: to go back to {n}, run rollout back --phase {n}"
            )));
        }
        if n > current + 1 && forced.is_none() {
            return Err(Error::conflict(format!(
                "namespace {ns} is at phase {current}: apply phase {} first (or --force --reason)",
                current + 1
            )));
        }
        if n > current && n > 1 {
            let g = rollout::check(client, &ns, a.phase - 1, &fleet.rollout)?;
            if !g.pass && forced.is_none() {
                let blocks: Vec<String> = g
                    .criteria
                    .iter()
                    .filter(|c| !c.pass)
                    .map(|c| format!("{} is {} (must be {})", c.name, c.value, c.limit))
                    .collect();
                return Err(Error::conflict(format!(
                    "the gate of phase {} fails: {}",
                    a.phase - 1,
                    blocks.join("; ")
                ))
                .with_hint(format!(
                    "agentbus rollout check --phase {} --fleet DIR shows it; --force --reason '...' goes on regardless (recorded)",
                    a.phase - 1
                )));
            }
            gate = Some(g);
        }
    }
    let target = rollout::at_phase(&fleet, a.phase);
    let done = crate::db::transaction(client, |tx| {
        let sync = fleet::sync(tx, &target, &actor)?;
        let mut lanes = Vec::new();
        for (lane, on) in rollout::lanes_at(&fleet.rollout, a.phase) {
            if memory::is_paused(tx, &ns, lane)? == on {
                let why = format!(
                    "rollout: the {lane} lane starts at phase {}",
                    if lane == "proactive" {
                        fleet.rollout.proactive
                    } else {
                        fleet.rollout.memory
                    }
                );
                memory::set_paused(tx, &ns, lane, !on, Some(&why), &actor)?;
                lanes.push(json!({"lane": lane, "running": on}));
            }
        }
        let recorded = rollout::record(tx, &ns, a.phase, &actor, forced.as_deref())?;
        let changed = !sync.is_noop() || !lanes.is_empty() || recorded;
        if changed {
            events::emit(
                tx,
                &EmitParams {
                    namespace: ns.clone(),
                    topic: if back {
                        "rollout.back"
                    } else {
                        "rollout.applied"
                    }
                    .into(),
                    source_agent: None,
                    source_job_id: None,
                    dedupe_key: None,
                    payload: json!({"phase": a.phase, "from": current, "forced_reason": forced,
                                    "added": sync.added.len(), "changed": sync.changed.len(),
                                    "disabled": sync.disabled.len(), "lanes": lanes}),
                },
            )?;
        }
        Ok(
            json!({"namespace": ns, "phase": a.phase, "from": current, "changed": changed,
                  "migrations_applied": migrated.applied.len(), "sync": sync, "lanes": lanes,
                  "forced_reason": forced, "gate": gate, "roles": roles}),
        )
    })?;
    let mut done = done;
    if let Some(dir) = &a.units {
        done["units"] = write_units(dir, a.phase)?;
    }
    if a.smoke {
        let smoke = smoke(client, &ns, &actor, Duration::from_secs(a.smoke_timeout))?;
        if smoke["pass"] != true {
            ctx.set_exit_code(1);
        }
        done["smoke"] = smoke;
    }
    output::json(&done)
}

/// The smoke test of `apply --smoke` (see its flag).
fn smoke(
    client: &mut postgres::Client,
    ns: &str,
    actor: &str,
    wait: Duration,
) -> Result<serde_json::Value> {
    use crate::ledger::{agents, jobs, standing_orders};
    let Some(supervisor) = rollout::live_supervisor(client, ns)? else {
        return Ok(json!({"pass": false, "failed": format!(
            "no supervisor has a heartbeat for namespace {ns} in the last 2 minutes: start agentbus-supervisor --namespace {ns}")}));
    };
    let exe = std::env::current_exe()
        .map_err(|e| Error::failure(format!("cannot find this agentbus: {e}")))?
        .display()
        .to_string();
    let (job, run) = crate::db::transaction(client, |tx| {
        let settings = agents::Settings {
            role: Some("rollout smoke test: closes its job at once".into()),
            max_concurrency: Some(Some(1)),
            wake_mode: Some(Some(agents::WakeMode::Exec)),
            exec_command: Some(vec![
                exe.clone(),
                "complete-job".into(),
                "{job_id}".into(),
                "--lease-token".into(),
                "{lease_token}".into(),
                "--summary".into(),
                "rollout smoke probe".into(),
            ]),
            exec_timeout_seconds: Some(30),
            ..Default::default()
        };
        agents::configure(tx, ns, rollout::PROBE_AGENT, &settings, actor)?;
        rollout::declare_probe_order(tx, ns)?;
        let mut p = jobs::EnqueueParams::new(
            ns,
            rollout::PROBE_AGENT,
            "rollout.probe",
            "rollout smoke probe",
            actor,
        );
        p.max_attempts = 1;
        let job = jobs::enqueue(tx, &p)?.job;
        let run =
            standing_orders::fire_now(tx, ns, rollout::PROBE_AGENT, rollout::PROBE_ORDER, actor)?;
        Ok((job, run))
    })?;
    let started = std::time::Instant::now();
    let ids: Vec<uuid::Uuid> = [Some(job.id), run.job_id].into_iter().flatten().collect();
    let statuses = loop {
        let statuses: Vec<String> = ids
            .iter()
            .map(|id| jobs::get(client, *id).map(|j| j.status.as_str().to_string()))
            .collect::<Result<_>>()?;
        let open = statuses.iter().any(|s| {
            !matches!(
                s.as_str(),
                "succeeded" | "dead" | "cancelled" | "failed" | "blocked"
            )
        });
        if !open || started.elapsed() >= wait {
            break statuses;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let run_status: Option<String> = client
        .query_opt(
            "select status::text from standing_order_runs where id = $1",
            &[&run.id],
        )?
        .map(|r| r.try_get(0))
        .transpose()?;
    let audit = super::audit::default_audit(client, ns, actor)?;
    let codes: Vec<&str> = audit.findings.iter().map(|f| f.code).collect();
    let pass = statuses.iter().all(|s| s == "succeeded")
        && run_status.as_deref() == Some("completed")
        && codes.is_empty();
    Ok(json!({"pass": pass, "supervisor": supervisor,
              "probe_jobs": ids.iter().zip(&statuses).map(|(id, s)| json!({"id": id, "status": s})).collect::<Vec<_>>(),
              "order_run": {"id": run.id, "status": run_status},
              "seconds": started.elapsed().as_millis() as f64 / 1000.0,
              "audit_findings": codes}))
}
